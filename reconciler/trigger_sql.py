"""The SQL text a trigger stores in `cron.job.command`.

Data flow: Manifest.triggers ──render_command──▶ text that kinds/triggers.py compares with, and writes to,
`cron.job.command`. An `http_post` trigger becomes one `SELECT net.http_post(...) AS request_id`
statement that reads secrets from `vault.decrypted_secrets` when pg_cron runs it, so no secret value is
ever embedded. Every literal is quoted by psycopg.sql (no connection needed), and the output is a pure
function of the manifest: the same trigger always renders to byte-identical text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import sql

from reconciler.manifest import HttpPostSpec, NowMarker, SecretRef, TriggerSpec

__all__ = ["render_command", "render_http_post", "secret_lookup"]

_INDENT = "  "


def _literal(value: Any) -> str:
    return sql.Literal(value).as_string(None).strip()


def secret_lookup(ref: SecretRef) -> str:
    """`(SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = '...')` with prepend/append."""
    text = f"(SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = {_literal(ref.secret)})"
    if ref.prepend:
        text = f"{_literal(ref.prepend)} || {text}"
    if ref.append:
        text = f"{text} || {_literal(ref.append)}"
    return text


def _value(value: Any, depth: int) -> str:
    if isinstance(value, SecretRef):
        return secret_lookup(value)
    if isinstance(value, NowMarker):
        return "now()::text"
    if isinstance(value, Mapping):
        return _object(value, depth)
    if isinstance(value, list | tuple):
        if not value:
            return "jsonb_build_array()"
        inner = _INDENT * (depth + 1)
        items = ",\n".join(inner + _value(v, depth + 1) for v in value)
        return f"jsonb_build_array(\n{items}\n{_INDENT * depth})"
    if isinstance(value, bool | int | float | str) or value is None:
        return _literal(value)
    raise TypeError(f"cannot render {type(value).__name__} in a trigger body")


def _object(mapping: Mapping[str, Any], depth: int) -> str:
    if not mapping:
        return "jsonb_build_object()"
    inner = _INDENT * (depth + 1)
    pairs = ",\n".join(f"{inner}{_literal(str(k))}, {_value(v, depth + 1)}" for k, v in mapping.items())
    return f"jsonb_build_object(\n{pairs}\n{_INDENT * depth})"


def render_http_post(post: HttpPostSpec) -> str:
    """`SELECT net.http_post(url := ..., headers := ..., body := ...[, timeout_milliseconds := N]) AS request_id`."""
    url = secret_lookup(post.url) if isinstance(post.url, SecretRef) else _literal(post.url)
    args = [
        f"url := {url}",
        f"headers := {_object(post.headers, 1)}",
        f"body := {_object(post.body, 1)}",
    ]
    if post.timeout_milliseconds is not None:
        args.append(f"timeout_milliseconds := {int(post.timeout_milliseconds)}")
    joined = ",\n".join(_INDENT + a for a in args)
    return f"SELECT net.http_post(\n{joined}\n) AS request_id"


def render_command(trigger: TriggerSpec) -> str:
    """The exact text `cron.job.command` should hold for `trigger` (a `command:` trigger: as written)."""
    if trigger.http_post is not None:
        return render_http_post(trigger.http_post)
    if trigger.command is None:  # the model guarantees one of the two
        raise ValueError(f"trigger {trigger.name!r} has neither command nor http_post")
    return trigger.command
