"""What a parser yields besides a row: a row that is not a record (`Skipped`), or the end of a file that
was cut off (`Truncated`). Shared by the line, JSON and Parquet parser (curate.io.parse) and the crawl
parser (curate.io.crawl); a bad row is a `curate.records.RecordError`."""

from __future__ import annotations

from dataclasses import dataclass

RAW_PREVIEW_CHARS = 2_000  # of a bad row's bytes, kept in rejected/ for the audit


@dataclass(frozen=True)
class Skipped:
    """A row that is not a record and not an error: a blank separator line, a WARC request or metadata
    record. Counted per kind in the read stage's `skipped`, never quarantined."""

    kind: str


BLANK_LINE = Skipped("blank_line")


@dataclass
class Truncated:
    reason: str
