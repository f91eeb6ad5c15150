"""`curate init`: look at a sample of the user's data and write a pipeline that fits it.

The sample is read with the same readers and layout table as a run (curate.io.readers,
curate.records.LAYOUTS), then normalised, language-identified and quality-scored with the
default rules, so every decision rests on what the pipeline will really see: the layout and
field mapping, text vs chat, languages, the share of code, lengths, candidate label and group
columns, and the size. Each decision is returned with its reason; `write` turns them into a
pipeline file and a gates file (which extends the generic gates of the task) and validates both.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import yaml

from curate.code import code_spans
from curate.config import InputSpec, Pipeline, PipelineSpec, load_pipeline
from curate.errors import ConfigError, InputError
from curate.io.crawl import CRAWL_COLUMNS, is_crawl
from curate.records import (
    RecordError,
    content_text,
    detect_layout,
    kind_expr,
    schema_with,
    to_record,
    without_absent_kinds,
)
from curate.schema import load_rules
from curate.stages.base import ACTION, REASON, RULE, StageContext

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "rules"
TASKS = ("sft", "pretrain", "classification", "pairs")
SAMPLE_ROWS = 5_000
# Keys that name a class (classification labels, SFT task categories) or a group of records that
# must stay in one split (a conversation, a patient, a document cut into pieces).
LABEL_NAMES = (
    "label",
    "labels",
    "category",
    "class",
    "intent",
    "topic",
    "task",
    "task_type",
    "type",
    "sentiment",
    "genre",
    "domain",
    "tag",
    "y",
    "target",
    "class_name",
    "emotion",
    "stance",
)
# Keys whose few values describe where or how a record was made, not what it is: never a label.
NOT_LABELS = ("source", "lang", "language", "split", "id", "url", "file", "dataset", "subset", "license", "dump")
GROUP_WORDS = (
    "conversation",
    "conv",
    "thread",
    "session",
    "dialog",
    "dialogue",
    "patient",
    "user",
    "customer",
    "member",
    "group",
    "doc",
    "document",
    "episode",
    "chat",
    "case",
    "encounter",
    "visit",
    "parent",
)
MAX_LABEL_VALUES = 50
# Texts this short (median words) with a column of a few repeated values are a classification set,
# whatever the column is called ("sent_label", "y"): documents are longer, and a web corpus's few-valued
# columns (dump, source) are named as such.
CLASSIFY_MAX_WORDS = 100
_KIND_NAMES = {"pair": "pairs", "kto": "KTO (unpaired)"}
QUALITY_FILES = ("default.yaml", "short.yaml")  # rules/quality/: web documents and chat; short texts
SHORT_WORDS = 50  # texts with a median under this many words are short texts (questions, sentences), not pages
LANG_MIN_SHARE = 0.01  # a language with less than 1% of the judged sample is not allowed by default
RULE_MISFIT_SHARE = 0.20  # a quality rule dropping more of an instruction sample than this does not fit it
RESIDUAL_RECORDS = 300  # re-scan at least this many records after redaction (the residual gate's sample)
CODE_RECORD_SHARE = 0.3  # a record whose content is at least 30% code is a code record
SMALL_ROWS = 5_000  # below this, one process: worker start-up (models loaded per process) outweighs the gain


@dataclass(frozen=True)
class Decision:
    what: str
    choice: str
    reason: str


@dataclass
class Inspection:
    """What the sample showed."""

    files: list[str]
    total_bytes: int
    sample_rows: int  # input rows read (records + unreadable ones)
    exhausted: bool  # the sample is the whole input
    rows_estimate: int
    rows_counted: bool  # rows_estimate is the count of the whole input (else estimated from bytes per row)
    layouts: Counter  # layout name -> rows
    unreadable: Counter  # quarantine rule -> rows
    kinds: Counter  # "text" / "chat" / "pair" / "kto" (curate.records.KINDS) -> rows
    languages: Counter  # judged language -> rows ("und": too little prose)
    code_records: int
    words: dict[str, float]  # quantiles of the content's word count
    quality_drops: dict[str, dict[str, int]]  # quality rules file -> rule -> sample rows it would drop
    quality_dropped: dict[str, int]  # quality rules file -> sample rows it would drop (by any rule)
    labels: list[tuple[str, Counter]]  # candidate label keys with their value counts, best first
    groups: list[tuple[str, int]]  # candidate group keys with their number of distinct values
    sources: Counter
    fields: dict[str, str] = field(default_factory=dict)  # a mapping init had to guess (no layout matched)
    frame: pl.DataFrame | None = None  # the sample's records, normalised (for the rehearsal in `plan`)
    metas: list[dict] = field(default_factory=list)  # each sampled record's other keys
    crawl: bool = False  # an input is a web crawl (WARC/WET/ARC): its pages were measured as extracted
    pages: int = 0  # crawl: sampled records, before extraction
    extract_drops: Counter = field(default_factory=Counter)  # crawl: pages the extract stage drops, by rule

    @property
    def records(self) -> int:
        return sum(self.kinds.values())


def _inspect_pipeline(paths: list[str]) -> Pipeline:
    spec = PipelineSpec(name="init", inputs=[InputSpec(path=str(Path(p).resolve())) for p in paths])
    return Pipeline(spec=spec, path=Path.cwd() / "init.yaml", stages=())


def _objects(paths: list[str], limit: int) -> tuple[list[tuple[Any, str]], Counter, int, bool, list[str], int | None]:
    """Up to `limit` parsed rows (object, file label), unreadable rows by reason, total bytes, whether
    the whole input was read, the files, and the rows of the whole input when counted (see _count_rows)."""
    from curate.io.parse import iter_objects
    from curate.io.sources import resolve_inputs

    files = resolve_inputs(_inspect_pipeline(paths))
    if not files:
        raise InputError(f"no input files found in {', '.join(paths)}")
    objects, unreadable, exhausted = [], Counter(), True
    for src in files:
        for obj in iter_objects(src, 2_000_000):
            if len(objects) + sum(unreadable.values()) >= limit:
                exhausted = False
                break
            if isinstance(obj, RecordError):
                unreadable[obj.rule] += 1
            else:
                objects.append((obj, src.label))
        if not exhausted:
            break
    counted = None if exhausted else _count_rows(files)
    return objects, unreadable, sum(f.size for f in files), exhausted, [str(f.path) for f in files], counted


def _count_rows(files) -> int | None:
    """Rows in the whole input, counted as a run reads them: a JSON file's array items, a line file's
    non-blank lines (decompressed), a Parquet file's row count; None for a web crawl (its records are
    only known once parsed), where the size is estimated instead."""
    import pyarrow.parquet as pq

    from curate.io.parse import BOM, Oversize, _open_lines

    total = 0
    for src in files:
        name = src.name
        if is_crawl(name):
            return None
        if name.endswith(".parquet"):
            with src.open() as fh:
                total += pq.ParquetFile(fh).metadata.num_rows
        elif name.endswith(".json"):
            with src.open() as fh:
                try:
                    data = orjson.loads(fh.read().removeprefix(BOM))
                except orjson.JSONDecodeError:
                    data = None  # one unreadable file: one quarantined row
            total += len(data) if isinstance(data, list) else 1
        else:
            total += sum(
                1
                for line in _open_lines(src, 2_000_000)
                if isinstance(line, Oversize) or (isinstance(line, bytes) and line.strip())
            )
    return total


def _estimate(
    objects: list[tuple[Any, str]], unreadable: Counter, total_bytes: int, exhausted: bool, files: list[str]
) -> int:
    """Rows in the whole input when they cannot be counted (a web crawl): from the bytes per sampled row
    (JSON text; compressed inputs are assumed to shrink 4x)."""
    read = len(objects) + sum(unreadable.values())
    if exhausted:
        return read
    per_row = sum(len(orjson.dumps(o, default=str)) + 1 for o, _ in objects) / max(1, len(objects))
    compressed = any(f.endswith((".gz", ".zst", ".parquet")) for f in files)
    return max(read, int(total_bytes * (4 if compressed else 1) / max(1.0, per_row)))


def _guess_text_field(objects: list[dict]) -> str | None:
    """No layout matched: the string field with the most characters on average is the text."""
    chars: Counter = Counter()
    for obj in objects:
        for k, v in obj.items():
            if isinstance(v, str):
                chars[k] += len(v)
    return chars.most_common(1)[0][0] if chars else None


def _label_candidates(metas: list[dict], n: int) -> list[tuple[str, Counter]]:
    """Keys holding a few short categorical values in most records, label-like names first."""
    values: dict[str, Counter] = {}
    for meta in metas:
        for k, v in meta.items():
            if isinstance(v, bool | int | str) and not (isinstance(v, str) and len(v) > 40):
                values.setdefault(k, Counter())[str(v)] += 1
    out = []
    for k, counts in values.items():
        covered = sum(counts.values())
        if covered < 0.5 * n or not 2 <= len(counts) <= min(MAX_LABEL_VALUES, max(2, n // 5)):
            continue
        if _is_group_name(k) or (words := _key_words(k)) and words[-1] in NOT_LABELS:
            continue
        out.append((k, counts))
    return sorted(out, key=lambda kc: (not _label_named(kc[0]), len(kc[1]), kc[0]))


def _key_words(key: str) -> list[str]:
    """sentLabel, sent_label, sent-label -> [sent, label]."""
    low = "".join("_" + c if c.isupper() else c for c in key).lower().replace("-", "_")
    return [p for p in low.split("_") if p]


def _label_named(key: str) -> bool:
    """label, sent_label, intentName, y: a label's name, alone or as the key's last word."""
    words = _key_words(key)
    return key.lower() in LABEL_NAMES or bool(words) and words[-1] in LABEL_NAMES


def _is_group_name(key: str) -> bool:
    """conversation_id, patientId, thread, doc-id ...: a group word, alone or followed by id."""
    low = "".join("_" + c if c.isupper() else c for c in key).lower().replace("-", "_")
    parts = _key_words(key)
    if len(parts) > 1 and parts[-1] == "id":
        return any(p in GROUP_WORDS for p in parts[:-1])
    return low in GROUP_WORDS or any(low == f"{w}id" for w in GROUP_WORDS)


def _group_candidates(metas: list[dict], n: int) -> list[tuple[str, int]]:
    """Keys named like a conversation/patient/document id whose values repeat across records."""
    values: dict[str, Counter] = {}
    for meta in metas:
        for k, v in meta.items():
            if _is_group_name(k) and isinstance(v, str | int):
                values.setdefault(k, Counter())[str(v)] += 1
    out = [(k, len(c)) for k, c in values.items() if sum(c.values()) >= 0.5 * n and 1 < len(c) < sum(c.values())]
    return sorted(out, key=lambda kc: kc[0])


def _quantiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {"p10": 0, "median": 0, "p90": 0, "max": 0}
    s = pl.Series(values)
    return {
        "p10": float(s.quantile(0.1)),
        "median": float(s.median()),
        "p90": float(s.quantile(0.9)),
        "max": float(s.max()),
    }


def _stage(kind: str, rules_file: str | None, params: dict | None = None, seed: int = 0):
    """A stage set up with a rules file under rules/<kind>/ (or none) and `params` over it, as a run builds it."""
    from curate.schema import parse_model
    from curate.stages.registry import STAGES

    cls = STAGES[kind]
    path = RULES / kind / rules_file if rules_file else None
    stage = cls(
        kind,
        parse_model(cls.Rules, {**(load_rules(path) if path else {}), **(params or {})}, path or Path("init")),
        StageContext(seed=seed),
    )
    stage.setup()
    return stage


def inspect(paths: list[str], sample: int = SAMPLE_ROWS) -> Inspection:
    """Read up to `sample` rows of the inputs and measure them as the default stages would."""
    objects, read_errors, total_bytes, exhausted, files, counted = _objects(paths, sample)
    unreadable = Counter(read_errors)
    dicts = [o for o, _ in objects if isinstance(o, dict) and o]
    found = [detect_layout(o) for o in dicts]
    layouts = Counter(layout.name if layout else "none" for layout in found)
    fields: dict[str, str] = {}
    if layouts["none"] > 0.5 * max(1, len(dicts)):
        guess = _guess_text_field([o for o, layout in zip(dicts, found) if layout is None])
        if guess:
            fields = {"text": guess}
    rows, metas = [], []
    for obj, label in objects:
        try:
            rec = to_record(obj, fmt="auto", fields=fields, columns=[], default_source=None)
        except RecordError as exc:
            unreadable[exc.rule] += 1
            continue
        rec["id"] = rec["id"] or f"s{len(rows)}"
        rec["src_file"], rec["src_row"] = label, len(rows) + 1
        meta = orjson.loads(rec["meta"]) if rec["meta"] else {}
        if rec["label"] is not None:
            meta = {"label": rec["label"], **meta}
        metas.append(meta)
        rows.append(rec)
    df = without_absent_kinds(pl.DataFrame(rows, schema=schema_with([]), orient="row"))
    crawl = any(is_crawl(Path(f).name) for f in files)
    pages, extract_drops = df.height, Counter()
    if crawl:  # measure the pages as the pipeline will see them: their main text, not their HTML
        df, metas, extract_drops = _extracted(df, metas)
    n = df.height
    kinds = Counter(df.select(kind_expr(df.schema))["kind"].to_list())
    languages, code_records, words, drops, dropped = Counter(), 0, [], {}, {}
    if n:
        df = _stage("normalize", "default.yaml").process(df).drop(ACTION, RULE, REASON)
        df = df.with_columns(_stage("langid", "default.yaml", {"allowed": []}).process(df)["lang"])
        languages = Counter(df["lang"].to_list())
        for t, m in zip(df["text"].to_list(), df["messages"].to_list()):
            text = content_text(t, m, "all" if t is not None else "assistant")
            code = sum(b - a for a, b in code_spans(text))
            code_records += bool(text) and code >= CODE_RECORD_SHARE * len(text)
            words.append(len(content_text(t, m).split()))
        for rules_file in QUALITY_FILES:
            judged = _stage("quality", rules_file).process(df)
            drops[rules_file] = dict(Counter(judged["quality_failed"].explode().drop_nulls().to_list()))
            dropped[rules_file] = int((judged[ACTION] != "keep").sum())
    return Inspection(
        files=files,
        total_bytes=total_bytes,
        sample_rows=len(objects) + sum(read_errors.values()),
        exhausted=exhausted,
        rows_estimate=counted
        if counted is not None
        else _estimate(objects, read_errors, total_bytes, exhausted, files),
        rows_counted=exhausted or counted is not None,
        layouts=layouts,
        unreadable=unreadable,
        kinds=kinds,
        languages=languages,
        code_records=code_records,
        words=_quantiles(words),
        quality_drops=drops,
        quality_dropped=dropped,
        labels=_label_candidates(metas, n),
        groups=_group_candidates(metas, n),
        sources=Counter(df["source"].fill_null("(none)").to_list()) if n else Counter(),
        fields=fields,
        frame=df.drop("lang_score", "lang_basis", strict=False),
        metas=metas,
        crawl=crawl,
        pages=pages,
        extract_drops=extract_drops,
    )


def _extracted(df: pl.DataFrame, metas: list[dict]) -> tuple[pl.DataFrame, list[dict], Counter]:
    """A crawl sample as the stages after `extract` see it: each page's main text, the pages extract
    drops left out (with their count by rule), and the crawl's own columns (url, domain...) out of the
    keys looked at for labels and groups: they describe where a page came from, not what it is."""
    metas = [{k: v for k, v in m.items() if k not in CRAWL_COLUMNS} for m in metas]
    if not df.height:
        return df, metas, Counter()
    out = _stage("extract", "default.yaml").process(df)
    kept = [a == "keep" for a in out[ACTION].to_list()]
    drops = Counter(r for r, k in zip(out[RULE].to_list(), kept) if not k)
    frame = out.filter(pl.col(ACTION) == "keep").drop(ACTION, RULE, REASON, "html_chars", strict=False)
    return frame, [m for m, k in zip(metas, kept) if k], drops


def _rehearse(ins: Inspection, stages: list[dict], label: str | None, groups: list[str]) -> tuple[Counter, Counter]:
    """The planned stages (pii aside: it drops nothing) on the sample: rows per split, and rows dropped by
    reason. The gates' split sizes are set from what really survives, not from a guess."""
    df = ins.frame
    extra = [pl.Series(c, [None if m.get(c) is None else str(m[c]) for m in ins.metas], dtype=pl.Utf8) for c in groups]
    if label:
        extra.append(
            pl.Series("label", [None if m.get(label) is None else str(m[label]) for m in ins.metas], dtype=pl.Utf8)
        )
    df = df.with_columns(extra) if extra else df
    dropped: Counter = Counter()
    for spec in stages:
        # url: the sample has no url column; extract: the sample is extracted already
        if spec["stage"] in ("url", "extract", "normalize", "pii"):
            continue
        rules_file = Path(spec["rules"]).name if "rules" in spec else None
        stage = _stage(spec["stage"], rules_file, spec.get("params"), seed=13)
        out = stage.process(df)
        dropped.update(r for r, a in zip(out[RULE].to_list(), out[ACTION].to_list()) if a != "keep")
        df = out.filter(pl.col(ACTION) == "keep").drop(ACTION, RULE, REASON)
    return Counter(df["split"].to_list()) if "split" in df.columns else Counter(), dropped


