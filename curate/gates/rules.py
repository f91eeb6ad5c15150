"""Gate rules (`rules/gates/*.yaml`): what a published dataset must satisfy, with a severity.

Each list item names one kind of check. A check becomes one or more Great Expectations
expectations on one of three frames the gates build from the shards with polars
(see curate.gates.frames): `schema` (one row: column -> dtype), `records` (one row per
record, content replaced by measures of it) and `dataset` (one row of dataset metrics).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from curate.ngrams import MAX_DOCUMENT_FREQUENCY, MIN_OVERLAP, NGRAM
from curate.pii.context import DOC_HOSTS, EXAMPLE_LOCAL
from curate.schema import StrictModel

Frame = Literal["schema", "records", "dataset"]
CONTENT = "content"  # `unique: [content]` means the normalized text / conversation

# Patterns the independent PII scan looks for in the final content, in polars' (Rust) regex syntax:
# no look-around; `(?-u:\b)` is an ASCII word boundary, several times faster than Unicode `\b` on
# non-ASCII text. Placeholders such as <EMAIL> written by the pii stage do not match them.
_B = r"(?-u:\b)"
# What no pattern counts, as the pii stage never redacts it (documentation values, curate.pii.context):
# addresses at reserved or placeholder hosts (example.com, *.test, yourdomain.com), example and role mailboxes
# (johndoe@, info@) and the fictional 555-0100..0199 numbers. A tool-call record's "boss@example.com" is no
# one's address.
DOCUMENTATION_VALUES = (
    rf"(?i)[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)*(?:{DOC_HOSTS}){_B}"
    rf"|(?i)(?:^|[^A-Za-z0-9._%+-])(?:{'|'.join(re.escape(w) for w in sorted(EXAMPLE_LOCAL))})@[A-Za-z0-9.-]+"
    rf"|{_B}555[ .-]01\d\d{_B}"
)
DEFAULT_PII_PATTERNS = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "us_ssn": rf"{_B}\d{{3}}-\d{{2}}-\d{{4}}{_B}",
    # not after a decimal point or a digit: 78.53981633974483 is a number, not a card
    "credit_card": (
        rf"(?:^|[^0-9.,])(?:4\d{{3}}|5[1-5]\d{{2}}|3[47]\d{{2}}|6011)(?:[ -]?\d{{4}}){{2}}[ -]?\d{{1,4}}{_B}"
    ),
    "phone": rf"(?:\+\d{{1,3}}[ .-]?)?(?:\(\d{{3}}\)|{_B}\d{{3}})[ .-]?\d{{3}}[ .-]\d{{4}}{_B}",
    "aws_access_key": rf"{_B}(?:AKIA|ASIA)[0-9A-Z]{{16}}{_B}",
    "private_key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
}
# Roles joined with ",": system? then user/assistant exchanges, ending on the assistant; an assistant's
# tool call may be followed by the tools' results and the assistant again (user,assistant,tool,assistant:
# LLaMA-Factory's function_call and observation turns, OpenAI's tool messages)
_EXCHANGE = r"user,assistant(,(tool,)+assistant)*"
DEFAULT_ROLE_ORDER = rf"^(system,)?{_EXCHANGE}(,{_EXCHANGE})*$"


def _regex_problem(pattern: str) -> str | None:
    """Why polars' regex engine (which runs the pattern) rejects it, or None."""
    try:
        pl.Series([""]).str.contains(pattern)
    except pl.exceptions.ComputeError as exc:
        lines = [x.strip() for x in str(exc).splitlines()]
        return next((x[len("error: ") :] for x in lines if x.startswith("error: ")), lines[0])
    return None


class ColumnsRule(StrictModel):
    required: list[str] = Field(default_factory=list)
    types: dict[str, str] = Field(default_factory=dict, description="column -> polars dtype, e.g. String, Int64")


