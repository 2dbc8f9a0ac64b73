"""autodiff.replay: a replayed step gives bit-identical losses and gradients to the eager one."""

import pytest
import torch

import autodiff as ad
from autodiff.errors import GraphError


def _params(seed: int, sizes=(2, 7, 5, 1)):
    g = torch.Generator().manual_seed(seed)
    ps = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        ps.append(ad.Tensor(torch.randn(o, i, generator=g) * 0.5, requires_grad=True))
        ps.append(ad.Tensor(torch.randn(o, generator=g) * 0.1, requires_grad=True))
    return ps


def _mlp_loss(ps, x, y, act):
    h = x
    for i in range(0, len(ps), 2):
        h = ad.linear(h, ps[i], ps[i + 1])
        if i + 2 < len(ps):
            h = act(h)
    return ((h - y) ** 2).mean() + 0.01 * (ps[0] * ps[0]).sum()


@pytest.mark.parametrize(
    "act",
    [ad.tanh, ad.relu, ad.sigmoid, lambda h: ad.leaky_relu(h, 0.1), lambda h: h.exp() / 3 - 1],
)
def test_replay_matches_eager_over_training_steps(act):
    eager, replayed = _params(0), _params(0)
    step = ad.replay(lambda x, y: _mlp_loss(replayed, x, y, act))
    data = torch.Generator().manual_seed(1)
    for it in range(6):
        n = 8 if it % 3 else 5  # a second input signature is traced on its own
        x, y = torch.rand(n, 2, generator=data), torch.rand(n, 1, generator=data)
        le = _mlp_loss(eager, ad.Tensor(x), ad.Tensor(y), act)
        le.backward()
        lr = step(x, y)
        assert lr.item() == le.item()
        assert lr.grad_fn is None
        for a, b in zip(eager, replayed):
            assert torch.equal(a.grad.data, b.grad.data)
        with ad.no_grad():
            for p in eager + replayed:
                p.data -= 0.05 * p.grad.data
                p.grad = None
    assert len(step._plans) == 2


def test_replay_accumulates_like_backward():
    ps = _params(3)
    x, y = torch.rand(4, 2), torch.rand(4, 1)
    step = ad.replay(lambda x, y: _mlp_loss(ps, x, y, ad.tanh))
    step(x, y)
    first = [p.grad.data.clone() for p in ps]
    step(x, y)  # replayed: adds to the existing .grad, as backward() does
    for p, g in zip(ps, first):
        assert torch.allclose(p.grad.data, 2 * g)


def test_replay_refuses_data_dependent_ops():
    ps = _params(4)
    step = ad.replay(lambda x, y: ad.where(x[:, :1] > 0.5, ad.linear(x, ps[0], ps[1]), 0.0).sum())
    with pytest.raises(GraphError, match="cannot be replayed"):
        step(torch.rand(3, 2), torch.rand(3, 1))


def test_replay_refuses_non_scalar_loss():
    ps = _params(5)
    step = ad.replay(lambda x: ad.linear(x, ps[0], ps[1]))
    with pytest.raises(TypeError, match="one-element"):
        step(torch.rand(3, 2))


@pytest.mark.parametrize("loss_name", ["MSELoss", "BCEWithLogitsLoss"])
@pytest.mark.parametrize("act", ["Tanh", "SiLU", "ReLU"])
def test_replay_of_an_nn_model_matches_eager(loss_name, act):
    import nn

    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(2, 6), getattr(nn, act)(), nn.Linear(6, 1))

    eager, replayed = build(), build()
    loss = getattr(nn, loss_name)()
    opt_e = nn.optim.SGD(eager.parameters(), lr=0.1, momentum=0.9)
    opt_r = nn.optim.SGD(replayed.parameters(), lr=0.1, momentum=0.9)
    step = ad.replay(lambda x, y: loss(replayed(x), y))
    data = torch.Generator().manual_seed(2)
    for _ in range(5):
        x = torch.rand(8, 2, generator=data)
        y = (torch.rand(8, 1, generator=data) > 0.5).float()
        opt_e.zero_grad()
        le = loss(eager(ad.Tensor(x)), ad.Tensor(y))
        le.backward()
        opt_e.step()
        opt_r.zero_grad()
        lr = step(x, y)
        opt_r.step()
        assert lr.item() == le.item()
    for a, b in zip(eager.parameters(), replayed.parameters()):
        assert torch.equal(a.data, b.data)


def test_replay_refuses_dropout_instead_of_freezing_its_mask():
    import nn

    model = nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.5), nn.Linear(4, 1))
    step = ad.replay(lambda x, y: nn.MSELoss()(model(x), y))
    with pytest.raises(GraphError, match="NoGrad"):
        step(torch.rand(3, 2), torch.rand(3, 1))


def test_replay_checks_each_vjp_once_then_calls_it_directly():
    """The first replay checks every VJP's gradients against its inputs' shapes (fitting those
    that broadcast); later runs call the VJPs that needed nothing directly. Gradients stay
    bit-identical to eager throughout, broadcasting and single-gradient VJPs included."""

    def make():
        g = torch.Generator().manual_seed(5)
        w = ad.Tensor(torch.randn(3, generator=g), requires_grad=True)  # broadcast over rows
        c = ad.Tensor(torch.randn(1, 1, generator=g), requires_grad=True)
        return w, c

    def loss(x, w, c):
        h = (x * w + c).tanh()
        return (h * h).sum() + w.exp().sum()

    eager, replayed = make(), make()
    step = ad.replay(lambda x: loss(x, *replayed))
    data = torch.Generator().manual_seed(6)
    for _ in range(4):
        x = torch.randn(4, 3, generator=data)
        loss(ad.Tensor(x), *eager).backward()
        step(x)
        for a, b in zip(eager, replayed):
            assert torch.equal(a.grad.data, b.grad.data)
    plan = next(iter(step._plans.values()))
    kinds = set(plan.direct)
    assert kinds == {None, True, False}  # fitted (Mul, Add), tuples, single gradients
