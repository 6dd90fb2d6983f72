"""Field types of the manifest: constrained strings, schedules, and the values an `http_post` may hold.

Data flow: used by `reconciler.manifest.models` to declare fields; each check raises a `manifest_value`
error whose message `reconciler.manifest.problems` shows as written. `SecretRef` and `NowMarker` (the two
markers) live here with the unions that hold them, so models only assemble what this module defines.
Imports nothing from the rest of the package.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    Tag,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypeAliasType

#: pg_cron dialect schedules are validated against unless the caller says otherwise (Supabase runs 1.6).
DEFAULT_CRON_VERSION: tuple[int, int] = (1, 6)

_MAX_NAME_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1: cron.job.jobname is `name` on pg_cron 1.4


# ---------------------------------------------------------------------------------------------------------
# Field types
# ---------------------------------------------------------------------------------------------------------


def fail(message: str) -> PydanticCustomError:
    # The message travels in the context so braces in it are never taken for a template.
    return PydanticCustomError("manifest_value", "{reason}", {"reason": message})


def quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAK = re.compile(r"[\r\n]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s")


def check_text(value: str) -> str:
    """Reject what PostgreSQL text cannot hold (NUL) and control characters nobody means to write."""
    if value.isprintable():  # the common case, checked in C: no control character, surrogate or NUL
        return value
    if "\x00" in value:
        raise fail("contains a NUL byte (PostgreSQL text cannot store it)")
    surrogate = _SURROGATE.search(value)
    if surrogate:  # only reachable from Python (the YAML loader refuses them): UTF-8 cannot encode one
        raise fail(f"contains the lone surrogate U+{ord(surrogate.group()):04X} (not valid Unicode)")
    match = _CONTROL.search(value)
    if match:
        raise fail(f"contains the control character U+{ord(match.group()):04X}")
    return value


def check_single_line(value: str) -> str:
    if value.isprintable():  # also no line break or tab
        return value
    check_text(value)
    if _LINE_BREAK.search(value) or "\t" in value:
        raise fail("must be a single line without tabs")
    return value


def check_not_blank(value: str) -> str:
    if not value.strip():
        raise fail("must not be empty")
    return value


def pattern(regex: str, explanation: str, *, max_bytes: int | None = None):
    compiled = re.compile(regex)

    def check(value: str) -> str:
        check_single_line(value)
        if not value:
            raise fail("must not be empty")
        if max_bytes is not None and len(value.encode("utf-8")) > max_bytes:
            raise fail(f"must be at most {max_bytes} bytes (got {len(value.encode('utf-8'))})")
        if not compiled.fullmatch(value):
            raise fail(f"{quote(value)} is not valid: {explanation}")
        return value

    return check


#: Any string in the manifest: no NUL, no control characters other than tab and line breaks.
Text = Annotated[str, AfterValidator(check_text)]
#: One line, no tabs: header values, URLs, descriptions of secrets.
Line = Annotated[str, AfterValidator(check_single_line)]
NonEmptyText = Annotated[str, AfterValidator(check_text), AfterValidator(check_not_blank)]

ResourceName = Annotated[
    str,
    AfterValidator(
        pattern(
            # Not (?i)[a-z]: with IGNORECASE, Python's [a-z] also matches U+0130, U+0131, U+017F, U+212A.
            r"[A-Za-z0-9][A-Za-z0-9_-]*",
            'use letters, digits, "_" and "-", starting with a letter or digit',
            max_bytes=_MAX_NAME_BYTES,
        )
    ),
    Field(json_schema_extra={"pattern": "^[A-Za-z0-9][A-Za-z0-9_-]*$", "maxLength": _MAX_NAME_BYTES}),
]
SECRET_NAME_REGEX = "^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"
SecretName = Annotated[
    str,
    AfterValidator(
        pattern(
            r"[A-Za-z_][A-Za-z0-9_.-]{0,127}",
            'use letters, digits, "_", "." and "-", at most 128, starting with a letter or "_"',
        )
    ),
    Field(json_schema_extra={"pattern": SECRET_NAME_REGEX}),
]
EnvName = Annotated[
    str,
    AfterValidator(
        pattern(r"[A-Za-z_][A-Za-z0-9_]*", 'an environment variable name: letters, digits and "_"')
    ),
    Field(json_schema_extra={"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}),
]
Identifier = Annotated[
    str,
    AfterValidator(
        pattern(
            r"[A-Za-z_][A-Za-z0-9_$-]*",
            'a PostgreSQL identifier: letters, digits, "_", "$" and "-"',
            max_bytes=63,
        )
    ),
]
HeaderName = Annotated[
    str,
    AfterValidator(pattern(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", "an HTTP header name (RFC 9110 token)")),
]


def _check_endpoint(value: str) -> str:
    printable = value.isprintable()  # then the only whitespace it can hold is the space
    if not printable:
        check_text(value)
    if not value.startswith("/"):
        raise fail(f'must be a path starting with "/", got {quote(value)}')
    if (" " in value) if printable else _WHITESPACE.search(value):
        raise fail(f"must not contain whitespace, got {quote(value)}")
    return value


Endpoint = Annotated[str, AfterValidator(_check_endpoint)]


def check_url(value: str) -> str:
    check_single_line(value)
    if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
        raise fail(f'must be an absolute "https://" or "http://" URL, got {quote(value)}')
    try:
        parts = urlsplit(value)
        _ = parts.port, parts.hostname  # raise on a port out of range or not a number, or a broken [IPv6]
    except ValueError:
        raise fail(f"is not a valid URL (host, or a port from 0 to 65535), got {quote(value)}") from None
    return value


def _check_schedule(value: str, info: ValidationInfo) -> str:
    # Tabs are allowed: pg_cron separates fields by blanks (space or tab), and a live job written that way
    # must be declarable (the dialect warns instead). Line breaks are not: nobody means one in a schedule.
    context = info.context
    version = DEFAULT_CRON_VERSION
    if isinstance(context, (dict, Mapping)):  # dict first: the ABC check is slow
        version = tuple(context.get("cron_version", DEFAULT_CRON_VERSION))  # type: ignore[assignment]
    if (value, version) in _VALID_SCHEDULES:  # 10,000 jobs share a few dozen schedules
        return value
    check_text(value)
    if _LINE_BREAK.search(value):
        raise fail("must be a single line")
    from reconciler import cron  # lazily: the dialect module is only needed when schedules are validated

    try:
        cron.parse(value, version=version)
    except cron.CronError as exc:
        raise fail(f"invalid schedule {quote(value)}: {exc}") from None
    if len(_VALID_SCHEDULES) >= 4096:  # a bound for a long-running controller reloading its manifest
        _VALID_SCHEDULES.clear()
    _VALID_SCHEDULES.add((value, version))
    return value


_VALID_SCHEDULES: set[tuple[str, tuple[int, int]]] = set()  # (schedule, pg_cron version) that passed


Schedule = Annotated[
    str,
    AfterValidator(_check_schedule),
    Field(
        description='A pg_cron schedule: five fields ("*/5 * * * *"), a macro ("@daily") or "N seconds" (1.5+).'
    ),
]


EXTENSION_ALIASES = {"vault": "supabase_vault"}

SECRET_SOURCES = ("from_env", "from_file", "generate")


def describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return quote(shown)
    if isinstance(value, datetime | date):
        return f"a date ({value.isoformat()})"
    if isinstance(value, bytes):
        return "binary data"
    return type(value).__name__



class SpecModel(BaseModel):
    """Every manifest model: immutable, unknown fields refused, fields by name or alias."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, validate_default=False)



