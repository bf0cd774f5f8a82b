"""tgo.allocator: glibc keeps freed memory for CPU training, and the switch turns it off.

Each case runs in a fresh interpreter: the settings are process-wide and applied once.
"""

import os
import platform
import subprocess
import sys

import pytest

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the settings are glibc's")
CODE = "from tgo.allocator import keep_freed_memory as k; print(k(), k())"


def _run(env_value: str | None) -> list[str]:
    env = dict(os.environ)
    env.pop("TGO_MALLOC_TUNING", None)
    if env_value is not None:
        env["TGO_MALLOC_TUNING"] = env_value
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True,
                          text=True, check=True).stdout.split()


@glibc_only
def test_applied_on_glibc_and_idempotent():
    assert _run(None) == ["True", "True"]


def test_switch_off_leaves_the_defaults():
    assert _run("0") == ["False", "False"]


@glibc_only
def test_fit_on_cpu_applies_it():
    code = ("from tgo import allocator; from tgo.config import TrainConfig; "
            "from tgo.train import fit; before = allocator._applied; "
            "fit(TrainConfig(epochs=1, device='cpu', val_subset=16, val_steps=1, timesteps=1)); "
            "print(before, allocator._applied)")
    env = {k: v for k, v in os.environ.items() if k != "TGO_MALLOC_TUNING"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "True"]
