"""Checkpoints: one-call save/load of model + optimizer, atomic writes, all-or-nothing loads."""

import os

import pytest
import torch

import autodiff as ad
import nn
from nn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def _trained(seed=0, steps=3):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 4, generator=g), nn.Tanh(), nn.Linear(4, 1, generator=g))
    opt = nn.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.rand(8, 2, generator=g), torch.rand(8, 1, generator=g)
    for _ in range(steps):
        opt.zero_grad()
        nn.MSELoss()(model(x), y).backward()
        opt.step()
    return model, opt, (x, y)


def _snapshot(model, opt):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        {
            k: {n: (t.clone() if torch.is_tensor(t) else t) for n, t in s.items()}
            for k, s in opt.state_dict()["state"].items()
        },
    )


def test_roundtrip_restores_model_optimizer_and_extra(tmp_path):
    model, opt, (x, y) = _trained()
    sched = nn.optim.StepLR(opt, 2)
    sched.step()
    path = save_checkpoint(tmp_path / "sub" / "ck.pt", model, opt, sched, epoch=7, note="hi")
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["ck.pt"]  # no temp left
    other, other_opt, _ = _trained(seed=1, steps=1)
    other_sched = nn.optim.StepLR(other_opt, 2)
    extra = load_checkpoint(path, other, other_opt, other_sched)
    assert extra == {"epoch": 7, "note": "hi"} and other_sched.last_epoch == 1
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v)
    for m, o in ((model, opt), (other, other_opt)):  # both continue identically
        o.zero_grad()
        nn.MSELoss()(m(x), y).backward()
        o.step()
    for a, b in zip(model.parameters(), other.parameters()):
        assert torch.equal(a.data, b.data)


def test_corrupt_file_gives_clear_error_and_changes_nothing(tmp_path):
    model, opt, _ = _trained()
    path = save_checkpoint(tmp_path / "ck.pt", model, opt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    victim, vopt, _ = _trained(seed=2)
    before = _snapshot(victim, vopt)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path, victim, vopt)
    path.write_bytes(b"definitely not a zip")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path, victim, vopt)
    torch.save({"weights": torch.ones(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a tapegrad checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt", victim)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt", victim)
    after = _snapshot(victim, vopt)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])


def test_mismatched_model_or_optimizer_changes_nothing(tmp_path):
    model, opt, _ = _trained()
    path = save_checkpoint(tmp_path / "ck.pt", model, opt)
    wider = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 1))
    w_before = {k: v.clone() for k, v in wider.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"(?s)does not fit the model.*size mismatch"):
        load_checkpoint(path, wider)
    assert all(torch.equal(wider.state_dict()[k], v) for k, v in w_before.items())
    # model fits, optimizer does not: the model must be rolled back too
    same, _, _ = _trained(seed=3)
    s_before = {k: v.clone() for k, v in same.state_dict().items()}
    ps = list(same.parameters())
    wrong_opt = nn.optim.Adam([{"params": ps[:2]}, {"params": ps[2:]}])
    with pytest.raises(CheckpointError, match="does not fit the optimizer"):
        load_checkpoint(path, same, wrong_opt)
    assert all(torch.equal(same.state_dict()[k], v) for k, v in s_before.items())
    path2 = save_checkpoint(tmp_path / "model_only.pt", model)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(path2, same, wrong_opt)


def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    model, opt, _ = _trained()
    path = save_checkpoint(tmp_path / "ck.pt", model, opt)
    good = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, opt)
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["ck.pt"]


# ---- a failed load changes nothing, whatever is wrong in the file ------------------------------
def _exact_state(model, opt, sched):
    """Everything a load could change, as bytes-exact copies."""
    params = {k: v.clone() for k, v in model.state_dict().items()}
    state = {
        id(p): {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()}
        for p, s in opt.state.items()
    }
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    return params, state, groups, dict(sched.state_dict())


def _same(a, b):
    (pa, sa, ga, ca), (pb, sb, gb, cb) = a, b
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].keys() == sb[k].keys()
        for n in sa[k]:
            x, y = sa[k][n], sb[k][n]
            assert (torch.equal(x, y) and x.dtype == y.dtype) if torch.is_tensor(x) else x == y
    assert ga == gb and ca == cb


def _break_opt_entry(p):
    p["optimizer"]["state"][0] = 3.0


def _break_step(p):
    p["optimizer"]["state"][1]["step"] = "many"


def _break_moment_shape(p):
    p["optimizer"]["state"][2]["exp_avg"] = torch.zeros(7)


def _drop_model(p):
    del p["model"]


def _future_version(p):
    p["version"] = 99


def _garbage_scheduler(p):
    p["scheduler"] = {"last_epoch": "yesterday"}


