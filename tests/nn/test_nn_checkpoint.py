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
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {k: {n: (t.clone() if torch.is_tensor(t) else t) for n, t in s.items()}
             for k, s in opt.state_dict()["state"].items()})


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
    wrong_opt = nn.optim.Adam([{"params": list(same.parameters())[:2]}, {"params": list(same.parameters())[2:]}])
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
