"""Finding the records of a crawl file (WARC, WET, ARC; plain or .gz) in a byte stream that may be
damaged: the framing that curate.io.crawl turns into rows.

Every byte of the file is accounted for. `Framer.next()` returns, in file order, a record (`Frame`: its
header bytes, parsed, and its block to read), a `Gap` (bytes skipped that hold no readable record, its
reason naming their offsets and what was expected there) or the `End` (the file is cut off, or holds no
record header), then None; after each record, `Framer.finish()` reads what is left of it and says
whether its bytes were what it declared. The file is streamed: memory stays bounded.

The file is cut into records here, not by warcio's iterator (which stops at the first fault and prints
record bytes to stderr): each record's declared end is checked (the separator, then the next record's
header or the end of the file, must follow it; a header found inside a block ends the block unless the
declared end, checked up to 4 MiB ahead, is one too), and where the bytes are not what was declared the
reader resynchronises on the next record header (`WARC/1.x`; an ARC header line), or, in a .gz file, on
the next gzip member that inflates. A .gz file that starts with a record header is read uncompressed.

Faults of the file itself, each reason naming the byte offsets and what was expected there: `bad_length`
(a record whose Content-Length is wrong or not a number: the bytes up to the next record header are
skipped with it), `missing_header` (a record with no Content-Length), `corrupt_record` (a record whose
gzip member is damaged: its bytes cannot be trusted), `corrupt_bytes` (bytes skipped that hold no
readable record: gzip damage between records, junk after the last member, bytes where a record header
should start). Zeros after a gzip member are padding, not data. A file that is cut off ends with a
Truncated (`truncated_file`); one with no record header at all ends with one `invalid_warc`.
"""

from __future__ import annotations

import io
import re
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any

from curate.io.rows import RAW_PREVIEW_CHARS, Truncated
from curate.records import RecordError

CHUNK = 1 << 16  # bytes read at a time
GZIP_WBITS = zlib.MAX_WBITS | 16  # zlib's wbits for a gzip member
GZIP_MAGIC = b"\x1f\x8b\x08"  # a gzip member's first bytes (deflate)
_LOOKAHEAD = 1 << 22  # how far past a record boundary found inside a block the declared end is checked
_MAX_HEAD = 1 << 18  # WARC headers longer than this are not headers
_OUT_MAX = 1 << 20  # decompressed bytes per inflate call: a gzip bomb at the file level stays bounded
_VERIFY = 1 << 13  # compressed bytes inflated to accept a member header that a resync scan found


def open_framer(fh: Any, *, arc: bool, gz: bool) -> Framer:
    """The framer of one crawl file open as `fh` (binary): ARC records (`arc`) or WARC/WET ones, in a
    .gz file (`gz`) or not."""
    fmt = _ARC if arc else _WARC
    return Framer(_Source(_producer(fh, gz, fmt)), fmt)


