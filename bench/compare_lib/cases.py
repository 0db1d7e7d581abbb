"""The four cases of bench/compare: what runs, in which order, and how each output is read.

Every case interleaves its systems inside each repetition (rep 1 of all systems, then rep 2 of
all, ...) so that a change in the machine's load during the run (it is shared) spreads over all
systems instead of landing on one.
"""
import json
import math
import os
import subprocess
import sys

from .runner import json_lines, last_json

TOML = "examples/fashion_mnist.toml"
TRAIN_ROWS = 60000
BATCH = 64
TARGET = 0.88
MiB = 1 << 20


def steps_per_epoch(workers, batch=BATCH):
    """Full global batches per epoch (distopt's global_order drops the remainder; so does
    torch_mlp.py): floor(ceil(60000 / W) / 64) = 937, 468, 234, 117 for W = 1, 2, 4, 8."""
    return math.ceil(TRAIN_ROWS / workers) // batch


class Plan:
    """What a full (or --quick) run measures."""

    def __init__(self, quick, reps=None):
        self.quick = quick
        self.reps = reps or (1 if quick else 5)
        if quick:
            self.seed_epochs = 2
            self.dense_floats = [1 << 20]
            self.dense_workers = [2]
            self.dense_servers = [1]
            self.kv_reps = 5
            self.peer_reps = 3
            self.sparse_servers = [1, 2]
            self.sparse_reps = 3
            self.scaling_workers = [1, 2]
            self.scaling_servers = [1]
            self.scaling_epochs = 1
            self.big_floats = None
        else:
            self.seed_epochs = 15
            self.dense_floats = [1 << 20, 4 << 20, 16 << 20]
            self.dense_workers = [2, 4]
            self.dense_servers = [1, 2]
            self.kv_reps = None  # distopt-bench-kv's own: 60 steps below 8 MiB, 15 from 8 MiB
            self.peer_reps = 10
            self.sparse_servers = [1, 2, 4]
            self.sparse_reps = None  # distopt-bench-kv's own: 15
            self.scaling_workers = [1, 2, 4, 8]
            self.scaling_servers = [1, 2, 4]
            self.scaling_epochs = 2
            self.big_floats = 64 << 20  # the growth curve's last point (256 MiB)
            self.big_inner_reps = 5     # steps / calls per launch at that size (~2 s each at W=4)

    def to_json(self):
        return dict(self.__dict__)


class Ctx:
    def __init__(self, root, distopt, bench_kv, tmp, runner, plan):
        self.root, self.distopt, self.tmp, self.runner, self.plan = root, distopt, tmp, runner, plan
        self.bench_kv = bench_kv  # the distopt-bench-kv binary (bench/kv)
        self.peers = os.path.join(root, "bench", "peers")
        self.counter = 0
        self.info = {}  # torch version, BLAS, ... as the peers report them

    def scratch(self, name):
        self.counter += 1
        return os.path.join(self.tmp, f"{self.counter:04d}-{name}")


def _fmt_k(x):
    return "-" if x is None else (f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.1f}")


def _base(res):
    return {k: res[k] for k in ("wall_s", "cpu_s", "machine_busy", "load_before", "load_after")
            } | ({"error": res["error"]} if "error" in res else {})


# ---------------------------------------------------------------- training runs