def _top(counts: dict[str, int], n: int = 0, k: int = 3) -> str:
    """The k largest counts: "rule 12 (3.1%), ..." (the share of n when given)."""
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return ", ".join(f"{r} {c:,}" + (f" ({c / n:.1%})" if n else "") for r, c in top)


def _share(count: int, total: int) -> str:
    return f"{count / total:.0%}" if total else "0%"


def _held_out(rows: int) -> float:
    """The validation (= test) share: enough rows to measure on, little taken from training."""
    if rows < 1_000:
        return 0.15
    if rows <= 20_000:
        return 0.1
    return max(0.01, round(2_000 / rows, 3))


@dataclass
class Plan:
    name: str
    task: str
    decisions: list[Decision]
    pipeline: dict
    gates: dict


def plan(
    ins: Inspection,
    *,
    task: str | None = None,
    name: str | None = None,
    inputs: list[str],
    pipeline_dir: Path,
    gates_file: str,
) -> Plan:
    """The pipeline and gates that fit what `inspect` found, and why."""
    from curate.catalog import check_name
    from curate.io.sources import name_from_inputs

    d: list[Decision] = []
    n = ins.records
    if not n:
        raise InputError(
            f"no usable record in the first {ins.sample_rows:,} rows of {', '.join(inputs)} "
            f"(unreadable: {dict(ins.unreadable) or 'none'}"
            + (f"; pages without enough main text: {dict(ins.extract_drops) or 'none'}" if ins.crawl else "")
            + ")"
        )
    preference = ins.kinds["pair"] + ins.kinds["kto"]
    chat, text = ins.kinds["chat"] + preference, ins.kinds["text"]
    if ins.unreadable:
        d.append(
            Decision(
                "unreadable",
                ", ".join(f"{r} {c:,}" for r, c in ins.unreadable.most_common()),
                "rows of the sample that cannot be used; a run quarantines them with their reasons",
            )
        )
    shape = ", ".join(f"{k} {_share(v, sum(ins.layouts.values()))}" for k, v in ins.layouts.most_common())
    d.append(Decision("layout", shape, "auto-detected from each record's keys (the layout table in curate.records)"))
    if preference:
        kinds = ", ".join(f"{_KIND_NAMES[k]} {_share(ins.kinds[k], n)}" for k in ("pair", "kto") if ins.kinds[k])
        d.append(
            Decision(
                "records",
                kinds,
                "preference data: the prompt turns are the records' messages, the answers are in chosen/rejected "
                "(pairs) or completion/desirable (KTO); the stages below judge the prompt turns",
            )
        )
    if ins.crawl:
        dropped = ", ".join(f"{r} {c:,}" for r, c in ins.extract_drops.most_common())
        d.append(
            Decision(
                "crawl",
                "url, extract first",
                "the inputs are web crawls (WARC/WET/ARC): the url stage drops pages from blocked sites and "
                "extract keeps each page's main text instead of its HTML, which is what the sample was measured "
                f"on: {n:,} of {ins.pages:,} pages kept" + (f" (dropped: {dropped})" if dropped else ""),
            )
        )
    if ins.fields:
        others = sorted({k for m in ins.metas for k in m})
        d.append(
            Decision(
                "fields",
                f"text: {ins.fields['text']}",
                "no known layout matched most records; the string field with the most text is the document"
                + (
                    f" (the other keys stay in meta: {', '.join(others[:6])}; map them with 'fields:' if they "
                    "hold the content)"
                    if others
                    else ""
                ),
            )
        )
    label_key, label_counts = ins.labels[0] if ins.labels else (None, Counter())
    if task is None:
        if ins.crawl:
            task, why = "pretrain", "web pages from a crawl are documents"
        elif preference and 2 * preference >= n:
            task, why = "pairs", f"{_share(preference, n)} of the records are preference data: pipelines/pairs.yaml"
        elif chat >= text:
            task, why = "sft", f"{_share(chat, n)} of the records are conversations or instruction pairs"
        elif label_key and _label_named(label_key):
            task, why = "classification", f"texts with a '{label_key}' column of {len(label_counts)} values"
        elif label_key and ins.words["median"] < CLASSIFY_MAX_WORDS:
            task, why = (
                "classification",
                f"short texts (median {ins.words['median']:.0f} words) with a '{label_key}' column of "
                f"{len(label_counts)} repeated values: a label, whatever its name",
            )
        else:
            task, why = "pretrain", f"{_share(text, n)} of the records are documents"
        d.append(Decision("task", task, why))
    elif task not in TASKS:
        raise ConfigError(f"--task {task!r}: expected one of {', '.join(TASKS)}")
    else:
        d.append(Decision("task", task, "given with --task"))
    d.append(
        Decision(
            "name",
            check_name(name) if name else name_from_inputs(inputs),
            "given with --name" if name else "derived from the first input's file name",
        )
    )
    name = d[-1].choice

    size = f"{ins.rows_estimate:,} records" if ins.rows_counted else f"about {ins.rows_estimate:,} records"
    how = (
        "all read"
        if ins.exhausted
        else "counted"
        if ins.rows_counted
        else f"estimated from the bytes per row of {ins.sample_rows:,} sampled rows (a crawl is not counted ahead)"
    )
    d.append(Decision("size", size, f"{how}; {ins.total_bytes:,} bytes in {len(ins.files)} file(s)"))

    # label: the key itself is mapped onto `label` (stratified splits, label gates, balance)
    label = None
    if label_key and (task == "classification" or _label_named(label_key)):
        label = label_key
        values = ", ".join(f"{v} {c}" for v, c in label_counts.most_common(6)) + (" …" if len(label_counts) > 6 else "")
        d.append(
            Decision(
                "label",
                label,
                f"{len(label_counts)} values in {_share(sum(label_counts.values()), n)} of the sample: {values}",
            )
        )
    elif task == "classification":
        raise ConfigError(
            "--task classification: no column looks like a label (a few short values in most records); "
            f"keys seen: {', '.join(sorted({k for k, _ in ins.labels})) or 'none besides the content'}"
        )
    else:
        others = f" (candidates not named like labels: {', '.join(k for k, _ in ins.labels[:3])})" if ins.labels else ""
        d.append(Decision("label", "none", "no column named like a label with a few values in most records" + others))
    groups = [k for k, _ in ins.groups if k != label]
    if groups:
        d.append(Decision("groups", ", ".join(groups), "ids shared by several records: kept in one split together"))

    judged = {k: v for k, v in ins.languages.items() if k != "und"}
    total = sum(judged.values())
    allowed = sorted(k for k, v in judged.items() if v >= LANG_MIN_SHARE * total)
    mix = ", ".join(f"{k} {_share(v, n)}" for k, v in ins.languages.most_common(5))
    d.append(
        Decision(
            "languages",
            ", ".join(allowed) or "any",
            f"lid.176 on the prose of the sample: {mix}; languages under {LANG_MIN_SHARE:.0%} are dropped"
            if allowed
            else "too little prose to judge (code or very short records): every language kept",
        )
    )
    if ins.code_records:
        d.append(
            Decision(
                "code",
                f"{_share(ins.code_records, n)} of records",
                "code is taken out before language ID, PII NER and prose rules; it is never redacted as names",
            )
        )

    # Rules by what a record is: web-document rules judge pages; short texts (questions, sentences, a
    # classification set's inputs) get rules made for them; chat records get the chat rules of either.
    short = ins.words["median"] < SHORT_WORDS
    quality_file = (
        "short.yaml" if text > chat and not ins.crawl and (task == "classification" or short) else "default.yaml"
    )
    drops = ins.quality_drops.get(quality_file, {})
    if quality_file == "short.yaml":
        page = ins.quality_drops.get("default.yaml", {})
        d.append(
            Decision(
                "quality",
                "short-text rules (rules/quality/short.yaml)",
                f"the records are {'a classification set' if task == 'classification' else 'short texts'} "
                f"(median {ins.words['median']:.0f} words), not web pages: the page rules would drop "
                f"{_share(ins.quality_dropped.get('default.yaml', 0), n)} of the sample"
                + (f" (most: {_top(page)})" if page else ""),
            )
        )
    quality_params: dict[str, Any] = {}
    disabled = []
    if quality_file == "default.yaml" and task == "pretrain" and short:
        disabled.append(
            ("gopher_min_words", f"the median record has {ins.words['median']:.0f} words, under its minimum of 50")
        )
    if task in ("sft", "classification") or short:  # rules that drop much of instructions, labels or short texts
        for rule, hits in sorted(drops.items()):
            if hits > RULE_MISFIT_SHARE * n and rule not in dict(disabled):
                disabled.append(
                    (
                        rule,
                        f"it would drop {_share(hits, n)} of the sample: it does not fit this data"
                        + (" (short documents)" if task == "pretrain" else ""),
                    )
                )
    for rule, why in disabled:
        d.append(Decision("quality", f"disable {rule}", why))
    if disabled:
        quality_params["disable"] = [r for r, _ in disabled]
    if drops:
        d.append(
            Decision(
                "quality",
                f"rules of {quality_file}",
                "sample rows each rule would drop: " + _top(drops, n),
            )
        )

    held = _held_out(ins.rows_estimate)
    sizes = {"train": round(1 - 2 * held, 3), "validation": held, "test": held}
    d.append(
        Decision(
            "split",
            f"{sizes['train']:g}/{held:g}/{held:g}",
            f"about {int(ins.rows_estimate * held):,} records in each held-out split for {ins.rows_estimate:,}",
        )
    )

    def rel(p: Path) -> str:
        return _path(p, pipeline_dir)

    residual = min(1.0, max(0.05, math.ceil(RESIDUAL_RECORDS / ins.rows_estimate * 100) / 100))
    crawl_stages = [
        {"stage": "url", "rules": rel(RULES / "url/default.yaml")},
        {"stage": "extract", "rules": rel(RULES / "extract/default.yaml")},
    ]
    pii_profile = "web" if ins.crawl else "default"
    prepare = [
        {"stage": "normalize", "rules": rel(RULES / "normalize/default.yaml")},
        {"stage": "langid", "rules": rel(RULES / "langid/default.yaml"), "params": {"allowed": allowed}},
        {"stage": "pii", "rules": rel(RULES / f"pii/{pii_profile}.yaml"), "params": {"residual_sample": residual}},
    ]
    judge = [
        {
            "stage": "quality",
            "rules": rel(RULES / "quality" / quality_file),
            **({"params": quality_params} if quality_params else {}),
        },
        *([{"stage": "phrases", "rules": rel(RULES / "phrases/default.yaml")}] if task == "sft" else []),
        {
            "stage": "dedup",
            "rules": rel(RULES / "dedup/default.yaml"),
            **({} if task == "sft" else {"params": {"chat_text": "conversation"}}),
        },
    ]
    # pairs: quality, phrases and dedup read the prompt only yet, and would drop pairs wrongly
    stages: list[dict] = (
        [*prepare, {"stage": "pairs"}] if task == "pairs" else [*(crawl_stages if ins.crawl else []), *prepare, *judge]
    )
    d.append(
        Decision(
            "pii",
            f"{pii_profile} profile, residual re-scan of {residual:.0%}",
            ("patterns without NER, which on web pages finds public names on nearly every page; " if ins.crawl else "")
            + f"at least {RESIDUAL_RECORDS} records re-scanned after redaction for the residual gate",
        )
    )
    if label and task == "classification":
        ratio = max(label_counts.values()) / max(1, min(label_counts.values()))
        strata = ["source"] if len(ins.sources) > 1 else []
        strategy = "downsample" if ratio > 3 else "none"
        stages.append(
            {
                "stage": "balance",
                "params": {"label": "label", "strata": strata, "strategy": strategy, "max_ratio": 3.0, "seed": 13},
            }
        )
        d.append(
            Decision(
                "balance",
                strategy,
                f"largest class is {ratio:.1f}x the smallest"
                + (f"; checked within each source ({len(ins.sources)})" if strata else ""),
            )
        )
    stages.append(
        {
            "stage": "split",
            "rules": rel(RULES / "split/default.yaml"),
            "params": {
                "sizes": sizes,
                "stratify_by": "label" if label else None,
                "group_by": [*([] if task == "pairs" else ["dup_cluster"]), *groups],
            },
        }
    )

    source: dict[str, Any] = {}
    if ins.fields:
        source["fields"] = dict(ins.fields)
    if label and label != "label":
        source.setdefault("fields", {})["label"] = label
    if groups:
        source["columns"] = groups
    small = ins.rows_estimate < SMALL_ROWS
    d.append(
        Decision(
            "workers",
            "1" if small else "auto",
            f"under {SMALL_ROWS:,} records, starting worker processes (each loads the models) costs more than it saves"
            if small
            else "one worker process per core for the row-local stages",
        )
    )
    pipeline = {
        "name": name,
        "description": f"{task} data from {', '.join(Path(p).name for p in inputs)} (written by curate init)",
        "seed": 13,
        "inputs": [{"path": rel(Path(p).resolve()), **source} for p in inputs],
        "output": {"dir": rel(Path.cwd() / "out" / name)},
        "workers": 1 if small else "auto",
        "stages": stages,
        "gates": [{"rules": gates_file}],
    }
    splits, dropped = _rehearse(ins, stages, label, groups)
    d.append(
        Decision(
            "rehearsal",
            ", ".join(f"{k} {splits.get(k, 0):,}" for k in sizes),
            f"the stages on the sample keep {sum(splits.values()):,} of {n:,} records"
            + (" (dropped: " + ", ".join(f"{r} {c:,}" for r, c in dropped.most_common(4)) + ")" if dropped else "")
            + "; the gates expect at least half of each split",
        )
    )
    pipeline_gates = _gates(task, allowed, label, label_counts, splits, ins, pipeline_dir)
    return Plan(name, task, d, pipeline, pipeline_gates)


