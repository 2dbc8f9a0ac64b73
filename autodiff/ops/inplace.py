"""In-place ops: ``add_ sub_ mul_ div_ clamp_ zero_ fill_ copy_`` and ``x[idx] = value``.

Three cases, decided per call:
- no recording wanted (grad mode off, or nothing involved requires grad): the data is changed in
  place. torch bumps the data's version counter, so a recorded VJP that saved this tensor refuses
  to run later (``backward`` names the op that saved it) instead of using the new values.
- a leaf that requires grad, under grad mode: refused, as in PyTorch (optimizers update under
  ``no_grad()``).
- a recorded tensor, or a value that requires grad: the tensor is *rebased*. The out-of-place op
  is recorded on the old value, its result is copied into the tensor's memory and the tensor's
  ``grad_fn`` becomes the new node. A tensor sharing memory with another one (a view, or viewed)
  is refused: their graphs could not both be updated, and a silently wrong gradient would follow.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import DeviceError, DTypeError, GraphError, ShapeError
from ..grad_mode import state
from ..op import Op
from . import elementwise as E
from ._common import SCALARS, Tensor, broadcast_mismatch, shape_str, zeros_like_grad
from .indexing import _INDEX_ARGS, _PAD, fill_index, pick, raw_index, raws, split_index


def check_leaf(x: Tensor, op: str) -> None:
    """Refuse an in-place change of a leaf that requires grad while recording."""
    if x.grad_fn is None and x._requires_grad and state.grad_enabled:
        raise GraphError(
            f"{op}: a leaf tensor that requires grad (shape {shape_str(x.shape)}) is being used in "
            "an in-place operation; do the update under `with autodiff.no_grad():` (as optimizers "
            "do) or use the out-of-place op."
        )


def _wants_record(x: Tensor, values: tuple) -> bool:
    if not state.grad_enabled:
        return False
    if x.grad_fn is not None:
        return True
    return any(isinstance(v, Tensor) and v._requires_grad for v in values)


def _shares_memory(d: torch.Tensor) -> bool:
    """Whether another tensor (a view of ``d``, or ``d``'s base) uses ``d``'s memory."""
    if d._base is not None:
        return True
    try:
        # One reference from d itself, one from the storage object made for the query.
        return torch._C._storage_Use_Count(d.untyped_storage()._cdata) > 2
    except (AttributeError, RuntimeError):  # pragma: no cover - private API missing: be safe
        return True


def _rebase(x: Tensor, op: str, out_of_place: Any) -> Tensor:
    """Record ``out_of_place(old_x)`` and make it x's new value and grad_fn."""
    xd = x.data
    if _shares_memory(xd):
        raise GraphError(
            f"{op}: this tensor (shape {shape_str(x.shape)}) shares memory with another tensor (it "
            "is a view, or something views it), so an in-place change cannot be recorded for "
            f"both. Use the out-of-place op (e.g. y = x.{op.rstrip('_')}(...)) or clone() first."
        )
    old = Tensor._make(xd, x.grad_fn)
    old._requires_grad = x._requires_grad
    y = out_of_place(old)
    if y.shape != xd.shape:
        raise ShapeError(
            f"{op}: the result has shape {shape_str(y.shape)} but is written in place "
            f"into a tensor of shape {shape_str(xd.shape)}"
        )
    if y.dtype != xd.dtype:
        raise DTypeError(
            f"{op}: the result has dtype {y.dtype} but is written in place into a "
            f"tensor of dtype {xd.dtype}"
        )
    node = y.grad_fn
    if node is None:  # pragma: no cover - only called when something requires grad
        xd.copy_(y.data)
        return x
    saved = node.saved
    if saved and any(s is old for s in saved):
        # The new node saved the old value itself: keep a copy, since xd changes below. Only
        # ``old``: any other alias of xd (``x.detach()``, x itself) keeps its version check and
        # makes backward refuse, as in torch.
        snap = Tensor._make(xd.clone(), old.grad_fn)
        snap._requires_grad = old._requires_grad
        node.saved = tuple(snap if s is old else s for s in saved)
        node.versions = tuple(
            snap.data._version if s is old else v for s, v in zip(saved, node.versions)
        )
    xd.copy_(y.data)  # bumps the version: VJPs that saved the old value will refuse to run
    x.grad_fn = node
    x._requires_grad = True
    return x


def _operand(op: str, x: Tensor, v: Any, name: str = "other") -> Any:
    """Validate an operand of an in-place op on ``x``; return its raw form."""
    xd = x.data
    if v.__class__ in SCALARS:
        if isinstance(v, float) and not (xd.is_floating_point() or xd.is_complex()):
            raise DTypeError(
                f"{op}: cannot write the float {v!r} in place into a tensor of dtype {xd.dtype}"
            )
        return v
    if isinstance(v, Tensor):
        vd = v.data
    elif isinstance(v, torch.Tensor):
        vd = v.detach()
    else:
        raise TypeError(f"{op}: {name} must be a Tensor or a number, got {type(v).__name__}")
    if vd.device != xd.device and vd.dim() > 0:
        raise DeviceError(
            f"{op}: the tensor is on {xd.device} but {name} (shape "
            f"{shape_str(vd.shape)}) is on {vd.device}; move it with .to() first"
        )
    if xd.dtype is not vd.dtype and xd.is_floating_point() and vd.is_floating_point():
        raise DTypeError(
            f"{op}: the tensor has dtype {xd.dtype} but {name} has dtype {vd.dtype}; "
            f"convert {name} with .to({xd.dtype}) first"
        )
    if not torch.can_cast(torch.result_type(xd, vd), xd.dtype):
        raise DTypeError(
            f"{op}: a result of dtype {torch.result_type(xd, vd)} cannot be written "
            f"in place into a tensor of dtype {xd.dtype}"
        )
    return vd


def _broadcast_into(op: str, x: Tensor, vd: Any) -> None:
    if not isinstance(vd, torch.Tensor):
        return
    try:
        shape = torch.broadcast_shapes(x.data.shape, vd.shape)
    except RuntimeError:
        raise ShapeError(f"{op}: {broadcast_mismatch(x.data.shape, vd.shape)}") from None
    if shape != x.data.shape:
        raise ShapeError(
            f"{op}: the result would have the broadcast shape {shape_str(shape)}, "
            f"which does not fit in place into a tensor of shape "
            f"{shape_str(x.data.shape)}"
        )


def _inplace_binary(self: Tensor, op: str, other: Any, raw_fn: Any, ad_fn: Any) -> Tensor:
    check_leaf(self, op)
    od = _operand(op, self, other)
    _broadcast_into(op, self, od)
    if _wants_record(self, (other,)):
        return _rebase(self, op, lambda old: ad_fn(old, other))
    raw_fn(self.data, od)
    return self


def _check_alpha(op: str, alpha: Any) -> None:
    if alpha.__class__ not in SCALARS:
        raise TypeError(f"{op}: alpha must be a number, got {type(alpha).__name__}")


def _scaled(op: str, self: Tensor, other: Any, alpha: Any) -> Any:
    """``alpha * other`` for add_/sub_ (other unchanged when alpha is 1)."""
    _check_alpha(op, alpha)
    if alpha == 1:
        return other
    if isinstance(other, Tensor) or other.__class__ in SCALARS:
        return other * alpha
    return _operand(op, self, other) * alpha


def add_(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
    """x += alpha * other, in place."""
    return _inplace_binary(
        self, "add_", _scaled("add_", self, other, alpha), lambda d, o: d.add_(o), E.add
    )


def sub_(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
    """x -= alpha * other, in place."""
    return _inplace_binary(
        self, "sub_", _scaled("sub_", self, other, alpha), lambda d, o: d.sub_(o), E.sub
    )


def mul_(self: Tensor, other: Any) -> Tensor:
    """x *= other, in place."""
    return _inplace_binary(self, "mul_", other, lambda d, o: d.mul_(o), E.mul)


def div_(self: Tensor, other: Any) -> Tensor:
    """x /= other, in place (floating point tensors only: true division)."""
    if not (self.data.is_floating_point() or self.data.is_complex()):
        raise DTypeError(
            f"div_: true division cannot be written in place into a tensor of "
            f"dtype {self.data.dtype}; convert it with .float() first"
        )
    return _inplace_binary(self, "div_", other, lambda d, o: d.div_(o), E.div)


def clamp_(self: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """Limit values to [min, max] in place (tensor bounds broadcast to x's shape)."""
    check_leaf(self, "clamp_")
    if min is None and max is None:
        raise ValueError("clamp_: at least one of min and max must be given")
    lo = None if min is None else _operand("clamp_", self, min, "min")
    hi = None if max is None else _operand("clamp_", self, max, "max")
    _broadcast_into("clamp_", self, lo)
    _broadcast_into("clamp_", self, hi)
    if _wants_record(self, (min, max)):
        return _rebase(self, "clamp_", lambda old: E.clamp(old, min, max))
    self.data.clamp_(lo, hi)
    return self


class Fill(Op):
    """y = x with every element set to v (a 0-d tensor);  dx = 0,  dv = sum(g)"""

    args = ("x", "v")
    opname = "fill_"
    forward = staticmethod(lambda x, v: torch.empty_like(x).copy_(v))

    def vjp(self, g):
        dx, dv = self.needs_input_grad
        return (zeros_like_grad(g) if dx else None), (g.sum() if dv else None)


def _value(value: Any, vd: Any, xd: torch.Tensor) -> Any:
    """The value to record: its Tensor, or a constant 0-d tensor of x's dtype for a number."""
    if isinstance(value, Tensor):
        return value
    if isinstance(vd, torch.Tensor):
        return vd
    return Tensor._make(torch.tensor(vd, dtype=xd.dtype, device=xd.device))


def fill_(self: Tensor, value: Any) -> Tensor:
    """Set every element to ``value`` (a number or a one-element tensor)."""
    check_leaf(self, "fill_")
    vd = _operand("fill_", self, value, "value")
    if isinstance(vd, torch.Tensor) and vd.dim() != 0:
        raise ShapeError(
            f"fill_: the value must be a number or a 0-d tensor, got a tensor of "
            f"shape {shape_str(vd.shape)}"
        )
    if _wants_record(self, (value,)):
        v = _value(value, vd, self.data)
        return _rebase(self, "fill_", lambda old: Fill.apply(old, v))
    self.data.fill_(vd)
    return self


def zero_(self: Tensor) -> Tensor:
    """Set every element to 0."""
    check_leaf(self, "zero_")
    return fill_(self, 0)


class SetItem(Op):
    """y = x with y[idx] = v (v broadcast);  dx = g with 0 at idx,  dv = g[idx] (summed to v)"""

    args = ("x", "v") + _INDEX_ARGS
    saves = _INDEX_ARGS
    fields = ("key",)
    opname = "setitem"
    forward = staticmethod(
        lambda x, v, *tensors, key: _assigned(x.clone(), fill_index(key, tensors), v)
    )

    def vjp(self, g, *tensors):
        dx, dv = self.needs_input_grad[:2]
        gx = gv = None
        if not any(t is not None for t in tensors):
            tensors = ()
        if dx:
            if g.__class__ is torch.Tensor:  # selection: an inf in g never reaches idx
                gx = _assigned(g.clone(), fill_index(self.key, raws(tensors)), 0)
            else:
                zero = torch.zeros((), dtype=g.dtype, device=g.device)
                gx = SetItem.apply(g, zero, *(tensors or _PAD), key=self.key)
        if dv:
            gv = pick(g, self.key, tensors)
            vshape = self.in_meta[1][0]
            if len(vshape) > gv.ndim:  # v had leading 1s that torch drops: put them back
                gv = gv.reshape((1,) * (len(vshape) - gv.ndim) + tuple(gv.shape))
        return (gx, gv) + _PAD


def _assigned(out: torch.Tensor, idx: Any, v: Any) -> torch.Tensor:
    out[idx] = v
    return out


def _fits(target: torch.Size, vshape: torch.Size) -> bool:
    """Whether a value of ``vshape`` can be written into ``target`` (torch drops leading 1s)."""
    v = tuple(vshape)
    while len(v) > len(target) and v[0] == 1:
        v = v[1:]
    try:
        return torch.broadcast_shapes(target, v) == target
    except RuntimeError:
        return False


def setitem(self: Tensor, idx: Any, value: Any) -> None:
    """``x[idx] = value`` with the full torch indexing syntax; ``value`` broadcasts."""
    check_leaf(self, "setitem")
    ridx = raw_index(idx)
    vd = _operand("setitem", self, value, "value")
    try:
        target = self.data[ridx]
    except (IndexError, RuntimeError, TypeError) as e:
        raise type(e)(
            f"setitem: indexing a tensor of shape {shape_str(self.shape)} with {idx!r}: {e}"
        ) from None
    if isinstance(vd, torch.Tensor) and not _fits(target.shape, vd.shape):
        raise ShapeError(
            f"setitem: a value of shape {shape_str(vd.shape)} cannot be written "
            f"into x[{idx!r}] of shape {shape_str(target.shape)} (x has shape "
            f"{shape_str(self.shape)})"
        )
    del target  # a view: it would count as sharing memory in _rebase
    if _wants_record(self, (value,)):
        key, tensors = split_index("setitem", idx, self.data.device)
        v = _value(value, vd, self.data)
        _rebase(self, "setitem", lambda old: SetItem.apply(old, v, *(tensors or _PAD), key=key))
        return
    self.data[ridx] = vd


def copy_(self: Tensor, src: Any) -> Tensor:
    """Copy ``src`` (broadcast to x's shape) into x; differentiable w.r.t. ``src``."""
    if not isinstance(src, (Tensor, torch.Tensor)):
        raise TypeError(f"copy_: src must be a Tensor, got {type(src).__name__}")
    check_leaf(self, "copy_")
    setitem(self, Ellipsis, src)
    return self


class InplaceMethods:
    """The in-place Tensor methods (mixed into ``autodiff.Tensor``)."""

    __slots__ = ()
    add_ = __iadd__ = add_
    sub_ = __isub__ = sub_
    mul_ = __imul__ = mul_
    div_ = __itruediv__ = div_
    clamp_ = clip_ = clamp_
    fill_, zero_, copy_ = fill_, zero_, copy_
    __setitem__ = setitem
