"""``tapegrad train`` on several processes: under ``torchrun``, or N local ones (``--nproc N``).

Each process trains a replica wrapped in ``nn.parallel.DistributedDataParallel`` on its own share
of every batch (``nn.data.DistributedSampler``); ``--batch-size`` stays the global batch, split
evenly. Rank 0 alone prints and writes the run's files; the others write nothing.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable

_LAUNCHED = ("RANK", "WORLD_SIZE")


def under_launcher() -> bool:
    """Whether this process was started by torchrun (or ``--nproc``): its environment says so."""
    return all(k in os.environ for k in _LAUNCHED)


def rank() -> int:
    """This process's rank (0 outside a launcher): known from the environment before any setup."""
    return int(os.environ.get("RANK", "0")) if under_launcher() else 0


def world_size(args: argparse.Namespace) -> int:
    return int(os.environ["WORLD_SIZE"]) if under_launcher() else args.nproc


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="train with N local processes (data parallel, gloo on CPU, NCCL on CUDA; "
        "default 1); under torchrun its --nproc_per_node decides instead",
    )


def problem(args: argparse.Namespace, cfg: Any) -> tuple[str, str] | None:
    """``(option, message)`` for a combination that cannot run on several processes, else None."""
    import torch

    if args.nproc < 1:
        return "--nproc", f"invalid value {args.nproc}; accepted: an integer >= 1"
    if under_launcher() and args.nproc not in (1, world_size(args)):
        return "--nproc", (
            f"invalid value {args.nproc}: torchrun started "
            f"{world_size(args)} processes; leave --nproc out under torchrun"
        )
    n = world_size(args)
    if n == 1:
        return None
    if torch.device(cfg.device).type == "cuda" and n > torch.cuda.device_count():
        return "--nproc", (
            f"invalid value {n}: one CUDA device per process is needed and "
            f"there are {torch.cuda.device_count()}"
        )
    if cfg.batch_size % n:
        return "--batch-size", (
            f"invalid value {cfg.batch_size}: the global batch is split "
            f"evenly over {n} processes; accepted: a multiple of {n}"
        )
    if cfg.n_train < n:
        return "--n-train", f"invalid value {cfg.n_train}: fewer points than the {n} processes"
    if args.replay:
        return "--replay", (
            "cannot be combined with several processes: their gradients are "
            "averaged from the recorded graph's hooks, which replay skips"
        )
    return None


def launches(args: argparse.Namespace) -> bool:
    """Whether this process should start ``--nproc`` workers (it is not one itself)."""
    return args.nproc > 1 and not under_launcher()


def launch(args: argparse.Namespace, train: Callable[..., int], *train_args: Any) -> int:
    """Run ``train(args, *train_args)`` in ``args.nproc`` new processes on 127.0.0.1 (each with
    torchrun's environment); returns rank 0's exit status."""
    from torch.multiprocessing.spawn import ProcessException

    from nn.parallel import spawn

    # The parser and the command function do not pickle; the workers need only the values.
    plain = argparse.Namespace(
        **{k: v for k, v in vars(args).items() if k not in ("parser", "func")}
    )
    device = getattr(train_args[0], "device", "cpu") if train_args else "cpu"
    try:
        codes = spawn(_worker, args.nproc, (train, plain, train_args), device=device, timeout=None)
    except ProcessException as e:  # the worker's traceback ends with the error's own line
        lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
        raise RuntimeError(f"a training process failed: {lines[-1] if lines else e}") from None
    return int(codes[0] or 0)


def _worker(train: Callable[..., int], args: argparse.Namespace, train_args: tuple) -> int:
    return train(args, *train_args)


def run(
    cfg: Any, progress: bool | None = None, on_epoch: Callable[[dict], None] | None = None
) -> Any:
    """``presets.run`` on every process of the group (joined here from the environment)."""
    import torch.distributed as dist

    from nn.data import DistributedSampler
    from nn.parallel import DistributedDataParallel, init_from_env
    from nn.train import fit

    from .presets import Run, prepare, threshold

    joined = not dist.is_initialized()
    init_from_env(cfg.device)
    try:
        world = dist.get_world_size()
        train, test, model, loss, opt, sched, batch_seed = prepare(cfg)
        ddp = DistributedDataParallel(model)
        sampler = DistributedSampler(train[0], seed=batch_seed)
        history = fit(
            ddp,
            loss,
            opt,
            train,
            test,
            cfg.epochs,
            cfg.batch_size // world,
            scheduler=sched,
            progress=progress if dist.get_rank() == 0 else False,
            on_epoch=on_epoch if dist.get_rank() == 0 else None,
            threshold=threshold(cfg),
            sampler=sampler,
        )
    finally:
        if joined:
            dist.destroy_process_group()
    return Run(cfg, model, history, train, test, opt)
