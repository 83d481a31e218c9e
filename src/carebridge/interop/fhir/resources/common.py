"""What the resource modules share: ids, references, the caller dependency, the FHIR response."""

from __future__ import annotations

import uuid
from typing import Any

from carebridge.core.errors import NotFound

SYSTEM = "https://carebridge.org/fhir"
VISIT_TYPE_SYSTEM = f"{SYSTEM}/CodeSystem/visit-type"
DEPARTMENT_SYSTEM = f"{SYSTEM}/CodeSystem/department"  # the standard department code (诊疗科目代码)
LICENCE_SYSTEM = f"{SYSTEM}/sid/licence"  # 医疗机构执业许可证 / 医师执业证书编码
RESIDENT_ID_SYSTEM = "urn:oid:1.2.156.112604.1.2.1"  # 居民身份证 (masked to apps)


def parse_id(value: str, resource: str) -> uuid.UUID:
    """A logical id of this server; anything else is simply not found (no hint which)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("not_found", f"{resource}/{value[:80]} is not known") from None


def reference(resource: str, ident: uuid.UUID, display: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"reference": f"{resource}/{ident}"}
    if display:
        ref["display"] = display
    return ref


def gone(resource: str, ident: uuid.UUID | str) -> NotFound:
    return NotFound("not_found", f"{resource}/{ident} is not known")
