"""Attacks: FGSM / PGD bounds, equivalences, restarts, EOT, the Stateless wrapper, presets."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import layer, neuron
from torch import nn

from tgo.attacks import (AttackSpec, Stateless, eot_gradient, eval_mode, fgsm, make_attack,
                         per_example_loss, pgd)
from tgo.config import Attack
from tgo.models import NeuronSettings, build
from tgo.neurons import noise


class CarrySNN(nn.Module):
    """A plain spikingjelly SNN that never resets itself: state leaks between calls."""

    def __init__(self, timesteps: int = 3):
        super().__init__()
        self.timesteps = timesteps
        self.fc1 = layer.Linear(64, 32, step_mode="m")
        self.lif = neuron.LIFNode(step_mode="m")
        self.fc2 = layer.Linear(32, 10, step_mode="m")
        with torch.no_grad():
            self.fc1.weight.mul_(8.0)  # enough drive that the neurons fire and carry state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_seq = x.flatten(1).unsqueeze(0).repeat(self.timesteps, 1, 1)
        return self.fc2(self.lif(self.fc1(x_seq))).mean(0)


@pytest.fixture
def test_batch(digits):
    x, y = digits
    return x[1400:1496], y[1400:1496]


def _fooled(model, x_adv, y):
    with torch.no_grad():
        return Stateless(model)(x_adv).argmax(1) != y


# ----------------------------------------------------------------------------- bounds

@pytest.mark.parametrize("eps", [0.0, 0.03, 0.3, 1.0])
def test_pgd_and_fgsm_stay_in_eps_ball_and_pixel_range(trained, test_batch, eps):
    x, y = test_batch
    x = x[:32].clone()
    x[:, :, 0, 0] = 0.0  # pixels on both edges of [0, 1], where projection matters
    x[:, :, 0, 1] = 1.0
    with noise(trained, False):
        for x_adv in (pgd(trained, x, y[:32], eps, steps=3, generator=torch.Generator()),
                      pgd(trained, x, y[:32], eps, steps=2, step_size=0.5, restarts=2),
                      fgsm(trained, x, y[:32], eps)):
            assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
            assert float((x_adv - x).abs().max()) <= eps + 1e-6
            assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
            assert not x_adv.requires_grad


def test_attacks_raise_the_loss_and_fool_a_trained_model(trained, test_batch):
    x, y = test_batch
    with noise(trained, False), torch.no_grad():
        clean_loss = per_example_loss(Stateless(trained)(x), y).mean()
    with noise(trained, False):
        x_pgd = pgd(trained, x, y, 0.2, steps=5)
        x_fgsm = fgsm(trained, x, y, 0.2)
        x_cw = pgd(trained, x, y, 0.2, steps=5, loss="cw")
        with torch.no_grad():
            pgd_loss = per_example_loss(Stateless(trained)(x_pgd), y).mean()
        assert pgd_loss > clean_loss + 1.0
        fooled_clean = _fooled(trained, x, y).float().mean()
        assert _fooled(trained, x_pgd, y).float().mean() > fooled_clean + 0.3
        assert _fooled(trained, x_fgsm, y).float().mean() > fooled_clean + 0.2
        assert _fooled(trained, x_cw, y).float().mean() > fooled_clean + 0.3


# ----------------------------------------------------------------------------- equivalences

def test_pgd_one_step_without_random_start_equals_fgsm(trained, test_batch):
    x, y = test_batch
    with noise(trained, False):
        for eps in (0.05, 0.2):
            a = pgd(trained, x, y, eps, steps=1, step_size=eps, random_start=False)
            b = fgsm(trained, x, y, eps)
            assert torch.equal(a, b)
            assert not torch.equal(a, x)


def test_default_step_size_is_madrys(trained, test_batch):
    x, y = test_batch
    with noise(trained, False):
        a = pgd(trained, x, y, 0.1, steps=4, generator=torch.Generator().manual_seed(3))
        b = pgd(trained, x, y, 0.1, steps=4, step_size=2.5 * 0.1 / 4,
                generator=torch.Generator().manual_seed(3))
        c = pgd(trained, x, y, 0.1, steps=4, step_size=0.01,
                generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert make_attack("pgd", eps=0.1, steps=4).step_size == pytest.approx(0.0625)


def test_random_start_is_seeded_by_the_generator(trained, test_batch):
    x, y = test_batch
    with noise(trained, False):
        a = pgd(trained, x, y, 0.1, steps=2, generator=torch.Generator().manual_seed(7))
        b = pgd(trained, x, y, 0.1, steps=2, generator=torch.Generator().manual_seed(7))
        c = pgd(trained, x, y, 0.1, steps=2, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_restarts_never_lower_success_and_keep_first_success(trained, test_batch):
    x, y = test_batch
    with noise(trained, False):
        one = pgd(trained, x, y, 0.1, steps=3, generator=torch.Generator().manual_seed(0))
        four = pgd(trained, x, y, 0.1, steps=3, restarts=4,
                   generator=torch.Generator().manual_seed(0))
        fooled_one, fooled_four = _fooled(trained, one, y), _fooled(trained, four, y)
        # The eps is chosen so that one restart fools some but not all examples.
        assert 0 < int(fooled_one.sum()) < len(y)
        assert bool((fooled_four | ~fooled_one).all())  # everything fooled once stays fooled
        assert int(fooled_four.sum()) >= int(fooled_one.sum())
        # The first restart is the same run; its successes are kept as they were.
        assert torch.equal(four[fooled_one], one[fooled_one])
        # Not-fooled examples keep the highest-loss candidate: never below restart 1's loss.
        with torch.no_grad():
            net = Stateless(trained)
            l_one = per_example_loss(net(one), y)
            l_four = per_example_loss(net(four), y)
        assert bool((l_four[~fooled_four] >= l_one[~fooled_four] - 1e-5).all())


# ----------------------------------------------------------------------------- EOT

def test_eot_gradient_on_deterministic_model_equals_plain_gradient(trained, test_batch):
    x, y = test_batch
    x = x[:16]
    y = y[:16]
    with noise(trained, False):
        x_var = x.clone().requires_grad_(True)
        with eval_mode(trained):
            loss = F.cross_entropy(Stateless(trained)(x_var), y, reduction="sum")
        (plain,) = torch.autograd.grad(loss, x_var)
        for n, max_batch in ((1, None), (3, None), (5, None), (5, 32)):
            g = eot_gradient(trained, x, y, eot_samples=n, max_batch=max_batch)
            assert torch.allclose(g, plain, rtol=1e-4, atol=1e-7), (n, max_batch)
    assert float(plain.abs().sum()) > 0
    assert all(p.grad is None for p in trained.parameters())


def test_eot_gradient_averages_noise_draws(trained, test_batch):
    """With the noise on, single-draw gradients differ; averaging many narrows the spread."""
    x, y = test_batch
    x, y = x[:8], y[:8]
    with noise(trained, True):
        singles = [eot_gradient(trained, x, y) for _ in range(2)]
        assert not torch.equal(singles[0], singles[1])
        ref = eot_gradient(trained, x, y, eot_samples=64)
        avg = [eot_gradient(trained, x, y, eot_samples=16) for _ in range(2)]
    spread_single = float((singles[0] - ref).norm() + (singles[1] - ref).norm())
    spread_avg = float((avg[0] - ref).norm() + (avg[1] - ref).norm())
    assert spread_avg < spread_single


def test_eot_pgd_on_stochastic_model_stays_bounded(trained, test_batch):
    x, y = test_batch
    x, y = x[:32], y[:32]
    with noise(trained, True):
        x_adv = pgd(trained, x, y, 0.1, steps=2, eot_samples=4, restarts=2, max_batch=64)
    assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6
    assert 0.0 <= float(x_adv.min()) and float(x_adv.max()) <= 1.0


# ----------------------------------------------------------------------------- model hygiene

def test_stateless_makes_repeated_forwards_identical():
    torch.manual_seed(0)
    model = CarrySNN().eval()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        first, second = model(x), model(x)
        assert not torch.allclose(first, second)  # the membrane state carried over
        wrapped = Stateless(model)
        a, b = wrapped(x), wrapped(x)
    assert torch.equal(a, b)
    assert Stateless(model).model is model


def test_attack_on_a_stateful_model_matches_the_reset_model():
    """Without the wrapper the second attack would start from the first's leftover state."""
    torch.manual_seed(0)
    model = CarrySNN().eval()
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    with torch.no_grad():
        model(torch.rand(8, 1, 8, 8))  # leave state behind
    a = pgd(model, x, y, 0.1, steps=3, random_start=False)
    b = pgd(model, x, y, 0.1, steps=3, random_start=False)
    assert torch.equal(a, b)


