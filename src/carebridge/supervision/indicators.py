"""Daily indicators per hospital and per doctor, computed from the trace; anomaly rules read them.

A day is the platform's local day (``default_timezone``). The sweep computes today's figures so far every
``supervision_indicator_refresh_seconds`` and yesterday's once the day is over; only a complete day is checked
for anomalies (a half day would look low). ``compute_day`` can be run again for any day: it replaces that day's
rows and is what the API and ``carebridge supervise indicators`` call for a backfill.

What is counted (docs/supervision.md, "Indicators"):

- consultations: consultations a doctor accepted;
- prescriptions, their amount and the high-value ones (``total_fen`` above ``supervision_high_value_fen``): signed;
- prescriptions checked, and those among them that tried an antibiotic or a special-control drug (attempts:
  blocked ones included);
- records signed (first signature) and those signed later than 24 hours after the consultation (R15);
- records QC-scored and their defects;
- referrals: appointments booked from the ``referral`` pool;
- warnings (by the time of the event that caused them; anomaly warnings left out) and cases opened;
- ratings (count and sum of stars) and complaints.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import clock
from carebridge.database.engine import insert_for
from carebridge.supervision.models import Case, Indicator, IndicatorDay, RuleWarning, SupervisedHospital, TracedEvent

COUNTS = (
    "consultations",
    "prescriptions",
    "prescription_fen",
    "high_value_prescriptions",
    "prescriptions_checked",
    "antibiotic_attempts",
    "special_drug_attempts",
    "records_signed",
    "records_late",
    "qc_records",
    "qc_defects",
    "referrals",
    "warnings",
    "cases_opened",
    "ratings",
    "rating_sum",
    "complaints",
)
# derived metric: (numerator, denominator, factor)
RATIOS: dict[str, tuple[str, str, int]] = {
    "avg_prescription_fen": ("prescription_fen", "prescriptions", 1),
    "high_value_rate": ("high_value_prescriptions", "prescriptions", 1),
    "antibiotic_rate": ("antibiotic_attempts", "prescriptions_checked", 1),
    "special_drug_rate": ("special_drug_attempts", "prescriptions_checked", 1),
    "late_record_rate": ("records_late", "records_signed", 1),
    "qc_defects_per_record": ("qc_defects", "qc_records", 1),
    "warnings_per_100": ("warnings", "consultations", 100),
    "cases_per_100": ("cases_opened", "consultations", 100),
    "avg_rating": ("rating_sum", "ratings", 1),
    "complaints_per_100": ("complaints", "consultations", 100),
}
METRICS = COUNTS + tuple(RATIOS)
LATE_HOURS = 24.0  # R15
EVENT_TYPES = (
    "consultation.accepted",
    "prescription.signed",
    "prescription.checked",
    "record.signed",
    "record.qc_scored",
    "appointment.booked",
    "consultation.rated",
    "complaint.filed",
)
SUBJECT_KINDS = ("hospital", "practitioner")


def value(row: Mapping[str, Any], metric: str) -> float | None:
    """A metric of one indicator row: a count, or a ratio (None when its denominator is 0)."""
    if metric in RATIOS:
        num, den, factor = RATIOS[metric]
        return None if not row[den] else factor * row[num] / row[den]
    return float(row[metric])


def with_metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in COUNTS}
    for metric in RATIOS:
        v = value(row, metric)
        out[metric] = None if v is None else round(v, 4)
    return out


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    start = clock.local_datetime(day, time(0), zone)
    return start, clock.local_datetime(day + timedelta(days=1), time(0), zone)


class _Tally:
    """The counts of one day, per (kind, subject, hospital); distinct sets where an event may repeat."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, uuid.UUID, uuid.UUID], dict[str, int]] = {}
        self.seen: set[tuple[str, str]] = set()

    def add(self, hospital_id: uuid.UUID, practitioner_id: uuid.UUID | None, column: str, n: int = 1) -> None:
        keys = [("hospital", hospital_id, hospital_id)]
        if practitioner_id is not None:
            keys.append(("practitioner", practitioner_id, hospital_id))
        for key in keys:
            row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = dict.fromkeys(COUNTS, 0)
            row[column] += n

    def once(self, column: str, key: Any) -> bool:
        """True the first time (column, key) is seen this day: a prescription checked twice counts once."""
        marker = (column, str(key))
        if marker in self.seen:
            return False
        self.seen.add(marker)
        return True


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _tally_event(t: _Tally, type_: str, hid: uuid.UUID, pid: uuid.UUID | None, data: dict[str, Any], hv: int) -> None:
    if type_ == "consultation.accepted":
        if t.once("consultations", data.get("consultation_id")):
            t.add(hid, pid, "consultations")
    elif type_ == "prescription.signed":
        if t.once("prescriptions", f"{data.get('prescription_id')}:{data.get('revision')}"):
            total = data.get("total_fen") if isinstance(data.get("total_fen"), int) else 0
            t.add(hid, pid, "prescriptions")
            t.add(hid, pid, "prescription_fen", total)
            if total > hv:
                t.add(hid, pid, "high_value_prescriptions")
    elif type_ == "prescription.checked":
        rx = data.get("prescription_id")
        items = [i for i in data.get("items") or [] if isinstance(i, dict)]
        if t.once("prescriptions_checked", rx):
            t.add(hid, pid, "prescriptions_checked")
        if any(i.get("antibiotic_grade") for i in items) and t.once("antibiotic_attempts", rx):
            t.add(hid, pid, "antibiotic_attempts")
        if any(i.get("special_control") for i in items) and t.once("special_drug_attempts", rx):
            t.add(hid, pid, "special_drug_attempts")
    elif type_ == "record.signed":
        if data.get("version") == 1 and t.once("records_signed", data.get("record_id")):
            t.add(hid, pid, "records_signed")
            hours = data.get("hours_after_consultation")
            if isinstance(hours, int | float) and hours > LATE_HOURS:
                t.add(hid, pid, "records_late")
    elif type_ == "record.qc_scored":
        t.add(hid, pid, "qc_records")
        defects = data.get("defect_count")
        t.add(hid, pid, "qc_defects", defects if isinstance(defects, int) else 0)
    elif type_ == "appointment.booked":
        if data.get("channel") == "referral":
            t.add(hid, pid, "referrals")
    elif type_ == "consultation.rated":
        stars = data.get("stars")
        if isinstance(stars, int) and t.once("ratings", data.get("consultation_id")):
            t.add(hid, pid, "ratings")
            t.add(hid, pid, "rating_sum", stars)
    elif type_ == "complaint.filed":
        if t.once("complaints", data.get("complaint_id")):
            t.add(hid, pid, "complaints")


