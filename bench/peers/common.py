"""Shared helpers of the PyTorch peers: one compute thread, free port, BLAS report, JSON."""
import os

# Must happen before torch (and its BLAS) is imported: one compute thread per process.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"
os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")

import json  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402

import torch  # noqa: E402


def one_thread():
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def threads_info():
    return {"torch_intra_op": torch.get_num_threads(),
            "torch_inter_op": torch.get_num_interop_threads(),
            **{v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}


def blas_info():
    """BLAS torch was built against (its config) and the BLAS libraries actually mapped."""
    cfg = torch.__config__.show()
    built = re.findall(r"\b(?:BLAS|LAPACK)_INFO=\w+", cfg)
    torch.ones(8, 8) @ torch.ones(8, 8)  # make sure the BLAS is loaded
    loaded = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            name = os.path.basename(path)
            if path.startswith("/") and ("blas" in name or "mkl" in name or "lapack" in name):
                loaded.add(os.path.realpath(path))
    return {"torch_build": built, "loaded": sorted(loaded)}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_env(port):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)


def emit(obj):
    print(json.dumps(obj), flush=True)


def run_world(fn, args, world):
    """Runs fn(rank, args, queue) in `world` spawned processes rendezvousing on a
    free local port; returns what rank 0 put on the queue."""
    import torch.multiprocessing as mp
    setup_env(free_port())
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(fn, args=(args, queue), nprocs=world, join=True)
    return queue.get()
