"""`dedup`: exact and MinHash near-duplicate removal, also against shards already published.

Exact duplicates share a 128-bit hash of their normalised content. Near duplicates
share a MinHash LSH band and pass verification (estimated Jaccard from signatures,
or exact Jaccard of shingle sets). A chat record is compared in parts (`comparison_views`):
its prompt and its answer must each be near, its tool calls identical; its system turns
are left out. Duplicates are clustered transitively; one
representative per cluster is kept (keep policy), the others are dropped with the id
of the record they duplicate. Records in `against` shards always win: they are
already published. Signatures of kept records are written beside the shards
(`signatures/<stage>/`) so a later project dedups against them without recomputing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar, Literal, NamedTuple

import numpy as np
import polars as pl
import xxhash
from pydantic import Field, model_validator
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from curate.errors import ConfigError
from curate.io.shards import ParquetAppender, iter_frames, read_parquets
from curate.minhash import (
    MinHasher,
    Sketch,
    SketchFiles,
    band_candidates,
    band_partitions,
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
DECISION_ROWS = 20_000  # rows per row group of the decisions decide_files writes


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
    chat_text: Literal["prompt_and_answer", "conversation", "user_prompts"] = "prompt_and_answer"
    min_shingles: int = Field(45, ge=1, description="a part with fewer `ngram` shingles is compared by shorter ones")
    short_ngram: int = Field(2, ge=0, description="the shingle size of short parts (0: compared whole)")
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
        if self.short_ngram >= self.ngram:
            raise ValueError(f"short_ngram ({self.short_ngram}) must be below ngram ({self.ngram}), or 0")
        if self.keep == "score" and not self.score_column:
            raise ValueError("keep: score needs score_column (the column whose highest value is kept)")
        return self

    def hashing(self) -> dict:
        """What signatures depend on; stored signatures are reused only if this matches."""
        return self.model_dump(
            include={
                "normalization",
                "shingle",
                "ngram",
                "num_perm",
                "seed",
                "chat_text",
                "min_shingles",
                "short_ngram",
                "boilerplate",
            },
            exclude={"boilerplate": {"show_text"}},
        )


class View(NamedTuple):
    """What near-dedup compares of a record: `prompt` and `answer` by Jaccard, each on its own (a
    document is all prompt), and `call` only whole."""

    prompt: str
    answer: str = ""
    call: str = ""


# A tool call as chat formats write it: a JSON object with a function's name and its arguments (OpenAI,
# glaive and LLaMA-Factory's function_call turns, Hermes and Qwen's <tool_call>, glaive's <functioncall>).
_CALL_TAG = re.compile(r"<tool_call>|<functioncall>|<function_call>")
_CALL_NAME = re.compile(r'"name"\s*:')
_CALL_ARGUMENTS = re.compile(r'"(?:arguments|parameters)"\s*:')


def is_tool_call(content: str) -> bool:
    """Whether an assistant turn holds a tool call."""
    return bool(_CALL_TAG.search(content) or (_CALL_NAME.search(content) and _CALL_ARGUMENTS.search(content)))


def comparison_views(df: pl.DataFrame, chat_text: str) -> tuple[list[str], list[View]]:
    """Per record, the text exact dedup compares and what near dedup compares.

    `prompt_and_answer`: the exact key is of the whole conversation, every turn. Near dedup compares
    the user and tool turns (`prompt`) and the assistant's (`answer`) each on its own: a near
    duplicate asks nearly the same and answers nearly the same, so the same passage with another task
    (and so another answer), or the same question answered otherwise, is another record however long
    the passage. System turns are left out of near matching: a system prompt or tool description says
    what a record may use, not what it asks or answers, and one that many records share (the whole
    tool list of a tool-use set) would outweigh the few words that tell them apart; records differing
    only there are near duplicates (Jaccard 1.0), not exact ones. Tool calls are compared whole
    (`call`): the same tool with other argument values is another record, however alike the rest.
    The other modes compare one text, both ways (`comparison_texts`)."""
    if chat_text != "prompt_and_answer":
        texts = comparison_texts(df, chat_text)
        return texts, [View(t) for t in texts]
    views = []
    for text, messages in zip(df["text"].to_list(), df["messages"].to_list()):
        if text is not None:
            views.append(View(text))
            continue
        prompt, answer, call = [], [], []
        for m in messages or []:
            content = m["content"] or ""
            if m["role"] == "assistant":
                (call if is_tool_call(content) else answer).append(content)
            elif m["role"] != "system":
                prompt.append(content)
        views.append(View("\n".join(prompt), "\n".join(answer), "\n".join(call)))
    return comparison_texts(df, "conversation"), views


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


def boilerplate(views: list[View], rules: BoilerplateRules) -> tuple[list[View], Boilerplate]:
    """The views with their boilerplate lines left out (a part that is nothing but boilerplate is
    kept whole, so such records stay duplicates of each other), and a summary of the lines found."""
    if not rules.enabled or not views:
        return views, Boilerplate()
    keys = line_keys(views, rules)
    common = common_lines(line_counts(keys), len(views), rules)
    out, touched, seen = strip_lines(views, keys, common)
    return out, boilerplate_summary(common, seen, touched, rules)


def _line_hash(line: str) -> int:
    return xxhash.xxh3_64_intdigest(_line_key(line).encode())


def line_keys(views: list[View], rules: BoilerplateRules) -> list[set[int]]:
    """Each record's distinct normalised lines (of its prompt and answer) long enough to be boilerplate,
    as 64-bit hashes: counting them over a corpus holds 16 bytes per distinct line, not its text."""
    return [
        {_line_hash(x) for part in v[:2] for x in part.split("\n") if len(x.strip()) >= rules.min_chars} for v in views
    ]


def line_counts(keys: list[set[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(line hashes, counts): how many of the texts hold each line; `add_counts` adds up batches'."""
    flat = np.fromiter((k for ks in keys for k in ks), np.uint64, sum(map(len, keys)))
    return np.unique(flat, return_counts=True)


