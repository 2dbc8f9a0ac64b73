"""nn's convolution, pooling, normalisation, embedding, GELU and attention: the op table (gradcheck,
torch's values and gradients to 1e-10, second order) and the corners and layers around it."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff as ad
import nn
import nn.functional as F
from nn_op_table import OPS, ad_leaves, assert_close, generators, torch_leaves

F64 = torch.float64
TIGHT = {"rtol": 1e-10, "atol": 1e-10}
AD = F
TORCH = SimpleNamespace(**{n: getattr(TF, n) for n in dir(TF) if not n.startswith("_")})
_ids = [op.name for op in OPS]
_SECOND = [op for op in OPS if op.second]
_few = settings(max_examples=4)
_fewer = settings(max_examples=2)


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def test_op_names_are_unique():
    assert len(set(_ids)) == len(_ids)


_NUMERIC = [op for op in OPS if op.numeric]


@pytest.mark.parametrize("op", _NUMERIC, ids=[op.name for op in _NUMERIC])
@_few
@given(data=st.data())
def test_gradcheck_float64(op, data):
    xs, kw = data.draw(op.args, label="inputs, constant args")
    assert ad.gradcheck(lambda *a: _first(op.fn(AD, *a, **kw)), ad_leaves(xs), **op.gc)


@pytest.mark.parametrize("op", OPS, ids=_ids)
@_few
@given(data=st.data())
def test_values_and_gradients_equal_torch(op, data):
    xs, kw = data.draw(op.args, label="inputs, constant args")
    a_in, t_in = ad_leaves(xs), torch_leaves(xs)
    a_out, t_out = _first(op.fn(AD, *a_in, **kw)), _first(op.fn(TORCH, *t_in, **kw))
    assert isinstance(a_out, ad.Tensor)
    assert_close(a_out, t_out, "forward value", **TIGHT)
    v = torch.randn(t_out.shape, generator=data.draw(generators()), dtype=F64)
    a_out.backward(v.clone())
    t_out.backward(v.clone())
    for i, (a, t) in enumerate(zip(a_in, t_in)):
        assert a.grad is not None, f"input {i} got no gradient"
        assert_close(a.grad, t.grad, f"gradient of input {i}", **TIGHT)


@pytest.mark.parametrize("op", _SECOND, ids=[op.name for op in _SECOND])
@_fewer
@given(data=st.data())
def test_second_order(op, data):
    """gradgradcheck, and d/d(x, v) <u, VJP(x; v)> equal to torch's double backward."""
    xs, kw = data.draw(op.args, label="inputs, constant args")
    gen = data.draw(generators(), label="seed")
    if op.numeric:
        assert ad.gradgradcheck(lambda *a: _first(op.fn(AD, *a, **kw)), ad_leaves(xs))
    a_in, t_in = ad_leaves(xs), torch_leaves(xs)
    a_out, t_out = _first(op.fn(AD, *a_in, **kw)), _first(op.fn(TORCH, *t_in, **kw))
    v = torch.randn(t_out.shape, generator=gen, dtype=F64)
    a_v, t_v = ad.Tensor(v.clone(), requires_grad=True), v.clone().requires_grad_(True)
    a_g = ad.grad(a_out, a_in, a_v, create_graph=True)
    t_g = torch.autograd.grad(t_out, t_in, t_v, create_graph=True)
    for i, (a, t) in enumerate(zip(a_g, t_g)):
        assert_close(a, t, f"first-order gradient {i}", **TIGHT)
    # a bias's gradient (Σ v) is recorded by torch as part of one fused node; it does not
    # depend on the inputs, so only the recorded gradients are compared
    idx = [i for i, a in enumerate(a_g) if a.requires_grad]
    assert idx, "no first-order gradient was recorded"
    us = [torch.randn(x.shape, generator=gen, dtype=F64) for x in xs]
    a_gg = ad.grad([a_g[i] for i in idx], [*a_in, a_v], [us[i] for i in idx], allow_unused=True)
    t_gg = torch.autograd.grad(
        [t_g[i] for i in idx], [*t_in, t_v], [us[i] for i in idx], allow_unused=True
    )
    for i, (a, t) in enumerate(zip(a_gg, t_gg)):
        want = t if t is not None else torch.zeros_like([*t_in, t_v][i])
        got = a if a is not None else torch.zeros_like(want)
        assert_close(got, want, f"second-order gradient w.r.t. input {i}", **TIGHT)


