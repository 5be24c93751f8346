#!/usr/bin/env bash
# The one-command launcher.
#
# With no arguments, on this machine: installs missing Debian packages, builds, creates the
# synthetic MSD dataset under data/ if it is absent, and trains settings/quick.ini under mpirun as
# a parameter server and two workers, writing runs/<date-time>/. With --hosts it does the same on
# the hosts of a cluster file through Ansible (ansible/distributed_train.yml) and one mpirun
# started from the parameter server's host.
#
#   ./run_distributed_training.sh [--settings FILE] [--data FILE.h5] [--np N] [--hosts CLUSTER.INI]
#       [--tune FILE] [--max_restarts K] [--logdir DIR] [--dry-run] [unet_train flags...]
#
# Every option is checked before anything starts; a mistake ends with one line and exit code 2.
set -euo pipefail
cd "$(dirname "$0")"
PROGRAM=run_distributed_training.sh

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
  cat <<'EOF'

Options:
  --settings FILE     unet_train settings (default settings/quick.ini; none with --tune)
  --data FILE.h5      prepared dataset (default: the synthetic dataset, created under data/ if absent;
                      with --tune, none: the search file's [fixed] section says what its trials train)
  --np N              MPI ranks: 1 parameter server + N-1 workers (default 3 here, every slot with --hosts)
  --hosts FILE        run on the hosts of a cluster file (settings/cluster.example.ini) through Ansible
  --tune FILE         hyperparameter search: rank 0 coordinates, the other ranks train the trials
                      (passes --tune=FILE to unet_train)
  --max_restarts K    when the job dies, start it again with --resume auto, up to K times (default 0)
  --logdir DIR        run directory (default runs/<date-time>)
  --dry-run           print what would run and stop
  anything else       passed to unet_train (see build/bin/unet_train --help)
EOF
}

die() { echo "$PROGRAM: $*" >&2; exit 2; }
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1: expected a value"; }
is_count() { [[ "$1" =~ ^[0-9]+$ ]]; }
show() { printf '%q ' "$@" | sed 's/ $//'; echo; }

SETTINGS=""  # default settings/quick.ini (not with --tune: the search file's [fixed] section says it all)
DATA=""
NP=""
HOSTS=""
TUNE=""
MAX_RESTARTS=0
LOGDIR=""
DRY_RUN=0
PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --settings|--data|--np|--hosts|--tune|--max_restarts|--logdir)
      need_value "$@"
      case "$1" in
        --settings) SETTINGS=$2 ;; --data) DATA=$2 ;; --np) NP=$2 ;; --hosts) HOSTS=$2 ;;
        --tune) TUNE=$2 ;; --max_restarts) MAX_RESTARTS=$2 ;; --logdir) LOGDIR=$2 ;;
      esac
      shift 2 ;;
    --settings=*|--data=*|--np=*|--hosts=*|--tune=*|--max_restarts=*|--logdir=*)
      flag=${1%%=*}; value=${1#*=}; shift; set -- "$flag" "$value" "$@" ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --config|--config=*) die "--config: use --settings FILE" ;;
    *) PASS+=("$1"); shift ;;
  esac
done

# A search's file says what its trials train (its [fixed] section), as under mpirun in the README;
# a plain run trains settings/quick.ini unless told otherwise.
if [ -z "$TUNE" ] || [ -n "$HOSTS" ]; then SETTINGS=${SETTINGS:-settings/quick.ini}; fi
[ -z "$SETTINGS" ] || { [ -f "$SETTINGS" ] && [ -r "$SETTINGS" ]; } || die "--settings: cannot read '$SETTINGS'"
[ -z "$DATA" ] || [ -f "$DATA" ] || die "--data: no such file '$DATA' (prepare one with build/bin/unet_prepare)"
[ -z "$TUNE" ] || [ -f "$TUNE" ] || die "--tune: no such file '$TUNE'"
[ -z "$NP" ] || { is_count "$NP" && [ "$NP" -ge 1 ]; } || die "--np: expected a positive integer, got '$NP'"
is_count "$MAX_RESTARTS" || die "--max_restarts: expected 0 or a positive integer, got '$MAX_RESTARTS'"
[ -z "$HOSTS" ] || [ -f "$HOSTS" ] || die "--hosts: no such file '$HOSTS' (see settings/cluster.example.ini)"

# A new run directory each time, never one of an earlier run (whose checkpoints would be resumed).
if [ -z "$LOGDIR" ]; then
  LOGDIR=runs/$(date +%Y%m%d-%H%M%S)
  n=2; base=$LOGDIR
  while [ -e "$LOGDIR" ]; do LOGDIR=$base-$n; n=$((n + 1)); done
