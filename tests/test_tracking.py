"""MLflow tracking of sweeps against a real SQLite store in tmp_path (and real Ray, once).

Run inside the loopback namespace (the Ray and HTTP tests open sockets):
    unshare -n -p -f --mount-proc bash -c 'ip link set lo up; .venv/bin/python -m pytest \
        tests/test_tracking.py -q'
"""

from __future__ import annotations

import csv
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
import torch
import yaml
from mlflow import MlflowClient

from tune.pareto import Objective, hypervolume
from tune.tracking import SweepTracker, TrackingUnavailable, check_reachable

# MLflow's own SQLAlchemy models trigger this; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy")

OBJS = [Objective("robust_acc", "max"), Objective("spike_rate", "min")]
SPEC = {"name": "quick", "space": {"margin_weight": {"low": 0.0, "high": 1.0, "log": False},
                                   "timesteps": {"choices": [2, 4]}},
        "objectives": ["robust_acc:max", "spike_rate:min"], "note": "x" * 7000}


@pytest.fixture(autouse=True)
def _quiet_mlflow(monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture(scope="module")
def _database(tmp_path_factory):
    """One SQLite store for the module: creating its tables costs seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture
def store(_database, tmp_path, request):
    """(tracking URI, artifact root, experiment): an experiment of its own per test."""
    return _database, (tmp_path / "artifacts").as_uri(), request.node.name


def _tracker(store, **kw) -> SweepTracker:
    uri, artifacts, *experiment = store
    args = dict(experiment=experiment[0] if experiment else "tgo", sweep_name="quick",
                spec_hash="hash1", spec_dict=SPEC, git_commit="abc123", objectives=OBJS,
                artifact_location=artifacts)
    args.update(kw)
    return SweepTracker(uri, **args)


def _children(client: MlflowClient, tracker: SweepTracker) -> list:
    return client.search_runs([tracker.experiment_id],
                              f"tags.mlflow.parentRunId = '{tracker.parent_run_id}'")


def _finish(tracker, trial_id, robust, spike, **params):
    run = tracker.child_run(trial_id, {"margin_weight": 0.1, "timesteps": 4, **params})
    tracker.finish_trial(run, {"robust_acc": robust, "spike_rate": spike, "epoch": 2,
                               "eval_attack": "pgd", "eval_eps": 0.1, "eval_noise": True},
                         "finished")
    return run


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x).relu()


# ----------------------------------------------------------------------------- runs


def test_parent_and_nested_children(store, tmp_path):
    tracker = _tracker(store)
    parent = tracker.start()
    assert tracker.start() == parent  # idempotent
    client = MlflowClient(store[0])
    run = client.get_run(parent)
    tags, params = run.data.tags, run.data.params
    assert (tags["tgo.sweep_name"], tags["tgo.spec_hash"], tags["tgo.kind"],
            tags["tgo.git_commit"]) == ("quick", "hash1", "sweep", "abc123")
    assert params["space.margin_weight.low"] == "0.0"
    assert params["space.timesteps.choices"] == "[2, 4]"
    assert len(params["note"]) == 6000 and params["note"].endswith("...")
    spec_path = client.download_artifacts(parent, "spec.yaml", str(tmp_path))
    assert yaml.safe_load(Path(spec_path).read_text()) == SPEC
    assert tracker.url() is None  # not an http store

    a = tracker.child_run("aa_00000", {"margin_weight": 0.42, "margin": 0.5,
                                       "noise_scale": 0.1, "timesteps": 4,
                                       "dataset": "digits", "nested": {"k": 1}})
    b = tracker.child_run("bb_00001", {"margin_weight": 0.1})
    kids = _children(client, tracker)
    assert {r.info.run_id for r in kids} == {a, b}
    child = client.get_run(a)
    assert child.info.run_name == "trial_aa_00000_lam0.42_d0.50_s0.10_T4"
    assert child.data.tags["tgo.trial_id"] == "aa_00000"
    assert child.data.tags["mlflow.parentRunId"] == parent
    assert child.data.params == {"margin_weight": "0.42", "margin": "0.5",
                                 "noise_scale": "0.1", "timesteps": "4",
                                 "dataset": "digits", "nested.k": "1"}


def test_child_run_is_idempotent_across_trackers(store):
    tracker = _tracker(store)
    tracker.start()
    run = tracker.child_run("aa_00000", {"margin_weight": 0.4})
    assert tracker.child_run("aa_00000", {"margin_weight": 0.4}) == run
    tracker.finish_trial(run, {}, "failed", "ValueError: boom")
    # a retried trial in a new driver process: same parent, same child, running again,
    # with the params it did not have yet
    again = _tracker(store)
    assert again.start() == tracker.parent_run_id
    assert again.child_run("aa_00000", {"margin_weight": 0.4, "seed": 3}) == run
    client = MlflowClient(store[0])
    assert len(_children(client, tracker)) == 1
    got = client.get_run(run)
    assert got.info.status == "RUNNING" and got.data.tags["status"] == "running"
    assert got.data.params == {"margin_weight": "0.4", "seed": "3"}


def test_a_resumed_sweep_closes_lost_trials_and_tags_orphans(store):
    """Children of a killed driver that Ray's restored state does not know: one still
    RUNNING is closed as lost; one that had ended keeps its record, tagged tgo.orphan, off
    the front; a trial Ray knows is left alone."""
    from tune.tracking.callback import MlflowSweepCallback

    earlier = _tracker(store)
    earlier.start()
    running = earlier.child_run("aa_00000", {})
    ended = earlier.child_run("bb_00001", {})
    earlier.finish_trial(ended, {"epoch": 2, "robust_acc": 0.4, "spike_rate": 0.1},
                         "finished")
    known = earlier.child_run("cc_00002", {})

    resumed = _tracker(store)
    callback = MlflowSweepCallback(resumed)
    callback.setup()
    callback.on_step_begin(iteration=0, trials=[SimpleNamespace(trial_id="cc_00002")])
    client = MlflowClient(store[0])
    lost = client.get_run(running)
    assert lost.info.status == "KILLED" and lost.data.tags["status"].startswith("stopped: lost")
    orphan = client.get_run(ended)
    assert orphan.info.status == "FINISHED" and "tgo.orphan" in orphan.data.tags
    assert orphan.data.tags["pareto"] == "false"
    assert client.get_run(known).info.status == "RUNNING"
    assert "tgo.orphan" not in client.get_run(known).data.tags
    assert resumed.finished_records() == []


def test_an_epoch_is_never_logged_twice_per_run_and_metric(store):
    """A trial Ray reruns from an older checkpoint repeats epochs with other values (new
    timestamps), in the same driver or in a resumed one: each (run, metric, step) keeps its
    first point."""
    client = MlflowClient(store[0])
    tracker = _tracker(store)
    tracker.start()
    run = tracker.child_run("aa_00000", {})
    for epoch in (1, 2, 3):
        tracker.log_epoch(run, {"val_clean_acc": 0.1 * epoch}, epoch)
    for epoch in (2, 3, 4):       # a retry from the epoch-1 checkpoint, same driver
        tracker.log_epoch(run, {"val_clean_acc": 0.5 + 0.1 * epoch, "lr": 0.01}, epoch)

    resumed = _tracker(store)     # the driver died; a new one opens the same child run
    resumed.start()
    assert resumed.child_run("aa_00000", {}) == run
    for epoch in (3, 4, 5):
        resumed.log_epoch(run, {"val_clean_acc": 0.9, "lr": 0.02}, epoch)
    resumed.finish_trial(run, {"epoch": 5, "val_clean_acc": 0.9, "clean_acc": 0.8},
                         "finished")
    resumed.finish_trial(run, {"epoch": 5, "clean_acc": 0.7}, "finished")   # a replay

    def points(key):
        return [(m.step, round(m.value, 6)) for m in client.get_metric_history(run, key)]
    assert points("val_clean_acc") == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.9), (5, 0.9)]
    assert points("lr") == [(2, 0.01), (3, 0.01), (4, 0.01), (5, 0.02)]
    assert points("clean_acc") == [(5, 0.8)]


def test_log_epoch_and_finish_statuses(store):
    tracker = _tracker(store)
    tracker.start()
    client = MlflowClient(store[0])
    run = tracker.child_run("aa_00000", {})
    for epoch in (1, 2):
        tracker.log_epoch(run, {"val_robust_acc": 0.1 * epoch, "train_loss": float("nan"),
                                "note": "text", "flag": True, "n": 3}, epoch,
                          timestamp_ms=1000 * epoch)
    tracker.log_epoch(run, {"val_robust_acc": 0.2}, 2, timestamp_ms=2000)  # exact replay
    history = client.get_metric_history(run, "val_robust_acc")
    assert [(m.step, round(m.value, 6)) for m in history] == [(1, 0.1), (2, 0.2)]
    assert {"note", "flag"}.isdisjoint(client.get_run(run).data.metrics)
    assert [m.step for m in client.get_metric_history(run, "n")] == [1, 2]
    with pytest.raises(ValueError, match="epoch"):
        tracker.log_epoch(run, {"x": 1.0}, -1)

    tracker.finish_trial(run, {"robust_acc": 0.3, "spike_rate": 0.2, "epoch": 2,
                               "eval_attack": "pgd", "eval_eps": 0.1, "done_training": True},
                         "finished", checkpoint_path="/ckpt/a")
    got = client.get_run(run)
    assert got.info.status == "FINISHED" and got.data.tags["status"] == "finished"
    assert got.data.metrics["robust_acc"] == 0.3
    assert client.get_metric_history(run, "robust_acc")[0].step == 2
    assert (got.data.tags["eval_attack"], got.data.tags["eval_eps"]) == ("pgd", "0.1")
    assert got.data.tags["tgo.checkpoint"] == "/ckpt/a"

    pruned = tracker.child_run("bb_00001", {})
    tracker.finish_trial(pruned, {"epoch": 3}, "pruned", "at rung 1 (epoch 3)")
    failed = tracker.child_run("cc_00002", {})
    tracker.finish_trial(failed, {}, "failed", "ValueError: boom")
    assert client.get_run(pruned).info.status == "KILLED"
    assert client.get_run(pruned).data.tags["status"] == "pruned at rung 1 (epoch 3)"
    assert client.get_run(failed).info.status == "FAILED"
    assert client.get_run(failed).data.tags["status"] == "failed: ValueError: boom"
    with pytest.raises(ValueError, match="status: expected one of"):
        tracker.finish_trial(failed, {}, "done")
    # only the finished trial is a record of the front
    assert [r["trial_id"] for r in tracker.finished_records()] == ["aa_00000"]


# ----------------------------------------------------------------------------- the front

POINTS = {"t0": (0.50, 0.20), "t1": (0.40, 0.30), "t2": (0.60, 0.40), "t3": (0.30, 0.10),
          "t4": (0.55, 0.45)}  # front: t0, t2, t3; hypervolume(ref 0, 1) = 0.36+0.10+0.03


def test_update_front_writes_artifacts_and_hypervolume(store, tmp_path):
    tracker = _tracker(store)
    parent = tracker.start()
    client = MlflowClient(store[0])
    for n, (tid, (robust, spike)) in enumerate(POINTS.items(), start=1):
        _finish(tracker, tid, robust, spike, margin_weight=0.1 * n)
        records = tracker.finished_records()
        assert len(records) == n
        front = tracker.update_front(records)
    assert sorted(r["trial_id"] for r in front) == ["t0", "t2", "t3"]

    hv = client.get_metric_history(parent, "hypervolume")
    assert [m.step for m in hv] == [1, 2, 3, 4, 5]
    prefixes = [list(POINTS.values())[:n] for n in range(1, 6)]
    assert [m.value for m in hv] == pytest.approx([hypervolume(p, OBJS) for p in prefixes])
    assert hv[-1].value == pytest.approx(0.49)

    out = tmp_path / "download"
    out.mkdir()
    names = {f.path for f in client.list_artifacts(parent)}
    assert {"pareto.csv", "pareto.json", "pareto.png", "pareto.html", "spec.yaml"} <= names
    doc = json.loads(Path(client.download_artifacts(parent, "pareto.json", str(out)))
                     .read_text())
    assert sorted(m["trial_id"] for m in doc["front"]) == ["t0", "t2", "t3"]
    assert doc["n_finished"] == 5 and doc["hypervolume"] == pytest.approx(0.49)
    assert doc["ranks"] == {"t0": 0, "t1": 1, "t2": 0, "t3": 0, "t4": 1}
    t2 = next(m for m in doc["front"] if m["trial_id"] == "t2")
    assert t2["objectives"] == {"robust_acc": 0.6, "spike_rate": 0.4}
    assert t2["eval"] == {"eval_attack": "pgd", "eval_eps": 0.1, "eval_noise": True}
    assert t2["config"]["margin_weight"] == pytest.approx(0.3) and t2["rank"] == 0
    with open(client.download_artifacts(parent, "pareto.csv", str(out))) as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["trial_id"] for r in rows) == ["t0", "t2", "t3"]
    assert {"robust_acc", "spike_rate", "eval_attack", "param.margin_weight"} <= set(rows[0])
    png = Path(client.download_artifacts(parent, "pareto.png", str(out))).read_bytes()
    assert png.startswith(b"\x89PNG")
    html = Path(client.download_artifacts(parent, "pareto.html", str(out))).read_text()
    assert "t2" in html and "plotly" in html.lower()


def test_pareto_tags_move_when_the_front_changes(store):
    tracker = _tracker(store)
    tracker.start()
    client = MlflowClient(store[0])
    a = _finish(tracker, "a", 0.5, 0.5)
    tracker.update_front(tracker.finished_records())
    assert (client.get_run(a).data.tags["pareto"], client.get_run(a).data.tags["pareto_rank"]) \
        == ("true", "0")
    b = _finish(tracker, "b", 0.6, 0.4)  # dominates a
    tracker.update_front(tracker.finished_records())
    assert (client.get_run(a).data.tags["pareto"], client.get_run(a).data.tags["pareto_rank"]) \
        == ("false", "1")
    assert client.get_run(b).data.tags["pareto"] == "true"
    # a fresh tracker (resumed driver) agrees and needs no cache
    again = _tracker(store)
    again.start()
    front = again.update_front(again.finished_records())
    assert [r["trial_id"] for r in front] == ["b"]
    assert client.get_run(a).data.tags["pareto"] == "false"
    with pytest.raises(ValueError, match="records\\[0\\]"):
        tracker.update_front([{"robust_acc": 1.0}])


def test_front_model_round_trip(store, tmp_path, monkeypatch):
    tracker = _tracker(store)
    tracker.start()
    run = _finish(tracker, "a", 0.5, 0.5)
    model = TinyNet().eval()
    config = {"margin_weight": 0.1, "timesteps": 4, "dataset": "digits"}
    uri = tracker.log_front_model(run, model, config)
    assert uri.startswith("models:/")
    assert tracker.log_front_model(run, TinyNet(), config) == uri  # logged once only
    client = MlflowClient(store[0])
    assert len(client.search_logged_models([tracker.experiment_id])) == 1
    assert client.get_run(run).data.tags["tgo.model_logged"] == "true"
    assert tracker.finished_records()[0]["model_logged"] is True

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store[0])
    loaded = mlflow.pytorch.load_model(f"runs:/{run}/model")
    x = torch.randn(5, 3)
    assert torch.equal(loaded(x), model(x))
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run}/model",
                                                     dst_path=str(tmp_path / "m")))
    assert json.loads((local / "config.json").read_text()) == config
    reqs = (local / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in reqs} >= {"torch", "spikingjelly", "cloudpickle"}
    assert (local / "code" / "tgo" / "config.py").is_file()
    assert not list(local.rglob("__pycache__"))
    run_config = client.download_artifacts(run, "config.json", str(tmp_path))
    assert json.loads(Path(run_config).read_text()) == config


def _real_checkpoint(folder: Path, seed: int, **changes):
    from tgo import checkpoint
    from tgo.config import TrainConfig

    config = TrainConfig(dataset="digits", timesteps=2, noise_scale=0.2, **changes)
    model = checkpoint.build_model(config, 10, [0.5], [0.25],
                                   generator=torch.Generator().manual_seed(seed)).eval()
    checkpoint.save(folder, {"model": model.state_dict(), "config": config.to_dict(),
                             "epoch": 2, "num_classes": 10, "in_shape": [1, 8, 8],
                             "mean": [0.5], "std": [0.25]})
    return model, config


def test_front_models_of_real_spiking_classifiers_after_a_resume(store, tmp_path,
                                                                  monkeypatch):
    """The production path: tgo.checkpoint.load_model gives (model, TrainConfig). Trial a
    finished before a restart without its model (known only by its checkpoint tag); when
    trial b completes, both front members get their models."""
    from ray import tune as raytune

    from tgo import checkpoint
    from tgo.neurons import noise
    from tune.tracking.callback import MlflowSweepCallback

    model_a, config_a = _real_checkpoint(tmp_path / "a", 0, margin_weight=0.3)
    model_b, config_b = _real_checkpoint(tmp_path / "b", 1, margin_weight=0.6)
    earlier = _tracker(store)
    earlier.start()
    run_a = earlier.child_run("aa_00000", config_a.to_dict())
    earlier.finish_trial(run_a, {"epoch": 2, "robust_acc": 0.4, "spike_rate": 0.1},
                         "finished", checkpoint_path=str(tmp_path / "a"))

    tracker = _tracker(store)
    callback = MlflowSweepCallback(tracker, load_model=checkpoint.load_model)
    callback.setup()
    trial_b = SimpleNamespace(
        trial_id="bb_00001", config=config_b.to_dict(),
        checkpoint=raytune.Checkpoint.from_directory(str(tmp_path / "b")),
        last_result={"epoch": 2, "robust_acc": 0.5, "spike_rate": 0.2, "eval_attack": "pgd",
                     "done_training": True})
    callback.on_trial_complete(iteration=1, trials=[trial_b], trial=trial_b)

    client = MlflowClient(store[0])
    run_b = tracker.child_run("bb_00001", {})
    assert client.get_run(run_b).data.tags["tgo.checkpoint"] == str(tmp_path / "b")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store[0])
    x = torch.rand(3, 1, 8, 8)
    for run, model, config in ((run_a, model_a, config_a), (run_b, model_b, config_b)):
        assert client.get_run(run).data.tags["tgo.model_logged"] == "true"
        loaded = mlflow.pytorch.load_model(f"runs:/{run}/model")
        assert type(loaded) is type(model)
        with noise(model, False), noise(loaded, False):
            assert torch.equal(loaded(x), model(x))
        saved = client.download_artifacts(run, "config.json", str(tmp_path / run))
        assert json.loads(Path(saved).read_text()) == json.loads(json.dumps(config.to_dict()))


def test_resumed_sweep_reuses_its_parent(store):
    first = _tracker(store)
    parent = first.start()
    first.finish("KILLED")  # interrupted
    assert _tracker(store).start() == parent
    assert MlflowClient(store[0]).get_run(parent).info.status == "RUNNING"
    assert _tracker(store, spec_hash="hash2").start() != parent  # another spec
    assert _tracker(store, parent_run_id=parent).start() == parent
    with pytest.raises(ValueError, match="spec hash 'hash3'"):
        _tracker(store, spec_hash="hash3", parent_run_id=parent).start()
    with pytest.raises(ValueError, match="parent_run_id"):
        _tracker(store, parent_run_id="0" * 32).start()
    first.finish("FINISHED")
    assert _tracker(store).start() != parent  # a finished sweep is not resumed


def test_tracker_pickles_without_its_client_and_reconnects(store):
    import pickle

    tracker = _tracker(store)
    parent = tracker.start()
    run = tracker.child_run("aa_00000", {"margin_weight": 0.1})
    copy = pickle.loads(pickle.dumps(tracker))
    assert copy.parent_run_id == parent
    with pytest.raises(RuntimeError, match="start"):
        copy.child_run("aa_00000", {})
    assert copy.start() == parent and copy.child_run("aa_00000", {}) == run


def test_bad_arguments_name_the_field(store):
    with pytest.raises(ValueError, match="objectives"):
        _tracker(store, objectives=[])
    with pytest.raises(ValueError, match="sweep_name"):
        _tracker(store, sweep_name="it's")
    with pytest.raises(RuntimeError, match="start"):
        _tracker(store).child_run("a", {})


# ----------------------------------------------------------------------------- unreachable


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_fails_fast(store, tmp_path):
    uri = f"http://127.0.0.1:{_closed_port()}"
    began = time.monotonic()
    with pytest.raises(TrackingUnavailable, match=uri):
        check_reachable(uri, timeout_s=2)
    with pytest.raises(TrackingUnavailable, match=uri) as caught:
        _tracker((uri, None)).start()
    assert caught.value.uri == uri
    assert time.monotonic() - began < 5
    missing = f"sqlite:///{tmp_path}/no/such/folder/mlflow.db"
    with pytest.raises(TrackingUnavailable, match="does not exist"):
        check_reachable(missing)
    check_reachable(store[0])  # a new database in an existing folder is fine


class _HealthOnly(http.server.BaseHTTPRequestHandler):
    """Answers the health probe, then hangs up on every MLflow call: a server going down."""

    def do_GET(self):
        if self.path == "/health":
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
        else:
            self.close_connection = True

    do_POST = do_GET

    def log_message(self, *args):
        pass


def test_store_lost_after_the_probe_raises_tracking_unavailable(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HealthOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        check_reachable(uri, timeout_s=2)
        began = time.monotonic()
        with pytest.raises(TrackingUnavailable, match="start the parent run") as caught:
            _tracker((uri, None)).start()
        assert time.monotonic() - began < 10
        assert uri in str(caught.value)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_real_http_server_then_server_down(tmp_path, monkeypatch):
    """Against a real ``mlflow server``: logging works, url() points at the parent run, and
    once the server is gone every call raises TrackingUnavailable within seconds."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    port = _closed_port()
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
         "--artifacts-destination", (tmp_path / "served").as_uri()],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                check_reachable(uri, timeout_s=1)
                break
            except TrackingUnavailable:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.5)
        tracker = _tracker((uri, None))
        parent = tracker.start()
        assert tracker.url() == f"{uri}/#/experiments/{tracker.experiment_id}/runs/{parent}"
        run = tracker.child_run("aa_00000", {"margin_weight": 0.3})
        tracker.log_epoch(run, {"val_robust_acc": 0.2}, 1)
        assert MlflowClient(uri).get_run(run).data.metrics == {"val_robust_acc": 0.2}
        assert list((tmp_path / "served").rglob("spec.yaml"))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    began = time.monotonic()
    with pytest.raises(TrackingUnavailable, match="log epoch 2"):
        tracker.log_epoch(run, {"val_robust_acc": 0.3}, 2)
    with pytest.raises(TrackingUnavailable):
        tracker.finish_trial(run, {}, "failed", "server gone")
    assert time.monotonic() - began < 15


