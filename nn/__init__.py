"""nn: layers, losses, optimizers and training on the autodiff engine, with PyTorch's names.

    import nn
    model = nn.Sequential(nn.Linear(2, 25), nn.Tanh(), nn.Linear(25, 1))
    opt = nn.optim.Adam(model.parameters(), lr=1e-2)
    loss = nn.BCEWithLogitsLoss()(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()

Every module also speaks the course interface: ``forward``, ``backward``, ``param``.
"""

from . import checkpoint, data, functional, init, optim, parallel, train, utils  # noqa: F401
from .activations import GELU, LeakyReLU, ReLU, Sigmoid, SiLU, Softplus, Tanh
from .attention import MultiheadAttention
from .container import ModuleDict, ModuleList, Sequential
from .conv_layers import AvgPool2d, Conv2d, Flatten, MaxPool2d
from .layers import Dropout, Identity, Linear
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .module import Module
from .norm_layers import BatchNorm1d, BatchNorm2d, LayerNorm
from .parameter import Parameter
from .sparse import Embedding

__all__ = [
    "Module",
    "Parameter",
    "Sequential",
    "ModuleList",
    "ModuleDict",
    "Linear",
    "Identity",
    "Dropout",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "Flatten",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "Embedding",
    "GELU",
    "MultiheadAttention",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "SiLU",
    "Softplus",
    "MSELoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "functional",
    "init",
    "optim",
    "data",
    "train",
    "checkpoint",
    "parallel",
    "utils",
]