# ---- corners -------------------------------------------------------------------------------------
def _both(fn_ad, fn_t, *xs):
    """Values and gradients (of a random projection) of both functions, asserted equal."""
    a_in, t_in = ad_leaves(xs), torch_leaves(xs)
    a_out, t_out = fn_ad(*a_in), fn_t(*t_in)
    assert_close(a_out, t_out, "forward value", **TIGHT)
    v = torch.randn(t_out.shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    a_out.backward(v.clone())
    t_out.backward(v.clone())
    for i, (a, t) in enumerate(zip(a_in, t_in)):
        assert_close(a.grad, t.grad, f"gradient of input {i}", **TIGHT)
    return a_out


def test_max_pool_ties_pick_torch_index():
    # every window is all ties (and overlapping windows share them): the index and so the
    # element receiving the gradient must be torch's
    x = torch.tensor([[[[1.0, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3], [0, 3, 3, 0]]]], dtype=F64)
    for kw in (
        {"kernel_size": 2},
        {"kernel_size": 3, "stride": 1, "padding": 1},
        {"kernel_size": 2, "stride": 1, "dilation": 2},
    ):
        y, i = F.max_pool2d(ad.Tensor(x), return_indices=True, **kw)
        assert torch.equal(i.data, TF.max_pool2d(x, return_indices=True, **kw)[1])
        _both(lambda t, kw=kw: F.max_pool2d(t, **kw), lambda t, kw=kw: TF.max_pool2d(t, **kw), x)


def test_max_pool_nan_wins_like_torch():
    x = torch.tensor([[[[1.0, float("nan")], [2.0, 0.0]]]], dtype=F64)
    y = F.max_pool2d(ad.Tensor(x), 2)
    assert torch.equal(y.data.isnan(), TF.max_pool2d(x, 2).isnan())


def test_max_pool_indices_are_version_checked():
    x = ad.Tensor(torch.randn(1, 1, 4, 4, dtype=F64), requires_grad=True)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    idx.data[0, 0, 0, 0] = 5
    with pytest.raises(ad.GraphError, match="modified by an in-place"):
        y.sum().backward()


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_window_wider_than_the_input_with_ceil_mode_like_torch(kind):
    """torch's output size: (H + 2p - d(k-1) - 1 + (s - 1 if ceil_mode)) // s + 1, less one if
    the last window would start past the input and its left padding; below 1 it refuses."""
    x = torch.tensor([[[[1.5410, -0.2934], [0.25, 2.0]]]], dtype=F64)
    cases = [
        {"kernel_size": (1, 2), "dilation": (1, 2)},
        {"kernel_size": 3, "stride": 4, "dilation": 2},
        {"kernel_size": 3, "stride": 4, "dilation": 2, "padding": 1},
    ]
    if kind == "avg":
        cases = [
            {"kernel_size": (1, 3), "stride": 2},
            {"kernel_size": 3, "padding": 1, "stride": 4, "count_include_pad": False},
            {"kernel_size": 3, "stride": 4, "divisor_override": 2},
        ]
    ours, theirs = getattr(F, f"{kind}_pool2d"), getattr(TF, f"{kind}_pool2d")
    for kw in cases:
        _both(
            lambda t, kw=kw: ours(t, ceil_mode=True, **kw),
            lambda t, kw=kw: theirs(t, ceil_mode=True, **kw),
            x,
        )
        if kw.get("padding"):
            continue  # fits without ceil_mode too
        with pytest.raises(RuntimeError, match="Output size is too small"):
            theirs(x, ceil_mode=False, **kw)
        with pytest.raises(ad.ShapeError, match=f"{kind}_pool2d: input .* smaller than the window"):
            ours(ad.Tensor(x), ceil_mode=False, **kw)


def test_batch_norm_of_an_empty_batch_like_torch():
    """torch refuses training on exactly one value per channel (N·H·W == 1) only; an empty input
    gives x · w[0] + b[0] (zero gradients for w and b) and leaves the running statistics alone."""
    gen = torch.Generator().manual_seed(3)
    w, b = torch.randn(2, generator=gen, dtype=F64), torch.randn(2, generator=gen, dtype=F64)
    for shape in ((0, 2), (0, 2, 3), (1, 2, 0), (3, 2, 0, 2)):
        x = torch.zeros(shape, dtype=F64)
        for training in (True, False):
            rm, rv = (
                torch.randn(2, generator=gen, dtype=F64),
                torch.rand(2, generator=gen, dtype=F64),
            )
            rm2, rv2 = rm.clone(), rv.clone()
            kw = {"training": training, "momentum": 0.5}
            _both(
                lambda x, w, b, s=(rm, rv), kw=kw: F.batch_norm(x, *s, w, b, **kw),
                lambda x, w, b, s=(rm2, rv2), kw=kw: TF.batch_norm(x, *s, w, b, **kw),
                x,
                w,
                b,
            )
            assert torch.equal(rm, rm2) and torch.equal(rv, rv2)
    for shape in ((1, 2), (1, 2, 1), (1, 2, 1, 1), (1, 0)):
        with pytest.raises(ValueError, match="expected more than 1 value per channel"):
            F.batch_norm(ad.zeros(shape, dtype=F64), None, None, training=True)
        with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
            TF.batch_norm(torch.zeros(shape, dtype=F64), None, None, training=True)
    for shape in ((2, 0), (1, 2, 2)):  # more than one value per channel (or no channel)
        F.batch_norm(ad.zeros(shape, dtype=F64), None, None, training=True)
    # evaluation mode normalises with running statistics: without them, refused (as torch)
    with pytest.raises(ValueError, match="training=False needs running_mean and running_var"):
        F.batch_norm(ad.zeros(3, 2, dtype=F64), None, None, training=False)
    with pytest.raises(RuntimeError, match="running_mean must be defined in evaluation mode"):
        TF.batch_norm(torch.zeros(3, 2, dtype=F64), None, None, training=False)
    m_eval = nn.BatchNorm1d(2, track_running_stats=False, dtype=F64).eval()
    t_eval = torch.nn.BatchNorm1d(2, track_running_stats=False).double().eval()
    _both(m_eval, t_eval, torch.randn(3, 2, dtype=F64))  # the layer uses the batch's instead
    t = torch.nn.BatchNorm1d(2, momentum=None).double()
    m = nn.BatchNorm1d(2, momentum=None, dtype=F64)
    _both(m, t, torch.zeros(0, 2, dtype=F64))
    for k, v in t.state_dict().items():  # the batch counted, the statistics unchanged
        assert torch.equal(m.state_dict()[k], v), k


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on its own copy
def test_conv_corners_equal_torch():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 5, 1, generator=gen, dtype=F64)  # a size-1 spatial dim
    depthwise = torch.randn(4, 1, 3, 1, generator=gen, dtype=F64)  # groups = channels
    b = torch.randn(4, generator=gen, dtype=F64)
    for kw in (
        {"stride": (4, 1), "groups": 4},  # stride > kernel
        {"padding": (2, 0), "dilation": (2, 1), "groups": 4},  # padding with dilation
        {"padding": "same", "dilation": (2, 3), "groups": 4},
    ):
        _both(
            lambda *t, kw=kw: F.conv2d(*t, **kw),
            lambda *t, kw=kw: TF.conv2d(*t, **kw),
            x,
            depthwise,
            b,
        )
    x3 = torch.randn(4, 5, 5, generator=gen, dtype=F64)  # unbatched (C, H, W)
    _both(
        lambda *t: F.conv2d(*t, padding=1),
        lambda *t: TF.conv2d(*t, padding=1),
        x3,
        torch.randn(2, 4, 2, 2, generator=gen, dtype=F64),
    )
    # "same" with an even kernel pads one more at the bottom/right (torch's rule), in a node
    # of its own; second order through it too
    w_even = torch.randn(2, 4, 2, 2, generator=gen, dtype=F64)
    _both(
        lambda *t: F.conv2d(*t, padding="same"),
        lambda *t: TF.conv2d(*t, padding="same"),
        x3,
        w_even,
    )
    assert ad.gradgradcheck(
        lambda *t: F.conv2d(*t, padding="same"),
        ad_leaves([x3[:2, :3, :3].contiguous(), w_even[:1, :2]]),
    )


