"""Helpers for the observability tests: a real Prometheus (Debian's `prometheus`) and a webhook receiver.

`prometheus_server` starts Prometheus on a free port with its own config and data directory under the
test's tmp_path, scraping the given targets and evaluating the given rule file every second; it is always
killed at the end. `Receiver` is an HTTP server in a thread that records every JSON body POSTed to it and
can refuse the first few with 503 (to exercise the notifier's retries).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.fix_db import free_port
from tests.tools import system_tool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/reconciler-rules.yaml"


def fast_rules(path: Path, for_: str = "0s") -> Path:
    """The shipped rules with every `for:` shortened, so a test sees an alert fire within seconds."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule["for"] = for_
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class Prometheus:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0)

    def api(self, path: str, **params: str) -> Any:
        response = self.http.get("/api/v1/" + path, params=params)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self, state: str = "firing") -> dict[str, list[dict[str, str]]]:
        """alertname -> the label sets of its alerts in `state`."""
        out: dict[str, list[dict[str, str]]] = {}
        for alert in self.api("alerts")["alerts"]:
            if alert["state"] == state:
                out.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        return out

    def metric_names(self) -> set[str]:
        return set(self.api("label/__name__/values"))

    def targets_up(self) -> bool:
        active = self.api("targets")["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)


@contextlib.contextmanager
def prometheus_server(workdir: Path, targets: list[str], rules: Path) -> Iterator[Prometheus]:
    exe = system_tool("/usr/bin/prometheus", "prometheus")
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "scheduler-reconciler", "static_configs": [{"targets": targets}]}],
    }))
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    server = Prometheus(proc, port, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if server.http.get("/-/ready").status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus not ready within 30 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        server.http.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Receiver:
    """A webhook receiver: `bodies` holds every accepted JSON body, `refused` the ones answered 503."""

    def __init__(self, refuse_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.refused = 0
        self._refuse = refuse_first
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.raw.append(data)
                    if receiver._refuse > 0:
                        receiver._refuse -= 1
                        receiver.refused += 1
                        status = 503
                    else:
                        receiver.bodies.append(json.loads(data))
                        status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/T000/B000/receiver-token-4f1c"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()

    def events(self, event: str | None = None, **details: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [b for b in self.bodies if (event is None or b["event"] == event)
                    and all(b["details"].get(k) == v for k, v in details.items())]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