def parse_distopt_metrics(path, target=TARGET):
    """Reads a distopt run folder's metrics.jsonl (train records written once per epoch, at
    its last step: train.log_every_steps = steps per epoch).

    Training time of epoch e = elapsed_s of its last train record - elapsed_s of the evaluation
    of epoch e-1 (0 for e = 1): the steps of the epoch, evaluation excluded. samples/s = training
    samples of all workers / the sum of those times (torch_mlp.py's definition). Time to target
    = elapsed_s of the first evaluation at or above target (evaluations included; elapsed_s
    counts from the worker's training start, after the data is loaded)."""
    recs = []
    with open(path) as f:
        for line in f:
            if line.strip():
                recs.append(json.loads(line))
    start = next(r for r in recs if r.get("type") == "start")
    done = next((r for r in recs if r.get("type") == "done"), None)
    spe, workers, batch = start["steps_per_epoch"], start["workers"], start["batch_size"]
    trains = [r for r in recs if r.get("type") == "train"]
    evals = {r["epoch"]: r for r in recs if r.get("type") == "eval"}
    epoch_times, epoch_rates, aligned = [], [], True
    prev_end = 0.0
    for tr in trains:
        if tr["step"] % spe != 0:
            aligned = False
            continue
        e = tr["step"] // spe
        begin = evals[e - 1]["elapsed_s"] if (e - 1) in evals else prev_end
        epoch_times.append(tr["elapsed_s"] - begin)
        epoch_rates.append(tr["samples_per_s"])
        prev_end = tr["elapsed_s"]
    samples = len(epoch_times) * spe * batch * workers
    train_s = sum(epoch_times)
    hit = next((evals[e] for e in sorted(evals) if evals[e].get("test_accuracy", 0) >= target), None)
    out = {
        "steps_per_epoch": spe, "workers": workers, "epochs": len(epoch_times),
        "train_s": round(train_s, 4),
        "samples_per_s": round(samples / train_s, 1) if train_s > 0 and aligned else None,
        "records_samples_per_s": [round(r, 1) for r in epoch_rates],
        "step_ms": round(train_s / (len(epoch_times) * spe) * 1e3, 4) if epoch_times else None,
        "per_epoch": [{"epoch": e, "test_acc": evals[e].get("test_accuracy"),
                       "elapsed_s": round(evals[e]["elapsed_s"], 3)} for e in sorted(evals)],
        "time_to_target_s": round(hit["elapsed_s"], 3) if hit else None,
        "epochs_to_target": hit["epoch"] if hit else None,
        "train_time_to_target_s": round(sum(epoch_times[:hit["epoch"]]), 3) if hit else None,
        "final_test_acc": evals[max(evals)].get("test_accuracy") if evals else None,
    }
    # Wall-clock window of the training loop (start record's time + the done record's elapsed_s).
    out["window"] = [start["time"], start["time"] + (done or (trains or [{"elapsed_s": 0}])[-1])["elapsed_s"]]
    if not aligned:
        out["note"] = "train records not at epoch ends; samples/s unavailable"
    return out


def distopt_train(ctx, what, servers, workers, epochs, sets=(), target=True):
    spe = steps_per_epoch(workers)
    run_dir = ctx.scratch(f"train-s{servers}w{workers}")
    argv = [ctx.distopt, "train", TOML, "--run-dir", run_dir, "--quiet",
            "--set", f"cluster.workers={workers}", "--set", f"cluster.servers={servers}",
            "--set", f"train.log_every_steps={spe}", "--set", f"train.epochs={epochs}"]
    if target:
        argv += ["--set", "train.target_metric=test_accuracy", "--set", f"train.target={TARGET}"]
    for s in sets:
        argv += ["--set", s]
    res = ctx.runner.run(argv, timeout=1800, cwd=ctx.root, what=what)
    rec = _base(res) | {"run_dir": run_dir}
    mpath = os.path.join(run_dir, "metrics.jsonl")
    if "error" not in res or os.path.exists(mpath):
        try:
            rec |= parse_distopt_metrics(mpath)
            rec["train_busy"] = res["sampler"].busy_between(*rec["window"])
        except (OSError, StopIteration, KeyError, ValueError) as e:
            rec["error"] = rec.get("error", "") + f" unreadable metrics: {e}"
    return rec


