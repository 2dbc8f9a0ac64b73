"""Batch and layer normalisation as ops: torch's kernels forward, fused first-order backward,
and a composite VJP written with tapegrad ops under ``create_graph`` (so every order works).

Over the m elements each statistic covers, with x̂ = (x - μ) / σ, σ = sqrt(var + eps) (biased var):

    dx = (w / σ) (g - mean(g) - x̂ mean(g x̂)),   dw = Σ g x̂,   db = Σ g

In evaluation, batch norm uses the running statistics, constants: dx = g w / σ_running.
"""

from __future__ import annotations

import math
from typing import Any

import torch

import autodiff as ad
from autodiff import ShapeError, Tensor, as_tensor

from .conv import check_floats

_RAW = torch.Tensor
_aten = torch.ops.aten
_batch_norm = _aten.native_batch_norm.default
_batch_norm_backward = _aten.native_batch_norm_backward.default
_layer_norm_backward = _aten.native_layer_norm_backward.default


def _channel_dims(x: Any) -> tuple:
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(t: Any, x: Any) -> Any:
    """A (C,) tensor shaped to broadcast over x's channel dim 1."""
    return t.reshape((1, -1) + (1,) * (x.ndim - 2))


# ---- batch norm ----------------------------------------------------------------------------------
def _batch_norm_train(
    x: torch.Tensor, w: Any, b: Any, eps: float, momentum: Any, running: Any
) -> torch.Tensor:
    # running statistics (when tracked) are updated here, by the kernel itself, as torch does:
    # a replay of the step updates (and counts) them too
    if running is None:
        return _batch_norm(x, w, b, None, None, True, 0.0, eps)[0]
    rm, rv, count = running
    if count is not None:
        count.add_(1)
        if momentum is None:  # a cumulative average: the n-th batch weighs 1/n
            momentum = 1.0 / float(count)
    return _batch_norm(x, w, b, rm, rv, True, momentum, eps)[0]


def _batch_norm_eval(
    x: torch.Tensor, w: Any, b: Any, rm: torch.Tensor, rv: torch.Tensor, eps: float
) -> torch.Tensor:
    return _batch_norm(x, w, b, rm, rv, False, 0.0, eps)[0]


class BatchNorm(ad.Op):
    """y = w x̂ + b with batch statistics per channel (dim 1);  dx = (w / σ) (g - mean(g)
    - x̂ mean(g x̂)),  dw = Σ g x̂,  db = Σ g  (means and sums over all dims but 1)"""

    args = ("input", "weight", "bias")
    saves = ("input", "weight")
    reads = {"input": ("input", "weight"), "weight": ("input",), "bias": ()}
    # running: the (mean, var, batch count or None) buffers updated in forward, or None
    fields = ("eps", "momentum", "running")
    forward = staticmethod(_batch_norm_train)

    def vjp(self, g, x, w):
        nx, nw, nb = self.needs_input_grad
        dims = _channel_dims(g)
        if not (nx or nw):  # the bias alone: x was not saved
            return None, None, g.sum(dims)
        if g.__class__ is _RAW:  # first order: torch's fused kernel, from the batch statistics
            var, mean = torch.var_mean(x, dims, correction=0)
            invstd = (var + self.eps).rsqrt()
            if w is None and nw:  # not saved: its values feed no wanted gradient
                w = g.new_empty(x.shape[1])
            return tuple(
                _batch_norm_backward(
                    g, x, w, None, None, mean, invstd, True, self.eps, (nx, nw, nb)
                )
            )
        m = math.prod(x.shape) // x.shape[1]
        mean = x.mean(dims, keepdim=True)
        xc = x - mean
        invstd = ((xc * xc).mean(dims, keepdim=True) + self.eps) ** -0.5
        xhat = xc * invstd
        gsum = g.sum(dims, keepdim=True)
        gxsum = (g * xhat).sum(dims, keepdim=True) if (nx or nw) else None
        gx = None
        if nx:
            scale = invstd if w is None else invstd * _per_channel(w, x)
            gx = (g - gsum / m - xhat * (gxsum / m)) * scale
        return (gx, gxsum.reshape(-1) if nw else None, gsum.reshape(-1) if nb else None)


class BatchNormEval(ad.Op):
    """y = w (x - μ_r) / σ_r + b with the running statistics (constants);  dx = g w / σ_r,
    dw = Σ g (x - μ_r) / σ_r,  db = Σ g"""

    opname = "batch_norm"
    args = ("input", "weight", "bias", "running_mean", "running_var")
    saves = ("input", "weight", "running_mean", "running_var")
    reads = {
        "input": ("weight", "running_var"),
        "weight": ("input", "running_mean", "running_var"),
        "bias": (),
    }
    fields = ("eps",)
    forward = staticmethod(_batch_norm_eval)

    def vjp(self, g, x, w, rm, rv):
        # elementwise with constants: the same few kernels on both paths
        nx, nw, nb = self.needs_input_grad[:3]
        dims = _channel_dims(g)
        invstd = _per_channel((rv + self.eps) ** -0.5, g) if (nx or nw) else None
        gx = g * (invstd if w is None else invstd * _per_channel(w, g)) if nx else None
        gw = (g * ((x - _per_channel(rm, g)) * invstd)).sum(dims) if nw else None
        return gx, gw, (g.sum(dims) if nb else None), None, None


def batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    *,
    num_batches_tracked: torch.Tensor | None = None,
) -> Tensor:
    """Normalise each channel (dim 1) of an (N, C, ...) input: with the batch's statistics when
    ``training`` (updating ``running_mean``/``running_var`` in place when given:
    r = (1 - momentum) r + momentum · stat, the variance unbiased), else with the running ones.

    ``num_batches_tracked`` (nn.BatchNorm's counter, beyond torch's signature) is incremented
    with the update; ``momentum=None`` then averages cumulatively (1 / count).

    As torch: batch statistics need more than one value per channel (N·H·W != 1), and an empty
    input gives x · w[0] + b[0] (every gradient 0), the running statistics left alone."""
    op = "batch_norm"
    x = as_tensor(input)
    w = None if weight is None else as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    check_floats(op, input=x, weight=w, bias=b)
    if x.ndim < 2:
        raise ShapeError(f"{op}: expected an (N, C, ...) input, got shape {tuple(x.shape)}")
    c = x.shape[1]
    for name, t in (
        ("weight", w),
        ("bias", b),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ):
        if t is not None and tuple(t.shape) != (c,):
            raise ShapeError(
                f"{op}: {name} must have shape ({c},) for an input of shape "
                f"{tuple(x.shape)}, got {tuple(t.shape)}"
            )
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    if not training and running_mean is None:
        # as torch: eval mode normalises with the running statistics (nn.BatchNorm without
        # them passes training=True)
        raise ValueError(
            f"{op}: training=False needs running_mean and running_var (evaluation mode "
            "normalises with them); pass training=True to use the batch's statistics"
        )
    if training and math.prod(x.shape[:1] + x.shape[2:]) == 1:
        # batch statistics of one value per channel (torch's rule: N·H·W == 1; empty is fine)
        raise ValueError(
            f"{op}: expected more than 1 value per channel when training, got "
            f"input of shape {tuple(x.shape)}"
        )
    if x.shape.numel() == 0:
        # torch's empty input: x · w[0] + b[0] (empty; every gradient 0), statistics untouched
        if training and running_mean is not None and num_batches_tracked is not None:
            num_batches_tracked.add_(1)  # nn.BatchNorm counts the batch all the same
        y = x * 1.0 if w is None else x * w[0]
        return y if b is None else y + b[0]
    if training:
        running = None
        if training and running_mean is not None:
            if momentum is None and num_batches_tracked is None:
                raise ValueError(
                    f"{op}: momentum=None (a cumulative average) needs num_batches_tracked"
                )
            running = tuple(
                t.data if isinstance(t, Tensor) else t for t in (running_mean, running_var)
            ) + (num_batches_tracked,)
        return BatchNorm.apply(x, w, b, eps=eps, momentum=momentum, running=running)
    return BatchNormEval.apply(x, w, b, running_mean, running_var, eps=eps)


# ---- layer norm ----------------------------------------------------------------------------------
def _layer_norm(
    x: torch.Tensor, w: Any, b: Any, normalized_shape: tuple, eps: float
) -> torch.Tensor:
    return torch.layer_norm(x, normalized_shape, w, b, eps)


class LayerNorm(ad.Op):
    """y = w x̂ + b, statistics over the last dims (normalized_shape);  dx = (1 / σ) (g w
    - mean(g w) - x̂ mean(g w x̂)),  dw = Σ_lead g x̂,  db = Σ_lead g"""

    args = ("input", "weight", "bias")
    saves = ("input", "weight")
    reads = {"input": ("input", "weight"), "weight": ("input",), "bias": ()}
    fields = ("normalized_shape", "eps")
    forward = staticmethod(_layer_norm)

    def vjp(self, g, x, w):
        nx, nw, nb = self.needs_input_grad
        ns = self.normalized_shape
        if not (nx or nw):  # the bias alone: x was not saved
            return None, None, g.reshape((-1,) + tuple(ns)).sum(0)
        dims = tuple(range(x.ndim - len(ns), x.ndim))
        if g.__class__ is _RAW:  # first order: torch's fused kernel
            var, mean = torch.var_mean(x, dims, correction=0, keepdim=True)
            rstd = (var + self.eps).rsqrt()
            # stand-ins the kernel reads the shape of only (their values feed no wanted gradient)
            b = g.new_empty(ns) if nb else None
            w = g.new_empty(ns) if w is None and nw else w
            return tuple(_layer_norm_backward(g, x, ns, mean, rstd, w, b, (nx, nw, nb)))
        mean = x.mean(dims, keepdim=True)
        xc = x - mean
        rstd = ((xc * xc).mean(dims, keepdim=True) + self.eps) ** -0.5
        xhat = xc * rstd
        gx = None
        if nx:
            gw = g if w is None else g * w
            gx = (
                gw - gw.mean(dims, keepdim=True) - xhat * (gw * xhat).mean(dims, keepdim=True)
            ) * rstd
        # the lead dims flattened into one: summing over none of them stays well defined
        dw = (g * xhat).reshape((-1,) + tuple(ns)).sum(0) if nw else None
        db = g.reshape((-1,) + tuple(ns)).sum(0) if nb else None
        return gx, dw, db


def layer_norm(
    input: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Tensor:
    """Normalise over the last ``len(normalized_shape)`` dims, then scale by ``weight`` and
    shift by ``bias`` (both of ``normalized_shape``)."""
    op = "layer_norm"
    x = as_tensor(input)
    w = None if weight is None else as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    check_floats(op, input=x, weight=w, bias=b)
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not ns or tuple(x.shape[x.ndim - len(ns) :]) != ns or len(ns) > x.ndim:
        raise ShapeError(
            f"{op}: normalized_shape {ns} must be the last dims of the input, got "
            f"input of shape {tuple(x.shape)}"
        )
    for name, t in (("weight", w), ("bias", b)):
        if t is not None and tuple(t.shape) != ns:
            raise ShapeError(f"{op}: {name} must have shape {ns}, got {tuple(t.shape)}")
    return LayerNorm.apply(x, w, b, normalized_shape=ns, eps=eps)
