"""`langid`: fastText lid.176 language identification, keep/drop by language and score.

The model and its reading of a text are curate.lang's, shared with the pii stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field

from curate.code import prose
from curate.lang import UNDETERMINED, LanguageId
from curate.records import content_texts
from curate.schema import StrictModel
from curate.stages.base import DROP, KEEP, Resources, Stage, rejected_by, with_decisions


class LangIdRules(StrictModel):
    model_path: str | None = None
    allowed: list[str] = Field(default_factory=list, description="ISO codes to keep; empty keeps every language")
    min_score: float = Field(0.5, ge=0.0, le=1.0)
    min_score_by_lang: dict[str, float] = Field(default_factory=dict)
    chat_roles: Literal["all", "user", "assistant"] = "all"
    overwrite_lang: bool = True
    # Judge the prose: code (curate.code: fences, code-like lines, identifiers) is removed first, so
    # an English prompt with a code answer is not "low confidence". `keep` judges the whole text.
    code: Literal["remove", "keep"] = "remove"
    # With fewer letters of prose than this left (a code-only record) the language is not judged:
    # the record is kept with its own `lang` or `und`, and `lang_basis` says so.
    min_prose_letters: int = Field(20, ge=0)
    # lid.176 is unsure of short text even when it is plainly English ("Write a JavaScript function to
    # convert a number to a roman numeral." scores 0.08): prose with fewer letters than this and a
    # score below the floor is not judged either (kept, `und` or its own `lang`, lang_basis says so).
    short_letters: int = Field(200, ge=0)


class LangIdStage(Stage):
    stage = "langid"
    Rules = LangIdRules
    resources = Resources(cpus=1, memory_gb=0.3)

    @classmethod
    def criteria(cls, rules: LangIdRules, rejected: pl.DataFrame) -> list[tuple[str, LangIdRules]]:
        out = []
        if rejected_by(rejected, "lang_not_allowed"):
            out.append(("langid allowed languages", rules.model_copy(update={"allowed": []})))
        if rejected_by(rejected, "low_confidence"):
            out.append(("langid min score", rules.model_copy(update={"min_score": 0.0, "min_score_by_lang": {}})))
        return out

    def setup(self) -> None:
        self.model = LanguageId(Path(self.rules.model_path) if self.rules.model_path else None)
        self.model.load()  # now: a missing model file is an error before any batch

    def predict(self, texts: list[str]) -> tuple[list[str], list[float]]:
        return self.model.predict(texts)

    @classmethod
    def produces(cls, rules) -> list[str]:
        return ["lang", "lang_score", "lang_basis"]

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        rules = self.rules
        texts = content_texts(df, rules.chat_roles)
        basis = ["text"] * df.height
        if rules.code == "remove":
            prose_texts = [prose(t) for t in texts]
            basis = ["prose" if p != t else "text" for p, t in zip(prose_texts, texts)]
            texts = prose_texts
        letters = [sum(map(str.isalpha, t)) for t in texts]
        judged = [i for i, n in enumerate(letters) if n >= rules.min_prose_letters]
        langs, scores = [UNDETERMINED] * df.height, [0.0] * df.height
        for i, lang, score in zip(judged, *self.predict([texts[i] for i in judged])):
            langs[i], scores[i] = lang, score
        known = df["lang"].to_list() if "lang" in df.columns else [None] * df.height
        unjudged = set(range(df.height)) - set(judged)
        for i in unjudged:
            basis[i], langs[i] = "too_little_prose", known[i] or UNDETERMINED
        allowed = set(rules.allowed)
        actions, rule_names, reasons = [KEEP] * df.height, [None] * df.height, [None] * df.height
        for i, (lang, score) in enumerate(zip(langs, scores)):
            floor = rules.min_score_by_lang.get(lang, rules.min_score)
            if i not in unjudged and letters[i] < rules.short_letters and score < floor:
                unjudged.add(i)
                basis[i], langs[i] = "unsure_short_prose", known[i] or UNDETERMINED
            if i in unjudged:
                continue  # too little prose to judge (a code record): kept, never dropped for its code
            if allowed and lang not in allowed:
                actions[i], rule_names[i] = DROP, "lang_not_allowed"
                reasons[i] = f"language {lang} (score {score:.2f}) not in allowed {sorted(allowed)}"
            elif score < floor:
                actions[i], rule_names[i] = DROP, "low_confidence"
                reasons[i] = f"language {lang} score {score:.2f} below {floor}"
        out = df.with_columns(
            pl.Series("lang_score", scores, dtype=pl.Float32), pl.Series("lang_basis", basis, dtype=pl.Utf8)
        )
        if rules.overwrite_lang:
            out = out.with_columns(pl.Series("lang", langs, dtype=pl.Utf8))
        else:
            out = out.with_columns(pl.col("lang").fill_null(pl.Series(langs, dtype=pl.Utf8)))
        return with_decisions(out, actions, rule_names, reasons)
