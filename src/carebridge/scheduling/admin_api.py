"""Hospital-admin scheduling endpoints: visit types, schedules and templates, pools, rules, no-show credit."""

from __future__ import annotations

import uuid
from datetime import date

from fastapi import APIRouter, Depends
from sqlalchemy import select

from carebridge.auth.dependencies import get_db, require
from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.database.engine import Database
from carebridge.directory import service as directory
from carebridge.patients import service as patients
from carebridge.scheduling import credit, pools, rules, schedules, sweeps, templates
from carebridge.scheduling.models import Appointment
from carebridge.scheduling.present import appointments_out, schedules_out
from carebridge.scheduling.schemas import (
    AppointmentOut,
    BlockOut,
    EffectiveRulesOut,
    ExemptionIn,
    ExemptionOut,
    GenerateIn,
    LiftIn,
    MoveIn,
    NoShowPolicyIn,
    NoShowPolicyOut,
    RulesIn,
    RulesOut,
    ScheduleIn,
    ScheduleOut,
    StopIn,
    TemplateIn,
    TemplateOut,
    TemplatePatch,
    VisitTypeIn,
    VisitTypeOut,
)

router = APIRouter(tags=["hospital admin"])
admins = require(Role.hospital_admin, Role.platform_admin)


def _scoped(principal: Principal, hospital_id: uuid.UUID) -> None:
    principal.require_hospital(hospital_id)


