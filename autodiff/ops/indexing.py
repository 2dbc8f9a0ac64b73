"""Indexing: ``x[i]``, slices, ``None``/``...``, integer-tensor and boolean-mask indices.

An index is split into a ``key`` (its Python part: ints, slices, ``None``, ``...``) and the index
tensors, which are INPUTS of the node: saved and version-checked, so changing ``idx`` in place
after ``y = x[idx]`` makes backward raise instead of using the new values. The VJP scatters the
gradient into zeros of the input's shape, adding where an integer index picks an element twice
(``x[[0, 0]]``).
"""

from __future__ import annotations

from typing import Any

import torch

from ..op import Op
from ._common import Tensor, shape_str

_BASIC = (int, slice, type(None), type(Ellipsis), bool)
_SLOT = type("IndexTensorSlot", (), {"__repr__": lambda self: "<tensor>"})()  # where a tensor goes


def raw_index(idx: Any) -> Any:
    """``idx`` with Tensors unwrapped (what torch indexes with; for paths that record nothing)."""
    if isinstance(idx, Tensor):
        return idx.data
    if isinstance(idx, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in idx)
    if isinstance(idx, list) and any(isinstance(i, Tensor) for i in idx):
        return [i.data if isinstance(i, Tensor) else i for i in idx]
    return idx


MAX_INDEX_TENSORS = 8
_INDEX_ARGS = tuple(f"index{k}" for k in range(MAX_INDEX_TENSORS))
_PAD = (None,) * MAX_INDEX_TENSORS


def split_index(op: str, idx: Any, device: torch.device) -> tuple[Any, tuple]:
    """``(key, tensors)``: the index tensors taken out of ``idx`` (their places marked in key).

    A list of numbers becomes an index tensor here (as torch does): a copy the caller cannot
    change behind the node's back, and a constant for ``replay``. ``tensors`` is padded with
    None to ``MAX_INDEX_TENSORS`` when not empty (an op's inputs are declared on its class).
    """
    if idx.__class__ in _BASIC:
        return idx, ()
    tensors: list = []
    if idx.__class__ is tuple or (idx.__class__ is list and not _numbers(idx)):
        key: Any = [_take(i, tensors, device) for i in idx]
        key = tuple(key) if idx.__class__ is tuple else key
    else:
        key = _take(idx, tensors, device)
    if len(tensors) > MAX_INDEX_TENSORS:
        raise IndexError(
            f"{op}: an index may hold at most {MAX_INDEX_TENSORS} tensors or lists, "
            f"got {len(tensors)}"
        )
    return key, (tuple(tensors) + _PAD[len(tensors) :] if tensors else ())


def _numbers(seq: list) -> bool:
    return all(i.__class__ in (int, bool) for i in seq)


def _take(i: Any, tensors: list, device: torch.device) -> Any:
    if i.__class__ in _BASIC:
        return i
    if isinstance(i, (Tensor, torch.Tensor)):
        tensors.append(i)
        return _SLOT
    if isinstance(i, (list, tuple)) or hasattr(i, "__array__"):
        try:
            t = torch.as_tensor(i, device=device)
        except (TypeError, ValueError, RuntimeError):
            return i  # not an index torch accepts: let torch's own error name it
        tensors.append(Tensor._make(t))  # a Tensor: a constant of the program (replay keeps it)
        return _SLOT
    return i


def fill_index(key: Any, tensors: tuple) -> Any:
    """Put raw ``tensors`` back into the places ``split_index`` marked in ``key``."""
    if key is _SLOT:
        return tensors[0]
    if not tensors or (key.__class__ is not tuple and key.__class__ is not list):
        return key
    it = iter(tensors)
    filled = [next(it) if k is _SLOT else k for k in key]
    return tuple(filled) if key.__class__ is tuple else filled


def raws(tensors: tuple) -> tuple:
    return tuple(t.data if isinstance(t, Tensor) else t for t in tensors if t is not None)


