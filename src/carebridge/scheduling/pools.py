"""Channel pools: how a slot's capacity is split between the HIS counter, the platform, partner apps and
consortium referrals, and how unbooked capacity moves between them."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import clock
from carebridge.core.errors import Conflict, InvalidInput, not_found
from carebridge.events.outbox import append_event
from carebridge.scheduling import availability
from carebridge.scheduling import rules as rules_service
from carebridge.scheduling.models import Schedule, ScheduleStatus, Slot, SlotPool

CHANNEL = re.compile(r"^(onsite|platform|online|referral|partner:[a-z0-9][a-z0-9_\-]{0,31})$")
PLATFORM = "platform"


def check_channel(channel: str, field: str = "channel") -> str:
    if not CHANNEL.match(channel):
        raise InvalidInput(
            "unknown_channel",
            "a channel is onsite, platform, online, referral or partner:<app>",
            details={"field": field, "value": channel[:60]},
        )
    return channel


def check_pools(pools: dict[str, int], field: str = "pools") -> dict[str, int]:
    if not pools:
        raise InvalidInput("empty_pools", "a slot needs at least one channel pool", details={"field": field})
    for channel, capacity in pools.items():
        check_channel(channel, field)
        if not isinstance(capacity, int) or isinstance(capacity, bool) or not 0 <= capacity <= 500:
            raise InvalidInput(
                "bad_capacity", "a pool's capacity is a whole number 0-500", details={"field": f"{field}.{channel}"}
            )
    if sum(pools.values()) == 0:
        raise InvalidInput("empty_pools", "a slot needs some capacity", details={"field": field})
    return pools


async def _add_capacity(session: AsyncSession, slot: Slot, channel: str, amount: int) -> None:
    await availability.places_freed(session, slot.id, channel)
    moved = await session.execute(
        update(SlotPool)
        .where(SlotPool.slot_id == slot.id, SlotPool.channel == channel)
        .values(capacity=SlotPool.capacity + amount)
    )
    if moved.rowcount == 0:
        session.add(
            SlotPool(
                slot_id=slot.id,
                schedule_id=slot.schedule_id,
                hospital_id=slot.hospital_id,
                channel=channel,
                starts_at=slot.starts_at,
                capacity=amount,
            )
        )
        await session.flush()


async def _take_unbooked(session: AsyncSession, slot_id: uuid.UUID, channel: str, amount: int) -> bool:
    """Conditionally remove ``amount`` unbooked places from a pool; False if it has fewer free."""
    taken = await session.execute(
        update(SlotPool)
        .where(
            SlotPool.slot_id == slot_id,
            SlotPool.channel == channel,
            SlotPool.capacity - SlotPool.booked - SlotPool.held >= amount,
        )
        .values(capacity=SlotPool.capacity - amount)
    )
    return taken.rowcount == 1


async def move_capacity(
    session: AsyncSession,
    *,
    principal: Principal,
    schedule_id: uuid.UUID,
    slot_id: uuid.UUID | None,
    from_channel: str,
    to_channel: str,
    amount: int,
) -> int:
    """Move ``amount`` unbooked places per slot from one channel to another, for one slot or every slot
    of a schedule. All or nothing: 409 ``insufficient_capacity`` names the slot that lacks free places.
    Returns the number of slots changed."""
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    check_channel(from_channel, "from_channel")
    check_channel(to_channel, "to_channel")
    if from_channel == to_channel:
        raise InvalidInput("same_channel", "from_channel and to_channel are the same", details={"field": "to_channel"})
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None:
        raise not_found("schedule", schedule_id)
    principal.require_hospital(schedule.hospital_id)
    if schedule.status != ScheduleStatus.open:
        raise Conflict("schedule_stopped", "the schedule is stopped")
    query = select(Slot).where(Slot.schedule_id == schedule_id).order_by(Slot.starts_at)
    if slot_id is not None:
        query = query.where(Slot.id == slot_id)
    slots = (await session.scalars(query)).all()
    if not slots:
        raise not_found("slot", slot_id)
    for slot in slots:
        if not await _take_unbooked(session, slot.id, from_channel, amount):
            raise Conflict(
                "insufficient_capacity",
                f"the {from_channel} pool has fewer than {amount} free places",
                details={"slot_id": str(slot.id), "starts_at": slot.starts_at.isoformat()},
            )
        await _add_capacity(session, slot, to_channel, amount)
        append_event(
            session,
            "pool.capacity_moved",
            subject_type="slot",
            subject_id=slot.id,
            hospital_id=schedule.hospital_id,
            actor=principal.actor,
            data={
                "slot_id": slot.id,
                "from_channel": from_channel,
                "to_channel": to_channel,
                "amount": amount,
                "automatic": False,
            },
        )
    return len(slots)


async def release_unused(session: AsyncSession, *, hospital_id: uuid.UUID) -> int:
    """Release unbooked capacity of non-platform pools to ``platform`` once a slot is within the
    (department's) ``auto_release_hours`` of its start. Idempotent: each pool is released once."""
    now = clock.now()
    released = 0
    schedules = (
        await session.scalars(
            select(Schedule).where(
                Schedule.hospital_id == hospital_id,
                Schedule.status == ScheduleStatus.open,
                Schedule.ends_at > now,
                Schedule.starts_at < now + timedelta(days=8),
            )
        )
    ).all()
    for schedule in schedules:
        effective = await rules_service.effective_rules(
            session, hospital_id=hospital_id, department_id=schedule.department_id
        )
        if effective.auto_release_hours is None:
            continue
        horizon = now + timedelta(hours=effective.auto_release_hours)
        pools = (
            await session.scalars(
                select(SlotPool).where(
                    SlotPool.schedule_id == schedule.id,
                    SlotPool.channel != PLATFORM,
                    SlotPool.released_at.is_(None),
                    SlotPool.starts_at <= horizon,
                    SlotPool.starts_at > now,
                )
            )
        ).all()
        for pool in pools:
            free = pool.capacity - pool.booked - pool.held
            result = await session.execute(
                update(SlotPool)
                .where(
                    and_(
                        SlotPool.id == pool.id,
                        SlotPool.released_at.is_(None),
                        SlotPool.capacity - SlotPool.booked - SlotPool.held == free,
                    )
                )
                .values(capacity=SlotPool.capacity - free, released_at=now)
            )
            if result.rowcount != 1:
                continue  # booked meanwhile; the next sweep tries again
            if free > 0:
                slot = await session.get(Slot, pool.slot_id)
                assert slot is not None
                await _add_capacity(session, slot, PLATFORM, free)
                append_event(
                    session,
                    "pool.capacity_moved",
                    subject_type="slot",
                    subject_id=slot.id,
                    hospital_id=hospital_id,
                    actor="system",
                    data={
                        "slot_id": slot.id,
                        "from_channel": pool.channel,
                        "to_channel": PLATFORM,
                        "amount": free,
                        "automatic": True,
                    },
                )
                released += free
    return released
