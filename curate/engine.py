"""Running a pipeline: plan segments, execute with checkpoints, check accounting, publish.

Consecutive row-local stages form one *segment* that runs batch by batch in parallel;
each global stage is a segment of its own that sees all rows. Every segment writes
checkpoints under `<out>/_work/<run key>/` (or `output.work_dir`), so a killed run
resumes where it stopped. Outputs are assembled there and moved (or, for a URL output
such as `s3://bucket/shards/demo`, uploaded) into place last, `manifest.json` last of
all: a manifest present means the run is complete. An unchanged pipeline + rules + inputs
+ code is a cache hit and recomputes nothing.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from curate import __version__
from curate.accounting import StageAccount, check_chain, rejected_layout, to_layout
from curate.catalog import Catalog, Entry, check_name, curate_home, file_problems
from curate.config import Pipeline, ResolvedStage
from curate.errors import ConfigError
from curate.executor import BatchTask, Executor, LocalExecutor, build_stages, redacted_before
from curate.gates.runner import FINAL, GateRunner, failures, run_gates, stages_upto
from curate.hashing import code_fingerprint, sha256_file, sha256_json, short
from curate.io.outputs import (
    ARTIFACTS,
    GX_DOCS,
    MANIFEST,
    PUBLISHED,
    WORK,
    Lock,
    check_location,
    claim,
    claim_remote,
    new_staging,
    output_lock,
    own_folder,
    remove_owned,
    switch,
)
from curate.io.readers import ReadUnit, plan_batches, read_columns
from curate.io.shards import (
    Location,
    RowFiles,
    describe_file,
    location,
    publish_tree,
    read_json,
    read_manifest,
    write_json,
    write_parts,
    write_shards,
)
from curate.io.sources import InputFile, input_folders, name_from_inputs, resolve_inputs
from curate.profile import add_histograms
from curate.records import schema_with
from curate.report.build import build_report
from curate.report.html import write_html
from curate.sensitivity import StageTrace, sensitivity
from curate.stages.base import StageContext
from curate.stages.registry import STAGES
from curate.withheld import withheld
from curate.workdir import BATCHES, DONE, batch_dir, global_dir, kept_file, read_dir, rejected_files, segment_dir


@dataclass
class Segment:
    kind: str  # "row" or "global"
    stages: list[ResolvedStage]


@dataclass
class RunResult:
    out_dir: Location  # a local path, or the URL the outputs were uploaded to
    manifest: dict
    cached: bool
    entry: Entry | None
    seconds: float

    @property
    def failed_gates(self) -> list[dict]:
        """The `fail` checks that did not pass; non-empty means the catalog refuses this version."""
        return failures(self.manifest.get("gates", []))


@dataclass
class Progress:
    """Callbacks the CLI uses to draw progress bars; silent by default (tests, library use)."""

    start: Callable[[str, int | None], None] = lambda label, total: None
    advance: Callable[[int], None] = lambda rows: None
    finish: Callable[[], None] = lambda: None
    note: Callable[[str], None] = lambda text: None  # something the user should know (not an error)


def plan(stages: tuple[ResolvedStage, ...], cut_after: frozenset[str] = frozenset()) -> list[Segment]:
    """Segments in order; a row segment also ends after each stage in `cut_after` (a gate point),
    so what that stage passed on is materialised for the gates."""
    segments: list[Segment] = [Segment("row", [])]  # the first segment also carries the reader
    for rs in stages:
        kind = STAGES[rs.stage].kind
        last = segments[-1]
        if kind == "row" and last.kind == "row" and not (last.stages and last.stages[-1].name in cut_after):
            segments[-1].stages.append(rs)
        else:
            segments.append(Segment(kind, [rs]))
    return segments


def describe_stages(pipeline: Pipeline, context: StageContext) -> list[dict]:
    """Each stage's `describe` (resolved catalog versions, reference files' hashes), once per run: the
    cache key and the manifest record the same facts."""
    return [rs.describe(context) for rs in pipeline.stages]


def run_key(pipeline: Pipeline, files: list[InputFile], described: list[dict]) -> str:
    return sha256_json(
        {
            "config": pipeline.config_fingerprint,
            "stages": described,
            "inputs": [[f.label, f.fingerprint, f.spec.model_dump(mode="json")] for f in files],
            "code": code_fingerprint(),
        }
    )


def default_out_dir(pipeline: Pipeline) -> Location:
    spec = pipeline.spec.output.dir
    if spec and "://" in spec:
        return spec.rstrip("/")
    return pipeline.resolve(spec) if spec else Path("out") / pipeline.spec.name


def work_root(pipeline: Pipeline, out_dir: Location) -> Path:
    """Where this output's checkpoints go: <out>/_work, or a folder of its own under output.work_dir
    (else under CURATE_HOME for a URL output). Removed once the outputs are published."""
    work_dir = pipeline.spec.output.work_dir
    if isinstance(out_dir, Path) and not work_dir:
        return out_dir / WORK
    base = pipeline.resolve(work_dir) if work_dir else curate_home() / "work"
    return base / short(sha256_json(str(out_dir.resolve() if isinstance(out_dir, Path) else out_dir)), 16)


def resolve_workers(value: int | str | None, pipeline: Pipeline) -> int | None:
    """Worker processes; None ('auto' under Ray) means one per CPU of the cluster."""
    chosen = value if value is not None else pipeline.spec.workers
    if chosen == "auto":
        return None if pipeline.spec.executor == "ray" else (os.cpu_count() or 1)
    return int(chosen)


def make_executor(
    pipeline: Pipeline, row_stages: list[ResolvedStage], workers: int | None, context: StageContext
) -> Executor:
    if pipeline.spec.executor == "ray":
        from curate.ray_executor import RayExecutor

        return RayExecutor(row_stages, context, workers, pipeline.spec.ray)
    return LocalExecutor(row_stages, context, workers or 1)


def run_pipeline(
    pipeline: Pipeline,
    *,
    inputs: list[str] | None = None,
    out_dir: Path | None = None,
    name: str | None = None,
    workers: int | None = None,
    executor: str | None = None,
    ray_address: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    catalog: Catalog | None = None,
) -> RunResult:
    started = time.perf_counter()
    pipeline = _with_executor(pipeline, executor, ray_address)
    progress = progress or Progress()
    catalog = catalog or Catalog()
    context = pipeline.stage_context(catalog)
    # Other inputs than the pipeline's are other data: never published under the pipeline's name or into its folder.
    name = check_name(name or (name_from_inputs(inputs) if inputs else pipeline.spec.name))
    catalog.check_writable(name)  # before any work: a run that cannot register would publish for nothing
    files = resolve_inputs(pipeline, inputs)
    out_dir = location(str(out_dir)) if out_dir else (Path("out") / name if inputs else default_out_dir(pipeline))
    described = describe_stages(pipeline, context)
    key = run_key(pipeline, files, described)
    root = work_root(pipeline, out_dir)
    if isinstance(out_dir, Path):
        check_location(
            out_dir, [f.path for f in files if isinstance(f.path, Path)], input_folders(pipeline, inputs), catalog.root
        )
        lock = output_lock(out_dir)
    else:
        lock = Lock(root.with_name(f"{root.name}.lock"), f"output {out_dir}")
    with lock:
        claim(out_dir) if isinstance(out_dir, Path) else claim_remote(out_dir)
        if not force and (hit := _cache_hit(out_dir, key)) is not None:
            entry = catalog.register(out_dir, {**hit, "name": name})
            return RunResult(out_dir, hit, True, entry, time.perf_counter() - started)
        work = root / short(key, 16)
        for note in _prepare_work(root, work, force):
            progress.note(note)
        run = _Run(pipeline, context, described, files, work, resolve_workers(workers, pipeline), progress)
        final, accounts, lengths_before = run.execute()
        rejected = _rejected(work, accounts)
        with withheld(Counter()):  # the replay's library messages may quote rejected rows
            what_if = (
                run.sensitivity(final.collect(), {s: r.collect() for s, r in rejected.items()})
                if pipeline.spec.sensitivity
                else []
            )
        run.gate(FINAL, final.without(_sidecar_columns(pipeline, final)).lazy())  # the columns published in data/
        if run.gate_results:  # Data Docs once, for every gate point; its time counts as the last point's
            run.gate_results[-1]["seconds"] = round(run.gate_results[-1]["seconds"] + run.gate_runner.build_docs(), 3)
        pub = _Publication(key, name, out_dir, started, accounts, lengths_before)
        manifest = _publish(run, pub, final, rejected, what_if)
        entry = catalog.register(out_dir, manifest)
        remove_owned(root, root.parent)
    return RunResult(out_dir, manifest, False, entry, time.perf_counter() - started)


def _with_executor(pipeline: Pipeline, executor: str | None, ray_address: str | None) -> Pipeline:
    """The pipeline with the executor chosen on the command line (`--executor`, `--ray-address`)."""
    update: dict = {}
    if executor not in (None, "local", "ray"):
        raise ConfigError(f"executor {executor!r}: choose 'local' or 'ray'")
    if executor is not None:
        update["executor"] = executor
    if ray_address is not None:
        update["executor"] = "ray"
        update["ray"] = pipeline.spec.ray.model_copy(update={"address": ray_address})
    return replace(pipeline, spec=pipeline.spec.model_copy(update=update)) if update else pipeline


def _cache_hit(out_dir: Location, key: str) -> dict | None:
    """The manifest of a complete earlier run with this key whose files are intact. Remote outputs
    are checked by size, not re-hashed (that would download them); `curate shards verify` hashes."""
    manifest = read_manifest(out_dir)  # None also for a damaged one in a folder curate owns: the run replaces it
    if manifest is None or manifest.get("run_key") != key or not isinstance(manifest.get("files"), list):
        return None
    deep = isinstance(out_dir, Path)
    return manifest if next(file_problems(out_dir, manifest["files"], deep), None) is None else None


def _prepare_work(root: Path, work: Path, force: bool) -> list[str]:
    """The run's work folder, ready: other runs' stale checkpoints (and with --force its own) removed,
    and `root` and `work` real folders of curate's. A link in their place, or inside them, is removed as
    a link and never followed, so a rerun cannot delete or write what a link points at. Returns notes."""
    notes = own_folder(root, root.parent)
    for child in list(root.iterdir()):
        if child != work or force:
            remove_owned(child, root)
    return notes + own_folder(work, root)


@dataclass
class _Run:
    pipeline: Pipeline
    context: StageContext
    described: list[dict]  # describe_stages, in pipeline order
    files: list[InputFile]
    work: Path
    workers: int | None
    progress: Progress
    accounts: dict[str, StageAccount] = field(default_factory=dict)
    summaries: dict[str, dict] = field(default_factory=dict)
    global_inputs: dict[str, list[Path]] = field(default_factory=dict)
    gate_results: list[dict] = field(default_factory=list)
    executor: dict = field(default_factory=dict)
    redacted: set[str] = field(default_factory=set)  # stages whose rejected rows were redacted in the checkpoints

    @property
    def record_columns(self) -> list[str]:
        """The extra input columns the pipeline's inputs keep as record columns."""
        return sorted({c for f in self.files for c in f.spec.columns})

    def __post_init__(self) -> None:
        self.gate_runner = GateRunner(self.work / GX_DOCS)
        if self.pipeline.gates:
            self.gate_runner.check_types(list(self.pipeline.gates))  # imports GX now only if a `gx:` rule needs it
            self.gate_runner.warm()

    def gate(self, point: str, lf: pl.LazyFrame) -> None:
        """Run the gates declared for `point` on `lf` (the rows that passed it)."""
        gates = [g for g in self.pipeline.gates if g.point == point]
        if not gates:
            return
        self.progress.start(f"gates after {point}" if point != FINAL else "gates", None)
        pii = [s.name for s in stages_upto(self.pipeline.stages, point) if s.stage == "pii"]

        def load_content(rule) -> pl.DataFrame:
            cols = [c for c in ("id", "text", "messages", rule.column) if c in lf.collect_schema()]
            return lf.filter(pl.col(rule.column).is_in([rule.train, *rule.held_out])).select(cols).collect()

        withhold = not pii and any(STAGES[s.stage].redacts for s in self.pipeline.stages)  # values not redacted yet
        self.gate_results.append(
            run_gates(self.gate_runner, point, gates, lf, self.summaries, pii, load_content, withhold)
        )
        self.progress.finish()

    def execute(self) -> tuple[RowFiles, list[StageAccount], list[int]]:
        points = frozenset(g.point for g in self.pipeline.gates if g.point != FINAL)
        segments = plan(self.pipeline.stages, points)
        self.redacted = _redacted_in_checkpoints(segments)
        row_stages = [rs for seg in segments if seg.kind == "row" for rs in seg.stages]
        order = ["read"] + [rs.name for rs in self.pipeline.stages]
        self.accounts = {n: StageAccount(stage=n) for n in order}
        histograms: list[list[int]] = []
        with make_executor(self.pipeline, row_stages, self.workers, self.context) as executor:
            self.executor = executor.describe()
            previous: list[Path] = []
            for i, seg in enumerate(segments):
                seg_dir = segment_dir(self.work, i)
                if seg.kind == "row":
                    done = self._row_segment(executor, seg, seg_dir, i, previous)
                    if i == 0:
                        histograms = [d["lengths_before"] for d in done]
                    previous = [batch_dir(seg_dir, d["index"]) for d in done]
                else:
                    if all(later.kind != "row" for later in segments[i:]):
                        executor.rows_done()
                    self.global_inputs[seg.stages[0].name] = [kept_file(p) for p in previous]
                    previous = [self._global_segment(executor, seg.stages[0], seg_dir, previous)]
                if seg.stages and seg.stages[-1].name in points:
                    self.gate(seg.stages[-1].name, pl.scan_parquet([kept_file(p) for p in previous]))
        final = RowFiles([kept_file(p) for p in previous])  # read a part at a time from here on
        accounts = [self.accounts[n] for n in order]
        check_chain(accounts, final.height)
        return final, accounts, add_histograms(histograms)

    def sensitivity(self, final: pl.DataFrame, rejected: dict[str, pl.DataFrame]) -> list[dict]:
        self.progress.start("sensitivity", None)
        traces, passed = [], set(final["id"].to_list()) if final.height else set()
        for rs in reversed(self.pipeline.stages):  # what passed a stage: kept at the end or rejected later
            traces.append(
                StageTrace(rs, rejected.get(rs.name, pl.DataFrame()), set(passed), self.global_inputs.get(rs.name))
            )
            if rs.name in rejected:
                passed |= set(rejected[rs.name]["id"].to_list())
        result = sensitivity(traces[::-1], final, [f.label for f in self.files], self.context)
        self.progress.finish()
        return result

    def _row_segment(self, executor: Executor, seg: Segment, seg_dir: Path, i: int, previous: list[Path]) -> list[dict]:
        names = [rs.name for rs in seg.stages]
        label = " + ".join(["read", *names] if i == 0 else names) or "read"
        self.progress.start(label, None if i == 0 else _rows_in(previous))
        tasks = self._read_tasks(executor, seg_dir) if i == 0 else self._rebatch(previous)

        def on_done(done: dict) -> None:
            for acc in done["accounts"]:
                self.accounts[acc["stage"]].merge(StageAccount.from_dict(acc))
            self.progress.advance(done["accounts"][0]["rows_in"] if done["accounts"] else 0)

        results = executor.map_batches(seg_dir, names, tasks, profile=(i == 0), on_done=on_done)
        if i == 0:
            _read_done(read_dir(seg_dir), len(results))
        for rs in seg.stages:
            parts = [d["summaries"][rs.name] for d in results if rs.name in d.get("summaries", {})]
            if parts:
                self.summaries[rs.name] = STAGES[rs.stage].merge_summaries(parts)
        self.progress.finish()
        return results

    def _read_tasks(self, executor: Executor, seg_dir: Path) -> Iterator[BatchTask]:
        """The input cut into batches: the workers read the files (`read_units`), this process only
        plans the batches from the ids; once every batch is checkpointed the read parts are removed and
        only the batch count is kept (`_read_done`)."""
        folder = read_dir(seg_dir)
        if (folder / BATCHES).is_file():
            yield from (BatchTask(i) for i in range(read_json(folder / BATCHES)["batches"]))  # all checkpointed
            return
        spec = self.pipeline.spec
        columns = read_columns(self.files)
        units = [ReadUnit(i, f) for i, f in enumerate(self.files)]
        summaries = executor.read_units(units, folder, columns, spec.limits.max_record_bytes)
        for index, source in plan_batches(summaries, spec.batch_size, columns):
            yield BatchTask(index, source=source)

    def _rebatch(self, previous: list[Path]) -> Iterator[BatchTask]:
        rows = RowFiles([kept_file(p) for p in previous])
        for index, pieces in enumerate(rows.batches(self.pipeline.spec.batch_size)):
            yield BatchTask(index, rows=pieces, schema=rows.schema)

    def _global_segment(self, executor: Executor, rs: ResolvedStage, seg_dir: Path, previous: list[Path]) -> Path:
        out = global_dir(seg_dir)
        marker = out / DONE
        if marker.is_file():
            done = read_json(marker)
        else:
            self.progress.start(rs.name, _rows_in(previous))
            done = executor.run_global(rs, self.context, out, [kept_file(p) for p in previous], ARTIFACTS)
            self.progress.advance(done["rows_in"])
            self.progress.finish()
        self.accounts[rs.name].merge(StageAccount.from_dict(done["accounts"][0]))
        if done.get("summary") is not None:
            self.summaries[rs.name] = done["summary"]
        return out


