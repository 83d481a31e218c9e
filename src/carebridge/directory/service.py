"""The directory: who and where care is given. Public to read; changed by platform and hospital admins."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import date
from typing import Any

from sqlalchemy import Select, func, null, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import audit, cache, clock
from carebridge.core.errors import Conflict, Forbidden, InvalidInput, not_found
from carebridge.directory.models import (
    Campus,
    Department,
    Hospital,
    Practitioner,
    PractitionerFiling,
    PractitionerStatus,
    Region,
)
from carebridge.events.outbox import append_event

MAX_PAGE = 200
# Per-worker caches (core.cache), evicted in every worker when a change commits.
NAMES = cache.Cache("directory_names", setting="directory_cache_seconds")  # id -> (name, title or None)
ZONES = cache.Cache("hospital_zones", setting="directory_cache_seconds")  # hospital id -> IANA zone


def _audit(
    session: AsyncSession,
    principal: Principal,
    action: str,
    subject_type: str,
    subject_id: Any,
    hospital_id: uuid.UUID | None,
    detail: dict[str, Any],
) -> None:
    audit.record(
        session,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=hospital_id,
        detail=detail,
    )


# --- regions -----------------------------------------------------------------------------------------------


async def create_region(
    session: AsyncSession, *, principal: Principal, code: str, name: str, parent_code: str | None
) -> Region:
    principal.require_role(Role.platform_admin)
    if await session.get(Region, code) is not None:
        raise Conflict("region_exists", f"region {code} exists")
    if parent_code is not None and await session.get(Region, parent_code) is None:
        raise InvalidInput("unknown_region", f"parent region {parent_code} not found", details={"field": "parent_code"})
    region = Region(code=code, name=name, parent_code=parent_code)
    session.add(region)
    return region


async def list_regions(session: AsyncSession, *, parent_code: str | None = None) -> list[Region]:
    query = select(Region).order_by(Region.code)
    if parent_code is not None:
        query = query.where(Region.parent_code == parent_code)
    return list((await session.scalars(query)).all())


async def region_codes_within(session: AsyncSession, code: str) -> list[str]:
    """A region and every region below it (province -> cities -> districts)."""
    codes, frontier = [code], [code]
    while frontier:
        frontier = list((await session.scalars(select(Region.code).where(Region.parent_code.in_(frontier)))).all())
        codes.extend(frontier)
    return codes


async def hospital_ids_in_region(session: AsyncSession, code: str) -> list[uuid.UUID]:
    """The hospitals of a region and every region below it (a regulator's)."""
    codes = await region_codes_within(session, code)
    return list((await session.scalars(select(Hospital.id).where(Hospital.region_code.in_(codes)))).all())


# --- hospitals ---------------------------------------------------------------------------------------------


async def get_hospital(session: AsyncSession, hospital_id: uuid.UUID) -> Hospital:
    hospital = await session.get(Hospital, hospital_id)
    if hospital is None:
        raise not_found("hospital", hospital_id)
    return hospital


async def create_hospital(session: AsyncSession, *, principal: Principal, **fields: Any) -> Hospital:
    """Register a hospital (platform admins). 409 ``licence_number_taken``; 422 ``unknown_region``."""
    principal.require_role(Role.platform_admin)
    if await session.get(Region, fields["region_code"]) is None:
        raise InvalidInput(
            "unknown_region", f"region {fields['region_code']} not found", details={"field": "region_code"}
        )
    await _licence_free(session, fields["licence_number"], None)
    _check_timezone(fields.get("timezone", "Asia/Shanghai"))
    hospital = Hospital(**fields)
    session.add(hospital)
    await session.flush()
    _audit(session, principal, "hospital.created", "hospital", hospital.id, hospital.id, {"name": hospital.name})
    append_event(
        session,
        "hospital.registered",
        subject_type="hospital",
        subject_id=hospital.id,
        hospital_id=hospital.id,
        region=hospital.region_code,
        actor=principal.actor,
        data=hospital_profile(hospital),
    )
    return hospital


def hospital_profile(hospital: Hospital) -> dict[str, Any]:
    """What the event catalog reports of a hospital (``hospital.registered``, ``hospital.changed``)."""
    return {
        "hospital_id": hospital.id,
        "name": hospital.name,
        "region_code": hospital.region_code,
        "level": str(hospital.level),
        "is_internet_hospital": hospital.is_internet_hospital,
        "licence_expires_on": hospital.licence_expires_on,
        "licence_verified_on": hospital.licence_verified_on,
        "active": hospital.active,
    }


async def hospital_profiles(session: AsyncSession) -> list[dict[str, Any]]:
    """Every hospital's profile (the supervision engine's start-up reconciliation)."""
    query = select(Hospital).where(Hospital.sandbox_app_id.is_(None)).order_by(Hospital.id)  # sandboxes: not reported
    return [hospital_profile(h) for h in (await session.scalars(query)).all()]


def _check_timezone(name: str) -> None:
    try:
        clock.zone(name)
    except Exception as exc:
        raise InvalidInput("unknown_timezone", f"unknown time zone {name!r}", details={"field": "timezone"}) from exc


async def _licence_free(session: AsyncSession, licence_number: str, hospital_id: uuid.UUID | None) -> None:
    existing = await session.scalar(select(Hospital.id).where(Hospital.licence_number == licence_number))
    if existing is not None and existing != hospital_id:
        raise Conflict("licence_number_taken", "another hospital holds this licence number")


async def update_hospital(
    session: AsyncSession,
    *,
    principal: Principal,
    hospital_id: uuid.UUID,
    changes: dict[str, Any],
    licensed_fields: set[str],
) -> Hospital:
    """Change a hospital. Its own admin may change name and contact data; licence data is the platform's."""
    hospital = await get_hospital(session, hospital_id)
    if not principal.can_manage_hospital(hospital_id):
        raise Forbidden("other_hospital", "you may only change your own hospital")
    if principal.role != Role.platform_admin and licensed_fields & changes.keys():
        raise Forbidden(
            "licensed_field",
            "licence data is changed by the platform admin",
            details={"fields": sorted(licensed_fields & changes.keys())},
        )
    if "licence_number" in changes:
        await _licence_free(session, changes["licence_number"], hospital_id)
    for key, value in changes.items():
        setattr(hospital, key, value)
    await cache.invalidate(session, NAMES, hospital.id)
    await cache.invalidate(session, ZONES, hospital.id)
    append_event(
        session,
        "hospital.changed",
        subject_type="hospital",
        subject_id=hospital.id,
        hospital_id=hospital.id,
        region=hospital.region_code,
        actor=principal.actor,
        data={**hospital_profile(hospital), "fields": sorted(changes)},
    )
    _audit(session, principal, "hospital.updated", "hospital", hospital.id, hospital.id, {"fields": sorted(changes)})
    return hospital


async def search_hospitals(
    session: AsyncSession,
    *,
    region_code: str | None,
    q: str | None,
    level: str | None,
    internet_only: bool,
    limit: int,
    offset: int,
    within: Collection[uuid.UUID] | None = None,
    ids: Collection[uuid.UUID] | None = None,
) -> tuple[list[Hospital], int]:
    """Active hospitals; ``within`` limits the search to those hospitals (a partner app's grants)."""
    query: Select[Any] = select(Hospital).where(Hospital.active.is_(True))
    if within is not None:
        query = query.where(Hospital.id.in_(within))
    else:  # the public directory: partner apps' sandbox hospitals are only for the apps themselves
        query = query.where(Hospital.sandbox_app_id.is_(None))
    if ids is not None:
        query = query.where(Hospital.id.in_(ids))
    if region_code:
        query = query.where(Hospital.region_code.in_(await region_codes_within(session, region_code)))
    if q:
        query = query.where(or_(Hospital.name.contains(q), Hospital.short_name.contains(q)))
    if level:
        query = query.where(Hospital.level == level)
    if internet_only:
        query = query.where(Hospital.is_internet_hospital.is_(True))
    return await _page(session, query.order_by(Hospital.name, Hospital.id), limit, offset)


async def _page(session: AsyncSession, query: Select[Any], limit: int, offset: int) -> tuple[list[Any], int]:
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = (await session.scalars(query.limit(min(limit, MAX_PAGE)).offset(offset))).all()
    return list(rows), int(total or 0)


# --- campuses and departments ------------------------------------------------------------------------------


async def create_campus(
    session: AsyncSession, *, principal: Principal, hospital_id: uuid.UUID, name: str, address: str | None
) -> Campus:
    await get_hospital(session, hospital_id)
    principal.require_hospital(hospital_id)
    principal.require_role(Role.platform_admin, Role.hospital_admin)
    if await session.scalar(select(Campus.id).where(Campus.hospital_id == hospital_id, Campus.name == name)):
        raise Conflict("campus_exists", f"campus {name!r} exists")
    campus = Campus(hospital_id=hospital_id, name=name, address=address)
    session.add(campus)
    await session.flush()
    return campus


async def list_campuses(session: AsyncSession, *, hospital_id: uuid.UUID) -> list[Campus]:
    await get_hospital(session, hospital_id)
    return list(
        (await session.scalars(select(Campus).where(Campus.hospital_id == hospital_id).order_by(Campus.name))).all()
    )


async def search_campuses(
    session: AsyncSession,
    *,
    within: Collection[uuid.UUID],
    ids: Collection[uuid.UUID] | None,
    hospital_ids: Collection[uuid.UUID] | None,
    name: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Campus], int]:
    """Campuses of the ``within`` hospitals (a partner app's grants)."""
    query: Select[Any] = select(Campus).where(Campus.hospital_id.in_(within))
    if ids is not None:
        query = query.where(Campus.id.in_(ids))
    if hospital_ids is not None:
        query = query.where(Campus.hospital_id.in_(hospital_ids))
    if name:
        query = query.where(Campus.name.contains(name))
    return await _page(session, query.order_by(Campus.hospital_id, Campus.name, Campus.id), limit, offset)


