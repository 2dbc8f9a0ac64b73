"""The engine owns every VJP's contract: what a VJP, a hook or a custom Function returns is
un-broadcast and checked by the engine; the root seed is fresh for each backward; nothing the
user holds becomes a ``.grad`` without a copy; leaf accumulation is thread-safe.

Each test is one of the silent wrong answers an outside fuzzer found (issue 9), with torch's
answer (or torch's error) as the expected behaviour.
"""

from __future__ import annotations

import threading

import pytest
import torch

import autodiff as ad
from autodiff.errors import DeviceError, DTypeError, GraphError, ShapeError


def leaf(*values, dtype=torch.float64):
    return ad.tensor(list(values), dtype=dtype, requires_grad=True)


# ---- the root seed --------------------------------------------------------------------------
def test_hook_mutating_the_root_seed_in_place_does_not_leak_into_later_backwards():
    x, w = leaf(1.0, 2.0), leaf(5.0)
    y = (x * 3).sum()
    y.register_hook(lambda g: g.mul_(2))
    y.backward()
    assert x.grad.tolist() == [6.0, 6.0]  # torch: the hook changed its own seed
    (w * 1.0).sum().backward()
    assert w.grad.tolist() == [1.0]  # a fresh 1.0, not the doubled one


def test_function_mutating_its_incoming_gradient_does_not_leak():
    class Twice(ad.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g.mul_(2)  # misbehaves: changes the gradient it was given

    x, w = leaf(1.0), leaf(1.0)
    Twice.apply(x).sum().backward()
    (w * 1.0).sum().backward()
    assert w.grad.tolist() == [1.0]


# ---- what a custom Function returns ----------------------------------------------------------
def _fn_returning(make):
    class Bad(ad.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return make(g)

    return Bad


@pytest.mark.parametrize(
    "make, err, words",
    [
        (lambda g: torch.ones(5, dtype=g.dtype), ShapeError, ["Bad.backward", "(5,)", "(3,)"]),
        (lambda g: g.float(), DTypeError, ["Bad.backward", "torch.float32", "torch.float64"]),
        (lambda g: 1.5, TypeError, ["Bad.backward", "float"]),
        (lambda g: (g, g), TypeError, ["Bad.backward", "2 gradients"]),
    ],
)
def test_function_results_are_checked(make, err, words):
    x = leaf(1.0, 2.0, 3.0)
    with pytest.raises(err) as e:
        _fn_returning(make).apply(x).sum().backward()
    for w in words:
        assert w in str(e.value)
    assert x.grad is None


def test_function_gradient_that_broadcasts_is_summed_back_like_torch():
    Bad = _fn_returning(lambda g: g.expand(4, 3))
    x = leaf(1.0, 2.0, 3.0)
    Bad.apply(x).sum().backward()
    assert x.grad.tolist() == [4.0, 4.0, 4.0]


def test_function_may_return_an_autodiff_tensor():
    Ok = _fn_returning(lambda g: ad.Tensor(g * 2))
    x = leaf(1.0, 2.0)
    Ok.apply(x).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_function_saved_tensors_are_freed_and_a_second_backward_is_refused():
    class Square(ad.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = leaf(3.0)
    y = Square.apply(x)
    node = y.grad_fn
    y.backward()
    assert node.released and node.ctx.saved_tensors == () and node.ctx.to_save == ()
    with pytest.raises(GraphError, match="second time"):
        y.backward()


def test_function_gradient_held_by_the_user_is_copied_into_grad():
    held = torch.ones(2, dtype=torch.float64)
    Mine = _fn_returning(lambda g: held)
    x = leaf(1.0, 2.0)
    Mine.apply(x).sum().backward()
    held.add_(10)
    assert x.grad.tolist() == [1.0, 1.0]


# ---- hooks -----------------------------------------------------------------------------------
def test_grad_never_aliases_a_tensor_a_hook_returned():
    held = torch.full((2,), 7.0, dtype=torch.float64)
    x = leaf(1.0, 2.0)
    x.register_hook(lambda g: held)
    (x * 1.0).sum().backward()
    held.zero_()
    assert x.grad.tolist() == [7.0, 7.0]


def test_hook_returning_a_plain_torch_tensor_under_create_graph():
    x = leaf(1.0, 2.0)
    y = x * x
    y.register_hook(lambda g: g.data * 2 if isinstance(g, ad.Tensor) else g * 2)
    (gx,) = ad.grad(y.sum(), x, create_graph=True)
    tx = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    ty = tx * tx
    ty.register_hook(lambda g: g * 2)
    (tgx,) = torch.autograd.grad(ty.sum(), tx, create_graph=True)
    assert gx.tolist() == tgx.tolist()


@pytest.mark.parametrize(
    "ret, words",
    [
        (lambda g: torch.ones(3, dtype=torch.float64), ["(3,)", "(2,)"]),
        (lambda g: torch.ones(2, dtype=torch.float32), ["float32"]),
    ],
)
def test_hook_returning_a_wrong_tensor_names_the_hook(ret, words):
    x = leaf(1.0, 2.0)
    y = x * 2
    y.register_hook(ret)
    with pytest.raises(GraphError) as e:
        y.sum().backward()
    for w in words + ["hook"]:
        assert w in str(e.value)


def test_node_hooks_see_vjps_in_engine_order():
    x = leaf(1.0, 2.0)
    a = x.exp()
    b = a * 3
    c = b.sum()
    seen = []
    for t in (a, b, c):
        t.grad_fn.register_hook(lambda gi, go, n=t.grad_fn: seen.append((n.name, len(gi))))
    c.backward()
    assert seen == [("Sum", 1), ("MulScalar", 1), ("Exp", 1)]


def test_post_accumulate_hook_runs_as_soon_as_the_leaf_is_complete():
    w1, w2 = leaf(1.0), leaf(2.0)
    order = []
    h1 = (w1 * 2).exp()
    h2 = (w2 * 3 + h1).tanh()  # w2's gradient is complete before w1's
    w1.register_post_accumulate_grad_hook(lambda t: order.append(("w1", t.grad is not None)))
    w2.register_post_accumulate_grad_hook(lambda t: order.append(("w2", t.grad is not None)))
    h2.sum().register_hook(lambda g: order.append(("root", True)))
    h2.sum().backward()
    assert order == [("w2", True), ("w1", True)]


# ---- root gradients ---------------------------------------------------------------------------
def test_integer_grad_outputs_are_refused():
    x = leaf(1.0, 2.0)
    y = x * 2
    with pytest.raises(DTypeError, match="dtype"):
        y.backward(torch.ones(2, dtype=torch.int64))
    with pytest.raises(DTypeError):
        ad.grad(y, x, grad_outputs=torch.ones(2, dtype=torch.int64))


def test_root_gradient_on_another_device_is_refused():
    x = leaf(1.0, 2.0)
    y = x * 2
    with pytest.raises((DeviceError, ShapeError)):
        y.backward(torch.ones(2, dtype=torch.float64, device="meta"))


# ---- threads ----------------------------------------------------------------------------------
def test_concurrent_backward_into_one_leaf_loses_no_contribution():
    w = leaf(0.0)
    n_threads, per_thread = 4, 400
    start = threading.Barrier(n_threads)
    errors: list = []

    def work():
        try:
            start.wait()
            for _ in range(per_thread):
                (w * 1.0).sum().backward()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert w.grad.item() == n_threads * per_thread


# ---- the public graph-reading API ----------------------------------------------------------------
def test_node_public_api():
    x = leaf(1.0, 2.0)
    with ad.scope("block"):
        y = x.exp()
    n = y.grad_fn
    assert isinstance(n, ad.Node) and isinstance(n, ad.Op)
    assert n.name == "Exp" and n.inputs == (x,) and n.next_functions == (x,)
    assert n.scope == "block" and tuple(n.shape) == (2,)
    (saved,) = n.saved_tensors
    assert torch.equal(saved.data, y.data) and not n.released
    y.sum().backward()
    assert n.released
    with pytest.raises(GraphError, match="second time"):
        _ = n.saved_tensors


def test_vjp_arity_is_checked():
    class TwoForOne(ad.Op):
        """y = x;  a VJP that returns too many gradients"""

        forward = staticmethod(torch.clone)

        def vjp(self, g):
            return g, g

    x = leaf(1.0)
    with pytest.raises(GraphError, match="TwoForOne.vjp returned 2 gradients for 1 inputs"):
        TwoForOne.apply(x).sum().backward()


def test_op_saves_must_name_inputs_or_out():
    with pytest.raises(TypeError, match="saves names 'y'"):

        class Broken(ad.Op):  # noqa: F841
            saves = ("y",)


def test_every_deliberate_difference_is_in_the_readme():
    from pathlib import Path

    from differences import DIFFERENCES

    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    missing = [k for k, text in DIFFERENCES.items() if " ".join(text.split()) not in readme]
    assert not missing, f"README's list of differences from PyTorch lacks: {missing}"
