"""The manifest's pydantic models (scheduler.yaml's sections); their JSON Schema is in `schema.py`.

Data flow: `reconciler.manifest.load` validates the loader's plain data into a `Manifest` (immutable);
everything downstream (kinds' `desired()`, plan, render) reads only that. Secret *values* never appear
here: a manifest names each secret's source, and `reconciler.engine.sources` resolves them at run time.
Field types come from `reconciler.manifest.types`, cross-field checks from `reconciler.manifest.checks`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from reconciler.manifest.checks import NAMED_LISTS, cross_problems, format_path, named_sections
from reconciler.manifest.types import (
    EXTENSION_ALIASES,
    SECRET_SOURCES,
    BodyValue,
    Endpoint,
    EnvName,
    HeaderName,
    HeaderValue,
    Identifier,
    Line,
    NonEmptyText,
    ResourceName,
    Schedule,
    SecretName,
    SpecModel,
    Text,
    UrlValue,
    check_not_blank,
    check_single_line,
    check_text,
    check_url,
    describe,
    fail,
    pattern,
    quote,
)

# ---------------------------------------------------------------------------------------------------------
# Extensions
# ---------------------------------------------------------------------------------------------------------


class ExtensionSpec(SpecModel):
    """A PostgreSQL extension that must be installed (`CREATE EXTENSION`); the reconciler never drops one.

    `vault` is accepted as an alias of `supabase_vault` (there is no extension named `vault`): it is stored
    as `supabase_vault`, with `declared_as="vault"`, and the loader warns about it.
    """

    name: Annotated[
        str,
        AfterValidator(
            pattern(r"[A-Za-z_][A-Za-z0-9_-]*", 'an extension name: letters, digits, "_" and "-"')
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
            and data["name"] in EXTENSION_ALIASES
        ):
            data = {**data, "name": EXTENSION_ALIASES[data["name"]], "declared_as": data["name"]}
        return data


# ---------------------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------------------


def _exactly_one_source(model: BaseModel, sources: tuple[str, ...]) -> None:
    given = [name for name in sources if getattr(model, name) is not None]
    if len(given) != 1:
        got = f"got {', '.join(given)}" if given else "got none"
        raise fail(f"needs exactly one source: {', '.join(sources[:-1])} or {sources[-1]} ({got})")


class GenerateSpec(SpecModel):
    """Generate a random value, used only when the secret does not exist yet (it is never compared)."""

    n_bytes: StrictInt = Field(
        default=32, alias="bytes", ge=16, le=256, description="Random bytes (16..256)."
    )
    encoding: Literal["hex", "base64url"] = Field(
        default="base64url", description="How the bytes are written: hex, or base64url without padding."
    )


class SecretSpec(SpecModel):
    """A secret stored in Supabase Vault (`vault.secrets`, by name). The manifest holds its source, never its value.

    Exactly one source: `from_env` (an environment variable), `from_file` (a file such as a Kubernetes
    secret mount; one trailing newline is stripped; relative paths are relative to the working directory)
    or `generate` (random, used only when the secret does not exist yet).
    """

    name: SecretName
    from_env: EnvName | None = Field(default=None, description="Environment variable holding the value.")
    from_file: Annotated[str, AfterValidator(check_single_line), AfterValidator(check_not_blank)] | None = (
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
        _exactly_one_source(self, SECRET_SOURCES)
        return self

    @property
    def source(self) -> str:
        """`from_env`, `from_file` or `generate`."""
        return next(s for s in SECRET_SOURCES if getattr(self, s) is not None)


# ---------------------------------------------------------------------------------------------------------
# Jobs (rows of public.scheduled_jobs)
# ---------------------------------------------------------------------------------------------------------


class JobSpec(SpecModel):
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


class HttpPostSpec(SpecModel):
    """A `net.http_post(...)` call, rendered by the trigger kind as the SQL text of its `cron.job` command.

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
    body: dict[Annotated[str, AfterValidator(check_text)], BodyValue] = Field(
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
                raise fail(f'pg_net only sends "Content-Type: application/json", not {quote(value)}')
        return headers


class TriggerSpec(SpecModel):
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
            raise fail(f"needs exactly one of command or http_post ({got})")
        return self


# ---------------------------------------------------------------------------------------------------------
# Edge Function secrets (Supabase Management API)
# ---------------------------------------------------------------------------------------------------------


def _check_edge_name(value: str) -> str:
    if value.upper().startswith("SUPABASE_"):
        raise fail(f"{quote(value)} is reserved: names starting with SUPABASE_ are set by Supabase")
    return value


EdgeSecretName = Annotated[
    str,
    AfterValidator(pattern(r"[A-Za-z_][A-Za-z0-9_]*", 'letters, digits and "_", starting with a letter or "_"')),
    AfterValidator(_check_edge_name),
    Field(json_schema_extra={"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}),
]
_EDGE_SOURCES = ("secret", "from_env", "from_file")


class EdgeSecretSource(SpecModel):
    """Where an Edge Function secret's value comes from: a declared Vault secret, or its own source."""

    secret: SecretName | None = Field(default=None, description="A declared Vault secret whose value it mirrors.")
    from_env: EnvName | None = Field(default=None, description="Environment variable holding the value.")
    from_file: Annotated[str, AfterValidator(check_single_line), AfterValidator(check_not_blank)] | None = (
        Field(default=None, description="File holding the value (one trailing newline is stripped).")
    )

    @model_validator(mode="after")
    def _one_source(self) -> EdgeSecretSource:
        _exactly_one_source(self, _EDGE_SOURCES)
        return self


class EdgeFunctionsSpec(SpecModel):
    """Edge Function secrets kept equal to their sources through the Supabase Management API."""

    project_ref: Annotated[str, AfterValidator(pattern(r"[a-z0-9]{4,64}", "a project ref: lowercase letters and digits"))] | None = Field(
        default=None, description="The project ref; when omitted, read from SUPABASE_PROJECT_REF."
    )
    api_url: Annotated[str, AfterValidator(check_url)] = Field(
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


class TablesSpec(SpecModel):
    """The application's tables (`scheduled_jobs`, `job_executions`)."""

    create_missing: StrictBool = Field(
        default=False,
        description="Create the tables with the runbook's columns when absent (else: an error).",
    )


def _off(value: Any) -> Any:
    return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false


class PrunePolicy(SpecModel):
    """What happens to objects the reconciler manages but the manifest no longer declares.

    These policies apply only when the user passes `--prune`; without it nothing undeclared is touched.
    `off` ignores them, `report` lists them, `deactivate` (jobs only) sets is_active = false, `delete`
    removes them (the previous value is kept in reconciler.history). Extensions are never dropped.
    """

    jobs: Annotated[Literal["off", "report", "deactivate", "delete"], BeforeValidator(_off)] = "deactivate"
    triggers: Annotated[Literal["off", "report", "delete"], BeforeValidator(_off)] = "delete"
    secrets: Annotated[Literal["off", "report", "delete"], BeforeValidator(_off)] = "off"
    edge_secrets: Annotated[Literal["off", "report", "delete"], BeforeValidator(_off)] = "delete"




class Manifest(SpecModel):
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
            raise fail(f"expected one of 1, got {describe(value)}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for key in NAMED_LISTS:
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
        problems = cross_problems(self.model_dump(by_alias=True, exclude={"source_files", "warnings"}))
        if problems:
            summary = "; ".join(f"{format_path(loc)}: {msg}" for loc, _pos_loc, msg in problems)
            raise PydanticCustomError(
                "manifest_cross", "{summary}", {"summary": summary, "problems": problems}
            )
        return self

    def digest(self) -> str:
        """SHA-256 (hex) of a canonical JSON dump of the declared state (loader bookkeeping excluded)."""
        dumped = self.model_dump(mode="json", by_alias=True, exclude={"source_files", "warnings"})
        text = json.dumps(dumped, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


NAMED_LISTS.update(named_sections(Manifest))
