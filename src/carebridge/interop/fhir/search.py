"""FHIR search parameters and searchset Bundles (https://hl7.org/fhir/R4/search.html).

Every resource's search declares the parameters it knows; any other parameter is a 400 OperationOutcome naming
it (as ``Prefer: handling=strict`` asks), so a typo never silently widens a search. ``_count`` (1-100, default
20) and ``_offset`` page; the Bundle's ``next`` / ``previous`` links carry them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request

from carebridge.interop.fhir.outcome import Invalid
from carebridge.openplatform.oauth_api import issuer

IGNORED = {"_format", "_pretty"}
MAX_COUNT = 100
DEFAULT_COUNT = 20
MAX_OFFSET = 10_000
_PREFIXES = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "eq": "="}


def fhir_base(request: Request) -> str:
    return f"{issuer(request)}/fhir/R4"


class Params:
    """A search's query parameters, checked against what the resource supports."""

    def __init__(self, request: Request, known: Iterable[str]) -> None:
        self.request = request
        allowed = {*known, "_count", "_offset", "_id", "_total", *IGNORED}
        self.values: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            name = key.split(":")[0]
            if name not in allowed or (":" in key and key not in allowed):
                raise Invalid(
                    "unknown_search_parameter",
                    f"{key!r} is not a search parameter of this resource (known: {', '.join(sorted(known))})",
                    details={"parameter": key},
                )
            self.values.setdefault(key, []).append(value)

    def one(self, name: str) -> str | None:
        values = self.values.get(name)
        if not values:
            return None
        if len(values) > 1 and name != "date" and name != "start":
            raise Invalid("repeated_search_parameter", f"{name} may appear once", details={"parameter": name})
        return values[0]

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def tokens(self, name: str) -> list[str] | None:
        """A token parameter's comma-separated alternatives (``status=booked,arrived``), system prefixes dropped."""
        value = self.one(name)
        if value is None:
            return None
        return [part.split("|")[-1] for part in value.split(",") if part]

    def choices(self, name: str, allowed: dict[str, Any]) -> list[Any] | None:
        """A token parameter whose values must be among ``allowed``: their mapped values, or None if absent."""
        values = self.tokens(name)
        if values is None:
            return None
        unknown = [v for v in values if v not in allowed]
        if unknown:
            raise Invalid(
                "bad_search_parameter",
                f"{name}: {unknown[0]!r} is not one of {', '.join(sorted(allowed))}",
                details={"parameter": name},
            )
        return [allowed[v] for v in values]

    def ids(self, name: str = "_id", *, resource: str | None = None) -> list[uuid.UUID] | None:
        """A reference or id parameter (``Schedule/<id>``, ``<id>``, comma separated); a malformed id is a 400."""
        value = self.one(name)
        if value is None:
            return None
        out = []
        for part in value.split(","):
            kind, _, ident = part.rpartition("/")
            if resource and kind and kind.rsplit("/", 1)[-1] != resource:
                raise Invalid("bad_reference", f"{name} must reference {resource}", details={"parameter": name})
            try:
                out.append(uuid.UUID(ident))
            except ValueError:
                raise Invalid("bad_id", f"{part!r} is not an id of this server", details={"parameter": name}) from None
        return out

    def exact_total(self) -> bool:
        """``_total=accurate`` asks for the count of every match; otherwise ``total`` is given when the last
        page is reached (``none`` and ``estimate`` are taken as that)."""
        value = self.one("_total")
        if value not in (None, "none", "estimate", "accurate"):
            raise Invalid(
                "bad_search_parameter", "_total is none, estimate or accurate", details={"parameter": "_total"}
            )
        return value == "accurate"

    def count(self) -> int:
        return self._int("_count", DEFAULT_COUNT, 1, MAX_COUNT)

    def offset(self) -> int:
        return self._int("_offset", 0, 0, MAX_OFFSET)

    def _int(self, name: str, default: int, low: int, high: int) -> int:
        value = self.one(name)
        if value is None:
            return default
        if not value.isdigit() or not low <= int(value) <= high:
            raise Invalid(
                "bad_search_parameter", f"{name} must be an integer {low}-{high}", details={"parameter": name}
            )
        return int(value)

    def instants(self, name: str, zone: str) -> list[tuple[str, datetime]]:
        """A date parameter as bounds on an instant: ``ge2026-12-03``, ``lt2026-12-04T08:00:00+08:00``; a bare
        date (or ``eq``) is its whole day in ``zone`` (or the given offset)."""
        bounds: list[tuple[str, datetime]] = []
        for raw in self.all(name):
            prefix, value = (raw[:2], raw[2:]) if raw[:2] in _PREFIXES else ("eq", raw)
            start, end = _span(value, zone, name)
            op = _PREFIXES[prefix]
            if op == "=":
                bounds += [(">=", start), ("<", end)]
            elif op in (">=", "<"):
                bounds.append((op, start))
            else:  # > and <= take the end of the given precision: gt2026-12-03 starts the next day
                bounds.append((">=" if op == ">" else "<", end))
        return bounds

    def dates(self, name: str) -> tuple[date | None, date | None]:
        """A date parameter on a calendar date (a Schedule's day): an inclusive range."""
        low: date | None = None
        high: date | None = None
        for raw in self.all(name):
            prefix, value = (raw[:2], raw[2:]) if raw[:2] in _PREFIXES else ("eq", raw)
            try:
                day = date.fromisoformat(value[:10])
            except ValueError:
                raise Invalid(
                    "bad_search_parameter", f"{name}: {raw!r} is not a date", details={"parameter": name}
                ) from None
            if prefix in ("eq", "ge"):
                low = day
            if prefix == "gt":
                low = day + timedelta(days=1)
            if prefix in ("eq", "le"):
                high = day
            if prefix == "lt":
                high = day - timedelta(days=1)
        return low, high


def _span(value: str, zone: str, name: str) -> tuple[datetime, datetime]:
    """The instants a FHIR date or dateTime covers, [start, end)."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime.combine(day, time(), tzinfo=ZoneInfo(zone))
            return start, start + timedelta(days=1)
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(
            "bad_search_parameter", f"{name}: {value!r} is not a FHIR date or dateTime", details={"parameter": name}
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(zone))
    return at, at + timedelta(seconds=1)


def bundle(
    request: Request,
    resource_type: str,
    resources: list[dict[str, Any]],
    *,
    total: int,
    params: Params,
    included: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    base = fhir_base(request)
    count, offset = params.count(), params.offset()
    query = [(k, v) for k, values in params.values.items() for v in values if k not in ("_offset",)]

    def link(relation: str, at: int) -> dict[str, str]:
        return {"relation": relation, "url": f"{base}/{resource_type}?{urlencode([*query, ('_offset', str(at))])}"}

    links = [link("self", offset)]
    if total is None or offset + count < total:
        links.append(link("next", offset + count))
    if offset > 0:
        links.append(link("previous", max(0, offset - count)))
    entries = [
        {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
        for r in resources
    ]
    entries += [
        {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "include"}}
        for r in included
    ]
    out: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        out["total"] = total
    return {**out, "link": links, "entry": entries}


def instant(at: datetime) -> str:
    """A FHIR instant: seconds precision with the offset."""
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")