async def compute_day(session: AsyncSession, day: date, *, zone: str, high_value_fen: int, complete: bool) -> int:
    """Replace the day's indicator rows with figures computed from the trace; returns how many rows."""
    lo, hi = day_bounds(day, zone)
    t = _Tally()
    stmt = (
        select(TracedEvent.type, TracedEvent.hospital_id, TracedEvent.practitioner_id, TracedEvent.data)
        .where(
            TracedEvent.occurred_at >= lo,
            TracedEvent.occurred_at < hi,
            TracedEvent.type.in_(EVENT_TYPES),
            TracedEvent.hospital_id.is_not(None),
        )
        .execution_options(yield_per=2000)
    )
    async for type_, hid, pid, data in await session.stream(stmt):
        _tally_event(t, type_, hid, pid or _uuid(data.get("practitioner_id")), data, high_value_fen)
    warnings = await session.execute(
        select(RuleWarning.hospital_id, RuleWarning.practitioner_id, func.count())
        .where(
            RuleWarning.occurred_at >= lo,
            RuleWarning.occurred_at < hi,
            RuleWarning.hospital_id.is_not(None),
            RuleWarning.source != "anomaly",
        )
        .group_by(RuleWarning.hospital_id, RuleWarning.practitioner_id)
    )
    for hid, pid, n in warnings.all():
        t.add(hid, pid, "warnings", n)
    opened = await session.execute(
        select(Case.hospital_id, Case.subject_type, Case.subject_id, func.count())
        .where(Case.opened_at >= lo, Case.opened_at < hi, Case.hospital_id.is_not(None))
        .group_by(Case.hospital_id, Case.subject_type, Case.subject_id)
    )
    for hid, subject_type, subject_id, n in opened.all():
        t.add(hid, _uuid(subject_id) if subject_type == "practitioner" else None, "cases_opened", n)
    hospitals = {
        h.id: h
        for h in (
            await session.scalars(select(SupervisedHospital).where(SupervisedHospital.id.in_({k[2] for k in t.rows})))
        ).all()
    }
    await session.execute(delete(Indicator).where(Indicator.day == day))
    rows = []
    for (kind, subject_id, hid), counts in t.rows.items():
        h = hospitals.get(hid)
        rows.append(
            {
                "day": day,
                "subject_kind": kind,
                "subject_id": subject_id,
                "hospital_id": hid,
                "hospital_region": h.region_code if h else None,
                "hospital_level": h.level if h else None,
                **counts,
            }
        )
    for i in range(0, len(rows), 1000):
        await session.execute(insert_for(session, Indicator), rows[i : i + 1000])
    stmt = insert_for(session, IndicatorDay).values(day=day, complete=complete, computed_at=clock.now(), rows=len(rows))
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["day"],
            set_={"complete": stmt.excluded.complete, "computed_at": stmt.excluded.computed_at, "rows": len(rows)},
        )
    )
    return len(rows)


