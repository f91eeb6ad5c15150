"""Turning pipeline inputs (paths, globs, directories, shards://, demo) into concrete files."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from curate.config import InputSpec, Pipeline
from curate.errors import InputError
from curate.hashing import sha256_file
from curate.records import BASE_SCHEMA

SUPPORTED = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".jsonl.zst", ".ndjson.zst", ".parquet")


@dataclass(frozen=True)
class InputFile:
    path: Path
    label: str  # how the file is named in src_file columns and reports
    fingerprint: str
    spec: InputSpec
    record_columns: tuple[str, ...] | None = None  # read only these (curated shards carry annotations too)


def is_supported(path: Path) -> bool:
    return path.name.endswith(SUPPORTED)


def _shard_files(spec: InputSpec) -> list[InputFile]:
    """A catalog reference: its data files, reading back the record columns, not the annotations."""
    from curate.catalog import Catalog

    entry = Catalog().resolve(spec.path or "")
    manifest = entry.manifest()
    record_columns = tuple(manifest["record_columns"])
    promoted = [c for c in record_columns if c not in BASE_SCHEMA and c not in spec.columns]
    spec = spec.model_copy(update={"columns": [*spec.columns, *promoted]})
    hashes = {f["path"]: f["sha256"] for f in manifest["files"]}
    return [InputFile(path=p, label=f"{entry.ref}/{p.name}", fingerprint=hashes[p.relative_to(entry.path).as_posix()],
                      spec=spec, record_columns=tuple(c for c in record_columns if c not in ("src_file", "src_row")))
            for p in entry.data_files()]


def _expand(spec: InputSpec, pipeline: Pipeline, where: str) -> list[Path]:
    assert spec.path is not None
    target = pipeline.resolve(spec.path)
    if glob.has_magic(str(target)):
        files = sorted(Path(p) for p in glob.glob(str(target), recursive=True) if Path(p).is_file())
        if not files:
            raise InputError(f"{where}: no file matches {target}")
    elif target.is_dir():
        files = sorted(p for p in target.rglob("*") if p.is_file() and is_supported(p))
        if not files:
            raise InputError(f"{where}: directory {target} holds no input file ({', '.join(SUPPORTED)})")
    elif target.exists():
        files = [target]
    else:
        raise InputError(f"{where}: input file not found: {target}")
    for f in files:
        if not is_supported(f):
            raise InputError(f"{where}: unsupported input format: {f} (expected one of {', '.join(SUPPORTED)})")
    return files


def resolve_inputs(pipeline: Pipeline, overrides: list[str] | None = None) -> list[InputFile]:
    """Concrete input files in a stable order, each with a content fingerprint."""
    specs = list(pipeline.spec.inputs)
    if overrides:
        # --input replaces the pipeline's inputs but keeps the first input's mapping options.
        template = specs[0].model_dump(exclude={"path", "demo"})
        specs = [InputSpec(path=str(Path(p).resolve()), **template) for p in overrides]
    files: list[InputFile] = []
    for i, spec in enumerate(specs):
        where = f"{pipeline.path}: inputs[{i}]"
        if spec.path and spec.path.startswith("shards://"):
            files += _shard_files(spec)
            continue
        if spec.demo is not None:
            from curate.demo.generator import ensure_demo_corpus

            paths = ensure_demo_corpus(spec.demo.records, spec.demo.seed)
        else:
            paths = _expand(spec, pipeline, where)
        for p in paths:
            try:
                digest = sha256_file(p)
            except OSError as exc:
                raise InputError(f"{where}: cannot read {p}: {exc.strerror}") from None
            files.append(InputFile(path=p, label=_label(p, spec), fingerprint=digest, spec=spec))
    return files


def _label(path: Path, spec: InputSpec) -> str:
    """Stable, location-independent name for lineage columns (keeps shards byte-identical)."""
    return f"demo/{path.name}" if spec.demo is not None else path.name
