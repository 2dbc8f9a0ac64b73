"""The tape: recorded nodes, and the reverse walk that applies their VJPs.

A node is created per differentiable op on tensors that require grad. It holds
- ``parents``: one entry per input: the input's node, the input itself when it is a leaf that
  requires grad (its gradient accumulates into ``.grad``), or None (no gradient wanted);
- ``saved``: what the VJP needs: input Tensors (differentiable again under ``create_graph``) and
  raw torch tensors (constants such as masks); ``out`` holds the raw output when the VJP needs it;
- ``meta``: non-tensor facts (shapes, dims, slopes); ``shape``: the output's shape;
- ``scope``: whatever ``grad_mode.state.scope`` held when it was recorded (nn sets it to the
  module call in progress, so pictures can group nodes by module); ``hooks``: gradient hooks.

A VJP is written once, with operators and methods that torch.Tensor and autodiff.Tensor share.
On the first-order path it receives raw torch tensors (no recording, no wrappers); under
``create_graph=True`` it receives recorded Tensors, so the backward pass is itself recorded.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch

from .errors import DTypeError, GraphError, ShapeError
from .grad_mode import state

_Tensor: Any = None  # autodiff.Tensor, bound by tensor.py (the two modules need each other)
_anomaly: Any = None  # autodiff.anomaly, bound by it; consulted only while state.anomaly is on
_new = object.__new__
_raw = torch.Tensor


class Node:
    """A recorded operation. Subclasses name the op and define ``vjp(g, *saved)``.

    A subclass may also define ``replay(meta, shape)``, returning a function that recomputes the
    op's output from its raw input tensors: ``autodiff.replay`` uses it to re-run a recorded step
    as a flat list of kernels. Ops without it cannot be replayed.
    """

    replay: Any = None
    # What the op's recording function saves (read by shared recording helpers).
    save_inputs = False
    save_out = False

    __slots__ = ("parents", "saved", "meta", "out", "shape", "scope", "hooks", "versions",
                 "__weakref__")

    def vjp(self, g: Any, *saved: Any) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def next_functions(self) -> tuple:
        """Parent edges, like torch's: ``(node_or_leaf_or_None, ...)``, one per input."""
        return self.parents

    def needs_grad(self, i: int) -> bool:
        """Whether input ``i`` wants a gradient (VJPs use this to skip needless work)."""
        return self.parents[i] is not None

    @property
    def released(self) -> bool:
        return self.saved is None

    def __repr__(self) -> str:
        return f"<{self.name}>"


def record(cls: type[Node], out: torch.Tensor, inputs: Sequence[Any], saved: tuple = (),
           meta: Any = None, save_out: bool = False) -> Any:
    """Wrap ``out`` in a Tensor; when recording and an input requires grad, attach a ``cls`` node."""
    t = _new(_Tensor)
    t.data = out
    t.grad = None
    t.grad_fn = None
    t._requires_grad = False
    t._hooks = None
    st = state  # one global lookup for the thread-local state, read up to four times below
    if st.trace is not None:
        st.trace.append((cls, t, inputs, meta))
    if not st.grad_enabled:
        return t
    parents = []
    wanted = False
    for x in inputs:
        fn = x.grad_fn
        if fn is not None:
            parents.append(fn)
            wanted = True
        elif x._requires_grad:
            parents.append(x)
            wanted = True
        else:
            parents.append(None)
    if not wanted:
        return t
    node = _new(cls)
    node.parents = tuple(parents)
    node.saved = saved
    node.meta = meta
    node.out = out if save_out else None
    node.shape = out.shape  # the output's shape, for pictures and messages
    node.scope = st.scope
    node.hooks = None
    # torch bumps a tensor's version on every in-place kernel; remembering it here lets the
    # backward refuse a saved tensor that was modified in the meantime.
    # A saved output's version is stored last (the output may be changed in place too).
    if saved:
        versions = [s._version if s.__class__ is _raw else s.data._version for s in saved]
        if save_out:
            versions.append(out._version)
        node.versions = tuple(versions)
    elif save_out:
        node.versions = (out._version,)
    else:
        node.versions = ()
    t.grad_fn = node
    t._requires_grad = True
    if st.anomaly:
        _anomaly.on_record(node, out)
    return t


