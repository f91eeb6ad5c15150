"""Executors run a pipeline's work; this is the local one (processes on one machine).

Each worker (`Worker`) builds and `setup()`s every row stage once, then processes whole
batches and writes its results to a checkpoint folder itself (kept rows, rejected rows per
stage, and last `done.json`, the completion marker), so a killed run resumes from
the batches already done. Results are returned in batch order. A global stage runs
in the engine's process (`run_global`). The Ray executor (curate.ray_executor) runs
the same kernel, a `Worker` per actor and `run_global` per task, on a cluster's workers.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import polars as pl
import pyarrow.parquet as pq

from curate.accounting import StageAccount, split_decisions
from curate.config import ResolvedStage
from curate.errors import AccountingError
from curate.io.readers import ReadSource, ReadUnit, load_batch, read_unit, unit_dir
from curate.io.shards import (
    FrameRuns,
    ParquetAppender,
    Piece,
    RowFiles,
    iter_frames,
    read_json,
    read_parquets,
    read_pieces,
    write_json,
    write_parquet,
)
from curate.profile import length_histogram
from curate.sandbox import die_with
from curate.stages.base import Stage, StageContext
from curate.withheld import withheld
from curate.workdir import DONE, batch_dir, kept_file, rejected_file


@dataclass
class BatchTask:
    """One batch for a worker: its rows, or where the worker reads them (`source`: pieces of the input's
    read parts, or `rows`: pieces of the previous segment's checkpoints, of `schema`)."""

    index: int
    records: pl.DataFrame | None = None
    pre_rejected: pl.DataFrame | None = None  # rows the reader quarantined in this batch
    pre_account: StageAccount | None = None
    source: ReadSource | None = None
    rows: tuple[Piece, ...] | None = None
    schema: pl.Schema | None = None

    def resolved(self) -> "BatchTask":
        """The task with its rows read (in the worker that runs it)."""
        if self.source is not None:
            batch = load_batch(self.index, self.source)
            return BatchTask(self.index, batch.records, batch.quarantined, batch.account())
        if self.rows is not None:
            return BatchTask(self.index, read_pieces(self.rows, self.schema or pl.Schema()))
        if self.records is None:
            raise AccountingError(f"batch {self.index} has no rows to run: its checkpoint is missing")
        return self


def read_units(units: list[ReadUnit], folder: Path, columns: list[str], max_record_bytes: int) -> Iterator[dict]:
    """Each input file read in this process into its parts (`read_unit`), summaries in file order."""
    for unit in units:
        yield read_unit(unit, unit_dir(folder, unit.index), columns, max_record_bytes)


def build_stages(stages: list[ResolvedStage], context: StageContext) -> dict[str, Stage]:
    built = {}
    for rs in stages:
        stage = rs.build(context)
        stage.setup()
        built[rs.name] = stage
    return built


def redacted_before(names: list[str], redacts: list[bool]) -> tuple[int | None, set[str]]:
    """In one row segment: the position of the first stage that removes personal data (pii), and the
    stages before it. Their rejected rows, and the reader's quarantined previews, are redacted with its
    rules before they are checkpointed (the engine relies on the same rule when it publishes)."""
    at = next((k for k, r in enumerate(redacts) if r), None)
    return at, set(names[:at]) if at is not None else set()


class Worker:
    """The kernel both executors run: row stages built and set up once per worker process (a local
    pool process, a Ray actor), then applied batch by batch, each batch checkpointed by the worker."""

    def __init__(self, stages: list[ResolvedStage], context: StageContext):
        self.stages = build_stages(stages, context)

    def redactor_of(self, names: list[str]) -> tuple[Stage | None, set[str]]:
        """The segment's pii stage (if any) and the stages before it in the segment (`redacted_before`)."""
        at, before = redacted_before(names, [self.stages[n].redacts for n in names])
        return (self.stages[names[at]] if at is not None else None), before

    def run_batch(self, seg_dir: Path, names: list[str], task: BatchTask, profile: bool) -> dict:
        """Apply `names` stages in order to one batch and checkpoint everything it produced."""
        task = task.resolved()
        out = batch_dir(seg_dir, task.index)
        out.mkdir(parents=True, exist_ok=True)
        accounts: list[StageAccount] = []
        redactor, before = self.redactor_of(names)
        if task.pre_account is not None:
            accounts.append(task.pre_account)
            if task.pre_rejected is not None and task.pre_rejected.height:
                pre = redactor.redact_rows(task.pre_rejected) if redactor is not None else task.pre_rejected
                write_parquet(pre, rejected_file(out, task.pre_account.stage))
        df = task.records
        done: dict = {"index": task.index}
        if profile:
            done["lengths_before"] = length_histogram(df)
        for name in names:
            start = time.perf_counter()
            stage, notes = self.stages[name], Counter()
            with withheld(notes):
                output = stage.run(df)
            if output.summary is not None:
                done.setdefault("summaries", {})[name] = output.summary
            kept, rejected, account = split_decisions(name, df, output.frame, rewrites_ids=stage.redacts)
            account.seconds = time.perf_counter() - start
            account.skipped.update(notes)
            if rejected.height:
                write_parquet(redactor.redact_rows(rejected) if name in before else rejected, rejected_file(out, name))
            accounts.append(account)
            df = kept
        write_parquet(df, kept_file(out))
        done["accounts"] = [a.to_dict() for a in accounts]
        write_json(out / DONE, done)
        return done


_WORKER: Worker | None = None  # this process's, in a local pool process


def _init_pool_worker(parent: int, stages: list[ResolvedStage], context: StageContext) -> None:
    global _WORKER
    # Ctrl-C reaches every process of the terminal's group: the driver handles it and stops the workers,
    # which would otherwise each print a traceback of wherever they were
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with(parent)
    _WORKER = Worker(stages, context)


def _pool_batch(seg_dir: Path, names: list[str], task: BatchTask, profile: bool) -> dict:
    assert _WORKER is not None, "the pool's initializer builds the worker"
    return _WORKER.run_batch(seg_dir, names, task, profile)


def run_global(rs: ResolvedStage, context: StageContext, out: Path, inputs: list[Path], artifacts: str) -> dict:
    """Run one global stage on all rows in `inputs` and checkpoint it under `out` (a retry redoes it).
    The stage may spread its work over `context.pool` and writes its artifacts under out/artifacts.
    A stage that decides from files (`decide_files`) never has every row in memory: its decisions
    are joined back to the rows one input file at a time (without a pool: locally)."""
    stage = build_stages([rs], context.with_(artifacts_dir=out / artifacts / rs.name))[rs.name]
    # With a task pool (Ray) the stage spreads its in-memory path over the cluster instead.
    if stage.decide_files is not None and context.pool is None and any(p.is_file() for p in inputs):
        return _run_global_files(stage, out, inputs)
    df = read_parquets(inputs)
    start, notes = time.perf_counter(), Counter()
    with withheld(notes):
        output = stage.run(df)
    kept, rejected, account = split_decisions(rs.name, df, output.frame)
    account.seconds = time.perf_counter() - start
    account.skipped.update(notes)
    if rejected.height:
        write_parquet(rejected, rejected_file(out, rs.name))
    write_parquet(kept, kept_file(out))
    done = {"accounts": [account.to_dict()], "summary": output.summary, "rows_in": df.height}
    write_json(out / DONE, done)
    return done


def _run_global_files(stage: Stage, out: Path, inputs: list[Path]) -> dict:
    """`run_global` for a stage that decides from files: its decisions (the rows in input order: `id`,
    the columns it adds, the decision columns; a frame, or a Parquet file the stage wrote in scratch)
    joined back to the input's rows a row group at a time, the kept and rejected rows appended to the
    checkpoint as they come. The rows, columns and order are the in-memory path's, which concatenates
    the files (`read_parquets`: columns unioned)."""
    start = time.perf_counter()
    files = [p for p in inputs if p.is_file()]
    scratch = out / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    notes: Counter = Counter()
    with withheld(notes):
        output = stage.run_files(files, scratch)
    decided, decisions = _decisions(output.frame)
    inputs = RowFiles(files)  # the rows as read_parquets reads them, a row group at a time
    kept_out, rejected_out = ParquetAppender(kept_file(out)), ParquetAppender(rejected_file(out, stage.name))
    account, offset = StageAccount(stage=stage.name), 0
    for rows in inputs.frames() if inputs.height else [inputs.collect()]:
        mine = decisions.take(rows.height)
        offset += rows.height
        if mine.height != rows.height or not mine["id"].equals(rows["id"]):
            raise AccountingError(f"stage '{stage.name}' decided on rows in another order than its input holds")
        kept, rejected, part = split_decisions(stage.name, rows, rows.with_columns(mine.drop("id")))
        account.merge(part)
        kept_out.write(kept)
        if rejected.height:
            rejected_out.write(rejected)
    if decided != offset:
        raise AccountingError(f"stage '{stage.name}' decided on {decided} rows, the files hold {offset}")
    if kept_out.rows == 0:
        kept_out.write(kept)  # no row kept: the checkpoint still has the columns
    kept_out.close()
    rejected_out.close()
    shutil.rmtree(scratch, ignore_errors=True)
    account.reasons = dict(sorted(account.reasons.items()))
    account.seconds = time.perf_counter() - start
    account.skipped.update(notes)
    account.check()
    done = {"accounts": [account.to_dict()], "summary": output.summary, "rows_in": offset}
    write_json(out / DONE, done)
    return done


def _decisions(decided: pl.DataFrame | Path) -> tuple[int, FrameRuns]:
    """How many rows a stage decided on, and its decisions to hand out in runs of rows: from a frame,
    or read from the Parquet file the stage wrote (a row group at a time, never all in memory)."""
    if isinstance(decided, pl.DataFrame):
        return decided.height, FrameRuns(iter([decided]), decided.schema)
    rows = pq.ParquetFile(decided).metadata.num_rows
    return rows, FrameRuns(iter_frames([decided]), pl.read_parquet_schema(decided))


def _result(future: Future):
    """The future's result, waited for in short steps: a signal may be delivered to any thread, and a
    main thread blocked on a lock until a batch ends (minutes) would not see Ctrl-C until then."""
    while True:
        try:
            return future.result(timeout=0.2)
        except TimeoutError:
            continue


def load_done(seg_dir: Path, index: int) -> dict | None:
    marker = batch_dir(seg_dir, index) / DONE
    return read_json(marker) if marker.is_file() else None


class Executor(Protocol):
    """What the engine needs from an executor (LocalExecutor, curate.ray_executor.RayExecutor)."""

    workers: int

    def __enter__(self) -> "Executor": ...

    def __exit__(self, *exc) -> None: ...

    def describe(self) -> dict:
        """For the manifest: which executor ran, with how many workers."""

    def rows_done(self) -> None:
        """No row stage is left to run: the row workers (and the models they hold) may go."""

    def read_units(
        self, units: list[ReadUnit], folder: Path, columns: list[str], max_record_bytes: int
    ) -> Iterator[dict]:
        """Have the workers read the input files into parts under `folder`; their summaries in file order."""

    def map_batches(
        self,
        seg_dir: Path,
        names: list[str],
        tasks: Iterator[BatchTask],
        profile: bool,
        on_done: Callable[[dict], None],
    ) -> list[dict]:
        """Apply the `names` row stages to every task (via `run_batch`), skipping checkpointed ones."""

    def run_global(
        self, rs: ResolvedStage, context: StageContext, out: Path, inputs: list[Path], artifacts: str
    ) -> dict:
        """Run one global stage (via `run_global`) and return its done record."""


class LocalExecutor:
    def __init__(self, stages: list[ResolvedStage], context: StageContext, workers: int):
        self.stages = stages
        self.context = context
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None
        self._worker: Worker | None = None

    def __enter__(self) -> "LocalExecutor":
        if self.workers == 1:
            self._worker = Worker(self.stages, self.context)
        else:
            # spawn, not fork: polars and fastText hold threads that fork would copy mid-lock.
            os.environ.setdefault("POLARS_MAX_THREADS", "1")
            os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread per worker (spaCy NER)
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_pool_worker,
                initargs=(os.getpid(), self.stages, self.context),
            )
        return self

    def __exit__(self, kind, *exc) -> None:
        if self._pool is None:
            return
        if kind is not None:  # Ctrl-C or an error: the batches under way are not waited for (a rerun redoes them)
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.kill()
        self._pool.shutdown(wait=kind is None, cancel_futures=True)

    def describe(self) -> dict:
        return {"kind": "local", "workers": self.workers}

    def rows_done(self) -> None:
        """Shut the worker processes down before the global stages that end a pipeline, so their
        models are not held while the driver deduplicates and splits."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self._worker = None

    def run_global(
        self, rs: ResolvedStage, context: StageContext, out: Path, inputs: list[Path], artifacts: str
    ) -> dict:
        return run_global(rs, context, out, inputs, artifacts)

    def read_units(
        self, units: list[ReadUnit], folder: Path, columns: list[str], max_record_bytes: int
    ) -> Iterator[dict]:
        """In the worker processes, all files queued at once (ahead of the batches they feed)."""
        if self._pool is None:
            yield from read_units(units, folder, columns, max_record_bytes)
            return
        futures = [self._pool.submit(read_unit, u, unit_dir(folder, u.index), columns, max_record_bytes) for u in units]
        try:
            for future in futures:
                yield _result(future)
        finally:
            for future in futures:
                future.cancel()

    def map_batches(
        self,
        seg_dir: Path,
        names: list[str],
        tasks: Iterator[BatchTask],
        profile: bool,
        on_done: Callable[[dict], None],
    ) -> list[dict]:
        """Run every task not already checkpointed; returns the done records in batch order."""
        results: dict[int, dict] = {}
        pending: dict[int, Future] = {}
        for task in tasks:
            cached = load_done(seg_dir, task.index)
            if cached is not None:
                results[task.index] = cached
                on_done(cached)
                continue
            if self._pool is None:
                assert self._worker is not None, "entered"
                results[task.index] = self._worker.run_batch(seg_dir, names, task, profile)
                on_done(results[task.index])
                continue
            pending[task.index] = self._pool.submit(_pool_batch, seg_dir, names, task, profile)
            if len(pending) >= 2 * self.workers:
                self._collect(pending, results, on_done, block_for=min(pending))
        while pending:
            self._collect(pending, results, on_done, block_for=min(pending))
        return [results[i] for i in sorted(results)]

    @staticmethod
    def _collect(pending: dict[int, Future], results: dict[int, dict], on_done, block_for: int) -> None:
        results[block_for] = _result(pending.pop(block_for))
        on_done(results[block_for])
        for index in [i for i, f in pending.items() if f.done()]:
            results[index] = pending.pop(index).result()
            on_done(results[index])
