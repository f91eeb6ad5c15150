"""Web crawls as input: WARC (`*.warc`, `*.warc.gz`), WET (`*.wet`, `*.wet.gz`) and ARC (`*.arc`,
`*.arc.gz`) files, local or at any fsspec URL, read with warcio.

Each `response` or `resource` record with an HTML content type, and each WET `conversion` record,
becomes a text record: its `text` is the page (HTML, for the `extract` stage) or WET's plain text, and
the crawl's metadata fills the columns `url`, `domain`, `crawl_date`, `warc_record_id`, `content_type`
and `http_status`. Its id is the WARC record's UUID. The body is decoded with the charset the HTTP
header declares, else the page's `<meta charset>`, else what uchardet detects, else UTF-8: the first
that decodes every byte.

Nothing is lost silently. Request, metadata, warcinfo and revisit records are not pages: they are
counted as skipped per type (`warc_request`...). A record that is a page but cannot be used is
quarantined with its WARC headers as the preview: `not_html`, `http_error` (a status other than 2xx),
`truncated_record` (the crawler cut it: `WARC-Truncated`), `invalid_encoding` (no charset decodes it,
the HTTP compression is broken, or it is binary), `record_too_large`, `empty_record`. A file that is cut
off ends with a `truncated_file` row; one that is not a crawl at all, with `invalid_warc`.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from curate.errors import InputError
from curate.io.rows import RAW_PREVIEW_CHARS, Skipped, Truncated
from curate.records import RecordError

CRAWL_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".arc", ".arc.gz")
CRAWL_COLUMNS = ("url", "domain", "crawl_date", "warc_record_id", "content_type", "http_status")
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
PAGE_RECORDS = frozenset({"response", "resource", "conversion"})  # conversion: WET's extracted text
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")
# an HTML page: a doctype, or an <html>/<head>/<body> tag, at the start (after a byte order mark, an
# XML declaration of XHTML, comments)
_HTML = re.compile(
    r"^\ufeff?\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*(?:<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])",
    re.I | re.S,
)


def looks_like_html(text: str) -> bool:
    return bool(_HTML.match(text[:4096]))


def is_crawl(name: str) -> bool:
    return name.endswith(CRAWL_SUFFIXES)


def crawl_rows(src: Any, max_bytes: int) -> Iterator[tuple[int, Any, str | None]]:
    """(record number in the file, a record dict or RecordError/Skipped/Truncated, the WARC headers as
    the audit preview) for every record of one crawl file (`src` is a curate.io.parse.Readable)."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed
    from warcio.statusandheaders import StatusAndHeadersParserException

    try:
        fh = src.open()
    except OSError as exc:
        raise InputError(f"cannot open input {src.path}: {exc.strerror or exc}") from None
    with fh:
        stream = _Gzip(fh) if src.name.endswith(".gz") else fh
        records = iter(ArchiveIterator(stream))
        arc, row = ".arc" in src.name, 0
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except (CutOff, OSError) as exc:
                yield row + 1, Truncated(f"file is truncated or corrupt after record {row:,}: {exc}"), None
                return
            except (ArchiveLoadFailed, StatusAndHeadersParserException, AttributeError, ValueError) as exc:
                # warcio fails on a cut-off header with an AttributeError of its own parsing
                if row == 0:
                    yield 1, RecordError("invalid_warc", f"not a WARC, WET or ARC file: {_short(exc)}"), None
                else:
                    yield row + 1, Truncated(f"file is cut off or corrupt after record {row:,}: {_short(exc)}"), None
                return
            row += 1
            wrong = _wrong_format(record, arc, row)
            if wrong is not None:
                if row == 1:
                    yield 1, RecordError("invalid_warc", f"not a {'ARC' if arc else 'WARC or WET'} file: {wrong}"), None
                else:
                    yield row, Truncated(f"file is corrupt at record {row:,}: {wrong}"), None
                return
            try:
                obj, raw = _record(record, max_bytes)
            except CutOff as exc:
                yield row, Truncated(f"file is truncated or corrupt in record {row:,}: {exc}"), None
                return
            yield row, obj, raw
            if isinstance(obj, Truncated):
                return


def _wrong_format(record: Any, arc: bool, row: int) -> str | None:
    """Why a record read is not one of the file's format: warcio reads any line of five words as an ARC
    header, and an ARC file starts with its `filedesc://` record."""
    if record.format.startswith("arc") != arc:
        return f"record {row:,} is an {record.format.upper()} record"
    if arc and row == 1 and record.rec_type != "arc_header":
        return "it does not start with a filedesc:// header"
    return None


