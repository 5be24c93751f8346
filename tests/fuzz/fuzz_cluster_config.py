#!/usr/bin/python3
"""Fuzz harness: the cluster file parser (scripts/cluster_config.py), with atheris (libFuzzer for
Python, from PyPI; make fuzz installs it into build/fuzzvenv).

The bytes are a cluster file; it is read (read_cluster), the rank count checked (check_np, with an
--np taken from the input's last byte) and the launchers' files rendered (inventory, hostfile,
environment). The documented failure is ClusterError, which the script prints as one line with
exit 2; any other exception is a finding.

    build/fuzzvenv/bin/python tests/fuzz/fuzz_cluster_config.py [libFuzzer flags] CORPUS_DIR
    python3 tests/fuzz/fuzz_cluster_config.py --replay FILE_OR_DIR...   (no atheris: make test)
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
cluster_config = None  # imported by main(): instrumented when fuzzing

SCRATCH = tempfile.mkdtemp(prefix="unet_fuzz_cluster_")  # under the TMPDIR run_fuzz.sh gives
PATH = os.path.join(SCRATCH, "cluster.ini")


def test_one_input(data):
    with open(PATH, "wb") as f:
        f.write(data)
    np_text = None if not data or data[-1] % 4 == 0 else str(data[-1] % 12)
    try:
        cluster = cluster_config.read_cluster(PATH)
        np = cluster_config.check_np(PATH, cluster, np_text)
        cluster_config.inventory_text(PATH, cluster)
        cluster_config.hostfile_text(cluster)
        cluster_config.env_text(cluster, np)
    except cluster_config.ClusterError as e:
        if "\n" in str(e):
            raise AssertionError(f"a ClusterError of several lines: {e!r}")


def replay(paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(os.path.join(p, n) for n in os.listdir(p) if os.path.isfile(os.path.join(p, n)))
        else:
            files.append(p)
    for name in files:
        with open(name, "rb") as f:
            test_one_input(f.read())
    print(f"replayed {len(files)} inputs")
    return 0 if files else 1


def main():
    global cluster_config
    try:
        if len(sys.argv) > 1 and sys.argv[1] == "--replay":
            import cluster_config
            return replay(sys.argv[2:])
        import atheris
        # Coverage of the parser and the configparser it uses (instrumenting everything loaded
        # takes minutes).
        with atheris.instrument_imports(include=["cluster_config", "configparser"]):
            import cluster_config
        atheris.Setup(sys.argv, test_one_input)
        atheris.Fuzz()
        return 0
    finally:
        for name in os.listdir(SCRATCH):
            os.remove(os.path.join(SCRATCH, name))
        os.rmdir(SCRATCH)


if __name__ == "__main__":
    sys.exit(main())
