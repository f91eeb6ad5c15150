"""Web crawls as input: WARC, WET and ARC records become text records with their URL and crawl columns;
every record that is not a page is counted as skipped, every page that cannot be used is quarantined
with its reason, and a cut-off file says so."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import brotli
import polars as pl
import pytest

from curate.config import load_pipeline
from curate.errors import ConfigError
from curate.io.crawl import CRAWL_COLUMNS
from curate.io.parse import LocalFile, parse_rows
from curate.io.readers import read_batches
from curate.io.rows import Skipped, Truncated
from curate.io.sources import resolve_inputs
from curate.records import RecordError
from tests.conftest import REPO, RULES, run, write_pipeline
from tests.warcs import (
    Rec,
    damage_crc,
    damage_deflate,
    doc_files,
    doc_pages,
    edit_record,
    gzip_members,
    header,
    pages_warc,
    record_id,
    set_header,
    shift_length,
    warc_records,
    write_warc,
)

MARKUP = re.compile(r"<div[\s>]|</p>|</a>|<a href|<span[\s>]|</li>")  # the manuals quote <divide> and <p>
ARTICLE = (
    "Insulin pens should be stored in the refrigerator before first use and kept at room temperature "
    "for up to four weeks once opened. Never freeze insulin, and protect it from direct sunlight."
)


needs_docs = pytest.mark.skipif(
    len(doc_files()) < 60, reason="needs the HTML manuals Debian packages install in /usr/share/doc"
)


def _page(body: str = ARTICLE, title: str = "Storing insulin") -> bytes:
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
        f"<nav><a href='/'>Home</a> | <a href='/shop'>Shop</a></nav><main><p>{body}</p></main>"
        "<footer>Copyright 2026 Example Pharmacy</footer></body></html>"
    ).encode()


def _rows(path: Path, max_bytes: int = 1_000_000) -> list[tuple[int, object, str | None]]:
    return list(parse_rows(LocalFile(path), max_bytes))


def _records(path: Path, **kw) -> list[dict]:
    return [obj for _, obj, _ in _rows(path, **kw) if isinstance(obj, dict)]


def _stages(*names: str) -> list[dict]:
    return [{"stage": n, "rules": str(RULES / n / "default.yaml")} for n in names]


@needs_docs
@pytest.mark.parametrize("name", ["docs.warc.gz", "docs.warc"])
def test_real_pages_in_a_warc_become_clean_text_with_their_url_and_crawl_columns(tmp_path, name):
    pages = doc_pages(limit=24)
    warc = pages_warc(tmp_path / name, limit=24)
    pipeline = write_pipeline(tmp_path, [{"path": str(warc)}], _stages("url", "extract"))
    result = run(pipeline, tmp_path / "out")
    df = pl.read_parquet(sorted((tmp_path / "out" / "data").glob("*.parquet")))
    read = next(a for a in result.manifest["accounting"] if a["stage"] == "read")
    assert read["rows_in"] == len(pages) and read["quarantined"] == 0
    assert read["skipped"] == {"warc_request": len(pages), "warc_warcinfo": 1}  # not pages, not lost
    assert set(CRAWL_COLUMNS) <= set(df.columns)
    assert df.height >= 20  # a few tables of contents have too little main text
    urls = dict(pages)
    for row in df.iter_rows(named=True):
        assert row["url"] in urls and row["domain"] == row["url"].split("/")[2]
        assert row["id"] == record_id(row["url"]) and row["warc_record_id"] == f"<urn:uuid:{row['id']}>"
        assert (row["content_type"], row["http_status"]) == ("text/html", "200")
        assert row["crawl_date"].startswith("2026-11-") and row["html_chars"] > len(row["text"])
        assert not MARKUP.search(row["text"]), MARKUP.search(row["text"])


def test_every_page_that_cannot_be_used_is_quarantined_with_its_reason(tmp_path):
    big = b"<html><body>" + b"<p>word </p>" * 20_000 + b"</body></html>"
    records = [
        Rec("https://ok.example/a", _page()),
        Rec("https://ok.example/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(64), content_type="image/png"),
        Rec("https://ok.example/gone", _page(), status="404 Not Found"),
        Rec("https://ok.example/moved", b"", status="301 Moved Permanently"),
        Rec("https://ok.example/cut", _page(), warc_headers={"WARC-Truncated": "length"}),
        Rec("https://ok.example/binary", b"<html><body>" + bytes(range(1, 32)) * 20 + b"</body></html>"),
        Rec("https://ok.example/badbrotli", b"not brotli at all", http_headers=[("Content-Encoding", "br")]),
        Rec("https://ok.example/brotli", brotli.compress(_page()), http_headers=[("Content-Encoding", "br")]),
        Rec("https://ok.example/gzip", gzip.compress(_page()), http_headers=[("Content-Encoding", "gzip")]),
        Rec(  # a compression bomb: 50 MB of spaces in 48 kB, stopped at the limit
            "https://ok.example/bomb", gzip.compress(b" " * 50_000_000), http_headers=[("Content-Encoding", "gzip")]
        ),
        Rec("https://ok.example/big", big),
        Rec("https://ok.example/empty", b"   \n"),
        Rec("https://ok.example/untyped", b"just some bytes, no markup", content_type=None),
        Rec("https://ok.example/untyped-page", _page(), content_type=None),
    ]
    warc = write_warc(tmp_path / "bad.warc.gz", records)
    by_url = {}
    for _, obj, raw in _rows(warc, max_bytes=100_000):
        if isinstance(obj, RecordError):
            assert raw is not None and "WARC-Target-URI: " in raw  # the audit can find it in the crawl
            by_url[raw.split("WARC-Target-URI: ")[1].split("\n")[0]] = obj.rule
        elif isinstance(obj, dict):
            by_url[obj["url"]] = "kept"
    assert by_url == {
        "https://ok.example/a": "kept",
        "https://ok.example/logo.png": "not_html",
        "https://ok.example/gone": "http_error",
        "https://ok.example/moved": "http_error",
        "https://ok.example/cut": "truncated_record",
        "https://ok.example/binary": "invalid_encoding",
        "https://ok.example/badbrotli": "invalid_encoding",
        "https://ok.example/brotli": "kept",
        "https://ok.example/gzip": "kept",
        "https://ok.example/bomb": "record_too_large",
        "https://ok.example/big": "record_too_large",
        "https://ok.example/empty": "empty_record",
        "https://ok.example/untyped": "not_html",
        "https://ok.example/untyped-page": "kept",
    }
    # and a run accounts for every one of them in rejected/, with the reason
    pipeline = write_pipeline(tmp_path, [{"path": str(warc)}], _stages("extract"), limits={"max_record_bytes": 100_000})
    result = run(pipeline, tmp_path / "out")
    read = next(a for a in result.manifest["accounting"] if a["stage"] == "read")
    assert read["quarantined"] == 10 and read["kept"] == 4 and read["skipped"]["warc_request"] == len(records)
    rejected = pl.read_parquet(sorted((tmp_path / "out" / "rejected" / "read").glob("*.parquet")))
    assert sorted(rejected["rule"].to_list()) == sorted(r for r in by_url.values() if r != "kept")
    reasons = rejected.filter(pl.col("rule") == "http_error")["reason"].to_list()
    assert sorted(reasons) == ["HTTP status 301: not a page", "HTTP status 404: not a page"]


@pytest.mark.parametrize("name", ["cut.warc.gz", "cut.warc"])
def test_a_cut_off_crawl_file_keeps_the_records_before_the_cut_and_says_where(tmp_path, name):
    whole = write_warc(tmp_path / f"whole-{name}", [Rec(f"https://ok.example/{i}", _page()) for i in range(6)])
    data = whole.read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[: len(data) * 2 // 3])
    rows = _rows(cut)
    kept = [obj for _, obj, _ in rows if isinstance(obj, dict)]
    assert 2 <= len(kept) < 6
    assert isinstance(rows[-1][1], Truncated) and rows[-1][0] > len(kept)
    assert all(not isinstance(obj, Truncated) for _, obj, _ in rows[:-1])


@pytest.mark.parametrize("name", ["notes.warc", "notes.arc", "notes.warc.gz", "notes.wet"])
def test_a_file_that_is_not_a_crawl_is_one_quarantined_row(tmp_path, name):
    fake = tmp_path / name
    line = b'{"text": "a JSONL line in a file named like a crawl"}\n'
    fake.write_bytes(gzip.compress(line) if name.endswith(".gz") else line)
    rows = _rows(fake)
    assert len(rows) == 1 and isinstance(rows[0][1], RecordError) and rows[0][1].rule == "invalid_warc"


def test_the_charset_comes_from_the_header_then_the_page_then_detection(tmp_path):
    vietnamese = "Bệnh nhân cần uống thuốc đúng giờ mỗi ngày và tái khám sau hai tuần điều trị."
    japanese = "インスリンは冷蔵庫で保存してください。開封後は室温で四週間まで使用できます。"
    records = [
        Rec(
            "https://a.example/latin",
            _page("café crème brûlée").decode().encode("latin-1"),
            content_type="text/html; charset=ISO-8859-1",
        ),
        Rec(
            "https://a.example/meta",
            f'<html><head><meta charset="shift_jis"></head><body><p>{japanese}</p></body></html>'.encode("shift_jis"),
            content_type="text/html",
        ),
        Rec("https://a.example/utf8", _page(vietnamese), content_type="text/html"),
        # declared wrongly: the header's charset cannot decode it, detection can
        Rec("https://a.example/wrong", _page(vietnamese), content_type="text/html; charset=us-ascii"),
    ]
    texts = {r["url"]: r["text"] for r in _records(write_warc(tmp_path / "cs.warc", records))}
    assert "café crème brûlée" in texts["https://a.example/latin"]
    assert japanese in texts["https://a.example/meta"]
    assert vietnamese in texts["https://a.example/utf8"] and vietnamese in texts["https://a.example/wrong"]


def test_wet_conversion_records_are_plain_text_that_extract_leaves_alone(tmp_path):
    text = f"{ARTICLE}\nIf the liquid looks cloudy when it should be clear, ask your pharmacist.\n" * 2
    wet = write_warc(
        tmp_path / "crawl.wet.gz",
        [Rec("https://www.pharmacy.example/insulin", text.encode(), kind="conversion", content_type="text/plain")],
    )
    pipeline = write_pipeline(tmp_path, [{"path": str(wet)}], _stages("extract"))
    run(pipeline, tmp_path / "out")
    df = pl.read_parquet(sorted((tmp_path / "out" / "data").glob("*.parquet")))
    row = df.row(0, named=True)
    assert row["text"] == text and row["html_chars"] is None  # not a page: untouched
    assert (row["domain"], row["content_type"], row["http_status"]) == ("pharmacy.example", "text/plain", None)


def _arc(records: list[tuple[str, bytes]]) -> bytes:
    version = b"1 0 curate-tests\nURL IP-address Archive-date Content-type Archive-length\n"
    out = b"filedesc://t.arc 0.0.0.0 20261101120000 text/plain %d\n%s\n" % (len(version), version)
    for url, body in records:
        block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + body
        out += b"%s 192.0.2.1 20261101120000 text/html %d\n%s\n" % (url.encode(), len(block), block)
    return out


def test_arc_files_are_read_with_ids_derived_from_the_file_and_row(tmp_path):
    data = _arc([("http://www.example.com/a.html", _page()), ("http://example.org/b", _page("other " * 40))])
    (tmp_path / "old.arc").write_bytes(data)
    (tmp_path / "old.arc.gz").write_bytes(gzip.compress(data))
    for name in ("old.arc", "old.arc.gz"):
        rows = _rows(tmp_path / name)
        assert rows[0][1] == Skipped("arc_header")
        recs = [obj for _, obj, _ in rows if isinstance(obj, dict)]
        assert [(r["url"], r["domain"], r["crawl_date"]) for r in recs] == [
            ("http://www.example.com/a.html", "example.com", "2026-11-01T12:00:00Z"),
            ("http://example.org/b", "example.org", "2026-11-01T12:00:00Z"),
        ]
        assert all(r["id"] is None and r["warc_record_id"] is None for r in recs)  # the reader derives the id
    pipeline = write_pipeline(tmp_path, [{"path": str(tmp_path / "old.arc")}], _stages("extract"))
    run(pipeline, tmp_path / "a")
    run(pipeline, tmp_path / "b", force=True)
    first, second = (pl.read_parquet(sorted((tmp_path / d / "data").glob("*.parquet"))) for d in ("a", "b"))
    assert first["id"].to_list() == second["id"].to_list() and first["id"].null_count() == 0


@needs_docs
def test_a_pipeline_reading_crawls_has_the_url_column_without_listing_it(tmp_path):
    (tmp_path / "crawl").mkdir()
    pages_warc(tmp_path / "crawl" / "part-0.warc.gz", limit=2)
    for path in ("crawl/*.warc.gz", "crawl", "s3://bucket/crawl/*.warc.gz"):
        pipeline = write_pipeline(tmp_path, [{"path": path}], _stages("url"))
        assert load_pipeline(pipeline).stages[0].stage == "url"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.jsonl").write_text(json.dumps({"text": ARTICLE}) + "\n")
    pipeline = write_pipeline(tmp_path, [{"path": "docs"}], _stages("url"))
    with pytest.raises(ConfigError, match=r"needs columns \['url'\]"):
        load_pipeline(pipeline)


@needs_docs
def test_the_commoncrawl_pipeline_runs_a_warc_of_real_pages_to_gated_shards(tmp_path):
    warc = pages_warc(tmp_path / "crawl.warc.gz", limit=60)
    result = run(REPO / "pipelines" / "commoncrawl.yaml", tmp_path / "out", inputs=[str(warc)])
    assert result.manifest["gates"] and result.failed_gates == [] and result.entry is not None
    df = pl.read_parquet(sorted((tmp_path / "out" / "data").glob("*.parquet")))
    assert df.height > 0 and set(CRAWL_COLUMNS) <= set(df.columns)
    assert not any(MARKUP.search(t) for t in df["text"].to_list())


# -- a damaged file loses nothing it can read ------------------------------------------------------
# Each test damages a WARC of real pages as a red team did (issue 37), reads it through the read stage
# (whose accounting checks, batch by batch, that rows_in == kept + quarantined), and says which pages
# were kept, which rows were quarantined with which rule, and that nothing else happened.


def _pack(tmp_path: Path, n: int, gz: bool) -> tuple[bytes, list[str]]:
    """A WARC of `n` real pages, a response record each after the warcinfo record (record i is page
    i - 1; in a .warc.gz, gzip member i), and the pages' urls."""
    pages = doc_pages(limit=n)
    path = write_warc(tmp_path / ("packed.warc.gz" if gz else "packed.warc"), [Rec(u, b) for u, b in pages], False)
    return path.read_bytes(), [u for u, _ in pages]


