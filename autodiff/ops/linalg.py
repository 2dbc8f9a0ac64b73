"""Matrix products: ``matmul`` (1-D, 2-D, batched with broadcasting) and the fused ``linear``."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import DeviceError, DTypeError, ShapeError
from ..op import Op
from ._common import Tensor, as_tensor, check_float_pair, shape_str


class MatMul(Op):
    """y = a @ b;  da = g @ bᵀ,  db = aᵀ @ g  (1-D operands are promoted, batch dims summed)"""

    args = saves = ("a", "b")
    reads = {"a": ("b",), "b": ("a",)}
    forward = staticmethod(torch.matmul)

    def vjp(self, g, a, b):
        da, db = self.needs_input_grad
        a_vec = len(self.in_meta[0][0] if da else a.shape) == 1
        b_vec = len(self.in_meta[1][0] if db else b.shape) == 1
        # b first: for a 1-D @ 1-D dot product g is 0-d, and only unsqueeze(-1) accepts that.
        if b_vec:
            g = g.unsqueeze(-1)
        if a_vec:
            g = g.unsqueeze(-2)
        ga = gb = None
        if da:
            ga = g @ (b.unsqueeze(-1) if b_vec else b).mT
            if a_vec:
                ga = ga.squeeze(-2)
        if db:
            gb = (a.unsqueeze(0) if a_vec else a).mT @ g
            if b_vec:
                gb = gb.squeeze(-1)
        return ga, gb


def _matmul_error(a: torch.Tensor, b: torch.Tensor) -> ShapeError:
    if a.dim() == 0 or b.dim() == 0:
        return ShapeError(
            f"matmul: both operands must have at least 1 dim, got shapes "
            f"{shape_str(a.shape)} and {shape_str(b.shape)}"
        )
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.dim() == 1 else b.shape[-2]
    if k_a != k_b:
        return ShapeError(
            f"matmul: shapes {shape_str(a.shape)} and {shape_str(b.shape)} are not aligned: the "
            f"first has {k_a} columns but the second has {k_b} rows"
        )
    return ShapeError(
        f"matmul: batch dims of shapes {shape_str(a.shape)} and "
        f"{shape_str(b.shape)} cannot be broadcast together"
    )


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with torch.matmul's rules (vector, matrix, batched)."""
    a, b = as_tensor(a), as_tensor(b)
    ra, rb = a.data, b.data
    check_float_pair("matmul", ra, rb)
    try:
        return MatMul.apply(a, b)
    except DeviceError:
        raise
    except RuntimeError:  # torch's message (or a broadcasting one) says less than ours
        raise _matmul_error(ra, rb) from None


def mm(a: Any, b: Any) -> Tensor:
    """The product of two matrices (2-D only, as torch.mm; ``matmul`` broadcasts)."""
    a, b = as_tensor(a), as_tensor(b)
    if a.data.dim() != 2 or b.data.dim() != 2:
        raise ShapeError(
            f"mm: expects two matrices (2-D), got shapes {shape_str(a.shape)} and "
            f"{shape_str(b.shape)}; use matmul for vectors and batches"
        )
    return matmul(a, b)


def dot(a: Any, b: Any) -> Tensor:
    """The inner product of two vectors of the same length (1-D only, as torch.dot)."""
    a, b = as_tensor(a), as_tensor(b)
    if a.data.dim() != 1 or b.data.dim() != 1 or a.data.shape != b.data.shape:
        raise ShapeError(
            f"dot: expects two 1-D tensors of the same length, got shapes "
            f"{shape_str(a.shape)} and {shape_str(b.shape)}"
        )
    return matmul(a, b)


_linear = torch.nn.functional.linear  # a plain kernel call: torch's autograd is not involved
_RAW = torch.Tensor


class Linear(Op):
    """y = x @ Wᵀ + b;  dx = g @ W,  dW = gᵀ @ x,  db = Σ_batch g  (a 1-D W is one output row)"""

    args = ("x", "weight", "bias")
    saves = ("x", "weight")
    reads = {"x": ("weight",), "weight": ("x",), "bias": ()}
    forward = staticmethod(_linear)

    def vjp(self, g, x, w):
        ins = self.inputs
        dx, dw, db = ins[0] is not None, ins[1] is not None, ins[2] is not None
        # the bias's gradient: g summed over the batch, or g itself for the engine to sum down
        # to a bias that broadcasts differently
        gb = (g.sum(0) if g.ndim == 2 and len(self.input_shape(2)) == 1 else g) if db else None
        w_vec = len(self.input_shape(1)) == 1 if dw else (w is not None and w.ndim == 1)
        if g.__class__ is _RAW and g.ndim == 2 and not w_vec:  # first order, 2-D: mm kernels
            return g.mm(w) if dx else None, g.t().mm(x) if dw else None, gb
        if w_vec:  # y = x @ w: one output feature, dropped from y's shape
            g = g.unsqueeze(-1)
        gx = (g @ (w.unsqueeze(0) if w_vec else w)) if dx else None
        gw = None
        if dw:
            n = math.prod(g.shape[:-1])  # explicit sizes: reshape(-1, 0) is ambiguous
            gw = g.reshape(n, g.shape[-1]).mT @ x.reshape(n, x.shape[-1])
            if w_vec:
                gw = gw.reshape(self.input_shape(1))
        return gx, gw, gb


def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """Affine map ``x @ weight.T + bias`` as one node (one ``addmm`` kernel for 2-D x); a bias
    broadcasts to the output, as in torch."""
    # (``as_tensor`` and ``check_float_pair`` called only when there is something to do: this
    # runs once per layer call)
    if not isinstance(x, Tensor):
        x = as_tensor(x)
    if not isinstance(weight, Tensor):
        weight = as_tensor(weight)
    rx, rw = x.data, weight.data
    dtype = rx.dtype
    if rw.dtype is not dtype:
        check_float_pair("linear", rx, rw)
    if bias is not None:
        if not isinstance(bias, Tensor):
            bias = as_tensor(bias)
        if bias.data.dtype is not dtype:
            check_float_pair("linear", rx, bias.data)
    try:
        return Linear.apply(x, weight, bias)
    except DeviceError:
        raise
    except RuntimeError:
        if rx.dtype != rw.dtype:
            raise DTypeError(
                f"linear: input dtype {rx.dtype} does not match weight dtype "
                f"{rw.dtype}; convert the input, e.g. x.float()"
            ) from None
        bshape = "" if bias is None else f", bias {shape_str(bias.shape)}"
        raise ShapeError(
            f"linear: input {shape_str(rx.shape)} does not fit weight "
            f"{shape_str(rw.shape)}{bshape}: the input's last dim must equal "
            "weight.shape[-1] (in_features), and bias must broadcast to the output "
            "(e.g. weight.shape[0] elements)"
        ) from None


def _rmatmul(self: Any, other: Any) -> Any:
    return matmul(other, self)


class LinalgMethods:
    """The Tensor methods and operators of this module (mixed into ``autodiff.Tensor``)."""

    __slots__ = ()
    __matmul__ = matmul = matmul
    mm, dot = mm, dot
    __rmatmul__ = _rmatmul
