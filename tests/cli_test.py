#!/usr/bin/python3
"""The `distopt` command line as a user meets it: help for every subcommand and
no benchmark or hidden one, --version, numbers checked, unknown arguments rejected, keygen's files, a key
file others can read refused, a run folder that cannot be written refused at
start-up. Usage: tests/cli_test.py --distopt BINARY --repo REPO
"""
import argparse
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

ARGS = None


def run(*argv, env=None, timeout=60):
    return subprocess.run([ARGS.distopt] + list(argv), capture_output=True, text=True,
                          env=env, timeout=timeout)


class CommandLine(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="distopt-cli-")
        self.seed = os.path.join(ARGS.repo, "examples", "fashion_mnist.toml")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_every_subcommand_has_help_and_there_is_a_version(self):
        r = run("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^distopt \d+\.\d+\.\d+")
        for sub in (["train"], ["run"], ["eval"], ["keygen"]):
            r = run(*sub, "--help")
            self.assertEqual(r.returncode, 0, sub)
            self.assertIn("Usage: distopt " + " ".join(sub), r.stdout)
        self.assertIn("--advertise-host", run("run", "--help").stdout)

    def test_the_product_has_no_benchmark_and_no_hidden_command(self):
        # The benchmark is its own binary (bench/kv, distopt-bench-kv), its node processes too.
        help_text = run("--help").stdout
        listed = re.findall(r"^  (\S+)", help_text.split("Subcommands:")[-1], re.M)
        self.assertEqual(sorted(listed), ["eval", "keygen", "run", "train"], help_text)
        for argv in (["bench", "kv", "--size", "1MiB"], ["bench-node", "--role", "echo"]):
            r = run(*argv)
            self.assertNotEqual(r.returncode, 0, argv)
            self.assertIn("A subcommand is required", r.stderr, argv)  # not a known one
            self.assertEqual(r.stdout, "", argv)

    def test_numbers_are_checked_and_unknown_arguments_rejected(self):
        r = run("run", "--rank", "x", self.seed)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--rank: 'x' is not an integer", r.stderr)
        r = run("train", self.seed, "--workers", "0")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--workers: 0 is outside 1..4096", r.stderr)
        r = run("run", self.seed, "--bogus")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--bogus", r.stderr)
        r = run("frobnicate")
        self.assertNotEqual(r.returncode, 0)

    def test_keygen_writes_private_keys_and_refuses_to_overwrite(self):
        keys = os.path.join(self.dir, "keys")
        r = run("keygen", keys, self.seed)
        self.assertEqual(r.returncode, 0, r.stderr)
        names = sorted(os.listdir(keys))
        self.assertEqual(names, sorted(["allowlist", "coordinator.key", "server-0.key",
                                        "server-1.key"] + [f"worker-{i}.key" for i in range(4)]))
        for n in names:
            mode = stat.S_IMODE(os.stat(os.path.join(keys, n)).st_mode)
            self.assertEqual(mode, 0o644 if n == "allowlist" else 0o600, n)
        self.assertEqual(len(open(os.path.join(keys, "allowlist")).read().split("\n")), 2 + 7 + 1)
        r = run("keygen", keys, self.seed)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--force", r.stderr)
        self.assertEqual(run("keygen", keys, self.seed, "--force").returncode, 0)

    def test_a_key_file_others_can_read_is_refused_with_its_path_and_mode(self):
        keys = os.path.join(self.dir, "keys")
        self.assertEqual(run("keygen", keys, self.seed).returncode, 0)
        key = os.path.join(keys, "worker-2.key")
        os.chmod(key, 0o644)
        r = run("run", "--role", "worker", "--rank", "2", "--coordinator", "10.231.9.9:7070",
                "--keys", keys, "--run-dir", self.dir + "/run", "--set", "cluster.security=curve",
                self.seed)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"{key} has mode 0644", r.stderr)

    def test_a_run_folder_that_cannot_be_written_fails_at_start_up(self):
        blocker = os.path.join(self.dir, "file")
        open(blocker, "w").close()
        r = run("run", "--role", "coordinator", "--run-dir", blocker + "/run",
                "--set", "cluster.security=none", self.seed)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(blocker + "/run", r.stderr)
        self.assertNotIn("registered", r.stderr)  # it never started serving

    def test_the_log_level_comes_from_the_environment(self):
        blocker = os.path.join(self.dir, "file")
        open(blocker, "w").close()
        argv = ("run", "--role", "coordinator", "--run-dir", blocker + "/run",
                "--set", "cluster.security=none", self.seed)
        quiet = run(*argv, env=dict(os.environ, DISTOPT_LOG_LEVEL="warning"))
        self.assertNotIn("started by", quiet.stderr)  # an info line
        self.assertIn(blocker + "/run", quiet.stderr)  # the error still says why
        loud = run(*argv, env=dict(os.environ, DISTOPT_LOG_LEVEL="loud"))
        self.assertIn("DISTOPT_LOG_LEVEL=loud is not one of debug, info, warning, error",
                      loud.stderr)
        self.assertIn("started by", loud.stderr)  # info, the default

    def test_a_multi_host_job_without_keys_says_how_to_make_them(self):
        r = run("run", "--role", "server", "--rank", "0", "--coordinator", "10.231.9.9:7070",
                "--run-dir", self.dir + "/run", self.seed)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("distopt keygen", r.stderr)

    def test_print_placement_reads_the_launcher(self):
        env = {"PATH": os.environ["PATH"], "OMPI_COMM_WORLD_RANK": "4",
               "OMPI_COMM_WORLD_SIZE": "7", "OMPI_COMM_WORLD_LOCAL_SIZE": "7"}
        r = run("run", "--print-placement", self.seed, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"role":"worker"', r.stdout)
        self.assertIn('"rank":1', r.stdout)
        self.assertIn('"launcher":"openmpi"', r.stdout)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--distopt", required=True)
    ap.add_argument("--repo", required=True)
    ARGS, rest = ap.parse_known_args()
    ARGS.distopt = os.path.abspath(ARGS.distopt)
    prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    r = prog.result
    failed = len(r.failures) + len(r.errors)
    print(f"{r.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