@dataclass(frozen=True)
class _Publication:
    """What a run publishes under: its key, name and output, and the measures of its rows."""

    key: str
    name: str
    out_dir: Location
    started: float  # time.perf_counter() when the run began
    accounts: list[StageAccount]
    lengths_before: list[int]


def _read_done(folder: Path, batches: int) -> None:
    """Every batch of the input is checkpointed: keep the batch count (a resumed run needs no more) and
    remove the read parts."""
    if folder.is_dir() and not (folder / BATCHES).is_file():
        write_json(folder / BATCHES, {"batches": batches})
        for unit in folder.glob("u-*"):
            shutil.rmtree(unit, ignore_errors=True)


def _rows_in(folders: list[Path]) -> int:
    return sum(pl.scan_parquet(kept_file(p)).select(pl.len()).collect().item() for p in folders)


def _rejected(work: Path, accounts: list[StageAccount]) -> dict[str, RowFiles]:
    """Each stage's rejected rows in the checkpoints (stages that rejected any), in read order."""
    out = {}
    for acc in accounts:
        rows = RowFiles(rejected_files(work, acc.stage))
        if rows.height:
            out[acc.stage] = rows
    return out


def _redacted_in_checkpoints(segments: list[Segment]) -> set[str]:
    """The stages (and "read") whose rejected rows the first pii stage redacts in the workers,
    before checkpointing (curate.executor.redacted_before): those before it in its row segment."""
    for i, seg in enumerate(segments):
        at, before = redacted_before([rs.name for rs in seg.stages], [STAGES[rs.stage].redacts for rs in seg.stages])
        if seg.kind == "row" and at is not None:
            return before | ({"read"} if i == 0 else set())
    return set()


