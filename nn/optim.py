"""Optimizers with torch.optim's update rules: ``SGD``, ``Adam``, ``AdamW``.

Updates run on the raw ``p.data`` in place with torch's multi-tensor (``_foreach``) kernels: one
kernel launch per group and update term instead of one per parameter. Gradients are only read,
never written: a gradient tensor may be shared with a user or another leaf.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch

import autodiff as ad
from autodiff import Tensor

# torch.optim's implementation switches: they do not change the update, so a state_dict from
# torch.optim is read without them.
_TORCH_SWITCHES = ("foreach", "capturable", "differentiable", "fused")


def _counter(v: Any) -> int | None:
    """A step count from our state (an int) or torch's (a one-element tensor); None if neither."""
    if isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_complex():
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _check(
    opt: str,
    name: str,
    value: Any,
    low: float = 0.0,
    high: float | None = None,
    high_open: bool = False,
) -> None:
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value >= low
        and math.isfinite(value)
    )
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        rng = (
            f"[{low}, {high})"
            if high_open
            else (f"[{low}, {high}]" if high is not None else f">= {low}")
        )
        raise ValueError(f"{opt}: invalid {name} {value!r} (must be a number in {rng})")


class Optimizer:
    """Base class: parameter groups, ``zero_grad``, ``state_dict`` / ``load_state_dict``."""

    # Per-parameter state entries that are counts (ints), not tensors shaped like the parameter.
    _state_counters: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any], defaults: dict) -> None:
        self.defaults = dict(defaults)
        self.state: dict = {}
        self.param_groups: list[dict] = []
        if isinstance(params, (Tensor, torch.Tensor)):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of Tensors or of "
                "dicts (parameter groups), got a single tensor; wrap it in a list"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def _validate(self, group: dict) -> None:  # overridden per optimizer
        _check(type(self).__name__, "learning rate", group["lr"])

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyper-parameters (defaults fill the rest)."""
        name = type(self).__name__
        group = dict(param_group)
        params = group.get("params")
        params = [params] if isinstance(params, Tensor) else list(params or [])
        if not params:
            raise ValueError(f"{name}: a parameter group must contain at least one parameter")
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{name} can only optimize autodiff Tensors (nn.Parameter), got "
                    f"{type(p).__name__}"
                )
            if p.grad_fn is not None:
                raise ValueError(
                    f"{name} can't optimize a non-leaf Tensor (produced by "
                    f"{p.grad_fn.name}); optimize the leaves it was computed from"
                )
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError(
                f"{name}: some parameters appear more than once (in a group or in two groups)"
            )
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._validate(group)
        group["params"] = params
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    p.grad = None if set_to_none else ad.zeros_like(p.grad)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; ``closure`` re-evaluates the loss."""
        loss = None
        if closure is not None:
            with ad.enable_grad():
                loss = closure()
        with ad.no_grad():
            for group in self.param_groups:
                live = [p for p in group["params"] if p.grad is not None]
                if live:
                    self._update(group, live)
        return loss

    def _update(self, group: dict, params: list) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- the update as a pure function, for autodiff.replay(..., compile=True) --------------
    # An optimizer that defines ``_pure`` (and the three helpers below) can be compiled into the
    # replayed step: autodiff.replay_compile's protocol, implemented once by ``_UpdateRule``.
    _pure: Any = None

    def _state_keys(self, group: dict) -> tuple[str, ...]:
        """The per-parameter state tensors ``_pure`` reads and rewrites, in order."""
        return ()

    def _flags(self, group: dict) -> tuple:
        """What fixes the update's structure (a change recompiles the step)."""
        return ()

    def _hyper(self, group: dict, states: list) -> tuple[float, ...] | None:
        """This step's hyper-parameters (floats), or None when this step cannot be compiled."""
        return ()

    def _advance(self, states: list) -> None:
        """Bookkeeping after a compiled update (step counts)."""

    def update_rule(self, params: list) -> Any:
        """The update of ``params`` (those of them this optimizer holds) as a pure function over
        raw tensors, for a compiled replay; None when this optimizer has none."""
        return _UpdateRule(self, params) if self._pure is not None else None

    # ---- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [index, ...]}]}``."""
        index: dict = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in g["params"]]
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore state and hyper-parameters; everything is checked before anything changes.

        Also reads torch.optim's ``state_dict()`` of the same optimizer (its counters are
        tensors; its implementation switches such as ``foreach`` are dropped).
        """
        name = type(self).__name__

        def bad(msg: str) -> ValueError:
            return ValueError(f"{name}.load_state_dict: {msg}")

        try:
            saved_groups = list(state_dict["param_groups"])
            saved_state = dict(state_dict["state"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{name}.load_state_dict: expected a dict with 'state' and "
                "'param_groups' (from optimizer.state_dict())"
            ) from None
        if len(saved_groups) != len(self.param_groups):
            raise bad(
                f"the state has {len(saved_groups)} parameter groups, the optimizer has "
                f"{len(self.param_groups)}"
            )
        by_index = {}
        for i, (sg, g) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(sg, dict) or not isinstance(sg.get("params"), (list, tuple)):
                raise bad(f"group {i} is not a dict with a 'params' list")
            if len(sg["params"]) != len(g["params"]):
                raise bad(
                    f"group {i} has {len(sg['params'])} parameters in the state but "
                    f"{len(g['params'])} here"
                )
            by_index.update(zip(sg["params"], g["params"]))
        new_state: dict = {}
        for k, s in saved_state.items():
            if k not in by_index:
                raise bad(f"state for unknown parameter index {k!r}")
            if not isinstance(s, dict):
                raise bad(f"the state of parameter {k} is a {type(s).__name__}, not a dict")
            p = by_index[k]
            entry = {}
            for key, v in s.items():
                if v is None:  # torch's SGD keeps momentum_buffer=None without momentum
                    continue
                if key in self._state_counters:
                    v = _counter(v)
                    if v is None:
                        raise bad(
                            f"state '{key}' of parameter {k} must be a count (an integer "
                            f">= 0), got {s[key]!r}"
                        )
                elif not isinstance(v, torch.Tensor):
                    raise bad(
                        f"state '{key}' of parameter {k} is a {type(v).__name__}, not a tensor"
                    )
                elif v.shape != p.data.shape:
                    raise bad(
                        f"state '{key}' of parameter {k} has shape {tuple(v.shape)}, the "
                        f"parameter has {tuple(p.data.shape)}"
                    )
                else:
                    v = v.to(device=p.data.device, dtype=p.data.dtype).clone()
                entry[key] = v
            new_state[p] = entry
        new_groups = []
        for i, (sg, g) in enumerate(zip(saved_groups, self.param_groups)):
            merged = {k: v for k, v in sg.items() if k != "params" and k not in _TORCH_SWITCHES}
            if merged.pop("maximize", False):
                raise bad(f"group {i} asks for maximize=True, which {name} does not implement")
            for k in self.defaults:
                if k not in merged:
                    raise bad(f"group {i} has no '{k}' (is this the state of another optimizer?)")
            merged["params"] = g["params"]
            self._validate(merged)
            new_groups.append(merged)
        self.state = new_state
        self.param_groups = new_groups

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """v ← μ v + (1 - τ) (g + λ p);  p ← p - lr · (g + μ v if nesterov else v)  (v = g at step 1)"""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=nesterov,
            ),
        )

    def _validate(self, group: dict) -> None:
        _check("SGD", "learning rate", group["lr"])
        _check("SGD", "momentum", group["momentum"])
        _check("SGD", "dampening", group["dampening"])
        _check("SGD", "weight_decay", group["weight_decay"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov momentum requires momentum > 0 and dampening = 0")

    def _update(self, group: dict, params: list) -> None:
        ps = [p.data for p in params]
        gs = [p.grad.data for p in params]
        lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
        if wd != 0:
            gs = torch._foreach_add(gs, ps, alpha=wd)  # a new list: p.grad stays untouched
        if mom != 0:
            state = self.state
            bufs = [st.get("momentum_buffer") if st else None for st in map(state.get, params)]
            if any(b is None for b in bufs):  # first steps: a buffer starts as the gradient
                old = [(b, g) for b, g in zip(bufs, gs) if b is not None]
                for i, (p, g) in enumerate(zip(params, gs)):
                    if bufs[i] is None:
                        bufs[i] = state.setdefault(p, {})["momentum_buffer"] = g.clone()
            else:
                old = list(zip(bufs, gs))
            if old:
                ob, og = [b for b, _ in old], [g for _, g in old]
                torch._foreach_mul_(ob, mom)
                torch._foreach_add_(ob, og, alpha=1 - group["dampening"])
            gs = torch._foreach_add(gs, bufs, alpha=mom) if group["nesterov"] else bufs
        torch._foreach_add_(ps, gs, alpha=-lr)

    def _state_keys(self, group: dict) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _flags(self, group: dict) -> tuple:
        return group["momentum"] != 0, bool(group["nesterov"]), group["weight_decay"] != 0

    def _hyper(self, group: dict, states: list) -> tuple[float, ...]:
        return group["lr"], group["momentum"], 1 - group["dampening"], group["weight_decay"]

    @staticmethod
    def _pure(flags: tuple, ps: list, gs: list, states: list, h: list) -> tuple[list, list]:
        """``_update``'s arithmetic, out of place (buffers exist: the first step ran eagerly)."""
        momentum, nesterov, decay = flags
        lr, mom, damp1, wd = h
        new_p, new_s = [], []
        for p, g, s in zip(ps, gs, states):
            if g is None:
                new_p.append(p)
                new_s += s
                continue
            if decay:
                g = g + wd * p
            if momentum:
                buf = s[0] * mom + damp1 * g
                new_s.append(buf)
                g = g + mom * buf if nesterov else buf
            new_p.append(p - lr * g)
        return new_p, new_s


