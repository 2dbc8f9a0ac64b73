"""Engine semantics, as PyTorch users expect them: accumulation, graph release, grad mode,
autodiff.grad, custom Functions, depth, and that torch.autograd is never involved."""

import gc
import threading
import weakref

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff as ad
from ad_op_table import OPS
from ad_support import AD, F64, first_tensor

_ids = [op.name for op in OPS]


def leaf(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ad.Tensor(torch.randn(*shape, generator=g, dtype=F64), requires_grad=True)


def nodes_of(t):
    """Every node reachable from ``t`` (iteratively)."""
    seen, stack, out = set(), [t.grad_fn], []
    while stack:
        n = stack.pop()
        if n is None or isinstance(n, ad.Tensor) or id(n) in seen:
            continue
        seen.add(id(n))
        out.append(n)
        stack.extend(n.inputs)
    return out


def raw_tensors_of(node):
    """The torch tensors a node keeps: saved items (raw or unwrapped, the output among them)
    and its fields."""
    items = list(node.saved or ())
    items += [getattr(node, f) for f in getattr(node, "fields", ())]
    return [
        s.data if isinstance(s, ad.Tensor) else s
        for s in items
        if isinstance(s, (torch.Tensor, ad.Tensor))
    ]


# ---- accumulation and .grad ---------------------------------------------------------------------
def test_leaf_grads_accumulate_across_backward_calls():
    x = leaf(3)
    (x * x).sum().backward()
    first = x.grad.data.clone()
    torch.testing.assert_close(first, 2 * x.data)
    (x * x).sum().backward()
    torch.testing.assert_close(x.grad.data, 2 * first)
    x.grad = None
    (3 * x).sum().backward()
    torch.testing.assert_close(x.grad.data, torch.full_like(x.data, 3.0))


def test_non_leaf_grad_is_none_unless_retained():
    x = leaf(3)
    y = x * 2
    z = x.exp()
    z.retain_grad()
    (y * z).sum().backward()
    assert y.grad is None and not y.is_leaf
    assert z.retains_grad
    torch.testing.assert_close(z.grad.data, y.data)


def test_retain_grad_under_create_graph_keeps_a_recorded_gradient():
    x = leaf(3)
    y = x * 2
    y.retain_grad()
    (y**2).sum().backward(create_graph=True)
    assert isinstance(y.grad, ad.Tensor) and isinstance(y.grad.data, torch.Tensor)
    torch.testing.assert_close(y.grad.data, 2 * y.data)


# ---- graph release ------------------------------------------------------------------------------
def test_second_backward_raises_and_mentions_retain_graph():
    x = leaf(3)
    z = x.exp().sum()
    z.backward()
    with pytest.raises(ad.GraphError, match="retain_graph=True"):
        z.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf(3)
    z = (x.exp() * x).sum()
    z.backward(retain_graph=True)
    once = x.grad.data.clone()
    z.backward()
    torch.testing.assert_close(x.grad.data, 2 * once)


def test_graph_that_saved_nothing_can_backward_twice():
    x = leaf(3)
    z = (x + 1).sum()
    z.backward()
    z.backward()
    torch.testing.assert_close(x.grad.data, torch.full_like(x.data, 2.0))


def test_saved_tensors_are_freed_by_backward_and_kept_with_retain_graph():
    for retain in (False, True):
        x = leaf(4)
        z = x.sin().exp().tanh().sigmoid().sum()  # intermediates are held only by the graph
        raws = [weakref.ref(r) for n in nodes_of(z) for r in raw_tensors_of(n) if r is not x.data]
        node_refs = [weakref.ref(n) for n in nodes_of(z)]
        keeping = [r for r in node_refs if r().saved]  # not Sum
        assert len(raws) == 3 and len(node_refs) == 5  # exp, tanh, sigmoid keep outputs
        z.backward(retain_graph=retain)
        gc.collect()
        alive = [r for r in raws if r() is not None]
        if retain:
            assert len(alive) == len(raws)
            assert not any(n().released for n in keeping)
        else:
            assert alive == [], "saved tensors outlived backward()"
            assert len(keeping) == 4 and all(n().released for n in keeping)
        del z
        gc.collect()
        assert all(n() is None for n in node_refs), "nodes outlived their output"


# ---- grad mode ----------------------------------------------------------------------------------
def test_no_grad_records_nothing():
    x = leaf(3)
    with ad.no_grad():
        y = (x * 2).exp().sum()
        assert not ad.is_grad_enabled()
    assert ad.is_grad_enabled()
    assert y.grad_fn is None and not y.requires_grad


def test_no_grad_and_enable_grad_as_decorators_and_nested():
    x = leaf(3)

    @ad.no_grad()
    def f(t):
        return t * 2

    @ad.no_grad
    def f2(t):
        return t * 2

    @ad.enable_grad()
    def g(t):
        return t * 2

    assert f(x).grad_fn is None and f2(x).grad_fn is None
    with ad.no_grad():
        assert g(x).grad_fn is not None
        with ad.enable_grad():
            inner = x * 3
        after = x * 3
    assert inner.grad_fn is not None and after.grad_fn is None
    with ad.set_grad_enabled(False):
        assert (x * 2).grad_fn is None
    assert (x * 2).grad_fn is not None


def test_grad_mode_restored_after_exception():
    x = leaf(3)
    with pytest.raises(KeyError):
        with ad.no_grad():
            raise KeyError
    assert (x * 2).requires_grad


def test_grad_mode_is_thread_local():
    x = leaf(3)
    entered, recorded = threading.Event(), threading.Event()
    seen = {}

    def worker():
        with ad.no_grad():
            entered.set()
            recorded.wait(5)
            seen["worker"] = (x * 2).requires_grad

    t = threading.Thread(target=worker)
    t.start()
    assert entered.wait(5)
    seen["main"] = (x * 2).requires_grad  # the worker is inside no_grad right now
    recorded.set()
    t.join(5)
    assert seen == {"main": True, "worker": False}


@pytest.mark.parametrize("op", OPS, ids=_ids)
@settings(max_examples=2)
@given(data=st.data())
def test_nothing_recorded_without_requires_grad_or_under_no_grad(op, data):
    xs, kw = data.draw(op.args)
    plain = first_tensor(op.fn(AD, *[ad.Tensor(x) for x in xs], **kw))
    assert plain.grad_fn is None and not plain.requires_grad
    leaves = [ad.Tensor(x, requires_grad=True) for x in xs]
    with ad.no_grad():
        out = first_tensor(op.fn(AD, *leaves, **kw))
    assert out.grad_fn is None
    # no-op shape changes (expand to the same shape, ...) may hand back the input itself
    assert not out.requires_grad or any(out is t for t in leaves)


def test_detach_cuts_the_graph():
    x = leaf(3)
    y = x * 2
    d = y.detach()
    assert d.grad_fn is None and not d.requires_grad and d.data is y.data
    (d * x).sum().backward()
    torch.testing.assert_close(x.grad.data, y.data)  # no contribution through d


def test_requires_grad_refused_on_integer_tensors():
    with pytest.raises(ad.DTypeError, match="int64"):
        ad.tensor([1, 2], requires_grad=True)
    with pytest.raises(ad.DTypeError):
        ad.Tensor(torch.arange(3), requires_grad=True)
    t = ad.arange(3)
    with pytest.raises(ad.DTypeError):
        t.requires_grad_()
    assert not t.requires_grad


# ---- autodiff.grad and backward(inputs=) -------------------------------------------------------
def test_grad_allow_unused():
    x, unused = leaf(3), leaf(2, seed=1)
    z = (x * x).sum()
    with pytest.raises(ad.GraphError, match="allow_unused=True"):
        ad.grad(z, [x, unused], retain_graph=True)
    gx, gu = ad.grad(z, [x, unused], allow_unused=True)
    assert gu is None
    torch.testing.assert_close(gx.data, 2 * x.data)
    assert x.grad is None  # grad() leaves .grad alone


def test_grad_wrt_non_leaf_stops_there_and_keeps_the_rest_of_the_graph():
    x = leaf(3)
    calls = []
    x.register_hook(lambda g: calls.append(g))
    y = x.exp()  # the part beyond the input: must be neither run nor freed
    loss = (y * y).sum()
    (gy,) = ad.grad(loss, y)
    torch.testing.assert_close(gy.data, 2 * y.data)
    assert calls == [] and x.grad is None
    assert not y.grad_fn.released
    y.backward(gy)  # still possible: grad() did not free it
    torch.testing.assert_close(x.grad.data, 2 * y.data * y.data)
    assert len(calls) == 1


def test_grad_with_several_outputs_and_inputs_matches_torch():
    a, b = leaf(2, 3), leaf(3, seed=1)
    ta, tb = a.data.clone().requires_grad_(), b.data.clone().requires_grad_()
    outs = [(a * b).sum(), (a @ b).tanh().sum()]
    touts = [(ta * tb).sum(), (ta @ tb).tanh().sum()]
    got = ad.grad(outs, [a, b])
    want = torch.autograd.grad(touts, [ta, tb])
    for g, w in zip(got, want):
        torch.testing.assert_close(g.data, w)


def test_grad_inputs_repeated_mixed_and_freeing_like_torch():
    x = leaf(2)
    tx = x.data.clone().requires_grad_()
    got = []
    for ns, a in ((ad, x), (torch.autograd, tx)):
        y = a * 3
        z = (y * y).sum()
        grads = ns.grad(z, [y, a, a], retain_graph=True)
        (gy,) = ns.grad([z, y], [y], [None, torch.ones(2, dtype=F64)], retain_graph=True)
        (gself,) = ns.grad(y, y, torch.ones(2, dtype=F64))
        got.append([*grads, gy, gself])
    for a, w in zip(*got):
        torch.testing.assert_close(a.data, w)
    b = x.exp()
    c = b * 2
    d = (c * b).sum()
    ad.grad(d, [c])  # frees the nodes between d and c ...
    with pytest.raises(ad.GraphError, match="retain_graph=True"):
        ad.grad(d, [x])  # ... so going through them again is refused


def test_backward_inputs_only_fills_those():
    a, b = leaf(3), leaf(3, seed=1)
    (a * b).sum().backward(inputs=[a])
    assert b.grad is None
    torch.testing.assert_close(a.grad.data, b.data)


# ---- custom Functions ----------------------------------------------------------------------------
class Cube(ad.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x**2


class ScaledExp(ad.Function):
    """y = exp(a) * b, saving its output: checks saved outputs and two inputs."""

    @staticmethod
    def forward(ctx, a, b):
        y = a.exp() * b
        ctx.save_for_backward(y, b)
        return y

    @staticmethod
    def backward(ctx, g):
        y, b = ctx.saved_tensors
        return g * y, g * y / b


def test_custom_function_first_and_second_order():
    x = leaf(4)
    y = Cube.apply(x)
    assert y.grad_fn.name == "Cube"
    assert ad.gradcheck(Cube.apply, [x])
    assert ad.gradgradcheck(Cube.apply, [x])
    a = leaf(3)
    b = ad.Tensor(torch.rand(3, dtype=F64) + 0.5, requires_grad=True)
    assert ad.gradcheck(ScaledExp.apply, [a, b])
    assert ad.gradgradcheck(ScaledExp.apply, [a, b])


def test_custom_function_with_wrong_gradient_fails_gradcheck():
    class Wrong(ad.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.sin()

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * x.cos() * 1.01

    with pytest.raises(ad.GradcheckError, match="mismatch"):
        ad.gradcheck(Wrong.apply, [leaf(3)])
    assert ad.gradcheck(Wrong.apply, [leaf(3)], raise_exception=False) is False


def test_gradcheck_accepts_an_empty_input():
    assert ad.gradcheck(
        lambda a, e: a.sum() + e.sum(),
        [leaf(2), ad.Tensor(torch.zeros(0, dtype=F64), requires_grad=True)],
    )


# ---- depth --------------------------------------------------------------------------------------
def test_100k_op_chain_backpropagates_without_recursion():
    x = ad.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    y = x
    for _ in range(50_000):
        y = y * 1.00001
        y = y + 0.001
    y.sum().backward()
    torch.testing.assert_close(x.grad.data, torch.full((2,), 1.00001**50_000, dtype=F64))


# ---- the library never uses torch.autograd ------------------------------------------------------
def test_no_torch_tensor_ever_requires_grad():
    x = ad.Tensor(torch.randn(5, 3, dtype=F64), requires_grad=True)
    w = ad.Tensor(torch.randn(4, 3, dtype=F64), requires_grad=True)
    b = ad.Tensor(torch.randn(4, dtype=F64), requires_grad=True)
    h = ad.linear(x, w, b).tanh()
    out = (h.softmax(-1) * h[:, [0, 0, 1]].sum(-1, keepdim=True)).amax(0).logsumexp(0)
    out = out + h.var(0).sum() + ad.where(h.data > 0, h, h * 0.1).mean() + h.max(1).values.sum()
    nodes = nodes_of(out)
    out.backward(retain_graph=True, create_graph=True)
    nodes += [n for p in (x, w, b) for n in nodes_of(p.grad)]
    raws = [r for n in nodes for r in raw_tensors_of(n)]
    raws += [t.data for t in (x, w, b, out, h)] + [t.grad.data for t in (x, w, b)]
    assert len(nodes) > 20 and len(raws) > 20
    assert not any(r.requires_grad for r in raws)
    assert all(r.grad_fn is None for r in raws)


def test_torch_tensor_requiring_grad_is_detached_on_the_way_in():
    t = torch.randn(3, requires_grad=True)
    a = ad.Tensor(t)
    assert not a.data.requires_grad
    assert not (ad.Tensor(torch.ones(3)) * t).data.requires_grad


# ---- gradients never alias each other ------------------------------------------------------------
def test_stored_gradients_do_not_alias():
    a, b = leaf(2, 3), leaf(6, seed=1)
    y = a + b.reshape(2, 3)
    v = torch.ones(2, 3, dtype=F64)
    y.backward(v)
    before_b = b.grad.data.clone()
    a.grad.data.add_(5)
    torch.testing.assert_close(b.grad.data, before_b)
    torch.testing.assert_close(v, torch.ones(2, 3, dtype=F64))  # nor the gradient passed in
    v.mul_(7)
    torch.testing.assert_close(a.grad.data, torch.full((2, 3), 6.0, dtype=F64))
    c, d = leaf(3), leaf(3, seed=2)
    (c + d).sum().backward()
    assert c.grad.data.data_ptr() != d.grad.data.data_ptr()
    e = leaf(3, seed=3)
    (e * 1).sum().backward()
    held = e.grad
    (e * 1).sum().backward()  # accumulation must not change a gradient the user holds
    torch.testing.assert_close(held.data, torch.ones(3, dtype=F64))