def _redaction(pipeline: Pipeline, context: StageContext, stages: list[str], done: set[str]) -> tuple:
    """With a pii stage in the pipeline, rows rejected before it (and the reader's raw previews of
    quarantined lines) are redacted with its rules before they are written: `rejected/` must not
    carry the personal data the pipeline removes. Rows rejected at or after it are redacted already,
    and so are those of `done` (redacted before they were checkpointed). Returns the pii stage (None
    if nothing is left to redact) and which of `stages` it redacts."""
    names = [rs.name for rs in pipeline.stages]
    first = next((i for i, rs in enumerate(pipeline.stages) if STAGES[rs.stage].redacts), None)
    if first is None:
        return None, set()
    before = ({"read", *names[:first]} - done) & set(stages)
    if not before:
        return None, set()
    return build_stages([pipeline.stages[first]], context)[pipeline.stages[first].name], before


def _sidecars(pipeline: Pipeline, final: RowFiles) -> dict[str, list[str]]:
    """Per stage, its columns in `final` that are written under signatures/<stage>/, not in data/."""
    return {rs.name: [c for c in STAGES[rs.stage].sidecar_columns if c in final.columns] for rs in pipeline.stages}


def _sidecar_columns(pipeline: Pipeline, final: RowFiles) -> list[str]:
    return sorted({c for cols in _sidecars(pipeline, final).values() for c in cols})