# ----------------------------------------------------------------------------- Ray Tune

# (robust_acc, spike_rate, how the trial ends); b is dominated by a
CASES = {"a": (0.5, 0.2, "finish"), "b": (0.4, 0.3, "finish"), "p": (0.9, 0.0, "prune"),
         "q": (0.9, 0.0, "prune"), "s": (0.9, 0.0, "prune"), "f": (0.9, 0.0, "fail")}


def _trainable(config):
    """Two epochs with a checkpoint each; the final keys in the last result (CONTRACTS.md)."""
    import tempfile

    from ray import tune as raytune

    robust, spike, end = CASES[config["case"]]
    torch.manual_seed(len(config["case"]) + ord(config["case"]))
    net = TinyNet()
    for epoch in (1, 2):
        if end == "fail" and epoch == 2:
            raise ValueError("boom in epoch 2")
        result = {"epoch": epoch, "train_loss": 1.0 / epoch, "val_robust_acc": robust * epoch / 2,
                  "lambda": 0.1, "note": "not a number"}
        if epoch == 2:
            result.update(clean_acc=0.9, robust_acc=robust, spike_rate=spike,
                          near_threshold=0.1, eval_attack="pgd", eval_eps=0.1, eval_steps=5,
                          eval_eot_samples=2, eval_restarts=1, eval_noise=True, eval_n=64,
                          done_training=True)
        with tempfile.TemporaryDirectory() as folder:
            torch.save(net.state_dict(), Path(folder) / "net.pt")
            raytune.report(result, checkpoint=raytune.Checkpoint.from_directory(folder))
        if end == "prune":
            return  # what a scheduler's stop looks like to the trainable: no final keys


