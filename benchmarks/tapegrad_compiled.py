"""tapegrad's compiled replay: ``autodiff.replay(step, optimizer=opt, compile=True)``. The same nn
model, optimizer and numbers as tapegrad_impl; from the second call on, forward, backward and the
SGD update run as one function compiled by torch.compile (Inductor, C++ wrapper on the CPU).
Training steps only (no deep-chain workload)."""

from __future__ import annotations

import torch

from . import tapegrad_impl
from .workloads import MLPSpec

NAME = "tapegrad compiled"
COMPILES = True  # the first calls compile: the harness times them apart
try:
    from autodiff.replay_compile import compiler_missing

    WHY_NOT = compiler_missing(torch.device("cpu"))
except ImportError:
    WHY_NOT = "autodiff.replay has no compile option in this version"
AVAILABLE = WHY_NOT is None and tapegrad_impl.nn is not None
loss_value = tapegrad_impl.loss_value


class Trainer(tapegrad_impl.Trainer):
    def __init__(self, spec: MLPSpec, weights: list, device: str) -> None:
        super().__init__(spec, weights, device, mode="compiled")
