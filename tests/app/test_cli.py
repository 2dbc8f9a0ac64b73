"""The tapegrad console script: train (writes its files), experiments, graph fallback, entry
points."""

import json
import os
import subprocess
import sys

import pytest

from tapegrad import cli

PNG = b"\x89PNG\r\n\x1a\n"
SMALL = ["--epochs", "2", "--n-train", "64", "--n-test", "32", "--batch-size", "16", "--no-graph"]


def test_train_writes_plots_history_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), *SMALL]) == 0
    text = capsys.readouterr().out
    assert "| epoch | loss | train error % | test error % |" in text
    assert "| 2 |" in text and "final: train error" in text
    for name in ("curves.png", "decision_map.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
    hist = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in hist["records"]] == [1, 2] and hist["config"]["n_train"] == 64
    from nn.checkpoint import load_checkpoint
    from tapegrad.presets import build_model, preset

    model = build_model(preset("default"))
    load_checkpoint(out / "model.pt", model)
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert set(modes.values()) == {0o666 & ~umask}, modes  # the checkpoint too, not 0600


def test_train_options_override_the_preset(tmp_path, capsys):
    args = [
        "train",
        "--preset",
        "best",
        "--quiet",
        "--out",
        str(tmp_path),
        "--optimizer",
        "sgd",
        "--lr",
        "0.1",
        "--momentum",
        "0.5",
        "--activation",
        "leaky_relu",
        "--seed",
        "3",
        *SMALL,
    ]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert text.startswith("final:") and "|" not in text
    cfg = json.loads((tmp_path / "history.json").read_text())["config"]
    got = (cfg["optimizer"], cfg["lr"], cfg["activation"], cfg["batch_size"])
    assert got == ("sgd", 0.1, "leaky_relu", 16)
    assert cfg["warmup"] < cfg["epochs"] and cfg["schedule"] == "cosine"


def test_run_name_says_which_options_changed_the_preset():
    parser = cli.build_parser(with_graph=False)
    plain = parser.parse_args(["train"])
    assert cli.run_name(plain) == "default preset"
    changed = parser.parse_args(["train", "--optimizer", "adam", "--lr", "0.01", "--seed", "4"])
    assert cli.run_name(changed) == "default preset, optimizer adam, lr 0.01, seed 4"


def test_train_help_names_graph_png_and_defaults(capsys):
    assert cli.main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "graph.png" in text and "--no-graph" in text
    for option, default in (
        ("--lr", "default: 0.05"),
        ("--batch-size", "default: 16"),
        ("--epochs", "default: 100"),
    ):
        assert default in text.split(option, 1)[1], option


def test_experiments_quick_tables(capsys, tmp_path, monkeypatch):
    import tapegrad.presets

    small = tapegrad.presets.PRESETS["default"].replace(n_train=96, n_test=32)
    monkeypatch.setitem(tapegrad.presets.PRESETS, "default", small)
    md = tmp_path / "sub" / "tables.md"
    args = [
        "experiments",
        "--quick",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--only",
        "ad",
        "--out",
        str(md),
    ]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "### (a) tapegrad vs PyTorch" in text and "### (d) hidden activation" in text
    assert "| PyTorch (torch.nn + torch.optim) |" in text and "| sigmoid |" in text
    assert "±" in text and "largest relative difference" in text
    assert "| 0.0 |" not in text and "(0 s)" not in text  # short runs keep two digits
    assert md.read_text().strip() == text.strip()


def test_experiments_progress_counts_every_training_step(capsys):
    from tapegrad.experiments import planned_steps, run_all, training_steps
    from tapegrad.presets import preset

    base = preset("default").replace(n_train=64, n_test=16, epochs=2)
    assert training_steps(base) == 2 * 4 and training_steps(base.replace(batch_size=5)) == 2 * 13
    # (a) trains two networks per seed; the base configuration (batch 16, SGD + momentum 0.05,
    # relu) is shared by every table, so it counts once more, not four times.
    per_seed = {"a": 2 * 8, "b": sum(2 * -(-64 // b) for b in (4, 8, 16, 32, 64, 128)), "d": 4 * 8}
    assert planned_steps(base, range(3), "a") == 3 * per_seed["a"]
    assert planned_steps(base, range(2), "d") == 2 * per_seed["d"]
    # the torch twin (8) + every batch size (the base among them) + the 3 other activations
    assert planned_steps(base, range(2), "abd") == 2 * (8 + per_seed["b"] + 3 * 8)
    run_all(seeds=2, base=base, only="ad", progress=True, emit=lambda t: None)
    err = capsys.readouterr().err
    total = 2 * (16 + 24)  # the bar ends exactly full: every step was counted, none twice
    assert "training: 100%" in err and f"{total:.1f}/{total:.1f}" in err and "step/s" in err


def test_graph_without_graph_module_says_so(monkeypatch, capsys):
    import tapegrad

    monkeypatch.setitem(
        sys.modules, "tapegrad.graph_command", None
    )  # import now raises ImportError
    monkeypatch.delattr(tapegrad, "graph_command", raising=False)
    assert cli.main(["graph"]) == 1
    assert "graph command is not available" in capsys.readouterr().err


def test_console_script_points_at_tapegrad_cli():
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        eps = distribution("tapegrad").entry_points
    except PackageNotFoundError:
        pytest.skip("tapegrad is not installed (pip install -e .)")
    (ep,) = [e for e in eps if e.group == "console_scripts" and e.name == "tapegrad"]
    if ep.value != "tapegrad.cli:main":
        pytest.skip(f"installed metadata is stale ({ep.value}); run pip install -e .")
    assert ep.load() is cli.main


def test_python_dash_m_tapegrad_help():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(
        [sys.executable, "-m", "tapegrad", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "usage: tapegrad" in r.stdout and "{train,experiments,graph}" in r.stdout


def test_curves_keep_zero_errors_and_runs_without_a_test_set(tmp_path, monkeypatch):
    import matplotlib.axes

    from nn.train import History
    from viz.plots import plot_history

    h = History()
    for e, tr in enumerate((20.0, 1.0, 0.0, 0.0), 1):
        h.append(
            {
                "epoch": e,
                "loss": 1.0 / e,
                "train_error": tr,
                "test_error": None,
                "seconds": 0.1,
                "lr": 0.1,
            }
        )
    scales = []
    real = matplotlib.axes.Axes.set_yscale
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "set_yscale",
        lambda self, s, **kw: (scales.append(s), real(self, s, **kw))[1],
    )
    assert plot_history(h, tmp_path / "c.png").read_bytes().startswith(PNG)
    assert scales == ["log", "symlog"]  # loss on log, errors on symlog: 0% stays on the plot


@pytest.mark.cuda
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_train_on_cuda_and_refuse_a_missing_index(tmp_path, capsys):
    import torch

    out = str(tmp_path / "a")
    assert cli.main(["train", "--device", "cuda", "--quiet", "--out", out, *SMALL]) == 0
    missing = f"cuda:{torch.cuda.device_count()}"
    assert cli.main(["train", "--device", missing, "--out", str(tmp_path / "b"), *SMALL]) == 2
    assert "argument --device" in capsys.readouterr().err and not (tmp_path / "b").exists()
