"""Training pictures (matplotlib, Agg backend: no display needed): curves and decision map."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import autodiff as ad  # noqa: E402

CENTER = (0.5, 0.5)
RADIUS = 1 / math.sqrt(2 * math.pi)
ERROR_LINEAR_BELOW = 0.1  # % : the error axis is linear from 0 to here, logarithmic above


def _series(history: Any, key: str) -> list:
    return list(history[key])


def plot_history(history: Any, path: str | Path, title: str | None = None) -> Path:
    """Loss (left) and train/test error in % (right) per epoch, written to ``path`` (PNG)."""
    path = Path(path)
    epochs = _series(history, "epoch")
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, _series(history, "loss"), color="tab:blue")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_yscale("log")
    ax_loss.grid(True, alpha=0.3)
    ax_err.plot(epochs, _series(history, "train_error"), label="train error", color="tab:orange")
    test = _series(history, "test_error")
    if any(v is not None for v in test):
        ax_err.plot(
            epochs,
            [math.nan if v is None else v for v in test],
            label="test error",
            color="tab:green",
        )
    ax_err.set_xlabel("epoch")
    ax_err.set_ylabel("error (%)")
    # Symmetric log: logarithmic above 0.1%, linear below it, so that an error of exactly 0
    # (a fitted training set) stays on the plot instead of vanishing as on a log axis.
    ax_err.set_yscale("symlog", linthresh=ERROR_LINEAR_BELOW, linscale=0.5)
    ax_err.set_ylim(bottom=0)
    ax_err.axhline(0, color="grey", lw=0.8)
    ax_err.grid(True, alpha=0.3, which="both")
    ax_err.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def decision_grid(model: Any, grid: int = 100, threshold: float = 0.0) -> torch.Tensor:
    """The model's class (1 = inside) at the centres of a ``grid`` x ``grid`` lattice of [0,1]²,
    as a (grid, grid) tensor indexed [row = y, column = x]."""
    centres = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1).float()
    return _predict(model, pts, threshold).reshape(grid, grid).cpu()


def _predict(model: Any, x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Predicted class per row of ``x`` (argmax for several outputs, else output > threshold)."""
    param = next(iter(model.parameters()), None)
    if param is not None:
        x = x.to(dtype=param.dtype, device=param.device)
    was = getattr(model, "training", False)
    model.eval()
    try:
        with ad.no_grad():
            out = model(ad.Tensor(x))
    finally:
        model.train(was)
    out = out.data if isinstance(out, ad.Tensor) else out
    if out.dim() == 2 and out.shape[1] > 1:
        return out.argmax(1)
    return (out.reshape(-1) > threshold).long()


def _labels(y: torch.Tensor) -> torch.Tensor:
    """True class per row: argmax of one-hot rows, else 1 for labels 1 / +1."""
    if y.dim() == 2 and y.shape[1] > 1:
        return y.argmax(1)
    return (y.reshape(-1) > 0.5).long()


def plot_decision_map(
    model: Any,
    path: str | Path,
    grid: int = 100,
    threshold: float = 0.0,
    points: tuple | None = None,
    title: str | None = None,
) -> Path:
    """The model's decision over a ``grid`` x ``grid`` lattice of [0,1]², the true circle drawn
    on top, and optionally the misclassified ``points = (x, y)`` marked. Writes a PNG."""
    path = Path(path)
    cls = decision_grid(model, grid, threshold)
    fig, ax = plt.subplots(figsize=(5.5, 5.6))
    ax.imshow(
        cls.numpy(),
        origin="lower",
        extent=(0, 1, 0, 1),
        cmap="coolwarm",
        vmin=0,
        vmax=1,
        alpha=0.6,
        interpolation="nearest",
    )
    ax.add_patch(plt.Circle(CENTER, RADIUS, fill=False, color="black", lw=1.5, label="true disc"))
    if points is not None:
        x, y = (t.data if isinstance(t, ad.Tensor) else t for t in points)
        wrong = (_predict(model, x, threshold) != _labels(y)).cpu()
        xs = x.cpu()[wrong]
        ax.scatter(
            xs[:, 0],
            xs[:, 1],
            marker="x",
            color="black",
            s=25,
            label=f"misclassified points ({int(wrong.sum())} of {len(wrong)})",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_title(title or f"decision map ({grid}×{grid} grid; red = inside)")
    # Below the axes, never over the points it explains.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
