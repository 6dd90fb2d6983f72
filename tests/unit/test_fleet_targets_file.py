"""targets.yaml: declared targets into `Target`s, and every problem as one line naming file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.manifest import schema_command
from reconciler.errors import ManifestError
from reconciler.fleet.target import ValueSource
from reconciler.fleet.targets_file import load_targets_file, read_targets
from reconciler.fleet.targets_models import targets_json_schema
from reconciler.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fleet" / "targets.yaml"


def write(tmp_path: Path, text: str, name: str = "targets.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def problems(path: str) -> list[str]:
    with pytest.raises(ManifestError) as e:
        read_targets(path, {})
    return [line.replace(path, "T") for line in e.value.one_line().splitlines()]


def test_declared_targets_become_targets_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, """\
version: 1
targets:
  - name: production
    database_url: {from_env: PROD_DATABASE_URL}
    secrets:
      project_url: {from_env: PROD_SUPABASE_URL}
      service_role_key: {from_file: keys/prod}
    variables: {SUPABASE_PROJECT_REF: abcdefghijklmnopqrst}
    files: [overlays/prod.yaml, /abs/base.yaml]
    labels: {env: prod, tier: "1"}
  - name: staging.eu-1
    database_url: {from_file: staging-url}
""")
    result = read_targets(path, {})
    assert result.errors == ()
    assert result.names() == ("production", "staging.eu-1")
    prod, staging = result.targets
    assert prod.database_url == ValueSource(from_env="PROD_DATABASE_URL")
    assert prod.secrets == {"project_url": ValueSource(from_env="PROD_SUPABASE_URL"),
                            "service_role_key": ValueSource(from_file=str(tmp_path / "keys" / "prod"))}
    assert prod.environ == {"SUPABASE_PROJECT_REF": "abcdefghijklmnopqrst"}
    assert prod.files == (str(tmp_path / "overlays" / "prod.yaml"), "/abs/base.yaml")
    assert prod.labels == {"env": "prod", "tier": "1"}
    assert prod.origin == f"{path}:3"
    assert staging.database_url == ValueSource(from_file=str(tmp_path / "staging-url"))
    assert staging.origin == f"{path}:11"
    assert (staging.secrets, staging.environ, staging.files, staging.labels) == ({}, {}, (), {})


def test_a_relative_targets_path_keeps_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "version: 1\ntargets:\n  - {name: a, database_url: {from_file: url}, files: [o.yaml]}\n")
    monkeypatch.chdir(tmp_path)
    target, = read_targets("targets.yaml", {}).targets
    assert target.database_url == ValueSource(from_file="url")
    assert target.files == ("o.yaml",)
    assert target.origin == "targets.yaml:3"


def test_the_url_comes_from_the_source_at_run_time(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("postgresql://u:pw@h/db\n")
    path = write(tmp_path, "version: 1\ntargets:\n  - {name: a, database_url: {from_file: url}}\n")
    target, = read_targets(path, {}).targets
    assert target.url({}).reveal() == "postgresql://u:pw@h/db"


def test_only_a_version_is_an_empty_fleet(tmp_path: Path) -> None:
    assert read_targets(write(tmp_path, "version: 1\n"), {}).targets == ()


def test_every_problem_is_one_line_with_file_line_column_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, """\
version: 1
targets:
  - name: production
    database_url: {from_env: PROD_DATABASE_URL}
  - name: Staging
    database_url: {from_env: STAGING_URL}
    labls: {}
  - name: production
    database_url: {from_env: OTHER_URL, from_file: x}
    secrets:
      project_url: {}
    variables: {"A-B": x}
    labels: {Env: "-x", ok: "a b"}
    files: ["", 3]
generators:
  - supabase_branchs: {}
  - supabase_branches: {project_ref: ABC, api_url: "ftp://x"}
  - supabase_projects: {name_pattern: "(", sslmode: maybe}
  - {}
