"""FastAPI dependencies: the database, the caller, role checks.

Callers authenticate with ``Authorization: Bearer <token>``; the web pages send the same token in the
``cb_session`` cookie, and every unsafe cookie-authenticated request must echo the ``cb_csrf`` cookie in an
``X-CSRF-Token`` header (double submit). Resolved principals are cached per worker for
``principal_cache_seconds`` (never past the token's own expiry); logout and a password change evict them in
every worker when they commit (``core.cache``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from carebridge.auth import service
from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import clock
from carebridge.core.errors import Forbidden, Unauthorized
from carebridge.database.engine import Database

SESSION_COOKIE = "cb_session"
CSRF_COOKIE = "cb_csrf"
_SAFE = {"GET", "HEAD", "OPTIONS"}


async def get_db(request: Request) -> Database:
    return request.app.state.db


def bearer_token(request: HTTPConnection) -> tuple[str | None, bool]:
    """The token and whether it came from the cookie (requests and WebSockets alike)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("bad_authorization_header", "use 'Authorization: Bearer <token>'")
        return value.strip(), False
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else (None, False)


async def resolve(request: HTTPConnection, token: str) -> Principal | None:
    digest = service.token_digest(token)
    hit = service.PRINCIPALS.get(digest)
    if hit is not None and (hit[1] is None or hit[1] > clock.now()):
        return hit[0]
    db: Database = request.app.state.db
    async with db.read() as session:
        principal, expires_at = await service.principal_for_token(session, token)
    service.PRINCIPALS.set(digest, (principal, expires_at))
    return principal


async def optional_principal(request: Request) -> Principal | None:
    token, from_cookie = bearer_token(request)
    if token is None:
        return None
    principal = await resolve(request, token)
    if principal is None:
        if from_cookie:
            return None
        raise Unauthorized("invalid_token", "the token is unknown, expired or revoked")
    if from_cookie and request.method not in _SAFE:
        sent = request.headers.get("x-csrf-token", "")
        expected = request.cookies.get(CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(sent, expected):
            raise Forbidden("csrf_failed", "missing or wrong X-CSRF-Token header")
    request.state.principal = principal
    return principal


async def current_principal(principal: Principal | None = Depends(optional_principal)) -> Principal:
    if principal is None:
        raise Unauthorized("not_authenticated", "log in and send 'Authorization: Bearer <token>'")
    return principal


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        principal.require_role(*roles)
        return principal

    return dependency
