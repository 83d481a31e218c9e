"""Who is calling: the authenticated principal and the scope checks every service uses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from carebridge.auth.models import Role
from carebridge.core.errors import Forbidden


@dataclass(frozen=True, slots=True)
class PartnerReach:
    """What a partner app's OAuth token reaches on the JSON API (docs/openplatform.md, "The JSON API for partner
    apps"): the hospitals that granted the app and the patients its scopes and launch context allow."""

    app_id: uuid.UUID
    client_id: str
    channel: str  # the app's own pool, ``partner:<app>``
    hospitals: frozenset[uuid.UUID]
    patients: frozenset[uuid.UUID]
    user_id: uuid.UUID | None  # the patient account behind an authorization code token; None for a backend

    def require_patient(self, patient_id: uuid.UUID) -> None:
        if patient_id not in self.patients:
            raise Forbidden(
                "patient_not_in_context", "the token does not act for this patient", details={"field": "patient_id"}
            )

    def require_hospital(self, hospital_id: uuid.UUID) -> None:
        if hospital_id not in self.hospitals:
            raise Forbidden(
                "hospital_not_granted",
                "this hospital has not granted the app access",
                details={"hospital_id": str(hospital_id)},
            )

    def covers(self, *, hospital_id: uuid.UUID, patient_id: uuid.UUID) -> bool:
        return hospital_id in self.hospitals and patient_id in self.patients


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    username: str
    role: Role
    hospital_id: uuid.UUID | None = None
    region_code: str | None = None
    practitioner_id: uuid.UUID | None = None
    # A patient acting through a partner app (OAuth): the app's own pool, ``partner:<app>``, is theirs to book from.
    partner_channel: str | None = None
    # Set when that patient's app calls the JSON API: every answer stays within it (``PartnerReach``).
    reach: PartnerReach | None = None

    @property
    def actor(self) -> str:
        return f"{self.role.value}:{self.user_id}"

    def require_role(self, *roles: Role) -> None:
        if self.role not in roles:
            raise Forbidden("role_not_allowed", f"this action needs one of: {', '.join(r.value for r in roles)}")

    def require_hospital(self, hospital_id: uuid.UUID) -> None:
        """Platform admins act on every hospital; hospital staff only on their own."""
        if self.role == Role.platform_admin:
            return
        if self.hospital_id is None or self.hospital_id != hospital_id:
            raise Forbidden("other_hospital", "you may only act on your own hospital's data")

    def can_manage_hospital(self, hospital_id: uuid.UUID) -> bool:
        return self.role == Role.platform_admin or (
            self.role == Role.hospital_admin and self.hospital_id == hospital_id
        )
