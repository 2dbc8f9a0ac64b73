"""PyTorch habits on autodiff Tensors: torch functions dispatch to tapegrad's ops (recorded and
differentiable), queries run on the values, unknown functions name themselves, and
``torch.no_grad()`` / ``torch.inference_mode()`` stop recording like ``autodiff.no_grad()``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import autodiff as ad

F64 = torch.float64


def pair():
    v = torch.tensor([[0.5, -1.5, 2.0], [1.0, 0.0, -0.25]], dtype=F64)
    return ad.Tensor(v.clone(), requires_grad=True), v.clone().requires_grad_(True)


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: m.exp(x),
        lambda m, x: m.tanh(x) * 2,
        lambda m, x: m.sum(x, dim=1, keepdim=True),
        lambda m, x: m.max(x, 1).values,
        lambda m, x: m.clamp(x, min=-1.0, max=1.0),
        lambda m, x: m.where(x > 0, x, m.zeros_like(x) if m is torch else 0.0),
        lambda m, x: m.cat([x, x * 2], dim=0),
        lambda m, x: m.matmul(x, x.T if m is torch else x.T),
        lambda m, x: F.relu(x),
        lambda m, x: F.leaky_relu(x, 0.2),
        lambda m, x: F.softmax(x, dim=1),
        lambda m, x: F.log_softmax(x, dim=0),
        lambda m, x: F.linear(x, torch.ones(4, 3, dtype=F64)),
        lambda m, x: torch.ones(2, 3, dtype=F64) - x,  # a torch tensor on the left
        lambda m, x: torch.full((3,), 2.0, dtype=F64) * x,
    ],
)
def test_torch_functions_record_tapegrad_ops(call):
    a, t = pair()
    ya, yt = call(torch, a), call(torch, t)
    assert isinstance(ya, ad.Tensor) and ya.grad_fn is not None
    torch.testing.assert_close(ya.data, yt.detach())
    v = torch.randn(yt.shape, dtype=F64, generator=torch.Generator().manual_seed(0))
    ya.backward(v)
    yt.backward(v)
    torch.testing.assert_close(a.grad.data, t.grad)


def test_queries_run_on_values():
    a, _ = pair()
    assert torch.allclose(a, a.detach() + 0)
    assert torch.equal(a, a)
    assert torch.isfinite(a).data.all()
    assert not torch.isnan(a).requires_grad


def test_grad_compares_with_plain_torch_tensors():
    x = ad.ones(2, requires_grad=True)
    (x * 3).sum().backward()
    assert torch.allclose(x.grad, torch.full((2,), 3.0))


def test_sgd_idiom_updates_data_in_place():
    p = ad.tensor([1.0, 2.0], requires_grad=True)
    (p * p).sum().backward()
    data = p.data
    p.data -= 0.5 * p.grad
    assert p.data is data
    assert p.data.tolist() == [0.0, 0.0]


def test_unknown_torch_function_names_itself():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"torch\.fft_fft|torch\.fft\.fft|fft.*no VJP in tapegrad"):
        torch.fft.fft(x)


def test_unknown_torch_function_without_grad_runs_on_values():
    x = ad.tensor([3.0, 1.0, 2.0])
    assert torch.sort(x).values.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode, ad.no_grad])
def test_no_recording_under_torch_and_tapegrad_grad_modes(mode):
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    with mode():
        y = (x * 2).exp()
    assert y.grad_fn is None and not y.requires_grad
    z = x * 2
    assert z.grad_fn is not None  # recording resumes after the block
