"""SMART on FHIR v2 scopes that partner apps may ask for (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html).

A resource scope is ``<context>/<Resource>.<permissions>``: context ``patient`` (the patient in context),
``user`` (what the signed-in user may see) or ``system`` (a backend acting for itself, within the hospitals
that granted it); permissions a non-empty subsequence of ``cruds`` in that order. Query-limited scopes
(``?category=...``) are not offered yet. The other scopes are the launch and identity ones.
"""

from __future__ import annotations

import re

FHIR_RESOURCES = (
    "Organization",
    "Location",
    "HealthcareService",
    "Practitioner",
    "PractitionerRole",
    "Patient",
    "Schedule",
    "Slot",
    "Appointment",
    "Encounter",
    "MedicationRequest",
    "DiagnosticReport",
    "Observation",
    "AuditEvent",
)
OTHER_SCOPES = ("openid", "fhirUser", "launch", "launch/patient", "offline_access", "online_access")
_RESOURCE_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.(c?r?u?d?s?)$")
MAX_SCOPES = 40


def problem(scope: str) -> str | None:
    """Why ``scope`` is not one an app may ask for, or None."""
    if scope in OTHER_SCOPES:
        return None
    match = _RESOURCE_SCOPE.match(scope)
    if match is None or not match.group(3):
        return "not a SMART v2 scope (<patient|user|system>/<Resource>.<cruds>, or openid, fhirUser, launch, ...)"
    if match.group(2) != "*" and match.group(2) not in FHIR_RESOURCES:
        return f"the FHIR API has no {match.group(2)} resource"
    return None


def context(scope: str) -> str | None:
    """``patient``, ``user`` or ``system`` for a resource scope; None for the others."""
    match = _RESOURCE_SCOPE.match(scope)
    return match.group(1) if match else None
