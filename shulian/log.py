"""structlog, configured once: human-readable on a terminal, JSON lines otherwise.

Never log record payloads or personal data; use :func:`mask_id` for identifiers.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from typing import Literal, TextIO

import structlog

LogFormat = Literal["auto", "console", "json"]

_configured = False


def configure_logging(*, level: str = "INFO", fmt: LogFormat = "auto", force: bool = False,
                      stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger once per process; ``stream`` (default
    stderr) is where log lines go (the demo sends its own to a file, off its tables)."""
    global _configured
    if _configured and not force:
        return
    out = stream if stream is not None else sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        # not cached: structlog.testing.capture_logs (the tests' way of reading events) cannot
        # see a logger cached before it; Shulian logs per batch or event, never per record
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=out, force=True)
    _configured = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]


def mask_id(value: str | bytes | None) -> str:
    """A short, stable, non-reversible tag for an identifier, safe to log."""
    if value is None:
        return "-"
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "replace")
    return "h:" + hashlib.sha256(raw).hexdigest()[:12]
