"""Webhooks: apps subscribe to event types and get each matching event POSTed to their URL, signed
(docs/openplatform.md, Webhooks).

An event reaches an app only as its FHIR token would: the event's hospital granted the app, the app's scopes
read the event's resource, and, for a patient-facing app (``patient/`` or ``user/`` scopes), the event is about
a patient who consented to the app (a live token). A consumer of the bus turns events into delivery rows after
the event's transaction committed, so a delivery never holds back the change that made it; the sender
(``webhook_sender``) attempts them with backoff for 24 hours, then leaves them on the dead-letter list.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import clock
from carebridge.core.errors import Conflict, InvalidInput, not_found
from carebridge.database.engine import insert_for
from carebridge.events.catalog import CATALOG
from carebridge.events.outbox import Event
from carebridge.openplatform import scopes as smart
from carebridge.openplatform.models import (
    AppKind,
    AppStatus,
    DeliveryStatus,
    HospitalGrant,
    OAuthToken,
    PartnerApp,
    WebhookDelivery,
    WebhookSubscription,
)
from carebridge.openplatform.service import url_problem

CONSUMER = "webhooks"
# an event family -> the FHIR resource whose read scope lets an app see it
RESOURCE_OF = {
    "appointment": "Appointment",
    "queue": "Appointment",
    "waitlist": "Appointment",
    "schedule": "Schedule",
    "pool": "Slot",
    "consultation": "Encounter",
    "call": "Encounter",
    "follow_up": "Encounter",
    "record": "Encounter",
    "prescription": "MedicationRequest",
    "delivery": "MedicationRequest",
}
MAX_SUBSCRIPTIONS = 10
RETRY_FOR = timedelta(hours=24)
FIRST_RETRY_SECONDS = 10
MAX_RETRY_SECONDS = 3600
SIGNATURE_HEADER = "CareBridge-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``: the receiver recomputes it with the secret and
    refuses old timestamps (a replay)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: 10 s, 20 s, 40 s, ... at most an hour."""
    return timedelta(seconds=min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** max(0, attempts - 1)))


def _check_types(event_types: list[str]) -> list[str]:
    for i, pattern in enumerate(event_types):
        if not any(fnmatch.fnmatchcase(t, pattern) for t in CATALOG):
            raise InvalidInput(
                "unknown_event_type",
                f"{pattern!r} matches no event type of the catalog (docs/events.md), e.g. appointment.booked or "
                "appointment.*",
                details={"field": f"event_types.{i}", "value": pattern},
            )
        family = pattern.split(".")[0]
        if family not in RESOURCE_OF and family != "partner_app":
            raise InvalidInput(
                "event_type_not_offered",
                f"{family}.* events are not offered to partner apps",
                details={"field": f"event_types.{i}", "value": pattern},
            )
    return list(dict.fromkeys(event_types))


async def owned_app(session: AsyncSession, principal: Principal, app_id: uuid.UUID) -> PartnerApp:
    app = await session.get(PartnerApp, app_id)
    if app is None or not (principal.role == Role.platform_admin or app.owner_user_id == principal.user_id):
        raise not_found("partner app", app_id)
    return app


async def subscribe(
    session: AsyncSession, *, principal: Principal, app_id: uuid.UUID, event_types: list[str], url: str | None
) -> WebhookSubscription:
    """A new subscription with its secret (the answer shows it this once). The URL defaults to the app's webhook
    URL."""
    principal.require_role(Role.developer)
    app = await owned_app(session, principal, app_id)
    target = url or app.webhook_url
    if not target:
        raise InvalidInput("webhook_url_required", "give a url (the app has no webhook_url)", details={"field": "url"})
    if (why := url_problem(target, what="url")) is not None:
        raise InvalidInput("bad_webhook_url", why, details={"field": "url"})
    types = _check_types(event_types)
    count = len(
        (
            await session.scalars(
                select(WebhookSubscription.id).where(
                    WebhookSubscription.app_id == app.id, WebhookSubscription.active.is_(True)
                )
            )
        ).all()
    )
    if count >= MAX_SUBSCRIPTIONS:
        raise Conflict("too_many_subscriptions", f"an app has at most {MAX_SUBSCRIPTIONS} active subscriptions")
    secret = f"whsec_{secrets.token_urlsafe(32)}"
    row = WebhookSubscription(app_id=app.id, url=target, event_types=types, secret=secret, created_at=clock.now())
    session.add(row)
    await session.flush()
    return row


async def subscriptions(session: AsyncSession, *, principal: Principal, app_id: uuid.UUID) -> list[WebhookSubscription]:
    app = await owned_app(session, principal, app_id)
    query = select(WebhookSubscription).where(WebhookSubscription.app_id == app.id)
    return list((await session.scalars(query.order_by(WebhookSubscription.created_at))).all())


