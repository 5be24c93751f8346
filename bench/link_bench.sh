#!/usr/bin/env bash
# The distributed step across shaped links (issue 14): 4 "hosts" on this machine, each a network
# namespace (and a UTS namespace per process, so Open MPI sees 4 nodes) joined by a veth pair to a
# bridge in a namespace of its own (nothing touches this machine's own network), every link shaped
# with tc in both directions; one rank per host, Open MPI's TCP transport only. For the `2d` and
# `3d` benchmark models' real gradient sizes (7.76 M and 5.60 M parameters; DESIGN.md), at each
# rate: --sync ps (1 server, 2 workers), --num_ps 2 (2 servers, 2 workers), --sync allreduce (2 and
# 3 workers), each with 1 MiB buckets (overlap) and one bucket (no overlap). The inputs are small
# (2D 64x64, 3D 16^3; one sample per worker) so that communication is a large part of the step: the
# links are what tc shapes, the 2 cores of this machine cannot stand for a node's compute
# (BENCHMARKS.md, issue 14). Smaller inputs leave 2x2 layers, where oneDNN 2.6 falls back to its
# reference backward-weights kernel (about 1 s a layer).
# Writes one JSON line per run to $OUT (default build/link_bench.jsonl); bench/comm_model.py fits
# and projects from it. Root only; otherwise SKIPPED (exit 77).
#   bench/link_bench.sh [BUILD] [RATES] [STEPS]     e.g. bench/link_bench.sh build "1gbit 10gbit" 3
#   LINK_ONLY=1 bench/link_bench.sh                  the link probes only (rate and round trip)
#   LINK_MODES="allreduce" bench/link_bench.sh       some modes only (of: ps ps2 allreduce)
set -u
BUILD=${1:-build}
RATES=${2:-"1gbit 10gbit"}
STEPS=${3:-3}
OUT=${OUT:-$BUILD/link_bench.jsonl}
skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, tc)"
for t in ip tc unshare mpirun; do command -v "$t" >/dev/null || skip "no $t"; done
[ -x "$BUILD/bin/unet_train" ] || { echo "$BUILD/bin/unet_train missing (make)"; exit 1; }
BIN=$(cd "$BUILD/bin" && pwd)/unet_train

ID=lb$$; SUB=10.78.0; HOSTS=4
NS=(); for i in $(seq 1 $HOSTS); do NS+=("$ID-$i"); done; BRNS=$ID-br
WORK=$(mktemp -d "${TMPDIR:-/tmp}/link_bench.XXXXXX")
NETNS_DIR_EXISTED=0; [ -d /run/netns ] && NETNS_DIR_EXISTED=1
cleanup() {
  local ns
  for ns in "${NS[@]}" "$BRNS"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  if [ "$NETNS_DIR_EXISTED" -eq 0 ] && [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
    mountpoint -q /run/netns && umount /run/netns; rmdir /run/netns
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$BRNS" 2>/dev/null || skip "ip netns add is not permitted here"
ip -n "$BRNS" link add br0 type bridge && ip -n "$BRNS" link set br0 up && ip -n "$BRNS" link set lo up ||
  skip "cannot create a bridge"
for i in $(seq 1 $HOSTS); do
  ns=${NS[$((i - 1))]}
  ip netns add "$ns" || { echo "ip netns add $ns failed"; exit 1; }
  ip -n "$BRNS" link add "p$i" type veth peer name eth0 netns "$ns" || { echo "veth for $ns failed"; exit 1; }
  ip -n "$BRNS" link set "p$i" master br0 up
  ip -n "$ns" addr add "$SUB.$i/24" dev eth0 && ip -n "$ns" link set eth0 up && ip -n "$ns" link set lo up
done
tc -n "${NS[0]}" qdisc add dev eth0 root tbf rate 1gbit burst 64kb latency 50ms 2>/dev/null ||
  skip "tc tbf is not available"
tc -n "${NS[0]}" qdisc del dev eth0 root

# A link of RATE each way: a token bucket on both ends of every veth (host egress, bridge egress).
# This kernel has no netem (CONFIG_NET_SCH_NETEM unset here), so no delay is added: the latency is
# the veth + TCP stack's own, measured below and fitted as alpha.
shape() {  # RATE or "none"
  local i burst
  for i in $(seq 1 $HOSTS); do
    tc -n "${NS[$((i - 1))]}" qdisc del dev eth0 root 2>/dev/null
    tc -n "$BRNS" qdisc del dev "p$i" root 2>/dev/null
    [ "$1" = none ] && continue
    # burst: a few ms of traffic at 4 ms ticks (CONFIG_HZ=250) would let bursts through unshaped;
    # 256 KB at 10 Gb/s (0.2 ms), 64 KB at 1 Gb/s (0.5 ms)
    case $1 in 10gbit) burst=256kb ;; *) burst=64kb ;; esac
    tc -n "${NS[$((i - 1))]}" qdisc add dev eth0 root tbf rate "$1" burst $burst latency 50ms
    tc -n "$BRNS" qdisc add dev "p$i" root tbf rate "$1" burst $burst latency 50ms
  done
}

