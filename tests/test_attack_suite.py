"""The attack suite: APGD (AutoAttack's schedule), the attacker's surrogate, noise-off and
transfer rows, and `tgo evaluate --attacks` printing one table."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from tgo import checkpoint
from tgo.attacks import apgd, attacker_surrogate, make_attack, pgd, transfer
from tgo.attacks.apgd import checkpoints
from tune.cli import main
from tgo.config import Attack, Surrogate, TrainConfig
from tgo.evaluate import robustness
from tgo.models import NeuronSettings, build
from tgo.neurons import noise, noisy_nodes


@pytest.fixture
def held_out(digits):
    x, y = digits
    return x[1400:1440], y[1400:1440]


def _linear(w: torch.Tensor) -> nn.Module:
    model = nn.Sequential(nn.Flatten(), nn.Linear(w.shape[1], w.shape[0], bias=False))
    with torch.no_grad():
        model[1].weight.copy_(w)
    return model


# ----------------------------------------------------------------------------- APGD

def test_checkpoint_schedule_is_the_published_one():
    # p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), by hand:
    # 0.22 + 0.19 = 0.41, + 0.16 = 0.57, + 0.13 = 0.70, + 0.10 = 0.80, + 0.07 = 0.87,
    # + 0.06 = 0.93, + 0.06 = 0.99 (next 1.05 > 1).
    assert checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(200) == [0, 44, 82, 114, 140, 160, 174, 186, 198]
    assert checkpoints(1) == [0, 1]


def test_apgd_reaches_the_closed_form_optimum_of_a_linear_model():
    # Two classes, logits W x: CE of the true class grows with (w_wrong - w_true) . x, so the
    # L-inf optimum in the box is x + eps * sign(w_wrong - w_true), clipped to [0, 1].
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(2, 12, generator=gen)
    x = torch.rand(5, 12, generator=gen) * 0.8 + 0.1
    x[0, :3] = torch.tensor([0.0, 1.0, 0.97])  # at / near the box edges: clipping matters
    y = torch.tensor([0, 1, 0, 1, 1])
    eps = 0.05
    direction = (w[1 - y] - w[y]).sign()
    expected = (x + eps * direction).clamp(0, 1)
    x_adv = apgd(_linear(w), x, y, eps, steps=10, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(x_adv, expected, atol=1e-6)


def test_apgd_is_at_least_as_strong_as_pgd_and_stays_in_the_ball(trained, held_out):
    x, y = held_out
    with noise(trained, False):
        kw = dict(eps=0.1, steps=10, noise=False, generator=torch.Generator().manual_seed(0))
        r_pgd = robustness(trained, (x, y), attack="pgd", **kw)
        r_apgd = robustness(trained, (x, y), attack="apgd", **kw)
        x_adv = apgd(trained, x[:8], y[:8], 0.1, steps=5, restarts=2)
    assert r_apgd.attack is Attack.APGD and r_apgd.step_size == pytest.approx(0.2)
    assert r_apgd.robust_acc <= r_pgd.robust_acc + 2 / len(y)
    assert r_apgd.robust_acc < r_apgd.clean_acc
    assert (x_adv - x[:8]).abs().max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert r_apgd.describe().startswith("APGD-10 (eps 0.1, 1 restart), noise off:")


def test_apgd_with_eot_on_the_noisy_model(trained, held_out):
    x, y = held_out
    x_adv = apgd(trained, x[:6], y[:6], 0.1, steps=3, eot_samples=2,
                 generator=torch.Generator().manual_seed(0))
    assert x_adv.shape == x[:6].shape and (x_adv - x[:6]).abs().max() <= 0.1 + 1e-6
    assert all(p.grad is None for p in trained.parameters())


# ----------------------------------------------------------------------------- surrogate

def test_attacker_surrogate_swaps_and_restores_exactly(trained, held_out):
    x, y = held_out
    before = [node.params for node in noisy_nodes(trained)]
    assert all(p.surrogate is Surrogate.ERF for p in before)
    with noise(trained, False):
        g_train = make_attack("fgsm", eps=0.1).run(trained, x[:4], y[:4])
        with attacker_surrogate(trained, "atan", alpha=2.0):
            assert all((n.params.surrogate, n.params.alpha) == (Surrogate.ATAN, 2.0)
                       for n in noisy_nodes(trained))
        with pytest.raises(RuntimeError, match="boom"):
            with attacker_surrogate(trained, "triangle"):
                raise RuntimeError("boom")
        g_atan = make_attack("fgsm", eps=0.1, surrogate="atan").run(trained, x[:4], y[:4])
    assert [node.params for node in noisy_nodes(trained)] == before
    assert all(a is b for a, b in zip((n.params for n in noisy_nodes(trained)), before))
    assert not torch.equal(g_train, g_atan)  # the attacker's gradient differs
    with pytest.raises(ValueError, match="^surrogate: expected one of"):
        attacker_surrogate(trained, "gauss").__enter__()
    with pytest.raises(ValueError, match="^model: expected NoisyLIFNode"):
        attacker_surrogate(nn.Linear(2, 2), "atan").__enter__()


def test_surrogate_and_noise_off_rows_say_so(trained, held_out):
    r = robustness(trained, held_out, attack="pgd", eps=0.1, steps=2, noise=False,
                   surrogate="atan", max_examples=8)
    assert r.noise_on is False and r.surrogate is Surrogate.ATAN
    assert ", atan surrogate, noise off:" in r.describe()
    assert r.as_metrics()["eval_surrogate"] == "atan"
    assert all(n.params.surrogate is Surrogate.ERF for n in noisy_nodes(trained))


# ----------------------------------------------------------------------------- transfer

def _plain(seed: int = 3) -> nn.Module:
    return build("digits_cnn", 10, timesteps=2, mean=[0.3], std=[0.4],
                 neuron=NeuronSettings(noise_scale=0.0),
                 generator=torch.Generator().manual_seed(seed)).eval()


def test_transfer_equals_the_target_on_source_pgd_examples(trained, held_out):
    x, y = held_out
    source = _plain()
    with noise(trained, False):
        with torch.no_grad():
            ok = trained(x).argmax(1) == y
        x_adv = transfer(source, trained, x[ok], y[ok], 0.2, steps=3,
                         generator=torch.Generator().manual_seed(0))
        by_hand = pgd(source, x[ok], y[ok], 0.2, steps=3,
                      generator=torch.Generator().manual_seed(0))
        assert torch.equal(x_adv, by_hand)
        with torch.no_grad():
            robust = int((trained(by_hand).argmax(1) == y[ok]).sum()) / len(y)
        r = robustness(trained, (x, y), attack="pgd", eps=0.2, steps=3, source=source,
                       source_label="plain.pt", generator=torch.Generator().manual_seed(0))
    assert r.robust_acc == pytest.approx(robust) and r.clean_acc == int(ok.sum()) / len(y)
    assert r.source == "plain.pt" and r.eot_samples == 1  # the plain source is deterministic
    assert r.describe().startswith("transfer from plain.pt: PGD-3")
    with pytest.raises(ValueError, match="^source_model: expected 10 classes"):
        transfer(_linear(torch.ones(3, 64)), trained, x[:2], y[:2], 0.1)


# ----------------------------------------------------------------------------- CLI

def _save(model: nn.Module, path, noise_scale: float) -> str:
    config = TrainConfig(dataset="digits", timesteps=2, noise_scale=noise_scale)
    return str(checkpoint.save(path, {"model": model.state_dict(), "config": config.to_dict(),
                                      "num_classes": 10, "mean": [0.3], "std": [0.4]}))


def test_cli_prints_one_table_row_per_attack(trained, tmp_path, capsys):
    target = _save(trained, tmp_path / "tgo.pt", 0.2)
    source = _save(_plain(), tmp_path / "plain.pt", 0.0)
    args = ["evaluate", target, "--attacks", "pgd,apgd,transfer", "--transfer-source", source,
            "--steps", "2", "--eps", "0.1", "--max-examples", "12", "--noise", "off",
            "--surrogate", "atan"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith("clean accuracy:")
    header, *rows = lines[2:]
    assert header.split()[:4] == ["attack", "eps", "steps", "EOT"]
    assert len(rows) == 3
    assert rows[0].startswith("PGD-2") and rows[1].startswith("APGD-2")
    assert rows[2].startswith(f"transfer from {source}: PGD-2")
    assert all(" off " in row and " atan " in row for row in rows)
    assert main(args + ["--json"]) == 0
    table = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [t["eval_attack"] for t in table] == ["pgd", "apgd", "pgd"]
    assert table[2]["eval_source"] == source and "eval_source" not in table[0]
    assert all(t["eval_noise"] is False and t["eval_surrogate"] == "atan" for t in table)


@pytest.mark.parametrize("extra, message", [
    (["--attacks", "pgd,autoattack"], "error: attacks: expected a comma-separated list of "
                                      "'fgsm', 'pgd', 'apgd', 'transfer', got 'pgd,autoattack'"),
    (["--attacks", "pgd,transfer"], "error: transfer-source: expected a plain checkpoint"),
])
def test_cli_errors_clearly(tmp_path, capsys, extra, message):
    # Checked before the checkpoint is read: the path need not exist.
    assert main(["evaluate", str(tmp_path / "never.pt"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err
    assert ("--transfer-source" in err) == ("transfer" in extra[1])