def torch_train(ctx, what, mode, world, epochs, target=True):
    argv = [os.path.join(ctx.peers, "torch_mlp.py"), "--mode", mode, "--batch", str(BATCH),
            "--max-epochs", str(epochs), "--target-acc", str(TARGET)]
    if mode == "ddp":
        argv += ["--world", str(world)]
    if target:
        argv += ["--stop-at-target"]
    res = ctx.runner.run(argv, timeout=1800, cwd=ctx.peers, what=what)
    rec = _base(res)
    j = last_json(res["stdout"])
    if j is None:
        rec.setdefault("error", "no JSON result line")
        return rec
    hit = next((p for p in j["per_epoch"] if p["test_acc"] >= TARGET), None)
    steps = j["steps"]
    train_s = steps * j["global_batch"] / j["samples_per_s"] if j["samples_per_s"] else None
    rec |= {"samples_per_s": j["samples_per_s"], "epochs": j["epochs"],
            "train_s": round(train_s, 4) if train_s else None,
            "step_ms": round(train_s / steps * 1e3, 4) if train_s else None,
            "time_to_target_s": j["time_to_target_s"],
            "train_time_to_target_s": j["train_time_to_target_s"],
            "epochs_to_target": hit["epoch"] if hit else None,
            "final_test_acc": j["final_test_acc"], "per_epoch": j["per_epoch"],
            "lr": j["lr"], "min_lr": j["min_lr"], "schedule": j["schedule"]}
    # Its training loop ends just before the process exits (only the process group's teardown
    # follows): the window is the last elapsed_s before the end of the command (approximate).
    if j["per_epoch"]:
        rec["train_busy"] = res["sampler"].busy_between(res["t_end"] - j["per_epoch"][-1]["elapsed_s"],
                                                        res["t_end"])
    ctx.info.setdefault("torch", j.get("torch"))
    ctx.info.setdefault("blas", j.get("blas"))
    ctx.info.setdefault("torch_threads", j.get("threads"))
    return rec


def _train_line(rec):
    if rec.get("error"):
        return f"error: {rec['error']}"
    t = rec.get("time_to_target_s")
    tt = f"{TARGET:.0%} at {t:.1f} s (epoch {rec['epochs_to_target']})" if t else \
        f"{TARGET:.0%} not reached (final {rec.get('final_test_acc')})"
    busy = rec.get("train_busy")
    return (f"{_fmt_k(rec.get('samples_per_s'))} samples/s, {tt}; command {rec['wall_s']:.1f} s, "
            f"machine busy {'?' if busy is None else f'{busy:.0%}'} while training")


# SSP applies every push on arrival: one update per worker batch of 64, not one per global batch
# of 256. The BSP settings of the toml (lr 0.1 per update of the mean of 4 gradients) make it
# diverge (test accuracy 10%); per-sample-equivalent settings are lr 0.1/4 = 0.025 (what
# torch_mlp.py uses for batch 64 in one process) and the cosine spread over 4x the updates.
SSP_SETS = ("cluster.consistency=ssp", "cluster.staleness=2", "optimizer.lr=0.025",
            "optimizer.schedule.total_steps=14040")


def seed_configs(plan):
    e = plan.seed_epochs
    return [
        ("distopt_bsp_s1", "distopt BSP, 1 server", lambda c, w: distopt_train(c, w, 1, 4, e)),
        ("distopt_bsp_s2", "distopt BSP, 2 servers", lambda c, w: distopt_train(c, w, 2, 4, e)),
        ("distopt_ssp2_s2", "distopt SSP(2), 2 servers",
         lambda c, w: distopt_train(c, w, 2, 4, e, sets=SSP_SETS)),
        ("torch_ddp", "PyTorch DDP (gloo), 4 processes", lambda c, w: torch_train(c, w, "ddp", 4, e)),
        ("torch_single", "PyTorch, 1 process", lambda c, w: torch_train(c, w, "single", 1, e)),
    ]


