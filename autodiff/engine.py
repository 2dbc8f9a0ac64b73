"""The tape: recorded nodes, and the reverse walk that applies their VJPs.

A node is recorded per differentiable op whose inputs require grad. It holds
- ``inputs``: one edge per input: the input's node, the input itself when it is a leaf that
  requires grad (its gradient accumulates into ``.grad``), or None (no gradient wanted);
- ``saved``: what the VJP reads, in the order the op's ``saves`` names it (input Tensors, raw
  constants such as index tensors, the raw output), each with the version it had when saved;
- ``in_meta``: each input's (shape, dtype): the engine un-broadcasts and checks every gradient
  a VJP returns against it, so no op has to;
- ``scope``: what ``autodiff.scope`` held when it was recorded (nn: the module call);
- ``seq``: when it was recorded (its inputs were recorded before it).

The walk is three small pieces: ``schedule`` (the nodes reached, by decreasing ``seq``: one
topological order, shared by ``backward``, ``grad`` and ``replay``), ``apply`` (one node: hooks,
saved tensors, VJP, contract, release; a first-order node without hooks whose inputs are all
nodes checks and routes its gradients in one pass) and a sink (accumulate into a leaf's
``.grad`` as soon as all its contributions arrived, or capture for ``grad()``).

A VJP is written once, with operators and methods that torch.Tensor and autodiff.Tensor share.
On the first-order path it receives raw torch tensors; under ``create_graph=True`` it receives
recorded Tensors, so the backward pass is itself recorded.
"""

from __future__ import annotations

import itertools
import threading
from operator import attrgetter, is_not
from typing import Any, Callable, Sequence, overload

import torch

from . import tensor as _tensor_module
from .errors import DeviceError, DTypeError, GraphError, ShapeError
from .grad_mode import state

_anomaly: Any = None  # autodiff.anomaly, bound by it; consulted only while state.anomaly is on
_new = object.__new__
_RAW = torch.Tensor
_torch_grad_enabled = torch._C.is_grad_enabled  # off in torch.no_grad() and inference_mode()
# Leaf accumulation is a read-modify-write of ``.grad``: several threads running backward()
# into one leaf must not lose each other's contributions.
_accumulate_lock = threading.Lock()
_lock, _unlock = _accumulate_lock.acquire, _accumulate_lock.release  # cheaper than ``with``
# Record order, shared by all threads (``next`` on an ``itertools.count`` is atomic).
_next_seq = itertools.count().__next__
_by_seq = attrgetter("seq")
_NONES = itertools.repeat(None)


