"""Structured logs (structlog): JSON lines, a request id on every line, personal data never written.

``redact`` is the last line of defence: keys that carry personal data are replaced, and any value that looks
like a resident ID number or a mobile number is masked, whatever the key.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

from carebridge.core.context import request_id_var

_PERSONAL_KEYS = {"id_number", "phone", "password", "name", "patient_name", "token", "access_token", "address"}
_ID_NUMBER = re.compile(r"\b\d{17}[\dXx]\b")
_PHONE = re.compile(r"\b1[3-9]\d{9}\b")


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _PHONE.sub("1**********", _ID_NUMBER.sub("******************", value))
    return value


def redact(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if key in _PERSONAL_KEYS:
            event[key] = "[redacted]"
        else:
            event[key] = _scrub(event[key])
    return event


def add_request_id(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    rid = request_id_var.get()
    if rid is not None:
        event.setdefault("request_id", rid)
    return event


def configure(level: str = "INFO", json: bool = True) -> None:
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    shared = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Library logs (uvicorn, sqlalchemy) go through the same redaction and format.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer], foreign_pre_chain=shared
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs requests, with the request id
