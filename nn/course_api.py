"""The course interface every ``nn.Module`` speaks: ``forward`` / ``backward`` / ``param``.

* ``y = m(x)`` (PyTorch style) records the graph; ``loss.backward()`` fills every ``p.grad``.
* ``y = m.forward(x)`` then ``gx = m.backward(gy)`` (course style): ``forward`` remembers its
  inputs and output, ``backward`` back-propagates ``gy`` through what that forward recorded
  (and nothing beyond: ``autodiff.grad`` stops at the inputs), accumulates the parameters'
  gradients and returns the gradient w.r.t. the input(s). Only direct ``forward`` calls pay for
  this bookkeeping: ``Module.__call__`` runs the subclass's own, unwrapped ``forward``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch

import autodiff as ad
from autodiff import GraphError, ShapeError, Tensor


def _course_forward(fn: Callable) -> Callable:
    """Wrap a subclass's ``forward`` so that a direct call remembers what ``backward`` needs."""

    @functools.wraps(fn)
    def forward(self: Any, *input: Any, **kwargs: Any) -> Any:
        prev = ad.current_scope()
        if prev.__class__ is tuple and prev[0] is self:
            return fn(self, *input, **kwargs)  # super().forward(...) inside our own call
        recording = ad.is_grad_enabled()
        if not recording:
            self.__dict__["_course"] = None
            tracked: list = []
            args = input
        else:
            tracked, args = _track_inputs(input, self._course_inputs)
        with ad.scope((self, prev)):  # as Module.__call__ tags the nodes with the call
            out = fn(self, *args, **kwargs)
        if recording:
            self.__dict__["_course"] = (tracked, out)
        return out

    forward._course_wrapped = True  # type: ignore[attr-defined]
    return forward


def _track_inputs(input: tuple, limit: int | None) -> tuple[list, tuple]:
    """The inputs ``backward`` differentiates w.r.t.; those that need no grad get a leaf alias
    that does (same data, no copy), so that their gradient can be returned."""
    args = list(input)
    n = len(args) if limit is None else min(limit, len(args))
    tracked: list = []
    for i in range(n):
        x = args[i]
        if isinstance(x, torch.Tensor):
            x = Tensor(x)
        if isinstance(x, Tensor):
            if not x.requires_grad and (x.data.is_floating_point() or x.data.is_complex()):
                x = x.detach().requires_grad_(True)
            args[i] = x
            tracked.append(x if x.requires_grad else None)
        else:
            tracked.append(None)
    return tracked, tuple(args)


class CourseInterface:
    """Mixin of ``nn.Module``: wraps each subclass's ``forward`` and adds ``backward``/``param``."""

    # How many leading inputs the course ``backward`` returns gradients for (None: all of them).
    # Losses set 1: ``loss.backward()`` returns the gradient w.r.t. the prediction only.
    _course_inputs: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fwd = cls.__dict__.get("forward")
        if fwd is not None and not getattr(fwd, "_course_wrapped", False):
            cls._call_forward = fwd
            cls.forward = _course_forward(fwd)

    def backward(self, *gradwrtoutput: Any) -> Any:
        """Back-propagate ``gradwrtoutput`` through the last direct ``forward`` call.

        Accumulates the parameters' gradients into ``p.grad`` and returns the gradient w.r.t. the
        input (a tuple when forward took several). Omit the gradient for a scalar output (losses).
        """
        rec = self.__dict__.get("_course")
        name = type(self).__name__
        if rec is None:
            raise GraphError(
                f"{name}.backward(): nothing to back-propagate. Call {name}.forward(...) first "
                "(directly, not as module(...), and not under no_grad()); each forward() can be "
                "back-propagated once."
            )
        tracked, out = rec
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if len(gradwrtoutput) not in (0, len(outs)):
            raise ValueError(
                f"{name}.backward(): got {len(gradwrtoutput)} gradients for {len(outs)} outputs"
            )
        for o, g in zip(outs, gradwrtoutput):
            if tuple(g.shape) != tuple(o.shape):
                raise ShapeError(
                    f"{name}.backward(): the gradient has shape {tuple(g.shape)} but "
                    f"forward() returned shape {tuple(o.shape)}; they must match."
                )
        inputs = [x for x in tracked if x is not None]
        params = [p for p in self.parameters() if p.requires_grad]
        live = [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o.requires_grad]
        grads: tuple = (None,) * (len(inputs) + len(params))
        if live and (inputs or params):
            gos = [gradwrtoutput[i] for i in live] if gradwrtoutput else None
            grads = ad.grad(
                [outs[i] for i in live], inputs + params, grad_outputs=gos, allow_unused=True
            )
        self.__dict__["_course"] = None  # the graph between output and inputs is now freed
        for p, g in zip(params, grads[len(inputs) :]):
            if g is not None:
                p.grad = g if p.grad is None else Tensor(p.grad.data + g.data)
        it = iter(grads[: len(inputs)])
        result = []
        for x in tracked:
            if x is None:
                result.append(None)
                continue
            g = next(it)
            result.append(g if g is not None else ad.zeros_like(x))
        return result[0] if len(result) == 1 else tuple(result)

    def param(self) -> list[tuple[Tensor, Tensor]]:
        """``[(parameter, gradient), ...]`` (empty without parameters). A parameter that has no
        gradient yet gets a zero one, so course code can read or zero every gradient."""
        out = []
        for p in self.parameters():
            if p.grad is None:
                p.grad = ad.zeros_like(p)
            out.append((p, p.grad))
        return out