def kernel(fn: Any) -> Any:
    """``replay`` for ops whose output is ``fn(*raw_inputs)`` with nothing else needed."""
    return staticmethod(lambda meta, shape: fn)


class NoGrad(Node):
    """Marks a result computed from tensors without a gradient (comparison, sign, argmax, ...)."""
    __slots__ = ()


def derived(out: torch.Tensor) -> Any:
    """Wrap a non-differentiable result: no node is recorded, but a replay trace sees it, so it
    is never mistaken for a constant."""
    return record(NoGrad, out, ())


def _version(s: Any) -> int:
    # ``raw.data`` would be a fresh alias with a counter of its own: read raw tensors directly.
    return s._version if s.__class__ is torch.Tensor else s.data._version


def _check_versions(node: Node) -> None:
    items = node.saved if node.out is None else (*node.saved, node.out)
    for i, (s, v) in enumerate(zip(items, node.versions)):
        now = _version(s)
        if now != v:
            if node.out is not None and i == len(node.saved):
                what = f"its own output (the output of {node.name})"
            elif isinstance(s, _Tensor):
                what = (f"an input, the output of {s.grad_fn.name}," if s.grad_fn is not None
                        else "an input leaf tensor" if s._requires_grad
                        else "an input that does not require grad")
            else:
                what = "a tensor it saved"
            raise GraphError(
                f"one of the tensors needed by {node.name}'s backward has been modified by an "
                f"in-place operation: {what} of shape {tuple(s.shape)} and dtype {s.dtype} is at "
                f"version {now}, expected version {v}. Avoid changing it in place before "
                "backward(), or clone() it first.")


def _unpack(node: Node, create_graph: bool) -> list:
    saved = node.saved
    if saved is None:
        raise GraphError(
            f"Trying to backward through the graph a second time: the tensors saved by "
            f"{node.name} were freed by the first backward(). Pass retain_graph=True to the "
            "first backward() (or autodiff.grad) if you need to backward through it again.")
    items = saved if node.out is None else (*saved, node.out)
    if node.versions and any(_version(s) != v for s, v in zip(items, node.versions)):
        _check_versions(node)
    if create_graph:
        args = list(saved)
        if node.out is not None:
            args.append(_Tensor._make(node.out, node))
    else:
        args = [s if s.__class__ is torch.Tensor else s.data for s in saved]
        if node.out is not None:
            args.append(node.out)
    return args


def _release(node: Node) -> None:
    if node.saved or node.out is not None:
        node.saved = None  # marks the node as freed: a second backward explains retain_graph
        node.out = None


def _run_hooks(hooks: list, g: Any, create_graph: bool) -> Any:
    for hook in hooks:
        wrapped = g if create_graph else _Tensor._make(g)
        r = hook(wrapped)
        if r is not None:
            if r.__class__ is not _raw and not isinstance(r, (_Tensor, _raw)):
                raise TypeError(f"gradient hook {_hook_name(hook)} returned a "
                                f"{type(r).__name__}; it must return a Tensor or None")
            rd = r.data if isinstance(r, _Tensor) else r
            if rd.shape != g.shape or rd.dtype != g.dtype:
                raise GraphError(
                    f"gradient hook {_hook_name(hook)} returned a tensor of shape "
                    f"{tuple(rd.shape)} and dtype {rd.dtype} for a gradient of shape "
                    f"{tuple(g.shape)} and dtype {g.dtype}; a hook may only replace the gradient "
                    "with one of the same shape and dtype")
            g = r if create_graph else rd
    return g


def _hook_name(hook: Any) -> str:
    return repr(getattr(hook, "__qualname__", None) or type(hook).__name__)


def _as_leaf_grad(g: Any, leaf: Any, stolen: set, create_graph: bool) -> Any:
    """The first gradient stored into ``leaf.grad``: never an alias of another live tensor."""
    if create_graph:
        return g
    if g._base is not None or id(g) in stolen or not g.is_contiguous():
        g = g.clone(memory_format=torch.contiguous_format)
    stolen.add(id(g))
    return g


