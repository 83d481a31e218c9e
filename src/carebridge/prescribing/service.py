"""E-prescriptions: written in a consultation, checked, signed by the consulting doctor, reviewed by a pharmacist.

States: draft -> pending_review (signed) -> approved -> dispensed (by a delivery order); or pending_review ->
rejected -> draft again (the doctor revises: ``revision`` + 1) ; draft/rejected/pending_review -> cancelled;
pending_review/approved -> expired when ``expires_at`` passes undispensed (default 3 days after signing).

The checks (``prescribing.checks``) run every time the draft is saved, on request while the doctor types, and
again when signing, against the formulary and knowledge base of that moment. A ``block`` finding stops signing
(409 ``prescription_blocked``); each ``warning`` needs an override reason, matched by the finding's key.
Every state change is a conditional update, so two pharmacists reviewing at once cannot both win.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth import service as auth
from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.consultations import records
from carebridge.consultations import service as consultations
from carebridge.consultations.models import Consultation, ConsultationStatus, OfflineDiagnosis
from carebridge.core import clock, signing
from carebridge.core.errors import Conflict, Forbidden, InvalidInput, not_found
from carebridge.core.transitions import transition
from carebridge.events.outbox import append_event, event_data
from carebridge.patients import service as patients
from carebridge.prescribing import checks, knowledge
from carebridge.prescribing.models import Drug, Prescription, PrescriptionItem, PrescriptionStatus
from carebridge.supervision import precheck as supervision

MAX_LIST = 200
EDITABLE = (PrescriptionStatus.draft, PrescriptionStatus.rejected)


class Policy:
    """Set from settings by the app factory."""

    validity_days: int = 3
    limits: checks.Limits = checks.Limits()


def configure(*, validity_days: int, max_items: int, ordinary_days: int, long_term_days: int) -> None:
    Policy.validity_days = validity_days
    Policy.limits = checks.Limits(max_items=max_items, ordinary_days=ordinary_days, long_term_days=long_term_days)


@dataclass(frozen=True, slots=True)
class ItemInput:
    drug_id: uuid.UUID
    dose: float
    frequency: str
    route: str
    days: int
    quantity: int


def finding_key(f: dict[str, Any]) -> str:
    """How an override names the warning it answers: ``code`` and the lines, e.g. ``interaction:1-3``."""
    return f"{f['code']}:{'-'.join(str(n) for n in f['lines'])}" if f["lines"] else f["code"]


# --- building the proposal ---------------------------------------------------------------------------------


async def _drugs(session: AsyncSession, hospital_id: uuid.UUID, items: list[ItemInput]) -> dict[uuid.UUID, Drug]:
    """The formulary lines the items name; 422 naming the item for a drug not in this hospital's formulary."""
    wanted = {i.drug_id for i in items}
    found = {
        d.id: d for d in await session.scalars(select(Drug).where(Drug.id.in_(wanted), Drug.hospital_id == hospital_id))
    }
    for n, item in enumerate(items):
        drug = found.get(item.drug_id)
        if drug is None or not drug.active:
            raise InvalidInput(
                "drug_not_in_formulary",
                "this drug is not in the hospital's formulary (or no longer active)",
                details={"field": f"items[{n}].drug_id"},
            )
        if item.frequency not in checks.FREQUENCIES:
            raise InvalidInput(
                "unknown_frequency",
                f"frequency must be one of {', '.join(checks.FREQUENCIES)}",
                details={"field": f"items[{n}].frequency"},
            )
        if item.route not in checks.ROUTES:
            raise InvalidInput(
                "unknown_route",
                f"route must be one of {', '.join(checks.ROUTES)}",
                details={"field": f"items[{n}].route"},
            )
    return found


async def followed_up_codes(session: AsyncSession, patient_id: uuid.UUID) -> tuple[str, ...]:
    rows = await session.scalars(select(OfflineDiagnosis.icd10_code).where(OfflineDiagnosis.patient_id == patient_id))
    return tuple(dict.fromkeys(rows))


