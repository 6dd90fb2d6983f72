"""The manifest models, the loader (positions, overlays, limits) and `reconcile validate` / `reconcile schema`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from reconciler.cli.manifest import schema_command, validate_command
from reconciler.errors import ManifestError
from reconciler.kinds.triggers.command import render_command
from reconciler.manifest import (
    JobSpec,
    Manifest,
    NowMarker,
    SecretRef,
    load_manifest,
    manifest_json_schema,
)
from tests import manifest_lookup as lookup
from tests.unit.planning import RUNBOOK_TRIGGER_COMMAND

ROOT = Path(__file__).resolve().parents[2]
SCHEDULER_YAML = ROOT / "scheduler.yaml"

# The runbook's INSERT INTO scheduled_jobs (job_name, job_type, schedule, endpoint, is_active, description),
# copied by hand from seed/ as the independent source of truth.
RUNBOOK_JOBS = [
    (
        "fetch_google_news",
        "fetch_news",
        "*/5 * * * *",
        "/functions/v1/fetch-google-news",
        True,
        "Fetch Google News political articles",
    ),
    (
        "fetch_rss_feeds",
        "fetch_rss",
        "*/15 * * * *",
        "/functions/v1/fetch-rss-feeds",
        True,
        "Fetch RSS feed articles from configured sources",
    ),
    (
        "detect_trend_events",
        "detect_trends",
        "*/5 * * * *",
        "/functions/v1/detect-trend-events",
        True,
        "Detect trending events and set is_trending flags",
    ),
    (
        "extract_trend_entities",
        "extract_entities",
        "*/15 * * * *",
        "/functions/v1/extract-trend-entities",
        True,
        "Extract politicians, orgs, legislation from trends",
    ),
    (
        "tag_trend_policy_domains",
        "tag_domains",
        "*/15 * * * *",
        "/functions/v1/tag-trend-policy-domains",
        True,
        "Tag trends with policy domains",
    ),
    (
        "tag_trend_geographies",
        "tag_geo",
        "*/15 * * * *",
        "/functions/v1/tag-trend-geographies",
        True,
        "Tag trends with geographic regions",
    ),
    (
        "compute_org_relevance",
        "compute_relevance",
        "*/15 * * * *",
        "/functions/v1/compute-org-relevance",
        True,
        "Compute organization-specific relevance scores",
    ),
    (
        "match_entity_watchlist",
        "match_watchlist",
        "*/15 * * * *",
        "/functions/v1/match-entity-watchlist",
        True,
        "Match trends against org watchlists",
    ),
    (
        "update_org_affinities",
        "learn_affinities",
        "0 * * * *",
        "/functions/v1/update-org-affinities",
        True,
        "Update topic affinity scores from user behavior",
    ),
    (
        "correlate_trends_campaigns",
        "correlate",
        "30 * * * *",
        "/functions/v1/correlate-trends-campaigns",
        True,
        "Correlate trends with campaign performance",
    ),
    (
        "decay_stale_affinities",
        "decay_affinities",
        "0 4 * * *",
        "/functions/v1/decay-stale-affinities",
        True,
        "Decay old affinity scores to prevent stale data",
    ),
    (
        "ttl_cleanup",
        "cleanup",
        "0 3 * * *",
        "/functions/v1/ttl-cleanup",
        True,
        "Clean up expired cache and old data",
    ),
    (
        "cleanup_old_cache",
        "cleanup",
        "0 5 * * 0",
        "/functions/v1/cleanup-old-cache",
        True,
        "Weekly cleanup of old cache entries",
    ),
]

MINIMAL = """\
version: 1
secrets:
  project_url: {from_env: SUPABASE_URL}
  cron_secret: {from_env: CRON_SECRET}
jobs:
  - name: fetch_google_news
    type: fetch_news
    schedule: "*/5 * * * *"
    endpoint: /functions/v1/fetch-google-news
triggers:
  - name: master-scheduler
    schedule: "* * * * *"
    http_post:
      url: {secret: project_url, append: /functions/v1/run-scheduled-jobs}
      headers: {x-cron-secret: {secret: cron_secret}}
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return name


