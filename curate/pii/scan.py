"""The analysis of a frame for the `pii` stage: the entities in every string of a record, judged per record.

Every string to scan (curate.pii.fields) is analysed by the pattern recognizers; code in a text is
blanked out for that and analysed on its own for the high-precision entities only (rules.code). With
`identifying` and `nlp.ner_on_demand` on, the NER model runs only on the records the patterns' findings
show may hold a person's data. What was found is then judged per record over all its fields and turns
(curate.pii.context). Each record's language comes from the langid stage, else from lid.176.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

import polars as pl

from curate.code import code_spans, mask
from curate.lang import UNDETERMINED
from curate.pii import fields
from curate.pii.analyzer import Analyzer, Span
from curate.pii.context import GIVEN_NAME_RECOGNIZER, Judge, spread
from curate.pii.recognizers import context_recognizers, pattern_recognizer
from curate.pii.rules import PiiRules, words_of

# what decides whether a record is identifying or needs the NER model (Scanner._needs_ner)
DECIDING = frozenset({"PERSON", "DATE_TIME", "STREET_ADDRESS"})


def slot_prose(slot: tuple) -> bool:
    return slot[0] != "id"


def _whole_tokens(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Code spans grown to whole whitespace-separated tokens: an identifier with an underscore inside an
    e-mail address, a key or a connection string (`deepa_murphy@comcast.net`, `sk-proj-Ab_9...`,
    `postgres://svc_billing:pw@db`) is analysed as the whole token, not cut out of it."""
    out: list[list[int]] = []
    for a, b in spans:
        while a > 0 and not text[a - 1].isspace():
            a -= 1
        while b < len(text) and not text[b].isspace():
            b += 1
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _prose(text: str, cuts: list[tuple[int, int]]) -> str:
    """The text with its code blanked out, every offset kept."""
    return mask(text, cuts) if cuts else text


def _by_row(jobs: list[tuple[int, tuple, str]], prose_only: bool = False) -> dict[int, list[int]]:
    """The jobs of each record, by index (without its ids where `prose_only`)."""
    rows: dict[int, list[int]] = {}
    for j, (row, slot, _) in enumerate(jobs):
        if not prose_only or slot_prose(slot):
            rows.setdefault(row, []).append(j)
    return rows


def _merged(first: list, second: list) -> list:
    """Two analyses' spans of one text, each (start, end, entity) once; the second's where both found it
    (the NER model confirming a name the given-name list proposed)."""
    seen = {(s.start, s.end, s.entity) for s in second}
    return sorted([s for s in first if (s.start, s.end, s.entity) not in seen] + second, key=lambda s: (s.start, s.end))


