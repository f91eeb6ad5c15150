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

This module is the stage: its decisions, summary, report section and evidence. The work is in
curate.pii: the rules models (rules.py), the recognizers built from them (recognizers.py), what a
record holds to scan (fields.py), the analysis (scan.py: `Scanner`) and the operators (redaction.py:
`Redactor`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections import Counter
from typing import TYPE_CHECKING

import polars as pl
import xxhash
from pydantic import Field

from curate.errors import ConfigError
from curate.pii.analyzer import Analyzer, Span
from curate.pii.context import Judge
from curate.pii.fields import STRING_LITERAL, WITHHELD, Edits
from curate.pii.redaction import Redactor
from curate.pii.rules import PiiRules
from curate.pii.scan import Scanner
from curate.schema import StrictModel
from curate.stages.base import (
    DROP,
    KEEP,
    QUARANTINE,
    Evidence,
    Resources,
    Stage,
    StageContext,
    rejected_by,
    sum_counts,
    with_decisions,
)

if TYPE_CHECKING:
    from presidio_anonymizer import AnonymizerEngine


def _failure(exc: Exception) -> tuple[str, str]:
    """The rule and reason for a record its analysis failed on: over a per-record limit, or an error."""
    from curate.sandbox import RecordTimeout, RecordTooLarge

    if isinstance(exc, RecordTooLarge):
        return "pii:too_large", f"{exc}; content withheld"
    if isinstance(exc, RecordTimeout):
        return "pii:timeout", f"PII analysis ran {exc}; content withheld"
    return "pii:error", f"PII analysis failed with {type(exc).__name__}; content withheld"


# what "names", "places" and "dates" mean in the coverage the stage reports per language
COVERED = {"names": ("PERSON",), "places": ("LOCATION", "STREET_ADDRESS"), "dates": ("DATE_TIME",)}
NER_FINDS = {"PERSON", "LOCATION", "DATE_TIME"}  # what the spaCy NER model tags (see analyzer._NER_CONFIG)


def coverage(rules: PiiRules, lang: str) -> dict[str, str | None]:
    """For one language, how names, places and dates are found: "NER" (a model for the language),
    "rules" (recognizers declared for it), both, or None (not at all: records of this language keep
    them). Recognizers of no language (formats such as 5/3/2024) do not count: they know no names."""
    out: dict[str, str | None] = {}
    for what, entities in COVERED.items():
        wanted = [e for e in entities if e in rules.entities and lang not in rules.entities[e].skip_languages]
        ways = []
        if lang in rules.nlp.ner_languages and any(e in NER_FINDS for e in wanted):
            ways.append("NER")
        if any(rec.entity in wanted and lang in rec.languages for rec in rules.recognizers):
            ways.append("rules")
        out[what] = " + ".join(ways) or None
    return out


def _hashes(rules: PiiRules) -> bool:
    return any(rules.operator(e) == "hash" for e in rules.entities)


def _hash_key(rules: PiiRules) -> bytes:
    key = os.environ.get(rules.hash.key_env)
    if not key:
        raise ConfigError(
            f"pii: the hash operator needs a key in the environment variable {rules.hash.key_env} "
            "(keys never go in the rules file)"
        )
    return key.encode()


class Coverage(StrictModel):
    """How one language's names, places and dates are found (`coverage`), and its records."""

    records: int
    names: str | None
    places: str | None
    dates: str | None

    def gaps(self) -> list[str]:
        return [what for what in COVERED if not getattr(self, what)]


class Residual(StrictModel):
    """The re-scan of a seeded sample of redacted records: what the redaction missed."""

    sampled: int = 0
    with_pii: int = 0
    entities: dict[str, int] = Field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.with_pii / self.sampled if self.sampled else None


class IdentifierKind(StrictModel):
    kind: str
    entities: list[str]


class PiiSummary(StrictModel):
    profile: str = "default"
    kinds: list[IdentifierKind] = Field(default_factory=list)
    out_of_scope: list[str] = Field(default_factory=list)
    coverage: dict[str, Coverage] = Field(default_factory=dict)
    records: int = 0
    records_with_pii: int = 0
    entities: dict[str, int] = Field(default_factory=dict)
    operators: dict[str, int] = Field(default_factory=dict)
    dropped: int = 0
    quarantined: int = 0
    regex_only_records: dict[str, int] = Field(default_factory=dict)
    residual: Residual = Field(default_factory=Residual)


def _covered(c: Coverage) -> str:
    """'names (NER + rules), places (rules), dates NOT covered' for one language's coverage."""
    return ", ".join(f"{what} ({getattr(c, what)})" if getattr(c, what) else f"{what} NOT covered" for what in COVERED)


class PiiStage(Stage):
    stage = "pii"
    Rules = PiiRules
    redacts = True
    resources = Resources(cpus=1, memory_gb=1.0)

    @classmethod
    def criteria(cls, rules: PiiRules, rejected: pl.DataFrame) -> list[tuple[str, PiiRules]]:
        if not rejected_by(rejected, "pii:drop"):
            return []
        relaxed = {
            k: v.model_copy(update={"operator": "replace"}) if rules.operator(k) == "drop" else v
            for k, v in rules.entities.items()
        }
        return [
            (
                "pii drop operator",
                rules.model_copy(
                    update={
                        "entities": relaxed,
                        "default_operator": "replace" if rules.default_operator == "drop" else rules.default_operator,
                    }
                ),
            )
        ]

    Summary = PiiSummary
    report_key = "pii"
    STATIC = ("profile", "kinds", "out_of_scope")  # the same in every batch's summary

    @classmethod
    def report_section(cls, name: str, summary: PiiSummary | None, account: dict, rejected: pl.DataFrame) -> dict:
        """Counts only: by entity type and by operator, residual rate of the re-scanned sample."""
        s = summary or PiiSummary()
        res = s.residual
        return {
            "stage": name,
            **s.model_dump(mode="json", exclude={"residual"}),
            "entities": dict(sorted(s.entities.items(), key=lambda kv: -kv[1])),
            "residual": {**res.model_dump(mode="json"), "rate": round(res.rate, 4) if res.sampled else None},
        }

    @classmethod
    def evidence(cls, name: str, summary: PiiSummary | None) -> list[Evidence]:
        s = summary or PiiSummary()
        rate = s.residual.rate
        note = (
            f"profile {s.profile}"
            + (f" ({len(s.kinds)} identifier kinds)" if s.kinds else "")
            + "; "
            + "".join(f"{lang}: {_covered(c)}; " for lang, c in s.coverage.items())
            + f"{s.records_with_pii:,} records redacted; residual in a re-scanned sample: "
            + (f"{rate:.2%} of {s.residual.sampled:,}" if rate is not None else "not sampled")
        )
        out = [Evidence("pii", "warn" if rate else "pass", note)]
        gaps = {lang: c.gaps() for lang, c in s.coverage.items() if c.gaps()}
        if gaps:
            risk = "; ".join(
                f"{', '.join(missing)} not redacted in {lang} ({s.coverage[lang].records:,} records)"
                for lang, missing in gaps.items()
            )
            out.append(Evidence("risks", "warn", risk))
        return out

    @classmethod
    def merge_summaries(cls, parts: list[dict]) -> dict:
        """Counts summed; the profile taken once; coverage per language with its records summed."""
        if not parts:
            return {}
        covered: dict[str, dict] = {}
        for part in parts:
            for lang, c in part.get("coverage", {}).items():
                covered.setdefault(lang, {**c, "records": 0})["records"] += c["records"]
        counts = sum_counts([{k: v for k, v in p.items() if k not in (*cls.STATIC, "coverage")} for p in parts])
        static = {k: parts[0][k] for k in cls.STATIC if k in parts[0]}
        return {**static, "coverage": dict(sorted(covered.items(), key=lambda kv: -kv[1]["records"])), **counts}

    @classmethod
    def describe(cls, rules: PiiRules, context: StageContext) -> dict:
        """The hash key's fingerprint (never the key), so rotating the key is not a cache hit. Run on
        the driver before any worker starts: a missing key is one clear error, not a broken pool."""
        if not _hashes(rules):
            return {}
        return {
            "hash_key_fingerprint": hmac.new(
                _hash_key(rules), b"curate: pii hash key fingerprint", hashlib.sha256
            ).hexdigest()[:16]
        }

    def setup(self) -> None:
        r = self.rules
        self.key = _hash_key(r) if _hashes(r) else None
        self.scanner = Scanner(r, self.context.record_seconds)
        self.redactor = Redactor(r, self.key, self.seed)

    # --- the analysis and the operators (curate.pii.scan, curate.pii.redaction), as tests and benches reach them
    @property
    def analyzer(self) -> Analyzer:
        return self.scanner.analyzer

    @property
    def judge(self) -> Judge:
        return self.scanner.judge

    @property
    def anonymizer(self) -> AnonymizerEngine:
        return self.redactor.anonymizer

    def languages(self, df: pl.DataFrame, jobs: list[tuple[int, tuple, str]]) -> list[str]:
        return self.scanner.languages(df, jobs)

    def scan(self, df: pl.DataFrame, langs: list[str] | None = None, ids: bool = True):
        return self.scanner.scan(df, langs, ids)

    def redact(self, text: str, spans, numbers: dict | None = None) -> tuple[str, list[str]]:
        return self.redactor.redact(text, spans, numbers)

    def _operators(self) -> dict:
        return self.redactor.operators()

    # --- the stage ----------------------------------------------------------------------------
    def _id_token(self, value: str) -> str:
        """A stable stand-in for an id holding personal data: keyed (HMAC) where a hash key is set,
        so nobody can confirm a guess by hashing it; the mapping is never written anywhere."""
        key = self.key or os.environ.get(self.rules.hash.key_env, "").encode() or b"curate: pii id"
        return "id-" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]

    def _redact_all(self, df: pl.DataFrame, langs: list[str] | None = None):
        """Redact every scanned field of `df`: (edits, per-row entity types, per-row counts, errors,
        entity counts, operator counts, languages)."""
        jobs, found, langs, metas = self.scan(df, langs)
        numbers = self.redactor.number_values(jobs, found) if self.rules.numbered else {}
        edits = Edits(df, metas)
        ids = df["id"].to_list() if "id" in df.columns else [None] * df.height
        self._row_ids = [v if v is not None else f"row {i}" for i, v in enumerate(ids)]  # before ids are redacted
        self.redactor.surrogates.reset()
        n = df.height
        counts, types = [0] * n, [set() for _ in range(n)]
        errors: dict[int, str] = {}
        by_entity, by_operator = Counter(), Counter()
        floor = self.rules.fields.min_score
        for (row, slot, text), spans in zip(jobs, found):
            if isinstance(spans, Exception):
                errors.setdefault(row, _failure(spans))
                continue
            if slot[0] not in ("text", "msg", "turn"):
                spans = [s for s in spans if s.score >= floor]
            if slot[0] == "id":
                if not spans:
                    continue
                entities = sorted({s.entity for s in spans})
                edits.put(row, slot, self._id_token(text))
                by_operator["id_hash"] += len(entities)
            else:
                self.redactor.surrogates.start(self._row_ids[row])
                self.redactor.lang = langs[row]
                try:
                    redacted, entities = self.redact(text, spans, numbers.get(row))
                except Exception as exc:
                    why = f"PII redaction failed with {type(exc).__name__}; content withheld"
                    errors.setdefault(row, ("pii:error", why))
                    continue
                edits.put(row, slot, redacted)
                by_operator.update(self.rules.operator(e) for e in entities)
            counts[row] += len(entities)
            types[row].update(entities)
            by_entity.update(entities)
        for row in errors:
            edits.withhold(row, self._id_token)
        return edits, types, counts, errors, by_entity, by_operator, langs

    @classmethod
    def produces(cls, rules) -> list[str]:
        return ["pii_count", "pii_types"]

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        self.redactor.ops = self.redactor.operators()
        r = self.rules
        edits, types, counts, errors, by_entity, by_operator, langs = self._redact_all(df)
        n = df.height
        actions, rules, reasons = [KEEP] * n, [None] * n, [None] * n
        for row in range(n):
            if row in errors:
                actions[row], (rules[row], reasons[row]) = QUARANTINE, errors[row]
                continue
            dropping = sorted(t for t in types[row] if r.operator(t) == "drop")
            if dropping:
                actions[row], rules[row] = DROP, "pii:drop"
                reasons[row] = f"contains {', '.join(dropping)} (operator drop)"
        out = edits.frame().with_columns(
            pl.Series("pii_count", counts, dtype=pl.Int32),
            pl.Series("pii_types", [sorted(t) for t in types], dtype=pl.List(pl.Utf8)),
        )
        ner_langs = set(r.nlp.ner_languages)
        regex_only = Counter(lang for lang in langs if lang is not None and lang not in ner_langs)
        seen = Counter(lang for lang in langs if lang is not None)
        self.summary = PiiSummary(
            profile=r.profile.name,
            kinds=[IdentifierKind(kind=k.kind, entities=k.entities) for k in r.profile.kinds],
            out_of_scope=[k.kind for k in r.profile.out_of_scope],
            coverage={lang: Coverage(records=count, **coverage(r, lang)) for lang, count in seen.most_common()},
            records=n,
            records_with_pii=sum(1 for c in counts if c),
            entities=dict(by_entity),
            operators=dict(by_operator),
            dropped=actions.count(DROP),
            quarantined=actions.count(QUARANTINE),
            regex_only_records=dict(regex_only),
            residual=self._residual(out, actions, langs),
        )
        return with_decisions(out, actions, rules, reasons)

    def _residual(self, out: pl.DataFrame, actions: list[str], langs: list[str]) -> Residual:
        """Re-scan a seeded sample of redacted records: what the redaction missed or introduced."""
        from curate.pii.analyzer import PLACEHOLDER

        rate = self.rules.residual_sample
        if not rate:
            return Residual()
        ids = out["id"].to_list()
        draws = sorted(
            (xxhash.xxh64_intdigest(rec_id.encode(), self.seed) / 2**64, i)
            for i, rec_id in enumerate(ids)
            if actions[i] != QUARANTINE
        )
        at_least = min(self.rules.residual_min, len(draws))
        picked = sorted(i for k, (draw, i) in enumerate(draws) if draw < rate or k < at_least)
        sample = out[picked]
        sample_ids = [self._row_ids[i] for i in picked]
        jobs, found, _, _ = self.scan(sample, [langs[i] for i in picked], ids=False)
        rows_with, entities = set(), Counter()
        for (row, slot, text), spans in zip(jobs, found):
            if isinstance(spans, Exception):
                continue
            if slot[0] not in ("text", "msg", "turn"):
                spans = [s for s in spans if s.score >= self.rules.fields.min_score]
            # a placeholder or a surrogate the redaction wrote is not personal data
            marks = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text)]
            for made in self.redactor.surrogates.written.get(sample_ids[row], ()):
                marks += [(m.start(), m.end()) for m in re.finditer(re.escape(made), text)]
            for s in spans:
                if not any(a < s.end and s.start < b for a, b in marks):
                    rows_with.add(row)
                    entities[s.entity] += 1
        return Residual(sampled=sample.height, with_pii=len(rows_with), entities=dict(entities))

    # --- rows of other stages ----------------------------------------------------------------
    def redact_rows(self, df: pl.DataFrame) -> pl.DataFrame:
        """Redact every field the stage covers in rows another stage rejected (same rules; records
        are never dropped here, whatever the operator), plus the reader's raw previews of lines it
        could not parse and the reason strings (regex recognizers: they may quote an id or a key)."""
        if not df.height:
            return df
        self.redactor.ops = self.redactor.operators()
        out = self._redact_all(df)[0].frame()
        if "raw" in df.columns:
            raw = df["raw"].to_list()
            out = out.with_columns(
                pl.Series("raw", [self._redact_raw(v) if isinstance(v, str) and v else v for v in raw], dtype=pl.Utf8)
            )
        if "reason" in df.columns:
            reasons = df["reason"].to_list()
            found = self.analyzer.analyze([v or "" for v in reasons], [False] * len(reasons))
            out = out.with_columns(
                pl.Series(
                    "reason",
                    [
                        v if not v else WITHHELD if isinstance(f, Exception) else self.redact(v, f)[0]
                        for v, f in zip(reasons, found)
                    ],
                    dtype=pl.Utf8,
                )
            )
        return out

    def _redact_raw(self, raw: str) -> str:
        """A line the reader could not parse: scan it whole and each string literal in it on its
        own (a name inside `"text": "..."` reads as prose there), redact the union."""
        pieces = [(0, raw)] + [(m.start(1), m.group(1)) for m in STRING_LITERAL.finditer(raw) if len(m.group(1)) > 2]
        # a line nobody could parse is redacted strictly: every match, no context asked
        found = self.analyzer.analyze(
            [p for _, p in pieces], [True] * len(pieces), None, [self.rules.nlp.fallback_language] * len(pieces)
        )
        if any(isinstance(f, Exception) for f in found):
            return WITHHELD
        spans = [
            Span(s.start + at, s.end + at, s.entity, s.score, s.recognizer)
            for (at, _), f in zip(pieces, found)
            for s in f
        ]
        return self.redact(raw, spans)[0]
