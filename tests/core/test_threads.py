"""Thread settings: OpenMP threads sleep while they wait, so training shares a busy CPU (benchmarks/shared_cpu.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW = "import digitlab, os; print(os.environ.get('OMP_WAIT_POLICY'))"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "PASSIVE"),  # digitlab's default
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"),  # the user's own choice wins
        ({"DIGITLAB_THREADS": "off"}, "None"),  # and digitlab can be told to leave threads alone
    ],
)
def test_openmp_threads_wait_passively_unless_told_otherwise(env: dict[str, str], expected: str) -> None:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "DIGITLAB_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", SHOW], env={**base, **env}, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == expected
