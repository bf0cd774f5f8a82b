"""Versions a sweep is saved under: recorded beside Ray's results and on the MLflow parent
run; `tgo sweep resume` under other versions resumes or refuses before touching anything."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tune import versions
from tune.tracking import SweepTracker

ROOT = Path(__file__).resolve().parents[1]


def _saved(folder: Path, **changes: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    versions.write(folder)
    data = json.loads((folder / versions.VERSIONS_FILE).read_text())
    data.update(changes)
    (folder / versions.VERSIONS_FILE).write_text(json.dumps(data))
    return folder


def test_installed_versions_are_the_packages_whose_state_a_sweep_saves():
    found = versions.installed()
    assert set(found) == {"ray", "optuna", "mlflow", "torch", "tgo-sweep"}
    import optuna
    import ray
    assert found["optuna"] == optuna.__version__ and found["ray"] == ray.__version__
    assert versions.tags()["tgo.version.optuna"] == optuna.__version__


def test_same_versions_resume_silently(tmp_path):
    assert versions.check_resumable(_saved(tmp_path)) == {}


def test_other_optuna_torch_mlflow_resume_and_say_so(tmp_path, caplog):
    now = versions.installed()
    folder = _saved(tmp_path, optuna="5.0.0", torch="2.9.1", mlflow="3.0.0")
    with caplog.at_level(logging.INFO, logger="tune.versions"):
        differ = versions.check_resumable(folder)
    assert differ == {"optuna": ("5.0.0", now["optuna"]), "torch": ("2.9.1", now["torch"]),
                      "mlflow": ("3.0.0", now["mlflow"])}
    assert f"resuming under optuna {now['optuna']} (saved under 5.0.0)" in caplog.text


@pytest.mark.parametrize("package,saved,command", [
    ("ray", "2.59.0", ".venv/bin/pip install 'ray[tune,default]==2.59.0'"),
    ("tgo-sweep", "0.0.9", "check out the tgo-sweep release 0.0.9"),
])
def test_other_ray_or_tgo_sweep_is_refused_with_both_versions_and_the_fix(
        tmp_path, package, saved, command):
    folder = _saved(tmp_path, **{package: saved})
    with pytest.raises(versions.VersionMismatch) as info:
        versions.check_resumable(folder)
    message = str(info.value)
    assert f"{package} {saved} (installed: {versions.installed()[package]})" in message
    assert command in message and "nothing was changed" in message


def test_a_corrupt_versions_file_is_a_clear_error(tmp_path):
    (tmp_path / versions.VERSIONS_FILE).write_bytes(b"\x00\xff{not json")
    with pytest.raises(versions.VersionMismatch, match="sweep_versions.json: expected"):
        versions.check_resumable(tmp_path)
    (tmp_path / versions.VERSIONS_FILE).write_text('["ray", 2]')
    with pytest.raises(versions.VersionMismatch, match="package -> version"):
        versions.check_resumable(tmp_path)


def test_resume_cli_refuses_another_ray_before_touching_anything(tmp_path):
    experiment = tmp_path / "runs" / "old"
    _saved(experiment, ray="2.59.0")
    spec = {"name": "old", "dataset": "digits", "epochs": 2, "num_samples": 2,
            "space": {"margin_weight": {"type": "uniform", "low": 0.0, "high": 1.0}},
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
            "storage_path": str(tmp_path / "runs")}
    (experiment / "sweep_spec.yaml").write_text(yaml.safe_dump(spec))
    (experiment / "tuner.pkl").write_bytes(b"state Ray would unpickle")
    before = {p.name: p.stat().st_mtime_ns for p in experiment.iterdir()}
    done = subprocess.run([sys.executable, "-m", "tune.cli", "sweep", "resume", str(experiment)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"ray 2.59.0 (installed: {versions.installed()['ray']})" in done.stderr
    assert "pip install 'ray[tune,default]==2.59.0'" in done.stderr
    assert {p.name: p.stat().st_mtime_ns for p in experiment.iterdir()} == before
    assert not (tmp_path / "mlflow.db").exists()        # MLflow was not even opened


def test_parent_run_keeps_the_versions_it_started_under(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"

    def tracker():
        return SweepTracker(uri, "v", "v", "hash1", {}, git_commit="abc",
                            objectives=[("clean_acc", "max")],
                            artifact_location=(tmp_path / "a").as_uri())

    first = tracker()
    parent = first.start()
    client = MlflowClient(uri)
    tags = client.get_run(parent).data.tags
    assert {k: tags[k] for k in versions.tags()} == versions.tags()
    assert "tgo.resumed_under" not in tags
    client.set_tag(parent, "tgo.version.optuna", "5.0.0")   # as a 5.0 driver left it

    assert tracker().start() == parent                      # the resumed driver
    tags = client.get_run(parent).data.tags
    assert tags["tgo.version.optuna"] == "5.0.0"
    assert tags["tgo.resumed_under"] == \
        f"optuna {versions.installed()['optuna']} (was 5.0.0)"


def test_cluster_images_run_the_locked_ray():
    """The driver (make install), the KubeRay image and the AWS nodes run one Ray: the lock's.
    A refreshed lock with a new Ray must move the images with it."""
    import re

    lock = (ROOT / "requirements.lock").read_text()
    ray_version = re.search(r"^ray==(\S+)$", lock, re.M).group(1)
    found = []
    for path in sorted((ROOT / "cluster").rglob("*")):
        if path.is_file():
            text = path.read_text()
            found += [(path.name, v) for v in re.findall(r"rayproject/ray:([0-9.]+)-", text)]
            found += [(path.name, v) for v in re.findall(r"rayVersion:\s*['\"]?([0-9.]+)", text)]
            found += [(path.name, v) for v in re.findall(r"ray.__version__ == '([0-9.]+)'", text)]
    assert len(found) >= 5, found
    assert {v for _, v in found} == {ray_version}, found
