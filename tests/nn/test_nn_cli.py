"""The tapegrad console script: train (writes both PNGs), experiments, graph fallback."""
import json
import sys

import pytest

from viz import cli

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
    import nn
    from nn.checkpoint import load_checkpoint
    from nn.presets import build_model, preset
    model = build_model(preset("default"))
    load_checkpoint(out / "model.pt", model)


def test_train_options_override_the_preset(tmp_path, capsys):
    args = ["train", "--preset", "best", "--quiet", "--out", str(tmp_path), "--optimizer", "sgd",
            "--lr", "0.1", "--momentum", "0.5", "--activation", "leaky_relu", "--seed", "3", *SMALL]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert text.startswith("final:") and "|" not in text
    cfg = json.loads((tmp_path / "history.json").read_text())["config"]
    assert (cfg["optimizer"], cfg["lr"], cfg["activation"], cfg["batch_size"]) == ("sgd", 0.1, "leaky_relu", 16)
    assert cfg["warmup"] < cfg["epochs"] and cfg["schedule"] == "cosine"


def test_train_bad_values_exit_2_with_a_message(tmp_path, capsys):
    assert cli.main(["train", "--lr", "-1", "--out", str(tmp_path)]) == 2
    assert "lr" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--activation", "swish"])
    assert e.value.code == 2


def test_experiments_quick_tables(capsys, tmp_path, monkeypatch):
    import nn.presets
    small = nn.presets.PRESETS["default"].replace(n_train=96, n_test=32)
    monkeypatch.setitem(nn.presets.PRESETS, "default", small)
    md = tmp_path / "tables.md"
    args = ["experiments", "--quick", "--seeds", "2", "--epochs", "2", "--only", "ad", "--out", str(md)]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "### (a) tapegrad vs PyTorch" in text and "### (d) hidden activation" in text
    assert "| PyTorch (torch.nn + torch.optim) |" in text and "| sigmoid |" in text
    assert "±" in text and "largest relative difference" in text
    assert md.read_text().strip() == text.strip()
    assert cli.main(["experiments", "--only", "xz"]) == 2


def test_graph_without_graph_module_says_so(monkeypatch, capsys):
    import viz
    monkeypatch.setitem(sys.modules, "viz.graph_command", None)  # import now raises ImportError
    monkeypatch.delattr(viz, "graph_command", raising=False)
    assert cli.main(["graph"]) == 1
    assert "graph command is not available" in capsys.readouterr().err


def test_console_script_points_at_viz_cli():
    from importlib.metadata import PackageNotFoundError, distribution
    try:
        eps = distribution("tapegrad").entry_points
    except PackageNotFoundError:
        pytest.skip("tapegrad is not installed (pip install -e .)")
    (ep,) = [e for e in eps if e.group == "console_scripts" and e.name == "tapegrad"]
    assert ep.value == "viz.cli:main" and ep.load() is cli.main
