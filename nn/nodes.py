"""Fused ops that nn adds to the engine's catalogue: the losses and two activations.

Each is an ``autodiff.Op`` (the public extension API), like the engine's own ops. One node per
loss keeps the tape short (a loss is one step of backward, and one box in a picture). Forward
values come from torch's array kernels, so they equal torch's exactly. VJPs are written with
operators and methods shared by torch and autodiff tensors, so they are differentiable again
under ``create_graph=True``. ``s`` is 1/N for ``reduction='mean'`` (N the number of terms), else 1.
"""

from __future__ import annotations

from typing import Any

import torch

import autodiff as ad

_K = torch.nn.functional
_REDUCTION_ENUM = {"none": 0, "mean": 1, "sum": 2}  # torch's internal reduction codes
_mse_backward = torch.ops.aten.mse_loss_backward.default
_RAW = torch.Tensor


def _scale(reduction: str, n: int) -> float:
    """``s``: 1/n for a mean over n terms, else 1."""
    return 1.0 / n if reduction == "mean" and n > 0 else 1.0


def _mse(input: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    # torch's C kernel directly: F.mse_loss's Python wrapper costs more than the kernel here
    return torch._C._nn.mse_loss(input, target, _REDUCTION_ENUM[reduction])


class MSELoss(ad.Op):
    """l = (x - t)²;  dx = 2 s g (x - t),  dt = -dx"""

    args = saves = ("input", "target")
    fields = ("reduction",)
    forward = staticmethod(_mse)

    def vjp(self, g, x, t):
        if g.__class__ is _RAW:  # first order: torch's one fused kernel
            d = _mse_backward(g, x, t, _REDUCTION_ENUM[self.reduction])
        else:
            d = (x - t) * (g * (2.0 * _scale(self.reduction, x.numel())))
        dx, dt = self.needs_input_grad
        return (d if dx else None), (-d if dt else None)


# torch guards the division at x = 0 or 1 with 1e-12 rounded to float32; the same value here
# gives the same (huge but finite) gradients there.
_BCE_EPS = float(torch.tensor(1e-12, dtype=torch.float32))


class BCELoss(ad.Op):
    """l = -(t log x + (1 - t) log(1 - x));
    dx = s g (x - t) / (x (1 - x)),  dt = s g log((1 - x) / x)"""

    args = saves = ("input", "target")
    reads = {"input": ("input", "target"), "target": ("input",)}
    fields = ("reduction",)
    forward = staticmethod(_K.binary_cross_entropy)

    def vjp(self, g, x, t):
        gs = g * _scale(self.reduction, x.numel())
        dx, dt = self.needs_input_grad
        gx = gt = None
        if dx:
            gx = gs * (x - t) / (x * (1 - x)).clamp(min=_BCE_EPS)
        if dt:
            # unclamped, as torch: ±inf at an input of exactly 0 or 1 (the clamp is forward's)
            gt = gs * ((-x).log1p() - x.log())
        return gx, gt


class BCEWithLogitsLoss(ad.Op):
    """l = max(x, 0) - x t + log(1 + exp(-|x|));  dx = s g (σ(x) - t),  dt = -s g x"""

    args = saves = ("input", "target")
    reads = {"input": ("input", "target"), "target": ("input",)}
    fields = ("reduction",)
    forward = staticmethod(_K.binary_cross_entropy_with_logits)

    def vjp(self, g, x, t):
        gs = g * _scale(self.reduction, x.numel())
        dx, dt = self.needs_input_grad
        return (gs * (x.sigmoid() - t) if dx else None), (-(gs * x) if dt else None)


def _class_dim(x: Any) -> int:
    return 1 if x.ndim >= 2 else 0


class CrossEntropyLoss(ad.Op):
    """l = logsumexp(x) - x[t] for class indices t;  dx = s g (softmax(x) - onehot(t))
    (class dim 1, or 0 for 1-D x)"""

    args = saves = ("input", "target")
    fields = ("reduction",)
    forward = staticmethod(_K.cross_entropy)

    def vjp(self, g, x, t):
        cdim = _class_dim(x)
        rt = t.data if isinstance(t, ad.Tensor) else t
        gs = g * _scale(self.reduction, rt.numel())
        if self.reduction == "none":
            gs = gs.unsqueeze(cdim)
        rx = x.data if isinstance(x, ad.Tensor) else x
        return gs * (x.softmax(cdim) - onehot(rt, rx, cdim)), None


class SoftCrossEntropyLoss(ad.Op):
    """l = -Σ_c t log_softmax(x) for class probabilities t;
    dx = s g (softmax(x) Σ_c t - t),  dt = -s g log_softmax(x)"""

    args = saves = ("input", "target")
    reads = {"input": ("input", "target"), "target": ("input",)}
    fields = ("reduction",)
    forward = staticmethod(_K.cross_entropy)

    def vjp(self, g, x, t):
        cdim = _class_dim(x)
        gs = g * _scale(self.reduction, x.numel() // max(x.shape[cdim], 1))
        if self.reduction == "none":
            gs = gs.unsqueeze(cdim)
        dx, dt = self.needs_input_grad
        gx = gt = None
        if dx:
            gx = gs * (x.softmax(cdim) * t.sum(cdim, keepdim=True) - t)
        if dt:
            gt = -(gs * x.log_softmax(cdim))
        return gx, gt


class SiLU(ad.Op):
    """y = x σ(x);  dx = g σ(x) (1 + x (1 - σ(x)))"""

    saves = ("x",)
    forward = staticmethod(_K.silu)

    def vjp(self, g, x):
        s = x.sigmoid()
        return g * (s * (1 + x * (1 - s)))


class Softplus(ad.Op):
    """y = log(1 + exp(x));  dx = g σ(x)"""

    saves = ("x",)
    forward = staticmethod(_K.softplus)

    def vjp(self, g, x):
        return g * x.sigmoid()


def onehot(target: torch.Tensor, like: torch.Tensor, cdim: int) -> torch.Tensor:
    """A float tensor shaped like ``like`` with 1 at ``target``'s class along ``cdim``."""
    return torch.zeros_like(like).scatter_(cdim, target.unsqueeze(cdim), 1.0)