def problems_of(paths: list[str]) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(paths)
    return [str(p) for p in info.value.problems]


# --- scheduler.yaml -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return load_manifest([SCHEDULER_YAML])


def test_validate_scheduler_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for var in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "CRON_SECRET"):
        monkeypatch.delenv(var, raising=False)  # validate needs no secret sources
    result = CliRunner().invoke(validate_command, [])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "scheduler.yaml: 3 extensions, 3 secrets, 13 jobs, 1 trigger: valid\n"
    assert result.stderr == ""


def test_scheduler_yaml_jobs_match_the_runbook(manifest: Manifest) -> None:
    rows = [(j.name, j.type, j.schedule, j.endpoint, j.active, j.description) for j in manifest.jobs]
    assert rows == RUNBOOK_JOBS
    for job in manifest.jobs:
        assert job.protect is False


def test_scheduler_yaml_extensions_secrets_tables_prune(manifest: Manifest) -> None:
    assert [(e.name, e.schema_name) for e in manifest.extensions] == [
        ("pg_cron", "pg_catalog"),
        ("pg_net", "extensions"),
        ("supabase_vault", None),
    ]
    assert [(s.name, s.source, s.from_env) for s in manifest.secrets] == [
        ("project_url", "from_env", "SUPABASE_URL"),
        ("service_role_key", "from_env", "SUPABASE_SERVICE_ROLE_KEY"),
        ("cron_secret", "from_env", "CRON_SECRET"),
    ]
    assert manifest.tables.create_missing is False
    assert (manifest.prune.jobs, manifest.prune.triggers, manifest.prune.secrets) == (
        "deactivate",
        "delete",
        "off",
    )
    assert manifest.warnings == ()
    assert manifest.source_files == (str(SCHEDULER_YAML),)


def test_scheduler_yaml_master_trigger(manifest: Manifest) -> None:
    trigger = lookup.trigger(manifest, "master-scheduler")
    assert trigger.schedule == "* * * * *"
    assert trigger.active is True
    assert trigger.command is None
    post = trigger.http_post
    assert post is not None
    assert post.url == SecretRef(secret="project_url", append="/functions/v1/run-scheduled-jobs")
    assert post.headers == {
        "Content-Type": "application/json",
        "x-cron-secret": SecretRef(secret="cron_secret"),
    }
    assert post.body == {"triggered_by": "pg_cron", "timestamp": NowMarker(now="text")}
    assert render_command(trigger) == RUNBOOK_TRIGGER_COMMAND


def test_scheduler_yaml_first_line_points_at_the_schema() -> None:
    first = SCHEDULER_YAML.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=./scheduler.schema.json"


def test_schema_file_is_current() -> None:
    result = CliRunner().invoke(schema_command, [])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == manifest_json_schema()
    assert (ROOT / "scheduler.schema.json").read_text(encoding="utf-8") == result.stdout, (
        "regenerate with: reconcile schema > scheduler.schema.json"
    )


def test_schema_documents_the_manifest_not_the_loader() -> None:
    first = manifest_json_schema()
    assert "--prune" in first["$defs"]["PrunePolicy"]["description"]
    assert first["properties"]["secrets"]["type"] == "object"
    assert "source_files" not in first["properties"]
    assert "declared_as" not in first["$defs"]["ExtensionSpec"]["properties"]


def test_scheduler_yaml_matches_its_schema() -> None:
    import jsonschema
    import yaml

    data = yaml.safe_load(SCHEDULER_YAML.read_text(encoding="utf-8"))
    data["prune"]["secrets"] = "off"
    jsonschema.validate(data, manifest_json_schema())


