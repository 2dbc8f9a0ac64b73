"""Optimizers and schedulers against torch.optim: same gradients in, same parameters out."""

import math

import pytest
import torch

import autodiff as ad
import nn
from nn import optim

SHAPES = [(5, 3), (5,), (1, 5), (1,)]

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.01)),
    ("Adam", dict()),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
]


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g) for s in SHAPES]


def _run_both(name, kw, steps=100, seed=0):
    init = _params(seed)
    ours = [nn.Parameter(t.clone()) for t in init]
    theirs = [t.clone().requires_grad_() for t in init]
    o_opt = getattr(optim, name)(ours, **kw)
    t_opt = getattr(torch.optim, name)(theirs, **kw)
    g = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        grads = [torch.randn(*s, generator=g) for s in SHAPES]
        for p, q, gr in zip(ours, theirs, grads):
            p.grad = ad.Tensor(gr.clone())
            q.grad = gr.clone()
        o_opt.step()
        t_opt.step()
    return ours, theirs, o_opt


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{kw}" for n, kw in CASES])
def test_updates_match_torch_optim_after_100_steps(name, kw):
    ours, theirs, _ = _run_both(name, kw)
    for p, q in zip(ours, theirs):
        assert (p.data - q.detach()).abs().max().item() <= 1e-6


def test_step_never_writes_gradients_and_skips_missing_ones():
    p, q = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(2))
    g = ad.tensor([1.0, 2.0, 3.0])
    p.grad = g
    opt = optim.SGD([p, q], lr=0.1, momentum=0.9, weight_decay=0.5)
    opt.step()
    opt.step()
    assert p.grad is g and g.tolist() == [1.0, 2.0, 3.0]
    assert q.data.tolist() == [1.0, 1.0]
    a = optim.Adam([q], weight_decay=0.1)
    q.grad = g[:2]
    a.step()
    assert g.tolist() == [1.0, 2.0, 3.0]


def test_param_groups_and_zero_grad():
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad = ad.ones(2)
    b.grad = ad.ones(2)
    opt.step()
    assert a.data.tolist() == pytest.approx([0.9, 0.9]) and b.data.tolist() == [0.0, 0.0]
    assert opt.param_groups[1]["momentum"] == 0.0
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    c = nn.Parameter(torch.ones(1))
    opt.add_param_group({"params": c, "lr": 0.5})
    assert opt.param_groups[2]["lr"] == 0.5
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [a]})


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: optim.SGD(p, lr=-0.1), "learning rate"),
        (lambda p: optim.SGD(p, lr=float("nan")), "learning rate"),
        (lambda p: optim.SGD(p, lr=0.1, momentum=-1), "momentum"),
        (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov"),
        (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "beta parameter at index 0"),
        (lambda p: optim.Adam(p, betas=(0.9, -0.1)), "beta parameter at index 1"),
        (lambda p: optim.Adam(p, eps=-1e-8), "epsilon"),
        (lambda p: optim.AdamW(p, weight_decay=float("nan")), "weight_decay"),
        (lambda p: optim.Adam([]), "empty parameter list"),
    ],
)
def test_invalid_hyperparameters_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make([nn.Parameter(torch.ones(1))])


def test_refuses_non_leaves_and_single_tensors():
    p = nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(p, lr=0.1)


@pytest.mark.parametrize(
    "name,kw", [("SGD", dict(lr=0.05, momentum=0.9)), ("Adam", dict(lr=1e-2, amsgrad=True))]
)
def test_state_dict_roundtrip_resumes_exactly(name, kw):
    full, _, _ = _run_both(name, kw, steps=20)
    init = _params()
    ps = [nn.Parameter(t.clone()) for t in init]
    opt = getattr(optim, name)(ps, **kw)
    g = torch.Generator().manual_seed(1)
    grads = [[torch.randn(*s, generator=g) for s in SHAPES] for _ in range(20)]
    for gs in grads[:10]:
        for p, gr in zip(ps, gs):
            p.grad = ad.Tensor(gr.clone())
        opt.step()
    saved = opt.state_dict()
    fresh = getattr(optim, name)(ps, **{**kw, "lr": 123.0})
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == kw["lr"]
    for gs in grads[10:]:
        for p, gr in zip(ps, gs):
            p.grad = ad.Tensor(gr.clone())
        fresh.step()
    for p, q in zip(ps, full):
        assert torch.equal(p.data, q.data)


def test_load_state_dict_checks_before_changing():
    p = nn.Parameter(torch.ones(3))
    opt = optim.Adam([p], lr=0.1)
    p.grad = ad.ones(3)
    opt.step()
    sd = opt.state_dict()
    other = optim.Adam([nn.Parameter(torch.ones(4))], lr=0.5)
    with pytest.raises(ValueError, match=r"shape \(3,\).*\(4,\)"):
        other.load_state_dict(sd)
    assert other.state == {} and other.param_groups[0]["lr"] == 0.5
    with pytest.raises(ValueError, match="groups"):
        optim.Adam(
            [{"params": [nn.Parameter(torch.ones(3))]}, {"params": [nn.Parameter(torch.ones(3))]}]
        ).load_state_dict(sd)


def _lrs(sched_factory, opt, steps):
    s = sched_factory(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    return out, s


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (
            lambda o: optim.StepLR(o, step_size=3, gamma=0.5),
            lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
        ),
        (
            lambda o: optim.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
        ),
        (
            lambda o: optim.CosineAnnealingLR(o, T_max=12, warmup=4, warmup_start_factor=0.1),
            lambda o: torch.optim.lr_scheduler.SequentialLR(
                o,
                [
                    torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=4),
                    torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=8),
                ],
                milestones=[4],
            ),
        ),
    ],
    ids=["step", "cosine", "cosine-warmup"],
)
def test_schedulers_match_torch(ours, theirs):
    p = nn.Parameter(torch.ones(1))
    q = torch.ones(1, requires_grad=True)
    a, sched = _lrs(ours, optim.SGD([p], lr=0.3), 15)
    b, _ = _lrs(theirs, torch.optim.SGD([q], lr=0.3), 15)
    assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
    assert sched.get_last_lr() == [sched.optimizer.param_groups[0]["lr"]]
    state = sched.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 15


def test_scheduler_errors():
    opt = optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1)
    with pytest.raises(ValueError, match="warmup"):
        optim.CosineAnnealingLR(opt, T_max=5, warmup=5)
    with pytest.raises(ValueError, match="step_size"):
        optim.StepLR(opt, step_size=0)
    assert math.isclose(optim.CosineAnnealingLR(opt, T_max=4).get_last_lr()[0], 0.1)
