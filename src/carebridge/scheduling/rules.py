"""Booking rules and no-show policy: data, editable live, read on every booking.

A hospital has one rule row (``department_id`` NULL); a department may override any field (NULL there
means "as the hospital"). Missing values fall back to ``DEFAULT_RULES``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import time
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import audit, cache
from carebridge.scheduling.models import BookingRule, NoShowPolicy


@dataclass(frozen=True, slots=True)
class EffectiveRules:
    window_days: int = 7
    opens_at: time = time(7, 0)
    same_day_cutoff: time | None = None
    cancel_deadline_minutes: int = 120
    max_per_practitioner_per_day: int = 1
    max_per_department: int = 2
    max_total: int = 5
    auto_release_hours: int | None = None


DEFAULT_RULES = EffectiveRules()
# (hospital_id, department_id) -> EffectiveRules, per worker; any rule change empties it in every worker.
RULES = cache.Cache("booking_rules", setting="directory_cache_seconds")
RULE_FIELDS = [f.name for f in fields(EffectiveRules)]


def _merge(base: EffectiveRules, row: BookingRule | None) -> EffectiveRules:
    if row is None:
        return base
    values = {name: getattr(row, name) for name in RULE_FIELDS if getattr(row, name) is not None}
    return EffectiveRules(**{**{n: getattr(base, n) for n in RULE_FIELDS}, **values})


async def effective_rules(session: AsyncSession, *, hospital_id: uuid.UUID, department_id: uuid.UUID) -> EffectiveRules:
    hit = RULES.get((hospital_id, department_id))
    if hit is not None:
        return hit
    rows = (
        await session.scalars(
            select(BookingRule).where(
                BookingRule.hospital_id == hospital_id,
                or_(BookingRule.department_id.is_(None), BookingRule.department_id == department_id),
            )
        )
    ).all()
    hospital_row = next((r for r in rows if r.department_id is None), None)
    department_row = next((r for r in rows if r.department_id is not None), None)
    rules = _merge(_merge(DEFAULT_RULES, hospital_row), department_row)
    RULES.set((hospital_id, department_id), rules)
    return rules


async def rule_rows(session: AsyncSession, *, hospital_id: uuid.UUID) -> list[BookingRule]:
    rows = await session.scalars(
        select(BookingRule)
        .where(BookingRule.hospital_id == hospital_id)
        .order_by(BookingRule.department_id.is_not(None))
    )
    return list(rows.all())


async def set_rules(
    session: AsyncSession,
    *,
    principal: Principal,
    hospital_id: uuid.UUID,
    department_id: uuid.UUID | None,
    changes: dict[str, Any],
) -> BookingRule:
    """Create or change the hospital's rules (``department_id`` None) or a department's overrides.

    On a department row a field set to None means "inherit". Takes effect for the next booking."""
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(hospital_id)
    query = select(BookingRule).where(BookingRule.hospital_id == hospital_id)
    query = query.where(
        BookingRule.department_id.is_(None) if department_id is None else BookingRule.department_id == department_id
    )
    row = await session.scalar(query)
    if row is None:
        row = BookingRule(hospital_id=hospital_id, department_id=department_id)
        session.add(row)
    old = {k: _jsonable(getattr(row, k, None)) for k in changes}
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_by = principal.user_id
    await session.flush()
    await cache.invalidate(session, RULES)
    audit.record(
        session,
        action="booking_rules.changed",
        subject_type="booking_rules",
        subject_id=row.id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=hospital_id,
        detail={
            "department_id": str(department_id) if department_id else None,
            "old": old,
            "new": {k: _jsonable(v) for k, v in changes.items()},
        },
    )
    return row


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, time) else value


async def no_show_policy(session: AsyncSession, *, hospital_id: uuid.UUID) -> NoShowPolicy:
    policy = await session.get(NoShowPolicy, hospital_id)
    return policy or NoShowPolicy(hospital_id=hospital_id, enabled=True, threshold=3, window_days=90, block_days=90)


async def set_no_show_policy(
    session: AsyncSession, *, principal: Principal, hospital_id: uuid.UUID, changes: dict[str, Any]
) -> NoShowPolicy:
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(hospital_id)
    policy = await session.get(NoShowPolicy, hospital_id)
    if policy is None:
        policy = NoShowPolicy(hospital_id=hospital_id, enabled=True, threshold=3, window_days=90, block_days=90)
        session.add(policy)
    for key, value in changes.items():
        setattr(policy, key, value)
    await session.flush()
    audit.record(
        session,
        action="no_show_policy.changed",
        subject_type="hospital",
        subject_id=hospital_id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=hospital_id,
        detail={"new": changes},
    )
    return policy
