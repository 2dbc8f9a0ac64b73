"""nn.init against torch.nn.init: same generator state, same numbers."""

import math

import pytest
import torch

import nn
from nn import init


def _pair(shape=(30, 40)):
    return nn.Parameter(torch.empty(*shape)), torch.empty(*shape)


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("uniform_", {"a": -0.3, "b": 0.7}),
        ("normal_", {"mean": 1.0, "std": 0.5}),
        ("xavier_uniform_", {"gain": 2.0}),
        ("xavier_normal_", {}),
        ("kaiming_uniform_", {"a": math.sqrt(5)}),
        ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}),
        ("kaiming_normal_", {"nonlinearity": "relu"}),
    ],
)
def test_same_values_as_torch_init_with_a_generator(name, kwargs):
    ours, theirs = _pair()
    out = getattr(init, name)(ours, **kwargs, generator=torch.Generator().manual_seed(5))
    assert out is ours
    getattr(torch.nn.init, name)(theirs, **kwargs, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(ours.data, theirs, rtol=1e-6, atol=0)
    again, _ = _pair()
    getattr(init, name)(again, **kwargs, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again.data, ours.data)


def test_constants_and_statistics():
    p = nn.Parameter(torch.empty(200, 300))
    init.zeros_(p)
    assert float(p.data.abs().sum()) == 0
    init.ones_(p)
    assert bool((p.data == 1).all())
    init.kaiming_normal_(p, nonlinearity="relu", generator=torch.Generator().manual_seed(0))
    assert abs(p.data.std().item() - math.sqrt(2 / 300)) < 0.01 * math.sqrt(2 / 300) * 5
    init.xavier_uniform_(p, generator=torch.Generator().manual_seed(0))
    assert p.data.abs().max().item() <= math.sqrt(6 / 500)


def test_init_errors():
    with pytest.raises(ValueError, match="at least 2 dims"):
        init.xavier_uniform_(nn.Parameter(torch.empty(3)))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(nn.Parameter(torch.empty(3, 3)), mode="fan")
    with pytest.raises(TypeError):
        init.uniform_([1.0, 2.0])
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
