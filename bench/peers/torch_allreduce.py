#!/usr/bin/python3
"""Peer: torch.distributed gloo all_reduce (SUM, in place) of N float32 across --world
processes on 127.0.0.1. Per size: --warmup untimed calls, then --reps timed calls; each call
starts after a barrier, and its time is the slowest rank's. The buffer is refilled with 1.0
before every call (untimed) and the result checked. Last stdout line: one JSON object.
"""
import argparse
import os
import statistics
import time

import common  # sets the thread environment before torch is imported
import torch
import torch.distributed as dist


def run(rank, args, queue):
    common.one_thread()
    dist.init_process_group("gloo", rank=rank, world_size=args.world)
    results = []
    for n in args.floats:
        x = torch.empty(n, dtype=torch.float32)
        t = torch.zeros(1, dtype=torch.float64)
        times = []
        for rep in range(args.warmup + args.reps):
            x.fill_(1.0)
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(x, op=dist.ReduceOp.SUM)
            t[0] = time.perf_counter() - t0
            dist.all_reduce(t, op=dist.ReduceOp.MAX)  # slowest rank
            if x[0].item() != args.world or x[-1].item() != args.world:
                raise SystemExit(f"rank {rank}: wrong all_reduce result {x[0].item()}")
            if rep >= args.warmup:
                times.append(t.item())
        results.append(summary(n, times, args.world))
    if rank == 0:
        queue.put({"program": "torch_allreduce", "backend": "gloo", "transport": "tcp " + os.environ.get("MASTER_ADDR", "127.0.0.1"),
                   "torch": torch.__version__,
                   "world": args.world, "warmup": args.warmup, "reps": args.reps,
                   "threads": common.threads_info(), "results": results})
    dist.destroy_process_group()


def summary(n, times, world):
    """Same fields as mpi_allreduce.cc. algbw = bytes / time; busbw = algbw * 2(W-1)/W."""
    nbytes = 4 * n
    med = statistics.median(times)
    algbw = nbytes / med / 1e9
    return {"floats": n, "bytes": nbytes, "min_s": round(min(times), 9), "median_s": round(med, 9),
            "max_s": round(max(times), 9),
            "algbw_GBps": round(algbw, 4), "algbw_best_GBps": round(nbytes / min(times) / 1e9, 4),
            "busbw_GBps": round(algbw * 2 * (world - 1) / world, 4)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", type=int, default=2, help="processes (default 2)")
    p.add_argument("--floats", default="16777216",
                   help="comma list of float32 counts (default 16777216 = 64 MiB)")
    p.add_argument("--reps", type=int, default=10, help="timed calls per size (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per size (default 2)")
    p.add_argument("--rank", type=int, default=None,
                   help="run only this rank, in this process, joining the others at "
                        "MASTER_ADDR:MASTER_PORT (one process per host, as across hosts)")
    args = p.parse_args()
    args.floats = [int(s) for s in args.floats.split(",") if s]
    if args.rank is not None:
        import queue as q
        out = q.SimpleQueue()
        run(args.rank, args, out)
        if args.rank == 0:
            common.emit(out.get())
    else:
        common.emit(common.run_world(run, args, args.world))


if __name__ == "__main__":
    main()
