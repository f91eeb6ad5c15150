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
from curate.schema import StrictModel
from curate.stages.base import DROP, KEEP, Resources, Stage, rejected_by, with_decisions


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

    def setup(self) -> None:
        # loaded once per worker, before the first batch
        if self.rules.engine == "trafilatura":
            import trafilatura  # noqa: F401

            # trafilatura logs an ERROR for every page it finds nothing in; the stage's rule and reason say it
            logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
        else:
            import resiliparse.extract.html2text  # noqa: F401

    def main_text(self, html: str) -> str | None:
        r = self.rules
        if not looks_like_html(html):  # a fragment or plain text is a page's body
            html = f"<html><body>{html}</body></html>"
        if r.engine == "resiliparse":
            from resiliparse.extract.html2text import extract_plain_text

            return extract_plain_text(
                html,
                main_content=True,
                list_bullets=False,
                alt_texts=False,
                links=r.include_links,
                comments=r.include_comments,
                skip_elements=None if r.include_tables else ["table"],
            )
        import trafilatura

        return trafilatura.extract(
            html,
            favor_precision=r.favor == "precision",
            favor_recall=r.favor == "recall",
            include_tables=r.include_tables,
            include_comments=r.include_comments,
            include_links=r.include_links,
            include_formatting=r.include_formatting,
            deduplicate=r.deduplicate,
            with_metadata=False,
        )

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        r, start = self.rules, time.perf_counter()
        summary = ExtractSummary(records=df.height)
        texts, sizes, actions, rules, reasons = [], [], [], [], []
        types = df["content_type"].to_list() if "content_type" in df.columns else [None] * df.height
        for text, content_type in zip(df["text"].to_list(), types):
            if not isinstance(text, str) or (
                r.only == "html" and content_type not in HTML_TYPES and not looks_like_html(text)
            ):
                texts.append(text)
                sizes.append(None)
                actions.append(KEEP)
                rules.append(None)
                reasons.append(None)
                continue
            summary.pages += 1
            summary.html_chars += len(text)
            main = (self.main_text(text) or "").strip()
            summary.text_chars += len(main)
            rule = "extract:no_main_text" if not main else "extract:too_short" if len(main) < r.min_chars else None
            summary.no_main_text += rule == "extract:no_main_text"
            summary.too_short += rule == "extract:too_short"
            texts.append(main if rule is None else text)  # a dropped page is kept as it came, for the audit
            sizes.append(len(text))
            actions.append(DROP if rule else KEEP)
            rules.append(rule)
            reasons.append(
                f"{len(main):,} characters of main text in {len(text):,} of HTML (min_chars {r.min_chars:,})"
                if rule
                else None
            )
        summary.seconds = round(time.perf_counter() - start, 3)
        self.summary = summary
        out = df.with_columns(pl.Series("text", texts, dtype=pl.Utf8), pl.Series("html_chars", sizes, dtype=pl.Int64))
        return with_decisions(out, actions, rules, reasons)
