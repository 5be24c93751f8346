# Sourced by the tests that need several hosts (tests/e2e/cluster_hosts.sh): builds three "hosts"
# on this machine and tears them down at exit, also on failure. Each host is a network namespace
# with a veth pair to a bridge and its own address in a private /24, its own host name (a UTS
# namespace, so Open MPI sees three nodes), its own sshd (a host key, a client key made here, no
# password; root login by key only) and its own mount namespace, in which the project directory,
# /root, /run and /dev/shm are its own: the hosts share no project file except what the playbook
# copies. This machine (the root namespace) is the launching host.
#
# Root only. Without root, ip netns, unshare or sshd (scripts/install_deps.sh --sshd; make test asks
# for it) it says SKIPPED and why (exit 77). Everything it made (sshds and every other process in
# its namespaces, the namespaces, veths, bridge, temporary files, $DATA and $RUNS) goes at exit.
#
# Sets: T (scratch folder), SUB (10.N.0: host i is $SUB.i, e2e-node<i>), NET ($SUB.0/24), NS (the
# namespaces), SSHD_PIDS (host i's sshd, in its mount namespace), SSH (ssh with the test key),
# DATA (a small 2D dataset inside the project), RUNS (an absent runs/ sub-directory), fail().
skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "the test hosts (network namespaces, sshd) need root"
for b in ip unshare ssh ssh-keygen rsync ansible-playbook mpirun; do
  command -v $b >/dev/null || skip "$b not installed"
done
[ -x /usr/sbin/sshd ] || skip "sshd not installed (scripts/install_deps.sh --sshd)"
/usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null || skip "python3-h5py not installed"
[ -x build/bin/unet_train ] && [ -x build/bin/unet_prepare ] || { echo "FAIL: build/bin missing (make all)"; exit 1; }
unshare --uts --mount true 2>/dev/null || skip "unshare --uts --mount is not permitted here"

ID=$$
T=$(mktemp -d /tmp/unet-cluster.XXXXXX)
chmod 755 "$T"
BR=ucbr$ID
NS=()
SSHD_PIDS=()
DATA=data/e2e-cluster-$ID.h5
RUNS=runs/e2e-cluster-$ID     # absent: the pull-back must create it
NETNS_DIR_EXISTED=0; [ -d /run/netns ] && NETNS_DIR_EXISTED=1
START=$SECONDS

teardown() {
  local ns pid pids sock left
  # launchers started in the background (they pass the stop on to their jobs)
  for pid in $(jobs -p); do kill -TERM "$pid" 2>/dev/null; done
  for pid in $(jobs -p); do timeout 20 tail --pid="$pid" -f /dev/null; kill -KILL "$pid" 2>/dev/null; done
  # ssh connection masters Ansible left (ControlPersist), by their sockets in $T
  for sock in "$T"/cp/*; do [ -S "$sock" ] && ssh -o ControlPath="$sock" -O exit none >/dev/null 2>&1; done
  # Every process in our namespaces: the sshds started here, their sessions, any rank left over.
  for ns in "${NS[@]+"${NS[@]}"}"; do
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -z "$pids" ] || kill -TERM $pids 2>/dev/null
  done
  for pid in "${SSHD_PIDS[@]+"${SSHD_PIDS[@]}"}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 30); do
    pids=""; for ns in "${NS[@]+"${NS[@]}"}"; do pids+=" $(ip netns pids "$ns" 2>/dev/null)"; done
    [ -z "${pids// /}" ] && break; sleep 0.1
  done
  [ -z "${pids// /}" ] || kill -KILL $pids 2>/dev/null
  wait 2>/dev/null
  for ns in "${NS[@]+"${NS[@]}"}"; do ip netns del "$ns" 2>/dev/null; done   # takes its veth pair along
  for i in 1 2 3; do ip link del "ucv$ID-$i" 2>/dev/null; done
  ip link del "$BR" 2>/dev/null
  # ip netns made /run/netns (a bind mount of itself): gone too when it was not here and is empty.
  if [ "$NETNS_DIR_EXISTED" -eq 0 ] && [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
    mountpoint -q /run/netns && umount /run/netns; rmdir /run/netns
  fi
  rm -rf "$T" "$DATA" "$RUNS"
  # Nothing left behind: no namespace, link or sshd of this test.
  left=$(ip netns list 2>/dev/null | grep -o "uc$ID-[0-9]"; ip -o link show 2>/dev/null | grep -o "ucv$ID-[0-9]\|$BR";
         pgrep -f "sshd -D -e -f $T/" 2>/dev/null)
  if [ -n "$left" ]; then echo "FAIL: left behind: $(echo $left)"; exit 1; fi
}
trap teardown EXIT
trap 'exit 1' INT TERM HUP
fail() { echo "FAIL: $*"; for f in "$T"/h*/sshd.log; do [ -s "$f" ] && { echo "== $f"; tail -5 "$f"; }; done; exit 1; }

# A private /24 that no interface or route here uses.
SUB=""
for n in $(seq 77 99); do
  ip -4 route show | grep -q "^10\.$n\.0\." && continue
  ip -4 -o addr show | grep -q " 10\.$n\.0\." && continue
  SUB=10.$n.0; break
done
[ -n "$SUB" ] || skip "no free 10.N.0.0/24 subnet for the test hosts"
NET=$SUB.0/24

