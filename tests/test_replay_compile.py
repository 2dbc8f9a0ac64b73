"""replay(optimizer=..., compile=True): one call runs forward, backward and the optimizer's update.

Stated tolerances against the eager engine (loss.backward(); opt.step(); opt.zero_grad()):
- replay with an optimizer, not compiled: bit-identical;
- the optimizers' pure updates run eagerly: float64 within 1e-12 (relative), float32 within 1e-6;
- compiled (Inductor fuses and reorders float operations): float64 within 1e-10, float32 within
  1e-5, relative to the largest parameter, after 12 steps.
Only two tests compile (three compiles, a few seconds each with a warm Inductor cache); they
skip without a C++ compiler.
"""

import warnings

import pytest
import torch

import autodiff as ad
import nn
from autodiff import replay_compile

NO_CXX = replay_compile.compiler_missing(torch.device("cpu"))
needs_cxx = pytest.mark.skipif(NO_CXX is not None, reason=str(NO_CXX))

OPTIMIZERS = {
    "sgd": lambda ps: nn.optim.SGD(ps, lr=0.05),
    "sgd_momentum": lambda ps: nn.optim.SGD(ps, lr=0.05, momentum=0.9),
    "sgd_dampening_decay": lambda ps: nn.optim.SGD(
        ps, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01
    ),
    "sgd_nesterov": lambda ps: nn.optim.SGD(
        ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01
    ),
    "adam": lambda ps: nn.optim.Adam(ps, lr=0.01),
    "adam_l2_amsgrad": lambda ps: nn.optim.Adam(
        ps,
        lr=0.01,
        betas=(0.3, 0.9),  # lerp's w > 1/2
        weight_decay=0.1,
        amsgrad=True,
    ),
    "adamw": lambda ps: nn.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
}


def _model(dtype=torch.float32, sizes=(2, 6, 5, 1), act=nn.Tanh):
    torch.manual_seed(0)
    layers = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(i, o, dtype=dtype), act()]
    return nn.Sequential(*layers[:-1])


def _batches(n, size=8, dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.rand(size, 2, generator=g, dtype=dtype),
            torch.rand(size, 1, generator=g, dtype=dtype),
        )
        for _ in range(n)
    ]


def _eager_step(model, opt, loss_fn, x, y):
    loss = loss_fn(model(ad.Tensor(x)), ad.Tensor(y))
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss.item()


def _max_rel_diff(a, b):
    scale = max(float(p.data.abs().max()) for p in a.parameters())
    return (
        max(float((p.data - q.data).abs().max()) for p, q in zip(a.parameters(), b.parameters()))
        / scale
    )


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_pure_update_equals_the_optimizers_step(name, dtype, tol):
    """The rule's pure function, run eagerly and written back, follows opt.step() step by step
    (parameters and state), including a learning rate changed between steps."""
    eager, ruled = _model(dtype), _model(dtype)
    opt_e, opt_r = OPTIMIZERS[name](eager.parameters()), OPTIMIZERS[name](ruled.parameters())
    params = list(ruled.parameters())
    rule = opt_r.update_rule(params)
    assert sorted(rule.owned) == list(range(len(params)))
    loss_fn = nn.MSELoss()
    for it, (x, y) in enumerate(_batches(6, dtype=dtype)):
        if it == 3:
            for o in (opt_e, opt_r):
                o.param_groups[0]["lr"] *= 0.5
        _eager_step(eager, opt_e, loss_fn, x, y)
        prep = rule.prepare()
        if prep is None:  # no state yet: the first step is the optimizer's own
            assert it == 0 and "sgd" != name
            _eager_step(ruled, opt_r, loss_fn, x, y)
            continue
        key, state, hyper = prep
        loss_fn(ruled(ad.Tensor(x)), ad.Tensor(y)).backward()
        own = [params[i].data for i in rule.owned]
        grads = [params[i].grad.data for i in rule.owned]
        new_p, new_s = rule.update(key, own, grads, state, hyper)
        assert len(new_p) == len(own) and len(new_s) == len(state)
        for t, v in zip(own + state, new_p + new_s):
            t.copy_(v)
        rule.finish()
        opt_r.zero_grad()
        assert _max_rel_diff(eager, ruled) <= tol
    assert _max_rel_diff(_model(dtype), ruled) > 100 * tol  # the parameters did move
    assert opt_r.state_dict()["state"].keys() == opt_e.state_dict()["state"].keys()
    for s_e, s_r in zip(opt_e.state.values(), opt_r.state.values()):
        for k in s_e:
            if isinstance(s_e[k], torch.Tensor):
                assert torch.allclose(s_e[k], s_r[k], rtol=100 * tol, atol=100 * tol)
            else:
                assert s_e[k] == s_r[k]  # Adam's step counts advanced by finish()


