#!/usr/bin/python3
"""Reads settings/cluster.ini (the hosts of a distributed run) and writes what the launchers need.

    scripts/cluster_config.py check    CLUSTER.INI [--np N]
    scripts/cluster_config.py generate CLUSTER.INI OUTDIR [--np N]
    scripts/cluster_config.py vars OUT.json key=value... -- unet_train flags...

`generate` writes OUTDIR/inventory.ini (Ansible: groups param_server, workers, cluster; host
variable mpi_slots, from which ansible/roles/launch writes the same hostfile),
OUTDIR/hostfile (Open MPI: the parameter server's host first, so rank 0 lands there) and
OUTDIR/cluster.env (shell variables for run_distributed_training.sh). `vars` writes the
playbook's variables as JSON (numbers and booleans typed, the flags as a list), so that any flag
survives quoting. Any mistake in the file ends
with one line naming the file, the section and the key, exit code 2, and nothing written.

The format (settings/cluster.example.ini is a commented example):

    [param_server]
    host = ps01                      # rank 0 and the mpirun itself run here
    [workers]
    hosts = node01:2 node02          # host[:slots]; slots = worker ranks on that host
    slots = 1                        # slots of hosts listed without one
    threads = 16                     # OMP_NUM_THREADS of every rank (= cores per rank)
    [run]                            # optional
    project_dir = /opt/unet_train    # where the project lives on every host (default: same path as here)
    binding = cores                  # cores: each rank bound to `threads` cores; none: no binding
    ssh_user = train                 # remote user (default: yours)
    tensorboard = true               # start TensorBoard on the parameter server's host (port 6006)
    build = hosts                    # hosts: every host builds (make); ship: build here, copy build/bin
    network = 10.1.0.0/16            # MPI's TCP traffic and runtime channel only on this subnet (or
                                     # interface name): --mca btl tcp,vader,self, btl_/oob_tcp_if_include
    install = true                   # false: install no Debian package, stop naming what a host lacks
"""
import configparser
import json
import os
import re
import sys

HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
KNOWN = {
    "param_server": {"host"},
    "workers": {"hosts", "slots", "threads"},
    "run": {"project_dir", "binding", "ssh_user", "tensorboard", "build", "network", "install"},
}
LOCAL_NAMES = {"localhost", "127.0.0.1"}


class ClusterError(Exception):
    """One line for the user: a value quoted from the file may hold a newline (configparser joins
    indented continuation lines) or other control characters, shown as '?'."""

    def __init__(self, message):
        super().__init__("".join("?" if ord(c) < 0x20 or ord(c) == 0x7f else c for c in message))


def positive_int(path, section, key, text):
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise ClusterError(f"{path}: [{section}] {key}: expected a positive integer, got '{text}'")
    return int(text)


def host_name(path, section, key, text):
    if not HOST_RE.match(text):
        raise ClusterError(f"{path}: [{section}] {key}: '{text}' is not a host name")
    return text


def run_choice(parser, path, key, allowed):
    """[run] KEY: one of `allowed`, the first being the default."""
    value = parser.get("run", key, fallback=allowed[0]).strip()
    if value not in allowed:
        raise ClusterError(f"{path}: [run] {key}: expected {' or '.join(allowed)}, got '{value}'")
    return value


def boolean(parser, path, key, default):
    value = parser.get("run", key, fallback=default).strip().lower()
    if value not in ("true", "false", "yes", "no"):
        raise ClusterError(f"{path}: [run] {key}: expected true or false, got '{value}'")
    return value in ("true", "yes")


