"""Errors users cause, with one base class the CLI and controller catch.

Each error knows whether retrying can help (the controller backs off on those) and renders as one line.
Anything that is not a ReconcilerError is a bug and may show a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ReconcilerError(Exception):
    """Base for every error a user (or the environment) causes."""

    retryable: bool = False
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str = "", retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if retryable is not None:  # else the class's own answer
            self.retryable = retryable

    def one_line(self) -> str:
        text = self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """One problem in a manifest, located as precisely as the YAML allows."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ManifestError(ReconcilerError):
    """The manifest is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[ManifestProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid manifest")

    def one_line(self) -> str:  # several problems are several lines, each one complete
        return self.message


class SettingError(ReconcilerError):
    """An environment setting of the tool itself (not of the manifest) is malformed."""


class SecretSourceError(ReconcilerError):
    """A secret's source (environment variable, file) is missing; names only, never values."""


class DatabaseUnavailable(ReconcilerError):
    retryable = True


class PermissionDenied(ReconcilerError):
    pass


class LockHeld(ReconcilerError):
    retryable = True
    exit_code = 3


class UnsafePlan(ReconcilerError):
    pass


class PlanStale(ReconcilerError):
    pass


class ApplyFailed(ReconcilerError):
    """A statement failed; the transaction was rolled back (retryable when the cause is transient)."""


class DatabaseReadOnly(ReconcilerError):
    """The database accepts no writes (a hot standby, or default_transaction_read_only = on): an apply is
    refused before it writes anything; retryable, since the setting is lifted or the primary comes back."""

    retryable = True
