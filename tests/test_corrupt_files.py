"""Corrupt and foreign files: every file the project reads back fails with a clear error.

Real files, one reader at a time: a foreign text file, an empty file, random bytes, a real
checkpoint cut short at several lengths (what a crash mid-write leaves), a pickle of other
objects, a torch.save of something that is no tgo checkpoint. For each reader:

* ``tgo.checkpoint.load`` / ``load_model`` and ``tgo evaluate``: ValueError / exit 2 naming
  the file and what was expected, no traceback;
* ``tgo.train.fit(resume_from=...)``: the same ValueError;
* a logged model's ``tgo-checkpoint.pt`` in the MLflow store (``tgo pick`` verifies it): exit 2
  naming the model URI and the file;
* ``deploy.yaml`` (``tune.deploy.read_deploy``): ValueError naming the file;
* the saved spec ``sweep_spec.yaml`` under ``tgo sweep resume`` and ``tgo sweep sync``: exit 2
  naming the file, before Ray or MLflow start;
* the journal ``mlflow_pending.jsonl``: a torn or damaged line is skipped with a warning
  naming file and line; every other op is still read, and the line is kept
  (``mlflow_damaged.jsonl``); a damaged ``mlflow_sweep.json``: exit 2 from ``tgo sweep sync``;
* a trial checkpoint cut short before ``tgo sweep resume``: the trial continues from its
  older checkpoint, or from scratch when there is none, and the log says which
  (``run_trial``, and a real sweep through ``tgo sweep run|resume`` in the slow test).

The hypothesis tests feed random bytes and truncations of valid files to every reader:
each either reads the file or raises its documented error, never anything else.

Run: bash .ci/loopback .venv/bin/python -m pytest tests/test_corrupt_files.py -q
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgo import checkpoint
from tgo.config import TrainConfig
from tgo.train import fit, load_resume_state
from tune.tracking import journal
from tune.deploy import read_deploy
from tune.spec import SpecError, SweepSpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
TGO = [sys.executable, "-m", "tune.cli"]   # what the `tgo` console script runs
FUZZ = settings(max_examples=int(os.environ.get("TGO_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
SETTINGS = dict(epochs=1, val_subset=32, val_steps=1, batch_size=128, lr=5e-3)
PASSWD = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


def _run(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*TGO, *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, **kw)


def _assert_clear(proc: subprocess.CompletedProcess, *names: str) -> str:
    """Exit 2, one ``error: ...`` message naming ``names``, no traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    assert proc.stderr.startswith("error: "), proc.stderr
    for name in names:
        assert name in proc.stderr, proc.stderr
    return proc.stderr


@pytest.fixture(scope="module")
def trained():
    """A real one-epoch digits run (its FitResult)."""
    torch.manual_seed(0)
    return fit(TrainConfig(**SETTINGS))


@pytest.fixture(scope="module")
def good(trained, tmp_path_factory) -> Path:
    """A real checkpoint.pt as ``tgo train`` writes it."""
    return trained.state.save(tmp_path_factory.mktemp("good"))


