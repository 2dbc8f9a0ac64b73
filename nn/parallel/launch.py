"""Start the processes of a data-parallel run: under ``torchrun`` (:func:`init_from_env`) or on
this machine (:func:`spawn`, which plays torchrun's part for N local processes on 127.0.0.1)."""

from __future__ import annotations

import datetime
import os
import pickle
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist

_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_backend(device: Any = "cpu") -> str:
    """NCCL for CUDA tensors, gloo for CPU ones."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(device: Any = "cpu", timeout: float | None = None) -> tuple[int, int] | None:
    """Join the process group described by torchrun's environment (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``); returns ``(rank, world_size)``, or None outside torchrun.

    On CUDA each process takes the GPU ``LOCAL_RANK`` of its machine.
    """
    if not all(k in os.environ for k in _ENV):
        return None
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        wait = None if timeout is None else datetime.timedelta(seconds=timeout)
        dist.init_process_group(default_backend(device), timeout=wait)
    return dist.get_rank(), dist.get_world_size()


def _worker(
    rank: int,
    fn: Callable,
    nprocs: int,
    port: int,
    device: str,
    timeout: float | None,
    out: str,
    args: tuple,
) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(nprocs),
        LOCAL_WORLD_SIZE=str(nprocs),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    init_from_env(device, timeout)
    try:
        result = fn(*args)
        with open(Path(out) / f"{rank}.pkl", "wb") as f:
            pickle.dump(result, f)
    finally:
        if dist.is_initialized():  # fn may have left the group itself
            dist.destroy_process_group()


def spawn(
    fn: Callable,
    nprocs: int,
    args: tuple = (),
    *,
    device: str = "cpu",
    timeout: float | None = 120.0,
) -> list:
    """Run ``fn(*args)`` in ``nprocs`` new processes joined in one process group on 127.0.0.1
    (gloo on CPU, NCCL on CUDA); returns each rank's result, by rank.

    ``fn`` must be importable by name (a module-level function): the processes are started
    fresh (``spawn``), as CUDA requires. A collective that waits longer than ``timeout`` seconds
    fails instead of hanging. An exception in any process is raised here with its traceback.
    """
    import torch.multiprocessing as mp

    if not isinstance(nprocs, int) or isinstance(nprocs, bool) or nprocs < 1:
        raise ValueError(f"spawn: nprocs must be a positive int, got {nprocs!r}")
    with tempfile.TemporaryDirectory(prefix="tapegrad-spawn-") as out:
        mp.start_processes(
            _worker,
            args=(fn, nprocs, free_port(), device, timeout, out, args),
            nprocs=nprocs,
            join=True,
            start_method="spawn",
        )
        results = []
        for r in range(nprocs):
            with open(Path(out) / f"{r}.pkl", "rb") as f:
                results.append(pickle.load(f))  # written by our own child processes just now
    return results
