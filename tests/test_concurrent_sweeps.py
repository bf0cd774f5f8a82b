"""Four sweeps at once on one local multi-node Ray cluster, all logging to one `mlflow server`
that is restarted while they run: on SQLite (1 worker) and on PostgreSQL (4 workers).

Runs ``benchmarks/concurrent_sweeps.py`` (which holds the rig and the checks) at a small size: every
child run, its per-epoch metric history, the ``pareto`` tags, the parent's ``pareto.json`` and
a registered model checked against Ray's own results. The restart must have been seen by the
drivers (their journals replayed ops), so the test shows the journal holding for several
drivers at once. Marked slow (a few minutes per backend on 2 cores); every process is stopped
by PID at the end.
"""

import pytest
from scripts import load_script

pytestmark = pytest.mark.slow

bench = load_script("benchmarks/concurrent_sweeps.py", "concurrent_sweeps")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_four_sweeps_at_once_through_a_server_restart_lose_nothing(backend):
    if backend == "postgresql":
        from postgres import binaries_or_skip
        binaries_or_skip()
    report = bench.run_backend(backend, sweeps=4, trials=3, epochs=2, restart_after=2,
                                    down_s=3.0)
    print(bench.summary(report))
    assert report["problems"] == []
    sweeps = report["sweeps"].values()
    assert all(s["returncode"] == 0 for s in sweeps)
    assert report["restart_at_s"] is not None
    # The restart was felt, and what the drivers could not write was kept and replayed.
    assert sum(s["outages_seen"] for s in sweeps) >= 1
    assert sum(s["ops_replayed"] for s in sweeps) >= 1
