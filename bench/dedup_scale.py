"""Peak memory and time of the full dedup stage on 1M documents of ~2 KB (run by `make bench`).

Documents are random draws from a 20k-word vocabulary (~330 words, ~2 KB each); 5% are
edited copies of earlier ones, so LSH, verification and clustering all do real work.
Runs in its own process so the peak RSS is the stage's own. Writes bench/results/dedup_scale.json.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from curate.records import BASE_SCHEMA
from curate.stages.dedup import DedupRules, DedupStage

RESULTS = Path(__file__).resolve().parent / "results"


def synthetic(n: int, words: int = 330, seed: int = 3) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i:05d}" for i in range(20_000)])
    texts: list[str] = []
    for start in range(0, n, 10_000):
        block = vocab[rng.integers(0, len(vocab), size=(min(10_000, n - start), words))]
        texts += [" ".join(row) for row in block.tolist()]
    for i in rng.choice(np.arange(1, n), size=n // 20, replace=False).tolist():
        copy = texts[int(rng.integers(0, i))].split()
        for k in rng.integers(0, words, size=int(rng.integers(0, 6))).tolist():
            copy[k] = "edited"
        texts[i] = " ".join(copy)
    return texts


def main(n: int = 1_000_000) -> dict:
    texts = synthetic(n)
    df = pl.DataFrame({"id": [str(i) for i in range(n)], "text": texts}).with_columns(
        *(pl.lit(None, dtype=dtype).alias(name) for name, dtype in BASE_SCHEMA.items() if name not in ("id", "text"))
    )
    del texts
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stage = DedupStage("dedup", DedupRules())
    stage.setup()
    start = time.perf_counter()
    out = stage.process(df)
    seconds = time.perf_counter() - start
    result = {
        "benchmark": "dedup stage at scale (exact + near, verify: exact), 1 core",
        "documents": n,
        "mean_bytes_per_doc": round(df["text"].str.len_bytes().mean(), 1),
        "seconds": round(seconds, 1),
        "docs_per_s": round(n / seconds, 1),
        "removed": int((out["_action"] != "keep").sum()),
        "peak_rss_mb_before_stage": round(before, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dedup_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000), indent=2))
