"""PyTorch eager: torch.nn modules, torch.optim.SGD (its defaults) and torch.autograd."""

from __future__ import annotations

import torch

from .workloads import MLPSpec

NAME = "torch eager"


class Trainer:
    def __init__(self, spec: MLPSpec, weights: list, device: str) -> None:
        layers: list[torch.nn.Module] = []
        for i, (w, b) in enumerate(weights):
            lin = torch.nn.Linear(w.shape[1], w.shape[0], device=device)
            with torch.no_grad():
                lin.weight.copy_(w)
                lin.bias.copy_(b)
            layers.append(lin)
            if i < len(weights) - 1:
                layers.append(torch.nn.ReLU() if spec.act == "relu" else torch.nn.Tanh())
        self.model = torch.nn.Sequential(*layers)
        self.loss_fn = torch.nn.MSELoss()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=spec.lr, momentum=spec.momentum)

    def params(self) -> list[torch.Tensor]:
        return [p.detach() for p in self.model.parameters()]

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        return x, y

    def step(self, batch: tuple) -> torch.Tensor:
        x, y = batch
        self.opt.zero_grad()
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.opt.step()
        return loss


def loss_value(loss: torch.Tensor) -> float:
    return loss.item()


# ---- deep chains: tanh and neg alternating, then a sum ------------------------------------------
def chain_leaf(raw: torch.Tensor) -> torch.Tensor:
    return raw.clone().requires_grad_(True)


def chain_forward(leaf: torch.Tensor, n: int) -> torch.Tensor:
    y = leaf
    for i in range(n):
        y = torch.tanh(y) if i % 2 == 0 else torch.neg(y)
    return y.sum()


def chain_backward(out: torch.Tensor, leaf: torch.Tensor) -> None:
    out.backward()


def chain_grad(leaf: torch.Tensor) -> torch.Tensor:
    return leaf.grad
