"""The installed package's version, read from its metadata (one source: pyproject.toml) when first asked for.

importlib.metadata is imported here, on the first call, so a plain plan that never records a version does
not pay for it.
"""

from __future__ import annotations

from functools import cache


@cache
def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scheduler-reconciler")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+source"
