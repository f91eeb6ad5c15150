"""Reading input files into record batches; every bad row is quarantined with its location.

Nothing here raises on bad data: malformed JSON, invalid UTF-8, empty or oversize
records, missing fields, wrong types, duplicate ids and truncated compressed files
all become quarantine rows carrying the file, the row number and the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl

from curate.decisions import REJECTED_LEAD
from curate.io.parse import parse_rows
from curate.io.rows import RAW_PREVIEW_CHARS, Skipped, Truncated
from curate.io.sources import InputFile
from curate.records import RecordError, derived_id, schema_with, to_record

# a row the reader quarantines: where it came from, a preview of its bytes, and the decision
REJECT_READ_SCHEMA = {
    "id": pl.Utf8,
    "src_file": pl.Utf8,
    "src_row": pl.Int64,
    "raw": pl.Utf8,
    **dict.fromkeys(REJECTED_LEAD, pl.Utf8),
}


@dataclass
class ReadBatch:
    index: int
    records: pl.DataFrame
    quarantined: pl.DataFrame
    rows_in: int
    skipped: dict[str, int] = field(default_factory=dict)  # rows that are not records, per kind


@dataclass
class _Builder:
    schema: dict[str, pl.DataType]
    max_bytes: int
    records: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    rows_in: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

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
            skipped=self.skipped,
        )
        self.records, self.rejects, self.rows_in, self.skipped = [], [], 0, {}
        return batch


def read_batches(files: list[InputFile], batch_size: int, max_record_bytes: int) -> Iterator[ReadBatch]:
    """Deterministic batches of `batch_size` input rows (kept + quarantined) across all files."""
    columns = sorted({c for f in files for c in f.spec.columns})
    builder = _Builder(schema_with(columns), max_record_bytes)
    seen_ids: set[str] = set()
    index = 0
    for src in files:
        for row, obj, raw in parse_rows(src, max_record_bytes):
            if isinstance(obj, Skipped):
                builder.skipped[obj.kind] = builder.skipped.get(obj.kind, 0) + 1
                continue
            builder.rows_in += 1
            if isinstance(obj, Truncated):
                builder.reject(src, row, None, "truncated_file", obj.reason)
            elif isinstance(obj, RecordError):
                builder.reject(src, row, raw, obj.rule, obj.reason)
            else:
                _add(builder, src, row, obj, raw, seen_ids)
            if builder.rows_in >= batch_size:
                yield builder.flush(index)
                index += 1
    if builder.rows_in or builder.skipped or index == 0:
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
