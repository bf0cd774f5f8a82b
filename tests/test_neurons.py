"""NoisyLIFNode: equivalence with spikingjelly's LIFNode at sigma = 0, firing statistics,
recording, noise switches, seeds and pickling (the same checks for every variant)."""

import copy
import math
import pickle

import pytest
import torch
from spikingjelly.activation_based import neuron, surrogate

from tgo.neurons import NoisyLIFNode, is_stochastic, noise, noisy_nodes, recording

T, N = 6, 40

SJ_SURROGATES = {"sigmoid": surrogate.Sigmoid(), "atan": surrogate.ATan(),
                 "triangle": surrogate.PiecewiseQuadratic()}


def _run(node, x, mode):
    if mode == "m":
        return node(x)
    return torch.stack([node(x[t]) for t in range(x.shape[0])])


@pytest.mark.parametrize("mode", ["m", "s"])
@pytest.mark.parametrize("v_reset", [0.0, None, -0.2])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("name", ["sigmoid", "atan", "triangle"])
def test_sigma_zero_equals_spikingjelly_lif(mode, v_reset, detach_reset, name):
    torch.manual_seed(0)
    ref = neuron.LIFNode(tau=2.0, v_reset=v_reset, detach_reset=detach_reset, step_mode=mode,
                         surrogate_function=SJ_SURROGATES[name])
    ours = NoisyLIFNode(tau=2.0, v_reset=v_reset, detach_reset=detach_reset, step_mode=mode,
                        surrogate=name, noise_scale=0.0)
    x = torch.randn(T, N) * 1.5 + 0.8
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    sa, sb = _run(ref, xa, mode), _run(ours, xb, mode)
    assert torch.equal(sa, sb)              # spikes: exactly
    assert torch.equal(ref.v, ours.v)       # final membrane potential: exactly
    w = torch.randn_like(sa)
    ((sa * w).sum() + ref.v.sum()).backward()
    ((sb * w).sum() + ours.v.sum()).backward()
    assert xa.grad.abs().sum() > 0
    # Gradients agree to float32 rounding (the two sum the same terms in another order).
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-5, atol=1e-6)


def test_default_surrogate_is_spikingjelly_sigmoid_at_sigma_zero():
    node = NoisyLIFNode()
    assert node.params.surrogate.value == "sigmoid" and node.params.alpha == 4.0


@pytest.mark.parametrize("sigma", [0.01, 0.3])
def test_default_surrogate_when_noisy_is_gaussian_of_std_hypot_sigma_s0(sigma):
    """The noise density widened by S0 = 1/sqrt(2 pi): never narrower than at sigma = 0."""
    node = NoisyLIFNode(noise_scale=sigma)
    assert node.params.surrogate.value == "erf"
    std = math.sqrt(sigma**2 + 1 / (2 * math.pi))
    from tgo.neurons import surrogate_gradient
    x = torch.linspace(-1, 1, 11)
    density = torch.exp(-x**2 / (2 * std**2)) / (std * math.sqrt(2 * math.pi))
    got = surrogate_gradient(x, node.params.surrogate, node.params.alpha)
    torch.testing.assert_close(got, density)
    # Peak at most sigmoid(alpha 4)'s 1.0 (equal as sigma -> 0), and the area stays 1.
    assert float(got[5]) <= 1.0 and float(got[5]) > 0.9 * (sigma < 0.1)
    wide = torch.linspace(-8, 8, 16001)
    area = surrogate_gradient(wide, node.params.surrogate, node.params.alpha).sum() * 0.001
    assert float(area) == pytest.approx(1.0, abs=1e-3)


