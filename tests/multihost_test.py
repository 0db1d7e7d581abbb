#!/usr/bin/python3
"""Multi-host process tests: distopt started the way the README says, one
emulated host per network namespace (scripts/netns-hosts), or by mpirun.

Usage: tests/multihost_test.py --distopt BINARY --repo REPO [-k PATTERN]
Needs root (network namespaces) and `ip`; every namespace a test makes is
removed afterwards, also when it fails. Only traffic between the test's own
namespaces (10.231.x, fd00:231::) or on loopback is ever sent.
"""
import argparse
import array
import json
import math
import os
import shutil
import signal
import subprocess
import struct
import sys
import tempfile
import time
import unittest

ARGS = None
SEED = "examples/fashion_mnist.toml"


def last_eval(metrics_path):
    acc = None
    with open(metrics_path) as f:
        for line in f:
            j = json.loads(line)
            if "test_accuracy" in j:
                acc = j["test_accuracy"]
    return acc


def model_values(path):
    """Every table's floats of a model.bin (train/model_file.h), in table order."""
    with open(path, "rb") as f:
        b = f.read()
    assert b[:8] == b"DOMODEL1", path
    at = 8 + 4 + 8
    (ntables,) = struct.unpack_from("<I", b, at)
    at += 4
    values = array.array("f")
    for _ in range(ntables):
        (n,) = struct.unpack_from("<I", b, at)
        at += 4 + n + 1 + 8 + 4
        (nkeys,) = struct.unpack_from("<Q", b, at)
        at += 8 + 8 * nkeys
        (nvalues,) = struct.unpack_from("<Q", b, at)
        at += 8
        values.frombytes(b[at:at + 4 * nvalues])
        at += 4 * nvalues
    return values


def rel_err(a, ref):
    assert len(a) == len(ref), (len(a), len(ref))
    num = sum((x - y) * (x - y) for x, y in zip(a, ref))
    den = sum(y * y for y in ref)
    return math.sqrt(num / den)


