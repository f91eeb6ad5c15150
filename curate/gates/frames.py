"""The three small frames gates validate, computed from the shards with polars.

Record content never reaches Great Expectations: `text` and `messages` are replaced by
measures of them (lengths, a normalized-content hash, chat role order, PII pattern hits),
so Data Docs can show unexpected values without showing what the data says, and GX
works on a frame of a few numbers per record instead of the text itself.
"""

from __future__ import annotations

import polars as pl

from curate.gates.rules import DOCUMENTATION_VALUES, GateRule, MetricNames
from curate.normalize import content_hash
from curate.records import comparison_expr, comparison_texts

SKIPPED = ("text", "messages", "meta")  # free text: measured, never copied into the frames
_ELEM = pl.element()


def record_hash(schema: pl.Schema) -> pl.Expr:
    """A hash of the record's text or conversation, normalised as dedup's exact keys are."""
    return content_hash(comparison_expr(schema)[0])


def _scalar(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or dtype in (pl.Utf8, pl.Boolean)


def _named(value) -> set[str]:
    """Every string inside a rule's settings: the columns it may refer to."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {x for k, v in value.items() for x in (_named(k) | _named(v))}
    if isinstance(value, (list, tuple)):
        return {x for v in value for x in _named(v)}
    return set()


def records_frame(lf: pl.LazyFrame, rules: list[GateRule]) -> pl.DataFrame:
    """One row per record: id, the scalar columns the rules name, and measures of the content."""
    schema = lf.collect_schema()
    content, chars = comparison_expr(schema)
    named = {"id"} | {x for r in rules for x in _named(r.model_dump())}
    exprs = [pl.col(c) for c, t in schema.items() if c in named and c not in SKIPPED and _scalar(t)]
    exprs += [
        chars.cast(pl.Int64).alias("content_chars"),
        (pl.col("text").str.len_chars() if "text" in schema else pl.lit(None, pl.UInt32)).alias("text_chars"),
        (pl.col("messages").list.len() if "messages" in schema else pl.lit(None, pl.UInt32)).alias("turns"),
        (chars.fill_null(0) > 0).alias("has_content"),
        record_hash(schema).alias("content_hash"),
    ]
    if "messages" in schema:
        roles = pl.col("messages").list.eval(_ELEM.struct.field("role")).list.join(",")
        empty = (
            pl.col("messages")
            .list.eval(
                (_ELEM.struct.field("role") == "assistant")
                & (_ELEM.struct.field("content").str.strip_chars().str.len_chars() == 0)
            )
            .list.sum()
        )
        for r in rules:
            if r.chat is not None and r.chat.role_order:
                exprs.append(roles.str.contains(r.chat.role_order).alias("role_order_ok"))
                break
        exprs.append(empty.cast(pl.Int64).alias("empty_assistant_turns"))
    patterns = {name: p for r in rules if r.pii_patterns for name, p in r.pii_patterns.patterns.items()}
    if patterns:
        scanned = content.str.replace_all(DOCUMENTATION_VALUES, " ")
        hits = [
            scanned.str.count_matches(p).fill_null(0).cast(pl.Int64).alias(f"pii:{name}")
            for name, p in patterns.items()
        ]
        exprs += hits
    df = lf.select(exprs).collect()
    if patterns:
        df = df.with_columns(pl.sum_horizontal([f"pii:{n}" for n in patterns]).alias("pii_pattern_hits"))
    return df


def schema_frame(schema: pl.Schema) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in schema.items()}


def _shares(records: pl.DataFrame, rules: list[GateRule]) -> tuple[dict, dict]:
    metrics: dict[str, float | int | None] = {}
    names: dict[tuple[str, str | None], list[tuple[str, str]]] = {}
    for r in (r.label_share for r in rules if r.label_share):
        key = (r.column, r.by)
        names[key] = []
        if r.column not in records.columns or (r.by and r.by not in records.columns):
            metrics[f"labelled({r.column})"] = None
            continue
        labelled = records.filter(pl.col(r.column).is_not_null())
        metrics[f"labelled({r.column})"] = labelled.height
        by = [r.by] if r.by else []
        counts = labelled.group_by([*by, r.column]).len().sort([*by, r.column])
        totals = labelled.group_by(by).len().rename({"len": "total"}) if by else None
        if by:
            counts = counts.join(totals, on=by).filter(pl.col("total") >= r.min_stratum_rows)
        else:
            counts = counts.with_columns(pl.lit(labelled.height).alias("total"))
        for row in counts.iter_rows(named=True):
            where = f" | {r.by}={row[r.by]}" if r.by else ""
            name = f"share({r.column}={row[r.column]}{where})"
            metrics[name] = round(row["len"] / row["total"], 6)
            names[key].append((name, f"{r.column}={row[r.column]}" + (f" within {r.by}={row[r.by]}" if r.by else "")))
    return metrics, names


def _leakage(records: pl.DataFrame, rule, load_content) -> dict[str, int | None]:
    r = rule
    if r.column not in records.columns:
        return {
            "leaked_ids": None,
            "leaked_content": None,
            "leaked_ngram_pairs": None,
            **{f"leaked_groups({g})": None for g in r.groups},
        }
    train = records.filter(pl.col(r.column) == r.train)
    held = records.filter(pl.col(r.column).is_in(r.held_out))

    def shared(col: str) -> int | None:
        if col not in records.columns:
            return None
        a, b = train[col].drop_nulls().unique(), held[col].drop_nulls().unique()
        return int(a.is_in(b.implode()).sum())

    out = {"leaked_ids": shared("id"), "leaked_content": shared("content_hash")}
    out.update({f"leaked_groups({g})": shared(g) for g in r.groups})
    if r.ngram:
        out["leaked_ngram_pairs"] = _ngram_pairs(load_content(r), r) if train.height and held.height else 0
    return out


def _ngram_pairs(df: pl.DataFrame, r) -> int:
    """Train/held-out pairs sharing word n-grams, checked as the split stage's decontamination checks."""
    from curate.ngrams import leaking_pairs

    texts = comparison_texts(df, "conversation")
    is_train = [s == r.train for s in df[r.column].to_list()]
    train = [t for t, yes in zip(texts, is_train) if yes]
    held = [t for t, yes in zip(texts, is_train) if not yes]
    # numbers blanked only where the held-out prompt has enough words, as the split stage compares
    prompts = [p for p, yes in zip(comparison_texts(df, "user_prompts"), is_train) if not yes]
    return leaking_pairs(train, held, r.ngram, r.min_overlap, r.max_document_frequency, held_prompts=prompts)


def dataset_frame(
    records: pl.DataFrame, rules: list[GateRule], summaries: dict[str, dict], pii_stages: list[str], load_content
) -> tuple[dict, MetricNames]:
    """One row of dataset metrics, and the names of the data-dependent ones (label shares).
    `load_content(rule)` returns id, text, messages and the split column of the train and
    held-out rows, read only when an n-gram leakage check asks for it."""
    metrics: dict[str, float | int | None] = {"rows": records.height}
    shares, names = _shares(records, rules)
    metrics.update(shares)
    for r in (r.split_sizes for r in rules if r.split_sizes):
        counts = dict(records[r.column].value_counts().iter_rows()) if r.column in records.columns else None
        for s in set(r.min) | set(r.max):
            metrics[f"rows({r.column}={s})"] = None if counts is None else int(counts.get(s, 0))
    for r in (r.no_leakage for r in rules if r.no_leakage):
        metrics.update(_leakage(records, r, load_content))
    if any(r.pii_residual for r in rules):
        from curate.stages.pii import PiiStage

        measured = [PiiStage.read_summary(summaries[n]) for n in pii_stages if n in summaries]
        sampled = sum(s.residual.sampled for s in measured)
        found = sum(s.residual.with_pii for s in measured)
        seen = sum(s.records for s in measured)
        # Not measured (None, which fails) when records went through pii but none was re-scanned.
        metrics["pii_residual_rate"] = round(found / sampled, 6) if sampled else (None if seen else 0.0)
    return metrics, MetricNames(names)