def _read_crawl(tmp_path: Path, name: str, data: bytes, max_bytes: int = 2_000_000):
    """What the read stage makes of a crawl file's bytes: the kept records' urls in order; the
    quarantined rows in file order as (rule, the url its preview names or None, reason); the skipped
    counts. Every row has a number of its own."""
    (tmp_path / name).write_bytes(data)
    pipeline = load_pipeline(write_pipeline(tmp_path, [{"path": name}], []))
    batches = list(read_batches(resolve_inputs(pipeline), batch_size=1000, max_record_bytes=max_bytes))
    accounts = [b.account() for b in batches]  # raises unless rows_in == kept + quarantined
    records = pl.concat([b.records for b in batches], how="diagonal_relaxed")
    rejected = pl.concat([b.quarantined for b in batches]).sort("src_row")
    assert sum(a.rows_in for a in accounts) == records.height + rejected.height
    rows = records["src_row"].to_list() + rejected["src_row"].to_list()
    assert len(set(rows)) == len(rows)
    quarantined = [
        (rule, _named_url(raw), reason) for rule, raw, reason in rejected.select("rule", "raw", "reason").rows()
    ]
    skipped = Counter()
    for account in accounts:
        skipped.update(account.skipped)
    return records.sort("src_row")["url"].to_list(), quarantined, dict(skipped)