async def unsubscribe(
    session: AsyncSession, *, principal: Principal, app_id: uuid.UUID, subscription_id: uuid.UUID
) -> None:
    app = await owned_app(session, principal, app_id)
    done = await session.execute(
        update(WebhookSubscription)
        .where(
            WebhookSubscription.id == subscription_id,
            WebhookSubscription.app_id == app.id,
            WebhookSubscription.active.is_(True),
        )
        .values(active=False)
    )
    if done.rowcount != 1:
        raise not_found("webhook subscription", subscription_id)


async def deliveries(
    session: AsyncSession, *, principal: Principal, app_id: uuid.UUID, status: DeliveryStatus | None, limit: int
) -> list[WebhookDelivery]:
    """The delivery log, newest first."""
    app = await owned_app(session, principal, app_id)
    query = select(WebhookDelivery).where(WebhookDelivery.app_id == app.id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return list((await session.scalars(query.order_by(WebhookDelivery.created_at.desc()).limit(limit))).all())


async def redeliver(
    session: AsyncSession, *, principal: Principal, app_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Send a delivery again now (a dead letter, or one the app wants again); its 24 hours start over."""
    app = await owned_app(session, principal, app_id)
    now = clock.now()
    done = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.app_id == app.id)
        .values(status=DeliveryStatus.pending, next_attempt_at=now, created_at=now, attempts=0)
        .returning(WebhookDelivery.id)
    )
    if done.scalar() is None:
        raise not_found("webhook delivery", delivery_id)
    row = await session.get(WebhookDelivery, delivery_id)
    assert row is not None
    await session.refresh(row)
    return row


# --- the bus consumer: events -> delivery rows -----------------------------------------------------------


async def _consented_patients(session: AsyncSession, app_ids: set[uuid.UUID]) -> dict[uuid.UUID, set[str]]:
    now = clock.now()
    rows = await session.execute(
        select(OAuthToken.app_id, OAuthToken.patient_id)
        .distinct()
        .where(
            OAuthToken.app_id.in_(app_ids),
            OAuthToken.patient_id.is_not(None),
            OAuthToken.revoked_at.is_(None),
            or_(OAuthToken.access_expires_at > now, OAuthToken.refresh_expires_at > now),
        )
    )
    out: dict[uuid.UUID, set[str]] = {}
    for app_id, patient_id in rows:
        out.setdefault(app_id, set()).add(str(patient_id))
    return out


def _reaches(event: Event, app: PartnerApp, hospitals: set[uuid.UUID], consented: set[str]) -> bool:
    family = event.type.split(".")[0]
    if family == "partner_app":  # the app's own review and grants
        return event.subject_id == str(app.id)
    resource = RESOURCE_OF.get(family)
    if resource is None or event.hospital_id not in hospitals:
        return False
    contexts = smart.permits(list(app.scopes), resource, "r")
    if "system" in contexts and app.kind == AppKind.backend:
        return True
    if not contexts:
        return False
    patient = event.data.get("patient_id")
    return patient is None or str(patient) in consented


async def enqueue(session: AsyncSession, events: list[Event]) -> None:
    """Delivery rows for the events the subscribed apps may see (a batch consumer: the unique
    (subscription, event) pair makes a redelivered batch add nothing)."""
    subs = (
        await session.execute(
            select(WebhookSubscription, PartnerApp)
            .join(PartnerApp, PartnerApp.id == WebhookSubscription.app_id)
            .where(WebhookSubscription.active.is_(True), PartnerApp.status == AppStatus.approved)
        )
    ).all()
    if not subs:
        return
    app_ids = {app.id for _, app in subs}
    grants: dict[uuid.UUID, set[uuid.UUID]] = {}
    for app_id, hospital_id in await session.execute(
        select(HospitalGrant.app_id, HospitalGrant.hospital_id).where(
            HospitalGrant.app_id.in_(app_ids), HospitalGrant.revoked_at.is_(None)
        )
    ):
        grants.setdefault(app_id, set()).add(hospital_id)
    consented = await _consented_patients(session, app_ids)
    now = clock.now()
    rows: list[dict[str, Any]] = []
    for event in events:
        for sub, app in subs:
            if not any(fnmatch.fnmatchcase(event.type, p) for p in sub.event_types):
                continue
            if not _reaches(event, app, grants.get(app.id, set()), consented.get(app.id, set())):
                continue
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "subscription_id": sub.id,
                    "app_id": app.id,
                    "event_id": event.id,
                    "event_type": event.type,
                    "hospital_id": event.hospital_id,
                    "payload": event.as_json(),
                    "status": DeliveryStatus.pending.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
    if rows:
        statement = insert_for(session, WebhookDelivery).on_conflict_do_nothing(
            index_elements=["subscription_id", "event_id"]
        )
        await session.execute(statement, rows)
