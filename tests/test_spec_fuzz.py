"""Bad specs and bad command lines fail validation, naming the field, and start nothing.

Property-based (hypothesis): each spec test takes the valid examples/digits-quick.yaml (its
MLflow store and Ray storage pointed into a fresh temporary folder) and corrupts one field
at a time: a wrong type, an out-of-range number, NaN or infinity, an unknown key, an empty
or huge string, a bad distribution, a wrong enum name, low >= high, a credential in the
tracking URI... Then:

* ``SweepSpec.from_dict`` raises :class:`SpecError` with a problem whose path is the
  corrupted field (``space.margin.low: expected ...``);
* ``tgo sweep run|resume|submit|pareto`` on that spec, run in-process through ``main``,
  exits with 2 and prints ``error: ... <field path>: ...`` without a traceback, leaves Ray
  uninitialised and creates nothing: no MLflow database, no ``mlruns``, no Ray results.

The command-line tests do the same for ``tgo train``/``evaluate`` options, ``--num-samples``,
``tgo pick`` requirements and random argument lists. The last test starts a 2-CPU local
Ray and checks that a spec asking for more CPUs (or GPUs) per trial than any node has fails
before launch.

Run: bash .ci/loopback .venv/bin/python -m pytest tests/test_spec_fuzz.py -q
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tune.cli import main
from tune.objectives import Constraint
from tune.spec import SweepSpec, SpecError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits-quick.yaml"
BASE: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
# 60 examples a property keeps the file under a minute on 2 cores; TGO_FUZZ_EXAMPLES=2000
# searches harder.
FUZZ = settings(max_examples=int(os.environ.get("TGO_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

# ----------------------------------------------------------------------------- values

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_IDENT = st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True)
_NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
_HUGE = st.integers(2**63, 10**40) | st.integers(-10**40, -2**63 - 1)
_CONTAINERS = st.sampled_from([[], [1], {}, {"a": 1}])
_NOT_INT = (st.floats(allow_nan=True) | _TEXT | st.booleans() | st.none() | _CONTAINERS)
_NOT_NUMBER = _TEXT | st.booleans() | st.none() | _CONTAINERS
_NOT_STR = st.integers() | st.floats(allow_nan=False) | st.booleans() | _CONTAINERS
_NOT_MAPPING = st.integers() | _TEXT | st.lists(st.integers(), max_size=2) | st.none()


def _int_below(low: int) -> st.SearchStrategy:
    """Integers < low, or values that are no integer at all, or beyond 64 bits."""
    return st.integers(-10**6, low - 1) | _NOT_INT | _HUGE


def _not_in(valid: set, base: st.SearchStrategy = _TEXT) -> st.SearchStrategy:
    return base.filter(lambda v: v not in valid)


def _bad_constraint(text: str) -> bool:
    try:
        Constraint.parse(text)
    except ValueError:
        return True
    return False


# ----------------------------------------------------------------------------- corruptions
# (path to change, field path the error must name, strategy of bad values); a value of
# _DELETE removes the key instead.

_DELETE = object()
_KNOWN_TOP = set(SweepSpec.model_fields)
_DATASETS = {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100"}
_MODELS = {"digits_cnn", "mnist_cnn", "vgg11", "wrn16"}
_METRICS = {"clean_acc", "robust_acc", "spike_rate", "near_threshold"}

CORRUPTIONS: list[tuple[tuple, str, st.SearchStrategy]] = [
    # identity and fixed training settings
    (("name",), "name", _NOT_STR | st.just("") | st.just(_DELETE)
     | st.from_regex(r"[A-Za-z0-9_]{0,5}[^A-Za-z0-9_.\-][A-Za-z0-9_]{0,5}", fullmatch=True)
     | st.integers(101, 3000).map(lambda n: "s" * n) | st.sampled_from([".", "..", "-x", ".a"])),
    (("dataset",), "dataset", _not_in(_DATASETS) | _NOT_STR | st.just(_DELETE)),
    (("model",), "model", _not_in(_MODELS) | _NOT_STR),
    (("epochs",), "epochs", _int_below(1) | st.just(_DELETE)),
    (("regime",), "regime", _not_in({"standard", "adversarial"}) | _NOT_STR),
    (("train",), "train", _NOT_MAPPING.filter(lambda v: v is not None)),
    (("train", "batch_size"), "train.batch_size", _int_below(1)),
    (("train", "lr"), "train.lr", st.floats(max_value=0) | _NON_FINITE | _NOT_NUMBER),
    (("train", "seed"), "train.seed", st.integers(-10**6, -1) | st.integers(2**32, 2**70)),
    (("train", "val_eps"), "train.val_eps", st.floats(1.0001, 1e6) | st.floats(max_value=-1e-6)),
    (("train", "val_steps"), "train.val_steps", _int_below(1)),
    (("train", "momentum"), "train.momentum", st.floats(1.0, 1e9) | _NON_FINITE),
    (("train", "v_reset"), "train.v_reset", _NON_FINITE | st.booleans()),
    (("train", "device"), "train.device",
     _not_in({"auto", "cpu"}).filter(lambda s: not s.startswith("cuda")) | _NOT_STR
     | st.sampled_from(["cuda:x", "cudaa", "cuda:"])),
    (("train", "amp"), "train.amp", _NOT_STR.filter(lambda v: not isinstance(v, bool)) | _TEXT),
    (("train", "data_dir"), "train.data_dir",
     st.sampled_from(["a\x00b", "data\n", "\x7f"]) | st.integers() | st.booleans()),
    (("train", "margin"), "train.margin", st.floats(0.1, 0.9)),  # also searched in space
    (("train", "epochs"), "train.epochs", st.integers(1, 9)),  # a top-level field
    # the search space
    (("space",), "space", _NOT_MAPPING.filter(lambda v: v is not None) | st.just({})),
    (("space", "batch_size"), "space.batch_size",
     st.just({"type": "choice", "values": [32, 64]})),
    (("space", "margin", "type"), "space.margin.type",
     _not_in({"uniform", "loguniform", "int", "choice"}) | _NOT_STR),
    (("space", "margin", "low"), "space.margin",
     st.floats(1.0, 1e300) | st.floats(max_value=0) | _NON_FINITE | _NOT_NUMBER | _HUGE),
    (("space", "margin", "high"), "space.margin.high",
     st.floats(-1e300, 0.2) | _NON_FINITE | _NOT_NUMBER | st.just(_DELETE)),
    (("space", "margin", "step"), "space.margin.step", st.integers() | st.floats()),
    (("space", "noise_scale", "low"), "space.noise_scale.low", st.floats(-1e300, -1e-9)),
    (("space", "margin_weight", "values"), "space.margin_weight.values",
     st.just([]) | st.just([0.1, 0.1]) | _NOT_MAPPING.filter(lambda v: not isinstance(v, list))
     | st.lists(_NON_FINITE | st.floats(max_value=-1e-9) | _CONTAINERS, min_size=1,
                max_size=3)),
    (("space", "timesteps", "values"), "space.timesteps.values",
     st.lists(st.integers(-100, 0) | _HUGE, min_size=1, max_size=3, unique=True)),
    (("space", "timesteps", "type"), "space.timesteps.type",
     st.sampled_from(["uniform", "loguniform"])),
    # what is optimised
    (("objectives",), "objectives", _NOT_MAPPING | st.just({})),
    (("objectives", "clean_acc"), "objectives.clean_acc",
     _not_in({"max", "min"}) | _NOT_STR),
    (("objectives",), "objectives.",
     _IDENT.filter(lambda k: k not in _METRICS).map(lambda k: {k: "max"})),
    (("constraints",), "constraints",
     st.integers() | _TEXT | st.just({"a": 1})
     | st.lists(_TEXT.filter(_bad_constraint), min_size=1, max_size=3)),
    # how the sweep runs
    (("sampler", "type"), "sampler.type", _not_in({"nsga2", "tpe", "gp", "random"}) | _NOT_STR),
    (("sampler", "seed"), "sampler.seed",
     st.integers(-10**9, -1) | st.integers(2**32, 2**80) | _NOT_INT.filter(
         lambda v: v is not None)),
    (("sampler", "population_size"), "sampler.population_size", _int_below(2)
     .filter(lambda v: v is not None)),
    (("pruner", "type"), "pruner.type",
     _not_in({"mo_asha", "median", "percentile", "successive_halving", "hyperband", "none"})),
    (("pruner", "eta"), "pruner.eta", _int_below(2)),
    (("pruner", "grace_epochs"), "pruner.grace_epochs",
     st.integers(7, 10**6) | st.integers(-5, 0)),
    (("pruner", "n_warmup_epochs"), "pruner.n_warmup_epochs",
     st.integers(6, 10**6) | st.integers(-10**6, -1)),
    (("pruner", "percentile"), "pruner.percentile",
     st.floats(100.001, 1e9) | st.floats(max_value=-1e-6) | _NON_FINITE),
    (("pruner", "metric"), "pruner.metric", _TEXT | st.integers()),  # mo_asha takes none
    (("pruner", "mode"), "pruner.mode", st.sampled_from(["max", "min", "up", 1])),
    (("num_samples",), "num_samples", _int_below(1) | st.just(_DELETE)),
    (("max_concurrent",), "max_concurrent", _int_below(1)),
    (("max_failures",), "max_failures", _int_below(0)),
    (("resources", "cpu"), "resources.cpu",
     st.floats(max_value=0) | _NON_FINITE | _NOT_NUMBER | st.floats(1.01, 1e6).filter(
         lambda v: v != int(v))),
    (("resources", "gpu"), "resources.gpu",
     st.floats(max_value=-1e-9) | _NON_FINITE | _NOT_NUMBER | st.just(1.5)),
    (("resources",), "resources.", _IDENT.filter(lambda k: k not in ("cpu", "gpu"))
     .map(lambda k: {k: 1})),
    # the final evaluation
    (("evaluation", "eps"), "evaluation.eps",
     st.floats(1.0001, 1e9) | st.floats(max_value=-1e-9) | _NON_FINITE | _NOT_NUMBER),
    (("evaluation", "steps"), "evaluation.steps", _int_below(1)),
    (("evaluation", "restarts"), "evaluation.restarts", _int_below(1)),
    (("evaluation", "attack"), "evaluation.attack",
     _not_in({"pgd", "fgsm", "apgd"}) | st.integers()),
    # where results go
    (("mlflow",), "mlflow", _NOT_MAPPING.filter(lambda v: v is not None)),
    (("mlflow", "tracking_uri"), "mlflow.tracking_uri",
     st.sampled_from(["", "not a uri", "mlruns", "file:///tmp/mlruns", "http://",
                      "ftp://host/x", "http://user:hunter2@127.0.0.1:5000",
                      "https://token@mlflow.example.com", "https://h/?token=abc",
                      "sqlite:///a\x00b.db", " http://127.0.0.1:5000", "http", "sqlite"])
     | _NOT_STR | _TEXT.filter(lambda s: "://" not in s and s != "databricks")),
    (("mlflow", "experiment"), "mlflow.experiment",
     st.sampled_from(["", "it's", "a\\b", "tab\there"]) | _NOT_STR
     | st.integers(257, 2000).map(lambda n: "e" * n)),
    (("storage_path",), "storage_path",
     st.sampled_from(["", "   ", "runs\x00", "~no_such_user_tgo/runs", "r/" + "x" * 256])
     | _NOT_STR),
]
_UNKNOWN_TOP_KEY = _IDENT.filter(lambda k: k not in _KNOWN_TOP)


#: Stands for the test's own folder in the spec's tracking URI and storage path.
HERE = "/tmp/tgo-fuzz-folder-placeholder"


def base_spec(folder: str | Path = HERE) -> dict[str, Any]:
    """examples/digits-quick.yaml with its MLflow store and Ray results in ``folder``."""
    data = copy.deepcopy(BASE)
    data["mlflow"] = {"tracking_uri": f"sqlite:///{folder}/mlflow.db", "experiment": None}
    data["storage_path"] = f"{folder}/runs"
    return data


@st.composite
def corrupted_specs(draw) -> tuple[dict[str, Any], str]:
    """(spec data with one field corrupted, the field path its error must name)."""
    data = base_spec()
    if draw(st.integers(0, len(CORRUPTIONS))) == len(CORRUPTIONS):
        key = draw(_UNKNOWN_TOP_KEY)
        data[key] = draw(_TEXT | st.integers())
        return data, key
    path, field, values = draw(st.sampled_from(CORRUPTIONS))
    value = draw(values)
    node = data
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if value is _DELETE:
        node.pop(path[-1], None)
    elif field.endswith("."):  # an unknown key inside a mapping
        node[path[-1]] = {**(node.get(path[-1]) or {}), **value}
        field += next(iter(value))
    else:
        node[path[-1]] = value
    return data, field


def _names(problems: tuple[str, ...], field: str) -> bool:
    return any(p == field or p.startswith((f"{field}:", f"{field}.", f"{field}[", f"{field} "))
               for p in problems)


# ----------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def sandbox() -> Iterator[Path]:
    """A fresh empty folder as the current directory (anything created there is caught)."""
    before = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="tgo-fuzz-") as folder:
        os.chdir(folder)
        try:
            yield Path(folder)
        finally:
            os.chdir(before)


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """``tgo ARGV`` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


