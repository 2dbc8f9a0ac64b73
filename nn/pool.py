"""2-d max and average pooling, each a pair of linear ops that are each other's VJPs.

Max pooling picks, per window, the element torch's kernel picks (its index: the first maximum
in row-major window order, NaN winning): ``MaxPool2d`` gathers ``x`` at those indices, which
are an input of the node (saved and version-checked), and its VJP ``MaxPool2dScatter`` adds the
gradient back at them (summing where windows overlap); the VJP of that is the gather again.
Average pooling is linear: ``AvgPool2d``'s VJP is ``AvgPool2dBackward`` (each window spreads its
gradient evenly), whose VJP is ``AvgPool2d`` again. First-order gradients use torch's fused
kernels (``max_pool2d_with_indices_backward``, ``avg_pool2d_backward``).
"""

from __future__ import annotations

from typing import Any

import torch

import autodiff as ad
from autodiff import ShapeError, Tensor, as_tensor

from .conv import check_floats, pair, unbatched

_RAW = torch.Tensor
_aten = torch.ops.aten
_max_pool_backward = _aten.max_pool2d_with_indices_backward.default
_avg_pool_backward = _aten.avg_pool2d_backward.default
_MAX_FIELDS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
_AVG_FIELDS = (
    "kernel_size",
    "stride",
    "padding",
    "ceil_mode",
    "count_include_pad",
    "divisor_override",
)


def _fields(op: Any, names: tuple) -> dict:
    return {k: getattr(op, k) for k in names}


# ---- max pooling ---------------------------------------------------------------------------------
def _argmax_windows(
    x: torch.Tensor,
    kernel_size: tuple,
    stride: tuple,
    padding: tuple,
    dilation: tuple,
    ceil_mode: bool,
) -> torch.Tensor:
    return _aten.max_pool2d_with_indices.default(
        x, kernel_size, stride, padding, dilation, ceil_mode
    )[1]


def _gather(x: torch.Tensor, indices: torch.Tensor, **pool: Any) -> torch.Tensor:
    # indices count within each (n, c) plane of the unpadded input
    return x.flatten(2).gather(2, indices.flatten(2)).view(indices.shape)


def _scatter(
    g: torch.Tensor, indices: torch.Tensor, input_size: tuple, **pool: Any
) -> torch.Tensor:
    z = g.new_zeros(input_size[:2] + (input_size[2] * input_size[3],))
    return z.scatter_add_(2, indices.flatten(2), g.flatten(2)).view(input_size)


class MaxPool2dIndices(ad.Op):
    """i = where each window's maximum sits (torch's choice on ties); no gradient: recorded
    without a node, only so that a replay recomputes the indices from its new input"""

    fields = _MAX_FIELDS
    forward = staticmethod(_argmax_windows)


class MaxPool2d(ad.Op):
    """y = x[i] (the window maxima, at indices i);  dx = g added at i (summed where windows
    overlap)"""

    args = ("input", "indices")
    saves = ("indices",)
    fields = _MAX_FIELDS
    forward = staticmethod(_gather)

    def vjp(self, g, indices):
        size = self.in_meta[0][0]
        if g.__class__ is _RAW:  # first order: torch's kernel (reads the input's shape only)
            return _max_pool_backward(
                g,
                g.new_empty(size),
                self.kernel_size,
                self.stride,
                self.padding,
                self.dilation,
                self.ceil_mode,
                indices,
            ), None
        return MaxPool2dScatter.apply(
            g, indices, input_size=size, **_fields(self, _MAX_FIELDS)
        ), None


class MaxPool2dScatter(ad.Op):
    """dx = zeros with g added at i (max pooling's VJP);  dg = gg[i]"""

    args = ("grad", "indices")
    saves = ("indices",)
    fields = ("input_size",) + _MAX_FIELDS
    forward = staticmethod(_scatter)

    def vjp(self, gg, indices):
        if gg.__class__ is _RAW:
            return _gather(gg, indices), None
        return MaxPool2d.apply(gg, indices, **_fields(self, _MAX_FIELDS)), None


# ---- average pooling ----------------------------------------------------------------------------
def _avg_pool(
    x: torch.Tensor,
    kernel_size: tuple,
    stride: tuple,
    padding: tuple,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Any,
) -> torch.Tensor:
    return torch._C._nn.avg_pool2d(
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )


def _avg_pool_grad(
    g: torch.Tensor,
    input_size: tuple,
    kernel_size: tuple,
    stride: tuple,
    padding: tuple,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Any,
) -> torch.Tensor:
    # the kernel reads only the input's shape: an uninitialised stand-in is enough
    return _avg_pool_backward(
        g,
        g.new_empty(input_size),
        kernel_size,
        stride,
        padding,
        ceil_mode,
        count_include_pad,
        divisor_override,
    )