# -- the bytes of a file ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    """Gzip data that does not inflate: file bytes `start`..`end` are skipped and reading resumes at
    `end` (the next member that inflates, or the end of the file). The damaged member had inflated to
    decompressed bytes `out_start`..`out_end` before it failed: delivered, they may hold a record."""

    start: int
    end: int
    why: str
    out_start: int
    out_end: int

    @property
    def reason(self) -> str:
        return f"bytes {self.start:,}-{self.end:,} of the file skipped: {self.why}"


@dataclass(frozen=True)
class _Cut:
    why: str


def _producer(fh: Any, gz: bool, fmt: _Format) -> _Plain | _Gzip:
    """What reads the file's bytes. A .gz file that starts with a record header, not gzip's magic, is
    read uncompressed (as warcio reads it); one that starts with anything else is gzip, damaged."""
    first = fh.read(16)
    if gz and not (fmt.starts_record(first, stopped=True) and not first.startswith(GZIP_MAGIC[:2])):
        return _Gzip(fh, first)
    return _Plain(fh, first)


class _Plain:
    """An uncompressed crawl file, read in chunks (`first`: its first bytes, read already)."""

    members = ()

    def __init__(self, fh: Any, first: bytes = b""):
        self.fh, self.first = fh, first

    def read_chunk(self) -> bytes | None:
        first, self.first = self.first, b""
        return first or self.fh.read(CHUNK) or None


class _Gzip:
    """A .gz crawl file (one gzip member per record, or one for all) inflated member by member. Damage
    does not end the file: every byte that inflated before it is delivered, then a `Damage` names the
    bytes skipped to the next member header that inflates; a file ending inside a member ends with a
    `_Cut` (gzip's own reader takes that for the end of the file)."""

    def __init__(self, fh: Any, first: bytes = b""):
        self.fh = fh
        self.raw, self.raw_at = first, 0  # compressed bytes read and not yet inflated; file offset of raw[0]
        self.out = 0  # decompressed bytes delivered
        self.members: deque[tuple[int, int]] = deque(maxlen=4096)  # (decompressed, file offset) of starts
        self.queued: Damage | None = None
        self.done = False
        self._member(0)

    def _member(self, at: int) -> None:
        self.z = zlib.decompressobj(GZIP_WBITS)
        self.member_at, self.member_out, self.fed = at, self.out, False
        self.members.append((self.out, at))

    def read_chunk(self) -> bytes | Damage | _Cut | None:
        while self.queued is None and not self.done:
            if not self.raw:
                self.raw = self.fh.read(CHUNK)
                if not self.raw:
                    self.done = True
                    if self.fed:
                        return _Cut(f"the file ends inside the gzip member that starts at byte {self.member_at:,}")
                    return None
            out = self._inflate()
            if out:
                return out
        damage, self.queued = self.queued, None
        return damage

    def _inflate(self) -> bytes:
        saved = self.z.copy()  # to inflate the same input again, up to the damage, if zlib refuses it
        try:
            out = self.z.decompress(self.raw, _OUT_MAX)
        except zlib.error as exc:
            return self._damaged(saved, exc)
        self.fed = True
        self.out += len(out)
        if self.z.eof:
            rest = self.z.unused_data
            at = self.raw_at + len(self.raw) - len(rest)
            self.raw, self.raw_at = rest, at
            self._member(at)
        else:
            tail = self.z.unconsumed_tail
            self.raw_at += len(self.raw) - len(tail)
            self.raw = tail
        return out

    def _damaged(self, saved: Any, exc: zlib.error) -> bytes:
        """What inflated before the damage (returned), and the Damage after it (queued)."""
        out, bad = self._salvage(saved)
        self.out += len(out)
        start, out_start, fed = self.member_at, self.member_out, self.fed
        zero = self.raw[:1] == b"\0"  # the resync scan starts after the member's first byte
        # from the member's second byte: damage can make zlib read on into the next member
        end, zeros = self._resync(max(start + 1, self.raw_at))
        what = str(exc).rpartition(": ")[2]
        if fed or out:
            why = f"the gzip member that starts at byte {start:,} is corrupt at byte {bad:,} ({what})"
        else:
            why = f"not gzip data where a member should start ({what})"
        after = f"reading resumed at the next gzip member, byte {end:,}" if self.raw else "no gzip member after it"
        if fed or out or not (zero and zeros):  # zeros where a member should start: padding, not data
            self.queued = Damage(start, end, f"{why}; {after}", out_start, self.out)
        self._member(end)
        return out

    def _salvage(self, z: Any) -> tuple[bytes, int]:
        """The current input inflated again, 4 KiB then a byte at a time, up to the byte zlib refuses:
        (every byte that inflated before the damage, the file offset of that byte)."""
        out, at = [], 0
        for step in (4096, 1):
            while at < len(self.raw):
                probe = z.copy()
                try:
                    out.append(z.decompress(self.raw[at : at + step]))
                except zlib.error:
                    z = probe
                    break
                at = min(at + step, len(self.raw))
        return b"".join(out), self.raw_at + at

    def _resync(self, start: int) -> tuple[int, bool]:
        """Skip to the next gzip member header at or after file offset `start` that actually inflates,
        reading on in chunks; the input then starts there. (Its offset, the end of the file if there is
        none; whether every byte skipped was a zero.) Memory stays bounded whatever the bytes."""
        buf, at = self.raw[start - self.raw_at :], start  # `at`: the file offset of buf[0]
        zeros, i = True, 0  # buf[:i] is skipped
        while True:
            k = buf.find(GZIP_MAGIC, i)
            if k < 0:  # none in what was read: read on, keeping the bytes a header may start in
                k = max(len(buf) - len(GZIP_MAGIC) + 1, i)
                zeros = zeros and not buf[i:k].strip(b"\0")
                more = self.fh.read(CHUNK)
                if not more:
                    self.raw, self.raw_at = b"", at + len(buf)
                    return at + len(buf), zeros and not buf[k:].strip(b"\0")
                buf, at, i = buf[k:] + more, at + k, 0
                continue
            zeros = zeros and not buf[i:k].strip(b"\0")
            if k > CHUNK:
                buf, at, k = buf[k:], at + k, 0
            buf, ended = self._read_to(buf, k + _VERIFY)
            if _inflates(memoryview(buf)[k : k + _VERIFY], ended):
                self.raw, self.raw_at = buf[k:], at + k
                return at + k, zeros
            zeros, i = False, k + 1  # gzip's magic bytes, but no member there

    def _read_to(self, buf: bytes, size: int) -> tuple[bytes, bool]:
        """`buf` with the file read on until it holds `size` bytes; whether the file ended first."""
        while len(buf) < size:
            more = self.fh.read(CHUNK)
            if not more:
                return buf, True
            buf += more
        return buf, False


def _inflates(data: Any, ended: bool) -> bool:
    """Whether `data` starts a gzip member that inflates without error: to its end, to 1 KiB of
    output, or (`ended`: the file ends within `data`) to the end of the file. Output is asked for: a
    header's name and extra fields would take any bytes."""
    z = zlib.decompressobj(GZIP_WBITS)
    try:
        out = z.decompress(data, _OUT_MAX)
    except zlib.error:
        return False
    return z.eof or len(out) >= 1024 or (ended and bool(out))


class _Source:
    """The decompressed bytes of a crawl file, with lookahead, in file order. Reading stops at gzip
    damage (`barrier`) until the framer has accounted for it (`resume`); `cut` says why a file ended
    early (inside a gzip member)."""

    def __init__(self, producer: _Plain | _Gzip):
        self.producer = producer
        self.buf, self.i = bytearray(), 0
        self.pos = 0  # decompressed offset of the next byte
        self.barrier: Damage | None = None
        self.ended = False
        self.cut: str | None = None

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return bytes(self.buf[self.i : self.i + n])

    def read(self, n: int) -> bytes:
        data = self.peek(n)
        self.skip(len(data))
        return data

    def skip(self, n: int) -> None:
        self.i += n
        self.pos += n

    def readline(self, limit: int) -> bytes:
        out = bytearray()
        while len(out) < limit:
            n = self.find(b"\n", min(4096, limit - len(out)))
            if n == 0:
                break
            out += self.read(n)
            if out.endswith(b"\n"):
                break
        return bytes(out)

    def find(self, byte: bytes, n: int) -> int:
        """How many of the next `n` bytes come up to and with the first `byte` (all of them if none)."""
        self._fill(n)
        end = min(self.i + n, len(self.buf))
        k = self.buf.find(byte, self.i, end)
        return (k + 1 if k >= 0 else end) - self.i

    def stopped(self) -> bool:
        """No byte can be read now: the end of the file, or gzip damage."""
        self._fill(1)
        return self.i >= len(self.buf)

    def at_end(self) -> bool:
        return self.stopped() and self.barrier is None

    def resume(self) -> Damage:
        damage, self.barrier = self.barrier, None
        assert damage is not None
        return damage

    def where(self, pos: int) -> str:
        """A decompressed offset, as someone looking for it in the file would need it."""
        members = self.producer.members
        if not members:
            return f"byte {pos:,}"
        at = next((file_at for out, file_at in reversed(members) if out <= pos), None)
        member = f", in the gzip member at byte {at:,}" if at is not None else ""
        return f"byte {pos:,} of the decompressed data{member}"

    def _fill(self, n: int) -> None:
        while len(self.buf) - self.i < n and not self.ended and self.barrier is None:
            item = self.producer.read_chunk()
            if item is None:
                self.ended = True
            elif isinstance(item, Damage):
                self.barrier = item
            elif isinstance(item, _Cut):
                self.ended, self.cut = True, item.why
            else:
                del self.buf[: self.i]
                self.i = 0
                self.buf += item


# -- cutting the bytes into records ----------------------------------------------------------------

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_WARC_HEAD = re.compile(rb"WARC/[01]\.\d+\r?\n" + _TOKEN + rb":")  # a header line, and a field name
# a blank line, then a WARC header: one record's end and the next one's start
_WARC_BOUNDARY = re.compile(rb"(?:\r\n\r|\n)\n" + _WARC_HEAD.pattern)
_ARC_LINE = rb"[A-Za-z][A-Za-z0-9+.\-]*:[^\n]* [^ \n]+ \d{12,14} [^ \n]+ \d+\r?\n"  # url ip date type length
_ARC_HEAD = re.compile(_ARC_LINE)
_ARC_START = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*:[^\n]*\Z")
_ARC_LINE_START = re.compile(rb"(?m)^" + _ARC_LINE)
_ARC_BOUNDARY = re.compile(rb"\n(?=" + _ARC_LINE + rb")")


@dataclass(frozen=True)
class _Format:
    """What a record header of a format looks like, and how records are separated."""

    name: str
    pad: int  # bytes after a position that show whether a record header starts there
    separators: tuple[bytes, ...]  # what writers put between a block and the next record
    closes: bool  # whether the separator alone shows that a block's length was right
    header: str  # what a record starts with, for the reasons

    @property
    def expected(self) -> str:
        """What must follow a record's block, for the reasons."""
        return f"{'a blank line' if self.closes else 'a newline'} and {self.header}, or the end of the file"

    def starts_record(self, data: bytes, stopped: bool) -> bool:
        """Whether `data` starts with a record header (the start of one, when the data stops in it)."""
        if self is _ARC:
            return bool(_ARC_HEAD.match(data) or (stopped and b"\n" not in data and _ARC_START.match(data)))
        cut = stopped and (data.startswith(b"WARC/") or b"WARC/".startswith(data))  # the data ends in it
        return bool(_WARC_HEAD.match(data) or (data and cut))

    def separates(self, blank: bytes, ended: bool) -> bool:
        """Whether the newlines after a block are a separator (its start, when the data ends in it)."""
        return blank in self.separators or (ended and any(s.startswith(blank) for s in self.separators))

    def find_header(self, data: bytes, lo: int, hi: int) -> int | None:
        """The first position in lo..hi where a record header starts (resynchronising: a WARC header
        anywhere, an ARC header at a line start)."""
        if self is _ARC:
            m = _ARC_LINE_START.search(data, lo)
            return m.start() if m and m.start() < hi else None
        i = data.find(b"WARC/", lo)
        while 0 <= i < hi:
            if _WARC_HEAD.match(data, i):
                return i
            i = data.find(b"WARC/", i + 1)
        return None

    def find_boundary(self, data: bytes, lo: int, hi: int) -> int | None:
        """The first position in lo..hi where a record's block ends and the next record's header
        follows: inside a block, the sign that its declared length runs on into the next record."""
        if self is _ARC:
            m = _ARC_BOUNDARY.search(data, lo)
            return m.start() if m and m.start() < hi else None
        i = data.find(b"\nWARC/", lo)
        while 0 <= i < hi + 3:
            for s in (i - 3, i - 1):  # \r\n\r\n or \n\n before the header
                if lo <= s < hi and _WARC_BOUNDARY.match(data, s):
                    return s
            i = data.find(b"\nWARC/", i + 1)
        return None

    def ends_record(self, data: bytes, ended: bool) -> bool:
        """Whether `data`, the bytes after a record's block, are its separator then the next record's
        header, or the end of the file (`ended`: the file ends within them)."""
        rest = data.lstrip(b"\r\n")
        blank = data[: len(data) - len(rest)]
        if not rest:
            return ended and self.separates(blank, ended=True)
        return self.separates(blank, ended=False) and self.starts_record(rest, ended)


_WARC = _Format("WARC", 128, (b"\r\n\r\n", b"\n\n"), True, "a WARC/1.x header line")
_ARC = _Format("ARC", 4096, (b"\n", b"\r\n", b""), False, "an ARC header line")


@dataclass
class Frame:
    """One record as the framer found it: its header bytes, parsed, and its block to read."""

    start: int
    where: str
    head: bytes
    headers: Any  # warcio StatusAndHeaders
    arc: bool
    length: int | None
    block: _Block | None = None
    problem: RecordError | None = None


@dataclass(frozen=True)
class Gap:
    """Bytes skipped that were not a readable record: a quarantine row."""

    rule: str
    reason: str
    raw: str | None = None


@dataclass(frozen=True)
class End:
    """The last row of a file: Truncated, or invalid_warc."""

    obj: Any


class Framer:
    """Cuts a crawl file's bytes into records by their declared lengths, checks each declared end,
    and where the bytes are not what was declared skips to the next record header (in chunks), so
    that one bad record or damaged stretch costs that record or stretch only."""

    def __init__(self, src: _Source, fmt: _Format):
        self.src, self.fmt = src, fmt
        self.records = 0  # records framed
        self.gaps = 0  # stretches of bytes skipped between records

    def next(self) -> Frame | Gap | End | None:
        """The next record, stretch of skipped bytes, or end of the file."""
        self._skip_blank_lines()
        if self.src.stopped():
            if self.src.barrier is not None:
                return self._damage_gap(self.src.resume())
            return End(Truncated(f"the file is cut off: {self.src.cut}")) if self.src.cut else None
        start = self.src.pos
        if not self.fmt.starts_record(self.src.peek(self.fmt.pad), self._stops_within(self.fmt.pad)):
            return self._garbage(start, f"bytes where {self.fmt.header} should start")
        return self._frame(start)

    def finish(self, frame: Frame) -> RecordError | Truncated | None:
        """Reads what is left of a record: None when it ended where it declared, else why not (the
        reader is then at the next record header, the end of the file, or gzip damage)."""
        where = frame.where
        if frame.block is None:  # no usable length: the record runs to the next header
            assert frame.problem is not None
            return self._skip_rest(frame, frame.problem)
        block = frame.block
        while block.read(CHUNK):
            pass
        if block.stop == 0:
            return RecordError(
                "bad_length",
                f"the record at {where} declares Content-Length {frame.length:,}, but the next record's header "
                f"starts {frame.length - block.left:,} bytes into its block, at {self.src.where(self.src.pos)}",
            )
        if block.left:
            if self.src.barrier is not None:
                return RecordError("corrupt_record", f"the record at {where} is damaged: {self.src.resume().reason}")
            return Truncated(
                f"the file is cut off in the record at {where}: {block.left:,} of its {frame.length:,} bytes "
                f"are missing ({self.src.cut or 'the file ends'})"
            )
        end = self.src.pos
        blank = self._skip_blank_lines()
        if self.src.stopped():
            if self.src.barrier is not None and self.src.barrier.out_start < self.src.pos:
                return RecordError("corrupt_record", f"the record at {where} is damaged: {self.src.resume().reason}")
            if self.fmt.separates(blank, ended=True):
                return None  # the last record; or damage after it, a row of its own
        elif self.fmt.separates(blank, ended=False) and (
            self.fmt.closes or self.fmt.starts_record(self.src.peek(self.fmt.pad), self._stops_within(self.fmt.pad))
        ):
            return None  # what follows, if not a record header, is a gap of its own
        return self._skip_rest(
            frame,
            RecordError(
                "bad_length",
                f"the record at {where} declares Content-Length {frame.length:,}, but what follows its block at "
                f"{self.src.where(end)} is not {self.fmt.expected}",
            ),
        )

    def _frame(self, start: int) -> Frame | Gap | End:
        where = self.src.where(start)
        head = self._read_head()
        complete = head.endswith(b"\n") and (self._is_arc or head.endswith((b"\n\r\n", b"\n\n")))
        if not complete:
            if self.src.barrier is not None:
                self.gaps += 1
                preview = head.decode("utf-8", "replace")[:RAW_PREVIEW_CHARS]
                return Gap("corrupt_record", f"the record at {where} is damaged: {self.src.resume().reason}", preview)
            if self.src.at_end():
                return End(Truncated(f"the file is cut off inside the headers of the record at {where}"))
            limit = self.fmt.pad if self._is_arc else _MAX_HEAD
            return self._garbage(start, f"a record header at {where} with no end within {limit:,} bytes")
        try:
            headers = _parse_head(head, self._is_arc)
        except Exception:  # noqa: BLE001 - what warcio's parsers raise; the message would quote the bytes
            return self._garbage(start, f"a record header at {where} that warcio cannot parse")
        self.records += 1
        frame = Frame(start, where, head, headers, self._is_arc, _declared_length(headers, self._is_arc))
        if frame.length is None:
            value = headers.get_header("length" if self._is_arc else "Content-Length")
            frame.problem = (
                RecordError("missing_header", f"the record at {where} has no Content-Length header")
                if value is None
                else RecordError("bad_length", f"the record at {where} declares Content-Length {value[:40]!r}")
            )
        else:
            frame.block = _Block(self, frame.length)
        return frame

    @property
    def _is_arc(self) -> bool:
        return self.fmt is _ARC

    def _read_head(self) -> bytes:
        """A record's header bytes: the ARC header line; the WARC lines up to the blank one."""
        if self._is_arc:
            return self.src.readline(self.fmt.pad)
        head = bytearray()
        while len(head) < _MAX_HEAD:
            line = self.src.readline(_MAX_HEAD - len(head))
            head += line
            if not line.endswith(b"\n") or line in (b"\r\n", b"\n"):
                break
        return bytes(head)

    def _skip_rest(self, frame: Frame, error: RecordError) -> RecordError:
        """A record whose end is not where it declared: its bytes up to the next record header are
        skipped, and its row says so (or that its gzip member is damaged, when that is the cause)."""
        start = self.src.pos
        self._scan_to_header(first=False)  # a header may start right here, after a wrong separator
        if self.src.barrier is not None and self.src.barrier.out_start < self.src.pos:
            return RecordError("corrupt_record", f"the record at {frame.where} is damaged: {self.src.resume().reason}")
        if self.src.pos == start:
            return error
        to = self._stopped_at()
        return RecordError(
            error.rule,
            f"{error.reason}; {self.src.pos - start:,} bytes from {self.src.where(start)} skipped to {to}",
        )

    def _garbage(self, start: int, what: str) -> Gap | End:
        """Bytes where a record header should be: skipped to the next header (or the end of the data)."""
        self._scan_to_header(first=start == self.src.pos)
        if self._nothing_yet() and self.src.at_end():
            return End(RecordError("invalid_warc", f"not a {self.fmt.name} file: it holds no record header"))
        self.gaps += 1
        to = self._stopped_at()
        return Gap(
            "corrupt_bytes",
            f"{what}: {self.src.pos - start:,} bytes from {self.src.where(start)} skipped to {to}",
        )

    def _damage_gap(self, damage: Damage) -> Gap | End:
        if self._nothing_yet() and damage.start == 0 and self.src.at_end():
            return End(RecordError("invalid_warc", f"not a gzip-compressed {self.fmt.name} file: {damage.reason}"))
        self.gaps += 1
        return Gap("corrupt_bytes", damage.reason)

    def _stopped_at(self) -> str:
        """Where a scan stopped, for a reason."""
        if not self.src.stopped():
            return f"the next record header, at {self.src.where(self.src.pos)}"
        return "gzip damage" if self.src.barrier is not None else "the end of the data"

    def _nothing_yet(self) -> bool:
        return self.records == 0 and self.gaps == 0

    def _scan_to_header(self, first: bool = True) -> None:
        """Skip to the next record header, the end of the data or gzip damage, a chunk at a time. The
        position where the scan starts is not a header (`first`)."""
        lo = 1 if first else 0
        while data := self.src.peek(CHUNK + self.fmt.pad):
            hi = len(data) if len(data) < CHUNK + self.fmt.pad else CHUNK
            hit = self.fmt.find_header(data, lo, hi)
            if hit is not None:
                self.src.skip(hit)
                return
            self.src.skip(max(hi, lo))
            lo = 0

    def _skip_blank_lines(self) -> bytes:
        """Skips the newlines at the reader's position (what ends a record), and returns them."""
        skipped = bytearray()
        while data := self.src.peek(64):  # a few, usually
            blank = len(data) - len(data.lstrip(b"\r\n"))
            skipped += self.src.read(blank)
            if blank < len(data):
                break
        return bytes(skipped)

    def _stops_within(self, n: int) -> bool:
        """Whether the data stops (ends, or is damaged) within the next `n` bytes."""
        return len(self.src.peek(n)) < n

    def declared_end_holds(self, left: int) -> bool:
        """Whether the bytes `left` bytes ahead (a block's declared end) are a record's separator and
        the next record's header, or the end of the file; checked no further than _LOOKAHEAD ahead."""
        if left > _LOOKAHEAD:
            return False
        data = self.src.peek(left + self.fmt.pad)
        if len(data) < left:
            return False  # the data ends, or is damaged, before the declared end
        ended = len(data) < left + self.fmt.pad and self.src.barrier is None and self.src.cut is None
        return self.fmt.ends_record(data[left:], ended)


class _Block:
    """One record's block as warcio reads it: its declared Content-Length, but ending early at a
    record boundary found inside it (a blank line then the next record's header) when the declared end
    is not a boundary itself (the length is too long), and at the end of the data or gzip damage."""

    def __init__(self, framer: Framer, length: int):
        self.framer, self.src, self.pad = framer, framer.src, framer.fmt.pad
        self.left = length  # declared bytes not yet read
        self.stop: int | None = None  # bytes to the boundary found inside the block
        self.clear = 0  # bytes ahead known to hold no boundary start
        self.trusted = False  # the declared end is a boundary: those inside are the payload's

    def read(self, n: int | None = None) -> bytes:
        return self._take(self._servable(self.left if n is None or n < 0 else n))

    def readline(self, limit: int | None = None) -> bytes:
        out = bytearray()
        while limit is None or limit < 0 or len(out) < limit:
            room = CHUNK if limit is None or limit < 0 else limit - len(out)
            piece = self._take(self.src.find(b"\n", self._servable(min(room, CHUNK))))
            out += piece
            if not piece or piece.endswith(b"\n"):
                break
        return bytes(out)

    def _take(self, n: int) -> bytes:
        data = self.src.read(n)
        self.left -= len(data)
        self.clear = max(self.clear - len(data), 0)
        if self.stop is not None:
            self.stop -= len(data)
        return data

    def _servable(self, n: int) -> int:
        """How many of the next `n` bytes belong to the block."""
        n = min(n, self.left)
        if self.stop is not None:
            return min(n, self.stop)
        if self.trusted or n <= self.clear:
            return n
        span = min(max(n, CHUNK), self.left)  # checked ahead: small reads (header lines) are not rechecked
        data = self.src.peek(span + self.pad)  # a boundary starting among those bytes shows in full
        s = self.framer.fmt.find_boundary(data, self.clear, span)
        if s is None:
            self.clear = span
            return n
        if self.framer.declared_end_holds(self.left):
            self.trusted = True  # the boundary is the payload's (a WARC inside a record)
            return n
        self.stop = s
        return min(n, s)


class RecordStream:
    """A record's header bytes, then its block: what warcio's loader parses."""

    def __init__(self, head: bytes, block: _Block):
        self.head, self.block = io.BytesIO(head), block

    def readline(self, limit: int | None = None) -> bytes:
        return self.head.readline(-1 if limit is None else limit) or self.block.readline(limit)

    def read(self, n: int | None = None) -> bytes:
        return self.head.read(-1 if n is None else n) or self.block.read(n)


def _parse_head(head: bytes, arc: bool) -> Any:
    """A record's header bytes as warcio's StatusAndHeaders (ARC fields: uri ... length)."""
    from warcio.recordloader import ARCHeadersParser
    from warcio.statusandheaders import StatusAndHeadersParser

    parser = ARCHeadersParser() if arc else StatusAndHeadersParser([], verify=False)
    return parser.parse(io.BytesIO(head))


def _declared_length(headers: Any, arc: bool) -> int | None:
    value = (headers.get_header("length" if arc else "Content-Length") or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None