async def proposal(
    session: AsyncSession, c: Consultation, diagnoses: list[dict[str, str]], items: list[ItemInput]
) -> tuple[checks.ProposedPrescription, dict[uuid.UUID, Drug]]:
    drugs = await _drugs(session, c.hospital_id, items)
    proposed = tuple(
        checks.ProposedItem(
            line=n,
            name=drugs[i.drug_id].generic_name,
            substance=drugs[i.drug_id].substance,
            atc_code=drugs[i.drug_id].atc_code,
            dose=i.dose,
            dose_unit=drugs[i.drug_id].dose_unit,
            frequency=i.frequency,
            route=i.route,
            days=i.days,
            special_control=drugs[i.drug_id].special_control.value if drugs[i.drug_id].special_control else None,
            max_daily_dose=drugs[i.drug_id].max_daily_dose,
        )
        for n, i in enumerate(items, start=1)
    )
    rx = checks.ProposedPrescription(
        items=proposed,
        diagnoses=tuple(d["code"] for d in diagnoses),
        followed_up=await followed_up_codes(session, c.patient_id),
        allergies=await records.patient_allergies(session, c),
    )
    return rx, drugs


def run_checks(rx: checks.ProposedPrescription) -> list[dict[str, Any]]:
    out = []
    for f in checks.check_prescription(rx, knowledge.current(), Policy.limits):
        d = f.as_dict()
        d["key"] = finding_key(d)
        out.append(d)
    return out


async def _prescribing_consultation(
    session: AsyncSession, principal: Principal, consultation_id: uuid.UUID
) -> Consultation:
    consultations.require_doctor(principal)
    c = await consultations.authorised(session, principal=principal, consultation_id=consultation_id)
    if c.status != ConsultationStatus.in_progress:
        raise Conflict(
            "consultation_not_in_progress",
            "prescriptions are written during the consultation",
            details={"status": c.status.value},
        )
    return c


# --- writing -----------------------------------------------------------------------------------------------


async def check_only(
    session: AsyncSession,
    *,
    principal: Principal,
    consultation_id: uuid.UUID,
    diagnoses: list[str],
    items: list[ItemInput],
) -> list[dict[str, Any]]:
    """The findings for a prescription being written, without saving anything (the form's live check)."""
    c = await _prescribing_consultation(session, principal, consultation_id)
    rx, _ = await proposal(session, c, records.diagnoses_with_titles(diagnoses), items)
    return run_checks(rx)


async def write(
    session: AsyncSession,
    *,
    principal: Principal,
    diagnoses: list[str],
    items: list[ItemInput],
    consultation_id: uuid.UUID | None = None,
    prescription_id: uuid.UUID | None = None,
) -> Prescription:
    """Save a new draft, or revise a draft or a rejected prescription (which becomes a draft again, next
    revision). The findings are stored and emitted as ``prescription.checked``."""
    if prescription_id is not None:
        existing = await _get(session, prescription_id)
        c = await _prescribing_consultation(session, principal, existing.consultation_id)
        if existing.status not in EDITABLE:
            raise Conflict(
                "prescription_not_editable",
                f"a {existing.status.value} prescription cannot be changed",
                details={"status": existing.status.value},
            )
    elif consultation_id is not None:
        c = await _prescribing_consultation(session, principal, consultation_id)
        existing = None
    else:
        raise ValueError("write needs a consultation or a prescription")
    coded = records.diagnoses_with_titles(diagnoses)
    rx, drugs = await proposal(session, c, coded, items)
    findings = run_checks(rx)
    if existing is None:
        p = Prescription(
            hospital_id=c.hospital_id,
            region=c.region,
            consultation_id=c.id,
            patient_id=c.patient_id,
            practitioner_id=c.practitioner_id,
            status=PrescriptionStatus.draft,
            revision=1,
        )
        session.add(p)
        await session.flush()
    else:
        p = existing
        if p.status == PrescriptionStatus.rejected:
            p.revision += 1
        p.status = PrescriptionStatus.draft
        p.content_sha256 = p.signature = None
        p.signed_at = p.signed_by_user_id = p.expires_at = None
        await session.execute(delete(PrescriptionItem).where(PrescriptionItem.prescription_id == p.id))
    p.diagnoses = coded
    p.long_term = checks.is_long_term(rx, knowledge.current())
    p.findings = findings
    p.overrides = []
    total = 0
    written: list[PrescriptionItem] = []
    for n, item in enumerate(items, start=1):
        drug = drugs[item.drug_id]
        amount = item.quantity * drug.price_fen
        total += amount
        written.append(
            PrescriptionItem(
                prescription_id=p.id,
                line=n,
                drug_id=drug.id,
                drug_code=drug.code,
                drug_name=drug.generic_name,
                strength=drug.strength,
                dose=item.dose,
                dose_unit=drug.dose_unit,
                frequency=item.frequency,
                route=item.route,
                days=item.days,
                quantity=item.quantity,
                unit=drug.unit,
                price_fen=drug.price_fen,
                amount_fen=amount,
            )
        )
    session.add_all(written)
    p.total_fen = total
    await session.flush()
    blocks = [f for f in findings if f["level"] == "block"]
    warns = [f for f in findings if f["level"] == "warning"]
    _emit(
        session,
        "prescription.checked",
        p,
        principal.actor,
        diagnoses=[d["code"] for d in coded],
        items=_lines(written, drugs),
        total_fen=total,
        blocks=[f["code"] for f in blocks],
        warnings=[f["code"] for f in warns],
        rules=sorted({f["rule"] for f in findings}),
    )
    return p


