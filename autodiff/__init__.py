"""autodiff: reverse-mode automatic differentiation on PyTorch tensors, without torch's autograd.

    import autodiff as ad
    x = ad.tensor([[1.0, 2.0]], requires_grad=True)
    W = ad.randn(2, 3, requires_grad=True)
    y = (x @ W).tanh().sum()
    y.backward()          # x.grad, W.grad

Every op on a Tensor that requires grad records a node holding a hand-written VJP;
``backward()`` walks the recorded graph in reverse (iteratively, any depth).
"""
from .tensor import Tensor  # first: the Tensor class brings the op catalogue with it

# isort: split
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .engine import Node, RemovableHandle
from .errors import DeviceError, DTypeError, GradcheckError, GraphError, ShapeError
from .factories import (
    arange,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from .function import Function, FunctionCtx
from .functional import grad
from .grad_mode import current_scope, enable_grad, is_grad_enabled, no_grad, scope, set_grad_enabled
from .gradcheck import gradcheck, gradgradcheck
from .op import Op
from .ops import (  # noqa: A004
    abs,
    add,
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    broadcast_to,
    cat,
    chunk,
    clamp,
    clone,
    cos,
    cumsum,
    div,
    dot,
    exp,
    expand,
    flatten,
    flip,
    gather,
    leaky_relu,
    linear,
    log,
    log1p,
    log_softmax,
    logsumexp,
    masked_fill,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mm,
    mul,
    neg,
    norm,
    permute,
    pow,
    prod,
    relu,
    reshape,
    scatter_add,
    sigmoid,
    sign,
    sin,
    softmax,
    split,
    sqrt,
    square,
    squeeze,
    stack,
    std,
    sub,
    sum,
    t,
    tanh,
    transpose,
    unsqueeze,
    var,
    view,
    where,
)
from .ops._common import as_tensor
from .replay import Replay, replay
from .torch_function import register_torch_function

__version__ = "0.1.0"

__all__ = [
    "Tensor", "Node", "Op", "RemovableHandle", "as_tensor", "register_torch_function", "Function",
    "FunctionCtx", "replay", "Replay",
    "grad", "gradcheck", "gradgradcheck", "no_grad", "enable_grad", "set_grad_enabled",
    "is_grad_enabled", "scope", "current_scope",
    "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled", "AnomalyError",
    "tensor", "zeros", "ones", "full", "empty", "eye", "randn", "rand", "arange", "linspace",
    "zeros_like", "ones_like", "randn_like", "rand_like", "full_like", "empty_like",
    "ShapeError", "DTypeError", "DeviceError", "GraphError", "GradcheckError",
    "abs", "add", "amax", "amin", "argmax", "argmin", "broadcast_to", "cat", "clamp", "clone",
    "cos", "div", "exp", "expand", "flatten", "leaky_relu", "linear", "log", "log1p",
    "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "neg",
    "permute", "pow", "relu", "reshape", "sigmoid", "sign", "sin", "softmax", "sqrt", "squeeze",
    "stack", "std", "sub", "sum", "tanh", "transpose", "unsqueeze", "var", "view", "where",
    "all", "any", "chunk", "cumsum", "dot", "flip", "gather", "masked_fill", "mm", "norm", "prod",
    "scatter_add", "split", "square", "t", "from_numpy", "manual_seed",
]
