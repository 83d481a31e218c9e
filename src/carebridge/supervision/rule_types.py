"""Rule types: the code that knows how to check one kind of thing. Rule *instances* (``models.Rule`` rows) pick a
type and give it parameters, a severity and a scope; regulators edit those, never this code.

A type declares the events it reads, its parameter model, and what it needs before it can decide: facts about
other subjects (``facts``), a per-day count (``counter``). The engine fetches those for a whole batch at once,
then calls ``evaluate`` event by event in order. ``evaluate`` returns violations and may set or cancel timers
through the context; ``on_timer`` turns a timer that came due into a violation. The same ``evaluate`` serves
the pre-check (``ctx.precheck`` is true: nothing is written, counts include the proposed action).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from carebridge.events.outbox import Event

if TYPE_CHECKING:
    from carebridge.supervision.engine import EvalContext

GROUP_BY = ("practitioner", "hospital", "patient", "subject")


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NoParams(Params):
    pass


@dataclass(slots=True)
class Violation:
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)  # event ids besides the one being evaluated


@dataclass(frozen=True, slots=True)
class CounterSpec:
    subject_key: str
    day: date
    window_days: int


@dataclass(slots=True)
class TimerDue:
    """A timer that came due, as the engine hands it to ``on_timer``."""

    key: str
    subject_type: str
    subject_id: str
    evidence: list[str]
    details: dict[str, Any]
    due_at: datetime


class RuleType:
    name: ClassVar[str]
    regulation: ClassVar[str | None]
    title: ClassVar[str]
    events: ClassVar[frozenset[str]]
    params: ClassVar[type[Params]] = NoParams
    group_by: ClassVar[str] = "practitioner"
    precheck: ClassVar[bool] = True  # meaningful before the action happens
    source: ClassVar[str] = "event"  # what its warnings and cases say they came from

    def facts(self, ev: Event) -> Iterable[str]:
        return ()

    def counter(self, params: Any, ev: Event) -> CounterSpec | None:
        return None

    def evaluate(self, params: Any, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        raise NotImplementedError

    def on_timer(self, params: Any, timer: TimerDue) -> Violation | None:
        return None


REGISTRY: dict[str, RuleType] = {}


def register(cls: type[RuleType]) -> type[RuleType]:
    REGISTRY[cls.name] = cls()
    return cls


def _get(data: dict[str, Any], *path: str) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _items(ev: Event) -> list[dict[str, Any]]:
    items = ev.data.get("items")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _category(icd10: str) -> str:
    return icd10.strip().upper()[:3]


# --- consultations --------------------------------------------------------------------------------------------


@register
class FirstVisitOnline(RuleType):
    name = "first_visit_online"
    regulation = "R1"
    title = "An online visit must follow up a diagnosis made in person"
    events = frozenset({"consultation.requested"})
    group_by = "hospital"

    def evaluate(self, params: NoParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        if not ev.data.get("follows_up_icd10"):
            yield Violation("online consultation without an offline diagnosis on record (a first visit online)")


class PracticeYearsParams(Params):
    min_years: int = Field(default=3, ge=0, le=50)


@register
class PracticeYears(RuleType):
    name = "practice_years"
    regulation = "R3"
    title = "The doctor has practised independently for at least N years"
    events = frozenset({"consultation.requested", "consultation.accepted"})
    params = PracticeYearsParams

    def evaluate(self, params: PracticeYearsParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        years = ev.data.get("practice_years")
        if isinstance(years, int) and years < params.min_years:
            yield Violation(
                f"the doctor has {years} years of independent practice; {params.min_years} are required",
                {"years": years, "required": params.min_years},
            )


@register
class PractitionerNotActive(RuleType):
    name = "practitioner_not_active"
    regulation = "R3"
    title = "The doctor's licence is active"
    events = frozenset({"consultation.requested", "consultation.accepted"})

    def evaluate(self, params: NoParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        status = ev.data.get("practitioner_status")
        if status is not None and status != "active":
            yield Violation(f"the doctor's practice status is {status}", {"status": status})


@register
class FilingMissing(RuleType):
    name = "filing_missing"
    regulation = "R4"
    title = "The doctor has a current (main or multi-site) filing at the internet hospital"
    events = frozenset({"consultation.requested", "consultation.accepted"})

    def evaluate(self, params: NoParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        if "filing_kind" in ev.data and ev.data["filing_kind"] is None:
            yield Violation("the doctor has no current filing at this hospital")


@register
class IdentityUnverified(RuleType):
    name = "identity_unverified"
    regulation = "R6"
    title = "The patient's identity is real-name verified"
    events = frozenset({"consultation.requested"})
    group_by = "hospital"

    def evaluate(self, params: NoParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        if ev.data.get("identity_verified") is False:
            yield Violation("the patient's identity is not real-name verified")


class GuardianParams(Params):
    under_age: int = Field(default=6, ge=1, le=18)


@register
class GuardianMissing(RuleType):
    name = "guardian_missing"
    regulation = "R10"
    title = "A young child consults with a guardian"
    events = frozenset({"consultation.requested"})
    params = GuardianParams

    def evaluate(self, params: GuardianParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        age = ev.data.get("patient_age_years")
        if isinstance(age, int) and age < params.under_age and ev.data.get("guardian_named") is False:
            yield Violation(
                f"a child of {age} consults without a named guardian", {"age": age, "under_age": params.under_age}
            )


@register
class HospitalLicenceExpired(RuleType):
    name = "hospital_licence_expired"
    regulation = "R18"
    title = "The hospital's internet-hospital licence is current"
    events = frozenset({"consultation.requested", "consultation.accepted", "prescription.signed"})
    group_by = "hospital"

    def evaluate(self, params: NoParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        hospital = ctx.hospital
        if hospital is None or hospital.licence_expires_on is None:
            return
        if hospital.licence_expires_on < ctx.local_day(ev.occurred_at):
            yield Violation(
                f"the hospital's licence expired on {hospital.licence_expires_on.isoformat()}",
                {"licence_expires_on": hospital.licence_expires_on.isoformat()},
            )


class VerificationParams(Params):
    months: int = Field(default=12, ge=1, le=60)


@register
class LicenceUnverified(RuleType):
    """Fed by the hospital registry (``hospital.registered`` / ``hospital.changed``): the verification date
    sets a timer ``months`` later; a new verification moves it."""

    name = "licence_unverified"
    regulation = "R18"
    title = "The hospital's licence was verified within the last N months"
    events = frozenset({"hospital.registered", "hospital.changed"})
    params = VerificationParams
    group_by = "hospital"
    precheck = False

    def evaluate(self, params: VerificationParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        hospital = ctx.hospital
        if hospital is None or not hospital.is_internet_hospital:
            return
        key = f"hospital:{hospital.id}"
        if hospital.licence_verified_on is None:
            ctx.cancel_timer(key)
            yield Violation("the hospital's licence has never been verified")
            return
        due_day = _add_months(hospital.licence_verified_on, params.months)
        due = datetime.combine(due_day, datetime.min.time(), tzinfo=ev.occurred_at.tzinfo)
        ctx.reset_timer(
            key, due, details={"verified_on": hospital.licence_verified_on.isoformat(), "months": params.months}
        )

    def on_timer(self, params: VerificationParams, timer: TimerDue) -> Violation | None:
        return Violation(
            f"the hospital's licence was last verified on {timer.details.get('verified_on')}, more than "
            f"{timer.details.get('months')} months ago",
            dict(timer.details),
        )


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


# --- signatures, prescriptions ---------------------------------------------------------------------------------


@register
class SignedByDoctorAccount(RuleType):
    name = "signed_by_doctor_account"
    regulation = "R5"
    title = "Records and prescriptions are signed by the doctor in person, never by software"
    events = frozenset({"prescription.signed", "record.signed", "record.amended"})

    def evaluate(self, params: NoParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        if not (ev.actor or "").startswith("doctor:"):
            yield Violation(f"signed by {ev.actor or 'nobody'}, not by a doctor's own account", {"actor": ev.actor})
        elif not ev.data.get("content_sha256"):
            yield Violation("no signature over the content")


@register
class PrescriberNotTreating(RuleType):
    name = "prescriber_not_treating"
    regulation = "R7"
    title = "The prescription is written by the doctor treating the consultation"
    events = frozenset({"prescription.signed"})

    def facts(self, ev: Event) -> Iterable[str]:
        if ev.data.get("consultation_id"):
            yield f"consultation:{ev.data['consultation_id']}"

    def evaluate(self, params: NoParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        consultation = ctx.fact(f"consultation:{ev.data.get('consultation_id')}")
        if consultation and consultation.get("practitioner_id") != ev.data.get("practitioner_id"):
            yield Violation(
                "the prescription's doctor is not the doctor of the consultation",
                {"consultation_practitioner_id": consultation.get("practitioner_id")},
                evidence=[e for e in [consultation.get("event_id")] if e],
            )


@register
class DiagnosisNotFollowedUp(RuleType):
    name = "diagnosis_not_followed_up"
    regulation = "R2"
    title = "A prescription treats the condition diagnosed offline"
    events = frozenset({"prescription.signed"})

    def facts(self, ev: Event) -> Iterable[str]:
        if ev.data.get("consultation_id"):
            yield f"consultation:{ev.data['consultation_id']}"

    def evaluate(self, params: NoParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        consultation = ctx.fact(f"consultation:{ev.data.get('consultation_id')}")
        followed = (consultation or {}).get("follows_up_icd10")
        diagnoses = [d for d in ev.data.get("diagnoses") or [] if isinstance(d, str)]
        if followed and diagnoses and _category(followed) not in {_category(d) for d in diagnoses}:
            yield Violation(
                f"prescribed for {', '.join(diagnoses)}; the visit follows up {followed}",
                {"diagnoses": diagnoses, "follows_up_icd10": followed},
            )


class ItemsParams(Params):
    max_items: int = Field(default=5, ge=1, le=50)


@register
class TooManyItems(RuleType):
    name = "too_many_items"
    regulation = "R11"
    title = "At most N drugs on one prescription"
    events = frozenset({"prescription.signed"})
    params = ItemsParams

    def evaluate(self, params: ItemsParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        n = len(_items(ev))
        if n > params.max_items:
            yield Violation(f"{n} drugs on one prescription; at most {params.max_items}", {"items": n})


class SupplyParams(Params):
    ordinary_days: int = Field(default=7, ge=1, le=365)
    long_term_days: int = Field(default=84, ge=1, le=365)


@register
class SupplyDays(RuleType):
    name = "supply_days"
    regulation = "R12"
    title = "Supply limits: ordinary prescriptions N days, long prescriptions for chronic disease M days"
    events = frozenset({"prescription.signed"})
    params = SupplyParams

    def evaluate(self, params: SupplyParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        limit = params.long_term_days if ev.data.get("long_term") else params.ordinary_days
        over = [i for i in _items(ev) if isinstance(i.get("days"), int) and i["days"] > limit]
        if over:
            yield Violation(
                f"{len(over)} line(s) supply more than {limit} days",
                {"lines": [i.get("line") for i in over], "limit_days": limit},
            )


class SpecialDrugParams(Params):
    classes: list[str] = Field(
        default_factory=lambda: ["narcotic", "psychotropic_1", "psychotropic_2", "toxic", "radioactive"],
        max_length=20,
    )


@register
class SpecialControlDrug(RuleType):
    name = "special_control_drug"
    regulation = "R9"
    title = "No narcotic, psychotropic or other special-control drugs online"
    events = frozenset({"prescription.signed"})
    params = SpecialDrugParams

    def evaluate(self, params: SpecialDrugParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        hits = [i for i in _items(ev) if i.get("special_control") in params.classes]
        if hits:
            yield Violation(
                "special-control drug prescribed online: " + ", ".join(str(i.get("substance")) for i in hits),
                {"lines": [i.get("line") for i in hits], "classes": sorted({str(i["special_control"]) for i in hits})},
            )


class AttemptParams(Params):
    codes: list[str] = Field(default_factory=lambda: ["special_control_drug"], min_length=1, max_length=20)


@register
class BlockedAttempt(RuleType):
    """Saved drafts the platform's own checks blocked (``prescription.checked``): attempts, kept visible."""

    name = "blocked_attempt"
    regulation = "R9"
    title = "Attempts to prescribe what the checks block (e.g. special-control drugs)"
    events = frozenset({"prescription.checked"})
    params = AttemptParams
    precheck = False

    def evaluate(self, params: AttemptParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        blocks = [b for b in ev.data.get("blocks") or [] if b in params.codes]
        if blocks:
            yield Violation("a draft prescription was blocked: " + ", ".join(blocks), {"blocks": blocks})


class AntibioticParams(Params):
    grades: list[str] = Field(default_factory=lambda: ["special"], min_length=1, max_length=3)


@register
class RestrictedAntibiotic(RuleType):
    name = "restricted_antibiotic"
    regulation = "R9"
    title = "Special-grade antibiotics are not prescribed online"
    events = frozenset({"prescription.signed"})
    params = AntibioticParams

    def evaluate(self, params: AntibioticParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        hits = [i for i in _items(ev) if i.get("antibiotic_grade") in params.grades]
        if hits:
            yield Violation(
                "antibiotic of a restricted grade: " + ", ".join(str(i.get("substance")) for i in hits),
                {"lines": [i.get("line") for i in hits]},
            )


class AmountParams(Params):
    max_total_fen: int = Field(default=50_000, ge=0, le=100_000_000)


@register
class HighValuePrescription(RuleType):
    name = "high_value_prescription"
    regulation = "R13"
    title = "High-value prescriptions are flagged"
    events = frozenset({"prescription.signed"})
    params = AmountParams

    def evaluate(self, params: AmountParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        total = ev.data.get("total_fen")
        if isinstance(total, int) and total > params.max_total_fen:
            yield Violation(
                f"prescription total {total / 100:.2f} yuan is above {params.max_total_fen / 100:.2f}",
                {"total_fen": total, "max_total_fen": params.max_total_fen},
            )


class QuantityParams(Params):
    max_quantity: int = Field(default=10, ge=1, le=10_000)


@register
class ExcessQuantity(RuleType):
    name = "excess_quantity"
    regulation = "R13"
    title = "Excess quantities on a prescription line are flagged"
    events = frozenset({"prescription.signed"})
    params = QuantityParams

    def evaluate(self, params: QuantityParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        over = [i for i in _items(ev) if isinstance(i.get("quantity"), int) and i["quantity"] > params.max_quantity]
        if over:
            yield Violation(
                f"{len(over)} line(s) dispense more than {params.max_quantity} units",
                {"lines": [i.get("line") for i in over], "max_quantity": params.max_quantity},
            )


class VolumeParams(Params):
    max_per_day: int = Field(default=100, ge=1, le=100_000)


@register
class DailyPrescriptionVolume(RuleType):
    name = "daily_prescription_volume"
    regulation = "R13"
    title = "Prescriptions a doctor signs in one day stay under N"
    events = frozenset({"prescription.signed"})
    params = VolumeParams

    def counter(self, params: VolumeParams, ev: Event) -> CounterSpec | None:
        practitioner = ev.data.get("practitioner_id")
        return CounterSpec(f"practitioner:{practitioner}", ev.occurred_at.date(), 1) if practitioner else None

    def evaluate(self, params: VolumeParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        before, after = ctx.count()
        if before <= params.max_per_day < after:
            yield Violation(
                f"more than {params.max_per_day} prescriptions signed by one doctor in a day",
                {"count": after, "max_per_day": params.max_per_day},
            )


@register
class RationalityOverride(RuleType):
    name = "rationality_override"
    regulation = "R14"
    title = "Medication warnings the doctor overrode when signing"
    events = frozenset({"prescription.signed"})

    def evaluate(self, params: NoParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        overrides = [o for o in ev.data.get("overrides") or [] if isinstance(o, str)]
        if overrides:
            yield Violation("signed over medication warnings: " + ", ".join(overrides), {"overrides": overrides})


# --- records -----------------------------------------------------------------------------------------------------


class HoursParams(Params):
    hours: int = Field(default=24, ge=1, le=24 * 30)


@register
class RecordLate(RuleType):
    name = "record_late"
    regulation = "R15"
    title = "The record is signed within N hours of the consultation"
    events = frozenset({"record.signed"})
    params = HoursParams

    def evaluate(self, params: HoursParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        hours = ev.data.get("hours_after_consultation")
        if isinstance(hours, int | float) and hours > params.hours:
            yield Violation(
                f"record signed {hours:.1f} hours after the consultation; the limit is {params.hours}",
                {"hours": hours, "limit_hours": params.hours},
            )


@register
class RecordMissing(RuleType):
    name = "record_missing"
    regulation = "R15"
    title = "A closed consultation gets a signed record within N hours"
    events = frozenset({"consultation.closed", "record.signed"})
    params = HoursParams
    precheck = False

    def evaluate(self, params: HoursParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        consultation_id = ev.data.get("consultation_id")
        if ev.type == "record.signed":
            ctx.cancel_timer(f"consultation:{consultation_id}")
        else:
            ctx.set_timer(
                f"consultation:{consultation_id}",
                ev.occurred_at + timedelta(hours=params.hours),
                details={"hours": params.hours, "closed_at": ev.occurred_at.isoformat()},
            )
        return ()

    def on_timer(self, params: HoursParams, timer: TimerDue) -> Violation | None:
        return Violation(
            f"no signed record {timer.details.get('hours')} hours after the consultation closed", dict(timer.details)
        )


# --- dispensing and delivery -----------------------------------------------------------------------------------


@register
class DispensedBeforeApproval(RuleType):
    name = "dispensed_before_approval"
    regulation = "R8"
    title = "Drugs leave the pharmacy only after a pharmacist approved the prescription"
    events = frozenset({"delivery.created", "delivery.dispensed", "delivery.shipped"})
    group_by = "hospital"

    def facts(self, ev: Event) -> Iterable[str]:
        if ev.data.get("prescription_id"):
            yield f"prescription:{ev.data['prescription_id']}"

    def evaluate(self, params: NoParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        prescription = ctx.fact(f"prescription:{ev.data.get('prescription_id')}")
        if prescription is not None and prescription.get("status") not in ("approved",):
            yield Violation(
                f"{ev.type} while the prescription is {prescription.get('status')}",
                {"prescription_status": prescription.get("status")},
            )


class DaysParams(Params):
    days: int = Field(default=7, ge=1, le=90)


@register
class DeliveryNotTraced(RuleType):
    name = "delivery_not_traced"
    regulation = "R19"
    title = "A shipped delivery is traced to hand-over (or return) within N days"
    events = frozenset({"delivery.shipped", "delivery.delivered", "delivery.returned"})
    params = DaysParams
    group_by = "hospital"
    precheck = False

    def evaluate(self, params: DaysParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        key = f"delivery:{ev.data.get('delivery_id')}"
        if ev.type == "delivery.shipped":
            ctx.set_timer(key, ev.occurred_at + timedelta(days=params.days), details={"days": params.days})
        else:
            ctx.cancel_timer(key)
        return ()

    def on_timer(self, params: DaysParams, timer: TimerDue) -> Violation | None:
        return Violation(f"shipped {timer.details.get('days')} days ago and never handed over", dict(timer.details))


class GraceParams(Params):
    minutes: int = Field(default=10, ge=1, le=24 * 60)


@register
class TraceGap(RuleType):
    """R17: every step is reported. A prescription whose consultation was never reported, or a delivery whose
    prescription was never reported, is a gap, once a grace period has passed (reports may arrive out of
    order)."""

    name = "trace_gap"
    regulation = "R17"
    title = "Every step of online care is reported: no prescription without its consultation, no delivery "
    "without its prescription"
    events = frozenset(
        {
            "consultation.requested",
            "prescription.signed",
            "record.signed",
            "delivery.created",
            "delivery.dispensed",
            "delivery.shipped",
        }
    )
    params = GraceParams
    group_by = "hospital"
    precheck = False

    def facts(self, ev: Event) -> Iterable[str]:
        needed = self._needs(ev)
        if needed:
            yield needed

    @staticmethod
    def _needs(ev: Event) -> str | None:
        if ev.type in ("prescription.signed", "record.signed"):
            return f"consultation:{ev.data.get('consultation_id')}"
        if ev.type.startswith("delivery."):
            return f"prescription:{ev.data.get('prescription_id')}"
        return None

    def evaluate(self, params: GraceParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        if ev.type == "consultation.requested":
            ctx.cancel_timer(f"consultation:{ev.data.get('consultation_id')}")
        if ev.type == "prescription.signed":
            ctx.cancel_timer(f"prescription:{ev.data.get('prescription_id')}")
        needed = self._needs(ev)
        if needed and ctx.fact(needed) is None:
            ctx.set_timer(
                needed,
                ev.occurred_at + timedelta(minutes=params.minutes),
                details={"missing": needed, "reported": ev.type},
            )
        return ()

    def on_timer(self, params: GraceParams, timer: TimerDue) -> Violation | None:
        return Violation(
            f"{timer.details.get('reported')} was reported but {timer.details.get('missing')} never was",
            dict(timer.details),
        )


# --- patterns ----------------------------------------------------------------------------------------------------


class NoShowParams(Params):
    threshold: int = Field(default=3, ge=1, le=100)
    window_days: int = Field(default=90, ge=1, le=365)


@register
class NoShowPattern(RuleType):
    name = "no_show_pattern"
    regulation = None
    title = "A patient misses N booked visits within D days"
    events = frozenset({"appointment.no_show"})
    params = NoShowParams
    group_by = "patient"
    precheck = False

    def counter(self, params: NoShowParams, ev: Event) -> CounterSpec | None:
        patient = ev.data.get("patient_id")
        return CounterSpec(f"patient:{patient}", ev.occurred_at.date(), params.window_days) if patient else None

    def evaluate(self, params: NoShowParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        before, after = ctx.count()
        if before < params.threshold <= after:
            yield Violation(
                f"{after} no-shows within {params.window_days} days",
                {"no_shows": after, "window_days": params.window_days},
            )


# --- custom rules --------------------------------------------------------------------------------------------------


@register
class ComplaintFiled(RuleType):
    """Every complaint becomes a case of its own, handled like any other (assign, ask the hospital, close)."""

    name = "complaint_filed"
    regulation = None
    title = "A patient's complaint"
    events = frozenset({"complaint.filed"})
    group_by = "subject"
    precheck = False
    source = "complaint"

    def evaluate(self, params: NoParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        d = ev.data
        yield Violation(
            f"complaint ({d.get('category')}) about consultation {d.get('consultation_id')}",
            {k: d.get(k) for k in ("complaint_id", "category", "consultation_id", "stars")},
        )


class CelParams(Params):
    message: str = Field(default="custom rule matched", min_length=1, max_length=200)


@register
class CelRule(RuleType):
    """A regulator's CEL expression over the event (``supervision.cel``); the engine evaluates it itself."""

    name = "cel"
    regulation = None
    title = "Custom rule (CEL expression over the event)"
    events = frozenset()  # from the expression: the event types it names, or every type
    params = CelParams
    group_by = "practitioner"

    def evaluate(self, params: CelParams, ev: Event, ctx: EvalContext) -> Iterable[Violation]:
        raise AssertionError("CEL rules are evaluated by the engine")


def event_fields(ev: Event) -> dict[str, Any]:
    """Where to find the usual grouping subjects in an event's data."""
    return {
        "practitioner": _get(ev.data, "practitioner_id"),
        "patient": _get(ev.data, "patient_id"),
        "hospital": str(ev.hospital_id) if ev.hospital_id else None,
    }
