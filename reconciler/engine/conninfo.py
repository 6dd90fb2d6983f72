"""What a message may show of a database connection string, read as libpq reads it.

Where it sits: beside engine/db.py, which connects; anything that names the database in an error or a
log line shows `redact_url(url)`, never the string itself. libpq accepts a URI
(`postgresql://user:password@host/db?password=...`, percent-encoded) or key/value pairs
(`host=... password='...'`); psycopg's `conninfo_to_dict` parses both exactly as libpq will, so the
password is found wherever it is written, and `make_conninfo` writes the result back with it masked.

One form libpq reads differently from what its author meant: a URI whose password holds an unencoded
`@` or `/` (`postgresql://u:pa/ss@host/db`). libpq ends the user part at the first `/` or the first `@`,
so parts of the password become the host, the port or the database name. `misread_password` finds that
case (the text between `user:` and the last `@` before the query is not the password libpq parsed), the
connection refuses it up front with the fix, and `redact_url` masks all of it.
"""

from __future__ import annotations

import contextlib
from urllib.parse import unquote

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict, make_conninfo

MASK = "***"
#: Connection parameters whose values are credentials (sslpassword unlocks the client key).
SECRET_PARAMETERS = ("password", "sslpassword")
URI_SCHEMES = ("postgresql://", "postgres://")
UNPARSEABLE = "(a connection string that does not parse)"


def _intended_userinfo(url: str) -> tuple[str, str, str] | None:
    """(scheme, user, password) as a person reads a URI: the user part runs to the last `@` before the
    query. None when the string is not a URI or has no `user:password@`."""
    scheme = next((s for s in URI_SCHEMES if url.startswith(s)), None)
    if scheme is None:
        return None
    before_query = url[len(scheme):].split("?", 1)[0]
    if "@" not in before_query:
        return None
    userinfo = before_query.rsplit("@", 1)[0]
    if ":" not in userinfo:
        return None
    user, password = userinfo.split(":", 1)
    return scheme, user, password


def misread_password(url: str) -> bool:
    """True when libpq would read part of the URI's password as the host, port or database name."""
    intended = _intended_userinfo(url)
    if intended is None:
        return False
    try:
        parsed = conninfo_to_dict(url).get("password")
    except ProgrammingError:
        return True
    return parsed != unquote(intended[2])


def secret_values(url: str) -> list[str]:
    """Every credential in `url` as it may appear in a message: parsed, as written, percent-encoded."""
    found: list[str] = []
    intended = _intended_userinfo(url)
    if intended is not None:
        found += [intended[2], unquote(intended[2])]
    with contextlib.suppress(ProgrammingError):  # nothing parsed: redact_url shows nothing of it either
        found += [str(v) for k, v in conninfo_to_dict(url).items() if k in SECRET_PARAMETERS and v]
    return sorted({v for v in found if v}, key=len, reverse=True)


def redact_url(url: str) -> str:
    """The connection string as libpq reads it (key/value pairs), every credential replaced by ***.

    A URI whose password libpq would misread is shown as its author meant it, without the password;
    a string that does not parse is not shown at all (libpq's own error quotes it, password included).
    """
    intended = _intended_userinfo(url)
    if intended is not None and misread_password(url):
        scheme, user, _ = intended
        head, question_mark, query = url[len(scheme):].partition("?")
        url = scheme + user + "@" + head.rsplit("@", 1)[1] + question_mark + query
    try:
        params = conninfo_to_dict(url)
    except ProgrammingError:
        return UNPARSEABLE
    if intended is not None and intended[2]:
        params.setdefault("password", MASK)
    secrets = [s for s in secret_values(url) if len(s) >= 3]  # shorter: would mask ordinary letters
    for key, value in params.items():
        if key in SECRET_PARAMETERS:
            params[key] = MASK if value else value
        elif isinstance(value, str):
            for secret in secrets:  # belt and braces: no other value may carry the password
                value = value.replace(secret, MASK)
            params[key] = value
    return make_conninfo("", **params)


def scrub(text: str, url: str) -> str:
    """`text` (a driver's message) with the connection string and every credential in it masked."""
    text = text.replace(url, redact_url(url))
    for secret in secret_values(url):
        if len(secret) >= 3:  # a shorter one would mask ordinary letters of the message
            text = text.replace(secret, MASK)
    return text


def database_identity(url: str) -> dict[str, str | int | None] | None:
    """Which database `url` names, for a plan to say what it was made against: host, port and database
    name as libpq reads them (a socket directory as the host; None for a part left to libpq's defaults),
    never a credential. None when the string does not parse or libpq would misread its password."""
    try:
        params = conninfo_to_dict(url)
    except ProgrammingError:
        return None
    if misread_password(url):  # then part of the password is in the host, port or database name
        return None
    port = params.get("port")
    return {"host": params.get("host") or None,
            "port": int(port) if isinstance(port, str) and port.isdigit() else (port or None),
            "dbname": params.get("dbname") or None}


def database_words(identity: dict[str, str | int | None]) -> str:
    """`database postgres on db.example.com:5432`; a socket directory reads `the local socket (port 5432)`."""
    host, port, name = identity["host"], identity["port"], identity["dbname"]
    if host is None or str(host).startswith("/"):
        where = "the local socket" + (f" (port {port})" if port is not None else "")
    else:
        where = str(host) + (f":{port}" if port is not None else "")
    return f"database {name or '(the default)'} on {where}"
