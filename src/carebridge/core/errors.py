"""Domain errors: a stable code, one HTTP status, a message for people and details for programs.

Services raise them; ``core.handlers`` renders every one as ``{"error": {"code", "message", "details"}}``.
The full list of codes is in ``docs/errors.md``.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        code: str | None = None,
        message: str = "",
        *,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code or self.code
        self.headers = headers or {}
        self.status = status or self.status
        self.message = message or self.code.replace("_", " ")
        self.details = details or {}
        super().__init__(self.message)


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class InvalidInput(DomainError):
    status = 422
    code = "invalid_input"


class TooManyRequests(DomainError):
    status = 429
    code = "too_many_requests"


def not_found(kind: str, ident: object) -> NotFound:
    return NotFound("not_found", f"{kind} {ident} not found", details={"kind": kind, "id": str(ident)})
