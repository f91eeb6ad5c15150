"""`normalize`: Unicode normalisation, mojibake repair (ftfy), control characters, whitespace."""

from __future__ import annotations

import re
from typing import Literal

import ftfy
import polars as pl
from pydantic import Field

from curate.code import code_spans
from curate.records import TURN_COLUMNS
from curate.schema import StrictModel
from curate.stages.base import DROP, KEEP, Stage, with_decisions


class NormalizeRules(StrictModel):
    unicode_form: Literal["NFC", "NFKC", "NFD", "NFKD"] | None = "NFC"
    fix_mojibake: bool = True
    fix_html_entities: bool = False
    remove_control_chars: bool = True
    uncurl_quotes: bool = False
    fix_character_width: bool = False
    normalize_whitespace: bool = True
    max_blank_lines: int = Field(1, ge=0)
    fields: list[Literal["text", "messages"]] = Field(default_factory=lambda: ["text", "messages"])


_WS = r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]"
_INNER = re.compile(rf"(?<=\S){_WS}+(?=\S)")  # a run between words: indentation is not touched
_ODD = re.compile(r"[\t\u00a0\u2000-\u200a\u202f\u205f\u3000]|(?<=\S)  ")  # anything _INNER would change
_TRAILING = re.compile(rf"{_WS}+\n")
_LEADING_BLANK = re.compile(rf"\A(?:{_WS}*\n)+")
# ASCII text that holds none of these is left unchanged by every ftfy fix we enable
# (NFC/NFKC are identities on ASCII), so it can skip ftfy, which costs ~0.3 ms a document.
_ASCII_NEEDS_FTFY = re.compile(r"[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\x7f&]")


class Normalizer:
    def __init__(self, rules: NormalizeRules):
        self.rules = rules
        self.config = ftfy.TextFixerConfig(
            unescape_html=rules.fix_html_entities,
            fix_encoding=rules.fix_mojibake,
            restore_byte_a0=rules.fix_mojibake,
            replace_lossy_sequences=rules.fix_mojibake,
            decode_inconsistent_utf8=rules.fix_mojibake,
            fix_c1_controls=rules.fix_mojibake,
            remove_control_chars=rules.remove_control_chars,
            uncurl_quotes=rules.uncurl_quotes,
            fix_latin_ligatures=rules.fix_character_width,
            fix_character_width=rules.fix_character_width,
            fix_line_breaks=True,
            normalization=rules.unicode_form,
            explain=False,
        )
        self.blank_lines = re.compile(r"\n{%d,}" % (rules.max_blank_lines + 2))
        self.blank_replacement = "\n" * (rules.max_blank_lines + 1)

    def __call__(self, text: str) -> str:
        out = text if text.isascii() and not _ASCII_NEEDS_FTFY.search(text) else ftfy.fix_text(text, self.config)
        if self.rules.normalize_whitespace:
            out = self.whitespace(out)
        return out

    def whitespace(self, text: str) -> str:
        """Collapse runs of spaces between words in prose; keep every line's indentation and the
        spacing inside code (curate.code: Python without its indentation is another program)."""
        odd = _ODD.search(text) is not None
        spans = code_spans(text) if odd or "\n " in text or "\n\t" in text else []
        if odd:
            parts, last = [], 0
            for a, b in spans:
                parts += [_INNER.sub(" ", text[last:a]), text[a:b]]
                last = b
            text = "".join(parts) + _INNER.sub(" ", text[last:])
        text = self.blank_lines.sub(self.blank_replacement, _TRAILING.sub("\n", text))
        return _LEADING_BLANK.sub("", text).rstrip() if spans else text.strip()


class NormalizeStage(Stage):
    stage = "normalize"
    Rules = NormalizeRules

    def setup(self) -> None:
        self.normalizer = Normalizer(self.rules)

    @classmethod
    def produces(cls, rules) -> list[str]:
        return ["normalize_changed"]

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        fix, fields = self.normalizer, self.rules.fields
        texts = df["text"].to_list()
        # `messages` stands for every list of turns a record has: a pair's answers and a KTO completion too
        turns = {c: df[c].to_list() for c in TURN_COLUMNS if c in df.columns}
        changed = [False] * df.height
        actions, rules, reasons = [KEEP] * df.height, [None] * df.height, [None] * df.height
        for i, text in enumerate(texts):
            emptied = []
            if text is not None and "text" in fields:
                new = fix(text)
                changed[i] = new != text
                texts[i] = new
                emptied = [] if new else ["text"]
            elif turns["messages"][i] is not None and "messages" in fields:
                for column, convs in turns.items():
                    if convs[i] is None:
                        continue
                    new_conv = [{"role": m["role"], "content": fix(m["content"])} for m in convs[i]]
                    changed[i] |= new_conv != convs[i]
                    convs[i] = new_conv
                    emptied += [] if any(m["content"] for m in new_conv) else [column]
            if emptied:
                where = "" if emptied in (["text"], ["messages"]) else f" in {', '.join(emptied)}"
                actions[i], rules[i], reasons[i] = (
                    DROP,
                    "empty_after_normalize",
                    f"no text left{where} after normalisation",
                )
        out = df.with_columns(
            pl.Series("text", texts, dtype=pl.Utf8),
            *(pl.Series(column, convs, dtype=df.schema[column]) for column, convs in turns.items()),
            pl.Series("normalize_changed", changed, dtype=pl.Boolean),
        )
        return with_decisions(out, actions, rules, reasons)
