"""Pipeline configuration: YAML validated by pydantic, resolved before any data is read.

Paths inside a pipeline file (rules files, input paths, the output dir) are resolved
relative to the pipeline file, so a pipeline means the same thing from any directory.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from curate.errors import ConfigError
from curate.hashing import sha256_json
from curate.sandbox import DEFAULT_RECORD_SECONDS
from curate.schema import StrictModel, config_path, load_rules, load_yaml, parse_model
from curate.stages.base import Stage, StageContext


class DemoInput(StrictModel):
    """The embedded demo corpus, generated deterministically on first use."""

    records: int = Field(20_000, gt=0)
    seed: int = 13


class InputSpec(StrictModel):
    path: str | None = None
    demo: DemoInput | None = None
    format: Literal["auto", "text", "chat", "sharegpt", "alpaca", "prompt_completion", "question_answer"] = "auto"
    fields: dict[str, str] = Field(default_factory=dict)
    columns: list[str] = Field(default_factory=list)
    source: str | None = None

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        from curate.records import MAPPABLE_FIELDS

        unknown = sorted(set(value) - set(MAPPABLE_FIELDS))
        if unknown:
            raise ValueError(
                f"cannot map {unknown}: the keys of 'fields' are record fields, one of {', '.join(MAPPABLE_FIELDS)}"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "InputSpec":
        if (self.path is None) == (self.demo is None):
            raise ValueError("give exactly one of 'path' (file, glob, directory or shards://name@version) or 'demo'")
        return self


class OutputSpec(StrictModel):
    dir: str | None = None  # a local path, or a URL (s3://bucket/shards/name) fsspec can write to
    # Checkpoints while a run is under way: <dir>/_work for a local dir, $CURATE_HOME/work/... for a
    # URL one. Under Ray on several nodes: storage every node mounts.
    work_dir: str | None = None
    shard_rows: int = Field(50_000, gt=0)
    compression_level: int = Field(3, ge=1, le=22)


class Limits(StrictModel):
    max_record_bytes: int = Field(2_000_000, gt=0)
    # how long one record may take in a per-record step (extract, pii): a record over it is quarantined
    record_seconds: float = Field(DEFAULT_RECORD_SECONDS, gt=0)


class StageSpec(StrictModel):
    stage: str
    name: str | None = None
    rules: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class GateSpec(StrictModel):
    rules: str  # a rules/gates/*.yaml file
    after: str = "final"  # a stage name: check what that stage passed on; "final": the published shards


class RaySpec(StrictModel):
    """Where `executor: ray` runs. Not part of the cache key: both executors give the same shards."""

    # "local": start a Ray instance on this machine; "auto": join the cluster this machine is part
    # of (`ray start`); "ray://host:10001": connect with Ray Client.
    address: str = "local"
    # Passed to ray.init when curate starts or joins the cluster (e.g. {"working_dir": "."} or pip
    # packages); workers must run the same curate as the driver, and a run checks that they do.
    runtime_env: dict[str, Any] = Field(default_factory=dict)


class PipelineSpec(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seed: int = 0
    inputs: list[InputSpec] = Field(min_length=1)
    output: OutputSpec = Field(default_factory=OutputSpec)
    limits: Limits = Field(default_factory=Limits)
    batch_size: int = Field(2_000, gt=0)
    workers: int | Literal["auto"] = "auto"
    # local: processes on this machine; ray: a Ray cluster (see `ray`). Same shards either way.
    executor: Literal["local", "ray"] = "local"
    ray: RaySpec = Field(default_factory=RaySpec)
    # Replay each selection criterion relaxed (curate.sensitivity) and report what it removes.
    sensitivity: bool = True
    stages: list[StageSpec] = Field(default_factory=list)
    # Great Expectations gates (curate.gates); a failed `fail` check marks the run failed.
    gates: list[GateSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class ResolvedStage:
    name: str
    stage: str
    rules: BaseModel
    rules_path: Path | None
    # Where the stage's relative paths (seed sets, eval sets) start: its rules file's folder, and the
    # pipeline's for the top-level keys `params:` set (or for everything, without a rules file).
    base_dir: Path = Path(".")
    params_dir: Path | None = None
    param_keys: frozenset[str] = frozenset()

    def context(self, context: StageContext) -> StageContext:
        """The run's context with this stage's folders for relative paths."""
        return context.with_(base_dir=self.base_dir, params_dir=self.params_dir, param_keys=self.param_keys)

    def build(self, context: StageContext, rules: BaseModel | None = None) -> Stage:
        """The stage, with the run's context and its own folders for relative paths (not set up)."""
        from curate.stages.registry import STAGES

        return STAGES[self.stage](self.name, rules or self.rules, self.context(context))

    def describe(self, context: StageContext) -> dict:
        from curate.stages.registry import STAGES

        return STAGES[self.stage].describe(self.rules, self.context(context))

    @property
    def fingerprint(self) -> str:
        return sha256_json({"stage": self.stage, "name": self.name, "rules": self.rules.model_dump(mode="json")})


