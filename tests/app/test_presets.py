"""Presets: name -> class tables, range checks naming the field, and what nn reports to the app."""

import json
import math

import pytest
import torch

import nn
from nn.train import default_threshold, fit
from tapegrad import presets
from tapegrad.presets import ConfigError, TrainConfig, preset


def test_tables_map_names_to_classes_and_build_each():
    cfg = preset("default").replace(epochs=4, warmup=1)
    for name, cls in presets.OPTIMIZERS.items():
        opt = presets.build_optimizer(cfg.replace(optimizer=name), [nn.Parameter(torch.zeros(2))])
        assert type(opt) is cls and opt.param_groups[0]["lr"] == cfg.lr
    assert "momentum" not in presets.optimizer_options(cfg, nn.optim.Adam)
    for name, cls in presets.LOSSES.items():
        assert type(presets.build_loss(cfg.replace(loss=name))) is cls
    for name in presets.SCHEDULES:
        opt = presets.build_optimizer(cfg, [nn.Parameter(torch.zeros(2))])
        sched = presets.build_scheduler(cfg.replace(schedule=name), opt)
        assert (sched is None) == (name == "none")
    model = presets.build_model(cfg.replace(activation="tanh"))
    assert [type(m).__name__ for m in model][:2] == ["Linear", "Tanh"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", math.inf),
        ("lr", 1e308),
        ("lr", 0.0),
        ("lr", math.nan),
        ("momentum", 1.0),
        ("momentum", -0.1),
        ("weight_decay", -1.0),
        ("seed", 2**70),
        ("seed", -1),
        ("epochs", 0),
        ("batch_size", 2.5),
        ("n_train", True),
        ("warmup", 100),
        ("device", "meta"),
        ("device", "nope"),
        ("activation", "swish"),
        ("dtype", "float16"),
    ],
)
def test_check_names_the_field_and_the_accepted_range(field, value):
    with pytest.raises(ConfigError, match=f"invalid {field}.*accepted") as e:
        TrainConfig(**{field: value}).check()
    assert e.value.field == field


def test_check_accepts_the_edges_of_each_range():
    TrainConfig(lr=100.0, momentum=0.0, weight_decay=1.0, seed=2**63 - 1, warmup=99).check()


def test_the_loss_declares_its_decision_threshold():
    zero_one = torch.tensor([[0.0], [1.0]])
    assert nn.BCEWithLogitsLoss.decision_threshold == 0.0
    assert default_threshold(nn.BCEWithLogitsLoss(), zero_one) == 0.0
    assert default_threshold(nn.MSELoss(), zero_one) == 0.5
    assert default_threshold(nn.MSELoss(), zero_one * 2 - 1) == 0.0  # ±1 labels
    assert presets.threshold(preset("default")) == 0.0
    assert presets.threshold(preset("default").replace(loss="mse")) == 0.5


def test_history_without_a_test_set_has_no_test_error():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3, generator=g), nn.Tanh(), nn.Linear(3, 1, generator=g))
    x, y = torch.rand(8, 2, generator=g), (torch.rand(8, 1, generator=g) > 0.5).float()
    h = fit(
        model,
        nn.BCEWithLogitsLoss(),
        nn.optim.SGD(model.parameters(), lr=0.1),
        (x, y),
        epochs=2,
        batch_size=4,
        progress=True,
    )
    assert h.final["test_error"] is None and 0 <= h.final["train_error"] <= 100
    assert json.loads(json.dumps(h.to_dict()))["records"][-1]["test_error"] is None
    assert "test error" not in repr(h) and "train error" in repr(h)


@pytest.mark.parametrize(
    "schedule, warmup", [("none", 0), ("step", 0), ("cosine", 0), ("cosine", 2)]
)
def test_the_torch_twin_follows_the_same_schedule(schedule, warmup):
    from tapegrad.torch_twin import torch_fit

    cfg = preset("default").replace(
        epochs=5, warmup=warmup, schedule=schedule, n_train=32, n_test=8
    )
    train, test, model, loss, opt, sched, batch_seed = presets.prepare(cfg)
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
    )
    _, theirs = torch_fit(cfg, init, train, test, batch_seed, presets.threshold(cfg))
    assert ours["lr"] == pytest.approx(theirs["lr"], rel=1e-12)
    assert len(set(ours["lr"])) == (1 if schedule == "none" else len(set(theirs["lr"])))
