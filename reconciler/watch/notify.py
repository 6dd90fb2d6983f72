"""Webhook notifications from `reconcile --watch --notify URL`: one message per change of state.

Where it sits: the controller owns one `Notices` (the state: is the cycle failing, is there drift, which
pipeline checks fail) and calls it once per cycle with the cycle's outcome and the check transitions from
`watch.pipeline`. A change becomes one message, handed to `Notifier`, which posts it from a background
thread: a cycle never waits for a webhook. Each message is a JSON object whose `text` field Slack,
Mattermost, Rocket.Chat and similar incoming webhooks display; `event`, `severity` and `details` are
there for machines.

Delivery: up to `attempts` tries per URL with exponential backoff (0.5 s, 1 s, 2 s ...) on a transport
error, 429 or 5xx; any other 4xx is not retried. The queue is bounded; when it is full (a receiver that
hangs for minutes) new messages are dropped and counted in the log. httpx is imported only when a
message is sent.

Secrets: a message is built from check names, summaries and change keys (never values), and every
resolved secret value is replaced by `(sensitive)` before it is queued. A webhook URL is itself a
credential (Slack's carries its token in the path): logs name its scheme and host only, and errors name
where the URL came from, never the URL. Because a command line is public (`ps`, /proc/PID/cmdline, a
Deployment in git), secret URLs come from the environment variable RECONCILE_NOTIFY_URLS or a file
(`--notify-file`, as Kubernetes mounts a Secret key); `--notify URL` is for endpoints that are not secret.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from reconciler.errors import ReconcilerError
from reconciler.secret_value import scrub

log = structlog.get_logger("reconciler.watch.notify")

SOURCE = "reconcile --watch"


#: Webhook URLs from the environment, separated by whitespace (a URL holds none).
NOTIFY_ENV = "RECONCILE_NOTIFY_URLS"


def webhook_url(text: str, where: str = "--notify") -> str:
    """`text` if it is an http(s) URL with a host; else a ReconcilerError naming `where` it came from and what
    is wrong (never the URL, which may hold a token)."""
    try:
        parts = urlsplit(text)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise ReconcilerError(f"{where}: not a URL (a malformed host or port)",
                              hint="give an http:// or https:// webhook URL") from None
    if parts.scheme not in ("http", "https"):
        scheme = parts.scheme if parts.scheme.isalpha() and len(parts.scheme) <= 10 else ""
        raise ReconcilerError(f"{where}: the URL's scheme must be http or https, not {scheme or 'none'!r}",
                              hint="give the webhook URL, e.g. https://hooks.slack.com/services/...")
    if not parts.hostname or any(c.isspace() for c in text):
        raise ReconcilerError(f"{where}: the URL has no host or contains spaces",
                              hint="give the webhook URL, e.g. https://hooks.slack.com/services/...")
    return text


def webhook_urls(given: Sequence[str], files: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """Every webhook URL: `--notify` (public), then RECONCILE_NOTIFY_URLS, then each `--notify-file` (one URL
    a line; blank lines and `#` comments skipped). Each is checked; duplicates are sent to once."""
    urls = [webhook_url(u) for u in given]
    for n, text in enumerate(environ.get(NOTIFY_ENV, "").split(), 1):
        urls.append(webhook_url(text, f"{NOTIFY_ENV} (URL {n})"))
    for path in files:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else "not UTF-8 text"
            raise ReconcilerError(f"--notify-file {path}: cannot read it ({reason})",
                                  hint="mount the Secret holding the webhook URLs there, one URL a line") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                urls.append(webhook_url(line, f"{path}:{n}"))
    return list(dict.fromkeys(urls))


def target(url: str) -> str:
    """What a log may say about a webhook URL: scheme, host and port."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


@dataclass(frozen=True)
class Message:
    event: str
    severity: str  # "critical" | "warning" | "info" (recoveries and corrections)
    text: str
    details: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "event": self.event, "severity": self.severity, "source": SOURCE,
                "details": self.details}


