"""Reporting platforms and the ingest API: how other platforms' events reach a standalone engine.

A platform authenticates with its own token (``Authorization: Bearer cbp_...``, issued once, kept hashed) and
sends batches of events in the catalog's format (docs/reporting.md). Each event is checked on its own; a bad
one is rejected with its index, id, a code and the reason, and the rest of the batch is kept:

- the envelope: fields, types, an aware ``occurred_at`` not in the future, no unknown fields;
- the catalog version: one this engine reads (``SUPPORTED_VERSIONS``), and a type that version has;
- ``data`` against the type's schema;
- scope: the hospital is one this platform registered (``hospital.registered``, earlier or in the same batch),
  in a region the platform may report for; another platform's hospital, or a region outside the platform's, is
  ``out_of_scope``;
- duplicates: an id seen before (a platform re-sending a batch after a timeout) is reported as a duplicate and
  not evaluated again: ingest is idempotent by event id.

The accepted events go through the same engine as embedded mode, in the request's transaction, so the answer
says how many warnings they raised.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import AwareDatetime, Field, StrictStr, ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import audit, clock
from carebridge.core.errors import Conflict, Forbidden, InvalidInput, Unauthorized, not_found
from carebridge.core.schemas import Input
from carebridge.events.catalog import CATALOG, SINCE, SUPPORTED_VERSIONS, version_key
from carebridge.events.outbox import Event
from carebridge.supervision.catalog import region_within
from carebridge.supervision.models import ReportingPlatform, SupervisedHospital, TracedEvent
from carebridge.supervision.precheck import State

MAX_BATCH = 1000
FUTURE_SKEW = timedelta(minutes=5)  # clocks differ; an event further ahead than this is refused
TOKEN_PREFIX = "cbp_"


class SubjectIn(Input):
    type: StrictStr = Field(min_length=1, max_length=40)
    id: StrictStr = Field(min_length=1, max_length=64)


class ReportedEvent(Input):
    """One event as a platform reports it: the catalog's envelope (docs/events.md)."""

    id: uuid.UUID
    type: StrictStr = Field(min_length=1, max_length=64)
    catalog_version: StrictStr | None = Field(default=None, max_length=8)
    occurred_at: AwareDatetime
    hospital_id: uuid.UUID | None = None
    region: StrictStr | None = Field(default=None, max_length=12)
    actor: StrictStr | None = Field(default=None, max_length=80)
    subject: SubjectIn
    data: dict[str, Any] = Field(max_length=60)


# --- platforms ----------------------------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _check_regions(regions: list[str]) -> list[str]:
    for code in regions:
        if not (code.isdigit() and len(code) == 6):
            raise InvalidInput("invalid_region", f"{code!r} is not a 6-digit region code", details={"field": "regions"})
    return sorted(set(regions))


async def create_platform(
    session: AsyncSession, *, actor: str, code: str, name: str, regions: list[str]
) -> tuple[ReportingPlatform, str]:
    """A new reporting platform and its token (shown once). 409 ``platform_code_taken``."""
    token = _new_token()
    row = ReportingPlatform(
        code=code,
        name=name,
        regions=_check_regions(regions),
        token_hash=_digest(token),
        token_hint=token[-4:],
        created_by=actor,
    )
    if await session.scalar(select(ReportingPlatform.id).where(ReportingPlatform.code == code)) is not None:
        raise Conflict("platform_code_taken", f"a platform {code} exists", details={"field": "code"})
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("platform_code_taken", f"a platform {code} exists", details={"field": "code"}) from exc
    return row, token


def _require_admin(principal: Principal) -> None:
    principal.require_role(Role.platform_admin)


async def register_platform(
    session: AsyncSession, *, principal: Principal, code: str, name: str, regions: list[str]
) -> tuple[ReportingPlatform, str]:
    _require_admin(principal)
    row, token = await create_platform(session, actor=principal.actor, code=code, name=name, regions=regions)
    _audit(session, principal, "supervision.platform_registered", row)
    return row, token


async def list_platforms(session: AsyncSession, *, principal: Principal) -> list[ReportingPlatform]:
    principal.require_role(Role.platform_admin, Role.regulator)
    return list((await session.scalars(select(ReportingPlatform).order_by(ReportingPlatform.code))).all())


