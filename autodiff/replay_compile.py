"""A replayed training step, the optimizer's update included, compiled by ``torch.compile``.

    step = autodiff.replay(lambda x, y: loss_fn(model(x), y), optimizer=opt, compile=True)
    loss = step(x, y)    # forward, backward, opt.step() and zeroed gradients, in one call

A replay plan is already straight-line code over raw torch tensors: the forward kernels, the
VJPs in topological order, no Tensor, Node or graph walk. With the optimizer's update appended
(a pure function of parameters, gradients, state and hyper-parameters) it is what a compiler
needs. Once per input signature (and optimizer structure) it is traced with fake tensors into
an ATen graph (``make_fx``) and compiled by Inductor, which fuses the elementwise work (an
activation's VJP, the momentum update into the weight gradient's ``addmm``) and writes the new
parameters and state back in place. On the CPU the graph goes to Inductor directly with its C++
wrapper (see ``CPU_BACKEND``; ``torch.compile`` is the fallback); on CUDA it goes through
``torch.compile(mode="reduce-overhead")``, which captures it as a CUDA graph.

The optimizer side is duck-typed; autodiff knows nothing of any optimizer class. An optimizer
that can be compiled has ``update_rule(params) -> rule`` (or None); the rule has:

- ``owned``: the indices, into ``params``, of the parameters the optimizer updates;
- ``prepare() -> (key, state, hyper)`` or None: called before each step, without side
  effects. ``key`` is hashable and fixes the update's structure (a change recompiles);
  ``state`` lists the raw state tensors the update rewrites (momentum buffers, moments) and
  ``hyper`` 0-d tensors of the hyper-parameters, refreshed in place when they change, so a
  learning-rate schedule does not recompile. None: this step cannot be compiled (state not
  created yet, say), and the plain replay with ``opt.step()`` runs instead;
- ``update(key, params, grads, state, hyper) -> (new_params, new_state)``: pure, raw torch
  tensors in and out, one entry per ``owned`` parameter (a None gradient: unchanged);
- ``finish()``: after a compiled update, the optimizer's Python bookkeeping (step counts).

An optimizer without ``update_rule`` (or whose rule is None) still gets a compiled forward and
backward; its own ``step()`` then runs on the accumulated gradients.

Without a C++ compiler (on the CPU), or when a step does not compile, a one-line warning is
given and the plain replay runs. Results equal the eager engine's up to floating-point
reassociation and fusion: a few units in the last place per step.
"""

from __future__ import annotations

import operator
import os
import shutil
import warnings
from typing import Any, Hashable, Protocol, Sequence

import torch

from .replay import _acc

# Inductor's CPU code called from a C++ wrapper: ~25% less time per step on the course network
# at batch 16 (one call into C++ instead of one Python call per kernel).
CPU_OPTIONS = {"cpp_wrapper": True}
CUDA_MODE = "reduce-overhead"
# On the CPU the traced graph goes straight to Inductor (its compile_fx, what torch.compile's
# "inductor" backend calls), skipping TorchDynamo's frame evaluation and guards: ~40% less time
# per step at batch 16. Our own checks stand in for the guards (a plan is per input signature;
# parameters, state and hyper-parameter tensors are checked by identity, then by dtype, device,
# shape and strides). "torch.compile" uses the public entry point instead; it is also the
# fallback when Inductor's entry point cannot be imported or fails.
CPU_BACKEND = os.environ.get("TAPEGRAD_COMPILE_BACKEND", "inductor")


class UpdateRule(Protocol):
    """What ``optimizer.update_rule(params)`` returns (see the module docstring)."""

    owned: Sequence[int]

    def prepare(self) -> tuple[Hashable, list, list] | None: ...

    def update(
        self, key: Hashable, params: list, grads: list, state: list, hyper: list
    ) -> tuple[list, list]: ...

    def finish(self) -> None: ...


def compiler_missing(device: torch.device) -> str | None:
    """Why torch.compile cannot build code for ``device`` here (None: it can, as far as we know)."""
    if device.type != "cpu":
        return None
    try:
        from torch._inductor import config

        names = (
            [c for c in config.cpp.cxx if c]
            if isinstance(config.cpp.cxx, (list, tuple))
            else [config.cpp.cxx]
        )
    except Exception:  # a torch without Inductor's config: let the compile attempt tell
        return None
    names = names or [os.environ.get("CXX", "g++")]
    if any(shutil.which(n) for n in names):
        return None
    return f"no C++ compiler ({', '.join(names)}) for torch.compile's CPU code"