def _staging(out_dir: Location, work: Path) -> Path:
    """Where the output is assembled: a new folder beside a local output (switched in atomically), or
    work/final for a URL output (uploaded from there)."""
    if isinstance(out_dir, Path):
        return new_staging(out_dir)
    staging = work / "final"  # inside the run's own work folder
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _write_shards(
    pipeline: Pipeline, staging: Path, final: RowFiles, sidecars: dict[str, list[str]], sidecar_cols: list[str]
) -> tuple[list[dict], RowFiles]:
    """data/ (the records) and signatures/<stage>/ (the stages' sidecar columns), a shard at a time;
    the file entries and the records as published (without the sidecar columns)."""
    out = pipeline.spec.output
    published = final.without(sidecar_cols)
    shards = write_parts(published.slices(out.shard_rows), staging / "data", out.compression_level)
    entries = [describe_file(e["path"], staging, e["rows"]) for e in shards]
    for stage_name, cols in sidecars.items():
        if cols:
            parts = write_parts(
                final.slices(out.shard_rows, ["id", *cols]), staging / "signatures" / stage_name, out.compression_level
            )
            entries += [describe_file(e["path"], staging, e["rows"]) for e in parts]
    return entries, published


HEAVY = ("text", "messages", "meta")  # what the report never reads of rejected rows


