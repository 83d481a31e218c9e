"""Appending events: in the caller's transaction, validated against the catalog."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import clock
from carebridge.core.ids import new_id
from carebridge.database.engine import add_row, on_commit
from carebridge.events.catalog import CATALOG, CATALOG_VERSION
from carebridge.events.models import OutboxEvent

# Set by the relay when it starts, so a commit wakes it at once instead of at its next poll.
_wake: Callable[[], None] | None = None


def set_wake(fn: Callable[[], None] | None) -> None:
    global _wake
    _wake = fn


@dataclass(frozen=True, slots=True)
class Event:
    id: uuid.UUID
    type: str
    occurred_at: datetime
    hospital_id: uuid.UUID | None
    region: str | None
    actor: str | None
    subject_type: str
    subject_id: str
    data: dict[str, Any]
    catalog_version: str = CATALOG_VERSION

    @classmethod
    def from_row(cls, row: OutboxEvent) -> Event:
        return cls(
            id=row.id,
            type=row.type,
            occurred_at=row.occurred_at,
            hospital_id=row.hospital_id,
            region=row.region,
            actor=row.actor,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            data=row.data,
            catalog_version=row.catalog_version,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "catalog_version": self.catalog_version,
            "occurred_at": self.occurred_at.isoformat(),
            "hospital_id": str(self.hospital_id) if self.hospital_id else None,
            "region": self.region,
            "actor": self.actor,
            "subject": {"type": self.subject_type, "id": self.subject_id},
            "data": self.data,
        }


def event_data(type: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` validated against the catalog and in its JSON form (ids and times as strings)."""
    schema = CATALOG[type]  # KeyError is a programming error: every type is in the catalog
    return schema.model_validate(data).model_dump(mode="json")


def append_event(
    session: AsyncSession,
    type: str,
    *,
    subject_type: str,
    subject_id: uuid.UUID | str,
    data: dict[str, Any],
    hospital_id: uuid.UUID | None = None,
    region: str | None = None,
    actor: str | None = None,
) -> None:
    """Add an event to the outbox in the session's transaction; it is published only if that commits."""
    payload = event_data(type, data)
    add_row(
        session,
        OutboxEvent,
        id=new_id(),
        type=type,
        catalog_version=CATALOG_VERSION,
        occurred_at=clock.now(),
        hospital_id=hospital_id,
        region=region,
        actor=actor,
        subject_type=subject_type,
        subject_id=str(subject_id),
        data=payload,
    )
    if _wake is not None and not session.info.get("_outbox_wake"):
        session.info["_outbox_wake"] = True
        on_commit(session, _wake)
