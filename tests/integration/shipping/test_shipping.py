"""What users receive: the sdist and wheel built from this checkout, installed outside the development
virtualenv, run against the real test cluster.

Two fresh virtualenvs, neither with the test extra nor the repository on its path:
- the user's: `pip install <wheel>` (no extras), the newest dependencies the ranges allow;
- the image's: the Dockerfile's own steps, `requirements.lock` (exact versions and hashes) then the wheel
  without dependencies; the Dockerfile's ENTRYPOINT + CMD then runs from there as a real process.
No Docker engine runs here, so the container is its command line in the image's environment.
A third install is a tool's: `uv tool install <wheel>`, with its own tool and bin directories.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from packaging.requirements import Requirement

from tests.fix_db import DbTarget, free_port
from tests.integration.apply_support import JOB_NAMES, MARKERS, SECRETS_ENV

ROOT = Path(__file__).resolve().parents[3]
DEV_BIN = Path(sys.executable).parent


def _run(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert result.returncode == 0, f"{shlex.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    @property
    def reconcile(self) -> str:
        return str(self.root / "bin" / "reconcile")

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([self.python, "-m", "pip", "--disable-pip-version-check", *args])

    def install(self, *args: str) -> None:
        """`pip install ARGS`, done by uv for speed (same resolution; pip itself still runs `pip check`)."""
        _run([str(DEV_BIN / "uv"), "pip", "install", "--quiet", "--python", self.python, *args])


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """`python -m build`: the sdist, then the wheel built from that sdist (so the sdist is complete)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)])
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Dist(wheel, sdist)


def _fresh_venv(path: Path) -> Venv:
    # uv's virtualenv is a standard one (pyvenv.cfg, no system site-packages), seeded with pip
    _run([str(DEV_BIN / "uv"), "venv", "--quiet", "--seed", "--python", sys.executable, str(path)])
    return Venv(path)


@pytest.fixture(scope="module")
def user_venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    venv = _fresh_venv(tmp_path_factory.mktemp("user") / "venv")
    venv.install(str(dist.wheel))
    return venv


@pytest.fixture(scope="module")
def image_venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    venv = _fresh_venv(tmp_path_factory.mktemp("image") / "venv")
    venv.install("--require-hashes", "--no-deps", "-r", str(ROOT / "requirements.lock"))
    venv.install("--no-deps", str(dist.wheel))
    return venv


def _user_env(url: str, home: Path) -> dict[str, str]:
    """A new shell's environment: no PYTHONPATH, no development virtualenv on PATH."""
    path = ":".join(p for p in os.environ.get("PATH", "/usr/bin:/bin").split(":") if Path(p) != DEV_BIN)
    return {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8", "DATABASE_URL": url, **SECRETS_ENV}


# -- the distributions ------------------------------------------------------------------------------------


def test_the_wheel_holds_the_reconciler_only(dist: Dist) -> None:
    names = zipfile.ZipFile(dist.wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"reconciler", f"{dist.wheel.name.split('-')[0]}-{dist.wheel.name.split('-')[1]}.dist-info"}
    assert "reconciler/sql/app_tables.sql" in names
    assert not any(name.startswith(("localdb", "tests", "bench")) for name in names)


def test_sdist_and_wheel_pass_twine_check(dist: Dist) -> None:
    result = _run([str(DEV_BIN / "twine"), "check", "--strict", str(dist.wheel), str(dist.sdist)])
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_version_has_one_source(user_venv: Venv, dist: Dist) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert dist.wheel.name.startswith(f"scheduler_reconciler-{declared}-")
    assert _run([user_venv.reconcile, "--version"]).stdout.strip() == f"reconcile, version {declared}"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(declared)}\b", changelog, re.M), "CHANGELOG.md has no entry for the version"


# -- a user's install: pip install <wheel>, no extras --------------------------------------------------


def test_user_install_is_consistent_and_lacks_development_tooling(user_venv: Venv) -> None:
    user_venv.pip("check")
    probe = ("import importlib.util, reconciler; print(reconciler.__file__); "
             "print(*(importlib.util.find_spec(m) is not None for m in ('localdb', 'pytest', 'croniter', 'deepdiff')))")
    out = _run([user_venv.python, "-c", probe], cwd=user_venv.root).stdout.splitlines()
    assert out[0].startswith(str(user_venv.root))
    assert out[1] == "False False False False"