def add_counts(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The line counts of several batches, as one."""
    if not parts:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    lines, where = np.unique(np.concatenate([h for h, _ in parts]), return_inverse=True)
    return lines, np.bincount(where, weights=np.concatenate([n for _, n in parts])).astype(np.int64)


def common_lines(counts: tuple[np.ndarray, np.ndarray], texts: int, rules: BoilerplateRules) -> dict[int, int]:
    """The boilerplate lines of `texts` texts (by hash), with their counts."""
    floor = max(rules.min_records, rules.min_share * texts)
    lines, n = counts
    common = n >= floor
    return dict(zip(lines[common].tolist(), n[common].tolist()))


def strip_lines(
    views: list[View], keys: list[set[int]], common: dict[int, int]
) -> tuple[list[View], int, dict[int, str]]:
    """The views without their common lines, how many records had any, and the normalised text of each
    common line met (for the summary's order and `show_text`)."""
    if not common:
        return views, 0, {}
    out, touched, seen = [], 0, {}
    for view, ks in zip(views, keys):
        if not ks & common.keys():
            out.append(view)
            continue
        touched += 1
        out.append(view._replace(prompt=_strip(view.prompt, common, seen), answer=_strip(view.answer, common, seen)))
    return out, touched, seen


def _strip(text: str, common: dict[int, int], seen: dict[int, str]) -> str:
    kept = []
    for x in text.split("\n"):
        h = _line_hash(x)
        if h in common:
            seen.setdefault(h, _line_key(x))
        else:
            kept.append(x)
    joined = "\n".join(kept)
    return joined if joined.strip() else text


def boilerplate_summary(
    common: dict[int, int], seen: dict[int, str], touched: int, rules: BoilerplateRules
) -> Boilerplate:
    """The lines found, most common first (ties in the order of their text)."""
    if not common:
        return Boilerplate()
    ranked = sorted(common.items(), key=lambda hc: (-hc[1], seen.get(hc[0], "")))
    top = [
        BoilerplateLine(
            hash=f"{h:016x}",
            records=n,
            chars=len(seen.get(h, "")),
            text=seen.get(h, "")[:80] if rules.show_text else None,
        )
        for h, n in ranked[:20]
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
            num_perm=r.num_perm,
            seed=r.seed,
            shingle=r.shingle,
            ngram=r.ngram,
            normalization=self.normalization,
            min_shingles=r.min_shingles,
            short_ngram=r.short_ngram,
        )
        self.bands, self.rows = lsh_params(r.threshold, r.num_perm, r.bands, r.rows, r.false_negative_weight)

    # --- keys -------------------------------------------------------------------------------
    def exact_keys(self, texts: list[str]) -> list[str]:
        return exact_keys(texts, self.normalization)

    def sketch(self, views: Sequence[View | str]) -> Sketch:
        return sketch_views(self.hasher, views)

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
                texts, views = comparison_views(data, self.rules.chat_text)
                df = pl.DataFrame({"id": data["id"], EXACT_KEY: self.exact_keys(texts)}).with_columns(
                    pl.Series(SIGNATURE, self.sketch(views).signatures)
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
        texts, views = comparison_views(df, rules.chat_text)
        views, found = boilerplate(views, rules.boilerplate) if rules.near else (views, None)
        self.summary = DedupSummary(boilerplate=found) if found is not None else None
        if self.pool is None:
            exact_new, sketch, candidates = self.exact_keys(texts), self.sketch(views), None
        else:
            exact_new, sketch, candidates = self._spread(texts, views, prior)
        lengths = np.fromiter(map(len, texts), np.int64, len(texts))
        keys = pl.Series(EXACT_KEY, exact_new, dtype=pl.Utf8)
        clusters = self._clusters(df, lengths, keys, sketch, prior, candidates)
        decided = self._decided(clusters, prior, 0, df.height, keys, sketch.signatures)
        return df.with_columns(decided.get_columns())

    def decide_files(self, files: list[Path], scratch: Path) -> Path:
        """`process` over the rows of checkpoint files without holding their text or their sketches:
        boilerplate lines are counted (by hash) over every file first; then exact keys are computed
        and sketches written under `scratch` (`SketchFiles`) file by file; LSH bands are read back
        one at a time and candidate pairs verified from the stored sets; the clusters are those of
        `process`. The decisions (ids, what `process` adds, the decision columns, in file order) are
        written to a Parquet file in `scratch` a row group at a time; its path is returned."""
        rules = self.rules
        prior = self.load_prior()
        columns = ["id", *([rules.score_column] if rules.keep == "score" and rules.score_column else [])]
        small = read_parquets(files, columns=columns)
        strip = rules.near and rules.boilerplate.enabled and small.height > 0
        common: dict[int, int] = {}
        if strip:
            counts = add_counts([line_counts(line_keys(views, rules.boilerplate)) for _, views in self._texts(files)])
            common = common_lines(counts, small.height, rules.boilerplate)
            del counts
        store = SketchFiles(scratch / "sketches", rules.num_perm, self.bands, self.rows)
        keys, lengths, touched, seen = [], [], 0, {}
        for texts, views in self._texts(files):
            if strip:
                views, n, met = strip_lines(views, line_keys(views, rules.boilerplate), common)
                touched += n
                seen.update(met)
            keys.append(pl.Series(EXACT_KEY, self.exact_keys(texts), dtype=pl.Utf8))
            store.add(self.sketch(views))
            lengths.append(np.fromiter(map(len, texts), np.int64, len(texts)))
        if rules.near:
            self.summary = DedupSummary(boilerplate=boilerplate_summary(common, seen, touched, rules.boilerplate))
        key = pl.concat(keys) if keys else pl.Series(EXACT_KEY, [], dtype=pl.Utf8)
        length = np.concatenate(lengths) if lengths else np.empty(0, np.int64)
        clusters = self._clusters(small, length, key, store, prior, None)
        out = ParquetAppender(scratch / "decisions.parquet")
        for start in range(0, max(small.height, 1), DECISION_ROWS):
            stop = min(start + DECISION_ROWS, small.height)
            decided = self._decided(clusters, prior, start, stop, key, store.signature_range(start, stop))
            out.write(small.select("id").slice(start, stop - start).with_columns(decided.get_columns()))
        out.close()
        return out.path

    def _texts(self, files: list[Path]) -> Iterator[tuple[list[str], list[View]]]:
        """The comparison texts and views of the files' rows, a row group at a time."""
        for chunk in iter_frames(files, ["text", "messages"]):
            yield comparison_views(chunk, self.rules.chat_text)

    def _clusters(
        self,
        df: pl.DataFrame,
        lengths: np.ndarray,
        keys: pl.Series,
        sketch: "Sketch | SketchFiles",
        prior: _Prior,
        candidates: np.ndarray | None,
    ) -> "_Clusters":
        """Clusters of the prior shards' records and `df`'s (exact keys `keys`, sketches `sketch`): for
        each record, its id, its cluster's kept record, the cluster's size and its best verified similarity."""
        rules = self.rules
        n_prior, n = len(prior.ids), df.height
        exact = pl.concat([pl.Series(EXACT_KEY, prior.exact, dtype=pl.Utf8), keys]).rank("dense").to_numpy()
        edges, weights = [], []
        if rules.exact:
            edges.append(_exact_edges(exact.astype(np.int64)))
            weights.append(np.ones(len(edges[-1])))
        if rules.near:
            pairs, jac = self._near_pairs(sketch, prior.signatures, candidates)
            edges.append(pairs)
            weights.append(jac)
        edge = np.concatenate(edges) if edges else np.empty((0, 2), np.int64)
        jaccard = np.concatenate(weights) if weights else np.empty(0)
        total = n_prior + n
        graph = coo_matrix((np.ones(len(edge)), (edge[:, 0], edge[:, 1])), shape=(total, total))
        _, labels = connected_components(graph, directed=False)
        rep = self._representatives(labels, df, lengths, n_prior)
        size = np.bincount(labels, minlength=labels.max() + 1 if total else 0)[labels] if total else np.empty(0)
        ids = pl.concat([pl.Series("id", prior.ids, dtype=pl.Utf8), df["id"].cast(pl.Utf8)])
        return _Clusters(ids, rep, size, _best_similarity(edge, jaccard, total), exact)

    def _decided(
        self, c: "_Clusters", prior: _Prior, start: int, stop: int, keys: pl.Series, sigs: np.ndarray
    ) -> pl.DataFrame:
        """What dedup adds to new records start..stop-1 (clusters, what each duplicates, the keys) and
        its decisions (actions, rules, reasons); `sigs` are these records' signatures."""
        n_prior = len(prior.ids)
        lo, hi = n_prior + start, n_prior + stop
        rep_ids = c.ids.gather(c.rep[lo:hi]).to_list() if hi > lo else []
        actions, rule_names, reasons, dup_of, cluster = [], [], [], [], []
        for i, rep_id in zip(range(lo, hi), rep_ids):
            r = c.rep[i]
            cluster.append(rep_id if c.size[i] > 1 else None)
            if r == i:
                actions.append(KEEP), rule_names.append(None), reasons.append(None), dup_of.append(None)
                continue
            same = c.exact[i] == c.exact[r]
            where = f" in {prior.refs[r]}" if r < n_prior else ""
            similarity = (
                "identical after normalisation"
                if same
                else f"near-duplicate cluster of {c.size[i]}, highest Jaccard {c.best[i]:.2f}"
            )
            actions.append(DROP)
            rule_names.append("exact_duplicate" if same else "near_duplicate")
            reasons.append(f"duplicate of {rep_id}{where} ({similarity})")
            dup_of.append(rep_id)
        frame = pl.DataFrame(
            [
                pl.Series("dup_cluster", cluster, dtype=pl.Utf8),
                pl.Series("dup_of", dup_of, dtype=pl.Utf8),
                keys.slice(start, stop - start).alias(EXACT_KEY),
                pl.Series(SIGNATURE, sigs, dtype=pl.Array(pl.UInt32, self.rules.num_perm)),
            ]
        )
        return with_decisions(frame, actions, rule_names, reasons)

    def near_pairs(
        self, sigs: np.ndarray, sketch: Sketch, n_prior: int = 0, candidates: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """LSH candidate pairs that pass verification, with their (estimated or exact) Jaccard; `sigs`
        holds the prior shards' signatures first, then the new records' (`sketch`)."""
        return self._near_pairs(sketch, sigs[:n_prior], candidates)

    def _near_pairs(
        self, sketch: "Sketch | SketchFiles", prior_sigs: np.ndarray, candidates: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`near_pairs` with the prior shards' signatures and the new records' sketches (in memory or
        on disk) apart; `candidates`, if given, are the LSH pairs already found (by the pool's shuffle).
        Candidates are found band by band, so only one band of the signatures is read at a time."""
        n_prior = len(prior_sigs)
        total = n_prior + sketch.rows

        def band_of(band: int) -> np.ndarray:
            block = sketch.band(band, self.rows)
            if not n_prior:
                return block
            return np.concatenate([prior_sigs[:, band * self.rows : (band + 1) * self.rows], block])

        pairs = band_candidates(band_of, total, self.bands, self.rules.max_bucket) if candidates is None else candidates
        # Texts without a single shingle all share the empty signature: they are not near anything.
        empty = np.concatenate([(prior_sigs == np.uint32(0xFFFFFFFF)).all(axis=1), sketch.empty()])
        pairs = pairs[~(empty[pairs[:, 0]] | empty[pairs[:, 1]])]
        mode = self.rules.verify
        if mode == "exact":
            # True Jaccard of shingle sets for pairs of new records; prior shards keep only signatures.
            new = (pairs[:, 0] >= n_prior) & (pairs[:, 1] >= n_prior)
            jac = np.empty(len(pairs))
            jac[new] = sketch.jaccard(pairs[new] - n_prior)
            jac[~new] = _estimated(sketch, prior_sigs, pairs[~new])
        else:
            jac = _estimated(sketch, prior_sigs, pairs)
        if mode == "none":
            return pairs, jac
        keep = jac >= self.rules.threshold
        return pairs[keep], jac[keep]

    def _spread(self, texts: list[str], views: list[View], prior: _Prior) -> tuple[list[str], Sketch, np.ndarray]:
        """Exact keys, sketches and LSH candidates computed by the pool: text chunks are hashed in
        parallel tasks, and each (band, bucket) key is shuffled to one reducer, which pairs up the
        records that share it. The same keys, sketch and pairs as the in-process path."""
        n_prior, total = len(prior.ids), len(prior.ids) + len(texts)
        size = max(MIN_CHUNK, -(-len(texts) // (4 * self.pool.workers)))
        items = [(None, None, prior.signatures, 0)] if n_prior else []
        items += [(texts[i : i + size], views[i : i + size], None, n_prior + i) for i in range(0, len(texts), size)]
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


def sketch_views(hasher: MinHasher, views: Sequence[View | str]) -> Sketch:
    """The sketches of records' views (a plain text is a document's view)."""
    views = [View(v) if isinstance(v, str) else v for v in views]
    prompts, answers, calls = (list(part) for part in zip(*views)) if views else ([], [], [])
    return hasher.sketch_parts(prompts, answers, calls)


def _sketch_chunk(
    normalization: Normalization,
    hasher: MinHasher,
    bands: int,
    rows: int,
    item: tuple[list[str] | None, list[View] | None, np.ndarray | None, int],
    partitions: int,
):
    """A pool task: one chunk's exact keys and sketch of its views (none for already-published
    signatures), and its band keys split into the shuffle's partitions."""
    texts, views, sigs, start = item
    result = None
    if texts is not None:
        sketch = sketch_views(hasher, views)
        result, sigs = (exact_keys(texts, normalization), sketch), sketch.signatures
    positions = np.arange(start, start + len(sigs), dtype=np.int64)
    return result, band_partitions(sigs, positions, bands, rows, partitions)


@dataclass
class _Clusters:
    """Per record (the prior shards' first): its id, its cluster's kept record, the cluster's size, its
    highest verified similarity, and its exact key as a code (equal codes: identical after normalisation)."""

    ids: pl.Series
    rep: np.ndarray
    size: np.ndarray
    best: np.ndarray
    exact: np.ndarray


def _estimated(sketch: "Sketch | SketchFiles", prior_sigs: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The MinHash estimate for pairs of records (prior first), reading the signatures of the records
    in a block of pairs at a time."""
    out, n_prior, step = np.empty(len(pairs)), len(prior_sigs), SketchFiles.PAIRS_PER_READ
    for start in range(0, len(pairs), step):
        block = pairs[start : start + step]
        rows = np.unique(block)
        old = rows < n_prior  # sorted: the prior records first
        sigs = np.concatenate([prior_sigs[rows[old]], sketch.signature_rows(rows[~old] - n_prior)])
        out[start : start + len(block)] = estimated_jaccard(sigs, np.searchsorted(rows, block))
    return out


def _exact_edges(codes: np.ndarray) -> np.ndarray:
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
