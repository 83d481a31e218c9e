"""Shaping scheduling rows into API answers (names joined in batches, personal data masked by the
patients domain)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.principal import Principal
from carebridge.core import clock
from carebridge.directory import service as directory
from carebridge.patients import service as patients
from carebridge.scheduling.models import Appointment, Schedule, Slot, SlotPool
from carebridge.scheduling.schemas import AppointmentOut, PoolOut, ScheduleOut, SlotOut


def _local_span(start: datetime, end: datetime, zone: str) -> str:
    return f"{clock.to_local(start, zone):%H:%M}-{clock.to_local(end, zone):%H:%M}"


def pool_out(pool: SlotPool) -> PoolOut:
    return PoolOut(
        channel=pool.channel,
        capacity=pool.capacity,
        booked=pool.booked,
        held=pool.held,
        free=max(0, pool.capacity - pool.booked - pool.held),
    )


async def schedules_out(
    session: AsyncSession,
    schedules: Sequence[Schedule],
    pools: dict[uuid.UUID, list[SlotPool]],
    slots: dict[uuid.UUID, list[Slot]] | None,
    *,
    channels: set[str] | None,
    tz: dict[uuid.UUID, str],
) -> list[ScheduleOut]:
    """``channels`` limits which pools are shown and counted as free (None: all, for the hospital's admins)."""
    names = await directory.names(
        session,
        department_ids={s.department_id for s in schedules},
        practitioner_ids={s.practitioner_id for s in schedules},
    )
    out = []
    for schedule in schedules:
        visible = [p for p in pools.get(schedule.id, []) if channels is None or p.channel in channels]
        free = sum(max(0, p.capacity - p.booked - p.held) for p in visible)
        item = ScheduleOut(
            id=schedule.id,
            hospital_id=schedule.hospital_id,
            department_id=schedule.department_id,
            practitioner_id=schedule.practitioner_id,
            practitioner_name=names.get(schedule.practitioner_id, ("", None))[0],
            practitioner_title=names.get(schedule.practitioner_id, ("", None))[1],
            department_name=names.get(schedule.department_id, ("", None))[0],
            visit_type_id=schedule.visit_type_id,
            service_date=schedule.service_date,
            session=schedule.session,
            starts_at=schedule.starts_at,
            ends_at=schedule.ends_at,
            fee_fen=schedule.fee_fen,
            status=schedule.status,
            stopped_reason=schedule.stopped_reason,
            free=free,
        )
        if slots is not None:
            by_slot: dict[uuid.UUID, list[SlotPool]] = {}
            for pool in visible:
                by_slot.setdefault(pool.slot_id, []).append(pool)
            zone = tz.get(schedule.hospital_id, "Asia/Shanghai")
            item.slots = [
                SlotOut(
                    id=slot.id,
                    starts_at=slot.starts_at,
                    ends_at=slot.ends_at,
                    local_time=_local_span(slot.starts_at, slot.ends_at, zone),
                    pools=[pool_out(p) for p in by_slot.get(slot.id, [])],
                    free=sum(max(0, p.capacity - p.booked - p.held) for p in by_slot.get(slot.id, [])),
                )
                for slot in slots.get(schedule.id, [])
            ]
        out.append(item)
    return out


async def appointments_out(
    session: AsyncSession, principal: Principal, appts: Sequence[Appointment], *, purpose: str
) -> list[AppointmentOut]:
    people = await patients.describe(
        session, principal=principal, patient_ids=[a.patient_id for a in appts], purpose=purpose
    )
    return await appointments_with_names(session, appts, {pid: person.name for pid, person in people.items()})


_MADE_HERE = {
    "called",
    "patient_name",
    "hospital_name",
    "department_name",
    "practitioner_name",
    "timezone",
    "local_time",
}
_FROM_APPOINTMENT = tuple(name for name in AppointmentOut.model_fields if name not in _MADE_HERE)


async def appointments_with_names(
    session: AsyncSession, appts: Sequence[Appointment], patient_names: dict[uuid.UUID, str]
) -> list[AppointmentOut]:
    """The answer for appointments whose patients' names the caller has already been allowed (and audited)."""
    names = await directory.names(
        session,
        hospital_ids={a.hospital_id for a in appts},
        department_ids={a.department_id for a in appts},
        practitioner_ids={a.practitioner_id for a in appts},
    )
    zones = await directory.timezones(session, {a.hospital_id for a in appts})
    out = []
    for appt in appts:
        zone = zones.get(appt.hospital_id, "Asia/Shanghai")
        start, end = clock.to_local(appt.starts_at, zone), clock.to_local(appt.ends_at, zone)
        values = {name: getattr(appt, name) for name in _FROM_APPOINTMENT}  # one validation, no assignments after
        values.update(
            called=appt.called_at is not None,
            patient_name=patient_names.get(appt.patient_id),
            hospital_name=names.get(appt.hospital_id, (None, None))[0],
            department_name=names.get(appt.department_id, (None, None))[0],
            practitioner_name=names.get(appt.practitioner_id, (None, None))[0],
            timezone=zone,
            local_time=f"{start:%Y-%m-%d %H:%M}-{end:%H:%M}",
        )
        out.append(AppointmentOut.model_validate(values))
    return out
