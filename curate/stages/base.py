"""The stage interface shared by every stage and every executor.

A stage receives a polars DataFrame and returns the *same rows in the same order*
with its annotation columns added and three decision columns:
`_action` ("keep", "drop" or "quarantine"), `_rule` and `_reason` (null when kept).
The engine, not the stage, splits kept from rejected rows and checks the
accounting, so no stage can lose a row silently.

`kind = "row"` stages only look at one batch at a time and run in parallel across
batches; `kind = "global"` stages see the whole dataset at once (dedup, balancing,
splits). `setup()` loads models once per worker, `process()` must be safe to retry.

Everything a stage gets from the run comes in its `StageContext` (seed, the folders its rules'
relative paths start from, the catalog, a task pool, an artifacts folder), given when it is built;
what it measured comes back from `run()` with its rows, as its typed `Summary`. No executor sets
attributes on a stage.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import polars as pl
from pydantic import BaseModel

from curate.decisions import ACTION, DECISION_COLUMNS, DROP, KEEP, QUARANTINE, REASON, RULE
from curate.sandbox import DEFAULT_RECORD_SECONDS
from curate.schema import config_path

if TYPE_CHECKING:
    from curate.catalog import Catalog, Entry
    from curate.parallel import TaskPool

__all__ = [
    "ACTION",
    "DECISION_COLUMNS",
    "DROP",
    "KEEP",
    "QUARANTINE",
    "REASON",
    "RULE",
    "Resources",
    "Evidence",
    "Stage",
    "StageContext",
    "StageOutput",
]


@dataclass(frozen=True)
class Resources:
    """What one worker of this stage needs; executors use it to place work."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 0.5


@dataclass(frozen=True)
class StageContext:
    """What the run gives a stage. Picklable: pool workers and Ray actors get a copy."""

    seed: int = 0
    # Where relative file paths in the stage's rules (seed sets, eval sets) start: the folder of the file
    # they are written in, so neither a result nor the cache key depends on where curate runs. That is
    # the rules file's folder, and the pipeline's for the top-level keys its `params:` set (`param_keys`).
    base_dir: Path = Path(".")
    params_dir: Path | None = None
    param_keys: frozenset[str] = frozenset()
    catalog: "Catalog | None" = None  # where shards:// refs resolve; None: $CURATE_HOME's
    # A global stage may spread its work over this (curate.parallel.TaskPool); the Ray executor
    # gives one, and the stage's result must not depend on whether it is there.
    pool: "TaskPool | None" = None
    # Where a global stage may write files published beside the shards (artifacts/<stage>/); the
    # engine gives one to global stages, None elsewhere (row stages, the sensitivity replay, direct use).
    artifacts_dir: Path | None = None
    # The pipeline's limits.record_seconds: how long one record may take in a step that can be stopped
    # (curate.sandbox); a record over it is quarantined. None: no limit.
    record_seconds: float | None = DEFAULT_RECORD_SECONDS

    def path(self, value: str, key: str) -> Path:
        """A file path from the rules' top-level key `key`: `~` expanded, relative to its file's folder."""
        from_params = key in self.param_keys and self.params_dir is not None
        return config_path(value, self.params_dir if from_params else self.base_dir)

    def file_hashes(self, paths: list[str], key: str) -> dict[str, str]:
        """sha256 of each reference file the rules name (shards:// refs and missing files left out), keyed
        by the path as written: for a stage's `describe`, so new contents are a new cache key while the
        checkout's location is not."""
        from curate.hashing import sha256_file

        found = {p: self.path(p, key) for p in paths if not p.startswith("shards://")}
        return {p: sha256_file(f) for p, f in found.items() if f.is_file()}

    def shards(self, ref: str) -> "Entry":
        """A shards://name@version ref resolved in this run's catalog."""
        from curate.catalog import Catalog

        return (self.catalog or Catalog()).resolve(ref)

    def with_(self, **changes) -> "StageContext":
        return replace(self, **changes)


Mark = Literal["pass", "warn", "fail"]
# The readiness checklist's questions a stage can add evidence to (curate.report.readiness).
Question = Literal["clean", "balance", "validation", "pii", "risks"]


