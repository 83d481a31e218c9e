"""Direct routes: the few endpoints a number release hammers, served without FastAPI's router walk.

At 7 a.m. nearly every request is ``POST /api/v1/appointments``. FastAPI (0.165) spends most of such a request's
CPU before the endpoint runs: it walks the included routers (with scope bookkeeping at every step), solves the
endpoint's parameters, and passes the answer back through its own middleware; the endpoint itself, a sold-out
answer from memory, is about a fifth of it (docs/performance.md, the booking surge of 2026-12-07). A direct
route is matched by its exact method and path in one dictionary look-up, and its handler parses the body
itself, with the same pydantic model, and calls the same endpoint function that FastAPI's route calls.

So both ways answer alike: the route stays in FastAPI (the OpenAPI document, and the fallback when direct
routes are turned off with ``CAREBRIDGE_DIRECT_ROUTES=false``); the parsing here raises FastAPI's own
``RequestValidationError`` with FastAPI's locations (``body``, then the field), and every exception goes to
the app's registered exception handlers, as it would from FastAPI's route. The middleware sits inside the
request-id, body-limit and partner-usage middleware, so those apply unchanged.
"""

from __future__ import annotations

import email.message
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import pydantic
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]
Model = TypeVar("Model", bound=pydantic.BaseModel)


@dataclass
class Routes:
    """A domain's direct routes: ``(method, path) -> (handler, endpoint)``. ``endpoint`` is the FastAPI
    endpoint the handler stands in for; it is put in the scope as FastAPI does (partner scopes read it)."""

    table: dict[tuple[str, str], tuple[Handler, Callable[..., Any]]] = field(default_factory=dict)

    def post(self, path: str, endpoint: Callable[..., Any]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.table[("POST", path)] = (handler, endpoint)
            return handler

        return register


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False  # FastAPI's strict content type: a body without one is not read as JSON
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


async def body(request: Request, model: type[Model]) -> Model:
    """The request's JSON body as ``model``, or FastAPI's ``RequestValidationError`` with its locations."""
    try:
        raw = await request.body()
    except HTTPException:
        raise  # the body-size limit's 413
    except Exception as exc:  # a client gone mid-body, as FastAPI answers it
        raise HTTPException(400, "There was an error parsing the body") from exc
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    data: Any = raw
    if _is_json(request.headers.get("content-type")):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            error = {
                "type": "json_invalid",
                "loc": ("body", exc.pos),
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": exc.msg},
            }
            raise RequestValidationError([error], body=raw) from exc
    try:
        return model.model_validate(data, from_attributes=True)  # as FastAPI validates a body field
    except pydantic.ValidationError as exc:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=data) from exc


class DirectRoutesMiddleware:
    """Serves the registered direct routes; everything else goes on to FastAPI. ``table`` may be filled after
    the middleware is added (the app adds its domains' routes after its middleware)."""

    def __init__(
        self,
        app: ASGIApp,
        table: dict[tuple[str, str], tuple[Handler, Callable[..., Any]]],
        handlers: dict[Any, Callable[..., Any]],
    ) -> None:
        self.app = app
        self.table = table
        self.handlers = handlers

    def _handler_for(self, exc: Exception) -> Callable[..., Any] | None:
        for cls in type(exc).__mro__:
            if cls in self.handlers:
                return self.handlers[cls]
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.table.get((scope.get("method", ""), scope.get("path", ""))) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        handler, endpoint = route
        scope["endpoint"] = endpoint
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except Exception as exc:
            on_error = self._handler_for(exc)
            if on_error is None:
                raise
            response = await on_error(request, exc)
        await response(scope, receive, send)
