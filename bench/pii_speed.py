"""PII stage speed vs stock Presidio, on the same corpus and the same spaCy model, in one run.

Corpus: ~320 characters of human-written text (self-instruct tasks, MT-bench/Vicuna questions
and answers) followed by one sentence of presidio-research's labeled set: every ~400-character
document carries labeled PII (recall is measured on the same documents for both) and no two
documents share text. Stock = one `AnalyzerEngine.analyze()` per document (Presidio's README
usage); curate = the stage's analysis in one process (per core), and the `pii` stage run by the
engine (`curate run`, 2 workers) on the corpus repeated, with the NER memo off so the repeats
cannot be reused.
Results: bench/results/pii_speed.json.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import yaml

from bench.pii_common import REPO, curate_stage, dataset, stock_analyzer
from bench.pii_eval import GOLD, PREDICTED, _overlaps

RESULTS = REPO / "bench" / "results"
SHARED = REPO.parent / "shared" / "data"


def _real_texts() -> list[str]:
    """Human-written English paragraphs: self-instruct tasks and MT-bench/Vicuna questions and answers."""
    texts = []
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        for line in (SHARED / "self-instruct" / name).read_text().splitlines():
            task = json.loads(line)
            texts.append(task["instruction"])
            texts += [v for inst in task["instances"] for v in (inst["input"], inst["output"]) if v]
    for name in ("mt_bench_question.jsonl", "vicuna_bench_question.jsonl"):
        for line in (SHARED / "fastchat-bench" / name).read_text().splitlines():
            texts += json.loads(line)["turns"]
    for line in (SHARED / "fastchat-bench" / "mt_bench_reference_answer_gpt-4.jsonl").read_text().splitlines():
        texts += [t for c in json.loads(line)["choices"] for t in c["turns"]]
    return texts


def corpus() -> tuple[list[str], list[list[tuple[int, int, str]]]]:
    """Unique ~400-character documents: ~320 characters of real text, then one labeled sentence.
    No two documents share text, so nothing can be reused between them."""
    pieces, current = [], ""
    for text in _real_texts():
        for word in text.split():
            current += word + " "
            if len(current) >= 320:
                pieces.append(current)
                current = ""
    labeled = dataset()
    texts, gold = [], []
    for prefix, rec in zip(pieces, labeled):
        texts.append(prefix + rec["full_text"])
        gold.append(
            [
                (s["start_position"] + len(prefix), s["end_position"] + len(prefix), GOLD.get(s["entity_type"]))
                for s in rec["spans"]
                if GOLD.get(s["entity_type"])
            ]
        )
    return texts, gold


def recall(gold: list[list[tuple]], predicted: list[list[tuple]], types: set[str]) -> float:
    total = found = 0
    for g_spans, p_spans in zip(gold, predicted):
        p_spans = [(a, b, PREDICTED.get(t, t)) for a, b, t in p_spans]
        for g in g_spans:
            if g[2] in types:
                total += 1
                found += any(p[2] == g[2] and _overlaps(p, g) for p in p_spans)
    return round(found / total, 4) if total else 0.0


def _profile(stage, df: pl.DataFrame) -> list[dict]:
    """Where the stage's time goes, by area."""
    prof = cProfile.Profile()
    prof.enable()
    stage.process(df)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = max(v[3] for v in stats.stats.values())  # the outermost call's cumulative time
    areas = {
        "spaCy NER (nlp.pipe)": ("spacy/language.py", "pipe"),
        "tokenisation (make_doc)": ("spacy/language.py", "make_doc"),
        "Presidio recognizers + context (AnalyzerEngine.analyze)": ("presidio_analyzer/analyzer_engine.py", "analyze"),
        "redaction (AnonymizerEngine.anonymize)": ("presidio_anonymizer/anonymizer_engine.py", "anonymize"),
        "residual re-scan": ("curate/stages/pii.py", "_residual"),
    }
    out = []
    for label, (file, func) in areas.items():
        cum = sum(v[3] for (f, _, fn), v in stats.stats.items() if f.endswith(file) and fn == func)
        out.append({"area": label, "seconds": round(cum, 3), "share": round(cum / total, 3)})
    return out


