"""Writing WARC files for tests and benchmarks: real HTML pages (the manuals Debian packages install
under /usr/share/doc) packed as a crawler would, response records with their request records, plus
records of every kind a crawl holds. Dates and record ids are derived from the url, so the same pages
give the same bytes."""

from __future__ import annotations

import gzip
import hashlib
import io
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

DOCS = Path("/usr/share/doc")


@dataclass
class Rec:
    url: str
    body: bytes
    kind: str = "response"  # or request, resource, conversion, metadata, revisit
    content_type: str | None = "text/html; charset=utf-8"  # the HTTP header (the WARC one for non-responses)
    status: str = "200 OK"
    http_headers: list[tuple[str, str]] = field(default_factory=list)
    warc_headers: dict[str, str] = field(default_factory=dict)


def record_id(url: str, kind: str = "response") -> str:
    return str(uuid.UUID(bytes=hashlib.blake2b(f"{kind} {url}".encode(), digest_size=16).digest()))


def doc_files() -> list[Path]:
    """The HTML manual pages Debian packages install on this machine, sorted: real HTML nobody here wrote."""
    return sorted(p for p in DOCS.rglob("*.htm*") if p.is_file() and p.suffix in (".html", ".htm"))


def doc_pages(limit: int | None = None, max_bytes: int = 2_000_000) -> list[tuple[str, bytes]]:
    """(url, bytes) of the HTML manual pages on this machine, sorted, each under `max_bytes`; the url
    names the package as the site (`https://python3-jinja2.docs.example/html/index.html`)."""
    pages = []
    for path in doc_files():
        if path.stat().st_size > max_bytes:
            continue
        package, *rest = path.relative_to(DOCS).parts
        pages.append((f"https://{package.lower()}.docs.example/{'/'.join(rest)}", path.read_bytes()))
        if limit is not None and len(pages) == limit:
            break
    return pages


def write_warc(path: Path, records: list[Rec], with_requests: bool = True) -> Path:
    """A WARC (gzip per record when the name ends in .gz): a warcinfo record, then each record, a
    response preceded by its request, as crawlers write them."""
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=path.name.endswith(".gz"))
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "curate tests"}))
        for i, rec in enumerate(records):
            date = f"2026-11-{1 + i % 28:02d}T12:00:00Z"
            if rec.kind == "response" and with_requests:
                request = StatusAndHeaders("GET / HTTP/1.1", [("Host", "example")], is_http_request=True)
                writer.write_record(
                    writer.create_warc_record(
                        rec.url,
                        "request",
                        http_headers=request,
                        warc_headers_dict={
                            "WARC-Date": date,
                            "WARC-Record-ID": f"<urn:uuid:{record_id(rec.url, 'r')}>",
                        },
                    )
                )
            headers = {"WARC-Date": date, "WARC-Record-ID": f"<urn:uuid:{record_id(rec.url, rec.kind)}>"}
            headers.update(rec.warc_headers)
            if rec.kind == "response":
                http = [("Content-Type", rec.content_type)] if rec.content_type else []
                writer.write_record(
                    writer.create_warc_record(
                        rec.url,
                        "response",
                        payload=io.BytesIO(rec.body),
                        http_headers=StatusAndHeaders(rec.status, http + rec.http_headers, protocol="HTTP/1.1"),
                        warc_headers_dict=headers,
                    )
                )
            else:
                writer.write_record(
                    writer.create_warc_record(
                        rec.url,
                        rec.kind,
                        payload=io.BytesIO(rec.body),
                        warc_content_type=rec.content_type or "",
                        warc_headers_dict=headers,
                    )
                )
    return path


def pages_warc(path: Path, limit: int | None = None) -> Path:
    return write_warc(path, [Rec(url, body) for url, body in doc_pages(limit)])


# -- damage, as a red team (or a bad disk, a buggy crawler) does it --------------------------------


def gzip_members(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each gzip member of a .gz file's bytes."""
    spans, at = [], 0
    while at < len(data):
        z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        z.decompress(data[at:])
        end = len(data) - len(z.unused_data)
        spans.append((at, end))
        at = end
    return spans


def warc_records(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each record of an uncompressed WARC's bytes, its trailing blank lines included."""
    from warcio.archiveiterator import ArchiveIterator

    it = ArchiveIterator(io.BytesIO(data))
    starts = []
    for _ in it:
        starts.append(it.get_record_offset())
    return list(zip(starts, [*starts[1:], len(data)]))


def edit_record(data: bytes, index: int, edit, gz: bool) -> bytes:
    """The WARC's bytes with record `index` (its gzip member, in a .warc.gz) replaced by edit(its bytes)."""
    if gz:
        start, end = gzip_members(data)[index]
        return data[:start] + gzip.compress(edit(gzip.decompress(data[start:end])), mtime=0) + data[end:]
    start, end = warc_records(data)[index]
    return data[:start] + edit(data[start:end]) + data[end:]


def set_header(record: bytes, name: str, value: str | None) -> bytes:
    """A WARC record's bytes with its header `name` set to `value` (removed when None)."""
    head, sep, rest = record.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(name.lower().encode() + b":")]
    if value is not None:
        lines.insert(1, f"{name}: {value}".encode())
    return b"\r\n".join(lines) + sep + rest


def header(record: bytes, name: str) -> str:
    head = record.partition(b"\r\n\r\n")[0].decode()
    return next(
        line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.lower().startswith(f"{name.lower()}:")
    )


def shift_length(record: bytes, by: int) -> bytes:
    """A record that lies about its length by `by` bytes (the bytes stay as they are)."""
    return set_header(record, "Content-Length", str(int(header(record, "Content-Length")) + by))


def damage_crc(data: bytes, index: int) -> bytes:
    """A .gz file with the CRC of member `index` wrong: the member inflates, its check fails."""
    end = gzip_members(data)[index][1]
    return data[: end - 8] + bytes([data[end - 8] ^ 0xFF]) + data[end - 7 :]


def damage_deflate(data: bytes, index: int) -> bytes:
    """A .gz file with 32 bytes of member `index`'s compressed data overwritten, a fifth of the way in:
    zlib refuses the data there (or inflates garbage and the check fails at the member's end)."""
    start, end = gzip_members(data)[index]
    at = start + (end - start) // 5
    return data[:at] + b"\xff" * 32 + data[at + 32 :]
