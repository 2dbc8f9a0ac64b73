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
raise. The ops added to tapegrad later (``APPLY_LATER``: prod, norm, cumsum, gather/scatter_add,
masked_fill, flip/repeat/split, mm/dot, and nn's conv2d, pooling, batch/layer norm, embedding,
attention, activations and fused losses) also get corner operands of their own
(``CORNER_POINTS``: exact zeros for prod, ties for max pooling, constant slices for the norms,
saturating values for the activations, inputs of exactly 0 and 1 for binary cross-entropy); ops of
a fixed rank reshape their operand to it first (``RANKS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

import autodiff as ad
import nn.functional as nnF
from nn.gelu import erf as nn_erf
from nn.pool import pooled_size

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
    min=torch.min,
    erf=torch.erf,
    masked_fill=torch.masked_fill,
    scatter_add=torch.scatter_add,
    dot=torch.dot,
    F=F,
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
    min=ad.min,
    erf=nn_erf,
    masked_fill=ad.masked_fill,
    scatter_add=ad.scatter_add,
    dot=ad.dot,
    F=nnF,
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


def _norm(m: Any, a: Any, p: Any, dim: Any, keepdim: bool) -> Any:
    """``a.norm(p, dim, keepdim)``. For p = ±inf the oracle lets torch's own norm see only the
    extreme elements (and NaNs), the others replaced by a constant that cannot win: the same
    values and, for finite upstream gradients, torch's gradients (g * 0 = 0 for the others); an
    infinite upstream gradient then gives those others 0 rather than NaN, as tapegrad does
    (differences.py: "norm_p0_inf")."""
    if m is TORCH_NS and isinstance(p, float) and math.isinf(p) and a.numel():
        with torch.no_grad():
            ax = a.abs()
            top = torch.linalg.vector_norm(a, p, dim=dim, keepdim=True)
            hit = (ax == top) | ax.isnan()
        a = torch.where(hit, a, 0.0 if p > 0 else float("inf"))
    return a.norm(p, dim, keepdim)


def _joined(m: Any, pieces: Any, dim: int) -> Any:
    """The pieces of a split/chunk in one output, each scaled differently (each one checked)."""
    return m.cat([q * (i + 1) for i, q in enumerate(pieces)], dim)


def _affine(wb: tuple, affine: str) -> tuple:
    """(weight, bias) from the tensors passed: ``affine`` names which of the two are there."""
    it = iter(wb)
    return (next(it) if "w" in affine else None, next(it) if "b" in affine else None)


def _batch_norm(m: Any, x: Any, *wb: Any, affine: str, **kw: Any) -> Any:
    w, b = _affine(wb, affine)
    if m is TORCH_NS and w is None and b is not None:
        # torch's own double backward fails with a bias and no weight ("Expected a proper Tensor
        # but got None"): the oracle passes the weight 1 (a constant), the same function
        w = torch.ones(x.shape[1], dtype=x.dtype)
    return m.F.batch_norm(x, kw.pop("running_mean"), kw.pop("running_var"), w, b, **kw)


def _layer_norm(m: Any, x: Any, *wb: Any, affine: str, **kw: Any) -> Any:
    w, b = _affine(wb, affine)
    if m is TORCH_NS and w is None and b is not None:  # as for batch_norm
        w = torch.ones(kw["normalized_shape"], dtype=x.dtype)
    return m.F.layer_norm(x, weight=w, bias=b, **kw)


_FIRST = frozenset(APPLY)

# Ops added to tapegrad after the fuzzer's first catalogue: everyday tensor calls, nn's functional
# ops (convolution, pooling, normalisation, embedding, attention, activations, fused losses).
APPLY.update(
    {
        "square": lambda m, a: a.square(),
        "erf": lambda m, a: m.erf(a),
        "gelu": lambda m, a, approximate: m.F.gelu(a, approximate=approximate),
        "silu": lambda m, a: m.F.silu(a),
        "softplus": lambda m, a: m.F.softplus(a),
        "float_double": lambda m, a: a.float().double(),
        "clamp_tensor_one": lambda m, a, b, which: (
            m.clamp(a, b, None) if which == "min" else m.clamp(a, None, b)
        ),
        "where_scalar": lambda m, a, cond, other: m.where(cond, a, other),
        "masked_fill": lambda m, a, mask, value: a.masked_fill(mask, value),
        "masked_fill_tensor": lambda m, a, v, mask: m.masked_fill(a, mask, v),
        "cumsum": lambda m, a, dim: a.cumsum(dim),
        "prod": lambda m, a, dim, keepdim: (
            a.prod() if dim is None else a.prod(dim, keepdim=keepdim)
        ),
        "norm": _norm,
        "min_all": lambda m, a: m.min(a),
        "flip": lambda m, a, dims: a.flip(dims),
        "repeat": lambda m, a, reps: a.repeat(*reps) if reps else a.repeat(reps),
        "t": lambda m, a: a.t(),
        "split": lambda m, a, size, dim: _joined(m, a.split(size, dim), dim),
        "chunk": lambda m, a, chunks, dim: _joined(m, a.chunk(chunks, dim), dim),
        "gather": lambda m, a, dim, index: a.gather(dim, index),
        "scatter_add": lambda m, a, src, dim, index: m.scatter_add(a, dim, index, src),
        "mm": lambda m, a, b: a.mm(b),
        "dot": lambda m, a, b: m.dot(a, b),
        "conv2d": lambda m, x, w, *b, **kw: m.F.conv2d(x, w, b[0] if b else None, **kw),
        "max_pool2d": lambda m, x, **kw: m.F.max_pool2d(x, **kw),
        "avg_pool2d": lambda m, x, **kw: m.F.avg_pool2d(x, **kw),
        "batch_norm": _batch_norm,
        "layer_norm": _layer_norm,
        "embedding": lambda m, w, input, padding_idx: m.F.embedding(input, w, padding_idx),
        "sdpa": lambda m, q, k, v, **kw: m.F.scaled_dot_product_attention(q, k, v, **kw),
        "mse_loss": lambda m, x, t, reduction: m.F.mse_loss(x, t, reduction=reduction),
        "bce": lambda m, x, *t, reduction, squash, target=None: m.F.binary_cross_entropy(
            x.sigmoid() if squash else x, t[0] if t else target, reduction=reduction
        ),
        "bce_with_logits": lambda m, x, t, reduction: m.F.binary_cross_entropy_with_logits(
            x, t, reduction=reduction
        ),
        "cross_entropy": lambda m, x, target, reduction: m.F.cross_entropy(
            x, target, reduction=reduction
        ),
        "cross_entropy_soft": lambda m, x, t, reduction: m.F.cross_entropy(
            x, t, reduction=reduction
        ),
    }
)
APPLY_LATER = frozenset(APPLY) - _FIRST
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
        return out + self._later_candidates(v)

    def _later_candidates(self, v: torch.Tensor) -> list[str]:
        nd, n = v.dim(), v.numel()
        out = [
            "square",
            "erf",
            "gelu",
            "silu",
            "softplus",
            "float_double",
            "clamp_tensor_one",
            "where_scalar",
            "masked_fill",
            "masked_fill_tensor",
            "cumsum",
            "prod",
            "norm",
            "repeat",
            "mse_loss",
            "bce",
            "bce_with_logits",
        ]
        if n and (self.corners or _distinct(v)):
            out.append("min_all")
        if nd >= 1:
            out += ["flip", "split", "chunk", "gather", "scatter_add", "layer_norm"]
            out += ["cross_entropy", "cross_entropy_soft"]
        # ops of a fixed rank: the operand is reshaped to it first where it has another
        out += ["t", "dot", "mm", "embedding", "batch_norm", "sdpa"]
        out += ["conv2d", "max_pool2d", "avg_pool2d"]
        return out

    def _as_dims(self, a: int, lo: int, hi: int) -> int:
        """v[a] with ``lo`` to ``hi`` dims: itself, or reshaped (leading 1s added, or leading
        dims merged) by a step of its own."""
        v = self.vals[a]
        nd, shape = v.dim(), tuple(v.shape)
        if lo <= nd <= hi:
            return a
        if nd < lo:
            shape = (1,) * (lo - nd) + shape
        else:
            shape = (math.prod(shape[: nd - hi + 1]),) + shape[nd - hi + 1 :]
        self.code.append(Step("reshape", (a,), {"shape": shape}))
        self.vals.append(v.reshape(shape))
        return len(self.vals) - 1

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
        if op in APPLY_LATER:
            return self._plan_later(op, a)
        return (a,), {}

    # ---- the ops added later -----------------------------------------------------------------
    def _corner_leaf(self, shape: tuple, points: tuple, base: str = "randn") -> int | None:
        """Corners, half the time: a fresh leaf of ``shape`` holding the op's own special points
        (at random elements, or at every one): exact zeros for prod and norm, ties under max
        pooling, constant slices for the norms, saturating values for the activations."""
        if not self.corners or not self.draw(st.booleans()):
            return None
        rand = torch.rand if base == "rand" else torch.randn
        data = rand(shape, generator=self.gen, dtype=DT)
        if data.numel():
            pts = torch.tensor(points, dtype=DT)
            pick = pts[torch.randint(0, len(points), shape, generator=self.gen)]
            frac = self.draw(st.sampled_from([0.3, 1.0]))
            data = torch.where(torch.rand(shape, generator=self.gen) < frac, pick, data)
        self.code.append(Leaf(data))
        self.vals.append(data)
        return len(self.vals) - 1

    def same(self, a: int) -> int:
        """A pool value of exactly v[a]'s shape (v[a] itself included), else a new leaf."""
        shape = self.vals[a].shape
        ok = [i for i, t in enumerate(self.vals) if t.shape == shape]
        if self.draw(st.booleans()):
            return self.draw(st.sampled_from(ok))
        return self.leaf(tuple(shape))

    def _size(self, hi: int = 3) -> int:
        """A size from 1 (0 in corners) to ``hi``."""
        return self.draw(st.integers(0 if self.corners else 1, hi))

    def _plan_later(self, op: str, a: int) -> tuple[tuple, dict]:
        d = self.draw
        corner = CORNER_POINTS.get(op)
        if corner is not None:
            c = self._corner_leaf(tuple(self.vals[a].shape), corner)
            a = a if c is None else c
        if op in RANKS:
            a = self._as_dims(a, *RANKS[op])
        v = self.vals[a]
        nd, shape = v.dim(), tuple(v.shape)
        reduction = st.sampled_from(["mean", "sum", "none"])
        if op == "gelu":
            return (a,), {"approximate": d(st.sampled_from(["none", "tanh"]))}
        if op == "clamp_tensor_one":
            into = lambda t: torch.broadcast_shapes(t.shape, v.shape) == v.shape  # noqa: E731
            b = a if self.corners and d(st.booleans()) else self.partner(a, into)
            x, bv = torch.broadcast_tensors(v, self.vals[b])
            if x.shape != v.shape or not self.away(x - bv, 0.0):
                raise _Skip
            return (a, b), {"which": d(st.sampled_from(["min", "max"]))}
        if op in ("where_scalar", "masked_fill", "masked_fill_tensor"):
            values = [0.5, -2.0] + ([float("nan"), float("inf")] if self.corners else [])
            flags = torch.rand(self._bshape(shape), generator=self.gen) > 0.5
            if op == "where_scalar":
                return (a,), {"cond": flags, "other": d(st.sampled_from(values))}
            if op == "masked_fill":
                return (a,), {"mask": flags, "value": d(st.sampled_from(values))}
            scalars = [i for i, t in enumerate(self.vals) if t.dim() == 0]
            b = d(st.sampled_from(scalars)) if scalars and d(st.booleans()) else self.leaf(())
            return (a, b), {"mask": flags}
        if op == "cumsum":
            return (a,), {"dim": self.dim(v)}
        if op == "prod":
            dim = None if d(st.booleans()) else self.dim(v)
            return (a,), {"dim": dim, "keepdim": d(st.booleans())}
        if op == "norm":
            p = d(st.sampled_from([2, "fro", 1, 3, 1.5, 0.5, 0, float("inf"), float("-inf")]))
            dim = self.dim(v, allow_none=True, allow_tuple=True)
            if not self.corners:
                kink = p in (1, 0.5) or (isinstance(p, float) and p < 0)
                if (kink and not _away(v, 0.0)) or (
                    p in (math.inf, -math.inf) and not _distinct(v.abs())
                ):
                    raise _Skip
                y = v.norm(p, dim)
                if p != 0 and y.numel() and float(y.min()) < 1e-2:
                    raise _Skip  # the norm's own kink at 0
            return (a,), {"p": p, "dim": dim, "keepdim": d(st.booleans())}
        if op == "flip":
            dims = d(
                st.lists(
                    st.integers(-nd, nd - 1), min_size=1, max_size=nd, unique_by=lambda k: k % nd
                )
            )
            return (a,), {"dims": tuple(dims)}
        if op == "repeat":
            extra = d(st.integers(0, 1))
            return (a,), {"reps": tuple(self._size(2) for _ in range(nd + extra))}
        if op in ("split", "chunk"):
            dim = self.dim(v)
            n = shape[dim]
            if op == "chunk":
                return (a,), {"chunks": d(st.integers(1, 4)), "dim": dim}
            if d(st.booleans()):  # sections: uneven sizes, zeros included
                cuts = sorted(d(st.lists(st.integers(0, n), max_size=3)))
                size: Any = [hi - lo for lo, hi in zip([0] + cuts, cuts + [n])]
            else:
                size = d(st.integers(1, n + 1))
            return (a,), {"size": size, "dim": dim}
        if op == "gather":
            dim = self.dim(v)
            k = dim % nd
            ishape = tuple(
                self._size() if i == k else d(st.integers(0 if self.corners else min(1, s), s))
                for i, s in enumerate(shape)
            )
            index = torch.randint(0, max(shape[k], 1), ishape, generator=self.gen)
            return (a,), {"dim": dim, "index": index}
        if op == "scatter_add":
            dim = self.dim(v)
            k = dim % nd
            sshape = tuple(
                self._size() if i == k else d(st.integers(0 if self.corners else min(1, s), s))
                for i, s in enumerate(shape)
            )
            src = self.leaf(sshape)
            index = torch.randint(0, max(shape[k], 1), sshape, generator=self.gen)
            return (a, src), {"dim": dim, "index": index}
        if op == "mm":
            k = shape[1]
            ok = [i for i, t in enumerate(self.vals) if t.dim() == 2 and t.shape[0] == k]
            b = d(st.sampled_from(ok)) if ok and d(st.booleans()) else self.leaf((k, self._size()))
            return (a, b), {}
        if op == "dot":
            return (a, self.same(a)), {}
        if op in ("mse_loss", "bce_with_logits", "cross_entropy_soft"):
            return (a, self.same(a)), {"reduction": d(reduction)}
        if op == "bce":
            c = self._corner_leaf(shape, (0.0, 1.0, 0.5), base="rand")  # logs clamped at -100
            if c is not None:
                a, v, squash = c, self.vals[c], False
            else:
                inside = v.numel() == 0 or bool(((v > 0.01) & (v < 0.99)).all())
                squash = not inside or d(st.booleans())
            x = v.sigmoid() if squash else v
            if not self.corners and x.numel() and not bool(((x > 1e-6) & (x < 1 - 1e-6)).all()):
                raise _Skip
            kw = {"reduction": d(reduction), "squash": squash}
            return (a, self.same(a)), kw
        if op == "cross_entropy":
            cdim = 1 if nd >= 2 else 0
            if shape[cdim] == 0:
                raise _Skip
            tshape = shape[:cdim] + shape[cdim + 1 :]
            target = torch.randint(0, shape[cdim], tshape, generator=self.gen)
            return (a,), {"target": target, "reduction": d(reduction)}
        if op == "conv2d":
            c, h, w = shape[-3:]
            groups = d(st.sampled_from([g for g in (1, 2, 3) if c % g == 0] or [1]))
            c_out = groups * d(st.integers(1, 2))
            k = (d(st.integers(1, max(1, min(3, h)))), d(st.integers(1, max(1, min(3, w)))))
            dil = (d(st.integers(1, 2)), d(st.integers(1, 2)))
            kind = d(st.sampled_from(["int", "int", "same", "valid"]))
            stride = (1, 1) if kind == "same" else (d(st.integers(1, 3)), d(st.integers(1, 3)))
            padding: Any = kind if kind != "int" else (d(st.integers(0, 2)), d(st.integers(0, 1)))
            wt = self.leaf((c_out, c // groups) + k)
            args = (a, wt) + ((self.leaf((c_out,)),) if d(st.booleans()) else ())
            kw = {"stride": stride, "padding": padding, "dilation": dil, "groups": groups}
            return args, kw
        if op in ("max_pool2d", "avg_pool2d"):
            h, w = shape[-2:]
            k = (d(st.integers(1, max(1, min(3, h)))), d(st.integers(1, max(1, min(3, w)))))
            stride = d(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
            pad = (d(st.integers(0, k[0] // 2)), d(st.integers(0, k[1] // 2)))
            kw = {"kernel_size": k, "stride": stride, "padding": pad, "ceil_mode": d(st.booleans())}
            if op == "avg_pool2d":
                kw["count_include_pad"] = d(st.booleans())
                kw["divisor_override"] = d(st.sampled_from([None, None, 1, 3]))
                return (a,), kw
            kw["dilation"] = (d(st.integers(1, 2)), d(st.integers(1, 2)))
            # no window wholly in the padding (differences.py: "maxpool_padding_window")
            if not _covered((h, w), kw) or not self.distinct(v):
                raise _Skip
            return (a,), kw
        if op == "batch_norm":
            ch = shape[1]
            affine = d(st.sampled_from(["", "w", "b", "wb"]))
            wb = tuple(self.leaf((ch,)) for _ in affine)
            kw: dict = {"training": d(st.booleans()), "eps": d(st.sampled_from([1e-5, 0.1]))}
            kw["running_mean"] = kw["running_var"] = None
            if not kw["training"]:
                kw["running_mean"] = torch.randn(ch, generator=self.gen, dtype=DT)
                var = torch.rand(ch, generator=self.gen, dtype=DT) + 0.1
                if self.corners and d(st.booleans()):
                    var = torch.zeros_like(var)
                kw["running_var"] = var
            return (a, *wb), {"affine": affine, **kw}
        if op == "layer_norm":
            ns = shape[nd - d(st.integers(1, nd)) :]
            affine = d(st.sampled_from(["", "w", "b", "wb"]))
            wb = tuple(self.leaf(ns) for _ in affine)
            eps = d(st.sampled_from([1e-5, 0.1]))
            return (a, *wb), {"affine": affine, "normalized_shape": ns, "eps": eps}
        if op == "embedding":
            n = shape[0]
            if n == 0:
                raise _Skip
            ishape = tuple(d(st.lists(st.integers(0 if self.corners else 1, 3), max_size=2)))
            index = torch.randint(0, n, ishape, generator=self.gen)  # rows repeat: they add up
            pad = d(st.one_of(st.none(), st.integers(-n, n - 1)))
            return (a,), {"input": index, "padding_idx": pad}
        if op == "sdpa":
            n_q = shape[-2]
            if d(st.booleans()):  # self-attention: q = k = v
                k = vv = a
                n_k = n_q
            else:
                n_k = self._size()
                k = self.leaf(shape[:-2] + (n_k, shape[-1]))
                vv = self.leaf(shape[:-2] + (n_k, self._size()))
            kw = {}
            mask = d(st.sampled_from(["none", "causal", "bool", "float"]))
            if mask == "causal":
                kw["is_causal"] = True
            elif mask == "bool":  # rows with every key masked out included
                kw["attn_mask"] = torch.rand((n_q, n_k), generator=self.gen) > 0.4
            elif mask == "float":
                m = torch.randn((n_q, n_k), generator=self.gen, dtype=DT)
                if self.corners and d(st.booleans()):
                    m = m.masked_fill(torch.rand((n_q, n_k), generator=self.gen) > 0.5, -math.inf)
                kw["attn_mask"] = m
            if d(st.booleans()):
                kw["scale"] = d(st.sampled_from([0.25, 1.5]))
            return (a, k, vv), kw
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


# Corners of the ops added later: values put into a fresh operand (see _Planner._corner_leaf).
_INF = float("inf")
SATURATING = (0.0, 20.0, -20.0, 40.0, -40.0, _INF, -_INF)
CORNER_POINTS: dict[str, tuple] = {
    "erf": SATURATING,
    "gelu": SATURATING,
    "silu": SATURATING,
    "softplus": SATURATING,  # torch's softplus is x itself above 20
    "bce_with_logits": SATURATING,
    "float_double": (1e39, -1e39, 1e-46, 3.4028234663852886e38),  # beyond float32: inf, 0
    "prod": (0.0,),  # one zero in a slice, several, all
    "norm": (0.0, 1.0, -1.0),  # zero slices, ties of |x| (±inf norms)
    "min_all": (0.0, 1.0),
    "max_pool2d": (0.0, 1.0, -1.0, -_INF),  # ties within a window
    "cumsum": (_INF, -_INF),
    "batch_norm": (1.0,),  # constant channels: zero variance
    "layer_norm": (1.0,),
    "cross_entropy": (0.0, 50.0, -50.0, _INF, -_INF),
    "cross_entropy_soft": (0.0, 50.0, -50.0, _INF, -_INF),
    "sdpa": (0.0, 30.0, -30.0),
}


# The ranks of the ops that take operands of a fixed rank (see _Planner._as_dims).
RANKS = {
    "t": (0, 2),
    "dot": (1, 1),
    "mm": (2, 2),
    "embedding": (2, 2),
    "batch_norm": (2, 4),
    "sdpa": (2, 4),
    "conv2d": (3, 4),
    "max_pool2d": (3, 4),
    "avg_pool2d": (3, 4),
}


def _covered(hw: tuple, kw: dict) -> bool:
    """Every max-pooling window holds at least one input element (none lies in the padding)."""
    k, p, d = kw["kernel_size"], kw["padding"], kw["dilation"]
    s = kw["stride"] or k
    return all(
        any(0 <= o * s[i] - p[i] + j * d[i] < size for j in range(k[i]))
        for i, size in enumerate(hw)
        for o in range(pooled_size(size, k[i], s[i], p[i], d[i], kw["ceil_mode"]))
    )


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
            fix = draw(st.sampled_from(["exp", "unsqueeze", "stack", "flat"]))
            if fix == "exp" and v.numel() and float(v.abs().max()) < 6:
                _try_step(p, "exp", a)
            elif fix == "flat":  # down to 1-d (dot)
                p.code.append(Step("reshape", (a,), {"shape": (-1,)}))
                p.vals.append(v.reshape(-1))
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
