"""Real-name patients: registration, family links, medical cards, and who may see what.

Personal data (name, ID number, phone) is shown unmasked only to accounts linked to the patient; every
unmasked read leaves an audit record (``patient.personal_data.read``) in the reader's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import audit, clock, crypto
from carebridge.core.batching import in_list
from carebridge.core.errors import Conflict, Forbidden, InvalidInput, not_found
from carebridge.patients.identity import InvalidIdNumber, mask_id_number, mask_name, mask_phone, parse_id_number
from carebridge.patients.models import MedicalCard, Patient, PatientLink, Relation
from carebridge.patients.schemas import PatientOut

MAX_LINKED_PATIENTS = 10


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """What other domains need to know about a patient without seeing personal data."""

    id: uuid.UUID
    region: str
    birth_date: date
    sex: str


def _present(patient: Patient, *, unmasked: bool, relation: Relation | None = None) -> PatientOut:
    return PatientOut(
        id=patient.id,
        name=patient.name if unmasked else mask_name(patient.name),
        id_number=patient.id_number if unmasked else mask_id_number(patient.id_number),
        phone=patient.phone if unmasked else mask_phone(patient.phone),
        birth_date=patient.birth_date,
        sex=patient.sex,
        region=patient.region,
        relation=relation,
        masked=not unmasked,
    )


def _audit_read(
    session: AsyncSession,
    principal: Principal,
    patient_ids: Iterable[uuid.UUID],
    purpose: str,
    regions: dict[uuid.UUID, str] | None = None,
) -> None:
    """One record per patient read. Through a partner app (the patient's account acting in it) the record
    names the app and carries the patient's region, as ``patient_for_app``'s do (docs/fhir.md, AuditEvent)."""
    partner = principal.reach
    for pid in patient_ids:
        audit.record(
            session,
            action="patient.personal_data.read",
            subject_type="patient",
            subject_id=pid,
            actor_user_id=principal.user_id,
            actor_role="partner_app" if partner is not None else principal.role.value,
            hospital_id=principal.hospital_id,
            detail={"purpose": purpose} if partner is None else {"purpose": purpose, "client_id": partner.client_id},
            region=(regions or {}).get(pid) if partner is not None else None,
        )


async def add_patient(
    session: AsyncSession, *, principal: Principal, name: str, id_number: str, phone: str | None, relation: Relation
) -> PatientOut:
    """Register a real-name patient for the caller (themselves or a family member).

    If the person is already registered (same ID number), the caller is linked to them, provided the name
    matches. Raises 422 ``invalid_id_number``, 409 ``identity_mismatch``, ``already_linked``, ``self_exists``.
    """
    principal.require_role(Role.patient)
    try:
        normalised, birth, sex, region = parse_id_number(id_number, today=clock.now().date())
    except InvalidIdNumber as exc:
        raise InvalidInput("invalid_id_number", str(exc), details={"field": "id_number"}) from exc
    c = crypto.cipher()
    links = (await session.scalars(select(PatientLink).where(PatientLink.user_id == principal.user_id))).all()
    if relation == Relation.self and any(link.relation == Relation.self for link in links):
        raise Conflict("self_exists", "this account already has its own real-name profile")
    if len(links) >= MAX_LINKED_PATIENTS:
        raise Conflict("limit_exceeded", f"an account manages at most {MAX_LINKED_PATIENTS} patients")
    patient = await session.scalar(
        select(Patient).where(Patient.id_number_index == c.blind_index("id_number", normalised))
    )
    if patient is None:
        patient = Patient(
            region=region,
            name=name,
            id_number=normalised,
            id_number_index=c.blind_index("id_number", normalised),
            phone=phone,
            phone_index=c.blind_index("phone", phone) if phone else None,
            key_version=c.current_version,
            birth_date=birth,
            sex=sex,
        )
        session.add(patient)
        await session.flush()
    else:
        if patient.name != name:
            raise Conflict("identity_mismatch", "the name does not match the registered holder of this ID number")
        if any(link.patient_id == patient.id for link in links):
            raise Conflict("already_linked", "this patient is already on your account")
    session.add(PatientLink(user_id=principal.user_id, patient_id=patient.id, relation=relation))
    _audit_read(session, principal, [patient.id], "register")
    return _present(patient, unmasked=True, relation=relation)


async def my_patients(session: AsyncSession, *, principal: Principal) -> list[PatientOut]:
    rows = (
        await session.execute(
            select(Patient, PatientLink.relation)
            .join(PatientLink, PatientLink.patient_id == Patient.id)
            .where(PatientLink.user_id == principal.user_id)
            .order_by(PatientLink.created_at)
        )
    ).all()
    _audit_read(session, principal, [p.id for p, _ in rows], "own_profiles")
    return [_present(p, unmasked=True, relation=rel) for p, rel in rows]


async def linked_relation(session: AsyncSession, *, user_id: uuid.UUID, patient_id: uuid.UUID) -> Relation | None:
    return await session.scalar(
        select(PatientLink.relation).where(PatientLink.user_id == user_id, PatientLink.patient_id == patient_id)
    )


async def linked_patient_ids(session: AsyncSession, *, user_id: uuid.UUID) -> list[uuid.UUID]:
    return list((await session.scalars(select(PatientLink.patient_id).where(PatientLink.user_id == user_id))).all())


# The hot path's statements, built once (building a statement costs more than running it).
_FACTS = select(Patient.id, Patient.region, Patient.birth_date, Patient.sex).where(
    Patient.id == bindparam("patient_id")
)
_LINKED_FACTS = _FACTS.join(PatientLink, PatientLink.patient_id == Patient.id).where(
    PatientLink.user_id == bindparam("user_id")
)
_DESCRIBE = (
    select(Patient, PatientLink.relation)
    .outerjoin(PatientLink, (PatientLink.patient_id == Patient.id) & (PatientLink.user_id == bindparam("user_id")))
    .where(in_list(Patient.id, "ids"))
)


async def require_linked(session: AsyncSession, *, principal: Principal, patient_id: uuid.UUID) -> PatientFacts:
    """The patient, if the caller's account may act for them; 404 otherwise (no hint that they exist)."""
    row = None
    if principal.role == Role.patient:
        row = (await session.execute(_LINKED_FACTS, {"user_id": principal.user_id, "patient_id": patient_id})).first()
    if row is None:
        raise not_found("patient", patient_id)
    return PatientFacts(id=row[0], region=row[1], birth_date=row[2], sex=str(row[3]))


@dataclass(frozen=True, slots=True)
class OwnedPatient:
    """A patient an account may act for, with the name its owner sees (``owned_patients``)."""

    facts: PatientFacts
    name: str


_LINK, _PATIENT = PatientLink.__table__.c, Patient.__table__.c
_OWNED = (  # Core (table columns): a booking batch's statement, without the ORM's per-statement work
    select(_LINK.user_id, _PATIENT.id, _PATIENT.region, _PATIENT.birth_date, _PATIENT.sex, _PATIENT.name)
    .select_from(Patient.__table__)
    .join(PatientLink.__table__, _LINK.patient_id == _PATIENT.id)
    .where(in_list(_LINK.patient_id, "patient_ids"), in_list(_LINK.user_id, "user_ids"))
)


async def owned_patients(
    session: AsyncSession, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> dict[tuple[uuid.UUID, uuid.UUID], OwnedPatient]:
    """For many (account, patient) pairs at once, in one query: the patients each account may act for, with
    their names. A pair missing from the answer is a patient that account may not act for (404 to it). The
    names are not audited here: a caller that shows one to its owner calls ``audit_owner_read``."""
    if not pairs:
        return {}
    asked = set(pairs)
    params = {"patient_ids": list({p for _, p in asked}), "user_ids": list({u for u, _ in asked})}
    rows = (await session.execute(_OWNED, params)).all()  # the lists' cross product, narrowed to the pairs asked
    return {
        (user_id, pid): OwnedPatient(PatientFacts(id=pid, region=region, birth_date=born, sex=str(sex)), name)
        for user_id, pid, region, born, sex, name in rows
        if (user_id, pid) in asked
    }


def audit_owner_read(session: AsyncSession, principal: Principal, patient: PatientFacts, purpose: str) -> None:
    """Record that ``principal`` was shown its own patient's personal data (as ``describe`` does)."""
    _audit_read(session, principal, [patient.id], purpose, regions={patient.id: patient.region})


async def facts(session: AsyncSession, patient_id: uuid.UUID) -> PatientFacts:
    row = (await session.execute(_FACTS, {"patient_id": patient_id})).first()
    if row is None:
        raise not_found("patient", patient_id)
    return PatientFacts(id=row[0], region=row[1], birth_date=row[2], sex=str(row[3]))


async def get_patient(session: AsyncSession, *, principal: Principal, patient_id: uuid.UUID) -> PatientOut:
    relation = await linked_relation(session, user_id=principal.user_id, patient_id=patient_id)
    if relation is None:
        raise not_found("patient", patient_id)
    patient = await session.get(Patient, patient_id)
    assert patient is not None
    _audit_read(session, principal, [patient_id], "own_profile")
    return _present(patient, unmasked=True, relation=relation)


async def patient_for_app(
    session: AsyncSession, *, patient_id: uuid.UUID, client_id: str, user_id: uuid.UUID | None, show_name: bool
) -> PatientOut:
    """A patient as a partner app sees them: the ID number and phone always masked, the name shown only when the
    patient consented to this app (``show_name``). The read is audited with the app's name."""
    patient = await session.get(Patient, patient_id)
    if patient is None:
        raise not_found("patient", patient_id)
    audit.record(
        session,
        action="patient.personal_data.read",
        subject_type="patient",
        subject_id=patient_id,
        actor_user_id=user_id,
        actor_role="partner_app",
        detail={"purpose": "partner_app", "client_id": client_id, "name_shown": show_name},
        region=patient.region,  # the regulators of the patient's region see which apps read it
    )
    out = _present(patient, unmasked=False)
    return out.model_copy(update={"name": patient.name}) if show_name else out


async def update_patient(
    session: AsyncSession, *, principal: Principal, patient_id: uuid.UUID, phone: str | None
) -> PatientOut:
    relation = await linked_relation(session, user_id=principal.user_id, patient_id=patient_id)
    if relation is None:
        raise not_found("patient", patient_id)
    patient = await session.get(Patient, patient_id)
    assert patient is not None
    c = crypto.cipher()
    patient.phone = phone
    patient.phone_index = c.blind_index("phone", phone) if phone else None
    patient.key_version = c.current_version
    _audit_read(session, principal, [patient_id], "update")
    return _present(patient, unmasked=True, relation=relation)


async def unlink_patient(session: AsyncSession, *, principal: Principal, patient_id: uuid.UUID) -> None:
    relation = await linked_relation(session, user_id=principal.user_id, patient_id=patient_id)
    if relation is None:
        raise not_found("patient", patient_id)
    if relation == Relation.self:
        raise Forbidden("cannot_unlink_self", "an account keeps its own real-name profile")
    await session.execute(
        delete(PatientLink).where(PatientLink.user_id == principal.user_id, PatientLink.patient_id == patient_id)
    )


async def describe(
    session: AsyncSession, *, principal: Principal, patient_ids: Iterable[uuid.UUID], purpose: str
) -> dict[uuid.UUID, PatientOut]:
    """Patients as this caller may see them: unmasked if linked to the caller, masked otherwise.

    The caller's right to see the patients at all is the calling domain's rule (e.g. scheduling shows a
    doctor the patients in their own queue)."""
    ids = list(dict.fromkeys(patient_ids))
    if not ids:
        return {}
    user_id = principal.user_id if principal.role == Role.patient else None
    rows = (await session.execute(_DESCRIBE, {"user_id": user_id, "ids": ids})).all()
    linked = {p.id: relation for p, relation in rows if relation is not None}
    _audit_read(session, principal, list(linked), purpose, regions={p.id: p.region for p, _ in rows})
    return {p.id: _present(p, unmasked=p.id in linked, relation=linked.get(p.id)) for p, _ in rows}


async def account_ids_for(session: AsyncSession, patient_id: uuid.UUID) -> list[uuid.UUID]:
    """The accounts linked to a patient (who should be told about their bookings)."""
    return list((await session.scalars(select(PatientLink.user_id).where(PatientLink.patient_id == patient_id))).all())


async def add_medical_card(
    session: AsyncSession, *, principal: Principal, patient_id: uuid.UUID, hospital_id: uuid.UUID, card_number: str
) -> MedicalCard:
    """Record a hospital's card number for a patient: the patient's own account, or that hospital's admin."""
    if principal.role == Role.patient:
        await require_linked(session, principal=principal, patient_id=patient_id)
    else:
        principal.require_role(Role.hospital_admin, Role.platform_admin)
        principal.require_hospital(hospital_id)
        await facts(session, patient_id)
    taken = await session.scalar(
        select(MedicalCard).where(MedicalCard.hospital_id == hospital_id, MedicalCard.card_number == card_number)
    )
    if taken is not None:
        raise Conflict("card_number_taken", "this card number belongs to another patient at this hospital")
    if await session.scalar(
        select(MedicalCard.id).where(MedicalCard.hospital_id == hospital_id, MedicalCard.patient_id == patient_id)
    ):
        raise Conflict("card_exists", "the patient already has a card at this hospital")
    card = MedicalCard(patient_id=patient_id, hospital_id=hospital_id, card_number=card_number)
    session.add(card)
    await session.flush()
    return card


async def medical_cards(session: AsyncSession, *, principal: Principal, patient_id: uuid.UUID) -> list[MedicalCard]:
    await require_linked(session, principal=principal, patient_id=patient_id)
    return list((await session.scalars(select(MedicalCard).where(MedicalCard.patient_id == patient_id))).all())


async def find_by_id_number(
    session: AsyncSession, *, principal: Principal, hospital_id: uuid.UUID, id_number: str
) -> PatientOut:
    """Exact lookup by ID number for a hospital's staff (blind index), among that hospital's card holders."""
    principal.require_role(Role.hospital_admin, Role.platform_admin)
    principal.require_hospital(hospital_id)
    index = crypto.cipher().blind_index("id_number", id_number.strip().upper())
    patient = await session.scalar(
        select(Patient)
        .join(MedicalCard, MedicalCard.patient_id == Patient.id)
        .where(Patient.id_number_index == index, MedicalCard.hospital_id == hospital_id)
    )
    if patient is None:
        raise not_found("patient", "with this ID number")
    return _present(patient, unmasked=False)


async def count_patients(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Patient)) or 0)
