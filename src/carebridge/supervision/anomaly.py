"""Anomaly rules: a day's indicator far from what is usual, as a robust z-score, raised as a warning like any rule.

Two rule types, instances of which regulators edit like any other rule (metric, threshold, window, scope,
severity):

- ``anomaly_own_history``: a doctor's figure for the day against their own previous days (the days they
  worked within ``window_days``; at least ``min_days`` of them);
- ``anomaly_peer_hospitals``: a hospital's figure for the day against the other hospitals of the same level
  that day (at least ``min_peers``).

The robust z-score is 0.6745 · (x − median) / MAD (Iglewicz and Hoaglin); when more than half the sample is
identical (MAD 0) the mean absolute deviation stands in (× 1.2533); when every value is identical, any
difference counts as ``MAX_Z``. Small numbers are kept out twice: ``min_base`` (the count itself, or a rate's
denominator, such as the prescriptions checked for the antibiotic rate, must reach it) and ``min_change`` (the
value must also differ from the median by at least that fraction of it: 3 antibiotic prescriptions in 20 where
peers have 2 is not an anomaly, however tight the peers are).
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import clock
from carebridge.core.ids import new_id
from carebridge.events.outbox import Event
from carebridge.supervision import indicators
from carebridge.supervision.indicators import METRICS, RATIOS, value
from carebridge.supervision.models import Indicator
from carebridge.supervision.rule_types import Params, RuleType, Violation, register

if TYPE_CHECKING:
    from carebridge.supervision.catalog import CompiledRule
    from carebridge.supervision.engine import EvalContext

MAX_Z = 99.0
Metric = Literal[METRICS]  # type: ignore[valid-type]


def robust_z(x: float, sample: list[float]) -> float:
    m = statistics.median(sample)
    deviations = [abs(s - m) for s in sample]
    mad = statistics.median(deviations)
    if mad > 0:
        z = 0.6745 * (x - m) / mad
    else:
        mean_ad = statistics.fmean(deviations)
        z = (x - m) / (1.2533 * mean_ad) if mean_ad > 0 else (0.0 if x == m else math.copysign(MAX_Z, x - m))
    return max(-MAX_Z, min(MAX_Z, z))


def base(row: dict[str, Any], metric: str) -> float:
    return float(row[RATIOS[metric][1]] if metric in RATIOS else row[metric])


def tripped(x: float, median: float, z: float, p: OwnHistoryParams | PeerParams) -> bool:
    """Far out (|z| over the threshold) in the rule's direction, and by at least ``min_change`` of the median."""
    high = p.direction != "low" and z >= p.z and x >= median * (1 + p.min_change)
    low = p.direction != "high" and z <= -p.z and x <= median * (1 - p.min_change)
    return high or low


@dataclass(slots=True)
class Anomaly:
    subject_kind: str
    subject_id: uuid.UUID
    hospital_id: uuid.UUID
    hospital_region: str | None
    violation: Violation


class OwnHistoryParams(Params):
    metric: Metric = "prescriptions"
    z: float = Field(default=3.5, gt=0, le=50)
    window_days: int = Field(default=28, ge=7, le=365)
    min_days: int = Field(default=7, ge=3, le=365)
    min_base: int = Field(default=20, ge=0)
    min_change: float = Field(default=0.5, ge=0, le=10)
    direction: Literal["high", "low", "both"] = "high"


class PeerParams(Params):
    metric: Metric = "antibiotic_rate"
    z: float = Field(default=3.5, gt=0, le=50)
    min_peers: int = Field(default=5, ge=3, le=1000)
    min_base: int = Field(default=20, ge=0)
    min_change: float = Field(default=0.5, ge=0, le=10)
    direction: Literal["high", "low", "both"] = "high"