def _lines(items: list[PrescriptionItem], drugs: dict[uuid.UUID, Drug]) -> list[dict[str, Any]]:
    """The event catalog's prescription lines (with what the formulary says each drug is)."""
    return [
        {
            "line": i.line,
            "drug_code": i.drug_code,
            "substance": drugs[i.drug_id].substance,
            "atc_code": drugs[i.drug_id].atc_code,
            "special_control": drugs[i.drug_id].special_control.value if drugs[i.drug_id].special_control else None,
            "antibiotic_grade": drugs[i.drug_id].antibiotic_grade.value if drugs[i.drug_id].antibiotic_grade else None,
            "dose": i.dose,
            "dose_unit": i.dose_unit,
            "frequency": i.frequency,
            "route": i.route,
            "days": i.days,
            "quantity": i.quantity,
            "amount_fen": i.amount_fen,
        }
        for i in items
    ]


async def items_by_prescription(
    session: AsyncSession, prescription_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[PrescriptionItem]]:
    out: dict[uuid.UUID, list[PrescriptionItem]] = {}
    if not prescription_ids:
        return out
    rows = await session.scalars(
        select(PrescriptionItem)
        .where(PrescriptionItem.prescription_id.in_(prescription_ids))
        .order_by(PrescriptionItem.prescription_id, PrescriptionItem.line)
    )
    for item in rows:
        out.setdefault(item.prescription_id, []).append(item)
    return out


async def items_of(session: AsyncSession, prescription_id: uuid.UUID) -> list[PrescriptionItem]:
    rows = await session.scalars(
        select(PrescriptionItem)
        .where(PrescriptionItem.prescription_id == prescription_id)
        .order_by(PrescriptionItem.line)
    )
    return list(rows)


def _data(p: Prescription, **extra: Any) -> dict[str, Any]:
    return {
        "prescription_id": p.id,
        "consultation_id": p.consultation_id,
        "patient_id": p.patient_id,
        "practitioner_id": p.practitioner_id,
        "revision": p.revision,
        "status": p.status.value,
        **extra,
    }


def _emit(session: AsyncSession, type_: str, p: Prescription, actor: str, **extra: Any) -> None:
    append_event(
        session,
        type_,
        subject_type="prescription",
        subject_id=p.id,
        hospital_id=p.hospital_id,
        region=p.region,
        actor=actor,
        data=_data(p, **extra),
    )


def content_of(p: Prescription, items: list[PrescriptionItem]) -> dict[str, Any]:
    """What the signature covers."""
    return {
        "prescription": "carebridge.prescription/1",
        "id": str(p.id),
        "revision": p.revision,
        "consultation_id": str(p.consultation_id),
        "patient_id": str(p.patient_id),
        "practitioner_id": str(p.practitioner_id),
        "diagnoses": [d["code"] for d in p.diagnoses],
        "items": [
            [
                i.line,
                i.drug_code,
                i.drug_name,
                i.strength,
                i.dose,
                i.dose_unit,
                i.frequency,
                i.route,
                i.days,
                i.quantity,
                i.price_fen,
            ]
            for i in items
        ],
        "total_fen": p.total_fen,
        "overrides": p.overrides,
    }


