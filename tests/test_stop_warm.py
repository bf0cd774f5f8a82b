"""A sweep that stops itself (plateau of the front, epoch budget) and a sweep warm-started
from an earlier one: real sweeps on local Ray, Optuna, MLflow on SQLite in tmp_path.

Runs inside the loopback-only namespace that `make test` creates."""

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from tune.runner import run_sweep
from tune.search.warm_start import load_warm_start, seed_study
from tune.spec import SpecError, SweepSpec
from tune.tracking import objectives_of, schema

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SPACE = {"margin_weight": {"type": "choice", "values": [0.0, 0.5]},
         "noise_scale": {"type": "uniform", "low": 0.0, "high": 0.2},
         "timesteps": {"type": "choice", "values": [2]}}


def _spec(folder, name, **overrides) -> SweepSpec:
    data = {
        "name": name, "dataset": "digits", "epochs": 2,
        "train": {"batch_size": 128, "val_subset": 64, "val_steps": 2, "val_eot_samples": 1},
        "space": SPACE, "sampler": {"type": "random", "seed": 3}, "pruner": {"type": "none"},
        "num_samples": 10, "max_concurrent": 2,
        "evaluation": {"eps": 0.1, "steps": 2, "eot_samples": 1, "max_examples": 60},
        "mlflow": {"tracking_uri": f"sqlite:///{folder}/mlflow.db"},
        "storage_path": str(folder / "runs"),
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


@pytest.fixture(scope="module")
def plateaued(tmp_path_factory, ray_local):
    """A sweep of up to 10 trials that must stop on a plateau: with min_improvement 1 (no
    front of two accuracies gains more), it ends after 3 finished trials."""
    folder = tmp_path_factory.mktemp("plateau")
    spec = _spec(folder, "first", stop={"hypervolume_patience": 2, "min_improvement": 1.0})
    return spec, run_sweep(spec)


def _children(spec, parent_run_id):
    client = MlflowClient(spec.resolved().mlflow.tracking_uri)
    exp = client.get_experiment_by_name(spec.mlflow.experiment)
    return client, client.search_runs([exp.experiment_id],
                                      schema.children_filter(parent_run_id))


def test_plateau_ends_the_sweep_and_loses_no_trial(plateaued):
    spec, outcome = plateaued
    assert outcome.stop_reason.startswith("plateau: the hypervolume rose by")
    assert "last 2 finished trials" in outcome.stop_reason
    assert len(outcome.records) == 3, outcome.records   # stopped at the 3rd finished trial
    assert outcome.n_trials < spec.num_samples
    assert outcome.n_stopped == outcome.n_trials - 3 - outcome.n_failed
    client, children = _children(spec, outcome.parent_run_id)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.data.tags[schema.STOP_REASON] == outcome.stop_reason
    assert parent.info.status == "FINISHED"
    # Every trial Ray started has a closed child run: 3 finished, the rest stopped.
    assert len(children) == outcome.n_trials
    assert not [r for r in children if r.info.status == "RUNNING"]
    status = sorted(r.data.tags[schema.STATUS].split(":")[0] for r in children)
    assert status.count("finished") == 3
    assert status.count("stopped") == outcome.n_stopped
    finished = {r.data.tags[schema.TRIAL_ID] for r in children
                if r.data.tags[schema.STATUS] == "finished"}
    assert finished == {r["trial_id"] for r in outcome.records}


def test_epoch_budget_ends_the_sweep(tmp_path, ray_local):
    spec = _spec(tmp_path, "budget", stop={"max_epochs": 5})
    outcome = run_sweep(spec)
    assert outcome.stop_reason.startswith("epoch budget: ")
    # Ray stops the experiment after the result that reached the budget; a concurrent
    # trial may report one more epoch in the same step.
    assert 5 <= outcome.epochs_trained <= 5 + spec.max_concurrent
    assert outcome.n_trials < spec.num_samples


def test_warm_start_reads_the_earlier_trials_and_links_their_run(plateaued, tmp_path):
    first_spec, first = plateaued
    folder = tmp_path
    spec = _spec(folder, "second", num_samples=2, sampler={"type": "tpe", "seed": 0},
                 warm_start={"from_sweep": "first",
                             "tracking_uri": first_spec.resolved().mlflow.tracking_uri})
    warm = load_warm_start(spec.resolved(), objectives_of(spec))
    assert warm.parent_run_id == first.parent_run_id
    complete = [t for t in warm.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    by_run = {r["trial_id"]: r for r in first.records}
    for t in complete:
        record = by_run[t.user_attrs["ray_trial_id"]]
        assert t.values == [record["clean_acc"], record["robust_acc"]]
        assert t.params == {k: record[k] for k in SPACE}
        # each value of its choice's own type: T stays an int, lambda a float
        assert type(t.params["timesteps"]) is int and type(t.params["margin_weight"]) is float
    # NSGA-II takes them as its generation 0, TPE as history
    study = optuna.create_study(directions=["maximize"] * 2, sampler=optuna.samplers.
                                NSGAIISampler(seed=0, population_size=2))
    seed_study(study, warm.trials)
    assert [t.system_attrs.get("NSGAIISampler:generation") for t in study.trials] == \
        [0] * len(warm.trials)
    for _ in range(3):   # generation 1 is bred from them: the values keep their types
        child = study.ask(spec.optuna_space())
        spec.train_config(child.params)
        study.tell(child, [0.5, 0.5])
    outcome = run_sweep(spec)
    assert outcome.n_trials == 2 and len(outcome.records) == 2
    client = MlflowClient(spec.resolved().mlflow.tracking_uri)
    tags = client.get_run(outcome.parent_run_id).data.tags
    assert tags[schema.WARM_START_RUN] == first.parent_run_id
    assert tags[schema.WARM_START_TRIALS] == "3 finished, 0 pruned"
    assert first.parent_run_id in tags[schema.WARM_START_URL]


@pytest.mark.parametrize("change, says", [
    ({"space": {**SPACE, "noise_scale": {"type": "uniform", "low": 0.0, "high": 0.3}}},
     "noise_scale: high 0.2, low 0.0, type uniform there, high 0.3, low 0.0, type uniform here"),
    ({"objectives": {"clean_acc": "max", "spike_rate": "min"}},
     "to optimise the same objectives (clean_acc (max), spike_rate (min)), got clean_acc "
     "(max), robust_acc (max)"),
    ({"warm_start": {"from_sweep": "nosuch"}}, "no MLflow experiment named 'nosuch'"),
])
def test_warm_start_mismatch_fails_before_any_trial(plateaued, tmp_path, change, says):
    first_spec, _ = plateaued
    uri = first_spec.resolved().mlflow.tracking_uri
    change = {"warm_start": {"from_sweep": "first", "tracking_uri": uri}, **change}
    if "tracking_uri" not in change["warm_start"]:
        change["warm_start"]["tracking_uri"] = uri
    spec = _spec(tmp_path, "mismatch", **change)
    with pytest.raises(SpecError, match="warm_start.from_sweep") as err:
        run_sweep(spec)
    assert says in str(err.value)
    assert not (tmp_path / "runs" / "mismatch").exists()   # nothing written, nothing run
