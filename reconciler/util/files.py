"""Reading a user's file with a size limit: the manifest's files and secrets' `from_file` sources.

One place for the ways a path can fail (missing, a directory, unreadable, too big), each a short phrase
that follows the word "file" in the caller's message.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def read_limited(path: str | Path, limit: int) -> tuple[bytes | None, str]:
    """At most `limit` bytes of the file, or (None, why): "not found", "is larger than 64 KiB"..."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)  # one byte more tells "too big" without reading it all
    except FileNotFoundError:
        return None, "not found"
    except IsADirectoryError:
        return None, "is a directory"
    except PermissionError:
        return None, "is not readable (permission denied)"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or type(exc).__name__})"
    if len(raw) > limit:
        return None, f"is larger than {limit // 1024} KiB"
    return raw, ""


def signature(paths: Sequence[str]) -> tuple[Any, ...]:
    """What changes when one of `paths` is replaced or edited: inode, mtime and size (None when missing)."""
    out: list[tuple[str, int | None, int | None, int | None]] = []
    for name in paths:
        try:
            st = Path(name).stat()
            out.append((name, st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((name, None, None, None))
    return tuple(out)
