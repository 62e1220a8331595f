"""Readable logs for the local stack: one line per event, prefixed with the part that speaks.

Every part logs through ``logging.getLogger("lepton.dev.<part>")`` (or is bridged to it, like the
worker subprocess's output); :func:`configure_logging` installs one rich handler that shows the
part's name as a fixed-width prefix, so interleaved output from five parts stays readable.
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

PARTS_LOGGER = "lepton.dev"


def part_logger(part: str) -> logging.Logger:
    return logging.getLogger(f"{PARTS_LOGGER}.{part}")


class _PartFilter(logging.Filter):
    """Adds ``record.part``: the stack part for our loggers, the library's top name otherwise."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name.startswith(PARTS_LOGGER + "."):
            part = name[len(PARTS_LOGGER) + 1 :].split(".", 1)[0]
        else:
            part = name.split(".", 1)[0]
        record.part = part
        return True


def configure_logging(level: int = logging.INFO, console: Console | None = None) -> None:
    """Route every log record to one rich handler with a ``[part]`` prefix."""
    handler = RichHandler(
        console=console or Console(stderr=True),
        show_path=False,
        markup=False,
        rich_tracebacks=True,
        log_time_format="%H:%M:%S",
    )
    handler.addFilter(_PartFilter())
    handler.setFormatter(logging.Formatter("[%(part)-9s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDKs log every HTTP request at INFO; that drowns the stack's own story.
    for noisy in ("azure", "uvicorn.access", "httpx", "durabletask", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
