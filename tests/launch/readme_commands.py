#!/usr/bin/python3
"""Runs every command of README.md's ```sh blocks, so the README never goes stale.

Each block runs in one bash (exports carry to the next line), command by command, stopping at the
first failure, in a sandbox: a temporary directory with links to the build, sources, scripts and
Ansible files, copies of settings/, and empty data/ and runs/, so nothing the commands write lands
in the worktree. Commands that need what a test machine lacks (real MSD data, the internet, a
Slurm cluster, a long-running server) are changed or skipped by the table below; every entry says
why, and an entry that matches nothing is an error (the table cannot go stale either). Training
commands are shrunk (SHRINK) to a couple of steps of a small model.

    tests/launch/readme_commands.py README.md
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (regular expression on a command, replacement or None to skip, why). Applied in order.
TABLE = [
    (r"^\./run_distributed_training\.sh$", None,
     "the main command at full length is tests/e2e/readme_main_command.sh"),
    (r"^make test$", None, "this test is part of make test"),
    (r"^wget .*Task01_BrainTumour\.tar$", None, "needs the internet; data/msd_standin stands in for MSD"),
    (r"^tar -C data -xf data/Task01_BrainTumour\.tar$", None, "needs the download"),
    (r"data/Task01_BrainTumour", "data/msd_standin",
     "MSD stand-in: 6 synthetic cases in the MSD layout, made by the sandbox set-up"),
    (r"--synthetic 24 ", "--synthetic 6 ", "fewer synthetic cases, same layout"),
    (r"^(build/tbvenv/bin/tensorboard --logdir runs/.*)", r"tests/launch/tensorboard_briefly.sh \1",
     "a server that runs until stopped: started as printed, queried, stopped"),
    (r"^(UNET_\w+=\S+ )?sbatch (--nodes=\S+ --time=\S+ )?(scripts/slurm/\S+\.sbatch).*", r"bash -n \3",
     "no Slurm here: syntax only; tests/e2e/slurm_scripts.sh runs the scripts with stand-ins"),
    (r"^(\./run_distributed_training\.sh --hosts) settings/cluster\.ini (?!--dry-run)(.*)", r"\1 settings/cluster.local.ini \2 --dry-run",
     "the example hosts do not exist: this machine's cluster file, dry run (tests/e2e/ansible_launch.sh runs it)"),
    (r"^(ansible-playbook .*distributed_train\.yml).*", r"\1 --syntax-check",
     "a real run through the local inventory is tests/e2e/ansible_launch.sh"),
    (r"^mpirun -np 9 --hostfile build/cluster/hostfile .*", None, "needs a cluster of NUMA nodes"),
    (r"^mpirun -np 33 (build/bin/unet_train --tune=settings/tune_distmis\.ini.*)",
     r"mpirun -np 3 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 \1 --trials 2 --epochs 1",
     "33 ranks and DistMIS's 32-trial 3D grid -> 3 ranks, the grid's first 2 trials, one short epoch"),
    (r"^(build/bin/unet_train --benchmark .*)--batch_size 8 --steps 5$", r"\1--batch_size 2 --steps 1 --bench_warmup 0",
     "the same model and input, 1 timed step of 2 samples instead of a warm-up and 5 of 8 (28 s -> a few)"),
    (r"--map-by ppr:1:socket:PE=16 (.*)OMP_NUM_THREADS=16", r"--map-by slot:PE=1 \1OMP_NUM_THREADS=1",
     "2 ranks of 16 cores -> 2 ranks of 1 core on the test machine"),
]
# Training commands get these flags when they do not set them: a couple of steps, a small model.
SHRINK = [("--steps", "2"), ("--batch_size", "4"), ("--filters", "4")]
TRAINS = re.compile(r"build/bin/unet_train |^\./run_distributed_training\.sh")


def sh_blocks(text):
    return re.findall(r"^ *```sh\n(.*?)^ *```", text, flags=re.S | re.M)


def commands(block):
    """Lines of a block, continuation lines joined, comments and blank lines dropped."""
    out, pending = [], ""
    for line in block.splitlines():
        line = pending + line.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        line = re.sub(r"\s+#.*$", "", line) if not line.startswith("#") else ""
        if line:
            out.append(line)
    return out


def rewrite(command, used):
    for i, (pattern, replacement, _) in enumerate(TABLE):
        if re.search(pattern, command):
            used.add(i)
            if replacement is None:
                return None
            command = re.sub(pattern, replacement, command)
    words = shlex.split(command)
    if TRAINS.search(command) and not {"--help", "--dry-run"} & set(words) and "bash" not in words[:1]:
        for flag, value in SHRINK:
            if flag not in words and not any(w.startswith(flag + "=") for w in words):
                command += f" {flag} {value}"
    return command


def make_sandbox(path):
    for name in ("build", "src", "include", "tests", "bench", "scripts", "ansible", "Makefile",
                 "run_distributed_training.sh"):
        os.symlink(os.path.join(ROOT, name), os.path.join(path, name))
    shutil.copytree(os.path.join(ROOT, "settings"), os.path.join(path, "settings"))
    os.makedirs(os.path.join(path, "data"))
    os.makedirs(os.path.join(path, "runs"))
    setup = [
        ["build/bin/unet_prepare", "--synthetic", "6", "--output_dir", "data/msd_standin", "--synthetic_size", "64,96,96"],
        ["/usr/bin/python3", "-c",
         "import numpy as np, os\n"
         "os.makedirs('data/intel_npy')\n"
         "r = np.random.default_rng(0)\n"
         "for s, n in (('train', 6), ('test', 4)):\n"
         "    np.save(f'data/intel_npy/imgs_{s}.npy', r.standard_normal((n, 32, 32, 4)).astype(np.float32))\n"
         "    np.save(f'data/intel_npy/msks_{s}.npy', (r.random((n, 32, 32, 1)) < 0.2).astype(np.float32))\n"],
    ]
    for c in setup:
        subprocess.run(c, cwd=path, check=True, capture_output=True)


def main():
    readme = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "README.md")
    with open(readme, encoding="utf-8") as f:
        blocks = sh_blocks(f.read())
    if not blocks:
        print("no ```sh blocks in " + readme)
        return 1
    used, ran, skipped = set(), 0, 0
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive")
    if os.getuid() == 0:  # each block runs in a new shell; the README's export holds for the reader's one
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    with tempfile.TemporaryDirectory() as sandbox:
        make_sandbox(sandbox)
        for n, block in enumerate(blocks, 1):
            script = ["set -u"]
            for c in commands(block):
                r = rewrite(c, used)
                if r is None:
                    skipped += 1
                    continue
                ran += 1
                script.append(f"echo {shlex.quote('+ ' + r)}")
                script.append(f"{r} > .out 2>&1 || {{ rc=$?; tail -15 .out; "
                              f"echo \"FAILED (exit $rc): \"{shlex.quote(r)}; exit 1; }}")
            p = subprocess.run(["bash", "-c", "\n".join(script)], cwd=sandbox, env=env, capture_output=True, text=True)
            if p.returncode != 0:
                print(f"README block {n}:\n{p.stdout}{p.stderr}")
                return 1
    unused = [TABLE[i][0] for i in range(len(TABLE)) if i not in used]
    if unused:
        print("substitution table entries that match no README command: " + ", ".join(unused))
        return 1
    print(f"{ran} README commands ran, {skipped} skipped by the table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