def test_user_install_plans_applies_and_converges(user_venv: Venv, audited_db: DbTarget, tmp_path: Path) -> None:
    env = _user_env(audited_db.url, tmp_path)
    manifest = str(ROOT / "scheduler.yaml")
    plan = subprocess.run([user_venv.reconcile, "--dry-run", "-f", manifest], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    # 3 extensions, 3 secrets, 13 jobs, 1 trigger
    assert "\nPlan: 20 to create, 0 to update, 0 to delete.\n" in plan.stdout, plan.stdout
    applied = subprocess.run([user_venv.reconcile, "--apply", "-f", manifest], capture_output=True, text=True,
                             env=env, cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    again = subprocess.run([user_venv.reconcile, "--dry-run", "--detailed-exitcode", "-f", manifest],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    with psycopg.connect(audited_db.superuser_url) as conn:
        names = {r[0] for r in conn.execute("SELECT job_name FROM public.scheduled_jobs")}
    assert names == set(JOB_NAMES)
    for text in (plan.stdout, plan.stderr, applied.stdout, applied.stderr):
        for marker in MARKERS:
            assert marker not in text


def _imported_modules(venv: Venv, args: list[str], env: dict[str, str], cwd: Path) -> set[str]:
    result = subprocess.run([venv.python, "-X", "importtime", venv.reconcile, *args], capture_output=True,
                            text=True, env=env, cwd=cwd)
    assert result.returncode in (0, 1, 2), result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def test_a_plan_without_edge_functions_never_imports_httpx(user_venv: Venv, audited_db: DbTarget,
                                                           tmp_path: Path) -> None:
    env = _user_env(audited_db.url, tmp_path)
    plain = _imported_modules(user_venv, ["--dry-run", "-f", str(ROOT / "scheduler.yaml")], env, tmp_path)
    assert "reconciler.plan" in plain and "psycopg" in plain  # the probe sees imports at all
    assert "httpx" not in plain and "reconciler.kinds.edge_api" not in plain
    # what only --watch, logging or an SQL text that differs needs (issue 17): none of it for an in-sync plan
    unused = {"prometheus_client", "structlog", "reconciler.watch.controller", "reconciler.watch.notify", "pglast"}
    assert plain & unused == set()

    # the positive control: with an edge_functions: section and a token, the client is imported (the
    # API address is closed, so the run itself ends in a one-line error)
    with_edge = tmp_path / "edge.yaml"
    with_edge.write_text((ROOT / "scheduler.yaml").read_text()
                         + "\nedge_functions:\n  project_ref: abcdefghijklmnopqrst\n  api_url: http://127.0.0.1:9\n"
                           "  secrets:\n    CRON_SECRET: {secret: cron_secret}\n")
    env_edge = {**env, "SUPABASE_ACCESS_TOKEN": "sbp_not_a_real_token"}
    assert "httpx" in _imported_modules(user_venv, ["--dry-run", "-f", str(with_edge)], env_edge, tmp_path)


# -- the image: requirements.lock + the wheel, then the Dockerfile's own command --------------------------


def _instruction(name: str) -> list[str]:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith(name + " "):
            return list(json.loads(line[len(name) + 1:]))
    raise AssertionError(f"no {name} in Dockerfile")


def test_the_dockerfile_installs_the_lock_then_the_wheel() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock" in text
    assert "pip install --require-hashes --no-deps -r requirements.lock" in text
    assert "pip install --no-deps /tmp/dist/*.whl" in text
    assert "COPY localdb" not in text and "COPY tests" not in text


def test_the_lock_pins_every_runtime_dependency_within_its_range() -> None:
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", (ROOT / "requirements.lock").read_text(), re.M))
    pins = {name.lower().replace("_", "-"): version for name, version in pins.items()}
    for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(line)
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in requirements.lock: run scripts/lock.sh"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement.specifier}"
        for extra in requirement.extras:  # psycopg[binary] -> psycopg-binary
            assert f"{name}-{extra}" in pins, f"{name}[{extra}] is not in requirements.lock: run scripts/lock.sh"


def test_the_image_install_is_consistent(image_venv: Venv) -> None:
    image_venv.pip("check")  # a runtime dependency missing from the lock fails here


def test_the_image_command_reconciles_serves_health_and_stops_on_sigterm(image_venv: Venv, audited_db: DbTarget,
                                                                        tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "scheduler.yaml").write_text((ROOT / "scheduler.yaml").read_text())
    port = free_port()
    entrypoint, command = _instruction("ENTRYPOINT"), _instruction("CMD")
    assert entrypoint == ["reconcile"]
    args = [a.replace("/config/scheduler.yaml", str(config / "scheduler.yaml")) for a in command]
    args[args.index("--http-port") + 1] = str(port)
    args += ["--interval", "1s"]
    env = _user_env(audited_db.url, tmp_path)
    env["PATH"] = f"{image_venv.root / 'bin'}:{env['PATH']}"  # the image's PATH finds its `reconcile`
    proc = subprocess.Popen([*entrypoint, *args], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for status in _poll(f"http://127.0.0.1:{port}/healthz", deadline=30):
            if status == 200:
                break
        else:
            raise AssertionError(f"/healthz never answered 200: {shlex.join(args)}")
        for status in _poll(f"http://127.0.0.1:{port}/readyz", deadline=30):
            if status == 200:
                break
        else:
            raise AssertionError("/readyz never answered 200")
        with psycopg.connect(audited_db.superuser_url) as conn:
            jobs = conn.execute("SELECT count(*) FROM public.scheduled_jobs WHERE is_active").fetchone()
            triggers = conn.execute("SELECT count(*) FROM cron.job WHERE jobname = 'master-scheduler'").fetchone()
        assert (jobs, triggers) == ((13,), (1,))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert "controller_started" in events and "cycle_finished" in events and events[-1] == "controller_stopped"
    for marker in MARKERS:
        assert marker not in out + err


def _poll(url: str, deadline: float) -> Iterator[int]:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            status = httpx.get(url, timeout=1).status_code
        except httpx.HTTPError:
            status = 0  # not listening yet
        yield status
        time.sleep(0.2)


# -- a tool install: uv tool install <wheel> (pipx works the same way) ------------------------------------


def test_uv_tool_install_from_the_wheel_gives_a_working_command(dist: Dist, tmp_path: Path) -> None:
    """`uv tool install` puts `reconcile` on the tool bin directory, in an environment of its own."""
    tools, bin_dir = tmp_path / "tools", tmp_path / "bin"
    env = {**os.environ, "UV_TOOL_DIR": str(tools), "UV_TOOL_BIN_DIR": str(bin_dir), "UV_PYTHON_DOWNLOADS": "never"}
    _run([str(DEV_BIN / "uv"), "tool", "install", "--quiet", "--python", sys.executable, str(dist.wheel)], env=env)
    listed = _run([str(DEV_BIN / "uv"), "tool", "list"], env=env).stdout
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"scheduler-reconciler v{declared}\n- reconcile" in listed
    user = _user_env("postgresql:///unused", tmp_path)
    reconcile = str(bin_dir / "reconcile")
    assert _run([reconcile, "--version"], env=user).stdout.strip() == f"reconcile, version {declared}"
    result = _run([reconcile, "validate", "-f", str(ROOT / "scheduler.yaml")], env=user, cwd=tmp_path)
    assert result.stdout.endswith("13 jobs, 1 trigger: valid\n")
    assert (tools / "scheduler-reconciler").is_dir() and not str(bin_dir).startswith(str(DEV_BIN))


def test_the_metadata_has_license_classifiers_and_urls(dist: Dist) -> None:
    from email.parser import HeaderParser

    with zipfile.ZipFile(dist.wheel) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = HeaderParser().parsestr(wheel.read(name).decode())
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wheel.namelist())
    assert metadata["License-Expression"] == "MIT"
    classifiers = metadata.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers and "Topic :: Database" in classifiers
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL"))
    assert {"Homepage", "Documentation", "Changelog", "Issues"} <= set(urls)
