"""Shared helpers for the autodiff tests: shape/value strategies and the torch oracle.

Shapes come from hypothesis (broadcasting, size-1 dims, 0-d scalars); values come from a torch
generator seeded by hypothesis, shaped so that no input sits near a kink of the op under test
(|x| >= 0.2 for abs/relu, gaps between candidates of max/maximum/clamp).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import autodiff as ad

F64 = torch.float64
MAX_DIMS = 3
MAX_SIDE = 3

# ---- namespaces: one op description runs against autodiff and against torch ----------------
AD = ad
TORCH = SimpleNamespace(**{n: getattr(torch, n) for n in dir(torch) if not n.startswith("_")})
TORCH.linear = F.linear
TORCH.leaky_relu = F.leaky_relu


# ---- shapes ----------------------------------------------------------------------------------
def shapes(
    min_dims: int = 0, max_dims: int = MAX_DIMS, min_side: int = 1, max_side: int = MAX_SIDE
) -> st.SearchStrategy[tuple[int, ...]]:
    """Tensor shapes, 0-d included by default; size-1 dims are common."""
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


def broadcast_shapes(
    n: int = 2, max_dims: int = MAX_DIMS, max_side: int = MAX_SIDE
) -> st.SearchStrategy[tuple]:
    """``n`` shapes that broadcast together (different ranks, size-1 dims, 0-d)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=n, min_dims=0, max_dims=max_dims, max_side=max_side
    ).map(lambda b: b.input_shapes)


def matmul_shapes(max_batch: int = 2, max_side: int = MAX_SIDE) -> st.SearchStrategy[tuple]:
    """Operand shapes for matmul: 1-D, 2-D and batched, batch dims broadcasting."""
    return hnp.mutually_broadcastable_shapes(
        signature="(m?,n),(n,p?)->(m?,p?)", max_dims=max_batch, max_side=max_side
    ).map(lambda b: b.input_shapes)


@st.composite
def shapes_into(draw: Any, shape: Sequence[int]) -> tuple[int, ...]:
    """A shape that broadcasts *to* ``shape``: leading dims dropped, some dims set to 1."""
    kept = tuple(shape)[draw(st.integers(0, len(shape))) :]
    return tuple(1 if draw(st.booleans()) else v for v in kept)


@st.composite
def dims_of(draw: Any, ndim: int, allow_none: bool = True, allow_tuple: bool = True) -> Any:
    """A ``dim`` argument for a reduction over a tensor of ``ndim`` dims: None, int or tuple
    (negative dims included). A 0-d tensor accepts 0 and -1, as in torch."""
    lim = max(ndim, 1)
    choices = ["int"] + (["none"] if allow_none else []) + (["tuple"] if allow_tuple else [])
    kind = draw(st.sampled_from(choices))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-lim, lim - 1))
    picked = draw(st.lists(st.integers(0, lim - 1), min_size=1, max_size=lim, unique=True))
    return tuple(d - lim if draw(st.booleans()) else d for d in picked)


def reduced_count(shape: Sequence[int], dim: Any) -> int:
    """How many elements one output of a reduction over ``dim`` combines."""
    if dim is None:
        dims = range(len(shape))
    else:
        dims = (dim,) if isinstance(dim, int) else dim
    n = 1
    for d in {d % max(len(shape), 1) for d in dims}:
        n *= shape[d] if shape else 1
    return n


# ---- values ------------------------------------------------------------------------------------
def values(shape: Sequence[int], kind: str, gen: torch.Generator) -> torch.Tensor:
    """float64 values of ``shape`` built so the op under test is smooth around them.

    real: N(0, 1) | pos: [0.5, 2] | nonzero: |x| in [0.2, 1.2] | distinct: no two closer than 0.4
    | grid: k/4 + 1/8 (+-0.03) and lattice: k/4 (+-0.03), at least 0.065 apart from each other
    | low: about -1..-0.5 and high: about 0.5..1 (lattice points, as clamp bounds).
    """
    shape = tuple(shape)
    n = 1
    for s in shape:
        n *= s
    u = torch.rand(shape, generator=gen, dtype=F64)
    if kind == "real":
        return torch.randn(shape, generator=gen, dtype=F64)
    if kind == "pos":
        return 0.5 + 1.5 * u
    if kind == "nonzero":
        sign = torch.randint(0, 2, shape, generator=gen).to(F64) * 2 - 1
        return sign * (0.2 + u)
    if kind == "distinct":
        perm = torch.randperm(n, generator=gen).to(F64).reshape(shape)
        return (perm - n / 2) * 0.5 + 0.1 * u
    noise = (u - 0.5) * 0.06
    if kind in ("grid", "lattice"):
        k = torch.randint(-6, 6, shape, generator=gen).to(F64)
        return k * 0.25 + (0.125 if kind == "grid" else 0.0) + noise
    if kind in ("low", "high"):
        k = torch.randint(2, 5, shape, generator=gen).to(F64) * 0.25
        return (-k if kind == "low" else k) + noise
    raise ValueError(kind)


