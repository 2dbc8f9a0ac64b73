"""The op catalogue, and the Tensor methods and operators that call it."""
from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from . import elementwise as E
from . import indexing as I
from . import linalg as L
from . import reductions as R
from . import shape as S
from .elementwise import (abs, add, clamp, cos, div, eq, exp, ge, gt, le, leaky_relu, log, log1p,
                          logical_and, logical_not, logical_or, lt, maximum, minimum, mul, ne, neg,
                          pow, relu, sigmoid, sign, sin, sqrt, sub, tanh, where)
from .indexing import getitem
from .linalg import linear, matmul
from .reductions import (amax, amin, argmax, argmin, logsumexp, log_softmax, max, mean, min, softmax,
                         std, sum, var)
from .shape import (broadcast_to, cat, clone, expand, flatten, permute, reshape, squeeze, stack,
                    transpose, unsqueeze, view)


def _flip(fn: Any) -> Any:
    def reflected(self: Tensor, other: Any) -> Tensor:
        return fn(other, self)
    reflected.__name__ = f"r{fn.__name__}"
    return reflected


_METHODS = {
    # arithmetic and operators
    "__add__": E.add, "__radd__": _flip(E.add), "add": E.add,
    "__sub__": E.sub, "__rsub__": _flip(E.sub), "sub": E.sub,
    "__mul__": E.mul, "__rmul__": _flip(E.mul), "mul": E.mul,
    "__truediv__": E.div, "__rtruediv__": _flip(E.div), "div": E.div,
    "__pow__": E.pow, "__rpow__": _flip(E.pow), "pow": E.pow,
    "__neg__": E.neg, "neg": E.neg, "__pos__": lambda self: self,
    "__matmul__": L.matmul, "__rmatmul__": _flip(L.matmul), "matmul": L.matmul,
    "__abs__": E.abs,
    "__eq__": E.eq, "__ne__": E.ne, "__lt__": E.lt, "__le__": E.le, "__gt__": E.gt, "__ge__": E.ge,
    "eq": E.eq, "ne": E.ne, "lt": E.lt, "le": E.le, "gt": E.gt, "ge": E.ge,
    "__and__": E.logical_and, "__or__": E.logical_or, "__xor__": E.logical_xor,
    "__invert__": E.logical_not,
    "__getitem__": I.getitem,
    # elementwise math
    "exp": E.exp, "log": E.log, "log1p": E.log1p, "sqrt": E.sqrt, "abs": E.abs, "sin": E.sin,
    "cos": E.cos, "tanh": E.tanh, "sigmoid": E.sigmoid, "relu": E.relu,
    "leaky_relu": E.leaky_relu, "clamp": E.clamp, "clip": E.clamp, "maximum": E.maximum,
    "minimum": E.minimum, "where": E._where_method, "sign": E.sign,
    # reductions
    "sum": R.sum, "mean": R.mean, "max": R.max, "min": R.min, "amax": R.amax, "amin": R.amin,
    "argmax": R.argmax, "argmin": R.argmin, "var": R.var, "std": R.std,
    "logsumexp": R.logsumexp, "softmax": R.softmax, "log_softmax": R.log_softmax,
    # shapes
    "reshape": S.reshape, "view": S.view, "flatten": S.flatten, "squeeze": S.squeeze,
    "unsqueeze": S.unsqueeze, "transpose": S.transpose, "permute": S.permute,
    "expand": S.expand, "expand_as": S.expand_as, "broadcast_to": S.broadcast_to,
    "sum_to_size": S.sum_to_size, "clone": S.clone, "contiguous": S.contiguous, "to": S.to,
    "float": lambda self: S.to(self, _torch.float32),
    "double": lambda self: S.to(self, _torch.float64),
    "half": lambda self: S.to(self, _torch.float16),
    "cpu": lambda self: S.to(self, "cpu"),
    "cuda": lambda self, device=None: S.to(self, "cuda" if device is None else device),
}

import torch as _torch  # noqa: E402  (used by the lambdas above, at call time)

for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)
Tensor.T = property(S.T)
Tensor.mT = property(S.mT)

__all__ = [
    "abs", "add", "amax", "amin", "argmax", "argmin", "broadcast_to", "cat", "clamp", "clone",
    "cos", "div", "eq", "exp", "expand", "flatten", "ge", "getitem", "gt", "le", "leaky_relu",
    "linear", "log", "log1p", "log_softmax", "logical_and", "logical_not", "logical_or",
    "logsumexp", "lt", "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "ne", "neg",
    "permute", "pow", "relu", "reshape", "sigmoid", "sign", "sin", "softmax", "sqrt", "squeeze",
    "stack", "std", "sub", "sum", "tanh", "transpose", "unsqueeze", "var", "view", "where",
]