def _named_url(raw: str | None) -> str | None:
    return raw.split("WARC-Target-URI: ")[1].split("\n")[0] if raw and "WARC-Target-URI: " in raw else None


def _rules(quarantined) -> list[tuple[str, str | None]]:
    return [(rule, url) for rule, url, _ in quarantined]


@needs_docs
@pytest.mark.parametrize(
    "junk", [b"this is not gzip data, a log line appended by a careless script\n" * 30, b"\x1f\x8b\x08" + bytes(40)]
)
def test_junk_after_the_last_gzip_member_ends_the_file_after_every_record(tmp_path, junk):
    data, urls = _pack(tmp_path, 5, gz=True)
    kept, quarantined, skipped = _read_crawl(tmp_path, "crawl.warc.gz", data + junk)
    assert kept == urls and skipped == {"warc_warcinfo": 1}
    [(rule, url, reason)] = quarantined
    assert (rule, url) == ("corrupt_bytes", None)
    assert f"bytes {len(data):,}-{len(data) + len(junk):,} of the file skipped" in reason
    # zeros after the last member are padding, not data
    assert _read_crawl(tmp_path, "padded.warc.gz", data + bytes(4096))[:2] == (urls, [])


@needs_docs
def test_garbage_between_two_gzip_members_is_skipped_and_the_next_member_read(tmp_path):
    data, urls = _pack(tmp_path, 5, gz=True)
    at = gzip_members(data)[3][0]  # the member of the third page
    garbage = b"GARBAGE \x00\xff" * 50
    kept, quarantined, _ = _read_crawl(tmp_path, "crawl.warc.gz", data[:at] + garbage + data[at:])
    assert kept == urls
    [(rule, url, reason)] = quarantined
    assert (rule, url) == ("corrupt_bytes", None)
    assert f"bytes {at:,}-{at + len(garbage):,} of the file skipped" in reason and "not gzip data" in reason
    assert f"reading resumed at the next gzip member, byte {at + len(garbage):,}" in reason