def read_cluster(path):
    """Returns a dict: ps, workers [(host, slots)], threads, project_dir, binding, ssh_user,
    tensorboard, build, network, install."""
    parser = configparser.ConfigParser(inline_comment_prefixes=("#", ";"), interpolation=None)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ClusterError(f"{path}: cannot read: {e.strerror}")
    try:  # decoded here, whole: a decoder inside configparser reports offsets in its own buffer
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ClusterError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})")
    try:
        parser.read_string(text, source=path)
    except configparser.Error as e:
        raise ClusterError(f"{path}: malformed: {' '.join(str(e).split())}")
    for section in parser.sections():
        if section not in KNOWN:
            raise ClusterError(f"{path}: unknown section [{section}] (expected {', '.join('[' + s + ']' for s in KNOWN)})")
        for key in parser[section]:
            if key not in KNOWN[section]:
                raise ClusterError(f"{path}: [{section}] unknown key '{key}' (expected {', '.join(sorted(KNOWN[section]))})")
    for section, key in (("param_server", "host"), ("workers", "hosts")):
        if not parser.has_option(section, key) or not parser.get(section, key).strip():
            raise ClusterError(f"{path}: [{section}] {key} is missing")

    ps = host_name(path, "param_server", "host", parser.get("param_server", "host").strip())
    default_slots = positive_int(path, "workers", "slots", parser.get("workers", "slots", fallback="1").strip())
    threads = positive_int(path, "workers", "threads", parser.get("workers", "threads", fallback="1").strip())
    workers = []
    for item in re.split(r"[\s,]+", parser.get("workers", "hosts").strip()):
        name, _, slots = item.partition(":")
        host_name(path, "workers", "hosts", name)
        n = positive_int(path, "workers", f"hosts ({name})", slots) if slots else default_slots
        if any(h == name for h, _ in workers):
            raise ClusterError(f"{path}: [workers] hosts: '{name}' is listed twice")
        workers.append((name, n))

    project_dir = parser.get("run", "project_dir", fallback="").strip()
    if project_dir and not re.fullmatch(r"/[A-Za-z0-9._/+-]*", project_dir):
        raise ClusterError(f"{path}: [run] project_dir: expected an absolute path of plain characters, got '{project_dir}'")
    binding = run_choice(parser, path, "binding", ("cores", "none"))
    ssh_user = parser.get("run", "ssh_user", fallback="").strip()
    if ssh_user and not re.fullmatch(r"[a-z_][a-z0-9_.-]*", ssh_user):
        raise ClusterError(f"{path}: [run] ssh_user: '{ssh_user}' is not a user name")
    tensorboard = boolean(parser, path, "tensorboard", "false")
    install = boolean(parser, path, "install", "true")
    build = run_choice(parser, path, "build", ("hosts", "ship"))
    network = parser.get("run", "network", fallback="").strip()
    if network and not re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}|[A-Za-z][A-Za-z0-9_.-]{0,14}", network):
        raise ClusterError(f"{path}: [run] network: expected a subnet (10.1.0.0/16) or an interface name (eth1), got '{network}'")
    return {"ps": ps, "workers": workers, "threads": threads, "project_dir": project_dir,
            "binding": binding, "ssh_user": ssh_user, "tensorboard": tensorboard,
            "build": build, "network": network, "install": install}


def total_slots(cluster):
    return 1 + sum(n for _, n in cluster["workers"])


def check_np(path, cluster, np_text):
    """The rank count: every slot by default; --np N must fit (rank 0 plus at least one worker)."""
    slots = total_slots(cluster)
    if np_text is None:
        return slots
    if not re.fullmatch(r"[0-9]+", np_text) or int(np_text) < 2:
        raise ClusterError(f"--np: expected an integer of at least 2 (a parameter server and a worker), got '{np_text}'")
    np = int(np_text)
    if np > slots:
        raise ClusterError(f"--np {np}: more ranks than slots in {path} ({slots}: 1 parameter server + "
                           f"{slots - 1} worker slots)")
    return np


def hostfile_text(cluster):
    """The parameter server's host first with one extra slot, so that Open MPI's by-slot mapping puts
    rank 0 there; a host that is both PS and worker appears once."""
    slots = {cluster["ps"]: 1}
    for host, n in cluster["workers"]:
        slots[host] = slots.get(host, 0) + n
    return "".join(f"{h} slots={n}\n" for h, n in slots.items())


