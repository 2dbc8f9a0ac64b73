"""Attention written with tapegrad ops (matmul, a safe softmax, add), so its gradients of every
order come from theirs: ``scaled_dot_product_attention`` and the ``MultiheadAttention`` block.

    attention(Q, K, V) = dropout(safe_softmax((Q √s)(K √s)ᵀ + mask)) V

as torch's math kernel computes it: the scale s split over both operands (Q negated for s < 0;
E = 0's default s = 1/√0 = inf multiplies only empty tensors), a bool or causal mask turned into
an additive one (0 or -inf), and a softmax that gives 0 to a row whose scores are all -inf (it
attends to nothing). The backward reads the attention weights, never the mask: their zeros carry
the masking (0 · an infinite upstream gradient is NaN, as torch's).

With no queries or an empty value (L = 0 or value.numel() == 0) torch returns
zeros + (Σ Q + Σ K + Σ V) · 0 before anything else: so does tapegrad.
"""

from __future__ import annotations

import math
from typing import Any

import torch

import autodiff as ad
from autodiff import DTypeError, ShapeError, Tensor, as_tensor

from . import init
from .conv import check_floats
from .layers import Linear
from .module import Module
from .parameter import Parameter

_NEG_INF = float("-inf")
_RAW = torch.Tensor
_safe_softmax = torch.ops.aten._safe_softmax.default
_softmax_backward = torch.ops.aten._softmax_backward_data.default


def _safe_softmax_forward(x: torch.Tensor, dim: int) -> torch.Tensor:
    return _safe_softmax(x, dim)


class SafeSoftmax(ad.Op):
    """y = softmax(x) along dim, 0 on a slice whose every x is -inf (torch's _safe_softmax);
    dx = y (g - Σ g y)  (0 · g where y = 0: NaN for an infinite g, as torch's)"""

    saves = ("out",)
    fields = ("dim",)
    forward = staticmethod(_safe_softmax_forward)

    def vjp(self, g, y):
        if g.__class__ is _RAW:  # first order: torch's fused kernel
            return _softmax_backward(g, y, self.dim, y.dtype)
        return y * (g - (g * y).sum(self.dim, keepdim=True))


def _dropout(attn: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    # a fresh mask per call from recorded (non-differentiable) ops, as nn.functional.dropout
    keep = ad.rand(attn.shape, generator=generator, dtype=attn.dtype, device=attn.data.device) >= p
    return attn.where(keep, 0.0) * (0.0 if p == 1.0 else 1.0 / (1.0 - p))


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool mask (True: may attend) as torch's additive one: 0 where allowed, -inf elsewhere."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(
        ~allowed, _NEG_INF
    )


def _attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    scale: float,
    additive: Any,
    dropout_p: float,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """(output, attention weights); ``additive`` a raw float mask added to the scores (-inf: may
    not attend), broadcasting, or None. Torch's math: the scale's square root on each of q, k."""
    root = math.sqrt(abs(scale))  # NaN stays NaN
    scores = (q * (-root if scale < 0 else root)) @ (k.transpose(-2, -1) * root)
    if additive is not None:
        scores = scores + additive  # the add reads no operand: the mask is not saved
    attn = SafeSoftmax.apply(scores, dim=scores.ndim - 1)
    if dropout_p > 0.0:
        attn = _dropout(attn, dropout_p, generator)
    return attn @ v, attn


