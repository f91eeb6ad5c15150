"""Main-text extraction on real HTML: the extract stage with trafilatura beside it with resiliparse, on
the same pages in one run, each with rules/extract/default.yaml's options.

Pages: every HTML page the Debian packages on this machine install under /usr/share/doc (real
manuals nobody here wrote; on the machine this was measured on, 244 pages of 23 MB). No page has a
hand-made "gold" extract, so quality is measured by what can be checked on every page:

- recall: the share of the page's paragraphs (`<p>` and `<dd>` of at least 80 characters, outside
  `<nav>`/`<header>`/`<footer>`) whose text is found in the extract;
- boilerplate: the share of extracted characters in lines that recur on at least half the pages of
  the same manual (folders of 4 or more pages): navigation bars, "Next"/"Previous", copyright lines;
- markup left: extracts holding an HTML tag (a `<div`, `<a href`, `<span`... that is not in the page's
  own `<pre>`/`<code>` text);
- speed: pages/s on one core, the page already decoded to text.

Results: bench/results/extract.json.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

from tests.warcs import DOCS, doc_files

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
MIN_PARAGRAPH = 80
_SPACE = re.compile(r"\s+")
_TAG = re.compile(r"<(?:div|span|a\s+href|table|td|tr|ul|li|p|img|script|style)[\s>]", re.I)


def pages() -> list[tuple[Path, str]]:
    return [(path, path.read_bytes().decode("utf-8", errors="replace")) for path in doc_files()]


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def paragraphs(html: str) -> tuple[list[str], str]:
    """The page's long paragraphs (normalised), and the text of its <pre>/<code> elements."""
    import lxml.html

    try:
        tree = lxml.html.fromstring(html)
    except Exception:  # an empty or unparseable page has no paragraphs to find
        return [], ""
    out = []
    for el in tree.iter("p", "dd"):
        if any(a.tag in ("nav", "header", "footer") for a in el.iterancestors()):
            continue
        text = _norm(el.text_content())
        if len(text) >= MIN_PARAGRAPH:
            out.append(text)
    code = " ".join(el.text_content() for el in tree.iter("pre", "code"))
    return out, code


def _engine(engine: str):
    """The extract stage's own call, with its default rules and the engine set."""
    from curate.schema import load_rules
    from curate.stages.extract import ExtractStage, main_text

    rules = load_rules(REPO / "rules" / "extract" / "default.yaml")
    stage = ExtractStage("extract", ExtractStage.Rules.model_validate({**rules, "engine": engine}))
    options = stage.options  # the engine alone, in this process: what a page costs without the sandbox
    return lambda html: main_text(html, **options) or ""


EXTRACTORS = ("trafilatura", "resiliparse")


def recurring_lines(corpus: list[tuple[Path, str]], extracts: list[str]) -> set[tuple[Path, str]]:
    """(manual folder, line) pairs found in at least half the extracts of a folder of 4+ pages."""
    by_folder: dict[Path, list[str]] = defaultdict(list)
    for (path, _), text in zip(corpus, extracts):
        by_folder[path.parent].append(text)
    recurring = set()
    for folder, texts in by_folder.items():
        if len(texts) < 4:
            continue
        counts = Counter(line for text in texts for line in {_norm(x) for x in text.splitlines() if x.strip()})
        recurring |= {(folder, line) for line, n in counts.items() if n >= len(texts) / 2}
    return recurring


def measure(name: str, corpus: list[tuple[Path, str]], truth: list[tuple[list[str], str]]) -> dict:
    extract = _engine(name)
    extract(corpus[0][1])  # imports and first-call set-up are not per-page cost
    start = time.perf_counter()
    extracts = [extract(html) for _, html in corpus]
    seconds = time.perf_counter() - start
    found = wanted = markup = empty = 0
    for text, (paras, code) in zip(extracts, truth):
        flat = _norm(text)
        wanted += len(paras)
        found += sum(p[:200] in flat for p in paras)
        tags = set(_TAG.findall(text)) - set(_TAG.findall(code))
        markup += bool(tags)
        empty += not text.strip()
    recurring = recurring_lines(corpus, extracts)
    chars = sum(len(t) for t in extracts)
    boiler = sum(
        len(line)
        for (path, _), text in zip(corpus, extracts)
        for line in text.splitlines()
        if (path.parent, _norm(line)) in recurring
    )
    return {
        "seconds": round(seconds, 2),
        "pages_per_s": round(len(corpus) / seconds, 1),
        "mb_per_s": round(sum(len(h.encode()) for _, h in corpus) / seconds / 1e6, 2),
        "paragraph_recall": round(found / wanted, 4) if wanted else None,
        "boilerplate_share": round(boiler / chars, 4) if chars else None,
        "pages_with_markup_left": markup,
        "empty_extracts": empty,
        "extracted_chars": chars,
    }


def main() -> dict:
    corpus = pages()
    if not corpus:
        sys.exit(f"no HTML pages under {DOCS}")
    truth = [paragraphs(html) for _, html in corpus]
    results = {name: measure(name, corpus, truth) for name in EXTRACTORS}
    t, r = results["trafilatura"], results["resiliparse"]
    result = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": {
            "pages": len(corpus),
            "mb": round(sum(len(h.encode()) for _, h in corpus) / 1e6, 1),
            "manuals": len({p.parent for p, _ in corpus}),
            "paragraphs": sum(len(p) for p, _ in truth),
            "where": str(DOCS),
        },
        "extractors": results,
        "ratios": {"resiliparse_speed_vs_trafilatura": round(r["pages_per_s"] / t["pages_per_s"], 1)},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "extract.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
