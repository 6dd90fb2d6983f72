"""structlog set-up: JSON lines when stderr is not a terminal, readable key=value when it is.

structlog is imported only when something logs (the --watch controller, an apply's summary line): a
plain plan never does, and does not pay for it. `configure` records the settings; `eager` applies them
at once, for the controller, whose modules take their loggers from structlog directly.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import structlog

_pending: dict[str, Any] | None = None


def configure(level: str = "warning", *, json_output: bool | None = None, eager: bool = False) -> None:
    global _pending
    _pending = {"level": level, "json_output": json_output}
    if eager or "structlog" in sys.modules:
        _apply()


def _apply() -> None:
    global _pending
    if _pending is None:
        return
    import structlog

    level, json_output = _pending["level"], _pending["json_output"]
    _pending = None
    if json_output is None:
        json_output = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get() -> structlog.typing.FilteringBoundLogger:
    import structlog

    _apply()
    return structlog.get_logger("reconciler")  # type: ignore[no-any-return]