def _load_tiny(folder):
    net = TinyNet()
    net.load_state_dict(torch.load(Path(folder) / "net.pt", weights_only=True))
    return net.eval()


def test_callback_drives_a_real_tuner(store, tmp_path, monkeypatch):
    import ray
    from ray import tune as raytune

    from tune.tracking.callback import MlflowSweepCallback

    class CaseRecorder(raytune.Callback):  # trial id -> case, for the pruned lookup
        cases: dict = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            self.cases[trial.trial_id] = trial.config["case"]

    recorder = CaseRecorder()

    def pruned(trial_id):
        if recorder.cases.get(trial_id) == "p":
            return SimpleNamespace(rung=0, epoch=1)
        if recorder.cases.get(trial_id) == "q":  # a pruner without rungs
            return SimpleNamespace(rung=None, epoch=1)
        return None

    tracker = _tracker(store)
    tracker.start()  # the driver may start it first, e.g. to print its url
    callback = MlflowSweepCallback(tracker, pruned_lookup=pruned, load_model=_load_tiny,
                                   front_every_s=0)   # a front after every finished trial
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}})
    try:
        tuner = raytune.Tuner(
            _trainable,
            param_space={"case": raytune.grid_search(list(CASES)), "margin_weight": 0.2},
            tune_config=raytune.TuneConfig(max_concurrent_trials=1, reuse_actors=True),
            run_config=raytune.RunConfig(storage_path=str(tmp_path / "ray"), name="t",
                                         callbacks=[recorder, callback], verbose=0,
                                         failure_config=raytune.FailureConfig(max_failures=0)))
        tuner.fit()
    finally:
        ray.shutdown()

    client = MlflowClient(store[0])
    kids = {r.data.params["case"]: r for r in _children(client, tracker)}
    assert sorted(kids) == sorted(CASES)
    assert {c: (r.info.status, r.data.tags["status"]) for c, r in kids.items()} == {
        "a": ("FINISHED", "finished"), "b": ("FINISHED", "finished"),
        "p": ("KILLED", "pruned at rung 0 (epoch 1)"), "q": ("KILLED", "pruned at epoch 1"),
        "s": ("KILLED", "stopped: at epoch 1 before the end of training"),
        "f": ("FAILED", "failed: ValueError: boom in epoch 2")}
    a = kids["a"]
    assert [m.step for m in client.get_metric_history(a.info.run_id, "val_robust_acc")] == [1, 2]
    assert a.data.metrics["robust_acc"] == 0.5 and a.data.tags["eval_attack"] == "pgd"
    assert {"time_this_iter_s", "note", "epoch", "done_training"}.isdisjoint(a.data.metrics)
    assert a.info.run_name.startswith("trial_") and "lam0.20" in a.info.run_name
    assert (a.data.tags["pareto"], kids["b"].data.tags["pareto"]) == ("true", "false")

    parent = client.get_run(tracker.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(parent.info.run_id, "hypervolume")] \
        == [1, 2]
    # only the front member got a model, and it is the checkpointed network
    models = client.search_logged_models([tracker.experiment_id])
    assert [m.source_run_id for m in models] == [a.info.run_id]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store[0])
    loaded = mlflow.pytorch.load_model(f"runs:/{a.info.run_id}/model")
    x = torch.randn(4, 3)
    assert torch.equal(loaded(x), _load_tiny(a.data.tags["tgo.checkpoint"])(x))


