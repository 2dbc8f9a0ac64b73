"""The op catalogue: one class per op (forward, VJP, formula), grouped by kind."""
from .elementwise import (abs, add, clamp, cos, div, eq, exp, ge, gt, le, leaky_relu, log, log1p,
                          logical_and, logical_not, logical_or, lt, maximum, minimum, mul, ne, neg,
                          pow, relu, sigmoid, sign, sin, sqrt, sub, tanh, where)
from .elementwise import square
from .indexing import gather, getitem, masked_fill, scatter_add
from .linalg import dot, linear, matmul, mm
from .reductions import (amax, amin, argmax, argmin, cumsum, log_softmax, logsumexp, max, mean, min,
                         norm, prod, softmax, std, sum, var)
from .reductions import all_ as all  # noqa: A004  (torch's names)
from .reductions import any_ as any  # noqa: A004
from .shape import (broadcast_to, cat, chunk, clone, expand, flatten, flip, permute, reshape, split,
                    squeeze, stack, t, transpose, unsqueeze, view)

__all__ = [
    "abs", "add", "amax", "amin", "argmax", "argmin", "broadcast_to", "cat", "clamp", "clone",
    "cos", "div", "eq", "exp", "expand", "flatten", "ge", "getitem", "gt", "le", "leaky_relu",
    "linear", "log", "log1p", "log_softmax", "logical_and", "logical_not", "logical_or",
    "logsumexp", "lt", "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "ne", "neg",
    "permute", "pow", "relu", "reshape", "sigmoid", "sign", "sin", "softmax", "sqrt", "squeeze",
    "stack", "std", "sub", "sum", "tanh", "transpose", "unsqueeze", "var", "view", "where",
    "all", "any", "chunk", "cumsum", "dot", "flip", "gather", "masked_fill", "mm", "norm", "prod",
    "scatter_add", "split", "square", "t",
]
