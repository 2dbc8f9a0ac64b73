"""Benchmarks: tapegrad vs PyTorch eager vs a hand-written lower bound.

Run with ``python -m benchmarks.run``.
"""
