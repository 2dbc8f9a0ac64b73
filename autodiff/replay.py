"""Record a training step's tape once, then replay it as a flat list of kernels.

    step = autodiff.replay(lambda x, y: loss_fn(model(x), y))
    for x, y in batches:
        loss = step(x, y)        # = loss_fn(model(x), y) and loss.backward(), without the tape
        optimizer.step(); optimizer.zero_grad()

The first call with a given input signature (shapes, dtypes, devices) runs the step eagerly,
recording every op, and turns the recorded graph into a plan: the forward as a list of raw kernel
calls over numbered slots, the backward as the recorded nodes' VJPs in topological order. Later
calls run the plan on the new inputs and the parameters' current values, building no Tensor or
Node objects and walking no graph, then accumulate gradients into the parameters' ``.grad``
exactly like ``backward()``.

What is replayed is what was recorded: Python control flow and Python numbers are fixed at the
first call (as in any tracer). Tensors the step reads but did not compute are replayed as
constants, except the step's inputs and the leaves that require grad (read afresh each call).
Steps that use ops without a raw kernel (``where`` on data, indexing by a data tensor,
comparisons feeding the loss, custom Functions, ...) are refused with an error naming the op.

``replay(fn, optimizer=opt)`` also runs ``opt.step()`` and ``opt.zero_grad()`` in each call;
``compile=True`` compiles the replayed step, the optimizer's update included, with
``torch.compile`` (``autodiff.replay_compile``).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch

from . import engine
from .errors import GraphError
from .grad_mode import state
from .tensor import Tensor


class _Plan:
    """A recorded step compiled to straight-line Python: one statement per kernel or VJP.

    Generated code (locals, no dicts, no per-op objects) is the cheapest way for Python to issue
    a fixed sequence of torch calls: what is left per op is the call itself.
    """

    __slots__ = (
        "inputs",
        "params",
        "consts",
        "forward",
        "backward",
        "root",
        "_fn",
        "compiled",
        "direct",
    )
    inputs: list  # slot of each step input
    params: list  # (slot, leaf) of each leaf that requires grad
    consts: list  # (slot, raw tensor) read as constants
    forward: list  # (out slot, kernel, argument slots)
    backward: list  # (gradient slot, VJP, saved slots, parent slots)
    root: int
    _fn: Any
    compiled: Any  # None (not yet), False (plain replay), or a replay_compile.CompiledStep
    direct: list | None  # per VJP (see ``source``); None until the first run has checked them

    def compile(self) -> None:
        """Generate the step with the checking VJP calls (``_Contract``); ``run`` swaps in the
        plain ones once the first run has shown which need no fitting."""
        self.compiled = None  # a replay_compile.CompiledStep, made on the first compiled call
        self._make_fn(None)

    def _make_fn(self, direct: list | None) -> None:
        namespace: dict = {}
        exec(compile(self.source(direct=direct), "<autodiff.replay>", "exec"), namespace)
        kernels = tuple(fn for _, fn, _ in self.forward)
        vjps = tuple(
            call.node.vjp if direct is not None and direct[k] is not None else call
            for k, (_, call, _, _) in enumerate(self.backward)
        )
        params = [p for _, p in self.params]
        consts = [c for _, c in self.consts]
        step = namespace["_step"]
        self._fn = lambda inputs: step(inputs, params, consts, kernels, vjps, torch.ones_like, _acc)
        self.direct = direct

    def source(self, raw_params: bool = False, direct: list | None = None) -> str:
        """``def _step(inputs, params, consts, K, V, _ones, _acc) -> (loss, grads)``; ``params``
        are the leaves (Tensors), or with ``raw_params`` their raw ``.data``. ``V[k]`` is the
        checking ``_Contract`` call (a tuple, fitted to the inputs' shapes), or where
        ``direct[k]`` is not None the node's own VJP, known to return gradients of the right
        shapes (True: a tuple; False: a single gradient)."""
        # Each block: (source lines, slots it reads). A value slot is deleted right after the
        # last block that reads it, so activations are freed as early as in the eager engine.
        blocks: list = []
        for i, slot in enumerate(self.inputs):
            blocks.append(([f"s{slot} = inputs[{i}]"], ()))
        for i, (slot, _) in enumerate(self.params):
            read = f"params[{i}]" if raw_params else f"params[{i}].data"
            blocks.append(([f"s{slot} = {read}"], ()))
        for i, (slot, _) in enumerate(self.consts):
            blocks.append(([f"s{slot} = consts[{i}]"], ()))
        for k, (out, _, args) in enumerate(self.forward):
            blocks.append(([f"s{out} = K[{k}]({', '.join(f's{a}' for a in args)})"], args))
        grads = sorted(
            {g for g, _, _, _ in self.backward}
            | {p for _, _, _, ps in self.backward for p in ps if p is not None}
        )
        if grads:
            blocks.append(([" = ".join(f"g{g}" for g in grads) + " = None"], ()))
        blocks.append(([f"g{self.root} = _ones(s{self.root})"], ()))
        assigned: set = set()  # gradient slots written so far: the first write needs no _acc
        for k, (gslot, _, saved, parents) in enumerate(self.backward):
            call = ", ".join([f"g{gslot}"] + [f"s{a}" for a in saved])
            code = [f"if g{gslot} is not None:", f"    r = V[{k}]({call})", f"    g{gslot} = None"]
            single = direct is not None and direct[k] is False
            for i, p in enumerate(parents):
                if p is None:
                    continue
                r = "r" if single else f"r[{i}]"
                code.append(f"    g{p} = _acc(g{p}, {r})" if p in assigned else f"    g{p} = {r}")
                assigned.add(p)
            blocks.append((code, saved))
        last: dict = {}
        for i, (_, reads) in enumerate(blocks):
            for slot in reads:
                last[slot] = i
        lines = ["def _step(inputs, params, consts, K, V, _ones, _acc):"]
        for i, (code, reads) in enumerate(blocks):
            lines += ["    " + c for c in code]
            done = sorted({s for s in reads if last[s] == i and s != self.root})
            if done:
                lines.append("    del " + ", ".join(f"s{s}" for s in done))
        lines.append(f"    return s{self.root}, ({', '.join(f'g{s}' for s, _ in self.params)},)")
        return "\n".join(lines)

    def run(self, raw_inputs: list) -> torch.Tensor:
        root, grads = self._fn(raw_inputs)
        if self.direct is None:  # the first run checked every VJP's gradients: specialize
            self._make_fn(
                [
                    c.direct if c.direct is not False or len(ps) == 1 else None
                    for _, c, _, ps in self.backward
                ]
            )
        foreign: set = set()  # grads handed to a leaf already: a second leaf gets a copy
        for (_, p), g in zip(self.params, grads):
            if g is not None:
                engine.accumulate(p, g, False, foreign)
        return root


def _accumulate(pairs: list) -> None:
    """Add each ``(leaf, grad)``'s gradient into ``leaf.grad``, as ``backward()`` does."""
    foreign: set = set()  # grads handed to a leaf already: a second leaf gets a copy
    for p, g in pairs:
        engine.accumulate(p, g, False, foreign)


def _acc(a: Any, b: Any) -> Any:
    if a is None:
        return b
    return a if b is None else a + b


def _signature(raw_inputs: list) -> tuple:
    return tuple(
        [
            (x.shape, x.dtype, x.device) if isinstance(x, torch.Tensor) else (type(x), x)
            for x in raw_inputs
        ]
    )


class Replay:
    """A step function recorded once per input signature and replayed afterwards; with an
    ``optimizer``, each call also applies its update and zeroes the gradients; with
    ``compile``, the whole step is compiled (see ``autodiff.replay_compile``)."""

    def __init__(
        self, fn: Callable[..., Tensor], optimizer: Any = None, compile: bool = False
    ) -> None:
        if optimizer is not None and not (
            callable(getattr(optimizer, "step", None))
            and callable(getattr(optimizer, "zero_grad", None))
        ):
            raise TypeError(
                f"replay: optimizer must have step() and zero_grad(), got "
                f"{type(optimizer).__name__}"
            )
        self.fn = fn
        self.optimizer = optimizer
        self.compile = bool(compile)
        self._plans: dict = {}

    def __call__(self, *inputs: Any) -> Tensor:
        raw_inputs = [x.data if isinstance(x, Tensor) else x for x in inputs]
        key = _signature(raw_inputs)
        plan = self._plans.get(key)
        opt = self.optimizer
        if plan is None:
            loss, plan = self._trace(inputs, raw_inputs)
            self._plans[key] = plan
        else:
            if self.compile and plan.compiled is not False:
                done = self._compiled(plan, raw_inputs)
                if done is not None:
                    if plan.compiled.updates or opt is None:
                        return Tensor._make(done)
                    opt.step()  # compiled forward and backward, the optimizer's own update
                    opt.zero_grad()
                    return Tensor._make(done)
            loss = Tensor._make(plan.run(raw_inputs))
        if opt is not None:
            opt.step()
            opt.zero_grad()
        return loss

    def _compiled(self, plan: _Plan, raw_inputs: list) -> torch.Tensor | None:
        """The loss after a compiled step, or None when this step runs the plain replay."""
        step = plan.compiled
        if step is None:
            from .replay_compile import CompiledStep

            opt = self.optimizer
            make_rule = getattr(opt, "update_rule", None)
            rule = make_rule([p for _, p in plan.params]) if make_rule is not None else None
            step = plan.compiled = CompiledStep(plan, rule)
        out = step(raw_inputs)
        if out is None:
            if step.failed is not None:
                plan.compiled = False
            return None
        loss, pairs = out
        if pairs:
            _accumulate(pairs)
        return loss

    def _trace(self, inputs: tuple, raw_inputs: list) -> tuple[Tensor, _Plan]:
        log: list = []
        prev = state.trace
        state.trace = log
        try:
            loss = self.fn(*inputs)
        finally:
            state.trace = prev
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise TypeError("replay: the step function must return a one-element Tensor (the loss)")
        engine.check_differentiable(loss, "replay")
        plan = _build(log, loss, raw_inputs)
        loss.backward()  # the first call's gradients come from the ordinary engine
        return loss.detach(), plan


def replay(fn: Callable[..., Tensor], optimizer: Any = None, compile: bool = False) -> Replay:
    """Wrap a step ``fn(*inputs) -> loss`` so that each call computes the loss and accumulates
    the gradients (like ``loss.backward()``) by replaying the tape recorded on the first call.

    ``optimizer``: each call then also runs ``optimizer.step()`` and ``optimizer.zero_grad()``.
    ``compile=True``: from the second call on, the step (and the optimizer's update, when it
    provides ``update_rule``) runs as code compiled by ``torch.compile``; a step that cannot be
    compiled warns once and runs the plain replay."""
    return Replay(fn, optimizer, compile)


def _build(log: list, loss: Tensor, raw_inputs: list) -> _Plan:
    slot_of: dict = {}  # id(raw tensor) -> slot
    keep: list = []  # raw tensors whose ids are keys above (so ids stay unique while building)
    plan = _Plan()
    plan.inputs, plan.params, plan.consts, plan.forward, plan.backward = [], [], [], [], []

    def new_slot(raw: Any) -> int:
        slot_of[id(raw)] = len(keep)
        keep.append(raw)
        return len(keep) - 1

    for x in raw_inputs:
        if isinstance(x, torch.Tensor):
            plan.inputs.append(new_slot(x))
        else:
            plan.inputs.append(len(keep))
            keep.append(x)

    def slot_for(t: Any, op: str) -> int:
        raw = t.data if isinstance(t, Tensor) else t
        s = slot_of.get(id(raw))
        if s is not None:
            return s
        s = new_slot(raw)
        if isinstance(t, Tensor) and t.grad_fn is None and t.requires_grad:
            if t._hooks:
                raise GraphError(
                    "replay: a leaf read by the step has gradient hooks, which a "
                    "replay would skip; run this step eagerly instead"
                )
            plan.params.append((s, t))
        elif isinstance(t, Tensor) and t.grad_fn is not None:
            raise GraphError(
                f"replay: {op} reads a tensor computed before the step began; "
                "compute everything inside the step function"
            )
        elif isinstance(t, torch.Tensor):
            # A raw index, mask or condition that no recorded op computed: it may depend on the
            # data (``x > 0.5`` in plain torch), and freezing it would be silently wrong.
            raise GraphError(
                f"replay: {op} reads a plain torch tensor (an index, mask or "
                "condition) that the step computed outside tapegrad, so it cannot "
                "be replayed; run this step eagerly instead"
            )
        else:
            plan.consts.append((s, raw))
        return s

    node_slot: dict = {}
    for cls, out, ins, fields in log:
        fn = _kernel(cls, fields, out)
        if fn is None:
            what = cls.__name__
            if cls is engine.NoGrad:
                what = (
                    "NoGrad (a value computed from data without a gradient: a comparison, "
                    "sign, argmax or a random mask such as Dropout's)"
                )
            raise GraphError(
                f"replay: the step uses {what}, which cannot be replayed "
                "(its result depends on data in a way a kernel list cannot "
                "capture); run this step eagerly instead"
            )
        args = tuple(slot_for(t, cls.__name__) for t in ins)
        s = new_slot(out.data)
        plan.forward.append((s, fn, args))
        if out.grad_fn is not None:
            node_slot[out.grad_fn] = s

    root_node = loss.grad_fn
    assert root_node is not None  # the loss was computed inside the step (it has a slot)
    plan.root = slot_of[id(loss.data)]
    order, _, _ = engine.schedule([root_node])
    for n in order:
        if n not in node_slot:
            raise GraphError(f"replay: {n.name} was recorded outside the step function")
        if n.prehooks or n.posthooks:
            raise GraphError(
                f"replay: a tensor made by {n.name} has gradient hooks, which a "
                "replay would skip; run this step eagerly instead"
            )
        saved = [slot_for(x, n.name) for x in n.saved]
        parents = tuple(
            node_slot.get(p)
            if isinstance(p, engine.Node)
            else (slot_for(p, n.name) if p is not None else None)
            for p in n.inputs
        )
        plan.backward.append((node_slot[n], _Contract(n), tuple(saved), parents))
    plan.compile()
    return plan


def _kernel(cls: Any, fields: Any, out: Tensor) -> Any:
    """The raw function that recomputes a recorded op's output: the op's own ``forward``."""
    if cls.forward is None:
        return None
    return functools.partial(cls.forward, **fields) if fields else cls.forward


class _Contract:
    """``n``'s VJP as the plan calls it: a tuple, one gradient per input, each summed back to
    its input's shape (what ``engine.apply`` does in the eager walk). ``direct``, after a call:
    None when some gradient needed that fitting, else whether ``n.vjp`` returned a tuple (the
    plan may then call ``n.vjp`` itself: shapes are fixed by the plan's input signature)."""

    __slots__ = ("node", "shapes", "direct")

    def __init__(self, n: engine.Node) -> None:
        self.node = n
        self.shapes = tuple(m[0] if m is not None else None for m in n.in_meta)
        self.direct: bool | None = None

    def __call__(self, g: Any, *saved: Any) -> tuple:
        r = self.node.vjp(g, *saved)
        tup = r.__class__ is tuple
        if not tup:
            r = (r,)
        if all(gi is None or s is None or gi.shape == s for gi, s in zip(r, self.shapes)):
            self.direct = tup
            return r  # every gradient already has its input's shape (the common case)
        self.direct = None
        fit = engine.sum_to
        return tuple(
            [
                gi if gi is None or s is None or gi.shape == s else fit(gi, s)
                for gi, s in zip(r, self.shapes)
            ]
        )
