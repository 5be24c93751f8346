#!/usr/bin/env bash
# Installs the Debian packages unet_train needs. Idempotent: asks dpkg first and only runs
# apt-get (update once, then install) for what is missing. Works as root or through sudo.
#
#   scripts/install_deps.sh            build, run and test dependencies (make test)
#   scripts/install_deps.sh --runtime  only what building and running needs (make, the main command)
#   scripts/install_deps.sh --hosts    --runtime plus Ansible and rsync (the launcher with --hosts)
#   scripts/install_deps.sh --check    exit 1 if something is missing, install nothing
#   scripts/install_deps.sh --list [MODE]  print the packages of MODE (default: all), install nothing
#   scripts/install_deps.sh --slurm    only Slurm and munge, for tests/e2e/slurm_real.sh (make test
#                                      asks for them, best effort); their daemons are not started
#   scripts/install_deps.sh --sshd     only openssh-server, for tests/e2e/cluster_hosts.sh (make test
#                                      asks for it, best effort); the system sshd is not started
set -euo pipefail

RUNTIME_PACKAGES=(
  build-essential pkg-config
  libdnnl-dev                       # oneDNN 2.6.3: every convolution, pooling, resampling
  libopenmpi-dev openmpi-bin        # parameter server and workers
  libhdf5-dev                       # datasets and checkpoints
  libboost-program-options-dev      # flags and settings files
  libnifti2-dev                     # MSD NIfTI volumes
  protobuf-compiler libprotobuf-dev # TensorBoard event files
  libpng-dev libgif-dev             # images in TensorBoard, unet_visualize
  nlohmann-json3-dev                # dataset.json, DistMIS configs
  zlib1g-dev
)
HOSTS_PACKAGES=(
  ansible rsync                     # launching on hosts (ansible/)
)
TEST_PACKAGES=(
  libgtest-dev                      # unit tests
  python3-torch python3-numpy       # PyTorch cross-check and benchmark baseline (/usr/bin/python3)
  python3-nibabel python3-h5py      # independent NIfTI / HDF5 readers and writers for the data tests
  python3-scipy                     # distance transforms of the reference metrics (MONAI HD95)
  python3-venv                      # the virtual environment TensorBoard is installed into (scripts/tensorboard_venv.sh)
  ansible-lint                      # the playbook's lint test
  clang                             # make fuzz: libFuzzer harnesses of the readers (tests/fuzz)
)

MODE=${1:-}
LIST=0
if [ "$MODE" = "--list" ]; then LIST=1; MODE=${2:-}; fi
case "$MODE" in
  --runtime) PACKAGES=("${RUNTIME_PACKAGES[@]}") ;;
  --hosts) PACKAGES=("${RUNTIME_PACKAGES[@]}" "${HOSTS_PACKAGES[@]}") ;;
  ""|--check|--slurm|--sshd) PACKAGES=("${RUNTIME_PACKAGES[@]}" "${HOSTS_PACKAGES[@]}" "${TEST_PACKAGES[@]}") ;;
  *) echo "install_deps.sh: unknown mode '$MODE' (--runtime, --hosts, --check, --list, --slurm, --sshd)" >&2; exit 2 ;;
esac
if [ "$LIST" -eq 1 ]; then
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi

START_SERVICES=1
if [ "${1:-}" = "--slurm" ]; then
  PACKAGES=(slurmctld slurmd slurm-client munge)
  START_SERVICES=0  # the test runs its own private slurmctld / slurmd; none should start system-wide
fi
if [ "${1:-}" = "--sshd" ]; then
  PACKAGES=(openssh-server)
  START_SERVICES=0  # the test runs one sshd per test host with its own configuration; none system-wide
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install_deps.sh: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install_deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
if [ "$START_SERVICES" -eq 0 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
  # Debian's way to keep maintainer scripts from starting daemons: policy-rc.d exiting 101.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