# Keys: one client key (the launching host's and every host's, for mpirun's ssh), one host key each.
mkdir -p "$T/client" "$T/cp"
ssh-keygen -q -t ed25519 -N '' -C unet-e2e -f "$T/client/id_ed25519" || fail "ssh-keygen"
cp "$T/client/id_ed25519.pub" "$T/authorized_keys"

mkdir -p "$T/project"   # empty here: each host mounts its own over it
ip link add "$BR" type bridge 2>/dev/null || skip "cannot create a bridge (ip link add type bridge)"
ip addr add "$SUB.254/24" dev "$BR" && ip link set "$BR" up || fail "bridge address"
for i in 1 2 3; do
  ns=uc$ID-$i h=$T/h$i
  ip netns add "$ns" 2>/dev/null || skip "ip netns add is not permitted here"
  NS+=("$ns")
  ip link add "ucv$ID-$i" type veth peer name eth0 netns "$ns" || fail "veth pair for $ns"
  ip link set "ucv$ID-$i" master "$BR" up && ip -n "$ns" link set lo up && ip -n "$ns" link set eth0 up &&
    ip -n "$ns" addr add "$SUB.$i/24" dev eth0 || fail "addresses of $ns"
  mkdir -p "$h/project" "$h/root/.ssh"
  ssh-keygen -q -t ed25519 -N '' -f "$h/ssh_host_ed25519_key" || fail "host key"
  cp "$T/client/id_ed25519" "$h/root/.ssh/id_ed25519"
  printf 'Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n' > "$h/root/.ssh/config"
  chmod 700 "$h/root" "$h/root/.ssh"
  cat > "$h/sshd_config" <<EOF
ListenAddress $SUB.$i
Port 22
HostKey $h/ssh_host_ed25519_key
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile $T/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
Subsystem sftp internal-sftp
EOF
  # The host: its namespace, name and mounts, then sshd in the foreground (this pid is sshd's).
  ip netns exec "$ns" unshare --uts --mount --propagation private /bin/sh -c "
    hostname e2e-node$i &&
    mount --bind '$h/project' '$T/project' &&
    mount --bind '$h/root' /root && mount -t tmpfs tmpfs /run && mkdir -m 755 /run/sshd &&
    mount -t tmpfs tmpfs /dev/shm && exec /usr/sbin/sshd -D -e -f '$h/sshd_config'" > "$h/sshd.log" 2>&1 &
  SSHD_PIDS+=($!)
done

# The launching host's ssh and Ansible: the test key, no host key checks, its own temp and sockets.
export ANSIBLE_PRIVATE_KEY_FILE=$T/client/id_ed25519 ANSIBLE_HOST_KEY_CHECKING=False
export ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
export ANSIBLE_SSH_CONTROL_PATH_DIR=$T/cp ANSIBLE_LOCAL_TEMP=$T/ansible-tmp ANSIBLE_PIPELINING=True
export ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_STDOUT_CALLBACK=default
SSH=(ssh -i "$T/client/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
     -o BatchMode=yes -o ConnectTimeout=5)
for i in 1 2 3; do
  for _ in $(seq 50); do "${SSH[@]}" "root@$SUB.$i" true 2>/dev/null && break; sleep 0.1; done
  [ "$("${SSH[@]}" "root@$SUB.$i" hostname 2>&1)" = "e2e-node$i" ] || fail "ssh to host $i ($SUB.$i): $("${SSH[@]}" "root@$SUB.$i" hostname 2>&1)"
done
# The hosts share no project files: a file in host 1's project directory is not in host 2's.
"${SSH[@]}" "root@$SUB.1" "touch $T/project/only-here" && "${SSH[@]}" "root@$SUB.2" "test ! -e $T/project/only-here" ||
  fail "the hosts' project directories are not their own"
"${SSH[@]}" "root@$SUB.1" "rm $T/project/only-here"
echo "3 hosts up in $((SECONDS - START)) s: $SUB.1-3 (e2e-node1-3), subnet $NET"

# A small dataset, inside the project (the data role copies it to every host).
mkdir -p data
build/bin/unet_prepare --synthetic 4 --output_dir "$T/syn" --synthetic_size 16,64,64 >/dev/null 2>&1 &&
  build/bin/unet_prepare --source_dir "$T/syn" --output "$DATA" --mode 2d --slice_size 64 >/dev/null 2>&1 ||
  fail "unet_prepare (a small dataset)"

# The processes named NAME in host I's namespace (its pids, one per line).
host_procs() {  # I NAME
  local p
  for p in $(ip netns pids "${NS[$(($1 - 1))]}" 2>/dev/null); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] && echo "$p"
  done
}
# A cluster file for the test hosts: the parameter server on host 1, the workers given (host[:slots]
# items; default hosts 2 and 3), one thread each, build shipped, MPI on the test subnet; more [run]
# lines from stdin when it is not a terminal.
cluster_file() {  # FILE [WORKERS] [EXTRA_RUN_LINES]
  cat > "$1" <<INI
[param_server]
host = $SUB.1
[workers]
hosts = ${2:-$SUB.2 $SUB.3}
threads = 1
[run]
project_dir = $T/project
binding = none
build = ship
network = $NET
${3:-}
INI
}
