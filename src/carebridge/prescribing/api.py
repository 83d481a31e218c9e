"""Prescribing endpoints: formulary, knowledge, prescriptions, pharmacist review, delivery orders."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.dependencies import current_principal, get_db
from carebridge.auth.principal import Principal
from carebridge.core.errors import InvalidInput
from carebridge.database.engine import Database
from carebridge.patients.identity import mask_name, mask_phone
from carebridge.prescribing import delivery, formulary, knowledge, service
from carebridge.prescribing.models import DeliveryOrder, DeliveryStatus, Prescription
from carebridge.prescribing.schemas import (
    CheckOut,
    DeliverIn,
    DeliveryIn,
    DeliveryOut,
    DrugChangeIn,
    DrugOut,
    DrugPage,
    ImportReportOut,
    ItemOut,
    PrescriptionIn,
    PrescriptionOut,
    RejectIn,
    ReviewIn,
    ShipIn,
    SignPrescriptionIn,
)

router = APIRouter(prefix="/api/v1", tags=["prescribing"])
FORMULARY_IMPORT_PATH = re.compile(r"^/api/v1/hospitals/[^/]+/formulary/import$")


# --- formulary and knowledge -------------------------------------------------------------------------------


@router.get("/hospitals/{hospital_id}/formulary", response_model=DrugPage, summary="Search a hospital's formulary")
async def search_formulary(
    hospital_id: uuid.UUID,
    q: str | None = Query(None, max_length=60),
    include_inactive: bool = False,
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> DrugPage:
    async with db.read() as session:
        rows, total = await formulary.search(
            session,
            principal=principal,
            hospital_id=hospital_id,
            q=q,
            include_inactive=include_inactive,
            limit=limit,
            offset=offset,
        )
        return DrugPage(items=[DrugOut.model_validate(d) for d in rows], total=total)


@router.post("/hospitals/{hospital_id}/formulary", response_model=DrugOut, status_code=201, summary="Add one drug")
async def add_drug(
    hospital_id: uuid.UUID,
    body: formulary.DrugFields,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> DrugOut:
    async with db.transaction() as session:
        return DrugOut.model_validate(
            await formulary.add_drug(session, principal=principal, hospital_id=hospital_id, fields=body)
        )


@router.patch("/formulary/{drug_id}", response_model=DrugOut, summary="Change a drug (price, doses, flags, active)")
async def change_drug(
    drug_id: uuid.UUID,
    body: DrugChangeIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> DrugOut:
    async with db.transaction() as session:
        drug = await formulary.change_drug(
            session, principal=principal, drug_id=drug_id, changes=body.model_dump(exclude_unset=True)
        )
        return DrugOut.model_validate(drug)


@router.post(
    "/hospitals/{hospital_id}/formulary/import",
    response_model=ImportReportOut,
    summary="Import the formulary from CSV (text/csv body; all or nothing, errors line by line; ?dry_run=true)",
)
async def import_formulary(
    hospital_id: uuid.UUID,
    request: Request,
    dry_run: bool = False,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> ImportReportOut:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("text/csv", "text/plain"):
        raise InvalidInput("unsupported_media_type", "send the CSV as the body with Content-Type: text/csv")
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("not_utf8", "the CSV must be UTF-8 encoded") from None
    async with db.transaction() as session:
        report = await formulary.import_csv(
            session, principal=principal, hospital_id=hospital_id, text=text, dry_run=dry_run
        )
        return ImportReportOut(**report.as_dict(), dry_run=dry_run)


@router.get("/medication-knowledge", summary="What the prescription checks know: sources and counts")
async def knowledge_summary(principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    return knowledge.current().summary()


# --- prescriptions -----------------------------------------------------------------------------------------


def _items(body: PrescriptionIn) -> list[service.ItemInput]:
    return [service.ItemInput(i.drug_id, i.dose, i.frequency, i.route, i.days, i.quantity) for i in body.items]


def _check_out(findings: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "findings": findings,
        "can_sign": not any(f["level"] == "block" for f in findings),
        "overrides_needed": [f["key"] for f in findings if f["level"] == "warning"],
    }


async def _prescriptions_out(session: AsyncSession, rows: list[Prescription]) -> list[PrescriptionOut]:
    """Prescriptions with their items and delivery order: two queries for the whole list, not two per row."""
    ids = [p.id for p in rows]
    items = await service.items_by_prescription(session, ids)
    orders = await delivery.order_ids_for(session, ids)
    return [
        PrescriptionOut.model_validate(
            {
                **{k: getattr(p, k) for k in PrescriptionOut.model_fields if hasattr(p, k) and k != "items"},
                "items": [ItemOut.model_validate(i) for i in items.get(p.id, [])],
                **_check_out(p.findings),
                "integrity": service.integrity(p, items.get(p.id, [])),
                "delivery_id": orders.get(p.id),
            }
        )
        for p in rows
    ]


async def _prescription_out(session: AsyncSession, p: Prescription) -> PrescriptionOut:
    return (await _prescriptions_out(session, [p]))[0]


@router.post(
    "/consultations/{consultation_id}/prescriptions/check",
    response_model=CheckOut,
    summary="Check a prescription being written (nothing saved): the form's live results",
)
async def check_prescription(
    consultation_id: uuid.UUID,
    body: PrescriptionIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> CheckOut:
    async with db.read() as session:
        findings = await service.check_only(
            session, principal=principal, consultation_id=consultation_id, diagnoses=body.diagnoses, items=_items(body)
        )
        return CheckOut.model_validate(_check_out(findings))


@router.post(
    "/consultations/{consultation_id}/prescriptions",
    response_model=PrescriptionOut,
    status_code=201,
    summary="Save a prescription draft (the consulting doctor); its check results come back with it",
)
async def write_prescription(
    consultation_id: uuid.UUID,
    body: PrescriptionIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> PrescriptionOut:
    async with db.transaction() as session:
        p = await service.write(
            session, principal=principal, consultation_id=consultation_id, diagnoses=body.diagnoses, items=_items(body)
        )
        return await _prescription_out(session, p)


@router.get("/consultations/{consultation_id}/prescriptions", response_model=list[PrescriptionOut])
async def consultation_prescriptions(
    consultation_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[PrescriptionOut]:
    async with db.read() as session:
        rows = await service.for_consultation(session, principal=principal, consultation_id=consultation_id)
        return await _prescriptions_out(session, rows)


@router.get("/patients/{patient_id}/prescriptions", response_model=list[PrescriptionOut])
async def patient_prescriptions(
    patient_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[PrescriptionOut]:
    async with db.read() as session:
        rows = await service.for_patient(session, principal=principal, patient_id=patient_id)
        return await _prescriptions_out(session, rows)


@router.get("/prescriptions/{prescription_id}", response_model=PrescriptionOut)
async def get_prescription(
    prescription_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> PrescriptionOut:
    async with db.read() as session:
        p = await service.readable(session, principal=principal, prescription_id=prescription_id)
        return await _prescription_out(session, p)


@router.put(
    "/prescriptions/{prescription_id}",
    response_model=PrescriptionOut,
    summary="Revise a draft, or a prescription a pharmacist rejected (it becomes a draft, next revision)",
)
async def revise_prescription(
    prescription_id: uuid.UUID,
    body: PrescriptionIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> PrescriptionOut:
    async with db.transaction() as session:
        p = await service.write(
            session,
            principal=principal,
            prescription_id=prescription_id,
            diagnoses=body.diagnoses,
            items=_items(body),
        )
        return await _prescription_out(session, p)


@router.post(
    "/prescriptions/{prescription_id}/sign",
    response_model=PrescriptionOut,
    summary="Sign with your password: checks run again; blocks stop it, each warning needs an override reason",
)
async def sign_prescription(
    prescription_id: uuid.UUID,
    body: SignPrescriptionIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> PrescriptionOut:
    async with db.transaction() as session:
        p = await service.sign(
            session,
            principal=principal,
            prescription_id=prescription_id,
            password=body.password,
            overrides=body.overrides,
        )
        return await _prescription_out(session, p)


@router.post("/prescriptions/{prescription_id}/cancel", response_model=PrescriptionOut)
async def cancel_prescription(
    prescription_id: uuid.UUID,
    body: RejectIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> PrescriptionOut:
    async with db.transaction() as session:
        p = await service.cancel(session, principal=principal, prescription_id=prescription_id, reason=body.reason)
        return await _prescription_out(session, p)


@router.get(
    "/pharmacy/review-queue",
    response_model=list[PrescriptionOut],
    summary="Prescriptions waiting for review at the pharmacist's hospital, oldest first",
)
async def review_queue(
    limit: int = Query(50, ge=1, le=200),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> list[PrescriptionOut]:
    async with db.read() as session:
        return await _prescriptions_out(session, await service.review_queue(session, principal=principal, limit=limit))


@router.post(
    "/prescriptions/{prescription_id}/approve", response_model=PrescriptionOut, summary="A pharmacist approves"
)
async def approve_prescription(
    prescription_id: uuid.UUID,
    body: ReviewIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> PrescriptionOut:
    async with db.transaction() as session:
        p = await service.approve(session, principal=principal, prescription_id=prescription_id, note=body.note)
        return await _prescription_out(session, p)


@router.post(
    "/prescriptions/{prescription_id}/reject", response_model=PrescriptionOut, summary="A pharmacist sends it back"
)
async def reject_prescription(
    prescription_id: uuid.UUID,
    body: RejectIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> PrescriptionOut:
    async with db.transaction() as session:
        p = await service.reject(session, principal=principal, prescription_id=prescription_id, reason=body.reason)
        return await _prescription_out(session, p)


# --- delivery ----------------------------------------------------------------------------------------------


def _mask_address(address: str) -> str:
    return address[:6] + "****" if len(address) > 6 else "****"


def delivery_out(o: DeliveryOrder, *, unmasked: bool, patient: bool) -> DeliveryOut:
    values = {k: getattr(o, k) for k in DeliveryOut.model_fields if hasattr(o, k)}
    values["masked"] = not unmasked
    values["handover_code"] = o.handover_code if patient else None
    if not unmasked:
        values["recipient_name"] = mask_name(o.recipient_name)
        values["recipient_phone"] = mask_phone(o.recipient_phone)
        values["address"] = _mask_address(o.address)
    return DeliveryOut.model_validate(values)


@router.post(
    "/prescriptions/{prescription_id}/delivery",
    response_model=DeliveryOut,
    status_code=201,
    summary="The patient asks for an approved prescription to be delivered",
)
async def create_delivery(
    prescription_id: uuid.UUID,
    body: DeliveryIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> DeliveryOut:
    async with db.transaction() as session:
        o = await delivery.create_order(
            session, principal=principal, prescription_id=prescription_id, **body.model_dump()
        )
        return delivery_out(o, unmasked=True, patient=True)


@router.get(
    "/delivery-orders/{order_id}", response_model=DeliveryOut, summary="A delivery order (address reads audited)"
)
async def get_delivery(
    order_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> DeliveryOut:
    async with db.transaction() as session:
        o, unmasked = await delivery.readable(session, principal=principal, order_id=order_id)
        return delivery_out(o, unmasked=unmasked, patient=principal.role.value == "patient")


@router.get("/pharmacy/delivery-orders", response_model=list[DeliveryOut], summary="The pharmacist's hospital's orders")
async def pharmacy_orders(
    status: DeliveryStatus | None = None,
    limit: int = Query(50, ge=1, le=200),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> list[DeliveryOut]:
    async with db.read() as session:
        rows = await delivery.pharmacy_orders(session, principal=principal, status=status, limit=limit)
        return [delivery_out(o, unmasked=False, patient=False) for o in rows]


@router.post("/delivery-orders/{order_id}/dispense", response_model=DeliveryOut, summary="Dispense (R8: approved only)")
async def dispense(
    order_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> DeliveryOut:
    async with db.transaction() as session:
        return delivery_out(
            await delivery.dispense(session, principal=principal, order_id=order_id), unmasked=False, patient=False
        )


@router.post("/delivery-orders/{order_id}/ship", response_model=DeliveryOut, summary="Hand to the carrier")
async def ship(
    order_id: uuid.UUID,
    body: ShipIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> DeliveryOut:
    async with db.transaction() as session:
        o = await delivery.ship(
            session, principal=principal, order_id=order_id, carrier=body.carrier, tracking_number=body.tracking_number
        )
        return delivery_out(o, unmasked=False, patient=False)


@router.post(
    "/delivery-orders/{order_id}/deliver",
    response_model=DeliveryOut,
    summary="Confirm the hand-over: the patient, or a pharmacist with the patient's code",
)
async def deliver(
    order_id: uuid.UUID,
    body: DeliverIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> DeliveryOut:
    async with db.transaction() as session:
        o = await delivery.deliver(session, principal=principal, order_id=order_id, handover_code=body.handover_code)
        patient = principal.role.value == "patient"
        return delivery_out(o, unmasked=patient, patient=patient)


@router.post("/delivery-orders/{order_id}/return", response_model=DeliveryOut, summary="The order came back")
async def return_order(
    order_id: uuid.UUID,
    body: RejectIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> DeliveryOut:
    async with db.transaction() as session:
        o = await delivery.return_order(session, principal=principal, order_id=order_id, reason=body.reason)
        return delivery_out(o, unmasked=False, patient=False)
