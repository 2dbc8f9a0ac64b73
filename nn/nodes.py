"""Fused graph nodes that nn adds to the engine's catalogue: the losses and two activations.

One node per loss keeps the tape short (a loss is one step of backward, and one box in a
picture). Forward values come from torch's array kernels, so they equal torch's exactly. VJPs are
written with operators and methods shared by torch and autodiff tensors, so they are
differentiable again under ``create_graph=True``. ``s`` is 1/N for ``reduction='mean'``, else 1.
"""
from __future__ import annotations

import torch

from autodiff.engine import Node, kernel

_K = torch.nn.functional
_REDUCTION_ENUM = {"none": 0, "mean": 1, "sum": 2}  # torch's internal reduction codes
_mse_backward = torch.ops.aten.mse_loss_backward.default


def reduction_of(scale: float, shape: torch.Size) -> str:
    """The reduction a loss node was recorded with, from its ``meta`` (the scale) and output shape
    (for ``replay``; a mean over one element is the same as a sum)."""
    if len(shape):
        return "none"
    return "mean" if scale != 1.0 else "sum"


def _loss_replay(fn):
    return staticmethod(lambda scale, shape: (
        lambda x, t, _r=reduction_of(scale, shape): fn(x, t, reduction=_r)))


class MSELoss(Node):
    """l = (x - t)²;  dx = 2 s g (x - t),  dt = -dx"""
    __slots__ = ()
    replay = _loss_replay(_K.mse_loss)

    def vjp(self, g, x, t):
        if g.__class__ is torch.Tensor:  # first order: torch's one fused kernel
            d = _mse_backward(g, x, t, _REDUCTION_ENUM[reduction_of(self.meta, self.shape)])
        else:
            d = (x - t) * (g * (2.0 * self.meta))
        return (d if self.parents[0] is not None else None,
                -d if self.parents[1] is not None else None)


# torch guards the division at x = 0 or 1 with 1e-12 rounded to float32; the same value here
# gives the same (huge but finite) gradients there.
_BCE_EPS = float(torch.tensor(1e-12, dtype=torch.float32))


class BCELoss(Node):
    """l = -(t log x + (1 - t) log(1 - x));  dx = s g (x - t) / (x (1 - x)),  dt = s g log((1 - x) / x)"""
    __slots__ = ()
    replay = _loss_replay(_K.binary_cross_entropy)

    def vjp(self, g, x, t):
        gs = g * self.meta
        gx = gt = None
        if self.parents[0] is not None:
            gx = gs * (x - t) / (x * (1 - x)).clamp(min=_BCE_EPS)
        if self.parents[1] is not None:
            gt = gs * ((-x).log1p().clamp(min=-100.0) - x.log().clamp(min=-100.0))
        return gx, gt


class BCEWithLogitsLoss(Node):
    """l = max(x, 0) - x t + log(1 + exp(-|x|));  dx = s g (σ(x) - t),  dt = -s g x"""
    __slots__ = ()
    replay = _loss_replay(_K.binary_cross_entropy_with_logits)

    def vjp(self, g, x, t):
        gs = g * self.meta
        return (gs * (x.sigmoid() - t) if self.parents[0] is not None else None,
                -(gs * x) if self.parents[1] is not None else None)


class CrossEntropyLoss(Node):
    """l = logsumexp(x) - x[t];  dx = s g (softmax(x) - onehot(t))  (class dim 1, or 0 for 1-D x)"""
    __slots__ = ()

    def vjp(self, g, x, onehot):
        cdim, scale, reduced = self.meta
        gs = g * scale if reduced else (g * scale).unsqueeze(cdim)
        return (gs * (x.softmax(cdim) - onehot),)


class SoftCrossEntropyLoss(Node):
    """l = -Σ_c t log_softmax(x);  dx = s g (softmax(x) Σ_c t - t),  dt = -s g log_softmax(x)"""
    __slots__ = ()

    def vjp(self, g, x, t):
        cdim, scale, reduced = self.meta
        gs = g * scale if reduced else (g * scale).unsqueeze(cdim)
        gx = gt = None
        if self.parents[0] is not None:
            gx = gs * (x.softmax(cdim) * t.sum(cdim, keepdim=True) - t)
        if self.parents[1] is not None:
            gt = -(gs * x.log_softmax(cdim))
        return gx, gt


class SiLU(Node):
    """y = x σ(x);  dx = g σ(x) (1 + x (1 - σ(x)))"""
    __slots__ = ()
    replay = kernel(_K.silu)

    def vjp(self, g, x):
        s = x.sigmoid()
        return (g * (s * (1 + x * (1 - s))),)


class Softplus(Node):
    """y = log(1 + exp(x));  dx = g σ(x)"""
    __slots__ = ()
    replay = kernel(_K.softplus)

    def vjp(self, g, x):
        return (g * x.sigmoid(),)


def onehot(target: torch.Tensor, like: torch.Tensor, cdim: int) -> torch.Tensor:
    """A float tensor shaped like ``like`` with 1 at ``target``'s class along ``cdim``."""
    return torch.zeros_like(like).scatter_(cdim, target.unsqueeze(cdim), 1.0)
