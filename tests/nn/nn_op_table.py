"""The op table of nn's own ops (convolution, pooling, normalisation, embedding, GELU, attention),
written once for tapegrad and torch, in the form of tests/autodiff/ad_op_table.py.

``fn(ns, *inputs, **kw)`` runs with ``ns`` = ``nn.functional`` or ``torch.nn.functional``;
``args`` draws ``(inputs, kw)``: small float64 inputs (all differentiated) and constants.
Shapes stay tiny: gradgradcheck differentiates a whole backward pass per input element.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from hypothesis import assume
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "autodiff"))
from ad_op_table import args  # noqa: E402
from ad_support import ad_leaves, assert_close, generators, torch_leaves, values  # noqa: E402, F401

F64 = torch.float64


@dataclass(frozen=True)
class Op:
    name: str
    fn: Callable[..., Any]
    args: st.SearchStrategy
    second: bool = True
    gc: dict = field(default_factory=dict)
    # False where torch's gradient is deliberately not the derivative (an embedding's padding
    # row): compared with torch only, not with finite differences
    numeric: bool = True


def _ints(lo: int, hi: int) -> st.SearchStrategy:
    return st.integers(lo, hi)


# ---- convolution ---------------------------------------------------------------------------------
@st.composite
def _conv(draw: Any, padding_kind: str = "int", bias: bool = True) -> tuple:
    """(x, w[, b]) and the conv arguments: strides beyond the kernel, dilated padding, groups up
    to the channel count, size-1 spatial dims."""
    gen = draw(generators())
    groups = draw(st.sampled_from([1, 2]))
    c_in = groups * draw(_ints(1, 2))
    c_out = groups * draw(_ints(1, 2))
    kh, kw = draw(_ints(1, 3)), draw(_ints(1, 2))
    dil = (draw(_ints(1, 2)), draw(_ints(1, 2)))
    if padding_kind == "same":
        stride, padding = (1, 1), "same"
    else:
        stride = (draw(_ints(1, 3)), draw(_ints(1, 3)))
        padding = (draw(_ints(0, 2)), draw(_ints(0, 1)))
    pad = (0, 0) if isinstance(padding, str) else padding
    h = max(1, dil[0] * (kh - 1) + 1 - 2 * pad[0]) + draw(_ints(0, 2))
    w = max(1, dil[1] * (kw - 1) + 1 - 2 * pad[1]) + draw(_ints(0, 1))
    n = draw(_ints(1, 2))
    xs = [
        values((n, c_in, h, w), "real", gen),
        values((c_out, c_in // groups, kh, kw), "real", gen),
    ]
    if bias:
        xs.append(values((c_out,), "real", gen))
    return xs, {"stride": stride, "padding": padding, "dilation": dil, "groups": groups}


def _conv_fn(ns: Any, x: Any, w: Any, b: Any = None, **kw: Any) -> Any:
    return ns.conv2d(x, w, b, **kw)


# ---- pooling -------------------------------------------------------------------------------------
@st.composite
def _pool(draw: Any, kind: str) -> tuple:
    gen = draw(generators())
    k = (draw(_ints(1, 3)), draw(_ints(1, 2)))
    stride = draw(st.one_of(st.none(), st.tuples(_ints(1, 3), _ints(1, 3))))
    padding = (draw(_ints(0, k[0] // 2)), draw(_ints(0, k[1] // 2)))
    kw: dict = {
        "kernel_size": k,
        "stride": stride,
        "padding": padding,
        "ceil_mode": draw(st.booleans()),
    }
    dil = (1, 1)
    if kind == "max":
        dil = (draw(_ints(1, 2)), draw(_ints(1, 2)))
        kw["dilation"] = dil
    else:
        kw["count_include_pad"] = draw(st.booleans())
    # with ceil_mode the (dilated) window may be wider than the padded input: torch's output
    # size formula still gives one window, pooling what it reaches
    short = 2 if kw["ceil_mode"] else 0
    h = max(1, dil[0] * (k[0] - 1) + 1 - 2 * padding[0] - short) + draw(_ints(0, 2))
    w = max(1, dil[1] * (k[1] - 1) + 1 - 2 * padding[1] - short) + draw(_ints(0, 2))
    assume(_pools(h, w, kw, dil))
    if kind == "max":
        # no window wholly in the padding (refused: torch returns -inf there)
        assume(_covered(h, w, kw, dil))
    shape = (draw(_ints(1, 2)), draw(_ints(1, 2)), h, w)
    # max: distinct values so that a small step never changes a window's winner
    return [values(shape, "distinct" if kind == "max" else "real", gen)], kw


# ---- normalisation -------------------------------------------------------------------------------
@st.composite
def _batch_norm(draw: Any, training: bool, affine: bool) -> tuple:
    gen = draw(generators())
    c = draw(_ints(1, 3))
    spatial = draw(st.sampled_from([(), (2,), (1, 2), (2, 1)]))
    n = draw(_ints(2 if not spatial or spatial == (1, 1) else 1, 3))
    xs = [values((n, c) + spatial, "real", gen)]
    if affine:
        xs += [values((c,), "real", gen), values((c,), "real", gen)]
    kw = {"training": training, "eps": draw(st.sampled_from([1e-5, 0.1]))}
    if not training:
        kw["running_mean"] = values((c,), "real", gen)
        kw["running_var"] = values((c,), "pos", gen)
    return xs, kw


def _batch_norm_fn(
    ns: Any,
    x: Any,
    w: Any = None,
    b: Any = None,
    running_mean: Any = None,
    running_var: Any = None,
    **kw: Any,
) -> Any:
    return ns.batch_norm(x, running_mean, running_var, w, b, **kw)


@st.composite
def _layer_norm(draw: Any, affine: bool) -> tuple:
    gen = draw(generators())
    shape = tuple(draw(st.lists(_ints(1, 3), min_size=1, max_size=3)))
    k = draw(_ints(1, len(shape)))
    ns = shape[len(shape) - k :]
    assume(math.prod(ns) > 1)  # one element normalises to 0 whatever it is
    xs = [values(shape, "real", gen)]
    if affine:
        xs += [values(ns, "real", gen), values(ns, "real", gen)]
    return xs, {"normalized_shape": ns}


# ---- embedding, GELU -----------------------------------------------------------------------------
@st.composite
def _embedding(draw: Any, padding: bool) -> tuple:
    gen = draw(generators())
    n, d = draw(_ints(1, 4)), draw(_ints(1, 3))
    shape = tuple(draw(st.lists(_ints(1, 3), min_size=0, max_size=2)))
    # few rows, several lookups: indices repeat (their gradients add up)
    idx = torch.randint(0, n, shape, generator=gen)
    kw: dict = {"input": idx}
    if padding:
        kw["padding_idx"] = draw(_ints(-n, n - 1))
    return [values((n, d), "real", gen)], kw


# ---- attention -----------------------------------------------------------------------------------
@st.composite
def _attention(draw: Any, mask: str) -> tuple:
    """q (..., L, E), k (..., S, E), v (..., S, Ev); L = 1 and S = 1 included."""
    gen = draw(generators())
    batch = tuple(draw(st.lists(_ints(1, 2), min_size=0, max_size=2)))
    n_q, n_k, e, ev = draw(_ints(1, 3)), draw(_ints(1, 3)), draw(_ints(1, 3)), draw(_ints(1, 2))
    xs = [
        values(batch + (n_q, e), "real", gen),
        values(batch + (n_k, e), "real", gen),
        values(batch + (n_k, ev), "real", gen),
    ]
    kw: dict = {}
    if mask == "causal":
        kw["is_causal"] = True
    elif mask == "bool":  # rows with every key masked out included
        kw["attn_mask"] = torch.rand((n_q, n_k), generator=gen) > 0.4
    elif mask == "float":
        kw["attn_mask"] = values((n_q, n_k), "real", gen)
    if draw(st.booleans()):
        kw["scale"] = draw(st.sampled_from([0.25, 1.5]))
    return xs, kw


def _pools(h: int, w: int, kw: dict, dil: tuple) -> bool:
    """At least one output in each dim by torch's formula (else torch refuses the input)."""
    from nn.pool import pooled_size

    k, p = kw["kernel_size"], kw["padding"]
    s = kw["stride"] or k
    return all(
        pooled_size(size, k[i], s[i], p[i], dil[i], kw["ceil_mode"]) >= 1
        for i, size in enumerate((h, w))
    )


