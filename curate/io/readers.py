"""Reading input files into record batches; every bad row is quarantined with its location.

Nothing here raises on bad data: malformed JSON, invalid UTF-8, empty or oversize
records, missing fields, wrong types, duplicate ids and truncated compressed files
all become quarantine rows carrying the file, the row number and the reason.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl
import pyarrow.parquet as pq

try:  # the standard library's from Python 3.14
    from compression.zstd import ZstdError, ZstdFile
except ImportError:
    from backports.zstd import ZstdError, ZstdFile

from curate.decisions import REJECTED_LEAD
from curate.errors import InputError
from curate.io.sources import InputFile
from curate.records import RecordError, derived_id, schema_with, to_record

RAW_PREVIEW_CHARS = 2_000
# a row the reader quarantines: where it came from, a preview of its bytes, and the decision
REJECT_READ_SCHEMA = {
    "id": pl.Utf8,
    "src_file": pl.Utf8,
    "src_row": pl.Int64,
    "raw": pl.Utf8,
    **dict.fromkeys(REJECTED_LEAD, pl.Utf8),
}


@dataclass
class _Truncated:
    reason: str


@dataclass
class ReadBatch:
    index: int
    records: pl.DataFrame
    quarantined: pl.DataFrame
    rows_in: int
    blank_lines: int = 0  # skipped, not records; counted in the read stage's `skipped`


@dataclass
class _Builder:
    schema: dict[str, pl.DataType]
    max_bytes: int
    records: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    rows_in: int = 0
    blank_lines: int = 0

    def reject(
        self, src: InputFile, row: int, raw: str | None, rule: str, reason: str, rec_id: str | None = None
    ) -> None:
        self.rejects.append(
            {
                "id": rec_id,
                "src_file": src.label,
                "src_row": row,
                "raw": raw[:RAW_PREVIEW_CHARS] if raw is not None else None,
                "stage": "read",
                "rule": rule,
                "reason": reason,
                "action": "quarantine",
            }
        )

    def flush(self, index: int) -> ReadBatch:
        batch = ReadBatch(
            index=index,
            records=pl.DataFrame(self.records, schema=self.schema, orient="row")
            if self.records
            else pl.DataFrame(schema=self.schema),
            quarantined=pl.DataFrame(self.rejects, schema=REJECT_READ_SCHEMA, orient="row")
            if self.rejects
            else pl.DataFrame(schema=REJECT_READ_SCHEMA),
            rows_in=self.rows_in,
            blank_lines=self.blank_lines,
        )
        self.records, self.rejects, self.rows_in, self.blank_lines = [], [], 0, 0
        return batch


_SKIP_CHUNK = 1 << 20  # bytes read at a time while skipping the rest of an oversize line
BOM = b"\xef\xbb\xbf"


@dataclass
class _Oversize:
    preview: bytes
    size: int


@dataclass
class _Blank:
    pass


def _lines(stream: io.BufferedIOBase, max_bytes: int) -> Iterator[bytes | _Oversize | _Truncated]:
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
            yield _Oversize(preview, size)
    except (EOFError, zlib.error, gzip.BadGzipFile, ZstdError, OSError) as exc:
        yield _Truncated(f"file is truncated or corrupt after the last complete line: {exc}")


def _open_lines(src: InputFile, max_bytes: int) -> Iterator[bytes | _Oversize | _Truncated]:
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


def _iter_objects(src: InputFile, max_bytes: int) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (row number, parsed object or RecordError/_Truncated, raw text for the audit)."""
    name = src.name
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
        if isinstance(item, _Truncated):
            yield row + 1, item, None
            return
        row += 1
        if isinstance(item, _Oversize):
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
            yield row, _Blank(), None  # blank separator lines are not records: counted, not quarantined
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


def iter_objects(src: InputFile, max_bytes: int) -> Iterator[Any]:
    """Each row of one file parsed (any JSON value), or a RecordError saying why it cannot be read;
    blank lines are skipped. For a look at a sample (`curate init`); runs use read_batches."""
    for _row, obj, _ in _iter_objects(src, max_bytes):
        if isinstance(obj, _Blank):
            continue
        if isinstance(obj, _Truncated):
            yield RecordError("truncated_file", obj.reason)
            return
        yield obj


def read_batches(files: list[InputFile], batch_size: int, max_record_bytes: int) -> Iterator[ReadBatch]:
    """Deterministic batches of `batch_size` input rows (kept + quarantined) across all files."""
    columns = sorted({c for f in files for c in f.spec.columns})
    builder = _Builder(schema_with(columns), max_record_bytes)
    seen_ids: set[str] = set()
    index = 0
    for src in files:
        for row, obj, raw in _iter_objects(src, max_record_bytes):
            if isinstance(obj, _Blank):
                builder.blank_lines += 1
                continue
            builder.rows_in += 1
            if isinstance(obj, _Truncated):
                builder.reject(src, row, None, "truncated_file", obj.reason)
            elif isinstance(obj, RecordError):
                builder.reject(src, row, raw, obj.rule, obj.reason)
            else:
                _add(builder, src, row, obj, raw, seen_ids)
            if builder.rows_in >= batch_size:
                yield builder.flush(index)
                index += 1
    if builder.rows_in or builder.blank_lines or index == 0:
        yield builder.flush(index)


def _add(builder: _Builder, src: InputFile, row: int, obj: Any, raw: str | None, seen_ids: set[str]) -> None:
    spec = src.spec
    audit = raw if raw is not None else _preview(obj)
    if raw is None and len(audit) >= RAW_PREVIEW_CHARS:
        # Rows from parquet/JSON arrays are not size-checked as lines; check them here.
        size = len(orjson.dumps(obj, default=str))
        if size > builder.max_bytes:
            builder.reject(
                src,
                row,
                audit,
                "record_too_large",
                f"record is {size:,} bytes, above limits.max_record_bytes={builder.max_bytes:,}",
            )
            return
    try:
        rec = to_record(obj, fmt=spec.format, fields=spec.fields, columns=spec.columns, default_source=spec.source)
    except RecordError as exc:
        builder.reject(src, row, audit, exc.rule, exc.reason)
        return
    rec["id"] = rec["id"] or derived_id(src.fingerprint, row)
    if rec["id"] in seen_ids:
        builder.reject(src, row, audit, "duplicate_id", "the id was already used by an earlier record", rec["id"])
        return
    seen_ids.add(rec["id"])
    rec["src_file"], rec["src_row"] = src.label, row
    builder.records.append(rec)


def _preview(obj: Any) -> str:
    try:
        return orjson.dumps(obj, default=str).decode()[:RAW_PREVIEW_CHARS]
    except TypeError:
        return repr(obj)[:RAW_PREVIEW_CHARS]
