"""`split`: stratified, group-aware train/validation/test splits, decontaminated by n-gram overlap.

Records of one group — a dedup cluster (`dup_cluster`) or any group column (patient,
conversation, source document) — always land in the same split, so near-duplicates
never straddle train and test. Groups are dealt to splits in a seeded order, label by
label, to whichever split is furthest below its target share, so every split gets the
label mix of the whole (the groups' sizes and labels come from a distributed group-by).
Then train records whose shared word n-grams (default 13) cover enough of a validation/test record
or an eval item are dropped (or flagged), each naming the record it matched (`matched_*` columns
and the reason), and so are validation/test records that cover an eval item (`curate.ngrams` says how
a pair is measured); the number of leaking pairs is reported before and after, and after a drop it is 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import polars as pl
import xxhash
from pydantic import Field, model_validator

from curate.hashing import sha256_file
from curate.io.parse import read_reference
from curate.io.shards import iter_frames, read_parquets
from curate.minhash import MinHasher
from curate.ngrams import (
    MAX_DOCUMENT_FREQUENCY,
    MIN_OVERLAP,
    MIN_WORDS,
    NGRAM,
    Counts,
    GramStore,
    Probes,
    covering,
    gram_chunk,
    hashers,
    overlaps,
    pair_partition,
    worded,
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
ID_KEYS = ("id", "question_id", "uid", "task_id")  # an eval item's id, the first of these it has
# What a contaminated record matched, on its row (null elsewhere): the matched record's id, where it is
# (a split of this run, or an eval set's file name or shards ref), its row (a run record's `src_row`, an
# eval item's place in its file) and how much of it the shared n-grams cover.
MATCH_COLUMNS = {"matched_id": pl.Utf8, "matched_in": pl.Utf8, "matched_row": pl.Int64, "match_coverage": pl.Float64}


class EvalSet(StrictModel):
    path: str  # JSONL / JSON / Parquet file (relative to the rules file), or shards://name@version
    field: str = "text"  # a string, or a list of strings (e.g. MT-bench "turns")
    id_field: str | None = None  # the items' id; by default the first of ID_KEYS an item has


class Decontamination(StrictModel):
    ngram: int = Field(NGRAM, ge=3, le=64)
    # An n-gram found in more documents than this is boilerplate or template text, not leakage
    # (GPT-3's decontamination made the same call); 0 checks every n-gram.
    max_document_frequency: int = Field(MAX_DOCUMENT_FREQUENCY, ge=0)
    # A pair leaks when the n-grams it shares cover at least this share of the held-out text's tokens (the
    # validation/test record's or the eval item's; Tülu 3's measure and cut), the tokens only boilerplate
    # covers not counted: 0 counts any shared n-gram; an eval question pasted into a record is covered whole.
    min_overlap: float = Field(MIN_OVERLAP, ge=0.0, le=1.0)
    action: Literal["drop", "flag", "off"] = "drop"
    eval_sets: list[EvalSet] = Field(default_factory=list)
    chat_text: Literal["conversation", "user_prompts"] = "conversation"
    # Every number counts as one token "0" in a second pass: a benchmark question copied with its
    # numbers changed still shares its n-grams with the original.
    numbers: bool = True
    # ... for held-out texts whose prompt (a chat's user turns, a document's text, an eval item) has at
    # least this many words (non-number tokens); a shorter one is compared as written only: its substance
    # is its numbers ("Tính 10% của 180" is not "Tính 15% của 500"). In that pass an n-gram of mostly
    # numbers never counts (a number table says nothing once blanked).
    min_words: int = Field(MIN_WORDS, ge=0)


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


class EvalSource(StrictModel):
    """An eval set as a run read it: what `matched_in` calls it, the file (resolved) or shards ref, and
    how its items were read, so that `curate rejected --match` reads the same items."""

    name: str
    path: str
    field: str
    id_field: str | None = None
    sha256: str | None = None  # of the file when the run read it (None: a shards ref)


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
    eval_sources: list[EvalSource] = Field(default_factory=list)


class Held(NamedTuple):
    """A held-out text a record can match: a validation/test record of the run, or an eval item (a turn
    of it, where its field is a list: each turn is matched on its own, as a copy may hold one)."""

    where: str  # the split, or the eval set's name
    id: str | None
    row: int | None  # the record's `src_row`; the eval item's place in its file, from 1 (blank lines not counted)
    turn: int | None = None  # the eval item's turn, from 1, where it has several
    eval: bool = False

    def named(self) -> str:
        if not self.eval:
            return f"{self.where} record {self.id}"
        at = f"row {self.row}" + (f", turn {self.turn}" if self.turn else "")
        return f"{self.where} record {self.id} ({at})" if self.id is not None else f"{self.where} {at}"


class EvalItem(NamedTuple):
    held: Held
    text: str


class Match(NamedTuple):
    """The held-out text a contaminated record matched best: the highest coverage, then the first."""

    held: Held
    coverage: float

    def reason(self, split: str, ngram: int) -> str:
        covered = math.floor(self.coverage * 100)  # never "100%" for a part
        return f"{split} record shares {ngram}-grams with {self.held.named()}: {covered}% of its tokens"


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
        return ["split", "contaminated", *MATCH_COLUMNS]

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        r = self.rules
        require_columns("split", df, self.requires(r), "; group_by dup_cluster needs a dedup stage before split")
        splits = self.assign(df)
        self._sources, self._evals = self.eval_sets()
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
        columns = ["id", "src_row", *r.group_by, *([r.stratify_by] if r.stratify_by else [])]
        small = read_parquets(files, columns=list(dict.fromkeys(columns)))
        require_columns("split", small, self.requires(r), "; group_by dup_cluster needs a dedup stage before split")
        splits = self.assign(small)
        self._sources, self._evals = self.eval_sets()
        held = np.array([s != TRAIN for s in splits], bool)
        grams = _Grams.of_files(files, held, self._evals, r.decontamination, scratch)
        contaminated, leaks = self.contamination(small, splits, grams)
        if r.decontamination.action == "drop":
            contaminated = self._until_clean(small, splits, contaminated, leaks, grams)
        decided = self._decide(small, splits, contaminated, leaks)
        return decided.select("id", *(c for c in self.produces(r) if c in decided.columns), *DECISION_COLUMNS)

    def _decide(self, df: pl.DataFrame, splits: list[str], contaminated: list[bool], leaks: dict) -> pl.DataFrame:
        r = self.rules
        drop = r.decontamination.action == "drop"
        matches: list[Match | None] = leaks["match"]
        actions = [DROP if (drop and c) else KEEP for c in contaminated]
        rules = ["split:contaminated" if (drop and c) else None for c in contaminated]
        reasons = [
            m.reason(s, r.decontamination.ngram) if (drop and c) else None
            for c, s, m in zip(contaminated, splits, matches)
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
            eval_sources=self._sources if r.decontamination.action != "off" else [],
        )
        out = df.with_columns(pl.Series("split", splits, dtype=pl.Utf8))
        if r.decontamination.action == "flag":
            out = out.with_columns(pl.Series("contaminated", contaminated, dtype=pl.Boolean))
        if r.decontamination.action != "off":
            out = out.with_columns(_match_columns(matches))
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
                leaks["match"][rest[j]] = extra["match"][j]
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
    def eval_sets(self) -> tuple[list[EvalSource], list[EvalItem]]:
        """The eval sets as read (files resolved, named as `matched_in` names them) and their items."""
        d = self.rules.decontamination
        if d.action == "off":
            return [], []
        written = [e.path for e in d.eval_sets]
        sources, items = [], []
        for ev in d.eval_sets:
            if ev.path.startswith("shards://"):
                ref = self.context.shards(ev.path).ref  # the version resolved now, pinned for `rejected --match`
                source = EvalSource(name=ref, path=ref, field=ev.field, id_field=ev.id_field)
            else:
                path = self.context.path(ev.path, "decontamination")
                # a file is named by its name, or by its path as written where two share a name
                name = path.name if sum(Path(w).name == path.name for w in written) == 1 else ev.path
                source = EvalSource(
                    name=name, path=str(path), field=ev.field, id_field=ev.id_field, sha256=sha256_file(path)
                )
            sources.append(source)
            items += read_eval_set(source, self.context.shards)
        return sources, items

    def contamination(
        self, df: pl.DataFrame, splits: list[str], grams: "_Grams | None" = None
    ) -> tuple[list[bool], dict]:
        """Which records leak: train records covering enough of a validation/test record or an eval
        item, and validation/test records covering enough of an eval item; for each, the best match.
        N-grams are checked as written and, with `numbers` on, with every number as one token (a
        union: normalising can make a template's n-grams common enough to be skipped as boilerplate,
        so it never replaces the literal check)."""
        d = self.rules.decontamination
        n = df.height
        empty = {"pairs": 0, "groups": len(set(self.group_keys(df))), "match": [None] * n}
        if d.action == "off":
            return [False] * n, empty
        texts = comparison_texts(df, d.chat_text) if grams is None else None
        is_train = np.array([s == TRAIN for s in splits], bool)
        evals = self._evals
        if not (len(evals) or (~is_train).any()) or not is_train.any():
            return [False] * n, empty
        train_idx, held_idx = np.flatnonzero(is_train), np.flatnonzero(~is_train)
        ids = df["id"].to_list()
        src_rows = df["src_row"].to_list() if "src_row" in df.columns else [None] * n
        held = [Held(splits[i], ids[i], src_rows[i]) for i in held_idx]
        # which held-out texts may match with their numbers blanked: those whose prompt has enough words
        eval_texts = [e.text for e in evals]
        eval_worded = worded(eval_texts, d.min_words)
        held_worded = grams.worded(held_idx) if grams is not None else worded(_prompts(df[held_idx]), d.min_words)
        contaminated, match, count = np.zeros(n, bool), [None] * n, 0
        # (held-out side: its rows, then the eval items; what each is; which have words; rows checked; spread)
        checks = [
            (held_idx, held + [e.held for e in evals], np.concatenate([held_worded, eval_worded]), train_idx, True)
        ]
        if evals and len(held_idx):  # eval sets against validation/test too: what a model is judged on
            checks.append((held_idx[:0], [e.held for e in evals], eval_worded, held_idx, False))
        for held_rows, named, ok, rows, spread in checks:
            # every text in both passes: document frequencies (the boilerplate cut) are over all of them
            found = []
            for k, h in enumerate(hashers(d.ngram, d.numbers)):
                probes = Probes.of(h, eval_texts, eval_worded, first=len(held_rows))
                if grams is not None:
                    found.append(grams.leaks(k, held_rows, eval_texts, rows, ok, probes, d))
                    continue
                sources = [texts[i] for i in held_rows] + eval_texts
                found.append(self._leaks(h, sources, ok, probes, [texts[i] for i in rows], rows, spread))
            pairs = pl.concat(found)
            count += pairs.select("train", "held").unique().height
            best = pairs.sort(["train", "coverage", "held"], descending=[False, True, False]).unique(
                "train", keep="first", maintain_order=True
            )
            for row, source, coverage in best.iter_rows():
                contaminated[row] = True
                match[row] = Match(named[source], coverage)
        return contaminated.tolist(), {"pairs": count, "groups": empty["groups"], "match": match}

    def _leaks(
        self,
        hasher: MinHasher,
        held_texts: list[str],
        held_worded: np.ndarray,
        probes: Probes,
        train_texts: list[str],
        train_idx: np.ndarray,
        spread: bool,
    ) -> pl.DataFrame:
        """(train row, held index, coverage) of the pairs whose shared n-grams cover at least min_overlap
        of the held text."""
        d = self.rules.decontamination
        if self.pool is None or not spread:
            spans, counts = overlaps(
                hasher, held_texts, train_texts, train_idx, d.max_document_frequency, held_worded, probes
            )
        else:
            spans, counts = self._spread_overlaps(hasher, held_texts, held_worded, probes, train_texts, train_idx)
        return covering(spans, counts, d.min_overlap)

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
        self,
        hasher: MinHasher,
        held_texts: list[str],
        held_worded: np.ndarray,
        probes: Probes,
        train_texts: list[str],
        train_idx: np.ndarray,
    ) -> tuple[pl.DataFrame, Counts]:
        """`overlaps` on the pool: n-gram hashing in chunk tasks, each n-gram shuffled (by its hash) to
        one reducer, which holds everything about it: its documents, its document frequency, the spans
        it covers. The reducers' spans together are `overlaps`' spans exactly."""
        size = max(MIN_CHUNK, -(-(len(held_texts) + len(train_texts)) // (4 * self.pool.workers)))
        items = [
            ("held", held_texts[i : i + size], np.arange(i, min(i + size, len(held_texts))), held_worded[i : i + size])
            for i in range(0, len(held_texts), size)
        ]
        items += [
            ("train", train_texts[i : i + size], train_idx[i : i + size], None)
            for i in range(0, len(train_texts), size)
        ]
        mapped, reduced = self.pool.shuffle(
            partial(gram_chunk, hasher, probes),
            items,
            max(1, self.pool.workers),
            partial(pair_partition, self.rules.decontamination.max_document_frequency),
        )
        return pl.concat(reduced), Counts.joined([c for side, c in mapped if side == "held"])


MIN_CHUNK = 2_000  # texts per pool task, at least


def read_eval_set(source: EvalSource, shards: Callable[[str], Any]) -> list[EvalItem]:
    """The items of an eval set (`shards` resolves a shards:// ref to a catalog entry): a file's rows with
    the field (a string, or a list of strings: one item per turn), a shard set's records as conversations."""
    if source.path.startswith("shards://"):
        data = shards(source.path).read(["id", "text", "messages"])
        texts = comparison_texts(data, "conversation")
        ids = data["id"].cast(pl.Utf8).to_list()
        return [
            EvalItem(Held(source.name, i, row, eval=True), t) for row, (i, t) in enumerate(zip(ids, texts), start=1)
        ]
    items = []
    for row, obj in enumerate(read_reference(Path(source.path), "split.decontamination.eval_sets"), start=1):
        value = obj.get(source.field) if isinstance(obj, dict) else None
        turns = [v for v in value if isinstance(v, str)] if isinstance(value, list) else [value]
        turns = [(k, t) for k, t in enumerate(turns, start=1) if isinstance(t, str) and t.strip()]
        for k, text in turns:
            held = Held(source.name, _eval_id(obj, source.id_field), row, k if len(turns) > 1 else None, True)
            items.append(EvalItem(held, text))
    return items


def matched_texts(
    rows: pl.DataFrame,
    sources: list[EvalSource],
    records: Callable[[list[str]], pl.DataFrame],
    shards: Callable[[str], Any],
) -> tuple[list[str | None], list[str]]:
    """The text of what each contaminated row matched (its `matched_in`, `matched_id`, `matched_row`): an
    eval item's, read again as the run read it (every turn of it), or a record's of the run, which
    `records(ids)` gives (id, text, messages). None where it is not found; and notes for a person: an eval
    set that is gone, or whose file changed since the run."""
    by_name = {s.name: s for s in sources}
    where, ids, at = (
        rows[c].to_list() if c in rows.columns else [None] * rows.height
        for c in ("matched_in", "matched_id", "matched_row")
    )
    items: dict[str, dict[int, list[str]]] = {}
    notes = []
    for name in sorted({w for w in where if w in by_name}):
        source = by_name[name]
        path = Path(source.path)
        if not source.path.startswith("shards://"):
            if not path.is_file():
                notes.append(f"{name}: {path} is gone; its items cannot be shown")
                continue
            if source.sha256 and sha256_file(path) != source.sha256:
                notes.append(f"{name}: {path} changed since the run; the text shown may not be what was matched")
        items[name] = {}
        for item in read_eval_set(source, shards):
            items[name].setdefault(item.held.row, []).append(item.text)
    wanted = sorted({i for w, i in zip(where, ids) if w is not None and w not in by_name and i is not None})
    found = records(wanted) if wanted else pl.DataFrame()
    texts = dict(zip(found["id"].to_list(), comparison_texts(found, "conversation"))) if found.height else {}
    out = []
    for w, i, r in zip(where, ids, at):
        if w in by_name:
            out.append("\n\n".join(items[w][r]) if r in items.get(w, {}) else None)
        else:
            out.append(texts.get(i))
    return out, notes


def _prompts(df: pl.DataFrame) -> list[str]:
    """What decides whether a held-out record may match with its numbers blanked: its prompt (a chat's
    user turns; a document's text), not the answer a template fills in with more template words."""
    return comparison_texts(df, "user_prompts")


def _eval_id(obj: dict, field: str | None) -> str | None:
    keys = [field] if field else ID_KEYS
    value = next((obj[k] for k in keys if obj.get(k) is not None), None)
    return None if value is None else str(value)


def _match_columns(matches: list[Match | None]) -> list[pl.Series]:
    values = [
        [m.held.id if m else None for m in matches],
        [m.held.where if m else None for m in matches],
        [m.held.row if m else None for m in matches],
        [m.coverage if m else None for m in matches],
    ]
    return [pl.Series(name, v, dtype=t) for (name, t), v in zip(MATCH_COLUMNS.items(), values)]


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
    """A split's n-grams on disk, one GramStore per hasher (decide_files), and which held-out rows' prompts
    have enough words (`worded`); `subset` narrows it to some rows, as `contamination(df[rest])` narrows a
    frame, and `leaks` is `_leaks` on the stored n-grams."""

    def __init__(self, stores: list[GramStore], prompt_worded: np.ndarray, rows: np.ndarray | None = None):
        self.stores, self.prompt_worded = stores, prompt_worded
        self.rows = rows  # local row -> stored row (None: the same)

    @classmethod
    def of_files(
        cls, files: list[Path], held: np.ndarray, evals: list[EvalItem], d: Decontamination, scratch: Path
    ) -> "_Grams":
        """The n-grams of every row of `files` (with their windows that are an eval item's probe), and for
        the rows `held` marks whether their prompt has enough words."""
        texts = [e.text for e in evals]
        probes = [(h, Probes.of(h, texts, worded(texts, d.min_words))) for h in hashers(d.ngram, d.numbers)]
        stores = [GramStore(scratch / f"hasher-{k}", h, len(held), p) for k, (h, p) in enumerate(probes)]
        prompt_worded, done = np.zeros(len(held), bool), 0
        if d.action != "off":
            for chunk in iter_frames(files, ["text", "messages"]):
                texts = comparison_texts(chunk, d.chat_text)
                for store in stores:
                    store.add(texts)
                mine = np.flatnonzero(held[done : done + chunk.height])
                prompt_worded[done + mine] = worded(_prompts(chunk[mine]), d.min_words)
                done += chunk.height
        return cls(stores, prompt_worded)

    def subset(self, rest: np.ndarray) -> "_Grams":
        return _Grams(self.stores, self.prompt_worded, rest if self.rows is None else self.rows[rest])

    def worded(self, rows: np.ndarray) -> np.ndarray:
        return self.prompt_worded[rows if self.rows is None else self.rows[rows]]

    def leaks(
        self,
        k: int,
        held: np.ndarray,
        eval_texts: list[str],
        rows: np.ndarray,
        held_worded: np.ndarray,
        probes: Probes,
        d: Decontamination,
    ) -> pl.DataFrame:
        """(local train row, held index, coverage) of the pairs of `rows` against the held rows and eval
        texts that leak."""
        store = self.stores[k]
        stored_held, stored_rows = (held, rows) if self.rows is None else (self.rows[held], self.rows[rows])
        limit = d.max_document_frequency
        spans, counts = store.pairs(stored_held, stored_rows, eval_texts, limit, held_worded, probes)
        found = covering(spans, counts, d.min_overlap)
        if self.rows is None:
            return found
        local = np.searchsorted(self.rows, found["train"].to_numpy())
        return found.with_columns(pl.Series("train", local, dtype=pl.Int64))