@st.composite
def generators(draw: Any) -> torch.Generator:
    return torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))


@st.composite
def tensors_for(draw: Any, shape_list: Sequence[Sequence[int]], kinds: Sequence[str]) -> list:
    gen = draw(generators())
    return [values(s, k, gen) for s, k in zip(shape_list, kinds)]


# ---- the oracle --------------------------------------------------------------------------------
def first_tensor(out: Any) -> Any:
    """Ops such as ``max(x, dim)`` return (values, indices): the differentiable part is first."""
    return out[0] if isinstance(out, tuple) else out


def ad_leaves(xs: Sequence[torch.Tensor]) -> list:
    return [ad.Tensor(x.clone(), requires_grad=True) for x in xs]


def torch_leaves(xs: Sequence[torch.Tensor]) -> list:
    return [x.clone().requires_grad_(True) for x in xs]


def assert_close(
    actual: Any, expected: torch.Tensor, what: str, rtol: float = 1e-6, atol: float = 1e-9
) -> None:
    a = actual.data if isinstance(actual, ad.Tensor) else actual
    assert isinstance(a, torch.Tensor), f"{what}: expected a tensor, got {type(a).__name__}"
    assert a.shape == expected.shape, f"{what}: shape {tuple(a.shape)} != {tuple(expected.shape)}"
    assert a.dtype == expected.dtype, f"{what}: dtype {a.dtype} != {expected.dtype}"
    torch.testing.assert_close(
        a, expected.detach(), rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}"
    )


def check_against_torch(
    fn: Callable, xs: Sequence[torch.Tensor], gen: torch.Generator, **kw: Any
) -> None:
    """Values of ``fn(ns, *inputs, **kw)`` and gradients (via ``backward(v)`` into ``.grad``,
    random ``v``) must equal torch.autograd's."""
    a_in, t_in = ad_leaves(xs), torch_leaves(xs)
    a_out = first_tensor(fn(AD, *a_in, **kw))
    t_out = first_tensor(fn(TORCH, *t_in, **kw))
    assert isinstance(a_out, ad.Tensor)
    assert_close(a_out, t_out, "forward value")
    v = torch.randn(t_out.shape, generator=gen, dtype=t_out.dtype)
    a_out.backward(v.clone())
    t_out.backward(v.clone())
    for i, (a, t) in enumerate(zip(a_in, t_in)):
        if t.grad is None and a.grad is None:  # no gradient reached it in either (norm p = 0)
            continue
        expected = t.grad if t.grad is not None else torch.zeros_like(t)
        assert a.grad is not None, f"input {i} got no gradient"
        assert_close(a.grad, expected, f"gradient of input {i}")


def gradcheck_op(
    fn: Callable, xs: Sequence[torch.Tensor], gc: dict | None = None, **kw: Any
) -> None:
    inputs = ad_leaves(xs)
    assert ad.gradcheck(lambda *a: first_tensor(fn(AD, *a, **kw)), inputs, **(gc or {}))


def double_backward_against_torch(
    fn: Callable, xs: Sequence[torch.Tensor], gen: torch.Generator, **kw: Any
) -> None:
    """d/d(x, v) of <u, VJP(fn)(x; v)> (create_graph=True) must equal torch's double backward."""
    a_in, t_in = ad_leaves(xs), torch_leaves(xs)
    a_out = first_tensor(fn(AD, *a_in, **kw))
    t_out = first_tensor(fn(TORCH, *t_in, **kw))
    v = torch.randn(t_out.shape, generator=gen, dtype=F64)
    a_v, t_v = ad.Tensor(v.clone(), requires_grad=True), v.clone().requires_grad_(True)
    a_g = ad.grad(a_out, a_in, a_v, create_graph=True)
    t_g = torch.autograd.grad(t_out, t_in, t_v, create_graph=True)
    for i, (a, t) in enumerate(zip(a_g, t_g)):
        assert_close(a, t, f"first-order gradient {i}")
    us = [torch.randn(x.shape, generator=gen, dtype=F64) for x in xs]
    # Every first-order gradient is linear in v, so it depends on v in both libraries.
    idx = [i for i, t in enumerate(t_g) if t.requires_grad]
    for i in idx:
        assert a_g[i].requires_grad, f"first-order gradient {i} was not recorded"
    a_gg = ad.grad([a_g[i] for i in idx], [*a_in, a_v], [us[i] for i in idx], allow_unused=True)
    t_gg = torch.autograd.grad(
        [t_g[i] for i in idx], [*t_in, t_v], [us[i] for i in idx], allow_unused=True
    )
    for i, (a, t) in enumerate(zip(a_gg, t_gg)):
        want = t if t is not None else torch.zeros_like([*t_in, t_v][i])
        got = a if a is not None else torch.zeros_like(want)
        assert_close(got, want, f"second-order gradient w.r.t. input {i}")
