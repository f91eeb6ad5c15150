"""The extract stage: an HTML page's main text instead of its markup, boilerplate left out; pages
without enough main text dropped with their sizes; everything that is not a page passes untouched."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

from curate.schema import load_rules
from curate.stages.base import ACTION, REASON, RULE
from curate.stages.extract import ExtractRules, ExtractStage, looks_like_html
from tests.conftest import RULES, run, write_pipeline
from tests.warcs import doc_files

ARTICLE = (
    "Insulin pens should be stored in the refrigerator before first use and kept at room temperature "
    "for up to four weeks once opened. Never freeze insulin, and protect it from direct sunlight. "
    "If the liquid looks cloudy when it should be clear, do not use it and ask your pharmacist for a "
    "replacement. Always check the expiry date printed on the label before each injection."
)
PAGE = f"""<!DOCTYPE html>
<html><head><title>Storing insulin</title><script>var tracking = "load-analytics-now";</script></head>
<body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/shop">Shop our catalogue</a></li></ul></nav>
<div class="cookie-banner">We use cookies to improve your experience. Accept all cookies</div>
<main><article><h1>Storing insulin safely</h1><p>{ARTICLE}</p></article></main>
<footer>Copyright 2026 Example Pharmacy Ltd. All rights reserved. Privacy policy | Terms</footer>
</body></html>"""


def _stage(**rules) -> ExtractStage:
    stage = ExtractStage("extract", ExtractRules.model_validate(rules))
    stage.setup()
    return stage


def _frame(texts: list[str | None], messages=None) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": [f"r{i}" for i in range(len(texts))], "text": texts}, schema={"id": pl.Utf8, "text": pl.Utf8}
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        (PAGE, True),
        ('<?xml version="1.0" encoding="UTF-8"?>\n<html>\n<head>', True),  # XHTML
        ("\ufeff<!-- saved page -->\n<!doctype HTML><p>x", True),
        ("<body><p>a fragment with a body</p></body>", True),
        ("Use the <html> tag to start a page.", False),  # prose about HTML is not a page
        ("<p>a bare paragraph</p>", False),
        ("Plain text.", False),
    ],
)
def test_what_counts_as_an_html_page(text, expected):
    assert looks_like_html(text) is expected


@pytest.mark.parametrize("engine", ["resiliparse", "trafilatura"])
def test_a_page_keeps_its_article_and_loses_navigation_banners_scripts_and_footer(engine):
    out = _stage(engine=engine).process(_frame([PAGE]))
    text = out["text"][0]
    assert out[ACTION][0] == "keep" and "Never freeze insulin" in text and "Storing insulin safely" in text
    for boilerplate in ("Shop our catalogue", "cookies", "load-analytics-now", "All rights reserved", "<p>"):
        assert boilerplate not in text
    assert out["html_chars"][0] == len(PAGE)


def test_what_is_not_a_page_passes_untouched_unless_every_text_is_one():
    plain = "A plain document about tides and the moon, written without any markup at all. " * 4
    out = _stage().process(_frame([plain, None]))
    assert out["text"].to_list() == [plain, None] and out["html_chars"].to_list() == [None, None]
    assert (out[ACTION] == "keep").all()
    every = _stage(only="all").process(_frame(["<p>" + plain + "</p>"]))
    assert every["text"][0] == plain.strip() and every["html_chars"][0] is not None


def test_options_of_one_engine_are_refused_with_the_other():
    with pytest.raises(ValueError, match="favor, deduplicate: options of engine trafilatura"):
        ExtractRules.model_validate({"engine": "resiliparse", "favor": "precision", "deduplicate": True})
    assert ExtractRules.model_validate({"engine": "trafilatura", "favor": "precision"}).favor == "precision"


def test_a_crawled_record_is_a_page_when_its_content_type_says_so():
    fragment = f"<title>Storing insulin</title><nav>Home | Shop</nav><p>{ARTICLE}</p>"  # no <html> or doctype
    df = _frame([fragment, fragment]).with_columns(content_type=pl.Series(["text/html", "text/plain"]))
    out = _stage().process(df)
    assert ARTICLE in out["text"][0] and "<" not in out["text"][0] and out["html_chars"][0] == len(fragment)
    assert out["text"][1] == fragment and out["html_chars"][1] is None  # plain text, as its type says


def test_pages_without_enough_main_text_are_dropped_with_their_sizes():
    empty = "<html><head><script>track()</script><style>p {color: red}</style></head><body></body></html>"
    short = "<html><body><article><p>Page moved. See the new address.</p></article></body></html>"
    output = _stage().run(_frame([empty, short, PAGE]))
    out = output.frame
    assert out[RULE].to_list() == ["extract:no_main_text", "extract:too_short", None]
    assert re.fullmatch(r"\d+ characters of main text in [\d,]+ of HTML \(min_chars 200\)", out[REASON][1])
    assert out["text"][1] == short  # a rejected page is kept as it came, for the audit
    assert output.summary | {"seconds": 0} == {
        "records": 3,
        "pages": 3,
        "no_main_text": 1,
        "too_short": 1,
        "failed": 0,
        "html_chars": len(empty) + len(short) + len(PAGE),
        "text_chars": output.summary["text_chars"],
        "seconds": 0,
    }
    assert _stage(min_chars=0).process(_frame([short]))[ACTION][0] == "keep"


DOC_PAGES = doc_files()


@pytest.mark.skipif(len(DOC_PAGES) < 20, reason="needs the HTML manuals Debian packages install in /usr/share/doc")
def test_real_manual_pages_become_text_without_markup():
    pages = [p.read_text(errors="replace") for p in DOC_PAGES[:: max(1, len(DOC_PAGES) // 40)]][:40]
    stage = ExtractStage("extract", ExtractRules.model_validate(load_rules(RULES / "extract" / "default.yaml")))
    stage.setup()
    output = stage.run(_frame(pages))
    out, summary = output.frame, output.summary
    assert summary["pages"] == len(pages)  # every manual page is recognised as HTML
    kept = out.filter(pl.col(ACTION) == "keep")
    assert kept.height >= 0.8 * len(pages)
    assert summary["text_chars"] < summary["html_chars"]
    markup = [t for t in kept["text"] if re.search(r"</?(?:div|span|td|tr|table|body|head)[\s>]", t)]
    assert len(markup) <= 0.05 * kept.height


def test_a_pipeline_of_crawled_pages_reports_its_extraction(tmp_path):
    rows = [
        {"id": "page", "text": PAGE, "url": "https://pharmacy.example/insulin"},
        {"id": "stub", "text": "<html><body><p>Coming soon.</p></body></html>", "url": "https://x.example/"},
        {"id": "doc", "text": ARTICLE},
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    stages = [{"stage": "extract", "rules": str(RULES / "extract/default.yaml")}, {"stage": "normalize"}]
    result = run(write_pipeline(tmp_path, [{"path": "in.jsonl", "columns": ["url"]}], stages), tmp_path / "out")
    kept = pl.read_parquet(tmp_path / "out" / "data" / "*.parquet").sort("id")
    assert kept["id"].to_list() == ["doc", "page"] and "Never freeze insulin" in kept["text"][1]
    assert "<" not in kept["text"][1]
    summary = result.manifest["stage_summaries"]["extract"]
    assert summary["pages"] == 2 and summary["too_short"] == 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["extract"]
