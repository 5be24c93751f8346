#!/usr/bin/env python3
"""Latency-bandwidth (alpha-beta) model of the gradient exchange, fitted to bench/link_bench.sh's
runs, and the step time and weak-scaling efficiency it projects for 8..512 nodes (issue 14).

    /usr/bin/python3 bench/comm_model.py [--cores C] build/link_bench.jsonl [SECOND.jsonl]

With a second file (another run of bench/link_bench.sh), the first file's fit also predicts the
second's rows: a check on runs the fit has not seen. With --cores C (the cores of the machine that
ran the hosts), rows with more computing ranks (workers) than C are shown but neither fitted nor
counted in the largest error: such ranks take turns on the cores, and a rank that is done waits in
the exchange for the others' compute, which is not the network's time (on 2 cores the 3- and
4-worker all-reduce waited about one compute phase more than its 2-worker rows).

Per mode and overlap setting the communication wait of a step is modelled as

    T_comm = alpha + beta * V / R

with R the link rate (bytes/s, as tc shaped it) and V the bytes the busiest link carries each way
per step (links are full duplex, every node has one):
    --sync ps, k servers, W workers:  V = max(W * S / k', S)  (a server takes W shards of S/k' and
                                       sends them back; a worker sends and gets S), k' = min(k,
                                       buckets): buckets go to the servers round robin, so with one
                                       bucket (no overlap) server 0 owns everything and k' = 1
    --sync allreduce (ring), N ranks: V = 2 (N - 1) / N * S  (reduce-scatter, then all-gather)
S is the gradient (= parameter) buffer in bytes. alpha and beta are fitted by least squares on the
relative error (each measured row weighs the same). Overlap (1 MiB buckets sent while backward
runs) gets its own alpha and beta; a second check predicts it from the no-overlap fit as
max(one bucket's time, T_comm - 2/3 of the measured compute), backward being about 2/3 of a step.

The projection (the numbers and their sources are the constants below): N nodes of two Xeon Gold
6148 (Skylake-SP), one rank per node; ring all-reduce uses every node as a worker, a parameter
server setup spends k nodes on servers and N - k on workers. Weak scaling: a fixed batch per
worker node. Efficiency = (workers / N) * T_compute / T_step: samples per second per node against
one node computing alone with no communication, so server nodes count as cost.
"""
import json
import math
import sys

# ---- the node: 2 sockets x 20 cores (Xeon Gold 6148, Skylake-SP, 2.4 GHz nominal), 2 AVX-512 FMA
# units per core: 64 f32 FLOP per cycle per core. Under heavy AVX-512 load on all cores these parts
# run well below the nominal clock; 1.6 GHz is assumed (not measured here, not checked against
# Intel's per-licence frequency tables in this session).
NODE_PEAK_FLOPS = 2 * 20 * 64 * 1.6e9  # 4.1 TFLOP/s f32
# our measured fraction of peak on 2 threads (BENCHMARKS.md, Results: 2d 84% with Winograd, 3d 63%),
# times an assumed 0.7 for 40 threads over two sockets (memory bandwidth, NUMA; not measured)
FRACTION = {"2d": 0.84 * 0.7, "3d": 0.63 * 0.7}
GFLOP_PER_SAMPLE = {"2d": 18.1, "3d": 338.0}  # DESIGN.md's standard shapes
BATCH_PER_NODE = {"2d": 16, "3d": 2}           # weak scaling: samples per worker node per step
PARAMS = {"2d": 7760385, "3d": 5602305}        # unet_train's model line for the two shapes
BACKWARD_SHARE = 2.0 / 3.0                      # backward is about 2/3 of a training step
BUCKET_BYTES = 1 << 20                          # --bucket_mb 1
# A real cluster's per-message latency: MPI over RDMA on 25/100 Gb/s fabrics is a few microseconds
# and TCP about 20-30 us; 10 us per hop is taken, instead of what a loaded 2-core VM's veths give.
CLUSTER_ALPHA_HOP = 10e-6
# Achieved fraction of the line rate of a large transfer on a real cluster (assumed).
CLUSTER_LINK_EFFICIENCY = 0.8

RATE_BPS = {"1gbit": 1e9, "10gbit": 10e9, "25gbit": 25e9, "100gbit": 100e9}