def test_conv_errors_name_the_op_and_shapes():
    x, w = ad.randn(1, 3, 5, 5), ad.randn(4, 2, 3, 3)
    with pytest.raises(ad.ShapeError, match=r"conv2d: .*\(1, 3, 5, 5\).*\(4, 2, 3, 3\)"):
        F.conv2d(x, w)
    with pytest.raises(ad.ShapeError, match="conv2d: .*smaller than the"):
        F.conv2d(ad.randn(1, 2, 2, 2), ad.randn(1, 2, 3, 3))
    with pytest.raises(ValueError, match="conv2d: padding='same' is not supported for strided"):
        F.conv2d(ad.randn(1, 2, 5, 5), ad.randn(1, 2, 3, 3), stride=2, padding="same")
    with pytest.raises(ad.DTypeError, match="conv2d: .*dtypes"):
        F.conv2d(ad.randn(1, 2, 5, 5), ad.randn(1, 2, 3, 3, dtype=F64))
    with pytest.raises(ValueError, match="max_pool2d: padding"):
        F.max_pool2d(ad.randn(1, 1, 4, 4), 2, padding=2)


def test_conv_module_initialises_and_copies_like_torch():
    torch.manual_seed(0)
    t = torch.nn.Conv2d(3, 4, (3, 2), stride=2, padding=1, groups=1)
    torch.manual_seed(0)
    m = nn.Conv2d(3, 4, (3, 2), stride=2, padding=1)
    assert list(m.state_dict()) == list(t.state_dict())
    for k, v in t.state_dict().items():
        assert torch.equal(m.state_dict()[k], v)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(
        nn.Conv2d(2, 2, 3, generator=g1).weight.data, nn.Conv2d(2, 2, 3, generator=g2).weight.data
    )
    t2 = torch.nn.Conv2d(4, 4, 3, groups=2, padding="same", bias=False).double()
    m2 = nn.Conv2d(4, 4, 3, groups=2, padding="same", bias=False, dtype=F64)
    m2.load_state_dict(t2.state_dict())
    x = torch.randn(2, 4, 5, 5, dtype=F64)
    assert_close(m2(ad.Tensor(x)), t2(x), "Conv2d output", **TIGHT)