class CutOff(Exception):
    """A compressed crawl file ends inside a gzip member."""


class _Gzip(io.RawIOBase):
    """A .gz crawl file (one gzip member per record, or one for all), decompressed here so that a file
    ending inside a member raises CutOff after every complete byte before the cut is read: warcio
    takes gzip's EOFError for the end of the file and stops as if the file were whole."""

    def __init__(self, fh):
        self.fh = fh
        self.z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self.in_member = False  # bytes of a member read, its end not yet
        self.out, self.pos = b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self.pos >= len(self.out):
            raw = self.fh.read(1 << 16)
            if not raw:
                if self.in_member:
                    raise CutOff("the file ends inside a gzip member")
                return 0
            self.out, self.pos = self._inflate(raw), 0
        n = min(len(buffer), len(self.out) - self.pos)
        buffer[:n] = self.out[self.pos : self.pos + n]
        self.pos += n
        return n

    def _inflate(self, raw: bytes) -> bytes:
        parts = []
        while raw:
            try:
                parts.append(self.z.decompress(raw))
            except zlib.error as exc:
                raise CutOff(f"corrupt gzip data: {exc}") from None
            if not self.z.eof:
                self.in_member = True
                break
            raw, self.in_member = self.z.unused_data, False
            self.z = zlib.decompressobj(zlib.MAX_WBITS | 16)
            if not raw.strip(b"\0"):  # zero padding after the last member
                break
        return b"".join(parts)


def _short(exc: Exception) -> str:
    return str(exc).replace("\n", " ")[:200] or type(exc).__name__


def _record(record: Any, max_bytes: int) -> tuple[Any, str | None]:
    kind = record.rec_type
    if kind is None:  # the file ends inside this record's headers
        return Truncated("file is cut off inside a record's headers"), None
    if kind not in PAGE_RECORDS:
        return Skipped(kind if kind.startswith("arc") else f"warc_{kind}"), None
    headers = record.rec_headers
    http = record.http_headers if kind == "response" else None
    # a response's WARC Content-Type is application/http, the block's; the page's type is the HTTP header's
    if kind == "response":
        declared = http.get_header("Content-Type") if http is not None else None
    else:
        declared = headers.get_header("Content-Type")
    mime, charset = _content_type(declared)
    status = http.get_statuscode() if http is not None else None
    if record.format.startswith("arc"):  # ARC records have no id: the reader derives one from file and row
        url, date, record_id = headers.get_header("uri"), _arc_date(headers.get_header("archive-date")), None
    else:
        url, date = headers.get_header("WARC-Target-URI"), headers.get_header("WARC-Date")
        record_id = headers.get_header("WARC-Record-ID")
    fields = {
        "url": url,
        "domain": _domain(url),
        "crawl_date": date,
        "warc_record_id": record_id,
        "content_type": mime,
        "http_status": status,
    }
    raw = _preview(record)
    problem = _refuse(kind, mime, status, headers.get_header("WARC-Truncated"))
    if problem is not None:
        return problem, raw
    try:
        body = _body(record, http, max_bytes)
    except CutOff:
        raise  # the file itself is cut off: crawl_rows ends it with a truncated_file row
    except Exception as exc:  # noqa: BLE001 - a broken gzip/deflate/br body raises what its decoder raises
        encoding = http.get_header("Content-Encoding") if http is not None else None
        return RecordError(
            "invalid_encoding",
            f"the HTTP body cannot be decompressed (Content-Encoding: {encoding}): {type(exc).__name__}",
        ), raw
    if len(body) > max_bytes:
        # not decompressed further (a compression bomb would not end); the iterator skips the stored rest
        return RecordError(
            "record_too_large",
            f"record body is over limits.max_record_bytes={max_bytes:,} bytes ({record.length:,} bytes stored)",
        ), raw
    left = getattr(record.raw_stream, "limit", 0)
    if left:
        return Truncated(f"file is cut off in record {url}: {left:,} bytes of its body missing"), None
    text = _decode(body, charset)
    if text is None:
        return RecordError(
            "invalid_encoding", f"no charset decodes the body (declared {charset or 'none'}, detected and UTF-8 tried)"
        ), raw
    if len(_CONTROL.findall(text[:65536])) > max(1, len(text[:65536]) // 100):
        return RecordError("invalid_encoding", "the body is binary: control characters in more than 1% of it"), raw
    if not text.strip():
        return RecordError("empty_record", "the record has no body"), raw
    if kind != "conversion" and mime is None and not looks_like_html(text):
        return RecordError("not_html", "no content type, and the body is not an HTML page"), raw
    uuid = record_id.strip("<>").removeprefix("urn:uuid:") if record_id else None
    return {"id": uuid, "text": text, **fields}, raw


def _refuse(kind: str, mime: str | None, status: str | None, cut: str | None) -> RecordError | None:
    """Why a page record is not used, decided from its headers alone."""
    if status is not None and not status.startswith("2"):
        return RecordError("http_error", f"HTTP status {status}: not a page")
    if kind != "conversion" and mime is not None and mime not in HTML_TYPES:
        return RecordError("not_html", f"content type {mime}, not an HTML page")
    if cut:
        return RecordError("truncated_record", f"the crawler cut this record short (WARC-Truncated: {cut})")
    return None


def _content_type(value: str | None) -> tuple[str | None, str | None]:
    """(the MIME type, lower-cased; the charset parameter) of a Content-Type header."""
    if not value or not value.strip():
        return None, None
    mime, *params = value.split(";")
    charset = None
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip():
            charset = val.strip().strip("\"'")
    return mime.strip().lower() or None, charset


def _arc_date(value: str | None) -> str | None:
    """ARC's 14-digit archive date (20261101120000) as WARC writes dates (2026-11-01T12:00:00Z)."""
    if not value or len(value) < 14 or not value[:14].isdigit():
        return value
    v = value[:14]
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}T{v[8:10]}:{v[10:12]}:{v[12:14]}Z"


