"""Elementwise ops: arithmetic (broadcasting), unary math, activations, selection, comparisons.

Each node's docstring is its VJP in one line; ``g`` is the incoming gradient, ``y`` the output.
Binary VJPs sum the gradient back to each input's shape with ``sum_to`` (undoing broadcasting).
"""
from __future__ import annotations

import math
import operator
from typing import Any

import torch

from ..engine import Node, derived, kernel, record
from ..tensor import Tensor
from ._common import SCALARS, as_tensor, check_float_pair, explain, raw, sum_to

# torch's fused backward kernels: one kernel instead of two or three on the first-order path
# (raw torch tensors). Under create_graph the composite form is used, so it stays differentiable.
_aten = torch.ops.aten
_tanh_backward = _aten.tanh_backward.default
_sigmoid_backward = _aten.sigmoid_backward.default
_threshold_backward = _aten.threshold_backward.default
_leaky_relu_backward = _aten.leaky_relu_backward.default
_RAW = torch.Tensor


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
    if isinstance(x, (torch.Tensor, list, tuple)) or hasattr(x, "__array__") or isinstance(x, complex):
        try:
            return as_tensor(x)
        except TypeError:
            pass
    raise TypeError(f"{op}: unsupported operand types {type(other).__name__} and "
                    f"{type(x).__name__} ({x!r:.40}); expected a Tensor or a number")


def _compute(op: str, fn: Any, a: Any, b: Any) -> torch.Tensor:
    try:
        return fn(raw(a), raw(b))
    except (RuntimeError, TypeError) as e:
        raise explain(op, e, a, b) from None


# ---- addition and subtraction ---------------------------------------------------------------
class Add(Node):
    """z = a + b;  da = g,  db = g"""
    __slots__ = ()
    replay = kernel(torch.add)

    def vjp(self, g):
        sa, sb = self.meta
        return sum_to(g, sa), sum_to(g, sb)


class AddScalar(Node):
    """z = a + c;  da = g"""
    __slots__ = ()
    replay = staticmethod(lambda c, shape: lambda a: a + c)

    def vjp(self, g):
        return (g,)


class Sub(Node):
    """z = a - b;  da = g,  db = -g"""
    __slots__ = ()
    replay = kernel(torch.sub)

    def vjp(self, g):
        sa, sb = self.meta
        return sum_to(g, sa), (sum_to(-g, sb) if self.parents[1] is not None else None)


class SubScalar(AddScalar):
    """z = a - c;  da = g"""
    __slots__ = ()
    replay = staticmethod(lambda c, shape: lambda a: a - c)


class RSubScalar(Node):
    """z = c - a;  da = -g"""
    __slots__ = ()
    replay = staticmethod(lambda c, shape: lambda a: c - a)

    def vjp(self, g):
        return (-g,)











# ---- multiplication and division --------------------------------------------------------------
class Mul(Node):
    """z = a * b;  da = g * b,  db = g * a"""
    __slots__ = ()
    save_inputs = True
    replay = kernel(torch.mul)

    def vjp(self, g, a, b):
        p = self.parents
        return (sum_to(g * b, a.shape) if p[0] is not None else None,
                sum_to(g * a, b.shape) if p[1] is not None else None)


class MulScalar(Node):
    """z = a * c;  da = g * c"""
    __slots__ = ()
    replay = staticmethod(lambda c, shape: lambda a: a * c)

    def vjp(self, g):
        return (g * self.meta,)


class Div(Node):
    """z = a / b;  da = g / b,  db = -g * a / b²"""
    __slots__ = ()
    save_inputs = True
    replay = kernel(torch.div)

    def vjp(self, g, a, b):
        p = self.parents
        return (sum_to(g / b, a.shape) if p[0] is not None else None,
                sum_to(-g * a / (b * b), b.shape) if p[1] is not None else None)


class DivScalar(Node):
    """z = a / c;  da = g / c"""
    __slots__ = ()
    replay = staticmethod(lambda c, shape: lambda a: a / c)

    def vjp(self, g):
        return (g / self.meta,)


class RDivScalar(Node):
    """z = c / b;  db = -g * c / b²"""
    __slots__ = ()
    save_inputs = True
    replay = staticmethod(lambda c, shape: lambda b: c / b)

    def vjp(self, g, b):
        return (-g * self.meta / (b * b),)






