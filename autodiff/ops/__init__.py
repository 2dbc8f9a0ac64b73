"""The op catalogue: one class per op (forward, VJP, formula), grouped by kind."""
from .elementwise import (abs, add, clamp, cos, div, eq, exp, ge, gt, le, leaky_relu, log, log1p,
                          logical_and, logical_not, logical_or, lt, maximum, minimum, mul, ne, neg,
                          pow, relu, sigmoid, sign, sin, sqrt, sub, tanh, where)
from .indexing import getitem
from .linalg import linear, matmul
from .reductions import (amax, amin, argmax, argmin, log_softmax, logsumexp, max, mean, min,
                         softmax, std, sum, var)
from .shape import (broadcast_to, cat, clone, expand, flatten, permute, reshape, squeeze, stack,
                    transpose, unsqueeze, view)

__all__ = [
    "abs", "add", "amax", "amin", "argmax", "argmin", "broadcast_to", "cat", "clamp", "clone",
    "cos", "div", "eq", "exp", "expand", "flatten", "ge", "getitem", "gt", "le", "leaky_relu",
    "linear", "log", "log1p", "log_softmax", "logical_and", "logical_not", "logical_or",
    "logsumexp", "lt", "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "ne", "neg",
    "permute", "pow", "relu", "reshape", "sigmoid", "sign", "sin", "softmax", "sqrt", "squeeze",
    "stack", "std", "sub", "sum", "tanh", "transpose", "unsqueeze", "var", "view", "where",
]