def run_seed(ctx):
    plan = ctx.plan
    cfgs = seed_configs(plan)
    runs = {k: [] for k, _, _ in cfgs}
    n, total = 0, plan.reps * len(cfgs)
    for rep in range(plan.reps):
        for key, label, fn in cfgs:
            n += 1
            ctx.runner.log(f"seed {n}/{total}: {label}, rep {rep + 1}/{plan.reps}")
            rec = fn(ctx, f"seed {label} rep {rep + 1}")
            runs[key].append(rec)
            ctx.runner.log(f"  {_train_line(rec)}")
    return {"labels": {k: l for k, l, _ in cfgs}, "order": [k for k, _, _ in cfgs],
            "epochs_max": plan.seed_epochs, "target": TARGET, "ssp_sets": list(SSP_SETS),
            "runs": runs}


# ---------------------------------------------------------------- distopt-bench-kv

def _size_arg(nbytes):
    return f"{nbytes // MiB}MiB" if nbytes % MiB == 0 else str(nbytes)


def kv_bench(ctx, what, sizes_bytes, servers, workers, reps=None, sparse=False, colocate=False):
    """distopt-bench-kv, one launch per case (size x servers x workers).

    One case per launch: fresh processes and a fresh scratch folder for every case, as in the
    results committed so far. (A multi-case launch once read a previous case's dead echo
    address from a shared --addr-file and hung; bench/kv/driver.cc now gives every
    measurement its own folder, but the one-launch-per-case figures stay comparable.)"""
    bases, cases = [], []
    grid = [(b, s, w) for b in (sizes_bytes or [None]) for s in servers for w in workers]
    for b, s, w in grid:
        jf = ctx.scratch("kv") + ".json"
        argv = [ctx.bench_kv]
        if b is not None:
            argv += ["--size", _size_arg(b)]
        argv += ["--servers", str(s), "--workers", str(w),
                 "--no-dense" if sparse else "--no-sparse", "--json", jf]
        if reps:
            argv += ["--reps", str(reps)]
        if colocate:
            argv += ["--colocate"]  # one server in each worker's process (S = W)
        big = (b or 0) * w >= 256 * MiB
        res = ctx.runner.run(argv, timeout=1200 if big else 300, cwd=ctx.tmp,
                             what=f"{what}: {' '.join(argv[1:-2])}")
        bases.append(_base(res))
        if os.path.exists(jf):
            with open(jf) as f:
                cases += json.load(f)["cases"]
        for line in res["stdout"].splitlines():
            if line.startswith(("dense-", "sparse-")):
                ctx.runner.log("  " + line)
    return bases, cases


def _add(series, key, **fields):
    s = series.setdefault(key, {k: v for k, v in fields.items() if not isinstance(v, list)})
    for k, v in fields.items():
        if isinstance(v, list):
            s.setdefault(k, []).extend(v)


def _collect_kv(series, cases):
    for c in cases:
        if c["kind"] == "dense" and c.get("colocated"):
            floats = int(c["bytes_per_step"] / c["workers"] / 8)
            _add(series, f"distopt-colo|w{c['workers']}|{floats}", system="distopt_colo",
                 servers=c["servers"], workers=c["workers"], floats=floats, inner_reps=c["reps"],
                 step_ms=[c["step_ms"]], gbps=[c["gbps"]])
        elif c["kind"] == "dense":
            key = f"distopt|s{c['servers']}|w{c['workers']}|{int(c['bytes_per_step'] / c['workers'] / 8)}"
            _add(series, key, system="distopt", servers=c["servers"], workers=c["workers"],
                 floats=int(c["bytes_per_step"] / c["workers"] / 8), inner_reps=c["reps"],
                 step_ms=[c["step_ms"]], raw_step_ms=[c["raw_step_ms"]], ratio_raw=[c["ratio"]],
                 gbps=[c["gbps"]])
        else:
            key = f"distopt-sparse|s{c['servers']}|w{c['workers']}"
            _add(series, key, system="distopt", servers=c["servers"], workers=c["workers"],
                 inner_reps=c["reps"], step_ms=[c["step_ms"]], raw_step_ms=[c["raw_step_ms"]],
                 ratio_raw=[c["ratio"]], keys_per_s=[c["keys_per_s"]],
                 ceiling_keys_per_s=[c["ceiling_keys_per_s"]], gbps=[c["gbps"]])