class Hosts:
    """N emulated hosts under a prefix of the test's own."""

    def __init__(self, prefix, n, rate=None):
        self.prefix = prefix
        self.script = os.path.join(ARGS.repo, "scripts", "netns-hosts")
        subprocess.run([self.script, "down", "--prefix", prefix], check=True)
        cmd = [self.script, "up", str(n), "--prefix", prefix]
        if rate:
            cmd += ["--rate", rate]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    def addr(self, i, ipv6=False):
        cmd = [self.script, "addr", str(i), "--prefix", self.prefix] + (["--ipv6"] if ipv6 else [])
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()

    def start(self, i, argv, log):
        with open(log, "w") as out:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(["ip", "netns", "exec", f"{self.prefix}-h{i}"] + argv,
                                    stdout=out, stderr=subprocess.STDOUT)

    def link(self, i, state):
        subprocess.run([self.script, "link", str(i), state, "--prefix", self.prefix], check=True)

    def kill_host(self, i):
        pids = subprocess.run(["ip", "netns", "pids", f"{self.prefix}-h{i}"],
                              capture_output=True, text=True).stdout.split()
        for p in pids:
            try:
                os.kill(int(p), signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def down(self):
        subprocess.run([self.script, "down", "--prefix", self.prefix], check=False)


class Job:
    """One job's nodes: each a `distopt run` on its host, as the README says."""

    def __init__(self, test, hosts, config=SEED, sets=(), security=True):
        self.test, self.hosts, self.config = test, hosts, os.path.join(ARGS.repo, config)
        self.dir = tempfile.mkdtemp(prefix="distopt-mh-")
        self.common = [a for s in sets for a in ("--set", s)]
        if security:
            counts = [a for s in sets if s.startswith("cluster.servers=")
                      for a in ("--servers", s.split("=")[1])]
            subprocess.run([ARGS.distopt, "keygen", self.dir + "/keys", self.config] + counts,
                           check=True, stdout=subprocess.DEVNULL)
            self.common += ["--keys", self.dir + "/keys"]
        self.procs = {}

    def run_dir(self, host):
        return f"{self.dir}/h{host}"

    def start(self, name, host, role, rank=None, coordinator=None, extra=()):
        argv = [ARGS.distopt, "run", "--role", role, "--run-dir", self.run_dir(host)]
        if rank is not None:
            argv += ["--rank", str(rank)]
        if coordinator:
            argv += ["--coordinator", coordinator]
        argv += list(extra) + self.common + [self.config]
        self.procs[name] = self.hosts.start(host, argv, f"{self.dir}/{name.replace('/', '-')}.log")

    def start_seed_layout(self, coordinator, servers_on=(1, 1), workers_on=(2, 2, 3, 3), extra=()):
        self.start("coordinator", 1, "coordinator", extra=extra)
        time.sleep(0.3)
        for r, h in enumerate(servers_on):
            self.start(f"server/{r}", h, "server", r, coordinator, extra)
        for r, h in enumerate(workers_on):
            self.start(f"worker/{r}", h, "worker", r, coordinator, extra)

    def wait(self, timeout=400):
        deadline = time.time() + timeout
        codes = {}
        for name, p in self.procs.items():
            try:
                codes[name] = p.wait(timeout=max(1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = "hung"
        return codes

    def log(self, name):
        with open(f"{self.dir}/{name.replace('/', '-')}.log") as f:
            return f.read()

    def tail(self, name, n=15):
        return "\n".join(self.log(name).splitlines()[-n:])

    def wait_for_metrics(self, host, lines=1, timeout=120):
        path = self.run_dir(host) + "/metrics.jsonl"
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    if sum(1 for _ in f) >= lines:
                        return True
            time.sleep(0.1)
        return False

    def cleanup(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class MultiHostTest(unittest.TestCase):
    prefix = None

    def setUp(self):
        self.hosts = None
        self.job = None

    def tearDown(self):
        if self.job:
            self.job.cleanup()
        if self.hosts:
            self.hosts.down()

    def make(self, n, rate=None, **job):
        self.hosts = Hosts(self.prefix, n, rate)
        self.job = Job(self, self.hosts, **job)
        return self.hosts, self.job

    def assertAllExitedZero(self, codes):
        bad = {name: code for name, code in codes.items() if code != 0}
        self.assertEqual(bad, {}, "\n".join(f"{name} exited {code}:\n{self.job.tail(name)}"
                                            for name, code in bad.items()))


class SeedAcrossHosts(MultiHostTest):
    prefix = "dt-seed"

    def test_seed_job_across_three_hosts_matches_one_host(self):
        sets = ["train.epochs=5"]
        # The same job on one host, as the reference.
        local = tempfile.mkdtemp(prefix="distopt-local-")
        try:
            r = subprocess.run([ARGS.distopt, "train", os.path.join(ARGS.repo, SEED), "--quiet",
                                "--run-dir", local + "/run", "--set", sets[0]],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            one_host = last_eval(local + "/run/metrics.jsonl")
        finally:
            shutil.rmtree(local, ignore_errors=True)
        hosts, job = self.make(3, sets=sets)
        coord = hosts.addr(1) + ":7070"
        job.start_seed_layout(coord)
        # Two intruders on host 3 while the job trains: keys of another job,
        # and no security at all. Neither gets in; the job does not notice.
        other = job.dir + "/other-keys"
        subprocess.run([ARGS.distopt, "keygen", other, job.config], check=True,
                       stdout=subprocess.DEVNULL)
        # The stranger knows the real coordinator's public key (it is public),
        # so it gets as far as the coordinator's allowlist.
        def lines(path):
            return [l for l in open(path).read().splitlines() if l and not l.startswith("#")]
        real = [l for l in lines(job.dir + "/keys/allowlist") if l.startswith("coordinator ")]
        mine = [l for l in lines(other + "/allowlist") if not l.startswith("coordinator ")]
        with open(other + "/allowlist", "w") as f:
            f.write("\n".join(real + mine) + "\n")
        intruders = {}
        for name, extra in (("stranger", ["--keys", other]),
                            ("plain", ["--set", "cluster.security=none"])):
            argv = [ARGS.distopt, "run", "--role", "worker", "--rank", "1", "--coordinator", coord,
                    "--run-dir", f"{job.dir}/{name}", "--set", "cluster.startup_timeout_s=8",
                    "--set", "data.max_train_rows=64"] + extra + [job.config]
            intruders[name] = hosts.start(3, argv, f"{job.dir}/{name}.log")
        codes = job.wait()
        self.assertAllExitedZero(codes)
        for name, p in intruders.items():
            self.assertNotEqual(p.wait(timeout=60), 0, name)
        log = job.log("coordinator")
        self.assertIn(f"refused a connection from {hosts.addr(3)}: its public key", log)
        self.assertIn("failed the CURVE handshake", log)
        # The coordinator's run folder holds the whole job's result.
        result = job.run_dir(1)
        for f in ("metrics.jsonl", "model.bin", "nodes.json", "accuracy_vs_epoch.svg"):
            self.assertTrue(os.path.exists(f"{result}/{f}"), f"{f} missing in {result}")
        acc = last_eval(f"{result}/metrics.jsonl")
        self.assertIsNotNone(acc)
        self.assertLess(abs(acc - one_host), 0.005, f"3 hosts {acc:.4f} vs one host {one_host:.4f}")
        nodes = json.load(open(f"{result}/nodes.json"))
        seen = {(n["role"], n["rank"]): n["registered_from"] for n in nodes}
        self.assertEqual(seen[("worker", 0)], hosts.addr(2))
        self.assertEqual(seen[("worker", 3)], hosts.addr(3))
        for n in nodes:
            self.assertNotIn("127.0.0.1", n["address"], n)
        # Traffic was CURVE: every node said so.
        for name in job.procs:
            self.assertIn("(CURVE, 7 keys allowed)", job.log(name), name)
        # `distopt eval` on the collected model reproduces the logged accuracy.
        ev = subprocess.run([ARGS.distopt, "eval", result, os.path.join(ARGS.repo, SEED)],
                            capture_output=True, text=True, timeout=120)
        self.assertEqual(ev.returncode, 0, ev.stderr)
        self.assertIn(f"accuracy {acc:.4f}", ev.stdout)


class SlowAndBrokenLinks(MultiHostTest):
    prefix = "dt-link"

    def test_a_job_on_100_mbit_links_finishes(self):
        hosts, job = self.make(3, rate="100mbit",
                               sets=["train.epochs=1", "data.max_train_rows=6400"])
        job.start_seed_layout(hosts.addr(1) + ":7070")
        codes = job.wait()
        self.assertAllExitedZero(codes)
        acc = last_eval(job.run_dir(1) + "/metrics.jsonl")
        self.assertGreater(acc, 0.6)

    def test_a_host_link_down_for_5_s_mid_training_does_not_hang_the_job(self):
        hosts, job = self.make(3, sets=["train.epochs=4"])
        job.start_seed_layout(hosts.addr(1) + ":7070")
        self.assertTrue(job.wait_for_metrics(2, lines=2), job.tail("worker/0"))
        hosts.link(3, "down")
        time.sleep(5)
        hosts.link(3, "up")
        codes = job.wait()
        # Documented: an outage shorter than cluster.heartbeat_timeout_ms
        # (10 s) is ridden out; nobody is declared dead.
        self.assertAllExitedZero(codes)
        self.assertNotIn("declared dead", job.log("coordinator"))
        acc = last_eval(job.run_dir(1) + "/metrics.jsonl")
        self.assertGreater(acc, 0.84)


class HostDeath(MultiHostTest):
    """A whole host killed mid-training, with replication 2 and servers on the workers'
    hosts: its servers' partitions fail over to their backups on the other host, and the
    survivors compute the dead workers' slots of every clock (summed as the dead host summed
    them), so BSP ends with exactly the fault-free run's model."""
    prefix = "dt-die"
    SETS = ["train.epochs=4", "data.max_train_rows=24000", "train.log_every_steps=10",
            "cluster.replication=2", "cluster.heartbeat_interval_ms=200",
            "cluster.heartbeat_timeout_ms=1500"]

    def start(self, job, coord, colocated):
        if colocated:
            job.start("coordinator", 1, "coordinator")
            time.sleep(0.3)
            for r, h in enumerate((2, 2, 3, 3)):
                job.start(f"worker/{r}", h, "worker", r, coord)
        else:
            job.start_seed_layout(coord, servers_on=(2, 3))

    def model_after(self, colocated, kill):
        """The model.bin bytes of one run (host 3 killed once it has logged steps, with
        `kill`), and the run's exit codes and coordinator log."""
        sets = self.SETS + (["cluster.placement=process", "cluster.servers=4"] if colocated
                            else [])
        hosts, job = self.make(3, sets=sets)
        self.start(job, hosts.addr(1) + ":7070", colocated)
        killed = 0
        if kill:
            self.assertTrue(job.wait_for_metrics(2, lines=3), job.tail("worker/0"))
            killed = hosts.kill_host(3)
        codes = job.wait()
        log = job.log("coordinator")
        workers = "".join(job.log(f"worker/{r}") for r in range(2))
        with open(job.run_dir(1) + "/model.bin", "rb") as f:
            model = f.read()
        job.cleanup()
        hosts.down()
        self.job = self.hosts = None
        return model, codes, killed, log, workers

    def check(self, colocated):
        clean, codes, _, _, _ = self.model_after(colocated, kill=False)
        self.assertEqual({n: c for n, c in codes.items() if c != 0}, {})
        model, codes, killed, log, workers = self.model_after(colocated, kill=True)
        # Host 3 runs worker/2 and worker/3, and their servers (inside them, or server/1).
        self.assertEqual(killed, 2 if colocated else 3)
        for name, code in codes.items():
            dead = name in ("worker/2", "worker/3", "server/1")
            self.assertEqual(code, -signal.SIGKILL if dead else 0, f"{name}: {code}\n{log[-2000:]}")
        for s in ((2, 3) if colocated else (1,)):
            self.assertIn(f"fails over from server/{s} to its backup server/", log)
        self.assertNotIn("rolling the job back", log)
        self.assertIn("computing the slots of dead worker/2, worker/3 each step", workers)
        self.assertTrue(model == clean, "the model differs from the fault-free run's")

    def test_a_whole_host_dies_and_the_job_ends_with_the_fault_free_model(self):
        self.check(colocated=False)

    def test_a_whole_host_of_workers_with_their_servers_inside_dies_likewise(self):
        self.check(colocated=True)


class Placements(MultiHostTest):
    prefix = "dt-place"
    SETS = ["train.epochs=1", "data.max_train_rows=6400", "train.eval_every_epochs=1"]

    def one_host_model(self):
        local = tempfile.mkdtemp(prefix="distopt-local-")
        try:
            r = subprocess.run([ARGS.distopt, "train", os.path.join(ARGS.repo, SEED), "--quiet",
                                "--run-dir", local + "/run"] +
                               [a for s in self.SETS for a in ("--set", s)],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            return model_values(local + "/run/model.bin")
        finally:
            shutil.rmtree(local, ignore_errors=True)

    def test_every_placement_trains_the_one_host_model(self):
        """BSP across 3 hosts equals the one-host run (rel. error <= 1e-6) for servers of
        their own on host 1 with and without per-host aggregation, and for servers inside
        the workers' processes (2 workers on each of hosts 2 and 3), also with the model cut
        into 8 partitions dealt by host capacity (host 2 says 3, host 3 says 1: 6 and 2)."""
        reference = self.one_host_model()
        process = ["cluster.placement=process", "cluster.servers=4"]
        cases = [("process, aggregated", process, True),
                 ("process, 8 partitions by capacity", process + ["cluster.partitions=8"], True),
                 ("separate, aggregated", [], True),
                 ("separate, not aggregated", ["cluster.host_aggregation=off"], False)]
        for name, sets, aggregated in cases:
            with self.subTest(placement=name):
                hosts, job = self.make(3, sets=self.SETS + sets)
                coord = hosts.addr(1) + ":7070"
                by_capacity = "cluster.partitions=8" in sets
                if "cluster.placement=process" in sets:
                    job.start("coordinator", 1, "coordinator")
                    time.sleep(0.3)
                    for r, h in enumerate((2, 2, 3, 3)):
                        capacity = ["--set", f"cluster.capacity={3 if h == 2 else 1}"]
                        job.start(f"worker/{r}", h, "worker", r, coord,
                                  capacity if by_capacity else ())
                else:
                    job.start_seed_layout(coord)
                codes = job.wait()
                self.assertAllExitedZero(codes)
                err = rel_err(model_values(job.run_dir(1) + "/model.bin"), reference)
                self.assertLessEqual(err, 1e-6, name)
                logs = "".join(job.log(f"worker/{r}") for r in range(4))
                self.assertEqual("per-host aggregation: led" in logs, aggregated, name)
                if aggregated:
                    self.assertIn("0 to the servers instead", logs)
                if by_capacity:
                    shares = job.log("coordinator")
                    self.assertIn("8 partition(s) over 4 server(s)", shares)
                    self.assertIn(f"host {hosts.addr(2)} (capacity 3, server/0 3, server/1 3)",
                                  shares)
                    self.assertIn(f"host {hosts.addr(3)} (capacity 1, server/2 1, server/3 1)",
                                  shares)
                job.cleanup()
                hosts.down()
                self.job = self.hosts = None


class PerHostCheckpoints(MultiHostTest):
    prefix = "dt-ckpt"

    def test_checkpoints_in_per_host_folders_and_resume(self):
        sets = ["train.epochs=4", "train.checkpoint_every_steps=234", "train.keep_checkpoints=2"]
        hosts, job = self.make(3, sets=sets)
        coord = hosts.addr(1) + ":7070"
        # Servers on their own hosts: no folder is shared with the coordinator.
        job.start_seed_layout(coord, servers_on=(2, 3))
        deadline = time.time() + 120
        while "checkpoint 468 complete" not in job.log("coordinator") and time.time() < deadline:
            time.sleep(0.2)
        self.assertIn("checkpoint 468 complete", job.log("coordinator"))
        time.sleep(0.5)  # the manifest copies reach the servers
        for h in (1, 2, 3):
            hosts.kill_host(h)
        job.wait(timeout=30)
        step = "checkpoints/step-0000000468"
        self.assertTrue(os.path.exists(f"{job.run_dir(1)}/{step}/MANIFEST"))
        self.assertEqual([f for f in os.listdir(f"{job.run_dir(1)}/{step}") if f != "MANIFEST"], [])
        for h, rank in ((2, 0), (3, 1)):
            files = sorted(os.listdir(f"{job.run_dir(h)}/{step}"))
            self.assertIn("MANIFEST", files, f"host {h}")
            self.assertTrue(all(f == "MANIFEST" or f.startswith(f"server-{rank}.") for f in files),
                            files)
        # Every node again, the coordinator with --resume: the job goes on from 468.
        job.procs = {}
        job.start("coordinator", 1, "coordinator", extra=["--resume"])
        time.sleep(0.3)
        for r, h in enumerate((2, 3)):
            job.start(f"server/{r}", h, "server", r, coord)
        for r, h in enumerate((2, 2, 3, 3)):
            job.start(f"worker/{r}", h, "worker", r, coord)
        codes = job.wait()
        self.assertAllExitedZero(codes)
        self.assertIn("(step 468)", job.log("coordinator"))
        self.assertIn("restored checkpoint 468", job.log("server/1"))
        acc = last_eval(job.run_dir(1) + "/metrics.jsonl")
        self.assertGreater(acc, 0.85)
        # Old checkpoints are pruned on every host to train.keep_checkpoints.
        for h in (1, 2, 3):
            self.assertLessEqual(len(os.listdir(f"{job.run_dir(h)}/checkpoints")), 2, f"host {h}")


class Addresses(MultiHostTest):
    prefix = "dt-addr"

    def test_a_node_advertising_loopback_from_another_host_is_named(self):
        hosts, job = self.make(2, sets=["cluster.workers=1", "cluster.servers=1",
                                        "cluster.startup_timeout_s=4"])
        coord = hosts.addr(1) + ":7070"
        job.start("coordinator", 1, "coordinator")
        time.sleep(0.3)
        job.start("server/0", 1, "server", 0, coord)
        job.start("worker/0", 2, "worker", 0, coord, ["--advertise-host", "127.0.0.1"])
        codes = job.wait(timeout=60)
        self.assertNotEqual(codes["coordinator"], 0)
        self.assertIn(f"worker/0 registered from {hosts.addr(2)} but advertised 127.0.0.1: "
                      "unreachable", job.log("coordinator"))

    def test_an_ipv6_job_trains(self):
        hosts, job = self.make(2, sets=["cluster.workers=2", "cluster.servers=1", "train.epochs=1",
                                        "data.max_train_rows=6400"])
        coord = "[" + hosts.addr(1, ipv6=True) + "]:7070"
        job.start("coordinator", 1, "coordinator")
        time.sleep(0.3)
        job.start("server/0", 1, "server", 0, coord)
        job.start("worker/0", 2, "worker", 0, coord)
        job.start("worker/1", 2, "worker", 1, coord)
        codes = job.wait()
        self.assertAllExitedZero(codes)
        self.assertIn("reachable at tcp://[" + hosts.addr(2, ipv6=True) + "]:", job.log("worker/0"))
        self.assertIsNotNone(last_eval(job.run_dir(1) + "/metrics.jsonl"))


class Mpirun(unittest.TestCase):
    def test_mpirun_starts_the_whole_job_with_one_command(self):
        if shutil.which("mpirun") is None:
            self.fail("mpirun is missing (scripts/install-deps installs openmpi-bin)")
        d = tempfile.mkdtemp(prefix="distopt-mpi-")
        try:
            # One command line for all 7 ranks; roles come from OMPI_COMM_WORLD_RANK.
            cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "7",
                   "--mca", "btl", "self,tcp", ARGS.distopt, "run", "--port", "7391",
                   "--run-dir", d + "/run", "--set", "train.epochs=2",
                   os.path.join(ARGS.repo, SEED)]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
            self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
            self.assertIn("started by openmpi as global rank 0", r.stderr)
            self.assertIn("[worker/3] started by openmpi as global rank 6", r.stderr)
            acc = last_eval(d + "/run/metrics.jsonl")
            self.assertGreater(acc, 0.8)
            # 8 ranks for a 7-rank job: an error at start-up naming the numbers.
            cmd[cmd.index("7")] = "8"
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("started 8 ranks, but the job needs 7", r.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--distopt", required=True)
    ap.add_argument("--repo", required=True)
    ARGS, rest = ap.parse_known_args()
    ARGS.distopt = os.path.abspath(ARGS.distopt)
    ARGS.repo = os.path.abspath(ARGS.repo)
    if os.geteuid() != 0:
        print("multihost_test: needs root for network namespaces")
        sys.exit(1)
    prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    r = prog.result
    failed = len(r.failures) + len(r.errors)
    print(f"{r.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