class LengthRule(StrictModel):
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)
    mostly: float = Field(1.0, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _bounds(self) -> "LengthRule":
        if self.min is None and self.max is None:
            raise ValueError("give 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class ValuesRule(StrictModel):
    column: str
    values: list[str | int | float | bool] = Field(min_length=1)
    allow_null: bool = True
    mostly: float = Field(1.0, gt=0.0, le=1.0)


class ShareRule(StrictModel):
    """Each value's share of the non-null values of `column`, overall or within each stratum of `by`."""

    column: str = "label"
    min: float | None = Field(None, ge=0.0, le=1.0)
    max: float | None = Field(None, ge=0.0, le=1.0)
    by: str | None = None
    min_stratum_rows: int = Field(30, ge=1, description="strata with fewer labelled rows are too small to judge")

    @model_validator(mode="after")
    def _bounds(self) -> "ShareRule":
        if self.min is None and self.max is None:
            raise ValueError("give 'min', 'max' or both")
        return self


class RateRule(StrictModel):
    max: float = Field(ge=0.0, le=1.0)


class PatternRule(StrictModel):
    max_rate: float = Field(0.0, ge=0.0, le=1.0)
    patterns: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PII_PATTERNS), min_length=1)

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not re.fullmatch(r"[a-z0-9_]+", name):
                raise ValueError(f"pattern name {name!r}: use lowercase letters, digits and _")
            problem = _regex_problem(pattern)
            if problem:
                raise ValueError(f"pattern {name!r} is not a valid regex: {problem}")
        return value


class SplitSizesRule(StrictModel):
    column: str = "split"
    min: dict[str, int] = Field(default_factory=dict)
    max: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _some(self) -> "SplitSizesRule":
        if not (self.min or self.max):
            raise ValueError("give 'min' and/or 'max' row counts per split, e.g. min: {train: 1000}")
        return self


class LeakageRule(StrictModel):
    """Nothing of the held-out splits may be in train: ids, normalized content, groups, n-grams."""

    column: str = "split"
    train: str = "train"
    held_out: list[str] = Field(default_factory=lambda: ["validation", "test"], min_length=1)
    groups: list[str] = Field(
        default_factory=lambda: ["dup_cluster"], description="group columns that must not straddle"
    )
    # the split stage's decontamination defaults (curate.ngrams)
    ngram: int = Field(NGRAM, ge=0, le=64, description="word n-gram overlap check; 0 turns it off")
    min_overlap: float = Field(MIN_OVERLAP, ge=0.0, le=1.0)
    max_document_frequency: int = Field(MAX_DOCUMENT_FREQUENCY, ge=0)


class ChatRule(StrictModel):
    no_empty_assistant: bool = True
    role_order: str | None = DEFAULT_ROLE_ORDER

    @field_validator("role_order")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        problem = _regex_problem(value) if value is not None else None
        if problem:
            raise ValueError(f"role_order is not a valid regex: {problem}")
        return value


class GxRule(StrictModel):
    """Any Great Expectations expectation, by class name, on one of the frames."""

    type: str = Field(pattern=r"^Expect[A-Za-z]+$")
    on: Frame = "records"
    kwargs: dict[str, Any] = Field(default_factory=dict)


class GateRule(StrictModel):
    name: str | None = None
    severity: Literal["fail", "warn"] = "fail"
    columns: ColumnsRule | None = None
    not_null: list[str] | None = None
    has_content: bool | None = None
    length: LengthRule | None = None
    unique: list[str] | None = None
    duplicate_rate: RateRule | None = None
    values_in_set: ValuesRule | None = None
    label_share: ShareRule | None = None
    pii_residual: RateRule | None = None
    pii_patterns: PatternRule | None = None
    split_sizes: SplitSizesRule | None = None
    no_leakage: LeakageRule | None = None
    chat: ChatRule | None = None
    gx: GxRule | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "GateRule":
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"each expectation names exactly one check, one of: {', '.join(KINDS)}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def label(self) -> str:
        return self.name or self.kind.replace("_", " ")


class GateRules(StrictModel):
    expectations: list[GateRule] = Field(min_length=1)


@dataclass
class Check:
    """One GX expectation: its class name and arguments, on which frame, and how to say it."""

    rule: str
    severity: str
    frame: Frame
    type: str
    kwargs: dict[str, Any]
    says: str  # what is expected, in words: "content_chars between 20 and 200,000 for 99% of records"
    metric: str | None = None  # the dataset/schema column whose value is the observed value
    needs: dict[str, Any] = field(default_factory=dict)  # what the frames must compute for it


