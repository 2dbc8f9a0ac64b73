"""Finite-difference checks of the hand-written VJPs (central differences; use float64)."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import torch

from .errors import GradcheckError
from .functional import grad
from .tensor import Tensor


def _input_list(op: str, inputs: Any) -> list:
    if isinstance(inputs, Tensor):
        return [inputs]
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(
            f"{op}: inputs must be a Tensor or a list/tuple of Tensors, got {type(inputs).__name__}"
        )
    return list(inputs)


def _outputs(fn: Callable, inputs: Sequence[Tensor]) -> list[Tensor]:
    out = fn(*inputs)
    outs = [out] if isinstance(out, Tensor) else list(out)
    return [o for o in outs if isinstance(o, Tensor) and o.is_floating_point()]


def _numerical(fn: Callable, inputs: Sequence[Tensor], x: Tensor, eps: float) -> list[torch.Tensor]:
    """Columns d out / d x[k] by central differences, one per element of x, for each output."""
    # ``.data`` of a torch tensor is an alias with its own version counter: perturbing through it
    # leaves graphs the caller recorded on ``x`` usable afterwards.
    flat = x.data.data.view(-1)
    cols: list[list[torch.Tensor]] = []
    for k in range(flat.numel()):
        orig = flat[k].item()
        flat[k] = orig + eps
        plus = [o.data.reshape(-1).clone() for o in _outputs(fn, inputs)]
        flat[k] = orig - eps
        minus = [o.data.reshape(-1).clone() for o in _outputs(fn, inputs)]
        flat[k] = orig
        cols.append([(p - m) / (2 * eps) for p, m in zip(plus, minus)])
    if not cols:  # an empty input: zero columns, but still one (empty) Jacobian per output
        return [
            torch.zeros(o.numel(), 0, dtype=o.dtype, device=o.device) for o in _outputs(fn, inputs)
        ]
    return [torch.stack([c[j] for c in cols], dim=1) for j in range(len(cols[0]))]


def gradcheck(
    fn: Callable[..., Any],
    inputs: Tensor | Sequence[Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Compare the VJP-built Jacobian of ``fn`` with central differences.

    For every input that requires grad and every output element, the analytic row
    ``d out[j] / d input`` comes from one backward pass; the numerical column
    ``(fn(x + eps e_k) - fn(x - eps e_k)) / 2 eps`` from two forward passes. They must agree
    within ``atol + rtol * |numerical|``. Raises GradcheckError (or returns False) otherwise.
    """
    inputs = _input_list("gradcheck", inputs)
    diff = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    if not diff:
        raise ValueError("gradcheck: no input requires grad")
    for x in diff:
        if x.dtype != torch.float64:
            warnings.warn(
                f"gradcheck: input of dtype {x.dtype} is not float64; finite "
                "differences will be inaccurate",
                stacklevel=2,
            )
        if not x.is_leaf:
            raise ValueError("gradcheck: inputs must be leaf tensors")
    outs = _outputs(fn, inputs)
    analytic: list[list[torch.Tensor]] = []  # [output][input] -> (out numel, input numel)
    for out in outs:
        n = out.numel()
        rows = [torch.zeros(n, x.numel(), dtype=x.dtype, device=x.device) for x in diff]
        for r in range(n):
            go = torch.zeros(n, dtype=out.dtype, device=out.device)
            go[r] = 1
            gs = grad(out, diff, go.reshape(out.shape), retain_graph=True, allow_unused=True)
            for a, gx in zip(rows, gs):
                if gx is not None:
                    a[r] = gx.data.reshape(-1)
        analytic.append(rows)
    # Perturbing inputs in place invalidates the graphs recorded above, so this comes last.
    for i, x in enumerate(diff):
        numeric = _numerical(fn, inputs, x, eps)
        for j in range(len(outs)):
            a, num = analytic[j][i], numeric[j]
            bad = (a - num).abs() > atol + rtol * num.abs()
            if bad.any():
                r, k = (int(v) for v in bad.nonzero()[0])
                msg = (
                    f"gradcheck: Jacobian mismatch for output {j} w.r.t. input {i} (shape "
                    f"{tuple(x.shape)}) at output element {r}, input element {k}: analytic "
                    f"{a[r, k].item():.6g} vs numerical {num[r, k].item():.6g}\n"
                    f"analytic:\n{a}\nnumerical:\n{num}"
                )
                if raise_exception:
                    raise GradcheckError(msg)
                return False
    return True


def gradgradcheck(
    fn: Callable[..., Any],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Sequence[Tensor] | None = None,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Check second derivatives: gradcheck of ``x, v -> VJP(fn)(x; v)`` built with create_graph."""
    inputs = _input_list("gradgradcheck", inputs)
    outs = _outputs(fn, inputs)
    if grad_outputs is None:
        gen = torch.Generator().manual_seed(0)
        grad_outputs = [
            Tensor(
                torch.randn(o.shape, generator=gen, dtype=o.dtype).to(o.device), requires_grad=True
            )
            for o in outs
        ]
    n_in = len(inputs)

    def first_order(*args: Tensor) -> tuple:
        xs, vs = args[:n_in], args[n_in:]
        ys = _outputs(fn, xs)
        d = [x for x in xs if x.requires_grad]
        gs = grad(ys, d, list(vs), create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(first_order, [*inputs, *grad_outputs], eps, atol, rtol, raise_exception)