def link_bytes(mode, workers, servers, size):
    if mode == "allreduce":
        return 2.0 * (workers - 1) / workers * size
    return max(workers * size / servers, size)


def links(path):
    """The link probes of a run: (link, achieved bit/s, round trip us)."""
    out = []
    for line in open(path):
        if line.startswith("{") and '"achieved_bps"' in line:
            d = json.loads(line)
            out.append((d["link"], d["achieved_bps"], d["rtt_us"]))
    return out


def load(path):
    rows = []
    for line in open(path):
        if not line.startswith("{") or '"result"' not in line:
            continue
        d = json.loads(line)
        r = d["result"]
        servers = 2 if d["mode"] == "ps2" else 1
        size = 4.0 * PARAMS[d["model"]]
        step = r["step_ms"] / 1e3
        comm = step * r["comm_fraction"]
        # link_bench.sh: 1 MiB buckets with overlap, one bucket of up to 1000 MiB without
        buckets = math.ceil(size / (BUCKET_BYTES if d["overlap"] else 1000 * BUCKET_BYTES))
        rows.append(dict(model=d["model"], rate=d["rate"], mode=d["mode"], workers=d["workers"], servers=servers,
                         overlap=d["overlap"], step=step, comm=comm, compute=step - comm,
                         x=link_bytes("allreduce" if d["mode"] == "allreduce" else "ps", d["workers"],
                                      min(servers, buckets), size) / (RATE_BPS[d["rate"]] / 8)))
    return rows


def fit(rows):
    """alpha, beta minimising sum ((alpha + beta x - y) / y)^2: weighted least squares, 2x2."""
    a11 = a12 = a22 = b1 = b2 = 0.0
    for r in rows:
        w = 1.0 / max(r["comm"], 1e-6) ** 2
        a11 += w
        a12 += w * r["x"]
        a22 += w * r["x"] ** 2
        b1 += w * r["comm"]
        b2 += w * r["x"] * r["comm"]
    det = a11 * a22 - a12 * a12
    if abs(det) > 1e-30:
        alpha, beta = (b1 * a22 - b2 * a12) / det, (a11 * b2 - a12 * b1) / det
        if alpha >= 0:
            return alpha, beta
    # a latency below zero means nothing: the best line through the origin instead
    return 0.0, b2 / a22 if a22 else 0.0


def mode_name(mode, workers):
    return {"ps": "--sync ps", "ps2": "--num_ps 2", "allreduce": "--sync allreduce"}[mode] + f", {workers} workers"


def oversubscribed(r):
    return CORES is not None and r["workers"] > CORES


