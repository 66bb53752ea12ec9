#!/usr/bin/python3
"""first_result.py LOG NAME T0: when worker NAME registered and delivered its first result,
per the head's log, in ms after the wall-clock time T0 (seconds since the epoch); prints one
JSON line and exits 0, or exits 1 while the log has not both lines yet."""
import datetime
import json
import re
import sys

log, name, t0 = sys.argv[1], sys.argv[2], float(sys.argv[3])


def when(line):
    m = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\]", line)
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()


registered = first = None
worker_id = None
for line in open(log, errors="replace"):
    m = re.search(r"worker (\d+) '" + re.escape(name) + r"' registered", line)
    if m and registered is None:
        worker_id, registered = m.group(1), when(line)
    if worker_id and first is None and f"worker {worker_id} delivered its first results" in line:
        first = when(line)
if registered is None or first is None:
    sys.exit(1)
print(json.dumps({"worker": name, "registered_ms": (registered - t0) * 1000,
                  "first_result_ms": (first - t0) * 1000}))
