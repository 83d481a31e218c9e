"""Ratings and complaints (consultations.feedback)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends

from carebridge.auth.dependencies import current_principal, get_db
from carebridge.auth.principal import Principal
from carebridge.consultations import feedback
from carebridge.consultations.schemas import ComplaintIn, ComplaintOut, RatingIn, RatingOut
from carebridge.database.engine import Database

router = APIRouter(tags=["feedback"])  # included by consultations.api under /api/v1


@router.post(
    "/consultations/{consultation_id}/rating",
    response_model=RatingOut,
    status_code=201,
    summary="The patient rates a closed consultation (once)",
)
async def rate(
    consultation_id: uuid.UUID,
    body: RatingIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> RatingOut:
    async with db.transaction() as session:
        row = await feedback.rate(
            session,
            principal=principal,
            consultation_id=consultation_id,
            stars=body.stars,
            tags=list(body.tags),
            comment=body.comment,
        )
        return RatingOut.model_validate(row)


@router.get("/consultations/{consultation_id}/rating", response_model=RatingOut, summary="A consultation's rating")
async def rating(
    consultation_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> RatingOut:
    async with db.read() as session:
        return RatingOut.model_validate(
            await feedback.rating_of(session, principal=principal, consultation_id=consultation_id)
        )


@router.post(
    "/consultations/{consultation_id}/complaints",
    response_model=ComplaintOut,
    status_code=201,
    summary="The patient files a complaint; the regulator opens a case for it",
)
async def file_complaint(
    consultation_id: uuid.UUID,
    body: ComplaintIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> ComplaintOut:
    async with db.transaction() as session:
        row = await feedback.file_complaint(
            session, principal=principal, consultation_id=consultation_id, category=body.category, text=body.text
        )
        return ComplaintOut.model_validate(feedback.shape(row))


@router.get("/complaints", response_model=list[ComplaintOut], summary="The complaints you filed")
async def my_complaints(
    principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[ComplaintOut]:
    async with db.read() as session:
        return [
            ComplaintOut.model_validate(feedback.shape(r))
            for r in await feedback.my_complaints(session, principal=principal)
        ]


@router.get(
    "/complaints/{complaint_id}",
    response_model=ComplaintOut,
    summary="A complaint with its words: its patient, the hospital's admins, regulators covering it (audited)",
)
async def read_complaint(
    complaint_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> ComplaintOut:
    async with db.transaction() as session:  # the read writes its audit record
        return ComplaintOut.model_validate(
            feedback.shape(await feedback.read_complaint(session, principal=principal, complaint_id=complaint_id))
        )