def _rate(variant: str, docs: int, seconds: float, mb: float, stock_rate: float, **extra) -> dict:
    return {
        "variant": variant,
        "docs": docs,
        "seconds": round(seconds, 2),
        "docs_per_s": round(docs / seconds, 1),
        "mb_per_s": round(mb / seconds, 4),
        "speed_vs_stock": round(docs / seconds / stock_rate, 1),
        **extra,
    }


def main(tiles: int = 6) -> dict:
    texts, gold = corpus()
    n = len(texts)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    stock = stock_analyzer()
    for t in texts[:20]:  # warm-up: first calls load phone metadata, compile regexes
        stock.analyze(t, "en")
    start = time.perf_counter()
    stock_found = [[(r.start, r.end, r.entity_type) for r in stock.analyze(t, "en")] for t in texts]
    stock_s = time.perf_counter() - start
    stock_rate = n / stock_s

    rules = yaml.safe_load((REPO / "rules" / "pii" / "default.yaml").read_text())
    stage = curate_stage()
    covered = {PREDICTED.get(e, e) for e in stage.rules.entities}
    no_memo = curate_stage(nlp={**rules["nlp"], "memo": False})
    for warm in (stage, no_memo):
        warm.analyzer.analyze(texts[-20:], [True] * 20)
        warm.analyzer._memo.clear()
    start = time.perf_counter()
    found = stage.analyzer.analyze(texts, [True] * n)
    one_core_s = time.perf_counter() - start
    start = time.perf_counter()
    no_memo.analyzer.analyze(texts, [True] * n)
    no_memo_s = time.perf_counter() - start
    ours = [[(s.start, s.end, s.entity) for s in spans] for spans in found]
    messages = pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))
    df = pl.DataFrame({"id": [f"d{i}" for i in range(n)], "text": texts, "lang": ["en"] * n}).with_columns(
        pl.lit(None, dtype=messages).alias("messages")
    )
    profile = _profile(no_memo, df)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        corpus_path = folder / "corpus.jsonl"
        with corpus_path.open("w") as f:
            for k in range(tiles):
                f.writelines(
                    json.dumps({"id": f"d{k}-{i}", "text": t, "lang": "en"}) + "\n" for i, t in enumerate(texts)
                )
        pii_rules = folder / "pii.yaml"
        pii_rules.write_text(yaml.safe_dump({**rules, "nlp": {**rules["nlp"], "memo": False}}))
        spec = {
            "name": "pii-bench",
            "workers": 2,
            "batch_size": 500,
            "sensitivity": False,
            "inputs": [{"path": str(corpus_path)}],
            "stages": [{"stage": "pii", "rules": str(pii_rules)}],
        }
        (folder / "p.yaml").write_text(yaml.safe_dump(spec))
        from curate.catalog import Catalog
        from curate.config import load_pipeline
        from curate.engine import run_pipeline

        start = time.perf_counter()
        run_pipeline(load_pipeline(folder / "p.yaml"), out_dir=folder / "out", catalog=Catalog(folder / "home"))
        engine_s = time.perf_counter() - start

    rows = [
        _rate(
            "stock Presidio: AnalyzerEngine().analyze() per document, 1 process",
            n,
            stock_s,
            mb,
            stock_rate,
            recall=recall(gold, stock_found, covered),
        ),
        _rate(
            "curate pii analysis, 1 process (default rules)",
            n,
            one_core_s,
            mb,
            stock_rate,
            recall=recall(gold, ours, covered),
        ),
        _rate("curate pii analysis, 1 process, memo off", n, no_memo_s, mb, stock_rate),
        _rate(
            f"curate run: pii stage, 2 workers, memo off, corpus x{tiles} (model loading, redaction, residual "
            "re-scan, Parquet included)",
            n * tiles,
            engine_s,
            mb * tiles,
            stock_rate,
        ),
    ]
    result = {
        "benchmark": "PII: stock Presidio vs the curate pii stage (same corpus, same spaCy model)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": {
            "documents": n,
            "mean_chars": round(sum(map(len, texts)) / n),
            "mb": round(mb, 3),
            "what": (
                "~320 characters of self-instruct / MT-bench text + one presidio-research sentence; no two share text"
            ),
        },
        "recall_types": sorted(covered),
        "rows": rows,
        "profile_memo_off": profile,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pii_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(*(int(a) for a in sys.argv[1:])), indent=2))