def test_show_next() -> None:
    result = CliRunner().invoke(
        validate_command, ["-f", str(SCHEDULER_YAML), "--show-next", "3", "--start", "2025-01-01T00:00:00Z"]
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == "next 3 runs (UTC) after 2025-01-01 00:00:00Z:"
    assert (
        "  job fetch_google_news (*/5 * * * *): 2025-01-01 00:05:00Z, 2025-01-01 00:10:00Z, 2025-01-01 00:15:00Z"
        in lines
    )
    assert (
        "  job cleanup_old_cache (0 5 * * 0): 2025-01-05 05:00:00Z, 2025-01-12 05:00:00Z, 2025-01-19 05:00:00Z"
        in lines
    )
    assert lines[-1] == (
        "  trigger master-scheduler (* * * * *): 2025-01-01 00:01:00Z, 2025-01-01 00:02:00Z, 2025-01-01 00:03:00Z"
    )
    assert len(lines) == 2 + 13 + 1


# --- models -----------------------------------------------------------------------------------------------


def test_lookups_and_digest(manifest: Manifest) -> None:
    assert lookup.job(manifest, "ttl_cleanup").schedule == "0 3 * * *"
    assert lookup.secret(manifest, "cron_secret").from_env == "CRON_SECRET"
    with pytest.raises(KeyError):
        lookup.job(manifest, "nope")
    with pytest.raises(KeyError):
        lookup.secret(manifest, "nope")
    assert len(manifest.digest()) == 64
    assert manifest.digest() == load_manifest([SCHEDULER_YAML]).digest()
    changed = manifest.model_copy(update={"jobs": manifest.jobs[:-1]})
    assert changed.digest() != manifest.digest()


def test_models_are_frozen(manifest: Manifest) -> None:
    with pytest.raises(ValidationError):
        manifest.jobs[0].schedule = "0 0 * * *"  # type: ignore[misc]


def test_direct_construction_checks_cross_references() -> None:
    with pytest.raises(ValidationError, match='unknown secret "nope"'):
        Manifest.model_validate(
            {
                "version": 1,
                "triggers": [
                    {"name": "t", "schedule": "* * * * *", "http_post": {"url": {"secret": "nope"}}}
                ],
            }
        )
    with pytest.raises(ValidationError, match='duplicate job name "a"'):
        job = {"name": "a", "type": "t", "schedule": "* * * * *", "endpoint": "/x"}
        Manifest.model_validate({"version": 1, "jobs": [job, job]})


def test_vault_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path, "m.yaml", "version: 1\nextensions:\n  - name: pg_cron\n  - name: pg_net\n  - name: vault\n"
    )
    loaded = load_manifest(["m.yaml"])
    assert loaded.extensions[2].name == "supabase_vault"
    assert loaded.extensions[2].schema_name is None
    assert loaded.extensions[2].declared_as == "vault"
    assert loaded.warnings == ('m.yaml:5:11: extensions[2] (vault).name: "vault" is an alias of "supabase_vault"',)
    result = CliRunner().invoke(validate_command, ["-f", "m.yaml"])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "m.yaml: 3 extensions, 0 secrets, 0 jobs, 0 triggers: valid",
        'warning: m.yaml:5:11: extensions[2] (vault).name: "vault" is an alias of "supabase_vault"',
    ]


def test_schedule_warnings_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m.yaml", MINIMAL.replace('"*/5 * * * *"', '"0 0 * * 1#2"'))
    loaded = load_manifest(["m.yaml"])
    assert len(loaded.warnings) == 1
    assert loaded.warnings[0].startswith("m.yaml:8:15: jobs[0] (fetch_google_news).schedule: ")


def test_warnings_escape_what_would_break_or_reorder_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m.yaml", MINIMAL.replace('"*/5 * * * *"', '"0 0 * * 1#\\u2028\\u202eevil"'))
    (warning,) = load_manifest(["m.yaml"]).warnings
    assert warning.isprintable(), repr(warning)
    assert "\\u2028\\u202e" in warning


