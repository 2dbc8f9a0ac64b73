"""The state and plumbing of ``autodiff.Tensor``: data, gradient, graph edge, hooks, backward.

The math methods (arithmetic, reductions, shapes, indexing, in-place) are declared next to their
ops, in each op module's ``*Methods`` class; ``autodiff/tensor.py`` puts the two together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, SupportsIndex

import torch

import autodiff.tensor as _tensor_module  # absolute: mypy misreads the relative form here

from . import engine
from .engine import RemovableHandle
from .errors import DeviceError, DTypeError, GraphError, ShapeError

if TYPE_CHECKING:
    from typing_extensions import Self

    Tensor = _tensor_module.Tensor  # the full class, for annotations (it subclasses this one)

_new = object.__new__


def _differentiable_dtype(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point or dtype.is_complex


def _refuse_dtype(dtype: torch.dtype) -> None:
    raise DTypeError(
        f"only floating point (and complex) tensors can require gradients; got dtype {dtype}. "
        "Convert first, e.g. x.float() or autodiff.tensor(..., dtype=torch.float32)."
    )


def _refuse_flag(flag: Any) -> None:
    # torch refuses these too: a truthy string or a 0/1 is a mistake, not a flag.
    raise TypeError(
        f"requires_grad must be a bool (True or False), got {type(flag).__name__} {flag!r}"
    )


class TensorBase:
    """A recorded tensor. ``data`` is the underlying ``torch.Tensor`` (never requiring torch grad).

    ``Tensor(torch_tensor)`` wraps without copying; ``autodiff.tensor(values)`` copies.
    """

    __slots__ = ("data", "_grad", "grad_fn", "_requires_grad", "_hooks", "__weakref__")
    # the slots, declared for type checkers (annotations only)
    data: torch.Tensor
    _grad: Tensor | None
    grad_fn: engine.Node | None
    _requires_grad: bool
    _hooks: LeafHooks | None
    __hash__ = object.__hash__
    __array_ufunc__ = None  # let numpy arrays defer to our reflected operators
    __array_priority__ = 1000

    @classmethod
    def __torch_function__(
        cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        """``torch.exp(x)``, ``F.relu(x)``, ``torch.allclose(x, y)``: see ``torch_function``."""
        from .torch_function import dispatch

        return dispatch(func, args, kwargs or {})

    def __init__(
        self,
        data: Any,
        requires_grad: bool = False,
        *,
        dtype: torch.dtype | None = None,
        device: Any = None,
    ) -> None:
        if isinstance(data, TensorBase):
            data = data.data
        if isinstance(data, torch.Tensor):
            if data.requires_grad:  # the library never lets torch's autograd track its tensors
                data = data.detach()
            if dtype is not None or device is not None:
                data = data.to(dtype=dtype, device=device)
        else:
            try:
                data = torch.as_tensor(data, dtype=dtype, device=device)
            except (RuntimeError, TypeError, ValueError) as e:
                raise TypeError(
                    f"Tensor: cannot make a tensor from {type(data).__name__} {data!r:.60} ({e})"
                ) from None
        if requires_grad.__class__ is not bool:
            _refuse_flag(requires_grad)
        if requires_grad and not _differentiable_dtype(data.dtype):
            _refuse_dtype(data.dtype)
        self.data = data
        self._grad = None
        self.grad_fn = None
        self._requires_grad = bool(requires_grad)
        self._hooks = None

    @staticmethod
    def _make(data: torch.Tensor, grad_fn: Any = None) -> Tensor:
        """Internal fast constructor: no checks, no copies."""
        t = _new(_tensor_module.Tensor)
        t.data = data
        t._grad = None
        t.grad_fn = grad_fn
        t._requires_grad = grad_fn is not None
        t._hooks = None
        return t

    @staticmethod
    def _wrap(data: torch.Tensor) -> Tensor:
        """A Tensor over raw ``data`` that requires no grad (what hooks and readers are shown)."""
        return TensorBase._make(data)

    # ---- grad bookkeeping ------------------------------------------------------------------
    @property
    def grad(self) -> Tensor | None:
        """The accumulated gradient (None until a backward reaches this leaf)."""
        return self._grad

    @grad.setter
    def grad(self, g: Any) -> None:
        if g is not None:
            g = _checked_grad(self, g)
        self._grad = g

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if self.grad_fn is not None:
            if not flag:
                raise GraphError(
                    "you can only change requires_grad of leaf tensors; this one was produced by "
                    f"{self.grad_fn.name}. Use .detach() to get a tensor that does not require "
                    "grad."
                )
            return
        if flag.__class__ is not bool:
            _refuse_flag(flag)
        if flag and not _differentiable_dtype(self.data.dtype):
            _refuse_dtype(self.data.dtype)
        self._requires_grad = flag

    def requires_grad_(self, requires_grad: bool = True) -> Self:
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def backward(
        self,
        grad: Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Tensor | Sequence[Tensor] | None = None,
    ) -> None:
        """Accumulate d(self)/d(leaf) into every reachable leaf's ``.grad``.

        ``grad`` is the vector of the vector-Jacobian product (required unless self has one
        element). ``retain_graph`` keeps saved tensors for another backward; ``create_graph``
        records this backward so the gradients can be differentiated again.
        """
        engine.check_differentiable(self, "backward()")
        if retain_graph is None:
            retain_graph = create_graph
        g = engine.root_grad(self, grad, create_graph)
        if inputs is not None:
            from .functional import grad as _grad

            ins = [inputs] if isinstance(inputs, TensorBase) else list(inputs)
            outs: list = [self]
            gs = _grad(
                outs,
                ins,
                [g],
                retain_graph=retain_graph,
                create_graph=create_graph,
                allow_unused=True,
            )
            for x, gx in zip(ins, gs):
                if gx is not None:
                    engine.accumulate(x, gx if create_graph else gx.data, create_graph)
            return
        engine.run_backward([self], [g], retain_graph, create_graph)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        """Call ``hook(grad)`` whenever this tensor's gradient is computed; a returned tensor
        replaces the gradient. Returns a handle whose ``remove()`` unregisters the hook."""
        if not callable(hook):
            raise TypeError(f"register_hook: expected a callable, got {type(hook).__name__}")
        if not self._requires_grad:
            raise GraphError("cannot register a hook on a tensor that does not require grad.")
        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = LeafHooks()
            hooks = self._hooks.pre
        else:
            fn = self.grad_fn
            if fn.prehooks is None:
                fn.prehooks = []
            hooks = fn.prehooks
        # As in torch, retain_grad() stores the gradient after every other hook has run.
        n = len(hooks)
        while n and getattr(hooks[n - 1], "_retains_grad", False):
            n -= 1
        hooks.insert(n, hook)
        return RemovableHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> RemovableHandle:
        """Call ``hook(tensor)`` on this leaf right after backward accumulated its ``.grad``
        (as soon as its gradient is complete, before the rest of the backward pass)."""
        if not callable(hook):
            raise TypeError(
                f"register_post_accumulate_grad_hook: expected a callable, got "
                f"{type(hook).__name__}"
            )
        if self.grad_fn is not None or not self._requires_grad:
            raise GraphError(
                "post accumulate grad hooks can only be registered on leaf tensors "
                "that require grad."
            )
        if self._hooks is None:
            self._hooks = LeafHooks()
        self._hooks.post.append(hook)
        return RemovableHandle(self._hooks.post, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward (leaves always keep it)."""
        if self.grad_fn is None:
            if not self._requires_grad:
                raise GraphError("retain_grad() on a tensor that does not require grad.")
            return
        if self.retains_grad:
            return
        import weakref

        ref = weakref.ref(self)

        def _retain(g: Tensor) -> None:
            t = ref()
            if t is not None:
                if g.grad_fn is None:  # first order: a plain copy
                    t.grad = TensorBase._make(g.data.clone()) if t.grad is None else t.grad + g.data
                else:  # create_graph: keep the gradient differentiable
                    t.grad = g.clone() if t.grad is None else t.grad + g

        _retain._retains_grad = True  # type: ignore[attr-defined]
        self.register_hook(_retain)

    @property
    def retains_grad(self) -> bool:
        fn = self.grad_fn
        return bool(
            fn is not None
            and fn.prehooks
            and any(getattr(h, "_retains_grad", False) for h in fn.prehooks)
        )

    def detach(self) -> Tensor:
        """A tensor sharing the same data, cut from the graph (requires no grad)."""
        return TensorBase._make(self.data)

    def detach_(self) -> Self:
        self.grad_fn = None
        self._requires_grad = False
        return self

    # ---- plain tensor facts ----------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        return self.data.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def ndim(self) -> int:
        return self.data.dim()

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda

    def dim(self) -> int:
        return self.data.dim()

    def size(self, dim: int | None = None) -> Any:
        return self.data.size() if dim is None else self.data.size(dim)

    def numel(self) -> int:
        return self.data.numel()

    def is_floating_point(self) -> bool:
        return self.data.is_floating_point()

    def is_contiguous(self) -> bool:
        return self.data.is_contiguous()

    def item(self) -> Any:
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def numpy(self) -> Any:
        """The data as a NumPy array (CPU only; shares memory like torch's ``numpy()``)."""
        return self.data.cpu().numpy() if self.data.is_cuda else self.data.numpy()

    def __len__(self) -> int:
        if self.data.dim() == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self.data.dim() == 0:
            raise TypeError("iteration over a 0-d tensor")
        # __getitem__ is declared with the indexing ops (Tensor = TensorBase + the op methods)
        return (self[i] for i in range(self.data.shape[0]))  # type: ignore[index]

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __index__(self) -> int:
        return self.data.__index__()

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        body = repr(self.data)
        if self.grad_fn is not None:
            return f"{body[:-1]}, grad_fn=<{self.grad_fn.name}>)"
        if self._requires_grad:
            return f"{body[:-1]}, requires_grad=True)"
        return body

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        if self.grad_fn is not None:
            raise GraphError("cannot pickle a non-leaf tensor: detach() it first.")
        return (_rebuild, (self.data, self._requires_grad))

    # In-place ops (add_, mul_, zero_, fill_, x[i] = v, ...) live in ops/inplace.py.


