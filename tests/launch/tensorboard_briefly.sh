#!/usr/bin/env bash
# Runs a README TensorBoard command as printed (plus a private port), waits until it serves the
# run list, then stops it: the README test's way of running a command that serves until stopped.
#   tests/launch/tensorboard_briefly.sh build/tbvenv/bin/tensorboard --logdir runs/
set -u
port=$(/usr/bin/python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$@" --host 127.0.0.1 --port "$port" >tensorboard.out 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
for _ in $(seq 1 120); do
  if /usr/bin/python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2).read()" \
       "http://127.0.0.1:$port/data/runs" 2>/dev/null; then
    echo "TensorBoard served http://127.0.0.1:$port/ ($*)"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || { tail -5 tensorboard.out; echo "TensorBoard exited: $*"; exit 1; }
  sleep 0.5
done
tail -5 tensorboard.out
echo "TensorBoard did not answer within 60 s: $*"
exit 1