@dataclass(frozen=True)
class Pipeline:
    spec: PipelineSpec
    path: Path
    stages: tuple[ResolvedStage, ...]
    gates: tuple = ()  # curate.gates.ResolvedGate, in pipeline order

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, value: str) -> Path:
        return config_path(value, self.base_dir)

    def stage_context(self, catalog=None) -> StageContext:
        """What this pipeline's stages are built with: its seed, its folder, the run's catalog."""
        return StageContext(
            seed=self.spec.seed,
            base_dir=self.base_dir,
            catalog=catalog,
            record_seconds=self.spec.limits.record_seconds,
        )

    @property
    def config_fingerprint(self) -> str:
        spec = self.spec.model_dump(
            mode="json",
            exclude={
                "output": {"dir", "work_dir"},
                "workers": True,
                "description": True,
                "executor": True,
                "ray": True,
            },
        )
        spec["stages"] = [s.fingerprint for s in self.stages]
        spec["gates"] = [[g.point, g.rules.model_dump(mode="json")] for g in self.gates]
        return sha256_json(spec)


def _resolve_stage(index: int, spec: StageSpec, pipeline_path: Path) -> ResolvedStage:
    from curate.stages.registry import STAGES

    where = f"{pipeline_path}: stages[{index}]"
    if spec.stage not in STAGES:
        close = difflib.get_close_matches(spec.stage, STAGES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"{where}.stage: unknown stage '{spec.stage}'{hint}; expected one of: {', '.join(sorted(STAGES))}"
        )
    stage_cls = STAGES[spec.stage]
    rules_path: Path | None = None
    data: dict[str, Any] = {}
    if spec.rules is not None:
        rules_path = config_path(spec.rules, pipeline_path.parent)
        if not rules_path.is_file():
            raise ConfigError(f"{where}.rules: rules file not found: {rules_path}")
        data = load_rules(rules_path, "rules")
    # Inline params override the rules file key by key; both are validated as one model.
    merged = {**data, **spec.params}
    source = rules_path if rules_path and not spec.params else pipeline_path
    prefix = "" if source == rules_path else f"stages[{index}].params"
    rules = parse_model(stage_cls.Rules, merged, source, prefix)
    folders = {"base_dir": rules_path.parent if rules_path else pipeline_path.parent}
    folders |= {"params_dir": pipeline_path.parent, "param_keys": frozenset(spec.params)}
    return ResolvedStage(spec.name or spec.stage, spec.stage, rules, rules_path, **folders)


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and fully validate a pipeline, including every rules file it references."""
    path = Path(path)
    spec = parse_model(PipelineSpec, load_yaml(path, "pipeline"), path)
    assert isinstance(spec, PipelineSpec)
    stages = tuple(_resolve_stage(i, s, path) for i, s in enumerate(spec.stages))
    names = [s.name for s in stages]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(
            f"{path}: stages: stage names must be unique, repeated: {', '.join(dupes)} (set 'name:' to tell them apart)"
        )
    _check_columns(spec, stages, path)
    for index, stage in enumerate(stages):
        check_referenced_files(index, stage, path)
    return Pipeline(spec=spec, path=path, stages=stages, gates=_resolve_gates(spec, stages, path))


def referenced_files(stage: ResolvedStage) -> list[tuple[str, str, Path]]:
    """The files a stage's rules name (seed sets, eval sets, block and allow lists: each `path:` inside
    its rules), as (key path in the rules, the path as written, where it resolves, as the stage will
    resolve it). shards:// references are the catalog's, not files."""
    context = stage.context(StageContext())
    found: list[tuple[str, str, Path]] = []

    def walk(value: Any, where: str, key: str) -> None:
        if isinstance(value, BaseModel):
            fields = type(value).model_fields
            path = getattr(value, "path", None) if "path" in fields else None
            if isinstance(path, str) and not path.startswith("shards://"):
                found.append((f"{where}.path", path, context.path(path, key)))
            for name in fields:
                walk(getattr(value, name), f"{where}.{name}", key)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]", key)
        elif isinstance(value, dict):
            for k, item in value.items():
                walk(item, f"{where}.{k}", key)

    for key in type(stage.rules).model_fields:
        walk(getattr(stage.rules, key), key, key)
    return found


