#!/usr/bin/env bash
# ansible/distributed_train.yml: syntax check, ansible-lint's production profile, the deps role's
# packages against scripts/install_deps.sh, the sync role for real into a temporary directory,
# a real run on localhost through the committed local inventory (connection local) with tiny
# settings, and the launcher's --hosts path (generated inventory and hostfile) end to end, with a
# restart after a killed worker.
set -u
BUILD=${BUILD:-build}
tmp=$(mktemp -d)
runs=()
trap 'rm -rf "$tmp" "${runs[@]}"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_STDOUT_CALLBACK=default
export OMP_NUM_THREADS=1
PLAY=(ansible-playbook -i ansible/inventory/local.ini ansible/distributed_train.yml)
tiny='"--epochs", "1", "--steps", "4", "--print_every", "2", "--checkpoint_every", "2"'

"${PLAY[@]}" --syntax-check > "$tmp/syntax.out" 2>&1 || { cat "$tmp/syntax.out"; fail "syntax check"; }
ansible-lint --nocolor --profile production ansible/distributed_train.yml > "$tmp/lint.out" 2>&1 ||
  { tail -20 "$tmp/lint.out"; fail "ansible-lint production profile"; }

# The deps role installs a subset of scripts/install_deps.sh's packages (plus nothing unknown).
for p in $(sed -n 's/^  - //p' ansible/roles/deps/defaults/main.yml); do
  sed -n '/^[A-Z_]*PACKAGES=(/,/^)/p' scripts/install_deps.sh | sed 's/#.*//' | tr ' ' '\n' | grep -qx "$p" ||
    fail "deps role package $p is not in scripts/install_deps.sh"
done

# sync: the project tree, without build outputs, runs or datasets.
"${PLAY[@]}" --tags sync -e "unet_project_dir=$tmp/copy" > "$tmp/sync.out" 2>&1 || { tail -20 "$tmp/sync.out"; fail "sync role"; }
[ -f "$tmp/copy/Makefile" ] && [ -f "$tmp/copy/src/apps/unet_train.cpp" ] && [ -f "$tmp/copy/data/README.md" ] ||
  fail "sync role did not copy the project"
[ ! -e "$tmp/copy/build" ] && [ ! -e "$tmp/copy/runs" ] && [ ! -e "$tmp/copy/data/synthetic2d.h5" ] ||
  fail "sync role copied build outputs, runs or data"

# A real run through the committed local inventory.
run=runs/e2e-ansible-$$; runs+=("$run")
"${PLAY[@]}" -e "{\"unet_logdir\": \"$run\", \"unet_train_args\": [$tiny]}" > "$tmp/play.out" 2>&1 ||
  { tail -30 "$tmp/play.out"; fail "playbook run"; }
grep -q 'failed=0' "$tmp/play.out" || fail "playbook reported failures"
[ -s "$run/training.log" ] && [ -f "$run/checkpoint_latest.h5" ] && [ -s "$run/launch.log" ] ||
  { ls -la "$run"; fail "run directory without training.log, checkpoint or launch.log"; }
grep -q "3 ranks (rank 0 parameter server)" "$run/training.log" || fail "not 3 ranks under the parameter server"
for d in train validation; do
  ls "$run/$d"/events.out.tfevents.* >/dev/null 2>&1 || fail "no TensorBoard event file in $run/$d"
done
grep -q "done: 4 steps" "$run/training.log" || fail "training did not finish"
grep -q "done: 4 steps" "$tmp/play.out" || fail "the playbook did not show the result"
# The hostfile the launch role wrote from the inventory is the one the launcher generates.
scripts/cluster_config.py generate settings/cluster.local.ini "$tmp/gen" || fail "cluster_config generate"
diff <(grep -v '^#' "$run/hostfile") "$tmp/gen/hostfile" || fail "the launch role's hostfile differs from cluster_config's"

# The launcher with --hosts: generated inventory, reachability check, playbook, result; and
# --max_restarts through Ansible: a worker killed mid-run, the launch role run again, resuming.
run=runs/e2e-hosts-$$; runs+=("$run")
./run_distributed_training.sh --hosts settings/cluster.local.ini --logdir "$run" --max_restarts 1 --steps 30 \
  --print_every 1 --checkpoint_every 4 > "$tmp/hosts.out" 2>&1 &
launcher=$!
for _ in $(seq 900); do grep -q "checkpoint .* at step [4-9]" "$run/training.log" 2>/dev/null && break; sleep 0.2; done
ranks=$(pgrep -f "build/bin/unet_train --config settings/quick.ini --data data/synthetic2d.h5 --logdir $run" | tail -1)
[ -n "$ranks" ] || { tail -20 "$tmp/hosts.out"; fail "--hosts run: no ranks running"; }
kill -KILL "$ranks"
wait $launcher || { tail -30 "$tmp/hosts.out"; fail "run_distributed_training.sh --hosts --max_restarts 1"; }
grep -q "restart 1 of 1 with --resume auto" "$tmp/hosts.out" || { tail -20 "$tmp/hosts.out"; fail "--hosts run was not restarted"; }
grep -q "resumed from $run/checkpoint_latest.h5" "$run/training.log" || fail "--hosts restart did not resume"
[ -f "$run/checkpoint_latest.h5" ] && grep -q "done: 30 steps" "$run/training.log" || fail "--hosts run did not finish"
tail -1 "$tmp/hosts.out" | grep -q "^validation Dice [0-9.]* (best" || { tail -3 "$tmp/hosts.out"; fail "--hosts run does not end with the validation Dice"; }

# Bad input stops before anything starts, in one line: an unreachable host (nothing listens on
# 127.0.0.3:22 here), more ranks than slots, a malformed file.
printf '[param_server]\nhost = localhost\n[workers]\nhosts = localhost 127.0.0.3\n' > "$tmp/unreachable.ini"
out=$(./run_distributed_training.sh --hosts "$tmp/unreachable.ini" 2>&1 >/dev/null) && fail "unreachable host accepted"
[ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "host 127.0.0.3 unreachable, nothing started" ||
  fail "unreachable host message: $out"
out=$(./run_distributed_training.sh --hosts settings/cluster.local.ini --np 4 2>&1 >/dev/null) && fail "--np 4 accepted"
echo "$out" | grep -q "^run_distributed_training.sh: --np 4: more ranks than slots" || fail "more ranks than slots: $out"
printf '[param_server\nhost = a\n' > "$tmp/bad.ini"
out=$(./run_distributed_training.sh --hosts "$tmp/bad.ini" 2>&1 >/dev/null); rc=$?
[ "$rc" -eq 2 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "malformed" || fail "malformed cluster file: $out"
# A host without a needed package, with installing off: one message naming host and package.
"${PLAY[@]}" --tags deps -e '{"unet_install_packages": false, "unet_packages": ["rsync", "no-such-package-unet"]}' \
  > "$tmp/deps.out" 2>&1 && fail "a missing package was accepted"
grep -q "localhost lacks Debian packages: no-such-package-unet" "$tmp/deps.out" || { tail -5 "$tmp/deps.out"; fail "missing package message"; }
echo "syntax, lint, sync, local run, --hosts run, bad input, missing package: ok"
