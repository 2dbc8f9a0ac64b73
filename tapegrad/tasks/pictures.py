"""The digits task's pictures (matplotlib, Agg backend): confusion matrix, misclassified digits."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def confusion_matrix(true: torch.Tensor, pred: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """counts[t, p]: how many samples of class t were predicted as p."""
    counts = torch.zeros(classes * classes, dtype=torch.int64)
    counts.index_add_(
        0, (true.cpu() * classes + pred.cpu()).long(), torch.ones(true.numel(), dtype=torch.int64)
    )
    return counts.reshape(classes, classes)


def plot_confusion(
    true: torch.Tensor, pred: torch.Tensor, path: str | Path, title: str | None = None
) -> Path:
    """The confusion matrix as a picture, each cell's count written in it (diagonal: right)."""
    path = Path(path)
    counts = confusion_matrix(true, pred)
    k = counts.shape[0]
    fig, ax = plt.subplots(figsize=(5.6, 5))
    # Log-like colour scale so that the few mistakes show next to the large diagonal.
    ax.imshow(torch.log1p(counts.double()).numpy(), cmap="Blues")
    for t in range(k):
        for p in range(k):
            n = int(counts[t, p])
            if n:
                ax.text(
                    p,
                    t,
                    str(n),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if t == p else "tab:red",
                )
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    wrong = int(counts.sum() - counts.diagonal().sum())
    ax.set_title(title or f"confusion matrix ({wrong} of {int(counts.sum())} test images wrong)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_misclassified(
    images: torch.Tensor,
    true: torch.Tensor,
    pred: torch.Tensor,
    path: str | Path,
    columns: int = 8,
    most: int = 48,
) -> Path:
    """The misclassified images (N, 1, H, W), at most ``most`` of them, tiled in one picture,
    each labelled ``true → predicted``."""
    path = Path(path)
    wrong = (true != pred).nonzero().reshape(-1).cpu()
    n, shown = int(wrong.numel()), wrong[:most]
    h, w = images.shape[-2:]
    columns = max(1, min(columns, shown.numel()))
    rows = max(1, -(-shown.numel() // columns))
    gap = 1  # background pixels between tiles; a title line above each
    cell_h, cell_w = h + gap + 3, w + gap
    tiles = images[shown, 0].detach().cpu().float() if shown.numel() else torch.zeros(0, h, w)
    mosaic = torch.full((rows * cell_h, columns * cell_w), float("nan"))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        mosaic[r * cell_h + 3 : r * cell_h + 3 + h, c * cell_w : c * cell_w + w] = tile
    fig, ax = plt.subplots(figsize=(max(1.2 * columns, 5.0), 1.45 * rows + 0.6))
    cmap = plt.get_cmap("gray_r").with_extremes(bad="white")  # NaN: the gaps between tiles
    ax.imshow(mosaic.numpy(), cmap=cmap, interpolation="nearest")
    for i, j in enumerate(shown.tolist()):
        r, c = divmod(i, columns)
        ax.text(
            c * cell_w + w / 2 - 0.5,
            r * cell_h + 1.2,
            f"{int(true[j])} → {int(pred[j])}",
            ha="center",
            va="center",
            fontsize=9,
            color="tab:red",
        )
    ax.axis("off")
    more = f", first {shown.numel()} shown" if n > shown.numel() else ""
    ax.set_title(
        f"misclassified test digits ({n} of {true.numel()}{more}): true → predicted"
        if n
        else f"no misclassified test digit (of {true.numel()})",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
