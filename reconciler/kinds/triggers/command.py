"""The SQL text a trigger stores in `cron.job.command`.

Data flow: Manifest.triggers ──render_command──▶ text that the trigger kind compares with, and writes to,
`cron.job.command`; `http_post_from_command` reads such text back into the `http_post:` form (for
`reconcile export`, which keeps that form only when rendering it gives back the live command). An `http_post` trigger becomes one `SELECT net.http_post(...) AS request_id`
statement that reads secrets from `vault.decrypted_secrets` when pg_cron runs it, so no secret value is
ever embedded. Every literal is quoted here, in plain Python, exactly as psycopg.sql.Literal quotes it
without a connection (so planning loads no driver, and text written by earlier versions stays in sync), and
the output is a pure function of the manifest: the same trigger always renders to byte-identical text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from reconciler.manifest import HttpPostSpec, NowMarker, SecretRef, TriggerSpec

__all__ = ["http_post_from_command", "render_command", "render_http_post", "secret_lookup", "sql_literal"]

_INDENT = "  "


def sql_literal(value: Any) -> str:
    """`value` as an SQL literal: standard_conforming_strings quoting, E'' when a backslash needs it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "'NaN'::float8"
        if math.isinf(value):
            return "'Infinity'::float8" if value > 0 else "'-Infinity'::float8"
        return repr(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("an SQL literal cannot hold a NUL character")
        quoted = value.replace("'", "''")
        if "\\" in quoted:
            return "E'" + quoted.replace("\\", "\\\\") + "'"
        return f"'{quoted}'"
    raise TypeError(f"cannot quote {type(value).__name__} as an SQL literal")


def secret_lookup(ref: SecretRef) -> str:
    """`(SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = '...')` with prepend/append."""
    text = f"(SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = {sql_literal(ref.secret)})"
    if ref.prepend:
        text = f"{sql_literal(ref.prepend)} || {text}"
    if ref.append:
        text = f"{text} || {sql_literal(ref.append)}"
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
        return sql_literal(value)
    raise TypeError(f"cannot render {type(value).__name__} in a trigger body")


def _object(mapping: Mapping[str, Any], depth: int) -> str:
    if not mapping:
        return "jsonb_build_object()"
    inner = _INDENT * (depth + 1)
    pairs = ",\n".join(f"{inner}{sql_literal(str(k))}, {_value(v, depth + 1)}" for k, v in mapping.items())
    return f"jsonb_build_object(\n{pairs}\n{_INDENT * depth})"


def render_http_post(post: HttpPostSpec) -> str:
    """`SELECT net.http_post(url := ..., headers := ..., body := ...[, timeout_milliseconds := N]) AS request_id`."""
    url = secret_lookup(post.url) if isinstance(post.url, SecretRef) else sql_literal(post.url)
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


class _NotHttpPost(Exception):
    """The command is not in the shape render_http_post writes."""


def http_post_from_command(command: str) -> dict[str, Any] | None:
    """The `http_post:` mapping (manifest form) of a command in render_http_post's shape, else None.

    Only the shape is recognised here; the caller renders the result again and compares it with the command.
    """
    from pglast import ast, parse_sql

    try:
        statements = parse_sql(command)
    except Exception:  # not SQL pglast can parse: a raw command
        return None
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.SelectStmt):
        return None
    select = statements[0].stmt
    if (select.fromClause or select.whereClause or select.distinctClause or select.withClause
            or not select.targetList or len(select.targetList) != 1):
        return None
    call = select.targetList[0].val
    if not isinstance(call, ast.FuncCall) or _names(call.funcname) != ("net", "http_post"):
        return None
    try:
        out: dict[str, Any] = {}
        for arg in call.args or ():
            if not isinstance(arg, ast.NamedArgExpr) or arg.name in out:
                raise _NotHttpPost
            if arg.name == "url":
                out["url"] = _url_or_ref(arg.arg)
            elif arg.name in ("headers", "body"):
                out[arg.name] = _build_object(arg.arg)
            elif arg.name == "timeout_milliseconds":
                out["timeout_milliseconds"] = _constant(arg.arg)
            else:
                raise _NotHttpPost
    except _NotHttpPost:
        return None
    return out if "url" in out else None