def test_exact_noise_density_still_available_with_explicit_alpha():
    sigma = 0.2
    node = NoisyLIFNode(noise_scale=sigma, surrogate="erf",
                        surrogate_alpha=1 / (sigma * math.sqrt(2)))
    from tgo.neurons import surrogate_gradient
    x = torch.linspace(-1, 1, 11)
    density = torch.exp(-x**2 / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    torch.testing.assert_close(surrogate_gradient(x, node.params.surrogate, node.params.alpha),
                               density)


@pytest.mark.parametrize("h", [0.8, 1.0, 1.15])
def test_firing_probability_matches_gaussian_cdf(h):
    sigma, draws = 0.2, 20000
    node = NoisyLIFNode(noise_scale=sigma, generator=torch.Generator().manual_seed(1))
    # One step from rest with tau = 2: H = X / 2, so X = 2h gives H = h exactly.
    spikes = node(torch.full((1, draws), 2 * h))
    p_hat = spikes.mean().item()
    p = 0.5 * (1 + math.erf((h - 1.0) / (sigma * math.sqrt(2))))
    stderr = math.sqrt(p * (1 - p) / draws)
    assert abs(p_hat - p) < 3 * stderr + 1e-9


def test_noise_drawn_fresh_per_step_and_neuron():
    node = NoisyLIFNode(noise_scale=0.3, v_reset=None, generator=torch.Generator().manual_seed(0))
    spikes = node(torch.full((50, 200), 2.0))   # H hovers around threshold
    assert 0.05 < spikes.mean() < 0.95
    assert not torch.equal(spikes[0], spikes[1]) and not torch.equal(spikes[:, 0], spikes[:, 1])


def test_recording_returns_h_in_forward_order_attached_to_graph():
    a, b = NoisyLIFNode(noise_scale=0.1), NoisyLIFNode()
    model = torch.nn.Sequential(a, torch.nn.Identity(), b)
    x = (torch.rand(T, 3, 5) * 3).requires_grad_()
    with recording(model) as potentials:
        model(x)
    assert len(potentials) == 2
    # First layer: H[0] = X[0] / tau from rest.
    torch.testing.assert_close(potentials[0][0], x[0] / 2)
    assert potentials[0].requires_grad and potentials[0].shape == (T, 3, 5)
    potentials[0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # Outside the block nothing is recorded.
    with recording(model) as again:
        pass
    model(x)
    assert again == [] and a.recorder is None


def test_h_is_pre_reset_potential_not_v_seq():
    node = NoisyLIFNode()
    with recording(node) as potentials:
        node(torch.full((3, 1), 4.0))   # H[0] = 2 >= 1: spike, reset to 0
    assert potentials[0][0].item() == 2.0 and node.v.item() != 2.0


def test_noise_switch_and_eval_behaviour():
    node = NoisyLIFNode(noise_scale=0.2)
    model = torch.nn.Sequential(node)
    assert is_stochastic(model.train()) and is_stochastic(model.eval())   # noise_at_eval
    with noise(model, False):
        assert not is_stochastic(model)
        x = torch.full((4, 100), 2.0)
        assert torch.equal(model(x), model(x))
    assert is_stochastic(model)
    quiet = torch.nn.Sequential(NoisyLIFNode(noise_scale=0.2, noise_at_eval=False)).eval()
    assert not is_stochastic(quiet)
    assert not is_stochastic(torch.nn.Sequential(NoisyLIFNode()))
    assert noisy_nodes(model) == [node]


def test_seeded_generator_reproduces():
    def run(seed):
        node = NoisyLIFNode(noise_scale=0.3, generator=torch.Generator().manual_seed(seed))
        return node(torch.full((T, 100), 2.0))
    assert torch.equal(run(3), run(3)) and not torch.equal(run(3), run(4))


@pytest.mark.parametrize("sigma", [0.0, 0.2])
def test_pickle_and_deepcopy_keep_generator_state(sigma):
    node = NoisyLIFNode(noise_scale=sigma, generator=torch.Generator().manual_seed(0))
    clone = pickle.loads(pickle.dumps(node))
    twin = copy.deepcopy(node)
    x = torch.full((T, 50), 2.0)
    out = node(x)
    assert torch.equal(clone(x), out) and torch.equal(twin(x), out)


@pytest.mark.parametrize("kwargs, field", [
    (dict(noise_scale=-0.1), "noise_scale"),
    (dict(tau=1.0), "tau"),
    (dict(surrogate="gauss"), "surrogate"),
    (dict(surrogate="erf", surrogate_alpha=0.0), "surrogate_alpha"),
])
def test_bad_neuron_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        NoisyLIFNode(**kwargs)


def test_integer_tau_is_accepted():   # spikingjelly's LIFNode(tau=2) fails with a bare assert
    assert NoisyLIFNode(tau=2).tau == 2.0
