"""The per-example worst case over an attack set (tgo.worst_case) and the final evaluation
that reports it as ``robust_acc`` (tgo.final_eval)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from tgo.attacks import make_attack
from tgo.config import Attack, TrainConfig
from tgo.data import load
from tgo.evaluate import robustness
from tgo.final_eval import EvalSettings, describe_attack, final_evaluation
from tgo.worst_case import DEFAULT_ATTACKS, WorstCaseResult, worst_case


@pytest.fixture
def held_out(digits):
    x, y = digits
    return x[1400:1480], y[1400:1480]


def _seed(n: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(n)


# ----------------------------------------------------------------------------- worst case

def test_worst_case_is_the_per_example_and_of_every_attack(trained, held_out):
    r = worst_case(trained, held_out, ["fgsm", "pgd", "apgd"], eps=0.2, steps=4,
                   noise=False, generator=_seed())
    assert isinstance(r, WorstCaseResult)
    assert [a.attack for a in r.attacks] == [Attack.FGSM, Attack.PGD, Attack.APGD]
    assert r.correct.shape == (80,) and r.survived.shape == (3, 80)
    # an example survives an attack only if it was right clean
    assert not (r.survived & ~r.correct).any()
    worst = r.survived.all(dim=0) & r.correct
    assert r.robust_acc == int(worst.sum()) / 80
    for a, result in enumerate(r.attacks):
        assert result.robust_acc == int(r.survived[a].sum()) / 80
        assert r.robust_acc <= result.robust_acc <= r.clean_acc
        assert (result.clean_acc, result.n_examples, result.noise_on) == (r.clean_acc, 80, False)
    assert r.robust_acc < r.clean_acc - 0.1
    assert r.robust_by_attack() == {"fgsm": r.attacks[0].robust_acc,
                                    "pgd": r.attacks[1].robust_acc,
                                    "apgd": r.attacks[2].robust_acc}


def test_each_attack_matches_its_own_robustness_run(trained, held_out):
    """Noise off and one batch: the first attack sees exactly robustness()'s random start."""
    kw = dict(eps=0.15, steps=3, noise=False)
    r = worst_case(trained, held_out, ["pgd", "fgsm"], generator=_seed(5), **kw)
    pgd_alone = robustness(trained, held_out, attack="pgd", generator=_seed(5), **kw)
    fgsm_alone = robustness(trained, held_out, attack="fgsm", **kw)
    assert r.attacks[0] == pgd_alone
    assert r.attacks[1] == fgsm_alone
    assert r.clean_acc == pgd_alone.clean_acc


def test_stochastic_model_gets_eot_for_every_named_attack(trained, held_out):
    r = worst_case(trained, held_out, eps=0.2, steps=2, max_examples=24, generator=_seed())
    assert [a.attack for a in r.attacks] == list(DEFAULT_ATTACKS)
    assert r.noise_on and all(a.eot_samples == 8 and a.noise_on for a in r.attacks)
    assert r.n_examples == 24
    assert r.robust_acc <= min(r.robust_by_attack().values())
    assert r.description() == ("worst case of [PGD-2 (eps 0.2, step 0.25, 1 restart) EOT-8, "
                               "APGD-2 (eps 0.2, 1 restart) EOT-8], noise on")