# ---- powers -----------------------------------------------------------------------------------
class Pow(Node):
    """z = a ** b;  da = g b a^(b-1) (0 where b = 0),  db = g z log(a) (0 where a = 0, b >= 0)"""
    __slots__ = ()
    save_inputs = save_out = True
    replay = kernel(torch.pow)

    def vjp(self, g, a, b, y):
        p = self.parents
        ga = gb = None
        if p[0] is not None:
            # b = 0 makes the power constant: its slope is 0 even at a = 0, where the formula
            # gives 0 * 0^-1 = nan (torch masks it the same way)
            ga = sum_to((g * b * a ** (b - 1)).where(raw(b) != 0, 0.0), a.shape)
        if p[1] is not None:
            ra, rb = raw(a), raw(b)
            keep = ~((ra == 0) & (rb >= 0))
            gb = sum_to((g * y * a.log()).where(keep, 0.0), b.shape)
        return ga, gb


class PowScalar(Node):
    """z = a ** c;  da = g * c * a^(c-1)"""
    __slots__ = ()
    save_inputs = True
    replay = staticmethod(lambda c, shape: lambda a: a ** c)

    def vjp(self, g, a):
        c = self.meta
        if c == 0:
            return (g * 0.0,)
        if c == 2:  # the square (MSE): skip computing a ** 1
            return (g * (a * 2.0),)
        return (g * c * a ** (c - 1),)


class RPowScalar(Node):
    """z = c ** b;  db = g * z * log(c)"""
    __slots__ = ()
    save_inputs = save_out = True
    replay = staticmethod(lambda c, shape: lambda b: c ** b)

    def vjp(self, g, b, y):
        c = self.meta
        if c == 0:
            return ((g * 0.0).where(raw(b) >= 0, g * y * -math.inf),)
        # log of a negative base is nan, as in torch (math.log would raise in backward)
        return (g * y * (math.log(c) if c > 0 else math.nan),)




def _binary(name: str, fn: Any, both: type[Node], scalar_left: type[Node],
            scalar_right: type[Node]) -> Any:
    """The op ``a ∘ b`` from its three node kinds: tensor ∘ tensor, number ∘ tensor, tensor ∘ number.

    A Python number stays a number (no tensor is built for ``x * 2``) and goes into ``meta``.
    Nodes that do not save their inputs get the input shapes in ``meta`` to undo broadcasting.
    """
    def op(a: Any, b: Any) -> Tensor:
        a, b = _operands(name, a, b)
        out = _compute(name, fn, a, b)
        if a.__class__ in SCALARS:
            cls, t, c = scalar_left, b, a
        elif b.__class__ in SCALARS:
            cls, t, c = scalar_right, a, b
        elif both.save_inputs:
            return record(both, out, (a, b), (a, b), save_out=both.save_out)
        else:
            return record(both, out, (a, b), meta=(a.data.shape, b.data.shape))
        return record(cls, out, (t,), (t,) if cls.save_inputs else (), meta=c, save_out=cls.save_out)
    op.__name__ = name
    op.__doc__ = f"{name}(a, b) elementwise, broadcasting; either side may be a Python number."
    return op


add = _binary("add", operator.add, Add, AddScalar, AddScalar)
sub = _binary("sub", operator.sub, Sub, RSubScalar, SubScalar)
mul = _binary("mul", operator.mul, Mul, MulScalar, MulScalar)
div = _binary("div", operator.truediv, Div, RDivScalar, DivScalar)
pow = _binary("pow", operator.pow, Pow, RPowScalar, PowScalar)


class Neg(Node):
    """z = -a;  da = -g"""
    __slots__ = ()
    replay = kernel(torch.neg)

    def vjp(self, g):
        return (-g,)


def neg(a: Any) -> Tensor:
    a = as_tensor(a)
    return record(Neg, torch.neg(a.data), (a,))


# ---- unary math -------------------------------------------------------------------------------
class Exp(Node):
    """y = exp(x);  dx = g * y"""
    __slots__ = ()
    replay = kernel(torch.exp)

    def vjp(self, g, y):
        return (g * y,)


class Log(Node):
    """y = log(x);  dx = g / x"""
    __slots__ = ()
    replay = kernel(torch.log)

    def vjp(self, g, x):
        return (g / x,)


class Log1p(Node):
    """y = log(1 + x);  dx = g / (1 + x)"""
    __slots__ = ()
    replay = kernel(torch.log1p)

    def vjp(self, g, x):
        return (g / (x + 1),)


class Sqrt(Node):
    """y = sqrt(x);  dx = g / (2y)"""
    __slots__ = ()
    replay = kernel(torch.sqrt)

    def vjp(self, g, y):
        return (g / (y * 2),)


class Abs(Node):
    """y = |x|;  dx = g * sign(x)"""
    __slots__ = ()
    replay = kernel(torch.abs)

    def vjp(self, g, x):
        return (g * raw(x).sign(),)


class Sin(Node):
    """y = sin(x);  dx = g * cos(x)"""
    __slots__ = ()
    replay = kernel(torch.sin)

    def vjp(self, g, x):
        return (g * x.cos(),)