def unreadable(path: Path) -> str | None:
    """Why a file cannot be read (None: it can): missing, not a file, or not readable by this process."""
    if not path.exists():
        return "file not found"
    if not path.is_file():
        return "not a file"
    if not os.access(path, os.R_OK):
        return "not readable (permission denied)"
    try:
        open(path, "rb").close()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None


def check_referenced_files(index: int, stage: ResolvedStage, pipeline_path: Path) -> None:
    """Every file the stage's rules name exists and can be read, before any work (not when the stage
    starts, after every row stage ran). The error names the file the key is written in, the stage,
    the key and the path."""
    for where, written, path in referenced_files(stage):
        problem = unreadable(path)
        if problem:
            key = where.split(".")[0].split("[")[0]
            source = stage.rules_path if stage.rules_path and key not in stage.param_keys else pipeline_path
            relative = not Path(written).expanduser().is_absolute()
            raise ConfigError(
                f"{source}: stages[{index}] ({stage.name}): {where}: {problem}: {path}"
                + (f" ({written!r}, relative to {source.name}'s folder)" if relative else "")
            )


def _check_columns(spec: PipelineSpec, stages: tuple[ResolvedStage, ...], path: Path) -> None:
    """Each stage's required columns come from the record schema, an input's `columns:` or an earlier
    stage: found now, not after minutes of work. Published shards (shards://) carry the columns of the
    run that made them, known only once read, so a pipeline reading them is checked by its stages."""
    from curate.io.crawl import CRAWL_COLUMNS
    from curate.records import BASE_SCHEMA
    from curate.stages.registry import STAGES

    if any(i.path and i.path.startswith("shards://") for i in spec.inputs):
        return
    available = {*BASE_SCHEMA, *(c for i in spec.inputs for c in i.columns)}
    crawls: bool | None = None  # looked for only when a stage needs a crawl column (a folder is listed)
    for index, rs in enumerate(stages):
        cls = STAGES[rs.stage]
        missing = [c for c in cls.requires(rs.rules) if c not in available]
        if missing and set(missing) <= set(CRAWL_COLUMNS):
            if crawls is None:
                crawls = any(_may_hold_crawls(i.path, path.parent) for i in spec.inputs if i.path)
            if crawls:
                available.update(CRAWL_COLUMNS)
                missing = []
        if missing:
            raise ConfigError(
                f"{path}: stages[{index}] ({rs.name}): needs columns {missing}, which neither the record schema, "
                f"an input's `columns:` nor an earlier stage provides (available: {', '.join(sorted(available))})"
            )
        available.update(cls.produces(rs.rules))


def _may_hold_crawls(value: str, base: Path) -> bool:
    """Whether an input names WARC/WET/ARC files, whose records have the crawl columns: a crawl file or
    glob (`crawl/*.warc.gz`, also at a URL), or a local folder that holds one."""
    from curate.io.crawl import is_crawl

    if is_crawl(value):
        return True
    if "://" in value:  # a URL folder is not listed while loading
        return False
    folder = Path(value) if Path(value).is_absolute() else base / value
    return folder.is_dir() and any(is_crawl(p.name) for p in folder.rglob("*") if p.is_file())


def _resolve_gates(spec: PipelineSpec, stages: tuple[ResolvedStage, ...], path: Path) -> tuple:
    from curate.gates.rules import GateRules
    from curate.gates.runner import FINAL, ResolvedGate, stages_upto

    names = [s.name for s in stages]
    out = []
    for i, g in enumerate(spec.gates):
        where = f"{path}: gates[{i}]"
        if g.after != FINAL and g.after not in names:
            close = difflib.get_close_matches(g.after, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"{where}.after: no stage named '{g.after}'{hint}; expected 'final' or one of: {', '.join(names)}"
            )
        rules_path = config_path(g.rules, path.parent)
        if not rules_path.is_file():
            raise ConfigError(f"{where}.rules: rules file not found: {rules_path}")
        rules = parse_model(GateRules, load_rules(rules_path, "gate rules"), rules_path)
        pii = [s for s in stages_upto(stages, g.after) if s.stage == "pii"]
        for j, r in enumerate(rules.expectations):
            if r.pii_residual is not None and not any(s.rules.residual_sample > 0 for s in pii):
                raise ConfigError(
                    f"{rules_path}: expectations[{j}].pii_residual: needs a pii stage with "
                    f"residual_sample > 0 before the gate point '{g.after}'"
                )
        out.append(ResolvedGate(point=g.after, rules=rules, rules_path=rules_path))
    return tuple(out)