def test_replay_with_optimizer_is_bit_identical_to_eager():
    eager, replayed = _model(), _model()
    opt_e = nn.optim.SGD(eager.parameters(), lr=0.1, momentum=0.9)
    opt_r = nn.optim.SGD(replayed.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.MSELoss()
    step = ad.replay(lambda x, y: loss_fn(replayed(x), y), optimizer=opt_r)
    for x, y in _batches(5):
        assert step(x, y).item() == _eager_step(eager, opt_e, loss_fn, x, y)
        assert all(p.grad is None for p in replayed.parameters())
    for a, b in zip(eager.parameters(), replayed.parameters()):
        assert torch.equal(a.data, b.data)


def test_replay_refuses_an_optimizer_without_step():
    with pytest.raises(TypeError, match="step\\(\\) and zero_grad\\(\\)"):
        ad.replay(lambda x: x.sum(), optimizer=object())


def test_no_compiler_warns_once_and_replays(monkeypatch):
    monkeypatch.setattr(replay_compile, "compiler_missing", lambda device: "no C++ compiler (x)")
    model = _model()
    opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    twin, twin_opt = _model(), None
    twin_opt = nn.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.MSELoss()
    step = ad.replay(lambda x, y: loss_fn(model(x), y), optimizer=opt, compile=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for x, y in _batches(4):
            assert step(x, y).item() == _eager_step(twin, twin_opt, loss_fn, x, y)
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "\n" not in msgs[0]
    assert "no C++ compiler" in msgs[0] and "plain replay" in msgs[0]


def test_a_step_that_does_not_compile_warns_once_and_replays(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("backend exploded\nsecond line")

    import torch._inductor.compile_fx as inductor

    monkeypatch.setattr(inductor, "compile_fx", broken)  # Inductor directly: then torch.compile
    monkeypatch.setattr(torch, "compile", broken)
    model, twin = _model(), _model()
    opt = nn.optim.Adam(model.parameters(), lr=0.01)
    twin_opt = nn.optim.Adam(twin.parameters(), lr=0.01)
    loss_fn = nn.MSELoss()
    step = ad.replay(lambda x, y: loss_fn(model(x), y), optimizer=opt, compile=True)
    with pytest.warns(RuntimeWarning, match="did not compile \\(RuntimeError: backend exploded\\)"):
        for x, y in _batches(4):
            assert step(x, y).item() == _eager_step(twin, twin_opt, loss_fn, x, y)
    for a, b in zip(twin.parameters(), model.parameters()):
        assert torch.equal(a.data, b.data)
    assert opt.state_dict()["state"][0]["step"] == 4  # counted once per step, not twice


@needs_cxx
def test_compiled_adamw_with_a_schedule_matches_eager_float64(monkeypatch):
    """float64, AdamW, StepLR halving the rate every 4 steps: one compile (the learning rate is
    a tensor input), results within 1e-10 of eager; a second batch size compiles its own plan.
    Through torch.compile's public entry point (the other test goes to Inductor directly)."""
    monkeypatch.setattr(replay_compile, "CPU_BACKEND", "torch.compile")
    model, twin = _model(torch.float64), _model(torch.float64)
    opt = nn.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.05)
    twin_opt = nn.optim.AdamW(twin.parameters(), lr=0.02, weight_decay=0.05)
    sched = nn.optim.StepLR(opt, 4, 0.5)
    twin_sched = nn.optim.StepLR(twin_opt, 4, 0.5)
    loss_fn = nn.MSELoss()
    step = ad.replay(lambda x, y: loss_fn(model(x), y), optimizer=opt, compile=True)
    batches = _batches(12, dtype=torch.float64)
    batches[6] = _batches(1, size=3, dtype=torch.float64, seed=9)[0]  # a second signature
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for x, y in batches:
            lc = step(x, y).item()
            le = _eager_step(twin, twin_opt, loss_fn, x, y)
            assert abs(lc - le) <= 1e-10 * abs(le)
            sched.step()
            twin_sched.step()
    assert not [w for w in caught if "replay" in str(w.message)]  # compiled, no fallback
    assert _max_rel_diff(twin, model) <= 1e-10
    assert all(p.grad is None for p in model.parameters())
    plans = list(step._plans.values())
    assert len(plans) == 2
    big = max(plans, key=lambda p: len(p.compiled.fns) if p.compiled else 0)
    assert len(big.compiled.fns) == 1  # three learning rates, one compiled function
    assert next(iter(big.compiled.fns.values())).guard is None  # no own guard: torch.compile's
    assert opt.state_dict()["state"][0]["step"] == twin_opt.state_dict()["state"][0]["step"] == 12


@needs_cxx
def test_compiled_sgd_step_float32_and_fit():
    """The course setting (float32, Tanh, MSE, SGD with momentum) through nn.train.fit(compile=
    True), compiled by Inductor directly: losses and parameters within 1e-5 of the eager fit."""
    x, y = _batches(1, size=32, seed=3)[0]
    y = (y > 0.5).float()
    runs = {}
    for compiled in (False, True):
        model = _model(torch.float32)
        opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hist = nn.train.fit(
                model,
                nn.MSELoss(),
                opt,
                (x, y),
                epochs=3,
                batch_size=16,
                progress=False,
                compile=compiled,
            )
        assert not [w for w in caught if "replay" in str(w.message)]
        runs[compiled] = (hist.step_losses, model)
    (le, me), (lc, mc) = runs[False], runs[True]
    assert len(le) == len(lc) == 6
    assert max(abs(a - b) for a, b in zip(le, lc)) <= 1e-5 * max(le)
    assert _max_rel_diff(me, mc) <= 1e-5


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compiled_step_on_cuda_matches_eager():
    model, twin = _model().to("cuda"), _model().to("cuda")
    opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    twin_opt = nn.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.MSELoss()
    step = ad.replay(lambda x, y: loss_fn(model(x), y), optimizer=opt, compile=True)
    losses = []
    for x, y in _batches(6):
        x, y = x.cuda(), y.cuda()
        losses.append(step(x, y))  # kept: a CUDA graph's output must not be overwritten
        le = _eager_step(twin, twin_opt, loss_fn, x, y)
        assert abs(losses[-1].item() - le) <= 1e-5 * abs(le)
    assert _max_rel_diff(twin, model) <= 1e-5


def test_direct_guard_accepts_new_tensors_that_fit_and_refuses_others():
    """The checks that stand in for TorchDynamo's guards on a step Inductor compiled directly."""
    x, p, buf = torch.rand(4, 2), torch.rand(3, 2), torch.zeros(3, 2)
    guard = replay_compile._Guard([x, p, buf], 1)
    assert guard.check([torch.rand(4, 2), p, buf])  # inputs: only their layout is checked here
    assert not guard.check([torch.rand(2, 4).t(), p, buf])  # a transposed input
    assert guard.check([x, p.clone(), buf])  # a new parameter tensor of the same kind
    assert not guard.check([x, p.double(), buf])
    assert not guard.check([x, p, torch.zeros(2, 3)])
    assert not guard.check([x, torch.rand(3, 4)[:, :2], buf])  # same shape, other strides
    assert not guard.check([x, p])


def test_compiled_tanh_is_within_a_few_ulp_of_torch_everywhere():
    """The tanh the compiler is given (``replay_compile.DECOMPOSITIONS``), run eagerly: within
    4 ulp of torch's float64 tanh (measured: 2.5 in float32, 3 in float64) over a dense sweep,
    the tiny values where relative accuracy is hardest, and the special values (±0 keep their
    sign)."""
    tanh = replay_compile.DECOMPOSITIONS[torch.ops.aten.tanh.default]
    for dtype in (torch.float32, torch.float64):
        grid = torch.linspace(-12, 12, 400_001, dtype=torch.float64)
        tiny = torch.logspace(-40 if dtype == torch.float32 else -300, 1.2, 100_000)
        x = torch.cat([grid, tiny.double(), -tiny.double()]).to(dtype)
        exact = torch.tanh(x.double())
        ulp = (
            torch.nextafter(exact.to(dtype).abs(), torch.tensor(2.0, dtype=dtype))
            - exact.to(dtype).abs()
        ).double()
        err = (tanh(x).double() - exact).abs() / ulp
        assert err.max() <= 4.0, (dtype, float(err.max()))
        special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan")], dtype=dtype)
        got, want = tanh(special), torch.tanh(special)
        assert torch.equal(got[:4], want[:4]) and torch.equal(got[:2].signbit(), want[:2].signbit())
        assert got[4].isnan()
    for other in (torch.tensor([1j]), torch.tensor([0.5], dtype=torch.float16)):
        assert tanh(other) is NotImplemented  # torch's own tanh


def test_agree_refuses_a_direct_call_that_differs():
    x = torch.rand(3)
    same = lambda *a: (a[0] * 2,)  # noqa: E731
    assert replay_compile._agree(same, lambda a: [a[0] * 2], [x])
    assert not replay_compile._agree(same, lambda a: [a[0] * 3], [x])
    assert not replay_compile._agree(same, lambda a: [a[0] * 2, a[0]], [x])

    def writes(a):
        a[0].add_(1)
        return [a[0] * 2]

    assert not replay_compile._agree(same, writes, [x])  # a write the wrapped call does not do

    def fails(a):
        raise RuntimeError("no")

    assert not replay_compile._agree(same, fails, [x])


@needs_cxx
def test_compiled_step_is_seen_by_saved_tensor_checks_and_guards():
    """Called past AOTAutograd's wrapper, the compiled step still bumps the version counters of
    what it writes: a graph recorded before it, which saved a weight, refuses to backward. A
    transposed input (same shape, other strides: Inductor's own size checks are off) is caught by
    the guard; an unaligned view runs as is; the step stays equal to eager."""
    model, twin = _model(), _model()
    opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    twin_opt = nn.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.MSELoss()
    step = ad.replay(lambda x, y: loss_fn(model(x), y), optimizer=opt, compile=True)
    batches = _batches(5)
    for x, y in batches[:3]:
        lc = step(x, y).item()
        assert abs(lc - _eager_step(twin, twin_opt, loss_fn, x, y)) <= 1e-5 * lc
    compiled = next(iter(step._plans.values())).compiled
    entry = next(iter(compiled.fns.values()))
    assert entry.direct is not None and entry.written  # called directly; it writes in place
    x, y = batches[3]
    stale = loss_fn(model(ad.Tensor(x)), ad.Tensor(y))  # saves the weights
    step(x, y)
    _eager_step(twin, twin_opt, loss_fn, x, y)
    with pytest.raises(ad.GraphError, match="modified"):
        stale.backward()
    x, y = batches[4]
    xt = x.t().contiguous().t()  # same values and shape, column-major
    lc = step(xt, y).item()
    assert abs(lc - _eager_step(twin, twin_opt, loss_fn, x, y)) <= 1e-5 * lc
    x, y = batches[0]
    xo = torch.cat([torch.zeros(1, 2), x])[1:]  # a view 8 bytes into its storage (unaligned)
    lc = step(xo, y).item()
    assert abs(lc - _eager_step(twin, twin_opt, loss_fn, x, y)) <= 1e-5 * lc
    assert _max_rel_diff(twin, model) <= 1e-5
