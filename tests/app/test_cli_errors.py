"""Every CLI usage error: one line on stderr naming the option, exit status 2, nothing written."""

import pytest
import torch

from tapegrad import cli

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="refused only without CUDA")

CASES = [
    # (argv after the command, option the message must name)
    pytest.param(["train", "--device", "cuda"], "--device", marks=NO_CUDA, id="device-cuda"),
    pytest.param(["train", "--device", "cuda:7"], "--device", marks=NO_CUDA, id="device-cuda7"),
    pytest.param(["train", "--device", "foo"], "--device", id="device-foo"),
    pytest.param(["train", "--device", "meta"], "--device", id="device-meta"),
    pytest.param(["train", "--lr", "inf"], "--lr", id="lr-inf"),
    pytest.param(["train", "--lr", "1e308"], "--lr", id="lr-huge"),
    pytest.param(["train", "--lr", "nan"], "--lr", id="lr-nan"),
    pytest.param(["train", "--lr", "0"], "--lr", id="lr-zero"),
    pytest.param(["train", "--lr", "abc"], "--lr", id="lr-text"),
    pytest.param(["train", "--momentum", "-1"], "--momentum", id="momentum-negative"),
    pytest.param(["train", "--momentum", "nan"], "--momentum", id="momentum-nan"),
    pytest.param(["train", "--momentum", "1"], "--momentum", id="momentum-one"),
    pytest.param(["train", "--weight-decay", "-1"], "--weight-decay", id="weight-decay-negative"),
    pytest.param(["train", "--seed", str(2**70)], "--seed", id="seed-2**70"),
    pytest.param(["train", "--seed", "-1"], "--seed", id="seed-negative"),
    pytest.param(["train", "--threads", "0"], "--threads", id="threads-zero"),
    pytest.param(["train", "--threads", "-4"], "--threads", id="threads-negative"),
    pytest.param(["train", "--epochs", "0"], "--epochs", id="epochs-zero"),
    pytest.param(["train", "--batch-size", "0"], "--batch-size", id="batch-size-zero"),
    pytest.param(["train", "--n-train", "0"], "--n-train", id="n-train-zero"),
    pytest.param(["train", "--warmup", "100"], "--warmup", id="warmup-all-epochs"),
    pytest.param(["train", "--every", "-1"], "--every", id="every-negative"),
    pytest.param(["train", "--optimizer", "rmsprop"], "--optimizer", id="optimizer-unknown"),
    pytest.param(["train", "--out", "{file}"], "--out", id="train-out-is-a-file"),
    pytest.param(["train", "--out", "{file}/sub"], "--out", id="train-out-under-a-file"),
    pytest.param(["graph", "--out", "{file}"], "--out", id="graph-out-is-a-file"),
    pytest.param(["experiments", "--threads", "0"], "--threads", id="experiments-threads"),
    pytest.param(["experiments", "--seeds", "0"], "--seeds", id="experiments-seeds"),
    pytest.param(["experiments", "--jobs", "0"], "--jobs", id="experiments-jobs"),
    pytest.param(["experiments", "--epochs", "0"], "--epochs", id="experiments-epochs"),
    pytest.param(["experiments", "--only", "xz"], "--only", id="experiments-only"),
    pytest.param(["experiments", "--out", "{dir}"], "--out", id="experiments-out-is-a-folder"),
]


@pytest.mark.parametrize("argv, option", CASES)
def test_usage_error_is_one_line_exit_2_and_writes_nothing(
    argv, option, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # the default --out (runs/...) would land here
    (tmp_path / "a_file").write_text("keep")
    (tmp_path / "a_dir").mkdir()
    argv = [a.format(file=tmp_path / "a_file", dir=tmp_path / "a_dir") for a in argv]
    if "--out" not in argv and argv[0] != "experiments":
        argv += ["--out", str(tmp_path / "out")]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"tapegrad {argv[0]}: error: argument {option}"), lines[0]
    assert any(w in lines[0] for w in ("accepted", "invalid choice", "invalid float", "folder"))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "a_file").read_text() == "keep"


def test_a_run_that_fails_after_the_checks_leaves_no_empty_folder(tmp_path, monkeypatch, capsys):
    import tapegrad.presets

    def boom(*args, **kwargs):
        raise RuntimeError("out of memory\nsecond line")

    monkeypatch.setattr(tapegrad.presets, "run", boom)
    out = tmp_path / "new" / "run"
    assert cli.main(["train", "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tapegrad train: error: RuntimeError: out of memory"]
    assert list(tmp_path.iterdir()) == []
