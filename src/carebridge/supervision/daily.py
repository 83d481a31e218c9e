"""The daily work over indicators: compute a day from the trace, and once the day is over, run the anomaly
rules on it. The sweep calls ``step``; ``run_day`` is also what the API and the CLI call for a given day."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import clock
from carebridge.database.engine import Database
from carebridge.supervision import indicators
from carebridge.supervision.anomaly import AnomalyType, warning_row
from carebridge.supervision.catalog import ruleset
from carebridge.supervision.engine import Engine
from carebridge.supervision.models import IndicatorDay, RuleWarning


class Options:
    """Set from the settings at start-up (``configure``)."""

    high_value_fen = 50_000
    refresh_seconds = 300.0


def configure(*, high_value_fen: int, refresh_seconds: float) -> None:
    Options.high_value_fen = high_value_fen
    Options.refresh_seconds = refresh_seconds


async def detect(session: AsyncSession, engine: Engine, day: date) -> list[dict[str, Any]]:
    """Anomaly warnings for a complete day (each rule, subject and day at most once, however often it runs)."""
    rows = []
    for rule in (await ruleset(session)).rules:
        if isinstance(rule.type, AnomalyType):
            rows.extend(warning_row(rule, a, day, engine.zone) for a in await rule.type.detect(session, rule, day))
    if not rows:
        return []
    known = set(
        (
            await session.scalars(
                select(RuleWarning.dedup_key).where(RuleWarning.dedup_key.in_([r["dedup_key"] for r in rows]))
            )
        ).all()
    )
    return await engine.raise_warnings(session, [r for r in rows if r["dedup_key"] not in known])


async def run_day(session: AsyncSession, engine: Engine, day: date) -> dict[str, Any]:
    """Compute the day's indicators; for a day that is over, also check it for anomalies."""
    complete = day < clock.local_today(engine.zone)
    rows = await indicators.compute_day(
        session, day, zone=engine.zone, high_value_fen=Options.high_value_fen, complete=complete
    )
    raised = await detect(session, engine, day) if complete else []
    if raised:
        await session.execute(
            IndicatorDay.__table__.update()
            .where(IndicatorDay.day == day)
            .values(anomalies=IndicatorDay.anomalies + len(raised))
        )
    return {"day": day, "complete": complete, "rows": rows, "anomalies": len(raised)}


async def step(db: Database, engine: Engine) -> dict[str, int]:
    """Yesterday once it is over (with its anomalies), today's figures so far when they are older than
    ``refresh_seconds``. A day another worker has just taken is left to it."""
    today = clock.local_today(engine.zone)
    done = {"supervision_indicator_rows": 0, "supervision_anomalies": 0}
    for day, complete in ((today - timedelta(days=1), True), (today, False)):
        async with db.transaction() as session:
            stale = clock.now() - timedelta(seconds=Options.refresh_seconds)
            if not await indicators.claim_day(session, day, stale_before=stale, complete=complete):
                continue
            result = await run_day(session, engine, day)
        done["supervision_indicator_rows"] += result["rows"]
        done["supervision_anomalies"] += result["anomalies"]
    return done
