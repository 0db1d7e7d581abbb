"""Summaries (min / median / max), ratios, the markdown report and the plots."""
import os

from . import svg
from .runner import stats

TARGETS_DOC = "issue 5"


def med(values):
    return stats(values)["median"]


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def f_ratio(r, digits=2):
    return "-" if r is None else f"{r:.{digits}f}x"


def f_num(x, unit="", digits=3):
    if x is None:
        return "-"
    if abs(x) >= 1e6:
        return f"{x / 1e6:.{digits}g}M{unit}"
    if abs(x) >= 1e4:
        return f"{x / 1e3:.{digits}g}k{unit}"
    return f"{x:.{digits}g}{unit}"


def f_stat(s, unit="", digits=3):
    """'median (min-max)' or '-'."""
    if not s or s["n"] == 0:
        return "-"
    if s["n"] == 1:
        return f_num(s["median"], unit, digits)
    return f"{f_num(s['median'], unit, digits)} ({f_num(s['min'], '', digits)}-{f_num(s['max'], '', digits)})"


def f_pct(s):
    if not s or s["n"] == 0:
        return "-"
    if s["n"] == 1:
        return f"{s['median']:.0%}"
    return f"{s['median']:.0%} ({s['min']:.0%}-{s['max']:.0%})"


def others_cores(rec, cores):
    """Cores' worth of CPU that processes other than ours used while rec ran."""
    if not rec.get("wall_s"):
        return None
    return max(0.0, rec["machine_busy"] * cores - rec["cpu_s"] / rec["wall_s"])


def field(runs, name):
    return stats([r.get(name) for r in runs])


# ---------------------------------------------------------------- summaries

def summarize_seed(seed, cores):
    out = {}
    for key in seed["order"]:
        runs = seed["runs"][key]
        reached = [r for r in runs if r.get("time_to_target_s") is not None]
        out[key] = {
            "label": seed["labels"][key],
            "samples_per_s": field(runs, "samples_per_s"),
            "time_to_target_s": field(runs, "time_to_target_s"),
            "train_time_to_target_s": field(runs, "train_time_to_target_s"),
            "epochs_to_target": field(runs, "epochs_to_target"),
            "final_test_acc": field(runs, "final_test_acc"),
            "best_test_acc": stats([max((p["test_acc"] for p in r.get("per_epoch", [])), default=None)
                                    for r in runs]),
            "command_s": field(runs, "wall_s"),
            "train_busy": field(runs, "train_busy"),
            "others_cores": stats([others_cores(r, cores) for r in runs]),
            "reached": len(reached), "runs": len(runs),
            "errors": sum(1 for r in runs if r.get("error")),
        }
    ddp = out.get("torch_ddp")
    single = out.get("torch_single")
    for v in out.values():
        v["samples_vs_ddp"] = ratio(v["samples_per_s"]["median"], ddp and ddp["samples_per_s"]["median"])
        v["time_vs_ddp"] = ratio(v["time_to_target_s"]["median"], ddp and ddp["time_to_target_s"]["median"])
        v["samples_vs_single"] = ratio(v["samples_per_s"]["median"],
                                       single and single["samples_per_s"]["median"])
    return out


def sum_series(series):
    out = {}
    for k, s in series.items():
        o = {kk: vv for kk, vv in s.items() if not isinstance(vv, list)}
        for kk, vv in s.items():
            if isinstance(vv, list):
                o[kk] = stats(vv)
        out[k] = o
    return out


def summarize_train_grid(scaling, cores):
    grid = {}
    for key, g in scaling["train"].items():
        runs = g["runs"]
        grid[key] = {"servers": g["servers"], "workers": g["workers"],
                     "samples_per_s": field(runs, "samples_per_s"), "step_ms": field(runs, "step_ms"),
                     "machine_busy": field(runs, "train_busy"),
                     "others_cores": stats([others_cores(r, cores) for r in runs]),
                     "errors": sum(1 for r in runs if r.get("error"))}
    ddp = {}
    for key, g in scaling["ddp"].items():
        runs = g["runs"]
        ddp[key] = {"workers": g["workers"], "samples_per_s": field(runs, "samples_per_s"),
                    "step_ms": field(runs, "step_ms"), "machine_busy": field(runs, "train_busy"),
                    "errors": sum(1 for r in runs if r.get("error"))}
    return grid, ddp