def _covered(h: int, w: int, kw: dict, dil: tuple) -> bool:
    from nn.pool import pooled_size

    k, p = kw["kernel_size"], kw["padding"]
    s = kw["stride"] or k
    return all(
        any(0 <= o * s[i] - p[i] + j * dil[i] < size for j in range(k[i]))
        for i, size in enumerate((h, w))
        for o in range(pooled_size(size, k[i], s[i], p[i], dil[i], kw["ceil_mode"]))
    )


_same2 = args(
    "real",
    "real",
    shape_st=st.tuples(st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)).map(
        lambda s: (s[0], s[0])
    ),
)


def _classes() -> st.SearchStrategy:
    """(N, C) logits: the shape cross-entropy takes with class dim 1."""
    return st.tuples(st.integers(1, 4), st.integers(2, 4)).map(lambda s: (s,))


def _labels(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    n, c = shp[0]
    return {"target": torch.randint(0, c, (n,), generator=gen)}


def _gelu_args(draw: Any, shp: tuple, gen: torch.Generator) -> dict:
    return {"approximate": draw(st.sampled_from(["none", "tanh"]))}


# ---- the table -----------------------------------------------------------------------------------
OPS: list[Op] = [
    Op("conv2d", _conv_fn, _conv()),
    Op("conv2d_no_bias", _conv_fn, _conv(bias=False)),
    Op("conv2d_same", _conv_fn, _conv("same")),
    Op("max_pool2d", lambda ns, x, **kw: ns.max_pool2d(x, **kw), _pool("max")),
    Op("avg_pool2d", lambda ns, x, **kw: ns.avg_pool2d(x, **kw), _pool("avg")),
    Op("batch_norm_train", _batch_norm_fn, _batch_norm(training=True, affine=True)),
    Op("batch_norm_train_no_affine", _batch_norm_fn, _batch_norm(training=True, affine=False)),
    Op("batch_norm_eval", _batch_norm_fn, _batch_norm(training=False, affine=True)),
    Op(
        "layer_norm",
        lambda ns, x, w, b, **kw: ns.layer_norm(x, weight=w, bias=b, **kw),
        _layer_norm(affine=True),
    ),
    Op("layer_norm_no_affine", lambda ns, x, **kw: ns.layer_norm(x, **kw), _layer_norm(False)),
    Op("embedding", lambda ns, w, input: ns.embedding(input, w), _embedding(padding=False)),
    Op(
        "embedding_padding_idx",
        lambda ns, w, input, padding_idx: ns.embedding(input, w, padding_idx),
        _embedding(padding=True),
        numeric=False,
    ),
    Op(
        "gelu",
        lambda ns, x, approximate: ns.gelu(x, approximate=approximate),
        args("real", params=_gelu_args),
    ),
    Op(
        "sdpa",
        lambda ns, q, k, v, **kw: ns.scaled_dot_product_attention(q, k, v, **kw),
        _attention("none"),
    ),
    Op(
        "sdpa_causal",
        lambda ns, q, k, v, **kw: ns.scaled_dot_product_attention(q, k, v, **kw),
        _attention("causal"),
    ),
    Op(
        "sdpa_bool_mask",
        lambda ns, q, k, v, **kw: ns.scaled_dot_product_attention(q, k, v, **kw),
        _attention("bool"),
    ),
    Op(
        "sdpa_float_mask",
        lambda ns, q, k, v, **kw: ns.scaled_dot_product_attention(q, k, v, **kw),
        _attention("float"),
    ),
    # nn's fused losses and activations (nn/nodes.py)
    Op("silu", lambda ns, x: ns.silu(x), args("real")),
    Op("softplus", lambda ns, x: ns.softplus(x), args("real")),
    *(
        Op(f"mse_loss_{r}", lambda ns, x, t, r=r: ns.mse_loss(x, t, reduction=r), _same2)
        for r in ("mean", "sum", "none")
    ),
    *(
        Op(
            f"bce_{r}",
            lambda ns, x, t, r=r: ns.binary_cross_entropy(x.sigmoid(), t.sigmoid(), reduction=r),
            _same2,
        )
        for r in ("mean", "none")
    ),
    *(
        Op(
            f"bce_with_logits_{r}",
            lambda ns, x, t, r=r: ns.binary_cross_entropy_with_logits(x, t.sigmoid(), reduction=r),
            _same2,
        )
        for r in ("mean", "sum")
    ),
    *(
        Op(
            f"cross_entropy_{r}",
            lambda ns, x, target, r=r: ns.cross_entropy(x, target, reduction=r),
            args("real", shape_st=_classes(), params=_labels),
        )
        for r in ("mean", "none")
    ),
    Op(
        "cross_entropy_soft",
        lambda ns, x, t: ns.cross_entropy(x, t.softmax(1)),
        args("real", "real", shape_st=_classes().map(lambda s: (s[0], s[0]))),
    ),
]