def _write_rejected(
    run: _Run, staging: Path, rejected: dict[str, RowFiles], sidecar_cols: list[str]
) -> tuple[list[dict], dict[str, pl.DataFrame]]:
    """rejected/<stage>/, redacted where the pii stage had not seen the rows, a shard at a time; the
    entries, and the rows as written without their content (`HEAVY`), for the report. Rows still to
    be redacted (rejected before pii, in another segment than it) are redacted all at once."""
    out = run.pipeline.spec.output
    rejected = {stage: rows.without(sidecar_cols) for stage, rows in rejected.items()}
    redactor, todo = _redaction(run.pipeline, run.context, list(rejected), run.redacted)
    held = {stage: redactor.redact_rows(rejected[stage].collect()) for stage in todo}
    layout = rejected_layout(
        {stage: held[stage].schema if stage in held else rows.schema for stage, rows in rejected.items()},
        list(schema_with(run.record_columns)),
    )
    entries, light = [], {}
    for stage, rows in rejected.items():
        folder = staging / "rejected" / stage
        if stage in held:
            light[stage] = held[stage].drop(HEAVY, strict=False)
            written = write_shards(to_layout(held[stage], layout), folder, out.shard_rows, out.compression_level)
        else:
            light[stage] = rows.without(list(HEAVY)).collect()
            written = write_parts(
                (to_layout(p, layout) for p in rows.slices(out.shard_rows)), folder, out.compression_level
            )
        entries += [describe_file(e["path"], staging, e["rows"]) for e in written]
    return entries, light


