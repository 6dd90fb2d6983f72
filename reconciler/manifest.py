"""The manifest: pydantic models of scheduler.yaml and the YAML loader that reports problems by line.

Data flow: scheduler.yaml (one file, or a base plus overlays) ──load_manifest──▶ Manifest (immutable).
Everything downstream (kinds' `desired()`, plan, render) reads only the Manifest. Secret *values* never
appear here: a manifest names each secret's source, and `reconciler.secrets` resolves them at run time.

Loading composes the YAML event stream itself (on the C parser) so that every value keeps its file, line
and column; duplicate keys, anchors that expand too far, over-deep nesting and oversized files are caught
before any model is built. Pydantic's errors are then mapped back to those positions, and every problem
in every file is reported at once as one ManifestError.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError
from typing_extensions import TypeAliasType

from reconciler.errors import ManifestError, ManifestProblem
from reconciler.files import read_limited

__all__ = [
    "DEFAULT_CRON_VERSION",
    "ExtensionSpec",
    "GenerateSpec",
    "HttpPostSpec",
    "JobSpec",
    "Manifest",
    "NowMarker",
    "PrunePolicy",
    "SecretRef",
    "SecretSpec",
    "TablesSpec",
    "TriggerSpec",
    "load_manifest",
    "manifest_json_schema",
]

#: pg_cron dialect schedules are validated against unless the caller says otherwise (Supabase runs 1.6).
DEFAULT_CRON_VERSION: tuple[int, int] = (1, 6)

#: Loader limits: a manifest is a few kilobytes; anything near these is a mistake or an attack.
MAX_FILE_BYTES = 16 * 1024 * 1024  # 10,000 jobs take about 2 MiB
MAX_DEPTH = 32
MAX_NODES = 1_000_000  # values after alias expansion (aliases are capped separately)
MAX_ALIASES = 100

_MAX_NAME_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1: cron.job.jobname is `name` on pg_cron 1.4


# ---------------------------------------------------------------------------------------------------------
# Field types
# ---------------------------------------------------------------------------------------------------------


def _fail(message: str) -> PydanticCustomError:
    # The message travels in the context so braces in it are never taken for a template.
    return PydanticCustomError("manifest_value", "{reason}", {"reason": message})


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAK = re.compile(r"[\r\n]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(value: str) -> str:
    """Reject what PostgreSQL text cannot hold (NUL) and control characters nobody means to write."""
    if "\x00" in value:
        raise _fail("contains a NUL byte (PostgreSQL text cannot store it)")
    surrogate = _SURROGATE.search(value)
    if surrogate:  # only reachable from Python (the YAML loader refuses them): UTF-8 cannot encode one
        raise _fail(f"contains the lone surrogate U+{ord(surrogate.group()):04X} (not valid Unicode)")
    match = _CONTROL.search(value)
    if match:
        raise _fail(f"contains the control character U+{ord(match.group()):04X}")
    return value


def _check_single_line(value: str) -> str:
    _check_text(value)
    if _LINE_BREAK.search(value) or "\t" in value:
        raise _fail("must be a single line without tabs")
    return value


def _check_not_blank(value: str) -> str:
    if not value.strip():
        raise _fail("must not be empty")
    return value


def _pattern(regex: str, explanation: str, *, max_bytes: int | None = None):
    compiled = re.compile(regex)

    def check(value: str) -> str:
        _check_single_line(value)
        if not value:
            raise _fail("must not be empty")
        if max_bytes is not None and len(value.encode("utf-8")) > max_bytes:
            raise _fail(f"must be at most {max_bytes} bytes (got {len(value.encode('utf-8'))})")
        if not compiled.fullmatch(value):
            raise _fail(f"{_quote(value)} is not valid: {explanation}")
        return value

    return check


#: Any string in the manifest: no NUL, no control characters other than tab and line breaks.
Text = Annotated[str, AfterValidator(_check_text)]
#: One line, no tabs: header values, URLs, descriptions of secrets.
Line = Annotated[str, AfterValidator(_check_single_line)]
NonEmptyText = Annotated[str, AfterValidator(_check_text), AfterValidator(_check_not_blank)]

ResourceName = Annotated[
    str,
    AfterValidator(
        _pattern(
            # Not (?i)[a-z]: with IGNORECASE, Python's [a-z] also matches U+0130, U+0131, U+017F, U+212A.
            r"[A-Za-z0-9][A-Za-z0-9_-]*",
            'use letters, digits, "_" and "-", starting with a letter or digit',
            max_bytes=_MAX_NAME_BYTES,
        )
    ),
    Field(json_schema_extra={"pattern": "^[A-Za-z0-9][A-Za-z0-9_-]*$", "maxLength": _MAX_NAME_BYTES}),
]
SecretName = Annotated[
    str,
    AfterValidator(
        _pattern(
            r"[A-Za-z_][A-Za-z0-9_.-]{0,127}",
            'use letters, digits, "_", "." and "-", at most 128, starting with a letter or "_"',
        )
    ),
    Field(json_schema_extra={"pattern": "^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"}),
]
EnvName = Annotated[
    str,
    AfterValidator(
        _pattern(r"[A-Za-z_][A-Za-z0-9_]*", 'an environment variable name: letters, digits and "_"')
    ),
    Field(json_schema_extra={"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}),
]
Identifier = Annotated[
    str,
    AfterValidator(
        _pattern(
            r"[A-Za-z_][A-Za-z0-9_$-]*",
            'a PostgreSQL identifier: letters, digits, "_", "$" and "-"',
            max_bytes=63,
        )
    ),
]
HeaderName = Annotated[
    str,
    AfterValidator(_pattern(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", "an HTTP header name (RFC 9110 token)")),
]


def _check_endpoint(value: str) -> str:
    _check_text(value)
    if not value.startswith("/"):
        raise _fail(f'must be a path starting with "/", got {_quote(value)}')
    if re.search(r"\s", value):
        raise _fail(f"must not contain whitespace, got {_quote(value)}")
    return value


Endpoint = Annotated[str, AfterValidator(_check_endpoint)]


def _check_url(value: str) -> str:
    _check_single_line(value)
    if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
        raise _fail(f'must be an absolute "https://" or "http://" URL, got {_quote(value)}')
    try:
        parts = urlsplit(value)
        _ = parts.port, parts.hostname  # raise on a port out of range or not a number, or a broken [IPv6]
    except ValueError:
        raise _fail(f"is not a valid URL (host, or a port from 0 to 65535), got {_quote(value)}") from None
    return value


def _check_schedule(value: str, info: ValidationInfo) -> str:
    # Tabs are allowed: pg_cron separates fields by blanks (space or tab), and a live job written that way
    # must be declarable (the dialect warns instead). Line breaks are not: nobody means one in a schedule.
    _check_text(value)
    if _LINE_BREAK.search(value):
        raise _fail("must be a single line")
    from reconciler import cron  # lazily: the dialect module is only needed when schedules are validated

    context = info.context if isinstance(info.context, Mapping) else {}
    version = context.get("cron_version", DEFAULT_CRON_VERSION)
    try:
        cron.parse(value, version=version)
    except cron.CronError as exc:
        raise _fail(f"invalid schedule {_quote(value)}: {exc}") from None
    return value


Schedule = Annotated[
    str,
    AfterValidator(_check_schedule),
    Field(
        description='A pg_cron schedule: five fields ("*/5 * * * *"), a macro ("@daily") or "N seconds" (1.5+).'
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, validate_default=False)


# ---------------------------------------------------------------------------------------------------------
# Extensions
# ---------------------------------------------------------------------------------------------------------

_EXTENSION_ALIASES = {"vault": "supabase_vault"}


class ExtensionSpec(_Model):
    """A PostgreSQL extension that must be installed (`CREATE EXTENSION`); the reconciler never drops one.

    `vault` is accepted as an alias of `supabase_vault` (there is no extension named `vault`): it is stored
    as `supabase_vault`, with `declared_as="vault"`, and the loader warns about it.
    """

    name: Annotated[
        str,
        AfterValidator(
            _pattern(r"[A-Za-z_][A-Za-z0-9_-]*", 'an extension name: letters, digits, "_" and "-"')
        ),
    ] = Field(
        description="Extension name as in pg_available_extensions, e.g. pg_cron, pg_net, supabase_vault."
    )
    schema_name: Identifier | None = Field(
        default=None,
        alias="schema",
        description="Schema to create it in. pg_cron 1.6 (Supabase) must be in pg_catalog; pg_net goes in extensions.",
    )
    version: Line | None = Field(
        default=None, description="Required extension version; any version when omitted."
    )
    protect: StrictBool = Field(
        default=False, description="Recorded for symmetry; extensions are never dropped anyway."
    )
    declared_as: SkipJsonSchema[str | None] = Field(default=None, exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _resolve_alias(cls, data: Any) -> Any:
        if (
            isinstance(data, Mapping)
            and isinstance(data.get("name"), str)
            and data["name"] in _EXTENSION_ALIASES
        ):
            data = {**data, "name": _EXTENSION_ALIASES[data["name"]], "declared_as": data["name"]}
        return data


# ---------------------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------------------

_SECRET_SOURCES = ("from_env", "from_file", "generate")


def _exactly_one_source(model: BaseModel, sources: tuple[str, ...]) -> None:
    given = [name for name in sources if getattr(model, name) is not None]
    if len(given) != 1:
        got = f"got {', '.join(given)}" if given else "got none"
        raise _fail(f"needs exactly one source: {', '.join(sources[:-1])} or {sources[-1]} ({got})")


class GenerateSpec(_Model):
    """Generate a random value, used only when the secret does not exist yet (it is never compared)."""

    n_bytes: StrictInt = Field(
        default=32, alias="bytes", ge=16, le=256, description="Random bytes (16..256)."
    )
    encoding: Literal["hex", "base64url"] = Field(
        default="base64url", description="How the bytes are written: hex, or base64url without padding."
    )


class SecretSpec(_Model):
    """A secret stored in Supabase Vault (`vault.secrets`, by name). The manifest holds its source, never its value.

    Exactly one source: `from_env` (an environment variable), `from_file` (a file such as a Kubernetes
    secret mount; one trailing newline is stripped; relative paths are relative to the working directory)
    or `generate` (random, used only when the secret does not exist yet).
    """

    name: SecretName
    from_env: EnvName | None = Field(default=None, description="Environment variable holding the value.")
    from_file: Annotated[str, AfterValidator(_check_single_line), AfterValidator(_check_not_blank)] | None = (
        Field(default=None, description="File holding the value (one trailing newline is stripped).")
    )
    generate: GenerateSpec | None = Field(
        default=None, description="Generate a random value when the secret is missing."
    )
    description: Text = Field(default="", description="vault.secrets.description.")
    on_drift: Literal["correct", "report"] = Field(
        default="correct",
        description="When the stored value differs from the source: overwrite it (correct) or only report it.",
    )
    protect: StrictBool = Field(
        default=False, description="Never delete or deactivate it: pruning and `reconcile down` leave it in place."
    )

    @model_validator(mode="after")
    def _one_source(self) -> SecretSpec:
        _exactly_one_source(self, _SECRET_SOURCES)
        return self

    @property
    def source(self) -> str:
        """`from_env`, `from_file` or `generate`."""
        return next(s for s in _SECRET_SOURCES if getattr(self, s) is not None)


# ---------------------------------------------------------------------------------------------------------
# Jobs (rows of public.scheduled_jobs)
# ---------------------------------------------------------------------------------------------------------


class JobSpec(_Model):
    """A row of `public.scheduled_jobs`, keyed by `job_name`; the master trigger runs the due ones."""

    name: ResourceName = Field(description="scheduled_jobs.job_name.")
    type: NonEmptyText = Field(description="scheduled_jobs.job_type.")
    schedule: Schedule
    endpoint: Endpoint = Field(description='Edge function path, e.g. "/functions/v1/fetch-rss-feeds".')
    description: Text = ""
    active: StrictBool = Field(default=True, description="scheduled_jobs.is_active.")
    protect: StrictBool = Field(default=False, description="Never delete or deactivate it: pruning and `reconcile down` leave it in place.")


# ---------------------------------------------------------------------------------------------------------
# Triggers (cron.job entries)
# ---------------------------------------------------------------------------------------------------------


class SecretRef(_Model):
    """`{secret: name}`: a Vault secret read by the trigger at run time, optionally with text around it.

    Rendered as `(SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = '<name>')`, so the
    value never appears in `cron.job.command`.
    """

    secret: Annotated[str, AfterValidator(_check_single_line), AfterValidator(_check_not_blank)]
    append: Line = Field(
        default="", description='Text after the value, e.g. "/functions/v1/run-scheduled-jobs".'
    )
    prepend: Line = Field(default="", description='Text before the value, e.g. "Bearer ".')


class NowMarker(_Model):
    """`{now: text}`: the time the trigger runs, as `now()::text` (the only form supported)."""

    now: Literal["text"]


def _url_tag(value: Any) -> str | None:
    if isinstance(value, Mapping | SecretRef):
        return "~ref"
    return "~literal" if isinstance(value, str) else None


UrlValue = Annotated[
    Union[Annotated[SecretRef, Tag("~ref")], Annotated[str, AfterValidator(_check_url), Tag("~literal")]],  # noqa: UP007
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
        raise _fail("must be a finite number (JSON has no NaN or infinity)")
    return value


BodyValue = TypeAliasType(  # type: ignore[misc]
    "BodyValue",
    Annotated[
        Union[  # noqa: UP007
            Annotated[SecretRef, Tag("~ref")],
            Annotated[NowMarker, Tag("~now")],
            Annotated[dict[Annotated[str, AfterValidator(_check_text)], "BodyValue"], Tag("~object")],  # type: ignore[misc]
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
_UNION_TAGS = frozenset(
    {"~ref", "~now", "~literal", "~object", "~array", "~boolean", "~integer", "~number", "~string", "~null"}
)


class HttpPostSpec(_Model):
    """A `net.http_post(...)` call, rendered by `reconciler.trigger_sql.render_command`.

    Markers (the only two): a mapping with a `secret` key is a SecretRef, `{secret: name, append: text,
    prepend: text}`, read from Vault when the trigger runs; `{now: text}` is the run's timestamp
    (`now()::text`). Any other mapping in `body` is a JSON object. Keys keep their declared order.
    """

    url: UrlValue = Field(
        description='Literal "https://..." or {secret: project_url, append: /functions/v1/...}.'
    )
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict,
        description="Header values: strings or {secret: name} (pg_net only sends application/json).",
    )
    body: dict[Annotated[str, AfterValidator(_check_text)], BodyValue] = Field(
        default_factory=dict, description="JSON object; values may be {secret: name} or {now: text}."
    )
    timeout_milliseconds: StrictInt | None = Field(
        default=None, ge=1, le=300_000, description="pg_net request timeout (pg_net's default is 5000)."
    )

    @field_validator("headers")
    @classmethod
    def _json_content_type(cls, headers: dict[str, Any]) -> dict[str, Any]:
        for key, value in headers.items():
            if (
                key.lower() == "content-type"
                and isinstance(value, str)
                and value.strip().lower() != "application/json"
            ):
                raise _fail(f'pg_net only sends "Content-Type: application/json", not {_quote(value)}')
        return headers


class TriggerSpec(_Model):
    """An entry of `cron.job`, keyed by `jobname`: exactly one of `command` (raw SQL) or `http_post`."""

    name: ResourceName = Field(description="cron.job.jobname.")
    schedule: Schedule
    active: StrictBool = Field(default=True, description="cron.job.active.")
    command: NonEmptyText | None = Field(
        default=None, description="Raw SQL run by pg_cron, stored as written."
    )
    http_post: HttpPostSpec | None = None
    database: Identifier | None = Field(
        default=None, description="Database to run in (cron.schedule_in_database)."
    )
    username: Identifier | None = Field(
        default=None, description="Role to run as; the connecting role when omitted."
    )
    protect: StrictBool = Field(
        default=False, description="Never delete or deactivate it: pruning and `reconcile down` leave it in place."
    )

    @model_validator(mode="after")
    def _one_action(self) -> TriggerSpec:
        if (self.command is None) == (self.http_post is None):
            got = "got both" if self.command is not None else "got neither"
            raise _fail(f"needs exactly one of command or http_post ({got})")
        return self


# ---------------------------------------------------------------------------------------------------------
# Edge Function secrets (Supabase Management API)
# ---------------------------------------------------------------------------------------------------------


def _check_edge_name(value: str) -> str:
    if value.upper().startswith("SUPABASE_"):
        raise _fail(f"{_quote(value)} is reserved: names starting with SUPABASE_ are set by Supabase")
    return value


EdgeSecretName = Annotated[
    str,
    AfterValidator(_pattern(r"[A-Za-z_][A-Za-z0-9_]*", 'letters, digits and "_", starting with a letter or "_"')),
    AfterValidator(_check_edge_name),
    Field(json_schema_extra={"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}),
]
_EDGE_SOURCES = ("secret", "from_env", "from_file")


class EdgeSecretSource(_Model):
    """Where an Edge Function secret's value comes from: a declared Vault secret, or its own source."""

    secret: SecretName | None = Field(default=None, description="A declared Vault secret whose value it mirrors.")
    from_env: EnvName | None = Field(default=None, description="Environment variable holding the value.")
    from_file: Annotated[str, AfterValidator(_check_single_line), AfterValidator(_check_not_blank)] | None = (
        Field(default=None, description="File holding the value (one trailing newline is stripped).")
    )

    @model_validator(mode="after")
    def _one_source(self) -> EdgeSecretSource:
        _exactly_one_source(self, _EDGE_SOURCES)
        return self


