"""No-show credit: repeated no-shows block booking at a hospital for a while; whitelist; manual lifting."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlalchemy import Date, ScalarSelect, Uuid, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import audit, clock
from carebridge.core.batching import in_list
from carebridge.core.errors import Conflict, Forbidden, not_found
from carebridge.directory import service as directory
from carebridge.events.outbox import append_event
from carebridge.scheduling.models import Appointment, AppointmentStatus, BookingBlock, NoShowExemption
from carebridge.scheduling.rules import no_show_policy


async def current_block(
    session: AsyncSession, *, hospital_id: uuid.UUID, patient_id: uuid.UUID, today: date
) -> BookingBlock | None:
    return await session.scalar(
        select(BookingBlock)
        .where(
            BookingBlock.hospital_id == hospital_id,
            BookingBlock.patient_id == patient_id,
            BookingBlock.lifted_at.is_(None),
            BookingBlock.ends_on >= today,
        )
        .order_by(BookingBlock.ends_on.desc())
        .limit(1)
    )


def blocked_until() -> ScalarSelect[date]:
    """A scalar subquery for another domain's prebuilt query, on the bind parameters ``hospital_id``,
    ``patient_id`` and ``today``: the end of the patient's active block at the hospital, NULL if there is none
    or the patient is whitelisted (``ensure_not_blocked`` gives the full answer)."""
    hospital_id, patient_id = bindparam("hospital_id", type_=Uuid()), bindparam("patient_id", type_=Uuid())
    exempt = select(NoShowExemption.id).where(
        NoShowExemption.hospital_id == hospital_id, NoShowExemption.patient_id == patient_id
    )
    return (
        select(func.max(BookingBlock.ends_on))
        .where(
            BookingBlock.hospital_id == hospital_id,
            BookingBlock.patient_id == patient_id,
            BookingBlock.lifted_at.is_(None),
            BookingBlock.ends_on >= bindparam("today", type_=Date()),
            ~exempt.exists(),
        )
        .scalar_subquery()
    )


_BLOCK = BookingBlock.__table__.c
_BLOCKED_PAIRS = (  # Core (table columns): a booking batch's statement, without the ORM's per-statement work
    select(_BLOCK.hospital_id, _BLOCK.patient_id)
    .where(
        in_list(_BLOCK.patient_id, "patient_ids"),
        in_list(_BLOCK.hospital_id, "hospital_ids"),
        _BLOCK.lifted_at.is_(None),
        _BLOCK.ends_on >= bindparam("since", type_=Date()),
    )
    .distinct()
)


async def maybe_blocked(
    session: AsyncSession, pairs: list[tuple[uuid.UUID, uuid.UUID]], *, since: date
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """Of many (hospital, patient) pairs, in one query, those with a block not lifted that ends on or after
    ``since``: the only ones for which ``ensure_not_blocked`` can refuse (it gives the exact answer)."""
    if not pairs:
        return set()
    asked = set(pairs)
    params = {
        "patient_ids": list({p for _, p in asked}),
        "hospital_ids": list({h for h, _ in asked}),
        "since": since,
    }  # the lists' cross product, narrowed to the pairs asked: no tuple IN to render per batch
    return {(h, p) for h, p in (await session.execute(_BLOCKED_PAIRS, params)).all() if (h, p) in asked}


async def ensure_not_blocked(
    session: AsyncSession, *, hospital_id: uuid.UUID, patient_id: uuid.UUID, today: date
) -> None:
    """403 ``booking_blocked`` with the date the block ends, unless the patient is whitelisted."""
    block = await current_block(session, hospital_id=hospital_id, patient_id=patient_id, today=today)
    if block is None or await _exempt(session, hospital_id, patient_id):
        return
    raise Forbidden(
        "booking_blocked",
        f"booking at this hospital is blocked until {block.ends_on.isoformat()}",
        details={"ends_on": block.ends_on.isoformat(), "reason": block.reason},
    )


async def _exempt(session: AsyncSession, hospital_id: uuid.UUID, patient_id: uuid.UUID) -> bool:
    return (
        await session.scalar(
            select(NoShowExemption.id).where(
                NoShowExemption.hospital_id == hospital_id, NoShowExemption.patient_id == patient_id
            )
        )
        is not None
    )


async def evaluate(
    session: AsyncSession, *, hospital_id: uuid.UUID, patient_id: uuid.UUID, region: str, today: date
) -> BookingBlock | None:
    """After a no-show: block the patient if the hospital's policy says so. Returns the new block."""
    policy = await no_show_policy(session, hospital_id=hospital_id)
    if not policy.enabled or await _exempt(session, hospital_id, patient_id):
        return None
    if await current_block(session, hospital_id=hospital_id, patient_id=patient_id, today=today) is not None:
        return None
    since = today - timedelta(days=policy.window_days)
    # Only no-shows after the last block was lifted or ended count again.
    last = await session.scalar(
        select(func.max(BookingBlock.starts_at)).where(
            BookingBlock.hospital_id == hospital_id, BookingBlock.patient_id == patient_id
        )
    )
    query = (
        select(func.count())
        .select_from(Appointment)
        .where(
            Appointment.hospital_id == hospital_id,
            Appointment.patient_id == patient_id,
            Appointment.status == AppointmentStatus.no_show,
            Appointment.service_date > since,
        )
    )
    if last is not None:
        query = query.where(Appointment.no_show_at > last)
    count = int(await session.scalar(query) or 0)
    if count < policy.threshold:
        return None
    block = BookingBlock(
        hospital_id=hospital_id,
        patient_id=patient_id,
        ends_on=today + timedelta(days=policy.block_days),
        no_show_count=count,
        reason=f"{count} no-shows in {policy.window_days} days",
    )
    session.add(block)
    await session.flush()
    append_event(
        session,
        "booking.blocked",
        subject_type="patient",
        subject_id=patient_id,
        hospital_id=hospital_id,
        region=region,
        actor="system",
        data={"patient_id": patient_id, "block_id": block.id, "ends_on": block.ends_on, "no_shows": count},
    )
    return block


