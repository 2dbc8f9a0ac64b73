"""Functional forms of nn's layers and losses (``import nn.functional as F``), like torch's.

Losses take ``reduction='mean' | 'sum' | 'none'`` and refuse an input and target of different
shapes instead of broadcasting them (a (N, 1) prediction against (N,) labels would otherwise
silently compare every prediction with every label).
"""

from __future__ import annotations

from typing import Any

import torch

import autodiff as ad
from autodiff import DTypeError, ShapeError, Tensor, as_tensor

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
    return nodes.SiLU.apply(as_tensor(input))


def softplus(input: Any) -> Tensor:
    """log(1 + exp(x)), computed stably, one node."""
    return nodes.Softplus.apply(as_tensor(input))


def dropout(
    input: Any, p: float = 0.5, training: bool = True, generator: torch.Generator | None = None
) -> Tensor:
    """Zero elements with probability ``p`` and scale the others by 1/(1-p) (when training)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p!r}")
    x = as_tensor(input)
    if not training or p == 0.0:
        return x
    # The mask is computed by recorded (non-differentiable) ops, not made a constant: a fresh
    # random mask per call, which autodiff.replay refuses rather than freezes.
    keep = ad.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    return ad.mul(x, keep.to(x.dtype) * scale)


def _pair(op: str, input: Any, target: Any, reduction: str) -> tuple[Tensor, Tensor]:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    # (``as_tensor`` and the dtype check called only when there is something to do: this runs
    # once per loss call)
    x = input if isinstance(input, Tensor) else as_tensor(input)
    t = target if isinstance(target, Tensor) else as_tensor(target)
    rx, rt = x.data, t.data
    if rx.shape != rt.shape:
        raise ShapeError(
            f"{op}: input has shape {tuple(x.shape)} but target has shape {tuple(t.shape)}; they "
            "must be equal (reshape one, e.g. target.reshape(input.shape), rather than rely on "
            "broadcasting)"
        )
    if not rt.is_floating_point():
        t = t.to(rx.dtype)  # integer labels as float targets
        rt = t.data
    if rt.dtype is not rx.dtype:
        _check_float_pair(op, rx, rt)
    return x, t


def _check_float_pair(op: str, a: torch.Tensor, b: torch.Tensor) -> None:
    """Refuse silently promoting between two floating dtypes (float32 input, float64 target)."""
    if a.dtype != b.dtype and a.is_floating_point() and b.is_floating_point():
        raise DTypeError(
            f"{op}: input and target have different dtypes {a.dtype} and {b.dtype}; "
            f"convert one with .to({a.dtype}) or .to({b.dtype}) first."
        )


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean (or sum, or elementwise) squared error."""
    x, t = _pair("mse_loss", input, target, reduction)
    return nodes.MSELoss.apply(x, t, reduction=reduction)


def binary_cross_entropy(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """-(t log x + (1-t) log(1-x)) for probabilities x in [0, 1] (logs clamped at -100)."""
    x, t = _pair("binary_cross_entropy", input, target, reduction)
    try:
        return nodes.BCELoss.apply(x, t, reduction=reduction)
    except RuntimeError as e:
        raise ValueError(
            f"binary_cross_entropy: input (shape {tuple(x.shape)}) must hold "
            f"probabilities in [0, 1] (apply sigmoid first, or use "
            f"binary_cross_entropy_with_logits): {e}"
        ) from None


def binary_cross_entropy_with_logits(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """binary_cross_entropy(sigmoid(x), t), computed stably from the logits x."""
    x, t = _pair("binary_cross_entropy_with_logits", input, target, reduction)
    return nodes.BCEWithLogitsLoss.apply(x, t, reduction=reduction)


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
    want = rx.shape[:cdim] + rx.shape[cdim + 1 :]
    if rt.is_floating_point():
        if rt.shape == want and rt.shape != rx.shape:
            raise DTypeError(
                f"{op}: class-index targets (shape {tuple(want)}) must be integers, "
                f"got dtype {rt.dtype}; use target.long()"
            )
        if rt.shape != rx.shape:
            raise ShapeError(
                f"{op}: probability targets must have the input's shape "
                f"{tuple(rx.shape)}, got {tuple(rt.shape)}"
            )
        _check_float_pair(op, rx, rt)
        return nodes.SoftCrossEntropyLoss.apply(x, t, reduction=reduction)
    if rt.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise DTypeError(f"{op}: class-index targets must be integers, got dtype {rt.dtype}")
    if rt.shape != want:
        raise ShapeError(
            f"{op}: input of shape {tuple(rx.shape)} needs class-index targets of "
            f"shape {tuple(want)}, got {tuple(rt.shape)}"
        )
    if rt.numel() and (int(rt.min()) < 0 or int(rt.max()) >= n_classes):
        raise IndexError(
            f"{op}: target class indices must lie in [0, {n_classes - 1}], got values "
            f"in [{int(rt.min())}, {int(rt.max())}]"
        )
    if rt.dtype != torch.int64:
        t = t.to(torch.int64)  # recorded, so that a replay reads the new labels
    # the labels are an input of the node: backward reads them (changing them is refused)
    return nodes.CrossEntropyLoss.apply(x, t, reduction=reduction)


# convolution, pooling, normalisation, embedding, attention: ops of their own files
from .attention import scaled_dot_product_attention  # noqa: E402, F401
from .conv import conv2d  # noqa: E402, F401
from .embedding import embedding  # noqa: E402, F401
from .gelu import gelu  # noqa: E402, F401
from .norm import batch_norm, layer_norm  # noqa: E402, F401
from .pool import avg_pool2d, max_pool2d  # noqa: E402, F401