# ---------------------------------------------------------------- markdown

def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def met(r, goal, higher_better):
    if r is None:
        return "n/a"
    ok = r >= goal if higher_better else r <= goal
    return "**yes**" if ok else "no"


def floats_name(n):
    return f"{n / (1 << 20):g}M"


def build(results, out_dir, stem):
    """Returns the markdown text; writes the SVG plots next to it."""
    meta = results["meta"]
    cores = meta["cores"]
    s = results.setdefault("summary", {})
    md = []
    md.append(f"# distopt vs. peers: {meta['date']}{' (quick smoke run)' if meta['quick'] else ''}\n")
    md.append(f"`{meta['command'].strip()}`: {meta['started']} to {meta['finished']} "
              f"({meta['duration_min']:.0f} min), cases: {', '.join(meta['only'])}.\n")
    la0, la1 = meta["loadavg_start"], meta["loadavg_end"]
    md.append(
        f"- **Machine**: {cores} cores ({meta['cpu_model']}), {meta['mem_gib']:.0f} GiB RAM, "
        f"{meta['os']}. **Load average** (1/5/15 min) at start {la0[0]:.2f} / {la0[1]:.2f} / "
        f"{la0[2]:.2f}, at end {la1[0]:.2f} / {la1[1]:.2f} / {la1[2]:.2f}. The machine is shared "
        f"with other engineers' builds and tests: the tables give, per case, how many cores' worth "
        f"of CPU *other* processes used while it ran (\"others\").")
    md.append(f"- **distopt**: `{meta['distopt']['path']}` (sha256 {meta['distopt']['sha256'][:12]}, "
              f"built {meta['distopt']['mtime']}), copied before the run so that a concurrent rebuild "
              f"cannot change it mid-run; tree at {meta['git']['head']} with "
              f"{meta['git']['dirty_files']} uncommitted file(s).")
    if "bench_kv" in meta:  # results written before the benchmark had its own binary lack it
        md.append(f"- **distopt-bench-kv**: `{meta['bench_kv']['path']}` (sha256 "
                  f"{meta['bench_kv']['sha256'][:12]}), copied the same way.")
    info = meta.get("peers", {})
    blas = info.get("blas") or {}
    loaded = ", ".join(os.path.basename(p) for p in blas.get("loaded", [])) or "?"
    md.append(f"- **PyTorch** {info.get('torch', '?')} (Debian `python3-torch`); BLAS: torch built "
              f"with {', '.join(blas.get('torch_build', [])) or '?'} (calls `libblas.so.3`), "
              f"loaded: {loaded}; one compute thread per process "
              f"(`OMP/OPENBLAS/MKL_NUM_THREADS=1`, `torch.set_num_threads(1)`).")
    md.append(f"- **OpenMPI** {meta.get('openmpi', '?')}. Every process count, batch and optimizer "
              f"as in `bench/README.md` (fairness rules).")
    md.append(f"- **Repetitions**: {meta['reps']} of every case (separate launches, systems "
              f"interleaved within a repetition); figures are `median (min-max)` over them; ratios "
              f"are ratios of medians.{meta.get('reps_note', '')}\n")

    targets = []
    sections = []

    if "seed" in results:
        seed = results["seed"]
        sm = summarize_seed(seed, cores)
        s["seed"] = sm
        ddp = sm.get("torch_ddp")
        for key in ("distopt_bsp_s1", "distopt_bsp_s2", "distopt_ssp2_s2"):
            if key not in sm or ddp is None:
                continue
            v = sm[key]
            targets.append([f"seed: samples/s, {v['label']} / PyTorch DDP", f_ratio(v["samples_vs_ddp"]),
                            ">= 2x", met(v["samples_vs_ddp"], 2.0, True),
                            f_stat(v["samples_per_s"]), f_stat(ddp["samples_per_s"])])
            targets.append([f"seed: time to {seed['target']:.0%}, {v['label']} / PyTorch DDP",
                            f_ratio(v["time_vs_ddp"]), "<= 0.5x", met(v["time_vs_ddp"], 0.5, False),
                            f_stat(v["time_to_target_s"], " s") + ("" if v["reached"] == v["runs"]
                                                                    else f" [{v['reached']}/{v['runs']} reached]"),
                            f_stat(ddp["time_to_target_s"], " s")])
        rows = []
        for key in seed["order"]:
            v = sm[key]
            rows.append([v["label"], f_ratio(v["samples_vs_ddp"]), f_ratio(v["time_vs_ddp"]),
                         f_ratio(v["samples_vs_single"]), f_stat(v["samples_per_s"]),
                         f_stat(v["time_to_target_s"]), f"{v['reached']}/{v['runs']}",
                         f_stat(v["epochs_to_target"]), f_stat(v["train_time_to_target_s"]),
                         f_stat(v["best_test_acc"]), f_stat(v["command_s"]),
                         f_pct(v["train_busy"]), f_stat(v["others_cores"], "", 2)
                         + (f" ({v['errors']} failed)" if v["errors"] else "")])
        sections.append(
            f"## 1. Seed model: MLP 784-128-10, Fashion-MNIST, 4 workers x batch 64\n\n"
            + table(["system", "samples/s vs DDP", f"time to {seed['target']:.0%} vs DDP",
                     "samples/s vs 1 process", "samples/s", f"time to {seed['target']:.0%} (s)",
                     "reached", "epochs to target", "training s to target", "best test acc",
                     "command s", "machine busy while training", "others (cores)"], rows)
            + "\n\n"
            f"samples/s = training samples of all workers / training time (the steps only, "
            f"evaluation excluded). Time to {seed['target']:.0%} = wall time from the start of "
            f"training (after data loading and process start-up) to the end of the first evaluation "
            f"at or above it, evaluations included; `command s` is the whole command (process start, "
            f"data loading, training, saving). Up to {seed['epochs_max']} epochs, stopping at the "
            f"target. distopt BSP and DDP: SGD momentum 0.9, lr 0.1 cosine to 0.001 over 3510 updates "
            f"(`examples/fashion_mnist.toml`); PyTorch 1 process: batch 64, lr 0.025 cosine over its "
            f"15 x 937 updates. distopt SSP(2): `{' '.join('--set ' + x for x in seed['ssp_sets'])}` "
            f"(each push is one update of a batch-64 gradient, so the per-sample settings of the "
            f"1-process run; the toml's lr 0.1 diverges under SSP). The initial weights differ "
            f"(distopt: its own seeded init, scale 0.01; PyTorch: its default init), so the epochs to "
            f"the target can differ even where the arithmetic is the same.\n")

    if "dense" in results:
        d = results["dense"]
        ss = sum_series(d["series"])
        s["dense"] = ss
        rows, raw_rows = [], []
        for n in d["floats"]:
            for w in d["workers"]:
                tcp = ss.get(f"mpi_tcp|w{w}|{n}")
                shm = ss.get(f"mpi_default|w{w}|{n}")
                gl = ss.get(f"gloo|w{w}|{n}")
                placements = list(d["servers"]) + (["colo"] if d.get("colocate") else [])
                for srv in placements:
                    colo = srv == "colo"
                    ours = ss.get(f"distopt-colo|w{w}|{n}" if colo else f"distopt|s{srv}|w{w}|{n}")
                    om = ours and ours["step_ms"]["median"]
                    rows.append([floats_name(n), w, f"{w}, co-located" if colo else srv,
                                 f_ratio(ratio(om, tcp and tcp["step_ms"]["median"])),
                                 f_ratio(ratio(om, shm and shm["step_ms"]["median"])),
                                 f_ratio(ratio(om, gl and gl["step_ms"]["median"])),
                                 f_stat(ours and ours["step_ms"]), f_stat(tcp and tcp["step_ms"]),
                                 f_stat(shm and shm["step_ms"]), f_stat(gl and gl["step_ms"]),
                                 f_stat(ours and ours.get("ratio_raw"))])
                    if n == 16 << 20 and w == 4 and ours:
                        where = ("4 servers co-located in the workers' processes" if colo else
                                 f"{srv} server{'s' if srv > 1 else ''}")
                        targets.append([f"dense 16M floats, 4 workers: distopt step ({where}) / OpenMPI tcp",
                                        f_ratio(ratio(om, tcp and tcp["step_ms"]["median"])), "<= 1.0x",
                                        met(ratio(om, tcp and tcp["step_ms"]["median"]), 1.0, False),
                                        f_stat(ours["step_ms"], " ms"), f_stat(tcp and tcp["step_ms"], " ms")])
                        targets.append([f"(report) same / OpenMPI default (shared memory)",
                                        f_ratio(ratio(om, shm and shm["step_ms"]["median"])), "-", "-",
                                        f_stat(ours["step_ms"], " ms"), f_stat(shm and shm["step_ms"], " ms")])
            for srv in d["servers"]:
                one = ss.get(f"distopt|s{srv}|w1|{n}")
                if one:
                    raw_rows.append([f"{4 * n >> 20} MiB", srv, 1, f_stat(one["ratio_raw"]),
                                     f_stat(one["step_ms"]), f_stat(one["raw_step_ms"])])
                    if n == 4 << 20 and srv == 1:
                        targets.append(["dense push+pull 16 MiB, 1 server 1 worker / raw ZeroMQ "
                                        "(distopt-bench-kv ratio, GB/s)", f_ratio(one["ratio_raw"]["median"]),
                                        ">= 0.8x", met(one["ratio_raw"]["median"], 0.8, True),
                                        f_stat(one["step_ms"], " ms"), f_stat(one["raw_step_ms"], " ms")])
        others = stats([others_cores(r, cores) for r in d["kv_runs"]])
        sections.append(
            "## 2. Dense aggregation: one step, every worker ends with the aggregate\n\n"
            + table(["floats", "workers", "distopt servers", "vs MPI tcp", "vs MPI default (shm)",
                     "vs gloo", "distopt step ms", "MPI tcp ms", "MPI default ms", "gloo ms",
                     "distopt / raw ZeroMQ (GB/s)"], rows)
            + "\n\ndistopt: `distopt-bench-kv --size B --servers S --workers W --no-sparse` for B in "
            + ", ".join(f"{4 * n >> 20}MiB" for n in d["floats"]) + ", S in "
            + ", ".join(map(str, d["servers"])) + ", W in 1, " + ", ".join(map(str, d["workers"]))
            + " (one launch per case): BSP push of the gradient + pull of the updated parameters (SGD on the "
            "servers), separate processes over ZeroMQ tcp on 127.0.0.1; rows `W, co-located`: the "
            "same with `--colocate`: every worker process also hosts one of W servers and reaches "
            "it without a socket (its slice never leaves the process), the others over tcp; "
            "step time = the slowest "
            "worker's mean over the launch's timed steps (3 untimed first). Peers: "
            "`MPI_Allreduce` / gloo `all_reduce` of the same floats (SUM, in place), one launch = 2 "
            "untimed + " + str(results["meta"]["plan"]["peer_reps"]) + " timed calls, each after a "
            "barrier, timed on the slowest rank; a launch's figure is its median call. MPI default = "
            "pml ob1 + btl vader (shared memory); MPI tcp = `--mca pml ob1 --mca btl self,tcp` "
            f"(loopback). Others' load during the distopt launches: {f_stat(others, ' cores', 2)}.\n\n"
            "One worker, against a raw ZeroMQ round trip of the same bytes between the same "
            "processes (`distopt-bench-kv`'s ceiling):\n\n"
            + table(["size", "servers", "workers", "distopt / raw ZeroMQ (GB/s)", "distopt step ms",
                     "raw ZeroMQ ms"], raw_rows) + "\n")

    if "sparse" in results:
        sp = results["sparse"]
        ss = sum_series(sp["series"])
        s["sparse"] = ss
        base = ss.get("distopt-sparse|s1|w4")
        rows, pts_ours, pts_raw = [], [], []
        for srv in sp["servers"]:
            v = ss.get(f"distopt-sparse|s{srv}|w4")
            if not v:
                continue
            k = v["keys_per_s"]
            rows.append([srv, f_ratio(ratio(k["median"], base and base["keys_per_s"]["median"])),
                         f_stat(v["ratio_raw"]), f_stat(k), f_stat(v["step_ms"]),
                         f_stat(v["ceiling_keys_per_s"])])
            pts_ours.append((srv, k["median"], k["min"], k["max"]))
            c = v["ceiling_keys_per_s"]
            pts_raw.append((srv, c["median"], c["min"], c["max"]))
        plot = f"{stem}-sparse.svg"
        _write(out_dir, plot, svg.line_chart(
            "Sparse push+pull, 4 workers x 100k keys x dim 16", "servers", "keys/s (all workers)",
            [{"name": "distopt", "points": pts_ours},
             {"name": "raw ZeroMQ (ceiling)", "points": pts_raw, "dashed": True}],
            xticks=sp["servers"], note="median of the launches, whiskers min-max"))
        sections.append(
            "## 3. Sparse: 4 workers each push and pull 100k keys x dim 16\n\n"
            + table(["servers", "keys/s vs 1 server", "distopt / raw ZeroMQ", "keys/s (all workers)",
                     "step ms", "raw ZeroMQ keys/s"], rows)
            + f"\n\n![sparse]({plot})\n\n"
            "`distopt-bench-kv --no-dense --servers " + ",".join(map(str, sp["servers"]))
            + " --workers 4`; keys/s = 4 x 100k / step time. **Keys are drawn uniformly** over 10M "
            "(the issue asks for a power law; `distopt-bench-kv` has no power-law option yet): with "
            "uniform keys a push has almost no duplicate keys, where a power law would have many, "
            "so this is the harder case for bytes moved and the easier one for server-side "
            "contention on hot keys. Rows are created on first touch, so the first steps also "
            "insert.\n")

    if "scaling" in results:
        sc = results["scaling"]
        grid, ddp = summarize_train_grid(sc, cores)
        s["scaling_train"], s["scaling_ddp"] = grid, ddp
        rows = []
        for w in sc["workers"]:
            best = max((grid[f"s{srv}|w{w}"]["samples_per_s"]["median"] or 0
                        for srv in sc["servers"] if f"s{srv}|w{w}" in grid), default=None)
            dd = ddp.get(f"w{w}")
            row = [w, f_ratio(ratio(best, dd and dd["samples_per_s"]["median"]))]
            for srv in sc["servers"]:
                g = grid.get(f"s{srv}|w{w}")
                row.append(f"{f_stat(g and g['samples_per_s'])} / {f_stat(g and g['step_ms'], '', 3)}")
            row.append(f"{f_stat(dd and dd['samples_per_s'])} / {f_stat(dd and dd['step_ms'], '', 3)}")
            busy = [grid[f"s{srv}|w{w}"]["machine_busy"]["median"] for srv in sc["servers"]
                    if f"s{srv}|w{w}" in grid and grid[f"s{srv}|w{w}"]["machine_busy"]["n"]]
            oth = [grid[f"s{srv}|w{w}"]["others_cores"]["median"] for srv in sc["servers"]
                   if f"s{srv}|w{w}" in grid and grid[f"s{srv}|w{w}"]["others_cores"]["n"]]
            lo, hi = (f"{min(busy):.0%}", f"{max(busy):.0%}") if busy else ("-", "-")
            row.append(lo if lo == hi else f"{lo}-{hi}")
            row.append(f"{min(oth):.2f}-{max(oth):.2f}" if oth else "-")
            rows.append(row)
        plot1, plot2, plot3 = f"{stem}-scaling-samples.svg", f"{stem}-scaling-step.svg", f"{stem}-growth.svg"
        ser_s, ser_t = [], []
        for srv in sc["servers"]:
            pts = [(w, *(lambda x: (x["median"], x["min"], x["max"]))(grid[f"s{srv}|w{w}"]["samples_per_s"]))
                   for w in sc["workers"] if f"s{srv}|w{w}" in grid]
            ser_s.append({"name": f"distopt BSP, {srv} server{'s' if srv > 1 else ''}", "points": pts})
            pts = [(w, *(lambda x: (x["median"], x["min"], x["max"]))(grid[f"s{srv}|w{w}"]["step_ms"]))
                   for w in sc["workers"] if f"s{srv}|w{w}" in grid]
            ser_t.append({"name": f"distopt BSP, {srv} server{'s' if srv > 1 else ''}", "points": pts})
        ser_s.append({"name": "PyTorch DDP (gloo)", "dashed": True, "points": [
            (w, ddp[f"w{w}"]["samples_per_s"]["median"], ddp[f"w{w}"]["samples_per_s"]["min"],
             ddp[f"w{w}"]["samples_per_s"]["max"]) for w in sc["workers"] if f"w{w}" in ddp]})
        ser_t.append({"name": "PyTorch DDP (gloo)", "dashed": True, "points": [
            (w, ddp[f"w{w}"]["step_ms"]["median"], ddp[f"w{w}"]["step_ms"]["min"],
             ddp[f"w{w}"]["step_ms"]["max"]) for w in sc["workers"] if f"w{w}" in ddp]})
        note = f"{cores} cores; batch 64 per worker; median of the runs, whiskers min-max"
        _write(out_dir, plot1, svg.line_chart("Seed model: training samples/s vs workers", "workers",
                                              "samples/s (all workers)", ser_s, xticks=sc["workers"],
                                              note=note))
        _write(out_dir, plot2, svg.line_chart("Seed model: time per step vs workers", "workers",
                                              "ms per step (one global batch of 64 x W)", ser_t,
                                              xticks=sc["workers"], note=note))
        gs = sum_series(sc["growth"]["series"])
        s["growth"] = gs
        gfloats = sorted({v["floats"] for v in gs.values() if "floats" in v})
        gser = []
        for name, pref in (("distopt 1 server, 1 worker", "distopt|s1|w1|"),
                           ("distopt 1 server, 4 workers", "distopt|s1|w4|"),
                           ("distopt 2 servers, 4 workers", "distopt|s2|w4|"),
                           ("OpenMPI default (shm), 4 ranks", "mpi_default|w4|"),
                           ("OpenMPI tcp, 4 ranks", "mpi_tcp|w4|"),
                           ("gloo all_reduce, 4 ranks", "gloo|w4|")):
            pts = [(n, gs[pref + str(n)]["step_ms"]["median"], gs[pref + str(n)]["step_ms"]["min"],
                    gs[pref + str(n)]["step_ms"]["max"]) for n in gfloats if pref + str(n) in gs]
            if pts:
                gser.append({"name": name, "points": pts, "dashed": not name.startswith("distopt")})
        raw = [(n, gs[f"distopt|s1|w4|{n}"]["raw_step_ms"]["median"], None, None)
               for n in gfloats if f"distopt|s1|w4|{n}" in gs]
        if raw:
            gser.append({"name": "raw ZeroMQ, 1 echo, 4 clients", "points": raw, "dashed": True})
        _write(out_dir, plot3, svg.line_chart("Dense step time vs model size", "floats per worker",
                                              "ms per step", gser, logx=True, logy=True,
                                              note="push+pull (distopt) or all-reduce (peers); median, whiskers min-max"))
        grows = []
        for n in gfloats:
            def g(k):
                v = gs.get(k)
                return v and v["step_ms"]
            o1, o4, tcp, shm = g(f"distopt|s1|w4|{n}"), g(f"distopt|s2|w4|{n}"), g(f"mpi_tcp|w4|{n}"), g(f"mpi_default|w4|{n}")
            grows.append([floats_name(n), f"{4 * n >> 20} MiB",
                          f_ratio(ratio(o1 and o1["median"], tcp and tcp["median"])),
                          f_ratio(ratio(o4 and o4["median"], tcp and tcp["median"])),
                          f_stat(g(f"distopt|s1|w1|{n}")), f_stat(o1), f_stat(o4),
                          f_stat(tcp), f_stat(shm), f_stat(g(f"gloo|w4|{n}"))])
        big = results["meta"]["plan"].get("big_floats")
        sections.append(
            f"## 4. Scaling\n\n### Workers and servers (seed model, BSP, {sc['epochs']} epoch"
            f"{'s' if sc['epochs'] > 1 else ''} per run)\n\n"
            + table(["workers", "best distopt / DDP (samples/s)"]
                    + [f"distopt {srv} server{'s' if srv > 1 else ''}: samples/s / ms per step"
                       for srv in sc["servers"]]
                    + ["PyTorch DDP: samples/s / ms per step", "machine busy while training (distopt)",
                       "others (cores)"], rows)
            + f"\n\n![samples/s vs workers]({plot1})\n![step time vs workers]({plot2})\n\n"
            "`distopt train examples/fashion_mnist.toml --set cluster.workers=W --set "
            "cluster.servers=S --set train.epochs=" + str(sc["epochs"]) + "`, lr 0.025 x W (linear "
            "scaling rule, as torch_mlp.py). ms per step = training time / global steps (one step = "
            "every worker's batch of 64). Machine busy = share of all cores busy (any process, from "
            "/proc/stat) during the training loop; others = cores' worth of CPU used by processes "
            "not ours over the whole command.\n\n"
            "### Dense model size (push+pull or all-reduce of N floats per worker)\n\n"
            + table(["floats", "bytes", "distopt 1s4w vs MPI tcp", "distopt 2s4w vs MPI tcp",
                     "distopt 1s1w ms", "distopt 1s4w ms", "distopt 2s4w ms", "MPI tcp W=4 ms",
                     "MPI default W=4 ms", "gloo W=4 ms"], grows)
            + f"\n\n![step time vs size]({plot3})\n\n"
            + (f"The {floats_name(big)}-float point takes ~2 s per step at 4 workers: each launch "
               f"times {results['meta']['plan']['big_inner_reps']} steps (distopt) or calls (peers) "
               f"instead of 15 / {results['meta']['plan']['peer_reps']}, still "
               f"{results['meta']['reps']} launches.\n" if big else ""))

    if results.get("hosts", {}).get("markdown"):
        # bench/multihost's own tables, one heading down.
        body = results["hosts"]["markdown"].split("\n", 1)[1].lstrip("\n")
        sections.append("## 5. Across hosts (bench/multihost)\n\n" + body)

    md.append("## Targets (" + TARGETS_DOC + ")\n")
    md.append(table(["target", "ratio (of medians)", "goal", "met", "distopt median (min-max)",
                     "peer median (min-max)"], targets) if targets else "(no target case ran)")
    md.append("")
    md.append(limits_text(results, cores))
    md.extend(sections)
    fails = results.get("failures", [])
    if fails:
        md.append("## Failures\n")
        for f in fails:
            md.append(f"- {f['what']}: {f['error']}")
        md.append("")
    return "\n".join(md) + "\n"