class AnomalyType(RuleType):
    """Reads indicators, not events: ``detect`` runs once a day is complete."""

    events: ClassVar[frozenset[str]] = frozenset()
    precheck: ClassVar[bool] = False
    regulation: ClassVar[str | None] = None

    def evaluate(self, params: Any, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        return ()

    async def detect(self, session: AsyncSession, rule: CompiledRule, day: date) -> list[Anomaly]:
        raise NotImplementedError


def _rows(result: Iterable[Indicator]) -> list[dict[str, Any]]:
    return [
        {
            "day": r.day,
            "subject_id": r.subject_id,
            "hospital_id": r.hospital_id,
            "hospital_region": r.hospital_region,
            "hospital_level": r.hospital_level,
            **{k: getattr(r, k) for k in indicators.COUNTS},
        }
        for r in result
    ]


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


@register
class OwnHistory(AnomalyType):
    name = "anomaly_own_history"
    title = "A doctor's day far from their own usual days"
    params = OwnHistoryParams
    group_by = "practitioner"

    async def detect(self, session: AsyncSession, rule: CompiledRule, day: date) -> list[Anomaly]:
        p: OwnHistoryParams = rule.params
        rows = _rows(
            (
                await session.scalars(
                    select(Indicator).where(
                        Indicator.subject_kind == "practitioner",
                        Indicator.day.between(day - timedelta(days=p.window_days), day),
                    )
                )
            ).all()
        )
        history: dict[tuple[uuid.UUID, uuid.UUID], list[float]] = defaultdict(list)
        today = []
        for r in rows:
            if r["day"] == day:
                today.append(r)
                continue
            v = value(r, p.metric)
            if v is not None:
                history[(r["subject_id"], r["hospital_id"])].append(v)
        found = []
        for r in today:
            x = value(r, p.metric)
            past = history.get((r["subject_id"], r["hospital_id"]), [])
            if x is None or len(past) < p.min_days or base(r, p.metric) < p.min_base:
                continue
            if not rule.in_scope(r["hospital_id"], r["hospital_region"]):
                continue
            z, median = robust_z(x, past), statistics.median(past)
            if not tripped(x, median, z, p):
                continue
            message = (
                f"{p.metric} on {day}: {_fmt(x)}, against this doctor's median {_fmt(median)} over "
                f"{len(past)} days (robust z {z:+.1f}, threshold {p.z})"
            )
            details = {
                "day": day.isoformat(),
                "metric": p.metric,
                "value": round(x, 4),
                "median": round(median, 4),
                "z": round(z, 2),
                "threshold": p.z,
                "compared_with": "own_history",
                "sample_size": len(past),
            }
            found.append(
                Anomaly(
                    "practitioner", r["subject_id"], r["hospital_id"], r["hospital_region"], Violation(message, details)
                )
            )
        return found


@register
class PeerHospitals(AnomalyType):
    name = "anomaly_peer_hospitals"
    title = "A hospital's day far from the other hospitals of its level"
    params = PeerParams
    group_by = "hospital"

    async def detect(self, session: AsyncSession, rule: CompiledRule, day: date) -> list[Anomaly]:
        p: PeerParams = rule.params
        rows = _rows(
            (
                await session.scalars(
                    select(Indicator).where(Indicator.subject_kind == "hospital", Indicator.day == day)
                )
            ).all()
        )
        by_level: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if value(r, p.metric) is not None and base(r, p.metric) >= p.min_base:
                by_level[r["hospital_level"]].append(r)
        found = []
        for level, members in by_level.items():
            if level is None or len(members) <= p.min_peers:
                continue
            for r in members:
                if not rule.in_scope(r["hospital_id"], r["hospital_region"]):
                    continue
                x = value(r, p.metric)
                peers = [v for o in members if o is not r and (v := value(o, p.metric)) is not None]
                if x is None:
                    continue
                z, median = robust_z(x, peers), statistics.median(peers)
                if not tripped(x, median, z, p):
                    continue
                message = (
                    f"{p.metric} on {day}: {_fmt(x)}, against the median {_fmt(median)} of {len(peers)} other "
                    f"{level} hospitals (robust z {z:+.1f}, threshold {p.z})"
                )
                details = {
                    "day": day.isoformat(),
                    "metric": p.metric,
                    "value": round(x, 4),
                    "median": round(median, 4),
                    "z": round(z, 2),
                    "threshold": p.z,
                    "compared_with": f"peer_hospitals:{level}",
                    "sample_size": len(peers),
                }
                found.append(
                    Anomaly(
                        "hospital",
                        r["hospital_id"],
                        r["hospital_id"],
                        r["hospital_region"],
                        Violation(message, details),
                    )
                )
        return found


def warning_row(rule: CompiledRule, a: Anomaly, day: date, zone: str) -> dict[str, Any]:
    """The anomaly as the engine's warning row (``Engine.raise_warnings`` opens or joins its case)."""
    at = indicators.day_bounds(day, zone)[1]
    subject = (a.subject_kind, str(a.subject_id))
    return {
        "id": new_id(),
        "rule_id": rule.id,
        "rule_code": rule.code,
        "regulation": rule.regulation,
        "severity": rule.severity,
        "message": a.violation.message[:500],
        "subject_type": subject[0],
        "subject_id": subject[1],
        "hospital_id": a.hospital_id,
        "hospital_region": a.hospital_region,
        "practitioner_id": a.subject_id if a.subject_kind == "practitioner" else None,
        "patient_id": None,
        "evidence": [],
        "details": a.violation.details,
        "source": "anomaly",
        "occurred_at": at,
        "created_at": clock.now(),
        "case_id": None,
        "dedup_key": f"{rule.id}:anomaly:{subject[1]}:{day.isoformat()}",
        "_group": f"{subject[0]}:{subject[1]}",
        "_rule_name": rule.name,
    }