class SecretRef(SpecModel):
    """`{secret: name}`: a Vault secret read by the trigger at run time, optionally with text around it.

    Rendered as `(SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = '<name>')`, so the
    value never appears in `cron.job.command`.
    """

    secret: Annotated[str, AfterValidator(check_single_line), AfterValidator(check_not_blank)]
    append: Line = Field(
        default="", description='Text after the value, e.g. "/functions/v1/run-scheduled-jobs".'
    )
    prepend: Line = Field(default="", description='Text before the value, e.g. "Bearer ".')


class NowMarker(SpecModel):
    """`{now: text}`: the time the trigger runs, as `now()::text` (the only form supported)."""

    now: Literal["text"]


def _url_tag(value: Any) -> str | None:
    if isinstance(value, Mapping | SecretRef):
        return "~ref"
    return "~literal" if isinstance(value, str) else None


UrlValue = Annotated[
    Union[Annotated[SecretRef, Tag("~ref")], Annotated[str, AfterValidator(check_url), Tag("~literal")]],  # noqa: UP007
    Discriminator(
        _url_tag,
        custom_error_type="url_value",
        custom_error_message='expected an "https://..." URL or {secret: name, append: path}',
    ),
]

HeaderValue = Annotated[
    Union[Annotated[SecretRef, Tag("~ref")], Annotated[Line, Tag("~literal")]],  # noqa: UP007
    Discriminator(
        _url_tag,
        custom_error_type="header_value",
        custom_error_message="expected a string or {secret: name}",
    ),
]


def _json_tag(value: Any) -> str | None:
    if isinstance(value, SecretRef) or (isinstance(value, Mapping) and "secret" in value):
        return "~ref"
    if isinstance(value, NowMarker) or (isinstance(value, Mapping) and "now" in value):
        return "~now"
    if isinstance(value, Mapping):
        return "~object"
    if isinstance(value, list | tuple):
        return "~array"
    if isinstance(value, bool):
        return "~boolean"
    if isinstance(value, int):
        return "~integer"
    if isinstance(value, float):
        return "~number"
    if isinstance(value, str):
        return "~string"
    if value is None:
        return "~null"
    return None


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise fail("must be a finite number (JSON has no NaN or infinity)")
    return value


BodyValue = TypeAliasType(  # type: ignore[misc]
    "BodyValue",
    Annotated[
        Union[  # noqa: UP007
            Annotated[SecretRef, Tag("~ref")],
            Annotated[NowMarker, Tag("~now")],
            Annotated[dict[Annotated[str, AfterValidator(check_text)], "BodyValue"], Tag("~object")],  # type: ignore[misc]
            Annotated[list["BodyValue"], Tag("~array")],  # type: ignore[misc]
            Annotated[StrictBool, Tag("~boolean")],
            Annotated[StrictInt, Tag("~integer")],
            Annotated[float, AfterValidator(_finite), Tag("~number")],
            Annotated[Text, Tag("~string")],
            Annotated[None, Tag("~null")],
        ],
        Discriminator(
            _json_tag,
            custom_error_type="json_value",
            custom_error_message="expected a JSON value, {secret: name} or {now: text}",
        ),
    ],
)

#: Union tags that pydantic puts into error locations; the loader skips them when locating an error.
UNION_TAGS = frozenset(
    {"~ref", "~now", "~literal", "~object", "~array", "~boolean", "~integer", "~number", "~string", "~null"}
)