class Notifier:
    """Posts messages to every URL from one daemon thread. `send` never blocks."""

    def __init__(self, urls: Sequence[str], *, attempts: int = 4, backoff: float = 0.5, timeout: float = 5.0,
                 queue_size: int = 100) -> None:
        self.urls = [webhook_url(u) for u in urls]
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.secrets: list[str] = []
        self.dropped = 0
        self._queue: queue.Queue[Message | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> Notifier:
        if self.urls and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
            self._thread.start()
        return self

    def send(self, message: Message) -> None:
        if not self.urls:
            return
        clean = Message(message.event, message.severity, scrub(message.text, self.secrets),
                        _scrub_tree(message.details, self.secrets))
        try:
            self._queue.put_nowait(clean)
        except queue.Full:
            self.dropped += 1
            log.warning("notification_dropped", notify_event=message.event, dropped=self.dropped,
                        reason="the queue is full: the webhook receivers are slow or down")

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued for up to `timeout` seconds, then stop (messages left are dropped)."""
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        self._stopping.set()
        self._thread = None

    def _run(self) -> None:
        import httpx  # only a controller that sends something pays for it

        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            while True:
                message = self._queue.get()
                if message is None:
                    return
                for url in self.urls:
                    self._deliver(client, url, message)

    def _deliver(self, client: Any, url: str, message: Message) -> None:
        import httpx

        error = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = client.post(url, json=message.payload())
            except httpx.HTTPError as e:
                error = type(e).__name__
            else:
                if response.status_code < 300:
                    log.info("notification_sent", notify_event=message.event, target=target(url), attempt=attempt)
                    return
                error = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # the receiver refuses this message; sending it again will not help
            if attempt < self.attempts:
                delay = self.backoff * (2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
                if self._stopping.wait(delay):
                    break
        log.warning("notification_failed", notify_event=message.event, target=target(url), error=error,
                    attempts=attempt)


def _scrub_tree(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {k: _scrub_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_tree(v, secrets) for v in value]
    return value


class Notices:
    """The states notifications are about, and one message per change of any of them:

    - a cycle corrected drift (`drift_corrected`: each apply is its own change) or rolled out a change of
      the manifest (`manifest_rolled_out`);
    - drift found and not corrected (without --apply): `drift_detected` once, `drift_cleared` when gone;
    - `failures` failed cycles in a row: `cycle_failing` once, `cycle_recovered` after the next good cycle;
    - a pipeline check going from passing to failing (`pipeline_check_failing`) and back
      (`pipeline_check_recovered`); a check seen failing on the first verification counts as failing.
    """

    def __init__(self, notifier: Notifier, failures: int = 3) -> None:
        self.notifier = notifier
        self.failures = failures
        self.failed_cycles = 0
        self.failing_sent = False
        self.drift: tuple[str, ...] = ()

    def cycle(self, result: str, error: str | None, plan: Any, applied: bool) -> None:
        """After each cycle: `result` is success/drift/error/skipped; `plan` the cycle's plan (or None)."""
        if result == "skipped":
            return  # another replica holds the lock: nothing is known about this cycle
        if result == "error":
            self.failed_cycles += 1
            if self.failed_cycles >= self.failures and not self.failing_sent:
                self.failing_sent = True
                self._send("cycle_failing", "critical",
                           f"reconcile --watch: {self.failed_cycles} cycles in a row failed: {error}",
                           {"failed_cycles": self.failed_cycles, "error": error})
            return
        if self.failing_sent:
            self._send("cycle_recovered", "info",
                       f"reconcile --watch: recovered, a cycle succeeded after {self.failed_cycles} failed",
                       {"failed_cycles": self.failed_cycles})
        self.failed_cycles, self.failing_sent = 0, False
        # only what changed outside git is drift (Plan.drifted); a roll-out of the manifest is not
        changes = list(plan.drifted) if plan is not None else []
        lines = [f"{c.action.value} {c.kind} {c.key}" + (f" ({c.reason})" if c.reason else "") for c in changes]
        rolled_out = [c for c in plan.mutating if c not in changes] if plan is not None and applied else []
        if rolled_out:
            described = [f"{c.action.value} {c.kind} {c.key}" for c in rolled_out]
            self._send("manifest_rolled_out", "info",
                       f"reconcile --watch applied the manifest: {len(rolled_out)} change(s): " + "; ".join(described),
                       {"changes": described})
        if applied and changes:
            self._send("drift_corrected", "info",
                       f"reconcile --watch corrected drift: {len(changes)} change(s) applied: " + "; ".join(lines),
                       {"changes": lines})
            return
        drift = tuple(sorted(lines)) if not applied else ()
        if drift != self.drift:
            if drift:
                self._send("drift_detected", "warning",
                           f"reconcile --watch: the database differs from the manifest ({len(drift)} change(s), "
                           "not applied without --apply): " + "; ".join(drift), {"changes": list(drift)})
            else:
                self._send("drift_cleared", "info", "reconcile --watch: the database matches the manifest again",
                           {})
            self.drift = drift

    def checks(self, transitions: Sequence[Any]) -> None:
        for t in transitions:
            if not t.flipped:
                continue
            if t.failing:
                self._send("pipeline_check_failing", "critical",
                           f"scheduler pipeline check failing: {t.check}: {t.summary}",
                           {"check": t.check, "status": t.status, "previous": t.previous, "summary": t.summary})
            else:
                self._send("pipeline_check_recovered", "info",
                           f"scheduler pipeline check recovered: {t.check}: {t.summary}",
                           {"check": t.check, "status": t.status, "previous": t.previous, "summary": t.summary})

    def _send(self, event: str, severity: str, text: str, details: dict[str, Any]) -> None:
        if not self.notifier.urls:  # no --notify: nothing is queued, so nothing is said
            return
        log.info("notification_queued", notify_event=event, severity=severity)
        self.notifier.send(Message(event, severity, text, details))

