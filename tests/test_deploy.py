"""``tgo pick``: choosing from a sweep's Pareto front, registering, deploy.yaml, reloading.

A sweep is written into a real SQLite MLflow store with :class:`tune.tracking.SweepTracker`:
four front members and one dominated trial. Member ``t_a`` holds a REAL model (digits, one
epoch) with its real test metrics; the others have made-up metrics placed around it so
that the requirements below single it out:

    trial  clean_acc        robust_acc          timesteps
    t_a    c (real)         r (real)            4      <- the model
    t_b    c + (1 - c) / 2  r / 2               8
    t_c    c - 0.2          r + (1 - r) / 2     2
    t_d    c - 0.02         r + (1 - r) / 4     8
    t_e    c - 0.3          r / 4               2      (dominated: not on the front)
"""

from __future__ import annotations

import math
import os

import mlflow
import pytest
import torch
import yaml
from mlflow import MlflowClient

from tune.cli import main
from tgo.config import TrainConfig
from tgo.final_eval import EvalSettings, final_evaluation
from tgo.neurons import noise
from tgo.train import accuracy, fit
from tune import deploy as picking
from tune.deploy import Requirement
from tune.tracking import SweepTracker, schema
from tune.tracking.reader import load_front_members

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy")

SWEEP, EXPERIMENT = "pick-sweep", "pick-exp"
SETTINGS = dict(epochs=1, val_subset=32, val_steps=1, batch_size=16, lr=5e-3)


