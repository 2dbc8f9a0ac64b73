"""On a GPU, ops run where their inputs live and gradients match the CPU ones."""

import pytest
import torch

import autodiff as ad

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _mlp_grads(device, params, x, y):
    ps = [ad.Tensor(p.to(device), requires_grad=True) for p in params]
    w1, b1, w2, b2, w3, b3 = ps
    xin, target = ad.Tensor(x.to(device)), ad.Tensor(y.to(device))
    h = ad.linear(xin, w1, b1).relu()
    h = ad.linear(h, w2, b2).tanh()
    logits = ad.linear(h, w3, b3)
    loss = ((logits.sigmoid() - target) ** 2).mean() + logits.log_softmax(-1).amax(-1).std()
    loss.backward()
    assert loss.device.type == device and all(p.grad.device.type == device for p in ps)
    return loss.data.cpu(), [p.grad.data.cpu() for p in ps]


def test_mlp_gradients_on_cuda_match_cpu():
    g = torch.Generator().manual_seed(0)
    sizes = [(25, 2), (25,), (25, 25), (25,), (2, 25), (2,)]
    params = [torch.randn(*s, generator=g, dtype=torch.float64) * 0.5 for s in sizes]
    x = torch.rand(64, 2, generator=g, dtype=torch.float64)
    y = (torch.rand(64, 2, generator=g, dtype=torch.float64) > 0.5).to(torch.float64)
    cpu_loss, cpu_grads = _mlp_grads("cpu", params, x, y)
    gpu_loss, gpu_grads = _mlp_grads("cuda", params, x, y)
    torch.testing.assert_close(gpu_loss, cpu_loss)
    for gg, cg in zip(gpu_grads, cpu_grads):
        torch.testing.assert_close(gg, cg)


def test_moving_between_devices_is_differentiable():
    x = ad.randn(3, dtype=torch.float64, requires_grad=True)
    y = (x.cuda() * 2).exp().cpu().sum()
    y.backward()
    assert x.grad.device.type == "cpu"
    torch.testing.assert_close(x.grad.data, 2 * (2 * x.data).exp())


def test_mixed_devices_raise_device_error():
    a = ad.randn(2, 3, requires_grad=True)
    b = ad.randn(2, 3, device="cuda")
    for call in (
        lambda: a + b,
        lambda: a @ b.mT,
        lambda: ad.linear(a, b),
        lambda: ad.cat([a, b]),
        lambda: ad.maximum(a, b),
    ):
        with pytest.raises(ad.DeviceError, match="cpu.*cuda|cuda.*cpu"):
            call()
