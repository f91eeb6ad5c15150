"""The stage interface shared by every stage and every executor.

A stage receives a polars DataFrame and returns the *same rows in the same order*
with its annotation columns added and three decision columns:
`_action` ("keep", "drop" or "quarantine"), `_rule` and `_reason` (null when kept).
The engine, not the stage, splits kept from rejected rows and checks the
accounting, so no stage can lose a row silently.

`kind = "row"` stages only look at one batch at a time and run in parallel across
batches; `kind = "global"` stages see the whole dataset at once (dedup, balancing,
splits). `setup()` loads models once per worker, `process()` must be safe to retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import polars as pl
from pydantic import BaseModel

from curate.decisions import ACTION, DECISION_COLUMNS, DROP, KEEP, QUARANTINE, REASON, RULE

__all__ = ["ACTION", "DECISION_COLUMNS", "DROP", "KEEP", "QUARANTINE", "REASON", "RULE", "Resources", "Stage"]


@dataclass(frozen=True)
class Resources:
    """What one worker of this stage needs; executors use it to place work."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 0.5


class Stage:
    # the name a pipeline's `stage:` uses; every Stage subclass in a curate.stages module that sets it
    # is registered (curate.stages.registry)
    stage: ClassVar[str]
    kind: ClassVar[Literal["row", "global"]] = "row"
    Rules: ClassVar[type[BaseModel]]
    resources: ClassVar[Resources] = Resources()
    # Columns written beside the shards (under signatures/<stage>/) instead of into them.
    sidecar_columns: ClassVar[tuple[str, ...]] = ()
    # A stage that removes personal data (pii) offers `redact_rows(df)`: rows rejected before it
    # are redacted with its rules before they are checkpointed or published.
    redacts: ClassVar[bool] = False

    def __init__(self, name: str, rules: BaseModel, seed: int = 0):
        self.name = name
        self.rules = rules
        self.seed = seed
        # What a global stage measured (e.g. balance statistics); kept in the manifest and report.
        self.summary: dict | None = None
        # Where a global stage may write files to publish beside the shards (artifacts/<stage>/);
        # the engine sets it, None elsewhere (row stages, the sensitivity replay, direct use).
        self.artifacts_dir: Path | None = None
        # A global stage may spread its work over this (curate.parallel.TaskPool); the Ray executor
        # sets it, and the stage's result must not depend on whether it is set.
        self.pool = None

    @classmethod
    def describe(cls, rules: BaseModel) -> dict:
        """Extra facts for the manifest and the cache key (e.g. resolved catalog versions)."""
        return {}

    @classmethod
    def requires(cls, rules: BaseModel) -> list[str]:
        """Columns this stage needs from the records (an input's, or an earlier stage's); checked when
        the pipeline is loaded, before any data is read."""
        return []

    @classmethod
    def produces(cls, rules: BaseModel) -> list[str]:
        """Columns this stage adds to the records, which later stages may require."""
        return []

    @classmethod
    def criteria(cls, rules: BaseModel, rejected: pl.DataFrame) -> list[tuple[str, BaseModel]]:
        """The selection criteria this stage applied, each as (name, a copy of the rules with that
        one criterion relaxed); only those that rejected a row in `rejected`. Used by the
        sensitivity check (curate.sensitivity)."""
        return []

    @classmethod
    def merge_summaries(cls, parts: list[dict]) -> dict:
        """A row stage's summary is measured batch by batch; this combines them (sums counts)."""
        return sum_counts(parts)

    def setup(self) -> None:
        """Load models or tables once per worker process."""

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        raise NotImplementedError


def require_columns(stage: str, df: pl.DataFrame, columns: list[str], hint: str = "") -> None:
    """Fail with the missing column names and the ones the records do have."""
    missing = sorted(set(columns) - set(df.columns))
    if missing:
        from curate.errors import ConfigError

        raise ConfigError(f"{stage}: columns {missing} are not in the records (columns: {', '.join(df.columns)}){hint}")


def with_decisions(
    df: pl.DataFrame, actions: list[str], rules: list[str | None], reasons: list[str | None]
) -> pl.DataFrame:
    return df.with_columns(
        pl.Series(ACTION, actions, dtype=pl.Utf8),
        pl.Series(RULE, rules, dtype=pl.Utf8),
        pl.Series(REASON, reasons, dtype=pl.Utf8),
    )


def sum_counts(parts: list[dict]) -> dict:
    """Sum dicts of numbers, nested dicts key by key."""
    out: dict = {}
    for part in parts:
        for k, v in part.items():
            out[k] = sum_counts([out.get(k, {}), v]) if isinstance(v, dict) else out.get(k, 0) + v
    return out


def rejected_by(rejected: pl.DataFrame, rule: str) -> bool:
    """Whether any of a stage's rejected rows (as the engine stores them) has this rule."""
    return "rule" in rejected.columns and bool((rejected["rule"] == rule).any())


def keep_all(df: pl.DataFrame) -> pl.DataFrame:
    n = df.height
    return with_decisions(df, [KEEP] * n, [None] * n, [None] * n)