@pytest.fixture(scope="module")
def trained():
    """A real digits model after one epoch, its config and its real test metrics."""
    torch.manual_seed(0)
    result = fit(TrainConfig(**SETTINGS))
    final = final_evaluation(result.model, result.config, result.splits,
                             EvalSettings(attack="fgsm", eps=0.05, eot_samples=1))
    with noise(result.model, False):
        off = accuracy(result.model, result.splits.test, torch.device("cpu"))
    assert final["clean_acc"] > 0.5, "the one-epoch model should have learned something"
    return result, final, off


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, trained):
    """(tracking URI, run ids by trial, real metrics) of a finished sweep in a SQLite store."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        yield _write_sweep(tmp_path_factory.mktemp("store"), trained)


def _write_sweep(root, trained):
    uri = f"sqlite:///{root}/mlflow.db"
    result, final, _ = trained
    c, r = final["clean_acc"], final["robust_acc"]
    made_up = {"t_b": (c + (1 - c) / 2, r / 2, 8), "t_c": (c - 0.2, r + (1 - r) / 2, 2),
               "t_d": (c - 0.02, r + (1 - r) / 4, 8), "t_e": (c - 0.3, r / 4, 2)}
    tracker = SweepTracker(uri, EXPERIMENT, SWEEP, "hash-pick",
                           {"space": {"timesteps": {"type": "choice", "values": [2, 4, 8]},
                                      "margin_weight": {"type": "uniform"}}},
                           git_commit="abc", objectives=[("clean_acc", "max"),
                                                         ("robust_acc", "max")],
                           artifact_location=(root / "artifacts").as_uri())
    tracker.start()
    evaluation = {k: v for k, v in final.items() if k.startswith("eval_")}
    runs = {}
    runs["t_a"] = tracker.child_run("t_a", result.config.to_dict())
    tracker.finish_trial(runs["t_a"], {**final, "epoch": 1}, "finished")
    for trial, (clean, robust, steps) in made_up.items():
        config = TrainConfig(**SETTINGS, timesteps=steps, margin_weight=0.1 * steps)
        runs[trial] = tracker.child_run(trial, config.to_dict())
        tracker.finish_trial(runs[trial], {"clean_acc": clean, "robust_acc": robust,
                                           "spike_rate": 0.1, "near_threshold": 0.05,
                                           "epoch": 1, **evaluation}, "finished")
    front = tracker.update_front(tracker.finished_records())
    assert sorted(m["trial_id"] for m in front) == ["t_a", "t_b", "t_c", "t_d"]
    tracker.log_front_model(runs["t_a"], result.model, result.config.to_dict(),
                            checkpoint=result.state.save(root / "ckpt"))
    tracker.finish()
    return uri, runs, final


@pytest.fixture(scope="module")
def front(sweep):
    uri, _, _ = sweep
    return load_front_members(SWEEP, tracking_uri=uri, experiment=EXPERIMENT)


@pytest.fixture
def tracking(sweep, monkeypatch):
    """MLflow's global tracking/registry URI pointed at the store for one test (what
    ``mlflow.set_tracking_uri`` / ``set_registry_uri`` set, undone afterwards)."""
    from mlflow.tracking._model_registry import utils as registry
    from mlflow.tracking._tracking_service import utils as tracking_utils

    uri = sweep[0]
    monkeypatch.setattr(tracking_utils, "_tracking_uri", uri)
    monkeypatch.setattr(registry, "_registry_uri", uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    assert mlflow.get_tracking_uri() == uri and mlflow.get_registry_uri() == uri
    return uri


def _threshold(final) -> str:
    return f"clean_acc >= {final['clean_acc'] - 0.05:.6f}"


# ----------------------------------------------------------------------------- requirements


@pytest.mark.parametrize("text, name, op, value", [
    ("clean_acc>=0.9", "clean_acc", ">=", 0.9), (" timesteps <= 4 ", "timesteps", "<=", 4.0),
    ("margin_weight==0.5", "margin_weight", "==", 0.5), ("spike_rate<1e-1", "spike_rate", "<", 0.1),
    ("robust_acc > .3", "robust_acc", ">", 0.3)])
def test_requirement_grammar(text, name, op, value):
    req = Requirement.parse(text)
    assert (req.name, req.op, req.value) == (name, op, value)


@pytest.mark.parametrize("text, message", [
    ("clean_acc => 0.9", "expected '<name> <op> <number>'"),
    ("clean_acc >= high", "expected '<name> <op> <number>'"),
    ("accuracy >= 0.9", "got 'accuracy'"),
    ("dataset == 1", "numeric TrainConfig field"),  # a field, but not a number
])
def test_requirement_grammar_errors(text, message):
    with pytest.raises(ValueError, match="^require: ") as info:
        Requirement.parse(text)
    assert message in str(info.value)


def test_requirement_holds():
    req = Requirement.parse("timesteps <= 4")
    assert req.holds(4) and req.holds(2.0) and not req.holds(8)
    assert not req.holds(None) and not req.holds(True) and not req.holds(float("nan"))
    assert Requirement.parse("margin == 0.3").holds(0.1 + 0.2)  # float noise is equal


# ----------------------------------------------------------------------------- picking


def test_front_is_read_with_full_params_and_model(front, sweep):
    _, runs, final = sweep
    assert [m.trial_id for m in front.members] == ["t_a", "t_b", "t_c", "t_d"]  # not t_e
    assert [o.name for o in front.objectives] == ["clean_acc", "robust_acc"]
    assert front.searched == ("margin_weight", "timesteps")
    a = front.members[0]
    assert a.run_id == runs["t_a"] and a.model_uri.startswith("models:/")
    assert a.metrics["clean_acc"] == pytest.approx(final["clean_acc"])
    assert a.params["timesteps"] == 4 and a.params["dataset"] == "digits"
    assert a.evaluation["eval_attack"] == "fgsm" and a.evaluation["eval_n"] == final["eval_n"]
    assert all(m.model_uri is None for m in front.members[1:])


def test_objectives_read_from_the_parent_tag_in_either_spelling():
    # a parent written before tgo.objectives_json: its label, where an older tune.runner
    # passed Metric enums as names (Metric.CLEAN_ACC), else the spec's params
    for tag in ("clean_acc (max),spike_rate (min)",
                "Metric.CLEAN_ACC (max),Metric.SPIKE_RATE (min)"):
        objectives = schema.objectives_from_tags({"tgo.objectives": tag}, {})
        assert [(o.name, o.direction.value) for o in objectives] == [("clean_acc", "max"),
                                                                      ("spike_rate", "min")]
    from_params = schema.objectives_from_tags({}, {"objectives.robust_acc": "max", "name": "x"})
    assert [o.name for o in from_params] == ["robust_acc"]


def test_objectives_are_tagged_as_json_beside_the_label(sweep, front):
    from tune.pareto import Objective

    objectives = (Objective("spike_rate", "min", reference=2.0), Objective("clean_acc"))
    tags = schema.objective_tags(objectives)
    assert tags["tgo.objectives"] == "spike_rate (min),clean_acc (max)"   # the label stays
    assert schema.objectives_from_tags({**tags, "tgo.objectives": "garbled"}) == objectives
    parent = MlflowClient(sweep[0]).get_run(front.parent_run_id)
    assert "tgo.objectives" in parent.data.tags and "tgo.objectives_json" in parent.data.tags
    assert [(o.name, o.direction.value) for o in front.objectives] == [("clean_acc", "max"),
                                                                        ("robust_acc", "max")]


def test_pick_under_metric_and_param_requirements(front, sweep):
    final = sweep[2]
    result = picking.pick(front, [_threshold(final), "timesteps <= 4"], "robust_acc")
    assert result.chosen.trial_id == "t_a"
    by_trial = {m.trial_id: result.failures[m.run_id] for m in front.members}
    assert by_trial["t_a"] == ()
    assert by_trial["t_b"] == ("timesteps <= 4 (8)",)
    assert by_trial["t_d"] == ("timesteps <= 4 (8)",)
    assert len(by_trial["t_c"]) == 1 and by_trial["t_c"][0].startswith("clean_acc >= ")
    text = picking.format_pick(result)
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("t_")}
    assert set(lines) == {"t_a", "t_b", "t_c", "t_d"}
    assert lines["t_a"].endswith("CHOSEN")
    assert lines["t_b"].endswith("excluded: timesteps <= 4 (8)")
    assert "excluded: clean_acc >= " in lines["t_c"]
    assert "chosen: trial t_a" in text and "the highest among 1 feasible member(s)" in text
    assert "measured with: FGSM (eps 0.05), noise on" in text


def test_the_param_requirement_changes_the_choice(front, sweep):
    result = picking.pick(front, [_threshold(sweep[2])], "robust_acc")
    assert result.chosen.trial_id == "t_d"  # more robust than t_a, but T = 8
    assert {m.trial_id for m in result.feasible} == {"t_a", "t_b", "t_d"}
    assert picking.pick(front, [], "clean_acc").chosen.trial_id == "t_b"
    assert picking.pick(front, [], "clean_acc", "min").chosen.trial_id == "t_c"
    assert picking.pick(front, []).chosen.trial_id == "t_b"  # first objective by default


def test_knee_is_the_member_farthest_beyond_the_ends_line(front, sweep):
    """Front: t_b (best clean), t_c (best robust), t_a and t_d between them."""
    result = picking.pick(front, [], knee=True)
    c = {m.trial_id: m.metrics["clean_acc"] for m in front.members}
    r = {m.trial_id: m.metrics["robust_acc"] for m in front.members}

    def gain(v, vals):
        return (v - min(vals.values())) / (max(vals.values()) - min(vals.values()))
    expected = {t: (gain(c[t], c) + gain(r[t], r) - 1) / 2 ** 0.5 for t in c}
    got = {m.trial_id: result.knee[m.run_id] for m in front.members}
    assert got == pytest.approx(expected)
    assert result.chosen.trial_id == max(expected, key=expected.get)
    assert got["t_b"] == pytest.approx(0) and got["t_c"] == pytest.approx(0)   # the ends
    text = picking.format_pick(result)
    assert "pick by: knee" in text and "knee distance" in text
    assert f"chosen: trial {result.chosen.trial_id}" in text and "the knee of 4 feasible" in text
    assert "max clean_acc: trial t_b" in text and "max robust_acc: trial t_c" in text


def test_knee_after_requirements_rescales_over_the_feasible_members(front, sweep):
    # T <= 4 leaves t_a and t_c: both are ends, so the tie goes to the first objective
    result = picking.pick(front, ["timesteps <= 4"], knee=True)
    assert {m.trial_id for m in result.feasible} == {"t_a", "t_c"}
    assert all(v == pytest.approx(0.0) for v in result.knee.values()) and len(result.knee) == 2
    assert result.chosen.trial_id == "t_a"          # the higher clean_acc
    with pytest.raises(ValueError, match="knee: expected no objective"):
        picking.pick(front, [], "robust_acc", knee=True)


def test_requirement_met_by_no_member_empties_the_front(front):
    result = picking.pick(front, ["clean_acc >= 0.999", "timesteps <= 4"], "robust_acc")
    assert result.chosen is None and result.feasible == ()
    assert len(result.why_empty) == 1
    assert result.why_empty[0].startswith("'clean_acc >= 0.999' empties the front by itself")
    assert "closest on the front: " in result.why_empty[0]
    text = picking.format_pick(result)
    assert "no front member meets every requirement" in text and "CHOSEN" not in text


def test_requirements_that_empty_the_front_together(front):
    best = max(m.metrics["clean_acc"] for m in front.members)  # t_b's
    result = picking.pick(front, [f"clean_acc >= {best - 1e-9}", "timesteps <= 4"])
    assert result.chosen is None
    why = "\n".join(result.why_empty)
    assert "'timesteps <= 4' empties the front: without it 1 member(s) would remain (t_b)" \
        in why
    assert "empties the front: without it 2 member(s) would remain (t_a, t_c)" in why


def test_register_needs_a_logged_model(front, sweep):
    result = picking.pick(front, [_threshold(sweep[2])], "robust_acc")  # t_d: no model
    with pytest.raises(ValueError, match="register: trial t_d .* has no logged model"):
        picking.register(result, "tgo-no-model")


# ----------------------------------------------------------------------------- registry


def test_register_alias_tags_and_deploy_document(front, sweep, trained):
    uri, runs, final = sweep
    result = picking.pick(front, [_threshold(final), "timesteps <= 4"], "robust_acc")
    first = picking.register(result, "tgo-digits", extra_tags={"check.clean_acc_noise_off": 0.5})
    second = picking.register(result, "tgo-digits")
    assert (first.version, second.version) == ("1", "2")
    assert second.uri == "models:/tgo-digits@deploy"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("tgo-digits", "deploy")
    assert str(version.version) == "2" and version.run_id == runs["t_a"]
    tags = version.tags
    assert float(tags["clean_acc"]) == pytest.approx(final["clean_acc"])
    assert float(tags["robust_acc"]) == pytest.approx(final["robust_acc"])
    assert tags["eval_description"] == "FGSM (eps 0.05), noise on"
    assert tags["eval_attack"] == "fgsm" and float(tags["eval_eps"]) == 0.05
    assert tags["objectives"] == "clean_acc (max),robust_acc (max)"
    assert tags["picked_by"] == "max robust_acc" and "timesteps <= 4" in tags["requirements"]
    assert tags["trial_id"] == "t_a" and tags["sweep"] == SWEEP
    assert "check.clean_acc_noise_off" in client.get_model_version("tgo-digits", "1").tags

    config = picking.member_config(front, result.chosen)
    assert config == trained[0].config
    doc = picking.deploy_document(result, config, registration=second)
    assert doc["model_uri"] == "models:/tgo-digits@deploy"
    assert doc["registered"]["version"] == "2"
    assert doc["config"] == trained[0].config.to_dict()
    assert doc["metrics"]["robust_acc"] == pytest.approx(final["robust_acc"])
    assert doc["evaluation"]["eval_description"] == "FGSM (eps 0.05), noise on"
    assert doc["picked_by"]["require"][1] == "timesteps <= 4"
    assert doc["trial"]["run_id"] == runs["t_a"]
    assert yaml.safe_load(yaml.safe_dump(doc)) == doc  # plain YAML types only


def test_registered_model_loads_and_reproduces_its_accuracy(front, sweep, trained, tracking):
    result, final, off = trained
    chosen = picking.pick(front, [_threshold(final), "timesteps <= 4"], "robust_acc")
    registration = picking.register(chosen, "tgo-reload")
    model = mlflow.pytorch.load_model("models:/tgo-reload@deploy")
    assert type(model) is type(result.model)
    for (name, a), (_, b) in zip(model.state_dict().items(), result.model.state_dict().items()):
        assert torch.equal(a, b), name
    acc, n = picking.measure_clean_accuracy(model, result.config, noise=False)
    assert n == len(result.splits.test) == final["eval_n"]
    assert acc == off  # noise off on both sides: deterministic, equal to the last digit

    check = picking.check_deployment(registration.uri, sweep[0], result.config,
                                     expected_noise_off=off,
                                     reported_clean_acc=final["clean_acc"],
                                     eval_n=final["eval_n"])
    assert check.ok and check.clean_acc_noise_off == off
    assert check.tolerance == pytest.approx(4 / math.sqrt(2 * final["eval_n"]))
    assert "same" in check.describe()
    wrong = picking.check_deployment(registration.uri, sweep[0], result.config,
                                     expected_noise_off=off - 0.01)
    assert not wrong.ok and "DIFFERENT" in wrong.describe()


# ----------------------------------------------------------------------------- the CLI


def test_cli_pick_registers_verifies_and_writes_deploy_yaml(sweep, trained, tmp_path, capsys):
    uri, runs, final = sweep
    out = tmp_path / "deploy" / "deploy.yaml"
    before = (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"),
              os.environ.get("MLFLOW_REGISTRY_URI"))
    code = main(["pick", SWEEP, "--tracking-uri", uri, "--experiment", EXPERIMENT,
                 "--require", _threshold(final).replace(" ", ""), "--require", "timesteps<=4",
                 "--maximize", "robust_acc", "--register", "tgo-cli", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    # MLflow's global URIs (and their environment variables) are left as they were
    assert (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"),
            os.environ.get("MLFLOW_REGISTRY_URI")) == before
    assert "chosen: trial t_a" in text
    assert f"clean accuracy of its model: {trained[2]:.4f}" in text
    assert "registered: models:/tgo-cli@deploy (version 1 of 'tgo-cli', alias 'deploy')" in text
    assert "verified models:/tgo-cli@deploy" in text and "same" in text
    doc = yaml.safe_load(out.read_text())
    assert out.read_text().startswith("# written by tgo pick")
    assert doc["model_uri"] == "models:/tgo-cli@deploy"
    assert doc["check"]["clean_acc_noise_off"] == trained[2]
    assert doc["check"]["verified"] == "models:/tgo-cli@deploy"
    assert doc["config"]["timesteps"] == 4 and doc["config"]["batch_size"] == 16
    assert doc["trial"]["run_id"] == runs["t_a"]
    tags = MlflowClient(uri, registry_uri=uri).get_model_version("tgo-cli", "1").tags
    assert float(tags["check.clean_acc_noise_off"]) == trained[2]


def test_cli_pick_without_feasible_member_says_why(sweep, tmp_path, capsys):
    uri = sweep[0]
    out = tmp_path / "deploy.yaml"
    code = main(["pick", SWEEP, "--tracking-uri", uri, "--experiment", EXPERIMENT,
                 "--require", "clean_acc>=0.999", "--minimize", "spike_rate", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 1
    assert "'clean_acc >= 0.999' empties the front by itself" in text
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--require", "clean_acc => 1"], "error: require: expected '<name> <op> <number>'"),
    (["--maximize", "robust_acc", "--minimize", "spike_rate"], "error: pick: expected one of"),
    (["--maximize", "robust_acc", "--knee"], "error: pick: expected one of"),
    (["--maximize", "accuracy"], "error: objective: expected a metric"),
])
def test_cli_pick_bad_input(sweep, argv, message, tmp_path, capsys):
    code = main(["pick", SWEEP, "--tracking-uri", sweep[0], "--experiment", EXPERIMENT,
                 "--out", str(tmp_path / "d.yaml"), *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_pick_unknown_sweep(sweep, tmp_path, capsys):
    code = main(["pick", "no-such-sweep", "--tracking-uri", sweep[0], "--experiment",
                 EXPERIMENT, "--out", str(tmp_path / "d.yaml")])
    assert code == 2
    assert "error: sweep: no sweep named 'no-such-sweep'" in capsys.readouterr().err


def test_a_model_without_its_weights_only_checkpoint_is_not_unpickled(tmp_path, trained):
    """tgo pick rebuilds networks from tensors; a pickled model from the store is refused."""
    result, _, _ = trained
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = SweepTracker(uri, "bare", "bare", "h", {}, git_commit="abc",
                           objectives=[("clean_acc", "max")],
                           artifact_location=(tmp_path / "artifacts").as_uri())
    tracker.start()
    run = tracker.child_run("t", result.config.to_dict())
    model_uri = tracker.log_front_model(run, result.model, result.config.to_dict())
    with pytest.raises(ValueError, match="tgo-checkpoint.pt"):
        picking.load_model(model_uri, uri)
    model = picking.load_model(model_uri, uri, allow_pickle=True)   # a store you trust
    x = torch.rand(3, 1, 8, 8)
    with noise(model, False), noise(result.model, False):
        assert torch.equal(model(x), result.model.eval()(x))