async def get_department(session: AsyncSession, department_id: uuid.UUID) -> Department:
    department = await session.get(Department, department_id)
    if department is None:
        raise not_found("department", department_id)
    return department


async def _check_campus(session: AsyncSession, hospital_id: uuid.UUID, campus_id: uuid.UUID | None) -> None:
    if campus_id is None:
        return
    campus = await session.get(Campus, campus_id)
    if campus is None or campus.hospital_id != hospital_id:
        raise InvalidInput("unknown_campus", "campus not found at this hospital", details={"field": "campus_id"})


async def create_department(
    session: AsyncSession, *, principal: Principal, hospital_id: uuid.UUID, **fields: Any
) -> Department:
    await get_hospital(session, hospital_id)
    principal.require_role(Role.platform_admin, Role.hospital_admin)
    principal.require_hospital(hospital_id)
    await _check_campus(session, hospital_id, fields.get("campus_id"))
    clash = await session.scalar(
        select(Department.id).where(
            Department.hospital_id == hospital_id,
            Department.name == fields["name"],
            Department.campus_id.is_(None)
            if fields.get("campus_id") is None
            else Department.campus_id == fields["campus_id"],
        )
    )
    if clash:
        raise Conflict("department_exists", f"department {fields['name']!r} exists")
    department = Department(hospital_id=hospital_id, **fields)
    session.add(department)
    await session.flush()
    _audit(
        session, principal, "department.created", "department", department.id, hospital_id, {"name": department.name}
    )
    return department


