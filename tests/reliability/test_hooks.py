"""Gradient hooks and retain_grad, each program run with autodiff and with torch."""

from __future__ import annotations

import re

import pytest
import torch

import autodiff as ad
from rel_support import AD, TORCH, assert_close_tree, run_both


def _clone(g):
    return g.detach().clone() if isinstance(g, torch.Tensor) else g.data.clone()


def p_replace_nonleaf(L):
    x = L.tensor([1.0, 2.0], True)
    y = x * 3.0
    y.register_hook(lambda g: g * 10.0)
    (y * y).sum().backward()
    return x.grad


def p_replace_leaf(L):
    x = L.tensor([1.0, 2.0], True)
    x.register_hook(lambda g: g + 1.0)
    (x * 2.0).sum().backward()
    return x.grad


def p_remove(L):
    x = L.tensor([1.0, 2.0], True)
    y = x * 2.0
    h1 = x.register_hook(lambda g: g * 0.0)
    h2 = y.register_hook(lambda g: g * 0.0)
    h1.remove()
    h2.remove()
    h1.remove()  # removing twice is harmless
    (y * y).sum().backward()
    return x.grad


def p_chain(L):
    x = L.tensor([1.0, 2.0], True)
    x.register_hook(lambda g: g * 2.0)
    x.register_hook(lambda g: g + 1.0)  # runs second, on the first hook's result
    (x * x).sum().backward()
    return x.grad


def p_observe(L):
    seen = []
    x = L.tensor([1.0, 2.0], True)
    y = x * 2.0
    y.register_hook(lambda g: seen.append(_clone(g)))
    (y * y).sum().backward()
    return seen, x.grad


def p_retain_accumulates(L):
    x = L.tensor([1.0, 2.0], True)
    y = x * 3.0
    y.retain_grad()
    z = (y * y).sum()
    z.backward(retain_graph=True)
    first = _clone(y.grad)
    z.backward()
    return first, y.grad, y.retains_grad, x.grad


def p_retain_then_hook(L):
    x = L.tensor([1.0, 2.0], True)
    y = x * 3.0
    y.retain_grad()
    y.register_hook(lambda g: g * 10.0)  # torch: retain_grad sees the hooked gradient
    (y * 1.0).sum().backward()
    return y.grad, x.grad


def p_hook_then_retain(L):
    x = L.tensor([1.0, 2.0], True)
    y = x * 3.0
    y.register_hook(lambda g: g * 10.0)
    y.retain_grad()
    (y * 1.0).sum().backward()
    return y.grad, x.grad


def p_retain_on_leaf(L):
    x = L.tensor([1.0, 2.0], True)
    x.retain_grad()
    (x * 2.0).sum().backward()
    return x.grad, x.retains_grad, x.is_leaf


def p_root_hook(L):
    x = L.tensor([1.0, 2.0], True)
    y = (x * 2.0).sum()
    y.register_hook(lambda g: g * 5.0)
    y.retain_grad()
    y.backward()
    return x.grad, y.grad


def p_leaf_used_twice(L):
    calls = []
    x = L.tensor([1.0, 2.0], True)
    x.register_hook(lambda g: calls.append(_clone(g)))
    (x * 2.0 + x * 3.0).sum().backward()
    return calls, x.grad


def p_leaf_hook_sees_new_grad_only(L):
    calls = []
    x = L.tensor([1.0, 2.0], True)
    x.register_hook(lambda g: calls.append(_clone(g)))
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    return calls, x.grad


def p_hooks_in_grad(L):
    x = L.tensor([1.0, 2.0], True)
    y = x * 2.0
    y.register_hook(lambda g: g * 5.0)
    x.register_hook(lambda g: g - 1.0)
    return L.grad((y * y).sum(), x)


def p_hook_runs_on_each_backward(L):
    calls = []
    x = L.tensor([1.0, 2.0], True)
    y = x.exp()
    y.register_hook(lambda g: calls.append(1))
    z = y.sum()
    z.backward(retain_graph=True)
    z.backward()
    return len(calls), x.grad


def p_create_graph_hook(L):
    x = L.tensor([1.0, 2.0], True)
    y = x**2
    y.register_hook(lambda g: g * x)  # the hook's own ops are recorded under create_graph
    (gx,) = L.grad(y.sum(), x, create_graph=True)
    gx.sum().backward()
    return gx, x.grad


