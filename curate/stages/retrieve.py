"""`retrieve`: FineWeb-style selection — keep the pool records that look like a trusted seed set.

Seeds (files or `shards://` refs, text or chat) and pool records are embedded with a
sentence-transformers model (offline; cached by content), the seeds are indexed with FAISS
(or searched with torch on a GPU when FAISS has no GPU build), and every embedded pool
record gets `retrieval_score` (cosine to its nearest seed), `retrieval_score_mean` (mean of
the top k), `nearest_seed_id` and `retrieved` (selected or not). Selection: a score
threshold, a top fraction or a top N, optionally per group (quotas), then optional semantic
dedup among the selected. `action: label` keeps every record and only annotates (the usual
first step before `classify`); `action: filter` drops the records not selected.

`sample: N` embeds only a seeded sample of the pool: the FineWeb-Edu recipe labels a sample
by retrieval and lets the `classify` stage's fastText model score the rest.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from curate.embed import DEFAULT_MODEL, Embedder, EmbeddingCache, embed
from curate.errors import ConfigError
from curate.io.parse import read_reference
from curate.parallel import SerialPool
from curate.records import content_text, content_texts, to_record
from curate.schema import StrictModel
from curate.selection import select
from curate.stages.base import DROP, KEEP, Resources, Stage, StageContext, rejected_by, with_decisions
from curate.vectors import Neighbours, SeedIndex, build_index, choose_backend, near_duplicates, search

SCORE_BINS = 20


class SeedSet(StrictModel):
    path: str  # JSONL / JSON / Parquet file, or shards://name@version; relative to the rules file
    format: Literal["auto", "text", "chat", "sharegpt", "alpaca", "prompt_completion", "question_answer"] = "auto"
    fields: dict[str, str] = Field(default_factory=dict)
    limit: int | None = Field(None, gt=0)


class Selection(StrictModel):
    by: Literal["threshold", "top_fraction", "top_n", "none"] = "threshold"
    value: float = 0.5
    # mean of the k nearest seeds, or the nearest one alone; the mean ranks better when seeds are diverse
    # (bench/results/retrieve.json: ROC AUC 0.89-0.92 against 0.81-0.88 for the max)
    score: Literal["max", "mean"] = "mean"
    per: str | None = Field(None, description="a column: select within each of its values (quotas)")

    @model_validator(mode="after")
    def _range(self) -> "Selection":
        if self.by == "top_fraction" and not 0 < self.value <= 1:
            raise ValueError("top_fraction needs 0 < value <= 1")
        if self.by == "top_n" and (self.value < 1 or self.value != int(self.value)):
            raise ValueError("top_n needs a whole number >= 1")
        return self


class SemanticDedup(StrictModel):
    threshold: float = Field(0.95, gt=0.0, le=1.0)
    neighbours: int = Field(16, ge=1, le=256)


class RetrieveRules(StrictModel):
    seeds: list[SeedSet] = Field(min_length=1)
    model: str = DEFAULT_MODEL
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto: 32 on a CPU (bigger batches are slower there: 15.5 s against 9.0 s for 1,074 short texts
    # at 128 vs 16-32 on 2 cores), 512 on a GPU
    batch_size: int | Literal["auto"] = "auto"
    max_tokens: int = Field(256, ge=8, le=8192)
    long_texts: Literal["truncate", "chunk"] = "truncate"
    chat_roles: Literal["all", "user", "assistant"] = "all"  # which turns of a chat record are embedded
    index: Literal["flat", "hnsw", "ivf"] = "flat"
    backend: Literal["auto", "faiss", "torch"] = "auto"
    k: int = Field(5, ge=1, le=100)
    sample: int | None = Field(None, gt=0, description="embed only this many pool records (seeded)")
    select: Selection = Field(default_factory=Selection)
    action: Literal["label", "filter"] = "label"
    semantic_dedup: SemanticDedup | None = None
    cache: bool = True
    seed: int = 0


def load_seeds(seeds: list[SeedSet], roles: str, context: StageContext) -> tuple[list[str], list[str]]:
    """(ids, texts) of every seed record."""
    ids, texts = [], []
    for s in seeds:
        if s.path.startswith("shards://"):
            data = context.shards(s.path).read(["id", "text", "messages"])
            rows = list(zip(data["id"].to_list(), content_texts(data, roles)))
        else:
            path = context.path(s.path, "seeds")
            rows = []
            for i, obj in enumerate(read_reference(path, "retrieve.seeds")):
                try:
                    rec = to_record(obj, fmt=s.format, fields=s.fields, columns=[], default_source=None)
                except ValueError as exc:
                    raise ConfigError(f"retrieve.seeds: {path} record {i + 1}: {exc}") from None
                rows.append(
                    (rec.get("id") or f"{path.name}:{i + 1}", content_text(rec.get("text"), rec.get("messages"), roles))
                )
        rows = [(i, t) for i, t in rows if t and t.strip()][: s.limit]
        ids += [str(i) for i, _ in rows]
        texts += [t for _, t in rows]
    if not texts:
        raise ConfigError("retrieve.seeds: no seed record has any text")
    return ids, texts


CHUNK = 16_384  # pool texts per embed-and-search task

_EMBEDDERS: dict[str, Embedder] = {}


def _embedder(rules: "RetrieveRules") -> tuple[Embedder, EmbeddingCache | None]:
    """The embedding model for these rules, loaded once per process, and the cache (in $CURATE_HOME now)."""
    key = rules.model_dump_json(include={"model", "device", "batch_size", "max_tokens", "long_texts"})
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = Embedder(rules.model, rules.device, rules.batch_size, rules.max_tokens, rules.long_texts)
    embedder = _EMBEDDERS[key]
    return embedder, EmbeddingCache(None, embedder.key) if rules.cache else None


def _embed_and_search(rules: "RetrieveRules", keep_vectors: bool, texts: list[str], index: SeedIndex) -> dict:
    """A pool task: one chunk's embeddings (cache first) and its nearest seeds."""
    embedder, cache = _embedder(rules)
    started = time.perf_counter()
    vectors, computed = embed(embedder, texts, cache)
    embedded = time.perf_counter()
    nb = search(index, vectors, rules.k, choose_backend(rules.backend, embedder.device))
    return {
        "scores": nb.scores,
        "ids": nb.ids,
        "backend": nb.backend,
        "device": embedder.device,
        "computed": computed,
        "vectors": vectors if keep_vectors else None,
        "seconds": (embedded - started, time.perf_counter() - embedded),
    }