def assert_nothing_started(folder: Path, keep: set[str] = frozenset()) -> None:
    import ray

    assert not ray.is_initialized()
    made = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name not in keep and not any(k in p.parts for k in keep))
    assert made == [], f"created {made}"  # no mlflow.db, mlruns, mlartifacts, runs ...


def assert_clean_error(code: int, err: str, field: str) -> None:
    """Exit 2, ``error: ...`` naming ``field`` (followed by ``:``, ``.``, ``[`` ...), no
    traceback and none of pydantic's own wording."""
    assert code == 2, err
    assert "Traceback" not in err and "pydantic" not in err and "Input should" not in err
    assert "error: " in err, err
    assert re.search(re.escape(field) + r"([:.\[ ,']|$)", err, re.M), \
        f"{field!r} not named in {err!r}"


@pytest.fixture(autouse=True)
def _no_ambient_store(monkeypatch):
    """No tracking URI or Ray address from the environment of whoever runs the tests."""
    for var in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "TGO_SWEEP_SPEC"):
        monkeypatch.delenv(var, raising=False)


# ----------------------------------------------------------------------------- specs


def test_the_base_spec_is_valid(tmp_path):
    spec = SweepSpec.from_dict(base_spec(tmp_path))
    assert spec.name == "digits-quick" and spec.storage_path == str(tmp_path / "runs")
    assert list(tmp_path.iterdir()) == []  # validating creates nothing


