"""scikit-learn's handwritten digits (1,797 8x8 images, 10 classes; shipped inside scikit-learn,
no download): a fixed stratified 80/20 split, standardised pixels, and seeded epochs of batches
with random 1-pixel shifts (the augmentation that takes the CNN past 99%)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

SPLIT_SEED = 0  # the split never changes with --seed: every run tests on the same 360 images
TEST_SHARE = 0.2
EXTRA_HINT = 'pip install -e ".[digits]" (or pip install scikit-learn)'


def sklearn_missing() -> str | None:
    """Why the digits cannot be loaded (scikit-learn absent), or None when they can."""
    try:
        import sklearn.datasets  # noqa: F401
        import sklearn.model_selection  # noqa: F401
    except ImportError as e:
        return f"the digits task needs scikit-learn ({e}); install it with {EXTRA_HINT}"
    return None


def load_split(dtype: torch.dtype = torch.float32) -> tuple[tuple, tuple]:
    """``((x_train, y_train), (x_test, y_test))``: x of shape (N, 1, 8, 8), standardised with the
    training pixels' mean and std; y class indices (int64). 1,437 training and 360 test images,
    each class in the same proportion in both (stratified)."""
    problem = sklearn_missing()
    if problem is not None:
        raise ImportError(problem)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float64).unsqueeze(1) / 16.0  # pixels are 0..16
    y = torch.as_tensor(d.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(
        torch.arange(len(y)).numpy(),
        test_size=TEST_SHARE,
        stratify=d.target,
        random_state=SPLIT_SEED,
    )
    train_idx, test_idx = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = ((x - mean) / std).to(dtype)
    return (x[train_idx], y[train_idx]), (x[test_idx], y[test_idx])


def random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W) moved by its own random offset in [-max_shift, max_shift]
    along each axis, the uncovered border filled with the background (the minimum pixel)."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    s = max_shift
    background = float(x.min()) if x.numel() else 0.0
    padded = torch.nn.functional.pad(x, (s, s, s, s), value=background)
    dy = torch.randint(0, 2 * s + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * s + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # (N, 1, 1, W)
    return padded[
        torch.arange(n)[:, None, None, None],
        torch.arange(x.shape[1])[None, :, None, None],
        rows,
        cols,
    ]


def epoch_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, epoch: int, max_shift: int = 1
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Epoch ``epoch``'s batches (raw tensors): a permutation and shifts drawn from a generator
    seeded by ``(seed, epoch)`` alone, so the tapegrad run and its torch twin see the same."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
    perm = torch.randperm(x.shape[0], generator=g)
    xs, ys = random_shift(x[perm], g, max_shift), y[perm]
    for i in range(0, x.shape[0], batch_size):
        yield xs[i : i + batch_size], ys[i : i + batch_size]
