"""The url stage: blocklists with subdomain matching, listed URLs, banned words and substrings,
allow-lists that override them, counts per list, and records without a usable URL."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml

from curate.config import load_pipeline
from curate.errors import ConfigError
from curate.schema import load_rules
from curate.stages.base import ACTION, REASON, RULE, StageContext
from curate.stages.url import UrlRules, UrlStage, split_url
from tests.conftest import RULES, run, write_pipeline

BLOCKED = """# a blocklist as people keep them: domains, a URL, comments, blank lines
example.com
www.tracker.net   # the www. means the site
casino.example.org/promo/

not a domain at all
"""


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://Ads.Example.COM/Path?q=1#top", ("ads.example.com", "/path?q=1")),
        ("http://user:pw@shop.example.com:8080/cart", ("shop.example.com", "/cart")),
        ("example.com", ("example.com", "")),
        ("HTTPS://example.com./", ("example.com", "/")),
        ("mailto:someone@example.com", None),
        ("javascript:void(0)", None),
        ("localhost:8000/x", None),
        ("", None),
        ("not a url", None),
    ],
)
def test_split_url(url, expected):
    assert split_url(url) == expected


def _stage(tmp_path, **rules) -> UrlStage:
    (tmp_path / "blocked.txt").write_text(BLOCKED)
    (tmp_path / "allowed.txt").write_text("docs.example.com\n")
    stage = UrlStage("url", UrlRules.model_validate(rules), StageContext(base_dir=tmp_path))
    stage.setup()
    return stage


def _frame(urls: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": [f"u{i}" for i in range(len(urls))], "url": urls}, schema={"id": pl.Utf8, "url": pl.Utf8}
    )


def test_a_domain_blocks_its_subdomains_and_a_listed_url_only_itself(tmp_path):
    stage = _stage(tmp_path, blocklists=[{"name": "spam", "path": "blocked.txt"}])
    urls = [
        "https://example.com/a",  # the domain
        "https://ads.example.com/b",  # a subdomain
        "https://badexample.com/",  # another domain that ends the same
        "https://tracker.net/x",  # listed as www.tracker.net
        "http://www.casino.example.org/promo",  # the listed URL, www. and no trailing slash
        "https://casino.example.org/about",  # the same site, another page
        "https://example.community/",
    ]
    out = stage.process(_frame(urls))
    assert out[ACTION].to_list() == ["drop", "drop", "keep", "drop", "drop", "keep", "keep"]
    assert set(out[RULE].drop_nulls()) == {"url:spam"}
    assert out[REASON][1] == "ads.example.com: domain example.com is on list spam"
    assert out[REASON][4] == "www.casino.example.org: URL casino.example.org/promo is on list spam"


def test_words_are_whole_url_tokens_and_substrings_match_anywhere(tmp_path):
    stage = _stage(tmp_path, banned_words={"adult": ["porn", "xxx"]}, banned_substrings={"admin": ["/wp-admin"]})
    urls = [
        "https://free-porn.example.net/",
        "https://www.pornography-research.org/",  # 'porn' is not a token of it
        "https://site.com/videos/xxx/1",
        "https://www.sussex.ac.uk/xxxl-sizes",  # neither
        "https://blog.org/wp-admin/edit.php",
    ]
    out = stage.process(_frame(urls))
    assert out[ACTION].to_list() == ["drop", "keep", "drop", "keep", "drop"]
    assert out[RULE].to_list() == ["url:adult", None, "url:adult", None, "url:admin"]
    assert out[REASON][0] == "free-porn.example.net: word porn is on list adult"


def test_an_allowlist_overrides_every_block_and_each_list_is_counted(tmp_path):
    stage = _stage(
        tmp_path,
        blocklists=[{"name": "spam", "path": "blocked.txt"}],
        allowlists=[{"name": "partners", "path": "allowed.txt"}],
        banned_substrings={"admin": ["/admin"]},
    )
    urls = ["https://docs.example.com/admin", "https://example.com/admin", "https://ok.org/", None]
    output = stage.run(_frame(urls))
    assert output.frame[ACTION].to_list() == ["keep", "drop", "keep", "keep"]
    assert output.frame["url_list"].to_list() == [None, "spam", None, None]
    assert output.summary == {
        "records": 4,
        "missing": 1,
        "matched": {"partners": 1, "spam": 2, "admin": 2},
        "kept_by_allowlist": {"partners": 1},
    }


def test_records_without_a_web_url_are_kept_or_quarantined_with_the_reason(tmp_path):
    urls = [None, "", "mailto:x@y.z", "https://fine.org/"]
    kept = _stage(tmp_path).process(_frame(urls))
    assert (kept[ACTION] == "keep").all()
    quarantined = _stage(tmp_path, missing="quarantine").process(_frame(urls))
    assert quarantined[ACTION].to_list() == ["quarantine"] * 3 + ["keep"]
    assert quarantined[REASON].to_list()[:3] == ["url: no URL", "url: no URL", "url: not a web URL: 'mailto:x@y.z'"]


def test_flag_keeps_the_record_and_names_the_list(tmp_path):
    stage = _stage(tmp_path, action="flag", banned_words={"adult": ["porn"]})
    out = stage.process(_frame(["https://porn.example.net/", "https://ok.org/"]))
    assert (out[ACTION] == "keep").all() and out["url_list"].to_list() == ["adult", None]


def test_list_names_are_unique_and_a_missing_list_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        UrlRules(blocklists=[{"name": "a", "path": "x"}], banned_words={"a": ["w"]})
    with pytest.raises(ConfigError, match=r"url.blocklists: gone: file not found: .*missing.txt"):
        _stage(tmp_path, blocklists=[{"name": "gone", "path": "missing.txt"}])


def test_default_rules_drop_adult_urls_and_keep_health_pages():
    stage = UrlStage("url", UrlRules.model_validate(load_rules(RULES / "url" / "default.yaml")))
    stage.setup()
    urls = [
        "https://www.xvideos.com/video123",
        "https://example.net/free-porn-videos",
        "https://www.nhs.uk/conditions/sexually-transmitted-infections-stis/",
        "https://www.plannedparenthood.org/learn/sex-and-relationships",
        "https://www.sussex.ac.uk/",
    ]
    out = stage.process(_frame(urls))
    assert out[ACTION].to_list() == ["drop", "drop", "keep", "keep", "keep"]


def test_a_pipeline_reads_lists_beside_its_rules_and_reports_counts_per_list(tmp_path):
    (tmp_path / "rules" / "lists").mkdir(parents=True)
    (tmp_path / "rules" / "lists" / "spam.txt").write_text("spam.example\n")
    rules = {"blocklists": [{"name": "spam", "path": "lists/spam.txt"}], "banned_words": {"adult": ["porn"]}}
    (tmp_path / "rules" / "url.yaml").write_text(yaml.safe_dump(rules))
    rows = [
        {"id": "a", "text": "A page about bread.", "url": "https://bakery.org/bread"},
        {"id": "b", "text": "Buy now.", "url": "https://shop.spam.example/deal"},
        {"id": "c", "text": "Adult site.", "url": "https://porn.site.net/"},
        {"id": "d", "text": "No address."},
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    stages = [{"stage": "url", "rules": "rules/url.yaml"}]
    result = run(write_pipeline(tmp_path, [{"path": "in.jsonl", "columns": ["url"]}], stages), tmp_path / "out")
    kept = pl.read_parquet(tmp_path / "out" / "data" / "*.parquet")
    assert sorted(kept["id"]) == ["a", "d"]
    assert result.manifest["accounting"][1]["reasons"] == {"url:adult": 1, "url:spam": 1}
    summary = result.manifest["stage_summaries"]["url"]
    assert summary["matched"] == {"spam": 1, "adult": 1} and summary["missing"] == 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["stages"][0]["stage"] == "url" and report["stages"][0]["matched"] == {"spam": 1, "adult": 1}
    assert "list_files" in result.manifest["pipeline"]["stages"][0]
    relaxed = {x["criterion"]: x["more_records"] for x in result.manifest["sensitivity"]}
    assert relaxed == {"url blocklist spam": 1, "url banned words adult": 1}


def test_a_pipeline_without_a_url_column_is_refused_when_loaded(tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "x"}) + "\n")
    path = write_pipeline(tmp_path, [{"path": "in.jsonl"}], [{"stage": "url"}])
    with pytest.raises(ConfigError, match="url"):
        load_pipeline(path)