fi

# unet_train's flags: the settings file (flags on the command line win over it), ours, the user's.
# A restart resumes from the latest checkpoint of the run, in place of any --resume given.
train_flags() {  # DATA RESTART(0|1)
  local skip=0 a
  TRAIN_ARGS=()
  [ -z "$SETTINGS" ] || TRAIN_ARGS+=(--config "$SETTINGS")
  [ -z "$1" ] || TRAIN_ARGS+=(--data "$1")
  TRAIN_ARGS+=(--logdir "$LOGDIR")
  [ -z "$TUNE" ] || TRAIN_ARGS+=(--tune="$TUNE")  # with "=": mpirun has a --tune option of its own
  for a in "${PASS[@]+"${PASS[@]}"}"; do
    if [ "$skip" -eq 1 ]; then skip=0; continue; fi
    if [ "$2" -eq 1 ]; then
      case "$a" in --resume) skip=1; continue ;; --resume=*) continue ;; esac
    fi
    TRAIN_ARGS+=("$a")
  done
  [ "$2" -eq 0 ] || TRAIN_ARGS+=(--resume auto)
}

# The synthetic dataset is written under a temporary name and renamed when complete, so an
# interrupted first run is simply redone by the next one.
SYNTHETIC=data/synthetic2d.h5
TRAIN_DATA=$DATA  # what the local run trains on: --data, else the synthetic dataset (a search: its own)
if [ -z "$DATA" ] && { [ -z "$TUNE" ] || [ -n "$HOSTS" ]; }; then TRAIN_DATA=$SYNTHETIC; fi
prepare_synthetic() {
  [ -f "$SYNTHETIC" ] && return 0
  echo "creating the synthetic MSD dataset in data/synthetic (no download needed)"
  if [ ! -f data/synthetic/dataset.json ]; then
    rm -rf data/synthetic.partial
    # written under a temporary name; the line it prints names the final folder
    build/bin/unet_prepare --synthetic 24 --output_dir data/synthetic.partial --synthetic_size 64,96,96 |
      sed 's|data/synthetic\.partial|data/synthetic|g'
    rm -rf data/synthetic && mv data/synthetic.partial data/synthetic
  fi
  build/bin/unet_prepare --source_dir data/synthetic --output "$SYNTHETIC" --mode 2d --slice_size 64
}

# make, with a line every 15 s while it works (the first build takes a few minutes); its output
# goes to build/make.log, whose tail is shown if it fails.
build_program() {
  make -q all 2>/dev/null && return 0
  mkdir -p build
  echo "building the programs (make -j$CORES all; log in build/make.log)"
  make -j"$CORES" all >build/make.log 2>&1 &
  local pid=$! start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    [ $(((SECONDS - start) % 15)) -eq 0 ] && echo "  still building: $((SECONDS - start)) s"
  done
  wait "$pid" || { tail -20 build/make.log >&2; die "the build failed (build/make.log)"; }
}

# Runs the job (the command that build_command RESTART leaves in CMD) until it succeeds, fails
# with NO_RESTART_RC (a usage error: restarting cannot help), or has been restarted MAX_RESTARTS
# times; restarts continue from the latest checkpoint of the run, as torchrun's --max-restarts.
# SIGINT / SIGTERM are passed on to the job (which checkpoints and stops) and end the loop.
STOPPING=0
NO_RESTART_RC=2
# The stop goes to mpirun's ranks, as scancel sends it: they agree on a step, checkpoint and exit 0,
# and so does mpirun. A signal to mpirun itself would be forwarded too, but Open MPI 4.1 then
# kills the ranks after odls_base_sigkill_timeout (1 s), often before the checkpoint is written, and
# exits 1 whatever they return. Before any rank has started, mpirun itself is told.
stop_job() {
  STOPPING=1
  pkill -TERM -P "$JOB" 2>/dev/null || kill -TERM "$JOB" 2>/dev/null || true
}
run_with_restarts() {
  local attempt=0 rc
  while true; do
    build_command $((attempt > 0 ? 1 : 0))
    # In a session of its own, so a terminal's Ctrl-C (SIGINT to the whole foreground process
    # group) reaches this script only, which passes the stop to the ranks as above.
    setsid "${CMD[@]}" &
    JOB=$!
    trap stop_job INT TERM HUP
    rc=0; wait $JOB || rc=$?
    while kill -0 $JOB 2>/dev/null; do rc=0; wait $JOB || rc=$?; done   # a trapped signal interrupts wait
    trap - INT TERM HUP
    if [ "$STOPPING" -eq 1 ]; then
      echo "$PROGRAM: stopped; continue with the same command and --logdir $LOGDIR --resume auto" >&2; return "$rc"
    fi
    [ "$rc" -eq 0 ] && return 0
    [ "$rc" = "$NO_RESTART_RC" ] && return "$rc"
    if [ "$attempt" -ge "$MAX_RESTARTS" ]; then
      [ "$MAX_RESTARTS" -eq 0 ] || echo "$PROGRAM: the job failed $((attempt + 1)) times; giving up" >&2
      return "$rc"
    fi
    attempt=$((attempt + 1))
    echo "$PROGRAM: the job exited with code $rc; restart $attempt of $MAX_RESTARTS with --resume auto" >&2
  done
}

