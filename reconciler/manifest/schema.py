"""The JSON Schema of scheduler.yaml, built by pydantic's generator from the models (`reconcile schema`,
`scheduler.schema.json`, referenced by the manifest's `yaml-language-server` line for editors)."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from reconciler.manifest.models import Manifest
from reconciler.manifest.types import SECRET_NAME_REGEX


class _ManifestJsonSchema(GenerateJsonSchema):
    """Pydantic's generator, made to describe the YAML a user writes rather than the model it becomes."""

    def tagged_union_schema(self, schema: core_schema.TaggedUnionSchema) -> JsonSchemaValue:
        # Editors check `oneOf` strictly; a {secret: x} body value is also a JSON object, so use anyOf.
        generated = super().tagged_union_schema(schema)
        return {("anyOf" if key == "oneOf" else key): value for key, value in generated.items()}

    def generate(self, schema: core_schema.CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        generated = super().generate(schema, mode)
        defs = generated.get("$defs", {})
        if "SecretSpec" in defs and "secrets" in generated.get("properties", {}):
            # In YAML `secrets` maps a name to its source (`Manifest._normalise` makes the tuple of specs).
            source = dict(defs.pop("SecretSpec"))
            source["properties"] = {k: v for k, v in source["properties"].items() if k != "name"}
            required = [r for r in source.pop("required", []) if r != "name"]
            if required:
                source["required"] = required
            defs["SecretSource"] = source
            generated["properties"]["secrets"] = {
                "title": "Secrets",
                "description": "Vault secrets by name; each value names the secret's source.",
                "type": "object",
                "propertyNames": {"pattern": SECRET_NAME_REGEX},
                "additionalProperties": {"$ref": "#/$defs/SecretSource"},
                "default": {},
            }
        return {"$schema": self.schema_dialect, **generated}


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of scheduler.yaml (for editors: `# yaml-language-server: $schema=...`)."""
    return Manifest.model_json_schema(by_alias=True, mode="validation", schema_generator=_ManifestJsonSchema)