def test_docstring_examples():
    import doctest

    import tune.tracking.front_models
    import tune.tracking.callback
    import tune.tracking.tracker

    for module in (tune.tracking.tracker, tune.tracking.front_models, tune.tracking.callback):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_front_rebuilds_wait_nine_times_as_long_as_the_last_took(store):
    """A rebuild reads every finished child (seconds at thousands of trials): the next
    waits at least 9x its duration, so rebuilds stay within 10% of the driver's time."""
    from tune.tracking.callback import FRONT_GAP_FACTOR, MlflowSweepCallback

    tracker = _tracker(store)
    tracker.start()
    _finish(tracker, "t0", 0.5, 0.2)
    callback = MlflowSweepCallback(tracker, front_every_s=1e-6)
    callback._front_stale = True
    callback._refresh_front([])
    hypervolume = MlflowClient(store[0]).get_metric_history(tracker.parent_run_id,
                                                            "hypervolume")
    assert len(hypervolume) == 1 and callback.seconds > 0
    assert callback._front_gap >= FRONT_GAP_FACTOR * callback.seconds * 0.99
    _finish(tracker, "t1", 0.6, 0.3)
    callback._front_stale = True
    callback._refresh_front([])    # at once: within the gap, so no second rebuild
    assert len(MlflowClient(store[0]).get_metric_history(tracker.parent_run_id,
                                                         "hypervolume")) == 1
    callback._refresh_front([], force=True)    # the end of the sweep always rebuilds
    assert len(MlflowClient(store[0]).get_metric_history(tracker.parent_run_id,
                                                         "hypervolume")) == 2
