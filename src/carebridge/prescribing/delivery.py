"""Drug delivery: an approved prescription's drugs, from the pharmacy to the patient's hands (rule R19).

The patient asks for delivery (address, recipient, hospital pharmacy or a partner pharmacy); the hospital's
pharmacists dispense, ship (carrier and tracking number) and confirm the hand-over with the code the patient
was given, or the patient confirms receipt themself; an order can come back (returned) with a reason.
Dispensing is where R7/R8 bite: it moves the prescription from approved to dispensed in the same conditional
update, so only an approved, unexpired prescription is ever dispensed, and only once.

Payment: ``payment_gate`` is where the billing domain will plug in; until it lands every order passes.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import audit, clock
from carebridge.core.errors import Conflict, Forbidden, InvalidInput, not_found
from carebridge.core.transitions import transition
from carebridge.directory import service as directory
from carebridge.events.outbox import append_event
from carebridge.patients import service as patients
from carebridge.prescribing.models import (
    DeliveryOrder,
    DeliveryStatus,
    PharmacyKind,
    Prescription,
    PrescriptionStatus,
)
from carebridge.prescribing.service import readable as readable_prescription

MAX_LIST = 200


async def payment_gate(session: AsyncSession, order: DeliveryOrder) -> None:
    """Raise 409 ``payment_required`` when the order may not be dispensed yet. The billing issue plugs in here;
    until then orders move on approval (``payment_status`` stays ``not_required``)."""
    if order.payment_status not in ("not_required", "paid"):
        raise Conflict(
            "payment_required", "this order is not paid yet", details={"payment_status": order.payment_status}
        )


def _emit(session: AsyncSession, type_: str, o: DeliveryOrder, actor: str, **extra: Any) -> None:
    append_event(
        session,
        type_,
        subject_type="delivery_order",
        subject_id=o.id,
        hospital_id=o.hospital_id,
        region=o.region,
        actor=actor,
        data={
            "delivery_id": o.id,
            "prescription_id": o.prescription_id,
            "patient_id": o.patient_id,
            "status": o.status.value,
            "pharmacy_kind": o.pharmacy_kind.value,
            "pharmacy_name": o.pharmacy_name,
            **extra,
        },
    )


async def create_order(
    session: AsyncSession,
    *,
    principal: Principal,
    prescription_id: uuid.UUID,
    pharmacy_kind: PharmacyKind,
    pharmacy_name: str | None,
    recipient_name: str,
    recipient_phone: str,
    address: str,
) -> DeliveryOrder:
    """The patient (a linked account) asks for an approved prescription to be delivered. 409
    ``prescription_not_approved`` otherwise; 409 ``delivery_exists`` for a second order."""
    principal.require_role(Role.patient)
    p = await readable_prescription(session, principal=principal, prescription_id=prescription_id)
    if p.status != PrescriptionStatus.approved:
        raise Conflict(
            "prescription_not_approved",
            "only a prescription a pharmacist approved can be delivered",
            details={"status": p.status.value, "rule": "R8"},
        )
    if p.expires_at is not None and p.expires_at <= clock.now():
        raise Conflict("prescription_expired", "this prescription's validity has passed", details={"status": "expired"})
    if await session.scalar(select(DeliveryOrder.id).where(DeliveryOrder.prescription_id == p.id)) is not None:
        raise Conflict("delivery_exists", "this prescription already has a delivery order")
    if pharmacy_kind == PharmacyKind.partner and not pharmacy_name:
        raise InvalidInput("pharmacy_name_required", "name the partner pharmacy", details={"field": "pharmacy_name"})
    if pharmacy_kind == PharmacyKind.hospital:
        hospital = await directory.get_hospital(session, p.hospital_id)
        pharmacy_name = f"{hospital.name} pharmacy"
    order = DeliveryOrder(
        prescription_id=p.id,
        hospital_id=p.hospital_id,
        region=p.region,
        patient_id=p.patient_id,
        status=DeliveryStatus.created,
        pharmacy_kind=pharmacy_kind,
        pharmacy_name=pharmacy_name,
        recipient_name=recipient_name,
        recipient_phone=recipient_phone,
        address=address,
        handover_code=f"{secrets.randbelow(1_000_000):06d}",
        total_fen=p.total_fen,
        created_by_user_id=principal.user_id,
    )
    session.add(order)
    await session.flush()
    _emit(session, "delivery.created", order, principal.actor, total_fen=order.total_fen)
    return order


async def _order(session: AsyncSession, order_id: uuid.UUID) -> DeliveryOrder:
    o = await session.get(DeliveryOrder, order_id)
    if o is None:
        raise not_found("delivery_order", order_id)
    return o


def _require_pharmacist(principal: Principal, o: DeliveryOrder) -> None:
    if principal.role != Role.pharmacist:
        raise Forbidden("role_not_allowed", "only the hospital's pharmacists handle delivery orders")
    if principal.hospital_id != o.hospital_id:
        raise not_found("delivery_order", o.id)


async def _move(session: AsyncSession, row: DeliveryOrder, **change: Any) -> None:
    await transition(session, row, code="bad_delivery_state", noun="order", **change)


async def dispense(session: AsyncSession, *, principal: Principal, order_id: uuid.UUID) -> DeliveryOrder:
    o = await _order(session, order_id)
    _require_pharmacist(principal, o)
    await payment_gate(session, o)
    now = clock.now()
    taken = await session.execute(
        update(Prescription)
        .where(
            Prescription.id == o.prescription_id,
            Prescription.status == PrescriptionStatus.approved,
            Prescription.expires_at > now,
        )
        .values(status=PrescriptionStatus.dispensed, updated_at=now)
    )
    if taken.rowcount != 1:
        p = await session.get(Prescription, o.prescription_id)
        assert p is not None
        await session.refresh(p)
        raise Conflict(
            "prescription_not_dispensable",
            "only an approved prescription within its validity can be dispensed",
            details={"status": p.status.value, "rule": "R8"},
        )
    await _move(
        session, o, allowed=(DeliveryStatus.created,), to=DeliveryStatus.dispensed, values={"dispensed_at": now}
    )
    _emit(session, "delivery.dispensed", o, principal.actor)
    return o


async def ship(
    session: AsyncSession, *, principal: Principal, order_id: uuid.UUID, carrier: str, tracking_number: str
) -> DeliveryOrder:
    o = await _order(session, order_id)
    _require_pharmacist(principal, o)
    values = {"shipped_at": clock.now(), "carrier": carrier, "tracking_number": tracking_number}
    await _move(session, o, allowed=(DeliveryStatus.dispensed,), to=DeliveryStatus.shipped, values=values)
    _emit(session, "delivery.shipped", o, principal.actor, carrier=carrier, tracking_number=tracking_number)
    return o


async def deliver(
    session: AsyncSession, *, principal: Principal, order_id: uuid.UUID, handover_code: str | None
) -> DeliveryOrder:
    """Hand-over: the patient confirms receipt, or a pharmacist (for the courier) enters the patient's code
    (422 ``wrong_handover_code``)."""
    o = await _order(session, order_id)
    if principal.role == Role.patient:
        if await patients.linked_relation(session, user_id=principal.user_id, patient_id=o.patient_id) is None:
            raise not_found("delivery_order", order_id)
        how = "patient_confirmed"
    else:
        _require_pharmacist(principal, o)
        if not handover_code or not secrets.compare_digest(handover_code, o.handover_code):
            raise InvalidInput(
                "wrong_handover_code", "the hand-over code does not match", details={"field": "handover_code"}
            )
        how = "handover_code"
    await _move(
        session, o, allowed=(DeliveryStatus.shipped,), to=DeliveryStatus.delivered, values={"delivered_at": clock.now()}
    )
    _emit(session, "delivery.delivered", o, principal.actor, reason=how)
    return o


async def return_order(
    session: AsyncSession, *, principal: Principal, order_id: uuid.UUID, reason: str
) -> DeliveryOrder:
    o = await _order(session, order_id)
    _require_pharmacist(principal, o)
    values = {"returned_at": clock.now(), "return_reason": reason}
    await _move(
        session,
        o,
        allowed=(DeliveryStatus.dispensed, DeliveryStatus.shipped),
        to=DeliveryStatus.returned,
        values=values,
    )
    _emit(session, "delivery.returned", o, principal.actor, reason=reason)
    return o


async def readable(session: AsyncSession, *, principal: Principal, order_id: uuid.UUID) -> tuple[DeliveryOrder, bool]:
    """The order and whether the caller sees the address unmasked: the patient's accounts and the hospital's
    pharmacists (who ship it) do, audited; the hospital's admins see it masked."""
    o = await _order(session, order_id)
    if principal.role == Role.patient:
        if await patients.linked_relation(session, user_id=principal.user_id, patient_id=o.patient_id) is None:
            raise not_found("delivery_order", order_id)
        unmasked = True
    elif principal.role == Role.pharmacist:
        _require_pharmacist(principal, o)
        unmasked = True
    elif principal.can_manage_hospital(o.hospital_id):
        unmasked = False
    else:
        raise not_found("delivery_order", order_id)
    if unmasked:
        audit.record(
            session,
            action="delivery.address.read",
            subject_type="delivery_order",
            subject_id=o.id,
            actor_user_id=principal.user_id,
            actor_role=principal.role.value,
            hospital_id=o.hospital_id,
        )
    return o, unmasked


async def pharmacy_orders(
    session: AsyncSession, *, principal: Principal, status: DeliveryStatus | None, limit: int = 50
) -> list[DeliveryOrder]:
    principal.require_role(Role.pharmacist)
    query = select(DeliveryOrder).where(DeliveryOrder.hospital_id == principal.hospital_id)
    if status is not None:
        query = query.where(DeliveryOrder.status == status)
    rows = await session.scalars(query.order_by(DeliveryOrder.created_at).limit(min(limit, MAX_LIST)))
    return list(rows)


async def order_ids_for(session: AsyncSession, prescription_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """Prescription id -> its delivery order's id, for those that have one."""
    if not prescription_ids:
        return {}
    rows = await session.execute(
        select(DeliveryOrder.prescription_id, DeliveryOrder.id).where(
            DeliveryOrder.prescription_id.in_(prescription_ids)
        )
    )
    return {prescription_id: order_id for prescription_id, order_id in rows}