_WRAPPER = """
def compiled_step(inputs, consts, params, state, hyper):
    loss, grads = _step(inputs, params, consts, _K, _V, _ones, _acc)
    own = [params[i] for i in _owned]
    new_p, new_s = _update(_key, own, [grads[i] for i in _owned], state, hyper)
    for t, v in zip(own, new_p):
        if v is not t:
            t.copy_(v)
    for t, v in zip(state, new_s):
        if v is not t:
            t.copy_(v)
    return loss, [grads[i] for i in _others]
"""


class _NoUpdate:
    """The rule of a step compiled without an optimizer update: gradients go to ``.grad``."""

    owned: tuple = ()

    def prepare(self) -> tuple:
        return (), [], []

    def update(
        self, key: Hashable, params: list, grads: list, state: list, hyper: list
    ) -> tuple[list, list]:
        return [], []

    def finish(self) -> None:
        pass


class CompiledStep:
    """One plan's compiled steps, one per update key. ``updates``: whether the optimizer's
    update is part of them (else its ``step()`` runs on the accumulated gradients)."""

    def __init__(self, plan: Any, rule: UpdateRule | None) -> None:
        self.plan = plan
        self.updates = rule is not None
        self.rule = rule if rule is not None else _NoUpdate()
        self.params = [p for _, p in plan.params]
        self.owned = tuple(self.rule.owned)
        self.owned_params = [self.params[i] for i in self.owned]
        owned = set(self.owned)
        self.others = tuple(i for i in range(len(self.params)) if i not in owned)
        self.consts = [c for _, c in plan.consts]
        first = next(
            (
                t
                for t in [*(p.data for p in self.params), *self.consts]
                if isinstance(t, torch.Tensor)
            ),
            None,
        )
        self.device = first.device if first is not None else torch.device("cpu")
        self.cuda = self.device.type == "cuda"
        self.fns: dict = {}  # update key -> (function, leaves of its grads, where, guard)
        self.direct_failed: str | None = None  # why Inductor's entry point was not used
        self.failed: str | None = compiler_missing(self.device)
        if self.failed is not None:
            _warn(self.failed)

    def _make(self, key: Hashable, raw_inputs: list, st: list, hyper: list) -> tuple:
        """Trace the step with fake tensors into an ATen graph (make_fx: no Python objects left
        in it, so torch.compile guards only the tensors), then compile that graph."""
        from torch.fx.experimental.proxy_tensor import make_fx

        ns: dict = {}
        exec(compile(self.plan.source(raw_params=True), "<autodiff.replay>", "exec"), ns)
        ns.update(
            _K=tuple(fn for _, fn, _ in self.plan.forward),
            _V=tuple(vjp for _, vjp, _, _ in self.plan.backward),
            _ones=torch.ones_like,
            _acc=_acc,
            _update=self.rule.update,
            _key=key,
            _owned=self.owned,
            _others=self.others,
        )
        exec(compile(_WRAPPER, "<autodiff.replay.compiled>", "exec"), ns)
        ad_step = ns["compiled_step"]
        # Tensors are the compiled function's arguments; anything else the step reads (Python
        # numbers, None) is part of the signature and fixed in the trace.
        values = [*raw_inputs, *self.consts]
        where = [i for i, x in enumerate(values) if isinstance(x, torch.Tensor)]
        n_in = len(raw_inputs)
        sizes = (len(where), len(self.params), len(st), len(hyper))
        returned: list = []

        def flat_step(*args: torch.Tensor) -> tuple:
            parts, k = [], 0
            for n in sizes:
                parts.append(list(args[k : k + n]))
                k += n
            vals = list(values)
            for i, x in zip(where, parts[0]):
                vals[i] = x
            loss, grads = ad_step(vals[:n_in], vals[n_in:], *parts[1:])
            returned[:] = [g is not None for g in grads]
            return (loss, *(g for g in grads if g is not None))

        args = self._args(raw_inputs, where, [p.data for p in self.params], st, hyper)
        graph = make_fx(flat_step, tracing_mode="fake")(*args)
        others = [self.params[i] for i, r in zip(self.others, returned) if r]
        n_fixed = len(where)  # the step's inputs and constants: covered by the plan's signature
        if not self.cuda and CPU_BACKEND == "inductor":
            try:
                from torch._inductor.compile_fx import compile_fx

                fn = compile_fx(graph, args, config_patches=dict(CPU_OPTIONS))
                return fn, others, where, _Guard(args, n_fixed)
            except Exception as e:  # noqa: BLE001 - Inductor's own entry moved or failed
                self.direct_failed = _one_line(e)
        if self.cuda:
            fn = torch.compile(graph.forward, fullgraph=True, dynamic=False, mode=CUDA_MODE)
        else:
            fn = torch.compile(
                graph.forward, fullgraph=True, dynamic=False, options=dict(CPU_OPTIONS)
            )
        return fn, others, where, None

    def _args(self, raw_inputs: list, where: list, raw_params: list, st: list, hyper: list) -> list:
        values = [*raw_inputs, *self.consts]
        if len(where) != len(values):
            values = [values[i] for i in where]
        return [*values, *raw_params, *st, *hyper]

    def __call__(self, raw_inputs: list) -> tuple | None:
        """(loss, [(leaf, grad) to accumulate]) after the step ran, or None: run the plain replay
        (not compiled, or the optimizer's state not made yet)."""
        if self.failed is not None:
            return None
        for p in self.owned_params:
            if p.grad is not None:  # accumulated before the step: the plain path adds it
                return None
        prep = self.rule.prepare()
        if prep is None:
            return None
        key, st, hyper = prep
        raw_params = [p.data for p in self.params]
        entry = self.fns.get(key)
        if entry is None:
            try:
                with warnings.catch_warnings():
                    # torch's own deprecation notices while compiling are not the user's concern
                    # (and must not fail the compile under -W error)
                    warnings.simplefilter("ignore", DeprecationWarning)
                    warnings.simplefilter("ignore", FutureWarning)
                    entry = self._make(key, raw_inputs, st, hyper)
                    if self.cuda:
                        for t in (*raw_params, *st, *hyper):
                            torch._dynamo.mark_static_address(t)
                    out = self._run(entry, raw_inputs, raw_params, st, hyper)
            except Exception as e:  # noqa: BLE001 - any failure to compile: plain replay instead
                self.failed = _one_line(e)
                _warn(f"the step did not compile ({self.failed})")
                return None
            self.fns[key] = entry
        else:
            try:
                out = self._run(entry, raw_inputs, raw_params, st, hyper)
            except _Stale:  # a parameter or state tensor changed dtype, device, shape or layout
                del self.fns[key]
                return self(raw_inputs)
        self.rule.finish()
        return out[0], list(zip(entry[1], out[1:]))

    def _run(
        self, entry: tuple, raw_inputs: list, raw_params: list, st: list, hyper: list
    ) -> tuple:
        fn, _, where, guard = entry
        args = self._args(raw_inputs, where, raw_params, st, hyper)
        if guard is not None and not guard.check(args):
            raise _Stale()
        if self.cuda:  # outputs live in the CUDA graph's memory, rewritten by the next replay
            torch.compiler.cudagraph_mark_step_begin()
            return tuple(t.clone() for t in fn(*args))
        return fn(*args)


