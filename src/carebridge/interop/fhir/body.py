"""Reading a resource from a request body: JSON, the expected ``resourceType``, valid against FHIR R4 (checked
with ``fhir.resources``; its R4B models are R4's for the resources this API takes), else a 400
OperationOutcome with an issue per problem, naming the element."""

from __future__ import annotations

import importlib
from typing import Any

import orjson
from fastapi import Request
from pydantic import ValidationError

from carebridge.core.errors import DomainError
from carebridge.interop.fhir.outcome import Invalid

MEDIA_TYPES = ("application/fhir+json", "application/json")


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"


def _model(resource_type: str) -> Any:
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)


async def read_resource(request: Request, resource_type: str) -> tuple[dict[str, Any], Any]:
    """The body as a dict and as a validated ``fhir.resources`` model."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise UnsupportedMediaType("unsupported_media_type", f"send the {resource_type} as application/fhir+json")
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise Invalid("malformed_json", "the body is not valid JSON") from None
    if not isinstance(body, dict) or body.get("resourceType") != resource_type:
        raise Invalid(
            "wrong_resource_type", f"the body must be a {resource_type} resource", details={"field": "resourceType"}
        )
    try:
        model = _model(resource_type).model_validate(body)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join([resource_type, *(str(p) for p in e["loc"] if p != "__root__")]),
                "message": e["msg"],
            }
            for e in exc.errors()[:20]
        ]
        raise Invalid(
            "invalid_resource", f"the {resource_type} is not valid FHIR R4", details={"errors": errors}
        ) from None
    return body, model
