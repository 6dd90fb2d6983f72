"""Normalisation of SQL text for drift comparison: two commands that parse alike are equal.

Comments, whitespace, keyword case and `:=` versus `=>` do not count as drift; anything that changes the
parse tree (a literal, an identifier, an argument) does. Text PostgreSQL cannot parse is compared with
its whitespace collapsed.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4096)
def normalise_sql(text: str) -> str:
    # pglast (PostgreSQL's parser) is loaded on the first text that needs it: an in-sync plan compares
    # equal texts and never does.
    from pglast.stream import RawStream

    try:
        return str(RawStream()(text.strip().rstrip(";")))
    except Exception:  # a parse error, or pglast's internal errors on exotic input: never crash drift detection
        return " ".join(text.split())
