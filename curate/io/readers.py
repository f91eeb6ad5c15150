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
import zstandard

from curate.errors import InputError
from curate.io.sources import InputFile
from curate.records import RecordError, derived_id, schema_with, to_record

RAW_PREVIEW_CHARS = 2_000
REJECT_READ_SCHEMA = {
    "id": pl.Utf8, "src_file": pl.Utf8, "src_row": pl.Int64, "raw": pl.Utf8,
    "stage": pl.Utf8, "rule": pl.Utf8, "reason": pl.Utf8, "action": pl.Utf8,
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


@dataclass
class _Builder:
    schema: dict[str, pl.DataType]
    max_bytes: int
    records: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    rows_in: int = 0

    def reject(self, src: InputFile, row: int, raw: str | None, rule: str, reason: str, rec_id: str | None = None) -> None:
        self.rejects.append({
            "id": rec_id, "src_file": src.label, "src_row": row,
            "raw": raw[:RAW_PREVIEW_CHARS] if raw is not None else None,
            "stage": "read", "rule": rule, "reason": reason, "action": "quarantine",
        })

    def flush(self, index: int) -> ReadBatch:
        batch = ReadBatch(
            index=index,
            records=pl.DataFrame(self.records, schema=self.schema, orient="row") if self.records else pl.DataFrame(schema=self.schema),
            quarantined=pl.DataFrame(self.rejects, schema=REJECT_READ_SCHEMA, orient="row") if self.rejects else pl.DataFrame(schema=REJECT_READ_SCHEMA),
            rows_in=self.rows_in,
        )
        self.records, self.rejects, self.rows_in = [], [], 0
        return batch


def _lines(stream: io.BufferedIOBase) -> Iterator[bytes | _Truncated]:
    try:
        for line in stream:
            yield line
    except (EOFError, zlib.error, gzip.BadGzipFile, zstandard.ZstdError, OSError) as exc:
        yield _Truncated(f"file is truncated or corrupt after the last complete line: {exc}")


def _open_lines(src: InputFile) -> Iterator[bytes | _Truncated]:
    name = src.name
    try:
        fh = src.open()
    except OSError as exc:
        raise InputError(f"cannot open input {src.path}: {exc.strerror or exc}") from None
    with fh:
        if name.endswith(".gz"):
            yield from _lines(gzip.GzipFile(fileobj=fh))
        elif name.endswith(".zst"):
            yield from _split_lines(_zst_chunks(fh))
        else:
            yield from _lines(fh)


def _zst_chunks(fh: io.BufferedIOBase) -> Iterator[bytes | _Truncated]:
    # zstandard's stream reader ends quietly on a cut-off frame, so frames are decoded
    # here and a file that stops before its frame's end is reported as truncated.
    decoder = zstandard.ZstdDecompressor().decompressobj()
    pending = b""
    try:
        while chunk := pending or fh.read(1 << 20):
            pending = b""
            yield decoder.decompress(chunk)
            if decoder.eof:
                pending = decoder.unused_data
                decoder = zstandard.ZstdDecompressor().decompressobj()
                if not pending and not (pending := fh.read(1 << 20)):
                    return
    except zstandard.ZstdError as exc:
        yield _Truncated(f"zstd stream is corrupt after the last complete line: {exc}")
        return
    yield _Truncated("zstd stream ends mid-frame: the file is truncated after the last complete line")


def _split_lines(chunks: Iterator[bytes | _Truncated]) -> Iterator[bytes | _Truncated]:
    tail = b""
    for chunk in chunks:
        if isinstance(chunk, _Truncated):
            if tail:
                yield tail
            yield chunk
            return
        parts = (tail + chunk).split(b"\n")
        tail = parts.pop()
        for part in parts:
            yield part + b"\n"
    if tail:
        yield tail


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
                data = orjson.loads(fh.read())
        except orjson.JSONDecodeError as exc:
            yield 1, RecordError("malformed_json", f"file is not valid JSON: {exc}"), None
            return
        for row, obj in enumerate(data if isinstance(data, list) else [data], start=1):
            yield row, obj, None
        return
    row = 0
    for item in _open_lines(src):
        if isinstance(item, _Truncated):
            yield row + 1, item, None
            return
        row += 1
        if not item.strip():
            continue  # blank separator lines are not records
        if len(item) > max_bytes:
            preview = item[:RAW_PREVIEW_CHARS].decode("utf-8", errors="replace")
            yield row, RecordError("record_too_large", f"record is {len(item):,} bytes, above limits.max_record_bytes={max_bytes:,}"), preview
            continue
        try:
            text = item.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield row, RecordError("invalid_utf8", f"invalid UTF-8 at byte {exc.start}"), item.decode("utf-8", errors="replace")
            continue
        try:
            yield row, orjson.loads(text), text
        except orjson.JSONDecodeError as exc:
            yield row, RecordError("malformed_json", f"malformed JSON: {exc}"), text


def read_batches(files: list[InputFile], batch_size: int, max_record_bytes: int) -> Iterator[ReadBatch]:
    """Deterministic batches of `batch_size` input rows (kept + quarantined) across all files."""
    columns = sorted({c for f in files for c in f.spec.columns})
    builder = _Builder(schema_with(columns), max_record_bytes)
    seen_ids: set[str] = set()
    index = 0
    for src in files:
        for row, obj, raw in _iter_objects(src, max_record_bytes):
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
    if builder.rows_in or index == 0:
        yield builder.flush(index)


def _add(builder: _Builder, src: InputFile, row: int, obj: Any, raw: str | None, seen_ids: set[str]) -> None:
    spec = src.spec
    audit = raw if raw is not None else _preview(obj)
    if raw is None and len(audit) >= RAW_PREVIEW_CHARS:
        # Rows from parquet/JSON arrays are not size-checked as lines; check them here.
        size = len(orjson.dumps(obj, default=str))
        if size > builder.max_bytes:
            builder.reject(src, row, audit, "record_too_large", f"record is {size:,} bytes, above limits.max_record_bytes={builder.max_bytes:,}")
            return
    try:
        rec = to_record(obj, fmt=spec.format, fields=spec.fields, columns=spec.columns, default_source=spec.source)
    except RecordError as exc:
        builder.reject(src, row, audit, exc.rule, exc.reason)
        return
    rec["id"] = rec["id"] or derived_id(src.fingerprint, row)
    if rec["id"] in seen_ids:
        builder.reject(src, row, audit, "duplicate_id", f"id '{rec['id']}' was already used by an earlier record", rec["id"])
        return
    seen_ids.add(rec["id"])
    rec["src_file"], rec["src_row"] = src.label, row
    builder.records.append(rec)


def _preview(obj: Any) -> str:
    try:
        return orjson.dumps(obj, default=str).decode()[:RAW_PREVIEW_CHARS]
    except TypeError:
        return repr(obj)[:RAW_PREVIEW_CHARS]
