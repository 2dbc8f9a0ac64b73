"""Exception types raised by autodiff.

Each derives from the builtin a PyTorch user would catch for the same mistake (torch raises
RuntimeError for most of them), and from the more precise builtin where one fits.
"""


class ShapeError(ValueError, RuntimeError):
    """Operand shapes are incompatible (broadcasting, matmul, reshape, ...)."""


class DTypeError(TypeError, RuntimeError):
    """Operand dtypes are incompatible, or a dtype cannot do what was asked."""


class DeviceError(RuntimeError):
    """Operands live on different devices."""


class GraphError(RuntimeError):
    """The recorded graph cannot be used as asked (freed, no grad_fn, in-place change, ...)."""


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree."""
