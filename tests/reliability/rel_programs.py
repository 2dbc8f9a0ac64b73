"""Random op programs for fuzzing gradients: a hypothesis strategy and an interpreter.

A program is a list of instructions over a pool of values: ``Leaf`` adds an input tensor (all
inputs require grad), ``Step`` applies one catalogue op to pool values. Steps pick their operands
anywhere in the pool, so intermediates are reused; several pool values are the outputs.

Programs are planned while being executed with plain torch (no autograd) on the real input
values: each op's shape logic is torch's own, and ops are only chosen where they are smooth
(log of positives, max without ties, division away from 0, bounded magnitudes), so that both
libraries' gradients are well defined and comparable. ``run(program, lib)`` then replays it with
``"ad"`` (autodiff) or ``"torch"`` (torch.autograd as the oracle).

``programs(corners=True)`` draws where the bugs live instead: exact kinks (0 for abs/relu/sqrt,
clamp bounds equal to elements), ties (repeated values; ``maximum(a, a)``), ±inf and NaN in the
inputs and in the upstream gradients, size-0 dims and ``dim=()``. Nothing is skipped for being
non-smooth there: both libraries must give the same numbers (NaN where torch has NaN) or both
raise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

import autodiff as ad

DT = torch.float64


@dataclass(frozen=True)
class Leaf:
    data: torch.Tensor


@dataclass(frozen=True)
class Step:
    op: str
    args: tuple  # pool indices
    params: dict = field(default_factory=dict)


@dataclass
class Program:
    code: list
    outputs: tuple  # pool indices
    grad_outputs: tuple  # one torch tensor per output
    use_backward: bool  # True: loss.backward() into .grad; False: grad(outputs, inputs, ...)

    def ops(self) -> list[str]:
        return [c.op for c in self.code if isinstance(c, Step)]

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        lines = []
        for i, c in enumerate(self.code):
            if isinstance(c, Leaf):
                lines.append(f"  v{i} = leaf{tuple(c.data.shape)}")
            else:
                ps = ", ".join(f"{k}={_short(v)}" for k, v in c.params.items())
                lines.append(
                    f"  v{i} = {c.op}({', '.join(f'v{a}' for a in c.args)}{', ' if ps else ''}{ps})"
                )
        return (
            "Program(\n" + "\n".join(lines) + f"\n  outputs={list(self.outputs)}, "
            f"use_backward={self.use_backward})"
        )


def _short(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        return f"tensor{tuple(v.shape)}:{v.dtype}".replace("torch.", "")
    return repr(v)


# ---- the two libraries behind one set of names ---------------------------------------------------
TORCH_NS = SimpleNamespace(
    linear=F.linear,
    leaky_relu=F.leaky_relu,
    where=torch.where,
    maximum=torch.maximum,
    minimum=torch.minimum,
    cat=torch.cat,
    stack=torch.stack,
    logsumexp=torch.logsumexp,
    softmax=torch.softmax,
    log_softmax=torch.log_softmax,
    clamp=torch.clamp,
    broadcast_to=torch.broadcast_to,
)
AD_NS = SimpleNamespace(
    linear=ad.linear,
    leaky_relu=ad.leaky_relu,
    where=ad.where,
    maximum=ad.maximum,
    minimum=ad.minimum,
    cat=ad.cat,
    stack=ad.stack,
    logsumexp=ad.logsumexp,
    softmax=ad.softmax,
    log_softmax=ad.log_softmax,
    clamp=ad.clamp,
    broadcast_to=ad.broadcast_to,
)


def _inplace(method: str) -> Callable:
    def fn(m: Any, a: Any, *rest: Any, **kw: Any) -> Any:
        t = a.clone()  # a fresh recorded tensor: the in-place op is rebased onto it
        getattr(t, method)(*rest, **kw)
        return t

    return fn


def _setitem(m: Any, a: Any, *rest: Any, idx: Any, value: Any = None) -> Any:
    t = a * 1.0
    t[idx] = rest[0] if rest else value
    return t


def _oracle_dim(m: Any, a: Any, dim: Any) -> Any:
    """torch's var/std backward with ``dim=()`` disagrees with its own forward (which reduces
    every dim): the oracle names the dims (differences.py: "var_std_empty_dim")."""
    if m is TORCH_NS and isinstance(dim, (tuple, list)) and len(dim) == 0:
        return tuple(range(a.dim()))
    return dim


# name -> fn(m, *tensors, **params); m is TORCH_NS or AD_NS
APPLY: dict[str, Callable] = {
    # elementwise, unary
    "neg": lambda m, a: -a,
    "exp": lambda m, a: a.exp(),
    "log": lambda m, a: a.log(),
    "log1p": lambda m, a: a.log1p(),
    "sqrt": lambda m, a: a.sqrt(),
    "abs": lambda m, a: abs(a),
    "sin": lambda m, a: a.sin(),
    "cos": lambda m, a: a.cos(),
    "tanh": lambda m, a: a.tanh(),
    "sigmoid": lambda m, a: a.sigmoid(),
    "relu": lambda m, a: a.relu(),
    "leaky_relu": lambda m, a, slope: m.leaky_relu(a, slope),
    "clamp": lambda m, a, lo, hi: a.clamp(lo, hi),
    "sign": lambda m, a: a.sign() * a,
    "pow_scalar": lambda m, a, p: a**p,
    "rpow_scalar": lambda m, a, c: c**a,
    "add_scalar": lambda m, a, c: a + c,
    "rsub_scalar": lambda m, a, c: c - a,
    "mul_scalar": lambda m, a, c: a * c,
    "rdiv_scalar": lambda m, a, c: c / a,
    "add_const": lambda m, a, c: a + c,
    "mul_const": lambda m, a, c: c * a,
    # elementwise, binary (broadcasting)
    "add": lambda m, a, b: a + b,
    "sub": lambda m, a, b: a - b,
    "mul": lambda m, a, b: a * b,
    "div": lambda m, a, b: a / b,
    "pow": lambda m, a, b: a**b,
    "maximum": lambda m, a, b: m.maximum(a, b),
    "minimum": lambda m, a, b: m.minimum(a, b),
    "where": lambda m, a, b, cond: m.where(cond, a, b),
    "clamp_tensor": lambda m, a, lo, hi: m.clamp(a, lo, hi),
    # reductions
    "sum": lambda m, a, dim, keepdim: a.sum(dim, keepdim=keepdim),
    "sum_all": lambda m, a: a.sum(),
    "mean_all": lambda m, a: a.mean(),
    "mean": lambda m, a, dim, keepdim: a.mean(dim, keepdim=keepdim),
    "amax": lambda m, a, dim, keepdim: a.amax(dim, keepdim=keepdim),
    "amin": lambda m, a, dim, keepdim: a.amin(dim, keepdim=keepdim),
    "max_dim": lambda m, a, dim, keepdim: a.max(dim, keepdim=keepdim)[0],
    "min_dim": lambda m, a, dim, keepdim: a.min(dim, keepdim=keepdim)[0],
    "max_all": lambda m, a: a.max(),
    "var": lambda m, a, dim, keepdim, correction: a.var(
        _oracle_dim(m, a, dim), keepdim=keepdim, correction=correction
    ),
    "std": lambda m, a, dim, keepdim, correction: a.std(
        _oracle_dim(m, a, dim), keepdim=keepdim, correction=correction
    ),
    "logsumexp": lambda m, a, dim, keepdim: m.logsumexp(a, dim, keepdim=keepdim),
    "softmax": lambda m, a, dim: m.softmax(a, dim),
    "log_softmax": lambda m, a, dim: m.log_softmax(a, dim),
    # shapes
    "reshape": lambda m, a, shape: a.reshape(shape),
    "view": lambda m, a, shape: a.view(shape),
    "flatten": lambda m, a, start, end: a.flatten(start, end),
    "squeeze": lambda m, a, dim: a.squeeze(dim),
    "unsqueeze": lambda m, a, dim: a.unsqueeze(dim),
    "transpose": lambda m, a, d0, d1: a.transpose(d0, d1),
    "permute": lambda m, a, dims: a.permute(dims),
    "T": lambda m, a: a.T,
    "mT": lambda m, a: a.mT,
    "expand": lambda m, a, shape: a.expand(shape),
    "broadcast_to": lambda m, a, shape: m.broadcast_to(a, shape),
    "expand_as": lambda m, a, b: a.expand_as(b),
    "sum_to_size": lambda m, a, shape: a.sum_to_size(shape),
    "cat": lambda m, *xs, dim: m.cat(list(xs), dim),
    "stack": lambda m, *xs, dim: m.stack(list(xs), dim),
    "clone": lambda m, a: a.clone(),
    "contiguous": lambda m, a: a.mT.contiguous(),
    "getitem": lambda m, a, idx: a[idx],
    # linear algebra
    "matmul": lambda m, a, b: a @ b,
    "linear": lambda m, x, w, b: m.linear(x, w, b),
    # in-place (rebased onto a fresh recorded tensor)
    "add_": _inplace("add_"),
    "sub_": _inplace("sub_"),
    "mul_": _inplace("mul_"),
    "div_": _inplace("div_"),
    "clamp_": _inplace("clamp_"),
    "fill_": _inplace("fill_"),
    "copy_": _inplace("copy_"),
    "setitem": _setitem,
}
CATALOGUE = sorted(APPLY)


# ---- planning: choose applicable, smooth ops on the real values ----------------------------------
def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def _away(a: torch.Tensor, *points: Any, gap: float = 1e-3) -> bool:
    """No element of ``a`` within ``gap`` of any of ``points`` (kinks of relu/abs/clamp/...)."""
    for p in points:
        if p is not None and a.numel() and bool(((a - p).abs() < gap).any()):
            return False
    return True


def _distinct(a: torch.Tensor, gap: float = 1e-3) -> bool:
    if a.numel() < 2:
        return True
    s = a.flatten().sort().values
    return bool((s[1:] - s[:-1]).min() > gap)


SPECIAL = (0.0, 1.0, -1.0, 0.5, float("inf"), float("-inf"), float("nan"))


class _Planner:
    def __init__(self, draw: Any, gen: torch.Generator, corners: bool = False) -> None:
        self.draw = draw
        self.gen = gen
        self.corners = corners
        self.code: list = []
        self.vals: list[torch.Tensor] = []

    def away(self, a: torch.Tensor, *points: Any, gap: float = 1e-3) -> bool:
        return self.corners or _away(a, *points, gap=gap)

    def distinct(self, a: torch.Tensor) -> bool:
        return self.corners or _distinct(a)

    # pool helpers
    def leaf(self, shape: tuple) -> int:
        data = torch.randn(shape, generator=self.gen, dtype=DT)
        if self.corners and data.numel() and self.draw(st.booleans()):
            data = self._special(data)
        self.code.append(Leaf(data))
        self.vals.append(data)
        return len(self.vals) - 1

    def _special(self, data: torch.Tensor) -> torch.Tensor:
        """Corners: exact kink values, ties (rounded values repeat), ±inf, NaN."""
        kind = self.draw(st.sampled_from(["ties", "value", "value", "nonfinite"]))
        if kind == "ties":
            return data.round()
        pool = SPECIAL if kind == "nonfinite" else SPECIAL[:4]
        value = self.draw(st.sampled_from(pool))
        mask = torch.rand(data.shape, generator=self.gen) < 0.4
        return data.masked_fill(mask, value)

    def pick(self) -> int:
        n = len(self.vals)
        recent = self.draw(st.booleans())  # bias towards chains, but reuse anything
        return n - 1 if recent else self.draw(st.integers(0, n - 1))

    def partner(self, a: int, pred: Callable[[torch.Tensor], bool] = lambda t: True) -> int:
        """A pool value broadcastable with v[a] (satisfying ``pred``), else a new leaf."""
        sa = self.vals[a].shape
        ok = [
            i
            for i, v in enumerate(self.vals)
            if _broadcastable(sa, v.shape) and len(v.shape) <= 4 and pred(v)
        ]
        if ok and self.draw(st.booleans()):
            return self.draw(st.sampled_from(ok))
        for _ in range(3):
            keep = self.draw(st.lists(st.booleans(), min_size=len(sa), max_size=len(sa)))
            lead = self.draw(st.integers(0, min(len(sa), 2)))
            shape = tuple(s if k else 1 for s, k in zip(sa, keep))[lead:]
            i = self.leaf(shape)
            if pred(self.vals[i]):
                return i
            self.vals[i] = self.vals[i].abs() + 0.5  # a positive leaf serves every predicate used
            self.code[i] = Leaf(self.vals[i])
            if pred(self.vals[i]):
                return i
        return i

    def dim(
        self, a: torch.Tensor, allow_none: bool = False, allow_tuple: bool = False, op: str = ""
    ) -> Any:
        nd = a.dim()
        if self.corners and allow_tuple and self.draw(st.integers(0, 3)) == 0:
            return self.draw(st.sampled_from([(), []]))  # torch: reduce over every dim
        if nd == 0:
            return None if allow_none else self.draw(st.sampled_from([0, -1]))
        choices = [st.integers(-nd, nd - 1)]
        if allow_none:
            choices.append(st.none())
        if allow_tuple and nd >= 2:
            choices.append(
                st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(tuple)
            )
        return self.draw(st.one_of(*choices))

    def candidates(self, a: int) -> list[str]:
        v = self.vals[a]
        nd = v.dim()
        out = [
            "neg",
            "sin",
            "cos",
            "tanh",
            "sigmoid",
            "leaky_relu",
            "add_scalar",
            "rsub_scalar",
            "mul_scalar",
            "add_const",
            "mul_const",
            "add",
            "sub",
            "mul",
            "where",
            "sum",
            "sum_all",
            "mean",
            "mean_all",
            "var",
            "std",
            "logsumexp",
            "softmax",
            "log_softmax",
            "reshape",
            "view",
            "flatten",
            "squeeze",
            "unsqueeze",
            "permute",
            "expand",
            "broadcast_to",
            "expand_as",
            "sum_to_size",
            "cat",
            "stack",
            "clone",
            "matmul",
            "linear",
            "add_",
            "sub_",
            "mul_",
            "clamp_",
            "fill_",
            "copy_",
            "setitem",
            "clamp",
            "clamp_tensor",
            "maximum",
            "minimum",
            "pow_scalar",
            "rpow_scalar",
            "div",
            "div_",
            "sign",
        ]
        if self.corners:
            out += ["exp", "log", "sqrt", "pow", "log1p", "abs", "relu", "rdiv_scalar"]
            if v.numel():
                out += ["amax", "amin", "max_dim", "min_dim", "max_all"]
        else:
            if v.numel() and float(v.abs().max()) < 6:
                out.append("exp")
            if v.numel() == 0 or float(v.min()) > 0.05:
                out += ["log", "sqrt", "pow", "log1p"]
            if _away(v, 0.0):
                out += ["abs", "relu", "rdiv_scalar"]
            if _distinct(v) and v.numel():  # empty inputs: see test_fuzz's known-gap test
                out += ["amax", "amin", "max_dim", "min_dim", "max_all"]
        if nd >= 1:
            out += ["transpose", "getitem"]
        if nd == 2:
            out.append("T")
        if nd >= 2:
            out += ["mT", "contiguous"]
        return out

    # one op: arguments and parameters
    def plan(self, op: str, a: int) -> tuple[tuple, dict]:
        d, v = self.draw, self.vals[a]
        nd, shape = v.dim(), tuple(v.shape)
        if op == "leaky_relu":
            return (a,), {"slope": d(st.sampled_from([0.01, 0.2, -0.5]))}
        if op == "clamp" or op == "clamp_":
            q = (
                torch.quantile(v.flatten(), torch.tensor([0.25, 0.75], dtype=DT))
                if v.numel()
                else None
            )
            lo, hi = (None, None) if q is None else (float(q[0]) - 1e-2, float(q[1]) + 1e-2)
            if self.corners and v.numel():  # bounds equal to elements (and lo == hi at times)
                flat = v.flatten()
                lo = float(flat[d(st.integers(0, flat.numel() - 1))])
                hi = lo if d(st.booleans()) else float(flat[d(st.integers(0, flat.numel() - 1))])
            which = d(st.sampled_from(["both", "min", "max"]))
            lo = lo if which != "max" else None
            hi = hi if which != "min" else None
            if lo is None and hi is None:
                lo = -1.0
            if not self.away(v, lo, hi):
                raise _Skip
            return (a,), ({"lo": lo, "hi": hi} if op == "clamp" else {"min": lo, "max": hi})
        if op == "sign":
            if not self.away(v, 0.0):
                raise _Skip
            return (a,), {}
        if op == "pow_scalar":
            p = d(st.sampled_from([2, 3, 0.5, -1.0, 1.5]))
            if p in (0.5, 1.5) and not (v.numel() == 0 or float(v.min()) > 0.05):
                raise _Skip
            if p == -1.0 and not self.away(v, 0.0, gap=0.1):
                raise _Skip
            return (a,), {"p": p}
        if op == "rpow_scalar":
            return (a,), {"c": d(st.sampled_from([2.0, 0.5]))}
        if op in ("add_scalar", "rsub_scalar", "mul_scalar", "rdiv_scalar"):
            return (a,), {"c": d(st.sampled_from([2.5, -1.5, 3, 0.25]))}
        if op in ("add_const", "mul_const"):  # a torch tensor constant (not differentiated)
            c = torch.randn(self._bshape(shape), generator=self.gen, dtype=DT)
            return (a,), {"c": c}
        if op in ("add", "sub", "mul", "maximum", "minimum"):
            b = a if self.corners and d(st.booleans()) else self.partner(a)  # a with itself: ties
            if op in ("maximum", "minimum"):
                x, y = torch.broadcast_tensors(v, self.vals[b])
                if not self.away(x - y, 0.0):
                    raise _Skip
            return (a, b), {}
        if op in ("div", "div_"):
            b = self.partner(a, lambda t: self.away(t, 0.0, gap=0.2))
            return (a, b), {}
        if op == "pow":
            b = self.partner(a)
            return (a, b), {}
        if op == "where":
            b = self.partner(a)
            out = torch.broadcast_shapes(v.shape, self.vals[b].shape)
            cond = torch.rand(self._bshape(out), generator=self.gen) > 0.5
            return (a, b), {"cond": cond}
        if op == "clamp_tensor":
            # bounds broadcast into a's shape (torch's own clamp backward fails otherwise)
            into = lambda t: torch.broadcast_shapes(t.shape, v.shape) == v.shape
            lo = self.partner(a, into)
            hi = self.partner(a, into)
            x, lo_v, hi_v = torch.broadcast_tensors(v, self.vals[lo], self.vals[hi])
            if not self.corners and not (
                _away(x - lo_v, 0.0) and _away(x - hi_v, 0.0) and bool((hi_v - lo_v > 1e-3).all())
            ):
                raise _Skip  # lo > hi: see test_fuzz's known-gap test
            return (a, lo, hi), {}
        if op in ("sum", "mean"):
            return (a,), {
                "dim": self.dim(v, allow_none=op == "sum", allow_tuple=True, op=op),
                "keepdim": d(st.booleans()),
            }
        if op in ("amax", "amin"):
            if nd == 0:
                raise _Skip
            return (a,), {"dim": self.dim(v, allow_tuple=True, op=op), "keepdim": d(st.booleans())}
        if op in ("max_dim", "min_dim"):
            return (a,), {"dim": self.dim(v), "keepdim": d(st.booleans())}
        if op in ("var", "std"):
            dim = self.dim(v, allow_tuple=True, op=op)
            dims = (dim,) if isinstance(dim, int) else (dim or tuple(range(nd)))
            n = 1
            for k in dims:
                n *= shape[k] if nd else 1
            corr = d(st.integers(0, 1))
            if not self.corners and (
                n - corr < 1
                or (op == "std" and not _finite(v.std(dim, correction=corr)))
                or (op == "std" and bool((v.std(dim, correction=corr) < 1e-3).any()))
            ):
                raise _Skip
            return (a,), {"dim": dim, "keepdim": d(st.booleans()), "correction": corr}
        if op == "logsumexp":
            return (a,), {"dim": self.dim(v, allow_tuple=True), "keepdim": d(st.booleans())}
        if op in ("softmax", "log_softmax"):
            return (a,), {"dim": self.dim(v)}
        if op in ("reshape", "view"):
            perm = d(st.permutations(list(shape))) if shape else []
            target = list(perm)
            if target and d(st.booleans()):
                target[d(st.integers(0, len(target) - 1))] = -1
            if d(st.booleans()):
                target.insert(0, 1)
            return (a,), {"shape": tuple(target)}
        if op == "flatten":
            if nd == 0:
                return (a,), {"start": 0, "end": -1}
            s = d(st.integers(0, nd - 1))
            return (a,), {"start": s, "end": d(st.integers(s, nd - 1))}
        if op == "squeeze":
            return (a,), {"dim": self.dim(v) if nd else 0}
        if op == "unsqueeze":
            return (a,), {"dim": d(st.integers(-nd - 1, nd))}
        if op == "transpose":
            return (a,), {"d0": self.dim(v), "d1": self.dim(v)}
        if op == "permute":
            return (a,), {"dims": tuple(d(st.permutations(list(range(nd)))))}
        if op in ("expand", "broadcast_to"):
            target = [s if s != 1 else d(st.sampled_from([1, 2, 3])) for s in shape]
            lead = d(st.lists(st.integers(1, 3), max_size=1 if nd >= 3 else 2))
            return (a,), {"shape": tuple(lead + target)}
        if op == "expand_as":
            ok = [
                i
                for i, t in enumerate(self.vals)
                if len(t.shape) >= nd and _expands(shape, tuple(t.shape))
            ]
            return (a, d(st.sampled_from(ok))), {}
        if op == "sum_to_size":
            target = [1 if d(st.booleans()) else s for s in shape]
            return (a,), {"shape": tuple(target[d(st.integers(0, nd)) :])}
        if op in ("cat", "stack"):
            k = d(st.integers(1, 3))
            dim = self.dim(v) if op == "cat" else d(st.integers(-nd - 1, nd))
            if op == "cat" and nd == 0:
                raise _Skip
            others = []
            for _ in range(k - 1):
                s = list(shape)
                if op == "cat":
                    s[dim] = d(st.integers(0, 3))
                same = [i for i, t in enumerate(self.vals) if tuple(t.shape) == tuple(s)]
                others.append(
                    d(st.sampled_from(same)) if same and d(st.booleans()) else self.leaf(tuple(s))
                )
            return (a, *others), {"dim": dim}
        if op == "getitem":
            return (a,), {"idx": self._index(v)}
        if op == "setitem":
            idx = self._index(v)
            tshape = v[idx].shape
            if d(st.booleans()):
                return (a,), {"idx": idx, "value": float(d(st.sampled_from([0.0, -2.0, 3.5])))}
            b = self.leaf(self._bshape(tshape))
            return (a, b), {"idx": idx}
        if op == "matmul":
            if nd == 0:
                raise _Skip
            k = shape[-1]
            n = d(st.integers(1, 3))
            bshape = (k,) if d(st.booleans()) else ((k, n) if d(st.booleans()) else (2, k, n))
            if nd == 1 and len(bshape) == 3:
                bshape = (k, n)
            return (a, self.leaf(bshape)), {}
        if op == "linear":
            if nd == 0:
                raise _Skip
            n = d(st.integers(1, 3))
            return (a, self.leaf((n, shape[-1])), self.leaf((n,))), {}
        if op in ("add_", "sub_", "mul_", "copy_"):
            b = self.partner(a, lambda t: torch.broadcast_shapes(t.shape, v.shape) == v.shape)
            if torch.broadcast_shapes(self.vals[b].shape, v.shape) != v.shape:
                raise _Skip
            return (a, b), (
                {"alpha": d(st.sampled_from([1, -0.5, 2.0]))} if op in ("add_", "sub_") else {}
            )
        if op == "fill_":
            b = self.partner(a)
            src = self.vals[b]
            if src.dim() == 0:
                return (a, b), {}
            return (a,), {"value": 1.25}
        return (a,), {}

    def _bshape(self, shape: tuple) -> tuple:
        """A random shape that broadcasts to ``shape``."""
        keep = self.draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
        s = tuple(x if k else 1 for x, k in zip(shape, keep))
        return s[self.draw(st.integers(0, len(s))) :]

    def _index(self, v: torch.Tensor) -> Any:
        d, shape = self.draw, tuple(v.shape)
        n0 = shape[0]
        kind = d(st.sampled_from(["int", "slices", "none_ellipsis", "int_tensor", "mask"]))
        if n0 == 0 or kind == "slices":

            def sl(n: int) -> slice:
                lo = d(st.one_of(st.none(), st.integers(-n, max(n - 1, 0))))
                return slice(
                    lo,
                    d(st.one_of(st.none(), st.integers(-n, n))),
                    d(st.one_of(st.none(), st.integers(1, 2))),
                )

            return tuple(sl(n) for n in shape[: d(st.integers(1, len(shape)))])
        if kind == "int":
            return d(st.integers(-n0, n0 - 1))
        if kind == "none_ellipsis":
            return (
                (None, Ellipsis, d(st.integers(-shape[-1], shape[-1] - 1)))
                if shape[-1]
                else (None,)
            )
        if kind == "int_tensor":
            return torch.tensor(d(st.lists(st.integers(-n0, n0 - 1), min_size=1, max_size=4)))
        k = d(st.integers(1, len(shape)))
        return torch.rand(shape[:k], generator=self.gen) > 0.4


class _Skip(Exception):
    """The drawn op does not fit the drawn operand (domain, ties, shapes): draw another."""


def _broadcastable(a: tuple, b: tuple) -> bool:
    try:
        torch.broadcast_shapes(a, b)
        return True
    except RuntimeError:
        return False


def _expands(small: tuple, big: tuple) -> bool:
    lead = len(big) - len(small)
    return lead >= 0 and all(s == 1 or s == b for s, b in zip(small, big[lead:]))


def _setitem_ok(v: torch.Tensor, idx: Any) -> bool:
    # With a repeated advanced index the written value depends on which duplicate lands last
    # (unspecified in torch): avoid that ambiguity.
    if isinstance(idx, torch.Tensor) and idx.dtype != torch.bool:
        return len(set((idx % v.shape[0]).tolist())) == idx.numel()
    return True


def _try_step(p: _Planner, op: str, a: int) -> bool:
    """Plan ``op`` on pool value ``a`` and append it; False (pool unchanged) if it does not fit."""
    n_before = len(p.code)
    try:
        args, params = p.plan(op, a)
        if op == "setitem" and not _setitem_ok(p.vals[a], params["idx"]):
            raise _Skip
        with torch.no_grad():
            out = APPLY[op](TORCH_NS, *[p.vals[i] for i in args], **params)
        if not p.corners and (not _finite(out) or (out.numel() and float(out.abs().max()) > 1e4)):
            raise _Skip
    except (_Skip, RuntimeError, IndexError, ValueError):
        del p.code[n_before:]  # forget leaves made for a rejected step
        del p.vals[n_before:]
        return False
    p.code.append(Step(op, args, params))
    p.vals.append(out)
    return True


def _inputs(draw: Any, p: _Planner, max_inputs: int) -> None:
    base = tuple(draw(st.lists(st.integers(0 if p.corners else 1, 4), min_size=0, max_size=3)))
    for _ in range(draw(st.integers(1, max_inputs))):
        keep = draw(st.lists(st.booleans(), min_size=len(base), max_size=len(base)))
        shape = tuple(s if k else 1 for s, k in zip(base, keep))
        p.leaf(shape[draw(st.integers(0, len(shape))) :])


def _finish(draw: Any, p: _Planner, gen: torch.Generator) -> Program:
    n = len(p.vals)
    extra = draw(st.lists(st.integers(0, n - 1), max_size=2, unique=True))
    outputs = tuple(dict.fromkeys([n - 1, *extra]))
    grad_outputs = tuple(torch.randn(p.vals[i].shape, generator=gen, dtype=DT) for i in outputs)
    if p.corners and draw(st.booleans()):  # ±inf / NaN / 0 in the upstream gradients too
        grad_outputs = tuple(p._special(g) if g.numel() else g for g in grad_outputs)
    return Program(p.code, outputs, grad_outputs, draw(st.booleans()))


@st.composite
def programs(draw: Any, max_steps: int = 8, max_inputs: int = 3, corners: bool = False) -> Program:
    """Random programs: random ops over random broadcastable shapes, reusing intermediates."""
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    p = _Planner(draw, gen, corners)
    _inputs(draw, p, max_inputs)
    steps = draw(st.integers(1, max_steps))
    done = tries = 0
    while done < steps and tries < steps * 20:
        tries += 1
        a = p.pick()
        done += _try_step(p, draw(st.sampled_from(p.candidates(a))), a)
    return _finish(draw, p, gen)


@st.composite
def single_op_programs(draw: Any, op: str) -> Program:
    """A program that applies ``op`` (to a random input, or to an intermediate made for it)."""
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    p = _Planner(draw, gen)
    _inputs(draw, p, 2)
    for _ in range(30):
        a = p.pick()
        if op in p.candidates(a) and _try_step(p, op, a):
            return _finish(draw, p, gen)
        # make a more suitable operand: positive, distinct, at least 1-d, then retry
        with torch.no_grad():
            v = p.vals[a]
            fix = draw(st.sampled_from(["exp", "unsqueeze", "stack"]))
            if fix == "exp" and v.numel() and float(v.abs().max()) < 6:
                _try_step(p, "exp", a)
            elif fix == "unsqueeze" or v.dim() == 0:
                _try_step(p, "unsqueeze", a)
            else:
                _try_step(p, "stack", a)
    from hypothesis import reject

    reject()


# ---- the interpreter -----------------------------------------------------------------------------
def constants(prog: Program) -> list:
    """The torch tensors a program passes as constants: indices, masks, conditions, operands."""
    return [
        v
        for c in prog.code
        if isinstance(c, Step)
        for v in c.params.values()
        if isinstance(v, torch.Tensor)
    ]


def _execute(prog: Program, lib: str) -> tuple[list, list]:
    """The forward pass of ``prog`` with ``lib``: every pool value, and the input leaves."""
    m = AD_NS if lib == "ad" else TORCH_NS
    pool: list = []
    leaves: list = []
    for c in prog.code:
        if isinstance(c, Leaf):
            t = (
                ad.tensor(c.data, requires_grad=True)
                if lib == "ad"
                else c.data.clone().requires_grad_(True)
            )
            leaves.append(t)
            pool.append(t)
        else:
            pool.append(APPLY[c.op](m, *[pool[i] for i in c.args], **c.params))
    return pool, leaves


def run(
    prog: Program, lib: str, mutate_constants: bool = False, root_hook: Callable | None = None
) -> tuple[list, list]:
    """Execute ``prog`` with ``lib`` ("ad" or "torch"): (output values, input gradients) as plain
    detached torch tensors (None for an input the outputs do not depend on).

    ``mutate_constants``: after the forward, change every constant tensor in place (same values,
    a new version), as a user mutating an index or mask after use would. ``root_hook`` is
    registered once on every recorded (non-leaf) output."""
    pool, leaves = _execute(prog, lib)
    outs = [pool[i] for i in prog.outputs]
    gouts = [g if lib == "torch" else ad.tensor(g) for g in prog.grad_outputs]
    if mutate_constants:
        for t in constants(prog):
            t.copy_(t.clone())  # bumps the version counter, keeps the values
    if root_hook is not None:  # on recorded outputs (a leaf output's hook is a different story)
        for o in dict.fromkeys(outs):
            if o.grad_fn is not None:
                o.register_hook(root_hook)
    if prog.use_backward:
        loss = sum(((o * g).sum() for o, g in zip(outs, gouts)), start=0.0 * leaves[0].sum())
        loss.backward()
        grads = [None if x.grad is None else x.grad for x in leaves]
    else:
        live = [(o, g) for o, g in zip(outs, gouts) if o.requires_grad]
        if not live:
            grads = [None] * len(leaves)
        else:
            grad = ad.grad if lib == "ad" else torch.autograd.grad
            grads = list(
                grad([o for o, _ in live], leaves, [g for _, g in live], allow_unused=True)
            )
    return [_plain(o) for o in outs], [None if g is None else _plain(g) for g in grads]


def _plain(t: Any) -> torch.Tensor:
    return (t.data if isinstance(t, ad.Tensor) else t).detach().clone()


def run_second_order(prog: Program, lib: str) -> list:
    """d/d(inputs) of Σ <grad_i, u_i>, the first-order gradients built with ``create_graph``:
    the second-order check (Hessian-vector products) of a program, as plain torch tensors."""
    pool, leaves = _execute(prog, lib)
    grad = ad.grad if lib == "ad" else torch.autograd.grad
    outs = [pool[i] for i in prog.outputs if pool[i].requires_grad]
    if not outs:
        return [None] * len(leaves)
    gouts = [
        g if lib == "torch" else ad.tensor(g)
        for g, i in zip(prog.grad_outputs, prog.outputs)
        if pool[i].requires_grad
    ]
    firsts = grad(outs, leaves, gouts, create_graph=True, allow_unused=True)
    gen = torch.Generator().manual_seed(len(prog.code))
    total = None
    for g in firsts:
        if g is None:
            continue
        u = torch.randn(g.shape, generator=gen, dtype=DT)  # drawn alike on both sides
        if not g.requires_grad:  # a constant first-order gradient: nothing to differentiate
            continue
        term = (g * (u if lib == "torch" else ad.tensor(u))).sum()
        total = term if total is None else total + term
    if total is None:
        return [None] * len(leaves)
    seconds = grad([total], leaves, allow_unused=True)
    return [None if s is None else _plain(s) for s in seconds]