def test_cnn_block_equals_torch_twin():
    torch.manual_seed(1)
    tm = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.AvgPool2d(2, stride=1, padding=1),
        torch.nn.Flatten(),
        torch.nn.Linear(27, 2),
    ).double()
    m = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AvgPool2d(2, stride=1, padding=1),
        nn.Flatten(),
        nn.Linear(27, 2),
    ).double()
    m.load_state_dict(tm.state_dict())
    x = torch.randn(2, 1, 4, 4, dtype=F64)
    y, ty = m(ad.Tensor(x)), tm(x)
    assert_close(y, ty, "output", **TIGHT)
    y.sum().backward()
    ty.sum().backward()
    for (name, p), tp in zip(m.named_parameters(), tm.parameters()):
        assert_close(p.grad, tp.grad, f"gradient of {name}", **TIGHT)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_module_trains_and_evaluates_like_torch(momentum):
    gen = torch.Generator().manual_seed(4)
    t = torch.nn.BatchNorm2d(3, momentum=momentum).double()
    m = nn.BatchNorm2d(3, momentum=momentum, dtype=F64)
    assert list(m.state_dict()) == list(t.state_dict())
    with torch.no_grad():
        t.weight.normal_(generator=gen)
        t.bias.normal_(generator=gen)
    m.load_state_dict(t.state_dict())
    for _ in range(2):
        x = torch.randn(4, 3, 2, 2, generator=gen, dtype=F64)
        _both(m, t, x)
        t.zero_grad()
    for k, v in t.state_dict().items():
        torch.testing.assert_close(m.state_dict()[k], v, rtol=1e-12, atol=1e-12, msg=k)
    m.eval()
    t.eval()
    _both(m, t, torch.randn(2, 3, 1, 1, generator=gen, dtype=F64))


def test_batch_norm1d_without_running_stats_and_errors():
    t = torch.nn.BatchNorm1d(2, affine=False, track_running_stats=False).double()
    m = nn.BatchNorm1d(2, affine=False, track_running_stats=False)
    assert list(m.state_dict()) == [] and m.running_mean is None
    x = torch.randn(3, 2, 4, dtype=F64)
    _both(m.eval(), t.eval(), x)  # no running statistics: batch statistics in eval too
    t2 = torch.nn.BatchNorm1d(2, bias=False).double()
    m2 = nn.BatchNorm1d(2, bias=False, dtype=F64)
    assert list(m2.state_dict()) == list(t2.state_dict())
    _both(m2, t2, x)
    _both(m2.eval(), t2.eval(), x)
    with pytest.raises(ValueError, match="batch_norm: expected more than 1 value per channel"):
        nn.BatchNorm1d(2)(ad.randn(1, 2))
    with pytest.raises(ad.ShapeError, match="BatchNorm2d: expected an .N, C, H, W. input"):
        nn.BatchNorm2d(2)(ad.randn(3, 2))