report() {
  echo
  local dice
  if [ -n "$TUNE" ]; then
    echo "results: $LOGDIR (tune/trials.csv, tune/ranking.md, tune/trial_<k>/ per trial, best/)"
    echo "TensorBoard: scripts/tensorboard_venv.sh && build/tbvenv/bin/tensorboard --logdir $LOGDIR/tune   (HParams tab compares the trials)"
    # The last line: the best trial's validation Dice, from the ranking (rank,trial,best_dice,...).
    dice=$(sed -n '2s/^[^,]*,\([^,]*\),\([^,]*\),.*/best trial \1: validation Dice \2/p' "$LOGDIR/tune/ranking.csv" 2>/dev/null || true)
    echo "${dice:-no ranking: see $LOGDIR/tune/trials.csv}"
    return
  fi
  echo "results: $LOGDIR (training.log, checkpoint_best.h5, checkpoint_latest.h5, TensorBoard event files)"
  echo "TensorBoard: scripts/tensorboard_venv.sh && build/tbvenv/bin/tensorboard --logdir runs/   (then open http://localhost:6006)"
  # The last line: the final validation Dice, from rank 0's log.
  dice=$(sed -n 's/.*done:.*\(validation Dice .*\)/\1/p' "$LOGDIR/training.log" 2>/dev/null | tail -1 || true)
  echo "${dice:-validation Dice: see $LOGDIR/training.log}"
}

