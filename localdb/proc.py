"""The detached helper processes of a local cluster (the pg_net worker, the Edge Function stand-in).

Each runs as `python -m localdb.<module>` in its own session, logs to a file, and is known by a pid
file that it watches: once the file no longer names it, it exits. One set of helpers for both.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def pid_in(path: Path) -> int | None:
    """The pid a pid (or ready) file names, if it can be read."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def runs_module(pid: int, module: str) -> bool:
    """Whether `pid` is a live `python -m module` (a recycled pid is someone else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return module.encode() in cmdline and alive(pid)


def start(module: str, args: list[str], *, log_file: Path, pid_file: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """`python -m module ARGS` detached (own session, output to `log_file`); its pid written to `pid_file`."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    with log_file.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, env=env, cwd=cwd, start_new_session=True)
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{proc.pid}\n")
    tmp.replace(pid_file)  # atomically: the child checks that the file names it
    return proc


def stop(pid: int, *, timeout: float = 5.0) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL; reaped when it is our child."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.02)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
