"""``nn.Module``: PyTorch's habits (registration, ``parameters()``, ``state_dict()``); the course's
interface (``forward`` / ``backward`` / ``param``) comes from ``course_api.CourseInterface``."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator, NamedTuple

import torch

import autodiff as ad
from autodiff import Tensor

from .course_api import CourseInterface
from .parameter import Parameter

_setattr = object.__setattr__
_push_scope, _pop_scope = ad.scope.push, ad.scope.pop


class IncompatibleKeys(NamedTuple):
    missing_keys: list
    unexpected_keys: list


class Module(CourseInterface):
    """Base class of layers, containers and losses. Subclasses define ``forward``."""

    training: bool

    def __init__(self) -> None:
        d = self.__dict__
        d["_parameters"] = OrderedDict()
        d["_modules"] = OrderedDict()
        d["_buffer_tensors"] = OrderedDict()
        d["training"] = True

    def forward(self, *input: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} is missing the required forward() method")

    _call_forward = forward

    def __call__(self, *input: Any, **kwargs: Any) -> Any:
        # The scope tags every node recorded during this call with (module, enclosing scope):
        # viz reads it to draw the module boxes.
        token = _push_scope(self)  # as ``with ad.scope((self, ad.current_scope())):``
        try:
            return self._call_forward(*input, **kwargs)
        finally:
            _pop_scope(token)

    # ---- registration ------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        params = d.get("_parameters")
        if params is None:
            if isinstance(value, (Parameter, Module)):
                raise AttributeError(
                    f"cannot assign {type(value).__name__} '{name}' before "
                    f"Module.__init__() is called: call super().__init__() first"
                )
            return _setattr(self, name, value)
        modules = d["_modules"]
        if isinstance(value, Parameter):
            modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter '{name}' of "
                    f"{type(self).__name__}: an nn.Parameter or None is expected"
                )
            params[name] = None
        elif name in d.get("_buffer_tensors", ()):
            if value is not None and not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"cannot assign {type(value).__name__} as buffer '{name}' of "
                    f"{type(self).__name__}: a torch.Tensor or None is expected"
                )
            d["_buffer_tensors"][name] = value
        elif name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as child module '{name}' "
                    f"of {type(self).__name__}: an nn.Module or None is expected"
                )
            modules[name] = None
        _setattr(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"register_parameter('{name}'): expected an nn.Parameter or None, got "
                f"{type(param).__name__}"
            )
        if "." in name or not name:
            raise KeyError(f"parameter name must be non-empty and contain no '.', got {name!r}")
        self._parameters[name] = param
        _setattr(self, name, param)

    def register_buffer(
        self, name: str, tensor: torch.Tensor | None, persistent: bool = True
    ) -> None:
        """A tensor that is state but not a parameter (BatchNorm's running statistics): in
        ``state_dict()`` unless ``persistent=False``, moved by ``to()``, never trained."""
        if tensor is not None and not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"register_buffer('{name}'): expected a torch.Tensor or None, got "
                f"{type(tensor).__name__}"
            )
        if "." in name or not name:
            raise KeyError(f"buffer name must be non-empty and contain no '.', got {name!r}")
        self._buffer_tensors[name] = tensor
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)
        _setattr(self, name, tensor)

    def named_buffers(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """``(dotted_name, buffer)`` pairs such as ``bn.running_mean``."""
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in modules:
            for name, b in m.__dict__.get("_buffer_tensors", {}).items():
                if b is not None:
                    yield (f"{mp}.{name}" if mp else name), b

    def buffers(self, recurse: bool = True) -> Iterator[torch.Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def _persistent_buffers(self) -> Iterator[tuple[str, torch.Tensor]]:
        for mp, m in self.named_modules():
            skip = m.__dict__.get("_non_persistent", ())
            for name, b in m.__dict__.get("_buffer_tensors", {}).items():
                if b is not None and name not in skip:
                    yield (f"{mp}.{name}" if mp else name), b

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module('{name}'): {type(module).__name__} is not an nn.Module")
        if "." in name or not name:
            raise KeyError(f"module name must be non-empty and contain no '.', got {name!r}")
        self._modules[name] = module
        _setattr(self, name, module)

    # ---- traversal ---------------------------------------------------------------------------
    def named_modules(
        self, memo: set | None = None, prefix: str = ""
    ) -> Iterator[tuple[str, Module]]:
        """``(dotted_name, module)`` for this module and every descendant, each once."""
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_parameters(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """``(dotted_name, parameter)`` pairs such as ``layers.0.weight``; shared ones once."""
        seen: set = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mprefix}.{name}" if mprefix else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def apply(self, fn: Callable[[Module], None]) -> Module:
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients -----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise ValueError(f"train(mode): mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the parameters' gradients (``None``, like torch; or zeros, out of place)."""
        for p in self.parameters():
            if p.grad is not None:
                p.grad = None if set_to_none else ad.zeros_like(p.grad)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # ---- state -------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, torch.Tensor]:
        """Parameter (then buffer) name -> torch tensor, sharing memory like torch's."""
        sd = OrderedDict((name, p.data) for name, p in self.named_parameters())
        sd.update(self._persistent_buffers())
        return sd

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> IncompatibleKeys:
        """Copy tensors into the parameters, after checking every key and shape first: on any
        error nothing is changed. ``strict=False`` tolerates missing and unexpected keys."""
        name = type(self).__name__
        if not hasattr(state_dict, "items"):
            raise TypeError(
                f"{name}.load_state_dict: expected a mapping of name -> tensor, got "
                f"{type(state_dict).__name__}"
            )
        own = dict(self.named_parameters())
        buffers = dict(self._persistent_buffers())
        own.update(buffers)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        values = {}
        for k, p in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            v = v.data if isinstance(v, Tensor) else v
            if not isinstance(v, torch.Tensor):
                problems.append(f"'{k}' is a {type(v).__name__}, not a tensor")
            elif v.shape != p.data.shape:
                problems.append(
                    f"size mismatch for '{k}': the checkpoint has shape "
                    f"{tuple(v.shape)}, the model has {tuple(p.data.shape)}"
                )
            elif k in buffers:
                values[k] = v  # any dtype (num_batches_tracked counts in int64)
            elif not (v.is_floating_point() or v.is_complex()):
                problems.append(f"'{k}' has dtype {v.dtype}; a floating point tensor is expected")
            else:
                values[k] = v
        if problems:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {name}:\n  " + "\n  ".join(problems)
            )
        with ad.no_grad():
            for k, v in values.items():
                (own[k] if k in buffers else own[k].data).copy_(v)
        return IncompatibleKeys(missing, unexpected)

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Move/cast every parameter (and gradient) in place, like ``torch.nn.Module.to``."""
        for p in self.parameters():
            p.data = p.data.to(*args, **kwargs)
            if p.grad is not None:
                p.grad = Tensor(p.grad.data.to(*args, **kwargs))
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        for m in self.modules():
            for name, b in m.__dict__.get("_buffer_tensors", {}).items():
                if b is not None:  # like torch: only floating buffers change dtype
                    setattr(
                        m,
                        name,
                        b.to(*args, **kwargs)
                        if b.is_floating_point()
                        else b.to(device)
                        if device is not None
                        else b,
                    )
        return self

    def float(self) -> Module:
        return self.to(torch.float32)

    def double(self) -> Module:
        return self.to(torch.float64)

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device: Any = None) -> Module:
        return self.to("cuda" if device is None else device)

    # ---- repr --------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        children = [(n, m) for n, m in self._modules.items() if m is not None]
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = extra.split("\n") if extra else []
        for n, m in children:
            lines.append(f"({n}): " + repr(m).replace("\n", "\n  "))
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
