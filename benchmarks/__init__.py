"""Benchmarks: tapegrad vs PyTorch eager vs a hand-written lower bound (``python -m benchmarks.run``)."""