def check(rows, out):
    fits = {}
    out.append("| model | link | mode | overlap | step ms | comm wait ms | model ms | error | step predicted ms | step error |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for mode in ("ps", "ps2", "allreduce"):
        for overlap in (False, True):
            sel = [r for r in rows if r["mode"] == mode and r["overlap"] == overlap]
            fitted = [r for r in sel if not oversubscribed(r)]
            if len(fitted) < 2:
                continue
            alpha, beta = fit(fitted)
            fits[(mode, overlap)] = (alpha, beta)
            for r in sel:
                pred = alpha + beta * r["x"]
                err = (pred - r["comm"]) / r["comm"]
                step_err = (r["compute"] + pred - r["step"]) / r["step"]
                if not oversubscribed(r):
                    worst = max(worst, abs(err))
                note = f" (workers > {CORES} cores: not fitted)" if oversubscribed(r) else ""
                out.append(f"| {r['model']} | {r['rate']} | {mode_name(mode, r['workers'])}{note} | {'yes' if overlap else 'no'} | "
                           f"{1e3 * r['step']:.0f} | {1e3 * r['comm']:.0f} | {1e3 * pred:.0f} | {100 * err:+.0f}% | "
                           f"{1e3 * (r['compute'] + pred):.0f} | {100 * step_err:+.0f}% |")
    out.append("")
    out.append("| mode | overlap | alpha ms | beta (x nominal link time) |")
    out.append("|---|---|---|---|")
    for (mode, overlap), (alpha, beta) in fits.items():
        out.append(f"| {mode} | {'yes' if overlap else 'no'} | {1e3 * alpha:.0f} | {beta:.2f} |")
    out.append("")
    out.append(f"largest error of the comm-wait fit: {100 * worst:.0f}%"
               + (f" (rows with at most {CORES} workers)" if CORES is not None else ""))
    # Overlap predicted from the no-overlap fit and the measured compute.
    worst_ov = 0.0
    lines = []
    for r in rows:
        if not r["overlap"] or (r["mode"], False) not in fits or oversubscribed(r):
            continue
        alpha, beta = fits[(r["mode"], False)]
        full = alpha + beta * r["x"]
        bucket = alpha + beta * r["x"] * BUCKET_BYTES / (4.0 * PARAMS[r["model"]])
        pred = max(bucket, full - BACKWARD_SHARE * r["compute"])
        err = (pred - r["comm"]) / r["comm"]
        worst_ov = max(worst_ov, abs(err))
        lines.append(f"{r['model']} {r['rate']} {mode_name(r['mode'], r['workers'])}: measured {1e3 * r['comm']:.0f} ms, "
                     f"from the no-overlap fit {1e3 * pred:.0f} ms ({100 * err:+.0f}%)")
    if lines:
        out.append("")
        out.append("overlap predicted from the no-overlap fit, max(one bucket, T_comm - 2/3 compute):")
        out.extend("- " + l for l in lines)
        out.append(f"largest error: {100 * worst_ov:.0f}%")
    return fits, worst


def predict_other(fits, rows, out):
    """The fitted model against rows it was not fitted on (another run)."""
    out.append("")
    out.append("the fit above against a second run (rows it has not seen): comm wait measured -> predicted")
    worst = 0.0
    worst_no = 0.0
    for r in rows:
        key = (r["mode"], r["overlap"])
        if key not in fits or oversubscribed(r):
            continue
        alpha, beta = fits[key]
        pred = alpha + beta * r["x"]
        err = (pred - r["comm"]) / r["comm"]
        worst = max(worst, abs(err))
        if not r["overlap"]:
            worst_no = max(worst_no, abs(err))
        out.append(f"- {r['model']} {r['rate']} {mode_name(r['mode'], r['workers'])}{', overlap' if r['overlap'] else ''}: "
                   f"{1e3 * r['comm']:.0f} -> {1e3 * pred:.0f} ms ({100 * err:+.0f}%)")
    out.append(f"largest error: {100 * worst:.0f}% (without overlap: {100 * worst_no:.0f}%)")


def cluster_comm(mode, workers, servers, size, rate_bps):
    """Communication time of one step on a cluster (all buckets, none hidden) and of its last bucket."""
    link = CLUSTER_LINK_EFFICIENCY * rate_bps / 8
    buckets = math.ceil(size / BUCKET_BYTES)
    if mode == "allreduce":
        # each bucket's ring: 2 (N - 1) steps, each a message of bucket / N bytes
        t = buckets * 2 * (workers - 1) * CLUSTER_ALPHA_HOP + link_bytes("allreduce", workers, 1, size) / link
    else:
        # a server handles W messages in and W out per bucket of its shard
        t = 2 * workers * buckets / servers * CLUSTER_ALPHA_HOP + link_bytes("ps", workers, servers, size) / link
    return t, t / buckets


def compute_time(model):
    return BATCH_PER_NODE[model] * GFLOP_PER_SAMPLE[model] * 1e9 / (NODE_PEAK_FLOPS * FRACTION[model])


def step_time(model, mode, nodes, servers, rate_bps, overlap=True):
    workers = nodes if mode == "allreduce" else nodes - servers
    compute = compute_time(model)
    comm, last = cluster_comm(mode, workers, servers, 4.0 * PARAMS[model], rate_bps)
    # overlap: what backward cannot hide, at least the last bucket's time
    exposed = max(last, comm - BACKWARD_SHARE * compute) if overlap else comm
    step = compute + exposed
    return step, workers / nodes * compute / step


def rule_servers(model, nodes, rate_bps):
    """--num_ps k: the fewest servers whose link carries the W gradients within backward's time."""
    size = 4.0 * PARAMS[model]
    window = BACKWARD_SHARE * compute_time(model)
    link = CLUSTER_LINK_EFFICIENCY * rate_bps / 8
    return max(1, math.ceil(nodes * size / (link * window + size)))


def project(out):
    out.append("")
    out.append(f"node: 2 x Xeon Gold 6148, {NODE_PEAK_FLOPS / 1e12:.1f} TFLOP/s f32 peak; compute per step: "
               + ", ".join(f"{m} {BATCH_PER_NODE[m]} samples at {100 * FRACTION[m]:.0f}% of peak = "
                           f"{1e3 * compute_time(m):.0f} ms" for m in ("2d", "3d"))
               + f"; links at {100 * CLUSTER_LINK_EFFICIENCY:.0f}% of their rate, {1e6 * CLUSTER_ALPHA_HOP:.0f} us a message, "
               f"{BUCKET_BYTES >> 20} MiB buckets")
    out.append("")
    out.append("| model | link | nodes | single PS: step ms, eff. (no overlap) | sharded PS: best k, step ms, eff. (no overlap) "
               "| rule k | ring all-reduce: step ms, eff. (no overlap) | best |")
    out.append("|---|---|---|---|---|---|---|---|")
    for model in ("2d", "3d"):
        for rate in ("25gbit", "100gbit"):
            for nodes in (8, 16, 32, 64, 128, 256, 512):
                s1, e1 = step_time(model, "ps", nodes, 1, RATE_BPS[rate])
                best = None
                for k in range(1, nodes // 2 + 1):
                    s, e = step_time(model, "ps", nodes, k, RATE_BPS[rate])
                    if best is None or e > best[2] + 1e-9:
                        best = (k, s, e)
                sa, ea = step_time(model, "allreduce", nodes, 0, RATE_BPS[rate])
                winner = max((e1, "single PS"), (best[2], f"sharded PS (k={best[0]})"), (ea, "ring all-reduce"))[1]
                # without overlap (one bucket after backward): the same setups' efficiencies
                n1 = step_time(model, "ps", nodes, 1, RATE_BPS[rate], False)[1]
                nk = step_time(model, "ps", nodes, best[0], RATE_BPS[rate], False)[1]
                na = step_time(model, "allreduce", nodes, 0, RATE_BPS[rate], False)[1]
                out.append(f"| {model} | {rate.replace('gbit', ' Gb/s')} | {nodes} | {1e3 * s1:.0f}, {100 * e1:.0f}% ({100 * n1:.0f}%) | "
                           f"{best[0]}, {1e3 * best[1]:.0f}, {100 * best[2]:.0f}% ({100 * nk:.0f}%) | "
                           f"{rule_servers(model, nodes, RATE_BPS[rate])} | {1e3 * sa:.0f}, {100 * ea:.0f}% ({100 * na:.0f}%) | {winner} |")


def project_buckets(out):
    """Ring all-reduce at scale by --bucket_mb: each bucket's ring is 2 (N - 1) messages."""
    global BUCKET_BYTES
    keep = BUCKET_BYTES
    out.append("")
    out.append("ring all-reduce efficiency (with overlap) by --bucket_mb:")
    out.append("")
    out.append("| model | link | nodes | 1 MiB | 4 MiB | 16 MiB |")
    out.append("|---|---|---|---|---|---|")
    for model in ("2d", "3d"):
        for rate in ("25gbit", "100gbit"):
            for nodes in (128, 256, 512):
                cells = []
                for mb in (1, 4, 16):
                    BUCKET_BYTES = mb << 20
                    cells.append(f"{100 * step_time(model, 'allreduce', nodes, 0, RATE_BPS[rate])[1]:.0f}%")
                out.append(f"| {model} | {rate.replace('gbit', ' Gb/s')} | {nodes} | " + " | ".join(cells) + " |")
    BUCKET_BYTES = keep


CORES = None  # --cores: rows with more workers are not fitted


def main():
    global CORES
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "--cores":
        CORES = int(args[1])
        args = args[2:]
    if not args:
        print(__doc__.strip().splitlines()[2].strip())
        return 2
    rows = load(args[0])
    if not rows:
        print(f"{args[0]}: no runs in it")
        return 1
    out = []
    probes = links(args[0])
    if probes:
        out.append("links as shaped (one TCP stream; one-byte round trip): " + "; ".join(
            f"{name} {bps / 1e9:.2f} Gb/s, {rtt:.0f} us" for name, bps, rtt in probes))
        out.append("")
    fits, _ = check(rows, out)
    if len(args) > 1:
        predict_other(fits, load(args[1]), out)
    project(out)
    project_buckets(out)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
