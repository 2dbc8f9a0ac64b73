"""Losses (modules and nn.functional) against torch.nn.functional: values and gradients."""

import pytest
import torch
import torch.nn.functional as TF

import autodiff as ad
import nn
import nn.functional as F

REDUCTIONS = ["mean", "sum", "none"]


def _pair(shape=(6, 1), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64), g


def _check(ours_fn, torch_fn, x, t, reduction, target_grad=True):
    xt, tt = x.clone().requires_grad_(), t.clone().requires_grad_(target_grad)
    lt = torch_fn(xt, tt, reduction=reduction)
    gout = torch.randn_like(lt)
    lt.backward(gout)
    xo = ad.Tensor(x.clone(), requires_grad=True)
    to = ad.Tensor(t.clone(), requires_grad=target_grad)
    lo = ours_fn(xo, to, reduction=reduction)
    lo.backward(gout)
    assert lo.shape == lt.shape
    assert torch.allclose(lo.data, lt.detach(), rtol=1e-10, atol=1e-12)
    assert torch.allclose(xo.grad.data, xt.grad, rtol=1e-9, atol=1e-12)
    if target_grad:
        assert torch.allclose(to.grad.data, tt.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse(reduction):
    x, g = _pair((5, 3))
    t = torch.randn(5, 3, generator=g, dtype=torch.float64)
    _check(F.mse_loss, TF.mse_loss, x, t, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce(reduction):
    x, g = _pair((8, 1))
    p = torch.sigmoid(x)
    t = torch.rand(8, 1, generator=g, dtype=torch.float64)
    _check(F.binary_cross_entropy, TF.binary_cross_entropy, p, t, reduction)


def test_bce_at_saturation_matches_torch_clamping():
    p = torch.tensor([[0.0], [1.0], [0.5]], dtype=torch.float64)
    t = torch.tensor([[1.0], [0.0], [1.0]], dtype=torch.float64)
    _check(F.binary_cross_entropy, TF.binary_cross_entropy, p, t, "sum", target_grad=False)
    with pytest.raises(ValueError, match=r"binary_cross_entropy.*\[0, 1\]"):
        F.binary_cross_entropy(ad.tensor([[1.5]]), ad.tensor([[1.0]]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_stable(reduction):
    x = torch.tensor([[-200.0], [-3.0], [0.0], [2.5], [150.0]], dtype=torch.float64)
    t = torch.tensor([[1.0], [0.0], [1.0], [0.3], [0.0]], dtype=torch.float64)
    _check(F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits, x, t, reduction)
    lo = F.binary_cross_entropy_with_logits(ad.tensor([[1000.0]]), ad.tensor([[0.0]]))
    assert torch.isfinite(lo.data).all() and abs(lo.item() - 1000.0) < 1e-3


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_class_indices(reduction):
    x, g = _pair((7, 4))
    t = torch.randint(0, 4, (7,), generator=g)
    xt = x.clone().requires_grad_()
    lt = TF.cross_entropy(xt, t, reduction=reduction)
    gout = torch.randn_like(lt)
    lt.backward(gout)
    xo = ad.Tensor(x.clone(), requires_grad=True)
    lo = F.cross_entropy(xo, ad.Tensor(t), reduction=reduction)
    lo.backward(gout)
    assert torch.allclose(lo.data, lt.detach())
    assert torch.allclose(xo.grad.data, xt.grad)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probabilities(reduction):
    x, g = _pair((5, 3))
    t = torch.softmax(torch.randn(5, 3, generator=g, dtype=torch.float64), 1)
    _check(F.cross_entropy, TF.cross_entropy, x, t, reduction)


def test_cross_entropy_single_sample_and_errors():
    x = torch.randn(4, dtype=torch.float64)
    t = torch.tensor(2)
    assert torch.allclose(F.cross_entropy(ad.Tensor(x), ad.Tensor(t)).data, TF.cross_entropy(x, t))
    with pytest.raises(IndexError, match=r"\[0, 3\].*\[0, 4\]"):
        F.cross_entropy(ad.randn(3, 4), ad.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        F.cross_entropy(ad.randn(3, 4), ad.tensor([0, 1]))
    with pytest.raises(TypeError, match="integers"):
        F.cross_entropy(ad.randn(3, 4), ad.tensor([0.0, 1.0, 2.0]))


def test_shape_mismatch_is_refused_not_broadcast():
    with pytest.raises(ValueError, match=r"mse_loss.*\(4, 1\).*\(4,\)"):
        F.mse_loss(ad.ones(4, 1), ad.ones(4))
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(TypeError, match="dtypes"):
        F.mse_loss(ad.ones(2, dtype=torch.float32), ad.ones(2, dtype=torch.float64))


def test_loss_modules_are_single_nodes_and_match_functional():
    x = ad.randn(6, 1, requires_grad=True)
    y = ad.rand(6, 1)
    for mod, fn in [
        (nn.MSELoss(), F.mse_loss),
        (nn.BCEWithLogitsLoss(), F.binary_cross_entropy_with_logits),
        (nn.BCELoss(reduction="sum"), lambda a, b: F.binary_cross_entropy(a, b, "sum")),
    ]:
        inp = x.sigmoid() if isinstance(mod, nn.BCELoss) else x
        out = mod(inp, y)
        assert out.grad_fn.name == type(mod).__name__
        assert torch.equal(out.data, fn(inp, y).data)
    assert repr(nn.BCELoss(reduction="sum")) == "BCELoss(reduction='sum')"
    assert nn.CrossEntropyLoss()(ad.randn(3, 2), ad.tensor([0, 1, 1])).grad_fn is None


def test_integer_labels_accepted_as_float_targets():
    x = ad.randn(4, 1, requires_grad=True)
    a = F.binary_cross_entropy_with_logits(x, ad.tensor([[1], [0], [1], [0]]))
    b = F.binary_cross_entropy_with_logits(x, ad.tensor([[1.0], [0.0], [1.0], [0.0]]))
    assert torch.equal(a.data, b.data)


@pytest.mark.parametrize(
    "fn",
    [
        F.mse_loss,
        F.binary_cross_entropy_with_logits,
        lambda x, t: F.binary_cross_entropy(x.sigmoid(), t),
        lambda x, t: F.cross_entropy(x, t.softmax(1)),
    ],
)
def test_losses_second_order(fn):
    x = ad.Tensor(torch.randn(3, 2, dtype=torch.float64), requires_grad=True)
    t = ad.Tensor(torch.rand(3, 2, dtype=torch.float64), requires_grad=True)
    assert ad.gradcheck(fn, (x, t))
    assert ad.gradgradcheck(fn, (x, t))
