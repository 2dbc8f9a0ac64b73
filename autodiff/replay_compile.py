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
wrapper (see ``CPU_BACKEND``; ``torch.compile`` is the fallback), and each step calls the
compiled graph itself (``_inductor``), with our own guard and version-counter bumps in place of
the wrappers torch puts around it; on CUDA it goes through
``torch.compile(mode="reduce-overhead")``, which captures it as a CUDA graph. The compiler is
given tanh in a cheaper exact-enough form (``DECOMPOSITIONS``).

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
reassociation, fusion and that tanh: a few units in the last place per step.
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
# at batch 16 (one call into C++ instead of one Python call per kernel). Its checks of every
# input's size and stride (~5 µs a call at batch 16) are left to ``_Guard``, which checks the
# same before each call; memory planning allocates the step's buffers as one block (~1.5 µs).
CPU_OPTIONS = {"cpp_wrapper": True, "size_asserts": False, "memory_planning": True}
CUDA_MODE = "reduce-overhead"
# On the CPU the traced graph goes straight to Inductor (its compile_fx, what torch.compile's
# "inductor" backend calls), skipping TorchDynamo's frame evaluation and guards: ~40% less time
# per step at batch 16. Our own checks stand in for the guards (a plan is per input signature;
# parameters, state and hyper-parameter tensors are checked by identity, then by dtype, device,
# shape and strides). "torch.compile" uses the public entry point instead; it is also the
# fallback when Inductor's entry point cannot be imported or fails.
CPU_BACKEND = os.environ.get("TAPEGRAD_COMPILE_BACKEND", "inductor")


def _tanh(x: torch.Tensor) -> Any:
    """tanh x = (e^{2x} - 1) / (e^{2x} + 1) = e / (e + 2) with e = expm1(2x), for |x| <= 10 in
    float32 and 20 in float64 (|tanh x| rounds to 1 beyond; the clamp also keeps e finite).

    Inductor's vectorised tanh costs ~3x its expm1 on the CPU (~20% of the course step at batch
    1000); this form is within 2.5 ulp of the correctly rounded tanh in float32 (torch's own is
    within 0.51; 3 ulp of torch's in float64), keeps relative accuracy near 0 (expm1), and maps
    ±0, ±inf and NaN as tanh. Other dtypes keep torch's tanh."""
    bound = _TANH_BOUND.get(x.dtype)
    if bound is None:
        return NotImplemented
    e = torch.expm1(2 * x.clamp(-bound, bound))
    return e / (e + 2)


_TANH_BOUND = {torch.float32: 10.0, torch.float64: 20.0}

# Applied while tracing the step for the compiler: what eager and the plain replay run is untouched.
DECOMPOSITIONS = {torch.ops.aten.tanh.default: _tanh}


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
    for i, t, v in zip(_owned, own, new_p):
        if v is not t:
            t.copy_(v)
            _written.append(i)
    for i, (t, v) in enumerate(zip(state, new_s)):
        if v is not t:
            t.copy_(v)
            _written.append(len(params) + i)
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


