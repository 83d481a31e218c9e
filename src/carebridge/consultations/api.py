"""Consultation endpoints: offline diagnoses, requests, the doctor's inbox and the state changes."""

from __future__ import annotations

import re
import uuid

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response

from carebridge.auth.dependencies import current_principal, get_db
from carebridge.auth.principal import Principal
from carebridge.consultations import attachments, chat, feedback_api, records_api, service, transfer, ws
from carebridge.consultations.models import AttachmentPurpose, ConsultationStatus
from carebridge.consultations.present import consultation_detail, consultations_out, diagnosis_out
from carebridge.consultations.schemas import (
    AttachmentOut,
    ChatHistoryOut,
    ConsultationDetailOut,
    ConsultationIn,
    ConsultationOut,
    ConvertIn,
    ConvertOut,
    HandoverIn,
    OfflineDiagnosisIn,
    OfflineDiagnosisOut,
    ReasonIn,
)
from carebridge.database.engine import Database

router = APIRouter(prefix="/api/v1", tags=["consultations"])
router.include_router(ws.router)  # the chat WebSocket
router.include_router(records_api.router)  # records, quality control, follow-ups
router.include_router(feedback_api.router)  # ratings and complaints
UPLOAD_PATH = re.compile(r"^/api/v1/consultations/[^/]+/attachments$")
DOCUMENT_PATH = re.compile(r"^/api/v1/patients/[^/]+/offline-diagnoses/[^/]+/document$")