def _cuts(size: int) -> list[int]:
    """Lengths a crash mid-write can leave: the header, a few blocks, most of it."""
    return [1, 4, 30, 512, size // 3, size // 2, size - 100, size - 22, size - 1]


def _bad_checkpoints(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the message must say it holds)."""
    data = good.read_bytes()
    files: dict[str, tuple[bytes | object, str]] = {
        "passwd": (PASSWD, "not a zip/pickle file"),
        "empty": (b"", "an empty file"),
        "random": (random.Random(0).randbytes(4096), "not a zip/pickle file"),
        "pickle-garbage": (b"\x80\x02garbage", "a pickle cut short or damaged"),
    }
    for cut in _cuts(len(data)):
        files[f"cut-{cut}"] = (data[:cut], "zip archive cut short" if cut >= 4
                               else "not a zip/pickle file")
    files["objects"] = ({"a": argparse.Namespace()}, "refused")
    files["list"] = ([1, 2], "(a list)")
    files["foreign-dict"] = ({"weights": torch.ones(2)}, "expected the keys")
    out = {}
    for name, (content, says) in files.items():
        path = folder / f"{name}.pt"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            torch.save(content, path)
        out[name] = (path, says)
    return out


@pytest.fixture(scope="module")
def bad(good, tmp_path_factory):
    return _bad_checkpoints(tmp_path_factory.mktemp("bad"), good)


# ----------------------------------------------------------------------------- checkpoints


def test_the_good_checkpoint_loads(good):
    model, config = checkpoint.load_model(good)
    assert config.epochs == 1 and not model.training
    assert load_resume_state(good)["epoch"] == 1


@pytest.mark.parametrize("name", ["passwd", "empty", "random", "pickle-garbage", "objects",
                                  "list", "foreign-dict", *[f"cut{i}" for i in range(9)]])
def test_load_model_names_the_file_and_what_it_holds(bad, good, name):
    if name.startswith("cut"):
        name = f"cut-{_cuts(good.stat().st_size)[int(name[3:])]}"
    path, says = bad[name]
    with pytest.raises(ValueError) as err:
        checkpoint.load_model(path)
    message = str(err.value)
    assert str(path) in message and says in message, message
    assert message.startswith("checkpoint: ")


@pytest.mark.parametrize("name", ["passwd", "empty", "random", "list", "cut-half"])
def test_fit_refuses_to_resume_from_a_bad_checkpoint(bad, good, name):
    if name == "cut-half":
        name = f"cut-{good.stat().st_size // 2}"
    path, _ = bad[name]
    with pytest.raises(ValueError, match=str(path).replace(".", r"\.")):
        fit(TrainConfig(**SETTINGS), resume_from=path)


def test_resume_state_needs_the_optimizer_and_rng(tmp_path, good):
    payload = torch.load(good, weights_only=True)
    del payload["optimizer"], payload["rng"]
    path = checkpoint.save(tmp_path / "partial.pt", payload)
    with pytest.raises(ValueError, match=r"missing \['optimizer', 'rng'\]"):
        load_resume_state(path)
    checkpoint.load_model(path)   # still a model: evaluate can use it


@pytest.mark.parametrize("name, says", [
    ("passwd", "(not a zip/pickle file)"),
    ("empty", "(an empty file)"),
    ("random", "(not a zip/pickle file)"),
    ("cut-half", "zip archive cut short or damaged"),
    ("cut-end", "zip archive cut short or damaged"),
])
def test_tgo_evaluate_exits_2_naming_the_file(bad, good, name, says):
    size = good.stat().st_size
    name = {"cut-half": f"cut-{size // 2}", "cut-end": f"cut-{size - 22}"}.get(name, name)
    path, _ = bad[name]
    err = _assert_clear(_run(["evaluate", path]), str(path), says)
    assert "expected a checkpoint written by tgo (torch.save of a dict)" in err


def test_tgo_evaluate_on_a_foreign_text_file(tmp_path):
    """The case of the issue: a text file such as /etc/passwd (a copy: no fixed paths)."""
    path = tmp_path / "passwd"
    path.write_bytes(PASSWD)
    err = _assert_clear(_run(["evaluate", path]))
    assert err.strip() == (f"error: checkpoint: expected a checkpoint written by tgo "
                           f"(torch.save of a dict), got {path} (not a zip/pickle file)")


# ----------------------------------------------------------------------------- the registry


@pytest.fixture(scope="module")
def store(trained, good, tmp_path_factory):
    """(tracking URI, model URI, stored tgo-checkpoint.pt) of a one-member sweep front."""
    from tune.tracking.front_models import SAFE_CHECKPOINT
    from tune.tracking import SweepTracker

    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        tracker = SweepTracker(uri, "corrupt", "corrupt", "h", {"space": {}}, git_commit="abc",
                               objectives=[("clean_acc", "max")],
                               artifact_location=(root / "artifacts").as_uri())
        tracker.start()
        run = tracker.child_run("t_a", trained.config.to_dict())
        tracker.finish_trial(run, {"clean_acc": 0.5, "robust_acc": 0.1, "epoch": 1},
                             "finished")
        tracker.update_front(tracker.finished_records())
        model_uri = tracker.log_front_model(run, trained.model, trained.config.to_dict(),
                                            checkpoint=good)
        tracker.finish()
    stored = sorted((root / "artifacts").rglob(SAFE_CHECKPOINT))
    assert len(stored) == 1
    return uri, model_uri, stored[0]


@pytest.mark.parametrize("cut", ["empty", "half", "passwd"])
def test_a_damaged_registry_checkpoint_is_named_with_its_model(store, cut, monkeypatch,
                                                              tmp_path):
    from tune.deploy import load_model

    uri, model_uri, stored = store
    saved = stored.read_bytes()
    content = {"empty": b"", "half": saved[:len(saved) // 2], "passwd": PASSWD}[cut]
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        stored.write_bytes(content)
        with pytest.raises(ValueError) as err:
            load_model(model_uri, uri)
        message = str(err.value)
        assert model_uri in message and "tgo-checkpoint.pt" in message
        assert "expected a checkpoint written by tgo" in message
        if cut == "half":   # tgo pick verifies the model it picked: exit 2, no traceback
            proc = _run(["pick", "corrupt", "--tracking-uri", uri, "--experiment", "corrupt",
                         "--maximize", "clean_acc", "--out", tmp_path / "deploy.yaml"],
                        env={**os.environ, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})
            _assert_clear(proc, model_uri, "tgo-checkpoint.pt", "zip archive cut short")
            assert not (tmp_path / "deploy.yaml").exists()
    finally:
        stored.write_bytes(saved)
    assert isinstance(load_model(model_uri, uri), torch.nn.Module)


# ----------------------------------------------------------------------------- deploy.yaml


def _deploy_text() -> str:
    doc = {"model_uri": "models:/digits-snn@deploy", "registered": None,
           "metrics": {"clean_acc": 0.9}, "sweep": {"name": "s", "tracking_uri": "sqlite:///x"},
           "config": TrainConfig(**SETTINGS).to_dict()}
    return "# written by tgo pick\n" + yaml.safe_dump(doc, sort_keys=False)


def test_read_deploy_round_trip(tmp_path):
    path = tmp_path / "deploy.yaml"
    path.write_text(_deploy_text())
    doc = read_deploy(path)
    assert doc["config"] == TrainConfig(**SETTINGS)
    assert doc["model_uri"] == "models:/digits-snn@deploy"


@pytest.mark.parametrize("content, says", [
    (b"", "an empty file"),
    (PASSWD, "a YAML str"),
    (random.Random(1).randbytes(300), "not UTF-8 YAML"),
    (b"model_uri: [unclosed", "not UTF-8 YAML"),
    (b"- a\n- b\n", "a YAML list"),
    ("cut", "missing"),
    (b"model_uri: 3\nconfig: {}\nsweep: {tracking_uri: x}\n", "model_uri, sweep.tracking_uri"),
    (b"model_uri: m\nconfig: {epochs: -1}\nsweep: {tracking_uri: x}\n", "TrainConfig"),
    (b"[" * 5000, "not UTF-8 YAML"),
])
def test_read_deploy_names_the_file(tmp_path, content, says):
    path = tmp_path / "deploy.yaml"
    text = _deploy_text().encode()
    path.write_bytes(text[:text.index(b"\nsweep:")] if content == "cut" else content)
    with pytest.raises(ValueError) as err:
        read_deploy(path)
    assert str(path) in str(err.value) and says in str(err.value), str(err.value)
    assert str(err.value).startswith("deploy: expected")


# ----------------------------------------------------------------------------- the saved spec


def _sweep_folder(tmp_path: Path, spec_bytes: bytes) -> Path:
    folder = tmp_path / "runs" / "digits-quick"
    folder.mkdir(parents=True)
    (folder / "sweep_spec.yaml").write_bytes(spec_bytes)
    return folder


def _saved_spec(tmp_path: Path) -> bytes:
    """The spec as the runner saves it (model_dump), stores pointed into tmp_path."""
    data = yaml.safe_load((ROOT / "examples" / "digits-quick.yaml").read_text())
    data["mlflow"] = {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}
    data["storage_path"] = str(tmp_path / "runs")
    spec = SweepSpec.from_dict(data)
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False).encode()


@pytest.mark.parametrize("kind", ["passwd", "empty", "random", "cut", "deep"])
@pytest.mark.parametrize("command", ["resume", "sync"])
def test_sweep_resume_and_sync_on_a_corrupt_saved_spec_exit_2(tmp_path, kind, command):
    saved = _saved_spec(tmp_path)
    content = {"passwd": PASSWD, "empty": b"", "random": random.Random(2).randbytes(500),
               "cut": saved[:saved.index(b"\nepochs:")], "deep": b"[" * 20000}[kind]
    folder = _sweep_folder(tmp_path, content)
    if command == "sync":
        journal.write_sweep_info(folder, {"parent_run_id": "abc"})
    with pytest.raises(SpecError):   # precondition: the file really is invalid
        load_spec(folder / "sweep_spec.yaml")
    proc = _run(["sweep", command, folder])
    _assert_clear(proc, str(folder / "sweep_spec.yaml"))
    assert not (tmp_path / "mlflow.db").exists()   # nothing started


# ----------------------------------------------------------------------------- the journal


def _ops(n: int) -> list[dict]:
    return [{"op": "result", "trial_id": "t1", "result": {"epoch": i, "acc": 0.5}}
            for i in range(1, n + 1)]


def test_a_torn_last_line_loses_no_earlier_line(tmp_path, caplog):
    for op in _ops(3):
        journal.append(tmp_path, op)
    path = tmp_path / journal.PENDING_FILE
    whole = path.read_bytes()
    with open(path, "ab") as out:
        out.write(json.dumps(_ops(4)[-1]).encode()[:17])   # the driver died mid-append
    with caplog.at_level(logging.WARNING, logger="tune.tracking.journal"):
        assert [op["result"]["epoch"] for op in journal.read(tmp_path)] == [1, 2, 3]
    assert f"skipped line 4 of {path}" in caplog.text and "invalid JSON" in caplog.text
    journal.append(tmp_path, _ops(5)[-1])   # the resumed sweep goes on appending
    assert [op["result"]["epoch"] for op in journal.read(tmp_path)] == [1, 2, 3, 5]
    assert path.read_bytes().startswith(whole)


@pytest.mark.parametrize("damage, says", [
    (b"not json at all", "invalid JSON"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b"[1, 2, 3]", "a JSON list without an 'op'"),
    (b'{"trial_id": "t1"}', "a JSON dict without an 'op'"),
    (b'{"op": "result", "trial_id": "t1", "resu', "invalid JSON"),
])
def test_a_damaged_middle_line_is_skipped_named_and_kept(tmp_path, caplog, damage, says):
    ops = _ops(4)
    for op in ops[:2]:
        journal.append(tmp_path, op)
    path = tmp_path / journal.PENDING_FILE
    with open(path, "ab") as out:
        out.write(damage + b"\n")
    for op in ops[2:]:
        journal.append(tmp_path, op)
    before = path.read_bytes().splitlines()
    with caplog.at_level(logging.WARNING, logger="tune.tracking.journal"):
        read = journal.read(tmp_path)
    assert [op["result"]["epoch"] for op in read] == [1, 2, 3, 4]
    assert f"skipped line 3 of {path}" in caplog.text and says in caplog.text, caplog.text
    journal.mark_synced(tmp_path, 1)   # the damaged line stays pending, in its place
    assert [op["result"]["epoch"] for op in journal.read(tmp_path)] == [2, 3, 4]
    assert path.read_bytes().splitlines()[1] == damage
    journal.mark_synced(tmp_path, 3)
    assert not path.exists()
    synced = (tmp_path / journal.SYNCED_FILE).read_bytes().splitlines()
    damaged = (tmp_path / journal.DAMAGED_FILE).read_bytes().splitlines()
    assert damaged == [damage] and sorted(synced + damaged) == sorted(before)   # nothing lost


def test_sync_replays_the_ops_around_a_damaged_journal_line(tmp_path, caplog):
    """``tgo sweep sync``'s replay on a real SQLite store: the damaged line is named in the
    log and kept; the ops before and after it reach MLflow."""
    from mlflow import MlflowClient

    from tune.tracking import make_tracker
    from tune.tracking.sync import sync_sweep

    folder = _sweep_folder(tmp_path, _saved_spec(tmp_path))
    spec = load_spec(folder / "sweep_spec.yaml")
    tracker = make_tracker(spec)
    tracker.start()
    journal.write_sweep_info(folder, {"parent_run_id": tracker.parent_run_id})
    trial = folder / "trial_1"
    journal.append(trial, {"op": "open", "trial_id": "t1", "config": {"margin": 0.5}})
    for epoch in (1, 2):
        if epoch == 2:
            with open(trial / journal.PENDING_FILE, "ab") as out:
                out.write(b'{"op": "result", "trial_id": "t1", "res\n')   # torn, then resumed
        journal.append(trial, {"op": "result", "trial_id": "t1", "result": {
            "epoch": epoch, "timestamp": 1700000000 + epoch, "val_clean_acc": 0.5 + epoch / 10,
            "ray_node_id": "n1", "train_config": {"margin": 0.5, "epochs": 2}}})
    with caplog.at_level(logging.WARNING, logger="tune.tracking.journal"):
        report = sync_sweep(folder)
    assert f"skipped line 3 of {trial / journal.PENDING_FILE}" in caplog.text
    assert report.ops == 3 and report.trials == ["t1"]
    client = MlflowClient(spec.mlflow.tracking_uri)
    child = client.search_runs([tracker.experiment_id],
                               filter_string="tags.`tgo.trial_id` = 't1'")[0]
    steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_clean_acc")]
    assert sorted(steps) == [1, 2]
    assert not (trial / journal.PENDING_FILE).exists()
    assert (trial / journal.DAMAGED_FILE).read_bytes() == \
        b'{"op": "result", "trial_id": "t1", "res\n'


@pytest.mark.parametrize("content, says", [
    (b"", "expected the JSON object"),
    (b'{"parent_run_id": "ab', "expected the JSON object"),
    (b"\xff\xfe", "expected the JSON object"),
    (b"[1]", "got a list"),
])
def test_a_damaged_sweep_record_stops_sync_with_exit_2(tmp_path, content, says):
    folder = _sweep_folder(tmp_path, _saved_spec(tmp_path))
    (folder / journal.SWEEP_FILE).write_bytes(content)
    with pytest.raises(ValueError, match=journal.SWEEP_FILE):
        journal.read_sweep_info(folder)
    err = _assert_clear(_run(["sweep", "sync", folder]), str(folder / journal.SWEEP_FILE))
    assert says in err
    assert not (tmp_path / "mlflow.db").exists()


# ----------------------------------------------------------------------------- trial resume


def _trial_spec(tmp_path: Path, epochs: int, **overrides) -> SweepSpec:
    data = {
        "name": "corrupt-trial", "dataset": "digits", "epochs": epochs,
        "train": {"batch_size": 128, "val_subset": 32, "val_steps": 1, "val_eot_samples": 1,
                  "lr": 5e-3},
        "space": {"margin": {"type": "uniform", "low": 0.3, "high": 0.8}},
        "objectives": {"clean_acc": "max", "robust_acc": "max"},
        "sampler": {"type": "random", "seed": 0}, "pruner": {"type": "none"},
        "num_samples": 1, "max_concurrent": 1, "max_failures": 0,
        "evaluation": {"attacks": ["fgsm"], "eps": 0.1, "eot_samples": 1,
                       "max_examples": 40},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "c"},
        "storage_path": str(tmp_path / "runs"),
    }
    data.update(overrides)
    return SweepSpec.from_dict(data)


@pytest.fixture
def fake_ray(monkeypatch):
    """run_trial without a Ray session: reports collected, the checkpoint given by the test."""
    import ray
    from ray import tune as raytune

    reported: list[dict] = []
    given: dict = {"checkpoint": None}
    monkeypatch.setattr(ray, "get_runtime_context",
                        lambda: argparse.Namespace(get_node_id=lambda: "node-1"))
    monkeypatch.setattr(raytune, "get_checkpoint", lambda: given["checkpoint"])
    monkeypatch.setattr(raytune, "report", lambda metrics, checkpoint=None:
                        reported.append(dict(metrics)))
    return given, reported


def _trial_checkpoints(tmp_path: Path, spec: SweepSpec, params: dict, epochs: int) -> list[Path]:
    """Ray's layout: <trial dir>/checkpoint_00000i holding checkpoint.pt after epoch i+1."""
    trial = tmp_path / "runs" / spec.name / "trial_0"
    folders = []

    def report(metrics, state):
        folder = trial / f"checkpoint_{state.epoch - 1:06d}"
        state.save(folder)
        folders.append(folder)

    fit(spec.train_config(params).replace(epochs=epochs), report)
    return folders


@pytest.mark.parametrize("older", [True, False], ids=["older-checkpoint", "from-scratch"])
def test_run_trial_skips_a_truncated_checkpoint(tmp_path, fake_ray, caplog, older):
    from ray import tune as raytune

    from tune.trainable import run_trial

    given, reported = fake_ray
    spec, params = _trial_spec(tmp_path, epochs=3), {"margin": 0.5}
    folders = _trial_checkpoints(tmp_path, spec, params, epochs=2)
    latest = folders[-1] / checkpoint.CHECKPOINT_FILE
    latest.write_bytes(latest.read_bytes()[:1000])   # the copy to storage died mid-way
    if not older:
        shutil.rmtree(folders[0])
    given["checkpoint"] = raytune.Checkpoint(str(folders[-1]))
    with caplog.at_level(logging.WARNING, logger="tune.trainable"):
        run_trial(params, spec)
    epochs = [r["epoch"] for r in reported]
    assert f"trial checkpoint {folders[-1]} cannot be resumed from" in caplog.text
    assert "zip archive cut short" in caplog.text
    if older:
        assert epochs == [2, 3]
        assert f"continues from its older checkpoint {folders[0]}" in caplog.text
    else:
        assert epochs == [1, 2, 3]
        assert "it restarts from scratch, epoch 1" in caplog.text
    assert reported[-1]["done_training"] is True and "clean_acc" in reported[-1]


def test_run_trial_measures_again_when_the_saved_final_is_damaged(tmp_path, fake_ray, caplog):
    from ray import tune as raytune

    from tune.trainable import FINAL_FILE, run_trial

    given, reported = fake_ray
    spec, params = _trial_spec(tmp_path, epochs=1), {"margin": 0.5}
    folder = _trial_checkpoints(tmp_path, spec, params, epochs=1)[-1]
    (folder / FINAL_FILE).write_bytes(b'{"clean_acc": 0.9')
    given["checkpoint"] = raytune.Checkpoint(str(folder))
    with caplog.at_level(logging.WARNING, logger="tune.trainable"):
        run_trial(params, spec)
    assert f"{folder / FINAL_FILE} cannot be read" in caplog.text
    assert len(reported) == 1 and reported[0]["done_training"] is True
    assert reported[0]["eval_attack"] == "fgsm"   # measured again, not the damaged record


@pytest.mark.slow
def test_sweep_resume_continues_a_trial_whose_checkpoint_was_cut_short(tmp_path):
    """A real sweep: the trial fails at epoch 3 (injected), its newest checkpoint is cut
    short, ``tgo sweep resume`` retrains from the older checkpoint and finishes."""
    spec = _trial_spec(tmp_path, epochs=3)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    fault = [{"when": {}, "epoch": 3, "fault": "raise"}]
    env = {**os.environ, "TGO_FAULT_INJECTION": json.dumps(fault),
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    first = _run(["sweep", "run", spec_path], env=env)
    assert "1 failed" in first.stdout, first.stdout + first.stderr
    sweep = tmp_path / "runs" / spec.name
    trials = [d for d in sweep.iterdir() if d.is_dir() and any(d.glob("checkpoint_*"))]
    assert len(trials) == 1
    kept = sorted(trials[0].glob("checkpoint_*"))
    assert [k.name for k in kept] == ["checkpoint_000000", "checkpoint_000001"]
    latest = kept[-1] / checkpoint.CHECKPOINT_FILE
    latest.write_bytes(latest.read_bytes()[:2000])
    env.pop("TGO_FAULT_INJECTION")
    second = _run(["sweep", "resume", sweep], env=env)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
    assert "Traceback" not in out.split("sweep 'corrupt-trial':")[-1]
    assert "cannot be resumed from" in out and "continues from its older checkpoint" in out
    assert "1 finished" in out and "0 failed" in out, out


# ----------------------------------------------------------------------------- fuzzing


@pytest.fixture(scope="module")
def valid_files(good, tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("valid")
    for op in _ops(3):
        journal.append(root, op)
    return {"checkpoint": good.read_bytes(), "spec": _saved_spec(root),
            "deploy": _deploy_text().encode(),
            "journal": (root / journal.PENDING_FILE).read_bytes()}


def _contents(kind: str):
    """Random bytes, or a valid file cut short, or a valid file with bytes overwritten."""
    @st.composite
    def build(draw, valid: dict[str, bytes]):
        data = valid[kind]
        how = draw(st.sampled_from(["random", "cut", "overwrite"]))
        if how == "random":
            return draw(st.binary(max_size=2048))
        if how == "cut":
            return data[:draw(st.integers(0, len(data)))]
        at = draw(st.integers(0, len(data) - 1))
        patch = draw(st.binary(min_size=1, max_size=16))
        return data[:at] + patch + data[at + len(patch):]
    return build


#: kind -> (file name, reader, the exception it raises, how its message starts)
_READERS = {"checkpoint": ("checkpoint.pt", checkpoint.load_model, ValueError, "checkpoint: "),
            "spec": ("sweep_spec.yaml", load_spec, SpecError, ""),
            "deploy": ("deploy.yaml", read_deploy, ValueError, "deploy: expected")}


@pytest.mark.parametrize("kind", sorted(_READERS))
@FUZZ
@given(data=st.data())
def test_fuzz_file_bytes(valid_files, tmp_path, kind, data):
    """Whatever the bytes, a reader returns or raises its own error naming the file."""
    name, reader, error, prefix = _READERS[kind]
    path = tmp_path / name
    path.write_bytes(data.draw(_contents(kind)(valid_files)))
    try:
        reader(path)
    except error as exc:
        assert str(path) in str(exc) and str(exc).startswith(prefix)


@FUZZ
@given(data=st.data())
def test_fuzz_journal_bytes(valid_files, tmp_path, data):
    """Whatever the bytes, read returns ops (dicts with an 'op'); every intact line of a
    valid journal is still read; mark_synced never loses a line."""
    content = data.draw(_contents("journal")(valid_files))
    folder = tmp_path / f"j{random.random()}"
    folder.mkdir()
    (folder / journal.PENDING_FILE).write_bytes(content)
    logging.getLogger("tune.tracking.journal").setLevel(logging.ERROR)
    try:
        ops = journal.read(folder)
    finally:
        logging.getLogger("tune.tracking.journal").setLevel(logging.NOTSET)
    assert all(isinstance(op, dict) and isinstance(op["op"], str) for op in ops)
    intact = [line for line in valid_files["journal"].splitlines()
              if line + b"\n" in content.splitlines(keepends=True)]
    assert len(ops) >= len(intact)
    lines = [line for line in content.splitlines() if line.strip()]
    journal.mark_synced(folder, len(ops))
    kept = []
    for name in (journal.SYNCED_FILE, journal.DAMAGED_FILE, journal.PENDING_FILE):
        if (folder / name).exists():
            kept += [line for line in (folder / name).read_bytes().splitlines() if line.strip()]
    assert sorted(kept) == sorted(lines)
    shutil.rmtree(folder)
