"""2-d convolution as three bilinear ops that are each other's VJPs, so every order works.

With ``A_w x = conv2d(x, w)`` (cross-correlation, per group):

- ``Conv2d(x, w, b) = A_w x + b``: its VJP is ``InputGrad(g, w) = A_wᵀ g``,
  ``WeightGrad(x, g)`` (the w with ``<v, WeightGrad(x, g)> = <A_v x, g>``) and ``Σ g``;
- ``Conv2dInputGrad(g, w)``: its VJP is ``conv2d(gg, w)`` for g and ``WeightGrad(gg, g)`` for w;
- ``Conv2dWeightGrad(x, g)``: its VJP is ``InputGrad(g, gw)`` for x and ``conv2d(x, gw)`` for g.

Values come from torch's kernels (``torch.conv2d``, ``aten.convolution_backward``): first-order
gradients are torch's own, and under ``create_graph`` the same kernels run inside recorded ops.
``padding="same"`` with an even total padding is symmetric; an odd one pads one more on the
bottom/right (torch's rule), by a recorded ``ConstantPad2d``.
"""

from __future__ import annotations

from typing import Any

import torch

import autodiff as ad
from autodiff import DTypeError, ShapeError, Tensor, as_tensor

_RAW = torch.Tensor
_conv_backward = torch.ops.aten.convolution_backward.default
_CONV_FIELDS = ("stride", "padding", "dilation", "groups")


def _conv(
    x: torch.Tensor,
    w: torch.Tensor,
    b: Any,
    stride: tuple,
    padding: tuple,
    dilation: tuple,
    groups: int,
) -> torch.Tensor:
    return torch.conv2d(x, w, b, stride, padding, dilation, groups)


def _input_grad(
    g: torch.Tensor,
    w: torch.Tensor,
    input_size: tuple,
    stride: tuple,
    padding: tuple,
    dilation: tuple,
    groups: int,
) -> torch.Tensor:
    # the kernel reads only the input's shape: an uninitialised stand-in is enough
    return _conv_backward(
        g,
        g.new_empty(input_size),
        w,
        None,
        stride,
        padding,
        dilation,
        False,
        (0, 0),
        groups,
        (True, False, False),
    )[0]


def _weight_grad(
    x: torch.Tensor,
    g: torch.Tensor,
    weight_size: tuple,
    stride: tuple,
    padding: tuple,
    dilation: tuple,
    groups: int,
) -> torch.Tensor:
    return _conv_backward(
        g,
        x,
        g.new_empty(weight_size),
        None,
        stride,
        padding,
        dilation,
        False,
        (0, 0),
        groups,
        (False, True, False),
    )[1]


def _fields(op: Any) -> dict:
    return {k: getattr(op, k) for k in _CONV_FIELDS}


class Conv2d(ad.Op):
    """y = A_w x + b;  dx = A_wᵀ g (a transposed convolution),  dw = WeightGrad(x, g),
    db = Σ_{n,h,w} g"""

    args = ("input", "weight", "bias")
    saves = ("input", "weight")
    reads = {"input": ("weight",), "weight": ("input",), "bias": ()}
    fields = _CONV_FIELDS
    forward = staticmethod(_conv)

    def vjp(self, g, x, w):
        nx, nw, nb = self.needs_input_grad
        gb = g.sum((0, 2, 3)) if nb else None
        if not (nx or nw):
            return None, None, gb
        meta = self.in_meta
        if g.__class__ is _RAW:  # first order: torch's one fused kernel
            # an input not saved is needed for its shape only (its gradient is not wanted)
            x = g.new_empty(meta[0][0]) if x is None else x
            w = g.new_empty(meta[1][0]) if w is None else w
            gx, gw, _ = _conv_backward(
                g,
                x,
                w,
                None,
                self.stride,
                self.padding,
                self.dilation,
                False,
                (0, 0),
                self.groups,
                (nx, nw, False),
            )
            return gx, gw, gb
        f = _fields(self)
        gx = Conv2dInputGrad.apply(g, w, input_size=meta[0][0], **f) if nx else None
        gw = Conv2dWeightGrad.apply(x, g, weight_size=meta[1][0], **f) if nw else None
        return gx, gw, gb


class Conv2dInputGrad(ad.Op):
    """dx = A_wᵀ g;  dg = A_w gg = conv2d(gg, w),  dw = WeightGrad(gg, g)"""

    args = saves = ("grad", "weight")
    reads = {"grad": ("weight",), "weight": ("grad",)}
    fields = ("input_size",) + _CONV_FIELDS
    forward = staticmethod(_input_grad)

    def vjp(self, gg, g, w):
        dg, dw = self.needs_input_grad
        f = _fields(self)
        w_size = self.in_meta[1][0] if dw else None
        if gg.__class__ is _RAW:
            return (
                (_conv(gg, w, None, **f) if dg else None),
                (_weight_grad(gg, g, w_size, **f) if dw else None),
            )
        return (
            (Conv2d.apply(gg, w, None, **f) if dg else None),
            (Conv2dWeightGrad.apply(gg, g, weight_size=w_size, **f) if dw else None),
        )


class Conv2dWeightGrad(ad.Op):
    """dw = WeightGrad(x, g), with <v, dw> = <A_v x, g>;  dx = A_gwᵀ g,  dg = conv2d(x, gw)"""

    args = saves = ("input", "grad")
    reads = {"input": ("grad",), "grad": ("input",)}
    fields = ("weight_size",) + _CONV_FIELDS
    forward = staticmethod(_weight_grad)

    def vjp(self, gw, x, g):
        dx, dg = self.needs_input_grad
        f = _fields(self)
        x_size = self.in_meta[0][0] if dx else None
        if gw.__class__ is _RAW:
            return (
                (_input_grad(g, gw, x_size, **f) if dx else None),
                (_conv(x, gw, None, **f) if dg else None),
            )
        return (
            (Conv2dInputGrad.apply(g, gw, input_size=x_size, **f) if dx else None),
            (Conv2d.apply(x, gw, None, **f) if dg else None),
        )


