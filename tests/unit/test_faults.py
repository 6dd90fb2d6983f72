"""Fault injection (reconciler/util/faults.py) obeys RECONCILER_FAULT only when the test-only switch arms it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from reconciler.util import faults

ROOT = Path(__file__).resolve().parents[2]
PROBE = "from reconciler.util import faults; print(faults.point is faults._noop)"


def _noop_in(env: dict[str, str]) -> tuple[bool, str]:
    base = {k: v for k, v in os.environ.items() if k not in (faults.ENV, faults.ARM_ENV)}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**base, **env}, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip() == "True", out.stderr


def test_a_fault_set_by_accident_is_ignored_with_a_warning() -> None:
    noop, stderr = _noop_in({faults.ENV: "kill-at:commit"})
    assert noop
    assert stderr.count("\n") == 1 and "RECONCILER_FAULT is set but ignored" in stderr


def test_a_wrong_switch_value_does_not_arm_it() -> None:
    assert _noop_in({faults.ENV: "kill-at:commit", faults.ARM_ENV: "1"})[0]


def test_armed_by_the_test_switch() -> None:
    assert _noop_in({faults.ENV: "trace", faults.ARM_ENV: faults.ARMED}) == (False, "")