def _scatter(g: torch.Tensor, *tensors: Any, key: Any, shape: torch.Size) -> torch.Tensor:
    """Zeros of ``shape`` with ``g`` added at ``key`` (filled with ``tensors``)."""
    z = g.new_zeros(shape)
    tensors = tuple(t for t in tensors if t is not None)
    idx = fill_index(key, tensors)
    if all(t.dtype is torch.bool for t in tensors):
        z[idx] = g  # slices, ints and masks never name an element twice
        return z
    where = torch.arange(z.numel(), device=g.device).reshape(shape)[idx]
    z.view(-1).index_add_(0, where.reshape(-1), g.reshape(-1))
    return z


def pick(g: Any, key: Any, tensors: tuple) -> Any:
    """``g[key]`` (tensors filled in): raw in, raw out; recorded for a Tensor (second order)."""
    if g.__class__ is torch.Tensor:
        return g[fill_index(key, raws(tensors))]
    if tensors:
        return Index.apply(g, *tensors, key=key)
    return Slice.apply(g, key=key)


def _put(g: Any, key: Any, tensors: tuple, shape: torch.Size) -> Any:
    if g.__class__ is torch.Tensor:
        return _scatter(g, *raws(tensors), key=key, shape=shape)
    return IndexScatter.apply(g, *(tensors or _PAD), key=key, shape=shape)


class Slice(Op):
    """y = x[key] with ints, slices, None and ... only;  dx = zeros like x with g written at key"""

    fields = ("key",)
    forward = staticmethod(lambda x, key: x[key])

    def vjp(self, g):
        return _put(g, self.key, (), self.in_meta[0][0])


class Index(Op):
    """y = x[idx] with index tensors, masks or lists;  dx = zeros like x with g added at idx
    (summed where idx names an element more than once)"""

    args = ("x",) + _INDEX_ARGS
    saves = _INDEX_ARGS
    fields = ("key",)
    forward = staticmethod(lambda x, *tensors, key: x[fill_index(key, tensors)])

    def vjp(self, g, *tensors):
        return (_put(g, self.key, tensors, self.in_meta[0][0]),) + _PAD


class IndexScatter(Op):
    """y = zeros of a shape with g added at idx (the VJP of indexing);  dg = gy[idx]"""

    args = ("g",) + _INDEX_ARGS
    saves = _INDEX_ARGS
    fields = ("key", "shape")
    forward = staticmethod(_scatter)

    def vjp(self, gy, *tensors):
        return (pick(gy, self.key, tensors if any(t is not None for t in tensors) else ()),) + _PAD


def getitem(x: Tensor, idx: Any) -> Tensor:
    """``x[idx]`` with the full torch indexing syntax."""
    key, tensors = split_index("indexing", idx, x.data.device)
    try:
        if tensors:
            return Index.apply(x, *tensors, key=key)
        return Slice.apply(x, key=key)
    except (IndexError, RuntimeError, TypeError, ValueError) as e:
        cause = e.__context__ or e  # torch's own words, not Op.apply's restatement of them
        raise type(cause)(
            f"indexing a tensor of shape {shape_str(x.shape)} with {idx!r}: {cause}"
        ) from None


# ---- gather, scatter_add, masked_fill: the index or mask is an input (version-checked) ----------
def _index_tensor(op: str, index: Any, device: torch.device) -> Any:
    if isinstance(index, (Tensor, torch.Tensor)):
        return index
    try:  # a list of ints: a constant copy, as torch makes
        return Tensor._make(torch.as_tensor(index, dtype=torch.int64, device=device))
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(
            f"{op}: index must be an integer tensor, got {type(index).__name__} ({e})"
        ) from None


class Gather(Op):
    """y[..i..] = x[..index[..i..]..] along dim;  dx = zeros like x with g added at index"""

    args = ("x", "index")
    saves = ("index",)
    fields = ("dim",)
    forward = staticmethod(lambda x, index, dim: torch.gather(x, dim, index))

    def vjp(self, g, index):
        return g.new_zeros(self.in_meta[0][0]).scatter_add(self.dim, index, g), None


