"""The course network (2 -> 25 -> 25 -> 25 -> 1, MSE, SGD with momentum) as a step function.

Two builds of the same thing: ``"nn"`` uses nn.Sequential / nn.MSELoss / nn.optim.SGD; ``"ad"``
uses autodiff ops directly with a hand-written momentum update made of in-place ops under
no_grad (which exercises autodiff's in-place methods as an optimizer would).
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch

import autodiff as ad

LR, MOMENTUM, BATCH = 0.05, 0.9, 100


@pytest.fixture
def one_thread():
    """torch's intra-op threads fight other processes on a small shared machine: use one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def data(seed: int, n: int = 1000) -> tuple[ad.Tensor, ad.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g)
    y = (((x - 0.5) ** 2).sum(1, keepdim=True) < 1 / (2 * torch.pi)).float()
    return ad.Tensor(x), ad.Tensor(y)


def make_step(kind: str, seed: int) -> tuple[Callable[[int], float], Callable[[], list]]:
    """``(step, params)``: ``step(i)`` trains on mini-batch i and returns the loss (whose graph
    stays alive until the caller drops it, as in a typical loop)."""
    x, y = data(seed)
    n = x.shape[0]
    g = torch.Generator().manual_seed(seed + 1)
    if kind == "nn":
        import nn

        model = nn.Sequential(
            nn.Linear(2, 25, generator=g),
            nn.ReLU(),
            nn.Linear(25, 25, generator=g),
            nn.ReLU(),
            nn.Linear(25, 25, generator=g),
            nn.ReLU(),
            nn.Linear(25, 1, generator=g),
        )
        loss_fn = nn.MSELoss()
        opt = nn.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

        def step(i: int) -> ad.Tensor:
            lo = (i * BATCH) % n
            opt.zero_grad()
            loss = loss_fn(model(x[lo : lo + BATCH]), y[lo : lo + BATCH])
            loss.backward()
            opt.step()
            return loss

        return step, lambda: [p.data.clone() for p in model.parameters()]

    sizes = [2, 25, 25, 25, 1]
    params = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        bound = fan_in**-0.5
        params.append(ad.Tensor((torch.rand(fan_out, fan_in, generator=g) * 2 - 1) * bound, True))
        params.append(ad.Tensor((torch.rand(fan_out, generator=g) * 2 - 1) * bound, True))
    bufs = [ad.zeros_like(p) for p in params]

    def step(i: int) -> ad.Tensor:
        lo = (i * BATCH) % n
        h = x[lo : lo + BATCH]
        for k in range(0, len(params), 2):
            h = ad.linear(h, params[k], params[k + 1])
            if k < len(params) - 2:
                h = h.relu()
        loss = ((h - y[lo : lo + BATCH]) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with ad.no_grad():
            for p, b in zip(params, bufs):
                b.mul_(MOMENTUM).add_(p.grad)
                p.sub_(b, alpha=LR)
        return loss

    return step, lambda: [p.data.clone() for p in params]
