"""Rows written together (``database.engine.rows_together``, the booking desk's writes): on PostgreSQL one
statement for every table (an ``INSERT ... SELECT FROM unnest(...)`` per table), elsewhere an executemany per
table. Either way each row keeps its own
values, gets its own Python-side defaults (ids, times, counters) and its JSON as written."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, cast, inspect, select

from carebridge.core.audit import AuditRecord
from carebridge.database.engine import Database, Viewed, add_row, row_view, rows_together
from carebridge.events.models import OutboxEvent
from carebridge.scheduling.models import Appointment
from tests.factories import add_test_event


def test_rows_written_together_keep_their_own_values_and_defaults(server) -> None:  # type: ignore[no-untyped-def]
    subject = f"rows-{uuid.uuid4().hex[:8]}"
    datas = [{"n": i, "名字": "张小明", "nested": {"list": [1, None, "x"], "ok": i % 2 == 0}} for i in range(5)]

    async def write_and_read() -> tuple[list[OutboxEvent], list[AuditRecord]]:
        db = Database(server.settings)
        try:
            async with db.transaction() as session:
                async with rows_together(session):
                    for i, data in enumerate(datas):  # no id, no attempts: the columns' defaults, row by row
                        add_test_event(session, f"{subject}-{i}", data, type="appointment.booked")
                    add_row(  # a second table, with a single row
                        session, AuditRecord, action="rows.test", subject_type="test", subject_id=subject, detail={}
                    )
            async with db.read() as session:
                events = (
                    await session.scalars(
                        select(OutboxEvent)
                        .where(OutboxEvent.subject_id.startswith(subject))
                        .order_by(OutboxEvent.subject_id)
                    )
                ).all()
                audits = (await session.scalars(select(AuditRecord).where(AuditRecord.subject_id == subject))).all()
                return list(events), list(audits)
        finally:
            await db.dispose()

    events, audits = asyncio.run(write_and_read())
    assert [e.subject_id for e in events] == [f"{subject}-{i}" for i in range(5)]
    assert [e.data for e in events] == datas  # JSON as written, not a string of it
    assert len({e.id for e in events}) == 5  # each row its own id (a default made per row)
    assert all(e.attempts == 0 and e.published_at is None for e in events)
    assert len(audits) == 1 and audits[0].action == "rows.test" and audits[0].id is not None


def test_a_row_view_reads_as_the_row() -> None:
    values = {"id": uuid.uuid4(), "status": "booked", "fee_fen": 500}
    view = row_view(Appointment, values)
    assert (view.id, view.status, view.fee_fen) == (values["id"], "booked", 500)
    assert view.called_at is None and view.queue_number is None  # not given: None, as before a flush
    assert not hasattr(view, "_sa_instance_state")  # a plain object: no ORM attribute events on reads


def test_rows_written_together_store_what_a_flush_stores(server) -> None:  # type: ignore[no-untyped-def]
    """The same values, once through ``rows_together`` and once through the ORM's flush, are the same in the
    database, read raw: an empty JSON value (JSON ``null``, not SQL NULL), an enum's value, a UTC time."""
    subject = f"same-{uuid.uuid4().hex[:8]}"
    when = datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC)

    def values(how: str) -> dict[str, Any]:
        return {"action": "rows.same", "subject_type": how, "subject_id": subject, "detail": None, "occurred_at": when}

    async def write_and_read() -> list[tuple[Any, ...]]:
        db = Database(server.settings)
        try:
            async with db.transaction() as session:
                session.add(AuditRecord(**values("flush")))
            async with db.transaction() as session:
                async with rows_together(session):
                    add_row(session, AuditRecord, **values("together"))
            async with db.read() as session:
                table = AuditRecord.__table__
                rows = await session.execute(
                    select(
                        table.c.subject_type,
                        cast(table.c.detail, Text),
                        table.c.detail.is_(None),
                        table.c.occurred_at,
                    )
                    .where(table.c.subject_id == subject)
                    .order_by(table.c.subject_type)
                )
                return [tuple(row) for row in rows]
        finally:
            await db.dispose()

    flush, together = asyncio.run(write_and_read())
    assert (flush[0], together[0]) == ("flush", "together")
    assert together[1:] == flush[1:] == ("null", False, when)


def test_a_core_select_reads_as_the_orm_row(server) -> None:  # type: ignore[no-untyped-def]
    """``Viewed``: a model's table columns selected in Core and read back as a row view give every column's value as
    the ORM's object does (types processed the same: JSON, times, ids), and a slice of a joined row reads as its
    model's part."""
    subject = f"viewed-{uuid.uuid4().hex[:8]}"
    data = {"n": 1, "名字": "张小明", "nested": [1, None]}

    async def read_both() -> tuple[OutboxEvent, Any, Any]:
        db = Database(server.settings)
        try:
            async with db.transaction() as session:
                add_test_event(session, subject, data, type="appointment.booked")
                session.add(AuditRecord(action="rows.viewed", subject_type="test", subject_id=subject, detail={}))
            async with db.read() as session:
                orm = (await session.scalars(select(OutboxEvent).where(OutboxEvent.subject_id == subject))).one()
                events, audits = Viewed(OutboxEvent), Viewed(AuditRecord)
                events_table, audits_table = OutboxEvent.__table__, AuditRecord.__table__
                row = (
                    await session.execute(
                        select(*events.columns, *audits.columns)
                        .select_from(events_table)
                        .join(audits_table, audits_table.c.subject_id == events_table.c.subject_id)
                        .where(events_table.c.subject_id == subject)
                    )
                ).one()
                n = len(events.columns)
                return orm, events.view(row[:n]), audits.view(row[n:])
        finally:
            await db.dispose()

    orm, event, audit = asyncio.run(read_both())
    names = [attr.key for attr in inspect(OutboxEvent).column_attrs]
    assert {name: getattr(event, name) for name in names} == {name: getattr(orm, name) for name in names}
    assert event.data == data and isinstance(event.id, uuid.UUID) and event.occurred_at.tzinfo is not None
    assert (audit.action, audit.subject_id, audit.detail) == ("rows.viewed", subject, {})
    assert not hasattr(event, "_sa_instance_state")
