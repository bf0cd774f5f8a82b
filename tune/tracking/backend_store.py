"""The MLflow server's backend store: check that it answers, bring its schema up to date.

``mlflow/serve.sh`` runs ``python -m tune.tracking.backend_store prepare`` before it starts a
server on a database it did not just create. The URI comes from ``MLFLOW_BACKEND_STORE_URI``
(never from the command line, where ``ps`` would show it):

* a URI that carries a password (``postgresql://user:secret@host/db``) is refused: libpq reads
  the password from ``PGPASSWORD`` or a password file (``PGPASSFILE``, ``~/.pgpass``), so it
  never reaches a process list, a log or the server's printed banner;
* the database is connected to (10 s at most) and, when that fails, the error says what is
  wrong and what to do (nothing listens there, no password given, password refused, no
  such database or user, driver not installed), with libpq's own message;
* the database is migrated to the installed MLflow's schema with ``mlflow db upgrade`` (the
  documented path; a no-op when it is current). On an empty database that creates MLflow's
  tables, once, before the server's workers start (they would otherwise race to).

Example:
    >>> check_no_password("postgresql://mlflow@db.internal:5432/mlflow")
    >>> check_no_password("postgresql://mlflow:hunter2@db.internal/mlflow")
    Traceback (most recent call last):
    ...
    tune.tracking.backend_store.BackendStoreError: the backend store URI postgresql://***@db.internal/mlflow carries a password; put it in PGPASSWORD or a password file (PGPASSFILE, ~/.pgpass) instead, where no log or process list shows it
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

from tgo.errors import TgoError
from tune.redact import redact_uri

__all__ = ["BackendStoreError", "check_no_password", "connect", "main", "prepare"]

CONNECT_TIMEOUT_S = 10
#: What the ``server`` extra installs for each database (SQLAlchemy's default drivers).
DRIVERS = {"postgresql": "psycopg[binary] (pip install 'tgo-sweep[server]')",
           "mysql": "mysqlclient or PyMySQL (pip install pymysql)"}


class BackendStoreError(TgoError, RuntimeError):
    """The store cannot be used; the message says why and what to do."""


def check_no_password(uri: str) -> None:
    """Refuse a URI with a password in it (the password belongs in the environment)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is not None:
        raise BackendStoreError(
            f"the backend store URI {redact_uri(uri)} carries a password; put it in PGPASSWORD "
            "or a password file (PGPASSFILE, ~/.pgpass) instead, where no log or process list "
            "shows it")


def _explain(exc: BaseException, uri: str) -> str:
    """A sentence on what is wrong with the store, then the driver's own words."""
    parts = urllib.parse.urlsplit(uri)
    user, where = parts.username or "(the OS user)", f"{parts.hostname}:{parts.port or 5432}"
    database = parts.path.lstrip("/") or "(the user's name)"
    detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
    text = detail.lower()
    if isinstance(exc, ModuleNotFoundError):
        scheme = parts.scheme.split("+")[0]
        return (f"the Python driver for {scheme} is not installed ({exc.name}): install "
                f"{DRIVERS.get(scheme, 'its SQLAlchemy driver')}")
    if "connection refused" in text:
        why = f"nothing answers at {where}: is PostgreSQL running, and listening on that address?"
    elif "no password supplied" in text:
        why = (f"the database wants a password for user {user} and none was given: set "
               "PGPASSWORD or a password file (PGPASSFILE, ~/.pgpass), never the URI")
    elif "password authentication failed" in text:
        why = (f"the database refused the password of user {user} (from PGPASSWORD, PGPASSFILE "
               "or ~/.pgpass): check it")
    elif "database" in text and "does not exist" in text:
        why = (f"there is no database {database} at {where}: create it (createdb -h "
               f"{parts.hostname} -p {parts.port or 5432} -U {user} {database}) or name another")
    elif "role" in text and "does not exist" in text:
        why = f"the database server at {where} has no user {user}"
    elif "translate host name" in text or "name or service not known" in text:
        why = f"the host {parts.hostname} is unknown here"
    elif "timeout" in text:
        why = f"{where} did not answer within {CONNECT_TIMEOUT_S} s"
    else:
        why = f"cannot use the backend store {redact_uri(uri)}"
    return f"{why} ({detail})"


def connect(uri: str) -> tuple[str, str | None]:
    """(the server's version, MLflow's schema revision or None for a database without
    MLflow's tables). Raises :class:`BackendStoreError`."""
    import sqlalchemy as sa

    check_no_password(uri)
    args = {"connect_timeout": CONNECT_TIMEOUT_S} if uri.startswith("postgresql") else {}
    try:
        engine = sa.create_engine(uri, connect_args=args, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            version = (conn.exec_driver_sql("select version()").scalar()
                       if engine.dialect.name != "sqlite" else f"SQLite {sa.__version__}")
            revision = None
            if sa.inspect(conn).has_table("alembic_version"):
                revision = conn.exec_driver_sql("select version_num from alembic_version").scalar()
    except (ModuleNotFoundError, sa.exc.SQLAlchemyError) as exc:
        raise BackendStoreError(_explain(exc, uri)) from None
    return " ".join(str(version).split()[:2]), revision


def prepare(uri: str, upgrade: bool = True) -> list[str]:
    """Check the store and migrate its schema; the lines to print. Raises
    :class:`BackendStoreError`."""
    if uri.startswith("sqlite:"):
        path = uri.split(":///", 1)[-1]
        if not Path(path).exists():
            return [f"new SQLite store {path}: the server creates its tables"]
    version, before = connect(uri)
    lines = [f"backend store {redact_uri(uri)} answers ({version})"]
    if not upgrade:
        return lines + [f"  MLflow schema {before}" if before else "  no MLflow tables yet"]
    proc = subprocess.run([sys.executable, "-m", "mlflow", "db", "upgrade", uri],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackendStoreError(f"mlflow db upgrade failed on {redact_uri(uri)}: "
                                f"{proc.stderr.strip()[-2000:]}")
    _, after = connect(uri)
    state = ("tables created" if before is None else "up to date" if after == before
             else f"upgraded from {before}")
    return lines + [f"  MLflow schema {after} ({state})"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tune.tracking.backend_store",
        description="Check MLflow's backend store ($MLFLOW_BACKEND_STORE_URI) and migrate it.")
    parser.add_argument("command", choices=["check", "prepare"],
                        help="check: connect and report; prepare: also create or migrate "
                             "MLflow's tables")
    ns = parser.parse_args(argv)
    uri = os.environ.get("MLFLOW_BACKEND_STORE_URI")
    if not uri:
        print("backend_store: MLFLOW_BACKEND_STORE_URI is not set", file=sys.stderr)
        return 2
    try:
        lines = prepare(uri, upgrade=ns.command == "prepare")
    except BackendStoreError as exc:
        print(f"backend store: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