@FUZZ
@given(corrupted_specs())
def test_a_corrupted_field_is_a_spec_error_naming_it(case):
    data, field = case
    with pytest.raises(SpecError) as info:
        SweepSpec.from_dict(data)
    problems = info.value.problems
    assert _names(problems, field), f"{field!r} not named in {problems}"
    message = str(info.value)
    assert "pydantic" not in message and "Input should" not in message
    assert "hunter2" not in message and "token=abc" not in message  # credentials masked


@FUZZ
@given(case=corrupted_specs(), command=st.sampled_from(["run", "resume", "submit", "pareto"]))
def test_cli_on_a_corrupted_spec_exits_2_naming_the_field_and_starts_nothing(
        case, command, capsys):
    data, field = case
    with sandbox() as folder:
        if command == "resume":  # a results folder whose saved spec went bad
            (folder / "old").mkdir()
            spec_file = folder / "old" / "sweep_spec.yaml"
            argv = ["sweep", "resume", str(folder / "old")]
        else:
            spec_file = folder / "spec.yaml"
            argv = {"run": ["sweep", "run", str(spec_file)],
                    "submit": ["submit", str(spec_file), "--address", "http://127.0.0.1:9"],
                    "pareto": ["pareto", str(spec_file)]}[command]
        spec_file.write_text(yaml.safe_dump(data, allow_unicode=True).replace(HERE, str(folder)))
        code, out, err = run_cli(argv, capsys)
        assert_clean_error(code, err, field)
        assert "hunter2" not in out + err
        assert_nothing_started(folder, keep={spec_file.name, "old"})


