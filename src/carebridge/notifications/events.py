"""Turns events into in-app notifications for the accounts linked to the patient concerned."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.events.bus import MemoryBus
from carebridge.events.outbox import Event
from carebridge.notifications.service import notify
from carebridge.patients import service as patients

CONSUMER = "notifications.patient"

REASONS = {
    "schedule_stopped": "医生停诊 the doctor's session was stopped",
    "rescheduled": "已改约 rescheduled",
    "patient_request": "本人取消 cancelled by you",
}

_MESSAGES = {
    "appointment.cancelled": (
        "appointment_cancelled",
        "预约已取消 Appointment cancelled",
        "您{date}的预约已取消（{reason}）。Your appointment on {date} was cancelled ({reason}).",
    ),
    "waitlist.offered": (
        "waitlist_offer",
        "候补成功 A place is held for you",
        "候补的号源已为您保留至{until}，请尽快确认。A place is held for you until {until}: accept it to book.",
    ),
    "booking.blocked": (
        "booking_blocked",
        "预约受限 Booking blocked",
        "因多次爽约，{until}前暂停在该院预约。Because of repeated no-shows, booking at this hospital is "
        "paused until {until}.",
    ),
    "appointment.no_show": (
        "no_show",
        "爽约记录 Missed appointment",
        "您{date}的预约未按时签到，已记爽约一次。Your appointment on {date} was missed.",
    ),
}


async def notify_patient_accounts(session: AsyncSession, event: Event) -> None:
    kind, title, template = _MESSAGES[event.type]
    data = event.data
    reason = REASONS.get(data.get("reason", ""), data.get("reason", ""))
    if event.type == "appointment.cancelled" and data.get("cancelled_by") == "patient":
        return  # the patient did it themselves
    body = template.format(
        date=data.get("service_date", ""),
        reason=reason or "",
        until=data.get("hold_expires_at") or data.get("ends_on") or "",
    )
    for user_id in await patients.account_ids_for(session, uuid.UUID(data["patient_id"])):
        notify(
            session,
            user_id=user_id,
            kind=kind,
            title=title,
            body=body,
            source_event_id=event.id,
            data={
                k: data[k]
                for k in ("appointment_id", "schedule_id", "slot_id", "waitlist_entry_id", "ends_on")
                if k in data
            },
        )


def subscribe(bus: MemoryBus, app: Any) -> None:
    for pattern in _MESSAGES:
        bus.subscribe(CONSUMER, pattern, notify_patient_accounts)