class _Shattered(torch.autograd.Function):
    """Identity forward; backward adds noise ``scale`` times the gradient's mean size."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        size = grad.abs().flatten(1).mean(dim=1).view(-1, 1, 1, 1)
        return grad + ctx.scale * size * torch.randn_like(grad), None


class _MaskedGradient(nn.Module):
    """The same classifier, with an obfuscated input gradient: a single gradient is mostly
    noise, an EOT average of many is close to the true one."""

    def __init__(self, inner: nn.Module, scale: float) -> None:
        super().__init__()
        self.inner, self.scale = inner, scale

    def forward(self, x):
        return self.inner(_Shattered.apply(x, self.scale))


def test_gradient_masking_cannot_beat_the_strongest_attack(trained, held_out):
    torch.manual_seed(0)
    masked = _MaskedGradient(trained, scale=8.0).eval()
    fooled = make_attack("pgd", eps=0.2, steps=5, eot_samples=1)   # sees the masked gradient
    eot = make_attack("pgd", eps=0.2, steps=5, eot_samples=16)     # averages most of it away
    r = worst_case(masked, held_out, [fooled, eot], noise=False, generator=_seed())
    weak, strong = r.attacks
    assert weak.eot_samples == 1 and strong.eot_samples == 16
    # Measured: plain PGD 85-92% on the masked model, EOT-16 PGD 49-55% (3 seeds).
    assert weak.robust_acc > strong.robust_acc + 0.2     # the mask fools the plain attack ...
    assert r.robust_acc <= strong.robust_acc             # ... but not the worst case
    assert r.robust_acc <= min(weak.robust_acc, strong.robust_acc)
    assert r.keys() == ["pgd", "pgd_2"]
    assert set(r.as_metrics()) >= {"robust_acc_pgd", "robust_acc_pgd_2"}


def test_metrics_name_the_whole_attack_set():
    from tgo.evaluate import RobustnessResult
    pgd = RobustnessResult(0.9, 0.5, Attack.PGD, 0.1, 20, 0.0125, 1, 8, True, 100)
    apgd = RobustnessResult(0.9, 0.45, Attack.APGD, 0.1, 20, 0.2, 1, 8, True, 100)
    r = WorstCaseResult(0.9, 0.4, (pgd, apgd), 100, True,
                        correct=torch.ones(100, dtype=torch.bool),
                        survived=torch.ones(2, 100, dtype=torch.bool))
    assert r.as_metrics() == {
        "clean_acc": 0.9, "robust_acc": 0.4, "robust_acc_pgd": 0.5, "robust_acc_apgd": 0.45,
        "eval_attack": "pgd,apgd", "eval_eps": 0.1, "eval_steps": 20,
        "eval_step_size": [0.0125, 0.2], "eval_restarts": 1, "eval_eot_samples": 8,
        "eval_noise": True, "eval_n": 100}
    assert r.as_metrics("val_", include_attack=False) == {
        "val_clean_acc": 0.9, "val_robust_acc": 0.4, "val_robust_acc_pgd": 0.5,
        "val_robust_acc_apgd": 0.45}
    assert describe_attack(r) == ("worst case of [PGD-20 (eps 0.1, step 0.0125, 1 restart) "
                                  "EOT-8, APGD-20 (eps 0.1, 1 restart) EOT-8], noise on")
    assert r.describe().endswith("robust 40.0% (pgd 50.0%, apgd 45.0%) / clean 90.0% on 100 "
                                 "examples")
    one = dataclasses.replace(r, attacks=(pgd,), survived=r.survived[:1])
    assert one.as_metrics() == {**pgd.as_metrics(), "robust_acc": 0.4, "robust_acc_pgd": 0.5}
    assert describe_attack(one) == "PGD-20 (eps 0.1, step 0.0125, 1 restart) EOT-8, noise on"


@pytest.mark.parametrize("attacks, kw, message", [
    ([], {"eps": 0.1}, r"^attacks: expected a non-empty list"),
    ("pgd", {"eps": 0.1}, r"^attacks: expected a non-empty list"),
    (["pgd", "cw"], {"eps": 0.1}, r"^attack: expected one of 'fgsm', 'pgd', 'apgd', got 'cw'"),
    (["pgd"], {}, r"^eps: expected a number to build attack 'pgd'"),
    (["pgd"], {"eps": 0.1, "noise": "on"}, r"^noise: expected None, True or False"),
])
def test_bad_input_names_the_field(trained, held_out, attacks, kw, message):
    with pytest.raises(ValueError, match=message):
        worst_case(trained, held_out, attacks, **kw)


# ----------------------------------------------------------------------------- settings

def test_eval_settings_attack_set_and_single_attack():
    assert EvalSettings().attacks == (Attack.PGD, Attack.APGD) and EvalSettings().attack is None
    single = EvalSettings(attack="fgsm", eps=0.05)
    assert single.attacks == (Attack.FGSM,) and single.attack is Attack.FGSM
    assert dataclasses.replace(single, eps=0.1).attacks == (Attack.FGSM,)
    assert EvalSettings(attacks=["apgd"]).attacks == (Attack.APGD,)
    assert EvalSettings(attack="pgd", attacks=["pgd"]).attacks == (Attack.PGD,)


@pytest.mark.parametrize("kw, message", [
    ({"attacks": []}, r"^attacks: expected a non-empty list"),
    ({"attacks": "pgd"}, r"^attacks: expected a non-empty list"),
    ({"attacks": ["pgd", "cw"]}, r"^attacks: expected one of 'fgsm', 'pgd', 'apgd', got 'cw'"),
    ({"attacks": ["pgd", "pgd"]}, r"^attacks: expected distinct attacks"),
    ({"attack": "fgsm", "attacks": ["pgd", "apgd"]}, r"^attack: expected None when attacks"),
    ({"attack": "cw"}, r"^attack: expected one of"),
])
def test_eval_settings_reject_bad_attack_sets(kw, message):
    with pytest.raises(ValueError, match=message):
        EvalSettings(**kw)


# ----------------------------------------------------------------------------- final evaluation

@pytest.fixture(scope="module")
def splits():
    return load("digits", seed=0)


def test_final_evaluation_reports_the_worst_case_and_each_attack(trained, splits):
    config = TrainConfig(timesteps=2, noise_scale=0.2)
    out = final_evaluation(trained, config, splits,
                           EvalSettings(eps=0.2, steps=2, eot_samples=2, max_examples=40),
                           generator=_seed())
    assert out["robust_acc"] <= min(out["robust_acc_pgd"], out["robust_acc_apgd"])
    assert out["robust_acc_pgd"] <= out["clean_acc"] and out["eval_n"] == 40
    assert out["eval_attack"] == "pgd,apgd" and out["eval_eot_samples"] == 2
    assert out["eval_step_size"] == [0.25, 0.4]
    assert out["eval_description"] == ("worst case of [PGD-2 (eps 0.2, step 0.25, 1 restart) "
                                       "EOT-2, APGD-2 (eps 0.2, 1 restart) EOT-2], noise on")
    assert {"spike_rate", "near_threshold", "eval_eps", "eval_steps", "eval_restarts",
            "eval_noise"} <= set(out)


def test_final_evaluation_with_one_attack_reports_as_before(trained, splits):
    out = final_evaluation(trained, TrainConfig(timesteps=2), splits,
                           EvalSettings(attack="fgsm", eps=0.05, eot_samples=1,
                                        max_examples=30))
    assert out["eval_description"] == "FGSM (eps 0.05), noise on"
    assert out["eval_attack"] == "fgsm" and out["robust_acc"] == out["robust_acc_fgsm"]
    assert set(out) == {"clean_acc", "robust_acc", "robust_acc_fgsm", "eval_attack", "eval_eps",
                        "eval_steps", "eval_step_size", "eval_restarts", "eval_eot_samples",
                        "eval_noise", "eval_n", "spike_rate", "near_threshold",
                        "eval_description", "sops", "macs"}