class AvgPool2d(ad.Op):
    """y = Σ_window x / d (d the window's count or divisor_override);  dx = each g / d spread over
    its window"""

    fields = _AVG_FIELDS
    forward = staticmethod(_avg_pool)

    def vjp(self, g):
        pool = _fields(self, _AVG_FIELDS)
        if g.__class__ is _RAW:
            return _avg_pool_grad(g, self.in_meta[0][0], **pool)
        return AvgPool2dBackward.apply(g, input_size=self.in_meta[0][0], **pool)


class AvgPool2dBackward(ad.Op):
    """dx = each g / d spread over its window (average pooling's VJP);  dg = avg_pool2d(gg)"""

    args = ("grad",)
    fields = ("input_size",) + _AVG_FIELDS
    forward = staticmethod(_avg_pool_grad)

    def vjp(self, gg):
        pool = _fields(self, _AVG_FIELDS)
        if gg.__class__ is _RAW:
            return _avg_pool(gg, **pool)
        return AvgPool2d.apply(gg, **pool)


# ---- the functions -------------------------------------------------------------------------------
def _window(
    op: str,
    x: Tensor,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> tuple:
    check_floats(op, input=x)
    k = pair(op, "kernel_size", kernel_size)
    s = (
        k
        if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
        else pair(op, "stride", stride)
    )
    p = pair(op, "padding", padding, low=0)
    d = pair(op, "dilation", dilation)
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(f"{op}: padding {p} must be at most half the kernel size {k}")
    # torch's rule: the output size by its formula must be at least 1 (with ceil_mode a window
    # wider than the padded input still gives one output: it pools what it reaches)
    for i, name in ((0, "height"), (1, "width")):
        size = x.shape[-2 + i]
        if pooled_size(size, k[i], s[i], p[i], d[i], ceil_mode) < 1:
            span = d[i] * (k[i] - 1) + 1
            raise ShapeError(
                f"{op}: input {name} {size} with padding {p[i]} is smaller than the "
                f"window {span} (input shape {tuple(x.shape)})"
            )
    return k, s, p, d


def pooled_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch's output size of a pooling (with ceil_mode the last window starts inside the
    input or its left padding)."""
    n = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = n // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _check_windows(
    op: str, x: Tensor, k: tuple, s: tuple, p: tuple, d: tuple, ceil_mode: bool
) -> None:
    # a dilated window can fall wholly into the padding: torch then returns -inf with an index
    # outside the input; refuse it rather than gather from nowhere
    for i in (0, 1):
        if d[i] == 1 or p[i] == 0:
            continue  # a window of consecutive elements always reaches the input
        size = x.shape[-2 + i]
        for o in range(pooled_size(size, k[i], s[i], p[i], d[i], ceil_mode)):
            if not any(0 <= o * s[i] - p[i] + j * d[i] < size for j in range(k[i])):
                raise ValueError(
                    f"{op}: with kernel_size={k}, stride={s}, padding={p}, "
                    f"dilation={d} a window of the input of shape "
                    f"{tuple(x.shape)} lies entirely in the padding"
                )


def max_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Max over each kH×kW window of an (N, C, H, W) or (C, H, W) input (stride defaults to the
    kernel size; padding counts as -inf). With ``return_indices``, also where each max sits
    (flat indices within each H×W plane, as torch's)."""
    op = "max_pool2d"
    x = as_tensor(input)
    squeeze = unbatched(op, x)
    k, s, p, d = _window(op, x, kernel_size, stride, padding, dilation, bool(ceil_mode))
    _check_windows(op, x, k, s, p, d, bool(ceil_mode))
    if squeeze:
        x = x.unsqueeze(0)
    pool = {
        "kernel_size": k,
        "stride": s,
        "padding": p,
        "dilation": d,
        "ceil_mode": bool(ceil_mode),
    }
    with ad.no_grad():  # the indices get no gradient; recorded only for a replay to recompute
        indices = MaxPool2dIndices.apply(x.detach(), **pool)
    y = MaxPool2d.apply(x, indices, **pool)
    if squeeze:
        y, indices = y.squeeze(0), indices.squeeze(0)
    return (y, indices) if return_indices else y


def avg_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Mean over each kH×kW window of an (N, C, H, W) or (C, H, W) input (stride defaults to the
    kernel size); ``count_include_pad`` counts the zero padding in the divisor, as torch's."""
    op = "avg_pool2d"
    x = as_tensor(input)
    squeeze = unbatched(op, x)
    k, s, p, _ = _window(op, x, kernel_size, stride, padding, 1, bool(ceil_mode))
    if divisor_override is not None and (
        not isinstance(divisor_override, int)
        or isinstance(divisor_override, bool)
        or divisor_override == 0
    ):
        raise ValueError(
            f"{op}: divisor_override must be a non-zero int or None, got {divisor_override!r}"
        )
    if squeeze:
        x = x.unsqueeze(0)
    y = AvgPool2d.apply(
        x,
        kernel_size=k,
        stride=s,
        padding=p,
        ceil_mode=bool(ceil_mode),
        count_include_pad=bool(count_include_pad),
        divisor_override=divisor_override,
    )
    return y.squeeze(0) if squeeze else y