# ----------------------------------------------------------------------------- CLI options


_TRAIN_BAD = [
    (["--epochs", "0"], "epochs"), (["--epochs", "-3"], "epochs"),
    (["--timesteps", "0"], "timesteps"), (["--lr", "nan"], "lr"), (["--lr", "-1"], "lr"),
    (["--lr", "inf"], "lr"), (["--margin", "0"], "margin"),
    (["--noise-scale", "-0.5"], "noise_scale"), (["--margin-weight", "-1"], "margin_weight"),
    (["--v-reset", "nan"], "v_reset"), (["--v-reset", "inf"], "v_reset"),
    (["--seed", "-1"], "seed"), (["--seed", str(2**40)], "seed"),
    (["--device", "gpu"], "device"), (["--device", "cuda:x"], "device"),
    (["--dataset", "imagenet"], "dataset"), (["--model", "resnet"], "model"),
    (["--surrogate", "gauss"], "surrogate"), (["--optimizer", "lamb"], "optimizer"),
    (["--val-fraction", "0.95"], "val_fraction"), (["--val-eps", "2"], "val_eps"),
    (["--batch-size", "x"], "--batch-size"), (["--epochs", "1.5"], "--epochs"),
    (["--eval-eps", "2"], "eps"), (["--eval-steps", "0"], "steps"),
    (["--eval-attack", "cw"], "attack"), (["--eval-restarts", "0"], "restarts"),
    (["--no-such-flag", "1"], "--no-such-flag"),
]
_TRAIN_OK = [["--margin-weight", "0.2"], ["--noise-scale", "0.1"], ["--timesteps", "2"],
             ["--batch-size", "32"], ["--seed", "3"], ["--amp"], ["--no-amp"],
             ["--regime", "standard"], ["--val-steps", "1"], ["--eval-steps", "2"]]