def test_cron_version_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m.yaml", MINIMAL.replace('"* * * * *"', '"30 seconds"'))
    assert load_manifest(["m.yaml"]).triggers[0].schedule == "30 seconds"
    with pytest.raises(
        ManifestError, match=r'm\.yaml:12:15: triggers\[0\] \(master-scheduler\)\.schedule: invalid schedule "30 seconds"'
    ):
        load_manifest(["m.yaml"], cron_version=(1, 4))
    result = CliRunner().invoke(validate_command, ["-f", "m.yaml", "--cron-version", "1.4"])
    assert result.exit_code == 1


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a" * 63, True),
        ("a" * 64, False),
        ("é" * 31 + "a", False),  # 63 bytes, but é is not in the pattern
        ("A-b_9", True),
        ("-leading", False),
        ("", False),
    ],
    ids=["63-bytes", "64-bytes", "non-ascii", "mixed-case", "leading-dash", "empty"],
)
def test_job_name_rules(name: str, ok: bool) -> None:
    spec = {"name": name, "type": "t", "schedule": "* * * * *", "endpoint": "/x"}
    if ok:
        assert JobSpec.model_validate(spec).name == name
    else:
        with pytest.raises(ValidationError):
            JobSpec.model_validate(spec)


def test_null_collections_and_bare_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m.yaml", "version: 1\njobs:\ntriggers:\nprune: {jobs: off, secrets: report}\n")
    loaded = load_manifest(["m.yaml"])
    assert loaded.jobs == () and loaded.triggers == ()
    assert (loaded.prune.jobs, loaded.prune.triggers, loaded.prune.secrets) == ("off", "delete", "report")


def test_anchors_within_limits_are_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = MINIMAL.replace("    type: fetch_news\n", "    type: &t fetch_news\n").replace(
        "triggers:",
        "  - name: other\n    type: *t\n    schedule: '0 * * * *'\n    endpoint: /functions/v1/other\ntriggers:",
    )
    write(tmp_path, "m.yaml", text)
    assert [j.type for j in load_manifest(["m.yaml"]).jobs] == ["fetch_news", "fetch_news"]


# --- loader edge cases not expressible as corpus files -----------------------------------------------------


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(validate_command, ["-f", "nope.yaml"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stderr == "error: nope.yaml: file not found\n"


def test_default_file_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(validate_command, [])
    assert result.exit_code == 1
    assert result.stderr == "error: scheduler.yaml: file not found\n"


def test_directory_and_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir.yaml").mkdir()
    assert problems_of(["dir.yaml"]) == ["dir.yaml: file is a directory"]


def test_huge_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "big.yaml", "version: 1\n" + "# padding\n" * 1_700_000)
    assert problems_of(["big.yaml"]) == ["big.yaml: file is larger than 16384 KiB: not a manifest"]


# The limit is ours, checked before libyaml's own (1,000 levels in PyYAML 6.0.4's build, none before): the
# same line with every PyYAML, and no recursion whatever the depth.
DEEP = {
    "flow-lists": ("x: " + "[" * 100_000 + "]" * 100_000, "deep.yaml:2:35: nested deeper than 32 levels"),
    "flow-maps": ("x: " + "{a: " * 2_000 + "1" + "}" * 2_000, "deep.yaml:2:128: nested deeper than 32 levels"),
    "flow-mixed": ("x: " + "[{a: " * 1_000 + "1" + "}]" * 1_000, "deep.yaml:2:80: nested deeper than 32 levels"),
    "dashes": ("x:\n  " + "- " * 3_000 + "a", "deep.yaml:3:65: nested deeper than 32 levels"),
    "indentation": ("x:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(1_200)) + " " * 1_201 + "v",
                    "deep.yaml:34:33: nested deeper than 32 levels"),
}


@pytest.mark.parametrize("body,expected", list(DEEP.values()), ids=list(DEEP))
def test_very_deep_input_never_recurses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str,
                                        expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "deep.yaml", "version: 1\n" + body + "\n")
    assert problems_of(["deep.yaml"]) == [expected]


def test_brackets_inside_quotes_and_comments_are_not_nesting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = MINIMAL + "# " + "[" * 50 + "\n"
    text = text.replace('"*/5 * * * *"', '"*/5 * * * *"  # ' + "{" * 40)
    write(tmp_path, "m.yaml", text.replace("version: 1", "version: 1\n# it's " + "[" * 40))
    assert load_manifest(["m.yaml"]).jobs[0].schedule == "*/5 * * * *"


