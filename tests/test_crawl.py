"""Web crawls as input: WARC, WET and ARC records become text records with their URL and crawl columns;
every record that is not a page is counted as skipped, every page that cannot be used is quarantined
with its reason, and a cut-off file says so."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import brotli
import polars as pl
import pytest

from curate.config import load_pipeline
from curate.errors import ConfigError
from curate.io.crawl import CRAWL_COLUMNS
from curate.io.parse import LocalFile, parse_rows
from curate.io.rows import Skipped, Truncated
from curate.records import RecordError
from tests.conftest import REPO, RULES, run, write_pipeline
from tests.warcs import Rec, doc_files, doc_pages, pages_warc, record_id, write_warc

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
