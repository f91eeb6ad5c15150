"""Turning pipeline inputs (paths, globs, directories, URLs, shards://, demo) into concrete files.

A URL input (`s3://bucket/corpus/*.jsonl.zst`, `gs://...`, `https://...`, anything fsspec
knows) is listed and read through fsspec; remote filesystems need their package
(s3fs, gcsfs, ...), and an error says which.
"""

from __future__ import annotations

import glob
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from curate.config import InputSpec, Pipeline, unreadable
from curate.errors import CurateError, InputError
from curate.io.crawl import CRAWL_COLUMNS, is_crawl
from curate.io.parse import SUPPORTED, is_supported
from curate.io.shards import file_sha256, file_size, filesystem, join, open_at
from curate.records import BASE_SCHEMA


@dataclass(frozen=True)
class InputFile:
    path: Path | str  # a local path, or an fsspec URL
    label: str  # how the file is named in src_file columns and reports
    fingerprint: str
    spec: InputSpec
    record_columns: tuple[str, ...] | None = None  # read only these (curated shards carry annotations too)

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name if isinstance(self.path, str) else self.path.name

    def open(self) -> BinaryIO:
        return open_at(self.path)

    @property
    def size(self) -> int:
        return file_size(self.path)


def is_url(value: str) -> bool:
    return "://" in value and not value.startswith("shards://")


def _filesystem(url: str, where: str):
    try:
        return filesystem(url)
    except CurateError as exc:
        raise InputError(f"{where}: {exc}") from None


def _shard_files(spec: InputSpec) -> list[InputFile]:
    """A catalog reference: its data files, reading back the record columns, not the annotations."""
    from curate.catalog import Catalog

    entry = Catalog().resolve(spec.path or "")
    manifest = entry.manifest()
    record_columns = tuple(manifest["record_columns"])
    promoted = [c for c in record_columns if c not in BASE_SCHEMA and c not in spec.columns]
    spec = spec.model_copy(update={"columns": [*spec.columns, *promoted]})
    sha256 = {str(join(entry.path, f["path"])): f["sha256"] for f in manifest["files"]}
    return [
        InputFile(
            path=p,
            label=f"{entry.ref}/{PurePosixPath(p).name}",
            fingerprint=sha256[str(p)],
            spec=spec,
            record_columns=tuple(c for c in record_columns if c not in ("src_file", "src_row")),
        )
        for p in entry.data_files()
    ]


def _expand(spec: InputSpec, pipeline: Pipeline, where: str) -> list[Path] | list[str]:
    """The input files a path or URL names (a file, a glob, or a directory searched recursively), sorted;
    hidden files (.name) are skipped. Local paths come back as Paths, remote ones as URLs."""
    assert spec.path is not None
    local = not is_url(spec.path)
    shown = str(pipeline.resolve(spec.path)) if local else spec.path
    fs, root = _filesystem(shown, where)
    if glob.has_magic(root):
        found = sorted(p for p in fs.glob(root) if fs.isfile(p) and not _hidden(p))
        if not found:
            raise InputError(f"{where}: no file matches {shown}")
    elif fs.isdir(root):
        found = sorted(p for p in fs.find(root) if is_supported(p) and not _hidden(p))
        if not found:
            raise InputError(f"{where}: directory {shown} holds no input file ({', '.join(SUPPORTED)})")
    elif fs.exists(root):
        found = [root]
    else:
        raise InputError(f"{where}: input file not found: {shown}")
    for f in found:
        if not is_supported(f):
            raise InputError(f"{where}: unsupported input format: {f} (expected one of {', '.join(SUPPORTED)})")
    return [Path(f) for f in found] if local else [fs.unstrip_protocol(f) for f in found]


def _hidden(path: str) -> bool:
    return PurePosixPath(path).name.startswith(".")


def _specs(pipeline: Pipeline, overrides: list[str] | None) -> list[InputSpec]:
    specs = list(pipeline.spec.inputs)
    if overrides:
        # --input replaces the pipeline's inputs but keeps the first input's mapping options.
        template = specs[0].model_dump(exclude={"path", "demo"})
        specs = [InputSpec(path=p if is_url(p) else str(Path(p).resolve()), **template) for p in overrides]
    return specs