def test_buffers_follow_to_and_copy_into_the_same_tensors():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    keys = [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    ]
    assert sorted(m.state_dict()) == sorted(keys)
    rm = m[1].running_mean
    sd = {k: v.clone() + (1 if v.is_floating_point() else 5) for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    assert m[1].running_mean is rm and int(m[1].num_batches_tracked) == 5
    m.double()
    assert m[1].running_var.dtype == F64 and m[1].num_batches_tracked.dtype == torch.int64


def test_layer_norm_module_like_torch():
    t = torch.nn.LayerNorm((2, 3)).double()
    m = nn.LayerNorm((2, 3), dtype=F64)
    with torch.no_grad():
        t.weight.uniform_(-1, 1)
    m.load_state_dict(t.state_dict())
    _both(m, t, torch.randn(4, 2, 3, dtype=F64))
    assert list(nn.LayerNorm(4, bias=False).state_dict()) == ["weight"]
    with pytest.raises(ad.ShapeError, match=r"layer_norm: normalized_shape \(4,\) must be"):
        nn.LayerNorm(4)(ad.randn(4, 3))


def test_embedding_repeated_indices_padding_and_init_like_torch():
    torch.manual_seed(2)
    t = torch.nn.Embedding(4, 3, padding_idx=-1)
    torch.manual_seed(2)
    m = nn.Embedding(4, 3, padding_idx=-1)
    assert torch.equal(m.weight.data, t.weight.data) and m.padding_idx == 3
    t, m = t.double(), m.double()
    idx = torch.tensor([[1, 1, 3], [1, 0, 3]])  # row 1 three times, the padding row twice
    y, ty = m(idx), t(idx)
    assert_close(y, ty, "lookup", **TIGHT)
    y.sum().backward()
    ty.sum().backward()
    assert_close(m.weight.grad, t.weight.grad, "table gradient", **TIGHT)
    assert float(m.weight.grad.data[1, 0]) == 3.0 and not m.weight.grad.data[3].any()


def test_embedding_indices_are_checked_and_version_checked():
    w = ad.randn(3, 2, requires_grad=True)
    with pytest.raises(IndexError, match=r"embedding: indices must lie in \[0, 2\]"):
        F.embedding(torch.tensor([0, 3]), w)
    with pytest.raises(ad.DTypeError, match="embedding: indices must be int64 or int32"):
        F.embedding(torch.tensor([0.0]), w)
    idx = torch.tensor([0, 2])
    y = F.embedding(idx, w)
    idx[0] = 1
    with pytest.raises(ad.GraphError, match="modified by an in-place"):
        y.sum().backward()


def test_gelu_module_like_torch():
    x = torch.linspace(-4, 4, 9, dtype=F64)
    for approximate in ("none", "tanh"):
        _both(nn.GELU(approximate), torch.nn.GELU(approximate), x)
    with pytest.raises(ValueError, match="GELU: approximate"):
        nn.GELU("fast")


def test_attention_dropout_draws_its_mask_from_the_generator():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 4, generator=gen, dtype=F64) for _ in range(3))

    def ours(q, k, v):
        return F.scaled_dot_product_attention(
            q, k, v, dropout_p=0.4, is_causal=True, generator=torch.Generator().manual_seed(7)
        )

    def reference(q, k, v):
        keep = torch.rand((2, 3, 3), generator=torch.Generator().manual_seed(7), dtype=F64) >= 0.4
        scores = (q @ k.mT / 2).masked_fill(
            ~torch.ones(3, 3, dtype=torch.bool).tril(), float("-inf")
        )
        return (scores.softmax(-1) * keep / 0.6) @ v

    _both(ours, reference, q, k, v)
    y = ours(*(ad.Tensor(t) for t in (q, k, v)))
    assert not torch.equal(
        y.data,
        F.scaled_dot_product_attention(*(ad.Tensor(t) for t in (q, k, v)), is_causal=True).data,
    )  # something was dropped


def test_attention_fully_masked_row_is_zero_with_finite_gradients():
    q, k, v = (ad.randn(1, 2, 3, dtype=F64, requires_grad=True) for _ in range(3))
    mask = torch.tensor([[True, False], [False, False]])  # query 1 may attend nothing
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    t = TF.scaled_dot_product_attention(q.data, k.data, v.data, attn_mask=mask)
    assert_close(y, t, "output", **TIGHT)
    assert not y.data[0, 1].any()
    y.sum().backward()
    assert all(bool(x.grad.data.isfinite().all()) for x in (q, k, v))
    with pytest.raises(ValueError, match="scaled_dot_product_attention: give attn_mask or"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=True)
    with pytest.raises(ad.ShapeError, match="scaled_dot_product_attention: expected query"):
        F.scaled_dot_product_attention(q, ad.randn(1, 2, 4, dtype=F64), v)


def _outcomes(fn, xs, grad_out):
    """fn's value and input gradients (autodiff against torch), NaN compared as equal."""
    a_in, t_in = ad_leaves(xs), torch_leaves(xs)
    a_out, t_out = fn(AD, *a_in), fn(TORCH, *t_in)
    close = {"equal_nan": True, **TIGHT}
    torch.testing.assert_close(a_out.data, t_out.detach(), **close)
    a_out.backward(grad_out.clone())
    t_out.backward(grad_out.clone())
    for i, (a, t) in enumerate(zip(a_in, t_in)):
        torch.testing.assert_close(
            a.grad.data, t.grad, msg=lambda m, i=i: f"input {i}: {m}", **close
        )


