#!/usr/bin/python3
"""Draws rl_compare_bench's JSON (--json) as held-out accuracy against RL step, rollout tokens
and RL wall seconds: one column each, one row per metric (pass@1 and greedy by default), one
line per arm (the mean over seeds) with the seeds' min-max as a band. Writes PREFIX.png and
PREFIX.svg.

usage: scripts/plot_efficacy.py BENCH.json PREFIX [--metrics pass_at_1,greedy,maj_at_k] [--title T]

Needs Debian's python3-matplotlib (scripts/setup.sh).
"""
import argparse
import json
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"pass_at_1": "held-out pass@1 (T=1)", "greedy": "held-out greedy accuracy",
          "maj_at_k": "held-out Maj@k (T=1)"}
AXES = [("step", "RL step"), ("rollout_tokens", "rollout tokens computed"),
        ("wall_s", "RL wall seconds")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench_json")
    ap.add_argument("prefix")
    ap.add_argument("--metrics", default="pass_at_1,greedy")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    try:
        with open(a.bench_json) as f:
            data = json.load(f)
        arms = data["arms"]
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"plot_efficacy: cannot read {a.bench_json}: {e}")
    if not arms:
        sys.exit(f"plot_efficacy: {a.bench_json} has no arms")
    metrics = a.metrics.split(",")
    for m in metrics:
        if m not in LABELS:
            sys.exit(f"plot_efficacy: unknown metric {m!r} (--metrics: {', '.join(sorted(LABELS))})")

    fig, grid = plt.subplots(len(metrics), 3, figsize=(15, 4.2 * len(metrics)), sharey="row",
                             squeeze=False)
    for row, metric in zip(grid, metrics):
        for name, arm in arms.items():
            pts = arm.get("points", [])
            if not pts:
                sys.exit(f"plot_efficacy: arm {name} has no points")
            y = [100 * p[metric]["mean"] for p in pts]
            lo = [100 * p[metric]["min"] for p in pts]
            hi = [100 * p[metric]["max"] for p in pts]
            for ax, (key, _) in zip(row, AXES):
                x = [p["step"] if key == "step" else p[key]["mean"] for p in pts]
                (line,) = ax.plot(x, y, marker="o", markersize=3, label=name)
                ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
        for ax, (key, label) in zip(row, AXES):
            if key == "rollout_tokens":
                ax.xaxis.set_major_formatter(
                    matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:.0f}k"))
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
        row[0].set_ylabel(LABELS[metric] + ", %")
        row[0].legend(loc="lower right", fontsize=8)
    title = a.title or (f"{data.get('task', '?')} task: {data.get('steps')} steps x "
                        f"{data.get('queries')} queries x w={data.get('width')}, lr {data.get('lr')}, "
                        f"{data.get('seeds')} seed(s); line = mean, band = min-max over seeds")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(f"{a.prefix}.{ext}", dpi=110)
    print(f"wrote {a.prefix}.png and {a.prefix}.svg")


if __name__ == "__main__":
    main()