@FUZZ
@given(ok=st.lists(st.sampled_from(_TRAIN_OK), max_size=4), bad=st.sampled_from(_TRAIN_BAD))
def test_train_with_one_bad_option_exits_2_naming_it(ok, bad, capsys):
    with sandbox() as folder:
        argv = ["train", "--epochs", "1", "--no-progress", "--val-subset", "8",
                "--out", str(folder / "out"), *[a for pair in ok for a in pair], *bad[0]]
        code, _, err = run_cli(argv, capsys)
        assert_clean_error(code, err, bad[1])
        assert_nothing_started(folder)  # not even the --out folder


def _evil_checkpoint(path: Path) -> Path:
    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {path.parent / 'PWNED'}",))

    torch.save({"model": {}, "config": {}, "payload": Payload()}, path)
    return path


@pytest.mark.parametrize("argv, field", [
    (["evaluate", "{d}/missing.pt"], "checkpoint"),
    (["evaluate", "{d}/garbage.pt"], "checkpoint"),
    (["evaluate", "{d}/evil.pt"], "checkpoint"),
    (["evaluate", "{d}/evil.pt", "--attacks", "pgd,cw"], "attacks"),
    (["evaluate", "{d}/evil.pt", "--attacks", "transfer"], "transfer-source"),
    (["evaluate", "{d}/evil.pt", "--noise", "maybe"], "--noise"),
    (["evaluate", "{d}/evil.pt", "--steps", "x"], "--steps"),
    (["sweep", "run", "{d}/missing.yaml"], "cannot read the sweep spec"),
    (["sweep", "run", str(EXAMPLE), "--num-samples", "0"], "--num-samples"),
    (["sweep", "run", str(EXAMPLE), "--num-samples", "-4"], "--num-samples"),
    (["sweep", "run", str(EXAMPLE), "--num-samples", "many"], "--num-samples"),
    (["sweep", "run", str(EXAMPLE), "--num-samples", str(10**30)], "--num-samples"),
    (["sweep", "resume", "{d}/nowhere"], "path"),
    (["pareto", "no-such-sweep"], "tracking_uri"),  # reading never creates ./mlflow.db
    (["pick", "no-such-sweep", "--tracking-uri", "sqlite:///{d}/none.db"], "tracking_uri"),
    (["train", "--out", "/dev/null/out"], "out"),
    (["sweep"], "sweep_command"),
    (["pick", str(EXAMPLE), "--require", "clean_acc => 0.9"], "require"),
    (["pick", str(EXAMPLE), "--require", "accuracy >= 0.9"], "require"),
    (["pick", str(EXAMPLE), "--require", "clean_acc >= nan"], "require"),
    (["pick", str(EXAMPLE), "--maximize", "clean_acc", "--minimize", "spike_rate"],
     "--maximize"),
    (["submit", "{d}/missing.yaml", "--address", "http://127.0.0.1:9"],
     "cannot read the sweep spec"),
    (["jobs", "list", "--address", "ray://head:10001"], "address"),
    (["jobs", "status"], "job_id"),
])
def test_bad_options_exit_2_naming_them_and_start_nothing(argv, field, capsys):
    with sandbox() as folder:
        (folder / "garbage.pt").write_text("not a checkpoint")
        _evil_checkpoint(folder / "evil.pt")
        code, _, err = run_cli([a.replace("{d}", str(folder)) for a in argv], capsys)
        assert_clean_error(code, err, field)
        assert not (folder / "PWNED").exists()
        assert_nothing_started(folder, keep={"garbage.pt", "evil.pt"})