def test_problems_from_every_file_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "a.yaml", "version: 1\nversion: 1\n")
    write(tmp_path, "b.yaml", "- not a mapping\n")
    assert problems_of(["a.yaml", "b.yaml", "c.yaml"]) == [
        'a.yaml:2:1: duplicate key "version" (first at line 1)',
        "b.yaml:1:1: expected a mapping at the top level, got a list",
        "c.yaml: file not found",
    ]


def test_no_files() -> None:
    with pytest.raises(ManifestError):
        load_manifest([])


# --- overlays -------------------------------------------------------------------------------------------


def test_overlay_overrides_schedule_and_adds_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "base.yaml", MINIMAL)
    write(
        tmp_path,
        "prod.yaml",
        """\
jobs:
  - name: fetch_google_news
    schedule: "*/10 * * * *"
  - name: ttl_cleanup
    type: cleanup
    schedule: "0 3 * * *"
    endpoint: /functions/v1/ttl-cleanup
secrets:
  cron_secret: {from_file: /run/secrets/cron}
triggers:
  - name: master-scheduler
    command: SELECT 1
""",
    )
    loaded = load_manifest(["base.yaml", "prod.yaml"])
    assert [(j.name, j.type, j.schedule, j.endpoint) for j in loaded.jobs] == [
        ("fetch_google_news", "fetch_news", "*/10 * * * *", "/functions/v1/fetch-google-news"),
        ("ttl_cleanup", "cleanup", "0 3 * * *", "/functions/v1/ttl-cleanup"),
    ]
    # a source (or action) set by the overlay replaces the base's, rather than clashing with it
    assert lookup.secret(loaded, "cron_secret").source == "from_file"
    assert lookup.trigger(loaded, "master-scheduler").command == "SELECT 1"
    assert lookup.trigger(loaded, "master-scheduler").http_post is None
    assert lookup.trigger(loaded, "master-scheduler").schedule == "* * * * *"
    assert loaded.source_files == ("base.yaml", "prod.yaml")
    result = CliRunner().invoke(validate_command, ["-f", "base.yaml", "-f", "prod.yaml"])
    assert result.stdout == "base.yaml + prod.yaml: 0 extensions, 2 secrets, 2 jobs, 1 trigger: valid\n"


def test_overlay_errors_point_at_the_overlay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "base.yaml", MINIMAL)
    write(
        tmp_path,
        "prod.yaml",
        """\
# production overrides
jobs:
  - name: fetch_google_news
    schedule: "*/61 * * * *"
  - name: new_job
    type: x
    endpoint: /functions/v1/new
""",
    )
    result = CliRunner().invoke(validate_command, ["-f", "base.yaml", "-f", "prod.yaml"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        'error: prod.yaml:4:15: jobs[0] (fetch_google_news).schedule: invalid schedule "*/61 * * * *": '
        "minute field: step 61 is larger than the field's maximum 59",
        'error: prod.yaml:5:5: jobs[1] (new_job): missing required field "schedule"',
    ]


def test_overlay_duplicate_names_within_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "base.yaml", MINIMAL)
    write(tmp_path, "prod.yaml", "jobs:\n  - name: a\n  - name: a\n")
    assert 'prod.yaml:3:11: jobs[1] (a).name: duplicate job name "a" (first at jobs[0])' in problems_of(
        ["base.yaml", "prod.yaml"]
    )


def test_a_schedule_separated_by_tabs_is_valid_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pg_cron 1.6 (and 1.4) accept tabs between fields, so a live job written that way must be declarable
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m.yaml", MINIMAL.replace('"*/5 * * * *"', '"*/5\\t* * * *"'))
    loaded = load_manifest(["m.yaml"])
    assert loaded.jobs[0].schedule == "*/5\t* * * *"
    assert loaded.warnings == ("m.yaml:8:15: jobs[0] (fetch_google_news).schedule: contains tabs (pg_cron reads a tab as a space)",)
    result = CliRunner().invoke(validate_command, ["-f", "m.yaml"])
    assert result.exit_code == 0, result.output


