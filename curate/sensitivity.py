"""Sensitivity: how many more records each selection criterion would let through, and how the
label mix would change, computed exactly without re-running the pipeline.

Each stage names its criteria (`Stage.criteria`): a copy of its rules with one criterion
relaxed (a quality rule removed, the language allow-list emptied, exact dedup off, the
balance strategy off, decontamination off). The what-if run replays only what the
criterion changes, from the run's checkpoints:

- at the criterion's stage: a row stage re-decides only the rows it rejected; a global
  stage re-decides its whole recorded input;
- at every later row stage: only rows that did not reach it in the real run are processed
  (the others are row-local and get the decision they got);
- at every later global stage: its recorded input, minus rows the what-if run lost, plus the
  rows it gained, in read order, so the decision is exactly what a full rerun would make.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from curate.accounting import split_decisions
from curate.config import ResolvedStage
from curate.decisions import DECISION_COLUMNS, REJECTED_LEAD
from curate.io.shards import read_parquets
from curate.stages.base import Stage, StageContext
from curate.stages.registry import STAGES

ORDER = "_order"


@dataclass
class StageTrace:
    """What the real run recorded for one stage."""

    spec: ResolvedStage
    rejected: pl.DataFrame
    passed: set[str]  # ids that passed this stage (kept by it; maybe dropped later)
    inputs: list[Path] | None = None  # global stages: their recorded input (kept.parquet files)


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    frames = [f for f in frames if f.height]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def _kept(name: str, df: pl.DataFrame, stage: Stage) -> pl.DataFrame:
    if not df.height:
        return df
    kept, _, _ = split_decisions(
        name, df, stage.process(df.drop([c for c in DECISION_COLUMNS if c in df.columns])), rewrites_ids=stage.redacts
    )
    return kept


class WhatIf:
    """Replays the run's decisions with one criterion relaxed."""

    def __init__(self, traces: list[StageTrace], file_order: list[str], context: StageContext):
        self.traces = traces
        self.context = context
        self.rank = {label: i for i, label in enumerate(file_order)}
        self._stages: dict[str, Stage] = {}
        self._inputs: dict[str, pl.DataFrame] = {}

    def stage(self, rs: ResolvedStage, rules=None) -> Stage:
        if rules is not None:
            stage = rs.build(self.context, rules)
            stage.setup()
            return stage
        if rs.name not in self._stages:
            self._stages[rs.name] = rs.build(self.context)
            self._stages[rs.name].setup()
        return self._stages[rs.name]

    def recorded_input(self, trace: StageTrace) -> pl.DataFrame:
        if trace.spec.name not in self._inputs:
            self._inputs[trace.spec.name] = read_parquets(trace.inputs or [])
        return self._inputs[trace.spec.name]

    def in_read_order(self, df: pl.DataFrame) -> pl.DataFrame:
        """Rows sorted the way the reader produced them (every stage keeps row order)."""
        rank = pl.col("src_file").replace_strict(self.rank, default=len(self.rank), return_dtype=pl.Int64)
        return df.with_columns(rank.alias(ORDER)).sort([ORDER, "src_row"], maintain_order=True).drop(ORDER)

    def run(self, at: int, rules) -> tuple[set[str], pl.DataFrame]:
        """Ids of real-run rows still kept, and the rows the what-if run gains, at the end."""
        trace = self.traces[at]
        alive: set[str] = set(trace.passed)
        if STAGES[trace.spec.stage].kind == "row":
            retry = trace.rejected.drop([c for c in REJECTED_LEAD if c in trace.rejected.columns])
            new = _kept(trace.spec.name, retry, self.stage(trace.spec, rules))
        else:
            alive, new = self._global(trace, alive_before=None, new=pl.DataFrame(), rules=rules)
        for trace in self.traces[at + 1 :]:
            if STAGES[trace.spec.stage].kind == "row":
                alive &= trace.passed
                new = _kept(trace.spec.name, new, self.stage(trace.spec))
            else:
                alive, new = self._global(trace, alive, new)
        return alive, new

    def _global(self, trace: StageTrace, alive_before: set[str] | None, new: pl.DataFrame, rules=None):
        recorded = self.recorded_input(trace)
        if rules is None and not new.height and len(alive_before) == recorded.height:
            return set(trace.passed), new  # the very input the run recorded: same decisions
        old = recorded if alive_before is None else recorded.filter(pl.col("id").is_in(list(alive_before)))
        df = self.in_read_order(_concat([old, new])) if new.height else old
        kept = _kept(trace.spec.name, df, self.stage(trace.spec, rules))
        gained = kept.filter(~pl.col("id").is_in(list(trace.passed)))
        return set(kept["id"].to_list()) & trace.passed, gained


def _mix(labels: pl.Series) -> dict[str, float]:
    labels = labels.cast(pl.Utf8).fill_null("(none)")
    if not labels.len():
        return {}
    counts = labels.value_counts().sort(labels.name)
    return {k: round(v / labels.len(), 4) for k, v in counts.iter_rows()}


def sensitivity(
    traces: list[StageTrace], final: pl.DataFrame, file_order: list[str], context: StageContext, label: str = "label"
) -> list[dict]:
    """One row per criterion that rejected anything: records gained, records lost, label mix. Stages are
    replayed with the run's context, less its pool and artifacts folder (a replay publishes nothing)."""
    whatif = WhatIf(traces, file_order, context.with_(pool=None, artifacts_dir=None))
    has_label = label in final.columns
    rows = []
    for at, trace in enumerate(traces):
        if not trace.rejected.height:
            continue
        for criterion, relaxed in STAGES[trace.spec.stage].criteria(trace.spec.rules, trace.rejected):
            started = time.perf_counter()
            alive, gained = whatif.run(at, relaxed)
            still = final.filter(pl.col("id").is_in(list(alive)))
            row = {
                "criterion": criterion,
                "stage": trace.spec.name,
                "more_records": gained.height - (final.height - still.height),
                "gained": gained.height,
                "lost": final.height - still.height,
                "kept_now": final.height,
                "kept_without": still.height + gained.height,
                "seconds": round(time.perf_counter() - started, 3),
            }
            if has_label:
                without = pl.concat(
                    [
                        still[label].cast(pl.Utf8),
                        gained[label].cast(pl.Utf8)
                        if label in gained.columns
                        else pl.Series(label, [None] * gained.height, pl.Utf8),
                    ]
                )
                row["label_mix"] = _mix(final[label])
                row["label_mix_without"] = _mix(without)
            rows.append(row)
    return sorted(rows, key=lambda r: (-r["more_records"], r["criterion"]))
