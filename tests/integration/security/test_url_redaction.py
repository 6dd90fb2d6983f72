"""A password in the database URL, in every form libpq accepts, reaches the server and never an error
line: the real server (trust on loopback, so any password connects) and a port where nothing listens."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.fix_db import DbTarget, free_port
from tests.integration.apply_support import reconcile

PASSWORD = "Zq9/p@ss w0rd'x"  # a slash, an at sign, a space and a quote
ENCODED = quote(PASSWORD, safe="")


def _forms(host: str, port: int) -> dict[str, str]:
    quoted = PASSWORD.replace("\\", "\\\\").replace("'", "\\'")
    return {
        "uri": f"postgresql://postgres:{ENCODED}@{host}:{port}/postgres",
        "query-password": f"postgresql://postgres@{host}:{port}/postgres?password={ENCODED}",
        "key-value": f"host={host} port={port} dbname=postgres user=postgres password='{quoted}'",
    }


FORM_IDS = ("uri", "query-password", "key-value")


@pytest.mark.parametrize("form", FORM_IDS)
def test_each_form_connects_as_libpq_reads_it(empty_db: DbTarget, form: str) -> None:
    url = _forms("127.0.0.1", empty_db.cluster.port)[form]
    result = reconcile(url, "--dry-run")
    assert result.exit_code in (0, 2), result.stderr
    assert PASSWORD not in result.stdout + result.stderr and ENCODED not in result.stdout + result.stderr


@pytest.mark.parametrize("form", FORM_IDS)
def test_a_failed_connection_names_the_problem_not_the_password(form: str) -> None:
    url = _forms("127.0.0.1", free_port())[form]
    result = reconcile(url, "--dry-run")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to the database" in lines[0], result.stderr
    for fragment in (PASSWORD, ENCODED, "Zq9", "w0rd"):
        assert fragment not in result.stdout + result.stderr


@pytest.mark.parametrize("password", ["Zq9/w0rd", "Zq9@w0rd"], ids=["slash", "at"])
def test_an_unencoded_slash_or_at_in_a_uri_password_is_refused_with_the_fix(empty_db: DbTarget,
                                                                           password: str) -> None:
    """libpq would read 'w0rd@127.0.0.1' as the host (the regular expression this replaced let the
    resolver's error show it)."""
    url = f"postgresql://postgres:{password}@127.0.0.1:{empty_db.cluster.port}/postgres"
    result = reconcile(url, "--dry-run")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "percent-encode" in result.stderr and "%2F" in result.stderr and "%40" in result.stderr
    for fragment in ("Zq9", "w0rd"):
        assert fragment not in result.stdout + result.stderr
