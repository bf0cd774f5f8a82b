"""End to end: a real sweep on local Ray, real Optuna, MLflow on SQLite in tmp_path.

Runs inside the loopback-only namespace that `make test` creates (Ray listens on every
interface otherwise)."""

import json
import math

import pytest
import yaml
from mlflow import MlflowClient

from tune.runner import ClusterTooSmall, run_sweep
from tune.spec import SweepSpec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _spec(tmp_path, **overrides) -> SweepSpec:
    data = {
        "name": "e2e",
        "dataset": "digits",
        "epochs": 3,
        "train": {"batch_size": 128, "val_subset": 64, "val_steps": 2, "val_eot_samples": 1},
        "space": {"margin_weight": {"type": "choice", "values": [0.0, 0.3, 0.6]},
                  "margin": {"type": "uniform", "low": 0.3, "high": 0.8},
                  "noise_scale": {"type": "uniform", "low": 0.0, "high": 0.3},
                  "timesteps": {"type": "choice", "values": [2, 4]}},
        # A third objective, energy (sops), exercises the 3-D front, hypervolume (moocore),
        # MO-ASHA on val_sops, the projection plots and `tgo pick --knee`.
        "objectives": {"clean_acc": "max", "robust_acc": "max", "sops": "min"},
        "sampler": {"type": "nsga2", "seed": 1, "population_size": 2},
        "pruner": {"type": "mo_asha", "eta": 3, "grace_epochs": 2},
        "num_samples": 6,
        "max_concurrent": 2,
        "evaluation": {"eps": 0.1, "steps": 3, "eot_samples": 2, "max_examples": 120},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "e2e"},
        "storage_path": str(tmp_path / "runs"),
    }
    data.update(overrides)
    return SweepSpec.from_dict(data)