@router.post(
    "/patients/{patient_id}/offline-diagnoses",
    response_model=OfflineDiagnosisOut,
    status_code=201,
    summary="Record a diagnosis made in person (what an online follow-up visit follows up)",
)
async def add_offline_diagnosis(
    patient_id: uuid.UUID,
    body: OfflineDiagnosisIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> OfflineDiagnosisOut:
    async with db.transaction() as session:
        row = await service.add_offline_diagnosis(
            session, principal=principal, patient_id=patient_id, **body.model_dump()
        )
        return diagnosis_out(row)


@router.get("/patients/{patient_id}/offline-diagnoses", response_model=list[OfflineDiagnosisOut])
async def offline_diagnoses(
    patient_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[OfflineDiagnosisOut]:
    async with db.read() as session:
        return [
            diagnosis_out(r)
            for r in await service.offline_diagnoses(session, principal=principal, patient_id=patient_id)
        ]


@router.post(
    "/consultations",
    response_model=ConsultationDetailOut,
    status_code=201,
    summary="Request an online follow-up visit (rules R1, R3, R4, R10 apply)",
)
async def request_consultation(
    body: ConsultationIn, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> ConsultationDetailOut:
    async with db.transaction() as session:
        c = await service.request_consultation(session, principal=principal, **body.model_dump())
        return await consultation_detail(session, principal, c)


@router.get(
    "/consultations", response_model=list[ConsultationOut], summary="A doctor's inbox, or a patient's consultations"
)
async def list_consultations(
    status: ConsultationStatus | None = None,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> list[ConsultationOut]:
    async with db.transaction() as session:  # masked/unmasked names: reads of personal data are audited
        rows = await service.list_for(session, principal=principal, status=status)
        return await consultations_out(session, principal, rows, purpose="consultation_list")


@router.get("/consultations/{consultation_id}", response_model=ConsultationDetailOut)
async def get_consultation(
    consultation_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> ConsultationDetailOut:
    async with db.transaction() as session:
        c = await service.authorised(session, principal=principal, consultation_id=consultation_id)
        return await consultation_detail(session, principal, c)


async def _change(db: Database, principal: Principal, action, **kwargs) -> ConsultationOut:  # type: ignore[no-untyped-def]
    async with db.transaction() as session:
        c = await action(session, principal=principal, **kwargs)
        return (await consultations_out(session, principal, [c], purpose="consultation"))[0]


@router.post("/consultations/{consultation_id}/accept", response_model=ConsultationOut, summary="The doctor accepts")
async def accept(
    consultation_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> ConsultationOut:
    return await _change(db, principal, service.accept, consultation_id=consultation_id)


@router.post("/consultations/{consultation_id}/start", response_model=ConsultationOut, summary="The doctor starts")
async def start(
    consultation_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> ConsultationOut:
    return await _change(db, principal, service.start, consultation_id=consultation_id)


@router.post("/consultations/{consultation_id}/close", response_model=ConsultationOut, summary="The doctor closes")
async def close(
    consultation_id: uuid.UUID,
    body: ReasonIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> ConsultationOut:
    return await _change(db, principal, service.close, consultation_id=consultation_id, reason=body.reason)


@router.post("/consultations/{consultation_id}/reject", response_model=ConsultationOut, summary="The doctor declines")
async def reject(
    consultation_id: uuid.UUID,
    body: ReasonIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> ConsultationOut:
    return await _change(db, principal, service.reject, consultation_id=consultation_id, reason=body.reason)


@router.post("/consultations/{consultation_id}/cancel", response_model=ConsultationOut, summary="The patient cancels")
async def cancel(
    consultation_id: uuid.UUID,
    body: ReasonIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> ConsultationOut:
    return await _change(db, principal, service.cancel, consultation_id=consultation_id, reason=body.reason)


@router.post(
    "/consultations/{consultation_id}/handover",
    response_model=ConsultationOut,
    summary="The doctor passes the consultation to a colleague at the same hospital (R3/R4 apply to them)",
)
async def handover(
    consultation_id: uuid.UUID,
    body: HandoverIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> ConsultationOut:
    async with db.transaction() as session:
        c = await transfer.hand_over(session, principal=principal, consultation_id=consultation_id, **body.model_dump())
        # the answer goes to the doctor who handed over: they no longer see the patient unmasked
        return (await consultations_out(session, principal, [c], purpose="consultation"))[0]


@router.post(
    "/consultations/{consultation_id}/convert",
    response_model=ConvertOut,
    summary="The doctor books the patient an in-person visit and closes the consultation",
)
async def convert(
    consultation_id: uuid.UUID,
    body: ConvertIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> ConvertOut:
    async with db.transaction() as session:
        c, appt = await transfer.convert_to_visit(
            session, principal=principal, consultation_id=consultation_id, **body.model_dump()
        )
        out = (await consultations_out(session, principal, [c], purpose="consultation"))[0]
        return ConvertOut(consultation=out, appointment_id=appt.id, starts_at=appt.starts_at)


@router.post(
    "/consultations/{consultation_id}/attachments",
    response_model=AttachmentOut,
    status_code=201,
    summary="Upload an image or PDF (the pre-consultation form's, or one to send in the chat)",
)
async def upload_attachment(
    consultation_id: uuid.UUID,
    request: Request,
    file: UploadFile = File(..., description="JPEG, PNG, WebP or PDF"),
    purpose: AttachmentPurpose = Form(AttachmentPurpose.chat),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> AttachmentOut:
    limit = db.settings.max_attachment_bytes
    data = await file.read(limit + 1)
    async with db.transaction() as session:
        c = await service.authorised(session, principal=principal, consultation_id=consultation_id)
        row = await attachments.upload(
            session,
            request.app.state.files,
            principal=principal,
            consultation=c,
            purpose=purpose,
            filename=file.filename,
            declared_type=file.content_type,
            data=data,
            limit=limit,
        )
        return AttachmentOut.model_validate(chat.attachment_frame(row) | {"purpose": row.purpose, "side": row.side})


@router.get("/consultations/{consultation_id}/attachments", response_model=list[AttachmentOut])
async def list_attachments(
    consultation_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[AttachmentOut]:
    async with db.read() as session:
        c = await service.authorised(session, principal=principal, consultation_id=consultation_id)
        return [
            AttachmentOut.model_validate(chat.attachment_frame(a) | {"purpose": a.purpose, "side": a.side})
            for a in await attachments.listed(session, c)
        ]


@router.get(
    "/consultations/{consultation_id}/attachments/{attachment_id}",
    response_class=Response,
    summary="Download an attachment (audited)",
)
async def download_attachment(
    consultation_id: uuid.UUID,
    attachment_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> Response:
    async with db.transaction() as session:
        c = await service.authorised(session, principal=principal, consultation_id=consultation_id)
        row, data = await attachments.read(
            session, request.app.state.files, principal=principal, consultation=c, attachment_id=attachment_id
        )
    return file_response(data, row.content_type, f"attachment-{row.id.hex[:8]}")


def file_response(data: bytes, content_type: str, name: str) -> Response:
    """A sealed file, opened for one reader: never cached, never sniffed into another type."""
    return Response(
        data,
        media_type=content_type,
        headers={
            "Content-Disposition": f"inline; filename={name}",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


@router.post(
    "/patients/{patient_id}/offline-diagnoses/{diagnosis_id}/document",
    response_model=OfflineDiagnosisOut,
    summary="Attach the document behind an offline diagnosis (JPEG, PNG, WebP or PDF; replaces an earlier one)",
)
async def attach_diagnosis_document(
    patient_id: uuid.UUID,
    diagnosis_id: uuid.UUID,
    request: Request,
    file: UploadFile = File(..., description="JPEG, PNG, WebP or PDF"),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> OfflineDiagnosisOut:
    limit = db.settings.max_attachment_bytes
    data = await file.read(limit + 1)
    async with db.transaction() as session:
        row = await attachments.attach_document(
            session,
            request.app.state.files,
            principal=principal,
            patient_id=patient_id,
            diagnosis_id=diagnosis_id,
            filename=file.filename,
            declared_type=file.content_type,
            data=data,
            limit=limit,
        )
        return diagnosis_out(row)


@router.get(
    "/offline-diagnoses/{diagnosis_id}/document",
    response_class=Response,
    summary="Read an offline diagnosis's document (the patient's accounts; a doctor following it up). Audited",
)
async def read_diagnosis_document(
    diagnosis_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> Response:
    async with db.transaction() as session:
        row, data = await attachments.read_document(
            session, request.app.state.files, principal=principal, diagnosis_id=diagnosis_id
        )
        content_type = row.document_content_type or "application/octet-stream"
    return file_response(data, content_type, f"diagnosis-{row.id.hex[:8]}")


@router.get(
    "/consultations/{consultation_id}/messages",
    response_model=ChatHistoryOut,
    summary="The chat's messages after a number, oldest first (the WebSocket sends the same on connecting)",
)
async def messages(
    consultation_id: uuid.UUID,
    after: int = Query(0, ge=0),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> ChatHistoryOut:
    async with db.transaction() as session:  # audited read of personal data
        c = await service.authorised(session, principal=principal, consultation_id=consultation_id)
        await service.audit_chat_read(session, principal, c, after=after)
        items = await chat.history(session, c.id, after=after)
        return ChatHistoryOut(
            messages=items,
            last_seq=c.last_seq,
            read={"patient": c.patient_read_seq, "doctor": c.doctor_read_seq},
        )