async def update_department(
    session: AsyncSession, *, principal: Principal, department_id: uuid.UUID, changes: dict[str, Any]
) -> Department:
    department = await get_department(session, department_id)
    principal.require_role(Role.platform_admin, Role.hospital_admin)
    principal.require_hospital(department.hospital_id)
    if "campus_id" in changes:
        await _check_campus(session, department.hospital_id, changes["campus_id"])
    for key, value in changes.items():
        setattr(department, key, value)
    await cache.invalidate(session, NAMES, department.id)
    _audit(
        session,
        principal,
        "department.updated",
        "department",
        department.id,
        department.hospital_id,
        {"fields": sorted(changes)},
    )
    return department


async def list_departments(
    session: AsyncSession, *, hospital_id: uuid.UUID, q: str | None = None, standard_code: str | None = None
) -> list[Department]:
    await get_hospital(session, hospital_id)
    query = select(Department).where(Department.hospital_id == hospital_id, Department.active.is_(True))
    if q:
        query = query.where(Department.name.contains(q))
    if standard_code:
        query = query.where(Department.standard_code.startswith(standard_code))
    return list((await session.scalars(query.order_by(Department.standard_code, Department.name))).all())


async def search_departments(
    session: AsyncSession,
    *,
    within: Collection[uuid.UUID],
    ids: Collection[uuid.UUID] | None,
    hospital_ids: Collection[uuid.UUID] | None,
    name: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Department], int]:
    """Active departments of the ``within`` hospitals (a partner app's grants)."""
    query: Select[Any] = select(Department).where(Department.active.is_(True), Department.hospital_id.in_(within))
    if ids is not None:
        query = query.where(Department.id.in_(ids))
    if hospital_ids is not None:
        query = query.where(Department.hospital_id.in_(hospital_ids))
    if name:
        query = query.where(Department.name.contains(name))
    return await _page(session, query.order_by(Department.standard_code, Department.id), limit, offset)