def test_a_schedule_with_a_line_break_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m.yaml", MINIMAL.replace('"*/5 * * * *"', '"*/5 * * * *\\n0 0 * * *"'))
    with pytest.raises(ManifestError, match=r"m\.yaml:8:15: jobs\[0\] \(fetch_google_news\)\.schedule: must be a single line"):
        load_manifest(["m.yaml"])


def test_a_typo_in_any_section_gets_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The models a location falls into come from the Manifest model itself, so no section is left out."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "e.yaml", "version: 1\nedge_functions:\n  projet_ref: abc\n  secrets:\n    X: {from_evn: Y}\n")
    assert problems_of(["e.yaml"]) == [
        'e.yaml:3:3: edge_functions: unknown field "projet_ref" (did you mean "project_ref"?)',
        'e.yaml:5:9: edge_functions.secrets.X: unknown field "from_evn" (did you mean "from_env"?)',
    ]


@pytest.mark.parametrize(("text", "expected"), [
    ('version: 1\njobs:\n  - name: "nightly\n    schedule: "0 3 * * *"\n    command: select 1\n',
     "m.yaml:3:11: YAML syntax error: unclosed quote? It closes only at line 4, column 15, and then: "
     "did not find expected key at line 4, column 16"),
    ("version: 1\njobs:\n  - name: 'nightly\n    schedule: '0 3 * * *'\n",
     "m.yaml:3:11: YAML syntax error: unclosed quote? It closes only at line 4, column 15, and then: "
     "did not find expected key at line 4, column 16"),
    ("version: 1\njobs:\n  - name: nightly\n    command: \"select 1\n\n\n",
     "m.yaml:4:14: YAML syntax error: unclosed quote (the document ends before it closes)"),
    ("version: 1\njobs:\n  - name: 'nightly\n---\nversion: 1\n",
     "m.yaml:3:11: YAML syntax error: unclosed quote (the document ends before it closes)"),
], ids=["closed-by-the-next-value", "single-quotes", "end-of-text", "document-separator"])
def test_an_unclosed_quote_is_reported_where_it_opens(
    text: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m.yaml", text)
    assert problems_of(["m.yaml"]) == [expected]


def test_other_syntax_errors_near_a_quote_keep_their_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A quoted value closed on its own line is not a missing quote: the error stays where the scanner is."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m.yaml", 'version: 1\njobs:\n  - name: "nightly"\n    schedule: [\n')
    (problem,) = problems_of(["m.yaml"])
    assert "unclosed quote" not in problem
    assert problem.startswith("m.yaml:5:1: YAML syntax error:")
    write(tmp_path, "n.yaml", MINIMAL.replace('"*/5 * * * *"', '"*/5\n      * * * *"'))
    assert load_manifest(["n.yaml"]).jobs[0].schedule == "*/5 * * * *"  # a line break folds to a space


def test_show_next_marks_inactive_jobs_and_triggers(tmp_path: Path) -> None:
    import yaml

    data = yaml.safe_load(SCHEDULER_YAML.read_text(encoding="utf-8"))
    next(j for j in data["jobs"] if j["name"] == "fetch_google_news")["active"] = False
    data["triggers"][0]["active"] = False
    manifest = tmp_path / "scheduler.yaml"
    manifest.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(
        validate_command, ["-f", str(manifest), "--show-next", "2", "--start", "2025-01-01T00:00:00Z"]
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  job fetch_google_news (*/5 * * * *): inactive: no runs" in lines
    assert f"  trigger {data['triggers'][0]['name']} ({data['triggers'][0]['schedule']}): inactive: no runs" in lines
    assert "  job cleanup_old_cache (0 5 * * 0): 2025-01-05 05:00:00Z, 2025-01-12 05:00:00Z" in lines
