"""SecretValue never shows its value; resolve_secrets reports every missing source at once, by name only."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.manifest import validate_command
from reconciler.engine.sources import SecretValue, generate_value, resolve_secrets
from reconciler.errors import ManifestError, SecretSourceError
from reconciler.manifest import Manifest, load_manifest

ROOT = Path(__file__).resolve().parents[2]
MARKERS = {
    "SUPABASE_URL": "MARKER-url-7f3a91c2e",
    "SUPABASE_SERVICE_ROLE_KEY": "MARKER-key-0b5d2e8f4",
    "CRON_SECRET": "MARKER-cron-c44e19a0d",
}


def manifest_with(secrets: dict[str, dict[str, object]]) -> Manifest:
    return Manifest.model_validate({"version": 1, "secrets": secrets})


@pytest.fixture
def scheduler() -> Manifest:
    return load_manifest([ROOT / "scheduler.yaml"])


def test_secret_value_never_shows_its_value() -> None:
    value = SecretValue("hunter2-MARKER")
    digest = hashlib.sha256(b"hunter2-MARKER").hexdigest()
    assert value.digest == digest
    assert repr(value) == f"SecretValue(sha256:{digest[:8]}…)"
    assert str(value) == "(sensitive)"
    assert f"{value}" == "(sensitive)" and f"{value:>12}" == " (sensitive)" and "%s" % value == "(sensitive)"  # noqa: UP031
    assert "hunter2" not in repr([value]) + repr({"k": value}) + str((value,))
    assert value.reveal() == "hunter2-MARKER"
    assert value.generated is False
    with pytest.raises(TypeError):
        json.dumps(value)
    with pytest.raises(TypeError):
        json.dumps({"k": value})
    with pytest.raises(TypeError):
        pickle.dumps(value)
    assert copy.deepcopy(value) is value
    assert value == SecretValue("hunter2-MARKER") and value != SecretValue("other")


def test_resolve_from_env_and_file(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("file-value\n", encoding="utf-8")
    (tmp_path / "crlf").write_bytes(b"crlf-value\r\n")
    (tmp_path / "two").write_text("two-newlines\n\n", encoding="utf-8")
    m = manifest_with(
        {
            "a": {"from_env": "A"},
            "b": {"from_file": str(tmp_path / "key")},
            "c": {"from_file": str(tmp_path / "crlf")},
            "d": {"from_file": str(tmp_path / "two")},
        }
    )
    values = resolve_secrets(m, {"A": "env-value"})
    assert list(values) == ["a", "b", "c", "d"]
    assert [v.reveal() for v in values.values()] == [
        "env-value",
        "file-value",
        "crlf-value",
        "two-newlines\n",
    ]


def test_generate_gives_fresh_values() -> None:
    m = manifest_with({"g": {"generate": {"bytes": 16, "encoding": "hex"}}, "h": {"generate": {}}})
    first, second = resolve_secrets(m, {}), resolve_secrets(m, {})
    assert first["g"].generated and len(first["g"].reveal()) == 32
    assert int(first["g"].reveal(), 16) >= 0
    assert len(first["h"].reveal()) == 43  # 32 bytes, base64url, unpadded
    assert "=" not in first["h"].reveal()
    assert first["g"] != second["g"] and first["h"] != second["h"]
    assert len(generate_value(256, "hex")) == 512


def test_all_missing_sources_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    (tmp_path / "binary").write_bytes(b"\xff\xfe")
    m = manifest_with(
        {
            "service_role_key": {"from_file": "/run/secrets/x"},
            "cron_secret": {"from_env": "CRON_SECRET"},
            "blank": {"from_env": "BLANK"},
            "empty_file": {"from_file": str(tmp_path / "empty")},
            "binary_file": {"from_file": str(tmp_path / "binary")},
            "a_dir": {"from_file": str(tmp_path)},
            "fine": {"from_env": "FINE"},
        }
    )
    with pytest.raises(SecretSourceError) as info:
        resolve_secrets(m, {"BLANK": "", "FINE": "MARKER-fine"})
    assert info.value.message == (
        "missing secret sources: "
        f"a_dir (file {tmp_path} is a directory), "
        f"binary_file (file {tmp_path / 'binary'} is not valid UTF-8), "
        "blank (environment variable BLANK is empty), "
        "cron_secret (environment variable CRON_SECRET is not set), "
        f"empty_file (file {tmp_path / 'empty'} is empty), "
        "service_role_key (file /run/secrets/x not found)"
    )
    assert "MARKER" not in info.value.one_line()


def test_the_spec_example_message() -> None:
    m = manifest_with(
        {"service_role_key": {"from_file": "/run/secrets/x"}, "cron_secret": {"from_env": "CRON_SECRET"}}
    )
    with pytest.raises(SecretSourceError) as info:
        resolve_secrets(m, {})
    assert info.value.message == (
        "missing secret sources: cron_secret (environment variable CRON_SECRET is not set), "
        "service_role_key (file /run/secrets/x not found)"
    )


def test_markers_never_leak(
    scheduler: Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name, marker in MARKERS.items():
        monkeypatch.setenv(name, marker)
    values = resolve_secrets(scheduler, dict(MARKERS))
    assert {k: v.reveal() for k, v in values.items()} == {
        "project_url": MARKERS["SUPABASE_URL"],
        "service_role_key": MARKERS["SUPABASE_SERVICE_ROLE_KEY"],
        "cron_secret": MARKERS["CRON_SECRET"],
    }
    shown = []
    for value in values.values():
        assert value.digest == hashlib.sha256(value.reveal().encode("utf-8")).hexdigest()
        shown += [repr(value), str(value), f"{value}", f"{value!r:>40}", format(value, "")]
        with pytest.raises(TypeError):
            json.dumps(value)
        with pytest.raises(TypeError):
            pickle.dumps(value)
    shown.append(repr(values))
    shown.append(json.dumps(values, default=str))
    # a SecretSourceError for one missing source while the others are set
    with pytest.raises(SecretSourceError) as missing:
        resolve_secrets(scheduler, {k: v for k, v in MARKERS.items() if k != "CRON_SECRET"})
    shown.append(missing.value.one_line())
    # a ManifestError from a broken manifest, loaded while the markers are in the environment
    (tmp_path / "bad.yaml").write_text(
        (ROOT / "scheduler.yaml")
        .read_text(encoding="utf-8")
        .replace("{secret: cron_secret}", "{secret: cron}"),
        encoding="utf-8",
    )
    with pytest.raises(ManifestError) as broken:
        load_manifest([tmp_path / "bad.yaml"])
    shown.append(broken.value.one_line())
    # the validate output
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(validate_command, ["--show-next", "2"])
    assert result.exit_code == 0
    shown += [result.stdout, result.stderr, repr(scheduler), scheduler.model_dump_json()]
    shown += [r.getMessage() for r in caplog.records]
    everything = "\n".join(shown)
    for marker in MARKERS.values():
        assert marker not in everything
    assert "MARKER" not in everything


def test_nul_in_environment_value_is_refused() -> None:
    m = manifest_with({"a": {"from_env": "A"}})
    with pytest.raises(SecretSourceError, match="contains a NUL byte"):
        resolve_secrets(m, {"A": "x\x00y"})


def test_invalid_utf8_in_environment_value_is_refused_without_showing_it() -> None:
    m = manifest_with({"a": {"from_env": "A"}})
    # how Python hands over an environment variable holding the bytes ff fe 73 65 63
    undecodable = b"\xff\xfesec".decode("utf-8", "surrogateescape")
    with pytest.raises(SecretSourceError, match="environment variable A is not valid UTF-8") as refused:
        resolve_secrets(m, {"A": undecodable})
    assert "sec" not in str(refused.value).replace("secret", "")


@pytest.mark.parametrize("args", [["--show-next", "0"], ["--bogus"]], ids=["out-of-range", "unknown-option"])
def test_validate_alone_turns_usage_errors_into_one_line_exit_1(args: list[str]) -> None:
    result = CliRunner().invoke(validate_command, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr


def test_secret_statements_carry_no_plaintext_until_the_copy_runs() -> None:
    from psycopg import sql

    from reconciler.kinds import secrets as secret_kind
    from reconciler.kinds.base import Capabilities
    from reconciler.model import Action, Change, FieldChange

    value = SecretValue("sv-plaintext-marker")
    change = Change("secret", "cron_secret", Action.CREATE, after={"name": "cron_secret", "description": "", "value": value},
                    fields=(FieldChange("value", sensitive=True),))
    statements = secret_kind.kind.statements([change], Capabilities())
    shown = repr(statements) + "".join(s.query.as_string(None) for s in statements)
    assert "sv-plaintext-marker" not in shown
    assert "pg_temp" in shown and all(isinstance(s.query, sql.Composable) for s in statements)

    # the value is revealed only by Statement.run, inside the COPY (tests/integration: the vault holds it)
    (copy_statement,) = [s for s in statements if s.copy_rows is not None]
    assert copy_statement.copy_rows == (("cron_secret", value),)


def test_a_secret_file_that_never_ends_is_refused_after_64_kib(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_text("x" * (64 * 1024 + 1))
    m = manifest_with({"endless": {"from_file": "/dev/zero"}, "big": {"from_file": str(big)}})
    with pytest.raises(SecretSourceError) as refused:
        resolve_secrets(m, {})
    assert "endless (file /dev/zero is larger than 64 KiB)" in refused.value.message
    assert f"big (file {big} is larger than 64 KiB)" in refused.value.message
