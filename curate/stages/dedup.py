"""`dedup`: exact and MinHash near-duplicate removal, also against shards already published.

Exact duplicates share a 128-bit hash of their normalised content. Near duplicates
share a MinHash LSH band and pass verification (estimated Jaccard from signatures,
or exact Jaccard of shingle sets). Duplicates are clustered transitively; one
representative per cluster is kept (keep policy), the others are dropped with the id
of the record they duplicate. Records in `against` shards always win: they are
already published. Signatures of kept records are written beside the shards
(`signatures/<stage>/`) so a later project dedups against them without recomputing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import polars as pl
import xxhash
from pydantic import Field, model_validator
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from curate.errors import ConfigError
from curate.io.shards import iter_frames, read_parquets
from curate.minhash import (
    MinHasher,
    Sketch,
    band_partitions,
    candidate_pairs,
    estimated_jaccard,
    lsh_params,
    pairs_from_codes,
    reduce_band_partition,
)
from curate.normalize import Normalization, exact_keys
from curate.profile import value_counts
from curate.records import comparison_texts
from curate.schema import StrictModel
from curate.stages.base import DROP, KEEP, Resources, Stage, StageContext, rejected_by, with_decisions

SIGNATURE, EXACT_KEY = "minhash", "exact_key"
MIN_CHUNK = 500  # texts per pool task, at least (a task has overhead)


class NormalizationRules(StrictModel):
    lowercase: bool = True
    punctuation: bool = True
    digits: bool = False


class BoilerplateRules(StrictModel):
    """Lines repeated across many records (system prompts, tool descriptions, templates, licence
    headers) are left out of near-dup shingles, the way C4/FineWeb drop repeated lines. A line is
    boilerplate when it is in at least `min_records` records and at least `min_share` of them."""

    enabled: bool = True
    min_records: int = Field(10, ge=2)
    min_share: float = Field(0.005, ge=0.0, le=1.0)
    min_chars: int = Field(20, ge=1, description="shorter lines are never boilerplate ('Thanks!', '}')")
    show_text: bool = Field(
        False, description="put the first 80 characters of each top line in the report (off: it may hold personal data)"
    )


class DedupRules(StrictModel):
    exact: bool = True
    near: bool = True
    normalization: NormalizationRules = Field(default_factory=NormalizationRules)
    shingle: Literal["word", "char"] = "word"
    ngram: int = Field(5, ge=1, le=64)
    num_perm: int = Field(128, ge=16, le=1024)
    seed: int = 1
    threshold: float = Field(0.8, gt=0.0, le=1.0)
    bands: int | None = Field(None, ge=1)
    rows: int | None = Field(None, ge=1)
    false_negative_weight: float = Field(
        0.95, gt=0.0, lt=1.0, description="banding search weight of missed pairs vs false candidates"
    )
    verify: Literal["none", "signature", "exact"] = "exact"
    keep: Literal["first", "longest", "score"] = "first"
    score_column: str | None = None
    chat_text: Literal["conversation", "user_prompts"] = "conversation"
    against: list[str] = Field(default_factory=list, description="shards://name@version sets to dedup against")
    max_bucket: int = Field(64, ge=2)
    boilerplate: BoilerplateRules = Field(default_factory=BoilerplateRules)

    @model_validator(mode="after")
    def _check(self) -> "DedupRules":
        if not (self.exact or self.near):
            raise ValueError("enable at least one of 'exact' and 'near'")
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both 'bands' and 'rows', or neither (derived from threshold)")
        if self.bands and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        if self.keep == "score" and not self.score_column:
            raise ValueError("keep: score needs score_column (the column whose highest value is kept)")
        return self

    def hashing(self) -> dict:
        """What signatures depend on; stored signatures are reused only if this matches."""
        return self.model_dump(
            include={"normalization", "shingle", "ngram", "num_perm", "seed", "chat_text", "boilerplate"},
            exclude={"boilerplate": {"show_text"}},
        )


def _line_key(line: str) -> str:
    return " ".join(line.lower().split())


class BoilerplateLine(StrictModel):
    hash: str  # of the normalised line; its text only with `show_text`
    records: int
    chars: int
    text: str | None = None


class Boilerplate(StrictModel):
    """Lines repeated across records that near-dedup left out of its shingles."""

    lines: int = 0
    records: int = 0
    top: list[BoilerplateLine] = Field(default_factory=list)


class DedupSummary(StrictModel):
    boilerplate: Boilerplate | None = None


CLUSTER_BINS = [(2, 2), (3, 3), (4, 4), (5, 5), (6, 10), (11, 20), (21, 50), (51, 100), (101, None)]


def size_histogram(sizes: list[int]) -> dict[str, int]:
    """Clusters per size bin ("2", "3", ..., "6-10", ..., "101+"), empty bins included."""
    out = {}
    for lo, hi in CLUSTER_BINS:
        label = str(lo) if lo == hi else (f"{lo}+" if hi is None else f"{lo}-{hi}")
        out[label] = sum(1 for n in sizes if n >= lo and (hi is None or n <= hi))
    return out


def boilerplate(texts: list[str], rules: BoilerplateRules) -> tuple[list[str], Boilerplate]:
    """The texts with their boilerplate lines left out (a text that is nothing but boilerplate is
    kept whole, so such records stay duplicates of each other), and a summary of the lines found."""
    if not rules.enabled or not texts:
        return texts, Boilerplate()
    keys = line_keys(texts, rules)
    common = common_lines(line_counts(keys), len(texts), rules)
    out, touched = strip_lines(texts, keys, common)
    return out, boilerplate_summary(common, touched, rules)


def line_keys(texts: list[str], rules: BoilerplateRules) -> list[set[str]]:
    """Each text's distinct normalised lines long enough to be boilerplate."""
    return [{_line_key(x) for x in t.split("\n") if len(x.strip()) >= rules.min_chars} for t in texts]