class Cos(Node):
    """y = cos(x);  dx = -g * sin(x)"""
    __slots__ = ()
    replay = kernel(torch.cos)

    def vjp(self, g, x):
        return (-(g * x.sin()),)


class Tanh(Node):
    """y = tanh(x);  dx = g * (1 - y²)"""
    __slots__ = ()
    replay = kernel(torch.tanh)

    def vjp(self, g, y):
        if g.__class__ is _RAW:
            return (_tanh_backward(g, y),)
        return (g * (1 - y * y),)


class Sigmoid(Node):
    """y = 1 / (1 + exp(-x));  dx = g * y * (1 - y)"""
    __slots__ = ()
    replay = kernel(torch.sigmoid)

    def vjp(self, g, y):
        if g.__class__ is _RAW:
            return (_sigmoid_backward(g, y),)
        return (g * (y * (1 - y)),)


class Relu(Node):
    """y = max(x, 0);  dx = g where y > 0, else 0"""
    __slots__ = ()
    replay = kernel(torch.relu)

    def vjp(self, g, y):
        if g.__class__ is _RAW:
            return (_threshold_backward(g, y, 0),)
        return (g.where(raw(y) > 0, 0.0),)


class LeakyRelu(Node):
    """y = x if x > 0 else s * x;  dx = g if x > 0 else s * g"""
    __slots__ = ()
    replay = staticmethod(lambda slope, shape: lambda x: torch.nn.functional.leaky_relu(x, slope))

    def vjp(self, g, x):
        if g.__class__ is _RAW:
            return (_leaky_relu_backward(g, x, self.meta, False),)
        return (g.where(raw(x) > 0, g * self.meta),)


class Clamp(Node):
    """y = min(max(x, lo), hi);  dx = g where lo <= x <= hi, else 0"""
    __slots__ = ()
    replay = staticmethod(lambda m, shape: lambda x: torch.clamp(x, *m))

    def vjp(self, g, x):
        lo, hi = self.meta
        rx = raw(x)
        inside = None
        if lo is not None:
            inside = rx >= lo
        if hi is not None:
            inside = rx <= hi if inside is None else inside & (rx <= hi)
        return (g.where(inside, 0.0),)


class ClampTensor(Node):
    """y = min(max(x, lo), hi) with tensor bounds;  dx = g where lo <= x <= hi,
    dlo = g where x < lo,  dhi = g where x > hi  (each summed to its shape)"""
    __slots__ = ()

    def vjp(self, g, x, *bounds):
        has_lo, has_hi = self.meta
        rx = raw(x)
        lo = bounds[0] if has_lo else None
        hi = bounds[-1] if has_hi else None
        # Which of x, lo, hi the output equals (torch's rule): hi wins when lo > hi.
        above = None if hi is None else (rx if lo is None else torch.maximum(rx, raw(lo))) > raw(hi)
        below = None if lo is None else rx < raw(lo)
        if below is not None and above is not None:
            below = below & ~above
        inside = ~below if above is None else (~above if below is None else ~(above | below))
        grads = [g.where(inside, 0.0)]
        if lo is not None:
            grads.append(sum_to(g.where(below, 0.0), lo.shape))
        if hi is not None:
            grads.append(sum_to(g.where(above, 0.0), hi.shape))
        return tuple(grads)


def _bound(op: str, x: Tensor, b: Any) -> Tensor:
    if b.__class__ in SCALARS:
        return Tensor._make(torch.tensor(b, dtype=x.dtype, device=x.device))
    b = as_tensor(b)
    check_float_pair(op, x.data, b.data)
    return b


def _unary(cls: type[Node], fn: Any, save_x: bool = False, save_out: bool = False):
    def op(x: Any) -> Tensor:
        x = as_tensor(x)
        return record(cls, fn(x.data), (x,), (x,) if save_x else (), save_out=save_out)
    op.__name__ = cls.__name__.lower()
    op.__doc__ = cls.__doc__
    return op


exp = _unary(Exp, torch.exp, save_out=True)
log = _unary(Log, torch.log, save_x=True)
log1p = _unary(Log1p, torch.log1p, save_x=True)
sqrt = _unary(Sqrt, torch.sqrt, save_out=True)
abs = _unary(Abs, torch.abs, save_x=True)
sin = _unary(Sin, torch.sin, save_x=True)
cos = _unary(Cos, torch.cos, save_x=True)
tanh = _unary(Tanh, torch.tanh, save_out=True)
sigmoid = _unary(Sigmoid, torch.sigmoid, save_out=True)
relu = _unary(Relu, torch.relu, save_out=True)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """x if x > 0 else negative_slope * x."""
    x = as_tensor(x)
    out = torch.nn.functional.leaky_relu(x.data, negative_slope)
    return record(LeakyRelu, out, (x,), (x,), meta=negative_slope)