@dataclass(frozen=True)
class Evidence:
    """What a stage's summary says about one question of the fine-tune readiness checklist."""

    question: Question
    mark: Mark
    note: str


@dataclass
class StageOutput:
    """One `Stage.run`: the rows with their decisions, and what the stage measured (None: nothing).
    From `run_files`, the frame may be the Parquet file of the decisions (`decide_files`)."""

    frame: pl.DataFrame | Path
    summary: dict | None


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
    # What `process` measures, as a pydantic model it sets as `self.summary` (None: it measures nothing).
    # Its JSON form goes into done.json and the manifest; `read_summary` turns that back into the model.
    Summary: ClassVar[type[BaseModel] | None] = None
    # The list in report.json that the stage's `report_section` joins ("stages": the report's generic
    # table of each stage's measures, for a stage the report template does not know).
    report_key: ClassVar[str] = "stages"

    def __init__(self, name: str, rules: BaseModel, context: StageContext | None = None):
        self.name = name
        self.rules = rules
        self.context = context or StageContext()
        # What the last `process` measured, a `Summary` (e.g. balance statistics); `run` returns it with
        # the rows, and it is kept in the manifest and report.
        self.summary: BaseModel | None = None

    @property
    def seed(self) -> int:
        return self.context.seed

    @property
    def pool(self) -> "TaskPool | None":
        return self.context.pool

    @property
    def artifacts_dir(self) -> Path | None:
        return self.context.artifacts_dir

    @classmethod
    def describe(cls, rules: BaseModel, context: StageContext) -> dict:
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
        """A row stage's summary is measured batch by batch; this combines their recorded (JSON) forms
        (sums counts)."""
        return sum_counts(parts)

    @classmethod
    def read_summary(cls, data: dict | None) -> BaseModel | None:
        """A summary as recorded (done.json, the manifest) back as the stage's model."""
        return None if data is None or cls.Summary is None else cls.Summary.model_validate(data)

    @classmethod
    def report_section(
        cls, name: str, summary: BaseModel | None, account: dict, rejected: pl.DataFrame
    ) -> dict | list[dict] | None:
        """This stage's part of report.json (joining the list `report_key`), from its summary, its
        accounting (rows in, kept, reasons) and its rejected rows; by default the summary as measured.
        Counts, ids and reasons only: the report is shared, so no record text goes in."""
        if summary is None:
            return None if cls.report_key == "stages" else {"stage": name}
        return {"stage": name, **summary.model_dump(mode="json")}

    @classmethod
    def evidence(cls, name: str, summary: BaseModel | None) -> list[Evidence]:
        """What the summary tells the fine-tune readiness checklist (e.g. split: leaks left)."""
        return []

    def setup(self) -> None:
        """Load models or tables once per worker process."""

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        """The rows with annotations and decisions; may set `self.summary` to what it measured."""
        raise NotImplementedError

    def run(self, df: pl.DataFrame) -> StageOutput:
        """`process` one frame (a batch, or everything for a global stage) and what it measured there."""
        self.summary = None
        return self._output(self.process(df))

    # A global stage that can decide from checkpoint files without holding every row (dedup, split)
    # defines decide_files(files, scratch) -> the rows in file order: `id`, the columns it adds to the
    # rows and the decision columns, as a frame or as a Parquet file it wrote under scratch (so they
    # need not be in memory either); the executor joins those back to the rows file by file.
    decide_files = None

    def run_files(self, files: list[Path], scratch: Path) -> StageOutput:
        """`decide_files` and what it measured: the same rows and summary as `run` on the files' rows."""
        assert self.decide_files is not None, f"{self.name} decides on a frame only"
        self.summary = None
        return self._output(self.decide_files(files, scratch))

    def _output(self, frame: pl.DataFrame | Path) -> StageOutput:
        if self.summary is None:
            return StageOutput(frame, None)
        if self.Summary is None or not isinstance(self.summary, self.Summary):
            expected = self.Summary.__name__ if self.Summary else "nothing (the stage declares no Summary)"
            raise TypeError(
                f"{self.name}: process() set a summary of type {type(self.summary).__name__}, expected {expected}"
            )
        return StageOutput(frame, self.summary.model_dump(mode="json"))


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