async def sign(
    session: AsyncSession,
    *,
    principal: Principal,
    prescription_id: uuid.UUID,
    password: str,
    overrides: dict[str, str],
) -> Prescription:
    """Sign a draft (the consulting doctor, with their password: R5/R7). Checks run again first: 409
    ``prescription_blocked`` with the findings if any blocks; 422 ``override_required`` naming each warning
    without a reason; 422 ``unknown_override`` for a reason that answers no warning."""
    p = await _get(session, prescription_id)
    c = await _prescribing_consultation(session, principal, p.consultation_id)
    if p.status != PrescriptionStatus.draft:
        raise Conflict(
            "prescription_not_draft",
            f"a {p.status.value} prescription cannot be signed",
            details={"status": p.status.value},
        )
    if p.practitioner_id != principal.practitioner_id:
        raise Forbidden("not_prescriber", "only the doctor who wrote this prescription can sign it")
    await auth.reauthenticate(session, principal=principal, password=password)
    items = await items_of(session, p.id)
    rx, drugs = await proposal(
        session,
        c,
        p.diagnoses,
        [ItemInput(i.drug_id, i.dose, i.frequency, i.route, i.days, i.quantity) for i in items],
    )
    findings = run_checks(rx)
    p.findings = findings
    blocking = [f for f in findings if f["level"] == "block"]
    if blocking:
        await session.flush()
        raise Conflict(
            "prescription_blocked",
            "this prescription cannot be signed: " + "; ".join(f["message"] for f in blocking),
            details={"findings": blocking, "rules": sorted({f["rule"] for f in blocking})},
        )
    warns = {f["key"]: f for f in findings if f["level"] == "warning"}
    unknown = sorted(set(overrides) - set(warns))
    if unknown:
        raise InvalidInput(
            "unknown_override",
            "these overrides answer no current warning",
            details={"field": "overrides", "keys": unknown},
        )
    missing = sorted(k for k in warns if not (overrides.get(k) or "").strip())
    if missing:
        raise InvalidInput(
            "override_required",
            "each warning needs a reason to go ahead",
            details={"field": "overrides", "keys": missing, "findings": [warns[k] for k in missing]},
        )
    now = clock.now()
    p.overrides = [
        {"key": k, "code": warns[k]["code"], "rule": warns[k]["rule"], "reason": overrides[k].strip()}
        for k in sorted(warns)
    ]
    p.content_sha256 = signing.content_hash(content_of(p, items))
    p.signature = signing.sign(p.content_sha256, signer=str(principal.user_id), signed_at=now)
    p.signed_at, p.signed_by_user_id = now, principal.user_id
    p.expires_at = now + timedelta(days=Policy.validity_days)
    p.status = PrescriptionStatus.pending_review
    signed = {
        "diagnoses": [d["code"] for d in p.diagnoses],
        "items": _lines(items, drugs),
        "total_fen": p.total_fen,
        "long_term": p.long_term,
        "content_sha256": p.content_sha256,
        "signed_at": now,
        "expires_at": p.expires_at,
        "overrides": [o["code"] for o in p.overrides],
    }
    # The regulator's rules last (pre-warning and in-process control): a block stops the signature here.
    await supervision.enforce(
        session,
        supervision.proposal(
            "prescription.signed",
            hospital_id=p.hospital_id,
            region=p.region,
            actor=principal.actor,
            subject=("prescription", p.id),
            data=event_data("prescription.signed", _data(p, **signed)),
        ),
    )
    await session.flush()
    _emit(session, "prescription.signed", p, principal.actor, **signed)
    await records.rescore(session, c)
    return p


def integrity(p: Prescription, items: list[PrescriptionItem]) -> str:
    if p.signature is None or p.content_sha256 is None or p.signed_at is None:
        return "unsigned"
    if signing.content_hash(content_of(p, items)) != p.content_sha256:
        return "tampered"
    ok = signing.verify(p.signature, p.content_sha256, signer=str(p.signed_by_user_id), signed_at=p.signed_at)
    return "verified" if ok else "tampered"


async def _move(session: AsyncSession, row: Prescription, **change: Any) -> None:
    await transition(session, row, code="bad_prescription_state", noun="prescription", **change)


async def cancel(
    session: AsyncSession, *, principal: Principal, prescription_id: uuid.UUID, reason: str
) -> Prescription:
    """The prescribing doctor withdraws a prescription not yet approved."""
    p = await _get(session, prescription_id)
    consultations.require_doctor(principal)
    await consultations.authorised(session, principal=principal, consultation_id=p.consultation_id)
    await _move(
        session,
        p,
        allowed=(PrescriptionStatus.draft, PrescriptionStatus.rejected, PrescriptionStatus.pending_review),
        to=PrescriptionStatus.cancelled,
        values={},
    )
    _emit(session, "prescription.cancelled", p, principal.actor, reason=reason)
    return p


# --- pharmacist review -------------------------------------------------------------------------------------


def require_pharmacist_of(principal: Principal, p: Prescription) -> None:
    """A pharmacist of the prescription's hospital; anyone else gets 404 (they may not know it exists)."""
    if principal.role != Role.pharmacist:
        raise Forbidden("role_not_allowed", "only a pharmacist reviews prescriptions")
    if principal.hospital_id != p.hospital_id:
        raise not_found("prescription", p.id)


