"""torch.compile of the torch module and of the optimizer's step, as PyTorch's tutorials show it:
``torch.compile(model)`` (Inductor; forward and backward graphs through AOTAutograd) and
``torch.compile(opt.step)``; torch.autograd still runs the backward between them."""

from __future__ import annotations

import torch

from . import torch_eager
from .workloads import MLPSpec

NAME = "torch.compile"
COMPILES = True
AVAILABLE = True
loss_value = torch_eager.loss_value
# Every Trainer compiles a fresh module: lift dynamo's per-function recompile limit (8), past
# which it would silently run these steps eagerly.
torch._dynamo.config.recompile_limit = 10_000
torch._dynamo.config.accumulated_recompile_limit = 100_000


class Trainer(torch_eager.Trainer):
    def __init__(self, spec: MLPSpec, weights: list, device: str) -> None:
        super().__init__(spec, weights, device)
        self.model = torch.compile(self.model)
        opt = self.opt
        self._opt_step = torch.compile(lambda: opt.step(), fullgraph=False)

    def step(self, batch: tuple) -> torch.Tensor:
        x, y = batch
        self.opt.zero_grad()
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self._opt_step()
        return loss