# ---------------------------------------------------------------------------------------------
# On a cluster: cluster file -> inventory + hostfile -> reachability check -> Ansible playbook.
if [ -n "$HOSTS" ]; then
  [ -z "$NP" ] || [ "$NP" -ge 2 ] || die "--np: a cluster run needs at least 2 ranks (a parameter server and a worker)"
  case "$SETTINGS" in /*|../*) die "--settings: with --hosts, use a file inside the project (it is synced to every host)" ;; esac
  GEN=build/cluster
  mkdir -p "$GEN"
  if ! err=$(scripts/cluster_config.py generate "$HOSTS" "$GEN" ${NP:+--np "$NP"} 2>&1 >/dev/null); then
    die "${err#cluster_config: }"
  fi
  # shellcheck source=/dev/null
  . "$GEN/cluster.env"
  # The playbook's variables (JSON, so that any flag survives quoting): unet_train_args are the
  # flags after --config, --data and --logdir, which the launch role writes itself. The hosts are
  # prepared once (every role but launch); the job is the launch part alone, so a restart launches
  # again, resuming (the resume role first gives every host the server's latest checkpoint), and a
  # failed preparation is never mistaken for a job to restart.
  build_command() {  # RESTART
    local resume=false
    train_flags "$TRAIN_DATA" "$1"
    [[ " ${TRAIN_ARGS[*]} " =~ \ --resume(=|\ )auto\  ]] && resume=true
    scripts/cluster_config.py vars "$GEN/vars.json" \
      unet_source_dir="$PWD" unet_project_dir="${CLUSTER_PROJECT_DIR:-$PWD}" unet_settings="$SETTINGS" \
      unet_data="$DATA" unet_logdir="$LOGDIR" unet_np="$CLUSTER_NP" unet_omp_threads="$CLUSTER_THREADS" \
      unet_binding="$CLUSTER_BINDING" unet_tensorboard="$CLUSTER_TENSORBOARD" \
      unet_build="$CLUSTER_BUILD" unet_network="$CLUSTER_NETWORK" unet_install_packages="$CLUSTER_INSTALL" \
      unet_resume="$resume" unet_hdf5_file_locking="${HDF5_USE_FILE_LOCKING:-}" -- "${TRAIN_ARGS[@]:6}"
    CMD=(ansible-playbook -i "$GEN/inventory.ini" ansible/distributed_train.yml -e "@$GEN/vars.json" --tags launch)
  }
  NO_RESTART_RC=none   # ansible-playbook exits 2 for any failed task
  build_command 0
  PREPARE=(ansible-playbook -i "$GEN/inventory.ini" ansible/distributed_train.yml -e "@$GEN/vars.json" --skip-tags launch)
  PLAYBOOK=("${CMD[@]}")
  echo "cluster: $CLUSTER_NP ranks (parameter server on $CLUSTER_PS), hosts: $CLUSTER_HOSTS, OMP_NUM_THREADS=$CLUSTER_THREADS"
  if [ "$DRY_RUN" -eq 1 ]; then
    BIND=(--bind-to none)
    [ "$CLUSTER_BINDING" = none ] || BIND=(--map-by "slot:PE=$CLUSTER_THREADS" --bind-to core)
    [ -z "$CLUSTER_NETWORK" ] || BIND+=(--mca btl tcp,vader,self --mca btl_tcp_if_include "$CLUSTER_NETWORK"
                                        --mca oob_tcp_if_include "$CLUSTER_NETWORK")
    # a host silent for 15 s ends the job (ansible/group_vars/all.yml: unet_link_timeout)
    BIND+=(--mca plm_rsh_args "-o ServerAliveInterval=5 -o ServerAliveCountMax=3" --mca oob_tcp_keepalive_time 5
           --mca oob_tcp_keepalive_intvl 5 --mca oob_tcp_keepalive_probes 3)
    [ "$CLUSTER_BUILD" = hosts ] || echo "would run: make -j$(nproc) all   (build = ship: build/bin is copied to every host)"
    echo "would run: scripts/install_deps.sh --hosts"
    echo "would check: ansible cluster -i $GEN/inventory.ini -m ansible.builtin.ping"
    echo "would run: $(show "${PREPARE[@]}")"
    echo "would run: $(show "${PLAYBOOK[@]}")"
    echo "which runs on $CLUSTER_PS, in ${CLUSTER_PROJECT_DIR:-$PWD}: $(show mpirun -np "$CLUSTER_NP" \
      --hostfile "$LOGDIR/hostfile" "${BIND[@]}" -x OMP_NUM_THREADS="$CLUSTER_THREADS" build/bin/unet_train "${TRAIN_ARGS[@]}")"
    echo "hostfile:"; sed 's/^/  /' "$GEN/hostfile"
    exit 0
  fi
  scripts/install_deps.sh --hosts
  command -v ansible-playbook >/dev/null || die "ansible-playbook not found (apt-get install ansible)"
  # Every host must answer before anything starts: one line per host that does not.
  if ! ping_out=$(ANSIBLE_TIMEOUT=10 ansible cluster -i "$GEN/inventory.ini" -m ansible.builtin.ping -o 2>&1); then
    echo "$ping_out" | sed -n -e 's/^\([^ ]*\) | UNREACHABLE!: \(.*\)/host \1 unreachable, nothing started: \2/p' \
      -e 's/^\([^ ]*\) | FAILED! => .*"msg": "\([^"]*\)".*/host \1 failed, nothing started: \2/p' | sed "s/^/$PROGRAM: /" >&2
    echo "$ping_out" | grep -q 'UNREACHABLE!\|FAILED!' || echo "$PROGRAM: ansible: $(echo "$ping_out" | tail -1)" >&2
    exit 1
  fi
  if [ "$CLUSTER_BUILD" = ship ]; then CORES=$(nproc); build_program; fi   # build/bin goes to every host
  # The hosts' preparation: its output as it comes (and in build/cluster/prepare.log); a host that
  # fails it stops every host (any_errors_fatal), and each such host gets one line at the end.
  rc=0
  "${PREPARE[@]}" 2>&1 | tee "$GEN/prepare.log" || rc=$?
  if [ "$rc" -ne 0 ]; then
    sed -n -e 's/^fatal: \[\([^]]*\)\]: UNREACHABLE! => .*"msg": "\([^"]*\)".*/host \1 unreachable, nothing started: \2/p' \
      -e 's/^fatal: \[\([^]]*\)\]: FAILED! => .*"msg": "\([^"]*\)".*/host \1: \2; nothing started/p' "$GEN/prepare.log" |
      sed "s/^/$PROGRAM: /" >&2
    grep -q '^fatal: ' "$GEN/prepare.log" || echo "$PROGRAM: preparing the hosts failed (ansible-playbook exit $rc); nothing started" >&2
    exit 1
  fi
  run_with_restarts || rc=$?
  [ "$rc" -eq 0 ] && report
  # ansible-playbook exits 2 for any failed task: a job that failed is a runtime failure (1), not
  # the usage error that 2 means here.
  [ "$rc" -eq 0 ] || exit 1
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# On this machine: mpirun with a parameter server and NP-1 workers.
NP=${NP:-3}
CORES=$(nproc)
WORKERS=$((NP > 1 ? NP - 1 : 1))
ROLES="1 parameter server, $WORKERS workers"
if [[ " ${PASS[*]+"${PASS[*]}"} " =~ \ --sync(=|\ )allreduce\  ]]; then WORKERS=$NP; ROLES="$NP workers, all-reduce"; fi
if [ -n "$TUNE" ]; then  # rank 0 coordinates; the others train the trials in groups (--group_size, default 1)
  GROUP=1
  [[ " ${PASS[*]+"${PASS[*]}"} " =~ \ --group_size(=|\ )([0-9]+)\  ]] && GROUP=${BASH_REMATCH[2]}
  WORKERS=$((NP > 1 ? NP - 1 : 1))
  ROLES="rank 0 coordinates, $(( WORKERS / GROUP )) group$([ $((WORKERS / GROUP)) -eq 1 ] || echo s) of $GROUP training the trials"