def _between(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"between {lo:,} and {hi:,}"
    return f">= {lo:,}" if lo is not None else f"<= {hi:,}"


def _mostly(kwargs: dict, mostly: float) -> dict:
    return {**kwargs, "mostly": mostly} if mostly < 1.0 else kwargs


@dataclass
class _Say:
    """Builds the checks of one rule: its label and severity on each."""

    label: str
    severity: str

    def check(self, frame: Frame, type_: str, kwargs: dict, says: str, metric: str | None = None) -> Check:
        return Check(self.label, self.severity, frame, type_, kwargs, says, metric)

    def metric_between(self, name: str, lo: float | None, hi: float | None, says: str) -> Check:
        kw = {
            "column": name,
            **({"min_value": lo} if lo is not None else {}),
            **({"max_value": hi} if hi is not None else {}),
        }
        return self.check("dataset", "ExpectColumnValuesToBeBetween", kw, f"{says} {_between(lo, hi)}", metric=name)


def _columns(c: ColumnsRule, say: _Say, metrics: "MetricNames") -> list[Check]:
    out = [
        say.check("schema", "ExpectColumnToExist", {"column": col}, f"column '{col}' present", metric=col)
        for col in c.required
    ]
    out += [
        say.check(
            "schema",
            "ExpectColumnValuesToBeInSet",
            {"column": col, "value_set": [t]},
            f"column '{col}' has type {t}",
            metric=col,
        )
        for col, t in c.types.items()
    ]
    return out


def _not_null(columns: list[str], say: _Say, metrics: "MetricNames") -> list[Check]:
    return [
        say.check("records", "ExpectColumnValuesToNotBeNull", {"column": metrics.column(col)}, f"'{col}' never null")
        for col in columns
    ]


def _has_content(wanted: bool, say: _Say, metrics: "MetricNames") -> list[Check]:
    if not wanted:
        return []
    return [
        say.check(
            "records",
            "ExpectColumnValuesToBeInSet",
            {"column": "has_content", "value_set": [True]},
            "every record has text or at least one message",
        )
    ]


def _length(r: LengthRule, say: _Say, metrics: "MetricNames") -> list[Check]:
    kw = _mostly(
        {
            "column": "content_chars",
            **({"min_value": r.min} if r.min is not None else {}),
            **({"max_value": r.max} if r.max is not None else {}),
        },
        r.mostly,
    )
    return [
        say.check(
            "records",
            "ExpectColumnValuesToBeBetween",
            kw,
            f"content length in characters {_between(r.min, r.max)}"
            + (f" for {r.mostly:.1%} of records" if r.mostly < 1 else ""),
        )
    ]


def _unique(columns: list[str], say: _Say, metrics: "MetricNames") -> list[Check]:
    return [
        say.check(
            "records",
            "ExpectColumnValuesToBeUnique",
            {"column": metrics.column(col)},
            "normalized content unique" if col == CONTENT else f"'{col}' unique",
        )
        for col in columns
    ]


def _duplicate_rate(r: RateRule, say: _Say, metrics: "MetricNames") -> list[Check]:
    return [
        say.check(
            "records",
            "ExpectColumnValuesToBeUnique",
            _mostly({"column": "content_hash"}, 1.0 - r.max),
            f"share of records whose normalized content repeats <= {r.max:.2%}",
        )
    ]


def _values_in_set(r: ValuesRule, say: _Say, metrics: "MetricNames") -> list[Check]:
    out = [
        say.check(
            "records",
            "ExpectColumnValuesToBeInSet",
            _mostly({"column": r.column, "value_set": r.values}, r.mostly),
            f"'{r.column}' in {r.values}",
        )
    ]
    if not r.allow_null:
        out.append(
            say.check("records", "ExpectColumnValuesToNotBeNull", {"column": r.column}, f"'{r.column}' never null")
        )
    return out


def _label_share(r: ShareRule, say: _Say, metrics: "MetricNames") -> list[Check]:
    return [
        say.metric_between(f"labelled({r.column})", 1, None, f"records with a '{r.column}'"),
        *(say.metric_between(name, r.min, r.max, f"share of {what}") for name, what in metrics.shares(r)),
    ]


def _pii_residual(r: RateRule, say: _Say, metrics: "MetricNames") -> list[Check]:
    return [
        say.metric_between("pii_residual_rate", None, r.max, "residual PII rate after redaction (re-scanned sample)")
    ]


def _pii_patterns(r: PatternRule, say: _Say, metrics: "MetricNames") -> list[Check]:
    return [
        say.check(
            "records",
            "ExpectColumnValuesToBeBetween",
            _mostly({"column": "pii_pattern_hits", "max_value": 0}, 1.0 - r.max_rate),
            f"records matching a PII pattern ({', '.join(r.patterns)}) <= {r.max_rate:.2%}",
        )
    ]


def _split_sizes(r: SplitSizesRule, say: _Say, metrics: "MetricNames") -> list[Check]:
    return [
        say.metric_between(f"rows({r.column}={s})", r.min.get(s), r.max.get(s), f"rows in split '{s}'")
        for s in sorted(set(r.min) | set(r.max))
    ]


def _no_leakage(r: LeakageRule, say: _Say, metrics: "MetricNames") -> list[Check]:
    held = "/".join(r.held_out)
    out = [
        say.metric_between("leaked_ids", None, 0, f"ids in both {r.train} and {held}"),
        say.metric_between("leaked_content", None, 0, f"normalized contents in both {r.train} and {held}"),
    ]
    out += [
        say.metric_between(f"leaked_groups({g})", None, 0, f"'{g}' groups in both {r.train} and {held}")
        for g in r.groups
    ]
    if r.ngram:
        out.append(say.metric_between("leaked_ngram_pairs", None, 0, f"{r.train}/{held} pairs sharing {r.ngram}-grams"))
    return out


def _chat(r: ChatRule, say: _Say, metrics: "MetricNames") -> list[Check]:
    out = []
    if r.no_empty_assistant:
        out.append(
            say.check(
                "records",
                "ExpectColumnValuesToBeBetween",
                {"column": "empty_assistant_turns", "max_value": 0},
                "no empty assistant turns",
            )
        )
    if r.role_order:
        out.append(
            say.check(
                "records",
                "ExpectColumnValuesToBeInSet",
                {"column": "role_order_ok", "value_set": [True]},
                "role order valid (system? then user/assistant alternating, tool results after an assistant turn, "
                "ending on assistant)",
            )
        )
    return out


def _gx(g: GxRule, say: _Say, metrics: "MetricNames") -> list[Check]:
    metric = g.kwargs.get("column") if g.on != "records" else None
    says = f"{g.type}({', '.join(f'{a}={v!r}' for a, v in g.kwargs.items())})"
    return [say.check(g.on, g.type, dict(g.kwargs), says, metric)]


# each gate kind: the expectations its settings stand for
KIND_CHECKS = {
    "columns": _columns,
    "not_null": _not_null,
    "has_content": _has_content,
    "length": _length,
    "unique": _unique,
    "duplicate_rate": _duplicate_rate,
    "values_in_set": _values_in_set,
    "label_share": _label_share,
    "pii_residual": _pii_residual,
    "pii_patterns": _pii_patterns,
    "split_sizes": _split_sizes,
    "no_leakage": _no_leakage,
    "chat": _chat,
    "gx": _gx,
}
KINDS = tuple(KIND_CHECKS)  # a GateRule sets exactly one of these fields


def checks(rule: GateRule, metrics: "MetricNames") -> list[Check]:
    """The expectations one rule stands for; dataset metric columns are named by `metrics`."""
    return KIND_CHECKS[rule.kind](getattr(rule, rule.kind), _Say(rule.label, rule.severity), metrics)


class MetricNames:
    """Names the rules and the frames agree on, given the data's columns and label values."""

    def __init__(self, shares: dict[tuple[str, str | None], list[tuple[str, str]]]):
        self._shares = shares

    @staticmethod
    def column(col: str) -> str:
        """Content columns are replaced by measures in the records frame (GX never sees text)."""
        return {"text": "text_chars", "messages": "turns", CONTENT: "content_hash"}.get(col, col)

    def shares(self, r: ShareRule) -> list[tuple[str, str]]:
        return self._shares.get((r.column, r.by), [])