def _check_p(op: str, p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be a probability in [0, 1], got {p!r}")
    return float(p)


def _causal(n_q: int, n_k: int, device: Any) -> torch.Tensor:
    """True where query i may attend key j: j <= i (aligned at the top left, as torch's)."""
    return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """softmax(Q Kᵀ · scale + mask) V over (..., L, E) queries and (..., S, E) keys / (..., S, Ev)
    values; ``scale`` defaults to 1/√E. ``attn_mask``: bool (True: may attend) or float (added),
    broadcasting to (..., L, S); ``is_causal``: query i sees keys 0..i. ``dropout_p`` drops
    attention weights (torch applies it whenever given, training or not); ``generator`` draws
    its mask."""
    op = "scaled_dot_product_attention"
    q, k, v = as_tensor(query), as_tensor(key), as_tensor(value)
    check_floats(op, query=q, key=k, value=v)
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ShapeError(
            f"{op}: expected query (..., L, E), key (..., S, E) and value "
            f"(..., S, Ev), got {tuple(q.shape)}, {tuple(k.shape)} and "
            f"{tuple(v.shape)}"
        )
    if q.shape[-2] == 0 or v.data.numel() == 0:
        # torch's early return, before its other checks: every input feeds the (empty or 0)
        # output through Σ · 0, so the gradients are 0 (NaN for a non-finite input or gradient)
        total = (q.sum() + k.sum() + v.sum()) * 0.0
        return total.expand(tuple(q.shape[:-1]) + (v.shape[-1],))
    p = _check_p(op, dropout_p)
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeError(
            f"{op}: expected query (..., L, E), key (..., S, E) and value "
            f"(..., S, Ev), got {tuple(q.shape)}, {tuple(k.shape)} and "
            f"{tuple(v.shape)}"
        )
    n_q, n_k = q.shape[-2], k.shape[-2]
    additive = None
    if is_causal:
        if attn_mask is not None:
            raise ValueError(f"{op}: give attn_mask or is_causal=True, not both")
        additive = _additive(_causal(n_q, n_k, q.data.device), q.dtype)
    elif attn_mask is not None:
        m = attn_mask.data if isinstance(attn_mask, Tensor) else torch.as_tensor(attn_mask)
        try:
            torch.broadcast_shapes(m.shape[-2:], (n_q, n_k))
        except RuntimeError:
            raise ShapeError(
                f"{op}: attn_mask of shape {tuple(m.shape)} does not broadcast to "
                f"the scores' (..., {n_q}, {n_k})"
            ) from None
        if m.dtype == torch.bool:
            additive = _additive(m, q.dtype)
        elif m.dtype != q.dtype:
            raise DTypeError(
                f"{op}: attn_mask must be bool or of the query's dtype {q.dtype}, got {m.dtype}"
            )
        else:
            additive = m
    # torch's default 1/√E in floating point: E = 0 gives inf (it scales only empty operands)
    s = (
        (math.inf if q.shape[-1] == 0 else 1.0 / math.sqrt(q.shape[-1]))
        if scale is None
        else float(scale)
    )
    return _attend(q, k, v, s, additive, p, generator)[0]


class MultiheadAttention(Module):
    """Multi-head attention as torch.nn.MultiheadAttention: the same parameters (``in_proj_weight``
    (3E, E), ``in_proj_bias`` (3E,), ``out_proj``), initialisation and masks, so weights copy
    both ways.

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False) -> (output, weights or None). Masks follow
    torch's MultiheadAttention: a bool ``attn_mask`` ((L, S) or (N·H, L, S)) or
    ``key_padding_mask`` ((N, S)) is True where attending is NOT allowed; float ones are added.
    ``is_causal=True`` without ``attn_mask`` applies the causal mask (torch requires the mask).
    Inputs are (N, L, E) with ``batch_first=True``, else (L, N, E); (L, E) unbatched.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = False,
        *,
        generator: torch.Generator | None = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        op = "MultiheadAttention"
        for what, n in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError(f"{op}: {what} must be a positive int, got {n!r}")
        if embed_dim % num_heads:
            raise ValueError(
                f"{op}: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = _check_p(op, dropout)
        self.batch_first = batch_first
        self.generator = generator
        self.in_proj_weight = Parameter(
            torch.empty(3 * embed_dim, embed_dim, device=device, dtype=dtype)
        )
        if bias:
            self.in_proj_bias = Parameter(torch.empty(3 * embed_dim, device=device, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        # torch draws the output projection's weights first, then in_proj_weight
        self.out_proj = Linear(
            embed_dim, embed_dim, bias=bias, generator=generator, device=device, dtype=dtype
        )
        init.xavier_uniform_(self.in_proj_weight, generator=generator)
        if bias:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _project(self, x: Tensor, i: int) -> Tensor:
        """The i-th of the q, k, v projections, split into heads: (N, H, len, head_dim)."""
        e = self.embed_dim
        w = self.in_proj_weight[i * e : (i + 1) * e]
        b = None if self.in_proj_bias is None else self.in_proj_bias[i * e : (i + 1) * e]
        y = ad.linear(x, w, b)
        return y.reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def _mask(
        self,
        attn_mask: Any,
        key_padding_mask: Any,
        is_causal: bool,
        n: int,
        n_q: int,
        n_k: int,
        like: Tensor,
    ) -> Any:
        """One additive float mask (N or 1, H or 1, L, S), or None."""
        op = "MultiheadAttention"
        dtype, device = like.dtype, like.data.device
        masks = []
        if attn_mask is None and is_causal:
            attn_mask = ~_causal(n_q, n_k, device)
        if attn_mask is not None:
            m = attn_mask.data if isinstance(attn_mask, Tensor) else torch.as_tensor(attn_mask)
            if m.shape == (n_q, n_k):
                m = m.reshape(1, 1, n_q, n_k)
            elif m.shape == (n * self.num_heads, n_q, n_k):
                m = m.reshape(n, self.num_heads, n_q, n_k)
            else:
                raise ShapeError(
                    f"{op}: attn_mask must have shape ({n_q}, {n_k}) or "
                    f"({n * self.num_heads}, {n_q}, {n_k}), got {tuple(m.shape)}"
                )
            masks.append(m)
        if key_padding_mask is not None:
            m = (
                key_padding_mask.data
                if isinstance(key_padding_mask, Tensor)
                else torch.as_tensor(key_padding_mask)
            )
            if m.shape != (n, n_k):
                raise ShapeError(
                    f"{op}: key_padding_mask must have shape ({n}, {n_k}), got {tuple(m.shape)}"
                )
            masks.append(m.reshape(n, 1, 1, n_k))
        if not masks:
            return None
        total = None
        for m in masks:
            if m.dtype == torch.bool:
                m = torch.zeros(m.shape, dtype=dtype, device=device).masked_fill_(m, _NEG_INF)
            elif m.dtype != dtype:
                raise DTypeError(
                    f"{op}: masks must be bool or of the input's dtype {dtype}, got {m.dtype}"
                )
            total = m if total is None else total + m
        return total

    def forward(
        self,
        query: Any,
        key: Any,
        value: Any,
        key_padding_mask: Any = None,
        need_weights: bool = True,
        attn_mask: Any = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple:
        op = "MultiheadAttention"
        q, k, v = as_tensor(query), as_tensor(key), as_tensor(value)
        check_floats(op, query=q, key=k, value=v)
        if (
            q.ndim not in (2, 3)
            or k.ndim != q.ndim
            or v.ndim != q.ndim
            or q.shape[-1] != self.embed_dim
            or k.shape[-1] != self.embed_dim
            or v.shape[-1] != self.embed_dim
            or k.shape[:-1] != v.shape[:-1]
        ):
            raise ShapeError(
                f"{op}: expected query, key and value of matching ranks (2 or 3) "
                f"with last dim embed_dim={self.embed_dim} and key/value of one "
                f"shape, got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
            )
        unbatched = q.ndim == 2
        if unbatched:
            q, k, v = q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = torch.as_tensor(
                    getattr(key_padding_mask, "data", key_padding_mask)
                ).unsqueeze(0)
        elif not self.batch_first:
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        n, n_q, n_k = q.shape[0], q.shape[1], k.shape[1]
        if k.shape[0] != n:
            raise ShapeError(f"{op}: query and key have different batch sizes {n} and {k.shape[0]}")
        mask = self._mask(attn_mask, key_padding_mask, is_causal, n, n_q, n_k, q)
        out, attn = _attend(
            self._project(q, 0),
            self._project(k, 1),
            self._project(v, 2),
            1.0 / math.sqrt(self.head_dim),
            mask,
            self.dropout if self.training else 0.0,
            self.generator,
        )
        out = self.out_proj(out.transpose(1, 2).reshape(n, n_q, self.embed_dim))
        weights = None
        if need_weights:
            weights = attn.mean(1) if average_attn_weights else attn
            if unbatched:
                weights = weights.squeeze(0)
        if unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
            f"dropout={self.dropout}, batch_first={self.batch_first}"
        )
