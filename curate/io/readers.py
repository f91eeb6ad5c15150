"""Reading input files into record batches; every bad row is quarantined with its location.

Nothing here raises on bad data: malformed JSON, invalid UTF-8, empty or oversize
records, missing fields, wrong types, duplicate ids and truncated compressed files
all become quarantine rows carrying the file, the row number and the reason.

Runs read on their workers, in three steps: `read_unit` (a worker parses one file into parts),
`plan_batches` (the driver cuts the rows into batches across files from the parts' ids alone, and
marks repeated ids), `load_batch` (the worker that runs a batch reads its rows back). `read_batches`
does all three in this process.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from curate.accounting import StageAccount
from curate.decisions import REJECTED_LEAD
from curate.io.parse import parse_rows
from curate.io.rows import RAW_PREVIEW_CHARS, Skipped, Truncated
from curate.io.shards import Piece, cut_batches, read_json, write_json, write_parquet
from curate.io.sources import InputFile
from curate.records import RecordError, derived_id, schema_with, to_record, without_absent_kinds
from curate.workdir import DONE

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

    def account(self) -> StageAccount:
        """The read stage's accounting of this batch."""
        account = StageAccount(
            stage="read",
            rows_in=self.rows_in,
            kept=self.records.height,
            quarantined=self.quarantined.height,
            reasons=dict(self.quarantined.group_by("rule").len().sort("rule").iter_rows()),
            skipped=dict(sorted(self.skipped.items())),
        )
        account.check()
        return account


# Reading is split in three so that workers read: a worker parses one input file (`read_unit`) into
# parts of PART_ROWS input rows each, records and quarantined rows together in input order; the driver
# reads back only the ids, finds ids an earlier record already had and cuts the rows into batches of
# `batch_size` input rows across files (`plan_batches`); the worker that runs a batch reads its rows
# from the parts (`load_batch`). The batches are the same, row for row, whatever the worker count.
PART_ROWS = 5_000
_RAW, _RULE, _REASON = "_raw", "_rule", "_reason"  # a part's audit preview and, for a quarantined row, why
DUPLICATE_REASON = "the id was already used by an earlier record"


@dataclass(frozen=True)
class ReadUnit:
    """One input file for a worker to read; `index` is its place among the run's files."""

    index: int
    file: InputFile


@dataclass(frozen=True)
class ReadSource:
    """Where one batch of input rows is: pieces of read parts, the non-records seen among them, and
    the metadata columns every batch of the run carries (`read_columns`)."""

    pieces: tuple[Piece, ...]
    columns: tuple[str, ...]
    skipped: tuple[tuple[str, int], ...] = ()


def unit_dir(read_dir: Path, index: int) -> Path:
    return read_dir / f"u-{index:05d}"


def read_unit(unit: ReadUnit, folder: Path, columns: list[str], max_record_bytes: int) -> dict:
    """Parse one input file into parts under `folder`; every input row is a row of a part, in order (a
    quarantined one with its rule and reason). Returns the unit's summary, written last as its done
    marker (a unit already read is not read again): its rows, its parts, and the rows that are not
    records (blank lines, WARC request records) by the input row they come before."""
    marker = folder / DONE
    if marker.is_file():
        return read_json(marker)
    folder.mkdir(parents=True, exist_ok=True)
    schema = _part_schema(columns)
    src, rows, parts, skipped = unit.file, [], [], []

    def flush() -> None:
        path = folder / f"part-{len(parts):05d}.parquet"
        write_parquet(pl.DataFrame(rows, schema=schema, orient="row"), path, level=1)
        parts.append({"path": str(path), "rows": len(rows)})
        rows.clear()

    position = 0
    for row, obj, raw in parse_rows(src, max_record_bytes):
        if isinstance(obj, Skipped):
            if skipped and skipped[-1][:2] == [position, obj.kind]:
                skipped[-1][2] += 1
            else:
                skipped.append([position, obj.kind, 1])
            continue
        if isinstance(obj, Truncated):
            rows.append(_rejected(src, row, None, "truncated_file", obj.reason))
        elif isinstance(obj, RecordError):
            rows.append(_rejected(src, row, raw, obj.rule, obj.reason))
        else:
            rows.append(_row(src, row, obj, raw, max_record_bytes))
        position += 1
        if len(rows) == PART_ROWS:
            flush()
    if rows or not parts:
        flush()
    summary = {"file": src.label, "rows_in": position, "parts": parts, "skipped": skipped}
    write_json(marker, summary)
    return summary


def _part_schema(columns: list[str]) -> dict[str, pl.DataType]:
    return {**schema_with(columns), _RAW: pl.Utf8, _RULE: pl.Utf8, _REASON: pl.Utf8}


def _rejected(src: InputFile, row: int, raw: str | None, rule: str, reason: str) -> dict:
    """A row quarantined while parsing (it has no id yet; a repeated id is found later, from the plan)."""
    return {
        "id": None,
        "src_file": src.label,
        "src_row": row,
        _RAW: raw[:RAW_PREVIEW_CHARS] if raw is not None else None,
        _RULE: rule,
        _REASON: reason,
    }