def limits_text(results, cores):
    """Where the machine, not the design, bounds the numbers: computed from this run."""
    s = results.get("summary", {})
    lines = ["## Where this machine is the limit\n"]
    allruns = []
    for sec in ("seed",):
        for runs in results.get(sec, {}).get("runs", {}).values():
            allruns += runs
    for g in list(results.get("scaling", {}).get("train", {}).values()) + \
            list(results.get("scaling", {}).get("ddp", {}).values()):
        allruns += g["runs"]
    for sec in ("dense", "sparse"):
        allruns += results.get(sec, {}).get("kv_runs", [])
    oth = stats([others_cores(r, cores) for r in allruns])
    if oth["n"]:
        lines.append(
            f"- **Other processes** (other engineers' builds and tests) used "
            f"{oth['median']:.2f} cores' worth of CPU (median over the {oth['n']} training and "
            f"kv launches; {oth['min']:.2f}-{oth['max']:.2f}) of the {cores} while this ran. "
            f"Absolute figures are what was left to the benchmark; all systems ran interleaved "
            f"under the same conditions, so the ratios are the comparison.")
    grid = s.get("scaling_train")
    if grid:
        sc = results["scaling"]
        for srv in sc["servers"]:
            pts = {w: grid[f"s{srv}|w{w}"]["samples_per_s"]["median"] for w in sc["workers"]
                   if f"s{srv}|w{w}" in grid and grid[f"s{srv}|w{w}"]["samples_per_s"]["median"]}
            busy = {w: grid[f"s{srv}|w{w}"]["machine_busy"]["median"] for w in pts}
            if len(pts) >= 2:
                seq = ", ".join(f"W={w}: {v / 1e3:.1f}k ({busy[w]:.0%} busy)" for w, v in pts.items())
                lines.append(f"- Training, {srv} server{'s' if srv > 1 else ''}: {seq}.")
        lines.append(
            f"  Every worker is one compute thread and every server, worker and the coordinator "
            f"is a process with a ZeroMQ I/O thread, all on {cores} cores: beyond W = {cores} "
            f"workers (fewer once servers need CPU) added workers only time-share the same cores, "
            f"so samples/s cannot grow with W here however the system is designed; where the "
            f"machine is ~100% busy the figure measures the machine. What the design controls is "
            f"the CPU spent per sample (compare the 1-worker point with DDP's), and the overhead "
            f"per step at fixed cores.")
    growth = s.get("growth")
    dense = s.get("dense")
    src = dense or growth
    if src:
        rr = [(v["floats"], v["servers"], v["workers"], v["ratio_raw"]["median"])
              for v in src.values() if v.get("system") == "distopt" and "ratio_raw" in v
              and v["ratio_raw"]["median"] is not None]
        if rr:
            big = [x for x in sorted(rr) if x[0] >= 4 << 20] or sorted(rr)
            hi = [f"{floats_name(n)} floats {sv}s{w}w {r:.2f}" for n, sv, w, r in big]
            lines.append(
                "- Dense: distopt's GB/s as a share of a raw ZeroMQ round trip of the same bytes "
                "between the same processes (`distopt-bench-kv`'s ceiling): " + ", ".join(hi) + ". Where "
                "this is near 1 the loopback TCP stack and memory bandwidth of this machine bound "
                "the step, not distopt's code; with 4 workers and 1-2 servers on 2 cores the server "
                "side cannot run in parallel with all workers' sends. MPI's default transport "
                "(shared memory, no TCP stack) is a bound distopt over TCP cannot reach on one "
                "host; the multi-host comparison is the tcp one.")
    if dense:
        n = 16 << 20
        tcp = dense.get(f"mpi_tcp|w4|{n}")
        for srv in (1, 2):
            v = dense.get(f"distopt|s{srv}|w4|{n}")
            if v and tcp and tcp["step_ms"]["median"]:
                raw, ours, t = v["raw_step_ms"]["median"], v["step_ms"]["median"], tcp["step_ms"]["median"]
                lines.append(
                    f"- Dense 16M floats, 4 workers, {srv} server{'s' if srv > 1 else ''}: a raw ZeroMQ "
                    f"round trip of the same traffic (every worker sends its 64 MiB to the "
                    f"server{'s' if srv > 1 else ''} and gets 64 MiB back) takes {raw:.0f} ms = "
                    f"{raw / t:.2f}x OpenMPI tcp's {t:.0f} ms, and distopt takes {ours:.0f} ms "
                    f"({raw / ours:.2f} of that ceiling). The parameter-server traffic pattern "
                    f"(all 2 x 4 x 64 MiB through {srv} process{'es' if srv > 1 else ''}' sockets) "
                    f"over loopback TCP bounds the step, not distopt's per-byte overhead; a ring "
                    f"all-reduce moves 2(W-1)/W x 64 MiB per rank, spread over all ranks. Reaching "
                    f"<= 1.0x needs fewer bytes through each socket, not a faster copy.")
        colo = dense.get(f"distopt-colo|w4|{n}")
        if colo and tcp and tcp["step_ms"]["median"]:
            ours, t = colo["step_ms"]["median"], tcp["step_ms"]["median"]
            lines.append(
                f"- Dense 16M floats, 4 workers, 4 servers co-located in the workers' processes: "
                f"{ours:.0f} ms = {ours / t:.2f}x OpenMPI tcp's {t:.0f} ms. Each process now sends "
                f"and receives 3 x 16 MiB per step over loopback TCP (its own slice stays in the "
                f"process), the bytes of a reduce-scatter + all-gather: the same traffic as MPI's "
                f"ring, in 2 message rounds instead of 2(W-1). Against MPI's shared-memory default "
                f"({dense.get(f'mpi_default|w4|{n}', {}).get('step_ms', {}).get('median', float('nan')):.0f} ms) "
                f"the TCP stack's copies remain the difference.")
    sp = s.get("sparse")
    if sp:
        vals = [(v["servers"], v["keys_per_s"]["median"], v["ratio_raw"]["median"]) for v in sp.values()]
        vals.sort()
        lines.append("- Sparse, 4 workers: " + ", ".join(
            f"{sv} server{'s' if sv > 1 else ''} {k / 1e6:.2f}M keys/s ({r:.2f} of raw)" for sv, k, r in vals)
            + f". With 4 workers + S servers on {cores} cores, more servers add parallelism "
            f"only where a core is idle; beyond that they split the same CPU."
            + (" Here distopt reaches only a small share of a raw ZeroMQ round trip of the same "
               "bytes: that gap is distopt's own work per key (client-side split by server and "
               "reassembly, the servers' hash-table lookups, inserts and per-row optimizer "
               "updates), not the machine's." if max(r for _, _, r in vals) < 0.5 else ""))
    lines.append("")
    return "\n".join(lines)


def _write(out_dir, name, text):
    with open(os.path.join(out_dir, name), "w") as f:
        f.write(text)