class _Entry:
    """One compiled step: ``fn(*args)``, or ``direct`` (Inductor's compiled graph, called past
    AOTAutograd's runtime wrapper; None when not available); ``others``: the leaves whose
    gradients it returns; ``where``: which of the step's inputs and constants are tensors (its
    arguments); ``guard``: our stand-in for TorchDynamo's guards (None under torch.compile);
    ``written``: the positions, in ``args``, of the tensors it overwrites."""

    __slots__ = ("fn", "direct", "others", "where", "guard", "written")

    def __init__(
        self, fn: Any, direct: Any, others: list, where: list, guard: Any, written: list
    ) -> None:
        self.fn, self.direct, self.others = fn, direct, others
        self.where, self.guard, self.written = where, guard, written


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
        self.fns: dict = {}  # update key -> _Entry
        self.direct_failed: str | None = None  # why Inductor's entry point was not used
        self.failed: str | None = compiler_missing(self.device)
        if self.failed is not None:
            _warn(self.failed)

    def _make(self, key: Hashable, raw_inputs: list, st: list, hyper: list) -> _Entry:
        """Trace the step with fake tensors into an ATen graph (make_fx: no Python objects left
        in it, so torch.compile guards only the tensors), then compile that graph."""
        from torch.fx.experimental.proxy_tensor import make_fx

        ns: dict = {}
        exec(compile(self.plan.source(raw_params=True), "<autodiff.replay>", "exec"), ns)
        written: list = []
        ns.update(
            _K=tuple(fn for _, fn, _ in self.plan.forward),
            _V=tuple(vjp for _, vjp, _, _ in self.plan.backward),
            _ones=torch.ones_like,
            _acc=_acc,
            _update=self.rule.update,
            _key=key,
            _owned=self.owned,
            _others=self.others,
            _written=written,
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
        graph = make_fx(flat_step, tracing_mode="fake", decomposition_table=DECOMPOSITIONS)(*args)
        others = [self.params[i] for i, r in zip(self.others, returned) if r]
        n_fixed = len(where)  # the step's inputs and constants: covered by the plan's signature
        written = [n_fixed + i for i in dict.fromkeys(written)]
        if not self.cuda and CPU_BACKEND == "inductor":
            try:
                fn, direct = _inductor(graph, args)
                if direct is not None and not _agree(fn, direct, args):
                    direct = None
                return _Entry(fn, direct, others, where, _Guard(args, n_fixed), written)
            except Exception as e:  # noqa: BLE001 - Inductor's own entry moved or failed
                self.direct_failed = _one_line(e)
        if self.cuda:
            fn = torch.compile(graph.forward, fullgraph=True, dynamic=False, mode=CUDA_MODE)
        else:
            fn = torch.compile(
                graph.forward, fullgraph=True, dynamic=False, options=dict(CPU_OPTIONS)
            )
        return _Entry(fn, None, others, where, None, written)

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
        others = entry.others
        return out[0], (list(zip(others, out[1:])) if others else ())

    def _run(
        self, entry: _Entry, raw_inputs: list, raw_params: list, st: list, hyper: list
    ) -> Sequence:
        args = self._args(raw_inputs, entry.where, raw_params, st, hyper)
        guard = entry.guard
        if guard is not None and not guard.check(args):
            raise _Stale()
        if entry.direct is not None:
            out = entry.direct(list(args))  # boxed: it empties the list it is given
            if entry.written:
                # In-place writes the engine's saved-tensor checks must see (AOTAutograd's
                # wrapper would bump these version counters; torch's own bump, no autograd)
                torch._C._increment_version([args[i] for i in entry.written])
            return out
        if self.cuda:  # outputs live in the CUDA graph's memory, rewritten by the next replay
            torch.compiler.cudagraph_mark_step_begin()
            return tuple(t.clone() for t in entry.fn(*args))
        return entry.fn(*args)


def _inductor(graph: Any, args: list) -> tuple[Any, Any]:
    """Compile ``graph`` with Inductor's ``compile_fx`` (what torch.compile's "inductor" backend
    calls): (the function it returns, Inductor's compiled graph itself, or None).

    The function goes through AOTAutograd's runtime wrapper, ~4 µs a call, which a graph with
    no autograd, no aliased outputs and its input writes done inside needs nothing from, so
    the compiled graph (boxed: called with a list) is captured to be called directly."""
    import torch._functorch.config as functorch_config
    from torch._inductor.compile_fx import compile_fx, compile_fx_inner

    inner: list = []

    def capture(gm: Any, example_inputs: Any, *a: Any, **k: Any) -> Any:
        out = compile_fx_inner(gm, example_inputs, *a, **k)
        inner.append(out)
        return out

    # AOTAutograd's cache would return its wrapper without calling ``capture``; Inductor's own
    # FX-graph cache still makes a second process's compile fast.
    with functorch_config.patch(enable_autograd_cache=False):
        fn = compile_fx(graph, args, inner_compile=capture, config_patches=dict(CPU_OPTIONS))
    direct = getattr(inner[0], "current_callable", None) if len(inner) == 1 else None
    return fn, (direct if callable(direct) else None)


def _agree(fn: Any, direct: Any, args: list) -> bool:
    """Whether the compiled graph called directly gives what the wrapped function gives (its
    outputs and the tensors it writes), on copies of ``args``: a check, once per compile, that
    AOTAutograd's wrapper had nothing to do for this graph."""
    a, b = [t.clone() for t in args], [t.clone() for t in args]
    try:
        ra, rb = list(fn(*a)), list(direct(list(b)))
    except Exception:  # noqa: BLE001 - the direct call does not work here: use the wrapper
        return False
    return len(ra) == len(rb) and all(map(_same, [*ra, *a], [*rb, *b]))


def _same(x: Any, y: Any) -> bool:
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        return False
    if x.shape != y.shape or x.dtype != y.dtype or x.device != y.device:
        return False
    return (
        bool(((x == y) | (x.isnan() & y.isnan())).all())
        if x.is_floating_point()
        else bool((x == y).all())
    )


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
