"""CUDA paths: the neuron and a training step on the GPU (skipped without CUDA)."""

import pytest
import torch

from tgo.config import TrainConfig
from tgo.neurons import NoisyLIFNode

pytestmark = pytest.mark.gpu


def test_noisy_lif_on_cuda_matches_cpu_at_sigma_zero():
    x = torch.randn(4, 64, 32) * 1.5 + 0.8
    cpu, gpu = NoisyLIFNode(), NoisyLIFNode()
    xc, xg = x.clone().requires_grad_(), x.cuda().requires_grad_()
    sc, sg = cpu(xc), gpu(xg)
    assert torch.equal(sc, sg.cpu())
    sc.sum().backward()
    sg.sum().backward()
    torch.testing.assert_close(xg.grad.cpu(), xc.grad, rtol=1e-5, atol=1e-6)


def test_noise_generator_on_cuda():
    node = NoisyLIFNode(noise_scale=0.2, generator=torch.Generator("cuda").manual_seed(0))
    assert node(torch.full((4, 100), 2.0, device="cuda")).is_cuda


def test_one_epoch_with_amp_on_cuda():
    from tgo.train import fit
    result = fit(TrainConfig(epochs=1, device="cuda", amp=True, val_subset=32, val_steps=1))
    assert result.history[0]["val_clean_acc"] > 0.1