def input_folders(pipeline: Pipeline, overrides: list[str] | None = None) -> list[Path]:
    """The local folders inputs are searched in: a directory input, and a glob's folder before its
    first wildcard. An output folder inside one would be read back by the next run."""
    folders = []
    for spec in _specs(pipeline, overrides):
        if spec.path is None or spec.path.startswith("shards://") or is_url(spec.path):
            continue
        path = pipeline.resolve(spec.path)
        if glob.has_magic(str(path)):
            parts = path.parts
            path = Path(*parts[: next(i for i, part in enumerate(parts) if glob.has_magic(part))])
        if path.is_dir():
            folders.append(path)
    return folders


def name_from_inputs(inputs: list[str]) -> str:
    """The catalog name for `--input` without `--name`: the first input's file or folder name without
    its format suffixes (`data/gsm8k_train.jsonl.gz` -> `gsm8k_train`), a glob's folder, a
    reference's name."""
    first = inputs[0]
    if first.startswith("shards://"):
        stem = first.removeprefix("shards://").split("@")[0]
    else:
        parts = [p for p in PurePosixPath(first.replace("\\", "/")).parts if p not in ("/", ".", "..")]
        plain = [p for p in parts if not glob.has_magic(p)]
        stem = parts[-1] if parts and not glob.has_magic(parts[-1]) else (plain[-1] if plain else "input")
        for suffix in sorted(SUPPORTED, key=len, reverse=True):
            if stem.endswith(suffix) and len(stem) > len(suffix):
                stem = stem[: -len(suffix)]
                break
    # accents folded (dữ_liệu -> du_lieu), then what a catalog name cannot hold becomes "-"
    folded = unicodedata.normalize("NFKD", stem.replace("đ", "d").replace("Đ", "D")).encode("ascii", "ignore").decode()
    name = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.-]+", "-", folded)).lstrip("._-")[:128].rstrip(".-")
    return name or "input"


def resolve_inputs(pipeline: Pipeline, overrides: list[str] | None = None) -> list[InputFile]:
    """Concrete input files in a stable order, each with a content fingerprint."""
    files: list[InputFile] = []
    for i, spec in enumerate(_specs(pipeline, overrides)):
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
            _check_name(p, where)
            try:
                digest = file_sha256(p)
            except OSError as exc:
                raise InputError(f"{where}: cannot read {p}: {exc.strerror or exc}") from None
            files.append(InputFile(path=p, label=_label(p, spec), fingerprint=digest, spec=_for_file(spec, p)))
    return files


def _for_file(spec: InputSpec, path: Path | str) -> InputSpec:
    """A crawl file's records carry its URL and crawl columns whatever the input lists."""
    if not is_crawl(PurePosixPath(path).name):
        return spec
    return spec.model_copy(update={"columns": list(dict.fromkeys([*spec.columns, *CRAWL_COLUMNS]))})


def _check_name(path: Path | str, where: str) -> None:
    """File names end up in src_file columns, manifests and reports, which are UTF-8."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", errors="backslashreplace")
        raise InputError(
            f"{where}: the file name {shown} is not valid UTF-8; rename it (e.g. with `convmv`) "
            "or move it out of the input folder"
        ) from None


def _label(path: Path | str, spec: InputSpec) -> str:
    """Stable, location-independent name for lineage columns (keeps shards byte-identical)."""
    name = PurePosixPath(path).name
    return f"demo/{name}" if spec.demo is not None else name


def check_inputs(pipeline: Pipeline) -> None:
    """Every input can be read: a local file, glob or folder names existing, readable input files, and a
    shards:// reference resolves in the catalog. URL inputs are not listed (that would go over the
    network); a run checks those while resolving its inputs. For `curate validate`."""
    from curate.catalog import Catalog

    for i, spec in enumerate(pipeline.spec.inputs):
        where = f"{pipeline.path}: inputs[{i}]"
        if spec.path is None or is_url(spec.path):
            continue
        if spec.path.startswith("shards://"):
            try:
                Catalog().resolve(spec.path)
            except CurateError as exc:
                raise type(exc)(f"{where}: {exc}") from None
            continue
        for path in _expand(spec, pipeline, where):
            problem = unreadable(Path(path))
            if problem:
                raise InputError(f"{where}: input {problem}: {path}")