def run_backward(roots: Sequence[Any], root_grads: Sequence[Any], retain_graph: bool,
                 create_graph: bool, inputs: Sequence[Any] | None = None,
                 allow_unused: bool = True) -> tuple | None:
    """Back-propagate ``root_grads`` from ``roots``.

    Without ``inputs``, gradients accumulate into the ``.grad`` of the leaves reached (the
    ``Tensor.backward`` behaviour). With ``inputs`` nothing is accumulated and the gradients
    w.r.t. those tensors are returned (the ``autodiff.grad`` behaviour).
    """
    grads: dict = {}     # node -> gradient flowing into it (sum of contributions so far)
    leaf_grads: dict = {}  # leaf Tensor -> gradient
    deps: dict = {}
    stack: list = []
    for r, g in zip(roots, root_grads):
        fn = r.grad_fn
        key = fn if fn is not None else r
        store = grads if fn is not None else leaf_grads
        store[key] = store[key] + g if key in store else g
        if fn is not None and fn not in deps:
            deps[fn] = 0
            stack.append(fn)

    capture: dict = {}
    stop: set = set()
    if inputs is not None:
        for i, x in enumerate(inputs):
            key = x.grad_fn if x.grad_fn is not None else x
            capture.setdefault(key, []).append(i)
        deps = _needed_deps(stack, capture, stop)
    else:
        # Count, for every node reachable from the roots, how many edges point at it.
        # An explicit stack (no recursion) handles graphs of any depth.
        while stack:
            n = stack.pop()
            for p in n.parents:
                if p is None or p.__class__ is _Tensor or isinstance(p, _Tensor):
                    continue
                if p in deps:
                    deps[p] += 1
                else:
                    deps[p] = 1
                    stack.append(p)
    results: list = [None] * (len(inputs) if inputs is not None else 0)

    ready = [n for n, c in deps.items() if c == 0]
    stolen: set = {id(g) for g in root_grads}
    T, raw_cls = _Tensor, torch.Tensor
    prev_mode = state.grad_enabled
    anomaly = state.anomaly
    state.grad_enabled = create_graph  # the backward pass is recorded only under create_graph
    try:
        while ready:
            n = ready.pop()
            g = grads.pop(n, None)
            if g is not None and n.hooks is not None:
                g = _run_hooks(n.hooks, g, create_graph)
            if capture and n in capture:
                for i in capture[n]:
                    results[i] = g
            if g is None or (stop and n in stop):
                in_grads = (None,) * len(n.parents)
            elif create_graph:
                in_grads = n.vjp(g, *_unpack(n, True))
                if not retain_graph:
                    _release(n)
            else:
                # First-order fast path: hand the VJP raw torch tensors (inlined _unpack).
                saved = n.saved
                if saved:
                    args = [s if s.__class__ is raw_cls else s.data for s in saved]
                    if n.out is not None:
                        args.append(n.out)
                    for a, v in zip(args, n.versions):
                        if a._version != v:
                            _check_versions(n)
                    in_grads = n.vjp(g, *args)
                elif saved is None:
                    _unpack(n, False)  # raises the "backward a second time" error
                elif n.out is not None:
                    if n.out._version != n.versions[0]:
                        _check_versions(n)
                    in_grads = n.vjp(g, n.out)
                else:
                    in_grads = n.vjp(g)
                if not retain_graph and (saved or n.out is not None):
                    n.saved = None
                    n.out = None
            if anomaly:
                _anomaly.on_backward(n, in_grads)
            for p, gi in zip(n.parents, in_grads):
                if p is None:
                    continue
                if p.__class__ is T or isinstance(p, T):
                    if gi is not None:
                        leaf_grads[p] = leaf_grads[p] + gi if p in leaf_grads else gi
                    continue
                c = deps.get(p)
                if c is None:  # not on a path to the requested inputs
                    continue
                if gi is not None:
                    grads[p] = grads[p] + gi if p in grads else gi
                if c == 1:
                    ready.append(p)
                deps[p] = c - 1

        for leaf, g in leaf_grads.items():
            if leaf._hooks:
                g = _run_hooks(leaf._hooks, g, create_graph)
            if inputs is not None:
                if leaf in capture:
                    for i in capture[leaf]:
                        results[i] = g
                continue
            _accumulate(leaf, g, stolen, create_graph)
    finally:
        state.grad_enabled = prev_mode

    if inputs is None:
        return None
    out = []
    for x, g in zip(inputs, results):
        if g is None:
            if not allow_unused:
                raise GraphError(
                    f"autodiff.grad: one of the inputs (shape {tuple(x.shape)}) was not used to "
                    "compute the outputs; pass allow_unused=True to get None for it.")
            out.append(None)
        else:
            out.append(g if create_graph else _Tensor._make(_as_leaf_grad(g, x, stolen, False)))
    return tuple(out)