# --- practitioners and filings -----------------------------------------------------------------------------


async def get_practitioner(session: AsyncSession, practitioner_id: uuid.UUID) -> Practitioner:
    practitioner = await session.get(Practitioner, practitioner_id)
    if practitioner is None:
        raise not_found("practitioner", practitioner_id)
    return practitioner


async def filings_of(
    session: AsyncSession, practitioner_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[PractitionerFiling]]:
    out: dict[uuid.UUID, list[PractitionerFiling]] = {pid: [] for pid in practitioner_ids}
    if not practitioner_ids:
        return out
    rows = await session.scalars(
        select(PractitionerFiling)
        .where(PractitionerFiling.practitioner_id.in_(practitioner_ids))
        .order_by(PractitionerFiling.valid_from)
    )
    for filing in rows:
        out[filing.practitioner_id].append(filing)
    return out


async def search_filings(
    session: AsyncSession,
    *,
    within: Collection[uuid.UUID],
    ids: Collection[uuid.UUID] | None,
    practitioner_ids: Collection[uuid.UUID] | None,
    hospital_ids: Collection[uuid.UUID] | None,
    department_ids: Collection[uuid.UUID] | None,
    active_on: date | None,
    limit: int,
    offset: int,
) -> tuple[list[PractitionerFiling], int]:
    """Filings at the ``within`` hospitals (a partner app's grants), not revoked, of active practitioners;
    ``active_on``: only those valid on that day."""
    query: Select[Any] = (
        select(PractitionerFiling)
        .join(Practitioner, Practitioner.id == PractitionerFiling.practitioner_id)
        .where(
            PractitionerFiling.hospital_id.in_(within),
            PractitionerFiling.revoked_at.is_(None),
            Practitioner.status == PractitionerStatus.active,
        )
    )
    if ids is not None:
        query = query.where(PractitionerFiling.id.in_(ids))
    if practitioner_ids is not None:
        query = query.where(PractitionerFiling.practitioner_id.in_(practitioner_ids))
    if hospital_ids is not None:
        query = query.where(PractitionerFiling.hospital_id.in_(hospital_ids))
    if department_ids is not None:
        query = query.where(PractitionerFiling.department_id.in_(department_ids))
    if active_on is not None:
        query = query.where(
            PractitionerFiling.valid_from <= active_on,
            or_(PractitionerFiling.valid_to.is_(None), PractitionerFiling.valid_to >= active_on),
        )
    order = (PractitionerFiling.hospital_id, PractitionerFiling.practitioner_id, PractitionerFiling.id)
    return await _page(session, query.order_by(*order), limit, offset)


async def create_practitioner(
    session: AsyncSession, *, principal: Principal, filing: dict[str, Any] | None, **fields: Any
) -> Practitioner:
    """Register a practitioner. Hospital admins must file them at their own hospital in the same call."""
    principal.require_role(Role.platform_admin, Role.hospital_admin)
    if principal.role == Role.hospital_admin and filing is None:
        raise InvalidInput(
            "filing_required",
            "hospital admins register a practitioner with a filing at their hospital",
            details={"field": "filing"},
        )
    if await session.scalar(select(Practitioner.id).where(Practitioner.licence_number == fields["licence_number"])):
        raise Conflict("licence_number_taken", "a practitioner with this licence number exists")
    if fields["practice_started_on"] > clock.now().date():
        raise InvalidInput(
            "future_date", "practice cannot start in the future", details={"field": "practice_started_on"}
        )
    practitioner = Practitioner(**fields)
    session.add(practitioner)
    await session.flush()
    if filing is not None:
        await file_practitioner(session, principal=principal, practitioner_id=practitioner.id, **filing)
    return practitioner


async def update_practitioner(
    session: AsyncSession, *, principal: Principal, practitioner_id: uuid.UUID, changes: dict[str, Any]
) -> Practitioner:
    practitioner = await get_practitioner(session, practitioner_id)
    principal.require_role(Role.platform_admin, Role.hospital_admin)
    if principal.role == Role.hospital_admin:
        await require_filed_at(session, practitioner_id, principal.hospital_id)
    for key, value in changes.items():
        setattr(practitioner, key, value)
    await cache.invalidate(session, NAMES, practitioner.id)
    _audit(
        session,
        principal,
        "practitioner.updated",
        "practitioner",
        practitioner.id,
        principal.hospital_id,
        {"fields": sorted(changes)},
    )
    return practitioner