def _collect_allreduce(series, system, j):
    if not j:
        return
    for r in j["results"]:
        key = f"{system}|w{j['world']}|{r['floats']}"
        _add(series, key, system=system, workers=j["world"], floats=r["floats"], inner_reps=j["reps"],
             step_ms=[r["median_s"] * 1e3], best_ms=[r["min_s"] * 1e3], worst_ms=[r["max_s"] * 1e3])


def peers_allreduce(ctx, series, world, floats, reps, label):
    fl = ",".join(map(str, floats))
    res = ctx.runner.run([os.path.join(ctx.peers, "torch_allreduce.py"), "--world", str(world),
                          "--floats", fl, "--reps", str(reps)], timeout=1200, cwd=ctx.peers,
                         what=f"{label} gloo W={world}")
    j = last_json(res["stdout"])
    _collect_allreduce(series, "gloo", j)
    if j:
        ctx.info.setdefault("torch", j.get("torch"))
    res = ctx.runner.run([os.path.join(ctx.peers, "run_mpi.sh"), str(world), "--floats", fl,
                          "--reps", str(reps)], timeout=1200, cwd=ctx.peers,
                         what=f"{label} MPI W={world}")
    for j in json_lines(res["stdout"]):
        _collect_allreduce(series, "mpi_" + j.get("transport", "default"), j)
    for sysname in ("gloo", "mpi_default", "mpi_tcp"):
        parts = []
        for n in floats:
            s = series.get(f"{sysname}|w{world}|{n}")
            if s and s.get("step_ms"):
                parts.append(f"{n / (1 << 20):g}M {s['step_ms'][-1]:.2f} ms")
        ctx.runner.log(f"  {sysname} W={world}: " + ", ".join(parts))


def run_dense(ctx, workers=None):
    plan = ctx.plan
    workers = workers or plan.dense_workers
    series, runs = {}, []
    sizes = [4 * n for n in plan.dense_floats]
    for rep in range(plan.reps):
        tag = f"rep {rep + 1}/{plan.reps}"
        ctx.runner.log(f"dense {tag}: distopt-bench-kv, {len(sizes)} sizes x servers "
                       f"{plan.dense_servers} x workers {[1] + workers}")
        base, cases = kv_bench(ctx, f"dense distopt {tag}", sizes, plan.dense_servers,
                               [1] + workers, reps=plan.kv_reps)
        runs += base
        _collect_kv(series, cases)
        ctx.runner.log(f"dense {tag}: distopt-bench-kv --colocate (a server in each worker's "
                       f"process), workers {workers}")
        base, cases = kv_bench(ctx, f"dense distopt co-located {tag}", sizes, [1], workers,
                               reps=plan.kv_reps, colocate=True)
        runs += base
        _collect_kv(series, cases)
        for w in workers:
            ctx.runner.log(f"dense {tag}: gloo all_reduce and MPI_Allreduce, W={w}")
            peers_allreduce(ctx, series, w, plan.dense_floats, plan.peer_reps, f"dense {tag}")
    return {"floats": plan.dense_floats, "workers": workers, "servers": plan.dense_servers,
            "colocate": True, "series": series, "kv_runs": runs}


def run_sparse(ctx):
    plan = ctx.plan
    series, runs = {}, []
    for rep in range(plan.reps):
        tag = f"rep {rep + 1}/{plan.reps}"
        ctx.runner.log(f"sparse {tag}: distopt-bench-kv --no-dense, servers {plan.sparse_servers}, 4 workers")
        base, cases = kv_bench(ctx, f"sparse {tag}", [], plan.sparse_servers, [4],
                               reps=plan.sparse_reps, sparse=True)
        runs += base
        _collect_kv(series, cases)
    return {"servers": plan.sparse_servers, "workers": 4, "keys": 100000, "dim": 16,
            "key_space": 10_000_000, "key_distribution": "uniform", "series": series, "kv_runs": runs}