def p_create_graph_retain(L):
    x = L.tensor([1.0, 2.0], True)
    y = x**2
    y.retain_grad()
    (y * y).sum().backward(create_graph=True)
    assert y.grad.requires_grad
    g = _clone(y.grad)
    w = L.tensor([3.0, 4.0], True)
    (y.grad * w).sum().backward()
    return g, w.grad


def p_leaf_hook_create_graph(L):
    x = L.tensor([1.0, 2.0], True)
    x.register_hook(lambda g: g * g)
    (gx,) = L.grad((x**3).sum(), x, create_graph=True)
    (ggx,) = L.grad(gx.sum(), x)
    return gx, ggx


def p_hook_on_intermediate_used_by_two(L):
    x = L.tensor([1.0, 2.0], True)
    y = x.tanh()
    seen = []
    y.register_hook(lambda g: seen.append(_clone(g)))  # called once, with the summed gradient
    (y * 2.0 + y.exp()).sum().backward()
    return seen, x.grad


PROGRAMS = {
    f.__name__[2:]: f
    for f in [
        p_replace_nonleaf,
        p_replace_leaf,
        p_remove,
        p_chain,
        p_observe,
        p_retain_accumulates,
        p_retain_then_hook,
        p_hook_then_retain,
        p_retain_on_leaf,
        p_root_hook,
        p_leaf_used_twice,
        p_leaf_hook_sees_new_grad_only,
        p_hooks_in_grad,
        p_hook_runs_on_each_backward,
        p_create_graph_hook,
        p_create_graph_retain,
        p_leaf_hook_create_graph,
        p_hook_on_intermediate_used_by_two,
    ]
}


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch warns about create_graph cycles
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_hook_program_matches_torch(name):
    ours, ref = run_both(PROGRAMS[name])
    assert not isinstance(ref, Exception), ref
    assert not isinstance(ours, Exception), repr(ours)
    assert_close_tree(ours, ref)


def _bad_hook_program(ret):
    def program(L):
        x = L.tensor([1.0, 2.0], True)
        y = x * 2.0
        y.register_hook(ret)
        (y * y).sum().backward()

    return program


@pytest.mark.parametrize(
    "ret, ours_type, pattern",
    [
        (lambda g: g.sum(), ad.GraphError, r"hook.*shape \(\).*gradient of shape \(2,\)"),
        (lambda g: g.to(torch.float32), ad.GraphError, r"hook.*torch.float32.*torch.float64"),
        (lambda g: 3, TypeError, r"hook.*returned a int.*Tensor or None"),
    ],
)
def test_bad_hook_results_are_refused_like_torch(ret, ours_type, pattern):
    ours, ref = run_both(_bad_hook_program(ret))
    assert isinstance(ref, (RuntimeError, TypeError)), "torch refuses this hook result too"
    assert isinstance(ours, ours_type), repr(ours)
    assert re.search(pattern, str(ours)), str(ours)


def test_hook_registration_errors():
    with pytest.raises(ad.GraphError, match="does not require grad"):
        ad.ones(2).register_hook(lambda g: g)
    with pytest.raises(TypeError, match="register_hook: expected a callable, got int"):
        ad.ones(2, requires_grad=True).register_hook(3)
    with pytest.raises(ad.GraphError, match="retain_grad.*does not require grad"):
        ad.ones(2).retain_grad()


def test_non_leaf_grad_is_none_without_retain_grad():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    y.sum().backward()
    assert y.grad is None and not y.retains_grad and x.grad is not None


def test_retained_grad_is_not_an_alias_of_the_leaf_grad():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1.0
    y.retain_grad()
    y.sum().backward()
    y.grad.data.mul_(100.0)
    assert x.grad.tolist() == [1.0, 1.0]


def test_retain_grad_does_not_keep_the_tensor_alive():
    import weakref

    x = ad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    y.retain_grad()
    z = (y * 3.0).sum()
    ref = weakref.ref(y)
    del y
    assert ref() is None  # the hook holds only a weak reference
    z.backward()  # and silently skips the dead tensor
    assert x.grad.tolist() == [6.0, 6.0]


def test_assert_close_tree_can_fail():
    with pytest.raises(AssertionError):
        assert_close_tree([torch.ones(2)], [torch.zeros(2)])
    assert AD.name == "ad" and TORCH.name == "torch"
