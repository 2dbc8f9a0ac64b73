"""Data-parallel training on CPU processes: time per epoch with 1 and 2 processes, and the share
of it spent in the all-reduce.

    python -m benchmarks.ddp          # about 2 minutes on 2 cores; writes benchmarks/results/ddp.md
    python -m benchmarks.ddp --quick  # a smoke run (small sizes)

For each network, the same epoch (same points, same global batch, same initial weights) is run
- by 1 process with 1 torch thread, and by 1 process with 2 threads (what the cores give without
  data parallelism);
- by 2 processes with 1 thread each, on 127.0.0.1 with gloo, each taking half of every batch:
  tapegrad's ``nn.parallel.DistributedDataParallel`` and, side by side, PyTorch's own
  (``torch.nn`` + ``torch.autograd`` + ``torch.nn.parallel.DistributedDataParallel``) as the peer.
"all-reduce share" is the time tapegrad's DDP spends launching and waiting for its buckets (the
part the backward pass did not hide) over the epoch time. Medians over the timed epochs, each
started together by a barrier; every process reports, the slowest counts.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

import nn
from nn.data import BatchLoader, DistributedSampler
from nn.parallel import DistributedDataParallel, spawn

# (name, sizes, activation, points per epoch, global batch)
WORKLOADS = [
    ("course", (2, 25, 25, 25, 1), "tanh", 1000, 16),
    ("wide", (2, 512, 512, 512, 1), "relu", 8 * 4096, 4096),
]
QUICK = [
    ("course", (2, 25, 25, 25, 1), "tanh", 200, 16),
    ("wide", (2, 64, 64, 64, 1), "relu", 4 * 512, 512),
]
LR, MOMENTUM = 0.01, 0.9


def _data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, 2, generator=torch.Generator().manual_seed(1))
    y = (((x - 0.5) ** 2).sum(1, keepdim=True) < 1 / (2 * torch.pi)).float()
    return x, y


def _tapegrad_model(sizes: tuple, act: str) -> nn.Sequential:
    g = torch.Generator().manual_seed(0)
    layers: list = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(i, o, generator=g), nn.Tanh() if act == "tanh" else nn.ReLU()]
    return nn.Sequential(layers[:-1])


def _torch_model(sizes: tuple, act: str) -> torch.nn.Module:
    layers: list = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(i, o), torch.nn.Tanh() if act == "tanh" else torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    model.load_state_dict(dict(_tapegrad_model(sizes, act).state_dict()))  # the same start
    return model


def _epochs(impl: str, work: tuple, epochs: int) -> dict:
    """Runs in every process: a warm-up epoch, then ``epochs`` timed ones."""
    _, sizes, act, n, batch = work
    world, rank = dist.get_world_size(), dist.get_rank()
    x, y = _data(n)
    sampler = DistributedSampler(n, world, rank, seed=2)
    loader = BatchLoader(x, y, batch // world, sampler=sampler)
    ddp = None
    if impl == "tapegrad":
        model: Any = _tapegrad_model(sizes, act)
        if world > 1:
            model = ddp = DistributedDataParallel(model)
        opt: Any = nn.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        loss_fn: Any = nn.MSELoss()
    else:
        model = _torch_model(sizes, act)
        if world > 1:
            model = torch.nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        loss_fn = torch.nn.MSELoss()
    seconds, comm = [], []
    for epoch in range(epochs + 1):
        sampler.set_epoch(epoch)
        dist.barrier()
        c0 = ddp.comm_seconds if ddp is not None else 0.0
        t0 = time.perf_counter()
        for xb, yb in loader:
            if impl == "torch":
                xb, yb = xb.data, yb.data
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
        if epoch:  # epoch 0 warms up
            seconds.append(time.perf_counter() - t0)
            comm.append((ddp.comm_seconds if ddp is not None else 0.0) - c0)
    return {"seconds": seconds, "comm": comm, "steps": len(loader)}


def _allreduce_alone(numel: int, reps: int = 30) -> float:
    buf = torch.zeros(numel)
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(reps):
        dist.all_reduce(buf)
    return (time.perf_counter() - t0) / reps


def _worker(workloads: list, epochs: int, threads: int, impls: tuple) -> dict:
    torch.set_num_threads(threads)
    out = {}
    for work in workloads:
        for impl in impls:
            out[(work[0], impl)] = _epochs(impl, work, epochs)
        if dist.get_world_size() > 1:
            numel = sum(p.numel() for p in _tapegrad_model(work[1], work[2]).parameters())
            out[(work[0], "allreduce")] = {"seconds": [_allreduce_alone(numel)]}
    return out


def _slowest(results: list, key: tuple, field: str = "seconds") -> float:
    """Median over epochs of the slowest process's time."""
    per_epoch = zip(*(r[key][field] for r in results))
    return statistics.median(max(e) for e in per_epoch)


def _machine() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = "?"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, commit {commit or '?'}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ddp", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, 2 timed epochs")
    p.add_argument("--epochs", type=int, help="timed epochs per run (default 5; 2 with --quick)")
    p.add_argument(
        "--md", default="benchmarks/results/ddp.md", help="write the table here ('-': nowhere)"
    )
    args = p.parse_args(argv)
    workloads = QUICK if args.quick else WORKLOADS
    epochs = args.epochs or (2 if args.quick else 5)
    if epochs < 1:
        p.error(f"argument --epochs: must be >= 1, got {epochs}")
    load0 = os.getloadavg()
    both = ("tapegrad", "torch")
    one = spawn(_worker, 1, (workloads, epochs, 1, both))
    one2 = spawn(_worker, 1, (workloads, epochs, 2, ("tapegrad",)))
    two = spawn(_worker, 2, (workloads, epochs, 1, both))
    load1 = os.getloadavg()
    lines = [
        "# Data-parallel training on CPU processes (`python -m benchmarks.ddp"
        + (" --quick" if args.quick else "")
        + "`)",
        "",
        f"Machine: {_machine()}. Load average (1 min) {load0[0]:.2f} at start, {load1[0]:.2f} at "
        "end: the 2 cores are shared with other jobs, so 2 processes rarely get both to "
        "themselves. Times: median over "
        f"{epochs} epochs (after one warm-up) of the slowest process, seconds per epoch.",
        "",
        "| network | points, global batch | steps / epoch / process | implementation | "
        "1 process, 1 thread | 1 process, 2 threads | 2 processes (DDP) | speed-up 2 proc | "
        "all-reduce share | all-reduce alone |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, sizes, _, n, batch in workloads:
        net = "-".join(str(s) for s in sizes)
        alone = two[0][(name, "allreduce")]["seconds"][0]
        for impl in both:
            t1 = _slowest(one, (name, impl))
            t2 = _slowest(two, (name, impl))
            t1b = f"{_slowest(one2, (name, impl)):.4f}" if impl == "tapegrad" else "—"
            share = f"{_slowest(two, (name, impl), 'comm') / t2:.0%}" if impl == "tapegrad" else "—"
            steps = two[0][(name, impl)]["steps"]
            lines.append(
                f"| {name} {net} | {n}, {batch} | {steps} | {impl} | {t1:.4f} | {t1b} | "
                f"{t2:.4f} | {t1 / t2:.2f}× | {share} | "
                f"{alone * 1e6:.0f} µs × {steps} |"
            )
    lines += [
        "",
        "speed-up: 1 process (1 thread) over 2 processes. all-reduce alone: one "
        "synchronous all-reduce of all the gradients as one buffer (what a step would pay "
        "with no overlap and no bucketing), times the steps per epoch.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.md != "-":
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
