"""`engine.conninfo`: what a message may show of a connection string, in every form libpq accepts."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from reconciler.engine.conninfo import MASK, UNPARSEABLE, misread_password, redact_url, scrub, secret_values

SECRET = "Hunter2-s3cret"

FORMS = {
    "uri": (f"postgresql://app:{SECRET}@db.example.test:5432/postgres?sslmode=require", SECRET),
    "postgres-scheme": (f"postgres://app:{SECRET}@db.example.test/postgres", SECRET),
    "query-password": (f"postgresql://app@db.example.test/postgres?password={SECRET}", SECRET),
    "query-password-encoded": ("postgresql://app@db.example.test/postgres?password=p%26ss%3Dw%2Bord",
                               "p&ss=w+ord"),
    "percent-encoded-slash-and-at": ("postgresql://app:pa%2Fss%40word@db.example.test/postgres", "pa/ss@word"),
    "percent-encoded-everything": ("postgresql://app:%6B%71%37%7A%7A%39@h/db", "kq7zz9"),
    "multiple-hosts": (f"postgresql://h1:5432,h2:5433/db?user=app&password={SECRET}&target_session_attrs=any",
                       SECRET),
    "key-value": (f"host=db.example.test port=5432 dbname=postgres user=app password={SECRET}", SECRET),
    "key-value-quoted": ("host=db.example.test password='with spaces \\' and quote' dbname=x",
                         "with spaces ' and quote"),
    "key-value-slash-at": ("host=db.example.test password=pa/ss@word dbname=x", "pa/ss@word"),
    "sslpassword": (f"host=db.example.test sslpassword={SECRET} dbname=x", SECRET),
}


@pytest.mark.parametrize("url, password", FORMS.values(), ids=FORMS.keys())
def test_every_credential_is_masked_and_the_rest_kept(url: str, password: str) -> None:
    parsed = conninfo_to_dict(url)
    assert password in (parsed.get("password"), parsed.get("sslpassword")), "the case itself is wrong"
    shown = redact_url(url)
    assert password not in shown
    assert MASK in shown
    shown_params = conninfo_to_dict(shown)  # what is shown is itself a valid connection string
    for key, value in parsed.items():
        if key not in ("password", "sslpassword"):
            assert shown_params[key] == value
    assert not misread_password(url)


MISREAD = {
    # libpq ends the user part at the first '/' or '@': the password becomes host, port or database
    "slash": ("postgresql://app:kq7/zz9@db.example.test/postgres", "kq7/zz9"),
    "at": ("postgresql://app:kq7@zz9@db.example.test/postgres", "kq7@zz9"),
    "both-and-a-query": ("postgres://app:kq7@/zz9@db.example.test:6543/postgres?sslmode=require", "kq7@/zz9"),
}


@pytest.mark.parametrize("url, password", MISREAD.values(), ids=MISREAD.keys())
def test_an_unencoded_slash_or_at_in_a_uri_password_is_found_and_masked_whole(url: str, password: str) -> None:
    assert misread_password(url)
    shown = redact_url(url)
    for fragment in (password, "kq7", "zz9"):
        assert fragment not in shown, fragment
    params = conninfo_to_dict(shown)
    assert params["host"] == "db.example.test" and params["user"] == "app" and params["password"] == MASK


def test_a_string_that_does_not_parse_is_not_shown() -> None:
    assert redact_url(f"host='{SECRET}") == UNPARSEABLE


def test_no_password_is_no_mask() -> None:
    assert redact_url("postgresql://app@db.example.test/postgres") == "user=app dbname=postgres host=db.example.test"
    assert secret_values("host=h dbname=x") == []


def test_scrub_masks_the_string_and_each_credential_in_a_driver_message() -> None:
    url = "postgresql://app:pa%2Fss@db.example.test/postgres"
    message = f'connection to "{url}" failed: password "pa/ss" or "pa%2Fss" rejected'
    cleaned = scrub(message, url)
    assert "pa/ss" not in cleaned and "pa%2Fss" not in cleaned and cleaned.count(MASK) >= 3


def test_a_plan_names_the_database_by_host_port_and_name_never_a_credential() -> None:
    from reconciler.engine.conninfo import database_identity, database_words

    for url in ("postgresql://deployer:hunter2-pw@db.example.com:6543/prod?sslpassword=key-pw",
                "host=db.example.com port=6543 dbname=prod user=deployer password='hunter2-pw' sslpassword=key-pw"):
        identity = database_identity(url)
        assert identity == {"host": "db.example.com", "port": 6543, "dbname": "prod"}
        assert database_words(identity) == "database prod on db.example.com:6543"
    local = database_identity("postgresql:///postgres?host=/tmp/run&port=5433")
    assert local is not None and database_words(local) == "database postgres on the local socket (port 5433)"
    assert database_words({"host": None, "port": None, "dbname": None}) == "database (the default) on the local socket"
    assert database_identity("postgresql://u:pa/ss@host/db") is None  # libpq would read the password as the host
    assert database_identity("host='unclosed") is None
