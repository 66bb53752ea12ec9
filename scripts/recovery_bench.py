#!/usr/bin/env python3
"""Recovery figures for docs/cluster-recovery.md: how long a worker started while `treepo
train` runs takes to register and to deliver its first result, and how long `train` takes from
a learner SIGKILL to the next completed step. Runs real processes (a tiny base model pretrained
first, or --base DIR), polls the logs and metrics every 10 ms, and prints a table.

  scripts/recovery_bench.py --treepo build/release/cluster/treepo [--repeats 3] [--base DIR]
                            [--learners N]

With --learners 2 (train's default) the SIGKILL hits rank 1 and both ranks are restarted.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def step_lines(metrics):
    n = 0
    for line in read(metrics).splitlines():
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if "eval" not in j:
            n += 1
    return n


def wait_for(cond, timeout_s, what):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        v = cond()
        if v:
            return time.monotonic()
        time.sleep(0.01)
    raise RuntimeError("timed out waiting for " + what)


def child_pid(parent, needle):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        stat = read("/proc/%s/stat" % pid)
        if not stat:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) != parent:
            continue
        if needle in read("/proc/%s/cmdline" % pid).split("\0"):
            return int(pid)
    return -1


def train_argv(treepo, base, out, steps, learners):
    sets = ["model.base=" + base, "out_dir=" + out, "steps=%d" % steps,
            "rollout.queries_per_step=4", "rollout.width=4", "rollout.segment_tokens=8",
            "rollout.max_depth=3", "rollout.branch=2", "task.train_problems=64",
            "learner.lr=1e-3", "cluster.workers=2", "cluster.learners=%d" % learners, "cluster.worker_pages=256",
            "scheduler.heartbeat_interval_ms=200", "scheduler.heartbeat_timeout_ms=3000",
            "output.checkpoint_every=1", "eval.before=false", "eval.after=false",
            "eval.checkpoints=false", "output.report=false", "output.progress=false",
            "dashboard.enabled=false"]
    argv = [treepo, "train"]
    for s in sets:
        argv += ["--set", s]
    return argv


def one_run(treepo, base, work, i, learners):
    out = os.path.join(work, "run%d" % i)
    log = os.path.join(work, "train%d.log" % i)
    metrics = os.path.join(out, "metrics.jsonl")
    with open(log, "w") as lf:
        train = subprocess.Popen(train_argv(treepo, base, out, 12, learners), stdout=lf, stderr=lf)
    try:
        wait_for(lambda: step_lines(metrics) >= 2, 300, "two steps")
        endpoint = read(os.path.join(out, "endpoint")).strip()
        # A worker joins the running job.
        name = "joiner-%d" % i
        wlog = os.path.join(work, name + ".log")
        with open(wlog, "w") as wf:
            t0 = time.monotonic()
            joiner = subprocess.Popen([treepo, "worker", "--scheduler", endpoint, "--model", base,
                                       "--pages", "256", "--name", name], stdout=wf, stderr=wf)
        reg = re.compile(r"worker (\d+) '%s' registered" % name)
        wid = []

        def registered():
            m = reg.search(read(log))
            if m:
                wid.append(m.group(1))
            return m is not None

        t_reg = wait_for(registered, 120, "the joiner's registration")
        t_first = wait_for(lambda: ("worker %s delivered its first results" % wid[-1]) in read(log),
                           120, "the joiner's first result")
        # The learner is SIGKILLed; train restarts it and completes the next step.
        done = step_lines(metrics)
        learner = child_pid(train.pid, "learner" if learners == 1 else "rank=1")
        t_kill = time.monotonic()
        os.kill(learner, signal.SIGKILL)
        t_back = wait_for(lambda: "RL: learner restarted" in read(log), 120, "the restart")
        t_step = wait_for(lambda: step_lines(metrics) > done, 300, "the next step")
        joiner.send_signal(signal.SIGTERM)
        t_term = time.monotonic()
        joiner.wait(120)
        t_left = time.monotonic()
        if train.wait(600) != 0:
            raise RuntimeError("train failed: see " + log)
        return {"register": t_reg - t0, "first_result": t_first - t0,
                "restart": t_back - t_kill, "next_step": t_step - t_kill,
                "leave": t_left - t_term}
    finally:
        if train.poll() is None:
            train.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--treepo", default="build/release/cluster/treepo")
    ap.add_argument("--base", default="", help="base model dir (default: pretrain a tiny one)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--learners", type=int, default=2, help="data-parallel learner ranks")
    ap.add_argument("--dim", type=int, default=32, help="pretrained base: model width")
    ap.add_argument("--layers", type=int, default=1, help="pretrained base: layers")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="treepo_recovery_bench_")
    params = ""
    try:
        base = a.base
        if not base:
            base = os.path.join(work, "base")
            subprocess.run([a.treepo, "pretrain", "--out", base, "--steps", "20", "--batch", "8",
                            "--dim", str(a.dim), "--hidden", str(2 * a.dim), "--layers",
                            str(a.layers), "--heads", "2", "--kv-heads", "2",
                            "--max-seq-len", "128", "--corpus", "200",
                            "--eval-problems", "0", "--threads", "1"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows = [one_run(a.treepo, base, work, i, a.learners) for i in range(a.repeats)]
        params = read(os.path.join(base, "config.json"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cols = [("register", "worker start -> registered"),
            ("first_result", "worker start -> first result"),
            ("leave", "worker SIGTERM -> exited (drained)"),
            ("restart", "learner SIGKILL -> learner back"),
            ("next_step", "learner SIGKILL -> next step recorded")]
    cfg = json.loads(params) if params else {}
    print("base model: dim %s, %s layers, vocab %s; %d learner rank(s)" % (
        cfg.get("hidden_size"), cfg.get("num_hidden_layers"), cfg.get("vocab_size"), a.learners))
    print("| measure | " + " | ".join("run %d" % (i + 1) for i in range(len(rows))) +
          " | median |")
    print("|---|" + "---|" * (len(rows) + 1))
    for key, label in cols:
        vals = [r[key] for r in rows]
        med = sorted(vals)[len(vals) // 2]
        print("| %s | %s | %.2f s |" % (label, " | ".join("%.2f s" % v for v in vals), med))
    return 0


if __name__ == "__main__":
    sys.exit(main())