def _needed_deps(roots: list, capture: dict, stop: set) -> dict:
    """Edge counts restricted to the nodes that lie on a path from the roots to an input.

    ``autodiff.grad`` must not run (nor free) the parts of the graph beyond its inputs: a loss's
    gradient w.r.t. a prediction leaves the model's graph intact for a later backward.
    Nodes that are inputs with nothing needed beyond them go into ``stop``: their gradient is
    captured but their VJP is not run.
    """
    needed: dict = {}
    for r in roots:
        if r in needed:
            continue
        stack = [(r, 0)]
        while stack:  # iterative post-order: a node is decided after all its parents
            n, i = stack[-1]
            ps = n.parents
            if i < len(ps):
                stack[-1] = (n, i + 1)
                p = ps[i]
                if p is not None and not isinstance(p, _Tensor) and p not in needed:
                    stack.append((p, 0))
                continue
            stack.pop()
            beyond = any(p in capture if isinstance(p, _Tensor) else needed.get(p, False)
                         for p in ps if p is not None)
            needed[n] = beyond or n in capture
            if not beyond:
                stop.add(n)
    deps = {n: 0 for n, keep in needed.items() if keep}
    for n in deps:
        for p in n.parents:
            if p is not None and p in deps:
                deps[p] += 1
    return deps


def _accumulate(leaf: Any, g: Any, stolen: set, create_graph: bool) -> None:
    if create_graph:
        leaf.grad = g if leaf.grad is None else leaf.grad + g
        return
    if leaf.grad is None:
        leaf.grad = _Tensor._make(_as_leaf_grad(g, leaf, stolen, False))
    else:
        # Out of place: a user may hold the old grad, and in-place updates of stolen buffers
        # could reach another leaf that shares them.
        leaf.grad = _Tensor._make(leaf.grad.data + g)


def _shape_str(shape: Iterable[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + (",)" if len(tuple(shape)) == 1 else ")")


_ones: dict = {}


def default_root_grad(t: Any, shared: bool = True) -> torch.Tensor:
    data = t.data
    if data.dim() == 0 and shared:
        # One shared read-only 1.0 per dtype/device: VJPs never write to their incoming
        # gradient, and a leaf root gets a copy (its id is in run_backward's ``stolen`` set).
        key = (data.dtype, data.device)
        one = _ones.get(key)
        if one is None:
            one = _ones[key] = torch.ones((), dtype=data.dtype, device=data.device)
        return one
    if data.numel() != 1:
        raise GraphError(
            f"backward() on a tensor of shape {_shape_str(t.shape)} needs a gradient: it can be "
            "created implicitly only for scalar (one-element) outputs. Pass grad=... with the same "
            f"shape as the tensor (e.g. autodiff.ones({_shape_str(t.shape)})), or reduce it first "
            "(e.g. y.sum().backward()).")
    return torch.ones_like(t.data)


def check_root_grad(t: Any, g: Any, create_graph: bool) -> Any:
    raw = g.data if isinstance(g, _Tensor) else g
    if not isinstance(raw, torch.Tensor):
        raw = torch.as_tensor(raw, dtype=t.dtype, device=t.device)
    if raw.shape != t.data.shape:
        raise ShapeError(
            f"backward(): grad has shape {_shape_str(raw.shape)} but the tensor has shape "
            f"{_shape_str(t.shape)}; they must match.")
    if raw.dtype != t.data.dtype and raw.is_floating_point():
        raise DTypeError(f"backward(): grad has dtype {raw.dtype} but the tensor has dtype {t.dtype}.")
    if create_graph:
        return g if isinstance(g, _Tensor) else _Tensor._make(raw)
    return raw


def check_differentiable(t: Any, what: str) -> None:
    if t.grad_fn is None and not t._requires_grad:
        raise GraphError(
            f"{what}: element 0 of tensors does not require grad and has no grad_fn: this tensor "
            "was not produced by recorded operations on tensors with requires_grad=True (was it "
            "created under no_grad(), detached, or from inputs that do not require grad?). "
            "Create the inputs with requires_grad=True.")