verison: 1
""")
    assert problems(path) == [
        'T:5:11: targets[1].name: "Staging" is not valid: use lowercase letters, digits, "-", "_" and ".", '
        "starting with a letter or digit, at most 63",
        'T:7:5: targets[1]: unknown field "labls" (did you mean "labels"?)',
        'T:8:11: targets[2] (production).name: duplicate target name "production" (first at targets[0])',
        "T:9:19: targets[2] (production).database_url: needs exactly one source: from_env or from_file "
        "(got from_env, from_file)",
        "T:11:20: targets[2] (production).secrets.project_url: needs exactly one source: from_env or from_file "
        "(got none)",
        'T:12:17: targets[2] (production).variables.A-B: "A-B" is not valid: an environment variable name: '
        'letters, digits and "_"',
        'T:13:14: targets[2] (production).labels.Env: "Env" is not valid: a label key: lowercase letters, digits '
        'and "_", starting with a letter or "_", at most 63',
        'T:13:19: targets[2] (production).labels.Env: "-x" is not a valid label value: letters, digits, "-", "_" '
        'and ".", beginning and ending with a letter or digit, at most 63',
        'T:13:29: targets[2] (production).labels.ok: "a b" is not a valid label value: letters, digits, "-", "_" '
        'and ".", beginning and ending with a letter or digit, at most 63',
        "T:14:13: targets[2] (production).files[0]: must not be empty",
        "T:14:17: targets[2] (production).files[1]: expected a string, got 3",
        'T:16:5: generators[0]: unknown field "supabase_branchs" (did you mean "supabase_branches"?)',
        'T:17:38: generators[1].supabase_branches.project_ref: "ABC" is not valid: a Supabase project ref: '
        "lowercase letters and digits",
        'T:17:52: generators[1].supabase_branches.api_url: must be an absolute "https://" or "http://" URL, '
        'got "ftp://x"',
        "T:18:39: generators[2].supabase_projects.name_pattern: not a valid regular expression: missing ), "
        "unterminated subpattern at position 0",
        "T:18:53: generators[2].supabase_projects.sslmode: expected one of \"disable\", \"allow\", \"prefer\", "
        '"require", "verify-ca", "verify-full", got "maybe"',
        "T:19:5: generators[3]: needs exactly one generator: supabase_branches or supabase_projects (got none)",
        'T:20:1: unknown field "verison" (did you mean "version"?)',
    ]


def test_a_literal_database_url_is_refused_without_quoting_it(tmp_path: Path) -> None:
    path = write(tmp_path, """\
version: 1
targets:
  - name: a
    database_url: "postgresql://u:hunter2-MARKER@h/db"
  - name: b
    database_url: {from_env: "postgresql://u:hunter3-MARKER@h/db"}
""")
    found = problems(path)
    assert found == [
        "T:4:19: targets[0] (a).database_url: a literal database URL is not accepted (a password does not "
        "belong in the targets file): use {from_env: VARIABLE} or {from_file: path}",
        "T:6:30: targets[1] (b).database_url.from_env: (value hidden) is not valid: an environment variable "
        'name: letters, digits and "_"',
    ]
    assert "MARKER" not in "\n".join(found)


def test_a_bad_name_pattern_is_reported_where_it_is(tmp_path: Path) -> None:
    path = write(tmp_path, 'version: 1\ngenerators:\n  - supabase_projects: {name_pattern: "("}\n')
    assert problems(path) == [
        "T:3:39: generators[0].supabase_projects.name_pattern: not a valid regular expression: missing ), "
        "unterminated subpattern at position 0"]


@pytest.mark.parametrize(("text", "expected"), [
    ("", ['T: the targets file is empty (expected a mapping starting with "version: 1")']),
    ("[]\n", ["T:1:1: expected a mapping at the top level, got a list"]),
    ("targets: []\n", ['T:1:1: missing required field "version"']),
    ("version: 2\n", ["T:1:10: version: expected one of 1, got 2"]),
    ("version: 1\ntargets: {}\n", ["T:2:10: targets: expected a list, got a mapping"]),
    ("version: 1\ntargets:\n  - {name: a}\n", ['T:3:5: targets[0] (a): missing required field "database_url"']),
    ("version: 1\ntargets: [\n", ["T:3:1: YAML syntax error: did not find expected node content (while parsing a "
                                  "flow node at line 3, column 1)"]),
])
def test_broken_files(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(write(tmp_path, text)) == expected


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    assert len(problems(path)) == 1


def test_the_example_validates_and_its_overlay_merges_over_the_manifest() -> None:
    spec = load_targets_file(EXAMPLE)
    assert [t.name for t in spec.targets] == ["production", "staging"]
    assert [g.kind for g in spec.generators] == ["supabase_branches", "supabase_projects"]
    production = spec.targets[0]
    load_manifest([ROOT / "scheduler.yaml", EXAMPLE.parent / production.files[0]])


def test_the_example_points_at_the_schema() -> None:
    first = EXAMPLE.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../../targets.schema.json"


def test_targets_schema_file_is_current() -> None:
    result = CliRunner().invoke(schema_command, ["--targets"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == targets_json_schema()
    assert (ROOT / "targets.schema.json").read_text(encoding="utf-8") == result.stdout, (
        "regenerate with: reconcile schema --targets > targets.schema.json"
    )


def test_the_schema_refuses_a_literal_database_url() -> None:
    schema = targets_json_schema()
    target = schema["$defs"]["TargetSpec"]
    assert target["properties"]["database_url"] == {"$ref": "#/$defs/SourceSpec",
                                                    "description": target["properties"]["database_url"]["description"]}
    assert target["additionalProperties"] is False


def test_the_example_without_a_token_gives_its_declared_targets_and_one_line_per_generator() -> None:
    result = read_targets(str(EXAMPLE), {})
    assert result.names() == ("production", "staging")
    assert result.errors == tuple(
        f"generator {kind} ({EXAMPLE}:{line}): environment variable SUPABASE_ACCESS_TOKEN is not set "
        "(the Management API access token)" for kind, line in (("supabase_branches", 26), ("supabase_projects", 34)))
    production = result.targets[0]
    assert production.secrets["service_role_key"] == ValueSource(from_file="/run/secrets/prod-service-role-key")
    assert production.files == (str(EXAMPLE.parent / "overlays" / "production.yaml"),)
