"""Per-request context: the request id and the caller, for logs and audit records."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


@contextlib.contextmanager
def in_request(request_id: str | None) -> Iterator[None]:
    """Work done for a request elsewhere (the booking desk decides many requests in a task of its own) carries that
    request's id into its logs and audit records."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)
