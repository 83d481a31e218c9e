"""What the engine knows of hospitals, from ``hospital.registered`` and ``hospital.changed`` events: the region
that decides which regulator and which scoped rules see a hospital's events, and its licence (R18).

In embedded mode hospitals that existed before the engine did (loaded in bulk) are added once at start-up from
the directory (``reconcile``); after that, events keep the registry current. In standalone mode the reporting
platforms' events are the only source.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import cache, clock
from carebridge.events.outbox import Event
from carebridge.supervision.models import SupervisedHospital

EVENT_TYPES = frozenset({"hospital.registered", "hospital.changed"})
PROFILE = (
    "name",
    "region_code",
    "level",
    "is_internet_hospital",
    "licence_expires_on",
    "licence_verified_on",
    "active",
)
HOSPITALS = cache.Cache("supervision_hospitals", setting="directory_cache_seconds")
_UNKNOWN = object()


@dataclass(frozen=True, slots=True)
class HospitalView:
    id: uuid.UUID
    name: str
    region_code: str
    level: str | None
    is_internet_hospital: bool
    licence_expires_on: date | None
    licence_verified_on: date | None
    active: bool


def _view(row: SupervisedHospital) -> HospitalView:
    return HospitalView(
        id=row.id,
        name=row.name,
        region_code=row.region_code,
        level=row.level,
        is_internet_hospital=row.is_internet_hospital,
        licence_expires_on=row.licence_expires_on,
        licence_verified_on=row.licence_verified_on,
        active=row.active,
    )


def _date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


async def apply_events(session: AsyncSession, events: Sequence[Event], platform_id: uuid.UUID | None) -> None:
    """Create or update registry rows from hospital events (the latest event wins for each field it carries)."""
    for ev in events:
        d = ev.data
        hospital_id = uuid.UUID(str(d["hospital_id"]))
        row = await session.get(SupervisedHospital, hospital_id)
        profile = {
            k: d.get(k) for k in PROFILE if d.get(k) is not None or (k in d and ev.type == "hospital.registered")
        }
        if "licence_verified_on" in d:  # a verification can be withdrawn (None)
            profile["licence_verified_on"] = d["licence_verified_on"]
        for k in ("licence_expires_on", "licence_verified_on"):
            if k in profile:
                profile[k] = _date(profile[k])
        if row is None:
            if not profile.get("name") or not profile.get("region_code"):
                continue  # a change of a hospital never registered: nothing to anchor it to
            row = SupervisedHospital(id=hospital_id, platform_id=platform_id, **profile)
            session.add(row)
        else:
            for k, v in profile.items():
                setattr(row, k, v)
            row.updated_at = clock.now()
        await session.flush()
        await cache.invalidate(session, HOSPITALS, hospital_id)
        HOSPITALS.evict(hospital_id)  # this batch reads it again


async def views(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, HospitalView]:
    """The registry's view of these hospitals (cached per worker); unknown ids are left out."""
    out: dict[uuid.UUID, HospitalView] = {}
    missing = []
    for hospital_id in ids:
        if hospital_id is None:
            continue
        hit = HOSPITALS.get(hospital_id, _UNKNOWN)
        if hit is _UNKNOWN:
            missing.append(hospital_id)
        elif hit is not None:
            out[hospital_id] = hit
    if missing:
        rows = (await session.scalars(select(SupervisedHospital).where(SupervisedHospital.id.in_(missing)))).all()
        found = {r.id: _view(r) for r in rows}
        for hospital_id in missing:
            HOSPITALS.set(hospital_id, found.get(hospital_id))
        out.update(found)
    return out


async def reconcile(session: AsyncSession, profiles: Sequence[dict[str, Any]]) -> int:
    """Add hospitals the registry has never seen (embedded start-up); returns how many were added."""
    known = set((await session.scalars(select(SupervisedHospital.id))).all())
    added = 0
    for p in profiles:
        if p["hospital_id"] in known:
            continue
        session.add(SupervisedHospital(id=p["hospital_id"], **{k: p.get(k) for k in PROFILE}))
        added += 1
    if added:
        await cache.invalidate(session, HOSPITALS)
    return added
