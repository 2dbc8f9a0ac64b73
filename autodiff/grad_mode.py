"""Thread-local recording state: grad mode and the current recording scope.

Both live on one ``threading.local`` so that two threads training two models never see each
other's ``no_grad()`` blocks, and so that recording reads a single object per op.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class _State(threading.local):
    grad_enabled: bool = True
    # Opaque object attached to every node recorded while it is set (nn uses it to remember
    # which module call produced a node; the engine never looks inside it).
    scope: Any = None
    # True while anomaly mode is on or a trace is taken: recording reads this one flag, not both.
    watched: bool = False
    _anomaly: bool = False
    _trace: Any = None

    # detect_anomaly() (autodiff/anomaly.py): scan outputs and gradients for NaN/Inf.
    @property
    def anomaly(self) -> bool:
        return self._anomaly

    @anomaly.setter
    def anomaly(self, on: bool) -> None:
        self._anomaly = on
        self.watched = bool(on) or self._trace is not None

    # A list while autodiff.replay traces a step: every op appends what it computed.
    @property
    def trace(self) -> Any:
        return self._trace

    @trace.setter
    def trace(self, log: Any) -> None:
        self._trace = log
        self.watched = log is not None or bool(self._anomaly)


state = _State()


def is_grad_enabled() -> bool:
    """Whether operations are currently being recorded on this thread."""
    return state.grad_enabled


class FlagMode:
    """Context manager and decorator that sets one thread-local flag (``state.<flag>``) to
    ``value`` for a block, restoring it after (grad mode, anomaly mode)."""

    flag: str = "grad_enabled"
    value: bool

    def __init__(self, func: Callable | None = None) -> None:
        self._prev: list[bool] = []
        self._func = func
        if func is not None:
            functools.update_wrapper(self, func)

    def __enter__(self) -> None:
        self._prev.append(getattr(state, self.flag))
        setattr(state, self.flag, self.value)

    def __exit__(self, *exc: object) -> None:
        setattr(state, self.flag, self._prev.pop())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._func is None:  # used as @no_grad()
            (func,) = args
            return type(self)(func)
        with type(self)():  # a fresh instance keeps recursion and threads independent
            return self._func(*args, **kwargs)


class SetFlag:
    """Set ``state.<flag>`` to ``mode`` for the block (or for the thread, when not used with
    ``with``)."""

    flag: str = "grad_enabled"

    def __init__(self, mode: bool) -> None:
        self._prev = getattr(state, self.flag)
        setattr(state, self.flag, bool(mode))

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        setattr(state, self.flag, self._prev)


class no_grad(FlagMode):
    """Record nothing inside the block: results do not require grad. Usable as a decorator."""

    value = False


class enable_grad(FlagMode):
    """Record operations inside the block, even within ``no_grad()``. Usable as a decorator."""

    value = True


class set_grad_enabled(SetFlag):
    """Set grad mode to ``mode`` for the block (or for the thread, when not used with ``with``)."""


def current_scope() -> Any:
    """What the innermost ``scope(...)`` block on this thread holds (None outside any): a caller
    that nests scopes links the new one to it (nn: ``scope((module, current_scope()))``)."""
    return state.scope


class scope:
    """Tag every node recorded inside the block with ``obj`` (readable as ``node.scope``).

    Scopes nest: the node stores the innermost one, which keeps a link to its parent via
    whatever structure the caller puts in ``obj``. Cost when unused: nothing.
    """

    def __init__(self, obj: Any) -> None:
        self._obj = obj
        self._prev: list[Any] = []

    def __enter__(self) -> Any:
        self._prev.append(state.scope)
        state.scope = self._obj
        return self._obj

    def __exit__(self, *exc: object) -> None:
        state.scope = self._prev.pop()

    @staticmethod
    def push(obj: Any) -> Any:
        """Enter ``scope((obj, current_scope()))`` until ``scope.pop(<the returned token>)``: the
        nesting nn uses, without a context manager's calls (it runs once per module call)."""
        st = state
        prev = st.scope
        st.scope = (obj, prev)
        return prev

    @staticmethod
    def pop(token: Any) -> None:
        """Leave the scope entered by the ``scope.push`` that returned ``token``."""
        state.scope = token