def _checked_grad(t: TensorBase, g: Any) -> TensorBase:
    """``g`` as a gradient of ``t``: a tensor of t's shape, dtype and device (as torch demands)."""
    if isinstance(g, torch.Tensor):
        g = TensorBase._make(g.detach() if g.requires_grad else g)
    elif not isinstance(g, TensorBase):
        raise TypeError(f"assigned grad expected to be a Tensor or None, got {type(g).__name__}")
    gd, d = g.data, t.data
    if gd.shape != d.shape:
        raise ShapeError(
            f"assigning a gradient of shape {_shape(gd.shape)} to a tensor of shape "
            f"{_shape(d.shape)}; the gradient must have the tensor's shape"
        )
    if gd.dtype != d.dtype:
        raise DTypeError(
            f"assigning a gradient of dtype {gd.dtype} to a tensor of dtype "
            f"{d.dtype}; the gradient must have the tensor's dtype"
        )
    if gd.device != d.device:
        raise DeviceError(
            f"assigning a gradient on {gd.device} to a tensor on {d.device}; the "
            "gradient must be on the tensor's device"
        )
    return g


def _shape(shape: torch.Size) -> str:
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


def _rebuild(data: torch.Tensor, requires_grad: bool) -> Any:
    return _tensor_module.Tensor(data, requires_grad=requires_grad)


class LeafHooks:
    """A leaf's hooks: ``pre`` see (and may replace) its gradient, ``post`` run after ``.grad``
    was accumulated."""

    __slots__ = ("pre", "post")

    def __init__(self) -> None:
        self.pre: list = []
        self.post: list = []
