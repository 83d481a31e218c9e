"""SMART on FHIR v2 scopes that partner apps may ask for (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html).

A resource scope is ``<context>/<Resource>.<permissions>``: context ``patient`` (the patient in context),
``user`` (what the signed-in user may see) or ``system`` (a backend acting for itself, within the hospitals
that granted it); permissions a non-empty subsequence of ``cruds`` in that order. Query-limited scopes
(``?category=...``) are not offered yet. The other scopes are the launch and identity ones.
"""

from __future__ import annotations

import re

FHIR_RESOURCES = (
    "Organization",
    "Location",
    "HealthcareService",
    "Practitioner",
    "PractitionerRole",
    "Patient",
    "Schedule",
    "Slot",
    "Appointment",
    "Encounter",
    "MedicationRequest",
    "DiagnosticReport",
    "Observation",
)  # AuditEvent is not offered to apps: the audit trail is for regulators (docs/fhir.md)
OTHER_SCOPES = ("openid", "fhirUser", "launch", "launch/patient", "offline_access", "online_access")
_RESOURCE_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.(c?r?u?d?s?)$")
MAX_SCOPES = 40


def problem(scope: str) -> str | None:
    """Why ``scope`` is not one an app may ask for, or None."""
    if scope in OTHER_SCOPES:
        return None
    match = _RESOURCE_SCOPE.match(scope)
    if match is None or not match.group(3):
        return "not a SMART v2 scope (<patient|user|system>/<Resource>.<cruds>, or openid, fhirUser, launch, ...)"
    if match.group(2) != "*" and match.group(2) not in FHIR_RESOURCES:
        return f"the FHIR API has no {match.group(2)} resource"
    return None


def context(scope: str) -> str | None:
    """``patient``, ``user`` or ``system`` for a resource scope; None for the others."""
    match = _RESOURCE_SCOPE.match(scope)
    return match.group(1) if match else None


def _parts(scope: str) -> tuple[str, str, str] | None:
    match = _RESOURCE_SCOPE.match(scope)
    return (match.group(1), match.group(2), match.group(3)) if match and match.group(3) else None


def covers(registered: str, requested: str) -> bool:
    """Whether an app registered for ``registered`` may be given ``requested``: the same scope, or a resource
    scope of the same context whose resource and permissions are within it (``patient/*.cruds`` covers
    ``patient/Slot.rs``)."""
    if registered == requested:
        return True
    have, want = _parts(registered), _parts(requested)
    if have is None or want is None or have[0] != want[0]:
        return False
    return (have[1] == "*" or have[1] == want[1]) and set(want[2]) <= set(have[2])


def allowed(granted: list[str], requested: list[str]) -> list[str]:
    """The requested scopes the registration covers, in the order asked (duplicates dropped)."""
    return [s for s in dict.fromkeys(requested) if any(covers(g, s) for g in granted)]


def permits(scopes: list[str], resource: str, permission: str) -> set[str]:
    """The contexts (``patient``, ``user``, ``system``) in which ``scopes`` allow ``permission`` (one of
    ``c r u d s``) on ``resource``."""
    contexts = set()
    for scope in scopes:
        parts = _parts(scope)
        if parts and parts[1] in ("*", resource) and permission in parts[2]:
            contexts.add(parts[0])
    return contexts


_PERMISSION_WORDS = {
    "c": ("创建", "create"),
    "r": ("读取", "read"),
    "u": ("修改", "update"),
    "d": ("删除", "delete"),
    "s": ("检索", "search"),
}
_CONTEXT_WORDS = {
    "patient": ("所选就诊人的", "the chosen patient's"),
    "user": ("您可查看的", "what you may see of"),
    "system": ("授权医院的", "the granting hospitals'"),
}
_OTHER_WORDS = {
    "openid": ("确认您的身份", "confirm who you are"),
    "fhirUser": ("知道您是哪位用户", "know which user you are"),
    "launch": ("从 CareBridge 中启动", "be launched from CareBridge"),
    "launch/patient": ("知道您选择的就诊人", "know which patient you chose"),
    "offline_access": ("在您离线时持续访问（可随时撤销）", "keep access while you are away (you can revoke it)"),
    "online_access": ("在您在线期间持续访问", "keep access while you are online"),
}


def describe(scope: str) -> tuple[str, str]:
    """What a scope lets an app do, in Chinese and English, for the consent page."""
    if scope in _OTHER_WORDS:
        return _OTHER_WORDS[scope]
    parts = _parts(scope)
    if parts is None:
        return scope, scope
    context_zh, context_en = _CONTEXT_WORDS[parts[0]]
    resource = "所有数据 all data" if parts[1] == "*" else parts[1]
    zh = "、".join(_PERMISSION_WORDS[p][0] for p in parts[2])
    en = ", ".join(_PERMISSION_WORDS[p][1] for p in parts[2])
    return f"{zh}{context_zh} {resource}", f"{en} {context_en} {resource}"
