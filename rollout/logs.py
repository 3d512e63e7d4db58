"""Structured logs: JSON in-cluster, readable on a terminal; secrets never printed."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(token|password|secret|authorization|key)$", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(\w+://)[^/@\s]+@")


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and value:
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = _URL_USERINFO.sub(r"\1[redacted]@", value)
    return event


def configure(json_output: bool | None = None, level: str = "info") -> None:
    """JSON when asked, or when stderr is not a terminal (in a Pod); coloured key=value otherwise."""
    as_json = (not sys.stderr.isatty()) if json_output is None else json_output
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        # Not cached: a process that reconfigures (tests, an embedding tool) must see it take effect.
        cache_logger_on_first_use=False,
    )