def run_scaling(ctx, dense=None):
    plan = ctx.plan
    train, ddp = {}, {}
    e = plan.scaling_epochs
    grid = [(w, s) for w in plan.scaling_workers for s in plan.scaling_servers]
    for rep in range(plan.reps):
        for w, s in grid:
            ctx.runner.log(f"scaling rep {rep + 1}/{plan.reps}: distopt BSP W={w} S={s}, {e} epoch(s)")
            # lr by the linear scaling rule (0.025 per 64 samples), as torch_mlp.py's default.
            rec = distopt_train(ctx, f"scaling distopt W={w} S={s}", s, w, e, target=False,
                                sets=(f"optimizer.lr={0.025 * w:g}",
                                      f"optimizer.schedule.total_steps={e * steps_per_epoch(w)}"))
            train.setdefault(f"s{s}|w{w}", {"servers": s, "workers": w, "runs": []})["runs"].append(rec)
            ctx.runner.log(f"  {_train_line(rec)}")
        for w in plan.scaling_workers:
            ctx.runner.log(f"scaling rep {rep + 1}/{plan.reps}: PyTorch DDP W={w}, {e} epoch(s)")
            rec = torch_train(ctx, f"scaling ddp W={w}", "ddp", w, e, target=False)
            ddp.setdefault(f"w{w}", {"workers": w, "runs": []})["runs"].append(rec)
            ctx.runner.log(f"  {_train_line(rec)}")
    # Dense model growth: the dense case's sizes (run here if the dense case was not), plus one
    # larger size.
    if dense is None:
        ctx.runner.log("scaling: the dense case did not run; measuring its sizes for W=4 here")
        dense = run_dense(ctx, workers=[4])
    growth = {"series": {k: v for k, v in dense["series"].items()
                         if v.get("workers") in (1, 4)}, "big_runs": []}
    if plan.big_floats:
        nb = plan.big_floats
        for rep in range(plan.reps):
            tag = f"rep {rep + 1}/{plan.reps}"
            ctx.runner.log(f"scaling growth {tag}: {4 * nb // MiB} MiB, distopt S=1,2 x W=1,4 "
                           f"({plan.big_inner_reps} steps), gloo and MPI W=4 ({plan.big_inner_reps} calls)")
            base, cases = kv_bench(ctx, f"growth distopt {tag}", [4 * nb], [1, 2], [1, 4],
                                   reps=plan.big_inner_reps)
            growth["big_runs"] += base
            _collect_kv(growth["series"], cases)
            peers_allreduce(ctx, growth["series"], 4, [nb], plan.big_inner_reps, f"growth {tag}")
    return {"epochs": e, "workers": plan.scaling_workers, "servers": plan.scaling_servers,
            "train": train, "ddp": ddp, "growth": growth}


def run_hosts(ctx):
    """Issue 11's hosts case: bench/multihost (the seed job per placement and 16M floats, across
    3 emulated hosts at each link speed, beside DDP and gloo on the same namespaces)."""
    out = os.path.join(ctx.tmp, "hosts")
    argv = [os.path.join(ctx.root, "bench", "multihost"), "--distopt", ctx.distopt,
            "--bench-kv", ctx.bench_kv, "--out", out]
    if ctx.plan.quick:
        argv += ["--links", "unshaped", "--placements", "process", "--epochs", "1"]
    ctx.runner.log("hosts: " + " ".join(argv))
    done = subprocess.run(argv, stdout=sys.stderr)
    if done.returncode != 0:
        ctx.runner.failures.append({"what": "hosts", "error": f"bench/multihost exited {done.returncode}"})
        return {}
    with open(out + ".json") as f:
        res = json.load(f)
    with open(out + ".md") as f:
        res["markdown"] = f.read()
    return res
