"""``DistributedDataParallel``: one model replica per process, gradients averaged during backward.

Every process (rank) runs the same model on its own share of each batch. The gradient of the
mean loss over the whole batch of ``R`` ranks is the mean of the ranks' gradients,

    ∂L/∂θ = (1/R) Σ_r ∂L_r/∂θ       (each L_r the mean loss over rank r's equal share),

so after one ``all_reduce`` (sum) of ``grad / R`` every replica holds the same gradient, and the
same optimizer step keeps the replicas identical. The all-reduce is cut into buckets of about
``bucket_cap_mb``: a bucket is sent (asynchronously) as soon as the backward pass has finished
every gradient in it, so the network works while the backward pass computes the rest. The
last gradient to arrive waits for all buckets and writes the averages back into ``.grad``.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist

import autodiff as ad
from autodiff import Tensor

from ..module import Module
from ..parameter import Parameter


@dataclass
class Bucket:
    """Parameters whose gradients travel in one all-reduce (read by pictures and reports)."""

    index: int
    names: tuple[str, ...]
    params: tuple[Parameter, ...]
    numel: int


class DistributedDataParallel(Module):
    """Wrap ``module`` so that ``loss.backward()`` averages its gradients across the process group.

    As PyTorch's: parameters (and any other ``state_dict`` tensors) are broadcast from rank 0 at
    construction (``broadcast_buffers``: the non-parameter ones again at every forward that
    records; tapegrad's layers have none today); each rank then feeds the wrapper its own share of
    every batch. ``device_ids`` and ``output_device`` are accepted for PyTorch's signature and
    ignored: the module's own device is used. A parameter that
    gets no gradient in a backward pass is an error unless ``find_unused_parameters=True``, which
    reads the graph of each forward output (``grad_fn.next_functions``) and counts the parameters it
    does not reach as ready with a zero gradient. Inside ``no_sync()`` gradients only accumulate
    locally; the first backward after it averages the accumulated sums.

    Public for pictures and reports: ``buckets`` (all-reduce order, the reverse of the parameters'
    order, as the backward pass finishes them), ``launch_order`` (for the last averaged backward:
    ``(bucket index, name of the parameter whose gradient's arrival launched it)``; buckets go in
    order, so one complete early waits for those before it) and
    ``comm_seconds`` (time spent sending buckets and waiting for them, summed over steps).
    """

    def __init__(
        self,
        module: Module,
        device_ids: Any = None,
        output_device: Any = None,
        dim: int = 0,
        broadcast_buffers: bool = True,
        process_group: Any = None,
        bucket_cap_mb: float = 25.0,
        find_unused_parameters: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(
                f"DistributedDataParallel: module must be an nn.Module, got {type(module).__name__}"
            )
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(
                "DistributedDataParallel: the default process group is not initialised; call "
                "torch.distributed.init_process_group('gloo') (CPU) or ('nccl') (CUDA) first, "
                "in every process (torchrun sets the environment it reads)"
            )
        if not (isinstance(bucket_cap_mb, (int, float)) and bucket_cap_mb > 0):
            raise ValueError(
                f"DistributedDataParallel: bucket_cap_mb must be a positive number, "
                f"got {bucket_cap_mb!r}"
            )
        if dim != 0:
            raise ValueError(f"DistributedDataParallel: only dim=0 is supported, got {dim!r}")
        self.module = module
        self.process_group = process_group
        self.world_size: int = dist.get_world_size(process_group)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.require_backward_grad_sync = True
        self.comm_seconds = 0.0
        self.launch_order: list[tuple[int, str]] = []
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise RuntimeError(
                "DistributedDataParallel: the module has no parameter that "
                "requires grad; there is nothing to average"
            )
        self._names = [n for n, _ in named]
        self._params = [p for _, p in named]
        self._index = {id(p): i for i, p in enumerate(self._params)}
        self._check_same_shapes(named)
        self._broadcast(list(module.state_dict().values()))
        own = {id(p.data) for p in module.parameters()}
        self._buffers = (
            [t for t in module.state_dict().values() if id(t) not in own]
            if broadcast_buffers
            else []
        )
        self.buckets = self._make_buckets(named, bucket_cap_mb * 2**20)
        self._bucket_of = [0] * len(named)
        for b in self.buckets:
            for p in b.params:
                self._bucket_of[self._index[id(p)]] = b.index
        self._pass: _Pass | None = None  # the reduction of the coming backward (set by forward)
        # The engine accumulates a leaf's .grad as soon as its gradient is complete, then calls
        # these hooks: the bucket can leave while the backward pass works on the layers below.
        self._handles = [
            p.register_post_accumulate_grad_hook(self._grad_ready) for p in self._params
        ]

    # ---- construction ---------------------------------------------------------------------
    def _check_same_shapes(self, named: list) -> None:
        """Every rank must wrap the same parameters: compare a small signature (min == max)."""
        dev = named[0][1].data.device
        sizes = [p.data.numel() for _, p in named]
        sig = torch.tensor(
            [len(named), sum(sizes), sum((i + 1) * s for i, s in enumerate(sizes))],
            dtype=torch.int64,
            device=dev,
        )
        both = torch.cat([sig, -sig])
        dist.all_reduce(both, op=dist.ReduceOp.MAX, group=self.process_group)
        if not torch.equal(both[:3], -both[3:]):
            raise RuntimeError(
                f"DistributedDataParallel: the ranks wrap different models (rank "
                f"{dist.get_rank(self.process_group)} has {len(named)} parameters with "
                f"{sum(sizes)} elements); build the same model on every rank"
            )

    def _broadcast(self, tensors: list) -> None:
        """Rank 0's values into ``tensors`` (live state: received in place) on every rank."""
        src = dist.get_global_rank(self.process_group, 0) if self.process_group is not None else 0
        for t in tensors:
            dist.broadcast(t, src=src, group=self.process_group)

    @staticmethod
    def _make_buckets(named: list, cap_bytes: float) -> list[Bucket]:
        """Consecutive parameters in reverse order (the backward pass's), one dtype and device
        per bucket, each bucket holding at most ``cap_bytes`` unless one parameter is bigger."""
        buckets: list[Bucket] = []
        cur: list = []
        size = 0

        def close() -> None:
            if cur:
                params = tuple(p for _, p in cur)
                buckets.append(
                    Bucket(
                        len(buckets),
                        tuple(n for n, _ in cur),
                        params,
                        sum(p.data.numel() for p in params),
                    )
                )
                cur.clear()

        for n, p in reversed(named):
            nbytes = p.data.numel() * p.data.element_size()
            if cur and (
                size + nbytes > cap_bytes
                or p.data.dtype != cur[0][1].data.dtype
                or p.data.device != cur[0][1].data.device
            ):
                close()
                size = 0
            cur.append((n, p))
            size += nbytes
        close()
        return buckets

    # ---- forward: prepare the reduction of the coming backward ----------------------------
    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        if self._buffers and ad.is_grad_enabled():
            self._broadcast(self._buffers)
        out = self.module(*inputs, **kwargs)
        if ad.is_grad_enabled():  # (evaluation records nothing: no backward to prepare for)
            self._prepare(out)
        return out

    def _prepare(self, out: Any) -> None:
        prev = self._pass
        if prev is not None and prev.arrived:
            missing = [self._names[i] for i in range(len(self._params)) if i not in prev.ready]
            raise RuntimeError(
                "DistributedDataParallel: the previous backward pass did not give a gradient to "
                f"{_listing(missing)} on rank {dist.get_rank(self.process_group)}, so its "
                "gradients were never averaged. Pass find_unused_parameters=True if some "
                "parameters are not used in every forward pass (or on every rank)."
            )
        if not self.require_backward_grad_sync:
            self._pass = None  # no_sync(): the coming backward only accumulates
            return
        used = _reached_leaves(out)
        unused = [i for i, p in enumerate(self._params) if id(p) not in used]
        if unused and not self.find_unused_parameters:
            raise RuntimeError(
                f"DistributedDataParallel: {_listing([self._names[i] for i in unused])} did not "
                f"take part in computing the output on rank {dist.get_rank(self.process_group)}; "
                "the all-reduce of its gradient would wait for ever. Pass "
                "find_unused_parameters=True to DistributedDataParallel if parameters may go "
                "unused."
            )
        self._pass = _Pass(self, unused)

    def _grad_ready(self, p: Parameter) -> None:
        if self._pass is not None:
            self._pass.arrived += 1
            self._pass.mark(self._index[id(p)])

    # ---- PyTorch's habits -------------------------------------------------------------------
    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients locally inside the block (forwards there start no reduction); the
        first synced backward after it averages the sums."""
        prev = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = prev

    def state_dict(self) -> Any:
        """The wrapped module's: a checkpoint written under DDP loads into the bare model."""
        return self.module.state_dict()

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> Any:
        return self.module.load_state_dict(state_dict, strict)

    def extra_repr(self) -> str:
        return f"world_size={self.world_size}, buckets={len(self.buckets)}"


def _listing(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
    return f"parameter{'s' if len(names) > 1 else ''} {shown}"


def _reached_leaves(out: Any) -> set[int]:
    """ids of the leaf tensors the graph of ``out`` reaches (an explicit stack: any depth)."""
    stack: list = []
    pending = [out]
    while pending:  # outputs may be tensors or (nested) tuples, lists and dicts of them
        o = pending.pop()
        if isinstance(o, Tensor):
            stack.append(o.grad_fn if o.grad_fn is not None else o)
        elif isinstance(o, (tuple, list)):
            pending.extend(o)
        elif isinstance(o, dict):
            pending.extend(o.values())
    leaves: set[int] = set()
    seen: set[int] = set()
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, Tensor):
            leaves.add(id(n))
            continue
        stack.extend(n.next_functions)
    return leaves


class _Pass:
    """The reduction of one backward pass: buckets are launched in a fixed order (the same on
    every rank, as collectives must be), each once all its gradients are in."""

    def __init__(self, ddp: DistributedDataParallel, unused: list[int]) -> None:
        self.ddp = ddp
        self.pending = [len(b.params) for b in ddp.buckets]
        self.ready: set[int] = set()
        self.arrived = 0  # gradients the backward pass delivered (unused ones are not counted)
        self.next = 0
        self.works: list = []
        self.launches: list[tuple[int, str]] = []
        self.used_mask = None
        if ddp.find_unused_parameters:
            # Which parameters got a gradient on some rank: a globally unused one keeps its .grad
            # (None stays None), as in PyTorch; summed with the first bucket's all-reduce.
            dev = ddp._params[0].data.device
            self.used_mask = torch.ones(len(ddp._params), device=dev)
            self.used_mask[unused] = 0
        for i in unused:
            self.mark(i)

    def mark(self, i: int) -> None:
        ddp = self.ddp
        if i in self.ready:
            raise RuntimeError(
                f"DistributedDataParallel: the gradient of {ddp._names[i]!r} was accumulated "
                "twice in one backward pass (a second backward through the same forward?); run "
                "one forward per backward, or use no_sync() while accumulating"
            )
        self.ready.add(i)
        b = ddp._bucket_of[i]
        self.pending[b] -= 1
        while self.next < len(self.pending) and self.pending[self.next] == 0:
            self._launch(ddp.buckets[self.next])
            self.launches.append((self.next, ddp._names[i]))
            self.next += 1
        if self.next == len(self.pending):
            self._finish()

    def _launch(self, bucket: Bucket) -> None:
        t0 = time.perf_counter()
        ddp = self.ddp
        group = ddp.process_group
        if bucket.index == 0 and self.used_mask is not None:
            work = dist.all_reduce(self.used_mask, group=group, async_op=True)
            self.works.append((work, None, None))
        # torch.cat copies, even one tensor: the all-reduce never writes into a live .grad
        flat = torch.cat(
            [
                (p.grad.data if p.grad is not None else torch.zeros_like(p.data)).reshape(-1)
                for p in bucket.params
            ]
        )
        flat.div_(ddp.world_size)
        self.works.append((dist.all_reduce(flat, group=group, async_op=True), flat, bucket))
        ddp.comm_seconds += time.perf_counter() - t0

    def _finish(self) -> None:
        """Wait for every bucket, then write the averages back (out of place: a user may hold the
        old ``.grad``)."""
        t0 = time.perf_counter()
        ddp = self.ddp
        for work, _, bucket in self.works:
            try:
                work.wait()
            except RuntimeError as e:  # a peer stopped, or never sent this bucket
                what = "the used-parameter mask" if bucket is None else f"bucket {bucket.index}"
                raise RuntimeError(
                    f"DistributedDataParallel: the all-reduce of {what} failed on rank "
                    f"{dist.get_rank(ddp.process_group)}; another rank stopped or did not reach "
                    f"this backward pass ({e})"
                ) from e
        used = self.used_mask
        for _, flat, bucket in self.works:
            if bucket is None:
                continue
            off = 0
            for p in bucket.params:
                n = p.data.numel()
                i = ddp._index[id(p)]
                if used is None or used[i] > 0 or p.grad is not None:
                    p.grad = Tensor(flat[off : off + n].view_as(p.data))
                off += n
        ddp._pass = None
        ddp.launch_order = self.launches
        ddp.comm_seconds += time.perf_counter() - t0
