"""Parsing one file's bytes into rows: JSON, JSONL/NDJSON (plain, gzip, zstd), Parquet, and web crawls
(WARC, WET, ARC: curate.io.crawl).

Bounded by design: a line over the record limit is skipped in chunks and reported, a cut-off
compressed file ends with a `Truncated` marker, malformed JSON and invalid UTF-8 become
`RecordError`s. Runs quarantine these (curate.io.readers); a reference file a stage's rules
name (a seed or eval set, `read_reference`) fails with the file and row instead.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol

import orjson
import pyarrow.parquet as pq

try:  # the standard library's from Python 3.14
    from compression.zstd import ZstdError, ZstdFile
except ImportError:
    from backports.zstd import ZstdError, ZstdFile

from curate.errors import ConfigError, InputError
from curate.io.crawl import CRAWL_SUFFIXES, crawl_rows, is_crawl
from curate.io.rows import BLANK_LINE, RAW_PREVIEW_CHARS, Skipped, Truncated
from curate.io.shards import open_at
from curate.records import RecordError

REFERENCE_MAX_BYTES = 64 << 20  # one row of a seed or eval set
SUPPORTED = (
    ".jsonl",
    ".ndjson",
    ".json",
    ".jsonl.gz",
    ".ndjson.gz",
    ".jsonl.zst",
    ".ndjson.zst",
    ".parquet",
    *CRAWL_SUFFIXES,
)


def is_supported(path: Path | str) -> bool:
    return PurePosixPath(path).name.endswith(SUPPORTED)


class Readable(Protocol):
    """A file to parse: an input (curate.io.sources.InputFile) or a local reference file."""

    path: Path | str
    record_columns: tuple[str, ...] | None

    @property
    def name(self) -> str: ...

    def open(self) -> BinaryIO: ...


@dataclass(frozen=True)
class LocalFile:
    path: Path
    record_columns: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    def open(self) -> BinaryIO:
        return open_at(self.path)


_SKIP_CHUNK = 1 << 20  # bytes read at a time while skipping the rest of an oversize line
BOM = b"\xef\xbb\xbf"


@dataclass
class Oversize:
    preview: bytes
    size: int


def _lines(stream: io.BufferedIOBase, max_bytes: int) -> Iterator[bytes | Oversize | Truncated]:
    """Lines read with a limit: a line over `max_bytes` is skipped in bounded chunks and reported
    with its size and a preview, so memory stays within the limit whatever the file (or a
    decompression bomb) holds. A UTF-8 byte order mark at the start of the file is dropped."""
    first = True
    try:
        while line := stream.readline(max_bytes + 1):
            if first:
                line, first = line.removeprefix(BOM), False
            if len(line) <= max_bytes:
                yield line
                continue
            preview, size, tail = line[:RAW_PREVIEW_CHARS], len(line), line
            del line
            while not tail.endswith(b"\n") and (tail := stream.readline(_SKIP_CHUNK)):
                size += len(tail)
            yield Oversize(preview, size)
    except (EOFError, zlib.error, gzip.BadGzipFile, ZstdError, OSError) as exc:
        yield Truncated(f"file is truncated or corrupt after the last complete line: {exc}")


def _open_lines(src: Readable, max_bytes: int) -> Iterator[bytes | Oversize | Truncated]:
    name = src.name
    try:
        fh = src.open()
    except OSError as exc:
        raise InputError(f"cannot open input {src.path}: {exc.strerror or exc}") from None
    with fh:
        if name.endswith(".gz"):
            yield from _lines(gzip.GzipFile(fileobj=fh), max_bytes)
        elif name.endswith(".zst"):
            # ZstdFile reads every frame, bounded by the read size, and raises EOFError on a cut-off one.
            yield from _lines(ZstdFile(fh), max_bytes)
        else:
            yield from _lines(
                fh if isinstance(fh, (io.BufferedReader, io.BytesIO)) else io.BufferedReader(_Raw(fh)), max_bytes
            )


class _Raw(io.RawIOBase):
    """A raw stream over any file object's `read(n)`: fsspec's remote files (s3, gcs, http) have a
    `readline()` without a size limit, so plain inputs from URLs are read through a BufferedReader."""

    def __init__(self, fh):
        self.fh = fh

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.fh.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def parse_rows(src: Readable, max_bytes: int) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (row number, parsed object or RecordError/Truncated, raw text for the audit)."""
    name = src.name
    if is_crawl(name):
        yield from crawl_rows(src, max_bytes)
        return
    if name.endswith(".parquet"):
        try:
            with src.open() as fh:
                table = pq.read_table(fh, columns=list(src.record_columns) if src.record_columns else None)
        except Exception as exc:  # pyarrow raises many types for damaged files
            raise InputError(f"cannot read parquet input {src.path}: {exc}") from None
        for row, obj in enumerate(table.to_pylist(), start=1):
            yield row, obj, None
        return
    if name.endswith(".json"):
        try:
            with src.open() as fh:
                data = orjson.loads(fh.read().removeprefix(BOM))
        except orjson.JSONDecodeError as exc:
            yield 1, RecordError("malformed_json", f"file is not valid JSON: {exc}"), None
            return
        for row, obj in enumerate(data if isinstance(data, list) else [data], start=1):
            yield row, obj, None
        return
    row = 0
    for item in _open_lines(src, max_bytes):
        if isinstance(item, Truncated):
            yield row + 1, item, None
            return
        row += 1
        if isinstance(item, Oversize):
            preview = item.preview.decode("utf-8", errors="replace")
            yield (
                row,
                RecordError(
                    "record_too_large", f"record is {item.size:,} bytes, above limits.max_record_bytes={max_bytes:,}"
                ),
                preview,
            )
            continue
        if not item.strip():
            yield row, BLANK_LINE, None  # blank separator lines are not records: counted, not quarantined
            continue
        try:
            text = item.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield (
                row,
                RecordError("invalid_utf8", f"invalid UTF-8 at byte {exc.start}"),
                item.decode("utf-8", errors="replace"),
            )
            continue
        try:
            yield row, orjson.loads(text), text
        except orjson.JSONDecodeError as exc:
            yield row, RecordError("malformed_json", f"malformed JSON: {exc}"), text


def iter_objects(src: Readable, max_bytes: int) -> Iterator[Any]:
    """Each row of one file parsed (any JSON value), or a RecordError saying why it cannot be read;
    blank lines are skipped. For a look at a sample (`curate init`); runs use read_batches."""
    for _row, obj, _ in parse_rows(src, max_bytes):
        if isinstance(obj, Skipped):
            continue
        if isinstance(obj, Truncated):
            yield RecordError("truncated_file", obj.reason)
            return
        yield obj


def read_reference(path: Path, where: str, max_bytes: int = REFERENCE_MAX_BYTES) -> list[Any]:
    """Every row of a small reference file a stage's rules name (a seed set, an eval set), in any format
    curate reads. Unlike an input's, a bad row is a configuration error naming the file and the row:
    there is nowhere to quarantine it."""
    if not path.is_file():
        raise ConfigError(f"{where}: file not found: {path} (a relative path is taken from the pipeline's folder)")
    if not is_supported(path):
        raise ConfigError(f"{where}: {path} is not a format curate reads (one of: {', '.join(SUPPORTED)})")
    objects = []
    for row, obj, _ in parse_rows(LocalFile(path), max_bytes):
        if isinstance(obj, (RecordError, Truncated)):
            raise ConfigError(f"{where}: {path} row {row}: {obj.reason}")
        if not isinstance(obj, Skipped):
            objects.append(obj)
    return objects
