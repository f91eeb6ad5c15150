"""Writing WARC files for tests and benchmarks: real HTML pages (the manuals Debian packages install
under /usr/share/doc) packed as a crawler would, response records with their request records, plus
records of every kind a crawl holds. Dates and record ids are derived from the url, so the same pages
give the same bytes."""

from __future__ import annotations

import hashlib
import io
import uuid
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
