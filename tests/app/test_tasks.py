"""The digits and reverse tasks: data, splits, decoding, torch twins step for step, the command.

Short runs only; the full runs (accuracy targets) are ``slow``.
"""

import json
import re

import pytest
import torch

import nn
from tapegrad import cli
from tapegrad.tasks import digits_data, reverse_data

PNG = b"\x89PNG\r\n\x1a\n"
HAS_SKLEARN = digits_data.sklearn_missing() is None
needs_sklearn = pytest.mark.skipif(not HAS_SKLEARN, reason="scikit-learn (the digits extra)")
HAS_TRANSFORMER_LAYERS = all(
    hasattr(nn, n) for n in ("LayerNorm", "Embedding", "GELU", "MultiheadAttention")
)
needs_layers = pytest.mark.skipif(not HAS_TRANSFORMER_LAYERS, reason="transformer layers")


# ---- digits data ----------------------------------------------------------------------------
@needs_sklearn
def test_digits_split_is_fixed_stratified_and_standardised():
    (xt, yt), (xe, ye) = digits_data.load_split()
    assert xt.shape == (1437, 1, 8, 8) and xe.shape == (360, 1, 8, 8)
    assert yt.dtype == torch.int64 and set(yt.tolist()) == set(range(10))
    # stratified: each class's share is the same in both parts (to one image)
    share = 360 / 1797
    total = torch.bincount(torch.cat([yt, ye]), minlength=10)
    assert ((torch.bincount(ye, minlength=10) - total * share).abs() <= 1).all()
    assert abs(float(xt.mean())) < 1e-5 and abs(float(xt.std()) - 1) < 1e-5
    (xt2, _), (xe2, ye2) = digits_data.load_split(torch.float64)
    assert xt2.dtype == torch.float64 and torch.equal(ye2, ye)  # the same split every time
    assert torch.allclose(xe2.float(), xe)


def test_random_shift_moves_each_image_by_at_most_one_pixel_and_fills_the_border():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(64, 2, 5, 6) + 1.0  # background (the minimum) is below every pixel
    background = float(x.min())
    out = digits_data.random_shift(x, g)
    assert out.shape == x.shape
    for i in range(64):
        padded = torch.nn.functional.pad(x[i], (1, 1, 1, 1), value=background)
        windows = [padded[:, a : a + 5, b : b + 6] for a in range(3) for b in range(3)]
        assert any(torch.equal(out[i], w) for w in windows), i
    moved = sum(not torch.equal(out[i], x[i]) for i in range(64))
    assert moved > 40  # 8 of the 9 offsets move the image
    assert digits_data.random_shift(x, g, max_shift=0) is x


def test_epoch_batches_depend_only_on_seed_and_epoch_and_cover_every_image_once():
    x = torch.arange(50.0).reshape(50, 1, 1, 1).expand(50, 1, 3, 3).contiguous()
    y = torch.arange(50)
    one = list(digits_data.epoch_batches(x, y, 16, seed=7, epoch=1, max_shift=0))
    again = list(digits_data.epoch_batches(x, y, 16, seed=7, epoch=1, max_shift=0))
    other = list(digits_data.epoch_batches(x, y, 16, seed=7, epoch=2, max_shift=0))
    assert [b[0].shape[0] for b in one] == [16, 16, 16, 2]
    assert all(torch.equal(a[1], b[1]) for a, b in zip(one, again))
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(one, other))
    labels = torch.cat([b[1] for b in one])
    assert sorted(labels.tolist()) == list(range(50))
    assert all(torch.equal(xb[:, 0, 0, 0], yb.float()) for xb, yb in one)  # pairs stay together


