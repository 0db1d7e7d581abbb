#!/usr/bin/python3
"""distopt-bench-kv end to end, in its smallest runs: every role (server, worker,
co-located, echo, raw client) starts from the benchmark binary, the table and the JSON
results have the fields bench/compare reads, the scratch folder is gone when the run ends,
also when it fails, and is kept with --keep; options are checked.
Usage: bench/kv/bench_kv_test.py --bench BINARY
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ARGS = None


class BenchKv(unittest.TestCase):
    def setUp(self):
        # The benchmark makes its scratch folder in $TMPDIR: a private one shows what it
        # leaves behind.
        self.tmp = tempfile.mkdtemp(prefix="distopt-bench-kv-test-tmp-")
        self.out = tempfile.mkdtemp(prefix="distopt-bench-kv-test-out-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.out, ignore_errors=True)

    def bench(self, *argv, timeout=240):
        return subprocess.run([ARGS.bench] + list(argv), capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, TMPDIR=self.tmp))

    def test_quick_run_prints_and_writes_every_case_and_leaves_nothing(self):
        jf = os.path.join(self.out, "kv.json")
        r = self.bench("--quick", "--json", jf)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [l.split() for l in r.stdout.splitlines() if l.startswith(("dense-", "sparse-"))]
        self.assertEqual([row[0] for row in rows], ["dense-1MiB-s1w1", "sparse-10kx16-s1w1"])
        with open(jf) as f:
            res = json.load(f)
        self.assertEqual(res["benchmark"], "kv")
        self.assertEqual([c["name"] for c in res["cases"]], [row[0] for row in rows])
        for c, row in zip(res["cases"], rows):
            self.assertEqual((c["servers"], c["workers"], c["reps"]), (1, 1, 10))
            self.assertGreater(c["gbps"], 0)
            self.assertGreater(c["ceiling_gbps"], 0)
            self.assertAlmostEqual(c["ratio"], c["gbps"] / c["ceiling_gbps"], places=9)
            # The table shows the same figures as the file (ours GB/s, raw GB/s, ratio).
            self.assertAlmostEqual(float(row[1]), c["gbps"], delta=0.0006)
            self.assertAlmostEqual(float(row[4]), c["ratio"], delta=0.006)
        self.assertEqual(res["cases"][0]["bytes_per_step"], 2 * (1 << 20))
        self.assertEqual(res["cases"][1]["bytes_per_step"], 10000 * (8 + 16 * 4 + 16 * 4))
        self.assertGreater(res["cases"][1]["keys_per_s"], 0)
        self.assertEqual(os.listdir(self.tmp), [], "the scratch folder was left behind")

    def test_colocated_case_has_no_raw_twin(self):
        jf = os.path.join(self.out, "kv.json")
        r = self.bench("--colocate", "--size", "64KiB", "--workers", "2", "--no-sparse",
                       "--reps", "3", "--json", jf)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(jf) as f:
            (c,) = json.load(f)["cases"]
        self.assertEqual((c["name"], c["servers"], c["colocated"]), ("dense-64KiB-s2w2-colo", 2, True))
        self.assertNotIn("ratio", c)
        self.assertEqual(os.listdir(self.tmp), [])

    def test_a_failed_run_still_removes_its_scratch_folder_and_keys(self):
        # CURVE puts the job's keys (a 0700 folder) in the scratch folder; the results file
        # cannot be written, so the run fails after measuring.
        bad = os.path.join(self.out, "missing-dir", "kv.json")
        r = self.bench("--size", "64KiB", "--servers", "1", "--workers", "1", "--no-sparse",
                       "--reps", "2", "--security", "curve", "--json", bad)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("missing-dir", r.stderr)
        self.assertIn("(CURVE / plain)", r.stdout)
        self.assertEqual(os.listdir(self.tmp), [], "the scratch folder was left behind")

    def test_keep_keeps_the_node_logs(self):
        r = self.bench("--size", "64KiB", "--servers", "1", "--workers", "1", "--no-sparse",
                       "--reps", "2", "--keep")
        self.assertEqual(r.returncode, 0, r.stderr)
        (kept,) = os.listdir(self.tmp)
        self.assertIn(os.path.join(self.tmp, kept), r.stderr)
        logs = sorted(n for _, _, files in os.walk(os.path.join(self.tmp, kept)) for n in files
                      if n.endswith(".log"))
        self.assertEqual(logs, ["echo0.log", "raw0.log", "server0.log", "worker0.log"])

    def test_node_errors_name_what_failed(self):
        # A failed ZeroMQ call is reported with the call's name and zmq's errno text.
        r = self.bench("node", "--role", "raw-client", "--peers", "nonsense://x", "--reps", "1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("zmq_connect nonsense://x: Protocol not supported", r.stderr)
        # The echo's endpoint file goes through the atomic writer, whose errors name the path.
        missing = os.path.join(self.out, "missing-dir", "echo0.addr")
        r = self.bench("node", "--role", "echo", "--addr-file", missing)
        self.assertEqual(r.returncode, 1)
        self.assertIn(missing, r.stderr)

    def test_options_are_checked(self):
        r = self.bench("--help")
        self.assertEqual(r.returncode, 0)
        for opt in ("--size", "--servers", "--workers", "--reps", "--json", "--sparse-keys",
                    "--sparse-dim", "--no-sparse", "--no-dense", "--colocate", "--security",
                    "--quick", "--keep", "node"):
            self.assertIn(opt, r.stdout)
        r = self.bench("--size", "3XB")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unknown size unit 'XB'", r.stderr)
        r = self.bench("--quick", "--size", "1MiB")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("excludes", r.stderr)
        r = self.bench("--size", "3", "--no-sparse")  # less than one float: refused up front
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("dense-0KiB-s1w1: dense table 'bench' needs a size in 1..2^34, got 0",
                      r.stderr)
        r = self.bench("--servers", "0")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--servers", r.stderr)
        r = self.bench("node", "--role", "bogus")
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(os.listdir(self.tmp), [])


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--bench", required=True)
    ARGS, rest = p.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