def line_counts(keys: list[set[str]]) -> pl.DataFrame:
    """(line, count): how many of the texts hold each line; counts of several batches add up."""
    flat = pl.Series("line", [k for ks in keys for k in ks], dtype=pl.Utf8)
    return flat.value_counts(name="count").with_columns(pl.col("count").cast(pl.Int64))


def common_lines(counts: pl.DataFrame, texts: int, rules: BoilerplateRules) -> dict[str, int]:
    """The boilerplate lines of `texts` texts, most common first (ties in line order), with their counts."""
    floor = max(rules.min_records, rules.min_share * texts)
    common = counts.filter(pl.col("count") >= floor).sort(["count", "line"], descending=[True, False])
    return dict(common.iter_rows())


def strip_lines(texts: list[str], keys: list[set[str]], common: dict[str, int]) -> tuple[list[str], int]:
    """The texts without their common lines, and how many texts had any."""
    if not common:
        return texts, 0
    out, touched = [], 0
    for text, ks in zip(texts, keys):
        if not ks & common.keys():
            out.append(text)
            continue
        touched += 1
        kept = "\n".join(x for x in text.split("\n") if _line_key(x) not in common)
        out.append(kept if kept.strip() else text)
    return out, touched


def boilerplate_summary(common: dict[str, int], touched: int, rules: BoilerplateRules) -> Boilerplate:
    if not common:
        return Boilerplate()
    top = [
        BoilerplateLine(
            hash=xxhash.xxh3_64_hexdigest(k.encode()), records=n, chars=len(k), text=k[:80] if rules.show_text else None
        )
        for k, n in list(common.items())[:20]
    ]
    return Boilerplate(lines=len(common), records=touched, top=top)


@dataclass
class _Prior:
    """Records of published shards that new records are deduplicated against."""

    ids: list[str]
    refs: list[str]
    exact: list[str]
    signatures: np.ndarray