@needs_docs
@pytest.mark.parametrize("damage", [damage_crc, damage_deflate])
def test_a_damaged_gzip_member_costs_its_own_record_and_the_later_members_are_read(tmp_path, damage):
    data, urls = _pack(tmp_path, 5, gz=True)
    start, end = gzip_members(data)[3]
    kept, quarantined, _ = _read_crawl(tmp_path, "crawl.warc.gz", damage(data, 3))
    assert kept == urls[:2] + urls[3:]
    [(rule, url, reason)] = quarantined
    assert (rule, url) == ("corrupt_record", urls[2])  # its headers inflated: the audit can find it
    assert f"the gzip member that starts at byte {start:,} is corrupt" in reason and f"byte {end:,}" in reason


@needs_docs
def test_damage_in_a_file_of_one_gzip_member_costs_the_record_it_hits_and_says_what_was_skipped(tmp_path):
    data, urls = _pack(tmp_path, 6, gz=False)
    whole = gzip.compress(data, mtime=0)
    at = len(whole) // 2
    kept, quarantined, _ = _read_crawl(tmp_path, "crawl.warc.gz", whole[:at] + b"\xff" * 32 + whole[at + 32 :])
    assert kept == urls[: len(kept)] and 0 < len(kept) < 6  # everything inflated before the damage
    [(rule, url, reason)] = quarantined
    assert (rule, url) == ("corrupt_record", urls[len(kept)])
    assert f"bytes 0-{len(whole):,} of the file skipped" in reason and "no gzip member after it" in reason


