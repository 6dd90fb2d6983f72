"""`SecretValue`: a secret's plaintext, held so it cannot leak by accident.

Data flow: `reconciler.engine.sources.resolve_secrets` makes one per declared secret; kinds compare them with the
database by digest and reveal the value only while writing it (COPY data, the Management API request).
Imports nothing but the standard library, so any module may hold a value without pulling in the manifest.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["SENSITIVE", "SecretValue", "scrub"]

#: What every output shows in place of a secret value.
SENSITIVE = "(sensitive)"
#: Shorter texts are not replaced by `scrub`: they would match ordinary words.
SCRUB_MIN_LENGTH = 6


def scrub(text: str, values: Sequence[str]) -> str:
    """`text` with every one of `values` (longest first) replaced by SENSITIVE: the last line of defence for
    text that may have quoted a value (a server message, a check's output, a webhook payload)."""
    for value in sorted((v for v in values if len(v) >= SCRUB_MIN_LENGTH), key=len, reverse=True):
        text = text.replace(value, SENSITIVE)
    return text


class SecretValue:
    """A secret's plaintext, kept out of repr, str, format, logs, pickles and JSON."""

    __slots__ = ("__value", "digest", "generated")

    def __init__(self, value: str, *, generated: bool = False) -> None:
        if not isinstance(value, str):
            raise TypeError("a secret value must be a str")
        self.__value = value
        #: SHA-256 (lowercase hex) of the UTF-8 bytes, as PostgreSQL's
        #: `encode(sha256(convert_to(v, 'UTF8')), 'hex')` computes it.
        self.digest: str = hashlib.sha256(value.encode("utf-8")).hexdigest()
        #: True when the value was generated randomly (used only if the secret does not exist yet).
        self.generated: bool = generated

    def reveal(self) -> str:
        """The plaintext. Call it only where the value is handed over (COPY data, the Management API)."""
        return self.__value

    def __repr__(self) -> str:
        return f"SecretValue(sha256:{self.digest[:8]}…)"

    def __str__(self) -> str:
        return SENSITIVE

    def __format__(self, spec: str) -> str:
        return format(SENSITIVE, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        return hmac.compare_digest(self.digest, other.digest)

    def __hash__(self) -> int:
        return hash(self.digest)

    def __len__(self) -> int:
        return len(self.__value)

    def __bool__(self) -> bool:
        return bool(self.__value)

    def __copy__(self) -> SecretValue:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SecretValue:
        return self

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled")

    def __getstate__(self) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled")
