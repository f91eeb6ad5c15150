"""Nearest seeds for every pool vector: FAISS (CPU, or GPU when a GPU build is installed),
or exact search with torch matmul + top-k on a CUDA device when FAISS has no GPU support.

Vectors are unit length, so inner product is cosine similarity. `flat` is exact; `hnsw`
and `ivf` are approximate FAISS indexes for seed sets past ~1M vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curate.errors import ConfigError

TORCH_CHUNK = 65_536  # pool rows per matmul on the GPU


@dataclass
class Neighbours:
    scores: np.ndarray  # (n, k) cosine similarities, best first
    ids: np.ndarray  # (n, k) seed row numbers
    backend: str  # what ran, e.g. "faiss-cpu flat" or "torch-cuda exact"


def _faiss_gpu(faiss) -> bool:
    return hasattr(faiss, "StandardGpuResources") and getattr(faiss, "get_num_gpus", lambda: 0)() > 0


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def choose_backend(requested: str, device: str) -> str:
    """faiss-gpu, faiss-cpu or torch-cuda for `requested` in auto | faiss | torch."""
    import faiss

    gpu = device.startswith("cuda") and _cuda()
    if requested == "torch":
        if not _cuda():
            raise ConfigError("retrieve: backend 'torch' needs a CUDA device (use 'auto' or 'faiss' on CPU)")
        return "torch-cuda"
    if gpu and _faiss_gpu(faiss):
        return "faiss-gpu"
    if gpu and requested == "auto":
        return "torch-cuda"  # a GPU but a CPU-only FAISS build: exact search on the GPU beats FAISS on the CPU
    return "faiss-cpu"


def _faiss_index(faiss, seeds: np.ndarray, kind: str, nprobe: int):
    d = seeds.shape[1]
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
    elif kind == "ivf":
        nlist = max(1, int(np.sqrt(len(seeds))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(seeds)
        index.nprobe = min(nprobe, nlist)
    else:
        index = faiss.IndexFlatIP(d)
    index.add(seeds)
    return index


def _torch_topk(seeds: np.ndarray, pool: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    dev = torch.device("cuda")
    s = torch.from_numpy(seeds).to(dev, dtype=torch.float16)
    scores, ids = [], []
    for start in range(0, len(pool), TORCH_CHUNK):
        q = (
            torch.from_numpy(pool[start : start + TORCH_CHUNK])
            .pin_memory()
            .to(dev, dtype=torch.float16, non_blocking=True)
        )
        top = (q @ s.T).float().topk(k, dim=1)
        scores.append(top.values.cpu().numpy())
        ids.append(top.indices.cpu().numpy())
    return np.concatenate(scores), np.concatenate(ids)


@dataclass
class SeedIndex:
    """The seeds to search, built once: for hnsw/ivf the FAISS index travels serialised, so the whole
    thing pickles and is broadcast to the workers that search (a flat index is only the vectors). The
    serialised index keeps its search settings (efSearch, nprobe)."""

    seeds: np.ndarray
    kind: str
    blob: np.ndarray | None = None


def build_index(seeds: np.ndarray, kind: str = "flat", nprobe: int = 16) -> SeedIndex:
    seeds = np.ascontiguousarray(seeds, dtype=np.float32)
    if kind == "flat" or len(seeds) == 0:
        return SeedIndex(seeds, kind)
    import faiss

    return SeedIndex(seeds, kind, faiss.serialize_index(_faiss_index(faiss, seeds, kind, nprobe)))


def search(index: SeedIndex, pool: np.ndarray, k: int, backend: str) -> Neighbours:
    """The k most similar seeds of every pool vector."""
    k = max(1, min(k, len(index.seeds)))
    if len(pool) == 0:
        return Neighbours(np.zeros((0, k), np.float32), np.zeros((0, k), np.int64), backend)
    pool = np.ascontiguousarray(pool, dtype=np.float32)
    if backend == "torch-cuda":
        scores, ids = _torch_topk(index.seeds, pool, k)
        return Neighbours(scores, ids, "torch-cuda exact")
    import faiss

    found = _faiss_index(faiss, index.seeds, "flat", 0) if index.blob is None else faiss.deserialize_index(index.blob)
    if backend == "faiss-gpu":
        found = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, found)
    scores, ids = found.search(pool, k)
    return Neighbours(scores, ids, f"{backend} {index.kind}")


def nearest(
    seeds: np.ndarray, pool: np.ndarray, k: int, backend: str, kind: str = "flat", nprobe: int = 16
) -> Neighbours:
    """The k most similar seeds of every pool vector."""
    return search(build_index(seeds, kind, nprobe), pool, k, backend)


def near_duplicates(
    vectors: np.ndarray, order: np.ndarray, threshold: float, k: int = 16
) -> dict[int, tuple[int, float]]:
    """Greedy semantic dedup among the rows in `order` (best first): a row whose cosine to a row
    kept before it exceeds `threshold` is a duplicate; {row: (the kept row, cosine)}. Looks at
    each row's k nearest neighbours among those rows (exact FAISS inner-product search)."""
    import faiss

    if len(order) < 2:
        return {}
    sub = np.ascontiguousarray(vectors[order], dtype=np.float32)  # position = rank
    index = faiss.IndexFlatIP(sub.shape[1])
    index.add(sub)
    scores, ids = index.search(sub, min(k + 1, len(sub)))
    dropped: dict[int, tuple[int, float]] = {}
    for pos in range(len(sub)):
        for other, score in zip(ids[pos].tolist(), scores[pos].tolist()):
            if 0 <= other < pos and score > threshold and int(order[other]) not in dropped:
                dropped[int(order[pos])] = (int(order[other]), float(score))
                break
    return dropped