def _domain(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:  # a malformed port or IPv6 literal
        return None
    return host.removeprefix("www.") if host else None


def _decode(body: bytes, declared: str | None) -> str | None:
    """The body as text: the declared charset, the page's meta charset or uchardet's guess, then UTF-8,
    whichever decodes every byte first (WHATWG names: latin-1 is read as windows-1252)."""
    from resiliparse.parse.encoding import detect_encoding, map_encoding_to_html5

    candidates = [
        map_encoding_to_html5(declared, fallback_utf8=False) if declared else None,
        detect_encoding(body, from_html_meta=True),
        "utf-8",
    ]
    for encoding in dict.fromkeys(c for c in candidates if c):
        try:
            return body.decode(encoding).removeprefix("\ufeff")
        except (UnicodeDecodeError, LookupError):
            continue
    return None


def _body(record: Any, http: Any, max_bytes: int) -> bytes:
    """Up to `max_bytes + 1` bytes of the payload, chunked transfer and gzip/deflate/br compression
    undone. warcio decodes all but brotli (its br decoder does not work with brotli 1.2), done here with
    the output bounded, so a compression bomb stops at the limit."""
    encoding = (http.get_header("Content-Encoding") or "").strip().lower() if http is not None else ""
    if encoding != "br":
        return record.content_stream().read(max_bytes + 1)
    import brotli
    from warcio.bufferedreaders import ChunkedDataReader

    chunked = (http.get_header("Transfer-Encoding") or "").strip().lower() == "chunked"
    stream = ChunkedDataReader(record.raw_stream) if chunked else record.raw_stream
    decoder, out = brotli.Decompressor(), bytearray()
    while len(out) <= max_bytes and (chunk := stream.read(1 << 16)):
        out += decoder.process(chunk, output_buffer_limit=max_bytes + 1 - len(out))
        while len(out) <= max_bytes and not decoder.can_accept_more_data():
            out += decoder.process(b"", output_buffer_limit=max_bytes + 1 - len(out))
    return bytes(out)


def _preview(record: Any) -> str:
    """The record's WARC headers and HTTP status line: what the audit needs to find it in the crawl."""
    out = io.StringIO()
    out.write("ARC\n" if record.format.startswith("arc") else f"{record.rec_headers.protocol}\n")
    for name, value in record.rec_headers.headers:
        out.write(f"{name}: {value}\n")
    if record.http_headers is not None and record.rec_type == "response":
        out.write(f"\n{record.http_headers.protocol} {record.http_headers.statusline}\n")
    return out.getvalue()[:RAW_PREVIEW_CHARS]
