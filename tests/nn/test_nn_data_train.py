"""The disc data set, the batch loader, fit() and agreement with a torch.nn run."""

import math

import pytest
import torch

import autodiff as ad
import nn
from nn.data import BatchLoader, disc_dataset, disc_split
from nn.train import History, error_rate, fit
from tapegrad.presets import prepare, preset, run


def test_disc_dataset_labels_and_determinism():
    x, y = disc_dataset(2000, seed=1)
    assert x.shape == (2000, 2) and y.shape == (2000, 1) and x.dtype == torch.float32
    assert bool(((x.data >= 0) & (x.data < 1)).all())
    inside = ((x.data - 0.5) ** 2).sum(1) < 1 / (2 * math.pi)
    assert torch.equal(y.data[:, 0], inside.float())
    assert 0.45 < y.data.mean().item() < 0.55
    x2, y2 = disc_dataset(2000, seed=1)
    assert torch.equal(x.data, x2.data) and torch.equal(y.data, y2.data)
    assert not torch.equal(disc_dataset(2000, seed=2)[0].data, x.data)
    _, s = disc_dataset(2000, seed=1, labels="sign")
    assert torch.equal(s.data, y.data * 2 - 1)
    _, o = disc_dataset(2000, seed=1, labels="onehot")
    assert (
        o.shape == (2000, 2)
        and torch.equal(o.data[:, 1], y.data[:, 0])
        and torch.equal(o.data.sum(1), torch.ones(2000))
    )
    with pytest.raises(ValueError, match="labels"):
        disc_dataset(10, labels="bits")
    (xa, _), (xb, _) = disc_split(100, 50, seed=3)
    assert xa.shape == (100, 2) and xb.shape == (50, 2) and not torch.equal(xa.data[:50], xb.data)


def test_batch_loader_shuffles_per_epoch_reproducibly():
    x = ad.Tensor(torch.arange(10.0).reshape(10, 1))
    y = ad.Tensor(torch.arange(10.0).reshape(10, 1))
    loader = BatchLoader(x, y, batch_size=4, seed=0)
    assert len(loader) == 3
    e1 = [xb.data.reshape(-1).tolist() for xb, _ in loader]
    e2 = [xb.data.reshape(-1).tolist() for xb, _ in loader]
    assert [len(b) for b in e1] == [4, 4, 2]
    assert sorted(sum(e1, [])) == list(range(10)) and e1 != e2
    again = BatchLoader(x, y, batch_size=4, seed=0)
    assert [xb.data.reshape(-1).tolist() for xb, _ in again] == e1
    for xb, yb in loader:
        assert torch.equal(xb.data, yb.data)  # pairs stay together
    dropped = BatchLoader(x, y, batch_size=4, seed=0, drop_last=True)
    assert len(dropped) == 2 and [len(xb) for xb, _ in dropped] == [4, 4]
    ordered = BatchLoader(x, y, batch_size=4, shuffle=False)
    assert next(iter(ordered))[0].data.reshape(-1).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="samples"):
        BatchLoader(x, y[:5])


def test_error_rate_conventions():
    assert (
        error_rate(torch.tensor([[2.0], [-1.0]]), torch.tensor([[1.0], [1.0]]), threshold=0.0)
        == 50.0
    )
    assert error_rate(torch.tensor([[0.6], [0.4]]), torch.tensor([[1.0], [0.0]])) == 0.0
    assert (
        error_rate(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
        == 50.0
    )
    assert error_rate(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 0])) == 0.0


def test_fit_records_history_and_learns():
    (x, y), (xt, yt) = disc_split(200, 200, seed=0)
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Linear(2, 16, generator=g),
        nn.Tanh(),
        nn.Linear(16, 16, generator=g),
        nn.Tanh(),
        nn.Linear(16, 1, generator=g),
    )
    opt = nn.optim.Adam(model.parameters(), lr=0.05)
    seen = []
    h = fit(
        model,
        nn.BCEWithLogitsLoss(),
        opt,
        (x, y),
        (xt, yt),
        epochs=30,
        batch_size=20,
        scheduler=nn.optim.StepLR(opt, 20),
        progress=False,
        on_epoch=seen.append,
    )
    assert isinstance(h, History) and len(h) == 30 and seen == h.records
    assert h["epoch"] == list(range(1, 31))
    assert len(h.step_losses) == 30 * 10
    assert h["lr"][19] == pytest.approx(0.05) and h["lr"][20] == pytest.approx(0.005)
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h.final["test_error"] < 12 and all(s >= 0 for s in h["seconds"])
    assert model.training
    with pytest.raises(KeyError, match="keys"):
        h["accuracy"]


def test_engine_and_torch_losses_agree_at_every_step():
    """Shortened default run: same initial weights, same batches, losses within 1e-5 relative."""
    from tapegrad.torch_twin import torch_fit

    cfg = preset("default").replace(epochs=3, n_train=400, n_test=100)
    train, test, model, loss, opt, sched, batch_seed = prepare(cfg)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    ours = fit(
        model,
        loss,
        opt,
        train,
        test,
        cfg.epochs,
        cfg.batch_size,
        scheduler=sched,
        seed=batch_seed,
        progress=False,
        threshold=0.0,
    )
    ref_model, ref = torch_fit(cfg, init, train, test, batch_seed, 0.0)
    assert len(ours.step_losses) == len(ref.step_losses) == 3 * 25
    for a, b in zip(ours.step_losses, ref.step_losses):
        assert abs(a - b) <= 1e-5 * abs(b)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert torch.allclose(p.data, q.detach(), rtol=1e-5, atol=1e-6)


def test_presets_are_reproducible_and_validated():
    cfg = preset("default").replace(epochs=2, n_train=64, n_test=32, batch_size=32)
    a, b = run(cfg, progress=False), run(cfg, progress=False)
    assert a.history.step_losses == b.history.step_losses
    assert preset("best").batch_size == 1000 and preset("best").hidden == (25, 25, 25)
    with pytest.raises(ValueError, match="activation"):
        run(cfg.replace(activation="swish"))
    with pytest.raises(ValueError, match="unknown preset"):
        preset("fastest")


def test_fit_with_replay_gives_the_same_history_as_without():
    import warnings as _w

    from tapegrad.presets import preset
    from tapegrad.presets import run as run_config

    cfg = preset("default").replace(epochs=3, n_train=100, n_test=50, batch_size=16)
    plain = run_config(cfg, progress=False)
    with _w.catch_warnings():
        _w.simplefilter("error")  # the course network replays: no fallback warning
        fast = run_config(cfg, progress=False, replay=True)
    assert plain.history.step_losses == fast.history.step_losses
    for a, b in zip(plain.model.parameters(), fast.model.parameters()):
        assert torch.equal(a.data, b.data)


def test_fit_with_replay_falls_back_when_the_step_cannot_be_replayed():
    import pytest as _pytest

    import nn
    from nn.data import disc_dataset
    from nn.train import fit

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 1))
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    with _pytest.warns(UserWarning, match="without replay.*NoGrad"):
        h = fit(
            model,
            nn.BCEWithLogitsLoss(),
            opt,
            disc_dataset(64, seed=0),
            epochs=2,
            batch_size=16,
            progress=False,
            replay=True,
        )
    assert len(h) == 2
