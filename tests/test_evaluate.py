"""robustness() and RobustnessResult; diagnostics (near-threshold, firing, flips, grad norm)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import layer, neuron
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tgo.attacks import Stateless, pgd
from tgo.config import Attack
from tgo.diagnostics import (firing_rate, input_grad_norm, near_threshold_fraction,
                             state_flip_rate)
from tgo.evaluate import RobustnessResult, robustness
from tgo.models import NeuronSettings, build
from tgo.neurons import is_stochastic, noise, recording


@pytest.fixture
def held_out(digits):
    x, y = digits
    return x[1400:1520], y[1400:1520]


def _pgd(model, data, **kw):
    settings = dict(attack="pgd", eps=0.2, steps=5, generator=torch.Generator().manual_seed(0))
    settings.update(kw)
    return robustness(model, data, **settings)


# ----------------------------------------------------------------------------- robustness

def test_pgd_lowers_accuracy_with_noise_off(trained, held_out):
    r = _pgd(trained, held_out, noise=False)
    assert r.clean_acc > 0.85
    assert r.robust_acc < r.clean_acc - 0.1
    assert (r.attack, r.eps, r.steps, r.restarts) == (Attack.PGD, 0.2, 5, 1)
    assert r.step_size == pytest.approx(2.5 * 0.2 / 5)
    assert r.eot_samples == 1 and r.noise_on is False and r.n_examples == 120
    assert not trained.training
    assert is_stochastic(trained)  # the forced "off" did not outlive the call


def test_eot_pgd_lowers_accuracy_of_the_stochastic_model(trained, held_out):
    r = _pgd(trained, held_out, steps=3, max_examples=48)
    assert r.noise_on is True and r.eot_samples == 8  # the default for a stochastic model
    assert r.n_examples == 48
    assert r.clean_acc > 0.8
    assert r.robust_acc < r.clean_acc - 0.1
    assert r.describe().startswith("PGD-3 (eps 0.2, step 0.1667, 1 restart) EOT-8, noise on:")


def test_fgsm_records_its_own_budget(trained, held_out):
    r = robustness(trained, held_out, attack="fgsm", eps=0.2, steps=20, noise=False,
                   eot_samples=2)
    assert (r.attack, r.steps, r.step_size, r.restarts, r.eot_samples) == \
        (Attack.FGSM, 1, 0.2, 1, 2)
    assert 0.0 <= r.robust_acc < r.clean_acc


def test_eps_zero_keeps_clean_accuracy(trained, held_out):
    r = _pgd(trained, held_out, eps=0.0, noise=False)
    assert r.robust_acc == r.clean_acc


def test_data_forms_agree(trained, held_out):
    x, y = held_out
    kw = dict(attack="fgsm", eps=0.1, noise=False)
    pair = robustness(trained, (x, y), batch_size=50, **kw)
    dataset = robustness(trained, TensorDataset(x, y), batch_size=32, **kw)
    loader = robustness(trained, DataLoader(TensorDataset(x, y), batch_size=17), **kw)
    assert pair == dataset == loader
    assert pair.n_examples == len(y)


def test_max_examples_cuts_across_batches(trained, held_out):
    r = robustness(trained, held_out, attack="fgsm", eps=0.1, noise=False, batch_size=7,
                   max_examples=20)
    assert r.n_examples == 20
    assert r.clean_acc * 20 == pytest.approx(round(r.clean_acc * 20))


def test_training_mode_warns_evaluates_in_eval_mode_and_restores(trained, held_out):
    ref = robustness(trained, held_out, attack="fgsm", eps=0.1, noise=False)
    trained.train()
    try:
        with pytest.warns(UserWarning, match="training mode"):
            r = robustness(trained, held_out, attack="fgsm", eps=0.1, noise=False)
        assert trained.training and all(m.training for m in trained.modules())
    finally:
        trained.eval()
    assert r == ref  # BatchNorm used its running statistics: eval mode
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        robustness(trained, held_out, attack="fgsm", eps=0.1, noise=False, max_examples=8)


def test_noise_forcing_and_explicit_eot(trained, held_out):
    with noise(trained, False):
        off = robustness(trained, held_out, attack="fgsm", eps=0.1, max_examples=16)
        on = robustness(trained, held_out, attack="fgsm", eps=0.1, max_examples=16,
                        noise=True, eot_samples=3)
    assert (off.noise_on, off.eot_samples) == (False, 1)
    assert (on.noise_on, on.eot_samples) == (True, 3)


def test_attack_leaves_parameter_grads_alone(trained, held_out):
    _pgd(trained, held_out, steps=2, noise=False, max_examples=16)
    assert all(p.grad is None for p in trained.parameters())


def test_result_describe_and_metrics():
    r = RobustnessResult(clean_acc=0.953, robust_acc=0.412, attack=Attack.PGD, eps=0.1,
                         steps=20, step_size=0.0125, restarts=1, eot_samples=8,
                         noise_on=True, n_examples=360)
    assert r.describe() == ("PGD-20 (eps 0.1, step 0.0125, 1 restart) EOT-8, noise on: "
                            "robust 41.2% / clean 95.3% on 360 examples")
    f = RobustnessResult(0.9, 0.3, Attack.FGSM, 0.05, 1, 0.05, 1, 1, False, 10)
    assert f.describe() == "FGSM (eps 0.05), noise off: robust 30.0% / clean 90.0% on 10 examples"
    m = r.as_metrics()
    # the final-evaluation keys of docs/CONTRACTS.md
    assert m == {"clean_acc": 0.953, "robust_acc": 0.412, "eval_attack": "pgd",
                 "eval_eps": 0.1, "eval_steps": 20, "eval_step_size": 0.0125,
                 "eval_restarts": 1, "eval_eot_samples": 8, "eval_noise": True,
                 "eval_n": 360}
    assert r.as_metrics("val_", include_attack=False) == {"val_clean_acc": 0.953,
                                                          "val_robust_acc": 0.412}
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.eps = 0.2  # type: ignore[misc]


@pytest.mark.parametrize("kw, message", [
    ({"eps": 1.5}, r"^eps: expected .*\[0, 1\].*got 1.5"),
    ({"eps": -0.1}, r"^eps: expected .*got -0.1"),
    ({"steps": 0}, r"^steps: expected an integer >= 1, got 0"),
    ({"eot_samples": 0}, r"^eot_samples: expected None or an integer >= 1, got 0"),
    ({"restarts": 0}, r"^restarts: expected an integer >= 1, got 0"),
    ({"step_size": -1.0}, r"^step_size: expected None or a number > 0, got -1.0"),
    ({"batch_size": 0}, r"^batch_size: expected an integer >= 1, got 0"),
    ({"max_examples": 0}, r"^max_examples: expected None or an integer >= 1, got 0"),
    ({"attack": "cw"}, r"^attack: expected one of 'fgsm', 'pgd', 'apgd', got 'cw'"),
    ({"noise": "yes"}, r"^noise: expected None, True or False, got 'yes'"),
])
def test_bad_input_raises_value_error_naming_the_field(trained, held_out, kw, message):
    settings = {"eps": 0.1, **kw}
    with pytest.raises(ValueError, match=message):
        robustness(trained, held_out, **settings)


def test_bad_data_raises_value_error(trained, held_out):
    x, y = held_out
    with pytest.raises(ValueError, match=r"^data: expected a torch Dataset"):
        robustness(trained, [1, 2, 3], eps=0.1)
    with pytest.raises(ValueError, match=r"^data: expected an \(x, y\) pair"):
        robustness(trained, (x, y[:3]), eps=0.1)
    with pytest.raises(ValueError, match=r"^data: expected at least one example"):
        robustness(trained, (x[:0], y[:0]), eps=0.1)


# ----------------------------------------------------------------------------- diagnostics

def test_near_threshold_fraction_counts_the_band():
    h = [torch.tensor([[0.0, 0.6, 0.9]]), torch.tensor([1.0, 1.49, 1.5, 3.0])]
    # |H - 1| < 0.5: 0.6, 0.9, 1.0, 1.49 -> 4 of 7
    assert near_threshold_fraction(h, 1.0, 0.5) == pytest.approx(4 / 7)
    assert near_threshold_fraction(torch.full((3,), 5.0), 1.0, 0.5) == 0.0
    with pytest.raises(ValueError, match="^margin: expected a number > 0, got 0"):
        near_threshold_fraction(h, 1.0, 0)
    with pytest.raises(ValueError, match="^potentials: expected at least one tensor"):
        near_threshold_fraction([], 1.0, 0.5)


def test_near_threshold_on_recorded_potentials(trained, held_out):
    x, _ = held_out
    with recording(trained) as potentials, torch.no_grad():
        trained(x[:16])
    frac = near_threshold_fraction(potentials, 1.0, 0.5)
    assert len(potentials) == 3 and 0.0 < frac < 1.0


def test_firing_rate_matches_a_manual_count(trained, held_out):
    x, _ = held_out
    x = x[:16]
    with noise(trained, False):
        rate = firing_rate(trained, x)
        spikes = []
        hooks = [m.register_forward_hook(lambda _m, _i, out: spikes.append(out))
                 for m in trained.modules() if isinstance(m, neuron.BaseNode)]
        with torch.no_grad():
            trained(x)
        for h in hooks:
            h.remove()
    assert 0.0 < rate < 1.0
    assert rate == pytest.approx(float(sum(s.sum() for s in spikes))
                                 / sum(s.numel() for s in spikes))


def test_firing_rate_works_for_plain_lif_and_restores_mode():
    torch.manual_seed(0)
    model = nn.Sequential(layer.Linear(4, 8, step_mode="m"), neuron.LIFNode(step_mode="m"))
    model.train()
    with torch.no_grad():  # input 10 per unit: H = 20 > V_th at every step
        model[0].weight.fill_(1.0)
        model[0].bias.fill_(0.0)
    assert firing_rate(model, torch.full((3, 2, 4), 10.0)) == 1.0
    assert firing_rate(model, torch.zeros(3, 2, 4)) == 0.0
    assert model.training
    with pytest.raises(ValueError, match="^model: expected spiking neurons"):
        firing_rate(nn.Linear(4, 2), torch.zeros(1, 4))


def test_state_flip_rate(trained, held_out):
    x, y = held_out
    x, y = x[:16], y[:16]
    assert is_stochastic(trained)  # noise on: the rate must still be exactly 0 for x == x
    assert state_flip_rate(trained, x, x.clone()) == 0.0
    with noise(trained, False):
        x_adv = pgd(trained, x, y, 0.2, steps=3)
    rate = state_flip_rate(trained, x, x_adv)
    assert 0.0 < rate <= 1.0
    with pytest.raises(ValueError, match=r"^x_adv: expected the shape of x"):
        state_flip_rate(trained, x, x[:2])


def test_input_grad_norm(trained, held_out):
    x, y = held_out
    x, y = x[:16], y[:16]
    with noise(trained, False):
        norm = input_grad_norm(trained, x, y)
        x_var = x.clone().requires_grad_(True)
        loss = F.cross_entropy(Stateless(trained)(x_var), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, x_var)
    assert norm > 0.0
    assert norm == pytest.approx(float(g.flatten(1).norm(dim=1).mean()), rel=1e-4)
    assert all(p.grad is None for p in trained.parameters())


def test_tgo_imports_without_ray_or_mlflow():
    code = ("import sys; sys.modules['ray'] = None; sys.modules['mlflow'] = None\n"
            "import tgo.attacks, tgo.evaluate, tgo.diagnostics\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