_COMMANDS = ["train", "evaluate", "sweep", "pareto", "pick", "submit", "jobs"]
_TOKENS = st.one_of(_TEXT, st.sampled_from(_COMMANDS + [
    "run", "resume", "list", "status", "logs", "stop", "--epochs", "--lr", "--num-samples",
    "--address", "--require", "--attacks", "--eps", "--out", "-", "-h=1", "--tracking-uri",
    "nan", "-1", "0", "--follow", "--wait"])).filter(
        # no help (it exits 0) and no '--' (after it, the last option below is a positional)
        lambda t: t == "-h=1" or (t != "--" and not t.startswith(("-h", "--h"))))


@FUZZ
@given(tokens=st.lists(_TOKENS, max_size=6))
def test_random_argument_lists_exit_2_without_a_traceback(tokens, capsys):
    # Never a runnable command line: it always ends with an unknown option.
    argv = [*tokens, "--definitely-not-an-option"]
    with sandbox() as folder:
        code, _, err = run_cli(argv, capsys)
        assert code == 2, (argv, err)
        assert "Traceback" not in err and "error: " in err, (argv, err)
        assert_nothing_started(folder)


# ----------------------------------------------------------------------------- the cluster


@pytest.fixture
def ray_two_cpus():
    import ray

    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


@pytest.mark.parametrize("resources, field, asked", [
    ({"cpu": 3, "gpu": 0}, "resources.cpu", "3 CPU"),
    ({"cpu": 1, "gpu": 1}, "resources.gpu", "1 GPU"),
    ({"cpu": 1, "gpu": 0.5}, "resources.gpu", "0.5 GPU"),
])
def test_a_trial_larger_than_every_node_fails_before_launch(resources, field, asked,
                                                            ray_two_cpus, tmp_path, capsys):
    data = copy.deepcopy(BASE)
    data.update(resources=resources, storage_path=str(tmp_path / "runs"),
                mlflow={"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"})
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    code, _, err = run_cli(["sweep", "run", str(spec)], capsys)
    assert_clean_error(code, err, field)
    assert f"each trial asks for {asked}" in err
    assert "Ray itself would wait forever" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]  # no store, no runs