def _wrong_scheduler_values(p):
    p["scheduler"] = dict(p["scheduler"], base_lrs=[0.1, 0.2, 0.3], last_epoch="x")


def _maximize(p):
    p["optimizer"]["param_groups"][0]["maximize"] = True


def _wrong_model_shape(p):
    p["model"]["0.weight"] = torch.zeros(3, 3)


def _adamw_state(p):
    p["optimizer"]["param_groups"][0]["decoupled_weight_decay"] = True


@pytest.mark.parametrize(
    "damage, message",
    [
        (_break_opt_entry, "optimizer.*state of parameter 0 is a float, not a dict"),
        (_break_step, "optimizer.*'step' of parameter 1 must be a count"),
        (
            _break_moment_shape,
            r"optimizer.*'exp_avg' of parameter 2 has shape \(7,\), the parameter has \(1, 4\)",
        ),
        (_drop_model, "holds no model weights"),
        (_future_version, "format version 99; this tapegrad reads versions 1 to 1"),
        (_garbage_scheduler, "does not fit the scheduler StepLR: its state has keys"),
        (_wrong_scheduler_values, "does not fit the scheduler StepLR: 'base_lrs'"),
        (_maximize, "maximize=True"),
        (_wrong_model_shape, r"(?s)does not fit the model.*size mismatch"),
        (_adamw_state, "AdamW"),
    ],
)
def test_a_failed_load_changes_nothing(tmp_path, damage, message):
    model, opt, _ = _trained()
    sched = nn.optim.StepLR(opt, 2)
    payload = torch.load(save_checkpoint(tmp_path / "ck.pt", model, opt, sched), weights_only=True)
    damage(payload)
    torch.save(payload, tmp_path / "bad.pt")
    victim, vopt, _ = _trained(seed=4)
    vsched = nn.optim.StepLR(vopt, 3)
    before = _exact_state(victim, vopt, vsched)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "bad.pt", victim, vopt, vsched)
    _same(before, _exact_state(victim, vopt, vsched))


def test_a_folder_is_not_called_a_missing_file(tmp_path):
    model, opt, _ = _trained()
    with pytest.raises(IsADirectoryError, match="is a folder, not a checkpoint file"):
        load_checkpoint(tmp_path, model, opt)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_checkpoint(tmp_path / "nope.pt", model, opt)


def test_checkpoint_follows_the_umask(tmp_path):
    model, opt, _ = _trained()
    old = os.umask(0o027)
    try:
        path = save_checkpoint(tmp_path / "ck.pt", model, opt)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


# ---- torch.optim's own state_dict ----------------------------------------------------------------
@pytest.mark.parametrize(
    "ours, theirs, kwargs",
    [
        (nn.optim.Adam, torch.optim.Adam, dict(lr=0.05, weight_decay=0.01)),
        (nn.optim.AdamW, torch.optim.AdamW, dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
        (nn.optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
        (nn.optim.SGD, torch.optim.SGD, dict(lr=0.05)),
    ],
)
def test_torch_optimizer_state_continues_as_in_torch(ours, theirs, kwargs):
    """Train 3 steps in torch, load its state into ours, then both take 3 more steps: same path."""
    g = torch.Generator().manual_seed(0)
    w0, x = torch.randn(3, 4, generator=g), torch.randn(5, 4, generator=g)
    y = torch.randn(5, 3, generator=g)
    tw = torch.nn.Parameter(w0.clone())
    topt = theirs([tw], **kwargs)

    def torch_step():
        topt.zero_grad()
        ((x @ tw.T - y) ** 2).mean().backward()  # torch's autograd: the oracle side only
        topt.step()

    for _ in range(3):
        torch_step()
    w = nn.Parameter(tw.detach().clone())
    opt = ours([w], lr=1.0)
    opt.load_state_dict(topt.state_dict())
    assert opt.param_groups[0]["lr"] == kwargs["lr"] and "foreach" not in opt.param_groups[0]
    for _ in range(3):
        torch_step()
        opt.zero_grad()
        ((ad.Tensor(x) @ w.T - ad.Tensor(y)) ** 2).mean().backward()
        opt.step()
    assert torch.allclose(w.data, tw.detach(), rtol=1e-5, atol=1e-6)


def test_torch_adamw_state_is_refused_by_adam():
    tw = torch.nn.Parameter(torch.ones(2))
    topt = torch.optim.AdamW([tw])
    tw.sum().backward()
    topt.step()
    w = nn.Parameter(torch.ones(2))
    opt = nn.optim.Adam([w])
    with pytest.raises(ValueError, match="AdamW's.*load it into AdamW"):
        opt.load_state_dict(topt.state_dict())
    assert opt.state == {} and opt.param_groups[0]["lr"] == 1e-3
