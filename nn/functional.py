"""Functional forms of nn's layers and losses (``import nn.functional as F``), like torch's.

Losses take ``reduction='mean' | 'sum' | 'none'`` and refuse an input and target of different
shapes instead of broadcasting them (a (N, 1) prediction against (N,) labels would otherwise
silently compare every prediction with every label).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as _K  # array kernels only (no autograd): values identical to torch's

import autodiff as ad
from autodiff import Tensor
from autodiff.engine import derived, record
from autodiff.errors import DTypeError, ShapeError
from autodiff.ops._common import as_tensor, check_float_pair

from . import nodes

linear = ad.linear
relu = ad.relu
tanh = ad.tanh
sigmoid = ad.sigmoid
leaky_relu = ad.leaky_relu
softmax = ad.softmax
log_softmax = ad.log_softmax

_REDUCTIONS = ("mean", "sum", "none")


def silu(input: Any) -> Tensor:
    """x * sigmoid(x), one node."""
    x = as_tensor(input)
    return record(nodes.SiLU, _K.silu(x.data), (x,), (x,))


def softplus(input: Any) -> Tensor:
    """log(1 + exp(x)), computed stably, one node."""
    x = as_tensor(input)
    return record(nodes.Softplus, _K.softplus(x.data), (x,), (x,))


def dropout(input: Any, p: float = 0.5, training: bool = True,
            generator: torch.Generator | None = None) -> Tensor:
    """Zero elements with probability ``p`` and scale the others by 1/(1-p) (when training)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p!r}")
    x = as_tensor(input)
    if not training or p == 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    # derived(): a fresh random mask per call; autodiff.replay must refuse it, not freeze it
    return ad.mul(x, derived(keep.to(x.dtype) * scale))


def _pair(op: str, input: Any, target: Any, reduction: str) -> tuple[Tensor, Tensor]:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    x, t = as_tensor(input), as_tensor(target)
    if x.data.shape != t.data.shape:
        raise ShapeError(
            f"{op}: input has shape {tuple(x.shape)} but target has shape {tuple(t.shape)}; they "
            "must be equal (reshape one, e.g. target.reshape(input.shape), rather than rely on "
            "broadcasting)")
    if not t.data.is_floating_point():
        t = Tensor._make(t.data.to(x.data.dtype))  # integer labels as float targets
    check_float_pair(op, x.data, t.data)
    return x, t


def _scale(reduction: str, n: int) -> float:
    return 1.0 / n if reduction == "mean" and n > 0 else 1.0


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean (or sum, or elementwise) squared error."""
    x, t = _pair("mse_loss", input, target, reduction)
    # torch's C kernel directly: F.mse_loss's Python wrapper costs more than the kernel here
    out = torch._C._nn.mse_loss(x.data, t.data, nodes._REDUCTION_ENUM[reduction])
    return record(nodes.MSELoss, out, (x, t), (x, t), meta=_scale(reduction, x.data.numel()))


def binary_cross_entropy(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """-(t log x + (1-t) log(1-x)) for probabilities x in [0, 1] (logs clamped at -100 like torch)."""
    x, t = _pair("binary_cross_entropy", input, target, reduction)
    try:
        out = _K.binary_cross_entropy(x.data, t.data, reduction=reduction)
    except RuntimeError as e:
        raise ValueError(f"binary_cross_entropy: input (shape {tuple(x.shape)}) must hold "
                         f"probabilities in [0, 1] (apply sigmoid first, or use "
                         f"binary_cross_entropy_with_logits): {e}") from None
    return record(nodes.BCELoss, out, (x, t), (x, t), meta=_scale(reduction, x.data.numel()))


def binary_cross_entropy_with_logits(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """binary_cross_entropy(sigmoid(x), t), computed stably from the logits x."""
    x, t = _pair("binary_cross_entropy_with_logits", input, target, reduction)
    out = _K.binary_cross_entropy_with_logits(x.data, t.data, reduction=reduction)
    return record(nodes.BCEWithLogitsLoss, out, (x, t), (x, t), meta=_scale(reduction, x.data.numel()))


def cross_entropy(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """log_softmax-based cross entropy over the class dim (1, or 0 for a single sample).

    ``target`` holds class indices (integers, shape of input without the class dim) or class
    probabilities (floats, same shape as input).
    """
    op = "cross_entropy"
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    x, t = as_tensor(input), as_tensor(target)
    rx, rt = x.data, t.data
    if rx.dim() == 0:
        raise ShapeError(f"{op}: input must have a class dim, got a 0-d tensor")
    cdim = 1 if rx.dim() >= 2 else 0
    n_classes = rx.shape[cdim]
    reduced = reduction != "none"
    want = rx.shape[:cdim] + rx.shape[cdim + 1:]
    if rt.is_floating_point():
        if rt.shape == want and rt.shape != rx.shape:
            raise DTypeError(f"{op}: class-index targets (shape {tuple(want)}) must be integers, "
                             f"got dtype {rt.dtype}; use target.long()")
        if rt.shape != rx.shape:
            raise ShapeError(f"{op}: probability targets must have the input's shape "
                             f"{tuple(rx.shape)}, got {tuple(rt.shape)}")
        check_float_pair(op, rx, rt)
        out = _K.cross_entropy(rx, rt, reduction=reduction)
        n = rx.numel() // max(n_classes, 1)
        return record(nodes.SoftCrossEntropyLoss, out, (x, t), (x, t),
                      meta=(cdim, _scale(reduction, n), reduced))
    if rt.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise DTypeError(f"{op}: class-index targets must be integers, got dtype {rt.dtype}")
    if rt.shape != want:
        raise ShapeError(f"{op}: input of shape {tuple(rx.shape)} needs class-index targets of "
                         f"shape {tuple(want)}, got {tuple(rt.shape)}")
    rt = rt.long()
    if rt.numel() and (int(rt.min()) < 0 or int(rt.max()) >= n_classes):
        raise IndexError(f"{op}: target class indices must lie in [0, {n_classes - 1}], got values "
                         f"in [{int(rt.min())}, {int(rt.max())}]")
    out = _K.cross_entropy(rx, rt, reduction=reduction)
    return record(nodes.CrossEntropyLoss, out, (x,), (x, nodes.onehot(rt, rx, cdim)),
                  meta=(cdim, _scale(reduction, rt.numel()), reduced))
