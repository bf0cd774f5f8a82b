"""Training: reports, seeds, checkpoints and resume, regimes, divergence, imports."""

import subprocess
import sys

import pytest
import torch

from tgo import checkpoint
from tgo.config import TrainConfig
from tgo.train import TrainingDiverged, fit

# One short epoch on digits: ~1-3 s on 2 CPU cores.
FAST = dict(epochs=1, val_subset=32, val_steps=1, val_eot_samples=1, batch_size=128)
REPORT_KEYS = {"epoch", "train_loss", "task_loss", "guard_loss", "lambda", "val_clean_acc",
               "val_robust_acc", "val_spike_rate", "val_near_threshold"}


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_report_called_every_epoch_with_every_metric():
    seen = []
    result = fit(TrainConfig(**{**FAST, "epochs": 2}), lambda m, s: seen.append((m, s.epoch)))
    assert [e for _, e in seen] == [1, 2]
    for metrics, _ in seen:
        assert REPORT_KEYS <= set(metrics)
        for key in REPORT_KEYS - {"epoch"}:
            assert metrics[key] == metrics[key], key          # no NaN
        assert 0 <= metrics["val_robust_acc"] <= 1 and 0 <= metrics["val_near_threshold"] <= 1
    assert seen[-1][0]["guard_loss"] > 0 and seen[-1][0]["lambda"] > 0
    assert result.history == [m for m, _ in seen]


def test_seed_reproduces_a_cpu_run_exactly():
    cfg = TrainConfig(**FAST, seed=7)
    a, b = fit(cfg), fit(cfg)
    wa, wb = _weights(a.model), _weights(b.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.history == b.history
    c = fit(cfg.replace(seed=8))
    assert not torch.equal(_weights(c.model)["stem.0.weight"], wa["stem.0.weight"])


def test_checkpoint_loads_weights_only_and_resume_equals_uninterrupted(tmp_path):
    cfg = TrainConfig(**{**FAST, "epochs": 2})
    saved = {}

    def report(metrics, state):
        saved[state.epoch] = state.save(tmp_path / f"epoch{state.epoch}")

    full = fit(cfg, report)
    payload = torch.load(saved[1], weights_only=True)      # plain tensors and primitives only
    assert payload["epoch"] == 1 and payload["config"] == cfg.to_dict()
    resumed = fit(cfg, resume_from=saved[1])
    assert [m["epoch"] for m in resumed.history] == [2]
    assert resumed.history[0] == full.history[1]
    wf, wr = _weights(full.model), _weights(resumed.model)
    assert all(torch.equal(wf[k], wr[k]) for k in wf)
    model, config = checkpoint.load_model(saved[2])
    assert config == cfg and not model.training
    x = torch.rand(4, 1, 8, 8)
    full.model.eval()
    with torch.no_grad():
        from tgo.neurons import noise
        with noise(model, False), noise(full.model, False):
            assert torch.equal(model(x), full.model(x))


def test_resume_with_another_config_is_refused(tmp_path):
    cfg = TrainConfig(**FAST)
    path = fit(cfg).state.save(tmp_path)
    with pytest.raises(ValueError, match="resume_from"):
        fit(cfg.replace(margin_weight=0.1), resume_from=path)


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_adversarial_regime_trains_on_attacked_inputs(attack):
    cfg = TrainConfig(**FAST, noise_scale=0.0)
    clean = fit(cfg).history[0]
    adv = fit(cfg.replace(regime="adversarial", attack_train=attack, eps_train=0.2)).history[0]
    # Same seed, same batches: only the attacked inputs differ, and they are harder.
    assert adv["task_loss"] > clean["task_loss"]


def test_plain_bptt_has_no_noise_and_reports_guard_loss_without_using_it():
    result = fit(TrainConfig(**FAST, margin_weight=0.0, noise_scale=0.0))
    assert result.history[0]["lambda"] == 0.0 and result.history[0]["guard_loss"] > 0
    from tgo.neurons import is_stochastic
    assert not is_stochastic(result.model)


def test_divergence_is_reported_not_silently_trained_on():
    def poison(metrics, state):          # a weight turns NaN after epoch 1, as in a blow-up
        with torch.no_grad():
            state.model.stem[0].weight[0, 0, 0, 0] = float("nan")

    with pytest.raises(TrainingDiverged, match="epoch 2, batch 0"):
        fit(TrainConfig(**{**FAST, "epochs": 2}), poison)


def test_tgo_imports_without_ray_mlflow_or_the_sweep_layer():
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('ray', 'mlflow', 'optuna', 'tune'):\n"
            "            raise ImportError('blocked ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import tgo.train, tgo.evaluate, tgo.attacks, tgo.final_eval, tgo.cli\n"
            "print('ok', 'ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok False"
