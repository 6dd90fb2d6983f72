"""verify's literal-credential scan: long random-looking tokens, JWTs and sb_secret_ keys stored in plain
text in cron.job commands or scheduled_jobs. A hit is described by kind and position, never quoted.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from reconciler.verify.evidence import CheckResult, Evidence, Status, joined_with_and

# -- literal credentials ----------------------------------------------------------------------------

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}")
_SB_KEY = re.compile(r"sb_secret_[A-Za-z0-9_-]{8,}")
_TOKEN = re.compile(r"[A-Za-z0-9+/_=-]{32,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]{32,}")


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _looks_random(token: str) -> bool:
    """A long token that is a credential rather than SQL: hex with letters and digits, or a long mixed-case
    alphanumeric run (base64) between separators; identifiers and paths (`/functions/v1/fetch-rss`) are not."""
    token = token.strip("=")
    if len(token) < 32 or _UUID.fullmatch(token):
        return False
    if _HEX.fullmatch(token):
        return any(c.isdigit() for c in token) and any(c.isalpha() for c in token) and _entropy(token) >= 3.0
    longest = max(re.split(r"[_\-/.+=]", token), key=len)
    mixed = (any(c.islower() for c in longest) and any(c.isupper() for c in longest)
             and any(c.isdigit() for c in longest))
    return len(longest) >= 16 and mixed and _entropy(token) >= 3.5


def scan_text(text: str) -> list[tuple[str, int]]:
    """Literal credentials in `text`: (kind, character offset) pairs. Never returns the literal."""
    found: list[tuple[str, int]] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in (("a JWT-shaped token", _JWT), ("an sb_secret_ API key", _SB_KEY)):
        for m in pattern.finditer(text):
            found.append((kind, m.start()))
            taken.append(m.span())
    for m in _UUID.finditer(text):
        taken.append(m.span())
    for m in _TOKEN.finditer(text):
        if any(a < m.end() and m.start() < b for a, b in taken):
            continue
        if _looks_random(m.group()):
            found.append((f"a {len(m.group())}-character random-looking string", m.start()))
    return sorted(found, key=lambda f: f[1])


def check_secret_literals(ev: Evidence) -> CheckResult:
    name = "secret literals"
    hits = []
    for t in ev.texts:
        for kind, offset in scan_text(t.value):
            hits.append(f"{t.source} {t.key!r} column {t.column}: {kind} at character {offset + 1}")
    scanned = len({(t.source, t.key) for t in ev.texts})
    unread = [rel for rel in ("cron.job", "public.scheduled_jobs") if rel in ev.unavailable]
    if hits:
        return CheckResult(name, Status.FAIL, f"{len(hits)} literal credential(s) stored in plain text", tuple(hits),
                           "move the value into Vault (declare it under secrets: in the manifest) and read it when "
                           "the command runs with (SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name "
                           "= '...'); then rotate the exposed credential: pg_cron also copied it into "
                           "cron.job_run_details.command of every run (DELETE those rows)")
    if len(unread) == 2:  # nothing could be scanned: not a pass
        return CheckResult(name, Status.SKIP, f"not checked: {joined_with_and(unread)} could not be read",
                           tuple(f"{rel}: not read ({ev.unavailable[rel]})" for rel in unread))
    if unread:
        read = "public.scheduled_jobs" if unread == ["cron.job"] else "cron.job"
        return CheckResult(name, Status.SKIP, f"no literal credentials in {read} ({scanned} row(s) scanned); "
                                              f"{unread[0]} could not be read: {ev.unavailable[unread[0]]}")
    return CheckResult(name, Status.PASS, f"no literal credentials in cron.job commands or scheduled_jobs "
                                          f"({scanned} row(s) scanned)")