async def lift_block(session: AsyncSession, *, principal: Principal, block_id: uuid.UUID, reason: str) -> BookingBlock:
    block = await session.get(BookingBlock, block_id)
    if block is None:
        raise not_found("block", block_id)
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(block.hospital_id)
    result = await session.execute(
        update(BookingBlock)
        .where(BookingBlock.id == block_id, BookingBlock.lifted_at.is_(None))
        .values(lifted_at=clock.now(), lifted_by=principal.user_id, lift_reason=reason)
    )
    if result.rowcount != 1:
        raise Conflict("already_lifted", "this block was already lifted")
    await session.refresh(block)
    append_event(
        session,
        "booking.block_lifted",
        subject_type="patient",
        subject_id=block.patient_id,
        hospital_id=block.hospital_id,
        actor=principal.actor,
        data={"patient_id": block.patient_id, "block_id": block.id, "reason": reason},
    )
    audit.record(
        session,
        action="booking_block.lifted",
        subject_type="booking_block",
        subject_id=block.id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=block.hospital_id,
        detail={"reason": reason},
    )
    return block


async def lift_all(
    session: AsyncSession, *, hospital_id: uuid.UUID, reason: str, actor: str, actor_user_id: uuid.UUID
) -> int:
    """Lift every standing block at a hospital (a partner app's sandbox reset), each a ``booking.block_lifted``
    event."""
    lifted = (
        await session.execute(
            update(BookingBlock)
            .where(BookingBlock.hospital_id == hospital_id, BookingBlock.lifted_at.is_(None))
            .values(lifted_at=clock.now(), lifted_by=actor_user_id, lift_reason=reason)
            .returning(BookingBlock.id, BookingBlock.patient_id)
        )
    ).all()
    for block_id, patient_id in lifted:
        append_event(
            session,
            "booking.block_lifted",
            subject_type="patient",
            subject_id=patient_id,
            hospital_id=hospital_id,
            actor=actor,
            data={"patient_id": patient_id, "block_id": block_id, "reason": reason},
        )
    return len(lifted)


async def list_blocks(
    session: AsyncSession, *, principal: Principal, hospital_id: uuid.UUID, include_lifted: bool
) -> list[BookingBlock]:
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(hospital_id)
    query = select(BookingBlock).where(BookingBlock.hospital_id == hospital_id)
    if not include_lifted:
        hospital = await directory.get_hospital(session, hospital_id)
        today = clock.local_today(hospital.timezone)
        query = query.where(BookingBlock.lifted_at.is_(None), BookingBlock.ends_on >= today)
    return list((await session.scalars(query.order_by(BookingBlock.starts_at.desc()).limit(500))).all())


async def add_exemption(
    session: AsyncSession, *, principal: Principal, hospital_id: uuid.UUID, patient_id: uuid.UUID, reason: str
) -> NoShowExemption:
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(hospital_id)
    if await _exempt(session, hospital_id, patient_id):
        raise Conflict("already_exempt", "the patient is already on the whitelist")
    exemption = NoShowExemption(
        hospital_id=hospital_id, patient_id=patient_id, reason=reason, created_by=principal.user_id
    )
    session.add(exemption)
    await session.flush()
    audit.record(
        session,
        action="no_show_exemption.added",
        subject_type="patient",
        subject_id=patient_id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=hospital_id,
        detail={"reason": reason},
    )
    return exemption


async def list_exemptions(
    session: AsyncSession, *, principal: Principal, hospital_id: uuid.UUID
) -> list[NoShowExemption]:
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(hospital_id)
    return list(
        (await session.scalars(select(NoShowExemption).where(NoShowExemption.hospital_id == hospital_id))).all()
    )
