"""What the regulator's dashboard reads: indicator series, the region's daily totals, and hospitals ranked by
warnings; and the on-demand computation of a day's indicators. Everything is kept to the caller's region."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.principal import Principal
from carebridge.core import clock
from carebridge.core.errors import InvalidInput
from carebridge.supervision import daily, indicators
from carebridge.supervision.models import (
    CLOSED_CASE_STATUSES,
    Case,
    Indicator,
    IndicatorDay,
    RuleWarning,
    SupervisedHospital,
)
from carebridge.supervision.precheck import State
from carebridge.supervision.service import region_filter, require_supervisor

MAX_DAYS = 366


def _range(since: date | None, until: date | None) -> tuple[date, date]:
    until = until or clock.local_today(State.engine.zone)
    since = since or until - timedelta(days=29)
    if since > until:
        raise InvalidInput("invalid_range", "since is after until", details={"field": "since"})
    if (until - since).days >= MAX_DAYS:
        raise InvalidInput("invalid_range", f"at most {MAX_DAYS} days at a time", details={"field": "since"})
    return since, until


async def series(
    session: AsyncSession,
    *,
    principal: Principal,
    kind: str,
    since: date | None,
    until: date | None,
    hospital_id: uuid.UUID | None,
    subject_id: uuid.UUID | None,
    limit: int,
) -> list[dict[str, Any]]:
    require_supervisor(principal)
    lo, hi = _range(since, until)
    return await indicators.series(
        session,
        kind=kind,
        since=lo,
        until=hi,
        region_clause=region_filter(principal, Indicator.hospital_region),
        hospital_id=hospital_id,
        subject_id=subject_id,
        limit=limit,
    )


async def region_daily(
    session: AsyncSession, *, principal: Principal, since: date | None, until: date | None
) -> list[dict[str, Any]]:
    """Per day, the hospitals of the caller's region summed: a chart's series (every day of the range, zeros
    where nothing was recorded), with when each day was last computed."""
    require_supervisor(principal)
    lo, hi = _range(since, until)
    stmt = (
        select(Indicator.day, *(func.sum(getattr(Indicator, k)) for k in indicators.COUNTS))
        .where(Indicator.subject_kind == "hospital", Indicator.day.between(lo, hi))
        .group_by(Indicator.day)
    )
    clause = region_filter(principal, Indicator.hospital_region)
    if clause is not None:
        stmt = stmt.where(clause)
    sums = {
        row[0]: dict(zip(indicators.COUNTS, (int(v or 0) for v in row[1:]), strict=True))
        for row in await session.execute(stmt)
    }
    computed = {
        d.day: d for d in (await session.scalars(select(IndicatorDay).where(IndicatorDay.day.between(lo, hi)))).all()
    }
    out = []
    day = lo
    while day <= hi:
        marker = computed.get(day)
        counts = sums.get(day, dict.fromkeys(indicators.COUNTS, 0))
        out.append(
            {
                "day": day,
                # a day never computed has no figures (a gap in a chart), not zeros
                "metrics": indicators.with_metrics(counts) if marker else dict.fromkeys(indicators.METRICS),
                "computed_at": marker.computed_at if marker else None,
                "complete": bool(marker and marker.complete),
            }
        )
        day += timedelta(days=1)
    return out


async def ranking(
    session: AsyncSession, *, principal: Principal, since: datetime | None, limit: int
) -> list[dict[str, Any]]:
    """Hospitals of the caller's region ranked by warnings since a moment (default: the last 30 days), with their
    open and overdue cases; hospitals without warnings follow, by name."""
    require_supervisor(principal)
    since = since or clock.now() - timedelta(days=30)
    hospitals_q = select(SupervisedHospital).where(SupervisedHospital.active.is_(True))
    clause = region_filter(principal, SupervisedHospital.region_code)
    if clause is not None:
        hospitals_q = hospitals_q.where(clause)
    hospitals = {h.id: h for h in (await session.scalars(hospitals_q)).all()}
    counts: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: {"block": 0, "warning": 0, "info": 0})
    w_stmt = (
        select(RuleWarning.hospital_id, RuleWarning.severity, func.count())
        .where(RuleWarning.created_at >= since, RuleWarning.hospital_id.is_not(None))
        .group_by(RuleWarning.hospital_id, RuleWarning.severity)
    )
    w_clause = region_filter(principal, RuleWarning.hospital_region)
    if w_clause is not None:
        w_stmt = w_stmt.where(w_clause)
    for hid, severity, n in await session.execute(w_stmt):
        counts[hid][str(severity)] = n
    now = clock.now()
    c_stmt = (
        select(
            Case.hospital_id,
            func.count(),
            func.sum(case((Case.due_at <= now, 1), else_=0)),
        )
        .where(Case.status.not_in(CLOSED_CASE_STATUSES), Case.hospital_id.is_not(None))
        .group_by(Case.hospital_id)
    )
    c_clause = region_filter(principal, Case.hospital_region)
    if c_clause is not None:
        c_stmt = c_stmt.where(c_clause)
    open_cases = {hid: (n, int(overdue or 0)) for hid, n, overdue in await session.execute(c_stmt)}
    rows = []
    for hid, h in hospitals.items():
        c = counts.get(hid, {"block": 0, "warning": 0, "info": 0})
        n_open, n_overdue = open_cases.get(hid, (0, 0))
        rows.append(
            {
                "hospital_id": hid,
                "name": h.name,
                "region_code": h.region_code,
                "level": h.level,
                "warnings": c["block"] + c["warning"] + c["info"],
                "by_severity": c,
                "open_cases": n_open,
                "overdue_cases": n_overdue,
            }
        )
    rows.sort(key=lambda r: (-r["warnings"], -r["by_severity"]["block"], -r["open_cases"], r["name"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows[:limit]


async def compute(session: AsyncSession, *, principal: Principal, day: date) -> dict[str, Any]:
    """Compute (again) a day's indicators now, and check a day that is over for anomalies."""
    require_supervisor(principal)
    if day > clock.local_today(State.engine.zone):
        raise InvalidInput("invalid_day", "that day has not come yet", details={"field": "day"})
    return await daily.run_day(session, State.engine, day)
