"""The MLflow server on PostgreSQL: ``mlflow/serve.sh --backend-store-uri postgresql://...``
against a private PostgreSQL (tests/postgres.py: initdb + postgres in a temporary folder,
on 127.0.0.1, stopped by PID).

* 4 uvicorn workers on one database: concurrent clients log runs, metric histories and
  artifacts; the rows are in PostgreSQL (not in a SQLite file); a restart keeps them;
* schema migrations run at start: a database one MLflow revision behind is upgraded;
* ``serve.sh --check`` says what is wrong (no password, a wrong one, no such database,
  nothing listening, a password in the URI) and starts nothing;
* the password never reaches a process list, serve.sh's output or the server's log.

The service test (tests/test_service.py) and the credential test of a real sweep
(tests/test_security.py) also run on this backend, and tests/test_concurrent_sweeps.py runs 4
sweeps at once against it.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
from pathlib import Path

import pytest
from ports import free_ports
from test_mlflow_server import SERVE, group_members, serve, stop

from tune.tracking.backend_store import BackendStoreError, _explain, check_no_password


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "PG"))}
    return {**env, **extra}


def _check(uri: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SERVE), "--data-dir", "/nonexistent-never-created",
                           "--backend-store-uri", uri, "--check"], env=_clean_env(**env),
                          capture_output=True, text=True, timeout=120)


def _cmdlines(pgid: int) -> str:
    text = []
    for pid in group_members(pgid):
        try:
            text.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            pass
    return "\n".join(text)


def _log_concurrently(url: str, n: int) -> list[str]:
    """``n`` runs from ``n`` threads at once: 5 metric steps and one artifact each."""
    from mlflow import MlflowClient

    client = MlflowClient(url)
    exp = client.create_experiment("pg-workers")

    def one(i: int) -> str:
        run = client.create_run(exp, run_name=f"r{i}")
        for step in range(5):
            client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
        client.log_text(run.info.run_id, f"run {i}", "note.txt")
        client.set_terminated(run.info.run_id)
        return run.info.run_id

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.slow
def test_four_workers_on_postgres_log_keep_and_migrate(postgres, tmp_path, monkeypatch):
    import sqlalchemy as sa
    from mlflow import MlflowClient

    uri = postgres.fresh_database("srv")
    for var in [v for v in os.environ if v.startswith("PG")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("PGPASSWORD", postgres.password)   # the server's only way in
    data_dir = tmp_path / "server"
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    started = serve(data_dir, port, "--backend-store-uri", uri, "--workers", "4")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "tables created" in started.stdout, started.stdout
        pid = int((data_dir / "mlflow-server.pid").read_text())
        assert postgres.password not in _cmdlines(pid)
        run_ids = _log_concurrently(url, 8)
    finally:
        assert stop(data_dir).returncode == 0
    assert not list(data_dir.glob("*.db")), "a SQLite file appeared: the store is not PostgreSQL"
    engine = sa.create_engine(uri, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        in_db = {r[0] for r in conn.exec_driver_sql("select run_uuid from runs")}
        steps = conn.exec_driver_sql("select count(*) from metrics where key = 'loss'").scalar()
    assert in_db == set(run_ids) and steps == 8 * 5

    # One MLflow revision back, as after an upgrade of MLflow: the next start migrates it.
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config

    command.downgrade(_get_alembic_config(uri), "-1")
    with engine.connect() as conn:
        behind = conn.exec_driver_sql("select version_num from alembic_version").scalar()
    started = serve(data_dir, port, "--backend-store-uri", uri, "--workers", "4")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"upgraded from {behind}" in started.stdout, started.stdout
        client = MlflowClient(url)
        for run_id in run_ids:   # everything logged before the restart is served again
            assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(range(5))
            assert client.get_run(run_id).info.status == "FINISHED"
    finally:
        assert stop(data_dir).returncode == 0
    log = (data_dir / "mlflow-server.log").read_text() + started.stdout + started.stderr
    assert postgres.password not in log


def test_check_says_what_is_wrong_and_starts_nothing(postgres):
    uri = postgres.uri
    good = _check(uri, PGPASSFILE=str(postgres.passfile))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "answers (PostgreSQL" in good.stdout and "MLflow schema" not in good.stdout
    assert not Path("/nonexistent-never-created").exists()

    cases = {
        "no password": (uri, {}, "none was given"),
        "wrong password": (uri, {"PGPASSWORD": "not-the-password"}, "refused the password"),
        "no database": (uri.rsplit("/", 1)[0] + "/nosuchdb", {"PGPASSFILE": str(postgres.passfile)},
                        "createdb -h 127.0.0.1"),
        "nothing listens": (f"postgresql://mlflow@127.0.0.1:{free_ports(1)[0]}/mlflow", {},
                            "nothing answers at 127.0.0.1:"),
        "password in the URI": (uri.replace("mlflow@", f"mlflow:{postgres.password}@"), {},
                                "carries a password"),
    }
    for name, (bad_uri, env, expected) in cases.items():
        out = _check(bad_uri, **env)
        text = out.stdout + out.stderr
        assert out.returncode == 2 and expected in text, f"{name}: {text}"
        assert postgres.password not in text, name


def test_password_in_uri_is_refused_masked():
    with pytest.raises(BackendStoreError, match=r"postgresql://\*\*\*@db/x carries") as info:
        check_no_password("postgresql://u:topsecret@db/x")
    assert "topsecret" not in str(info.value)
    check_no_password("postgresql://u@db/x")
    check_no_password("sqlite:////tmp/mlflow.db")


def test_a_missing_driver_names_the_extra():
    text = _explain(ModuleNotFoundError("No module named 'psycopg'", name="psycopg"),
                    "postgresql://u@db/x")
    assert "tgo-sweep[server]" in text and "psycopg" in text


def test_docstring_examples():
    import doctest

    import tune.tracking.backend_store

    assert doctest.testmod(tune.tracking.backend_store).failed == 0