class EdgeFunctionsSpec(_Model):
    """Edge Function secrets kept equal to their sources through the Supabase Management API."""

    project_ref: Annotated[str, AfterValidator(_pattern(r"[a-z0-9]{4,64}", "a project ref: lowercase letters and digits"))] | None = Field(
        default=None, description="The project ref; when omitted, read from SUPABASE_PROJECT_REF."
    )
    api_url: Annotated[str, AfterValidator(_check_url)] = Field(
        default="https://api.supabase.com", description="Management API base URL (overridable for tests)."
    )
    access_token_env: EnvName = Field(
        default="SUPABASE_ACCESS_TOKEN", description="Environment variable holding the Management API token."
    )
    secrets: dict[EdgeSecretName, EdgeSecretSource] = Field(
        default_factory=dict, description='Edge Function secret name to source, e.g. CRON_SECRET: {secret: cron_secret}.'
    )


# ---------------------------------------------------------------------------------------------------------
# Tables, pruning, the manifest
# ---------------------------------------------------------------------------------------------------------


class TablesSpec(_Model):
    """The application's tables (`scheduled_jobs`, `job_executions`)."""

    create_missing: StrictBool = Field(
        default=False,
        description="Create the tables with the runbook's columns when absent (else: an error).",
    )


def _off(value: Any) -> Any:
    return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false


