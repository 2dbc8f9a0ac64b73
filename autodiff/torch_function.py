"""torch functions called on autodiff Tensors (PyTorch's ``__torch_function__`` protocol).

    torch.exp(x)                          # = autodiff.exp(x): recorded, differentiable
    torch.nn.functional.relu(x)           # = autodiff.relu(x)
    torch.allclose(x.grad, torch.ones(2)) # a query: computed on the values
    p.data -= lr * p.grad                 # a torch tensor updated in place by an autodiff one

A torch function is looked up by name among tapegrad's ops (``autodiff.<name>``, then the Tensor
method ``<name>``); libraries on top register theirs with ``register_torch_function``. Read-only
queries and in-place updates of plain torch tensors run on the values. Anything else runs on the
values when no argument requires grad, and otherwise raises an error naming the function: it has
no VJP in tapegrad, and computing it silently would cut the graph.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .tensor_base import TensorBase

# Results that carry no gradient: computed on the values, tensors wrapped without a graph.
QUERIES = frozenset(
    """
    allclose equal isclose isfinite isnan isinf isneginf isposinf isreal numel is_tensor
    is_floating_point is_complex is_nonzero is_same_size count_nonzero all any argmax argmin
    argsort eq ne lt le gt ge greater less equal logical_and logical_or logical_xor logical_not
    sign signbit nonzero is_grad_enabled result_type can_cast promote_types dim size
    __eq__ __ne__ __lt__ __le__ __gt__ __ge__ __bool__ __len__ __format__ __repr__ __hash__
    __getitem__ __contains__ __and__ __or__ __xor__ __invert__ tolist item
""".split()
)
# ``torch.Tensor.__add__(raw, x)`` reaches us when a torch tensor is the left operand.
_DUNDERS = {
    "__add__": "add",
    "__sub__": "sub",
    "__mul__": "mul",
    "__truediv__": "div",
    "__div__": "div",
    "__pow__": "pow",
    "__matmul__": "matmul",
}
_REFLECTED = {
    "__radd__": "add",
    "__rsub__": "sub",
    "__rmul__": "mul",
    "__rtruediv__": "div",
    "__rdiv__": "div",
    "__rpow__": "pow",
    "__rmatmul__": "matmul",
}

_registered: dict = {}


def register_torch_function(torch_fn: Callable, impl: Callable) -> None:
    """Make ``torch_fn(autodiff_tensor, ...)`` call ``impl`` (nn registers its functional ops)."""
    _registered[torch_fn] = impl


def _raw(x: Any) -> Any:
    if isinstance(x, TensorBase):
        return x.data
    if isinstance(x, (list, tuple)):
        return type(x)(_raw(v) for v in x)
    return x


def _wrap(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return TensorBase._make(x)
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # torch's (values, indices)
        return type(x)(*(_wrap(v) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(_wrap(v) for v in x)
    return x


def _on_values(func: Callable, args: tuple, kwargs: dict, wrap: bool = True) -> Any:
    out = func(*_raw(args), **{k: _raw(v) for k, v in kwargs.items()})
    return _wrap(out) if wrap else out


def _requires_grad(args: tuple, kwargs: dict) -> bool:
    def rg(x: Any) -> bool:
        if isinstance(x, TensorBase):
            return x.requires_grad
        return isinstance(x, (list, tuple)) and any(rg(v) for v in x)

    return any(rg(a) for a in args) or any(rg(v) for v in kwargs.values())


def dispatch(func: Callable, args: tuple, kwargs: dict) -> Any:
    """What ``func(*args, **kwargs)`` means when an argument is an autodiff Tensor."""
    impl = _registered.get(func)
    if impl is not None:
        return impl(*args, **kwargs)
    import autodiff

    name = getattr(func, "__name__", "")
    first = args[0] if args else None
    if isinstance(first, torch.Tensor) and (
        name.startswith("__i") or (name.endswith("_") and not name.endswith("__"))
    ):
        # an in-place update of a plain torch tensor (``p.data -= lr * p.grad``)
        return _on_values(func, args, kwargs, wrap=False)
    if name in QUERIES:
        return _on_values(
            func,
            args,
            kwargs,
            wrap=not name.startswith("__")
            or name
            in {
                "__getitem__",
                "__and__",
                "__or__",
                "__xor__",
                "__invert__",
                "__eq__",
                "__ne__",
                "__lt__",
                "__le__",
                "__gt__",
                "__ge__",
            },
        )
    # torch's private and default-valued keywords mean nothing to tapegrad's ops
    kwargs = {
        k: v
        for k, v in kwargs.items()
        if not k.startswith("_") and not (k in ("inplace", "out", "dtype") and v in (False, None))
    }
    if name in _DUNDERS:
        return getattr(autodiff, _DUNDERS[name])(*args, **kwargs)
    if name in _REFLECTED:
        return getattr(autodiff, _REFLECTED[name])(args[1], args[0], *args[2:], **kwargs)
    op = getattr(autodiff, name, None) if name in autodiff.__all__ else None
    if op is None and isinstance(first, TensorBase):
        op = getattr(type(first), name, None)
        op = op if callable(op) else None
    if op is not None:
        return op(*args, **kwargs)
    if not _requires_grad(args, kwargs):
        return _on_values(func, args, kwargs)
    where = getattr(func, "__module__", None) or "torch"
    where = (
        "torch.nn.functional"
        if where.endswith("nn.functional")
        else ("torch" if where in ("torch.functional", "torch._C._VariableFunctions") else where)
    )
    raise TypeError(
        f"{where}.{name or repr(func)} has no VJP in tapegrad, so it cannot be applied to an "
        "autodiff.Tensor that requires grad (the gradient would be silently cut). Use tapegrad's "
        "ops (docs/ops.md), write an autodiff.Op for it, or call it on x.detach() / x.data."
    )