def _row(src: InputFile, row: int, obj: Any, raw: str | None, max_bytes: int) -> dict:
    """One parsed input row as a record, or as the reason it is quarantined. Every record carries its
    audit preview: the driver may find its id taken by an earlier record of another file."""
    spec = src.spec
    audit = raw if raw is not None else _preview(obj)
    if raw is None and len(audit) >= RAW_PREVIEW_CHARS:
        # Rows from parquet/JSON arrays are not size-checked as lines; check them here.
        size = len(orjson.dumps(obj, default=str))
        if size > max_bytes:
            reason = f"record is {size:,} bytes, above limits.max_record_bytes={max_bytes:,}"
            return _rejected(src, row, audit, "record_too_large", reason)
    try:
        rec = to_record(obj, fmt=spec.format, fields=spec.fields, columns=spec.columns, default_source=spec.source)
    except RecordError as exc:
        return _rejected(src, row, audit, exc.rule, exc.reason)
    rec["id"] = rec["id"] or derived_id(src.fingerprint, row)
    rec["src_file"], rec["src_row"], rec[_RAW] = src.label, row, audit[:RAW_PREVIEW_CHARS]
    return rec


def plan_batches(summaries: Iterable[dict], batch_size: int, columns: list[str]) -> Iterator[tuple[int, ReadSource]]:
    """The batches of `batch_size` input rows across all files, in order, from the units' summaries
    (in file order). A record whose id an earlier record had is marked a duplicate; only the ids are
    read here. Rows that are not records count in the batch of the input row after them (the last
    batch for those at the end; an empty batch 0 when there are no rows at all)."""
    seen: set[str] = set()
    skipped: dict[int, Counter] = {}

    def runs() -> Iterator[tuple[str, int, tuple[int, ...]]]:
        start = 0
        for summary in summaries:
            for position, kind, count in summary["skipped"]:
                skipped.setdefault((start + position) // batch_size, Counter())[kind] += count
            start += summary["rows_in"]
            for part in summary["parts"]:
                repeated = _repeated(pl.read_parquet(part["path"], columns=["id", _RULE]), seen)
                yield part["path"], part["rows"], tuple(repeated)

    index = -1
    for index, pieces in enumerate(cut_batches(runs(), batch_size)):
        yield index, ReadSource(pieces, tuple(columns), _counts(skipped.pop(index, None)))
    if skipped:  # rows that are not records after the last record of a full batch
        yield index + 1, ReadSource((), tuple(columns), _counts(skipped.pop(index + 1)))


def _repeated(ids: pl.DataFrame, seen: set[str]) -> list[int]:
    """The rows of a part whose record id is in `seen` or on an earlier row; the others' ids are added."""
    records = ids["id"].filter(ids[_RULE].is_null()).to_list()
    if seen.isdisjoint(records) and len(set(records)) == len(records):  # the usual case, at C speed
        seen.update(records)
        return []
    repeated = []
    for row, (rec_id, rule) in enumerate(ids.iter_rows()):
        if rule is None:
            if rec_id in seen:
                repeated.append(row)
            else:
                seen.add(rec_id)
    return repeated


def _counts(counter: Counter | None) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counter.items())) if counter else ()


def load_batch(index: int, source: ReadSource) -> ReadBatch:
    """One planned batch's records and quarantined rows, read from its pieces (by the worker that runs
    it), in input order; records with a repeated id are quarantined as duplicate_id."""
    frames = [pl.DataFrame(schema=_part_schema(list(source.columns)))]
    for piece in source.pieces:
        df = piece.read()
        if piece.duplicates:
            dup = pl.int_range(pl.len()).is_in(list(piece.duplicates))
            df = df.with_columns(
                pl.when(dup).then(pl.lit("duplicate_id")).otherwise(pl.col(_RULE)).alias(_RULE),
                pl.when(dup).then(pl.lit(DUPLICATE_REASON)).otherwise(pl.col(_REASON)).alias(_REASON),
            )
        frames.append(df)
    rows = pl.concat(frames, how="vertical")
    quarantined = rows.filter(pl.col(_RULE).is_not_null()).select(
        "id",
        "src_file",
        "src_row",
        pl.col(_RAW).alias("raw"),
        pl.lit("read").alias("stage"),
        pl.col(_RULE).alias("rule"),
        pl.col(_REASON).alias("reason"),
        pl.lit("quarantine").alias("action"),
    )
    return ReadBatch(
        index=index,
        # a batch carries the pair and KTO columns only when it holds such records: text and chat keep their schema
        records=without_absent_kinds(rows.filter(pl.col(_RULE).is_null()).drop(_RAW, _RULE, _REASON)),
        quarantined=quarantined.cast(REJECT_READ_SCHEMA).select(list(REJECT_READ_SCHEMA)),
        rows_in=rows.height,
        skipped=dict(source.skipped),
    )


def read_columns(files: list[InputFile]) -> list[str]:
    """The metadata columns every batch of a run carries: those any of its inputs promotes."""
    return sorted({c for f in files for c in f.spec.columns})


def read_batches(files: list[InputFile], batch_size: int, max_record_bytes: int) -> Iterator[ReadBatch]:
    """Deterministic batches of `batch_size` input rows (kept + quarantined) across all files, read in
    this process (runs read on their workers: curate.engine)."""
    columns = read_columns(files)
    with tempfile.TemporaryDirectory(prefix="curate-read-") as tmp:
        summaries = (
            read_unit(ReadUnit(i, f), unit_dir(Path(tmp), i), columns, max_record_bytes) for i, f in enumerate(files)
        )
        for index, source in plan_batches(summaries, batch_size, columns):
            yield load_batch(index, source)


def _preview(obj: Any) -> str:
    try:
        return orjson.dumps(obj, default=str).decode()[:RAW_PREVIEW_CHARS]
    except TypeError:
        return repr(obj)[:RAW_PREVIEW_CHARS]
