"""Elementwise ops: arithmetic (broadcasting), unary math, activations, selection, comparisons.

Each op is one class: its docstring is the VJP formula (``g`` the incoming gradient, ``y`` the
output), ``forward`` computes on raw tensors, ``vjp`` returns one gradient per input. The engine
sums broadcast gradients back to each input's shape. Gradients are zeroed by selection
(``where``), never by multiplying with a 0/1 mask: ``inf * 0`` would be NaN.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..engine import derived
from ..op import Op
from ._common import (
    SCALARS,
    Tensor,
    as_tensor,
    aten_kernel,
    check_float_pair,
    explain,
    raw,
    zeros_like_grad,
)

# torch's fused backward kernels: one kernel instead of two or three on the first-order path
# (raw torch tensors). Under create_graph the composite form is used, so it stays differentiable.
_aten = torch.ops.aten
_tanh_backward = aten_kernel(_aten.tanh_backward.default)
_sigmoid_backward = aten_kernel(_aten.sigmoid_backward.default)
_threshold_backward = aten_kernel(_aten.threshold_backward.default)
_leaky_relu_backward = aten_kernel(_aten.leaky_relu_backward.default)
_RAW = torch.Tensor


# ---- arithmetic -------------------------------------------------------------------------------
class Add(Op):
    """z = a + b;  da = g,  db = g"""

    args = ("a", "b")
    forward = staticmethod(torch.add)

    def vjp(self, g):
        return g, g


class Sub(Op):
    """z = a - b;  da = g,  db = -g"""

    args = ("a", "b")
    forward = staticmethod(torch.sub)

    def vjp(self, g):
        return g, (-g if self.inputs[1] is not None else None)


class Mul(Op):
    """z = a * b;  da = g * b,  db = g * a"""

    args = saves = ("a", "b")
    reads = {"a": ("b",), "b": ("a",)}
    forward = staticmethod(torch.mul)

    def vjp(self, g, a, b):
        da, db = self.needs_input_grad
        return (g * b if da else None), (g * a if db else None)


class Div(Op):
    """z = a / b;  da = g / b,  db = -g * a / b²"""

    args = saves = ("a", "b")
    reads = {"a": ("b",), "b": ("a", "b")}
    forward = staticmethod(torch.div)

    def vjp(self, g, a, b):
        da, db = self.needs_input_grad
        return (g / b if da else None), (-g * a / (b * b) if db else None)


class Pow(Op):
    """z = a ** b;  da = g b a^(b-1) (0 where b = 0),  db = g z log(a) (0 where a = 0, b >= 0)"""

    args = ("a", "b")
    saves = ("a", "b", "out")
    forward = staticmethod(torch.pow)

    def vjp(self, g, a, b, y):
        da, db = self.needs_input_grad
        ga = gb = None
        if da:
            # b = 0 makes the power constant: its slope is 0 even at a = 0 (0 * 0^-1 is nan)
            ga = (g * b * a ** (b - 1)).where(raw(b) != 0, 0.0)
        if db:
            ra, rb = raw(a), raw(b)
            # an integer base's log in the gradient's precision, not the default float32
            log_a = (a if a.dtype == g.dtype else a.to(g.dtype)).log()
            # torch multiplies g by the selected slope: an infinite g still gives nan at a = 0
            gb = g * (y * log_a).where(~((ra == 0) & (rb >= 0)), 0.0)
        return ga, gb


class AddScalar(Op):
    """z = a + c (or a - c);  da = g"""

    opname = "add"
    args = ("a",)
    fields = ("c",)
    forward = staticmethod(lambda a, c: a + c)

    def vjp(self, g):
        return g


class RSubScalar(Op):
    """z = c - a;  da = -g"""

    opname = "sub"
    args = ("a",)
    fields = ("c",)
    forward = staticmethod(lambda a, c: c - a)

    def vjp(self, g):
        return -g


class MulScalar(Op):
    """z = a * c;  da = g * c"""

    opname = "mul"
    args = ("a",)
    fields = ("c",)
    forward = staticmethod(lambda a, c: a * c)

    def vjp(self, g):
        return g * self.c


class DivScalar(Op):
    """z = a / c;  da = g / c"""

    opname = "div"
    args = ("a",)
    fields = ("c",)
    forward = staticmethod(lambda a, c: a / c)

    def vjp(self, g):
        return g / self.c


class RDivScalar(Op):
    """z = c / b;  db = -g * c / b²"""

    opname = "div"
    args = saves = ("b",)
    fields = ("c",)
    forward = staticmethod(lambda b, c: c / b)

    def vjp(self, g, b):
        return -g * self.c / (b * b)


class PowScalar(Op):
    """z = a ** c;  da = g * c * a^(c-1)  (0 for c = 0)"""

    opname = "pow"
    args = saves = ("a",)
    fields = ("c",)
    forward = staticmethod(lambda a, c: a**c)

    def vjp(self, g, a):
        c = self.c
        if c == 0:
            return zeros_like_grad(g)
        if c == 2:  # the square (MSE): skip computing a ** 1
            return g * (a * 2.0)
        return g * c * a ** (c - 1)


class RPowScalar(Op):
    """z = c ** b;  db = g * z * log(c)  (0 where c = 0 and b >= 0)"""

    opname = "pow"
    args = ("b",)
    saves = ("b", "out")
    fields = ("c",)
    forward = staticmethod(lambda b, c: c**b)

    def vjp(self, g, b, y):
        c = self.c
        if c == 0:  # the slope y log(0) is 0 where b >= 0 (torch: g times that, so inf g gives nan)
            return g * (y * -math.inf).where(raw(b) < 0, 0.0)
        # log of a negative base is nan, as in torch (math.log would raise in backward)
        return g * y * (math.log(c) if c > 0 else math.nan)


class Neg(Op):
    """z = -a;  da = -g"""

    forward = staticmethod(torch.neg)

    def vjp(self, g):
        return -g


def _operands(op: str, a: Any, b: Any) -> tuple[Any, Any]:
    """Each operand as a Tensor, or kept as a Python scalar (no tensor is built for ``x * 2``)."""
    if not isinstance(a, Tensor) and a.__class__ not in SCALARS:
        a = _coerce(op, a, b)
    if not isinstance(b, Tensor) and b.__class__ not in SCALARS:
        b = _coerce(op, b, a)
    if a.__class__ not in SCALARS and b.__class__ not in SCALARS:
        check_float_pair(op, a.data, b.data)
    return a, b


def _coerce(op: str, x: Any, other: Any) -> Tensor:
    if (
        isinstance(x, (torch.Tensor, list, tuple))
        or hasattr(x, "__array__")
        or isinstance(x, complex)
    ):
        try:
            return as_tensor(x)
        except TypeError:
            pass
    raise TypeError(
        f"{op}: unsupported operand types {type(other).__name__} and "
        f"{type(x).__name__} ({x!r:.40}); expected a Tensor or a number"
    )


def add(a: Any, b: Any) -> Tensor:
    """a + b elementwise, broadcasting; either side may be a Python number."""
    a, b = _operands("add", a, b)
    if b.__class__ in SCALARS:
        return AddScalar.apply(a, c=b)
    if a.__class__ in SCALARS:
        return AddScalar.apply(b, c=a)
    return Add.apply(a, b)


def sub(a: Any, b: Any) -> Tensor:
    """a - b elementwise, broadcasting; either side may be a Python number."""
    a, b = _operands("sub", a, b)
    if b.__class__ in SCALARS:
        return AddScalar.apply(a, c=-b)
    if a.__class__ in SCALARS:
        return RSubScalar.apply(b, c=a)
    return Sub.apply(a, b)


def mul(a: Any, b: Any) -> Tensor:
    """a * b elementwise, broadcasting; either side may be a Python number."""
    a, b = _operands("mul", a, b)
    if b.__class__ in SCALARS:
        return MulScalar.apply(a, c=b)
    if a.__class__ in SCALARS:
        return MulScalar.apply(b, c=a)
    return Mul.apply(a, b)


def div(a: Any, b: Any) -> Tensor:
    """a / b elementwise, broadcasting; either side may be a Python number."""
    a, b = _operands("div", a, b)
    if b.__class__ in SCALARS:
        return DivScalar.apply(a, c=b)
    if a.__class__ in SCALARS:
        return RDivScalar.apply(b, c=a)
    return Div.apply(a, b)


def pow(a: Any, b: Any) -> Tensor:
    """a ** b elementwise, broadcasting; either side may be a Python number."""
    a, b = _operands("pow", a, b)
    if b.__class__ in SCALARS:
        return PowScalar.apply(a, c=b)
    if a.__class__ in SCALARS:
        return RPowScalar.apply(b, c=a)
    return Pow.apply(a, b)


# The functions below test ``isinstance`` before calling ``as_tensor``: a Python call saved on
# every op, most of whose operands are Tensors already.
def neg(a: Any) -> Tensor:
    """-a."""
    return Neg.apply(a if isinstance(a, Tensor) else as_tensor(a))


# ---- unary math and activations -----------------------------------------------------------------
class Exp(Op):
    """y = exp(x);  dx = g * y"""

    saves = ("out",)
    forward = staticmethod(torch.exp)

    def vjp(self, g, y):
        return g * y


class Log(Op):
    """y = log(x);  dx = g / x"""

    saves = ("x",)
    forward = staticmethod(torch.log)

    def vjp(self, g, x):
        return g / x


class Log1p(Op):
    """y = log(1 + x);  dx = g / (1 + x)"""

    saves = ("x",)
    forward = staticmethod(torch.log1p)

    def vjp(self, g, x):
        return g / (x + 1)


class Sqrt(Op):
    """y = sqrt(x);  dx = g / (2y)"""

    saves = ("out",)
    forward = staticmethod(torch.sqrt)

    def vjp(self, g, y):
        return g / (y * 2)


class Abs(Op):
    """y = |x|;  dx = g * sign(x)"""

    saves = ("x",)
    forward = staticmethod(torch.abs)

    def vjp(self, g, x):
        return g * raw(x).sign()  # torch's rule: an infinite g at x = 0 gives nan (inf * 0)


class Sin(Op):
    """y = sin(x);  dx = g * cos(x)"""

    saves = ("x",)
    forward = staticmethod(torch.sin)

    def vjp(self, g, x):
        return g * x.cos()


class Cos(Op):
    """y = cos(x);  dx = -g * sin(x)"""

    saves = ("x",)
    forward = staticmethod(torch.cos)

    def vjp(self, g, x):
        return -(g * x.sin())


class Tanh(Op):
    """y = tanh(x);  dx = g * (1 - y²)"""

    saves = ("out",)
    forward = staticmethod(torch.tanh)

    def vjp(self, g, y):
        if g.__class__ is _RAW:
            return _tanh_backward(g, y)
        return g * (1 - y * y)


class Sigmoid(Op):
    """y = 1 / (1 + exp(-x));  dx = g * y * (1 - y)"""

    saves = ("out",)
    forward = staticmethod(torch.sigmoid)

    def vjp(self, g, y):
        if g.__class__ is _RAW:
            return _sigmoid_backward(g, y)
        return g * (y * (1 - y))


class ReLU(Op):
    """y = max(x, 0);  dx = g where y > 0, else 0"""

    opname = "relu"
    saves = ("out",)
    forward = staticmethod(torch.relu)

    def vjp(self, g, y):
        if g.__class__ is _RAW:
            return _threshold_backward(g, y, 0)
        return g.where(raw(y) > 0, 0.0)


class LeakyReLU(Op):
    """y = x if x > 0 else s * x;  dx = g if x > 0 else s * g"""

    opname = "leaky_relu"
    saves = ("x",)
    fields = ("negative_slope",)
    forward = staticmethod(torch.nn.functional.leaky_relu)

    def vjp(self, g, x):
        if g.__class__ is _RAW:
            return _leaky_relu_backward(g, x, self.negative_slope, False)
        return g.where(raw(x) > 0, g * self.negative_slope)


class Square(Op):
    """y = x²;  dx = 2 g x"""

    saves = ("x",)
    forward = staticmethod(torch.square)

    def vjp(self, g, x):
        return g * (x * 2)


def square(x: Any) -> Tensor:
    """x * x, elementwise."""
    return Square.apply(x if isinstance(x, Tensor) else as_tensor(x))


def exp(x: Any) -> Tensor:
    """e ** x."""
    return Exp.apply(x if isinstance(x, Tensor) else as_tensor(x))


def log(x: Any) -> Tensor:
    """Natural logarithm."""
    return Log.apply(x if isinstance(x, Tensor) else as_tensor(x))


def log1p(x: Any) -> Tensor:
    """log(1 + x), accurate for small x."""
    return Log1p.apply(x if isinstance(x, Tensor) else as_tensor(x))


def sqrt(x: Any) -> Tensor:
    """Square root."""
    return Sqrt.apply(x if isinstance(x, Tensor) else as_tensor(x))


def abs(x: Any) -> Tensor:
    """|x| (the gradient at 0 is 0, as torch's)."""
    return Abs.apply(x if isinstance(x, Tensor) else as_tensor(x))


def sin(x: Any) -> Tensor:
    """Sine."""
    return Sin.apply(x if isinstance(x, Tensor) else as_tensor(x))


def cos(x: Any) -> Tensor:
    """Cosine."""
    return Cos.apply(x if isinstance(x, Tensor) else as_tensor(x))


def tanh(x: Any) -> Tensor:
    """Hyperbolic tangent."""
    return Tanh.apply(x if isinstance(x, Tensor) else as_tensor(x))


def sigmoid(x: Any) -> Tensor:
    """The logistic function 1 / (1 + e^-x)."""
    return Sigmoid.apply(x if isinstance(x, Tensor) else as_tensor(x))


def relu(x: Any) -> Tensor:
    """max(x, 0) (the gradient at 0 is 0, as torch's)."""
    return ReLU.apply(x if isinstance(x, Tensor) else as_tensor(x))


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """x if x > 0 else negative_slope * x."""
    return LeakyReLU.apply(
        x if isinstance(x, Tensor) else as_tensor(x), negative_slope=negative_slope
    )


# ---- clamping and selection ----------------------------------------------------------------------
class Clamp(Op):
    """y = min(max(x, lo), hi) for numbers lo, hi;  dx = g where lo <= x <= hi, else 0"""

    saves = ("x",)
    fields = ("min", "max")
    forward = staticmethod(torch.clamp)

    def vjp(self, g, x):
        rx = raw(x)
        inside = None if self.min is None else rx >= self.min
        if self.max is not None:
            inside = rx <= self.max if inside is None else inside & (rx <= self.max)
        return g.where(inside, 0.0)


class ClampTensor(Op):
    """y = min(max(x, lo), hi) with tensor bounds (torch's rules, hi wins when lo > hi):
    dx = g where lo <= x <= hi,  dlo = g where x < lo < hi,  dhi = g where x > hi or hi < lo"""

    opname = "clamp"
    args = saves = ("x", "lo", "hi")
    forward = staticmethod(torch.clamp)

    def vjp(self, g, x, lo, hi):
        rx = raw(x)
        rlo = None if lo is None else raw(lo)
        rhi = None if hi is None else raw(hi)
        dx, dlo, dhi = self.needs_input_grad
        inside = None
        if rlo is not None:
            inside = rx >= rlo
        if rhi is not None:
            inside = rx <= rhi if inside is None else inside & (rx <= rhi)
        glo = ghi = None
        if dlo:
            below = rx < rlo
            glo = g.where(below if rhi is None else below & (rlo < rhi), 0.0)
        if dhi:
            above = rx > rhi
            ghi = g.where(above if rlo is None else above | (rhi < rlo), 0.0)
        return (g.where(inside, 0.0) if dx else None), glo, ghi


def _bound(x: Tensor, b: Any) -> Any:
    if b is None:
        return None
    if b.__class__ in SCALARS:
        return Tensor._make(torch.tensor(b, dtype=x.dtype, device=x.device))
    b = as_tensor(b)
    check_float_pair("clamp", x.data, b.data)
    return b


def clamp(x: Any, min: Any = None, max: Any = None) -> Tensor:
    """Limit values to [min, max] (either bound may be None; tensor bounds broadcast)."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    x = as_tensor(x)
    if isinstance(min, (Tensor, torch.Tensor)) or isinstance(max, (Tensor, torch.Tensor)):
        return ClampTensor.apply(x, _bound(x, min), _bound(x, max))
    return Clamp.apply(x, min=min, max=max)


class Maximum(Op):
    """z = max(a, b);  da = g where a > b, g/2 where a = b, 0 where a < b;  db likewise"""

    args = saves = ("a", "b")
    forward = staticmethod(torch.maximum)

    def vjp(self, g, a, b):
        return _split(g, raw(a), raw(b), lose_a=raw(a) < raw(b), lose_b=raw(a) > raw(b))


class Minimum(Op):
    """z = min(a, b);  da = g where a < b, g/2 where a = b, 0 where a > b;  db likewise"""

    args = saves = ("a", "b")
    forward = staticmethod(torch.minimum)

    def vjp(self, g, a, b):
        return _split(g, raw(a), raw(b), lose_a=raw(a) > raw(b), lose_b=raw(a) < raw(b))


def _split(
    g: Any, ra: torch.Tensor, rb: torch.Tensor, lose_a: torch.Tensor, lose_b: torch.Tensor
) -> tuple:
    # torch's rule: halves on ties; a NaN operand loses no comparison, so both get g there
    shared = (g / 2).where(ra == rb, g)
    return shared.where(~lose_a, 0.0), shared.where(~lose_b, 0.0)


def _tensor_pair(op: str, a: Any, b: Any) -> tuple[Tensor, Tensor]:
    a, b = _operands(op, a, b)
    if b.__class__ in SCALARS:
        b = Tensor._make(torch.tensor(b, dtype=a.dtype, device=a.device))
    if a.__class__ in SCALARS:
        a = Tensor._make(torch.tensor(a, dtype=b.dtype, device=b.device))
    return a, b


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise max of a and b, broadcasting."""
    return Maximum.apply(*_tensor_pair("maximum", a, b))


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise min of a and b, broadcasting."""
    return Minimum.apply(*_tensor_pair("minimum", a, b))


class Where(Op):
    """z = a where cond else b;  da = g where cond,  db = g where not cond"""

    args = ("cond", "a", "b")
    saves = ("cond",)
    forward = staticmethod(torch.where)

    def vjp(self, g, cond):
        _, da, db = self.needs_input_grad
        return None, (g.where(cond, 0.0) if da else None), (g.where(~cond, 0.0) if db else None)


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Pick ``a`` where ``cond`` is true, else ``b`` (all three broadcast; a, b may be numbers)."""
    c = raw(cond)
    if not isinstance(c, torch.Tensor):
        c = torch.as_tensor(c)
    if c.dtype != torch.bool:
        raise TypeError(f"where: condition must be a bool tensor, got dtype {c.dtype}")
    a, b = _operands("where", a, b)
    like = a if b.__class__ in SCALARS else b
    if a.__class__ in SCALARS or b.__class__ in SCALARS:
        if like.__class__ in SCALARS:
            raise TypeError("where: at least one of a and b must be a tensor")
        a, b = (
            Tensor._make(torch.tensor(v, dtype=like.dtype, device=like.device))
            if v.__class__ in SCALARS
            else v
            for v in (a, b)
        )
    try:
        torch.broadcast_shapes(c.shape, a.shape, b.shape)
    except RuntimeError as e:
        raise explain("where", e, c, a, b) from None
    return Where.apply(cond if isinstance(cond, Tensor) else c, a, b)


# ---- no-gradient ops -----------------------------------------------------------------------------
def _nograd_binary(name: str, fn: Any):
    def op(a: Any, b: Any) -> Tensor:
        if not isinstance(b, (Tensor, torch.Tensor)) and b.__class__ not in SCALARS:
            return NotImplemented
        try:
            return derived(fn(raw(a), raw(b)))
        except (RuntimeError, TypeError) as e:
            raise explain(name, e, a, b) from None

    op.__name__ = name
    return op


eq = _nograd_binary("eq", torch.eq)
ne = _nograd_binary("ne", torch.ne)
lt = _nograd_binary("lt", torch.lt)
le = _nograd_binary("le", torch.le)
gt = _nograd_binary("gt", torch.gt)
ge = _nograd_binary("ge", torch.ge)
logical_and = _nograd_binary("logical_and", lambda x, y: x & y)
logical_or = _nograd_binary("logical_or", lambda x, y: x | y)
logical_xor = _nograd_binary("logical_xor", lambda x, y: x ^ y)


def sign(x: Any) -> Tensor:
    """-1, 0 or 1 by sign (piecewise constant: no gradient flows)."""
    return derived(torch.sign(raw(x)))


def logical_not(x: Any) -> Tensor:
    return derived(~raw(x))


def _where_method(self: Tensor, cond: Any, other: Any) -> Tensor:
    """``x.where(cond, y)`` is ``where(cond, x, y)`` (torch's method form)."""
    return where(cond, self, other)


def _reflected(fn: Any) -> Any:
    def reflected(self: Tensor, other: Any) -> Tensor:
        return fn(other, self)

    reflected.__name__ = f"r{fn.__name__}"
    return reflected


class ElementwiseMethods:
    """The Tensor methods and operators of this module (mixed into ``autodiff.Tensor``)."""

    __slots__ = ()
    __add__ = add = add
    __radd__ = _reflected(add)
    __sub__ = sub = sub
    __rsub__ = _reflected(sub)
    __mul__ = mul = mul
    __rmul__ = _reflected(mul)
    __truediv__ = div = div
    __rtruediv__ = _reflected(div)
    __pow__ = pow = pow
    __rpow__ = _reflected(pow)
    __neg__ = neg = neg
    __abs__ = abs = abs
    __eq__ = eq = eq
    __ne__ = ne = ne
    __lt__ = lt = lt
    __le__ = le = le
    __gt__ = gt = gt
    __ge__ = ge = ge
    __and__ = logical_and
    __or__ = logical_or
    __xor__ = logical_xor
    __invert__ = logical_not
    exp, log, log1p, sqrt, sin, cos = exp, log, log1p, sqrt, sin, cos
    square = square
    tanh, sigmoid, relu, leaky_relu, sign = tanh, sigmoid, relu, leaky_relu, sign
    clamp = clip = clamp
    maximum, minimum = maximum, minimum
    where = _where_method

    def __pos__(self: Any) -> Any:
        return self
