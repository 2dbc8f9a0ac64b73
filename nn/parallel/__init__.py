"""Data parallelism on ``torch.distributed``: one model replica per process, gradients averaged
during backward (:class:`DistributedDataParallel`), and helpers to start the processes."""

from .distributed import Bucket, DistributedDataParallel
from .launch import free_port, init_from_env, spawn

__all__ = ["DistributedDataParallel", "Bucket", "free_port", "init_from_env", "spawn"]