@needs_docs
@pytest.mark.parametrize("name", ["crawl.warc", "crawl.warc.gz"])
def test_a_record_with_no_target_uri_is_quarantined_and_the_records_after_it_read(tmp_path, name):
    data, urls = _pack(tmp_path, 5, gz=name.endswith(".gz"))
    damaged = edit_record(data, 3, lambda r: set_header(r, "WARC-Target-URI", None), gz=name.endswith(".gz"))
    kept, quarantined, _ = _read_crawl(tmp_path, name, damaged)
    assert kept == urls[:2] + urls[3:]
    [(rule, url, reason)] = quarantined
    assert (rule, url) == ("missing_header", None) and "response record at byte" in reason
    assert "no WARC-Target-URI" in reason


@needs_docs
def test_garbage_between_two_records_of_a_plain_warc_is_skipped_and_the_next_record_read(tmp_path):
    data, urls = _pack(tmp_path, 5, gz=False)
    at = warc_records(data)[3][0]
    garbage = b"a stray line a script wrote into the file\n" * 3
    kept, quarantined, _ = _read_crawl(tmp_path, "crawl.warc", data[:at] + garbage + data[at:])
    assert kept == urls  # the record before the garbage ended as it declared: it is kept
    [(rule, url, reason)] = quarantined
    assert (rule, url) == ("corrupt_bytes", None)
    assert (
        f"{len(garbage):,} bytes from byte {at:,} skipped to the next record header, at byte {at + len(garbage):,}"
        in reason
    )