@pytest.mark.parametrize(
    "shapes",
    [
        ((2, 1, 3), (2, 0, 3), (2, 0, 2)),  # no keys: output 0 (NaN for a non-finite input)
        ((2, 3), (4, 3), (4, 0)),  # an empty value
        ((0, 3), (4, 3), (4, 2)),  # no queries
        ((1, 2, 0), (1, 3, 0), (1, 3, 2)),  # E = 0: default scale inf, scores 0, mean of v
        ((2, 0), (0, 0), (0, 0)),
    ],
)
@pytest.mark.parametrize("special", [None, "inf", "nan"])
def test_attention_of_empty_operands_like_torch(shapes, special):
    """torch returns zeros + (Σq + Σk + Σv) · 0 for L = 0 or an empty value (its gradients:
    Σg · 0), and scales E = 0's empty operands by 1/√0 = inf."""
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(s, generator=gen, dtype=F64) for s in shapes]
    if special is not None and xs[0].numel():
        xs[0].view(-1)[0] = float(special)
    out_shape = shapes[0][:-1] + shapes[2][-1:]
    grad_out = torch.randn(out_shape, generator=gen, dtype=F64)
    for kw in ({}, {"is_causal": True}, {"scale": 0.5}):
        _outcomes(
            lambda ns, q, k, v, kw=kw: ns.scaled_dot_product_attention(q, k, v, **kw), xs, grad_out
        )
    if grad_out.numel():
        grad_out.view(-1)[0] = float("inf")
        _outcomes(lambda ns, q, k, v: ns.scaled_dot_product_attention(q, k, v), xs, grad_out)


@pytest.mark.parametrize("mask", ["causal", "bool", "float"])
def test_attention_masked_keys_under_non_finite_gradients_like_torch(mask):
    """The backward reads the attention weights only: a masked-out key gets 0 · g (NaN for an
    infinite g), a fully masked row 0 · g too, as torch's arithmetic does."""
    gen = torch.Generator().manual_seed(2)
    xs = [torch.randn(s, generator=gen, dtype=F64) for s in ((3, 2), (3, 2), (3, 2))]
    kw: dict = {"is_causal": True}
    if mask == "bool":
        kw = {"attn_mask": torch.tensor([[True, False, True], [False, False, False], [True] * 3])}
    elif mask == "float":
        kw = {
            "attn_mask": torch.tensor(
                [[0.0, -math.inf, 1.0], [-math.inf] * 3, [0.5] * 3], dtype=F64
            )
        }
    for bad in (float("inf"), float("nan"), -float("inf")):
        g = torch.randn(3, 2, generator=gen, dtype=F64)
        g[0, 0] = bad
        _outcomes(lambda ns, q, k, v: ns.scaled_dot_product_attention(q, k, v, **kw), xs, g)
    q = torch.tensor([[-math.inf, 1.0], [1.0, 1.0], [2.0, 0.0]], dtype=F64)  # all scores -inf
    k = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]], dtype=F64)
    g = torch.randn(3, 2, generator=gen, dtype=F64)
    _outcomes(lambda ns, q, k, v: ns.scaled_dot_product_attention(q, k, v, **kw), [q, k, k], g)


@pytest.mark.parametrize("dtype", [torch.bool, F64])
def test_attention_mask_changed_after_use_is_not_read_by_backward(dtype):
    q = ad.randn(2, 3, dtype=F64, requires_grad=True)
    mask = torch.tensor([[True, False], [True, True]])
    if dtype == F64:
        mask = torch.zeros(2, 2, dtype=F64).masked_fill_(~mask, -math.inf)
    y = F.scaled_dot_product_attention(q, q, q, attn_mask=mask)
    mask.copy_(mask.clone())  # a new version: torch's math backward does not read the mask
    y.sum().backward()
    assert q.grad is not None
    # what the VJP reads is still version-checked: the attention weights
    x = ad.randn(2, 3, dtype=F64, requires_grad=True)
    w = F.scaled_dot_product_attention(x, x, x, attn_mask=mask)
    w.grad_fn  # noqa: B018 - recorded
    x.data.add_(0)  # the input itself (read by the matmuls' VJPs): refused as torch's
    with pytest.raises(ad.GraphError, match="modified by an in-place"):
        w.sum().backward()