def _copy_artifacts(work: Path, staging: Path) -> list[dict]:
    """What global stages wrote under artifacts/<stage>/ (e.g. classify's model)."""
    entries = []
    for folder in sorted(work.glob(f"seg-*/all/{ARTIFACTS}/*")):
        shutil.copytree(folder, staging / ARTIFACTS / folder.name, dirs_exist_ok=True)
        entries += [
            describe_file(f, staging) for f in sorted((staging / ARTIFACTS / folder.name).rglob("*")) if f.is_file()
        ]
    return entries


def _manifest(run: _Run, pub: _Publication, final: RowFiles, entries: list[dict], what_if: list[dict]) -> dict:
    pipeline, accounts = run.pipeline, pub.accounts
    data_files = [e for e in entries if e["path"].startswith("data/")]
    return {
        "format": "curate.manifest/1",
        "name": pub.name,
        "version": short(
            sha256_json({"schema": _schema(final), "files": [[e["path"], e["sha256"]] for e in data_files]})
        ),
        "status": "failed" if failures(run.gate_results) else "ok",
        "run_key": pub.key,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code": {"curate": __version__, "fingerprint": code_fingerprint()},
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "executor": run.executor,
        },
        "pipeline": {
            "name": pipeline.spec.name,
            "path": str(pipeline.path),
            "fingerprint": pipeline.config_fingerprint,
            "seed": pipeline.spec.seed,
            "stages": [
                {
                    "name": rs.name,
                    "stage": rs.stage,
                    "kind": STAGES[rs.stage].kind,
                    "fingerprint": rs.fingerprint,
                    "rules": rs.rules.model_dump(mode="json"),
                    **described,
                    "rules_path": str(rs.rules_path) if rs.rules_path else None,
                    "rules_sha256": sha256_file(rs.rules_path) if rs.rules_path else None,
                }
                for rs, described in zip(pipeline.stages, run.described)
            ],
        },
        "inputs": [{"file": f.label, "path": str(f.path), "sha256": f.fingerprint, "bytes": f.size} for f in run.files],
        "schema": _schema(final),
        "record_columns": [c for c in final.columns if c in schema_with(run.record_columns)],
        "rows": {
            "input": accounts[0].rows_in,
            "kept": final.height,
            "dropped": sum(a.dropped for a in accounts),
            "quarantined": sum(a.quarantined for a in accounts),
        },
        "accounting": [a.to_dict() for a in accounts],
        "stage_summaries": run.summaries,
        "sensitivity": what_if,
        "gates": run.gate_results,
        "seconds": round(time.perf_counter() - pub.started, 3),
        "files": entries,
    }