async def review_queue(session: AsyncSession, *, principal: Principal, limit: int = 50) -> list[Prescription]:
    """Prescriptions waiting for this pharmacist's hospital, oldest first."""
    principal.require_role(Role.pharmacist)
    rows = await session.scalars(
        select(Prescription)
        .where(
            Prescription.hospital_id == principal.hospital_id, Prescription.status == PrescriptionStatus.pending_review
        )
        .order_by(Prescription.signed_at)
        .limit(min(limit, MAX_LIST))
    )
    return list(rows)


async def approve(
    session: AsyncSession, *, principal: Principal, prescription_id: uuid.UUID, note: str | None
) -> Prescription:
    """R8: the prescription takes effect. 409 ``prescription_expired`` past its validity."""
    p = await _get(session, prescription_id)
    require_pharmacist_of(principal, p)
    if p.status == PrescriptionStatus.pending_review and p.expires_at is not None and p.expires_at <= clock.now():
        raise Conflict("prescription_expired", "this prescription's validity has passed", details={"status": "expired"})
    values = {"reviewed_at": clock.now(), "reviewed_by_user_id": principal.user_id, "review_reason": note}
    await _move(session, p, allowed=(PrescriptionStatus.pending_review,), to=PrescriptionStatus.approved, values=values)
    _emit(session, "prescription.approved", p, principal.actor, pharmacist_user_id=principal.user_id, reason=note)
    return p


async def reject(
    session: AsyncSession, *, principal: Principal, prescription_id: uuid.UUID, reason: str
) -> Prescription:
    """Back to the doctor with the reason; they revise and sign again."""
    p = await _get(session, prescription_id)
    require_pharmacist_of(principal, p)
    values = {"reviewed_at": clock.now(), "reviewed_by_user_id": principal.user_id, "review_reason": reason}
    await _move(session, p, allowed=(PrescriptionStatus.pending_review,), to=PrescriptionStatus.rejected, values=values)
    _emit(session, "prescription.rejected", p, principal.actor, pharmacist_user_id=principal.user_id, reason=reason)
    return p


async def expire_due(session: AsyncSession, *, limit: int = 500) -> int:
    """Signed prescriptions not dispensed within their validity lapse (the sweep calls this)."""
    now = clock.now()
    due = list(
        await session.scalars(
            select(Prescription)
            .where(
                Prescription.status.in_((PrescriptionStatus.pending_review, PrescriptionStatus.approved)),
                Prescription.expires_at <= now,
            )
            .limit(limit)
        )
    )
    done = 0
    for p in due:
        result = await session.execute(
            update(Prescription)
            .where(Prescription.id == p.id, Prescription.status == p.status)
            .values(status=PrescriptionStatus.expired, updated_at=now)
        )
        if result.rowcount == 1:
            p.status = PrescriptionStatus.expired
            _emit(session, "prescription.expired", p, "system", reason="not dispensed within its validity")
            done += 1
    return done


# --- reading -----------------------------------------------------------------------------------------------


async def _get(session: AsyncSession, prescription_id: uuid.UUID) -> Prescription:
    p = await session.get(Prescription, prescription_id)
    if p is None:
        raise not_found("prescription", prescription_id)
    return p


async def readable(session: AsyncSession, *, principal: Principal, prescription_id: uuid.UUID) -> Prescription:
    """The prescription if the caller may see it: its patient's accounts, the consultation's doctor, the
    hospital's pharmacists and admins. 404 otherwise."""
    p = await _get(session, prescription_id)
    if principal.role == Role.patient:
        if await patients.linked_relation(session, user_id=principal.user_id, patient_id=p.patient_id) is None:
            raise not_found("prescription", prescription_id)
    elif principal.role == Role.doctor:
        await consultations.authorised(session, principal=principal, consultation_id=p.consultation_id)
    elif principal.role == Role.pharmacist:
        require_pharmacist_of(principal, p)
    elif not principal.can_manage_hospital(p.hospital_id):
        raise not_found("prescription", prescription_id)
    return p


async def for_consultation(
    session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID
) -> list[Prescription]:
    c = await records.readable(session, principal=principal, consultation_id=consultation_id)
    rows = await session.scalars(
        select(Prescription).where(Prescription.consultation_id == c.id).order_by(Prescription.created_at)
    )
    return list(rows)


async def for_patient(session: AsyncSession, *, principal: Principal, patient_id: uuid.UUID) -> list[Prescription]:
    await patients.require_linked(session, principal=principal, patient_id=patient_id)
    rows = await session.scalars(
        select(Prescription)
        .where(Prescription.patient_id == patient_id, Prescription.signed_at.is_not(None))
        .order_by(Prescription.signed_at.desc())
        .limit(MAX_LIST)
    )
    return list(rows)
