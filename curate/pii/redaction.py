"""How the `pii` stage rewrites what it found: the operators and the numbered placeholders.

Each entity's operator (curate.pii.rules): a typed placeholder, numbered per distinct value of a record
(`<PERSON_1>`, the same in every field and turn), a mask keeping the last characters, a keyed hash, a
realistic stand-in (curate.pii.surrogates), or what HIPAA Safe Harbor lets a value keep (a date's year,
a ZIP code's first three digits, "90+" for an age). Presidio's anonymizer resolves overlapping spans.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections import Counter

from curate.pii.rules import PiiRules


def _value_key(value: str) -> str:
    """Values that are one value in a record: case and spacing aside ("Natalia", "NATALIA")."""
    return " ".join(value.split()).casefold()


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


class Redactor:
    """Writes a text's redaction. `ops`, the operators (`operators()`), is set by the stage before each
    batch; `lang`, the language of the record being redacted (surrogates are written in it), before each
    record; `surrogates` remembers the stand-ins it wrote (the residual re-scan knows them)."""

    def __init__(self, rules: PiiRules, key: bytes | None, seed: int):
        from presidio_anonymizer import AnonymizerEngine

        from curate.pii.surrogates import Surrogates

        self.rules, self.key = rules, key
        self.anonymizer = AnonymizerEngine()
        self.surrogates = Surrogates(os.environ.get(rules.hash.key_env, "").encode() or None, seed)
        self.lang: str | None = None

    def operators(self) -> dict:
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
        made = self.surrogates.value(entity, value, self.lang)
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

    def number_values(self, jobs: list[tuple[int, tuple, str]], found: list) -> dict[int, dict]:
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
                words = key[1].split()
                if s.entity == "PERSON" and len(words) > 1:  # "Mark" alone is "Mark Anderson"'s number
                    for part in (words[0], words[-1]):
                        own.setdefault((s.entity, part), own[key])
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
        done = self.anonymizer.anonymize(text, results, self.ops)
        return done.text, [item.entity_type for item in done.items]
