"""A fleet target resolves its database URL and secret overrides from its own sources, naming never a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ReconcilerError, SecretSourceError
from reconciler.fleet.target import Target, ValueSource
from reconciler.manifest import load_manifest
from reconciler.secret_value import SecretValue

ROOT = Path(__file__).resolve().parents[2]
BASE = {"SUPABASE_URL": "https://shared.example", "SUPABASE_SERVICE_ROLE_KEY": "shared-key", "CRON_SECRET": "shared-cron"}


@pytest.fixture(scope="module")
def manifest():  # type: ignore[no-untyped-def]
    return load_manifest([ROOT / "scheduler.yaml"])


def test_value_source_takes_exactly_one_source() -> None:
    with pytest.raises(ValueError):
        ValueSource()
    with pytest.raises(ValueError):
        ValueSource(from_env="A", from_file="/f")


def test_url_from_the_targets_own_variable_over_the_process_environment() -> None:
    target = Target("a", ValueSource(from_env="A_URL"), environ={"A_URL": "postgresql://own"})
    assert target.url({"A_URL": "postgresql://process"}).reveal() == "postgresql://own"
    assert Target("b", ValueSource(from_env="B_URL")).url({"B_URL": "postgresql://b"}).reveal() == "postgresql://b"


def test_a_missing_url_source_names_the_target_and_the_variable() -> None:
    with pytest.raises(SecretSourceError) as e:
        Target("branch-7", ValueSource(from_env="BRANCH7_URL")).url({})
    assert e.value.message == "database URL: environment variable BRANCH7_URL is not set"  # the caller names the target


def test_a_fetched_value_is_used_as_is_and_never_printed() -> None:
    url = SecretValue("postgresql://u:hunter2-MARKER@h/db")
    target = Target("a", ValueSource(value=url))
    assert target.url({}) is url
    assert "hunter2" not in repr(target) + str(target)


def test_secret_overrides_replace_the_manifests_sources(manifest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    name = manifest.secrets[0].name
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    other = manifest.secrets[1].name
    target = Target("a", ValueSource(from_env="X"),
                    secrets={name: ValueSource(value=SecretValue("fetched")), other: ValueSource(from_file=str(key_file))})
    values = target.secret_values(manifest, BASE)
    assert values[name].reveal() == "fetched"
    assert values[other].reveal() == "from-file"
    untouched = [s.name for s in manifest.secrets if s.name not in (name, other)]
    shared = Target("b", ValueSource(from_env="X")).secret_values(manifest, BASE)
    assert {n: values[n].digest for n in untouched} == {n: shared[n].digest for n in untouched}
    assert set(values) == set(shared)


def test_a_missing_override_source_names_the_source(manifest) -> None:  # type: ignore[no-untyped-def]
    name = manifest.secrets[0].name
    target = Target("t1", ValueSource(from_env="X"), secrets={name: ValueSource(from_env="T1_ONLY")})
    with pytest.raises(SecretSourceError) as e:
        target.secret_values(manifest, BASE)
    assert e.value.message.startswith("missing secret sources: ")  # the caller names the target
    assert "T1_ONLY" in e.value.message


def test_overriding_an_undeclared_secret_is_an_error(manifest) -> None:  # type: ignore[no-untyped-def]
    target = Target("t1", ValueSource(from_env="X"), secrets={"no_such_secret": ValueSource(from_env="Y")})
    with pytest.raises(ReconcilerError, match="^overrides undeclared secret"):
        target.secret_values(manifest, BASE)