def _histogram(scores: np.ndarray) -> list[int]:
    counts, _ = np.histogram(np.clip(scores, 0.0, 1.0), bins=SCORE_BINS, range=(0.0, 1.0))
    return counts.tolist()


class ScoredExample(StrictModel):
    id: str
    score: float
    nearest_seed_id: str
    selected: bool | None = None  # borderline examples: on which side of the cut


class RetrieveSummary(StrictModel):
    backend: str
    device: str
    model: str
    seeds: int
    pool: int
    embedded: int
    computed_embeddings: dict[str, int]  # not found in the embedding cache, for seeds and pool
    selected: int
    semantic_duplicates: int
    select: dict
    action: str
    threshold: float | None  # the lowest selected score
    score_bins: list[int]
    score_bins_selected: list[int]
    top_examples: list[ScoredExample]
    borderline_examples: list[ScoredExample]
    seconds: dict[str, float]


class RetrieveStage(Stage):
    stage = "retrieve"
    kind = "global"
    Rules = RetrieveRules
    Summary = RetrieveSummary
    report_key = "retrieval"
    resources = Resources(cpus=1.0, gpus=0.5, memory_gb=4.0)  # asks for a GPU where the executor has one

    @classmethod
    def describe(cls, rules: RetrieveRules, context: StageContext) -> dict:
        """Seed files' contents belong in the cache key: new seeds, new selection. Keyed by the path as
        written (relative to the rules file), so the key does not depend on where the checkout lives."""
        return {"seed_files": context.file_hashes([s.path for s in rules.seeds], "seeds")}

    @classmethod
    def criteria(cls, rules: RetrieveRules, rejected: pl.DataFrame) -> list[tuple[str, RetrieveRules]]:
        out = []
        if rejected_by(rejected, "retrieve:not_selected"):
            out.append(("retrieval selection", rules.model_copy(update={"action": "label"})))
        if rejected_by(rejected, "retrieve:semantic_duplicate"):
            out.append(("semantic dedup", rules.model_copy(update={"semantic_dedup": None})))
        return out

    def setup(self) -> None:
        self.embedder, self.cache = _embedder(self.rules)

    @classmethod
    def produces(cls, rules) -> list[str]:
        return ["retrieved", "retrieval_score", "retrieval_score_mean", "nearest_seed_id"]

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        r = self.rules
        if not hasattr(self, "embedder"):
            self.setup()
        seed_ids, seed_texts = load_seeds(r.seeds, r.chat_roles, self.context)
        n = df.height
        rows = np.arange(n)
        if r.sample is not None and r.sample < n:
            # The records whose seeded id hash is lowest: a few rows more or less (a rerun with a
            # relaxed criterion) leave the sample, and so the embedding cache, almost unchanged.
            ranks = df.select(pl.col("id").hash(seed=r.seed)).to_series().to_numpy()
            rows = np.sort(np.argsort(ranks, kind="stable")[: r.sample])
        seeds, seeds_new = embed(self.embedder, seed_texts, self.cache)
        # The pool is embedded and searched in chunks against an index built once: in this process,
        # or as tasks on the executor's pool (GPU workers under Ray), with the same chunks either way.
        texts = content_texts(df[rows], r.chat_roles)
        chunks = [texts[i : i + CHUNK] for i in range(0, len(texts), CHUNK)] or [[]]
        parts = (self.pool or SerialPool()).map(
            partial(_embed_and_search, r, r.semantic_dedup is not None),
            chunks,
            shared=(build_index(seeds, r.index),),
            gpus=self.resources.gpus,
        )
        nb = Neighbours(
            np.concatenate([p["scores"] for p in parts]), np.concatenate([p["ids"] for p in parts]), parts[0]["backend"]
        )
        pool = np.concatenate([p["vectors"] for p in parts]) if r.semantic_dedup is not None else None
        pool_new = sum(p["computed"] for p in parts)
        top, mean = nb.scores[:, 0], nb.scores.mean(axis=1)
        spent = {"embed": sum(p["seconds"][0] for p in parts), "search": sum(p["seconds"][1] for p in parts)}
        score = top if r.select.score == "max" else mean
        chosen = self._select(df, rows, score)
        dups = {}
        if r.semantic_dedup and chosen.any():
            picked = np.flatnonzero(chosen)
            order = picked[np.argsort(-score[picked], kind="stable")]
            dups = near_duplicates(pool, order, r.semantic_dedup.threshold, r.semantic_dedup.neighbours)
            for row in dups:
                chosen[row] = False

        full = lambda fill, dtype: np.full(n, fill, dtype=dtype)  # noqa: E731
        max_col, mean_col, near_col, sel_col = (
            full(np.nan, np.float32),
            full(np.nan, np.float32),
            [None] * n,
            [None] * n,
        )
        max_col[rows], mean_col[rows] = top, mean
        for j, i in enumerate(rows.tolist()):
            near_col[i] = seed_ids[int(nb.ids[j, 0])]
            sel_col[i] = bool(chosen[j])
        actions, rules_, reasons = [KEEP] * n, [None] * n, [None] * n
        if r.action == "filter":
            for j, i in enumerate(rows.tolist()):
                if j in dups:
                    other, cos = dups[j]
                    actions[i], rules_[i] = DROP, "retrieve:semantic_duplicate"
                    reasons[i] = f"cosine {cos:.3f} to {df['id'][int(rows[other])]}, kept before it"
                elif not chosen[j]:
                    actions[i], rules_[i] = DROP, "retrieve:not_selected"
                    reasons[i] = (
                        f"{r.select.score} cosine to seeds {score[j]:.3f} not selected ({r.select.by} "
                        f"{r.select.value:g})"
                    )
        self.summary = self._summary(
            df,
            rows,
            score,
            chosen,
            nb,
            seed_ids,
            len(dups),
            {"seeds": seeds_new, "pool": pool_new},
            spent,
            parts[0]["device"],
        )
        out = df.with_columns(
            pl.Series("retrieval_score", max_col).fill_nan(None),
            pl.Series("retrieval_score_mean", mean_col).fill_nan(None),
            pl.Series("nearest_seed_id", near_col, dtype=pl.Utf8),
            pl.Series("retrieved", sel_col, dtype=pl.Boolean),
        )
        return with_decisions(out, actions, rules_, reasons)

    def _select(self, df: pl.DataFrame, rows: np.ndarray, score: np.ndarray) -> np.ndarray:
        s = self.rules.select
        groups = df[s.per].cast(pl.Utf8).fill_null("(none)").to_numpy()[rows] if s.per else None
        return select(score, s.by, s.value, groups)

    def _summary(self, df, rows, score, chosen, nb, seed_ids, n_dups, computed, seconds, device) -> RetrieveSummary:
        order = np.argsort(-score, kind="stable")
        examples = [
            {
                "id": df["id"][int(rows[j])],
                "score": round(float(score[j]), 4),
                "nearest_seed_id": seed_ids[int(nb.ids[j, 0])],
            }
            for j in order[:5].tolist()
        ]
        borderline = [
            {
                "id": df["id"][int(rows[j])],
                "score": round(float(score[j]), 4),
                "nearest_seed_id": seed_ids[int(nb.ids[j, 0])],
                "selected": bool(chosen[j]),
            }
            for j in order[max(0, int(chosen.sum()) - 2) : int(chosen.sum()) + 3].tolist()
        ]
        threshold = float(score[chosen].min()) if chosen.any() else None
        return RetrieveSummary.model_validate(
            {
                "backend": nb.backend,
                "device": device,
                "model": self.rules.model,
                "seeds": len(seed_ids),
                "pool": int(df.height),
                "embedded": int(len(rows)),
                "computed_embeddings": computed,
                "selected": int(chosen.sum()),
                "semantic_duplicates": n_dups,
                "select": self.rules.select.model_dump(),
                "action": self.rules.action,
                "threshold": round(threshold, 4) if threshold is not None else None,
                "score_bins": _histogram(score),
                "score_bins_selected": _histogram(score[chosen]),
                "top_examples": examples,
                "borderline_examples": borderline,
                "seconds": {k: round(v, 3) for k, v in seconds.items()},
            }
        )
