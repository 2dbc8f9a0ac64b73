"""The course interface: forward(*input), backward(*gradwrtoutput), param()."""

import pytest
import torch

import autodiff as ad
import nn
from autodiff.errors import GraphError


def _net(seed=0):
    g = torch.Generator().manual_seed(seed)
    return nn.Sequential(
        nn.Linear(2, 25, generator=g),
        nn.ReLU(),
        nn.Linear(25, 25, generator=g),
        nn.Tanh(),
        nn.Linear(25, 1, generator=g),
    )


def _torch_twin(model):
    tm = torch.nn.Sequential(
        torch.nn.Linear(2, 25),
        torch.nn.ReLU(),
        torch.nn.Linear(25, 25),
        torch.nn.Tanh(),
        torch.nn.Linear(25, 1),
    )
    tm.load_state_dict(model.state_dict())
    return tm


def test_course_backward_matches_torch_gradients():
    model = _net()
    tm = _torch_twin(model)
    x = torch.rand(8, 2)
    y = (torch.rand(8, 1) > 0.5).float()
    xt = x.clone().requires_grad_()
    torch.nn.functional.mse_loss(tm(xt), y).backward()

    crit = nn.MSELoss()
    pred = model.forward(x)  # plain torch tensors are accepted, as in the course
    loss = crit.forward(pred, y)
    dpred = crit.backward()
    assert dpred.shape == (8, 1)
    dx = model.backward(dpred)
    assert torch.allclose(dx.data, xt.grad, atol=1e-7)
    for (p, g), tp in zip(model.param(), tm.parameters()):
        assert g is p.grad
        assert torch.allclose(g.data, tp.grad, atol=1e-7)
    assert loss.item() == pytest.approx(torch.nn.functional.mse_loss(tm(x), y).item(), rel=1e-6)


def test_each_layer_backward_returns_input_gradient():
    x = torch.randn(4, 3, dtype=torch.float64)
    g = torch.randn(4, 2, dtype=torch.float64)
    lin = nn.Linear(3, 2, dtype=torch.float64)
    lin.forward(x)
    dx = lin.backward(g)
    assert torch.allclose(dx.data, g @ lin.weight.data)
    assert torch.allclose(lin.weight.grad.data, g.T @ x)
    assert torch.allclose(lin.bias.grad.data, g.sum(0))
    relu = nn.ReLU()
    relu.forward(ad.tensor([-1.0, 2.0]))
    assert relu.backward(ad.tensor([5.0, 7.0])).tolist() == [0.0, 7.0]
    ident = nn.Identity()
    ident.forward(ad.tensor([1.0, 2.0]))
    assert ident.backward(ad.tensor([3.0, 4.0])).tolist() == [3.0, 4.0]


def test_param_lists_pairs_and_empty_for_parameterless():
    assert nn.ReLU().param() == []
    lin = nn.Linear(2, 3)
    pairs = lin.param()
    assert [p for p, _ in pairs] == [lin.weight, lin.bias]
    assert all(
        torch.equal(g.data, torch.zeros_like(p.data)) for p, g in pairs
    )  # no grad yet: zeros


def test_backward_accumulates_and_graph_is_freed():
    lin = nn.Linear(2, 1)
    x = torch.ones(1, 2)
    for _ in range(2):
        lin.forward(x)
        lin.backward(torch.ones(1, 1))
    assert torch.equal(lin.weight.grad.data, torch.full((1, 2), 2.0))
    with pytest.raises(GraphError, match=r"Linear.backward\(\).*forward"):
        lin.backward(torch.ones(1, 1))
    with pytest.raises(ValueError, match=r"gradient has shape \(2, 1\).*\(1, 1\)"):
        lin.forward(x)
        lin.backward(torch.ones(2, 1))


def test_module_call_does_not_record_course_state():
    lin = nn.Linear(2, 1)
    lin(torch.ones(1, 2))
    with pytest.raises(GraphError):
        lin.backward(torch.ones(1, 1))


def test_loss_backward_leaves_model_graph_for_model_backward():
    model = _net(1)
    crit = nn.BCEWithLogitsLoss()
    x, y = torch.rand(5, 2), (torch.rand(5, 1) > 0.5).float()
    out = model.forward(x)
    crit.forward(out, y)
    g = crit.backward()
    model.backward(g)  # would fail if the loss's backward had freed the model's graph
    assert all(p.grad is not None for p in model.parameters())


def test_course_forward_inside_a_call_keeps_the_graph():
    class CourseStyle(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 3), nn.Linear(3, 1)

        def forward(self, x):
            return self.b.forward(self.a.forward(x).tanh())  # course code calls children's forward

    m = CourseStyle()
    m(ad.ones(4, 2)).sum().backward()
    assert m.a.weight.grad is not None and float(m.a.weight.grad.data.abs().sum()) > 0


def test_super_forward_inside_subclass():
    class Doubled(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2

    d = Doubled(2, 1)
    x = ad.ones(3, 2)
    d(x).sum().backward()
    assert torch.allclose(d.weight.grad.data, torch.full((1, 2), 6.0))
    assert x.grad is None
    d.zero_grad()
    d.forward(x)
    gx = d.backward(ad.ones(3, 1))
    assert torch.allclose(gx.data, 2 * d.weight.data.expand(3, 2))


def test_multiple_inputs_return_a_tuple():
    class Bilinear(nn.Module):
        def forward(self, a, b):
            return a * b

    m = Bilinear()
    a, b = ad.tensor([2.0]), ad.tensor([3.0])
    m.forward(a, b)
    ga, gb = m.backward(ad.tensor([1.0]))
    assert ga.tolist() == [3.0] and gb.tolist() == [2.0]


def test_course_loop_equals_pytorch_loop():
    torch.manual_seed(0)
    x = torch.rand(64, 2)
    y = (((x - 0.5) ** 2).sum(1, keepdim=True) < 1 / (2 * torch.pi)).float()
    a, b = _net(7), _net(7)
    crit = nn.MSELoss()
    opt = nn.optim.SGD(b.parameters(), lr=0.1)
    for i in range(0, 64, 8):
        xb, yb = x[i : i + 8], y[i : i + 8]
        # course style: forward, backward, param() and a hand-written SGD step
        for _, g in a.param():
            g.zero_()
        crit.forward(a.forward(xb), yb)
        a.backward(crit.backward())
        for p, g in a.param():
            p.data -= 0.1 * g.data
        # PyTorch style
        opt.zero_grad()
        crit(b(xb), yb).backward()
        opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa.data, pb.data, atol=1e-7)
