#!/usr/bin/env python3
"""Searches that learn, measured (bench/tune_bench.sh, rows `reach`): how soon each search first
reports a target validation Dice, in trials, epochs, wall seconds and CPU seconds.

  tune_reach.py run OUT.json LOGDIR -- COMMAND...   run COMMAND (a search writing LOGDIR/tune),
                                                    stamp each line of its output with the wall
                                                    time and the CPU time (user + sys) of its whole
                                                    process tree so far; keep the stamped coordinator
                                                    lines, the totals and LOGDIR/tune/state.json
  tune_reach.py table DIR                           the Markdown tables from DIR/<method>_<seed>.json

The CPU time of the tree at a moment: the sum over the live processes under COMMAND of
utime + stime + cutime + cstime (/proc/PID/stat): a process that ended counts in its parent's
cutime/cstime once reaped, so nothing counts twice. At the end the total is taken from wait4's
rusage of COMMAND (every descendant reaped), which is what /usr/bin/time would print.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
# The coordinator's lines (src/tune/coordinator.cpp): a trial handed out, an epoch's report.
HANDED = re.compile(r"\[tune +[\d.]+s\] (?:trial|member) (\d+) (?:round \d+ \(epochs [\d-]+\) )?-> group")
EPOCH = re.compile(r"\[tune +[\d.]+s\] trial (\d+) epoch (\d+): validation Dice")


def tree_cpu(root):
    """user + sys seconds of `root` and its live descendants, reaped children included."""
    parent, ticks = {}, {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while we looked
        parent[int(pid)] = int(rest[1])
        ticks[int(pid)] = sum(int(x) for x in rest[11:15])  # utime stime cutime cstime
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += ticks.get(p, 0)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return total / TICK


def run(out, logdir, cmd):
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines, text = [], []
    for line in proc.stdout:
        text.append(line)
        if HANDED.search(line) or EPOCH.search(line):
            lines.append([time.monotonic() - t0, tree_cpu(proc.pid), line.rstrip("\n")])
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    rc = os.waitstatus_to_exitcode(status)
    with open(out + ".log", "w") as f:
        f.writelines(text)
    if rc != 0:
        sys.exit(f"tune_reach.py: {' '.join(cmd)} exited with {rc}; its output is in {out}.log")
    state = json.load(open(os.path.join(logdir, "tune", "state.json")))
    record = {"cmd": cmd, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "lines": lines, "state": state}
    json.dump(record, open(out, "w"))


def first_reach(rec, target):
    """(n-th trial drawn, epochs trained, wall s, CPU s) at the first report of Dice >= target, or None.
    Dice comes from state.json (full precision); a report counts as equal at the tables' 4 decimals."""
    dice = {t["id"]: t["dice"] for t in rec["state"]["trials"]}
    epochs = 0
    for wall, cpu, line in rec["lines"]:
        m = EPOCH.search(line)
        if not m:
            continue
        epochs += 1
        trial, epoch = int(m.group(1)), int(m.group(2))
        if round(dice[trial][epoch - 1], 4) >= round(target, 4):
            return trial + 1, epochs, wall, cpu
    return None


def best(rec):
    return max(max(t["dice"] or [0]) for t in rec["state"]["trials"])


def spread(values, fmt):
    """min / median / max of the values that exist; '-' for a seed that never got there."""
    have = [v for v in values if v is not None]
    if not have:
        return "never"
    s = f"{fmt(min(have))} / {fmt(statistics.median(have))} / {fmt(max(have))}"
    return s + (f" ({len(values) - len(have)} of {len(values)} never)" if len(have) < len(values) else "")


def table(d):
    recs = {}
    for name in sorted(os.listdir(d)):
        m = re.fullmatch(r"(.+)_(\d+)\.json", name)
        if m:
            recs.setdefault(m.group(1), {})[int(m.group(2))] = json.load(open(os.path.join(d, name)))
    seeds = sorted(recs["random"])
    labels = {"random": "random, fifo", "tpe": "TPE, fifo", "tpe4": "TPE, 4 start-up trials, fifo", "asha": "random + ASHA", "tpe_asha": "TPE + ASHA",
              "pbt": "PBT"}
    f1, f0 = (lambda v: f"{v:.1f}"), (lambda v: f"{v:.0f}")
    print(f"seeds {', '.join(map(str, seeds))}; min / median / max over the seeds. Target: the best validation Dice "
          "of the full random search of the same seed (per seed: "
          + ", ".join(f"{s}: {best(recs['random'][s]):.4f}" for s in seeds) + ")\n")
    print("| search | best Dice (min / med / max) | n-th trial that first reaches the target | epochs trained until then "
          "| wall s until then | CPU s until then | whole search: wall s / CPU s (medians) |")
    print("|---|---|---|---|---|---|---|")
    for key in [k for k in labels if k in recs]:
        r = recs[key]
        have = [s for s in seeds if s in r]  # seeds this search has run for
        reach = [first_reach(r[s], best(recs["random"][s])) for s in have]
        col = lambda i, fmt: spread([x[i] if x else None for x in reach], fmt)
        print(f"| {labels[key]} | {spread([best(r[s]) for s in seeds if s in r], lambda v: f'{v:.4f}')} | "
              f"{col(0, f0) if key != 'pbt' else 'all 16 from the start'} | {col(1, f0)} | {col(2, f1)} | "
              f"{col(3, f1)} | {statistics.median(r[s]['wall_s'] for s in r):.1f} / "
              f"{statistics.median(r[s]['cpu_s'] for s in r):.1f} |"
              + (f" (seeds {', '.join(map(str, have))} only)" if len(have) < len(seeds) else ""))
    if "pbt" in recs and "asha" in recs:
        print("\nPBT against ASHA's best Dice (per seed): CPU s until PBT first reports ASHA's best Dice, against "
              "ASHA's CPU s until it first reported it, and ASHA's whole search\n")
        print("| seed | ASHA's best Dice | ASHA: CPU s until it / whole | PBT: CPU s until it | PBT / ASHA (until it) "
              "| PBT / ASHA (whole) | PBT's exploits: s of wall s |")
        print("|---|---|---|---|---|---|---|")
        for s in seeds:
            if s not in recs["pbt"] or s not in recs["asha"]:
                continue
            a, p = recs["asha"][s], recs["pbt"][s]
            target = best(a)
            ra, rp = first_reach(a, target), first_reach(p, target)
            pb = p["state"].get("pbt", {})
            ex_s = pb.get("exploit_s", 0)
            ex = f"{ex_s:.4f} of {p['wall_s']:.1f} ({100 * ex_s / p['wall_s']:.3f}%)"
            pc, r1, r2 = "never", "-", "-"
            if rp:
                pc, r1, r2 = f"{rp[3]:.1f}", f"{rp[3] / ra[3]:.2f}", f"{rp[3] / a['cpu_s']:.2f}"
            print(f"| {s} | {target:.4f} | {ra[3]:.1f} / {a['cpu_s']:.1f} | {pc} | {r1} | {r2} | {ex} |")


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "run" and sys.argv[4] == "--":
        run(sys.argv[2], sys.argv[3], sys.argv[5:])
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)
