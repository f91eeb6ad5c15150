"""`phrases`: drop (or flag) records whose text contains a listed phrase — refusals and "As an AI
language model" disclaimers in SFT answers, a competitor's or a client's name, terms a contract rules
out. Lists are named in the rules file; a record is rejected by the first list it matches, with the
phrase it contains as the reason.

A phrase matches case-insensitively, as whole words (the characters around it are not letters or
digits), with any run of whitespace between its words. Documents are searched whole; in a
conversation, the turns of `roles` (by default the assistant's: what the model learns to write).
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Literal

import polars as pl
from pydantic import Field, field_validator

from curate.records import content_text
from curate.schema import StrictModel
from curate.stages.base import DROP, KEEP, Stage, rejected_by, with_decisions


class PhrasesRules(StrictModel):
    # list name -> phrases; the rule of a record it matches is `phrases:<name>`
    lists: dict[str, list[str]] = Field(default_factory=dict)
    roles: Literal["assistant", "user", "system", "all"] = "assistant"
    action: Literal["drop", "flag"] = "drop"  # flag: keep the record, name the list in `phrase_list`

    @field_validator("lists")
    @classmethod
    def _phrases(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, phrases in value.items():
            empty = [p for p in phrases if not p.split()]
            if empty or not phrases:
                raise ValueError(f"list '{name}': every phrase needs a word, and a list needs a phrase")
        return value


def _pattern(phrases: list[str]) -> re.Pattern:
    words = (r"\s+".join(re.escape(w) for w in p.split()) for p in sorted(set(phrases), key=len, reverse=True))
    return re.compile(rf"(?<![^\W_])(?:{'|'.join(words)})(?![^\W_])", re.IGNORECASE)


class PhrasesStage(Stage):
    stage = "phrases"
    Rules = PhrasesRules

    @classmethod
    def produces(cls, rules: PhrasesRules) -> list[str]:
        return ["phrase_list"]

    @classmethod
    def criteria(cls, rules: PhrasesRules, rejected: pl.DataFrame) -> list[tuple[str, PhrasesRules]]:
        return [
            (
                f"phrases list {name}",
                rules.model_copy(update={"lists": {k: v for k, v in rules.lists.items() if k != name}}),
            )
            for name in rules.lists
            if rejected_by(rejected, f"phrases:{name}")
        ]

    @cached_property
    def patterns(self) -> dict[str, re.Pattern]:
        return {name: _pattern(phrases) for name, phrases in self.rules.lists.items()}

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        drop = self.rules.action == "drop"
        found, actions, rules, reasons = [], [], [], []
        for text, messages in zip(df["text"].to_list(), df["messages"].to_list()):
            searched = content_text(text, messages, self.rules.roles)
            hit = next(((n, m) for n, p in self.patterns.items() if (m := p.search(searched))), None)
            found.append(hit[0] if hit else None)
            rejected = hit is not None and drop
            actions.append(DROP if rejected else KEEP)
            rules.append(f"phrases:{hit[0]}" if rejected else None)
            reasons.append(f"contains '{hit[1].group(0)}' (list {hit[0]})" if rejected else None)
        return with_decisions(df.with_columns(pl.Series("phrase_list", found, dtype=pl.Utf8)), actions, rules, reasons)