class ScatterAdd(Op):
    """y = x with src added at index along dim;  dx = g,  dsrc = g gathered at index"""

    args = ("x", "index", "src")
    saves = ("index",)
    reads = {"x": (), "src": ("index",)}
    fields = ("dim",)
    forward = staticmethod(lambda x, index, src, dim: torch.scatter_add(x, dim, index, src))

    def vjp(self, g, index):
        dx, _, dsrc = self.needs_input_grad
        return g if dx else None, None, g.gather(self.dim, index) if dsrc else None


def _dim_of(op: str, x: Tensor, dim: int) -> int:
    n = max(x.data.dim(), 1)
    if not isinstance(dim, int) or isinstance(dim, bool) or not -n <= dim < n:
        raise IndexError(f"{op}: dim {dim!r} is out of range for shape {shape_str(x.shape)}")
    return dim % n


def gather(x: Any, dim: int, index: Any, *, sparse_grad: bool = False) -> Tensor:
    """``x``'s elements picked along ``dim`` by ``index`` (of the output's shape), as
    torch.gather."""
    from ._common import as_tensor

    x = as_tensor(x)
    return Gather.apply(
        x, _index_tensor("gather", index, x.data.device), dim=_dim_of("gather", x, dim)
    )


def scatter_add(x: Any, dim: int, index: Any, src: Any) -> Tensor:
    """A copy of ``x`` with ``src``'s elements added at ``index`` along ``dim``."""
    from ._common import as_tensor

    x, src = as_tensor(x), as_tensor(src)
    return ScatterAdd.apply(
        x,
        _index_tensor("scatter_add", index, x.data.device),
        src,
        dim=_dim_of("scatter_add", x, dim),
    )


class MaskedFill(Op):
    """y = value where mask else x;  dx = g where not mask (0 where mask),
    dvalue = Σ g where mask"""

    args = ("x", "mask", "value")
    saves = ("mask",)
    fields = ("fill",)
    forward = staticmethod(
        lambda x, mask, value, fill: x.masked_fill(mask, fill if value is None else value)
    )

    def vjp(self, g, mask):
        dx, _, dv = self.needs_input_grad
        m = mask.data if isinstance(mask, Tensor) else mask
        return g.where(~m, 0.0) if dx else None, None, g.where(m, 0.0) if dv else None


def masked_fill(x: Any, mask: Any, value: Any) -> Tensor:
    """``x`` with ``value`` (a number or a 0-d tensor) where the bool ``mask`` (broadcasting) is
    true."""
    from ._common import SCALARS, as_tensor

    x = as_tensor(x)
    m = mask.data if isinstance(mask, Tensor) else mask
    if not isinstance(m, torch.Tensor) or m.dtype is not torch.bool:
        what = f"dtype {m.dtype}" if isinstance(m, torch.Tensor) else type(m).__name__
        raise TypeError(f"masked_fill: mask must be a bool tensor, got {what}")
    if isinstance(value, (Tensor, torch.Tensor)):
        v = as_tensor(value)
        if v.data.dim() != 0:
            raise ValueError(
                f"masked_fill: value must be a number or a 0-d tensor, got a tensor "
                f"of shape {shape_str(v.shape)}"
            )
        return MaskedFill.apply(x, mask, v, fill=None)
    if value.__class__ not in SCALARS:
        raise TypeError(
            f"masked_fill: value must be a number or a 0-d tensor, got {type(value).__name__}"
        )
    return MaskedFill.apply(x, mask, None, fill=value)


class IndexingMethods:
    """The Tensor methods of this module (mixed into ``autodiff.Tensor``)."""

    __slots__ = ()
    __getitem__ = getitem
    gather, scatter_add, masked_fill = gather, scatter_add, masked_fill
