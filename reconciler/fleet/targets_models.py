"""targets.yaml's pydantic models and their JSON Schema (`reconcile schema --targets`, targets.schema.json).

Data flow: `reconciler.fleet.targets_file` validates the loader's plain data into a `TargetsFile`
(immutable) and turns it into `Target`s; the generator specs here are what `reconciler.fleet.generators`
runs. Nothing here holds a secret: a target names where its database URL and secret overrides come
from (a variable, a file), and a literal database URL is refused so no password is ever written in it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StrictBool, model_validator
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from reconciler.manifest.types import (
    EnvName,
    Line,
    SecretName,
    SpecModel,
    check_not_blank,
    check_single_line,
    check_url,
    fail,
    pattern,
    quote,
)

#: A target's name becomes a metric label and a log field: short, lowercase, no spaces.
TARGET_NAME_REGEX = r"[a-z0-9][a-z0-9._-]{0,62}"
TargetName = Annotated[
    str,
    AfterValidator(pattern(TARGET_NAME_REGEX, 'use lowercase letters, digits, "-", "_" and ".", starting with '
                                              "a letter or digit, at most 63")),
    Field(json_schema_extra={"pattern": f"^{TARGET_NAME_REGEX}$"}),
]
#: Label keys follow Prometheus label names (lowercase here), values Kubernetes label values.
LABEL_KEY_REGEX = r"[a-z_][a-z0-9_]{0,62}"
LABEL_VALUE_REGEX = r"([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?"
LabelKey = Annotated[
    str,
    AfterValidator(pattern(LABEL_KEY_REGEX, 'a label key: lowercase letters, digits and "_", starting with a '
                                            "letter or \"_\", at most 63")),
    Field(json_schema_extra={"pattern": f"^{LABEL_KEY_REGEX}$"}),
]


def _check_label_value(value: str) -> str:
    check_single_line(value)
    if not re.fullmatch(LABEL_VALUE_REGEX, value):
        raise fail(f'{quote(value)} is not a valid label value: letters, digits, "-", "_" and ".", beginning and '
                   "ending with a letter or digit, at most 63")
    return value


LabelValue = Annotated[str, AfterValidator(_check_label_value),
                       Field(json_schema_extra={"pattern": f"^{LABEL_VALUE_REGEX}$"})]
FilePath = Annotated[str, AfterValidator(check_single_line), AfterValidator(check_not_blank)]
ProjectRef = Annotated[
    str,
    AfterValidator(pattern(r"[a-z0-9]{1,64}", "a Supabase project ref: lowercase letters and digits")),
    Field(json_schema_extra={"pattern": "^[a-z0-9]{1,64}$"}),
]
ApiUrl = Annotated[str, AfterValidator(check_url)]

_LITERAL_URL = ("a literal database URL is not accepted (a password does not belong in the targets file): "
                "use {from_env: VARIABLE} or {from_file: path}")


def _refuse_literal(value: Any) -> Any:
    # The message never quotes the value: a literal URL is the one place a password could be written.
    if isinstance(value, str):
        raise fail(_LITERAL_URL)
    return value


class SourceSpec(SpecModel):
    """Where a value comes from: an environment variable or a file (one trailing newline is stripped)."""

    from_env: EnvName | None = Field(default=None, description="Environment variable holding the value.")
    from_file: FilePath | None = Field(
        default=None, description="File holding the value; relative to the targets file's directory.")

    @model_validator(mode="after")
    def _exactly_one(self) -> SourceSpec:
        given = [name for name in ("from_env", "from_file") if getattr(self, name) is not None]
        if len(given) != 1:
            raise fail(f"needs exactly one source: from_env or from_file (got {', '.join(given) or 'none'})")
        return self


class TargetSpec(SpecModel):
    """One database of the fleet."""

    name: TargetName = Field(description="Unique; used in logs, plans and as the `target` metric label.")
    database_url: Annotated[SourceSpec, BeforeValidator(_refuse_literal)] = Field(
        description="Where the database URL comes from (never a literal URL: it would hold a password).")
    secrets: dict[SecretName, SourceSpec] = Field(
        default_factory=dict, description="Overrides of the manifest's Vault secret sources, by secret name.")
    variables: dict[EnvName, Line] = Field(
        default_factory=dict, description="Non-secret environment variables for this target only "
                                          "(e.g. SUPABASE_PROJECT_REF), over the process environment.")
    files: tuple[FilePath, ...] = Field(
        default=(), description="Extra manifest files merged over the shared ones; relative to the targets file.")
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, description="Labels, for selection.")


#: What a generator can put into a manifest secret, for `secrets:` of a generator.
GeneratedValue = Literal["url", "service_role_key", "anon_key"]


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as e:
        raise fail(f"not a valid regular expression: {e}") from None
    return value


class _GeneratorCommon(SpecModel):
    access_token_env: EnvName = Field(
        default="SUPABASE_ACCESS_TOKEN", description="Environment variable holding the Management API access token.")
    api_url: ApiUrl = Field(default="https://api.supabase.com", description="The Management API's base URL.")
    secrets: dict[SecretName, GeneratedValue] = Field(
        default_factory=dict,
        description="Which manifest secrets take the generated project's values: url (https://<ref>.supabase.co), "
                    "service_role_key or anon_key.")
    files: tuple[FilePath, ...] = Field(
        default=(), description="Extra manifest files for every generated target; relative to the targets file.")
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, description="Labels of every generated target.")
    name_prefix: Annotated[str, AfterValidator(pattern(r"[a-z0-9][a-z0-9._-]{0,30}", 'lowercase letters, digits, '
                                                       '"-", "_" and ".", at most 31'))] | None = Field(
        default=None, description="Put before every generated target's name.")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        default="require", description="libpq sslmode of the generated database URLs.")


class BranchesSpec(_GeneratorCommon):
    """The branches of a Supabase project (Management API), those whose migrations have passed."""

    project_ref: ProjectRef = Field(description="The ref of the project whose branches are the targets.")
    include_default: StrictBool = Field(default=True, description="Include the default (production) branch.")


class ProjectsSpec(_GeneratorCommon):
    """The projects the access token can see (Management API), those that are ACTIVE_HEALTHY."""

    name_pattern: Annotated[str, AfterValidator(check_single_line), AfterValidator(_check_regex)] | None = Field(
        default=None, description="A regular expression the project's name must contain a match of (re.search).")
    database_password_env: Annotated[str, AfterValidator(
        pattern(r"[A-Za-z_][A-Za-z0-9_]*", 'an environment variable name prefix: letters, digits and "_"'))] = Field(
        default="SUPABASE_DB_PASSWORD_",
        description="The Management API does not return database passwords: each project's is read from the "
                    "variable of this prefix followed by the project ref in upper case.")
    database_user: Line = Field(default="postgres", description="The database role to connect as.")


class GeneratorSpec(SpecModel):
    """One generator: exactly one of its kinds."""

    supabase_branches: BranchesSpec | None = None
    supabase_projects: ProjectsSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> GeneratorSpec:
        given = [name for name in GENERATOR_KINDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise fail(f"needs exactly one generator: {' or '.join(GENERATOR_KINDS)} (got {', '.join(given) or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return "supabase_branches" if self.supabase_branches is not None else "supabase_projects"

    @property
    def spec(self) -> BranchesSpec | ProjectsSpec:
        spec = self.supabase_branches or self.supabase_projects
        assert spec is not None
        return spec


GENERATOR_KINDS = ("supabase_branches", "supabase_projects")


class TargetsFile(SpecModel):
    """targets.yaml: the databases of a fleet, declared and generated."""

    version: Literal[1] = Field(description="Format version of the targets file.")
    targets: tuple[TargetSpec, ...] = Field(default=(), description="Databases declared one by one.")
    generators: tuple[GeneratorSpec, ...] = Field(default=(), description="Sources of targets (Supabase API).")


class _TargetsJsonSchema(GenerateJsonSchema):
    def generate(self, schema: core_schema.CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        return {"$schema": self.schema_dialect, **super().generate(schema, mode)}


def targets_json_schema() -> dict[str, Any]:
    """The JSON Schema of targets.yaml (for editors: `# yaml-language-server: $schema=...`)."""
    return TargetsFile.model_json_schema(by_alias=True, mode="validation", schema_generator=_TargetsJsonSchema)


def model_fields_of(model: type[SpecModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


#: The model that holds a location's fields (for "did you mean" on unknown fields).
FIELD_MODELS: Mapping[tuple[str, ...], type[SpecModel]] = {
    (): TargetsFile,
    ("targets", "[]"): TargetSpec,
    ("targets", "[]", "database_url"): SourceSpec,
    ("targets", "[]", "secrets", "*"): SourceSpec,
    ("generators", "[]"): GeneratorSpec,
    ("generators", "[]", "supabase_branches"): BranchesSpec,
    ("generators", "[]", "supabase_projects"): ProjectsSpec,
}