def _gates(
    task: str,
    allowed: list[str],
    label: str | None,
    label_counts: Counter,
    splits: Counter,
    ins: Inspection,
    pipeline_dir: Path,
) -> dict:
    base = {"sft": "sft.yaml", "classification": "classification.yaml", "pairs": "pairs.yaml"}.get(
        task, "pretrain.yaml"
    )
    extra: list[dict] = []
    if allowed:
        extra.append({"values_in_set": {"column": "lang", "values": [*allowed, "und"], "allow_null": False}})
    if label:
        # the sample's values; a value the sample missed fails the check (it names the value)
        extra.append(
            {
                "values_in_set": {
                    "column": "label",
                    "values": sorted(label_counts),
                    "mostly": 1.0 if ins.exhausted else 0.999,
                }
            }
        )
        shares = [c / sum(label_counts.values()) for c in label_counts.values()]
        extra.append(
            {
                "name": "every label keeps a usable share",
                "severity": "warn",
                "label_share": {"column": "label", "min": round(min(shares) / 2, 4)},
            }
        )
    # half of what the stages left of the sample in each split (the sample is at most the whole input)
    expected = {k: max(1, splits.get(k, 0) // 2) for k in ("train", "validation", "test")}
    extra.append({"name": "split sizes for this data", "split_sizes": {"min": expected}})
    return {"extends": _path(RULES / "gates" / base, pipeline_dir), "expectations+": extra}


def _path(target: Path, pipeline_dir: Path) -> str:
    """How the pipeline names a file: relative to the pipeline when both are in the working
    directory's tree (the project moves as one), absolute otherwise."""
    target, here = target.resolve(), Path.cwd().resolve()
    if target.is_relative_to(here) and pipeline_dir.resolve().is_relative_to(here):
        return os.path.relpath(target, pipeline_dir)
    return str(target)


def _header(p: Plan) -> str:
    lines = [f"# Written by `curate init` for {p.task} data. Edit freely; `curate validate` checks it.", "#"]
    lines += [f"# {x.what}: {x.choice} — {x.reason}" for x in p.decisions]
    return "\n".join(lines) + "\n"


def check_targets(paths: tuple[Path, ...], force: bool) -> None:
    """Refuse to write a file that exists (unless `force`) or is a link to nothing: writing would
    create the link's target, wherever it points."""
    for path in paths:
        if path.is_symlink() and not path.exists():
            raise ConfigError(
                f"{path} is a symbolic link to {os.readlink(path)}, which does not exist; refusing to write "
                "through it (remove the link, or choose another file with -o)"
            )
        if path.exists() and not force:
            raise ConfigError(f"{path} already exists; pass --force to overwrite it, or choose another file with -o")


def write(p: Plan, pipeline_path: Path, gates_path: Path, force: bool = False) -> None:
    """Write the pipeline and its gates file (refusing to replace existing files unless `force`, and to
    write through a link to nothing), then validate them as `curate run` would."""
    check_targets((pipeline_path, gates_path), force)
    pipeline_path.parent.mkdir(parents=True, exist_ok=True)
    dump = lambda data: yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)  # noqa: E731
    gates_path.write_text(
        "# Gates for " + p.name + ", written by `curate init`: the generic ones plus this data's "
        "languages, labels and sizes.\n" + dump(p.gates),
        encoding="utf-8",
    )
    pipeline_path.write_text(_header(p) + dump(p.pipeline), encoding="utf-8")
    try:
        load_pipeline(pipeline_path)
    except ConfigError:  # a pipeline init cannot stand behind is not left for the user to run
        pipeline_path.unlink()
        gates_path.unlink()
        raise
