#!/usr/bin/python3
"""Peer: PyTorch training of distopt's seed model (MLP 784-128-10 on Fashion-MNIST).

--mode single : one process, plain PyTorch.
--mode ddp    : --world W processes (torch.multiprocessing), DistributedDataParallel over
                gloo on 127.0.0.1; rank r trains on its shard of a per-epoch deterministic
                shuffle (as torch's DistributedSampler does), gradients are averaged.
Optimizer as in examples/fashion_mnist.toml: SGD with momentum (PyTorch's rule = distopt's:
buf = m*buf + g; w -= lr*buf), lr on a cosine from --lr to --min-lr over the updates of
--max-epochs epochs (a constant lr plateaus at 87.5-88% test accuracy at global batch 256
within 15 epochs; see README.md). Every step is a full batch (the epoch's remainder is dropped).
One compute thread per process. The last stdout line is one JSON object with the results.
"""
import argparse
import gzip
import math
import os
import sys
import time

import common  # sets the thread environment before torch is imported
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data_dir, split):
    x = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0)
    return x, torch.from_numpy(y.astype(np.int64))


def shard(n, world, rank, epoch, seed):
    """DistributedSampler(shuffle=True, drop_last=False): same permutation on every rank,
    padded to a multiple of world, rank takes every world-th index."""
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    idx = torch.randperm(n, generator=g)
    total = math.ceil(n / world) * world
    idx = torch.cat([idx, idx[: total - n]])
    return idx[rank:total:world]


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    return acc


def run(rank, args):
    common.one_thread()
    ddp = args.mode == "ddp"
    world = args.world if ddp else 1
    if ddp:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    xtr, ytr = load(args.data, "train")
    xte, yte = load(args.data, "t10k")
    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    net = nn.parallel.DistributedDataParallel(model) if ddp else model
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=args.momentum)

    per_epoch, train_time, samples, t_target, train_t_target = [], 0.0, 0, None, None
    # Lives until after the process group is gone: torch 1.13 deadlocks at teardown when a gloo
    # thread frees the last reference of a Python-owned tensor while ~ProcessGroupGloo holds the GIL.
    acc_t = torch.zeros(1)
    steps_per_epoch = math.ceil(len(xtr) / world) // args.batch  # full batches only (drop_last)
    step, total_steps = 0, args.max_epochs * steps_per_epoch
    if ddp:
        dist.barrier()
    t0 = time.perf_counter()
    for epoch in range(1, args.max_epochs + 1):
        idx = shard(len(xtr), world, rank, epoch, args.seed)
        if ddp:
            dist.barrier()
        ts = time.perf_counter()
        for i in range(steps_per_epoch):
            b = idx[i * args.batch:(i + 1) * args.batch]
            step += 1
            if args.schedule == "cosine":  # distopt's formula; step 1 is the first update
                cos = math.cos(math.pi * min(1.0, step / total_steps))
                opt.param_groups[0]["lr"] = args.min_lr + (args.lr - args.min_lr) * 0.5 * (1 + cos)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(xtr[b]), ytr[b]).backward()
            opt.step()
        if ddp:
            dist.barrier()  # every rank finished the epoch
        train_time += time.perf_counter() - ts
        samples += steps_per_epoch * args.batch * world
        acc_t[0] = accuracy(model, xte, yte) if rank == 0 else 0.0
        if ddp:
            dist.broadcast(acc_t, 0)
        acc = acc_t.item()
        elapsed = time.perf_counter() - t0
        per_epoch.append({"epoch": epoch, "test_acc": round(acc, 4), "elapsed_s": round(elapsed, 3)})
        if rank == 0:
            print(f"epoch {epoch} test_acc {acc:.4f} elapsed {elapsed:.2f}s "
                  f"train {samples / train_time:.0f} samples/s", file=sys.stderr, flush=True)
        if t_target is None and acc >= args.target_acc:
            t_target, train_t_target = elapsed, train_time
            if args.stop_at_target:
                break
    result = None
    if rank == 0:
        result = {
            "program": "torch_mlp", "mode": args.mode, "world": world, "batch": args.batch,
            "global_batch": args.batch * world, "lr": args.lr, "momentum": args.momentum,
            "schedule": args.schedule, "min_lr": args.min_lr, "steps": step,
            "epochs": len(per_epoch), "samples_per_s": round(samples / train_time, 1),
            "target_acc": args.target_acc,
            "time_to_target_s": None if t_target is None else round(t_target, 3),
            "train_time_to_target_s": None if t_target is None else round(train_t_target, 3),
            "final_test_acc": per_epoch[-1]["test_acc"], "per_epoch": per_epoch,
            "torch": torch.__version__, "blas": common.blas_info(),
            "threads": common.threads_info(),
        }
    if ddp:
        dist.destroy_process_group()
    return result


def spawned(rank, args, queue):
    result = run(rank, args)
    if rank == 0:
        queue.put(result)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["single", "ddp"], default="single")
    p.add_argument("--world", type=int, default=4, help="processes in ddp mode (default 4)")
    p.add_argument("--batch", type=int, default=64, help="per-worker batch (default 64)")
    p.add_argument("--lr", type=float, default=None,
                   help="peak SGD learning rate (default 0.025 * global batch / 64: 0.1 at 4 x 64)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                   help="learning rate per update: cosine from --lr to --min-lr over --max-epochs "
                        "(distopt's 'cosine', total_steps = those updates; default), or constant")
    p.add_argument("--min-lr", type=float, default=0.001, help="cosine's final lr (default 0.001)")
    p.add_argument("--target-acc", type=float, default=0.88, help="test accuracy target (default 0.88)")
    p.add_argument("--max-epochs", type=int, default=15)
    p.add_argument("--stop-at-target", action="store_true", help="stop after the epoch reaching the target")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--data", default=DATA, help=f"Fashion-MNIST IDX .gz folder (default {DATA})")
    p.add_argument("--rank", type=int, default=None,
                   help="ddp: run only this rank, in this process, joining the others at "
                        "MASTER_ADDR:MASTER_PORT (one process per host, as across hosts)")
    args = p.parse_args()
    if args.lr is None:  # linear scaling rule (Goyal et al. 2017)
        args.lr = 0.025 * args.batch * (args.world if args.mode == "ddp" else 1) / 64

    if args.mode == "single":
        common.emit(run(0, args))
    elif args.rank is not None:
        result = run(args.rank, args)
        if args.rank == 0:
            common.emit(result)
    else:
        common.emit(common.run_world(spawned, args, args.world))


if __name__ == "__main__":
    main()
