"""The op table: every differentiable op, written once for autodiff and torch.

Each entry's ``fn(ns, *inputs, **kw)`` runs with ``ns`` = the autodiff module or a torch
namespace, so one line describes both the op under test and its oracle. ``args`` draws
``(inputs, kw)``: float64 inputs (all differentiated) and constant arguments (dims, indices,
masks, constant tensors). ``second`` marks the ops also checked to second order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ad_support import (
    broadcast_shapes,
    dims_of,
    generators,
    matmul_shapes,
    reduced_count,
    shapes,
    shapes_into,
    values,
)


@dataclass(frozen=True)
class Op:
    name: str
    fn: Callable[..., Any]
    args: st.SearchStrategy
    second: bool = False
    gc: dict = field(default_factory=dict)  # gradcheck overrides (eps/atol for float32 casts)


@st.composite
def _args(draw: Any, kinds: tuple, shape_st: Any, params: Any) -> tuple:
    shp = draw(shape_st)
    gen = draw(generators())
    xs = [values(s, k, gen) for s, k in zip(shp, kinds)]
    kw = params(draw, shp, gen) if params is not None else {}
    return xs, kw


def args(*kinds: str, shape_st: Any = None, params: Any = None) -> st.SearchStrategy:
    """Inputs of the given value kinds. Default shapes: any one shape for one input, mutually
    broadcastable shapes for several."""
    if shape_st is None:
        shape_st = shapes().map(lambda s: (s,)) if len(kinds) == 1 else broadcast_shapes(len(kinds))
    return _args(tuple(kinds), shape_st, params)


def one(min_dims: int = 0, max_dims: int = 3, max_side: int = 3) -> st.SearchStrategy:
    return shapes(min_dims=min_dims, max_dims=max_dims, max_side=max_side).map(lambda s: (s,))


# ---- constant arguments, drawn from the shapes -------------------------------------------------
def _const_like_broadcast(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    """A constant torch tensor (not an autodiff one) whose shape broadcasts with the input."""
    other = draw(hnp.broadcastable_shapes(shp[0], min_dims=0, max_dims=3, max_side=3))
    return {"c": values(other, "nonzero", gen)}


def _reduce(
    correction: bool = False, allow_tuple: bool = True, allow_none: bool = True, min_count: int = 1
) -> Any:
    def params(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
        (s,) = shp
        dim = draw(dims_of(len(s), allow_none=allow_none, allow_tuple=allow_tuple))
        kw: dict = {"dim": dim, "keepdim": draw(st.booleans())}
        n = reduced_count(s, dim)
        if correction:
            c = draw(st.integers(0, 2))
            kw["correction"] = min(c, n - min_count)
        return kw

    return params


def _one_dim(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    return {"dim": draw(dims_of(len(shp[0]), allow_none=False, allow_tuple=False))}


def _squeeze_dim(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    nd = len(shp[0])
    return {"dim": draw(st.one_of(st.none(), st.integers(-max(nd, 1), max(nd, 1) - 1)))}


def _unsqueeze_dim(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    nd = len(shp[0])
    return {"dim": draw(st.integers(-nd - 1, nd))}


def _two_dims(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    nd = max(len(shp[0]), 1)
    return {"d0": draw(st.integers(-nd, nd - 1)), "d1": draw(st.integers(-nd, nd - 1))}


def _perm(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    nd = len(shp[0])
    p = draw(st.permutations(range(nd)))
    return {"dims": tuple(d - nd if draw(st.booleans()) else d for d in p)}


def _flatten_dims(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    nd = max(len(shp[0]), 1)
    a = draw(st.integers(0, nd - 1))
    b = draw(st.integers(a, nd - 1))
    return {"start": a, "end": b - nd if draw(st.booleans()) else b}


def _reshape_target(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    s = shp[0]
    n = 1
    for v in s:
        n *= v
    options = [(-1,), tuple(reversed(s)), (1, n), (n, 1, 1), tuple(s) + (1,)]
    if n == 1:
        options.append(())
    return {"shape": draw(st.sampled_from(options))}


def _expand_target(draw: Any, shp: tuple, gen: torch.Generator, minus: bool = True) -> dict:
    """A shape the input expands to: new leading dims, size-1 dims grown, -1 keeping a dim."""
    s = shp[0]
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    body = tuple(
        draw(st.integers(1, 3)) if v == 1 else (-1 if minus and draw(st.booleans()) else v)
        for v in s
    )
    return {"shape": lead + body}


def _expand_like(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    return {"c": torch.zeros(_expand_target(draw, shp, gen, minus=False)["shape"])}


def _sum_to_target(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    return {"shape": draw(shapes_into(shp[0]))}


@st.composite
def _input_and_bounds(draw: Any, n_bounds: int) -> tuple:
    """torch.clamp keeps the input's shape: bounds broadcast into it, never beyond."""
    s = draw(shapes())
    return (s,) + tuple(draw(shapes_into(s)) for _ in range(n_bounds))