async def claim_day(session: AsyncSession, day: date, *, stale_before: datetime, complete: bool) -> bool:
    """Take the day for computing: True when it is not done yet (complete) or stale (partial) and no other worker
    took it meanwhile (the conditional update holds the row until this transaction ends)."""
    await session.execute(
        insert_for(session, IndicatorDay)
        .values(day=day, complete=False, computed_at=datetime(2000, 1, 1, tzinfo=clock.now().tzinfo))
        .on_conflict_do_nothing(index_elements=["day"])
    )
    cond = [IndicatorDay.day == day, IndicatorDay.complete.is_(False)]
    if not complete:
        cond.append(IndicatorDay.computed_at < stale_before)
    claimed = await session.scalar(
        update(IndicatorDay).where(*cond).values(computed_at=clock.now()).returning(IndicatorDay.day)
    )
    return claimed is not None


async def series(
    session: AsyncSession,
    *,
    kind: str,
    since: date,
    until: date,
    region_clause: Any | None,
    hospital_id: uuid.UUID | None,
    subject_id: uuid.UUID | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Indicator rows in a day range, oldest first, with the derived metrics."""
    stmt = select(Indicator).where(Indicator.subject_kind == kind, Indicator.day.between(since, until))
    if region_clause is not None:
        stmt = stmt.where(region_clause)
    if hospital_id is not None:
        stmt = stmt.where(Indicator.hospital_id == hospital_id)
    if subject_id is not None:
        stmt = stmt.where(Indicator.subject_id == subject_id)
    rows = (await session.scalars(stmt.order_by(Indicator.day, Indicator.subject_id).limit(limit))).all()
    return [
        {
            "day": r.day,
            "subject_kind": r.subject_kind,
            "subject_id": r.subject_id,
            "hospital_id": r.hospital_id,
            "hospital_region": r.hospital_region,
            "hospital_level": r.hospital_level,
            "metrics": with_metrics({k: getattr(r, k) for k in COUNTS}),
        }
        for r in rows
    ]


def totals(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts summed over rows (e.g. days of a region), with the ratios of the sums."""
    summed: dict[str, int] = defaultdict(int)
    for r in rows:
        for k in COUNTS:
            summed[k] += r["metrics"][k] if "metrics" in r else r[k]
    return with_metrics({k: summed[k] for k in COUNTS})