@needs_docs
def test_a_gzip_member_whose_header_is_overwritten_is_one_corrupt_bytes_row(tmp_path):
    data, urls = _pack(tmp_path, 5, gz=True)
    start, end = gzip_members(data)[3]
    kept, quarantined, _ = _read_crawl(tmp_path, "crawl.warc.gz", data[:start] + b"\xff" * 8 + data[start + 8 :])
    assert kept == urls[:2] + urls[3:]  # the third page's bytes are in the range skipped
    [(rule, url, reason)] = quarantined
    assert (rule, url) == ("corrupt_bytes", None)
    assert reason.startswith(f"bytes {start:,}-{end:,} of the file skipped: not gzip data")


@needs_docs
@pytest.mark.parametrize(("field", "why"), [("WARC-Type", "no WARC-Type"), ("Content-Length", "no Content-Length")])
def test_a_record_missing_a_header_it_cannot_do_without_is_quarantined_and_the_next_read(tmp_path, field, why):
    data, urls = _pack(tmp_path, 5, gz=False)
    kept, quarantined, _ = _read_crawl(
        tmp_path, "crawl.warc", edit_record(data, 3, lambda r: set_header(r, field, None), gz=False)
    )
    assert kept == urls[:2] + urls[3:]
    [(rule, url, reason)] = quarantined
    assert (rule, url) == ("missing_header", urls[2]) and why in reason


@needs_docs
@pytest.mark.parametrize("name", ["crawl.warc", "crawl.warc.gz", "one-member.warc.gz"])
@pytest.mark.parametrize("by", [100, -100, 1, -1, 3_000_000, 10**10])
def test_a_wrong_content_length_costs_the_lying_record_only(tmp_path, name, by):
    gz = name == "crawl.warc.gz"
    data, urls = _pack(tmp_path, 5, gz=gz)
    damaged = edit_record(data, 3, lambda r: shift_length(r, by), gz=gz)
    if name == "one-member.warc.gz":  # no member boundaries: the record boundaries alone resynchronise
        damaged = gzip.compress(damaged, mtime=0)
    kept, quarantined, _ = _read_crawl(tmp_path, name, damaged)
    assert kept == urls[:2] + urls[3:]  # not the lying record with the next one's headers, nor short
    [(rule, url, reason)] = quarantined
    assert (rule, url) == ("bad_length", urls[2])
    declared = int(header(_record_bytes(data, 3, gz), "Content-Length"))
    assert f"declares Content-Length {declared + by:,}" in reason


