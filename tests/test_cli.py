"""The `tgo` command line: train writes its outputs, evaluate reads them, bad input exits 2."""

import json
import subprocess
import sys

import pytest

from tune.cli import main

TGO = [sys.executable, "-m", "tune.cli"]


def test_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--no-progress", "--out", str(out),
                 "--val-subset", "32", "--val-steps", "1", "--eval-steps", "2",
                 "--eval-max-examples", "50"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["epochs"] == 1 and len(result["history"]) == 1
    test = result["test"]
    assert test["eval_attack"] == "pgd" and test["eval_steps"] == 2 and test["eval_n"] == 50
    assert test["eval_eot_samples"] == 8 and test["eval_noise"] is True   # sigma > 0: EOT
    assert (out / "checkpoint.pt").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(out / "checkpoint.pt"), "--attack", "fgsm", "--eps", "0.1",
                 "--max-examples", "40", "--noise", "off", "--json"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads(printed.strip().splitlines()[-1])
    assert metrics["eval_attack"] == "fgsm" and metrics["eval_noise"] is False
    assert metrics["eval_eot_samples"] == 1 and metrics["eval_n"] == 40
    assert "robust accuracy" in printed and "FGSM (eps 0.1)" in printed


@pytest.mark.parametrize("args, field", [
    (["train", "--noise-scale", "-1"], "noise_scale"),
    (["train", "--margin", "0"], "margin"),
    (["train", "--timesteps", "0"], "timesteps"),
    (["train", "--eps-train", "1.5"], "eps_train"),
    (["train", "--dataset", "imagenet"], "dataset"),
    (["train", "--model", "resnet"], "model"),
    (["train", "--surrogate", "gauss"], "surrogate"),
    (["train", "--eval-attack", "cw", "--epochs", "1"], "attack"),
])
def test_bad_input_prints_the_field_and_exits_2_without_traceback(args, field):
    proc = subprocess.run(TGO + args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert field in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ")


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    proc = subprocess.run(TGO + ["evaluate", str(tmp_path / "nope.pt")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "nope.pt" in proc.stderr and "Traceback" not in proc.stderr
