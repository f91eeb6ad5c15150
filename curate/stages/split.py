"""`split`: stratified, group-aware train/validation/test splits, decontaminated by n-gram overlap.

Records of one group — a dedup cluster (`dup_cluster`) or any group column (patient,
conversation, source document) — always land in the same split, so near-duplicates
never straddle train and test. Groups are dealt to splits in a seeded order, label by
label, to whichever split is furthest below its target share, so every split gets the
label mix of the whole (the groups' sizes and labels come from a distributed group-by).
Then train records sharing any word n-gram (default 13) with validation/test or with the
given eval sets are dropped (or flagged); the number of leaking train/eval pairs is
reported before and after, and after a drop it is 0.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import xxhash
from pydantic import Field, model_validator

from curate.io.parse import read_reference
from curate.io.shards import iter_frames, read_parquets
from curate.minhash import MinHasher
from curate.ngrams import (
    MAX_DOCUMENT_FREQUENCY,
    MIN_OVERLAP,
    NGRAM,
    GramStore,
    covering,
    gram_chunk,
    hashers,
    overlaps,
    pair_partition,
)
from curate.parallel import SerialPool, shuffle_groups
from curate.records import comparison_texts
from curate.schema import StrictModel
from curate.stages.base import (
    DECISION_COLUMNS,
    DROP,
    KEEP,
    Evidence,
    Stage,
    StageContext,
    rejected_by,
    require_columns,
    with_decisions,
)

TRAIN = "train"


class EvalSet(StrictModel):
    path: str  # JSONL / JSON / Parquet file (relative to the rules file), or shards://name@version
    field: str = "text"  # a string, or a list of strings (e.g. MT-bench "turns")


class Decontamination(StrictModel):
    ngram: int = Field(NGRAM, ge=3, le=64)
    # An n-gram found in more documents than this is boilerplate or template text, not leakage
    # (GPT-3's decontamination made the same call); 0 checks every n-gram.
    max_document_frequency: int = Field(MAX_DOCUMENT_FREQUENCY, ge=0)
    # A pair leaks when its shared n-grams are at least this share of the shorter text's n-grams
    # (containment): 0 counts any shared n-gram; an eval question pasted into a train record scores 1.
    min_overlap: float = Field(MIN_OVERLAP, ge=0.0, le=1.0)
    action: Literal["drop", "flag", "off"] = "drop"
    eval_sets: list[EvalSet] = Field(default_factory=list)
    chat_text: Literal["conversation", "user_prompts"] = "conversation"
    # Every number counts as one token "0" in the n-grams: a benchmark question copied with its
    # numbers changed still shares its n-grams with the original.
    numbers: bool = True


class SplitRules(StrictModel):
    sizes: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1})
    stratify_by: str | None = "label"
    group_by: list[str] = Field(default_factory=lambda: ["dup_cluster"])
    decontamination: Decontamination = Field(default_factory=Decontamination)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "SplitRules":
        if TRAIN not in self.sizes:
            raise ValueError("sizes must include 'train'")
        if abs(sum(self.sizes.values()) - 1.0) > 1e-6 or min(self.sizes.values()) < 0:
            raise ValueError(f"sizes must be non-negative and sum to 1, got {sum(self.sizes.values()):.4f}")
        return self


class SplitSummary(StrictModel):
    sizes: dict[str, int]  # records kept per split
    targets: dict[str, float]
    label_mix: dict[str, dict[str, float]]  # per split, the share of each value of `stratify_by`
    groups: int
    leaking_pairs_before: int  # train/held-out pairs sharing n-grams before decontamination
    contaminated_train_records: int
    # records of each split that shared n-grams (train: with held-out or eval sets)
    contaminated_by_split: dict[str, int]
    leaking_pairs_after: int
    ngram: int
    eval_sets: list[str]


class SplitStage(Stage):
    stage = "split"
    kind = "global"
    Rules = SplitRules
    Summary = SplitSummary
    report_key = "splits"

    @classmethod
    def evidence(cls, name: str, summary: SplitSummary | None) -> list[Evidence]:
        after = summary.leaking_pairs_after if summary is not None else 0
        return [
            Evidence(
                "validation",
                "fail" if after else "pass",
                f"split stage leaking pairs after decontamination: {after:,}",
            )
        ]

    @classmethod
    def describe(cls, rules: SplitRules, context: StageContext) -> dict:
        """Eval sets' contents belong in the cache key: a new eval set, new decontamination."""
        paths = [e.path for e in rules.decontamination.eval_sets]
        return {"eval_set_files": context.file_hashes(paths, "decontamination")} if paths else {}

    @classmethod
    def criteria(cls, rules: SplitRules, rejected: pl.DataFrame) -> list[tuple[str, SplitRules]]:
        if not rejected_by(rejected, "split:contaminated"):
            return []
        off = rules.decontamination.model_copy(update={"action": "off"})
        return [("split decontamination", rules.model_copy(update={"decontamination": off}))]

    @classmethod
    def requires(cls, rules: SplitRules) -> list[str]:
        return [*rules.group_by, *([rules.stratify_by] if rules.stratify_by else [])]

    @classmethod
    def produces(cls, rules: SplitRules) -> list[str]:
        return ["split", "contaminated"]

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        r = self.rules
        require_columns("split", df, self.requires(r), "; group_by dup_cluster needs a dedup stage before split")
        splits = self.assign(df)
        contaminated, leaks = self.contamination(df, splits)
        if r.decontamination.action == "drop":
            contaminated = self._until_clean(df, splits, contaminated, leaks)
        return self._decide(df, splits, contaminated, leaks)

    def decide_files(self, files: list[Path], scratch: Path) -> pl.DataFrame:
        """`process` over the rows of checkpoint files without holding their text: the groups and labels
        are read as columns, the n-grams hashed file by file into a GramStore on disk under `scratch`.
        Returns the same rows as `process` on all the files' rows, with `id`, `split` (and
        `contaminated` when flagging) and the decision columns."""
        r = self.rules
        columns = ["id", *r.group_by, *([r.stratify_by] if r.stratify_by else [])]
        small = read_parquets(files, columns=list(dict.fromkeys(columns)))
        require_columns("split", small, self.requires(r), "; group_by dup_cluster needs a dedup stage before split")
        splits = self.assign(small)
        grams = _Grams.of_files(files, small.height, r.decontamination, scratch)
        contaminated, leaks = self.contamination(small, splits, grams)
        if r.decontamination.action == "drop":
            contaminated = self._until_clean(small, splits, contaminated, leaks, grams)
        decided = self._decide(small, splits, contaminated, leaks)
        return decided.select("id", *(c for c in self.produces(r) if c in decided.columns), *DECISION_COLUMNS)

    def _decide(self, df: pl.DataFrame, splits: list[str], contaminated: list[bool], leaks: dict) -> pl.DataFrame:
        r = self.rules
        drop = r.decontamination.action == "drop"
        actions = [DROP if (drop and c) else KEEP for c in contaminated]
        rules = ["split:contaminated" if (drop and c) else None for c in contaminated]
        reasons = [
            f"{s} record shares {r.decontamination.ngram}-grams with {w}" if (drop and c) else None
            for c, s, w in zip(contaminated, splits, leaks["where"])
        ]
        shared = (
            dict(pl.Series([s for s, c in zip(splits, contaminated) if c], dtype=pl.Utf8).value_counts().iter_rows())
            if any(contaminated)
            else {}
        )
        kept_splits = [s for s, a in zip(splits, actions) if a == KEEP]
        self.summary = SplitSummary(
            sizes=dict(pl.Series(kept_splits, dtype=pl.Utf8).value_counts().iter_rows()) if kept_splits else {},
            targets=r.sizes,
            label_mix=self._label_mix(df, splits, actions),
            groups=leaks["groups"],
            leaking_pairs_before=leaks["pairs"],
            contaminated_train_records=int(sum(c for c, s in zip(contaminated, splits) if s == TRAIN)),
            contaminated_by_split=shared,
            leaking_pairs_after=0 if drop else leaks["pairs"],
            ngram=r.decontamination.ngram,
            eval_sets=[e.path for e in r.decontamination.eval_sets],
        )
        out = df.with_columns(pl.Series("split", splits, dtype=pl.Utf8))
        if r.decontamination.action == "flag":
            out = out.with_columns(pl.Series("contaminated", contaminated, dtype=pl.Boolean))
        return with_decisions(out, actions, rules, reasons)

    def _until_clean(
        self,
        df: pl.DataFrame,
        splits: list[str],
        contaminated: list[bool],
        leaks: dict,
        grams: "_Grams | None" = None,
    ) -> list[bool]:
        """Drop until no leak is left among the kept rows: dropping train records lowers n-gram
        document frequencies, so an n-gram skipped as boilerplate can become a leak after a drop
        (the gates' independent leakage check found this)."""
        flagged = np.array(contaminated, bool)
        while flagged.any():
            rest = np.flatnonzero(~flagged)
            more, extra = self.contamination(
                df[rest], [splits[i] for i in rest], grams.subset(rest) if grams is not None else None
            )
            if not any(more):
                break
            for j in np.flatnonzero(more):
                flagged[rest[j]] = True
                leaks["where"][rest[j]] = extra["where"][j]
            leaks["pairs"] += extra["pairs"]
        return flagged.tolist()

    # --- assignment ---------------------------------------------------------------------------
    def group_keys(self, df: pl.DataFrame) -> list[str]:
        keys = [pl.col(c).cast(pl.Utf8) for c in self.rules.group_by]
        return df.select(pl.coalesce(*keys, pl.col("id")).alias("g"))["g"].to_list()

    def assign(self, df: pl.DataFrame) -> list[str]:
        """Each row's split. A group's size and label come from a group-by through a shuffle over the
        task pool (every row of a group reaches one reducer); the groups are then dealt here."""
        r = self.rules
        keys = self.group_keys(df)
        labels = (
            df[r.stratify_by].cast(pl.Utf8).fill_null("(none)")
            if r.stratify_by
            else pl.repeat("(all)", df.height, eager=True)
        )
        frame = pl.DataFrame({"g": keys, "label": labels}, schema={"g": pl.Utf8, "label": pl.Utf8})
        by_label: dict[str, list[tuple[int, str, int]]] = {}
        for part in shuffle_groups(self.pool or SerialPool(), frame, ["g"], partial(_group_sizes, r.seed)):
            for g, label, size, order in part.iter_rows():
                by_label.setdefault(label, []).append((order, g, size))
        names = list(r.sizes)
        split_of: dict[str, str] = {}
        for label in sorted(by_label):
            ordered = sorted(by_label[label])  # the seeded order
            total = sum(size for _, _, size in ordered)
            filled = dict.fromkeys(names, 0)
            for _, g, size in ordered:
                # the split furthest below its target share of this label gets the next group
                split = min(
                    names,
                    key=lambda s: (
                        (filled[s] - r.sizes[s] * total) / max(r.sizes[s], 1e-9) if r.sizes[s] else float("inf")
                    ),
                )
                filled[split] += size
                split_of[g] = split
        return [split_of[g] for g in keys]

    # --- decontamination -----------------------------------------------------------------------
    def eval_texts(self) -> list[tuple[str, str]]:
        """(name, text) of every eval-set record."""
        out = []
        for ev in self.rules.decontamination.eval_sets:
            if ev.path.startswith("shards://"):
                entry = self.context.shards(ev.path)
                data = entry.read(["text", "messages"])
                out += [(entry.ref, t) for t in comparison_texts(data, "conversation")]
                continue
            path = self.context.path(ev.path, "decontamination")
            for obj in read_reference(path, "split.decontamination.eval_sets"):
                value = obj.get(ev.field) if isinstance(obj, dict) else None
                if isinstance(value, list):
                    value = "\n".join(v for v in value if isinstance(v, str))
                if isinstance(value, str) and value.strip():
                    out.append((path.name, value))
        return out

    def contamination(
        self, df: pl.DataFrame, splits: list[str], grams: "_Grams | None" = None
    ) -> tuple[list[bool], dict]:
        """Which records leak: train records sharing n-grams with validation/test or an eval set, and
        validation/test records sharing n-grams with an eval set. N-grams are checked as written and,
        with `numbers` on, with every number as one token (a union: normalising can make a template's
        n-grams common enough to be skipped as boilerplate, so it never replaces the literal check)."""
        d = self.rules.decontamination
        n = df.height
        empty = {"pairs": 0, "groups": len(set(self.group_keys(df))), "where": [None] * n}
        if d.action == "off":
            return [False] * n, empty
        texts = comparison_texts(df, d.chat_text) if grams is None else None
        is_train = np.array([s == TRAIN for s in splits])
        self._evals = self.eval_texts()
        held_names = [s for s in splits if s != TRAIN] + [name for name, _ in self._evals]
        if not held_names or not is_train.any():
            return [False] * n, empty
        train_idx, held_idx = np.flatnonzero(is_train), np.flatnonzero(~is_train)
        contaminated, where, count = np.zeros(n, bool), [None] * n, 0
        # (held-out side: its rows and the eval texts after them, their names; the rows checked; spread)
        checks = [(held_idx, self._evals, held_names, train_idx, True)]
        if self._evals and len(held_idx):  # eval sets against validation/test too: what a model is judged on
            checks.append((held_idx[:0], self._evals, [name for name, _ in self._evals], held_idx, False))
        for held_rows, evals, named, rows, spread in checks:
            # every text in both passes: document frequencies (the boilerplate cut) are over all of them
            found = []
            for k, h in enumerate(hashers(d.ngram, d.numbers)):
                if grams is not None:
                    found.append(grams.leaks(k, held_rows, [t for _, t in evals], rows, d))
                    continue
                sources = [texts[i] for i in held_rows] + [t for _, t in evals]
                found.append(self._leaks(h, sources, [texts[i] for i in rows], rows, spread))
            pairs = pl.concat(found).unique()
            count += pairs.height
            for row, source in pairs.group_by("train").agg(pl.col("held").min()).iter_rows():
                contaminated[row] = True
                where[row] = where[row] or named[source]
        return contaminated.tolist(), {"pairs": count, "groups": empty["groups"], "where": where}

    def _leaks(
        self, hasher: MinHasher, held_texts: list[str], train_texts: list[str], train_idx: np.ndarray, spread: bool
    ) -> pl.DataFrame:
        """(train row, held index) pairs whose shared n-grams cover at least min_overlap of the shorter text."""
        d = self.rules.decontamination
        if self.pool is None or not spread:
            pairs, train_grams, held_grams = overlaps(
                hasher, held_texts, train_texts, train_idx, d.max_document_frequency
            )
        else:
            pairs, train_grams, held_grams = self._spread_overlaps(hasher, held_texts, train_texts, train_idx)
        return covering(pairs, train_idx, train_grams, held_grams, d.min_overlap)

    def _label_mix(self, df: pl.DataFrame, splits: list[str], actions: list[str]) -> dict:
        if not self.rules.stratify_by:
            return {}
        frame = pl.DataFrame({"split": splits, "label": df[self.rules.stratify_by].fill_null("(none)"), "a": actions})
        frame = frame.filter(pl.col("a") == KEEP)
        mix = {}
        for (split,), g in frame.group_by("split", maintain_order=True):
            counts = dict(g.group_by("label").len().sort("label").iter_rows())
            mix[split] = {k: round(v / g.height, 4) for k, v in counts.items()}
        return mix

    def _spread_overlaps(
        self, hasher: MinHasher, held_texts: list[str], train_texts: list[str], train_idx: np.ndarray
    ) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
        """`_overlaps` on the pool: n-gram hashing in chunk tasks, each n-gram shuffled (by its hash) to
        one reducer, which holds everything about it: its documents, its document frequency, the pairs
        it connects. Summing the reducers' per-pair counts gives `_overlaps`' counts exactly."""
        size = max(MIN_CHUNK, -(-(len(held_texts) + len(train_texts)) // (4 * self.pool.workers)))
        items = [
            ("held", held_texts[i : i + size], np.arange(i, min(i + size, len(held_texts))))
            for i in range(0, len(held_texts), size)
        ]
        items += [
            ("train", train_texts[i : i + size], train_idx[i : i + size]) for i in range(0, len(train_texts), size)
        ]
        mapped, reduced = self.pool.shuffle(
            partial(gram_chunk, hasher),
            items,
            max(1, self.pool.workers),
            partial(pair_partition, self.rules.decontamination.max_document_frequency),
        )
        counts = {
            side: np.concatenate([c for s, c in mapped if s == side] or [np.empty(0, np.int64)])
            for side in ("held", "train")
        }
        pairs = pl.concat(reduced).group_by("train", "held").agg(pl.col("len").sum())
        return pairs, counts["train"], counts["held"]


MIN_CHUNK = 2_000  # texts per pool task, at least


def _group_sizes(seed: int, rows: pl.DataFrame) -> pl.DataFrame:
    """A reducer: per group, its most common label (ties: the first in sort order), its size and
    its place in the seeded order."""
    counts = rows.group_by("g", "label").len()
    top = counts.sort(["g", "len", "label"], descending=[False, True, False]).group_by("g", maintain_order=True).first()
    sizes = counts.group_by("g").agg(pl.col("len").sum().alias("size"))
    out = top.select("g", "label").join(sizes, on="g")
    order = [xxhash.xxh3_64_intdigest(g.encode(), seed) for g in out["g"].to_list()]
    return out.with_columns(pl.Series("order", order, dtype=pl.UInt64))


class _Grams:
    """A split's n-grams on disk, one GramStore per hasher (decide_files); `subset` narrows it to some
    rows, as `contamination(df[rest])` narrows a frame, and `leaks` is `_leaks` on the stored n-grams."""

    def __init__(self, stores: list[GramStore], rows: np.ndarray | None = None):
        self.stores = stores
        self.rows = rows  # local row -> stored row (None: the same)

    @classmethod
    def of_files(cls, files: list[Path], height: int, d: Decontamination, scratch: Path) -> "_Grams":
        stores = [GramStore(scratch / f"hasher-{k}", h, height) for k, h in enumerate(hashers(d.ngram, d.numbers))]
        if d.action != "off":
            for chunk in iter_frames(files, ["text", "messages"]):
                texts = comparison_texts(chunk, d.chat_text)
                for store in stores:
                    store.add(texts)
        return cls(stores)

    def subset(self, rest: np.ndarray) -> "_Grams":
        return _Grams(self.stores, rest if self.rows is None else self.rows[rest])

    def leaks(
        self, k: int, held: np.ndarray, eval_texts: list[str], rows: np.ndarray, d: Decontamination
    ) -> pl.DataFrame:
        """(local train row, held index) pairs of `rows` against the held rows and eval texts."""
        store = self.stores[k]
        stored_held, stored_rows = (held, rows) if self.rows is None else (self.rows[held], self.rows[rows])
        pairs, held_grams = store.pairs(stored_held, stored_rows, eval_texts, d.max_document_frequency)
        found = covering(pairs, stored_rows, store.counts()[stored_rows], held_grams, d.min_overlap)
        if self.rows is None:
            return found
        local = np.searchsorted(self.rows, found["train"].to_numpy())
        return found.with_columns(pl.Series("train", local, dtype=pl.Int64))