class ConstantPad2d(ad.Op):
    """y = x with zeros added around its last two dims;  dx = g without them"""

    fields = ("pad",)  # (left, right, top, bottom), as torch's F.pad
    forward = staticmethod(lambda x, pad: torch.constant_pad_nd(x, pad, 0.0))

    def vjp(self, g):
        left, right, top, bottom = self.pad
        h, w = g.shape[-2], g.shape[-1]
        return g[..., top : h - bottom, left : w - right]


# ---- argument checks ----------------------------------------------------------------------------
def pair(op: str, name: str, v: Any, low: int = 1) -> tuple[int, int]:
    """An int or a pair of ints as a pair, each at least ``low``."""
    t = (v, v) if isinstance(v, int) and not isinstance(v, bool) else v
    if (
        not isinstance(t, (tuple, list))
        or len(t) != 2
        or any(not isinstance(i, int) or isinstance(i, bool) for i in t)
    ):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    if any(i < low for i in t):
        raise ValueError(f"{op}: {name} must be at least {low}, got {v!r}")
    return int(t[0]), int(t[1])


def check_floats(op: str, **tensors: Any) -> None:
    """All given tensors floating point and of one dtype and device."""
    seen = [(n, t.data) for n, t in tensors.items() if t is not None]
    for n, d in seen:
        if not d.is_floating_point():
            raise DTypeError(f"{op}: {n} must be floating point, got dtype {d.dtype}")
    dtypes = {d.dtype for _, d in seen}
    if len(dtypes) > 1:
        desc = ", ".join(f"{n} {d.dtype}" for n, d in seen)
        raise DTypeError(
            f"{op}: operands have different dtypes ({desc}); convert them to one "
            "dtype with .to(dtype) first"
        )
    if len({d.device for _, d in seen}) > 1:
        desc = ", ".join(f"{n} on {d.device}" for n, d in seen)
        raise ad.DeviceError(f"{op}: operands are on different devices ({desc})")


def unbatched(op: str, x: Tensor, what: str = "(N, C, H, W) or (C, H, W)") -> bool:
    """Whether ``x`` is a 3-d (C, H, W) input (torch accepts one without the batch dim)."""
    if x.ndim not in (3, 4):
        raise ShapeError(f"{op}: expected a {what} input, got shape {tuple(x.shape)}")
    return x.ndim == 3


def _same_padding(dilation: tuple, k: tuple) -> tuple[tuple, tuple]:
    """torch's "same": total d (k - 1) per dim, half on each side, the odd one bottom/right."""
    total = [d * (s - 1) for d, s in zip(dilation, k)]
    sym = tuple(t // 2 for t in total)
    extra = tuple(t - 2 * (t // 2) for t in total)
    return sym, extra


def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """2-d cross-correlation of an (N, C_in, H, W) input with a (C_out, C_in / groups, kH, kW)
    weight, plus an optional (C_out,) bias; torch.nn.functional.conv2d's arguments, including
    ``padding="same"`` (stride 1 only) and ``"valid"``."""
    op = "conv2d"
    x, w = as_tensor(input), as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    check_floats(op, input=x, weight=w, bias=b)
    squeeze = unbatched(op, x)
    if w.ndim != 4:
        raise ShapeError(
            f"{op}: weight must be 4-d (C_out, C_in / groups, kH, kW), got shape {tuple(w.shape)}"
        )
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    c_in = x.shape[-3]
    c_out, c_per_group = w.shape[0], w.shape[1]
    if c_in != c_per_group * groups or c_out % groups:
        raise ShapeError(
            f"{op}: input of shape {tuple(x.shape)} has {c_in} channels but weight "
            f"of shape {tuple(w.shape)} with groups={groups} expects "
            f"{c_per_group * groups} (and C_out={c_out} divisible by groups)"
        )
    if b is not None and tuple(b.shape) != (c_out,):
        raise ShapeError(f"{op}: bias must have shape ({c_out},), got {tuple(b.shape)}")
    stride = pair(op, "stride", stride)
    dilation = pair(op, "dilation", dilation)
    extra = (0, 0)
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"{op}: padding='same' is not supported for strided "
                    f"convolutions (stride={stride})"
                )
            padding, extra = _same_padding(dilation, tuple(w.shape[2:]))
        else:
            raise ValueError(
                f"{op}: padding must be 'same', 'valid', an int or a pair of ints, got {padding!r}"
            )
    else:
        padding = pair(op, "padding", padding, low=0)
    if squeeze:
        x = x.unsqueeze(0)
    if extra != (0, 0):
        x = ConstantPad2d.apply(x, pad=(0, extra[1], 0, extra[0]))
    for d, name in ((2, "height"), (3, "width")):
        span = dilation[d - 2] * (w.shape[d] - 1) + 1
        if x.shape[d] + 2 * padding[d - 2] < span:
            raise ShapeError(
                f"{op}: input {name} {x.shape[d]} with padding {padding[d - 2]} is "
                f"smaller than the (dilated) kernel {span} (input shape "
                f"{tuple(x.shape)}, weight shape {tuple(w.shape)})"
            )
    y = Conv2d.apply(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    return y.squeeze(0) if squeeze else y