@router.post("/hospitals/{hospital_id}/visit-types", response_model=VisitTypeOut, status_code=201)
async def create_visit_type(
    hospital_id: uuid.UUID, body: VisitTypeIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> VisitTypeOut:
    async with db.transaction() as session:
        vt = await schedules.create_visit_type(
            session, principal=principal, hospital_id=hospital_id, **body.model_dump()
        )
    return VisitTypeOut.model_validate(vt)


@router.get("/hospitals/{hospital_id}/visit-types", response_model=list[VisitTypeOut], tags=["scheduling"])
async def list_visit_types(hospital_id: uuid.UUID, db: Database = Depends(get_db)) -> list[VisitTypeOut]:
    async with db.read() as session:
        return [
            VisitTypeOut.model_validate(v) for v in await schedules.list_visit_types(session, hospital_id=hospital_id)
        ]


@router.post("/hospitals/{hospital_id}/schedules", response_model=ScheduleOut, status_code=201)
async def create_schedule(
    hospital_id: uuid.UUID, body: ScheduleIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> ScheduleOut:
    _scoped(principal, hospital_id)
    async with db.transaction() as session:
        schedule = await schedules.create_schedule(
            session, hospital_id=hospital_id, spec=schedules.ScheduleSpec(**body.model_dump()), actor=principal
        )
        hospital = await directory.get_hospital(session, hospital_id)
        found = await schedules.pools_by_schedule(session, [schedule.id])
        slots = {schedule.id: await schedules.slots_of(session, schedule.id)}
        return (
            await schedules_out(session, [schedule], found, slots, channels=None, tz={hospital_id: hospital.timezone})
        )[0]


@router.get(
    "/hospitals/{hospital_id}/schedules",
    response_model=list[ScheduleOut],
    summary="The hospital's sessions with every pool (admins)",
)
async def admin_schedules(
    hospital_id: uuid.UUID,
    date_from: date,
    date_to: date,
    department_id: uuid.UUID | None = None,
    practitioner_id: uuid.UUID | None = None,
    include_stopped: bool = True,
    with_slots: bool = False,
    principal: Principal = Depends(admins),
    db: Database = Depends(get_db),
) -> list[ScheduleOut]:
    _scoped(principal, hospital_id)
    from carebridge.scheduling.api import _range

    start, end = _range(date_from, date_to)
    async with db.read() as session:
        hospital = await directory.get_hospital(session, hospital_id)
        rows = await schedules.schedules_for(
            session,
            hospital_id=hospital_id,
            department_id=department_id,
            practitioner_id=practitioner_id,
            date_from=start,
            date_to=end,
            include_stopped=include_stopped,
        )
        found = await schedules.pools_by_schedule(session, [s.id for s in rows])
        slots = {s.id: await schedules.slots_of(session, s.id) for s in rows} if with_slots else None
        return await schedules_out(session, rows, found, slots, channels=None, tz={hospital_id: hospital.timezone})


@router.get("/hospitals/{hospital_id}/schedules/{schedule_id}", response_model=ScheduleOut)
async def admin_schedule(
    hospital_id: uuid.UUID,
    schedule_id: uuid.UUID,
    principal: Principal = Depends(admins),
    db: Database = Depends(get_db),
) -> ScheduleOut:
    _scoped(principal, hospital_id)
    async with db.read() as session:
        schedule = await schedules.get_schedule(session, schedule_id)
        if schedule.hospital_id != hospital_id:
            from carebridge.core.errors import not_found

            raise not_found("schedule", schedule_id)
        hospital = await directory.get_hospital(session, hospital_id)
        found = await schedules.pools_by_schedule(session, [schedule_id])
        slots = {schedule_id: await schedules.slots_of(session, schedule_id)}
        return (
            await schedules_out(session, [schedule], found, slots, channels=None, tz={hospital_id: hospital.timezone})
        )[0]


@router.post(
    "/schedules/{schedule_id}/stop", summary="Stop a session (leave): cancels its bookings, tells the patients"
)
async def stop_schedule(
    schedule_id: uuid.UUID, body: StopIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> dict[str, int]:
    from carebridge.scheduling import visits

    async with db.transaction() as session:
        cancelled = await visits.stop_schedule(
            session, principal=principal, schedule_id=schedule_id, reason=body.reason
        )
    return {"cancelled_appointments": cancelled}


@router.post("/schedules/{schedule_id}/pools/move", summary="Move unbooked capacity between channel pools")
async def move_capacity(
    schedule_id: uuid.UUID, body: MoveIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> dict[str, int]:
    async with db.transaction() as session:
        changed = await pools.move_capacity(session, principal=principal, schedule_id=schedule_id, **body.model_dump())
    return {"slots_changed": changed}


@router.post("/hospitals/{hospital_id}/schedule-templates", response_model=TemplateOut, status_code=201)
async def create_template(
    hospital_id: uuid.UUID, body: TemplateIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> TemplateOut:
    fields = body.model_dump()
    fields["session_name"] = fields.pop("session")
    async with db.transaction() as session:
        template = await templates.create_template(session, principal=principal, hospital_id=hospital_id, **fields)
    return TemplateOut.model_validate(template)


@router.get("/hospitals/{hospital_id}/schedule-templates", response_model=list[TemplateOut])
async def list_templates(
    hospital_id: uuid.UUID, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> list[TemplateOut]:
    _scoped(principal, hospital_id)
    async with db.read() as session:
        return [TemplateOut.model_validate(t) for t in await templates.list_templates(session, hospital_id=hospital_id)]


@router.patch("/schedule-templates/{template_id}", response_model=TemplateOut)
async def update_template(
    template_id: uuid.UUID, body: TemplatePatch, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> TemplateOut:
    async with db.transaction() as session:
        template = await templates.update_template(
            session, principal=principal, template_id=template_id, changes=body.model_dump(exclude_unset=True)
        )
    return TemplateOut.model_validate(template)


@router.post("/hospitals/{hospital_id}/schedules/generate", summary="Create schedules from the weekly templates")
async def generate(
    hospital_id: uuid.UUID, body: GenerateIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> dict[str, int]:
    _scoped(principal, hospital_id)
    async with db.transaction() as session:
        await directory.get_hospital(session, hospital_id)
        created = await templates.generate_schedules(
            session, hospital_id=hospital_id, start=body.start, days=body.days, actor_user_id=principal.user_id
        )
    return {"created": created}


@router.get(
    "/hospitals/{hospital_id}/booking-rules",
    response_model=list[RulesOut],
    summary="The hospital's rules and each department's overrides",
)
async def get_rules(
    hospital_id: uuid.UUID, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> list[RulesOut]:
    _scoped(principal, hospital_id)
    async with db.read() as session:
        return [RulesOut.model_validate(r) for r in await rules.rule_rows(session, hospital_id=hospital_id)]


@router.get(
    "/departments/{department_id}/booking-rules/effective",
    response_model=EffectiveRulesOut,
    tags=["scheduling"],
    summary="The rules that apply to bookings in a department (public)",
)
async def effective(department_id: uuid.UUID, db: Database = Depends(get_db)) -> EffectiveRulesOut:
    async with db.read() as session:
        department = await directory.get_department(session, department_id)
        found = await rules.effective_rules(session, hospital_id=department.hospital_id, department_id=department_id)
    return EffectiveRulesOut.model_validate(found)


@router.put("/hospitals/{hospital_id}/booking-rules", response_model=RulesOut)
async def set_hospital_rules(
    hospital_id: uuid.UUID, body: RulesIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> RulesOut:
    async with db.transaction() as session:
        await directory.get_hospital(session, hospital_id)
        row = await rules.set_rules(
            session,
            principal=principal,
            hospital_id=hospital_id,
            department_id=None,
            changes=body.model_dump(exclude_unset=True),
        )
    return RulesOut.model_validate(row)


@router.put(
    "/departments/{department_id}/booking-rules",
    response_model=RulesOut,
    summary="Override rules for one department (null = as the hospital)",
)
async def set_department_rules(
    department_id: uuid.UUID, body: RulesIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> RulesOut:
    async with db.transaction() as session:
        department = await directory.get_department(session, department_id)
        row = await rules.set_rules(
            session,
            principal=principal,
            hospital_id=department.hospital_id,
            department_id=department_id,
            changes=body.model_dump(exclude_unset=True),
        )
    return RulesOut.model_validate(row)


@router.get("/hospitals/{hospital_id}/no-show-policy", response_model=NoShowPolicyOut)
async def get_policy(
    hospital_id: uuid.UUID, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> NoShowPolicyOut:
    _scoped(principal, hospital_id)
    async with db.read() as session:
        return NoShowPolicyOut.model_validate(await rules.no_show_policy(session, hospital_id=hospital_id))


@router.put("/hospitals/{hospital_id}/no-show-policy", response_model=NoShowPolicyOut)
async def set_policy(
    hospital_id: uuid.UUID, body: NoShowPolicyIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> NoShowPolicyOut:
    async with db.transaction() as session:
        await directory.get_hospital(session, hospital_id)
        policy = await rules.set_no_show_policy(
            session,
            principal=principal,
            hospital_id=hospital_id,
            changes=body.model_dump(exclude_unset=True, exclude_none=True),
        )
    return NoShowPolicyOut.model_validate(policy)


@router.get("/hospitals/{hospital_id}/booking-blocks", response_model=list[BlockOut], summary="The no-show list")
async def list_blocks(
    hospital_id: uuid.UUID,
    include_lifted: bool = False,
    principal: Principal = Depends(admins),
    db: Database = Depends(get_db),
) -> list[BlockOut]:
    async with db.read() as session:
        blocks = await credit.list_blocks(
            session, principal=principal, hospital_id=hospital_id, include_lifted=include_lifted
        )
        people = await patients.describe(
            session, principal=principal, patient_ids=[b.patient_id for b in blocks], purpose="no_show_list"
        )
    out = []
    for block in blocks:
        item = BlockOut.model_validate(block)
        item.patient_name = people[block.patient_id].name if block.patient_id in people else None
        out.append(item)
    return out


@router.post("/booking-blocks/{block_id}/lift", response_model=BlockOut, summary="Lift a no-show block, with a reason")
async def lift_block(
    block_id: uuid.UUID, body: LiftIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> BlockOut:
    async with db.transaction() as session:
        return BlockOut.model_validate(
            await credit.lift_block(session, principal=principal, block_id=block_id, reason=body.reason)
        )


@router.get("/hospitals/{hospital_id}/no-show-exemptions", response_model=list[ExemptionOut])
async def list_exemptions(
    hospital_id: uuid.UUID, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> list[ExemptionOut]:
    async with db.read() as session:
        return [
            ExemptionOut.model_validate(e)
            for e in await credit.list_exemptions(session, principal=principal, hospital_id=hospital_id)
        ]


@router.post(
    "/hospitals/{hospital_id}/no-show-exemptions",
    response_model=ExemptionOut,
    status_code=201,
    summary="Whitelist a patient: their no-shows never block them here",
)
async def add_exemption(
    hospital_id: uuid.UUID, body: ExemptionIn, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> ExemptionOut:
    async with db.transaction() as session:
        await patients.facts(session, body.patient_id)
        return ExemptionOut.model_validate(
            await credit.add_exemption(session, principal=principal, hospital_id=hospital_id, **body.model_dump())
        )


@router.get(
    "/hospitals/{hospital_id}/appointments",
    response_model=list[AppointmentOut],
    summary="The hospital's appointments on a day (admins; patient names masked)",
)
async def hospital_appointments(
    hospital_id: uuid.UUID, service_date: date, principal: Principal = Depends(admins), db: Database = Depends(get_db)
) -> list[AppointmentOut]:
    _scoped(principal, hospital_id)
    async with db.read() as session:
        rows = (
            await session.scalars(
                select(Appointment)
                .where(Appointment.hospital_id == hospital_id, Appointment.service_date == service_date)
                .order_by(Appointment.starts_at)
                .limit(2000)
            )
        ).all()
        return await appointments_out(session, principal, rows, purpose="hospital_list")


@router.post("/ops/sweep", summary="Run the scheduling sweeps now (platform admins; they also run on a timer)")
async def sweep_now(
    principal: Principal = Depends(require(Role.platform_admin)), db: Database = Depends(get_db)
) -> dict[str, int]:
    return await sweeps.run_all(db)
