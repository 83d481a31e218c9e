"""The FHIR R4 API at ``/fhir/R4`` (docs/fhir.md): one router per resource module."""

from __future__ import annotations

from fastapi import APIRouter

from carebridge.interop.fhir import capability
from carebridge.interop.fhir.resources import (
    appointment,
    audit_event,
    encounter,
    healthcare_service,
    location,
    medication_request,
    organization,
    patient,
    practitioner,
    practitioner_role,
    schedule,
    slot,
)

router = APIRouter(prefix="/fhir/R4", tags=["FHIR R4"])
RESOURCE_MODULES = (
    organization,
    location,
    healthcare_service,
    practitioner,
    practitioner_role,
    patient,
    schedule,
    slot,
    appointment,
    encounter,
    medication_request,
    audit_event,
)
for module in (capability, *RESOURCE_MODULES):
    router.include_router(module.router)