async def require_filed_at(session: AsyncSession, practitioner_id: uuid.UUID, hospital_id: uuid.UUID | None) -> None:
    """403 ``other_hospital`` unless the practitioner has a filing (any, current or past) at the hospital."""
    filed = await session.scalar(
        select(PractitionerFiling.id).where(
            PractitionerFiling.practitioner_id == practitioner_id, PractitionerFiling.hospital_id == hospital_id
        )
    )
    if filed is None:
        raise Forbidden("other_hospital", "this practitioner is not filed at your hospital")


async def file_practitioner(
    session: AsyncSession,
    *,
    principal: Principal,
    practitioner_id: uuid.UUID,
    hospital_id: uuid.UUID,
    department_id: uuid.UUID,
    kind: str,
    valid_from: date,
    valid_to: date | None,
) -> PractitionerFiling:
    """File a practitioner at a hospital's department (main site or multi-site).

    A practitioner has at most one current main filing; 409 ``main_filing_exists`` otherwise."""
    principal.require_role(Role.platform_admin, Role.hospital_admin)
    principal.require_hospital(hospital_id)
    practitioner = await get_practitioner(session, practitioner_id)
    department = await get_department(session, department_id)
    if department.hospital_id != hospital_id:
        raise InvalidInput(
            "department_not_in_hospital",
            "the department belongs to another hospital",
            details={"field": "department_id"},
        )
    if valid_to is not None and valid_to < valid_from:
        raise InvalidInput("invalid_dates", "valid_to is before valid_from", details={"field": "valid_to"})
    if kind == "main":
        today = clock.now().date()
        current_main = await session.scalar(
            select(PractitionerFiling.id).where(
                PractitionerFiling.practitioner_id == practitioner_id,
                PractitionerFiling.kind == "main",
                PractitionerFiling.revoked_at.is_(None),
                or_(PractitionerFiling.valid_to.is_(None), PractitionerFiling.valid_to >= today),
            )
        )
        if current_main is not None:
            raise Conflict("main_filing_exists", "the practitioner already has a current main filing; use multi_site")
    duplicate = await session.scalar(
        select(PractitionerFiling.id).where(
            PractitionerFiling.practitioner_id == practitioner_id,
            PractitionerFiling.department_id == department_id,
            PractitionerFiling.valid_from == valid_from,
        )
    )
    if duplicate is not None:
        raise Conflict("filing_exists", "this filing exists")
    filing = PractitionerFiling(
        practitioner_id=practitioner.id,
        hospital_id=hospital_id,
        department_id=department_id,
        kind=kind,
        valid_from=valid_from,
        valid_to=valid_to,
    )
    session.add(filing)
    await session.flush()
    hospital = await get_hospital(session, hospital_id)
    append_event(
        session,
        "practitioner.filed",
        subject_type="practitioner",
        subject_id=practitioner.id,
        hospital_id=hospital_id,
        region=hospital.region_code,
        actor=principal.actor,
        data={
            "practitioner_id": practitioner.id,
            "filing_id": filing.id,
            "department_id": department_id,
            "kind": kind,
            "valid_from": valid_from,
            "valid_to": valid_to,
        },
    )
    return filing


async def update_filing(
    session: AsyncSession, *, principal: Principal, filing_id: uuid.UUID, valid_to: date | None, revoke: bool
) -> PractitionerFiling:
    filing = await session.get(PractitionerFiling, filing_id)
    if filing is None:
        raise not_found("filing", filing_id)
    principal.require_role(Role.platform_admin, Role.hospital_admin)
    principal.require_hospital(filing.hospital_id)
    if valid_to is not None:
        if valid_to < filing.valid_from:
            raise InvalidInput("invalid_dates", "valid_to is before valid_from", details={"field": "valid_to"})
        filing.valid_to = valid_to
    if revoke and filing.revoked_at is None:
        filing.revoked_at = clock.now()
    _audit(
        session,
        principal,
        "filing.updated",
        "filing",
        filing.id,
        filing.hospital_id,
        {"valid_to": str(valid_to) if valid_to else None, "revoke": revoke},
    )
    return filing


def filing_current(filing: PractitionerFiling, on: date) -> bool:
    return filing.revoked_at is None and filing.valid_from <= on and (filing.valid_to is None or filing.valid_to >= on)


