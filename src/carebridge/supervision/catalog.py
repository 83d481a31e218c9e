"""The rule catalog: the default rule instances a new deployment starts with, and the compiled rule set the
engine and the pre-check evaluate.

Defaults are inserted once (``ensure_defaults``: missing codes only), after which they are the regulators'
data: nothing here overwrites an edited rule. The compiled set is cached per process and reloaded when a rule
changes (eviction at commit, in every worker) and at least every ``supervision_rules_cache_seconds``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import cache
from carebridge.core.ids import new_id
from carebridge.supervision import anomaly, cel  # noqa: F401 - anomaly's rule types register on import
from carebridge.supervision.models import Rule, RuleVersion, ScopeKind, Severity
from carebridge.supervision.rule_types import REGISTRY, RuleType

RULES = cache.Cache("supervision_rules", setting="supervision_rules_cache_seconds", ttl=1.0, maxsize=4)

# code, rule type, severity, params, name (English; the regulation's text is in docs/supervision.md)
DEFAULTS: list[tuple[str, str, Severity, dict[str, Any]]] = [
    ("R1-first-visit-online", "first_visit_online", Severity.block, {}),
    ("R2-diagnosis-followed-up", "diagnosis_not_followed_up", Severity.warning, {}),
    ("R3-practice-years", "practice_years", Severity.block, {"min_years": 3}),
    ("R3-practitioner-active", "practitioner_not_active", Severity.block, {}),
    ("R4-filing", "filing_missing", Severity.block, {}),
    ("R5-signed-in-person", "signed_by_doctor_account", Severity.block, {}),
    ("R6-identity-verified", "identity_unverified", Severity.block, {}),
    ("R7-prescriber-treating", "prescriber_not_treating", Severity.block, {}),
    ("R8-approved-before-dispensing", "dispensed_before_approval", Severity.block, {}),
    ("R9-special-control-drug", "special_control_drug", Severity.block, {}),
    ("R9-special-control-attempt", "blocked_attempt", Severity.info, {"codes": ["special_control_drug"]}),
    ("R9-restricted-antibiotic", "restricted_antibiotic", Severity.warning, {"grades": ["special"]}),
    ("R10-guardian", "guardian_missing", Severity.block, {"under_age": 6}),
    ("R11-max-items", "too_many_items", Severity.block, {"max_items": 5}),
    ("R12-supply-days", "supply_days", Severity.block, {"ordinary_days": 7, "long_term_days": 84}),
    ("R13-high-value", "high_value_prescription", Severity.warning, {"max_total_fen": 50_000}),
    ("R13-excess-quantity", "excess_quantity", Severity.warning, {"max_quantity": 10}),
    ("R13-daily-volume", "daily_prescription_volume", Severity.warning, {"max_per_day": 100}),
    ("R14-rationality-override", "rationality_override", Severity.info, {}),
    (
        "R14-rationality-attempt",
        "blocked_attempt",
        Severity.info,
        {"codes": ["interaction", "duplicate_therapy", "dose_above_maximum", "allergy_contraindication"]},
    ),
    ("R15-record-late", "record_late", Severity.warning, {"hours": 24}),
    ("R15-record-missing", "record_missing", Severity.warning, {"hours": 24}),
    ("R17-trace-gap", "trace_gap", Severity.warning, {"minutes": 10}),
    ("R18-licence-current", "hospital_licence_expired", Severity.block, {}),
    ("R18-licence-verified", "licence_unverified", Severity.warning, {"months": 12}),
    ("R19-delivery-traced", "delivery_not_traced", Severity.warning, {"days": 7}),
    ("P1-no-show-pattern", "no_show_pattern", Severity.info, {"threshold": 3, "window_days": 90}),
    ("C1-complaint", "complaint_filed", Severity.warning, {}),
    # anomalies over the daily indicators (supervision/anomaly.py)
    ("A1-prescriptions-own-history", "anomaly_own_history", Severity.warning, {"metric": "prescriptions"}),
    (
        "A2-high-value-own-history",
        "anomaly_own_history",
        Severity.warning,
        {"metric": "high_value_prescriptions", "min_base": 5},
    ),
    ("A3-antibiotic-rate-peers", "anomaly_peer_hospitals", Severity.warning, {"metric": "antibiotic_rate"}),
    ("A4-prescription-amount-peers", "anomaly_peer_hospitals", Severity.warning, {"metric": "avg_prescription_fen"}),
    (
        "A5-late-records-peers",
        "anomaly_peer_hospitals",
        Severity.warning,
        {"metric": "late_record_rate", "min_base": 10},
    ),
    ("A6-warning-rate-peers", "anomaly_peer_hospitals", Severity.info, {"metric": "warnings_per_100"}),
    (
        "A7-rating-own-history",
        "anomaly_own_history",
        Severity.info,
        {"metric": "avg_rating", "direction": "low", "min_base": 5, "z": 3.0, "min_change": 0.3},
    ),
]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: uuid.UUID
    code: str
    name: str
    regulation: str | None
    type: RuleType
    params: Any
    severity: Severity
    scope_kind: ScopeKind
    scope_value: str | None
    group_by: str
    version: int
    cel: cel.Compiled | None

    def in_scope(self, hospital_id: uuid.UUID | None, hospital_region: str | None) -> bool:
        if self.scope_kind == ScopeKind.all:
            return True
        if self.scope_kind == ScopeKind.hospital:
            return hospital_id is not None and str(hospital_id) == self.scope_value
        return hospital_region is not None and region_within(hospital_region, self.scope_value or "")


def region_prefix(code: str) -> str:
    """GB/T 2260: 110000 (a province) covers 11xxxx, 110100 (a city) covers 1101xx, 110105 is itself."""
    code = code.strip()
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    return code


def region_within(region: str, scope: str) -> bool:
    return region.startswith(region_prefix(scope))


class RuleSet:
    def __init__(self, rules: list[CompiledRule]) -> None:
        self.rules = rules
        self.by_type: dict[str, list[CompiledRule]] = {}
        self.any_type: list[CompiledRule] = []
        for rule in rules:
            types = rule.cel.types if rule.cel is not None else rule.type.events
            if types is None:
                self.any_type.append(rule)
                continue
            for t in types:
                self.by_type.setdefault(t, []).append(rule)
        self.by_id = {r.id: r for r in rules}

    def for_type(self, event_type: str) -> list[CompiledRule]:
        specific = self.by_type.get(event_type, [])
        return specific + self.any_type if self.any_type else specific


def compile_row(row: Rule) -> CompiledRule:
    rule_type = REGISTRY[row.rule_type]
    return CompiledRule(
        id=row.id,
        code=row.code,
        name=row.name,
        regulation=row.regulation,
        type=rule_type,
        params=rule_type.params.model_validate(row.params),
        severity=Severity(row.severity),
        scope_kind=ScopeKind(row.scope_kind),
        scope_value=row.scope_value,
        group_by=row.group_by,
        version=row.version,
        cel=cel.compile_rule(row.expression) if row.rule_type == "cel" and row.expression else None,
    )


async def ruleset(session: AsyncSession) -> RuleSet:
    """The enabled rules, compiled (cached; reloaded after a change)."""
    hit = RULES.get("set")
    if hit is not None:
        return hit
    rows = (await session.scalars(select(Rule).where(Rule.enabled.is_(True)).order_by(Rule.code))).all()
    compiled = []
    for row in rows:
        try:
            compiled.append(compile_row(row))
        except Exception:  # a row that no longer compiles (saved before a validation change) is left out
            continue
    result = RuleSet(compiled)
    RULES.set("set", result)
    return result


def snapshot(row: Rule) -> dict[str, Any]:
    """A rule's editable state, as kept in its version history."""
    return {
        "code": row.code,
        "name": row.name,
        "rule_type": row.rule_type,
        "regulation": row.regulation,
        "params": row.params,
        "expression": row.expression,
        "severity": str(row.severity),
        "enabled": row.enabled,
        "scope_kind": str(row.scope_kind),
        "scope_value": row.scope_value,
        "group_by": row.group_by,
    }


async def ensure_defaults(session: AsyncSession) -> int:
    """Insert the default rules whose codes are missing; returns how many were added."""
    existing = set((await session.scalars(select(Rule.code))).all())
    added = 0
    for code, type_name, severity, params in DEFAULTS:
        if code in existing:
            continue
        rule_type = REGISTRY[type_name]
        row = Rule(
            id=new_id(),
            code=code,
            regulation=rule_type.regulation,
            rule_type=type_name,
            name=rule_type.title,
            params=rule_type.params.model_validate(params).model_dump(mode="json"),
            expression=None,
            severity=severity,
            enabled=True,
            scope_kind=ScopeKind.all,
            scope_value=None,
            group_by=rule_type.group_by,
            version=1,
            updated_by="system",
        )
        session.add(row)
        session.add(RuleVersion(rule_id=row.id, version=1, changed_by="system", before=None, after=snapshot(row)))
        added += 1
    if added:
        await cache.invalidate(session, RULES)
    return added