class DedupStage(Stage):
    stage = "dedup"
    kind = "global"
    Rules = DedupRules
    resources = Resources(cpus=1, memory_gb=4)
    sidecar_columns: ClassVar[tuple[str, ...]] = (EXACT_KEY, SIGNATURE)

    @classmethod
    def describe(cls, rules: DedupRules, context: StageContext) -> dict:
        """Recorded in the manifest: what stored signatures depend on, and the shard versions
        deduplicated against (resolved, so `@latest` moving on invalidates the cache)."""
        bands, rows = lsh_params(rules.threshold, rules.num_perm, rules.bands, rules.rows, rules.false_negative_weight)
        against = [context.shards(ref).ref for ref in rules.against]
        return {"hashing": rules.hashing(), "bands": bands, "rows": rows, "against": against}

    Summary = DedupSummary
    report_key = "duplicates"

    @classmethod
    def report_section(cls, name: str, summary: DedupSummary | None, account: dict, rejected: pl.DataFrame) -> dict:
        """The cluster-size histogram and the duplicates removed per source and per rule."""
        removed = rejected.group_by("dup_of").len() if rejected.height else pl.DataFrame({"dup_of": [], "len": []})
        found = summary.boilerplate if summary is not None else None
        return {
            "stage": name,
            "clusters": removed.height,
            "removed": rejected.height,
            "by_rule": dict(rejected.group_by("rule").len().sort("rule").iter_rows()) if rejected.height else {},
            "cluster_sizes": size_histogram((removed["len"] + 1).to_list() if removed.height else []),
            "by_source": value_counts(rejected, "source", top=50),
            "boilerplate": found.model_dump(mode="json", exclude_none=True) if found is not None else None,
        }

    @classmethod
    def criteria(cls, rules: DedupRules, rejected: pl.DataFrame) -> list[tuple[str, DedupRules]]:
        out = []
        if rejected_by(rejected, "exact_duplicate"):
            out.append(("exact dedup", rules.model_copy(update={"exact": False})))
        if rejected_by(rejected, "near_duplicate"):
            out.append(("near dedup", rules.model_copy(update={"near": False})))
        return out

    def setup(self) -> None:
        r = self.rules
        self.normalization = Normalization(**r.normalization.model_dump())
        self.hasher = MinHasher(
            num_perm=r.num_perm, seed=r.seed, shingle=r.shingle, ngram=r.ngram, normalization=self.normalization
        )
        self.bands, self.rows = lsh_params(r.threshold, r.num_perm, r.bands, r.rows, r.false_negative_weight)

    # --- keys -------------------------------------------------------------------------------
    def exact_keys(self, texts: list[str]) -> list[str]:
        return exact_keys(texts, self.normalization)

    def sketch(self, texts: list[str]) -> Sketch:
        return self.hasher.sketch(texts)

    # --- prior shards -------------------------------------------------------------------------
    def load_prior(self) -> _Prior:
        from curate.errors import CatalogError

        ids, refs, exact, sigs = [], [], [], []
        for ref in self.rules.against:
            try:
                entry = self.context.shards(ref)
            except CatalogError as exc:
                raise ConfigError(f"dedup.against: {exc}") from None
            df = self._stored_signatures(entry)
            if df is None:  # no compatible signatures were stored: compute them from the data
                data = entry.read(["id", "text", "messages"])
                texts = comparison_texts(data, self.rules.chat_text)
                df = pl.DataFrame({"id": data["id"], EXACT_KEY: self.exact_keys(texts)}).with_columns(
                    pl.Series(SIGNATURE, self.sketch(texts).signatures)
                )
            ids += df["id"].to_list()
            refs += [entry.ref] * df.height
            exact += df[EXACT_KEY].to_list()
            sigs.append(np.asarray(df[SIGNATURE].to_list(), dtype=np.uint32).reshape(df.height, self.rules.num_perm))
        matrix = np.concatenate(sigs) if sigs else np.empty((0, self.rules.num_perm), np.uint32)
        return _Prior(ids, refs, exact, matrix)

    def _stored_signatures(self, entry) -> pl.DataFrame | None:
        manifest = entry.manifest()
        for stage in manifest["pipeline"]["stages"]:
            if stage["stage"] == "dedup" and stage.get("hashing") == self.rules.hashing():
                if any(f["path"].startswith(f"signatures/{stage['name']}/") for f in manifest["files"]):
                    return entry.read(["id", EXACT_KEY, SIGNATURE], folder=f"signatures/{stage['name']}")
        return None

    # --- clustering ---------------------------------------------------------------------------
    @classmethod
    def produces(cls, rules) -> list[str]:
        return ["dup_cluster", "dup_of"]

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        rules = self.rules
        prior = self.load_prior()
        texts = comparison_texts(df, rules.chat_text)
        near_texts, found = boilerplate(texts, rules.boilerplate) if rules.near else (texts, None)
        self.summary = DedupSummary(boilerplate=found) if found is not None else None
        if self.pool is None:
            exact_new, sketch, candidates = self.exact_keys(texts), self.sketch(near_texts), None
        else:
            exact_new, sketch, candidates = self._spread(texts, near_texts, prior)
        lengths = np.fromiter(map(len, texts), np.int64, len(texts))
        out = df.with_columns(self._cluster(df, lengths, exact_new, sketch, prior, candidates))
        return with_decisions(out, *self._decisions)

    def decide_files(self, files: list[Path], scratch: Path) -> pl.DataFrame:
        """`process` over the rows of checkpoint files without holding their text: the exact keys and
        MinHash sketches are computed file by file (after counting boilerplate lines over every file),
        then clustered as `process` clusters them. Returns the ids, what `process` adds and the
        decision columns, in file order."""
        rules = self.rules
        prior = self.load_prior()
        columns = ["id", *([rules.score_column] if rules.keep == "score" and rules.score_column else [])]
        small = read_parquets(files, columns=columns)
        strip = rules.near and rules.boilerplate.enabled and small.height > 0
        common: dict[str, int] = {}
        if strip:
            counts = [line_counts(line_keys(texts, rules.boilerplate)) for texts in self._texts(files)]
            total = pl.concat(counts).group_by("line").agg(pl.col("count").sum())
            common = common_lines(total, small.height, rules.boilerplate)
        exact_new, sketches, lengths, touched = [], [], [], 0
        for texts in self._texts(files):
            near_texts = texts
            if strip:
                near_texts, n = strip_lines(texts, line_keys(texts, rules.boilerplate), common)
                touched += n
            exact_new += self.exact_keys(texts)
            sketches.append(self.sketch(near_texts))
            lengths.append(np.fromiter(map(len, texts), np.int64, len(texts)))
        if rules.near:
            self.summary = DedupSummary(boilerplate=boilerplate_summary(common, touched, rules.boilerplate))
        sketch = Sketch.concat(sketches) if sketches else self.sketch([])
        length = np.concatenate(lengths) if lengths else np.empty(0, np.int64)
        out = small.select("id").with_columns(self._cluster(small, length, exact_new, sketch, prior, None))
        return with_decisions(out, *self._decisions)

    def _texts(self, files: list[Path]) -> Iterator[list[str]]:
        """The comparison texts of the files' rows, a row group at a time."""
        for chunk in iter_frames(files, ["text", "messages"]):
            yield comparison_texts(chunk, self.rules.chat_text)

    def _cluster(
        self,
        df: pl.DataFrame,
        lengths: np.ndarray,
        exact_new: list[str],
        sketch: Sketch,
        prior: _Prior,
        candidates: np.ndarray | None,
    ) -> list[pl.Series]:
        """The columns dedup adds to `df`'s rows (clusters, what each duplicates, the keys); the
        decisions are left in `self._decisions` (actions, rules, reasons)."""
        rules = self.rules
        n_prior, n = len(prior.ids), df.height
        exact = prior.exact + exact_new
        sigs = np.concatenate([prior.signatures, sketch.signatures])
        edges, weights = [], []
        if rules.exact:
            edges.append(_exact_edges(exact))
            weights.append(np.ones(len(edges[-1])))
        if rules.near:
            pairs, jac = self.near_pairs(sigs, sketch, n_prior, candidates)
            edges.append(pairs)
            weights.append(jac)
        edge = np.concatenate(edges) if edges else np.empty((0, 2), np.int64)
        jaccard = np.concatenate(weights) if weights else np.empty(0)
        total = n_prior + n
        graph = coo_matrix((np.ones(len(edge)), (edge[:, 0], edge[:, 1])), shape=(total, total))
        _, labels = connected_components(graph, directed=False)
        rep = self._representatives(labels, df, lengths, n_prior)
        best_j = _best_similarity(edge, jaccard, total)
        ids = prior.ids + df["id"].to_list()
        cluster_size = np.bincount(labels, minlength=labels.max() + 1 if total else 0)[labels] if total else np.empty(0)
        actions, rule_names, reasons, dup_of, cluster = [], [], [], [], []
        for i in range(n_prior, total):
            r = rep[i]
            cluster.append(ids[r] if cluster_size[i] > 1 else None)
            if r == i:
                actions.append(KEEP), rule_names.append(None), reasons.append(None), dup_of.append(None)
                continue
            same = exact[i] == exact[r]
            where = f" in {prior.refs[r]}" if r < n_prior else ""
            similarity = (
                "identical after normalisation"
                if same
                else f"near-duplicate cluster of {cluster_size[i]}, highest Jaccard {best_j[i]:.2f}"
            )
            actions.append(DROP)
            rule_names.append("exact_duplicate" if same else "near_duplicate")
            reasons.append(f"duplicate of {ids[r]}{where} ({similarity})")
            dup_of.append(ids[r])
        self._decisions = (actions, rule_names, reasons)
        return [
            pl.Series("dup_cluster", cluster, dtype=pl.Utf8),
            pl.Series("dup_of", dup_of, dtype=pl.Utf8),
            pl.Series(EXACT_KEY, exact[n_prior:], dtype=pl.Utf8),
            pl.Series(SIGNATURE, sigs[n_prior:], dtype=pl.Array(pl.UInt32, rules.num_perm)),
        ]

    def near_pairs(
        self, sigs: np.ndarray, sketch: Sketch, n_prior: int = 0, candidates: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """LSH candidate pairs that pass verification, with their (estimated or exact) Jaccard.

        `sigs` holds the prior shards' signatures first, then the new records' (`sketch`);
        `candidates`, if given, are the LSH pairs already found (by the pool's shuffle).
        """
        pairs = (
            candidate_pairs(sigs, self.bands, self.rows, self.rules.max_bucket) if candidates is None else candidates
        )
        # Texts without a single shingle all share the empty signature: they are not near anything.
        empty = (sigs == np.uint32(0xFFFFFFFF)).all(axis=1)
        pairs = pairs[~(empty[pairs[:, 0]] | empty[pairs[:, 1]])]
        mode = self.rules.verify
        if mode == "exact":
            # True Jaccard of shingle sets for pairs of new records; prior shards keep only signatures.
            new = (pairs[:, 0] >= n_prior) & (pairs[:, 1] >= n_prior)
            jac = np.empty(len(pairs))
            jac[new] = sketch.jaccard(pairs[new] - n_prior)
            jac[~new] = estimated_jaccard(sigs, pairs[~new])
        else:
            jac = estimated_jaccard(sigs, pairs)
        if mode == "none":
            return pairs, jac
        keep = jac >= self.rules.threshold
        return pairs[keep], jac[keep]

    def _spread(self, texts: list[str], near_texts: list[str], prior: _Prior) -> tuple[list[str], Sketch, np.ndarray]:
        """Exact keys, sketches and LSH candidates computed by the pool: text chunks are hashed in
        parallel tasks, and each (band, bucket) key is shuffled to one reducer, which pairs up the
        records that share it. The same keys, sketch and pairs as the in-process path."""
        n_prior, total = len(prior.ids), len(prior.ids) + len(texts)
        size = max(MIN_CHUNK, -(-len(texts) // (4 * self.pool.workers)))
        items = [(None, None, prior.signatures, 0)] if n_prior else []
        items += [
            (texts[i : i + size], near_texts[i : i + size], None, n_prior + i) for i in range(0, len(texts), size)
        ]
        mapper = partial(_sketch_chunk, self.normalization, self.hasher, self.bands, self.rows)
        mapped, reduced = self.pool.shuffle(
            mapper, items, max(1, self.pool.workers), partial(reduce_band_partition, total, self.rules.max_bucket)
        )
        parts = [m for m in mapped if m is not None]
        exact = [key for keys, _ in parts for key in keys]
        sketch = Sketch.concat([sk for _, sk in parts]) if parts else self.sketch([])
        return exact, sketch, pairs_from_codes(reduced, total)

    def _representatives(self, labels: np.ndarray, df: pl.DataFrame, lengths: np.ndarray, n_prior: int) -> np.ndarray:
        """Index of the kept record of each record's cluster: a prior record if any, else by policy."""
        total = len(labels)
        if total == 0:  # nothing reached the stage (every row rejected before it)
            return np.empty(0, np.int64)
        if self.rules.keep == "longest":
            priority = np.concatenate([np.zeros(n_prior), -lengths.astype(np.float64)])
        elif self.rules.keep == "score":
            col = self.rules.score_column
            if col not in df.columns:
                raise ConfigError(
                    f"dedup: keep: score needs column '{col}', which the records do not have (columns: "
                    f"{', '.join(df.columns)})"
                )
            scores = df[col].cast(pl.Float64).fill_null(-np.inf).to_numpy()
            priority = np.concatenate([np.full(n_prior, -np.inf), -scores])
        else:
            priority = np.zeros(total)
        priority[:n_prior] = -np.inf  # published records always win
        order = np.lexsort((np.arange(total), priority, labels))  # by cluster, then priority, then position
        first = np.r_[True, labels[order][1:] != labels[order][:-1]]
        rep_of_label = np.empty(labels.max() + 1 if total else 0, np.int64)
        rep_of_label[labels[order][first]] = order[first]
        return rep_of_label[labels]


def _sketch_chunk(
    normalization: Normalization,
    hasher: MinHasher,
    bands: int,
    rows: int,
    item: tuple[list[str] | None, list[str] | None, np.ndarray | None, int],
    partitions: int,
):
    """A pool task: one chunk's exact keys and sketch of its near-dup texts (none for
    already-published signatures), and its band keys split into the shuffle's partitions."""
    texts, near_texts, sigs, start = item
    result = None
    if texts is not None:
        sketch = hasher.sketch(near_texts)
        result, sigs = (exact_keys(texts, normalization), sketch), sketch.signatures
    positions = np.arange(start, start + len(sigs), dtype=np.int64)
    return result, band_partitions(sigs, positions, bands, rows, partitions)


def _exact_edges(keys: list[str]) -> np.ndarray:
    codes = pl.Series(keys).rank("dense").to_numpy().astype(np.int64)
    order = np.argsort(codes, kind="stable")
    same = np.flatnonzero(codes[order][1:] == codes[order][:-1])
    return np.stack([order[same], order[same + 1]], axis=1) if len(same) else np.empty((0, 2), np.int64)


def _best_similarity(edges: np.ndarray, jaccard: np.ndarray, total: int) -> np.ndarray:
    """For the reason text: each record's highest verified similarity to any neighbour."""
    best = np.zeros(total)
    if len(edges):
        np.maximum.at(best, edges[:, 0], jaccard)
        np.maximum.at(best, edges[:, 1], jaccard)
    return best