class Node:
    """A recorded operation (PyTorch's ``grad_fn``). Ops subclass it through ``autodiff.Op``.

    Public, read-only for graph readers (pictures, debuggers): ``name``, ``inputs``
    (``next_functions``), ``scope``, ``shape`` (of the output), ``saved_tensors``, ``released``;
    and the hooks ``register_prehook`` / ``register_hook``.
    """

    # Few objects per node: the garbage collector visits each of them in every full collection
    # (``in_meta`` and ``out_meta`` are built on demand from the slots below).
    __slots__ = (
        "inputs",
        "saved",
        "versions",
        "known_meta",
        "out_shape",
        "out_dtype",
        "scope",
        "prehooks",
        "posthooks",
        "seq",
        "__weakref__",
    )
    # the slots, declared for type checkers (set by ``record``; annotations only, no defaults)
    inputs: tuple
    saved: tuple | None
    versions: tuple
    # A leaf input's (shape, dtype) when recorded (a leaf's data may be replaced later), None for
    # the other inputs (a node input's is its node's output meta); None as a whole when no input
    # is a leaf. ``in_meta`` puts the two together.
    known_meta: tuple | None
    out_shape: torch.Size
    out_dtype: torch.dtype
    scope: Any
    prehooks: list | None
    posthooks: list | None
    # When it was recorded (increasing): a node's inputs were all recorded before it, so walking
    # the nodes by decreasing ``seq`` visits every node before the nodes it sends a gradient to.
    seq: int

    saves: tuple = ()  # names of what the VJP reads (set per op class)
    out_index: int = -1  # position of "out" in ``saves`` (-1: the output is not saved)
    save_plan: tuple = ()  # per saved slot: the input it holds, or -1 for the output
    reads: Any = None
    all_read = False  # with ``reads``: every slot is read when every input wants a gradient
    forward: Any = None
    # A VJP written by a user (``autodiff.Function``) may return tensors the user holds.
    returns_foreign = False

    def vjp(self, g: Any, *saved: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def next_functions(self) -> tuple:
        """One edge per input: its Node, a leaf Tensor that requires grad, or None."""
        return self.inputs

    @property
    def needs_input_grad(self) -> tuple:
        """Whether each input wants a gradient (as PyTorch's ``ctx.needs_input_grad``)."""
        return tuple(map(is_not, self.inputs, _NONES))  # (p is not None for each), in C

    @property
    def shape(self) -> torch.Size:
        """The shape of the op's output."""
        return self.out_shape

    @property
    def out_meta(self) -> tuple:
        """The output's (shape, dtype)."""
        return (self.out_shape, self.out_dtype)

    @property
    def in_meta(self) -> tuple:
        """Each input's (shape, dtype) when recorded (None for an input without a gradient)."""
        known = self.known_meta or (None,) * len(self.inputs)
        return tuple(
            [
                None if p is None else (p.out_shape, p.out_dtype) if m is None else m
                for p, m in zip(self.inputs, known)
            ]
        )

    def input_shape(self, i: int) -> torch.Size:
        """The shape input ``i`` had when recorded (cheaper than ``in_meta[i][0]``; the input
        must want a gradient)."""
        known = self.known_meta
        if known is not None and known[i] is not None:
            return known[i][0]
        return self.inputs[i].out_shape

    @property
    def released(self) -> bool:
        """True once backward freed the saved tensors (without ``retain_graph``)."""
        return self.saved is None

    @property
    def saved_tensors(self) -> tuple:
        """What the VJP reads, in ``saves`` order (None where not needed); Tensors for inputs."""
        if self.saved is None:
            raise GraphError(_freed_message(self))
        return tuple(
            _tensor_module.Tensor._wrap(s) if s.__class__ is _RAW else s for s in self.saved
        )

    def register_prehook(self, hook: Callable) -> RemovableHandle:
        """``hook(grad_output)`` before the VJP runs; a returned tensor replaces the gradient."""
        if self.prehooks is None:
            self.prehooks = []
        self.prehooks.append(hook)
        return RemovableHandle(self.prehooks, hook)

    def register_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(grad_inputs, grad_output)`` right after the VJP ran (in the engine's order)."""
        if self.posthooks is None:
            self.posthooks = []
        self.posthooks.append(hook)
        return RemovableHandle(self.posthooks, hook)

    def release(self) -> None:
        """Free what the VJP needed (after a backward without ``retain_graph``)."""
        self.saved = None

    def __repr__(self) -> str:
        return f"<{self.name}>"


class RemovableHandle:
    """Returned by the ``register_*hook`` methods; ``remove()`` unregisters the hook."""

    __slots__ = ("_hooks", "_hook")

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


# ---- recording ----------------------------------------------------------------------------
def record(cls: Any, out: torch.Tensor, inputs: Sequence[Any], fields: dict | None = None) -> Any:
    """Wrap ``out`` in a Tensor; when recording and an input requires grad, attach a ``cls`` node.

    ``inputs`` are Tensors or raw torch tensors (constants such as index tensors: saved and
    version-checked when the op reads them, never differentiated).
    """
    T = _tensor_module.Tensor
    t = _new(T)
    t.data = out
    t._grad = None
    t.grad_fn = None
    t._requires_grad = False
    t._hooks = None
    st = state  # one global lookup for the thread-local state
    if st.watched and st.trace is not None:
        st.trace.append((cls, t, inputs, fields))
    if not st.grad_enabled or not _torch_grad_enabled():  # torch.no_grad() stops it too
        return t
    edges: Any  # a list while collected, then the node's tuple
    # A leaf input's (shape, dtype), None for the others; None as a whole until a leaf is seen
    # (a node input's meta is its node's output meta, read when needed: see ``in_meta``).
    meta: Any = None
    wanted = 0  # how many inputs want a gradient
    if len(inputs) == 1:  # a unary op (the most common): no lists
        x = inputs[0]
        if x.__class__ is not T and not isinstance(x, T):
            return t  # a raw constant
        fn = x.grad_fn
        if fn is not None:
            edges = (fn,)
        elif x._requires_grad:
            edges = (x,)
            d = x.data
            meta = ((d.shape, d.dtype),)
        else:
            return t
        wanted = 1
    else:
        edges = []
        for x in inputs:
            if x.__class__ is T or isinstance(x, T):  # else: a raw constant (an index, a mask)
                fn = x.grad_fn
                if fn is not None:
                    edges.append(fn)
                    if meta is not None:
                        meta.append(None)
                    wanted += 1
                    continue
                if x._requires_grad:
                    if meta is None:  # the first leaf: the inputs so far are nodes or constants
                        meta = [None] * len(edges)
                    d = x.data
                    meta.append((d.shape, d.dtype))
                    edges.append(x)
                    wanted += 1
                    continue
            edges.append(None)
            if meta is not None:
                meta.append(None)
    if not wanted:
        return t
    node = _new(cls)
    node.inputs = edges = tuple(edges)  # (a tuple already for a unary op: the same one)
    node.known_meta = meta if meta is None else tuple(meta)
    if fields:
        for k, v in fields.items():
            setattr(node, k, v)
    node.out_shape = out.shape
    node.out_dtype = out.dtype
    node.scope = st.scope
    node.prehooks = node.posthooks = None
    node.seq = _next_seq()
    # torch bumps a tensor's version on every in-place kernel: remembering it here lets backward
    # refuse a saved tensor that was changed in the meantime.
    plan = cls.save_plan
    if not plan:
        node.saved = node.versions = ()
    elif len(plan) == 1 and cls.reads is None:  # one slot (the output, most often): no lists
        s = out if plan[0] < 0 else inputs[plan[0]]
        node.saved = (s,)
        node.versions = (
            -1 if s is None else s._version if s.__class__ is _RAW else s.data._version,
        )
    else:
        # Every slot is read unless ``reads`` says that the gradients wanted need fewer.
        needed = (
            None
            if cls.reads is None or (wanted == len(edges) and cls.all_read)
            else cls.reads_for(edges)
        )
        saved: list = []
        versions: list = []
        k = 0
        for i in plan:
            s = out if i < 0 else inputs[i]
            if needed is not None and not needed[k]:
                s = None
            k += 1
            saved.append(s)
            # None: not read for the gradients wanted, or an optional input left out
            versions.append(
                -1 if s is None else s._version if s.__class__ is _RAW else s.data._version
            )
        node.saved = tuple(saved)
        node.versions = tuple(versions)
    t.grad_fn = node
    t._requires_grad = True
    if st.watched and st.anomaly:
        _anomaly.on_record(node, out)
    return t


class NoGrad(Node):
    """Marks a result computed from tensors without a gradient (comparison, sign, argmax, ...)."""

    __slots__ = ()


def derived(out: torch.Tensor) -> Any:
    """Wrap a non-differentiable result: no node is recorded, but a replay trace sees it, so it
    is never mistaken for a constant."""
    return record(NoGrad, out, ())


# ---- saved tensors ----------------------------------------------------------------------------
def _version(s: Any) -> int:
    # ``raw.data`` would be a fresh alias with a counter of its own: read raw tensors directly.
    return s._version if s.__class__ is _RAW else s.data._version


def _freed_message(node: Node) -> str:
    return (
        f"Trying to backward through the graph a second time: the tensors saved by "
        f"{node.name} were freed by the first backward(). Pass retain_graph=True to the first "
        "backward() (or autodiff.grad) if you need to backward through it again."
    )


def _modified_error(node: Node, k: int) -> GraphError:
    assert node.saved is not None  # called by unpack, while the saved tensors are held
    s = node.saved[k]
    now, v = _version(s), node.versions[k]
    T = _tensor_module.Tensor
    if k == node.out_index:
        what = f"its own output (the output of {node.name})"
    elif isinstance(s, T):
        what = (
            f"an input, the output of {s.grad_fn.name},"
            if s.grad_fn is not None
            else "an input leaf tensor"
            if s._requires_grad
            else "an input that does not require grad"
        )
    else:
        what = "a tensor it saved (an index, a mask or another constant input)"
    return GraphError(
        f"one of the tensors needed by {node.name}'s backward has been modified by an in-place "
        f"operation: {what} of shape {tuple(s.shape)} and dtype {s.dtype} is at version {now}, "
        f"expected version {v}. Avoid changing it in place before backward(), or clone() it first."
    )


def unpack(node: Node, create_graph: bool) -> list:
    """The VJP's arguments: saved tensors, version-checked; recorded Tensors under create_graph."""
    saved = node.saved
    if saved is None:
        raise GraphError(_freed_message(node))
    args: list = []
    for k, s in enumerate(saved):
        if s is None:
            args.append(None)
            continue
        raw = s if s.__class__ is _RAW else s.data
        if raw._version != node.versions[k]:
            raise _modified_error(node, k)
        if not create_graph:
            args.append(raw)
        elif k == node.out_index:
            args.append(_tensor_module.Tensor._make(raw, node))
        else:
            args.append(s)  # an input Tensor (recorded), or a raw constant
    return args


# ---- the contract every VJP's result is held to --------------------------------------------
def _shape_str(shape: Any) -> str:
    shape = tuple(shape)
    return "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def sum_to(g: Any, shape: torch.Size) -> Any:
    """Undo broadcasting: sum ``g`` down to ``shape`` (works on torch and autodiff tensors)."""
    lead = g.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1
    )
    if dims:
        g = g.sum(dims, keepdim=True)
    return g.reshape(shape) if lead else g


def fit_grad(
    node: Any,
    i: int,
    gi: Any,
    shape: torch.Size,
    dtype: torch.dtype,
    create_graph: bool,
    what: str = "backward",
) -> Any:
    """Check gradient ``gi`` for input ``i`` of ``node``; sum a broadcast one back to ``shape``."""
    cls = _tensor_module.Tensor if create_graph else _RAW
    if not isinstance(gi, cls):
        raise TypeError(
            f"{node.name}.{what} returned a {type(gi).__name__} as the gradient of "
            f"input {i} (shape {_shape_str(shape)}); expected a tensor or None"
        )
    if gi.shape != shape:
        try:
            ok = torch.broadcast_shapes(gi.shape, shape) == gi.shape
        except RuntimeError:
            ok = False
        if not ok:
            raise ShapeError(
                f"{node.name}.{what} returned a gradient of shape {_shape_str(gi.shape)} for "
                f"input {i}, which has shape {_shape_str(shape)}: expected {_shape_str(shape)} "
                "or a shape that broadcasts from it"
            )
        gi = sum_to(gi, shape)
    if gi.dtype is not dtype:
        raise DTypeError(
            f"{node.name}.{what} returned a gradient of dtype {gi.dtype} for input "
            f"{i}, which has dtype {dtype}; the gradient must have the input's dtype"
        )
    return gi


def _check_device(node: Any, i: int, gi: Any, like: Any, what: str) -> None:
    if gi.device != like.device:
        raise DeviceError(
            f"{node.name}.{what} returned a gradient on {gi.device} for input {i}, "
            f"which is on {like.device}"
        )


# ---- schedule --------------------------------------------------------------------------------
def schedule(roots: Sequence[Node], targets: dict | None = None) -> tuple[list, dict, set]:
    """The nodes reachable from ``roots``, each before every node it sends a gradient to.

    Returns ``(order, pending, stop)``: ``pending`` counts, per leaf, the edges that reach it (its
    gradient is complete when they have all been applied). With ``targets`` (``grad()``'s inputs:
    nodes and leaves) only nodes on a path to a target are kept, and ``stop`` holds the target
    nodes with nothing needed beyond them: their gradient is captured, their VJP is not run.
    """
    T = _tensor_module.Tensor
    # One pass finds the nodes (and counts the leaf edges); the order is then the reverse of
    # the record order (``seq``): a node's inputs were all recorded before it.
    found: set = set(roots)
    order: list = list(found)  # in the order found: mostly by decreasing seq already
    stack: list = order[:]
    pending: dict = {}
    count = targets is None  # then every leaf edge counts, here in the same pass
    while stack:
        for p in stack.pop().inputs:
            if p is None or p in found:
                continue
            if isinstance(p, T):
                if count:
                    pending[p] = pending.get(p, 0) + 1
            else:
                found.add(p)
                stack.append(p)
                order.append(p)
    # every node before the nodes it sends a gradient to (a chain sorts in one linear pass)
    order.sort(key=_by_seq, reverse=True)
    stop: set = set()
    if targets is None:
        return order, pending, stop
    needed: dict = {}
    for n in reversed(order):  # every node after all of its inputs
        beyond = any(
            p in targets if isinstance(p, T) else needed[p] for p in n.inputs if p is not None
        )
        needed[n] = beyond or n in targets
        if not beyond:
            stop.add(n)
    order = [n for n in order if needed[n]]
    for n in order:
        if n in stop:
            continue
        for p in n.inputs:
            if isinstance(p, T) and p in targets:
                pending[p] = pending.get(p, 0) + 1
    return order, pending, stop


# ---- applying one node -------------------------------------------------------------------------
def run_hooks(hooks: list, g: Any, create_graph: bool, owner: str, foreign: set) -> Any:
    """Tensor hooks on a gradient; a returned tensor (same shape, dtype, device) replaces it."""
    T = _tensor_module.Tensor
    for hook in list(hooks):
        r = hook(g if create_graph else T._wrap(g))
        if r is None:
            continue
        if not isinstance(r, (T, _RAW)):
            raise TypeError(
                f"gradient hook {_hook_name(hook)} on {owner} returned a "
                f"{type(r).__name__}; it must return a Tensor or None"
            )
        rd = r.data if isinstance(r, T) else r
        gd = g.data if isinstance(g, T) else g
        if rd.shape != gd.shape or rd.dtype != gd.dtype or rd.device != gd.device:
            raise GraphError(
                f"gradient hook {_hook_name(hook)} on {owner} returned a tensor of shape "
                f"{_shape_str(rd.shape)}, dtype {rd.dtype} on {rd.device} for a gradient of shape "
                f"{_shape_str(gd.shape)}, dtype {gd.dtype} on {gd.device}; a hook may only replace "
                "the gradient with one of the same shape, dtype and device"
            )
        if create_graph:
            g = r if isinstance(r, T) else T._make(r)
        else:
            g = rd
            foreign.add(id(g))  # the user holds it: never store it as a .grad without a copy
    return g


def _hook_name(hook: Any) -> str:
    return repr(getattr(hook, "__qualname__", None) or type(hook).__name__)


def apply(n: Node, g: Any, create_graph: bool, retain_graph: bool) -> tuple:
    """Run node ``n``'s VJP on its output gradient ``g``; return one checked gradient per input."""
    saved = n.saved
    grads = _call_vjp(n, g, create_graph)
    edges = n.inputs
    known = n.known_meta
    k = 0
    for gi in grads:
        if gi is not None:
            p = edges[k]
            if p is None or gi.__class__ is not _RAW:
                break
            m = None if known is None else known[k]
            if m is None:  # p is a node: its output's shape and dtype
                if gi.shape != p.out_shape or gi.dtype is not p.out_dtype:
                    break
            elif gi.shape != m[0] or gi.dtype is not m[1]:
                break
        k += 1
    else:  # every gradient already fits (the common case): no new tuple
        if not retain_graph and saved:
            n.release()
        return grads
    grads = fit_grads(n, grads, create_graph)
    if not retain_graph and n.saved:
        n.release()
    return grads


def _call_vjp(n: Node, g: Any, create_graph: bool = False) -> tuple:
    """``n``'s VJP on ``g`` with its saved tensors, each version-checked; one gradient per
    input, not yet checked against the inputs."""
    saved = n.saved
    if create_graph or saved is None:  # (freed by an earlier backward: ``unpack`` raises)
        grads = n.vjp(g, *unpack(n, create_graph))
    elif saved:  # first order: ``unpack`` inlined (it runs once per node of every backward)
        args = []
        versions = n.versions
        k = 0
        for s in saved:
            if s is not None:
                if s.__class__ is not _RAW:
                    s = s.data
                if s._version != versions[k]:
                    unpack(n, False)  # raises, naming the modified tensor
            args.append(s)
            k += 1
        grads = n.vjp(g, *args)
    else:
        grads = n.vjp(g)
    if grads.__class__ is not tuple:
        grads = (grads,)
    if len(grads) != len(n.inputs):
        raise GraphError(f"{n.name}.vjp returned {len(grads)} gradients for {len(n.inputs)} inputs")
    return grads


def _apply_and_route(n: Node, g: Any, grads: dict, retain_graph: bool) -> None:
    """``apply`` for a first-order node whose inputs are all nodes or constants, its gradients
    checked and added into ``grads`` in one pass (routing only adds, so a gradient that fails
    its check leaves nothing behind)."""
    edges = n.inputs
    k = 0
    for gi in _call_vjp(n, g):
        if gi is not None:
            p = edges[k]
            if p is not None:
                if (
                    gi.__class__ is not _RAW
                    or gi.shape != p.out_shape
                    or gi.dtype is not p.out_dtype
                ):
                    gi = fit_grad(n, k, gi, p.out_shape, p.out_dtype, False)
                prev = grads.get(p)  # gradients held are never None
                grads[p] = gi if prev is None else prev + gi
        k += 1
    if not retain_graph and n.saved:
        n.release()


def fit_grads(n: Node, grads: tuple, create_graph: bool) -> tuple:
    """``grads`` (one per input) checked, broadcast ones summed back to their input's shape, and
    None where an input wants no gradient (``fit_grad`` raises for a gradient that cannot fit)."""
    out: list = []
    for i, (gi, p, meta) in enumerate(zip(grads, n.inputs, n.in_meta)):
        if p is None or gi is None:
            out.append(None)
            continue
        shape, dtype = meta
        if gi.__class__ is not _RAW or gi.shape != shape or gi.dtype is not dtype:
            gi = fit_grad(n, i, gi, shape, dtype, create_graph)
        out.append(gi)
    return tuple(out)


# ---- the walk ------------------------------------------------------------------------------------
@overload
def run_backward(
    roots: Sequence[Any],
    root_grads: Sequence[Any],
    retain_graph: bool,
    create_graph: bool,
    inputs: None = None,
    allow_unused: bool = True,
) -> None: ...
@overload
def run_backward(
    roots: Sequence[Any],
    root_grads: Sequence[Any],
    retain_graph: bool,
    create_graph: bool,
    inputs: Sequence[Any],
    allow_unused: bool = True,
) -> tuple: ...
def run_backward(
    roots: Sequence[Any],
    root_grads: Sequence[Any],
    retain_graph: bool,
    create_graph: bool,
    inputs: Sequence[Any] | None = None,
    allow_unused: bool = True,
) -> tuple | None:
    """Back-propagate ``root_grads`` from ``roots``.

    Without ``inputs``, gradients accumulate into the ``.grad`` of the leaves reached (the
    ``Tensor.backward`` behaviour), each leaf as soon as its gradient is complete. With ``inputs``
    nothing is accumulated and the gradients w.r.t. those tensors are returned (``autodiff.grad``).
    """
    T = _tensor_module.Tensor
    grads: dict = {}  # node or leaf -> gradient flowing into it (sum of contributions so far)
    foreign = set(map(id, root_grads))  # tensors the user holds: copied before becoming .grad
    root_nodes = []
    for r, g in zip(roots, root_grads):
        key = r.grad_fn if r.grad_fn is not None else r
        grads[key] = grads[key] + g if key in grads else g
        if r.grad_fn is not None:
            root_nodes.append(r.grad_fn)
    capture: dict | None = None
    if inputs is not None:
        capture = {}
        for i, x in enumerate(inputs):
            capture.setdefault(x.grad_fn if x.grad_fn is not None else x, []).append(i)
    order, pending, stop = schedule(root_nodes, capture)
    results: list = [None] * (len(inputs) if inputs is not None else 0)
    # made when first needed (plain backward(): a leaf with hooks, or a leaf root)
    sink = None if capture is None else _Sink(capture, results, create_graph, foreign)
    for r in roots:  # a leaf root: no edge reaches it, its gradient is complete now
        if r.grad_fn is None and r not in pending and r in grads:
            if sink is None:
                sink = _Sink(capture, results, create_graph, foreign)
            sink.leaf(r, grads.pop(r))

    plain = capture is None  # complete leaf gradients go into .grad
    prev_mode = state.grad_enabled
    anomaly = state.anomaly
    # First order, with nothing to call around a VJP (no capture, no anomaly mode, no hooks on
    # the node): a node whose inputs are all nodes routes its gradients as it checks them.
    quick = plain and not create_graph and not anomaly
    state.grad_enabled = create_graph  # the backward pass is recorded only under create_graph
    try:
        for n in order:
            g = grads.pop(n, None)
            if quick and g is not None and not (n.prehooks or n.posthooks or n.returns_foreign):
                if n.known_meta is None:  # inputs all nodes or constants: route as checked
                    _apply_and_route(n, g, grads, retain_graph)
                    continue
                in_grads = apply(n, g, False, retain_graph)
            else:
                if g is not None and n.prehooks:
                    g = run_hooks(n.prehooks, g, create_graph, f"the output of {n.name}", foreign)
                if capture is not None and n in capture:
                    sink.capture(n, g)  # type: ignore[union-attr]  # made up front for grad()
                if g is None or (stop and n in stop):
                    in_grads = (None,) * len(n.inputs)
                else:
                    in_grads = apply(n, g, create_graph, retain_graph)
                    if n.returns_foreign:
                        foreign.update(id(gi) for gi in in_grads if gi is not None)
                    if anomaly:
                        _anomaly.on_backward(n, in_grads)
                    if n.posthooks:
                        for hook in list(n.posthooks):
                            hook(in_grads, g)
            for p, gi in zip(n.inputs, in_grads):
                if p is None:
                    continue
                if not isinstance(p, T):
                    if gi is not None:
                        prev = grads.get(p)  # gradients held are never None
                        grads[p] = gi if prev is None else prev + gi
                    continue
                left = pending.pop(p, 0)  # 0: a leaf grad() does not ask for
                if left == 1:  # its last contribution: the leaf's gradient is complete
                    g_leaf = grads.pop(p, None)
                    if gi is not None:
                        g_leaf = gi if g_leaf is None else g_leaf + gi
                    if g_leaf is not None:
                        if plain and p._hooks is None:  # the sink's work, without its calls
                            accumulate(p, g_leaf, create_graph, foreign)
                        else:
                            if sink is None:
                                sink = _Sink(capture, results, create_graph, foreign)
                            sink.leaf(p, g_leaf)
                elif left:
                    pending[p] = left - 1
                    if gi is not None:
                        grads[p] = grads[p] + gi if p in grads else gi
    finally:
        state.grad_enabled = prev_mode
    if inputs is None:
        return None
    assert sink is not None  # made up front for grad()
    return sink.results(inputs, allow_unused)


class _Sink:
    """Where complete leaf gradients go: into ``.grad``, or captured for ``grad()``."""

    __slots__ = ("capture_map", "out", "create_graph", "foreign")

    def __init__(self, capture: dict | None, out: list, create_graph: bool, foreign: set) -> None:
        self.capture_map = capture
        self.out = out
        self.create_graph = create_graph
        self.foreign = foreign

    def capture(self, key: Any, g: Any) -> None:
        for i in self.capture_map[key]:  # type: ignore[index]
            self.out[i] = g

    def leaf(self, leaf: Any, g: Any) -> None:
        hooks = leaf._hooks
        if hooks is not None and hooks.pre:
            g = run_hooks(hooks.pre, g, self.create_graph, "a leaf tensor", self.foreign)
        if self.capture_map is not None:
            if leaf in self.capture_map:
                self.capture(leaf, g)
            return
        accumulate(leaf, g, self.create_graph, self.foreign)
        if hooks is not None and hooks.post:
            for hook in list(hooks.post):
                hook(leaf)

    def results(self, inputs: Sequence[Any], allow_unused: bool) -> tuple:
        T = _tensor_module.Tensor
        out: list = []
        for x, g in zip(inputs, self.out):
            if g is None:
                if not allow_unused:
                    raise GraphError(
                        f"autodiff.grad: one of the inputs (shape {_shape_str(x.shape)}) was not "
                        "used to compute the outputs; pass allow_unused=True to get None for it."
                    )
                out.append(None)
            elif self.create_graph:
                out.append(g)
            else:
                out.append(T._make(_owned(g, self.foreign)))
        return tuple(out)


def _owned(g: torch.Tensor, foreign: set) -> torch.Tensor:
    """``g``, or a copy of it when someone else may hold or view it (a user's tensor, a view)."""
    if g._base is not None or id(g) in foreign or not g.is_contiguous():
        g = g.clone(memory_format=torch.contiguous_format)
    foreign.add(id(g))  # handed out once: a second leaf gets a copy
    return g


def accumulate(leaf: Any, g: Any, create_graph: bool, foreign: set | None = None) -> None:
    """Add gradient ``g`` into ``leaf.grad`` (thread-safe; never aliasing the caller's tensor)."""
    _lock()
    try:
        # ``_grad``: the engine's own gradients need none of the ``grad`` setter's checks
        if create_graph:
            leaf._grad = g if leaf._grad is None else leaf._grad + g
        elif leaf._grad is None:
            leaf._grad = _tensor_module.Tensor._make(
                _owned(g, foreign if foreign is not None else set())
            )
        else:
            # Out of place: a user may hold the old grad.
            leaf._grad = _tensor_module.Tensor._make(leaf._grad.data + g)
    finally:
        _unlock()


# ---- roots ---------------------------------------------------------------------------------------
def root_grad(t: Any, grad: Any, create_graph: bool) -> Any:
    """The gradient a backward starts from: ``grad`` checked, or a fresh 1 for one element."""
    T = _tensor_module.Tensor
    if grad is None:
        if t.data.numel() != 1:
            raise GraphError(
                f"backward() on a tensor of shape {_shape_str(t.shape)} needs a gradient: it can "
                "be created implicitly only for scalar (one-element) outputs. Pass grad=... with "
                f"the same shape as the tensor (e.g. autodiff.ones({_shape_str(t.shape)})), or "
                "reduce it first (e.g. y.sum().backward())."
            )
        raw = torch.ones_like(t.data)  # fresh each time: hooks may change it in place
    else:
        raw = grad.data if isinstance(grad, T) else grad
        if not isinstance(raw, torch.Tensor):
            raw = torch.as_tensor(raw, dtype=t.dtype, device=t.device)
        if raw.shape != t.data.shape:
            raise ShapeError(
                f"backward(): grad has shape {_shape_str(raw.shape)} but the tensor has shape "
                f"{_shape_str(t.shape)}; they must match."
            )
        if raw.dtype != t.data.dtype:
            raise DTypeError(
                f"backward(): grad has dtype {raw.dtype} but the tensor has dtype "
                f"{t.dtype}; they must match."
            )
        if raw.device != t.data.device:
            raise DeviceError(
                f"backward(): grad is on {raw.device} but the tensor is on "
                f"{t.device}; they must match."
            )
    if create_graph:
        return grad if isinstance(grad, T) else T._make(raw)
    return raw


def check_differentiable(t: Any, what: str) -> None:
    if t.grad_fn is None and not t._requires_grad:
        raise GraphError(
            f"{what}: element 0 of tensors does not require grad and has no grad_fn: this tensor "
            "was not produced by recorded operations on tensors with requires_grad=True (was it "
            "created under no_grad(), detached, or from inputs that do not require grad?). "
            "Create the inputs with requires_grad=True."
        )