@pytest.fixture(scope="module")
def ray_local():
    import ray
    ray.init(num_cpus=2, include_dashboard=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


def test_sweep_end_to_end(tmp_path, ray_local, monkeypatch, capsys):
    spec = _spec(tmp_path)
    outcome = run_sweep(spec)
    assert outcome.n_trials == 6
    assert len(outcome.records) + outcome.n_pruned + outcome.n_failed == 6
    assert outcome.n_failed == 0 and len(outcome.records) >= 1
    assert outcome.front and outcome.hypervolume > 0

    client = MlflowClient(tracking_uri=spec.mlflow.tracking_uri)
    exp = client.get_experiment_by_name("e2e")
    # MLflow's UI opens a model-development experiment on its runs table
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("tgo.kind") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["tgo.spec_hash"] == spec.hash()
    from tgo.energy import dense_sops
    dense = dense_sops("digits_cnn", "digits", 4)        # the largest T of the space
    stored = json.loads(parent.data.tags["tgo.objectives_json"])
    assert [o["name"] for o in stored] == ["clean_acc", "robust_acc", "sops"]
    assert stored[2]["direction"] == "min" and stored[2]["reference"] == dense
    assert parent.info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 6                      # one child per trial, none duplicated

    finished = [c for c in children if c.data.tags.get("status") == "finished"]
    pruned = [c for c in children if c.data.tags.get("status", "").startswith("pruned")]
    assert len(finished) == len(outcome.records) and len(pruned) == outcome.n_pruned
    for child in finished:
        assert {"clean_acc", "robust_acc", "spike_rate", "sops", "macs"} <= set(child.data.metrics)
        # measured SOPs: above 0 (the network spikes), below every neuron firing every step
        assert 0 < child.data.metrics["sops"] < dense
        assert child.data.params["dataset"] == "digits"            # the full TrainConfig
        assert child.data.tags["eval_attack"] == "pgd,apgd"        # the default worst case
        assert child.data.tags["eval_description"].startswith("worst case of [PGD-3 ")
        metrics = child.data.metrics
        assert {"robust_acc_pgd", "robust_acc_apgd"} <= set(metrics)
        assert metrics["robust_acc"] <= min(metrics["robust_acc_pgd"], metrics["robust_acc_apgd"])
        history = client.get_metric_history(child.info.run_id, "val_clean_acc")
        assert sorted(m.step for m in history) == [1, 2, 3]
    for child in pruned:                               # pruned trials never sit on the front
        assert child.data.tags.get("pareto") != "true"
        assert "clean_acc" not in child.data.metrics

    front_runs = [c for c in children if c.data.tags.get("pareto") == "true"]
    assert {c.data.tags["tgo.trial_id"] for c in front_runs} == \
        {r["trial_id"] for r in outcome.front}
    import mlflow.pytorch
    import torch
    monkeypatch.setenv("MLFLOW_TRACKING_URI", spec.mlflow.tracking_uri)  # not the global
    for child in front_runs:
        assert child.data.tags["pareto_rank"] == "0"
        assert child.data.tags["tgo.model_logged"] == "true"
        model = mlflow.pytorch.load_model(f"runs:/{child.info.run_id}/model")
        assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)

    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto.csv", "pareto.json", "pareto.png", "pareto.html", "spec.yaml"} <= names
    local = client.download_artifacts(parent.info.run_id, "pareto.json", str(tmp_path))
    listed = json.load(open(local))
    members = listed["front"] if isinstance(listed, dict) else listed
    assert {m["trial_id"] for m in members} == {r["trial_id"] for r in outcome.front}
    hv = client.get_metric_history(parent.info.run_id, "hypervolume")
    steps = [m.step for m in hv]   # rebuilt at most every 30 s, and at the end
    assert steps == sorted(set(steps)) and steps[-1] == len(finished)
    assert math.isclose(hv[-1].value, outcome.hypervolume, rel_tol=1e-6)

    # The spec is saved beside Ray's results, for `tgo sweep resume`.
    saved = yaml.safe_load((outcome.experiment_path / "sweep_spec.yaml").read_text())
    assert saved["name"] == "e2e"

    # The sweep's last lines give the UI's addresses of the parent run and its front plot.
    from tune.cli import _print_outcome, main
    capsys.readouterr()
    _print_outcome(outcome)
    printed = capsys.readouterr().out
    run_page = f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs/{parent.info.run_id}"
    view = "?workflowType=machine_learning"   # MLflow 3's model-training views
    assert f"Sweep run:    {run_page}{view}\n" in printed
    assert f"Front plot:   {run_page}/artifacts/pareto.html{view}\n" in printed

    # `tgo pick --knee` on this real sweep: the feasible member farthest beyond the line
    # (plane, here) between the ends, on the three objectives rescaled over the front.
    out = tmp_path / "deploy.yaml"
    code = main(["pick", "e2e", "--tracking-uri", spec.mlflow.tracking_uri, "--experiment",
                 "e2e", "--knee", "--no-verify", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "pick by: knee" in printed and "the knee of" in printed
    doc = yaml.safe_load(out.read_text())
    picked = doc["picked_by"]
    assert picked["rule"] == "knee" and picked["explanation"] in printed
    front_ids = {r["trial_id"] for r in outcome.front}
    assert set(picked["distances"]) == front_ids
    assert doc["trial"]["trial_id"] in front_ids
    assert picked["knee_distance"] == max(picked["distances"].values())
    # the distances, recomputed from the front's own values
    objs = [("clean_acc", 1), ("robust_acc", 1), ("sops", -1)]
    span = {k: (min(s * r[k] for r in outcome.front), max(s * r[k] for r in outcome.front))
            for k, s in objs}
    for r in outcome.front:
        gains = [1.0 if span[k][1] == span[k][0] else
                 (s * r[k] - span[k][0]) / (span[k][1] - span[k][0]) for k, s in objs]
        assert math.isclose(picked["distances"][r["trial_id"]], (sum(gains) - 1) / math.sqrt(3),
                            rel_tol=1e-9, abs_tol=1e-12)


def test_gpu_spec_on_a_cpu_cluster_fails_before_any_trial(tmp_path, ray_local):
    spec = _spec(tmp_path, name="gpu", resources={"cpu": 1, "gpu": 1})
    with pytest.raises(ClusterTooSmall, match="resources.gpu"):
        run_sweep(spec)
    assert not (tmp_path / "runs" / "gpu").exists()
    assert not (tmp_path / "mlflow.db").exists() or not MlflowClient(
        f"sqlite:///{tmp_path}/mlflow.db").get_experiment_by_name("e2e")


def test_unreachable_mlflow_fails_before_any_trial(tmp_path, ray_local):
    from tune.tracking import TrackingUnavailable
    spec = _spec(tmp_path, name="nomlflow",
                 mlflow={"tracking_uri": "http://127.0.0.1:9", "experiment": "x"})
    with pytest.raises(TrackingUnavailable):
        run_sweep(spec)
    assert not (tmp_path / "runs" / "nomlflow").exists()


def test_an_address_where_nothing_listens_fails_at_once(tmp_path, capsys):
    import time

    from tune.cli import main
    spec = _spec(tmp_path, name="noray")
    path = tmp_path / "noray.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    start = time.monotonic()
    assert main(["sweep", "run", str(path), "--address", "127.0.0.1:1"]) == 2
    assert time.monotonic() - start < 30         # not Ray's minutes of connect retries
    assert "address: nothing answers at 127.0.0.1:1" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "noray").exists()