class PrunePolicy(_Model):
    """What happens to objects the reconciler manages but the manifest no longer declares.

    These policies apply only when the user passes `--prune`; without it nothing undeclared is touched.
    `off` ignores them, `report` lists them, `deactivate` (jobs only) sets is_active = false, `delete`
    removes them (the previous value is kept in reconciler.history). Extensions are never dropped.
    """

    jobs: Annotated[Literal["off", "report", "deactivate", "delete"], BeforeValidator(_off)] = "deactivate"
    triggers: Annotated[Literal["off", "report", "delete"], BeforeValidator(_off)] = "delete"
    secrets: Annotated[Literal["off", "report", "delete"], BeforeValidator(_off)] = "off"
    edge_secrets: Annotated[Literal["off", "report", "delete"], BeforeValidator(_off)] = "delete"


_COLLECTIONS = ("extensions", "secrets", "jobs", "triggers")


class Manifest(_Model):
    """The declared target state of the scheduler stack (scheduler.yaml).

    `secrets` is written in YAML as a mapping from name to source and stored as a tuple of SecretSpec.
    `source_files` and `warnings` are filled in by `load_manifest`, never read from YAML.
    """

    version: Literal[1] = Field(description="Manifest format version; always 1.")
    extensions: tuple[ExtensionSpec, ...] = ()
    secrets: tuple[SecretSpec, ...] = Field(default=(), description="Vault secrets by name.")
    jobs: tuple[JobSpec, ...] = ()
    triggers: tuple[TriggerSpec, ...] = ()
    tables: TablesSpec = TablesSpec()
    prune: PrunePolicy = PrunePolicy()
    edge_functions: EdgeFunctionsSpec | None = Field(
        default=None, description="Optional: Edge Function secrets kept equal to Vault secrets or their own sources."
    )
    source_files: SkipJsonSchema[tuple[str, ...]] = ()
    warnings: SkipJsonSchema[tuple[str, ...]] = ()

    @field_validator("version", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # `True == 1` must not pass for version 1
            raise _fail(f"expected one of 1, got {_describe(value)}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for key in _COLLECTIONS:
            if key in data and data[key] is None:
                data[key] = ()
        secrets = data.get("secrets")
        if isinstance(secrets, Mapping):
            data["secrets"] = [
                {**spec, "name": name} if isinstance(spec, Mapping) else spec
                for name, spec in secrets.items()
            ]
        return data

    @model_validator(mode="after")
    def _cross_check(self) -> Manifest:
        problems = _cross_problems(self.model_dump(by_alias=True, exclude={"source_files", "warnings"}))
        if problems:
            summary = "; ".join(f"{_format_path(loc)}: {msg}" for loc, _pos_loc, msg in problems)
            raise PydanticCustomError(
                "manifest_cross", "{summary}", {"summary": summary, "problems": problems}
            )
        return self

    def secret(self, name: str) -> SecretSpec:
        """The declared secret `name`; KeyError when undeclared."""
        for spec in self.secrets:
            if spec.name == name:
                return spec
        raise KeyError(f"no secret named {name!r}")

    def job(self, name: str) -> JobSpec:
        """The declared job `name`; KeyError when undeclared."""
        for spec in self.jobs:
            if spec.name == name:
                return spec
        raise KeyError(f"no job named {name!r}")

    def trigger(self, name: str) -> TriggerSpec:
        """The declared trigger `name`; KeyError when undeclared."""
        for spec in self.triggers:
            if spec.name == name:
                return spec
        raise KeyError(f"no trigger named {name!r}")

    def digest(self) -> str:
        """SHA-256 (hex) of a canonical JSON dump of the declared state (loader bookkeeping excluded)."""
        dumped = self.model_dump(mode="json", by_alias=True, exclude={"source_files", "warnings"})
        text = json.dumps(dumped, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of scheduler.yaml (for editors: `# yaml-language-server: $schema=...`).

    Differs from pydantic's model schema in one place: `secrets` is a mapping from name to source there.
    """
    schema = Manifest.model_json_schema(by_alias=True, mode="validation")
    defs = schema.get("$defs", {})
    secret = dict(defs["SecretSpec"])
    secret["properties"] = {k: v for k, v in secret["properties"].items() if k != "name"}
    secret["required"] = [r for r in secret.get("required", []) if r != "name"]
    if not secret["required"]:
        secret.pop("required")
    defs["SecretSource"] = secret
    schema["properties"]["secrets"] = {
        "title": "Secrets",
        "description": "Vault secrets by name; each value names the secret's source.",
        "type": "object",
        "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"},
        "additionalProperties": {"$ref": "#/$defs/SecretSource"},
        "default": {},
    }
    defs.pop("SecretSpec", None)
    # Editors check `oneOf` strictly; a {secret: x} body value is also a JSON object, so use anyOf.
    text = json.dumps(schema).replace('"oneOf"', '"anyOf"')
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **json.loads(text)}


# ---------------------------------------------------------------------------------------------------------
# Cross-field checks (run on plain data: the loader's raw YAML, or a model's dump)
# ---------------------------------------------------------------------------------------------------------

Loc = tuple[str | int, ...]


def _iter_refs(value: Any, loc: Loc, field_loc: Loc) -> Iterator[tuple[Loc, Loc, str]]:
    """(field location, position location, secret name) of every {secret: x} under `value`."""
    if isinstance(value, Mapping):
        if "secret" in value and isinstance(value["secret"], str):
            yield field_loc, loc + ("secret",), value["secret"]
            return
        for key, item in value.items():
            yield from _iter_refs(item, loc + (key,), field_loc + (key,))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _iter_refs(item, loc + (i,), field_loc + (i,))


def _names(items: Any, *, alias: bool = False) -> Iterator[tuple[int, str]]:
    if isinstance(items, list | tuple):
        for i, item in enumerate(items):
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                name: str = item["name"]
                yield i, (_EXTENSION_ALIASES.get(name, name) if alias else name)


def _duplicate_problems(data: Mapping[str, Any]) -> list[tuple[Loc, Loc, str]]:
    problems: list[tuple[Loc, Loc, str]] = []
    for key, noun in (
        ("extensions", "extension"),
        ("jobs", "job"),
        ("triggers", "trigger"),
        ("secrets", "secret"),
    ):
        first: dict[str, int] = {}
        for i, name in _names(data.get(key), alias=key == "extensions"):
            if name in first:
                loc: Loc = (key, i, "name")
                problems.append(
                    (loc, loc, f"duplicate {noun} name {_quote(name)} (first at {key}[{first[name]}])")
                )
            else:
                first[name] = i
    return problems


def _cross_problems(data: Mapping[str, Any]) -> list[tuple[Loc, Loc, str]]:
    """Duplicate names and references to undeclared secrets, as (field loc, position loc, message)."""
    return _duplicate_problems(data) + _reference_problems(data)


def _reference_problems(data: Mapping[str, Any]) -> list[tuple[Loc, Loc, str]]:
    """References to secrets the manifest does not declare (trigger parts and Edge Function secrets)."""
    secrets = data.get("secrets")
    if isinstance(secrets, Mapping):
        declared = sorted(str(k) for k in secrets)
    else:
        declared = sorted(name for _i, name in _names(secrets))
    listed = ", ".join(d if _PLAIN_KEY.fullmatch(d) else _quote(d) for d in declared) or "none"
    refs: list[tuple[Loc, Loc, str]] = []
    triggers = data.get("triggers")
    if isinstance(triggers, list | tuple):
        for i, trig in enumerate(triggers):
            post = trig.get("http_post") if isinstance(trig, Mapping) else None
            if not isinstance(post, Mapping):
                continue
            for part in ("url", "headers", "body"):
                if part in post:
                    base: Loc = ("triggers", i, "http_post", part)
                    refs.extend(_iter_refs(post[part], base, base))
    edge = data.get("edge_functions")
    edge_secrets = edge.get("secrets") if isinstance(edge, Mapping) else None
    if isinstance(edge_secrets, Mapping):
        for edge_name, source in edge_secrets.items():
            ref = source.get("secret") if isinstance(source, Mapping) else None
            if isinstance(ref, str):
                loc: Loc = ("edge_functions", "secrets", edge_name, "secret")
                refs.append((loc, loc, ref))
    return [(field_loc, pos_loc, f"unknown secret {_quote(name)} (declared: {listed})")
            for field_loc, pos_loc, name in refs if name not in declared]


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _format_path(loc: Sequence[str | int]) -> str:
    out = ""
    for el in loc:
        if isinstance(el, int):
            out += f"[{el}]"
        elif _PLAIN_KEY.fullmatch(el):
            out += f".{el}" if out else el
        else:
            out += f"[{_quote(el)}]"
    return out


def _field_name(root: Any, loc: Sequence[str | int]) -> str:
    """The path as problems show it, with a named item's name after its index: `jobs[1] (fetch_rss_feeds).schedule`.

    Only a valid name is shown (one that is itself wrong is the problem, shown at `.name`)."""
    text = _format_path(loc)
    if len(loc) < 2 or loc[0] not in _NAMED_LISTS or not isinstance(loc[1], int) or not isinstance(root, Mapping):
        return text
    items = root.get(loc[0])
    item = items[loc[1]] if isinstance(items, list) and 0 <= loc[1] < len(items) else None
    name = item.get("name") if isinstance(item, Mapping) else None
    if not isinstance(name, str) or not _PLAIN_KEY.fullmatch(name) or len(name) > 63:
        return text
    head = f"{loc[0]}[{loc[1]}]"
    return f"{head} ({name}){text[len(head):]}"


# ---------------------------------------------------------------------------------------------------------
# YAML with positions
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pos:
    file: str
    line: int  # 1-based
    column: int  # 1-based


class _LMap(dict):
    """A mapping that remembers where it, its keys and its values are."""

    def __init__(self, pos: _Pos) -> None:
        super().__init__()
        self.pos = pos
        self.key_pos: dict[str, _Pos] = {}
        self.val_pos: dict[str, _Pos] = {}


class _LSeq(list):
    def __init__(self, pos: _Pos) -> None:
        super().__init__()
        self.pos = pos
        self.item_pos: list[_Pos] = []


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _PositionLoader(_Loader):  # type: ignore[misc, valid-type]
    """The safe (C when available) loader; events are composed by `_compose`, never by PyYAML's composer."""


class _Fatal(Exception):
    pass


_MAP_TAGS = (None, "!", "tag:yaml.org,2002:map")
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")
)
_SEQ_TAGS = (None, "!", "tag:yaml.org,2002:seq")


def _describe(value: Any) -> str:
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
        return _quote(shown)
    if isinstance(value, datetime | date):
        return f"a date ({value.isoformat()})"
    if isinstance(value, bytes):
        return "binary data"
    return type(value).__name__


_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


def _deep_flow_cut(text: str) -> int | None:
    """Where a flow collection (`[` or `{`) opens deeper than MAX_DEPTH, if anywhere: the index after it.

    A cheap scan, not a parser: quoted scalars and comments are skipped, and the caller confirms the
    depth with the real parser, so a misread quote costs nothing but the scan.
    """
    depth = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return i + 1
        elif ch in "]}":
            depth = max(depth - 1, 0)
        elif ch == "#" and (i == 0 or text[i - 1] in " \t\n"):
            i = text.find("\n", i)
            if i == -1:
                return None
        elif ch in "'\"" and (i == 0 or text[i - 1] in " \t\n[{,:"):
            i = _quoted_end(text, i)
        i += 1
    return None


def _quoted_end(text: str, start: int) -> int:
    quote = text[start]
    i = start + 1
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            if quote == "'" and text[i + 1 : i + 2] == "'":  # '' is an escaped quote
                i += 2
                continue
            return i
        i += 1
    return len(text)


class _Composer:
    """Builds _LMap/_LSeq/scalars from the parser's events, enforcing the loader limits."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.problems: list[ManifestProblem] = []
        self.nodes = 0
        self.aliases = 0
        self.anchors: dict[str, tuple[Any, int]] = {}

    def _pos(self, mark: Any) -> _Pos:
        return _Pos(self.file, mark.line + 1, mark.column + 1)

    def _problem(self, pos: _Pos | None, field: str, message: str) -> None:
        self.problems.append(
            ManifestProblem(self.file, pos.line if pos else None, pos.column if pos else None, field, message)
        )

    def _fatal(self, pos: _Pos | None, message: str) -> _Fatal:
        self._problem(pos, "", message)
        return _Fatal()

    def compose(self) -> Any:
        cut = _deep_flow_cut(self.text)
        if cut is not None:
            # libyaml's scanner reads ahead through nested flow collections before the first event, and
            # newer builds stop at a depth limit of their own: compose only the text up to the first
            # bracket deeper than ours, where our limit trips, so the message is ours with every PyYAML.
            probe = _Composer(self.text[:cut], self.file)
            try:
                probe.compose_text()
            except _Fatal:
                if probe.problems[-1].message == _TOO_DEEP:
                    self.problems = probe.problems
                    raise
            except yaml.YAMLError:
                pass  # the scan guessed wrong (a quote it misread): the whole text decides
        return self.compose_text()

    def compose_text(self) -> Any:
        loader = _PositionLoader(self.text)
        try:
            return self._compose(loader)
        finally:
            loader.dispose()

    def _compose(self, loader: Any) -> Any:
        # frame: [container, anchor, size, pending key, pending key pos, path]
        stack: list[list[Any]] = []
        root: Any = None
        documents = 0

        def add(value: Any, pos: _Pos, size: int, key_text: str | None) -> None:
            nonlocal root
            if not stack:
                root = value
                return
            frame = stack[-1]
            container = frame[0]
            frame[2] += size
            if isinstance(container, _LSeq):
                container.append(value)
                container.item_pos.append(pos)
                return
            if frame[3] is None:  # this value is a key
                if key_text is None:
                    raise self._fatal(pos, "mapping keys must be plain strings, not mappings or lists")
                if key_text == "<<":
                    self._problem(pos, _format_path(frame[5]), "YAML merge keys (<<) are not supported")
                frame[3], frame[4] = key_text, pos
                return
            key, key_pos = frame[3], frame[4]
            frame[3] = frame[4] = None
            if key == "<<":
                return
            if key in container:
                first = container.key_pos[key]
                where = f"line {first.line}"
                self._problem(
                    key_pos, _format_path(frame[5]), f"duplicate key {_quote(key)} (first at {where})"
                )
            container[key] = value
            container.key_pos[key] = key_pos
            container.val_pos[key] = pos

        def child_path() -> tuple[str | int, ...]:
            if not stack:
                return ()
            frame = stack[-1]
            if isinstance(frame[0], _LSeq):
                return (*frame[5], len(frame[0]))
            return (*frame[5], frame[3]) if frame[3] is not None else frame[5]

        def count(pos: _Pos, n: int) -> None:
            self.nodes += n
            if self.nodes > MAX_NODES:
                raise self._fatal(
                    pos, f"too many values (over {MAX_NODES}, aliases expanded): not a manifest"
                )

        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise self._fatal(
                        self._pos(event.start_mark), "expected a single YAML document, found a second one"
                    )
            elif isinstance(event, yaml.ScalarEvent):
                pos = self._pos(event.start_mark)
                count(pos, 1)
                value = self._scalar(loader, event, pos)
                if event.anchor:
                    self.anchors[event.anchor] = (value, 1)
                add(value, pos, 1, event.value)
            elif isinstance(event, yaml.AliasEvent):
                pos = self._pos(event.start_mark)
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    raise self._fatal(pos, f"too many YAML aliases (over {MAX_ALIASES})")
                if any(frame[1] == event.anchor for frame in stack):
                    raise self._fatal(pos, f"alias *{event.anchor} refers to a node that contains it")
                if event.anchor not in self.anchors:
                    raise self._fatal(pos, f"alias *{event.anchor} refers to an undefined anchor")
                value, size = self.anchors[event.anchor]
                count(pos, size)
                add(value, pos, size, value if isinstance(value, str) else None)
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                pos = self._pos(event.start_mark)
                count(pos, 1)
                is_map = isinstance(event, yaml.MappingStartEvent)
                if event.tag not in (_MAP_TAGS if is_map else _SEQ_TAGS):
                    raise self._fatal(
                        pos, f"unsupported YAML tag {str(event.tag).replace('tag:yaml.org,2002:', '!!')}"
                    )
                if len(stack) >= MAX_DEPTH:
                    raise self._fatal(pos, _TOO_DEEP)
                path = child_path()
                stack.append([_LMap(pos) if is_map else _LSeq(pos), event.anchor, 1, None, None, path])
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                container, anchor, size = stack.pop()[:3]
                if anchor:
                    self.anchors[anchor] = (container, size)
                add(container, container.pos, size, None)
        return root

    def _scalar(self, loader: Any, event: Any, pos: _Pos) -> Any:
        tag = event.tag
        if tag in (None, "!"):
            tag = (
                "tag:yaml.org,2002:str"
                if tag == "!"
                else loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            )
        if tag == "tag:yaml.org,2002:merge":
            return event.value  # `<<`: reported as unsupported where it is used as a key
        if tag not in _SCALAR_TAGS:
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise self._fatal(pos, f"unsupported YAML tag {shown}")
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return loader.construct_object(node, deep=True)
        except Exception:  # e.g. `!!int abc`; PyYAML raises assorted types here
            raise self._fatal(pos, f"cannot read {_quote(event.value)} as {tag.rsplit(':', 1)[-1]}") from None


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _read_file(path: str | Path, label: str) -> tuple[str | None, list[ManifestProblem]]:
    def problem(
        message: str, line: int | None = None, column: int | None = None
    ) -> tuple[None, list[ManifestProblem]]:
        return None, [ManifestProblem(label, line, column, "", message)]

    raw, why = read_limited(path, MAX_FILE_BYTES)
    if raw is None:
        return problem(f"file {why}" + (": not a manifest" if why.startswith("is larger") else ""))
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    raw = raw[bom:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        prefix = raw[: exc.start].decode("utf-8", "replace")
        line, column = _line_col(prefix, len(prefix))
        return problem(f"not valid UTF-8 at byte {exc.start + bom}", line, column)
    return text, []


def _parse_file(path: str | Path) -> tuple[_LMap | None, list[ManifestProblem]]:
    label = str(path)
    text, problems = _read_file(path, label)
    if text is None:
        return None, problems
    composer = _Composer(text, label)
    try:
        root = composer.compose()
    except _Fatal:
        return None, composer.problems
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"YAML syntax error: {exc.problem or exc.context}"
        if exc.context and exc.problem and exc.context_mark is not None:
            message += (
                f" ({exc.context} at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
            )
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        return None, [*composer.problems, ManifestProblem(label, line, column, "", message)]
    except yaml.reader.ReaderError as exc:
        char = exc.character
        shown = f"U+{char:04X}" if isinstance(char, int) else _quote(str(char))
        # libyaml reports a byte offset into the UTF-8 text
        index = len(text.encode("utf-8")[: exc.position].decode("utf-8", "replace"))
        line, column = _line_col(text, index)
        return None, [
            *composer.problems,
            ManifestProblem(
                label, line, column, "", f"YAML cannot contain the character {shown} ({exc.reason})"
            ),
        ]
    except yaml.YAMLError as exc:
        return None, [*composer.problems, ManifestProblem(label, None, None, "", f"YAML error: {exc}")]
    problems = composer.problems
    if root is None or (isinstance(root, str) and not root.strip()):
        problems.append(
            ManifestProblem(
                label, None, None, "", 'the manifest is empty (expected a mapping starting with "version: 1")'
            )
        )
        return None, problems
    if not isinstance(root, _LMap):
        problems.append(
            ManifestProblem(label, 1, 1, "", f"expected a mapping at the top level, got {_describe(root)}")
        )
        return None, problems
    problems.extend(_loader_only_keys(root))
    return root, problems


def _loader_only_keys(root: _LMap) -> list[ManifestProblem]:
    """Model fields the loader fills in itself must not come from YAML."""
    found: list[tuple[_Pos, str, str]] = []
    for key in ("source_files", "warnings"):
        if key in root:
            found.append((root.key_pos[key], "", key))
    extensions = root.get("extensions")
    if isinstance(extensions, _LSeq):
        for i, ext in enumerate(extensions):
            if isinstance(ext, _LMap) and "declared_as" in ext:
                found.append((ext.key_pos["declared_as"], _field_name(root, ("extensions", i)), "declared_as"))
    secrets = root.get("secrets")
    if isinstance(secrets, _LMap):
        for name, spec in secrets.items():
            if isinstance(spec, _LMap) and "name" in spec:
                found.append((spec.key_pos["name"], _format_path(("secrets", name)), "name"))
    problems = [
        ManifestProblem(pos.file, pos.line, pos.column, field, f"unknown field {_quote(key)}")
        for pos, field, key in found
    ]
    if "secrets" in root and secrets is not None and not isinstance(secrets, _LMap):
        # The model also takes a list (what it turns the mapping into); from YAML only the mapping is
        # valid. Reported here, then emptied so the model does not report the same value again.
        pos = root.val_pos.get("secrets", root.key_pos["secrets"])
        problems.append(ManifestProblem(pos.file, pos.line, pos.column, "secrets",
                                        f"expected a mapping from secret name to its source, got {_describe(secrets)}"))
        root["secrets"] = _LMap(pos)
    return problems


# ---------------------------------------------------------------------------------------------------------
# Overlays
# ---------------------------------------------------------------------------------------------------------

_NAMED_LISTS = frozenset({"extensions", "jobs", "triggers"})
#: Keys of which an overlay's item may set only one: setting one drops the base's others.
_EXCLUSIVE: dict[tuple[str, ...], frozenset[str]] = {
    ("secrets", "*"): frozenset(_SECRET_SOURCES),
    ("triggers", "[]"): frozenset({"command", "http_post"}),
}


def _item_name(item: Any, kind: str) -> str | None:
    if isinstance(item, Mapping) and isinstance(item.get("name"), str):
        name = item["name"]
        return _EXTENSION_ALIASES.get(name, name) if kind == "extensions" else name
    return None


def _merge(base: Any, over: Any, path: tuple[str, ...]) -> Any:
    """Overlay `over` on `base`: mappings deep-merged, named lists merged by name, the rest replaced."""
    if isinstance(base, _LMap) and isinstance(over, _LMap):
        out = _LMap(base.pos)
        exclusive = _EXCLUSIVE.get(path, frozenset())
        dropped = exclusive if exclusive & over.keys() else frozenset()
        for key, value in base.items():
            if key not in dropped:
                out[key], out.key_pos[key], out.val_pos[key] = value, base.key_pos[key], base.val_pos[key]
        for key, value in over.items():
            if key in out and isinstance(out[key], _LMap | _LSeq):
                sub = ("secrets", "*") if path == ("secrets",) else (*path, key)
                merged = _merge(out[key], value, sub)
                out[key] = merged
                out.val_pos[key] = merged.pos if isinstance(merged, _LMap | _LSeq) else over.val_pos[key]
                if not isinstance(merged, _LMap | _LSeq) or merged is value:
                    out.key_pos[key] = over.key_pos[key]
            else:
                out[key], out.key_pos[key], out.val_pos[key] = value, over.key_pos[key], over.val_pos[key]
        return out
    if len(path) == 1 and path[0] in _NAMED_LISTS and isinstance(base, _LSeq) and isinstance(over, _LSeq):
        kind = path[0]
        out_seq = _LSeq(base.pos)
        out_seq.extend(base)
        out_seq.item_pos.extend(base.item_pos)
        index = {name: i for i, item in enumerate(base) if (name := _item_name(item, kind)) is not None}
        for item, pos in zip(over, over.item_pos, strict=True):
            name = _item_name(item, kind)
            if name is not None and name in index:
                merged = _merge(out_seq[index[name]], item, (kind, "[]"))
                out_seq[index[name]] = merged
            else:
                if name is not None:
                    index[name] = len(out_seq)
                out_seq.append(item)
                out_seq.item_pos.append(pos)
        return out_seq
    return over


# ---------------------------------------------------------------------------------------------------------
# Mapping validation errors back to positions
# ---------------------------------------------------------------------------------------------------------

_FIELDS: dict[tuple[str, ...], type[BaseModel]] = {
    (): Manifest,
    ("extensions", "[]"): ExtensionSpec,
    ("secrets", "*"): SecretSpec,
    ("secrets", "*", "generate"): GenerateSpec,
    ("jobs", "[]"): JobSpec,
    ("triggers", "[]"): TriggerSpec,
    ("triggers", "[]", "http_post"): HttpPostSpec,
    ("tables",): TablesSpec,
    ("prune",): PrunePolicy,
}


def _model_for(loc: Sequence[str | int]) -> type[BaseModel] | None:
    if loc and loc[-1] == "~ref":
        return SecretRef
    if loc and loc[-1] == "~now":
        return NowMarker
    shape: list[str] = []
    for i, el in enumerate(loc):
        if el in _UNION_TAGS:
            continue
        if isinstance(el, int):
            shape.append("[]")
        elif i == 1 and loc[0] == "secrets":
            shape.append("*")
        else:
            shape.append(el)
    return _FIELDS.get(tuple(shape))


def _field_names(model: type[BaseModel]) -> list[str]:
    hidden = {"source_files", "warnings", "declared_as"}
    names = [info.alias or name for name, info in model.model_fields.items() if name not in hidden]
    if model is SecretSpec:
        names.remove("name")
    return names


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {_quote(close[0])}?)" if close else ""


@dataclass
class _Located:
    pos: _Pos
    path: tuple[str | int, ...]  # consumed part of the location, tags removed
    rest: tuple[str | int, ...]  # part not present in the data (a missing field)
    node: Any
    key_pos: _Pos | None


def _locate(root: _LMap, loc: Sequence[str | int]) -> _Located:
    node: Any = root
    pos, key_pos = root.pos, None
    path: list[str | int] = []
    rest: list[str | int] = []
    elements = [el for el in loc if el not in _UNION_TAGS]
    for i, el in enumerate(elements):
        if el == "[key]":
            pos = key_pos or pos
            continue
        if isinstance(node, _LMap) and isinstance(el, str) and el in node:
            key_pos, pos = node.key_pos[el], node.val_pos[el]
            node = node[el]
            path.append(el)
        elif isinstance(node, _LSeq) and isinstance(el, int) and 0 <= el < len(node):
            key_pos, pos = None, node.item_pos[el]
            node = node[el]
            path.append(el)
        else:
            rest = elements[i:]
            break
    return _Located(pos, tuple(path), tuple(rest), node, key_pos)


def _expected(error_type: str) -> str | None:
    return {
        "bool_type": "a boolean (true or false)",
        "bool_parsing": "a boolean (true or false)",
        "int_type": "an integer",
        "int_parsing": "an integer",
        "int_from_float": "an integer",
        "float_type": "a number",
        "float_parsing": "a number",
        "string_type": "a string",
        "model_type": "a mapping",
        "model_attributes_type": "a mapping",
        "dict_type": "a mapping",
        "tuple_type": "a list",
        "list_type": "a list",
        "none_required": "null",
    }.get(error_type)


def _translate_loc(root: _LMap, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Pydantic sees `secrets` as a list; the YAML has a mapping by name."""
    secrets = root.get("secrets")
    if len(loc) >= 2 and loc[0] == "secrets" and isinstance(loc[1], int) and isinstance(secrets, _LMap):
        keys = list(secrets)
        if loc[1] < len(keys):
            return ("secrets", keys[loc[1]], *loc[2:])
    return loc


def _problem_for(root: _LMap, error: Mapping[str, Any]) -> list[ManifestProblem]:
    error_type = error["type"]
    if error_type == "manifest_cross":
        return []  # reported from the raw data, with positions
    loc = _translate_loc(root, tuple(error["loc"]))
    at = _locate(root, loc)
    field = _field_name(root, at.path)
    value = error.get("input")
    ctx = error.get("ctx") or {}

    def make(pos: _Pos, field: str, message: str) -> list[ManifestProblem]:
        return [ManifestProblem(pos.file, pos.line, pos.column, field, message)]

    if (
        loc[:1] == ("secrets",)
        and len(loc) == 3
        and loc[2] == "name"
        and isinstance(root.get("secrets"), _LMap)
    ):
        secrets = root["secrets"]
        pos = secrets.key_pos.get(str(loc[1]), secrets.pos)
        return make(pos, _format_path(loc[:2]), f"invalid secret name: {ctx.get('reason', error['msg'])}")
    if error_type == "missing":
        missing = at.rest[0] if at.rest else loc[-1]
        return make(at.pos, field, f"missing required field {_quote(str(missing))}")
    if error_type == "extra_forbidden":
        key = str(loc[-1])
        parent = loc[:-1]
        model = _model_for(parent)
        hint = _suggest(key, _field_names(model)) if model else ""
        return make(at.key_pos or at.pos, _field_name(root, at.path[:-1]), f"unknown field {_quote(key)}{hint}")
    if at.rest and error_type not in ("manifest_value",):
        field = _field_name(root, at.path + at.rest)
    if error_type == "literal_error":
        allowed = re.findall(r"'([^']*)'|(\d+)", str(ctx.get("expected", "")))
        choices = [a or b for a, b in allowed]
        listed = ", ".join(_quote(c) if not c.isdigit() else c for c in choices)
        if isinstance(value, str) and value in choices:  # `version: '1'`: the number, quoted
            return make(at.pos, field, f"expected the number {value}, not the string {_quote(value)}")
        hint = _suggest(value, choices) if isinstance(value, str) else ""
        return make(at.pos, field, f"expected one of {listed}, got {_describe(value)}{hint}")
    expected = _expected(error_type)
    if expected:
        return make(at.pos, field, f"expected {expected}, got {_describe(value)}")
    if error_type in ("greater_than_equal", "greater_than"):
        return make(at.pos, field, f"must be at least {ctx.get('ge', ctx.get('gt'))}, got {_describe(value)}")
    if error_type in ("less_than_equal", "less_than"):
        return make(at.pos, field, f"must be at most {ctx.get('le', ctx.get('lt'))}, got {_describe(value)}")
    if error_type == "manifest_value":
        return make(at.pos, field, str(ctx.get("reason", error["msg"])))
    if error_type in ("url_value", "header_value", "json_value"):
        return make(at.pos, field, f"{error['msg']}, got {_describe(value)}")
    if error_type == "value_error":
        return make(at.pos, field, str(ctx.get("error", error["msg"])))
    return make(at.pos, field, str(error["msg"]))


def _located_cross(root: _LMap, items: list[tuple[Loc, Loc, str]]) -> list[ManifestProblem]:
    out = []
    for field_loc, pos_loc, message in items:
        at = _locate(root, pos_loc)
        out.append(ManifestProblem(at.pos.file, at.pos.line, at.pos.column, _field_name(root, field_loc), message))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _warnings(root: _LMap, manifest: Manifest, cron_version: tuple[int, int]) -> tuple[str, ...]:
    from reconciler import cron

    out: list[str] = []

    def warn(loc: Loc, message: str) -> None:
        at = _locate(root, loc)
        out.append(_printable(str(ManifestProblem(at.pos.file, at.pos.line, at.pos.column, _field_name(root, loc),
                                                  message))))

    for i, ext in enumerate(manifest.extensions):
        if ext.declared_as and ext.declared_as != ext.name:
            warn(("extensions", i, "name"), f"{_quote(ext.declared_as)} is an alias of {_quote(ext.name)}")
    scheduled: tuple[tuple[str, Sequence[JobSpec | TriggerSpec]], ...] = (
        ("jobs", manifest.jobs),
        ("triggers", manifest.triggers),
    )
    for kind, specs in scheduled:
        for i, spec in enumerate(specs):
            try:
                parsed = cron.parse(spec.schedule, version=cron_version)
            except cron.CronError:  # validated already; a dialect module change must not crash loading
                continue
            for message in parsed.warnings:
                warn((kind, i, "schedule"), message)
    return tuple(out)


def _sort_key(order: Mapping[str, int]):
    def key(p: ManifestProblem) -> tuple[int, int, int]:
        return (order.get(p.file, len(order)), p.line or 0, p.column or 0)

    return key


def load_manifest(
    paths: Sequence[str | Path] | str | Path, *, cron_version: tuple[int, int] = DEFAULT_CRON_VERSION
) -> Manifest:
    """Load and validate a manifest; later files are overlays merged over earlier ones.

    Raises ManifestError carrying every problem found in every file (never any other exception for any
    file content). Schedules are validated against `cron_version` of pg_cron.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise ManifestError([ManifestProblem("(none)", None, None, "", "no manifest file given")])
    labels = [str(p) for p in paths]
    order = {label: i for i, label in enumerate(labels)}
    problems: list[ManifestProblem] = []
    roots: list[_LMap] = []
    fatal = False
    for path in paths:
        root, file_problems = _parse_file(path)
        problems.extend(file_problems)
        if root is None:
            fatal = True
            continue
        problems.extend(_located_cross(root, _duplicate_problems(root)))
        roots.append(root)
    if fatal:
        raise ManifestError(_dedupe(problems, order))
    merged = roots[0]
    for overlay in roots[1:]:
        merged = _merge(merged, overlay, ())
    problems.extend(
        _located_cross(merged, _reference_problems(merged))  # duplicates were reported per file above
    )
    manifest: Manifest | None = None
    try:
        manifest = Manifest.model_validate(_plain(merged), context={"cron_version": cron_version})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.extend(_problem_for(merged, error))
    if problems or manifest is None:
        raise ManifestError(_dedupe(problems, order))
    return manifest.model_copy(
        update={"source_files": tuple(labels), "warnings": _warnings(merged, manifest, cron_version)}
    )


def _dedupe(problems: list[ManifestProblem], order: Mapping[str, int]) -> list[ManifestProblem]:
    seen: set[ManifestProblem] = set()
    out = []
    for p in sorted(problems, key=_sort_key(order)):
        if p not in seen:
            seen.add(p)
            out.append(dataclasses.replace(p, field=_printable(p.field), message=_printable(p.message)))
    return out


def _printable(text: str) -> str:
    """`text` with every unprintable character escaped, so a problem stays one line and reads as stored.

    Messages quote the offending value; a U+2028 or U+0085 in it would split the line, a U+202E would
    reorder it on screen, and a zero-width character would hide. Escaped as \\uXXXX (\\UXXXXXXXX)."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else (f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}") for c in text
    )
