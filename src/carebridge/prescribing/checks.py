"""The prescription checks: pure functions over a proposed prescription and the knowledge base.

No database, no clock, no I/O: the prescribing service calls ``check_prescription`` while the doctor writes and
again before signing, and the supervision engine will call the same function for its pre-check. Each finding has
a stable ``code``, the regulation ``rule`` it enforces, and a ``level``:

- ``block``: the prescription cannot be signed;
- ``warning``: it can be signed with an override reason from the doctor;
- ``info``: shown, nothing to do.

Interactions, duplicates and allergies follow R14's thresholds: severity major or contraindicated blocks,
moderate warns, minor informs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from carebridge.prescribing.knowledge import RANK, Knowledge, Severity

Level = Literal["block", "warning", "info"]

# Administrations per day. An "as needed" frequency is not offered: a dose range cannot be checked against it.
FREQUENCIES: dict[str, float] = {
    "qd": 1,  # once a day
    "bid": 2,
    "tid": 3,
    "qid": 4,
    "q6h": 4,
    "q8h": 3,
    "q12h": 2,
    "qn": 1,  # at night
    "qod": 0.5,  # every other day
    "qw": 1 / 7,  # once a week
}
ROUTES = ("oral", "sublingual", "inhaled", "topical", "ophthalmic", "nasal", "rectal", "sc", "im", "iv")
SPECIAL_CONTROL = ("narcotic", "psychotropic_1", "psychotropic_2", "toxic", "radioactive")


@dataclass(frozen=True, slots=True)
class ProposedItem:
    line: int
    name: str
    substance: str
    atc_code: str
    dose: float
    dose_unit: str
    frequency: str
    route: str
    days: int
    special_control: str | None = None
    max_daily_dose: float | None = None  # from the formulary; the knowledge base's range when absent


@dataclass(frozen=True, slots=True)
class ProposedPrescription:
    items: tuple[ProposedItem, ...]
    diagnoses: tuple[str, ...]  # ICD-10 codes on the prescription
    followed_up: tuple[str, ...]  # ICD-10 codes of the patient's recorded offline diagnoses (R1/R2)
    allergies: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    max_items: int = 5  # R11
    ordinary_days: int = 7  # R12
    long_term_days: int = 84  # R12, chronic diseases


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    rule: str
    level: Level
    message: str
    lines: tuple[int, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "rule": self.rule,
            "level": self.level,
            "message": self.message,
            "lines": list(self.lines),
            "details": self.details,
        }


def level_for(severity: Severity) -> Level:
    rank = RANK[severity]
    return "block" if rank >= RANK["major"] else "warning" if rank == RANK["moderate"] else "info"


def same_condition(a: str, b: str) -> bool:
    """Two ICD-10 codes name the same condition when they share the three-character category (E11.9 ~ E11)."""
    return a.upper()[:3] == b.upper()[:3]


def is_long_term(rx: ProposedPrescription, kb: Knowledge) -> bool:
    """A long prescription (up to 12 weeks) is allowed when a diagnosis is a listed chronic condition (R12)."""
    return any(kb.is_chronic(code) for code in rx.diagnoses)


def check_prescription(rx: ProposedPrescription, kb: Knowledge, limits: Limits = Limits()) -> list[Finding]:
    """Every finding for a proposed prescription, blocks first. Never raises for clinical content."""
    found: list[Finding] = []
    found += _diagnosis(rx)
    found += _item_count(rx, limits)
    for item in rx.items:
        found += _special_control(item)
        found += _supply_days(item, rx, kb, limits)
        found += _dose(item, kb)
    refs = [kb.refs(item.substance, item.atc_code) for item in rx.items]
    found += _pairs(rx, kb, refs)
    found += _allergies(rx, kb, refs)
    order = {"block": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda f: (order[f.level], f.lines, f.code))


def _diagnosis(rx: ProposedPrescription) -> list[Finding]:
    if not rx.diagnoses:
        return [Finding("diagnosis_required", "R2", "block", "a prescription needs the diagnosis it treats")]
    unmatched = [c for c in rx.diagnoses if not any(same_condition(c, f) for f in rx.followed_up)]
    if not unmatched:
        return []
    return [
        Finding(
            "diagnosis_not_followed_up",
            "R2",
            "block",
            "online prescriptions may only treat a condition diagnosed in person: "
            + ", ".join(unmatched)
            + " has no offline diagnosis on record",
            details={"diagnoses": unmatched, "followed_up": list(rx.followed_up)},
        )
    ]


def _item_count(rx: ProposedPrescription, limits: Limits) -> list[Finding]:
    if not rx.items:
        return [Finding("no_items", "R11", "block", "a prescription needs at least one drug")]
    if len(rx.items) > limits.max_items:
        return [
            Finding(
                "too_many_items",
                "R11",
                "block",
                f"at most {limits.max_items} drugs on one prescription ({len(rx.items)} given)",
                details={"max_items": limits.max_items, "items": len(rx.items)},
            )
        ]
    return []


def _special_control(item: ProposedItem) -> list[Finding]:
    if item.special_control in SPECIAL_CONTROL:
        return [
            Finding(
                "special_control_drug",
                "R9",
                "block",
                f"{item.name} is a {item.special_control} drug: special-control drugs are never prescribed online",
                (item.line,),
                {"special_control": item.special_control},
            )
        ]
    return []


def _supply_days(item: ProposedItem, rx: ProposedPrescription, kb: Knowledge, limits: Limits) -> list[Finding]:
    long_term = is_long_term(rx, kb)
    allowed = limits.long_term_days if long_term else limits.ordinary_days
    if item.days <= allowed:
        return []
    why = "for a chronic condition" if long_term else "without a chronic-disease diagnosis"
    return [
        Finding(
            "supply_days_exceeded",
            "R12",
            "block",
            f"{item.name}: {item.days} days exceeds the {allowed}-day limit {why}",
            (item.line,),
            {"days": item.days, "max_days": allowed, "long_term": long_term},
        )
    ]


def _dose(item: ProposedItem, kb: Knowledge) -> list[Finding]:
    per_day = FREQUENCIES.get(item.frequency)
    if per_day is None:
        return []  # the service refuses unknown frequencies before checking
    daily = round(item.dose * per_day, 4)
    known = kb.dose_range(item.substance, item.route)
    if known is not None and known.unit != item.dose_unit:
        known = None  # a range in another unit says nothing about this dose
    maximum = item.max_daily_dose if item.max_daily_dose is not None else known.max_daily if known else None
    details = {"daily_dose": daily, "unit": item.dose_unit}
    if maximum is not None and daily > maximum:
        return [
            Finding(
                "dose_above_maximum",
                "R14",
                "block",
                f"{item.name}: {daily:g} {item.dose_unit} a day is above the maximum of {maximum:g}",
                (item.line,),
                {**details, "max_daily": maximum},
            )
        ]
    if known is not None and known.min_daily is not None and daily < known.min_daily:
        return [
            Finding(
                "dose_below_minimum",
                "R14",
                "warning",
                f"{item.name}: {daily:g} {item.dose_unit} a day is below the usual minimum of {known.min_daily:g}",
                (item.line,),
                {**details, "min_daily": known.min_daily, "source": known.source},
            )
        ]
    return []


def _pairs(rx: ProposedPrescription, kb: Knowledge, refs: list[frozenset[str]]) -> list[Finding]:
    found: list[Finding] = []
    items = rx.items
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            a, b = items[i], items[j]
            lines = (a.line, b.line)
            if a.substance == b.substance:
                found.append(
                    Finding(
                        "duplicate_drug",
                        "R14",
                        "block",
                        f"{a.name} and {b.name} are the same substance ({a.substance})",
                        lines,
                        {"substance": a.substance},
                    )
                )
                continue
            shared = [c[6:] for c in refs[i] & refs[j] if c.startswith("class:") and c[6:] in kb.duplicate_classes]
            if shared:
                klass = max(shared, key=lambda k: RANK[kb.duplicate_classes[k]])
                severity = kb.duplicate_classes[klass]
                found.append(
                    Finding(
                        "duplicate_therapy",
                        "R14",
                        level_for(severity),
                        f"{a.name} and {b.name} are both {kb.classes[klass]['name']}",
                        lines,
                        {"class": klass, "severity": severity},
                    )
                )
            hit = kb.interaction(refs[i], refs[j])
            if hit is not None:
                found.append(
                    Finding(
                        "interaction",
                        "R14",
                        level_for(hit.severity),
                        f"{a.name} + {b.name}: {hit.effect}".rstrip(": "),
                        lines,
                        {"severity": hit.severity, "advice": hit.advice, "source": hit.source},
                    )
                )
    return found


def _allergies(rx: ProposedPrescription, kb: Knowledge, refs: list[frozenset[str]]) -> list[Finding]:
    found: list[Finding] = []
    for rule in kb.allergens_in(rx.allergies):
        for item, item_refs in zip(rx.items, refs, strict=True):
            if item_refs & rule.drugs:
                found.append(
                    Finding(
                        "allergy_contraindication",
                        "R14",
                        level_for(rule.severity),
                        f"{item.name}: the patient reports a {rule.allergen} allergy",
                        (item.line,),
                        {"allergen": rule.allergen, "severity": rule.severity, "source": rule.source},
                    )
                )
    return found


def blocks(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "block"]


def warnings(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "warning"]
