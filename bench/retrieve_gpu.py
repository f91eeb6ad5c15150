"""`retrieve` on a CUDA GPU: the whole stage against the bare-model floor on the same GPU.

Floor: the embedding model alone in fp16 on pre-tokenised batches of 1,024 documents at 256
tokens (no tokenisation, no copies, no search) — the fastest the GPU can embed. Stage: the
`retrieve` stage end to end on the same documents (tokenisation overlapped with the GPU,
length-sorted batches from pinned memory, the seed search, selection; embedding cache off).
Goal: the stage at >= 50% of the floor's docs/s. Also: max-similarity of 2M pool vectors
against 20k seeds with the stage's search backend.

Run on a GPU machine: `python -m bench.retrieve_gpu` (exits 2 without CUDA).
Results: bench/results/retrieve_gpu.json.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DOCS = 200_000
BATCH = 1024
TOKENS = 256


def _documents(n: int) -> list[str]:
    """n distinct documents of at least 256 tokens, from the demo's sentence templates."""
    import random

    from curate.demo import content as C
    from curate.demo.generator import _fill

    rng = random.Random(3)
    return [" ".join(_fill(rng, rng.choice(C.EN_SENTENCES)) for _ in range(14)) + f" (document {i})" for i in range(n)]


def floor(model, docs: list[str]) -> float:
    import torch

    features = model.preprocess(docs[:BATCH]) if hasattr(model, "preprocess") else model.tokenize(docs[:BATCH])
    features = {k: v.cuda() if torch.is_tensor(v) else v for k, v in features.items()}
    with torch.inference_mode():
        for _ in range(3):
            model(features)
        torch.cuda.synchronize()
        start, rounds = time.perf_counter(), 20
        for _ in range(rounds):
            model(features)["sentence_embedding"]
        torch.cuda.synchronize()
    return BATCH * rounds / (time.perf_counter() - start)


def main() -> None:
    import polars as pl
    import torch

    if not torch.cuda.is_available():
        print("bench.retrieve_gpu: no CUDA device here", file=sys.stderr)
        raise SystemExit(2)
    from curate.stages.retrieve import RetrieveRules, RetrieveStage
    from curate.vectors import choose_backend, nearest

    os.environ.setdefault("CURATE_HOME", tempfile.mkdtemp(prefix="curate-gpu-home-"))
    docs = _documents(DOCS)
    seeds = REPO / "rules" / "retrieve" / "seeds" / "patient-education.jsonl"
    stage = RetrieveStage(
        "retrieve",
        RetrieveRules(
            seeds=[{"path": str(seeds)}],
            cache=False,
            device="cuda",
            batch_size=BATCH,
            max_tokens=TOKENS,
            select={"by": "top_fraction", "value": 0.3},
        ),
    )
    stage.setup()
    model = stage.embedder.model()
    bare = floor(model, docs)
    df = pl.DataFrame(
        {"id": [f"d{i}" for i in range(len(docs))], "text": docs, "messages": [None] * len(docs)},
        schema_overrides={"messages": pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))},
    )
    stage.process(df.head(5 * BATCH))  # warm-up: CUDA kernels, allocator
    torch.cuda.synchronize()
    start = time.perf_counter()
    measured = stage.run(df).summary
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((2_000_000, 384), dtype=np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    seed_vecs = pool[:20_000].copy()
    backend = choose_backend("auto", "cuda")
    start = time.perf_counter()
    nearest(seed_vecs, pool, 1, backend)
    search = time.perf_counter() - start
    result = {
        "benchmark": "retrieve on a GPU: the whole stage vs the bare-model floor",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "documents": len(docs),
        "batch": BATCH,
        "tokens": TOKENS,
        "dtype": "fp16",
        "floor_docs_per_s": round(bare, 1),
        "stage_docs_per_s": round(len(docs) / seconds, 1),
        "stage_seconds": round(seconds, 2),
        "stage_vs_floor": round(len(docs) / seconds / bare, 4),
        "goal": "stage >= 0.5 x floor",
        "stage_breakdown": measured["seconds"],
        "backend": measured["backend"],
        "search_2M_x_20k_seconds": round(search, 3),
        "search_backend": backend,
    }
    (RESULTS / "retrieve_gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