class Adam(Optimizer):
    """m ← β₁ m + (1-β₁) g;  v ← β₂ v + (1-β₂) g²;  p ← p - lr/(1-β₁ᵗ) · m / (√(v/(1-β₂ᵗ)) + ε)

    ``weight_decay`` adds λ p to g (L2); ``amsgrad`` uses the running maximum of v.
    """

    _decoupled = False
    _state_counters = ("step",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(
            params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        )

    def _validate(self, group: dict) -> None:
        name = type(self).__name__
        _check(name, "learning rate", group["lr"])
        _check(name, "epsilon", group["eps"])
        _check(name, "weight_decay", group["weight_decay"])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        _check(name, "beta parameter at index 0", betas[0], 0.0, 1.0, high_open=True)
        _check(name, "beta parameter at index 1", betas[1], 0.0, 1.0, high_open=True)
        group["betas"] = tuple(betas)
        # torch.optim's Adam and AdamW state names the weight decay kind: it must be ours.
        if bool(group.pop("decoupled_weight_decay", self._decoupled)) != self._decoupled:
            other = "AdamW" if not self._decoupled else "Adam"
            raise ValueError(
                f"{name}: this state is {other}'s (decoupled_weight_decay="
                f"{not self._decoupled}); load it into {other}"
            )

    def _update(self, group: dict, params: list) -> None:
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        amsgrad = group["amsgrad"]
        ps = [p.data for p in params]
        gs = [p.grad.data for p in params]
        states = []
        for p in params:
            st = self.state.get(p)
            if st is None:
                st = self.state[p] = {
                    "step": 0,
                    "exp_avg": torch.zeros_like(p.data),
                    "exp_avg_sq": torch.zeros_like(p.data),
                }
            if amsgrad and "max_exp_avg_sq" not in st:
                st["max_exp_avg_sq"] = torch.zeros_like(p.data)
            st["step"] += 1
            states.append(st)
        if wd != 0:
            if self._decoupled:
                torch._foreach_mul_(ps, 1 - lr * wd)
            else:
                gs = torch._foreach_add(gs, ps, alpha=wd)  # a new list: p.grad stays untouched
        ms = [s["exp_avg"] for s in states]
        vs = [s["exp_avg_sq"] for s in states]
        torch._foreach_lerp_(ms, gs, 1 - b1)
        torch._foreach_mul_(vs, b2)
        torch._foreach_addcmul_(vs, gs, gs, 1 - b2)
        if amsgrad:
            vmax = [s["max_exp_avg_sq"] for s in states]
            torch._foreach_maximum_(vmax, vs)
            vs = vmax
        steps = [s["step"] for s in states]
        denom = torch._foreach_sqrt(vs)
        torch._foreach_div_(denom, [math.sqrt(1 - b2**t) for t in steps])
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(ps, ms, denom, [-lr / (1 - b1**t) for t in steps])

    def _state_keys(self, group: dict) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def _flags(self, group: dict) -> tuple:
        wd = group["weight_decay"] != 0
        # torch's lerp: m + w (g - m) for w < 1/2, else g - (g - m)(1 - w)
        return (
            wd and self._decoupled,
            wd and not self._decoupled,
            bool(group["amsgrad"]),
            1 - group["betas"][0] < 0.5,
        )

    def _hyper(self, group: dict, states: list) -> tuple[float, ...] | None:
        t = states[0]["step"] + 1
        if any(s["step"] + 1 != t for s in states):  # parameters at different steps: eager
            return None
        lr, (b1, b2), wd = group["lr"], group["betas"], group["weight_decay"]
        return (
            1 - b1,
            b1,
            b2,
            1 - b2,
            group["eps"],
            1 - lr * wd if self._decoupled else wd,
            math.sqrt(1 - b2**t),
            -lr / (1 - b1**t),
        )

    def _advance(self, states: list) -> None:
        for s in states:
            s["step"] += 1

    @staticmethod
    def _pure(flags: tuple, ps: list, gs: list, states: list, h: list) -> tuple[list, list]:
        """``_update``'s arithmetic, out of place."""
        decoupled, l2, amsgrad, low = flags
        w, b1, b2, one_b2, eps, decay, bc2, step_size = h
        new_p, new_s = [], []
        for p, g, s in zip(ps, gs, states):
            if g is None:
                new_p.append(p)
                new_s += s
                continue
            if decoupled:
                p = p * decay
            elif l2:
                g = g + decay * p
            m = s[0] + w * (g - s[0]) if low else g - (g - s[0]) * b1
            v = s[1] * b2 + one_b2 * g * g
            new_s += [m, v]
            if amsgrad:
                v = torch.maximum(s[2], v)
                new_s.append(v)
            new_p.append(p + step_size * (m / (torch.sqrt(v) / bc2 + eps)))
        return new_p, new_s


class AdamW(Adam):
    """Adam with decoupled weight decay: p ← p (1 - lr λ) before the Adam step."""

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class _UpdateRule:
    """An optimizer's update for autodiff's compiled replay (``autodiff.replay_compile``'s
    protocol): ``update`` is the optimizer's ``_pure`` per parameter group; hyper-parameters are
    0-d tensors refilled in place when they change, so a schedule does not recompile."""

    def __init__(self, opt: Optimizer, params: list) -> None:
        self.opt = opt
        self.params = list(params)
        self._pure = type(opt)._pure  # a plain function: what the compiler traces
        self._map()
        self.owned = self._owned

    def _map(self) -> None:
        index = {id(p): i for i, p in enumerate(self.params)}
        self._groups = self.opt.param_groups
        members = [[index[id(p)] for p in g["params"] if id(p) in index] for g in self._groups]
        self._owned = tuple(i for m in members for i in m)
        # per group holding some of the step's parameters: (group index, its parameters)
        self._live = [(gi, [self.params[i] for i in m]) for gi, m in enumerate(members) if m]
        self._tensors: list = [None] * len(self._groups)  # per group: [values, 0-d tensors]
        self._states: list = []

    def prepare(self) -> tuple | None:
        opt = self.opt
        if opt.param_groups is not self._groups:  # load_state_dict or add_param_group
            self._map()
            if self._owned != self.owned:
                return None
        key, state, hyper, all_states = [], [], [], []
        store = opt.state
        for gi, ps in self._live:
            group = self._groups[gi]
            names = opt._state_keys(group)
            states = [store.get(p) for p in ps]
            if names:
                try:
                    state += [s[n] for s in states for n in names]
                except (KeyError, TypeError):  # not made yet: the first step is the eager one
                    return None
            values = opt._hyper(group, states)
            if values is None:
                return None
            have = self._tensors[gi]
            if have is None or len(have[1]) != len(values):
                # In the parameters' dtype (as eager's Python scalars are cast): a float64
                # scalar next to float32 tensors would be specialized on its value.
                like = ps[0].data
                have = self._tensors[gi] = [
                    (None,) * len(values),
                    [torch.zeros((), dtype=like.dtype, device=like.device) for _ in values],
                ]
            if have[0] != values:
                for t, old, new in zip(have[1], have[0], values):
                    if old != new:
                        t.fill_(new)
                have[0] = values
            key.append((len(ps), len(names), len(values), opt._flags(group)))
            hyper += have[1]
            all_states += states
        self._states = all_states
        return tuple(key), state, hyper

    def update(
        self, key: tuple, params: list, grads: list, state: list, hyper: list
    ) -> tuple[list, list]:
        new_p, new_s = [], []
        i = j = k = 0
        for n, ns, nh, flags in key:
            states = [tuple(state[j + a * ns : j + (a + 1) * ns]) for a in range(n)]
            ps, ss = self._pure(
                flags, params[i : i + n], grads[i : i + n], states, hyper[k : k + nh]
            )
            new_p += ps
            new_s += ss
            i, j, k = i + n, j + n * ns, k + nh
        return new_p, new_s

    def finish(self) -> None:
        self.opt._advance(self._states)


# nn.optim.lr_scheduler, like torch.optim.lr_scheduler
from . import lr_scheduler  # noqa: E402,F401
from .lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR  # noqa: E402,F401
