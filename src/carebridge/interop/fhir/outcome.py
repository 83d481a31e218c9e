"""FHIR's answers: ``application/fhir+json`` bodies, and every error an ``OperationOutcome`` carrying the same
stable code the JSON API uses (``slot_full``, ``invalid_token``, ...) as a coding of ``issue.details``."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

from carebridge.core import handlers
from carebridge.core.errors import DomainError

FHIR_JSON = "application/fhir+json"
ERROR_SYSTEM = "https://carebridge.org/fhir/CodeSystem/error-code"
# HTTP status -> the FHIR issue type (https://hl7.org/fhir/R4/valueset-issue-type.html)
ISSUE_TYPE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
}


class FhirResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _issue(status: int, code: str, message: str, where: Any) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": "error",
        "code": ISSUE_TYPE.get(status, "exception" if status >= 500 else "processing"),
        "details": {"coding": [{"system": ERROR_SYSTEM, "code": code}], "text": message},
        "diagnostics": message,
    }
    if isinstance(where, str) and where:
        issue["expression"] = [where]
    return issue


def operation_outcome(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """One issue, or one per entry of ``details["errors"]`` (``{"field", "message"}``, e.g. a resource's
    validation errors), each with the element it is about."""
    details = details or {}
    errors = details.get("errors")
    if isinstance(errors, list) and errors:
        issues = [
            _issue(status, code, str(e.get("message", message)), e.get("field")) for e in errors if isinstance(e, dict)
        ]
        return {"resourceType": "OperationOutcome", "issue": issues}
    where = details.get("field") or details.get("parameter")
    return {"resourceType": "OperationOutcome", "issue": [_issue(status, code, message, where)]}


def render(status: int, code: str, message: str, details: dict[str, Any], headers: dict[str, str] | None) -> Response:
    return FhirResponse(operation_outcome(status, code, message, details), status_code=status, headers=headers)


class Invalid(DomainError):
    """A request the FHIR API cannot take: 400 with the parameter or element named."""

    status = 400
    code = "invalid_fhir"


handlers.RENDERERS["/fhir/"] = render