async def change_platform(
    session: AsyncSession, *, principal: Principal, platform_id: uuid.UUID, changes: dict[str, Any]
) -> ReportingPlatform:
    """Suspend or resume a platform, change its regions (hospitals already registered stay where they are)."""
    _require_admin(principal)
    row = await session.get(ReportingPlatform, platform_id)
    if row is None:
        raise not_found("platform", platform_id)
    if "regions" in changes:
        changes["regions"] = _check_regions(changes["regions"])
    for key, value in changes.items():
        setattr(row, key, value)
    _audit(session, principal, "supervision.platform_changed", row)
    return row


async def rotate_token(
    session: AsyncSession, *, principal: Principal, platform_id: uuid.UUID
) -> tuple[ReportingPlatform, str]:
    """A new token; the old one stops working at once."""
    _require_admin(principal)
    row = await session.get(ReportingPlatform, platform_id)
    if row is None:
        raise not_found("platform", platform_id)
    token = _new_token()
    row.token_hash, row.token_hint, row.token_rotated_at = _digest(token), token[-4:], clock.now()
    _audit(session, principal, "supervision.platform_token_rotated", row)
    return row, token


def _audit(session: AsyncSession, principal: Principal, action: str, row: ReportingPlatform) -> None:
    audit.record(
        session,
        action=action,
        subject_type="supervision_platform",
        subject_id=row.id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        detail={"code": row.code, "active": row.active, "regions": row.regions},
    )


async def authenticate(session: AsyncSession, token: str | None) -> ReportingPlatform:
    """401 ``invalid_platform_token`` for a missing, unknown or rotated token; 403 ``platform_suspended``."""
    if not token or not token.startswith(TOKEN_PREFIX):
        raise Unauthorized("invalid_platform_token", "send 'Authorization: Bearer <your platform token>'")
    row = await session.scalar(select(ReportingPlatform).where(ReportingPlatform.token_hash == _digest(token)))
    if row is None:
        raise Unauthorized("invalid_platform_token", "the platform token is unknown or was rotated")
    if not row.active:
        raise Forbidden("platform_suspended", "this platform's reporting is suspended; ask the regulator")
    return row


# --- ingest -------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class IngestResult:
    received: int = 0
    accepted: int = 0
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    warnings: int = 0

    def reject(self, index: int, event_id: Any, code: str, reason: str, field_: str | None = None) -> None:
        self.rejected.append({"index": index, "id": event_id, "code": code, "reason": reason, "field": field_})


def _first_error(exc: ValidationError, prefix: str = "") -> tuple[str, str]:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    path = f"{prefix}{where}" if where else prefix.rstrip(".") or None
    return f"{path}: {first['msg']}" if path else str(first["msg"]), path or ""


class _Scope:
    """Which hospitals this platform may report for, as the batch goes (a hospital registered at index 3 may be
    reported on from index 4)."""

    def __init__(self, platform: ReportingPlatform, known: dict[uuid.UUID, SupervisedHospital]) -> None:
        self.platform = platform
        self.owner = {h.id: h.platform_id for h in known.values()}
        self.region = {h.id: h.region_code for h in known.values()}

    def in_regions(self, region: str) -> bool:
        return any(region_within(region, r) for r in self.platform.regions)

    def check(self, ev: ReportedEvent, data: dict[str, Any]) -> tuple[str, str, str | None] | None:
        hospital_id = ev.hospital_id
        if hospital_id is None:
            return "hospital_required", "every reported event names its hospital", "hospital_id"
        if ev.type.startswith("hospital.") and str(data.get("hospital_id")) != str(hospital_id):
            return "hospital_mismatch", "data.hospital_id differs from hospital_id", "data.hospital_id"
        owner = self.owner.get(hospital_id, "unknown")
        if owner != "unknown" and owner != self.platform.id:
            return "out_of_scope", "this hospital is reported by another platform", "hospital_id"
        new_region = data.get("region_code") if ev.type.startswith("hospital.") else None
        if ev.type == "hospital.registered":
            if not self.in_regions(str(new_region)):
                return "out_of_scope", f"region {new_region} is outside the regions you report for", "data.region_code"
            self.owner[hospital_id], self.region[hospital_id] = self.platform.id, str(new_region)
            return None
        if owner == "unknown":
            return "unknown_hospital", "report hospital.registered for this hospital first", "hospital_id"
        if new_region is not None:
            if not self.in_regions(str(new_region)):
                return "out_of_scope", f"region {new_region} is outside the regions you report for", "data.region_code"
            self.region[hospital_id] = str(new_region)
        elif not self.in_regions(self.region[hospital_id]):
            return "out_of_scope", "this hospital's region is no longer one you report for", "hospital_id"
        return None


