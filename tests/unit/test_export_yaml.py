"""The export's YAML: every string a live database can hold loads back identical through load_manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.export import schema_line, to_yaml
from reconciler.manifest import load_manifest

TRICKY = ["on", "off", "yes", "No", "null", "~", "0755", "0x1F", "1e3", "*alias", "&anchor", "!tag", "- item",
          "a: b", "# not a comment", "trailing ", " leading", "tab\there", "line\u2028separator", "para\u2029",
          "bidi \u202eevil\u202c", "zero\u200bwidth", "\ufeffbom", "multi\nline\n", "multi\n  indented", "'quoted'",
          '"double"', "%percent", "@at", "`tick", "{flow}", "[flow]", "back\\slash", "ünïcödé", "",
          "\n\nleading breaks", "crlf\r\nline", "2024-01-01", "true", "=", "<<"]


@pytest.mark.parametrize("text", TRICKY, ids=[repr(t) for t in TRICKY])
def test_tricky_strings_load_back_identical(text: str, tmp_path: Path) -> None:
    document = {"version": 1, "jobs": [{"name": "j", "type": "t", "schedule": "* * * * *", "endpoint": "/e",
                                        "description": text}],
                "triggers": [{"name": "t", "schedule": "* * * * *", "command": f"SELECT 1 -- {text}"}]}
    path = tmp_path / "m.yaml"
    written = schema_line("./scheduler.schema.json") + "\n" + to_yaml(document)
    path.write_text(written, encoding="utf-8")
    manifest = load_manifest(path)
    assert manifest.jobs[0].description == text
    assert manifest.triggers[0].command == f"SELECT 1 -- {text}"
    for invisible in ("\u2028", "\u2029", "\u202e", "\u200b", "\ufeff", "\t"):
        assert invisible not in written, "an invisible character was written raw"
