"""Per-app rate limits, daily quotas and usage figures (docs/openplatform.md, Limits and usage).

Every request made with a partner app's token passes ``admit``: a token bucket per app in this worker
(``rate`` requests per second, bursts up to twice that) and the app's daily quota (its calls today, across
workers, as of the last flush, plus this worker's since). A refusal is 429 with ``Retry-After``. ``record``
counts each answered request by endpoint (the path with its ids replaced by ``{id}``), status and time taken;
``flush`` adds the counts to ``partner_usage`` every few seconds (an upsert per row, never a write per
request). With several workers the buckets are per worker: N workers let an app through at up to N times its
rate (docs/openplatform.md says how to size it).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import clock
from carebridge.core.errors import TooManyRequests
from carebridge.database.engine import Database, insert_for
from carebridge.openplatform.models import PartnerUsage

_ID = re.compile(r"/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?=/|$)")
MAX_ENDPOINT = 120


def endpoint(method: str, path: str) -> str:
    return f"{method} {_ID.sub('/{id}', path)}"[:MAX_ENDPOINT]


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class _Counts:
    count: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0


def limits(settings: Any, rate_limit_per_second: int | None, daily_quota: int | None) -> tuple[int, int]:
    """An app's rate and daily quota: its own, or the platform's defaults."""
    return (
        rate_limit_per_second or settings.partner_rate_limit_per_second,
        daily_quota or settings.partner_daily_quota,
    )


@dataclass
class Meter:
    """This worker's buckets, unflushed counts and the quota totals read at the last flush."""

    buckets: dict[uuid.UUID, _Bucket] = field(default_factory=dict)
    pending: dict[tuple[uuid.UUID, date, int, str, int], _Counts] = field(default_factory=dict)
    today_flushed: dict[tuple[uuid.UUID, date], int] = field(default_factory=dict)
    today_local: dict[tuple[uuid.UUID, date], int] = field(default_factory=dict)
    # admitted before the flush under way, and not in ``today_flushed`` until its read is back
    today_flushing: dict[tuple[uuid.UUID, date], int] = field(default_factory=dict)

    def used_today(self, key: tuple[uuid.UUID, date]) -> int:
        return self.today_flushed.get(key, 0) + self.today_flushing.get(key, 0) + self.today_local.get(key, 0)

    def admit(self, app_id: uuid.UUID, *, rate: int, daily_quota: int | None) -> None:
        """Let one request through, or 429 ``rate_limited`` / ``quota_exceeded`` with ``Retry-After``."""
        refusal = self.refusal(app_id, rate=rate, daily_quota=daily_quota)
        if refusal is not None:
            raise refusal
        self.charge(app_id)

    def refusal(self, app_id: uuid.UUID, *, rate: int, daily_quota: int | None) -> TooManyRequests | None:
        """Why the app's next request would be refused now (its bucket refilled to this moment), or None;
        nothing is taken."""
        key = (app_id, clock.now().date())
        if daily_quota is not None and self.used_today(key) >= daily_quota:
            seconds = int(86400 - (clock.now().timestamp() % 86400)) + 1  # until midnight UTC
            return TooManyRequests(
                "quota_exceeded",
                f"the app's daily quota of {daily_quota} calls is used up",
                details={"daily_quota": daily_quota, "retry_after": seconds},
                headers={"Retry-After": str(seconds)},
            )
        now = time.monotonic()
        bucket = self.buckets.get(app_id)
        capacity = 2.0 * rate
        if bucket is None:
            bucket = self.buckets[app_id] = _Bucket(tokens=capacity, at=now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / rate
            return TooManyRequests(
                "rate_limited",
                f"the app sends more than {rate} requests per second",
                details={"rate_per_second": rate, "retry_after": round(wait, 3)},
                headers={"Retry-After": str(max(1, int(wait + 0.999)))},
            )
        return None

    def charge(self, app_id: uuid.UUID) -> None:
        """Take one request from the app's bucket (after ``refusal`` found room) and count it for the quota."""
        bucket = self.buckets.get(app_id)
        if bucket is not None:
            bucket.tokens -= 1.0
        key = (app_id, clock.now().date())
        self.today_local[key] = self.today_local.get(key, 0) + 1

    def record(self, app_id: uuid.UUID, method: str, path: str, status: int, ms: float) -> None:
        now = clock.now()
        key = (app_id, now.date(), now.hour, endpoint(method, path), status)
        counts = self.pending.setdefault(key, _Counts())
        counts.count += 1
        counts.total_ms += ms
        counts.max_ms = max(counts.max_ms, ms)

    async def flush(self, db: Database) -> dict[str, int]:
        pending, self.pending = self.pending, {}
        # what this worker admitted so far is in the rows written now (less any still in flight); until the
        # totals are read back it still counts against the quota
        self.today_flushing, self.today_local = self.today_local, {}
        try:
            if pending:
                async with db.transaction() as session:
                    await _add(session, pending)
            async with db.read() as session:
                today = clock.now().date()
                rows = await session.execute(
                    select(PartnerUsage.app_id, func.sum(PartnerUsage.count))
                    .where(PartnerUsage.day == today)
                    .group_by(PartnerUsage.app_id)
                )
                self.today_flushed = {(app_id, today): int(n or 0) for app_id, n in rows}
        finally:
            self.today_flushing = {}
        return {"usage_rows": len(pending)}


async def _add(session: AsyncSession, pending: dict[tuple[uuid.UUID, date, int, str, int], _Counts]) -> None:
    table = PartnerUsage.__table__
    statement = insert_for(session, PartnerUsage)
    biggest = func.greatest if session.bind.dialect.name == "postgresql" else func.max
    statement = statement.on_conflict_do_update(
        index_elements=["app_id", "day", "hour", "endpoint", "status"],
        set_={
            "count": table.c.count + statement.excluded.count,
            "total_ms": table.c.total_ms + statement.excluded.total_ms,
            "max_ms": biggest(table.c.max_ms, statement.excluded.max_ms),
        },
    )
    rows: list[dict[str, Any]] = [
        {
            "id": uuid.uuid4(),
            "app_id": k[0],
            "day": k[1],
            "hour": k[2],
            "endpoint": k[3],
            "status": k[4],
            "count": c.count,
            "total_ms": round(c.total_ms, 1),
            "max_ms": round(c.max_ms, 1),
        }
        for k, c in pending.items()
    ]
    for row in rows:  # one statement per row: an ON CONFLICT batch may not touch one row twice
        await session.execute(statement, row)


METER = Meter()


class UsageMiddleware:
    """Records every answered request made with a partner app's token (the FHIR API's ``caller`` puts the
    token's access in ``request.state.partner``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        status = 500
        start = time.perf_counter()

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            partner = state.get("partner")
            if partner is not None:
                METER.record(
                    partner.app_id, scope["method"], scope["path"], status, (time.perf_counter() - start) * 1000
                )


async def usage(session: AsyncSession, *, app_id: uuid.UUID, since: date) -> list[PartnerUsage]:
    query = (
        select(PartnerUsage)
        .where(PartnerUsage.app_id == app_id, PartnerUsage.day >= since)
        .order_by(PartnerUsage.day.desc(), PartnerUsage.hour.desc(), PartnerUsage.endpoint, PartnerUsage.status)
    )
    return list((await session.scalars(query)).all())


# --- alerts: what the app's developer and the platform admins should look at --------------------------------

ALERT_MIN_CALLS = 20
ALERT_ERROR_SHARE = 0.25


async def alerts(session: AsyncSession, *, app_ids: list[uuid.UUID] | None) -> list[dict[str, Any]]:
    """Open alerts: an error-rate spike (at least a quarter of at least 20 calls answered 4xx/5xx in this hour
    and the last), webhook deliveries dead in the last 24 hours, and deliveries still failing after 3 attempts.
    ``app_ids`` None: every app."""
    from carebridge.openplatform.models import DeliveryStatus, PartnerApp, WebhookDelivery

    now = clock.now()
    hours = [(now.date(), now.hour), ((now - timedelta(hours=1)).date(), (now - timedelta(hours=1)).hour)]
    scope = [] if app_ids is None else [PartnerUsage.app_id.in_(app_ids)]
    calls: dict[uuid.UUID, list[int]] = {}
    for day, hour in hours:
        rows = await session.execute(
            select(PartnerUsage.app_id, PartnerUsage.status, func.sum(PartnerUsage.count))
            .where(PartnerUsage.day == day, PartnerUsage.hour == hour, *scope)
            .group_by(PartnerUsage.app_id, PartnerUsage.status)
        )
        for app_id, status, n in rows:
            total_errors = calls.setdefault(app_id, [0, 0, 0])
            total_errors[0] += int(n)
            if status >= 400:
                total_errors[1] += int(n)
            if status >= 500:
                total_errors[2] += int(n)
    out: list[dict[str, Any]] = []
    for app_id, (total, errors, server_errors) in calls.items():
        if total >= ALERT_MIN_CALLS and errors / total >= ALERT_ERROR_SHARE:
            out.append(
                {
                    "app_id": app_id,
                    "kind": "error_rate",
                    "level": "critical" if server_errors else "warning",
                    "message": f"{errors} of {total} calls in the last two hours were answered with an error",
                    "details": {"calls": total, "errors": errors, "server_errors": server_errors},
                }
            )
    delivery_scope = [] if app_ids is None else [WebhookDelivery.app_id.in_(app_ids)]
    rows = await session.execute(
        select(WebhookDelivery.app_id, WebhookDelivery.status, func.count())
        .where(
            *delivery_scope,
            WebhookDelivery.created_at >= now - timedelta(hours=48),
            (WebhookDelivery.status == DeliveryStatus.dead)
            | ((WebhookDelivery.status == DeliveryStatus.pending) & (WebhookDelivery.attempts >= 3)),
        )
        .group_by(WebhookDelivery.app_id, WebhookDelivery.status)
    )
    for app_id, status, n in rows:
        dead = status == DeliveryStatus.dead
        out.append(
            {
                "app_id": app_id,
                "kind": "webhook_dead" if dead else "webhook_failing",
                "level": "critical" if dead else "warning",
                "message": f"{n} webhook deliveries "
                + ("gave up after 24 hours" if dead else "failed 3 times or more"),
                "details": {"deliveries": int(n)},
            }
        )
    if out:
        names = dict(
            (
                await session.execute(
                    select(PartnerApp.id, PartnerApp.client_id).where(PartnerApp.id.in_({a["app_id"] for a in out}))
                )
            ).all()
        )
        for alert in out:
            alert["client_id"] = names.get(alert["app_id"])
    return out
