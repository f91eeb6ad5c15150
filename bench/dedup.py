"""Dedup benchmark: signatures + LSH speed against datasketch, and pair accuracy against exact Jaccard.

Run by `make bench` in its own process with POLARS_MAX_THREADS=1, so every figure is
per core. Writes bench/results/dedup.json; bench/run.py folds it into the table.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from datasketch import MinHash, MinHashLSH

from curate.demo.generator import generate
from curate.minhash import MinHasher, pair_scores, true_jaccard_pairs
from curate.stages.dedup import DedupRules, DedupStage

RESULTS = Path(__file__).resolve().parent / "results"
_WORD = re.compile(r"\w+")


def corpus_texts(records: int, seed: int = 2024) -> list[str]:
    """Every record's dedup text (documents, and chat user prompts) from the demo generator."""
    folder = Path(tempfile.mkdtemp(prefix="curate-dedup-bench-"))
    texts = []
    for path in generate(folder, records, seed):
        import gzip

        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        for line in data.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("text"), str) and len(obj["text"]) < 200_000:
                texts.append(obj["text"])
            elif isinstance(obj, dict) and isinstance(obj.get("messages"), list):
                texts.append("\n".join(m.get("content", "") for m in obj["messages"] if m.get("role") == "user"))
    return texts


def datasketch_shingles(text: str, n: int = 5) -> list[bytes]:
    """How a datasketch user builds word 5-gram shingles in plain Python."""
    tokens = _WORD.findall(text.lower())
    n = min(n, len(tokens)) or 1
    return [" ".join(tokens[i : i + n]).encode() for i in range(max(1, len(tokens) - n + 1))] if tokens else []


def run_datasketch(texts: list[str], threshold: float) -> tuple[float, set[int]]:
    start = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    sketches = []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=128)
        m.update_batch(datasketch_shingles(text))
        sketches.append(m)
        lsh.insert(i, m)
    duplicates = set()
    for i, m in enumerate(sketches):
        for j in lsh.query(m):
            if j < i and m.jaccard(sketches[j]) >= threshold:
                duplicates.add(i)
                break
    # A record with an earlier near-duplicate is removed: the same as keeping the first of each cluster.
    return time.perf_counter() - start, duplicates


def removed_by_clusters(pairs: np.ndarray, n: int) -> set[int]:
    """Documents a dedup removes: every member of a connected cluster except its first."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not len(pairs):
        return set()
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    first = {}
    for i, label in enumerate(labels.tolist()):
        first.setdefault(label, i)
    sizes = np.bincount(labels)
    return {i for i, label in enumerate(labels.tolist()) if sizes[label] > 1 and first[label] != i}


def run_datatrove(texts: list[str]) -> tuple[float, set[int]] | None:
    """datatrove's MinHash dedup in its own virtualenv (DATATROVE_PYTHON), if one is set up."""
    python = os.environ.get("DATATROVE_PYTHON")
    if not python or not Path(python).exists():
        return None
    import subprocess

    work = Path(tempfile.mkdtemp(prefix="curate-datatrove-"))
    corpus = work / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)))
    subprocess.run(
        [
            python,
            str(Path(__file__).with_name("datatrove_minhash.py")),
            str(corpus),
            str(work / "dt"),
            str(work / "result.json"),
        ],
        check=True,
        capture_output=True,
    )
    result = json.loads((work / "result.json").read_text())
    return result["seconds"], set(result["removed"])


def run_curate(texts: list[str], threshold: float, verify: str) -> tuple[float, set[int]]:
    stage = DedupStage("dedup", DedupRules(threshold=threshold, verify=verify))
    stage.setup()
    warm = stage.sketch(texts[:64])  # compile the numba kernels outside the timing
    stage.near_pairs(warm.signatures, warm)
    start = time.perf_counter()
    sketch = stage.sketch(texts)
    pairs, _ = stage.near_pairs(sketch.signatures, sketch)
    elapsed = time.perf_counter() - start
    return elapsed, removed_by_clusters(pairs, len(texts))