def _joined(n_max: int, new_dim: bool) -> Any:
    @st.composite
    def shape_st(draw: Any) -> tuple:
        base = draw(shapes(min_dims=1))
        n = draw(st.integers(1, n_max))
        if new_dim:
            return (base,) * n
        d = draw(st.integers(0, len(base) - 1))
        return tuple(base[:d] + (draw(st.integers(1, 3)),) + base[d + 1 :] for _ in range(n))

    return shape_st()


def _join_dim(new_dim: bool) -> Any:
    def params(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
        nd = len(shp[0]) + (1 if new_dim else 0)
        if new_dim:
            return {"dim": draw(st.integers(-nd, nd - 1))}
        # cat joins along a dim where the sizes may differ; all other dims must agree
        ok = [
            i for i in range(nd) if all(len({s[j] for s in shp}) == 1 for j in range(nd) if j != i)
        ]
        d = draw(st.sampled_from(ok))
        return {"dim": d - nd if draw(st.booleans()) else d}

    return params


@st.composite
def _linear_shapes(draw: Any, bias: bool) -> tuple:
    i, o = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    return (lead + (i,), (o, i)) + (((o,),) if bias else ())


@st.composite
def _linear_1d_weight_shapes(draw: Any) -> tuple:
    """A 1-D weight (one output feature, dropped from the output's shape), as torch accepts."""
    i = draw(st.integers(1, 3))
    return (tuple(draw(st.lists(st.integers(1, 3), max_size=2))) + (i,), (i,))


@st.composite
def _linear_broadcast_bias_shapes(draw: Any) -> tuple:
    """A bias that broadcasts to the output without having out_features elements: (1,), (), and
    for a 2-D input (batch, out) or (1, out) (torch refuses those for other ranks)."""
    x, w, _ = draw(_linear_shapes(True))
    more = [(x[0], w[0]), (1, w[0]), (1, 1)] if len(x) == 2 else []
    return x, w, draw(st.sampled_from([(1,), ()] + more))


def _all_dims_listed(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    """``dim=()`` or ``dim=[]``: torch reduces over every dim."""
    return {"dim": draw(st.sampled_from([(), []])), "keepdim": draw(st.booleans())}


def _where_cond(n_branches: int) -> Any:
    """A random bool condition: the third of three broadcastable shapes (two tensor branches),
    or a shape broadcastable with the single tensor branch."""

    def params(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
        if n_branches == 2:
            cshape = shp[2]
        else:
            cshape = draw(hnp.broadcastable_shapes(shp[0], min_dims=0, max_dims=3, max_side=3))
        return {"cond": torch.rand(cshape, generator=gen) > 0.5}

    return params


def _index(kind: str) -> Any:
    def params(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
        s = shp[0]
        n0 = s[0]
        if kind == "int":
            return {"idx": draw(st.integers(-n0, n0 - 1))}
        if kind == "slices":

            def sl(n: int) -> slice:
                a = draw(st.one_of(st.none(), st.integers(-n, n - 1)))
                b = draw(st.one_of(st.none(), st.integers(-n, n)))
                return slice(a, b, draw(st.one_of(st.none(), st.integers(1, 3))))

            return {"idx": tuple(sl(n) for n in s[: draw(st.integers(1, len(s)))])}
        if kind == "none_ellipsis":
            return {"idx": (None, Ellipsis, draw(st.integers(-s[-1], s[-1] - 1)), None)}
        if kind == "int_tensor":  # duplicates on purpose: their gradients must add up
            picks = draw(st.lists(st.integers(-n0, n0 - 1), min_size=1, max_size=5))
            return {"idx": torch.tensor(picks)}
        if kind == "int_tensor_2d_slice":
            picks = draw(st.lists(st.integers(0, n0 - 1), min_size=4, max_size=4))
            return {"idx": (torch.tensor(picks).reshape(2, 2), slice(None, None, 2))}
        if kind == "bool_mask":
            k = draw(st.integers(1, len(s)))
            return {"idx": torch.rand(s[:k], generator=gen) > 0.4}
        raise ValueError(kind)

    return params


def _getitem(m: Any, a: Any, idx: Any) -> Any:
    return a[idx]


def _setitem_index(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    """Rows of the first input to overwrite (never twice: torch leaves the winner unspecified)."""
    n0 = shp[0][0]
    kind = draw(st.sampled_from(["int", "mask", "tensor", "slice"]))
    if kind == "int":
        return {"idx": draw(st.integers(-n0, n0 - 1))}
    if kind == "mask":
        return {"idx": torch.rand(n0, generator=gen) > 0.4}
    if kind == "tensor":
        return {"idx": torch.randperm(n0, generator=gen)[: draw(st.integers(1, n0))]}
    return {"idx": slice(draw(st.integers(0, n0 - 1)), None, 2)}


def _setitem(m: Any, a: Any, v: Any, idx: Any) -> Any:
    h = a * 1.0
    h[idx] = v * 2.0  # v (the shape of one row) broadcasts over the selected rows
    return h * h


def _index_grad(m: Any, a: Any, idx: Any) -> Any:
    """The gradient of an indexing, itself differentiated: records the scatter (IndexScatter)."""
    if not (a.requires_grad and m.is_grad_enabled()):
        return a[idx]  # nothing to differentiate (the engine tests' no-recording checks)
    grad = m.autograd.grad if hasattr(m, "autograd") else m.grad
    return grad((a[idx] ** 3).sum(), a, create_graph=True)[0]


# ---- the table ---------------------------------------------------------------------------------
RR = ("real", "real")

OPS: list[Op] = [
    # arithmetic, broadcasting, Python scalars and torch tensors on either side
    Op("add", lambda m, a, b: a + b, args(*RR), second=True),
    Op("add_fn", lambda m, a, b: m.add(a, b), args(*RR)),
    Op("add_scalar", lambda m, a: a + 2.5, args("real")),
    Op("radd_scalar", lambda m, a: 3 + a, args("real")),
    Op("add_torch_const", lambda m, a, c: a + c, args("real", params=_const_like_broadcast)),
    Op("radd_torch_const", lambda m, a, c: c + a, args("real", params=_const_like_broadcast)),
    Op("sub", lambda m, a, b: a - b, args(*RR), second=True),
    Op("sub_scalar", lambda m, a: a - 1.5, args("real")),
    Op("rsub_scalar", lambda m, a: 2 - a, args("real")),
    Op("rsub_torch_const", lambda m, a, c: c - a, args("real", params=_const_like_broadcast)),
    Op("mul", lambda m, a, b: a * b, args(*RR), second=True),
    Op("mul_fn", lambda m, a, b: m.mul(a, b), args(*RR)),
    Op("mul_scalar", lambda m, a: a * -1.5, args("real"), second=True),
    Op("rmul_scalar", lambda m, a: 3 * a, args("real")),
    Op("rmul_torch_const", lambda m, a, c: c * a, args("real", params=_const_like_broadcast)),
    Op("mul_self", lambda m, a: a * a, args("real"), second=True),
    Op("div", lambda m, a, b: a / b, args("real", "nonzero"), second=True),
    Op("div_scalar", lambda m, a: a / 4, args("real"), second=True),
    Op("rdiv_scalar", lambda m, a: 2.0 / a, args("nonzero"), second=True),
    Op("rdiv_torch_const", lambda m, a, c: c / a, args("nonzero", params=_const_like_broadcast)),
    Op("pow", lambda m, a, b: a**b, args("pos", "real"), second=True),
    Op("pow_fn", lambda m, a, b: m.pow(a, b), args("pos", "real")),
    Op("pow_int2", lambda m, a: a**2, args("real"), second=True),
    Op("pow_int3", lambda m, a: a**3, args("real"), second=True),
    Op("pow_half", lambda m, a: a**0.5, args("pos"), second=True),
    Op("pow_neg", lambda m, a: a**-1.5, args("pos"), second=True),
    Op("pow_zero", lambda m, a: a**0, args("real")),
    Op("rpow_scalar", lambda m, a: 2.0**a, args("real"), second=True),
    Op("rpow_scalar_lt1", lambda m, a: 0.5**a, args("real")),
    Op("neg", lambda m, a: -a, args("real"), second=True),
    Op("neg_fn", lambda m, a: m.neg(a), args("real")),
    # matrix products
    Op("matmul", lambda m, a, b: a @ b, args(*RR, shape_st=matmul_shapes()), second=True),
    Op("matmul_fn", lambda m, a, b: m.matmul(a, b), args(*RR, shape_st=matmul_shapes())),
    Op(
        "linear",
        lambda m, x, w: m.linear(x, w),
        args(*RR, shape_st=_linear_shapes(False)),
        second=True,
    ),
    Op(
        "linear_bias",
        lambda m, x, w, b: m.linear(x, w, b),
        args("real", "real", "real", shape_st=_linear_shapes(True)),
        second=True,
    ),
    Op(
        "linear_1d_weight",
        lambda m, x, w: m.linear(x, w),
        args(*RR, shape_st=_linear_1d_weight_shapes()),
        second=True,
    ),
    Op(
        "linear_broadcast_bias",
        lambda m, x, w, b: m.linear(x, w, b),
        args("real", "real", "real", shape_st=_linear_broadcast_bias_shapes()),
        second=True,
    ),
    # unary math and activations
    Op("exp", lambda m, a: a.exp(), args("real"), second=True),
    Op("exp_fn", lambda m, a: m.exp(a), args("real")),
    Op("log", lambda m, a: a.log(), args("pos"), second=True),
    Op("log1p", lambda m, a: a.log1p(), args("pos"), second=True),
    Op("sqrt", lambda m, a: a.sqrt(), args("pos"), second=True),
    Op("abs", lambda m, a: abs(a), args("nonzero"), second=True),
    Op("abs_fn", lambda m, a: m.abs(a), args("nonzero")),
    Op("sin", lambda m, a: a.sin(), args("real"), second=True),
    Op("cos", lambda m, a: a.cos(), args("real"), second=True),
    Op("tanh", lambda m, a: a.tanh(), args("real"), second=True),
    Op("sigmoid", lambda m, a: a.sigmoid(), args("real"), second=True),
    Op("relu", lambda m, a: a.relu(), args("nonzero"), second=True),
    Op("relu_fn", lambda m, a: m.relu(a), args("nonzero")),
    Op(
        "leaky_relu",
        lambda m, a, slope: m.leaky_relu(a, slope),
        args("nonzero", params=lambda d, s, g: {"slope": d(st.sampled_from([0.01, 0.2, 1.5]))}),
        second=True,
    ),
    Op("clamp_min", lambda m, a: a.clamp(min=-0.5), args("grid"), second=True),
    Op("clamp_max", lambda m, a: a.clamp(max=0.75), args("grid"), second=True),
    Op("clamp_both", lambda m, a: m.clamp(a, -0.5, 0.5), args("grid"), second=True),
    Op(
        "clamp_tensor_min",
        lambda m, a, lo: m.clamp(a, min=lo),
        args("grid", "low", shape_st=_input_and_bounds(1)),
    ),
    Op(
        "clamp_tensor_both",
        lambda m, a, lo, hi: m.clamp(a, lo, hi),
        args("grid", "low", "high", shape_st=_input_and_bounds(2)),
        second=True,
    ),
    Op("maximum", lambda m, a, b: m.maximum(a, b), args("grid", "lattice"), second=True),
    Op("minimum", lambda m, a, b: m.minimum(a, b), args("grid", "lattice"), second=True),
    Op(
        "where",
        lambda m, a, b, cond: m.where(cond, a, b),
        args("real", "real", shape_st=broadcast_shapes(3), params=_where_cond(2)),
        second=True,
    ),
    Op(
        "where_scalar_other",
        lambda m, a, cond: m.where(cond, a, 0.5),
        args("real", params=_where_cond(1)),
        second=True,
    ),
    Op(
        "where_scalar_input",
        lambda m, a, cond: m.where(cond, -2.0, a),
        args("real", params=_where_cond(1)),
    ),
    # reductions
    Op(
        "sum",
        lambda m, a, dim, keepdim: a.sum(dim, keepdim=keepdim),
        args("real", params=_reduce()),
        second=True,
    ),
    Op("sum_all", lambda m, a: a.sum(), args("real"), second=True),
    Op(
        "sum_fn",
        lambda m, a, dim, keepdim: m.sum(a, dim, keepdim=keepdim),
        args("real", params=_reduce()),
    ),
    Op(
        "mean",
        lambda m, a, dim, keepdim: a.mean(dim, keepdim=keepdim),
        args("real", params=_reduce()),
        second=True,
    ),
    Op("mean_all", lambda m, a: a.mean(), args("real"), second=True),
    Op(
        "sum_dim_empty",
        lambda m, a, dim, keepdim: a.sum(dim, keepdim=keepdim),
        args("real", params=_all_dims_listed),
        second=True,
    ),
    Op(
        "mean_dim_empty",
        lambda m, a, dim, keepdim: m.mean(a, dim, keepdim=keepdim),
        args("real", params=_all_dims_listed),
        second=True,
    ),
    Op(
        "amax_dim_empty",
        lambda m, a, dim, keepdim: a.amax(dim, keepdim=keepdim),
        args("distinct", params=_all_dims_listed),
        second=True,
    ),
    Op(
        "amin_dim_empty",
        lambda m, a, dim, keepdim: m.amin(a, dim, keepdim=keepdim),
        args("distinct", params=_all_dims_listed),
    ),
    Op(
        "amax",
        lambda m, a, dim, keepdim: a.amax(*(() if dim is None else (dim,)), keepdim=keepdim),
        args("distinct", params=_reduce()),
        second=True,
    ),
    Op(
        "amin",
        lambda m, a, dim, keepdim: a.amin(*(() if dim is None else (dim,)), keepdim=keepdim),
        args("distinct", params=_reduce()),
        second=True,
    ),
    Op("max_all", lambda m, a: a.max(), args("distinct"), second=True),
    Op("min_all", lambda m, a: m.min(a), args("distinct")),
    Op(
        "max_dim",
        lambda m, a, dim, keepdim: a.max(dim, keepdim=keepdim),
        args("distinct", params=_reduce(allow_tuple=False, allow_none=False)),
        second=True,
    ),
    Op(
        "min_dim",
        lambda m, a, dim, keepdim: m.min(a, dim, keepdim=keepdim),
        args("distinct", params=_reduce(allow_tuple=False, allow_none=False)),
        second=True,
    ),
    Op("max_binary", lambda m, a, b: m.max(a, b), args("grid", "lattice")),
    Op(
        "var",
        lambda m, a, dim, keepdim, correction: a.var(dim, keepdim=keepdim, correction=correction),
        args("real", params=_reduce(correction=True)),
        second=True,
    ),
    Op(
        "var_default",
        lambda m, a: a.var(),
        args("real", shape_st=one(min_dims=1).filter(lambda s: reduced_count(s[0], None) > 1)),
    ),
    Op(
        "std",
        lambda m, a, dim, keepdim, correction: a.std(dim, keepdim=keepdim, correction=correction),
        args(
            "distinct", shape_st=one(min_dims=1), params=_reduce(correction=True, min_count=2)
        ).filter(lambda xk: reduced_count(xk[0][0].shape, xk[1]["dim"]) >= 2),
        second=True,
    ),
    Op(
        "logsumexp",
        lambda m, a, dim, keepdim: m.logsumexp(a, dim, keepdim=keepdim),
        args("real", params=_reduce(allow_none=False)),
        second=True,
    ),
    Op("softmax", lambda m, a, dim: m.softmax(a, dim), args("real", params=_one_dim), second=True),
    Op("softmax_method", lambda m, a, dim: a.softmax(dim), args("real", params=_one_dim)),
    Op(
        "log_softmax",
        lambda m, a, dim: m.log_softmax(a, dim),
        args("real", params=_one_dim),
        second=True,
    ),
    # shapes
    Op(
        "reshape",
        lambda m, a, shape: a.reshape(shape),
        args("real", params=_reshape_target),
        second=True,
    ),
    Op("reshape_fn", lambda m, a, shape: m.reshape(a, shape), args("real", params=_reshape_target)),
    Op(
        "view", lambda m, a, shape: a.view(shape), args("real", params=_reshape_target), second=True
    ),
    Op(
        "flatten",
        lambda m, a, start, end: a.flatten(start, end),
        args("real", params=_flatten_dims),
        second=True,
    ),
    Op(
        "squeeze",
        lambda m, a, dim: a.squeeze() if dim is None else a.squeeze(dim),
        args("real", params=_squeeze_dim),
        second=True,
    ),
    Op(
        "unsqueeze",
        lambda m, a, dim: a.unsqueeze(dim),
        args("real", params=_unsqueeze_dim),
        second=True,
    ),
    Op(
        "transpose",
        lambda m, a, d0, d1: a.transpose(d0, d1),
        args("real", shape_st=one(min_dims=1), params=_two_dims),
        second=True,
    ),
    Op("permute", lambda m, a, dims: a.permute(dims), args("real", params=_perm), second=True),
    Op("permute_fn", lambda m, a, dims: m.permute(a, dims), args("real", params=_perm)),
    Op("T", lambda m, a: a.T, args("real", shape_st=one(min_dims=2, max_dims=2)), second=True),
    Op("mT", lambda m, a: a.mT, args("real", shape_st=one(min_dims=2)), second=True),
    Op(
        "expand",
        lambda m, a, shape: a.expand(shape),
        args("real", params=_expand_target),
        second=True,
    ),
    Op(
        "broadcast_to",
        lambda m, a, shape: m.broadcast_to(a, shape),
        args("real", params=_expand_target),
        second=True,
    ),
    Op("expand_as", lambda m, a, c: a.expand_as(c), args("real", params=_expand_like)),
    Op(
        "sum_to_size",
        lambda m, a, shape: a.sum_to_size(shape),
        args("real", params=_sum_to_target),
        second=True,
    ),
    Op(
        "cat",
        lambda m, *xs, dim: m.cat(list(xs), dim),
        args("real", "real", "real", shape_st=_joined(1, False), params=_join_dim(False)),
    ),
    Op(
        "cat3",
        lambda m, *xs, dim: m.cat(xs, dim),
        args("real", "real", "real", shape_st=_joined(3, False), params=_join_dim(False)),
        second=True,
    ),
    Op(
        "stack",
        lambda m, *xs, dim: m.stack(list(xs), dim),
        args("real", "real", "real", shape_st=_joined(3, True), params=_join_dim(True)),
        second=True,
    ),
    Op("clone", lambda m, a: a.clone(), args("real"), second=True),
    Op("contiguous", lambda m, a: a.mT.contiguous(), args("real", shape_st=one(min_dims=2))),
    Op(
        "to_float32",
        lambda m, a: (a.to(torch.float32) * 3).to(torch.float64),
        args("real"),
        gc={"eps": 1e-3, "atol": 1e-3},
    ),
    Op(
        "float_double",
        lambda m, a: a.float().double(),
        args("real"),
        gc={"eps": 1e-3, "atol": 1e-3},
    ),
    # indexing
    Op(
        "index_int",
        _getitem,
        args("real", shape_st=one(min_dims=1), params=_index("int")),
        second=True,
    ),
    Op(
        "index_slices",
        _getitem,
        args("real", shape_st=one(min_dims=1), params=_index("slices")),
        second=True,
    ),
    Op(
        "index_none_ellipsis",
        _getitem,
        args("real", shape_st=one(min_dims=1), params=_index("none_ellipsis")),
        second=True,
    ),
    Op(
        "index_int_tensor",
        _getitem,
        args("real", shape_st=one(min_dims=1), params=_index("int_tensor")),
        second=True,
    ),
    Op(
        "index_int_tensor_2d_slice",
        _getitem,
        args("real", shape_st=one(min_dims=2), params=_index("int_tensor_2d_slice")),
    ),
    Op(
        "index_bool_mask",
        _getitem,
        args("real", shape_st=one(min_dims=1), params=_index("bool_mask")),
        second=True,
    ),
    Op(
        "index_grad",
        _index_grad,
        args("real", shape_st=one(min_dims=1), params=_index("int_tensor")),
        second=True,
    ),
    Op("slice_grad", _index_grad, args("real", shape_st=one(min_dims=1), params=_index("slices"))),
    Op("expand_new_dim", lambda m, a: a.expand(2, *a.shape), args("real"), second=True),
    Op("contiguous_copy", lambda m, a: a.expand(2, *a.shape).contiguous(), args("real")),
    # in place, on a recorded tensor (rebased onto the out-of-place op)
    Op(
        "setitem",
        _setitem,
        args(
            "real",
            "real",
            shape_st=one(min_dims=1).map(lambda s: (s[0], s[0][1:])),
            params=_setitem_index,
        ),
        second=True,
    ),
    Op("fill_", lambda m, a, b: (a * 1.0).fill_(b.sum()) * a, args(*RR), second=True),
    Op("fill_scalar", lambda m, a: (a * 1.0).fill_(1.5) * a, args("real"), second=True),
]


# ---- everyday calls (issue 11): square, t, flip, repeat, split/chunk, prod, cumsum, norm, mm, dot,
# masked_fill, gather, scatter_add ---------------------------------------------------------------
def _flip_dims(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    nd = max(len(shp[0]), 1)
    picked = draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
    return {"dims": tuple(d - nd if draw(st.booleans()) else d for d in picked)}


def _repeats(least: int) -> Any:
    def params(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
        extra = draw(st.integers(0, 1))
        return {"reps": tuple(draw(st.integers(least, 2)) for _ in range(len(shp[0]) + extra))}

    return params


def _repeat(m: Any, a: Any, reps: tuple) -> Any:
    return a.repeat(*reps) if reps else a.repeat(reps)  # torch wants a tuple when it is empty


def _split_size(sections: bool) -> Any:
    def params(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
        nd = len(shp[0])
        d = draw(st.integers(0, nd - 1))
        n = shp[0][d]
        if sections:  # uneven sizes, zeros included
            cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
            size: Any = [b - a for a, b in zip([0] + cuts, cuts + [n])]
        else:
            size = draw(st.integers(1, n + 1))
        return {"size": size, "dim": d - nd if draw(st.booleans()) else d}

    return params


def _pieces_joined(pieces: Any, m: Any, dim: int) -> Any:
    """Every piece in one output, each scaled differently, so each piece's gradient is checked."""
    return m.cat([p * (i + 1) for i, p in enumerate(pieces)], dim)


def _chunks(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    nd = len(shp[0])
    return {"chunks": draw(st.integers(1, 4)), "dim": draw(st.integers(-nd, nd - 1))}


@st.composite
def _with_zeros(draw: Any, params: Any) -> tuple:
    """Real values with exact zeros (none, one or several per slice): prod's hard case."""
    s = draw(shapes())
    gen = draw(generators())
    x = values(s, "real", gen)
    x = x.masked_fill(torch.rand(s, generator=gen) < draw(st.sampled_from([0.2, 0.5])), 0.0)
    return [x], params(draw, (s,), gen)


def _prod_dim(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    nd = max(len(shp[0]), 1)
    return {
        "dim": draw(st.one_of(st.none(), st.integers(-nd, nd - 1))),
        "keepdim": draw(st.booleans()),
    }


def _prod(m: Any, a: Any, dim: Any, keepdim: bool) -> Any:
    return a.prod() if dim is None else a.prod(dim, keepdim=keepdim)


def _norm_params(ps: list) -> Any:
    def params(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
        kw = _reduce()(draw, shp, gen)
        kw["p"] = draw(st.sampled_from(ps))
        if kw["p"] == "fro" and isinstance(kw["dim"], tuple) and len(kw["dim"]) > 2:
            kw["dim"] = None  # torch.norm's 'fro' takes at most two dims
        return kw

    return params


@st.composite
def _mm_shapes(draw: Any) -> tuple:
    n, k, p = (draw(st.integers(1, 3)) for _ in range(3))
    return (n, k), (k, p)


@st.composite
def _dot_shapes(draw: Any) -> tuple:
    n = draw(st.integers(1, 4))
    return (n,), (n,)


def _mask_into(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    return {"mask": torch.rand(draw(shapes_into(shp[0])), generator=gen) > 0.5}


@st.composite
def _input_and_scalar(draw: Any) -> tuple:
    return draw(shapes()), ()


def _gather_index(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    s = shp[0]
    d = draw(st.integers(0, len(s) - 1))
    ishape = tuple(
        draw(st.integers(1, 3)) if i == d else draw(st.integers(1, n)) for i, n in enumerate(s)
    )
    index = torch.randint(0, s[d], ishape, generator=gen)
    return {"dim": d - len(s) if draw(st.booleans()) else d, "index": index}


@st.composite
def _scatter_shapes(draw: Any) -> tuple:
    x = draw(shapes(min_dims=1))
    d = draw(st.integers(0, len(x) - 1))
    src = tuple(
        draw(st.integers(1, 3)) if i == d else draw(st.integers(1, n)) for i, n in enumerate(x)
    )
    return x, src


def _scatter_index(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    x, src = shp
    d = next((i for i in range(len(x)) if any(src[j] > x[j] for j in [i])), None)
    d = draw(st.integers(0, len(x) - 1)) if d is None else d
    if any(src[j] > x[j] for j in range(len(x)) if j != d):
        d = next(i for i in range(len(x)) if src[i] > x[i])
    return {"dim": d, "index": torch.randint(0, x[d], src, generator=gen)}


OPS += [
    Op("square", lambda m, a: a.square(), args("real"), second=True),
    Op("square_fn", lambda m, a: m.square(a), args("real")),
    Op("t", lambda m, a: a.t(), args("real", shape_st=one(max_dims=2)), second=True),
    Op("t_fn", lambda m, a: m.t(a), args("real", shape_st=one(min_dims=2, max_dims=2))),
    Op("flip", lambda m, a, dims: a.flip(dims), args("real", params=_flip_dims), second=True),
    Op("repeat", _repeat, args("real", params=_repeats(1)), second=True),
    Op("repeat_zero_counts", _repeat, args("real", params=_repeats(0))),
    Op(
        "split",
        lambda m, a, size, dim: _pieces_joined(a.split(size, dim), m, dim),
        args("real", shape_st=one(min_dims=1), params=_split_size(False)),
        second=True,
    ),
    Op(
        "split_sections",
        lambda m, a, size, dim: _pieces_joined(m.split(a, size, dim), m, dim),
        args("real", shape_st=one(min_dims=1), params=_split_size(True)),
        second=True,
    ),
    Op(
        "chunk",
        lambda m, a, chunks, dim: _pieces_joined(m.chunk(a, chunks, dim), m, dim),
        args("real", shape_st=one(min_dims=1), params=_chunks),
    ),
    Op("prod", _prod, args("real", params=_prod_dim), second=True),
    Op("prod_fn", lambda m, a: m.prod(a), args("real")),
    Op("prod_zeros", _prod, _with_zeros(_prod_dim), second=True),
    Op("cumsum", lambda m, a, dim: a.cumsum(dim), args("real", params=_one_dim), second=True),
    Op("cumsum_fn", lambda m, a, dim: m.cumsum(a, dim), args("real", params=_one_dim)),
    Op(
        "norm",
        lambda m, a, p, dim, keepdim: a.norm(p, dim, keepdim),
        args("nonzero", params=_norm_params([2, "fro", 1, 3, 1.5, 0.5])),
        second=True,
    ),
    Op("norm_default", lambda m, a: m.norm(a), args("real"), second=True),
    Op(
        "norm_inf",
        lambda m, a, p, dim, keepdim: m.norm(a, p, dim, keepdim),
        args("distinct", params=_norm_params([float("inf"), float("-inf")])),
        second=True,
    ),
    Op(
        "norm_0",
        lambda m, a, p, dim, keepdim: a.norm(p, dim, keepdim),
        args("nonzero", params=_norm_params([0])),
    ),
    Op("mm", lambda m, a, b: a.mm(b), args(*RR, shape_st=_mm_shapes()), second=True),
    Op("mm_fn", lambda m, a, b: m.mm(a, b), args(*RR, shape_st=_mm_shapes())),
    Op("dot", lambda m, a, b: m.dot(a, b), args(*RR, shape_st=_dot_shapes()), second=True),
    Op(
        "masked_fill",
        lambda m, a, mask: a.masked_fill(mask, 0.5),
        args("real", params=_mask_into),
        second=True,
    ),
    Op(
        "masked_fill_tensor_value",
        lambda m, a, v, mask: m.masked_fill(a, mask, v),
        args("real", "real", shape_st=_input_and_scalar(), params=_mask_into),
        second=True,
    ),
    Op(
        "gather",
        lambda m, a, dim, index: a.gather(dim, index),
        args("real", shape_st=one(min_dims=1), params=_gather_index),
        second=True,
    ),
    Op(
        "scatter_add",
        lambda m, a, src, dim, index: m.scatter_add(a, dim, index, src),
        args("real", "real", shape_st=_scatter_shapes(), params=_scatter_index),
        second=True,
    ),
]
