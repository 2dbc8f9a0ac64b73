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
from . import ops as _ops
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
from .ops import *  # noqa: F403  (the op catalogue: its own __all__ is the list)
from .ops._common import as_tensor
from .replay import Replay, replay
from .torch_function import register_torch_function

__version__ = "0.2.0"

__all__ = [
    "Tensor",
    "Node",
    "Op",
    "RemovableHandle",
    "as_tensor",
    "register_torch_function",
    "Function",
    "FunctionCtx",
    "replay",
    "Replay",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "scope",
    "current_scope",
    "detect_anomaly",
    "set_detect_anomaly",
    "is_anomaly_enabled",
    "AnomalyError",
    "tensor",
    "zeros",
    "ones",
    "full",
    "empty",
    "eye",
    "randn",
    "rand",
    "arange",
    "linspace",
    "zeros_like",
    "ones_like",
    "randn_like",
    "rand_like",
    "full_like",
    "empty_like",
    "ShapeError",
    "DTypeError",
    "DeviceError",
    "GraphError",
    "GradcheckError",
    "from_numpy",
    "manual_seed",
    *_ops.__all__,
]