async def ingest(
    session: AsyncSession, *, platform: ReportingPlatform, catalog_version: str | None, events: list[Any]
) -> IngestResult:
    """Validate each event, keep the good ones, run them through the engine; see the module's docstring."""
    result = IngestResult(received=len(events))
    now = clock.now()
    parsed: list[tuple[int, ReportedEvent, dict[str, Any], str]] = []
    for index, raw in enumerate(events):
        event_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(raw, dict):
            result.reject(index, None, "malformed", "an event is a JSON object")
            continue
        try:
            ev = ReportedEvent.model_validate(raw)
        except ValidationError as exc:
            reason, where = _first_error(exc)
            result.reject(index, event_id, "malformed", reason, where)
            continue
        version = ev.catalog_version or catalog_version
        if version is None:
            result.reject(index, str(ev.id), "catalog_version_required", "name the catalog version", "catalog_version")
            continue
        if version not in SUPPORTED_VERSIONS:
            result.reject(
                index,
                str(ev.id),
                "unknown_catalog_version",
                f"catalog version {version} is not one this engine reads ({', '.join(SUPPORTED_VERSIONS)})",
                "catalog_version",
            )
            continue
        if ev.type not in CATALOG:
            result.reject(index, str(ev.id), "unknown_event_type", f"no event type {ev.type!r} in the catalog", "type")
            continue
        if version_key(SINCE[ev.type]) > version_key(version):
            result.reject(
                index,
                str(ev.id),
                "type_not_in_version",
                f"{ev.type} came with catalog version {SINCE[ev.type]}, after {version}",
                "type",
            )
            continue
        try:
            data = CATALOG[ev.type].model_validate(ev.data).model_dump(mode="json")
        except ValidationError as exc:
            reason, where = _first_error(exc, "data.")
            result.reject(index, str(ev.id), "invalid_event_data", reason, where)
            continue
        if ev.occurred_at > now + FUTURE_SKEW:
            result.reject(index, str(ev.id), "occurred_in_future", "occurred_at is in the future", "occurred_at")
            continue
        parsed.append((index, ev, data, version))

    # duplicates: seen before (any platform), or twice in this batch
    ids = [ev.id for _, ev, _, _ in parsed]
    seen: set[uuid.UUID] = set()
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        seen.update((await session.scalars(select(TracedEvent.id).where(TracedEvent.id.in_(chunk)))).all())
    hospital_ids = {ev.hospital_id for _, ev, _, _ in parsed if ev.hospital_id is not None}
    known = {
        h.id: h
        for h in (
            await session.scalars(select(SupervisedHospital).where(SupervisedHospital.id.in_(list(hospital_ids))))
        ).all()
    }
    scope = _Scope(platform, known)
    accepted: list[Event] = []
    for index, ev, data, version in parsed:
        if ev.id in seen:
            result.duplicates.append({"index": index, "id": str(ev.id)})
            continue
        problem = scope.check(ev, data)
        if problem is not None:
            code, reason, where = problem
            result.reject(index, str(ev.id), code, reason, where)
            continue
        seen.add(ev.id)
        accepted.append(
            Event(
                id=ev.id,
                type=ev.type,
                occurred_at=ev.occurred_at,
                hospital_id=ev.hospital_id,
                region=ev.region,
                actor=ev.actor,
                subject_type=ev.subject.type,
                subject_id=ev.subject.id,
                data=data,
                catalog_version=version,
            )
        )
    result.accepted = len(accepted)
    if accepted:
        warnings = await State.engine.process(session, accepted, platform_id=platform.id)
        result.warnings = len(warnings or [])
    await session.execute(
        update(ReportingPlatform)
        .where(ReportingPlatform.id == platform.id)
        .values(
            last_report_at=now,
            last_catalog_version=catalog_version or platform.last_catalog_version,
            events_accepted=ReportingPlatform.events_accepted + result.accepted,
            events_rejected=ReportingPlatform.events_rejected + len(result.rejected),
        )
    )
    return result
