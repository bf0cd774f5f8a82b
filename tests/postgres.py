"""A private PostgreSQL for the tests (cluster/local_postgres.py): one per test session.

Where the server binaries are missing the tests that need it skip, unless
``TGO_REQUIRE_POSTGRES=1`` (``.ci/run`` sets it once it has installed them): then they fail.
Each test takes a database of its own (:func:`fresh_database`), so none sees another's runs.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from ports import free_ports
from scripts import load_script

local_postgres = load_script("cluster/local_postgres.py", "local_postgres")
_count = itertools.count()


class Postgres:
    """A running private server: its folder, its password and the URI of database mlflow."""

    def __init__(self, directory: Path, state: dict) -> None:
        self.directory, self.state = directory, state
        self.passfile = directory / local_postgres.PASS_FILE
        self.password = self.passfile.read_text().strip().rsplit(":", 1)[1]
        self.uri = state["uri"]
        self.log, self.data = Path(state["log"]), Path(state["data"])

    def fresh_database(self, prefix: str = "t") -> str:
        """The URI (no password in it) of a new, empty database."""
        return local_postgres.create_database(self.directory, f"{prefix}{next(_count)}")


def binaries_or_skip() -> None:
    try:
        local_postgres.find_bin_dir()
    except local_postgres.PostgresError as exc:
        if os.environ.get("TGO_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"TGO_REQUIRE_POSTGRES=1 but {exc}")
        pytest.skip(str(exc))


def start_private():
    """Start a server in a new temporary folder (a generator: yields a :class:`Postgres`,
    stops it by PID and removes the folder afterwards)."""
    binaries_or_skip()
    # Not pytest's tmp_path: the server runs as user postgres under root, and must reach it.
    directory = Path(tempfile.mkdtemp(prefix="tgopg"))
    (port,) = free_ports(1)
    try:
        state = local_postgres.start(directory, port)
        yield Postgres(directory, state)
    finally:
        try:
            local_postgres.stop(directory)
            state_file = directory / local_postgres.STATE_FILE
            left = state_file.exists() and local_postgres._alive(json.loads(state_file.read_text()))
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        assert not left, "the private PostgreSQL is still running"