def test_attention_second_order_through_masks_equals_torch():
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, 3, 2, generator=gen, dtype=F64) for _ in range(3))
    mask = torch.tensor([[True, False, True], [False, False, False], [True, True, False]])
    a_in, t_in = ad_leaves([q, k, v]), torch_leaves([q, k, v])
    a_out = F.scaled_dot_product_attention(*a_in, attn_mask=mask)
    t_out = TF.scaled_dot_product_attention(*t_in, attn_mask=mask)
    g = torch.randn(t_out.shape, generator=gen, dtype=F64)
    a_g = ad.grad(a_out, a_in, ad.Tensor(g), create_graph=True)
    t_g = torch.autograd.grad(t_out, t_in, g, create_graph=True)
    for a, t in zip(a_g, t_g):
        assert_close(a, t, "gradient", **TIGHT)
    us = [torch.randn(t.shape, generator=gen, dtype=F64) for t in t_g]
    a_gg = ad.grad(list(a_g), a_in, [ad.Tensor(u) for u in us], allow_unused=True)
    t_gg = torch.autograd.grad(list(t_g), t_in, us, allow_unused=True)
    for a, t in zip(a_gg, t_gg):
        assert_close(a, t, "second order", **TIGHT)


def _mha_pair(batch_first: bool, bias: bool = True, dropout: float = 0.0):
    torch.manual_seed(3)
    t = torch.nn.MultiheadAttention(4, 2, dropout=dropout, bias=bias, batch_first=batch_first)
    torch.manual_seed(3)
    m = nn.MultiheadAttention(4, 2, dropout=dropout, bias=bias, batch_first=batch_first)
    assert list(m.state_dict()) == list(t.state_dict())
    for key, value in t.state_dict().items():
        assert torch.equal(m.state_dict()[key], value), key  # initialised like torch's
    return m.double(), t.double()


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_equals_torch(batch_first):
    m, t = _mha_pair(batch_first)
    gen = torch.Generator().manual_seed(0)
    n, n_q, n_k = 2, 3, 4
    q = torch.randn((n, n_q, 4) if batch_first else (n_q, n, 4), generator=gen, dtype=F64)
    kv = torch.randn((n, n_k, 4) if batch_first else (n_k, n, 4), generator=gen, dtype=F64)
    pad = torch.tensor([[False, False, True, False], [False, False, False, False]])
    per_head = torch.rand(n * 2, n_q, n_k, generator=gen) > 0.7
    per_head[..., 0] = False  # every query keeps one key (torch's weights would be NaN)
    for kw in (
        {},
        {"key_padding_mask": pad},
        {"attn_mask": per_head, "need_weights": False},
        {
            "attn_mask": torch.randn(n_q, n_k, generator=gen, dtype=F64),
            "average_attn_weights": False,
        },
    ):
        a_in = ad_leaves([q, kv])
        t_in = torch_leaves([q, kv])
        (y, w), (ty, tw) = m(a_in[0], a_in[1], a_in[1], **kw), t(t_in[0], t_in[1], t_in[1], **kw)
        assert_close(y, ty, f"output {kw}", **TIGHT)
        assert (w is None) == (tw is None)
        if w is not None:
            assert_close(w, tw, f"weights {kw}", **TIGHT)
        (y * y).sum().backward()
        (ty * ty).sum().backward()
        for (name, p), tp in zip(m.named_parameters(), t.parameters()):
            assert_close(p.grad, tp.grad, f"gradient of {name} {kw}", **TIGHT)
        for a, b in zip(a_in, t_in):
            assert_close(a.grad, b.grad, f"input gradient {kw}", **TIGHT)
        m.zero_grad()
        t.zero_grad()


def test_multihead_self_attention_causal_unbatched_and_len_one():
    m, t = _mha_pair(batch_first=True, bias=False)
    for n_q in (1, 3):
        x = torch.randn(n_q, 4, dtype=F64)  # unbatched (L, E)
        causal = torch.nn.Transformer.generate_square_subsequent_mask(n_q, dtype=F64)
        y, w = m(*(ad.Tensor(x),) * 3, is_causal=True)  # no mask needed here (torch needs one)
        ty, tw = t(x, x, x, attn_mask=causal, is_causal=True)
        assert_close(y, ty, "output", **TIGHT)
        assert_close(w, tw, "weights", **TIGHT)
    with pytest.raises(ValueError, match="MultiheadAttention: embed_dim .5. must be divisible"):
        nn.MultiheadAttention(5, 2)


def test_multihead_attention_dropout_only_in_training():
    m, t = _mha_pair(batch_first=True, dropout=0.5)
    x = ad.Tensor(torch.randn(2, 3, 4, dtype=F64))
    y1, y2 = m(x, x, x)[0], m(x, x, x)[0]
    assert not torch.equal(y1.data, y2.data)
    m.eval()
    t.eval()
    assert_close(m(x, x, x)[0], t(x.data, x.data, x.data)[0], "eval output", **TIGHT)


