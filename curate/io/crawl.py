"""Web crawls as input: WARC (`*.warc`, `*.warc.gz`), WET (`*.wet`, `*.wet.gz`) and ARC (`*.arc`,
`*.arc.gz`) files, local or at any fsspec URL: what each crawl record becomes as a row. The records
are found in the file's bytes by curate.io.warcframes, which accounts for every byte (a record, a gap
with its offsets, or the end) and names the faults of the file itself; warcio parses each page record.

Each `response` or `resource` record with an HTML content type, and each WET `conversion` record,
becomes a text record: its `text` is the page (HTML, for the `extract` stage) or WET's plain text, and
the crawl's metadata fills the columns `url`, `domain`, `crawl_date`, `warc_record_id`, `content_type`
and `http_status`. Its id is the WARC record's UUID. The body is decoded with the charset the HTTP
header declares, else the page's `<meta charset>`, else what uchardet detects, else UTF-8: the first
that decodes every byte and that the bytes match. A declared charset that fails (it does not decode
the bytes; UTF-16/32 on bytes with no byte order mark and no NUL byte; a legacy charset on valid
multi-byte UTF-8; one that turns the page's `<` into something else) is passed over, and the record,
kept, is counted as the note `noted:charset_mislabelled`. What warcio logs while parsing a record
quotes record bytes, so it is written nowhere and counted as the note `noted:warcio_warning`. Notes
are yielded as Skipped rows, so the read stage counts them by kind, but no record was skipped.

Nothing is lost silently. Request, metadata, warcinfo and revisit records are not pages: they are
counted as skipped per type (`warc_request`...). A record that is a page but cannot be used is
quarantined with its WARC headers as the preview: `not_html`, `http_error` (a status other than 2xx),
`truncated_record` (the crawler cut it: `WARC-Truncated`), `invalid_encoding` (no charset decodes it,
the HTTP compression is broken, or it is binary), `record_too_large`, `empty_record`,
`missing_header` (a record with no WARC-Type, a page with no WARC-Target-URI), `invalid_record`
(warcio cannot parse its headers). Faults of the file itself (`bad_length`, `corrupt_record`,
`corrupt_bytes`, `truncated_file`, `invalid_warc`) are rows too: see curate.io.warcframes. An ARC file
that does not start with a filedesc:// record is one `invalid_warc` row.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from curate.errors import InputError
from curate.io.rows import RAW_PREVIEW_CHARS, Skipped, Truncated
from curate.io.warcframes import CHUNK, GZIP_MAGIC, GZIP_WBITS, End, Frame, Framer, Gap, RecordStream, open_framer
from curate.records import RecordError

CRAWL_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".arc", ".arc.gz")
CRAWL_COLUMNS = ("url", "domain", "crawl_date", "warc_record_id", "content_type", "http_status")
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
PAGE_RECORDS = frozenset({"response", "resource", "conversion"})  # conversion: WET's extracted text
# notes: counted by kind as the read stage counts Skipped rows, but the record is kept
CHARSET_MISLABELLED = Skipped("noted:charset_mislabelled")
WARCIO_WARNING = Skipped("noted:warcio_warning")
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
    """(row number in the file, a record dict or RecordError/Skipped/Truncated, the WARC headers as
    the audit preview) for every record of one crawl file (`src` is a curate.io.parse.Readable), and a
    row for every stretch of bytes skipped. Memory stays bounded: the file is streamed."""
    try:
        fh = src.open()
    except OSError as exc:
        raise InputError(f"cannot open input {src.path}: {exc.strerror or exc}") from None
    with fh:
        framer = open_framer(fh, arc=".arc" in src.name, gz=src.name.endswith(".gz"))
        row = 0
        while (item := framer.next()) is not None:
            row += 1
            if isinstance(item, Gap):
                yield row, RecordError(item.rule, item.reason), item.raw
                continue
            if isinstance(item, End):
                yield row, item.obj, None
                return
            if framer.records == 1 and item.arc and not _is_filedesc(item):
                yield row, RecordError("invalid_warc", "not an ARC file: it does not start with filedesc://"), None
                return
            rows = _record_rows(framer, item, row, max_bytes)
            yield from rows
            if isinstance(rows[0][1], Truncated):
                return


def _record_rows(framer: Framer, frame: Frame, row: int, max_bytes: int) -> list[tuple[int, Any, str | None]]:
    """The rows of one framed record: itself (or why its bytes are not what it declared), then its
    notes (counted, not rows)."""
    obj, raw, notes = _read(frame, max_bytes)
    verdict = framer.finish(frame)  # read after the record: whether its bytes were what it declared
    if isinstance(verdict, Truncated):
        return [(row, verdict, None)]
    rows = [(row, verdict or obj, None if isinstance(obj, Skipped) and verdict is None else raw)]
    # a quarantined record's charset does not matter; warcio's log lines were written whatever became of it
    return rows + [(row, note, None) for note in notes if verdict is None or note is not CHARSET_MISLABELLED]


def _is_filedesc(frame: Frame) -> bool:
    return (frame.headers.get_header("uri") or "").startswith("filedesc://")


# -- a record as a row -----------------------------------------------------------------------------


def _read(frame: Frame, max_bytes: int) -> tuple[Any, str, list[Skipped]]:
    """(the row a framed record is: a record dict, Skipped or RecordError; its audit preview; notes)."""
    raw = _preview(frame.arc, frame.headers)
    if frame.problem is not None:
        return frame.problem, raw, []
    kind = _kind(frame)
    if kind is None:
        return RecordError("missing_header", f"the record at {frame.where} has no WARC-Type header"), raw, []
    if kind not in PAGE_RECORDS:  # not parsed further: warcio fails on a request with no Target-URI
        return Skipped(kind if kind.startswith("arc") else f"warc_{kind}"), raw, []
    if not frame.arc and not (frame.headers.get_header("WARC-Target-URI") or "").strip():
        return RecordError("missing_header", f"the {kind} record at {frame.where} has no WARC-Target-URI"), raw, []
    with _warcio_log() as logged:
        obj, raw, mislabelled = _parse(frame, raw, max_bytes)
    notes = [WARCIO_WARNING] * len(logged)
    return obj, raw, notes + ([CHARSET_MISLABELLED] if mislabelled else [])


def _parse(frame: Frame, raw: str, max_bytes: int) -> tuple[Any, str, bool]:
    """A page record parsed by warcio from its header bytes and block, as `_record` makes it a row."""
    assert frame.block is not None
    try:
        record = _loader().parse_record_stream(
            RecordStream(frame.head, frame.block), known_format="arc" if frame.arc else "warc"
        )
    except Exception as exc:  # noqa: BLE001 - warcio raises what its parsers raise; its message quotes bytes
        reason = f"warcio cannot parse the record at {frame.where}: {type(exc).__name__}"
        return RecordError("invalid_record", reason), raw, False
    return _record(record, max_bytes)


def _kind(frame: Frame) -> str | None:
    if frame.arc:
        return "arc_header" if _is_filedesc(frame) else "response"
    kind = (frame.headers.get_header("WARC-Type") or "").strip()
    return kind or None


@cache
def _loader() -> Any:
    from warcio.recordloader import ArcWarcRecordLoader

    logging.getLogger("warcio.recordloader").addFilter(_WarcioLog())
    return ArcWarcRecordLoader(verify_http=False, arc2warc=False)


_logged = threading.local()


class _WarcioLog(logging.Filter):
    """warcio's log lines quote record bytes (a Target-URI): none is written anywhere; each is counted,
    for the record being parsed, as a `noted:warcio_warning` note."""

    def filter(self, record: logging.LogRecord) -> bool:
        seen = getattr(_logged, "seen", None)
        if seen is not None:
            seen.append(record.levelname)
        return False


@contextmanager
def _warcio_log() -> Iterator[list[str]]:
    _logged.seen = seen = []
    try:
        yield seen
    finally:
        _logged.seen = None


def _record(record: Any, max_bytes: int) -> tuple[Any, str, bool]:
    """(a page record's row, its audit preview, whether its declared charset was passed over)."""
    kind = record.rec_type
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
    raw = _preview(record.format.startswith("arc"), headers, http)
    problem = _refuse(kind, mime, status, headers.get_header("WARC-Truncated"))
    if problem is not None:
        return problem, raw, False
    try:
        body = _body(record, http, max_bytes)
    except Exception as exc:  # noqa: BLE001 - a broken gzip/deflate/br body raises what its decoder raises
        encoding = http.get_header("Content-Encoding") if http is not None else None
        return (
            RecordError(
                "invalid_encoding",
                f"the HTTP body cannot be decompressed (Content-Encoding: {encoding}): {type(exc).__name__}",
            ),
            raw,
            False,
        )
    if len(body) > max_bytes:
        # not decompressed further (a compression bomb would not end); the framer skips the stored rest
        return (
            RecordError(
                "record_too_large",
                f"record body is over limits.max_record_bytes={max_bytes:,} bytes ({record.length:,} bytes stored)",
            ),
            raw,
            False,
        )
    text, mislabelled = _decode(body, charset)
    if text is None:
        return (
            RecordError(
                "invalid_encoding",
                f"no charset decodes the body (declared {charset or 'none'}, detected and UTF-8 tried)",
            ),
            raw,
            False,
        )
    if len(_CONTROL.findall(text[:65536])) > max(1, len(text[:65536]) // 100):
        return (
            RecordError("invalid_encoding", "the body is binary: control characters in more than 1% of it"),
            raw,
            False,
        )
    if not text.strip():
        return RecordError("empty_record", "the record has no body"), raw, False
    if kind != "conversion" and mime is None and not looks_like_html(text):
        return RecordError("not_html", "no content type, and the body is not an HTML page"), raw, False
    uuid = record_id.strip("<>").removeprefix("urn:uuid:") if record_id else None
    return {"id": uuid, "text": text, **fields}, raw, mislabelled


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


# -- the body --------------------------------------------------------------------------------------

_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")  # UTF-16 and UTF-32, either byte order


def _decode(body: bytes, declared: str | None) -> tuple[str | None, bool]:
    """(the body as text: the declared charset, the page's meta charset or uchardet's guess, then UTF-8,
    whichever decodes every byte and matches the bytes first (WHATWG names: latin-1 is read as
    windows-1252); whether the declared charset was passed over)."""
    from resiliparse.parse.encoding import detect_encoding, map_encoding_to_html5

    label = map_encoding_to_html5(declared, fallback_utf8=False) if declared else None
    candidates = [label, detect_encoding(body, from_html_meta=True), "utf-8"]
    for encoding in dict.fromkeys(c for c in candidates if c):
        if encoding != "utf-8" and _mislabelled(body, encoding):
            continue
        try:
            return body.decode(encoding).removeprefix("\ufeff"), label is not None and encoding != label
        except (UnicodeDecodeError, LookupError):
            continue
    return None, label is not None


def _mislabelled(body: bytes, encoding: str) -> bool:
    """Whether the bytes cannot be text in `encoding` although they decode: UTF-16/32 text has a byte
    order mark or NUL bytes (the high bytes of its markup, digits and spaces); text in a legacy charset
    is almost never valid UTF-8 with multi-byte sequences in it; an HTML page keeps its `<`."""
    sample = body[:4096]
    if not _known(encoding):
        return False
    if encoding.startswith(("utf-16", "utf_16", "utf-32", "utf_32")):
        return not sample.startswith(_WIDE_BOMS) and b"\0" not in sample
    if not body.isascii() and _is_utf8(body):
        return True
    return b"<" in sample and "<" not in sample.decode(encoding, "replace")


def _known(encoding: str) -> bool:
    try:
        codecs.lookup(encoding)
    except LookupError:
        return False
    return True


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_ZLIB_ENCODINGS = {"gzip": (GZIP_WBITS,), "x-gzip": (GZIP_WBITS,), "deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS)}


def _body(record: Any, http: Any, max_bytes: int) -> bytes:
    """Up to `max_bytes + 1` bytes of the payload, chunked transfer and gzip/deflate/br compression
    undone with the output bounded, so a compression bomb stops at the limit. Done here rather than by
    warcio, whose decoders print zlib's errors to stderr and return the body cut short (and whose br
    decoder does not work with brotli 1.2)."""
    from warcio.bufferedreaders import ChunkedDataReader

    encoding = (http.get_header("Content-Encoding") or "").strip().lower() if http is not None else ""
    chunked = http is not None and (http.get_header("Transfer-Encoding") or "").strip().lower() == "chunked"
    stream = ChunkedDataReader(record.raw_stream) if chunked else record.raw_stream
    if encoding == "br":
        return _unbrotli(stream, max_bytes)
    if encoding in _ZLIB_ENCODINGS:
        return _inflate_body(stream, _ZLIB_ENCODINGS[encoding], max_bytes)
    return stream.read(max_bytes + 1)


def _inflate_body(stream: Any, formats: tuple[int, ...], max_bytes: int) -> bytes:
    """A gzip or deflate body inflated, up to `max_bytes + 1` bytes. A body whose first bytes do not
    inflate was stored decoded with its Content-Encoding kept (crawlers do): read as it is, as warcio
    does; one that breaks after inflating started raises zlib.error."""
    first = stream.read(CHUNK)
    z = next((zlib.decompressobj(w) for w in formats if _starts_stream(first, w)), None)
    if z is None:
        return (first + stream.read(max(max_bytes + 1 - len(first), 0)))[: max_bytes + 1]
    out, data = bytearray(), first
    while data and len(out) <= max_bytes:
        out += z.decompress(data, max_bytes + 1 - len(out))
        if z.eof and z.unused_data.startswith(GZIP_MAGIC) and formats == (GZIP_WBITS,):  # the body's next member
            data, z = z.unused_data, zlib.decompressobj(GZIP_WBITS)
            continue
        data = z.unconsumed_tail or (b"" if z.eof else stream.read(CHUNK))
    return bytes(out)


def _starts_stream(data: bytes, wbits: int) -> bool:
    try:
        zlib.decompressobj(wbits).decompress(data, 1)
    except zlib.error:
        return False
    return True


def _unbrotli(stream: Any, max_bytes: int) -> bytes:
    import brotli

    decoder, out = brotli.Decompressor(), bytearray()
    while len(out) <= max_bytes and (chunk := stream.read(CHUNK)):
        out += decoder.process(chunk, output_buffer_limit=max_bytes + 1 - len(out))
        while len(out) <= max_bytes and not decoder.can_accept_more_data():
            out += decoder.process(b"", output_buffer_limit=max_bytes + 1 - len(out))
    return bytes(out)


def _preview(arc: bool, headers: Any, http: Any = None) -> str:
    """The record's WARC headers and HTTP status line: what the audit needs to find it in the crawl."""
    out = io.StringIO()
    out.write("ARC\n" if arc else f"{headers.protocol}\n")
    for name, value in headers.headers:
        out.write(f"{name}: {value}\n")
    if http is not None:
        out.write(f"\n{http.protocol} {http.statusline}\n")
    return out.getvalue()[:RAW_PREVIEW_CHARS]