def clamp(x: Any, min: Any = None, max: Any = None) -> Tensor:
    """Limit values to [min, max] (either bound may be None; tensor bounds broadcast)."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    x = as_tensor(x)
    if isinstance(min, (Tensor, torch.Tensor)) or isinstance(max, (Tensor, torch.Tensor)):
        lo = None if min is None else _bound("clamp", x, min)
        hi = None if max is None else _bound("clamp", x, max)
        bounds = [b for b in (lo, hi) if b is not None]
        try:
            out = torch.clamp(x.data, None if lo is None else lo.data, None if hi is None else hi.data)
        except RuntimeError as e:
            raise explain("clamp", e, x, *bounds) from None
        return record(ClampTensor, out, (x, *bounds), (x, *bounds),
                      meta=(min is not None, max is not None))
    return record(Clamp, torch.clamp(x.data, min, max), (x,), (x,), meta=(min, max))


# ---- selection ----------------------------------------------------------------------------------
class Maximum(Node):
    """z = max(a, b);  da = g where a > b (g/2 on ties), db likewise"""
    __slots__ = ()
    replay = kernel(torch.maximum)

    def vjp(self, g, a, b):
        ra, rb = raw(a), raw(b)
        wa = (ra > rb).to(g.dtype) + (ra == rb).to(g.dtype) * 0.5
        return _split_by_weight(self, g, a, b, wa)


class Minimum(Node):
    """z = min(a, b);  da = g where a < b (g/2 on ties), db likewise"""
    __slots__ = ()
    replay = kernel(torch.minimum)

    def vjp(self, g, a, b):
        ra, rb = raw(a), raw(b)
        wa = (ra < rb).to(g.dtype) + (ra == rb).to(g.dtype) * 0.5
        return _split_by_weight(self, g, a, b, wa)


def _split_by_weight(node: Node, g: Any, a: Any, b: Any, wa: torch.Tensor) -> tuple:
    p = node.parents
    return (sum_to(g * wa, a.shape) if p[0] is not None else None,
            sum_to(g * (1 - wa), b.shape) if p[1] is not None else None)


def _tensor_pair(op: str, a: Any, b: Any) -> tuple[Tensor, Tensor]:
    a, b = _operands(op, a, b)
    if b.__class__ in SCALARS:
        b = Tensor._make(torch.tensor(b, dtype=a.dtype, device=a.device))
    if a.__class__ in SCALARS:
        a = Tensor._make(torch.tensor(a, dtype=b.dtype, device=b.device))
    return a, b


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise max of a and b, broadcasting."""
    a, b = _tensor_pair("maximum", a, b)
    return record(Maximum, _compute("maximum", torch.maximum, a, b), (a, b), (a, b))


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise min of a and b, broadcasting."""
    a, b = _tensor_pair("minimum", a, b)
    return record(Minimum, _compute("minimum", torch.minimum, a, b), (a, b), (a, b))


class Where(Node):
    """z = a where cond else b;  da = g where cond,  db = g where not cond"""
    __slots__ = ()

    def vjp(self, g, cond):
        shapes = self.meta
        grads = []
        for keep, shape in zip((cond, ~cond), shapes):
            if shape is not None:
                grads.append(sum_to(g.where(keep, 0.0), shape))
        return tuple(grads)


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Pick ``a`` where ``cond`` is true, else ``b`` (all three broadcast; a or b may be numbers)."""
    c = raw(cond)
    if not isinstance(c, torch.Tensor):
        c = torch.as_tensor(c)
    if c.dtype != torch.bool:
        raise TypeError(f"where: condition must be a bool tensor, got dtype {c.dtype}")
    a, b = _operands("where", a, b)
    try:
        out = torch.where(c, raw(a), raw(b))
    except (RuntimeError, TypeError) as e:
        raise explain("where", e, c, a, b) from None
    inputs = tuple(t for t in (a, b) if t.__class__ not in SCALARS)
    shapes = tuple(None if t.__class__ in SCALARS else t.data.shape for t in (a, b))
    return record(Where, out, inputs, (c,), meta=shapes)


def _where_method(self: Tensor, cond: Any, other: Any) -> Tensor:
    """``x.where(cond, y)`` is ``where(cond, x, y)`` (torch's method form)."""
    return where(cond, self, other)


# ---- no-gradient ops ------------------------------------------------------------------------------
def _nograd_binary(name: str, fn: Any):
    def op(a: Any, b: Any) -> Tensor:
        if not isinstance(b, (Tensor, torch.Tensor)) and b.__class__ not in SCALARS:
            return NotImplemented
        return derived(_compute(name, fn, a, b))
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