class Scanner:
    """Owns the Analyzer (with the rules' recognizers), the Judge and the rules; `scan` analyses a frame."""

    def __init__(self, rules: PiiRules, record_seconds: float | None):
        import regex

        r = self.rules = rules
        self.analyzer = Analyzer(
            model=r.nlp.model,
            ner_languages=r.nlp.ner_languages,
            entities={k: v.model_dump() for k, v in r.entities.items()},
            custom=[pattern_recognizer(rec, r) for rec in r.recognizers] + context_recognizers(r),
            deny_lists=r.deny_list,
            context=r.context,
            allow_list=r.allow_list,
            gate=r.nlp.gate,
            window=r.nlp.window,
            max_tokens=r.nlp.max_tokens,
            overlap=r.nlp.overlap,
            batch_size=r.nlp.batch_size,
            memo=r.nlp.memo,
            scripts=r.nlp.scripts,
            script_line_share=r.nlp.script_line_share,
            max_chars=r.nlp.max_chars,
            record_seconds=record_seconds,
            url_entities=frozenset(r.code.entities),
        )
        self.judge = Judge(r.identifying, r.expand, lambda entry: words_of(entry, r.terms), r.nlp.scripts)
        self._lid = None
        self._code_entities = frozenset(r.code.entities)
        self._phone_layout = regex.compile(r.code.phone_layout)

    def languages(self, df: pl.DataFrame, jobs: list[tuple[int, tuple, str]]) -> list[str]:
        """Each record's language: the `lang` the langid stage decided (the default pipelines run it
        first); where no langid stage ran, fastText lid.176's guess (curate.lang) from its first text —
        an English NER model run on Vietnamese finds "names" everywhere. A record langid called `und`
        (short maths, a list) or whose guess is below `nlp.min_confidence` is read as
        `nlp.fallback_language`; its letters of another script still bring that language's recognizers."""
        langs = df["lang"].to_list() if "lang" in df.columns else [None] * df.height
        fallback, floor = self.rules.nlp.fallback_language, self.rules.nlp.min_confidence
        unknown = {row: text for row, slot, text in reversed(jobs) if langs[row] is None and slot[0] != "id"}
        if unknown:
            if self._lid is None:
                from curate.lang import LanguageId

                self._lid = LanguageId()
            rows = list(unknown)
            guesses, confidences = self._lid.predict([unknown[r] for r in rows])
            for r, lang, p in zip(rows, guesses, confidences):
                langs[r] = lang if p >= floor or fallback is None else fallback
        return [fallback if lang == UNDETERMINED and fallback else lang for lang in langs]

    def scan(self, df: pl.DataFrame, langs: list[str] | None = None, ids: bool = True):
        """Every string to scan, its entities (or the exception analysing it raised), each record's
        language, and the parsed meta. Ids are scanned by the regex recognizers only (no prose)."""
        jobs, metas = fields.jobs(df, self.rules)
        if not ids:
            jobs = [j for j in jobs if j[1][0] != "id"]
        langs = langs if langs is not None else self.languages(df, jobs)
        ner_langs = set(self.rules.nlp.ner_languages)
        use_ner = [slot[0] != "id" and langs[row] in ner_langs for row, slot, _ in jobs]
        job_langs = [langs[row] for row, _, _ in jobs]
        cuts = [self._code_in(slot, text) for _, slot, text in jobs]
        if self.rules.identifying.enabled and self.rules.nlp.ner_on_demand and any(use_ner):
            # weak entities that decide nothing (links, places) are looked for only where they would count
            deferred = frozenset(self.rules.identifying.weak) & self.analyzer.supported - DECIDING
            first = frozenset(self.analyzer.supported) - deferred
            found = self._analyze_jobs(jobs, [False] * len(jobs), job_langs, cuts, first)
            need = self._needs_ner(jobs, found)
            again = [j for j, (row, _, _) in enumerate(jobs) if row in need and slot_prose(jobs[j][1])]
            with_ner = [j for j in again if use_ner[j]]
            if with_ner:  # the NER model's entities, merged with the patterns' findings
                prose = [_prose(jobs[j][2], cuts[j]) for j in with_ner]
                for j, spans in zip(with_ner, self.analyzer.ner_spans(prose)):
                    found[j] = spans if not isinstance(found[j], list) else _merged(found[j], spans)
            if again and deferred:  # the code in them was analysed in the first pass
                more = self._analyze_jobs(
                    [jobs[j] for j in again],
                    [False] * len(again),
                    [job_langs[j] for j in again],
                    [cuts[j] for j in again],
                    deferred,
                    code_pieces=False,
                )
                for j, spans in zip(again, more):
                    found[j] = spans if not isinstance(found[j], list) else _merged(found[j], spans)
        else:
            found = self._analyze_jobs(jobs, use_ner, job_langs, cuts)
        return jobs, self._judged(jobs, found), langs, metas

    def _code_in(self, slot: tuple, text: str) -> list[tuple[int, int]]:
        """The code in a job's text (whole tokens), found once and used by every pass over it."""
        return _whole_tokens(text, code_spans(text)) if self.rules.code.detect and slot_prose(slot) else []

    def _needs_ner(self, jobs: list[tuple[int, tuple, str]], found: list) -> set[int]:
        """The records worth the NER model, judged from the pattern recognizers' findings alone: those
        that are identifying (an anchor, a cue), that hold a day-level date or an address (a name beside
        them would make them so), or that hold a candidate full name (a known given name and a capitalised
        word). In any other record every name, place and date the NER model could find would be left as it
        is (curate.pii.context), so it is not run there."""
        need = set()
        for row, members in _by_row(jobs, prose_only=True).items():
            spans = [(s, jobs[j][2][s.start : s.end]) for j in members if isinstance(found[j], list) for s in found[j]]
            if any(isinstance(found[j], Exception) for j in members):
                continue
            if (
                any(s.entity == "STREET_ADDRESS" for s, _ in spans)
                or any(s.entity == "PERSON" and s.recognizer != GIVEN_NAME_RECOGNIZER for s, _ in spans)
                or any(s.entity == "DATE_TIME" and any(c.isdigit() for c in v) for s, v in spans)
                or self.judge.identifying([jobs[j][2] for j in members], spans)
            ):
                need.add(row)
        return need

    def _judged(self, jobs: list[tuple[int, tuple, str]], found: list) -> list:
        """What is a private person's data, decided per record over all its fields (curate.pii.context)."""
        out = list(found)
        for members in _by_row(jobs).values():
            texts = [jobs[j][2] for j in members]
            kept = self.judge.keep(texts, [found[j] for j in members])
            text_members = [k for k, j in enumerate(members) if jobs[j][1][0] != "id"]
            spread_out = spread([texts[k] for k in text_members], [kept[k] for k in text_members], Span)
            for k, spans in zip(text_members, spread_out):
                kept[k] = spans
            for j, spans in zip(members, kept):
                out[j] = spans
        return out

    def _analyze_jobs(
        self,
        jobs: list[tuple[int, tuple, str]],
        use_ner: list[bool],
        langs: list[str | None] | None = None,
        cuts: list[list[tuple[int, int]]] | None = None,
        entities: frozenset[str] | None = None,
        code_pieces: bool = True,
    ) -> list:
        """Entities per job (only `entities`, if given). Code in a text (`cuts`, per job; found here if not
        given) is blanked out (offsets kept) for the full analysis and analysed on its own for the
        high-precision entities only (rules.code), without NER (`code_pieces=False`: not analysed again)."""
        langs = langs or [None] * len(jobs)
        cuts = cuts if cuts is not None else [self._code_in(slot, text) for _, slot, text in jobs]
        texts, ner, only, owners, text_langs = [], [], [], [], []
        for j, (_, _, text) in enumerate(jobs):
            spans = cuts[j]
            texts.append(_prose(text, spans))
            ner.append(use_ner[j])
            only.append(entities)
            owners.append((j, None))
            text_langs.append(langs[j])
            for a, b in spans if code_pieces else ():
                texts.append(text[a:b])
                ner.append(False)
                only.append(self._code_entities)
                owners.append((j, a))
                text_langs.append(langs[j])
        results = self.analyzer.analyze(texts, ner, only, text_langs)
        found: list = [[] for _ in jobs]
        for (j, offset), res in zip(owners, results):
            if isinstance(found[j], Exception):
                continue
            if isinstance(res, Exception):
                found[j] = res
                continue
            if offset is None:
                found[j].extend(res)
                continue
            for s in res:
                value = jobs[j][2][offset + s.start : offset + s.end]
                # (a phone inside an address in code is percent-encoded there: its layout is the decoded one)
                if s.entity == "PHONE_NUMBER" and not self._phone_layout.search(unquote_plus(value)):
                    continue
                found[j].append(Span(s.start + offset, s.end + offset, s.entity, s.score, s.recognizer))
        for spans in found:
            if isinstance(spans, list):
                spans.sort(key=lambda s: (s.start, s.end))
        return found
