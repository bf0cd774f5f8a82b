"""The outage journal (tune.tracking.journal) and its replay (tune.tracking.ops.replay) on a real
MLflow SQLite store: kept writes round-trip, and replaying them twice logs nothing twice.
The end-to-end outage (a real `mlflow server` stopped mid-sweep) is in test_reliability."""

import doctest
import math

import pytest
from mlflow import MlflowClient

from tune import faults
from tune.tracking import journal
from tune.tracking.ops import replay
from tune.pareto import Objective
from tune.tracking import SweepTracker


def test_ops_round_trip_in_order_with_nan_and_numpy(tmp_path):
    import numpy as np
    journal.append(tmp_path, {"op": "open", "trial_id": "t1", "config": {"margin": 0.5}})
    journal.append(tmp_path, {"op": "result", "trial_id": "t1",
                              "result": {"epoch": np.int64(2), "loss": float("nan"),
                                         "acc": np.float32(0.5), "shape": (1, 2)}})
    ops = journal.read(tmp_path)
    assert [op["op"] for op in ops] == ["open", "result"]
    result = ops[1]["result"]
    assert result["epoch"] == 2 and math.isnan(result["loss"]) and result["acc"] == 0.5
    assert result["shape"] == [1, 2]


def test_a_torn_last_line_is_skipped_and_partial_sync_keeps_the_rest(tmp_path):
    sweep, tmp_path = tmp_path, tmp_path / "trial_1"
    for i in range(3):
        journal.append(tmp_path, {"op": "open", "trial_id": f"t{i}", "config": {}})
    with open(tmp_path / journal.PENDING_FILE, "a") as out:
        out.write('{"op": "res')                      # the driver died mid-write
    assert [op["trial_id"] for op in journal.read(tmp_path)] == ["t0", "t1", "t2"]
    journal.append(tmp_path, {"op": "open", "trial_id": "t3", "config": {}})
    assert [op["trial_id"] for op in journal.read(tmp_path)] == ["t0", "t1", "t2", "t3"]
    journal.mark_synced(tmp_path, 2)
    assert [op["trial_id"] for op in journal.read(tmp_path)] == ["t2", "t3"]
    assert len((tmp_path / journal.SYNCED_FILE).read_text().splitlines()) == 2
    journal.mark_synced(tmp_path, 2)
    assert not (tmp_path / journal.PENDING_FILE).exists()
    assert list(journal.pending_folders(sweep)) == []


def test_replaying_twice_logs_each_point_once(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = SweepTracker(uri, "journal", "sweep", "abc", {"space": {}},
                           objectives=[Objective("clean_acc", "max")])
    tracker.start()
    ops = [{"op": "open", "trial_id": "t1", "config": {"margin": 0.5}}]
    for epoch in (1, 2):
        ops.append({"op": "result", "trial_id": "t1",
                    "result": {"epoch": epoch, "timestamp": 1700000000 + epoch,
                               "val_clean_acc": 0.5 + epoch / 10, "ray_node_id": "n1",
                               "train_config": {"margin": 0.5, "epochs": 2}}})
    ops.append({"op": "recover", "trial_id": "t1", "retries": 1, "error": "boom"})
    ops.append({"op": "finish", "trial_id": "t1", "config": {}, "final": {
        "epoch": 2, "clean_acc": 0.9, "eval_attack": "pgd"}, "outcome": "finished",
        "reason": None, "checkpoint": "/x", "timestamp_ms": 1700000003000})
    for _ in range(2):
        fresh = SweepTracker(uri, "journal", "sweep", "abc", {"space": {}},
                             objectives=[Objective("clean_acc", "max")],
                             parent_run_id=tracker.parent_run_id)
        fresh.start()
        run_ids = {replay(fresh, op) for op in ops}
    assert len(run_ids) == 1
    client = MlflowClient(uri)
    run = client.get_run(run_ids.pop())
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id,
                                                            "val_clean_acc")) == [1, 2]
    assert len(client.get_metric_history(run.info.run_id, "clean_acc")) == 1
    assert run.info.status == "FINISHED" and run.data.tags["status"] == "finished"
    assert run.data.tags["tgo.retries"] == "1" and run.data.tags["ray.node_id"] == "n1"
    assert run.data.params["epochs"] == "2" and run.data.tags["eval_attack"] == "pgd"
    with pytest.raises(ValueError, match="op: expected"):
        replay(tracker, {"op": "bogus", "trial_id": "t1"})


def test_fault_injection_parses_and_matches(monkeypatch):
    monkeypatch.setenv(faults.VARIABLE, '[{"when": {"lr": 0.01}, "epoch": 2, "fault": "nan"}]')
    assert faults.fault_for({"lr": 0.01}, 2) == "nan"
    assert faults.fault_for({"lr": 0.01}, 1) is None
    assert faults.fault_for({"lr": 0.02}, 2) is None
    monkeypatch.setenv(faults.VARIABLE, '{"fault": "explode"}')
    with pytest.raises(ValueError, match=faults.VARIABLE):
        faults.fault_for({}, 1)


def test_docstring_examples():
    for module in (journal, faults):
        failed, _ = doctest.testmod(module)
        assert failed == 0, module.__name__
