"""Matrix products: ``matmul`` (1-D, 2-D, batched with broadcasting) and the fused ``linear``."""
from __future__ import annotations

from typing import Any

import torch

from ..engine import Node, kernel, record
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from ._common import as_tensor, check_float_pair, explain, shape_str, sum_to


class MatMul(Node):
    """y = a @ b;  da = g @ bᵀ,  db = aᵀ @ g  (1-D operands are promoted, batch dims summed)"""
    __slots__ = ()
    replay = kernel(torch.matmul)

    def vjp(self, g, a, b):
        p = self.parents
        a_shape, b_shape = a.shape, b.shape
        # b first: for a 1-D @ 1-D dot product g is 0-d, and only unsqueeze(-1) accepts that.
        if len(b_shape) == 1:
            b = b.unsqueeze(-1)
            g = g.unsqueeze(-1)
        if len(a_shape) == 1:
            a = a.unsqueeze(0)
            g = g.unsqueeze(-2)
        ga = sum_to(g @ b.mT, a.shape).reshape(a_shape) if p[0] is not None else None
        gb = sum_to(a.mT @ g, b.shape).reshape(b_shape) if p[1] is not None else None
        return ga, gb


def _matmul_error(a: torch.Tensor, b: torch.Tensor) -> ShapeError:
    if a.dim() == 0 or b.dim() == 0:
        return ShapeError(f"matmul: both operands must have at least 1 dim, got shapes "
                          f"{shape_str(a.shape)} and {shape_str(b.shape)}")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.dim() == 1 else b.shape[-2]
    if k_a != k_b:
        return ShapeError(
            f"matmul: shapes {shape_str(a.shape)} and {shape_str(b.shape)} are not aligned: the "
            f"first has {k_a} columns but the second has {k_b} rows")
    return ShapeError(f"matmul: batch dims of shapes {shape_str(a.shape)} and "
                      f"{shape_str(b.shape)} cannot be broadcast together")


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with torch.matmul's rules (vector, matrix, batched)."""
    a, b = as_tensor(a), as_tensor(b)
    ra, rb = a.data, b.data
    check_float_pair("matmul", ra, rb)
    try:
        out = torch.matmul(ra, rb)
    except RuntimeError as e:
        if ra.device != rb.device:
            raise explain("matmul", e, a, b) from None
        raise _matmul_error(ra, rb) from None
    return record(MatMul, out, (a, b), (a, b))


_linear = torch.nn.functional.linear  # a plain kernel call: torch's autograd is not involved
_RAW = torch.Tensor


class Linear(Node):
    """y = x @ Wᵀ + b;  dx = g @ W,  dW = gᵀ @ x,  db = Σ_batch g"""
    __slots__ = ()
    replay = kernel(_linear)

    def vjp(self, g, x, w):
        p = self.parents
        if g.__class__ is _RAW and g.ndim == 2:  # first-order, 2-D: plain mm kernels
            return (g.mm(w) if p[0] is not None else None,
                    g.t().mm(x) if p[1] is not None else None,
                    g.sum(0) if len(p) > 2 and p[2] is not None else None)
        gx = g @ w if p[0] is not None else None
        gw = gb = None
        if p[1] is not None or (len(p) > 2 and p[2] is not None):
            if g.ndim != 2:
                g = g.reshape(-1, g.shape[-1])
                x = x.reshape(-1, x.shape[-1])
            if p[1] is not None:
                gw = g.mT @ x
            if len(p) > 2 and p[2] is not None:
                gb = g.sum(0)
        return gx, gw, gb


def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """Affine map ``x @ weight.T + bias`` as one node (one ``addmm`` kernel for 2-D x)."""
    x, weight = as_tensor(x), as_tensor(weight)
    rx, rw = x.data, weight.data
    check_float_pair("linear", rx, rw)
    try:
        if bias is None:
            out = _linear(rx, rw)
            return record(Linear, out, (x, weight), (x, weight))
        bias = as_tensor(bias)
        rb = bias.data
        if rb.dim() != 1 or rb.shape[0] != rw.shape[0]:
            raise RuntimeError("bias shape")
        out = _linear(rx, rw, rb)  # addmm for 2-D inputs, in C++ (no Python-side transpose)
    except RuntimeError as e:
        if rx.device != rw.device:
            raise explain("linear", e, x, weight) from None
        if rx.dtype != rw.dtype:
            raise DTypeError(f"linear: input dtype {rx.dtype} does not match weight dtype "
                             f"{rw.dtype}; convert the input, e.g. x.float()") from None
        bshape = "" if bias is None else f", bias {shape_str(bias.shape)}"
        raise ShapeError(f"linear: input {shape_str(rx.shape)} does not fit weight "
                         f"{shape_str(rw.shape)}{bshape}: the input's last dim must equal "
                         "weight.shape[1] (in_features), bias must have weight.shape[0] elements") from None
    return record(Linear, out, (x, weight, bias), (x, weight))
