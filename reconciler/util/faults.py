"""TEST-ONLY fault injection for the apply path: crash and pause points, driven by RECONCILER_FAULT.

This is not a feature and must never be set in production. The reliability tests
(tests/integration/reliability/) run `reconcile --apply` as a real subprocess with this
variable set, to prove that a crash at any point leaves the database as it was before or as a clean
apply leaves it, never a mix, and that a lost connection fails with one retryable line.

The apply (reconciler/engine/apply.py, reconciler/engine/db.py) calls `point(name)` just before each round trip
it makes to the database: BEGIN and the lock, each read, each statement, the ownership records, the
verification read and COMMIT. Points are numbered 1, 2, 3... in the order the process reaches them.

RECONCILER_FAULT holds one or more comma-separated specs:

    kill-before-statement:N             SIGKILL this process just before point N
    sleep-before-statement:N:SECONDS    sleep SECONDS just before point N (then carry on)
    kill-at:NAME / sleep-at:NAME:SECONDS the same at the first point called NAME (e.g. `commit`)
    wait-at:NAME:PATH                   at the first point called NAME, wait until the file PATH exists
                                        (at most 60 s): the test edits the database, then creates it
    trace                               write `fault-point N NAME` to stderr at every point

A second, test-only switch arms it: RECONCILER_FAULT is obeyed only when RECONCILER_FAULT_ARMED is
`tests` too (tests/conftest.py sets it for the test session and the processes it starts), so a
RECONCILER_FAULT left set by accident cannot kill a production controller: unarmed, it is ignored
with one warning on stderr.

When RECONCILER_FAULT is unset, empty or unarmed, `point` is a function that does nothing: the variables
are read once, at import, and cost nothing afterwards. A malformed armed value raises ValueError at
import, so a mistyped test fails loudly instead of silently testing nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass

ENV = "RECONCILER_FAULT"
#: The test-only switch, and the value that arms fault injection.
ARM_ENV = "RECONCILER_FAULT_ARMED"
ARMED = "tests"


@dataclass(frozen=True)
class Fault:
    action: str  # "kill", "sleep" or "wait"
    number: int | None = None  # before the point with this number...
    name: str | None = None  # ...or at the first point with this name
    seconds: float = 0.0
    resume_file: str = ""  # "wait": carry on once this file exists


def parse(text: str) -> tuple[list[Fault], bool]:
    """The faults in `text` and whether tracing is on; ValueError names the bad spec."""
    faults: list[Fault] = []
    trace = False
    for spec in filter(None, (s.strip() for s in text.split(","))):
        if spec == "trace":
            trace = True
            continue
        head, _, rest = spec.partition(":")
        action, _, where = head.partition("-")
        args = rest.split(":", 1) if rest else []
        try:
            if action == "wait" and where == "at" and len(args) == 2 and all(args):
                faults.append(Fault(action, name=args[0], resume_file=args[1]))
                continue
            if action not in ("kill", "sleep") or where not in ("before-statement", "at"):
                raise ValueError
            if len(args) != (1 if action == "kill" else 2):
                raise ValueError
            seconds = float(args[1]) if action == "sleep" else 0.0
            if where == "before-statement":
                number = int(args[0])
                if number < 1:
                    raise ValueError
                faults.append(Fault(action, number=number, seconds=seconds))
            else:
                faults.append(Fault(action, name=args[0], seconds=seconds))
        except ValueError:
            raise ValueError(f"{ENV}: cannot read {spec!r} (see reconciler/util/faults.py)") from None
    return faults, trace


class _Injector:
    def __init__(self, faults: list[Fault], trace: bool) -> None:
        self.faults = faults
        self.trace = trace
        self.count = 0
        self.seen: set[str] = set()

    def __call__(self, name: str) -> None:
        self.count += 1
        first = name not in self.seen
        self.seen.add(name)
        if self.trace:
            print(f"fault-point {self.count} {name}", file=sys.stderr, flush=True)
        for fault in self.faults:
            if fault.number == self.count or (first and fault.name == name):
                if fault.action == "kill":
                    sys.stderr.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
                if fault.action == "wait":
                    deadline = time.monotonic() + 60
                    while not os.path.exists(fault.resume_file) and time.monotonic() < deadline:
                        time.sleep(0.02)
                time.sleep(fault.seconds)


def _noop(name: str) -> None:
    return None


def _make(text: str | None, armed: str | None = ARMED) -> _Injector | None:
    if not text:
        return None
    if armed != ARMED:
        print(f"warning: {ENV} is set but ignored: fault injection is for the test suite only "
              f"({ARM_ENV} is not set)", file=sys.stderr, flush=True)
        return None
    faults, trace = parse(text)
    return _Injector(faults, trace) if faults or trace else None


_injector = _make(os.environ.get(ENV), os.environ.get(ARM_ENV))

#: Called by the apply before each round trip; does nothing unless RECONCILER_FAULT is set.
point = _injector if _injector is not None else _noop
