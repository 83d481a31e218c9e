"""ASGI middleware: request ids, structured access logs, and the body-size limit (413)."""

from __future__ import annotations

import re
import time
from typing import Any

import structlog
from starlette.exceptions import HTTPException

from carebridge.core import handlers
from carebridge.core.context import request_id_var
from carebridge.core.ids import request_id

log = structlog.get_logger("carebridge.http")


class RequestContextMiddleware:
    """Assigns ``X-Request-ID`` (or keeps a sane incoming one) and logs one line per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if 0 < len(incoming) <= 64 and incoming.replace("-", "").isalnum() else request_id()
        token = request_id_var.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - start) * 1000, 1),
            )
            request_id_var.reset(token)


class BodyLimitMiddleware:
    """Refuses bodies over ``limit`` bytes with 413 ``body_too_large``, by header or while streaming.

    ``larger`` gives some paths (file uploads) their own limit: ``[(compiled path regex, limit), ...]``."""

    def __init__(self, app: Any, limit: int, larger: list[tuple[re.Pattern[str], int]] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.larger = larger or []

    async def _reject(self, scope: dict[str, Any], receive: Any, send: Any, limit: int) -> None:
        response = handlers.error_response(
            scope["path"], 413, "body_too_large", f"the body exceeds {limit} bytes", {"limit": limit}
        )
        await response(scope, receive, send)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        for pattern, larger in self.larger:
            if pattern.match(scope["path"]):
                limit = larger
                break
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                too_big = True
            if too_big:
                await self._reject(scope, receive, send, limit)
                return
        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException passes FastAPI's body parsing unchanged and renders as 413.
                    raise HTTPException(413, f"the body exceeds {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)