fi
# OpenMP threads per rank (OMP_NUM_THREADS when set): the cores shared among the workers (the
# parameter server mostly waits).
THREADS=${OMP_NUM_THREADS:-$((CORES / WORKERS > 0 ? CORES / WORKERS : 1))}
MPIRUN=(mpirun -np "$NP")
if [ $((NP * THREADS)) -le "$CORES" ]; then
  MPIRUN+=(--map-by "slot:PE=$THREADS" --bind-to core)      # each rank on cores of its own
else
  # More threads than cores: unbound ranks, and idle OpenMP threads sleep instead of spinning.
  [ "$NP" -le "$CORES" ] || MPIRUN+=(--oversubscribe)
  MPIRUN+=(--bind-to none -x "OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}")
fi
MPIRUN+=(-x "OMP_NUM_THREADS=$THREADS")
[ -z "${HDF5_USE_FILE_LOCKING:-}" ] || MPIRUN+=(-x HDF5_USE_FILE_LOCKING)
build_command() {  # RESTART
  train_flags "$TRAIN_DATA" "$1"
  CMD=("${MPIRUN[@]}" build/bin/unet_train "${TRAIN_ARGS[@]}")
}
build_command 0
COMMAND=("${CMD[@]}")

# unet_train checks every passed-on flag (and the files they name) before mpirun starts anything:
# one line and exit 2 for a mistake, also in a dry run when the program is built.
check_flags() {
  local msg
  msg=$(build/bin/unet_train "${TRAIN_ARGS[@]}" --check_flags 2>&1) || { echo "$msg" | tail -1 >&2; exit 2; }
}
# Before the first run has made the synthetic dataset, the flags are checked without it (a typo is
# then one line, not the dataset's progress bars and then the line); TRAIN_ARGS is put back.
check_flags_before_synthetic() {
  [ "$TRAIN_DATA" = "$SYNTHETIC" ] && [ ! -f "$SYNTHETIC" ] || return 0
  train_flags "" 0
  check_flags
  train_flags "$TRAIN_DATA" 0
}

if [ "$DRY_RUN" -eq 1 ]; then
  echo "would run: scripts/install_deps.sh --runtime"
  echo "would run: make -j$CORES all"
  if [ -x build/bin/unet_train ]; then
    check_flags_before_synthetic
    if [ "$TRAIN_DATA" != "$SYNTHETIC" ] || [ -f "$SYNTHETIC" ]; then check_flags; fi
    echo "flags checked: ok"
  fi
  [ "$TRAIN_DATA" != "$SYNTHETIC" ] || [ -f "$SYNTHETIC" ] || echo "would create: data/synthetic and $SYNTHETIC (build/bin/unet_prepare)"
  echo "would run: $(show "${COMMAND[@]}")"
  exit 0
fi

scripts/install_deps.sh --runtime
build_program
check_flags_before_synthetic
[ "$TRAIN_DATA" != "$SYNTHETIC" ] || prepare_synthetic
check_flags
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
if [ -n "$TUNE" ]; then
  echo "searching $TUNE${TRAIN_DATA:+ on $TRAIN_DATA}: $NP ranks ($ROLES), OMP_NUM_THREADS=$THREADS; results in $LOGDIR"
else
  echo "training $SETTINGS on $TRAIN_DATA: $NP ranks ($ROLES), OMP_NUM_THREADS=$THREADS; results in $LOGDIR"
fi
echo "$(show "${COMMAND[@]}")"
rc=0
run_with_restarts || rc=$?
[ "$rc" -eq 0 ] && [ "$STOPPING" -eq 0 ] && report
exit "$rc"