def _record_bytes(data: bytes, index: int, gz: bool) -> bytes:
    if gz:
        start, end = gzip_members(data)[index]
        return gzip.decompress(data[start:end])
    start, end = warc_records(data)[index]
    return data[start:end]


@needs_docs
def test_a_record_that_holds_a_warc_inside_it_is_not_cut_at_the_inner_header(tmp_path):
    inner = write_warc(tmp_path / "inner.warc", [Rec("https://inner.example/", _page())], False).read_bytes()
    page = b"<html><body><p>An archived crawl:</p><pre>\r\n\r\n" + inner + b"</pre></body></html>"
    data = write_warc(
        tmp_path / "outer.warc", [Rec("https://outer.example/", page), Rec("https://b.example/", _page())]
    )
    kept, quarantined, _ = _read_crawl(tmp_path, "crawl.warc", data.read_bytes())
    assert kept == ["https://outer.example/", "https://b.example/"] and quarantined == []


@pytest.mark.parametrize("name", ["old.arc", "old.arc.gz"])
@pytest.mark.parametrize("by", [30, -30])
def test_an_arc_record_with_a_wrong_length_costs_that_record_only(tmp_path, name, by):
    urls = [f"http://a{i}.example/" for i in range(5)]
    data = _arc([(u, _page(f"page {i} " * 30)) for i, u in enumerate(urls)])
    line_start = data.index(urls[2].encode())
    line_end = data.index(b"\n", line_start)
    fields = data[line_start:line_end].rsplit(b" ", 1)
    data = data[:line_start] + fields[0] + b" %d" % (int(fields[1]) + by) + data[line_end:]
    rows = _rows_of(tmp_path / name, gzip.compress(data) if name.endswith(".gz") else data)
    assert [o["url"] for _, o, _ in rows if isinstance(o, dict)] == urls[:2] + urls[3:]
    [error] = [o for _, o, _ in rows if isinstance(o, (RecordError, Truncated))]
    assert error.rule == "bad_length" and f"declares Content-Length {int(fields[1]) + by:,}" in error.reason


def _rows_of(path: Path, data: bytes) -> list[tuple[int, object, str | None]]:
    path.write_bytes(data)
    return _rows(path)


@needs_docs
@pytest.mark.parametrize("name", ["crawl.warc", "crawl.wet"])
def test_a_plain_crawl_file_cut_inside_a_header_keeps_every_record_before_it_and_says_where(tmp_path, name):
    data, urls = _pack(tmp_path, 5, gz=False)
    start = warc_records(data)[4][0]
    for cut in (start + 3, start + 40, start + data[start:].index(b"\r\n\r\n") + 2):  # the status line, a field
        kept, quarantined, _ = _read_crawl(tmp_path, name, data[:cut])
        assert kept == urls[:3]
        [(rule, url, reason)] = quarantined
        assert rule == "truncated_file" and f"inside the headers of the record at byte {start:,}" in reason


def test_a_body_whose_bytes_do_not_match_its_declared_charset_is_read_as_what_it_is(tmp_path):
    vietnamese = "Bệnh nhân cần uống thuốc đúng giờ mỗi ngày và tái khám sau hai tuần điều trị."
    records = [
        # ASCII/UTF-8 bytes labelled UTF-16, of an even length: they decode as UTF-16, to CJK mojibake
        Rec("https://a.example/utf16-label", _even(_page()), content_type="text/html; charset=utf-16"),
        Rec("https://a.example/utf16le-label", _even(_page(vietnamese)), content_type="text/html; charset=UTF-16LE"),
        # valid multi-byte UTF-8 labelled windows-1252: read as cp1252 it would be "Bá»‡nh"
        Rec("https://a.example/cp1252-label", _page(vietnamese), content_type="text/html; charset=windows-1252"),
        # what the label says, and the bytes agree: still read with the label
        Rec(
            "https://a.example/utf16",
            "\ufeff".encode("utf-16-le") + _page(vietnamese).decode().encode("utf-16-le"),
            content_type="text/html; charset=utf-16",
        ),
        Rec(
            "https://a.example/latin",
            _page("café crème").decode().encode("cp1252"),
            content_type="text/html; charset=windows-1252",
        ),
    ]
    rows = _rows(write_warc(tmp_path / "cs.warc", records))
    texts = {o["url"]: o["text"] for _, o, _ in rows if isinstance(o, dict)}
    assert len(texts) == 5 and all(t.startswith("<!DOCTYPE html>") for t in texts.values())
    assert ARTICLE in texts["https://a.example/utf16-label"]
    assert (
        vietnamese in texts["https://a.example/utf16le-label"] and vietnamese in texts["https://a.example/cp1252-label"]
    )
    assert vietnamese in texts["https://a.example/utf16"] and "café crème" in texts["https://a.example/latin"]
    # the decision is counted: one note per record whose label was passed over
    assert sum(o == Skipped("noted:charset_mislabelled") for _, o, _ in rows) == 3