async def current_filing(
    session: AsyncSession, *, practitioner_id: uuid.UUID, department_id: uuid.UUID, on: date
) -> PractitionerFiling | None:
    """The filing that lets this practitioner see patients in this department on this day, if any."""
    rows = await session.scalars(
        select(PractitionerFiling).where(
            PractitionerFiling.practitioner_id == practitioner_id, PractitionerFiling.department_id == department_id
        )
    )
    return next((f for f in rows if filing_current(f, on)), None)


async def search_practitioners(
    session: AsyncSession,
    *,
    region_code: str | None,
    hospital_id: uuid.UUID | None,
    department_id: uuid.UUID | None,
    name: str | None,
    specialty: str | None,
    title: str | None,
    limit: int,
    offset: int,
    within: Collection[uuid.UUID] | None = None,
    ids: Collection[uuid.UUID] | None = None,
) -> tuple[list[Practitioner], int]:
    """Active practitioners; ``within``: only those filed at these hospitals (a partner app's grants)."""
    query: Select[Any] = select(Practitioner).where(Practitioner.status == PractitionerStatus.active)
    if ids is not None:
        query = query.where(Practitioner.id.in_(ids))
    if region_code or hospital_id or department_id or within is not None:
        filed = select(PractitionerFiling.practitioner_id).where(PractitionerFiling.revoked_at.is_(None))
        if within is not None:
            filed = filed.where(PractitionerFiling.hospital_id.in_(within))
        if hospital_id:
            filed = filed.where(PractitionerFiling.hospital_id == hospital_id)
        if department_id:
            filed = filed.where(PractitionerFiling.department_id == department_id)
        if region_code:
            codes = await region_codes_within(session, region_code)
            filed = filed.where(
                PractitionerFiling.hospital_id.in_(select(Hospital.id).where(Hospital.region_code.in_(codes)))
            )
        query = query.where(Practitioner.id.in_(filed))
    if within is None:  # the public directory: not the practitioners of partner apps' sandbox hospitals
        sandboxed = select(PractitionerFiling.practitioner_id).where(
            PractitionerFiling.hospital_id.in_(select(Hospital.id).where(Hospital.sandbox_app_id.is_not(None)))
        )
        query = query.where(Practitioner.id.not_in(sandboxed))
    if name:
        query = query.where(Practitioner.name.contains(name))
    if specialty:
        query = query.where(Practitioner.specialty.contains(specialty))
    if title:
        query = query.where(Practitioner.title == title)
    return await _page(session, query.order_by(Practitioner.name, Practitioner.id), limit, offset)


async def names(
    session: AsyncSession,
    *,
    hospital_ids: set[uuid.UUID] = frozenset(),  # type: ignore[assignment]
    department_ids: set[uuid.UUID] = frozenset(),  # type: ignore[assignment]
    practitioner_ids: set[uuid.UUID] = frozenset(),
) -> dict[uuid.UUID, tuple[str, str | None]]:
    """Display names (and a practitioner's title) for ids of any of the three kinds: from the per-worker cache,
    the rest in one query per kind."""
    out: dict[uuid.UUID, tuple[str, str | None]] = {}
    kinds: tuple[tuple[Any, set[uuid.UUID]], ...] = (
        (Hospital, hospital_ids),
        (Department, department_ids),
        (Practitioner, practitioner_ids),
    )
    for kind, ids in kinds:
        missing = []
        for i in ids:
            hit = NAMES.get(i)
            if hit is None:
                missing.append(i)
            else:
                out[i] = hit
        if not missing:
            continue
        title = Practitioner.title if kind is Practitioner else null()
        rows = (await session.execute(select(kind.id, kind.name, title).where(kind.id.in_(missing)))).all()
        for i, name, t in rows:
            out[i] = (name, None if t is None else str(t))
            NAMES.set(i, out[i])
    return out


async def timezones(session: AsyncSession, hospital_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """IANA time zones of hospitals (per-worker cache)."""
    out = {i: z for i in hospital_ids if (z := ZONES.get(i)) is not None}
    missing = [i for i in hospital_ids if i not in out]
    if missing:
        rows = (await session.execute(select(Hospital.id, Hospital.timezone).where(Hospital.id.in_(missing)))).all()
        for i, zone in rows:
            out[i] = zone
            ZONES.set(i, zone)
    return out


async def timezone_of(session: AsyncSession, hospital_id: uuid.UUID) -> str:
    zones = await timezones(session, {hospital_id})
    if hospital_id not in zones:
        raise not_found("hospital", hospital_id)
    return zones[hospital_id]