class _Stale(Exception):
    """A directly compiled step's tensors no longer match what it was compiled for."""


class _Guard:
    """What TorchDynamo's guards check, for a function compiled by Inductor directly: the step's
    inputs are contiguous as when compiled (their shapes, dtypes and devices are the plan's
    signature); every other tensor is the same object as last time, or matches in dtype,
    device, shape and strides."""

    def __init__(self, args: list, n_inputs: int) -> None:
        self.n = n_inputs
        self.strides = [a.stride() for a in args[:n_inputs]]
        self.last = list(args[n_inputs:])
        self.meta = [_meta(a) for a in self.last]

    def check(self, args: list) -> bool:
        n = self.n
        for a, st in zip(args[:n], self.strides):
            if a.stride() != st:
                return False
        rest = args[n:]
        if len(rest) != len(self.last):
            return False
        if all(map(operator.is_, rest, self.last)):
            return True
        if [_meta(a) for a in rest] != self.meta:
            return False
        self.last = list(rest)  # new tensors that fit: remember them (and free the old ones)
        return True


def _meta(t: torch.Tensor) -> tuple:
    return t.dtype, t.device, t.shape, t.stride(), t.storage_offset()


def _one_line(e: BaseException) -> str:
    """``Type: first line`` of the error that made a compile fail (the backend's own cause)."""
    e = getattr(e, "inner_exception", None) or e
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


def _warn(why: str) -> None:
    warnings.warn(
        f"replay(compile=True): {why}; running the plain replay", RuntimeWarning, stacklevel=5
    )
