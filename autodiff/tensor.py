"""``autodiff.Tensor``: a torch tensor plus what the tape needs to differentiate through it.

The arithmetic, reduction, shape and indexing methods are attached by ``autodiff.ops`` (each op's
forward and VJP live together there); this file holds the tensor's state and plumbing.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from . import engine
from .errors import DTypeError, GraphError

_new = object.__new__


def _differentiable_dtype(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point or dtype.is_complex


def _refuse_dtype(dtype: torch.dtype) -> None:
    raise DTypeError(
        f"only floating point (and complex) tensors can require gradients; got dtype {dtype}. "
        "Convert first, e.g. x.float() or autodiff.tensor(..., dtype=torch.float32).")


def _refuse_flag(flag: Any) -> None:
    # torch refuses these too: a truthy string or a 0/1 is a mistake, not a flag.
    raise TypeError(f"requires_grad must be a bool (True or False), got {type(flag).__name__} "
                    f"{flag!r}")


class Tensor:
    """A recorded tensor. ``data`` is the underlying ``torch.Tensor`` (never requiring torch grad).

    ``Tensor(torch_tensor)`` wraps without copying; ``autodiff.tensor(values)`` copies.
    """

    __slots__ = ("data", "grad", "grad_fn", "_requires_grad", "_hooks", "__weakref__")
    __hash__ = object.__hash__
    __array_ufunc__ = None  # let numpy arrays defer to our reflected operators
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False, *, dtype: torch.dtype | None = None,
                 device: Any = None) -> None:
        if isinstance(data, Tensor):
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
                raise TypeError(f"Tensor: cannot make a tensor from {type(data).__name__} "
                                f"{data!r:.60} ({e})") from None
        if requires_grad.__class__ is not bool:
            _refuse_flag(requires_grad)
        if requires_grad and not _differentiable_dtype(data.dtype):
            _refuse_dtype(data.dtype)
        self.data = data
        self.grad = None
        self.grad_fn = None
        self._requires_grad = bool(requires_grad)
        self._hooks = None

    @staticmethod
    def _make(data: torch.Tensor, grad_fn: Any = None) -> "Tensor":
        """Internal fast constructor: no checks, no copies."""
        t = _new(Tensor)
        t.data = data
        t.grad = None
        t.grad_fn = grad_fn
        t._requires_grad = grad_fn is not None
        t._hooks = None
        return t

    @staticmethod
    def _unwrap(x: Any) -> torch.Tensor:
        return x.data if isinstance(x, Tensor) else x

    # ---- grad bookkeeping ------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if self.grad_fn is not None:
            if not flag:
                raise GraphError(
                    "you can only change requires_grad of leaf tensors; this one was produced by "
                    f"{self.grad_fn.name}. Use .detach() to get a tensor that does not require grad.")
            return
        if flag.__class__ is not bool:
            _refuse_flag(flag)
        if flag and not _differentiable_dtype(self.data.dtype):
            _refuse_dtype(self.data.dtype)
        self._requires_grad = flag

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def backward(self, grad: Any = None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs: Sequence["Tensor"] | None = None) -> None:
        """Accumulate d(self)/d(leaf) into every reachable leaf's ``.grad``.

        ``grad`` is the vector of the vector-Jacobian product (required unless self has one
        element). ``retain_graph`` keeps saved tensors for another backward; ``create_graph``
        records this backward so the gradients can be differentiated again.
        """
        engine.check_differentiable(self, "backward()")
        if retain_graph is None:
            retain_graph = create_graph
        if grad is None:  # under create_graph the root gradient may become a leaf's .grad: no sharing
            g = engine.default_root_grad(self, shared=not create_graph)
        else:
            g = engine.check_root_grad(self, grad, create_graph)
        if create_graph and not isinstance(g, Tensor):
            g = Tensor._make(g)
        if inputs is not None:
            from .functional import grad as _grad
            ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
            gs = _grad([self], ins, [g], retain_graph=retain_graph, create_graph=create_graph,
                       allow_unused=True)
            for x, gx in zip(ins, gs):
                if gx is not None:
                    engine._accumulate(x, gx if create_graph else gx.data, set(), create_graph)
            return
        engine.run_backward([self], [g], retain_graph, create_graph)

    def register_hook(self, hook: Callable[["Tensor"], "Tensor | None"]) -> "_RemovableHandle":
        """Call ``hook(grad)`` whenever this tensor's gradient is computed; a returned tensor
        replaces the gradient. Returns a handle whose ``remove()`` unregisters the hook."""
        if not callable(hook):
            raise TypeError(f"register_hook: expected a callable, got {type(hook).__name__}")
        if not self._requires_grad:
            raise GraphError("cannot register a hook on a tensor that does not require grad.")
        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            if self.grad_fn.hooks is None:
                self.grad_fn.hooks = []
            hooks = self.grad_fn.hooks
        # As in torch, retain_grad() stores the gradient after every other hook has run.
        n = len(hooks)
        while n and getattr(hooks[n - 1], "_retains_grad", False):
            n -= 1
        hooks.insert(n, hook)
        return _RemovableHandle(hooks, hook)

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

        def _retain(g: "Tensor") -> None:
            t = ref()
            if t is not None:
                if g.grad_fn is None:  # first order: a plain copy
                    t.grad = Tensor._make(g.data.clone()) if t.grad is None else t.grad + g.data
                else:  # create_graph: keep the gradient differentiable
                    t.grad = g.clone() if t.grad is None else t.grad + g
        _retain._retains_grad = True  # type: ignore[attr-defined]
        self.register_hook(_retain)

    @property
    def retains_grad(self) -> bool:
        fn = self.grad_fn
        return bool(fn is not None and fn.hooks and any(getattr(h, "_retains_grad", False) for h in fn.hooks))

    def detach(self) -> "Tensor":
        """A tensor sharing the same data, cut from the graph (requires no grad)."""
        return Tensor._make(self.data)

    def detach_(self) -> "Tensor":
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

    def __iter__(self):
        if self.data.dim() == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

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

    def __reduce_ex__(self, protocol: int) -> Any:
        if self.grad_fn is not None:
            raise GraphError("cannot pickle a non-leaf tensor: detach() it first.")
        return (_rebuild, (self.data, self._requires_grad))

    # In-place ops (add_, mul_, zero_, fill_, x[i] = v, ...) live in ops/inplace.py.


def _rebuild(data: torch.Tensor, requires_grad: bool) -> Tensor:
    return Tensor(data, requires_grad=requires_grad)


class _RemovableHandle:
    __slots__ = ("_hooks", "_hook")

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


engine._Tensor = Tensor