def _names(parts: Any) -> tuple[str | None, ...]:
    return tuple(getattr(p, "sval", None) for p in parts or ())


def _constant(node: Any) -> Any:
    from pglast import ast

    if not isinstance(node, ast.A_Const):
        raise _NotHttpPost
    if node.isnull:
        return None
    value = node.val
    if isinstance(value, ast.String):
        return value.sval
    if isinstance(value, ast.Boolean):
        return bool(value.boolval)
    if isinstance(value, ast.Integer):
        return int(value.ival or 0)
    if isinstance(value, ast.Float):
        text = str(value.fval)
        return int(text) if text.lstrip("-").isdigit() else float(text)
    raise _NotHttpPost


def _concatenation(node: Any) -> list[Any]:
    from pglast import ast

    if isinstance(node, ast.A_Expr) and _names(node.name) == ("||",) and node.lexpr is not None:
        return [*_concatenation(node.lexpr), *_concatenation(node.rexpr)]
    return [node]


def _secret_name(node: Any) -> str | None:
    """`name` of `(SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'name')`, else None."""
    from pglast import ast

    if not isinstance(node, ast.SubLink) or not isinstance(node.subselect, ast.SelectStmt):
        return None
    sub = node.subselect
    target = sub.targetList[0].val if sub.targetList and len(sub.targetList) == 1 else None
    source = sub.fromClause[0] if sub.fromClause and len(sub.fromClause) == 1 else None
    where = sub.whereClause
    if (not isinstance(target, ast.ColumnRef) or _names(target.fields) != ("decrypted_secret",)
            or not isinstance(source, ast.RangeVar) or (source.schemaname, source.relname) != ("vault", "decrypted_secrets")
            or not isinstance(where, ast.A_Expr) or _names(where.name) != ("=",)
            or not isinstance(where.lexpr, ast.ColumnRef) or _names(where.lexpr.fields) != ("name",)):
        return None
    name = _constant(where.rexpr)
    return name if isinstance(name, str) else None


def _url_or_ref(node: Any) -> Any:
    """A string literal, or `{secret: name}` with optional `prepend`/`append` around the lookup."""
    parts = _concatenation(node)
    lookups = [i for i, part in enumerate(parts) if _secret_name(part) is not None]
    if not lookups:
        if len(parts) != 1:
            raise _NotHttpPost
        value = _constant(parts[0])
        if not isinstance(value, str):
            raise _NotHttpPost
        return value
    if len(lookups) != 1 or len(parts) > 3:
        raise _NotHttpPost
    at = lookups[0]
    before, after = parts[:at], parts[at + 1:]
    if len(before) > 1 or len(after) > 1:
        raise _NotHttpPost
    ref: dict[str, Any] = {"secret": _secret_name(parts[at])}
    for key, side in (("append", after), ("prepend", before)):
        if side:
            text = _constant(side[0])
            if not isinstance(text, str):
                raise _NotHttpPost
            ref[key] = text
    return ref


def _build_object(node: Any) -> dict[str, Any]:
    from pglast import ast

    if not isinstance(node, ast.FuncCall) or _names(node.funcname) != ("jsonb_build_object",):
        raise _NotHttpPost
    args = list(node.args or ())
    if len(args) % 2:
        raise _NotHttpPost
    out: dict[str, Any] = {}
    for key_node, value_node in zip(args[::2], args[1::2], strict=True):
        key = _constant(key_node)
        if not isinstance(key, str) or key in out:
            raise _NotHttpPost
        out[key] = _json_value(value_node)
    return out


def _json_value(node: Any) -> Any:
    from pglast import ast

    if isinstance(node, ast.TypeCast):
        call = node.arg
        if (isinstance(call, ast.FuncCall) and _names(call.funcname) == ("now",) and not call.args
                and node.typeName is not None and _names(node.typeName.names) in {("text",), ("pg_catalog", "text")}):
            return {"now": "text"}
        raise _NotHttpPost
    if isinstance(node, ast.FuncCall):
        if _names(node.funcname) == ("jsonb_build_array",):
            return [_json_value(item) for item in node.args or ()]
        return _build_object(node)
    if _secret_name(node) is not None or isinstance(node, ast.A_Expr):
        return _url_or_ref(node)
    return _constant(node)
