"""The FHIR R4 API at ``/fhir/R4`` (docs/fhir.md): one router per resource module."""

from __future__ import annotations

from fastapi import APIRouter

from carebridge.interop.fhir import capability
from carebridge.interop.fhir.resources import (
    appointment,
    healthcare_service,
    organization,
    patient,
    practitioner,
    schedule,
    slot,
)

router = APIRouter(prefix="/fhir/R4", tags=["FHIR R4"])
for module in (capability, organization, healthcare_service, practitioner, patient, schedule, slot, appointment):
    router.include_router(module.router)