def _even(data: bytes) -> bytes:
    return data + b" " * (len(data) % 2)


def test_what_warcio_would_print_of_a_record_never_reaches_stderr_or_the_log(tmp_path, capfd, caplog):
    secret = b"<p>Customer Maria Lopez wrote from maria.lopez1978@example.org with SSN 078-05-1120</p>"
    page = b"<html><body><p>" + b"word " * 200 + b"</p>" + secret + b"</body></html>"
    records = [
        Rec("https://shop.example/a", page),
        Rec("https://shop.example/short", page),  # its Content-Length will stop before the secret
        Rec("https://shop.example/b", page),
        Rec("https://shop.example/find me?from=maria.lopez1978@example.org", page),  # warcio logs this url
        Rec(
            "https://shop.example/broken-gzip",
            gzip.compress(page)[:60] + b"\x00" * 200,
            http_headers=[("Content-Encoding", "gzip")],
        ),  # warcio prints zlib's error and a cut body
    ]
    data = write_warc(tmp_path / "w.warc", records, with_requests=False).read_bytes()
    data = edit_record(data, 2, lambda r: shift_length(r, -len(secret) - 30), gz=False)
    capfd.readouterr()  # what writing printed
    caplog.clear()
    kept, quarantined, skipped = _read_crawl(tmp_path, "crawl.warc", data)
    assert kept == [
        "https://shop.example/a",
        "https://shop.example/b",
        "https://shop.example/find%20me?from=maria.lopez1978@example.org",
    ]
    assert _rules(quarantined) == [
        ("bad_length", "https://shop.example/short"),
        ("invalid_encoding", "https://shop.example/broken-gzip"),
    ]
    assert skipped == {"warc_warcinfo": 1, "noted:warcio_warning": 1}  # the url warcio rewrote, counted
    out, err = capfd.readouterr()
    assert "maria" not in out + err and "078-05" not in out + err and err == ""
    assert "maria" not in caplog.text and not caplog.records


@needs_docs
def test_a_run_over_a_crawl_damaged_every_way_accounts_for_every_row(tmp_path):
    data, urls = _pack(tmp_path, 8, gz=True)
    damaged = edit_record(data, 2, lambda r: shift_length(r, 77), gz=True)
    damaged = edit_record(damaged, 4, lambda r: set_header(r, "WARC-Target-URI", None), gz=True)
    at = gzip_members(damaged)[8][0]
    damaged = damage_crc(damaged, 6)
    damaged = damaged[:at] + b"garbage" * 20 + damaged[at:] + b"trailing junk"
    (tmp_path / "crawl.warc.gz").write_bytes(damaged)
    pipeline = write_pipeline(tmp_path, [{"path": str(tmp_path / "crawl.warc.gz")}], _stages("extract"))
    result = run(pipeline, tmp_path / "out")
    read = next(a for a in result.manifest["accounting"] if a["stage"] == "read")
    assert read["reasons"] == {"bad_length": 1, "corrupt_bytes": 2, "corrupt_record": 1, "missing_header": 1}
    assert read["kept"] == 5 and read["rows_in"] == read["kept"] + read["quarantined"] == 10