# mpirun's remote-shell agent: "agent HOST COMMAND..." runs COMMAND in that host's namespaces.
cat > "$WORK/agent" <<AGENT
#!/bin/bash
host=\$1; shift
n=\${host##*.}
exec ip netns exec $ID-\$n unshare --uts /bin/sh -c "hostname lbhost\$n; exec /bin/sh -c \\"\\\$0\\"" "\$*"
AGENT
chmod +x "$WORK/agent"
for i in $(seq 1 $HOSTS); do echo "$SUB.$i slots=1"; done > "$WORK/hostfile"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI=(mpirun --hostfile "$WORK/hostfile" --map-by node --bind-to none --mca plm_rsh_agent "$WORK/agent"
     --mca plm_rsh_no_tree_spawn 1 --mca btl tcp,self --mca btl_tcp_if_include "$SUB.0/24"
     --mca oob_tcp_if_include "$SUB.0/24" -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY=passive)
# mpirun itself on host 1, with a host name of its own
H1=(nice ip netns exec "${NS[0]}" unshare --uts /bin/sh -c 'hostname lbhost1; exec "$@"' sh)

declare -A SHAPE_OF=(
  [2d]="--dims 2 --input_size 64,64 --in_channels 4 --filters 32 --depth 4"
  [3d]="--dims 3 --input_size 16,16,16 --in_channels 4 --filters 32 --depth 3")
run() {  # model rate mode np buckets(overlap|none) extra...
  local model=$1 rate=$2 mode=$3 np=$4 ov=$5; shift 5
  local bucket=1; [ "$ov" = none ] && bucket=1000
  local workers=$(( np )); [ "$mode" = ps ] && workers=$(( np - 1 )); [ "$mode" = ps2 ] && workers=$(( np - 2 ))
  local line
  # shellcheck disable=SC2086
  line=$(timeout 300 "${H1[@]}" "${MPI[@]}" -np "$np" "$BIN" --benchmark ${SHAPE_OF[$model]} --batch_size "$workers" \
         --loss dice --steps "$STEPS" --bench_warmup 1 --bucket_mb "$bucket" "$@" 2>"$WORK/err" | tail -1)
  if [[ "$line" != "{"* ]]; then echo "run failed: $model $rate $mode np $np $ov: $(tail -3 "$WORK/err")"; return 1; fi
  echo "{\"model\":\"$model\",\"rate\":\"$rate\",\"mode\":\"$mode\",\"workers\":$workers,\"overlap\":$([ "$ov" = none ] && echo false || echo true),\"result\":$line}" | tee -a "$OUT"
}

# What a link delivers as shaped: one TCP stream of 64 MiB from host 2 to host 1 (about 0.5 s at
# 1 Gb/s), timed by the receiver, and the mean of 200 one-byte round trips before it.
cat > "$WORK/probe.py" <<'PY'
import socket, sys, time
role, addr = sys.argv[1], sys.argv[2]
n = 64 << 20
if role == "recv":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((addr, 5999)); s.listen(1)
    c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(200):                      # round trips
        c.sendall(c.recv(1))
    got, t0 = 0, None
    while got < n:
        b = c.recv(1 << 20)
        if t0 is None: t0 = time.perf_counter()
        got += len(b)
    print(f"{8 * got / (time.perf_counter() - t0):.4g}")
else:
    for _ in range(100):
        try: c = socket.create_connection((addr, 5999)); break
        except OSError: time.sleep(0.05)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.perf_counter()
    for _ in range(200):
        c.sendall(b"x"); c.recv(1)
    print(f"{(time.perf_counter() - t0) / 200 * 1e6:.0f}")
    c.sendall(b"\0" * n)
PY
probe() {  # RATE: a JSON line with the achieved rate and the round trip
  local bps rtt
  ip netns exec "${NS[0]}" /usr/bin/python3 "$WORK/probe.py" recv "$SUB.1" > "$WORK/bps" &
  rtt=$(ip netns exec "${NS[1]}" /usr/bin/python3 "$WORK/probe.py" send "$SUB.1")
  wait $!; bps=$(cat "$WORK/bps")
  echo "{\"link\":\"$1\",\"achieved_bps\":$bps,\"rtt_us\":$rtt}" | tee -a "$OUT"
}
want() { [[ " ${LINK_MODES:-ps ps2 allreduce} " == *" $1 "* ]]; }
: > "$OUT"
shape none; probe none
for rate in $RATES; do
  shape "$rate"
  probe "$rate"
  [ -z "${LINK_ONLY:-}" ] || continue
  for model in 2d 3d; do
    for ov in overlap none; do
      want ps && run "$model" "$rate" ps 3 "$ov"
      want ps2 && run "$model" "$rate" ps2 4 "$ov" --num_ps 2
      if want allreduce; then
        for np in 2 3 4; do run "$model" "$rate" allreduce $np "$ov" --sync allreduce; done
      fi
    done
  done
done
echo "(written to $OUT; fit and projection: /usr/bin/python3 bench/comm_model.py $OUT)"
