"""Pre-warning and in-process control (the Yinchuan model's first two moments), for the platform's services.

A service about to act builds the event the action would append (``proposal``) and calls ``enforce``: the
regulator's enabled rules run on it as they will on the real event. A ``block`` finding stops the action with
409 ``supervision_blocked`` naming the rules; other findings are returned, so the service can show them to the
doctor (pre-warning). Nothing is written. The HTTP pre-check (``POST /api/v1/supervision/precheck``) is the
same function for callers outside the process.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import clock
from carebridge.core.errors import Conflict
from carebridge.core.ids import new_id
from carebridge.events.outbox import Event
from carebridge.supervision.engine import Engine, Finding
from carebridge.supervision.models import Severity


class State:
    engine = Engine()
    enabled = True


def configure(*, enabled: bool, zone: str) -> None:
    State.enabled = enabled
    State.engine = Engine(zone=zone)


def proposal(
    type_: str,
    *,
    hospital_id: uuid.UUID | None,
    region: str | None,
    actor: str | None,
    subject: tuple[str, Any],
    data: dict[str, Any],
) -> Event:
    return Event(
        id=new_id(),
        type=type_,
        occurred_at=clock.now(),
        hospital_id=hospital_id,
        region=region,
        actor=actor,
        subject_type=subject[0],
        subject_id=str(subject[1]),
        data=data,
    )


async def check(session: AsyncSession, event: Event) -> list[Finding]:
    """What the proposed action would violate (block findings first)."""
    if not State.enabled:
        return []
    return await State.engine.precheck(session, event)


async def enforce(session: AsyncSession, event: Event) -> list[Finding]:
    """409 ``supervision_blocked`` when a ``block`` rule fails; otherwise the warnings, for the caller to show."""
    findings = await check(session, event)
    blocks = [f for f in findings if f.rule.severity == Severity.block]
    if blocks:
        first = blocks[0]
        raise Conflict(
            "supervision_blocked",
            f"blocked by the regulator's rule {first.rule.code} ({first.rule.regulation or 'custom'}): "
            f"{first.violation.message}",
            details={
                "rule": first.rule.regulation or first.rule.code,
                "rules": [f.rule.code for f in blocks],
                "findings": [f.as_dict() for f in findings],
            },
        )
    return findings
