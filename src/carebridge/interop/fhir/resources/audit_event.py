"""AuditEvent: the audit trail (every unmasked read of personal data, every privileged change) for regulators,
within their region's hospitals, and platform admins, everything. Read with the overseer's own CareBridge
token, not a partner app's: the trail is not offered to apps (docs/fhir.md)."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request

from carebridge.auth.dependencies import bearer_token, resolve
from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import audit
from carebridge.core.errors import Forbidden, Unauthorized
from carebridge.directory import service as directory
from carebridge.interop.fhir.outcome import FhirResponse
from carebridge.interop.fhir.resources.common import SYSTEM, gone, parse_id, reference
from carebridge.interop.fhir.search import Params, bundle, instant
from carebridge.openplatform.tokens import ACCESS_PREFIX
from carebridge.supervision.catalog import region_prefix

router = APIRouter()
SEARCH = ("date", "subtype", "agent", "patient")
ACTION_SYSTEM = f"{SYSTEM}/CodeSystem/audit-action"
USER_SYSTEM = f"{SYSTEM}/sid/user"
REST = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "RESTful Operation",
}
SERVER = {
    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
    "code": "4",
    "display": "Application Server",
}
# the FHIR action (C R U D E) from the last word of ours: patient.personal_data.read -> R
_ACTIONS = {
    "read": "R",
    "created": "C",
    "imported": "C",
    "added": "C",
    "registered": "C",
    "given": "C",
    "deleted": "D",
    "revoked": "D",
}
_RESOURCES = {
    "patient": "Patient",
    "appointment": "Appointment",
    "consultation": "Encounter",
    "hospital": "Organization",
    "schedule": "Schedule",
}


@dataclass(frozen=True, slots=True)
class Overseer:
    principal: Principal
    hospitals: list[uuid.UUID] | None  # None: every record (a platform admin)
    region_prefix: str | None = None  # a regulator's: records of no hospital about their region's patients


async def overseer(request: Request) -> Overseer:
    """FastAPI dependency: a regulator's or platform admin's own token; 401 without one, 403 for anyone else."""
    token, _from_cookie = bearer_token(request)
    if token is None:
        raise Unauthorized("not_authenticated", "send a regulator's CareBridge token: Authorization: Bearer")
    if token.startswith(ACCESS_PREFIX):
        raise Forbidden(
            "regulators_only", "the audit trail is read by regulators and platform admins, not partner apps"
        )
    principal = await resolve(request, token)
    if principal is None:
        raise Unauthorized("invalid_token", "the token is unknown, expired or revoked")
    principal.require_role(Role.regulator, Role.platform_admin)
    if principal.role == Role.platform_admin:
        return Overseer(principal, None)
    async with request.app.state.db.read() as session:
        hospitals = await directory.hospital_ids_in_region(session, principal.region_code or "-")
    return Overseer(principal, hospitals, region_prefix(principal.region_code or "-"))


def to_fhir(row: audit.AuditRecord) -> dict[str, Any]:
    agent: dict[str, Any] = {"requestor": True}
    if row.actor_user_id is not None:
        agent["who"] = {"identifier": {"system": USER_SYSTEM, "value": str(row.actor_user_id)}}
    if row.actor_role:
        agent["role"] = [{"text": row.actor_role}]
    if "client_id" in (row.detail or {}):
        agent["altId"] = str(row.detail["client_id"])  # the partner app that read
    what: dict[str, Any] = {"identifier": {"system": f"{SYSTEM}/sid/{row.subject_type}", "value": row.subject_id}}
    kind = _RESOURCES.get(row.subject_type)
    if kind is not None:
        with contextlib.suppress(ValueError):  # a subject of that kind is one of our ids
            what = reference(kind, uuid.UUID(row.subject_id))
    entity: dict[str, Any] = {"what": what}
    details = [{"type": str(k), "valueString": str(v)[:200]} for k, v in sorted((row.detail or {}).items())]
    if row.request_id:
        details.append({"type": "request_id", "valueString": row.request_id})
    if details:
        entity["detail"] = details
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(row.id),
        "type": REST,
        "subtype": [{"system": ACTION_SYSTEM, "code": row.action}],
        "action": _ACTIONS.get(row.action.rsplit(".", 1)[-1], "U" if row.action.endswith("ed") else "E"),
        "recorded": instant(row.occurred_at),
        "outcome": "0",
        "agent": [agent],
        "source": {"observer": {"display": "CareBridge"}, "type": [SERVER]},
        "entity": [entity],
    }
    if row.hospital_id is not None:
        resource["source"]["site"] = str(row.hospital_id)
        resource["source"]["observer"] = reference("Organization", row.hospital_id)
    return resource


@router.get("/AuditEvent/{ident}", summary="Read an AuditEvent (regulators and platform admins)")
async def read(ident: str, request: Request, who: Overseer = Depends(overseer)) -> FhirResponse:
    record_id = parse_id(ident, "AuditEvent")
    async with request.app.state.db.read() as session:
        rows, _ = await audit.search_records(
            session, hospitals=who.hospitals, region_prefix=who.region_prefix, ids=[record_id], limit=1
        )
    if not rows:
        raise gone("AuditEvent", record_id)
    return FhirResponse(to_fhir(rows[0]))


@router.get("/AuditEvent", summary="Search AuditEvents: date, subtype (action), agent (user), patient, _id")
async def search(request: Request, who: Overseer = Depends(overseer)) -> FhirResponse:
    params = Params(request, SEARCH)
    agents = params.ids("agent")
    patients = params.ids("patient", resource="Patient")
    zone = request.app.state.settings.default_timezone
    async with request.app.state.db.read() as session:
        rows, total = await audit.search_records(
            session,
            hospitals=who.hospitals,
            region_prefix=who.region_prefix,
            ids=params.ids(),
            actions=params.tokens("subtype"),
            actor_user_id=agents[0] if agents else None,
            subject=("patient", [str(p) for p in patients]) if patients else None,
            occurred=params.instants("date", zone),
            limit=params.count(),
            exact_total=params.exact_total(),
            offset=params.offset(),
        )
    return FhirResponse(bundle(request, "AuditEvent", [to_fhir(r) for r in rows], total=total, params=params))