@pytest.mark.parametrize(
    "wanted",
    [(True, False, False), (False, True, False), (False, False, True), (False, True, True)],
)
def test_only_the_wanted_gradients_first_and_second_order(wanted):
    """Frozen inputs: the saved tensors and kernels cover each subset of gradients."""
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 2, 4, 3, generator=gen, dtype=F64)
    cases = [
        (
            lambda ns, x, w, b: ns.conv2d(x, w, b, stride=2, padding=1),
            torch.randn(3, 2, 2, 2, generator=gen, dtype=F64),
            torch.randn(3, generator=gen, dtype=F64),
        ),
        (
            lambda ns, x, w, b: ns.batch_norm(
                x, torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64), w, b, training=False
            ),
            torch.randn(2, generator=gen, dtype=F64),
            torch.randn(2, generator=gen, dtype=F64),
        ),
        (
            lambda ns, x, w, b: ns.batch_norm(x, None, None, w, b, training=True),
            torch.randn(2, generator=gen, dtype=F64),
            torch.randn(2, generator=gen, dtype=F64),
        ),
        (
            lambda ns, x, w, b: ns.layer_norm(x, (3,), w, b),
            torch.randn(3, generator=gen, dtype=F64),
            torch.randn(3, generator=gen, dtype=F64),
        ),
    ]
    for fn, w, b in cases:
        xs = [x, w, b]
        a_in = [ad.Tensor(t.clone(), requires_grad=r) for t, r in zip(xs, wanted)]
        t_in = [t.clone().requires_grad_(r) for t, r in zip(xs, wanted)]
        a_out, t_out = fn(AD, *a_in), fn(TORCH, *t_in)
        v = torch.randn(t_out.shape, generator=gen, dtype=F64)
        picked = [i for i, r in enumerate(wanted) if r]
        a_g = ad.grad(a_out, [a_in[i] for i in picked], ad.Tensor(v), create_graph=True)
        t_g = torch.autograd.grad(t_out, [t_in[i] for i in picked], v, create_graph=True)
        for a, t in zip(a_g, t_g):
            assert_close(a, t, "gradient", **TIGHT)
        a_first = ad.grad(fn(AD, *a_in), [a_in[i] for i in picked], ad.Tensor(v))
        for a, t in zip(a_first, t_g):
            assert_close(a, t, "first-order gradient", **TIGHT)
        live = [i for i, a in enumerate(a_g) if a.requires_grad]
        if live:
            us = [torch.randn(a_g[i].shape, generator=gen, dtype=F64) for i in live]
            targets = [a_in[i] for i in picked]
            a_gg = ad.grad([a_g[i] for i in live], targets, us, allow_unused=True)
            t_gg = torch.autograd.grad(
                [t_g[i] for i in live], [t_in[i] for i in picked], us, allow_unused=True
            )
            for a, t in zip(a_gg, t_gg):
                if t is None:
                    assert a is None or not a.data.any()
                else:
                    assert_close(
                        a if a is not None else torch.zeros_like(t), t, "second order", **TIGHT
                    )


def test_layer_reprs_match_torch():
    for ours, theirs in (
        (nn.Conv2d(1, 4, 3, padding=1, groups=1), torch.nn.Conv2d(1, 4, 3, padding=1)),
        (
            nn.Conv2d(4, 4, 2, stride=2, dilation=2, groups=2, bias=False),
            torch.nn.Conv2d(4, 4, 2, stride=2, dilation=2, groups=2, bias=False),
        ),
        (nn.MaxPool2d(2), torch.nn.MaxPool2d(2)),
        (nn.AvgPool2d(3, 1), torch.nn.AvgPool2d(3, 1)),
        (nn.Flatten(), torch.nn.Flatten()),
        (nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)),
        (nn.LayerNorm((2, 3)), torch.nn.LayerNorm((2, 3))),
        (nn.GELU(), torch.nn.GELU()),
        (nn.Embedding(5, 2, padding_idx=0), torch.nn.Embedding(5, 2, padding_idx=0)),
    ):
        assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_replayed_training_updates_batch_norm_statistics_like_torch(momentum):
    torch.manual_seed(8)
    t = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3),
        torch.nn.BatchNorm2d(2, momentum=momentum),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 1),
    ).double()
    m = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, momentum=momentum), nn.Flatten(), nn.Linear(8, 1)
    ).double()
    m.load_state_dict(t.state_dict())
    step = ad.replay(lambda x: m(x).sum())
    for _ in range(3):  # recorded once, replayed twice
        x = torch.randn(3, 1, 4, 4, dtype=F64)
        step(ad.Tensor(x))
        t(x).sum().backward()
    for k, v in t.state_dict().items():
        torch.testing.assert_close(m.state_dict()[k], v, rtol=1e-12, atol=1e-12, msg=k)
    for (name, p), tp in zip(m.named_parameters(), t.parameters()):
        assert_close(p.grad, tp.grad, f"gradient of {name}", **TIGHT)
