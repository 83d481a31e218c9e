"""The CapabilityStatement (``GET /fhir/R4/metadata``, no token needed): what this server does, and where its
OAuth endpoints are, in ``rest.security`` with SMART's oauth-uris extension (which the SMART Python client,
fhirclient, reads instead of ``.well-known/smart-configuration``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from carebridge import __version__
from carebridge.core import clock
from carebridge.interop.fhir.outcome import FhirResponse
from carebridge.interop.fhir.search import fhir_base
from carebridge.openplatform.oauth_api import issuer

router = APIRouter()
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
COMMON = [("_id", "token"), ("_count", "number")]
# resource -> (interactions, search parameters with their types, _include values)
RESOURCES: dict[str, tuple[list[str], list[tuple[str, str]], list[str]]] = {
    "Organization": (["read", "search-type"], [("name", "string")], []),
    "HealthcareService": (["read", "search-type"], [("name", "string"), ("organization", "reference")], []),
    "Location": (["read", "search-type"], [("name", "string"), ("organization", "reference")], []),
    "Practitioner": (["read", "search-type"], [("name", "string")], []),
    "PractitionerRole": (
        ["read", "search-type"],
        [("practitioner", "reference"), ("organization", "reference"), ("service", "reference"), ("active", "token")],
        [],
    ),
    "Patient": (["read", "search-type"], [], []),
    "Schedule": (["read", "search-type"], [("actor", "reference"), ("date", "date"), ("active", "token")], []),
    "Slot": (
        ["read", "search-type"],
        [("schedule", "reference"), ("start", "date"), ("status", "token"), ("service-type", "token")],
        ["Slot:schedule"],
    ),
    "Appointment": (
        ["read", "search-type", "create", "update"],
        [
            ("patient", "reference"),
            ("practitioner", "reference"),
            ("actor", "reference"),
            ("date", "date"),
            ("status", "token"),
        ],
        [],
    ),
    "Encounter": (
        ["read", "search-type"],
        [("patient", "reference"), ("practitioner", "reference"), ("date", "date"), ("status", "token")],
        [],
    ),
    "MedicationRequest": (
        ["read", "search-type"],
        [("patient", "reference"), ("encounter", "reference"), ("status", "token")],
        [],
    ),
    "AuditEvent": (  # regulators and platform admins, with their own CareBridge token
        ["read", "search-type"],
        [("date", "date"), ("subtype", "token"), ("agent", "reference"), ("patient", "reference")],
        [],
    ),
}


def capability_statement(request: Request) -> dict[str, Any]:
    base = issuer(request)
    resources = []
    for kind, (interactions, params, includes) in RESOURCES.items():
        entry: dict[str, Any] = {
            "type": kind,
            "interaction": [{"code": code} for code in interactions],
            "searchParam": [{"name": n, "type": t} for n, t in [*params, *COMMON]],
        }
        if "update" in interactions:
            entry["updateCreate"] = False
        if includes:
            entry["searchInclude"] = includes
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": clock.now().date().isoformat(),
        "publisher": "CareBridge",
        "kind": "instance",
        "software": {"name": "CareBridge", "version": __version__},
        "implementation": {
            "description": "CareBridge internet-hospital platform, FHIR R4 API",
            "url": fhir_base(request),
        },
        "fhirVersion": "4.0.0",  # R4; the version the official R4 JSON Schema (and our tests) name (docs/fhir.md)
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Partner apps, with OAuth2 access tokens (SMART App Launch 2, Backend Services); "
                "AuditEvent: regulators and platform admins, with their own CareBridge token.",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "extension": [
                        {
                            "url": OAUTH_URIS,
                            "extension": [
                                {"url": "authorize", "valueUri": f"{base}/oauth/authorize"},
                                {"url": "token", "valueUri": f"{base}/oauth/token"},
                                {"url": "revoke", "valueUri": f"{base}/oauth/revoke"},
                                {"url": "introspect", "valueUri": f"{base}/oauth/introspect"},
                            ],
                        }
                    ],
                },
                "resource": resources,
            }
        ],
    }


@router.get("/metadata", summary="The CapabilityStatement (no token needed)")
async def metadata(request: Request) -> FhirResponse:
    return FhirResponse(capability_statement(request))