def test_attacks_restore_modes_and_leave_parameter_grads_alone(trained, test_batch):
    x, y = test_batch
    trained.train()
    trained.body[0].eval()  # a mixed state must come back exactly
    try:
        x_adv = pgd(trained, x[:8], y[:8], 0.1, steps=2, eot_samples=2)
        assert trained.training and not trained.body[0].training and trained.body[1].training
    finally:
        trained.eval()
    assert all(p.grad is None for p in trained.parameters())
    assert x_adv.shape == x[:8].shape


def test_attacks_work_inside_no_grad_and_inference_mode(trained, test_batch):
    x, y = test_batch
    x, y = x[:8], y[:8]
    with noise(trained, False):
        ref = fgsm(trained, x, y, 0.1)
        with torch.no_grad():
            assert torch.equal(fgsm(trained, x, y, 0.1), ref)
        with torch.inference_mode():
            x_i, y_i = x.clone(), y.clone()
            out = pgd(trained, x_i, y_i, 0.1, steps=1, step_size=0.1, random_start=False)
        assert torch.equal(out, ref)


# ----------------------------------------------------------------------------- presets, bad input

def test_make_attack_turns_names_into_specs():
    spec = make_attack("pgd", eps=0.1, steps=10, eot_samples=4)
    assert spec.name is Attack.PGD and spec.step_size == pytest.approx(0.025)
    assert spec.describe() == "PGD-10 (eps 0.1, step 0.025, 1 restart) EOT-4"
    assert make_attack(Attack.PGD, eps=0.1, restarts=3).describe().endswith("3 restarts)")
    f = make_attack("fgsm", eps=0.2, steps=20, restarts=5)
    assert (f.name, f.steps, f.step_size, f.restarts, f.random_start) == \
        (Attack.FGSM, 1, 0.2, 1, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.eps = 0.2  # type: ignore[misc]


def test_spec_run_matches_the_function(trained, test_batch):
    x, y = test_batch
    with noise(trained, False):
        assert torch.equal(make_attack("fgsm", eps=0.1).run(trained, x, y),
                           fgsm(trained, x, y, 0.1))
        spec = AttackSpec("pgd", eps=0.1, steps=2, random_start=True)
        a = spec.run(trained, x, y, generator=torch.Generator().manual_seed(1))
        b = pgd(trained, x, y, 0.1, steps=2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_unknown_attack_lists_valid_names():
    with pytest.raises(ValueError, match=r"attack: expected one of 'fgsm', 'pgd', 'apgd', got 'cw'"):
        make_attack("cw", eps=0.1)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['stepz'\]"):
        make_attack("pgd", eps=0.1, stepz=3)


@pytest.mark.parametrize("field, value, expected", [
    ("eps", -0.1, "in [0, 1]"),
    ("eps", 1.5, "in [0, 1]"),
    ("eps", math.nan, "in [0, 1]"),
    ("steps", 0, ">= 1"),
    ("steps", 2.0, ">= 1"),
    ("eot_samples", 0, ">= 1"),
    ("restarts", 0, ">= 1"),
    ("step_size", 0.0, "> 0"),
    ("loss", "mse", "'ce', 'cw'"),
])
def test_bad_settings_raise_value_error_naming_the_field(trained, test_batch, field, value,
                                                         expected):
    x, y = test_batch
    settings = {"eps": 0.1, field: value}
    pattern = rf"^{field}: expected .*{re.escape(expected)}.*, got {re.escape(repr(value))}"
    with pytest.raises(ValueError, match=pattern):
        make_attack("pgd", **settings)
    with pytest.raises(ValueError, match=pattern):
        pgd(trained, x[:2], y[:2], **settings)
    if field in ("eps", "eot_samples", "loss"):
        with pytest.raises(ValueError, match=pattern):
            fgsm(trained, x[:2], y[:2], **settings)


def test_bad_inputs_raise_value_error(trained, test_batch):
    x, y = test_batch
    with pytest.raises(ValueError, match=r"^x: expected pixels in \[0, 1\], got values in"):
        pgd(trained, x[:2] * 2, y[:2], 0.1)
    with pytest.raises(ValueError, match=r"^y: expected an integer tensor of shape \[2\]"):
        fgsm(trained, x[:2], y[:3], 0.1)
    with pytest.raises(ValueError, match=r"^y: expected"):
        fgsm(trained, x[:2], y[:2].float(), 0.1)
    with pytest.raises(ValueError, match=r"^model: expected a torch.nn.Module"):
        Stateless(lambda t: t)  # type: ignore[arg-type]
