"""`langid`: fastText lid.176 language identification, keep/drop by language and score.

The model and its reading of a text are curate.lang's, shared with the pii stage. What is judged is what
the record is written in: a chat record's request (the user's turns), not the answer it asks for ("Viết
một đoạn văn bằng tiếng Tây Ban Nha" is Vietnamese whatever the answer's language), with what carries no
language of its own set aside first (curate.lang.judged_text: code, placeholders, quoted text, short
list items, numbers).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field

from curate.lang import UNDETERMINED, LanguageId, judged_text, unaccented_vietnamese
from curate.records import content_texts
from curate.schema import StrictModel
from curate.stages.base import DROP, KEEP, Resources, Stage, rejected_by, with_decisions


class LangIdRules(StrictModel):
    model_path: str | None = None
    allowed: list[str] = Field(default_factory=list, description="ISO codes to keep; empty keeps every language")
    min_score: float = Field(0.5, ge=0.0, le=1.0)
    min_score_by_lang: dict[str, float] = Field(default_factory=dict)
    # Which turns of a chat record are judged. `prompt`: the user's turns, the whole conversation when
    # they hold too little prose to judge (a request in Vietnamese for an answer in Spanish is kept);
    # a request that reads as another language is judged once more by its first paragraph, the
    # instruction before any passage it quotes ("Dịch đoạn sau sang tiếng Việt:\n\nLa vida ...").
    chat_roles: Literal["prompt", "all", "user", "assistant"] = "prompt"
    overwrite_lang: bool = True
    # Judge the prose: code (curate.code: fences, code-like lines, identifiers), pii's placeholders,
    # quoted text, short list items and numbers are set aside first (curate.lang.judged_text), so an
    # English prompt with a code answer is not "low confidence" and "Tính 10% của 180" is too short to
    # judge. `keep` judges the whole text.
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

    def _judged(self, text: str) -> str:
        """What is read of a text: with `code: remove`, what carries no language set aside; else all of it."""
        return judged_text(text) if self.rules.code == "remove" else text

    def _texts(self, df: pl.DataFrame) -> tuple[list[str], list[str]]:
        """Each record's text to judge and its basis (text, prose, prompt, conversation)."""
        rules = self.rules
        roles = "user" if rules.chat_roles == "prompt" else rules.chat_roles
        raw = content_texts(df, roles)
        texts = [self._judged(t) for t in raw]
        basis = ["prose" if j != t else "text" for j, t in zip(texts, raw)]  # prose: something was set aside
        if rules.chat_roles == "prompt":
            is_chat = df["text"].is_null().to_list()
            short = [i for i, (c, t) in enumerate(zip(is_chat, texts)) if c and _letters(t) < rules.min_prose_letters]
            whole = content_texts(df[short], "all") if short else []
            for i in range(df.height):
                basis[i] = "prompt" if is_chat[i] else basis[i]
            for i, t in zip(short, whole):
                texts[i], basis[i] = self._judged(t), "conversation"
        return texts, basis

    def _by_request(self, df: pl.DataFrame, rows: list[int], accept) -> dict[int, tuple[str, float]]:
        """The language of each chat record's instruction, told apart from a passage in another language
        it asks about: the first of its request's pieces that holds enough prose and that `accept`s
        (language, score) — the first paragraph, line or clause before a colon ("Translate this Japanese
        sentence into Polish:"), then the last paragraph or line (an instruction after its passage)."""
        pieces: list[tuple[int, str]] = []
        for i, messages in zip(rows, df[rows]["messages"].to_list()):
            prompt = next((m["content"] for m in messages or [] if m["role"] == "user"), "").strip()
            paragraphs, lines = prompt.split("\n\n"), prompt.splitlines() or [""]
            clause = _COLON.split(prompt, 1)[0]
            seen = set()
            for piece in (paragraphs[0], lines[0], clause, paragraphs[-1], lines[-1]):
                text = self._judged(piece)
                if text not in seen and _letters(text) >= REQUEST_LETTERS:
                    seen.add(text)
                    pieces.append((i, text))
        if not pieces:
            return {}
        found: dict[int, tuple[str, float]] = {}
        for (i, _), lang, score in zip(pieces, *self.predict([t for _, t in pieces])):
            if i not in found and accept(lang, score):
                found[i] = (lang, score)
        return found

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        rules = self.rules
        texts, basis = self._texts(df)
        letters = [_letters(t) for t in texts]
        judged = [i for i, n in enumerate(letters) if n >= rules.min_prose_letters]
        langs, scores = [UNDETERMINED] * df.height, [0.0] * df.height
        for i, lang, score in zip(judged, *self.predict([texts[i] for i in judged])):
            langs[i], scores[i] = lang, score
            if lang != "vi" and (share := unaccented_vietnamese(texts[i])):
                langs[i], scores[i], basis[i] = "vi", share, "unaccented_vi"  # lid.176 reads it as pt/it
        known = df["lang"].to_list() if "lang" in df.columns else [None] * df.height
        unjudged = set(range(df.height)) - set(judged)
        for i in unjudged:
            basis[i], langs[i] = "too_little_prose", known[i] or UNDETERMINED
        allowed = set(rules.allowed)
        floor = lambda lang: rules.min_score_by_lang.get(lang, rules.min_score)  # noqa: E731
        refused = [
            i
            for i in judged
            if basis[i] == "prompt" and ((allowed and langs[i] not in allowed) or scores[i] < floor(langs[i]))
        ]

        # an instruction is a line or two, which lid.176 reads with less confidence ("Could you please translate
        # this to English?" is en at 0.51): it counts from REQUEST_SCORE, below the floor for whole texts
        def accept(lang: str, score: float) -> bool:
            return (not allowed or lang in allowed) and score >= min(floor(lang), REQUEST_SCORE)

        for i, (lang, score) in self._by_request(df, refused, accept).items():
            langs[i], scores[i], basis[i] = lang, score, "request"
        unsure = [
            i
            for i in judged
            if basis[i] == "prompt" and letters[i] < rules.short_letters and scores[i] < floor(langs[i])
        ]
        if unsure:  # a short request lid.176 is unsure of: the whole conversation tells the record's language
            whole = [self._judged(t) for t in content_texts(df[unsure], "all")]
            for i, text, lang, score in zip(unsure, whole, *self.predict(whole)):
                if score >= floor(lang):
                    langs[i], scores[i], basis[i], letters[i] = lang, score, "conversation", _letters(text)
        actions, rule_names, reasons = [KEEP] * df.height, [None] * df.height, [None] * df.height
        for i, (lang, score) in enumerate(zip(langs, scores)):
            if basis[i] == "request":
                continue  # an instruction found in an allowed language, with its own floor: kept
            if i not in unjudged and letters[i] < rules.short_letters and score < floor(lang):
                unjudged.add(i)
                basis[i], langs[i] = "unsure_short_prose", known[i] or UNDETERMINED
            if i in unjudged:
                continue  # too little prose to judge (a code record): kept, never dropped for its code
            if allowed and lang not in allowed:
                actions[i], rule_names[i] = DROP, "lang_not_allowed"
                reasons[i] = (
                    f"language {lang} (score {score:.2f}, read on the {basis[i]}) not in allowed {sorted(allowed)}"
                )
            elif score < floor(lang):
                actions[i], rule_names[i] = DROP, "low_confidence"
                reasons[i] = f"language {lang} score {score:.2f} below {floor(lang)} (read on the {basis[i]})"
        out = df.with_columns(
            pl.Series("lang_score", scores, dtype=pl.Float32), pl.Series("lang_basis", basis, dtype=pl.Utf8)
        )
        if rules.overwrite_lang:
            out = out.with_columns(pl.Series("lang", langs, dtype=pl.Utf8))
        else:
            out = out.with_columns(pl.col("lang").fill_null(pl.Series(langs, dtype=pl.Utf8)))
        return with_decisions(out, actions, rule_names, reasons)


_COLON = re.compile(r"[:：]")
REQUEST_LETTERS = 12  # an instruction as short as "Translate to English" (18 letters) is read
REQUEST_SCORE = 0.4


def _letters(text: str) -> int:
    return sum(map(str.isalpha, text))