def inventory_text(path, cluster):
    def line(host, slots=None):
        extra = f" mpi_slots={slots}" if slots else ""
        if host in LOCAL_NAMES:
            extra += " ansible_connection=local ansible_python_interpreter=/usr/bin/python3"
        elif cluster["ssh_user"]:
            extra += f" ansible_user={cluster['ssh_user']}"
        return host + extra + "\n"
    out = f"# Generated from {path} by scripts/cluster_config.py; edit that file instead.\n"
    out += "[param_server]\n" + line(cluster["ps"])
    out += "\n[workers]\n" + "".join(line(h, n) for h, n in cluster["workers"])
    out += "\n[cluster:children]\nparam_server\nworkers\n"
    return out


def env_text(cluster, np):
    hosts = [cluster["ps"]] + [h for h, _ in cluster["workers"] if h != cluster["ps"]]
    values = {
        "CLUSTER_NP": str(np),
        "CLUSTER_THREADS": str(cluster["threads"]),
        "CLUSTER_PS": cluster["ps"],
        "CLUSTER_HOSTS": " ".join(hosts),
        "CLUSTER_PROJECT_DIR": cluster["project_dir"],
        "CLUSTER_BINDING": cluster["binding"],
        "CLUSTER_SSH_USER": cluster["ssh_user"],
        "CLUSTER_TENSORBOARD": "true" if cluster["tensorboard"] else "false",
        "CLUSTER_BUILD": cluster["build"],
        "CLUSTER_NETWORK": cluster["network"],
        "CLUSTER_INSTALL": "true" if cluster["install"] else "false",
    }
    return "".join(f"{k}='{v}'\n" for k, v in values.items())


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


TYPED_VARS = {"unet_np": int, "unet_omp_threads": int, "unet_tensorboard": lambda v: v == "true",
              "unet_install_packages": lambda v: v == "true", "unet_resume": lambda v: v == "true"}


def vars_json(assignments, train_args):
    out = {}
    for a in assignments:
        key, eq, value = a.partition("=")
        if not eq or not key:
            raise ClusterError(f"vars: expected key=value, got '{a}'")
        out[key] = TYPED_VARS.get(key, str)(value)
    out["unet_train_args"] = train_args
    return json.dumps(out, indent=1) + "\n"


def main(argv):
    args = list(argv[1:])
    if len(args) >= 2 and args[0] == "vars":
        rest = args[2:]
        split = rest.index("--") if "--" in rest else len(rest)
        write_atomically(args[1], vars_json(rest[:split], rest[split + 1:]))
        return 0
    np_text = None
    if "--np" in args:
        i = args.index("--np")
        if i + 1 >= len(args):
            raise ClusterError("--np: expected a number")
        np_text = args[i + 1]
        del args[i:i + 2]
    if len(args) == 2 and args[0] == "check":
        cluster = read_cluster(args[1])
        np = check_np(args[1], cluster, np_text)
        print(f"{args[1]}: parameter server {cluster['ps']}, worker hosts {' '.join(h for h, _ in cluster['workers'])}, "
              f"{np} ranks of {total_slots(cluster)} slots, OMP_NUM_THREADS={cluster['threads']}")
        return 0
    if len(args) == 3 and args[0] == "generate":
        path, outdir = args[1], args[2]
        cluster = read_cluster(path)
        np = check_np(path, cluster, np_text)
        os.makedirs(outdir, exist_ok=True)
        write_atomically(os.path.join(outdir, "inventory.ini"), inventory_text(path, cluster))
        write_atomically(os.path.join(outdir, "hostfile"), hostfile_text(cluster))
        write_atomically(os.path.join(outdir, "cluster.env"), env_text(cluster, np))
        return 0
    print("usage:" + __doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except ClusterError as e:
        print(f"cluster_config: {e}", file=sys.stderr)
        sys.exit(2)