def _publish(run: _Run, pub: _Publication, final: RowFiles, rejected: dict[str, RowFiles], what_if) -> dict:
    """Write shards, rejected rows, artifacts, report and manifest into a staging folder, then switch it
    in atomically (curate.io.outputs); a URL output is uploaded from work/final, manifest last."""
    staging = _staging(pub.out_dir, run.work)
    sidecars = _sidecars(run.pipeline, final)
    sidecar_cols = _sidecar_columns(run.pipeline, final)
    entries, final = _write_shards(run.pipeline, staging, final, sidecars, sidecar_cols)
    rejected_entries, rejected = _write_rejected(run, staging, rejected, sidecar_cols)
    entries += rejected_entries + _copy_artifacts(run.work, staging)
    manifest = _manifest(run, pub, final, entries, what_if)
    if (run.work / GX_DOCS).is_dir():
        shutil.move(run.work / GX_DOCS, staging / GX_DOCS)  # output.work_dir may be on another filesystem
    report = build_report(manifest, final, rejected, pub.lengths_before, has_gx_docs=(staging / GX_DOCS).is_dir())
    write_json(staging / "report.json", report, sort_keys=False)
    write_html(report, staging / "report.html")
    write_json(staging / MANIFEST, manifest)
    if isinstance(pub.out_dir, Path):
        switch(staging, pub.out_dir)
    else:
        publish_tree(staging, pub.out_dir, PUBLISHED, MANIFEST)
    return manifest


def _schema(df: pl.DataFrame | RowFiles) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in df.schema.items()}