def test_confusion_matrix_counts_true_by_predicted():
    from tapegrad.tasks.pictures import confusion_matrix

    true = torch.tensor([0, 0, 1, 2, 2, 2])
    pred = torch.tensor([0, 1, 1, 2, 0, 2])
    m = confusion_matrix(true, pred, classes=3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert confusion_matrix(true[:0], pred[:0], classes=3).sum() == 0


# ---- reverse data and decoding --------------------------------------------------------------
def test_rows_are_digits_separator_reversed_digits():
    rows = reverse_data.with_answers(torch.tensor([[1, 2, 3], [0, 0, 7]]))
    assert rows.tolist() == [[1, 2, 3, 10, 3, 2, 1], [0, 0, 7, 10, 7, 0, 0]]
    from tapegrad.tasks.reverse import split

    inputs, targets = split(rows)
    assert inputs.tolist()[0] == [1, 2, 3, 10, 3, 2] and targets.tolist()[0] == [3, 2, 1]


def test_held_out_rows_are_distinct_reproducible_and_never_trained_on():
    held = reverse_data.held_out(40, 2, seed=5)  # 40 of the 100 two-digit sequences
    assert held.shape == (40, 5)
    assert len({tuple(r) for r in held[:, :2].tolist()}) == 40
    assert torch.equal(held, reverse_data.held_out(40, 2, seed=5))
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(20):
        batch = reverse_data.training_batch(64, 2, g, held)
        assert torch.equal(batch[:, 3:], batch[:, :2].flip(1))
        seen |= {tuple(r) for r in batch[:, :2].tolist()}
    assert len(seen) == 60 and not seen & {tuple(r) for r in held[:, :2].tolist()}
    with pytest.raises(ValueError, match="held_out"):
        reverse_data.held_out(51, 2, seed=0)  # more than half of all sequences


class _Oracle:
    """A stand-in model: logits that pick the reversed digit at each answer position (and a
    wrong digit at position ``wrong_at`` of rows whose first digit is 0)."""

    def __init__(self, wrong_at=None):
        self.wrong_at = wrong_at

    def __call__(self, tokens):
        n, t = tokens.shape
        length = int((tokens == reverse_data.SEP).nonzero()[0, 1])
        logits = torch.zeros(n, t, reverse_data.VOCAB)
        k = t - 1 - length  # answer digits already present after SEP
        if k < length:
            nxt = tokens[:, length - 1 - k].clone()
            if self.wrong_at == k:
                nxt[tokens[:, 0] == 0] = (nxt[tokens[:, 0] == 0] + 1) % 10
            logits[torch.arange(n), -1, nxt] = 1.0
        return logits


def test_greedy_decoding_and_sequence_error():
    from tapegrad.tasks.reverse import greedy_answers, sequence_error

    rows = reverse_data.held_out(200, 4, seed=1)
    got = greedy_answers(_Oracle(), rows[:, :5], 4)
    assert torch.equal(got, rows[:, 5:])
    assert sequence_error(_Oracle(), rows, chunk=64) == 0.0
    starts_with_0 = float((rows[:, 0] == 0).float().mean()) * 100
    assert 0 < starts_with_0 < 100
    assert sequence_error(_Oracle(wrong_at=3), rows, chunk=64) == pytest.approx(starts_with_0)


def test_causal_mask_forbids_only_the_future():
    from tapegrad.tasks.reverse import causal_mask

    m = causal_mask(4)
    assert m.dtype == torch.bool and m.tolist()[1] == [False, False, True, True]
    assert not m.diagonal().any() and causal_mask(0).shape == (0, 0)


# ---- torch twins ------------------------------------------------------------------------------
def _assert_same_trajectory(ours, theirs, tol):
    a, b = torch.tensor(ours.step_losses), torch.tensor(theirs.step_losses)
    assert a.shape == b.shape and a.numel() > 5
    assert (a - b).abs().max() <= tol, (a - b).abs().max()
    assert a[-1] < a[0] * 0.9  # it did learn: equal because both move, not because neither does
    for r, s in zip(ours.records, theirs.records):
        assert (r["train_error"], r["test_error"], r["lr"]) == pytest.approx(
            (s["train_error"], s["test_error"], s["lr"])
        )


@needs_sklearn
def test_digits_losses_equal_the_torch_twin_step_for_step():
    from tapegrad.tasks import twins
    from tapegrad.tasks.digits import DigitsConfig

    cfg = DigitsConfig(epochs=2, batch_size=128, lr=1e-2, seed=4, channels=(8, 16))
    _assert_same_trajectory(*twins.digits_pair(cfg), tol=1e-5)


@needs_layers
def test_reverse_losses_equal_the_torch_twin_step_for_step():
    from tapegrad.tasks import twins
    from tapegrad.tasks.reverse import ReverseConfig

    cfg = ReverseConfig(epochs=2, n_train=640, n_test=50, length=4, d_model=32, seed=2)
    _assert_same_trajectory(*twins.reverse_pair(cfg), tol=1e-5)


@needs_layers
def test_reverse_graph_at_depth_1_shows_the_blocks():
    import viz
    from tapegrad.tasks.reverse import ReverseConfig, ReverseTransformer, loss_of, split

    cfg = ReverseConfig(length=3, d_model=16)
    model = ReverseTransformer(cfg)
    inputs, targets = split(reverse_data.held_out(4, 3, seed=0))
    src = viz.draw_graph(loss_of(model, inputs, targets), model=model, depth=1).source
    boxes = re.findall(r"<B>([^<]*)</B>", src)  # the bold first line of each box
    for name in (
        "block0: Block",
        "block1: Block",
        "tok: Embedding",
        "pos: Embedding",
        "ln_f: LayerNorm",
        "head: Linear",
    ):
        assert any(b.startswith(name) for b in boxes), (name, boxes)
    # depth 1: a block's insides (attention, LayerNorms, MLP) are inside its one box
    assert not any("attn" in b or "Attention" in b or "ln1" in b for b in boxes), boxes


# ---- the command --------------------------------------------------------------------------------
@needs_sklearn
def test_train_task_digits_writes_its_files(tmp_path, capsys):
    out = tmp_path / "digits"
    assert (
        cli.main(
            [
                "train",
                "--task",
                "digits",
                "--out",
                str(out),
                "--epochs",
                "1",
                "--batch-size",
                "256",
                "--no-graph",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "| 1 |" in text and "test accuracy" in text
    for name in ("curves.png", "confusion.png", "misclassified.png"):
        assert (out / name).read_bytes().startswith(PNG), name
    hist = json.loads((out / "history.json").read_text())
    assert hist["task"] == "digits" and hist["config"]["batch_size"] == 256
    assert len(hist["step_losses"]) == 6  # ceil(1437 / 256)
    from nn.checkpoint import load_checkpoint
    from tapegrad.tasks.digits import DigitsConfig, build_model

    load_checkpoint(out / "model.pt", build_model(DigitsConfig()))


@needs_layers
def test_train_task_reverse_writes_its_files(tmp_path, capsys):
    out = tmp_path / "rev"
    assert (
        cli.main(
            [
                "train",
                "--task",
                "reverse",
                "--out",
                str(out),
                "--epochs",
                "1",
                "--n-train",
                "128",
                "--n-test",
                "20",
                "--quiet",
                "--no-graph",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith("final:")
    hist = json.loads((out / "history.json").read_text())
    assert hist["config"]["n_test"] == 20 and len(hist["step_losses"]) == 2
    assert (out / "curves.png").read_bytes().startswith(PNG)


TASK_ERRORS = [
    (["--task", "digits", "--momentum", "0.5"], "--momentum"),
    (["--task", "digits", "--n-test", "10"], "--n-test"),
    (["--task", "reverse", "--preset", "best"], "--preset"),
    (["--task", "reverse", "--replay"], "--replay"),
    (["--task", "reverse", "--n-test", "0"], "--n-test"),
    (["--task", "reverse", "--lr", "nan"], "--lr"),
    (["--task", "digits", "--epochs", "0"], "--epochs"),
    (["--task", "digits", "--device", "meta"], "--device"),
    (["--task", "reverse", "--every", "-1"], "--every"),
    (["--task", "reverse", "--threads", "0"], "--threads"),
    (["--task", "chess"], "--task"),
]


@pytest.mark.parametrize("argv, option", TASK_ERRORS, ids=[" ".join(a) for a, _ in TASK_ERRORS])
def test_task_usage_error_is_one_line_exit_2_and_writes_nothing(
    argv, option, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", *argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tapegrad train: error: argument {option}")
    assert any(w in lines[0] for w in ("accepted", "invalid choice", "invalid float"))
    assert list(tmp_path.iterdir()) == []  # not even runs/<task>


def test_digits_without_scikit_learn_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        digits_data,
        "sklearn_missing",
        lambda: (
            "the digits task needs scikit-learn (No module named 'sklearn'); "
            f"install it with {digits_data.EXTRA_HINT}"
        ),
    )
    out = tmp_path / "out"
    assert cli.main(["train", "--task", "digits", "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "argument --task" in lines[0] and ".[digits]" in lines[0]
    assert not out.exists()


# ---- the targets (long runs) ----------------------------------------------------------------
@pytest.mark.slow
@needs_sklearn
def test_digits_default_run_reaches_98_5_percent():
    from tapegrad.tasks.digits import DigitsConfig, run

    assert run(DigitsConfig(seed=1)).history.final["test_error"] <= 1.5


@pytest.mark.slow
@needs_layers
def test_reverse_default_run_reaches_99_percent():
    from tapegrad.tasks.reverse import ReverseConfig, run

    assert run(ReverseConfig(seed=1)).history.final["test_error"] <= 1.0


@pytest.mark.slow
@needs_sklearn
def test_digits_full_run_equals_the_torch_twin_in_float64():
    # float32 runs part after ~150 steps (last-bit differences of the kernels, amplified);
    # in float64 the whole default run stays together.
    from tapegrad.tasks import twins
    from tapegrad.tasks.digits import DigitsConfig

    ours, theirs = twins.digits_pair(DigitsConfig(dtype="float64"))
    _assert_same_trajectory(ours, theirs, tol=1e-10)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("task", ["digits", "reverse"])
def test_task_on_cuda_follows_the_cpu_run(task, tmp_path, capsys):
    if task == "digits" and not HAS_SKLEARN:
        pytest.skip("scikit-learn (the digits extra)")
    if task == "reverse" and not HAS_TRANSFORMER_LAYERS:
        pytest.skip("transformer layers")
    small = {
        "digits": ["--epochs", "1", "--batch-size", "256"],
        "reverse": ["--epochs", "1", "--n-train", "256", "--n-test", "50"],
    }[task]
    losses = []
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        assert (
            cli.main(
                ["train", "--task", task, "--device", device, "--quiet", "--out", str(out), *small]
            )
            == 0
        )
        losses.append(json.loads((out / "history.json").read_text())["step_losses"])
        assert (out / "curves.png").exists() and (out / "graph.png").exists()
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)
