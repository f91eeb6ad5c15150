"""`extract`: the main text of HTML pages, with resiliparse (default) or trafilatura — what crawled web
pages need before any other stage can judge them (navigation, footers, cookie banners and scripts are
not the page).

A record whose `text` is an HTML page (it starts like one, or its `content_type` column, which crawl
inputs have, says text/html) gets its main text in place of the markup; its original size stays in
`html_chars`. A page with no main text, or less than `min_chars` of it, is dropped with the
rule and its sizes as the reason. With `only: html` (the default) a `text` that is not HTML passes
untouched, so a pipeline can mix pages and plain documents; chat records always pass untouched.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

import polars as pl
from pydantic import Field, model_validator

from curate.io.crawl import HTML_TYPES, looks_like_html
from curate.sandbox import RecordTimeout, Sandbox
from curate.schema import StrictModel
from curate.stages.base import DROP, KEEP, QUARANTINE, Resources, Stage, rejected_by, with_decisions


def main_text(
    html: str,
    *,
    engine: str,
    favor: str,
    tables: bool,
    comments: bool,
    links: bool,
    formatting: bool,
    deduplicate: bool,
) -> str | None:
    """A page's main text with the chosen engine (run in the stage's sandbox process)."""
    if not looks_like_html(html):  # a fragment or plain text is a page's body
        html = f"<html><body>{html}</body></html>"
    if engine == "resiliparse":
        from resiliparse.extract.html2text import extract_plain_text

        return extract_plain_text(
            html,
            main_content=True,
            list_bullets=False,
            alt_texts=False,
            links=links,
            comments=comments,
            skip_elements=None if tables else ["table"],
        )
    import trafilatura

    # trafilatura logs an ERROR for every page it finds nothing in; the stage's rule and reason say it
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    return trafilatura.extract(
        html,
        favor_precision=favor == "precision",
        favor_recall=favor == "recall",
        include_tables=tables,
        include_comments=comments,
        include_links=links,
        include_formatting=formatting,
        deduplicate=deduplicate,
        with_metadata=False,
    )


class ExtractRules(StrictModel):
    # resiliparse: 17x faster, more of each page's paragraphs, a little more boilerplate (bench/extract.py)
    engine: Literal["resiliparse", "trafilatura"] = "resiliparse"
    only: Literal["html", "all"] = "html"  # all: every text record is treated as a page
    favor: Literal["balanced", "precision", "recall"] = "balanced"  # trafilatura's trade-off
    include_tables: bool = True
    include_comments: bool = False  # a page's comment section
    include_links: bool = False  # keep link targets in the text
    include_formatting: bool = False  # trafilatura: bold/italic/headings as Markdown
    deduplicate: bool = False  # trafilatura's own removal of repeated segments within a page
    min_chars: int = Field(200, ge=0)  # less main text than this: dropped (extract:too_short)

    @model_validator(mode="after")
    def _engine_options(self) -> "ExtractRules":
        if self.engine == "resiliparse":
            only_trafilatura = [
                name
                for name, default in (("favor", "balanced"), ("include_formatting", False), ("deduplicate", False))
                if getattr(self, name) != default
            ]
            if only_trafilatura:
                raise ValueError(f"{', '.join(only_trafilatura)}: options of engine trafilatura, not resiliparse")
        return self


class ExtractSummary(StrictModel):
    records: int = 0
    pages: int = 0  # records whose text was extracted as a page
    no_main_text: int = 0
    too_short: int = 0
    failed: int = 0  # pages quarantined: over the per-record time limit, or the engine failed on them
    html_chars: int = 0  # of the pages
    text_chars: int = 0  # extracted from them
    seconds: float = 0.0


class ExtractStage(Stage):
    stage = "extract"
    Rules = ExtractRules
    Summary = ExtractSummary
    resources = Resources(cpus=1, memory_gb=1)

    @classmethod
    def produces(cls, rules: ExtractRules) -> list[str]:
        return ["html_chars"]

    @classmethod
    def criteria(cls, rules: ExtractRules, rejected: pl.DataFrame) -> list[tuple[str, ExtractRules]]:
        if rejected_by(rejected, "extract:too_short"):
            return [("extract min_chars", rules.model_copy(update={"min_chars": 0}))]
        return []

    @classmethod
    def merge_summaries(cls, parts: list[dict]) -> dict:
        merged = super().merge_summaries(parts)
        return {**merged, "seconds": round(merged.get("seconds", 0.0), 3)}

    @property
    def options(self) -> dict:
        """The rules as `main_text`'s keyword arguments."""
        r = self.rules
        return {
            "engine": r.engine,
            "favor": r.favor,
            "tables": r.include_tables,
            "comments": r.include_comments,
            "links": r.include_links,
            "formatting": r.include_formatting,
            "deduplicate": r.deduplicate,
        }

    def setup(self) -> None:
        # Extraction runs in a sandbox process with a time limit per page: resiliparse's main-content pass
        # is quadratic in nesting depth (a page of 100,000 nested <div>s takes ~17 minutes) and native code
        # cannot be interrupted from inside; the child imports the engine once, before the first page.
        self.sandbox = Sandbox("curate.stages.extract:main_text", self.options, self.context.record_seconds)

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        r, start = self.rules, time.perf_counter()
        summary = ExtractSummary(records=df.height)
        texts = df["text"].to_list()
        types = df["content_type"].to_list() if "content_type" in df.columns else [None] * df.height
        pages = [
            i
            for i, (text, content_type) in enumerate(zip(texts, types))
            if isinstance(text, str) and (r.only == "all" or content_type in HTML_TYPES or looks_like_html(text))
        ]
        sizes: list[int | None] = [None] * df.height
        actions, rules, reasons = [KEEP] * df.height, [None] * df.height, [None] * df.height
        for i, main in zip(pages, self.sandbox.map([texts[i] for i in pages])):
            html = texts[i]
            summary.pages += 1
            summary.html_chars += len(html)
            sizes[i] = len(html)
            if isinstance(main, Exception):  # over the time limit, or the engine failed on this page
                summary.failed += 1
                actions[i] = QUARANTINE
                rules[i] = "extract:timeout" if isinstance(main, RecordTimeout) else "extract:error"
                reasons[i] = f"{len(html):,} characters of HTML: {main}"
                continue
            main = (main or "").strip()
            summary.text_chars += len(main)
            rule = "extract:no_main_text" if not main else "extract:too_short" if len(main) < r.min_chars else None
            summary.no_main_text += rule == "extract:no_main_text"
            summary.too_short += rule == "extract:too_short"
            if rule is None:
                texts[i] = main  # a dropped page is kept as it came, for the audit
            else:
                actions[i], rules[i] = DROP, rule
                reasons[i] = (
                    f"{len(main):,} characters of main text in {len(html):,} of HTML (min_chars {r.min_chars:,})"
                )
        summary.seconds = round(time.perf_counter() - start, 3)
        self.summary = summary
        out = df.with_columns(pl.Series("text", texts, dtype=pl.Utf8), pl.Series("html_chars", sizes, dtype=pl.Int64))
        return with_decisions(out, actions, rules, reasons)
