#!/usr/bin/python3
"""Unit tests of scripts/cluster_config.py: parsing settings/cluster.ini, its errors, and the
inventory, hostfile and variables generated from it. Run by tests/e2e/cluster_config.sh."""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "cluster_config.py")
spec = importlib.util.spec_from_file_location("cluster_config", SCRIPT)
cc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cc)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class ClusterConfigTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def write(self, text):
        path = os.path.join(self.dir.name, "cluster.ini")
        with open(path, "w") as f:
            f.write(text)
        return path

    def error_of(self, text, np_text=None):
        path = self.write(text)
        with self.assertRaises(cc.ClusterError) as e:
            cc.check_np(path, cc.read_cluster(path), np_text)
        return str(e.exception)

    def test_example_file(self):
        c = cc.read_cluster(os.path.join(ROOT, "settings", "cluster.example.ini"))
        self.assertEqual(c["ps"], "ps01")
        self.assertEqual(c["workers"], [("node01", 2), ("node02", 2)])
        self.assertEqual((c["threads"], c["binding"], c["project_dir"]), (16, "cores", "/opt/unet_train"))
        self.assertEqual(cc.total_slots(c), 5)

    def test_hosts_with_and_without_slots_commas_and_comments(self):
        c = cc.read_cluster(self.write("[param_server]\nhost = a  # the server\n[workers]\nhosts = b:3, c d\nslots = 2\n"))
        self.assertEqual(c["workers"], [("b", 3), ("c", 2), ("d", 2)])
        self.assertEqual(c["threads"], 1)
        self.assertEqual(cc.hostfile_text(c), "a slots=1\nb slots=3\nc slots=2\nd slots=2\n")

    def test_server_that_is_also_a_worker_comes_first_once(self):
        c = cc.read_cluster(self.write("[param_server]\nhost = b\n[workers]\nhosts = a:2 b:2\n"))
        self.assertEqual(cc.hostfile_text(c), "b slots=3\na slots=2\n")
        self.assertEqual(cc.check_np("f", c, None), 5)

    def test_inventory_groups_local_connection_and_slots(self):
        c = cc.read_cluster(self.write("[param_server]\nhost = localhost\n[workers]\nhosts = localhost:2 n1\n"
                                       "[run]\nssh_user = train\n"))
        inv = cc.inventory_text("f", c)
        self.assertIn("[param_server]\nlocalhost ansible_connection=local", inv)
        self.assertIn("localhost mpi_slots=2 ansible_connection=local", inv)
        self.assertIn("n1 mpi_slots=1 ansible_user=train\n", inv)
        self.assertIn("[cluster:children]\nparam_server\nworkers\n", inv)

    def test_np_within_slots(self):
        text = "[param_server]\nhost = a\n[workers]\nhosts = b:2\n"
        c = cc.read_cluster(self.write(text))
        self.assertEqual(cc.check_np("f", c, "2"), 2)
        self.assertIn("more ranks than slots", self.error_of(text, "4"))
        self.assertIn("at least 2", self.error_of(text, "1"))
        self.assertIn("at least 2", self.error_of(text, "x"))

    def test_malformed_files_name_the_problem(self):
        cases = {
            "host = a\n": "malformed",
            "[param_server]\nhost = a\n[workers]\nhosts = b\n[nodes]\nx = 1\n": "unknown section [nodes]",
            "[param_server]\nhost = a\nport = 1\n[workers]\nhosts = b\n": "unknown key 'port'",
            "[param_server]\n[workers]\nhosts = b\n": "[param_server] host is missing",
            "[param_server]\nhost = a\n": "[workers] hosts is missing",
            "[param_server]\nhost = a\n[workers]\nhosts = b:0\n": "expected a positive integer, got '0'",
            "[param_server]\nhost = a\n[workers]\nhosts = b\nthreads = two\n": "[workers] threads",
            "[param_server]\nhost = a b\n[workers]\nhosts = c\n": "'a b' is not a host name",
            "[param_server]\nhost = a\n[workers]\nhosts = b b\n": "listed twice",
            "[param_server]\nhost = a\n[workers]\nhosts = b\n[run]\nbinding = socket\n": "binding",
            "[param_server]\nhost = a\n[workers]\nhosts = b\n[run]\nproject_dir = rel/dir\n": "absolute path",
            "[param_server]\nhost = a\nhost = b\n[workers]\nhosts = c\n": "malformed",
            "[param_server]\nhost = a\n[workers]\nhosts = b\n[run]\nbuild = copy\n": "[run] build: expected hosts or ship",
            "[param_server]\nhost = a\n[workers]\nhosts = b\n[run]\nnetwork = 10.0.0/8\n": "[run] network",
            "[param_server]\nhost = a\n[workers]\nhosts = b\n[run]\nnetwork = eth0;rm\n": "[run] network",
        }
        for text, expected in cases.items():
            with self.subTest(text=text):
                self.assertIn(expected, self.error_of(text))

    def test_build_and_network(self):
        c = cc.read_cluster(self.write("[param_server]\nhost = a\n[workers]\nhosts = b\n"))
        self.assertEqual((c["build"], c["network"]), ("hosts", ""))
        c = cc.read_cluster(self.write("[param_server]\nhost = a\n[workers]\nhosts = b\n[run]\nbuild = ship\n"
                                       "network = 10.77.0.0/24\n"))
        self.assertEqual((c["build"], c["network"]), ("ship", "10.77.0.0/24"))
        env = cc.env_text(c, 2)
        self.assertIn("CLUSTER_BUILD='ship'\n", env)
        self.assertIn("CLUSTER_NETWORK='10.77.0.0/24'\n", env)
        c = cc.read_cluster(self.write("[param_server]\nhost = a\n[workers]\nhosts = b\n[run]\nnetwork = eth1\n"))
        self.assertEqual(c["network"], "eth1")

    def test_command_line_errors_are_one_line_and_write_nothing(self):
        path = self.write("[param_server]\nhost = a\n[workers]\nhosts = b:x\n")
        out = os.path.join(self.dir.name, "out")
        r = subprocess.run([SCRIPT, "generate", path, out], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertTrue(r.stderr.startswith("cluster_config: "))
        self.assertFalse(os.path.exists(out))
        r = subprocess.run([SCRIPT, "check", os.path.join(self.dir.name, "none.ini")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot read", r.stderr)

    def test_generate_writes_all_three_files(self):
        out = os.path.join(self.dir.name, "out")
        r = subprocess.run([SCRIPT, "generate", os.path.join(ROOT, "settings", "cluster.local.ini"), out, "--np", "2"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(read(os.path.join(out, "hostfile")), "localhost slots=3\n")
        env = read(os.path.join(out, "cluster.env"))
        self.assertIn("CLUSTER_NP='2'", env)
        self.assertIn("CLUSTER_BINDING='none'", env)
        self.assertIn("[workers]\nlocalhost mpi_slots=2", read(os.path.join(out, "inventory.ini")))

    def test_vars_types_and_flags(self):
        out = os.path.join(self.dir.name, "vars.json")
        r = subprocess.run([SCRIPT, "vars", out, "unet_np=3", "unet_tensorboard=false", "unet_settings=s.ini",
                            "--", "--epochs", "2", "--note=a b"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        v = json.loads(read(out))
        self.assertEqual(v, {"unet_np": 3, "unet_tensorboard": False, "unet_settings": "s.ini",
                             "unet_train_args": ["--epochs", "2", "--note=a b"]})


if __name__ == "__main__":
    unittest.main()
