"""Files in a consultation: images and PDFs for the pre-consultation form and the chat.

The type is decided by the file's own bytes (``filetype`` reads its signature), never by its name or the
header a client sent; a declared type that disagrees is refused. Files are sealed (AES-GCM, the personal-data
key) in the file store under a key the platform picks; the row keeps the name, type, size and SHA-256.
Only the consultation's participants upload and read them, and every read is audited.
"""

from __future__ import annotations

import hashlib
import re
import uuid

import filetype
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.consultations import service
from carebridge.consultations.models import (
    OPEN_STATUSES,
    Attachment,
    AttachmentPurpose,
    Consultation,
    OfflineDiagnosis,
)
from carebridge.core import audit
from carebridge.core.errors import Conflict, DomainError, InvalidInput, not_found
from carebridge.core.files import FileStore
from carebridge.core.ids import new_id
from carebridge.patients import service as patients

ALLOWED_TYPES = {"image/jpeg", "image/png", "image/webp", "application/pdf"}
GENERIC_TYPES = {"", "application/octet-stream"}
MAX_PER_CONSULTATION = 50
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


class FileTooLarge(DomainError):
    status = 413
    code = "file_too_large"


def sniff(data: bytes, declared: str | None, *, limit: int) -> str:
    """The file's real type, if it is one we take. 413 ``file_too_large``; 422 ``empty_file``,
    ``unsupported_file_type``, ``file_type_mismatch``."""
    if len(data) > limit:
        raise FileTooLarge(message=f"files are limited to {limit} bytes", details={"limit": limit})
    if not data:
        raise InvalidInput("empty_file", "the file is empty", details={"field": "file"})
    kind = filetype.guess(data)
    mime = kind.mime if kind is not None else None
    if mime not in ALLOWED_TYPES:
        raise InvalidInput(
            "unsupported_file_type",
            "only JPEG, PNG and WebP images and PDF documents are accepted",
            details={"field": "file", "detected": mime, "allowed": sorted(ALLOWED_TYPES)},
        )
    declared = (declared or "").split(";")[0].strip().lower()
    if declared not in GENERIC_TYPES and declared != mime:
        raise InvalidInput(
            "file_type_mismatch",
            f"the file is {mime}, not {declared}",
            details={"field": "file", "detected": mime, "declared": declared},
        )
    return mime


def clean_filename(name: str | None) -> str:
    base = re.split(r"[/\\]", name or "")[-1]
    base = _UNSAFE_NAME.sub("", base).strip()[:200]
    return base or "file"


async def upload(
    session: AsyncSession,
    store: FileStore,
    *,
    principal: Principal,
    consultation: Consultation,
    purpose: AttachmentPurpose,
    filename: str | None,
    declared_type: str | None,
    data: bytes,
    limit: int,
) -> Attachment:
    """Check and keep a participant's file. 409 ``consultation_not_open`` once the consultation has ended;
    409 ``too_many_attachments`` past ``MAX_PER_CONSULTATION``."""
    if consultation.status not in OPEN_STATUSES:
        raise Conflict("consultation_not_open", "files can be added only while the consultation is open")
    mime = sniff(data, declared_type, limit=limit)
    count = await session.scalar(
        select(func.count()).select_from(Attachment).where(Attachment.consultation_id == consultation.id)
    )
    if (count or 0) >= MAX_PER_CONSULTATION:
        raise Conflict(
            "too_many_attachments",
            f"a consultation holds at most {MAX_PER_CONSULTATION} files",
            details={"limit": MAX_PER_CONSULTATION},
        )
    row = Attachment(
        id=new_id(),
        consultation_id=consultation.id,
        uploaded_by_user_id=principal.user_id,
        side=service.side_of(principal),
        purpose=purpose,
        filename=clean_filename(filename),
        content_type=mime,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        storage_key="",
    )
    row.storage_key = f"att-{row.id.hex}"
    await store.put(row.storage_key, data)  # written before the row commits; an orphan file is harmless
    session.add(row)
    await session.flush()
    return row


async def listed(session: AsyncSession, consultation: Consultation) -> list[Attachment]:
    rows = await session.scalars(
        select(Attachment).where(Attachment.consultation_id == consultation.id).order_by(Attachment.created_at)
    )
    return list(rows.all())


async def for_message(
    session: AsyncSession, *, principal: Principal, consultation_id: uuid.UUID, attachment_id: uuid.UUID
) -> Attachment:
    """An attachment the sender may put in a chat message: their own upload in this consultation."""
    row = await session.get(Attachment, attachment_id)
    if row is None or row.consultation_id != consultation_id or row.uploaded_by_user_id != principal.user_id:
        raise not_found("attachment", attachment_id)
    return row


async def read(
    session: AsyncSession,
    store: FileStore,
    *,
    principal: Principal,
    consultation: Consultation,
    attachment_id: uuid.UUID,
) -> tuple[Attachment, bytes]:
    row = await session.get(Attachment, attachment_id)
    if row is None or row.consultation_id != consultation.id:
        raise not_found("attachment", attachment_id)
    audit.record(
        session,
        action="consultation.attachment.read",
        subject_type="consultation_attachment",
        subject_id=row.id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
        hospital_id=consultation.hospital_id,
        detail={"consultation_id": str(consultation.id)},
    )
    return row, await store.get(row.storage_key)


# --- the document behind an offline diagnosis --------------------------------------------------------------


async def attach_document(
    session: AsyncSession,
    store: FileStore,
    *,
    principal: Principal,
    patient_id: uuid.UUID,
    diagnosis_id: uuid.UUID,
    filename: str | None,
    declared_type: str | None,
    data: bytes,
    limit: int,
) -> OfflineDiagnosis:
    """Attach (or replace) the document proving an offline diagnosis: a linked account of the patient."""
    await patients.require_linked(session, principal=principal, patient_id=patient_id)
    row = await session.get(OfflineDiagnosis, diagnosis_id)
    if row is None or row.patient_id != patient_id:
        raise not_found("offline_diagnosis", diagnosis_id)
    mime = sniff(data, declared_type, limit=limit)
    key = f"dx-{row.id.hex}-{new_id().hex[-8:]}"  # a replacement gets its own key: the old row stays readable
    await store.put(key, data)
    row.document_storage_key = key
    row.document_filename = clean_filename(filename)
    row.document_content_type = mime
    row.document_size = len(data)
    row.document_sha256 = hashlib.sha256(data).hexdigest()
    await session.flush()
    return row


async def read_document(
    session: AsyncSession, store: FileStore, *, principal: Principal, diagnosis_id: uuid.UUID
) -> tuple[OfflineDiagnosis, bytes]:
    """The document, for the patient's accounts and for a doctor whose consultation follows it up. Audited."""
    row = await session.get(OfflineDiagnosis, diagnosis_id)
    if row is None or row.document_storage_key is None:
        raise not_found("offline_diagnosis_document", diagnosis_id)
    if principal.role == Role.doctor:
        follows = await session.scalar(
            select(Consultation.id).where(
                Consultation.offline_diagnosis_id == row.id, Consultation.practitioner_id == principal.practitioner_id
            )
        )
        if follows is None:
            raise not_found("offline_diagnosis_document", diagnosis_id)
    else:
        await patients.require_linked(session, principal=principal, patient_id=row.patient_id)
    audit.record(
        session,
        action="offline_diagnosis.document.read",
        subject_type="offline_diagnosis",
        subject_id=row.id,
        actor_user_id=principal.user_id,
        actor_role=principal.role.value,
    )
    return row, await store.get(row.document_storage_key)