def near_duplicate_sample(texts: list[str], bases: int, variants: int, seed: int = 7) -> list[str]:
    """Base documents plus edited copies whose Jaccard to the base spans the threshold."""
    rng = random.Random(seed)
    docs = [t for t in texts if 150 <= len(t.split()) <= 600]
    vocab = [w for t in docs[:200] for w in t.split()]
    sample = []
    for base in rng.sample(docs, bases):
        sample.append(base)
        for _ in range(variants):
            words = base.split()
            for _ in range(rng.randint(0, max(1, len(words) // 25))):
                words[rng.randrange(len(words))] = rng.choice(vocab)
            sample.append(" ".join(words))
    return sample


def _doc_scores(found: set[int], truth: set[int]) -> dict[str, float]:
    tp = len(found & truth)
    precision = tp / len(found) if found else 1.0
    recall = tp / len(truth) if truth else 1.0
    return {
        "removed": len(found),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
    }


def accuracy(texts: list[str], threshold: float = 0.8) -> dict:
    """Pair and document-level precision/recall against exact Jaccard over all pairs of a sample."""
    sample = near_duplicate_sample(texts, bases=600, variants=4)
    truth = true_jaccard_pairs(MinHasher(), sample, threshold)
    truth_removed = removed_by_clusters(np.array(sorted(truth)), len(sample))
    out = {"documents": len(sample), "true_pairs": len(truth), "true_removed": len(truth_removed)}
    for verify in ("signature", "exact"):
        stage = DedupStage("dedup", DedupRules(threshold=threshold, verify=verify))
        stage.setup()
        sketch = stage.sketch(sample)
        pairs, _ = stage.near_pairs(sketch.signatures, sketch)
        out[f"curate verify={verify}"] = {
            "pairs": pair_scores({tuple(p) for p in pairs.tolist()}, truth),
            "documents": _doc_scores(removed_by_clusters(pairs, len(sample)), truth_removed),
        }
    out["datasketch"] = {"documents": _doc_scores(run_datasketch(sample, threshold)[1], truth_removed)}
    datatrove = run_datatrove(sample)
    if datatrove is not None:
        out["datatrove"] = {"documents": _doc_scores(datatrove[1], truth_removed)}
    return out


def main(records: int = 100_000) -> dict:
    texts = corpus_texts(records)
    shingles = np.mean([max(0, len(_WORD.findall(t.lower())) - 4) for t in texts[:5000]])
    ds_s, ds_dups = run_datasketch(texts, 0.8)
    rows = [
        {
            "variant": "datasketch (MinHash.update_batch + MinHashLSH insert/query, signature check)",
            "seconds": ds_s,
            "duplicates": len(ds_dups),
        }
    ]
    agreement = {}
    for verify, label in (
        ("signature", "curate dedup, verify: signature (same check as the baseline)"),
        ("exact", "curate dedup, verify: exact (default)"),
    ):
        secs, dups = run_curate(texts, 0.8, verify)
        rows.append({"variant": label, "seconds": secs, "duplicates": len(dups)})
        agreement[verify] = round(len(dups & ds_dups) / len(dups | ds_dups), 4) if dups | ds_dups else 1.0
    datatrove = run_datatrove(texts)
    if datatrove is not None:
        rows.append(
            {
                "variant": "datatrove MinhashDedup (signature + buckets + cluster, 14x8, no verification)",
                "seconds": datatrove[0],
                "duplicates": len(datatrove[1]),
            }
        )
        agreement["datatrove"] = round(len(datatrove[1] & ds_dups) / len(datatrove[1] | ds_dups), 4)
    for r in rows:
        r["docs_per_s"] = round(len(texts) / r["seconds"], 1)
        r["speed_vs_datasketch"] = round(ds_s / r["seconds"], 2)
        r["seconds"] = round(r["seconds"], 2)
    result = {
        "benchmark": "near-dedup: MinHash signatures + LSH (128 perms, threshold 0.8, word 5-grams), 1 core",
        "documents": len(texts),
        "mean_shingles_per_doc": round(float(shingles), 1),
        "rows": rows,
        "removed_set_agreement_with_datasketch": agreement,
        "accuracy": accuracy(texts),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "signature_bytes_per_doc": 128 * 4,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dedup.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    import sys

    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=2))
