"""The lower bound: the same computations written by hand in raw torch, with no engine at all.

Autograd is off (``inference_mode``: not even its dispatch step runs), the forward saves exactly
what the backward needs, activations run in place on the ``addmm`` output, the backward uses
torch's fused backward kernels (``tanh_backward``, ``threshold_backward``) and the optimizer is
three multi-tensor (``_foreach``) calls. Gradients are still materialised as tensors (as any
engine exposing ``.grad`` must); only fusing them into the momentum update (``addmm`` into the
buffer) would issue fewer kernels.
"""

from __future__ import annotations

import torch

from .workloads import MLPSpec

NAME = "lower bound"
_aten = torch.ops.aten
_tanh_backward = _aten.tanh_backward.default
_threshold_backward = _aten.threshold_backward.default
_mse_loss = torch._C._nn.mse_loss


class Trainer:
    def __init__(self, spec: MLPSpec, weights: list, device: str) -> None:
        self.W = [w.to(device, copy=True) for w, _ in weights]
        self.b = [b.to(device, copy=True) for _, b in weights]
        self.Wt = [w.t() for w in self.W]  # views: follow the in-place updates of W
        self.plist = [t for pair in zip(self.W, self.b) for t in pair]
        self.bufs = [torch.zeros_like(p) for p in self.plist]
        self.lr, self.mom = spec.lr, spec.momentum
        self.relu = spec.act == "relu"

    def params(self) -> list[torch.Tensor]:
        return self.plist

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        return x, y

    @torch.inference_mode()
    def step(self, batch: tuple) -> torch.Tensor:
        x, y = batch
        W, b, Wt = self.W, self.b, self.Wt
        last = len(W) - 1
        hs = [x]
        h = x
        for i in range(last):
            h = torch.addmm(b[i], h, Wt[i])
            h = h.relu_() if self.relu else h.tanh_()
            hs.append(h)
        out = torch.addmm(b[last], h, Wt[last])
        loss = _mse_loss(
            out, y, 1
        )  # torch's MSE kernel, mean reduction (F.mse_loss minus its Python)
        g = out.sub_(y).mul_(2.0 / out.numel())  # d loss / d out
        grads = [None] * (2 * len(W))
        for i in range(last, -1, -1):
            h = hs.pop()  # activations are freed as soon as the backward is past them
            grads[2 * i] = g.t().mm(h)
            grads[2 * i + 1] = g.sum(0)
            if i:
                gh = g.mm(W[i])
                g = _threshold_backward(gh, h, 0) if self.relu else _tanh_backward(gh, h)
        # SGD with momentum, torch's rule: buf = mom * buf + g (buf starts at 0, so step 1 gives g)
        torch._foreach_mul_(self.bufs, self.mom)
        torch._foreach_add_(self.bufs, grads)
        torch._foreach_add_(self.plist, self.bufs, alpha=-self.lr)
        return loss


def loss_value(loss: torch.Tensor) -> float:
    return float(loss)


# ---- deep chains: tanh and neg alternating, then a sum ------------------------------------------
def chain_leaf(raw: torch.Tensor) -> dict:
    return {"x": raw.clone(), "grad": None}


@torch.inference_mode()
def chain_forward(leaf: dict, n: int) -> tuple:
    ys = []  # tanh outputs, which tanh_backward needs
    y = leaf["x"]
    for i in range(n):
        if i % 2 == 0:
            y = torch.tanh(y)
            ys.append(y)
        else:
            y = torch.neg(y)
    return y.sum(), ys, n


@torch.inference_mode()
def chain_backward(out: tuple, leaf: dict) -> None:
    total, ys, n = out
    g = torch.ones_like(leaf["x"])
    for i in range(n - 1, -1, -1):
        g = _tanh_backward(g, ys.pop()) if i % 2 == 0 else torch.neg(g)
    leaf["grad"] = g


def chain_grad(leaf: dict) -> torch.Tensor:
    return leaf["grad"]
