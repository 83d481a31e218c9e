"""Who calls the FHIR API, and what their token reaches: its scopes, its patient, the hospitals that granted
the app (docs/fhir.md). Only partner apps' OAuth tokens are accepted."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.dependencies import bearer_token
from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core.errors import Forbidden, Unauthorized
from carebridge.openplatform import json_access, tokens
from carebridge.openplatform.models import partner_channel


@dataclass(frozen=True, slots=True)
class Caller:
    access: tokens.PartnerAccess

    @property
    def hospitals(self) -> frozenset[uuid.UUID]:
        return self.access.hospitals

    @property
    def channel(self) -> str:
        return partner_channel(self.access.app_id)

    def contexts(self, resource: str, permission: str) -> set[str]:
        """The contexts (``patient``, ``user``, ``system``) in which the token may do ``permission`` on
        ``resource``; 403 ``scope_missing`` when none."""
        return json_access.contexts(self.access, resource, permission)

    def acting_patient(self) -> Principal:
        """The patient's account the app acts for (authorization code tokens), booking from the app's pool."""
        if self.access.user_id is None:
            raise Forbidden("patient_context_required", "this needs a patient's token (authorization code flow)")
        return Principal(
            user_id=self.access.user_id,
            username=self.access.client_id,
            role=Role.patient,
            partner_channel=self.channel,
        )

    async def patients(self, session: AsyncSession, resource: str, permission: str) -> list[uuid.UUID] | None:
        """The patients whose records the token reaches for this action: None means every patient at the
        granted hospitals (a backend app's ``system/`` scope)."""
        contexts = self.contexts(resource, permission)
        if "system" in contexts:
            return None
        return sorted(await json_access.reached_patients(session, self.access, contexts))

    async def searched_patients(
        self, session: AsyncSession, resource: str, asked: list[uuid.UUID] | None
    ) -> list[uuid.UUID] | None:
        """The patients a search covers: those the token reaches (``patients``) narrowed to the ``patient``
        parameter's, when given."""
        reach = await self.patients(session, resource, "s")
        if asked is None:
            return reach
        return asked if reach is None else [p for p in reach if p in asked]


async def caller(request: Request) -> Caller:
    """FastAPI dependency: the partner app behind ``Authorization: Bearer``; 401 otherwise."""
    token, from_cookie = bearer_token(request)
    if token is None or from_cookie:
        raise Unauthorized("not_authenticated", "send a partner app's OAuth access token: Authorization: Bearer")
    return Caller(await json_access.admit(request, token))
