"""`quality`: heuristic filters as declarative rules over text statistics.

Each rule names a statistic (see curate.textstats.STATS), its parameters and a
min and/or max. Statistics become `q_*` columns; the first failing rule (in rules
file order) is the drop reason and `quality_failed` lists every failing rule, which
is what makes a later "what if this rule were removed" check cheap.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

import polars as pl
from pydantic import Field, model_validator

from curate.code import prose
from curate.records import content_texts
from curate.schema import StrictModel
from curate.stages.base import DROP, KEEP, Stage, with_decisions
from curate.textstats import STAT_PARAMS, STATS, Doc


class QualityRule(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    stat: str
    params: dict[str, int] = Field(default_factory=dict)
    min: float | None = None
    max: float | None = None
    applies_to: list[Literal["text", "chat"]] = Field(default_factory=lambda: ["text", "chat"])
    langs: list[str] = Field(default_factory=list, description="apply only to these languages; empty = all")
    # Chat records: the turns this rule reads (the file's chat_roles when unset): `user` judges the
    # request (an empty one), `assistant` the answer.
    roles: Literal["all", "user", "assistant"] | None = None

    @model_validator(mode="after")
    def _check(self) -> "QualityRule":
        if self.stat not in STATS:
            raise ValueError(f"unknown stat '{self.stat}'; expected one of: {', '.join(sorted(STATS))}")
        unknown = set(self.params) - STAT_PARAMS.get(self.stat, set())
        if unknown:
            allowed = ", ".join(sorted(STAT_PARAMS.get(self.stat, ()))) or "none"
            raise ValueError(f"stat '{self.stat}' takes no parameter {sorted(unknown)}; allowed: {allowed}")
        if self.min is None and self.max is None:
            raise ValueError(f"rule '{self.name}' needs a min or a max")
        return self

    @cached_property
    def column(self) -> str:
        suffix = "".join(f"_{v}" for _, v in sorted(self.params.items()))
        return f"q_{self.stat}{suffix}" + (f"_{self.roles}" if self.roles else "")


class QualityRules(StrictModel):
    chat_roles: Literal["all", "user", "assistant"] = "assistant"
    rules: list[QualityRule] = Field(min_length=1)
    # Rules judged on the prose only: curate.code takes out fences, code-like lines and identifiers
    # first, so `SELECT name FROM t` is not shouting. A text with fewer than `min_prose_letters`
    # letters of prose left (a code-only answer) is not judged by these rules. Names of rules not in
    # `rules` are ignored (an inline `rules:` may replace the file's list).
    prose_rules: list[str] = Field(default_factory=list)
    min_prose_letters: int = Field(20, ge=0)
    # Rules of the file (or the file it extends) switched off by name, e.g. `disable: [gopher_min_words]`
    # for short documents; the report lists them.
    disable: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> "QualityRules":
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError(f"rule names must be unique: {sorted({n for n in names if names.count(n) > 1})}")
        # prose_rules may name rules a pipeline's inline `rules:` replaced (the file's list is the default);
        # disable names what the user switches off, so a name that matches nothing is a typo
        unknown = sorted(set(self.disable) - set(names))
        if unknown:
            raise ValueError(f"disable: no rule named {unknown}; rules: {', '.join(names)}")
        if set(self.disable) >= set(names):
            raise ValueError("disable: every rule is disabled; remove the quality stage instead")
        on_prose: dict[str, bool] = {}
        for r in self.rules:  # one q_* column per statistic: measured on the whole text or on its prose
            if on_prose.setdefault(r.column, r.name in self.prose_rules) != (r.name in self.prose_rules):
                raise ValueError(
                    f"prose_rules: rules on {r.column} must all be listed or none (one column, one measure)"
                )
        return self

    @property
    def active(self) -> list[QualityRule]:
        return [r for r in self.rules if r.name not in self.disable]


def _violation(rule: QualityRule, value: float) -> str | None:
    if rule.min is not None and value < rule.min:
        return f"{rule.stat}={value:.4g} below min {rule.min:g}"
    if rule.max is not None and value > rule.max:
        return f"{rule.stat}={value:.4g} above max {rule.max:g}"
    return None


class QualityStage(Stage):
    stage = "quality"
    Rules = QualityRules
    report_key = "quality"

    @classmethod
    def report_section(cls, name: str, summary: None, account: dict, rejected: pl.DataFrame) -> list[dict]:
        """Per rule: the records it rejected first (the reason they carry) and all it failed, with rates."""
        counts = (
            dict(rejected["quality_failed"].explode().drop_nulls().value_counts().iter_rows())
            if rejected.height and "quality_failed" in rejected.columns
            else {}
        )
        reasons, rows_in = account["reasons"], account["rows_in"]
        hits = []
        for rule in sorted(set(reasons) | set(counts), key=lambda r: (-counts.get(r, 0), r)):
            failed = counts.get(rule, reasons.get(rule, 0))
            hits.append(
                {
                    "stage": name,
                    "rule": rule,
                    "first_failed": reasons.get(rule, 0),
                    "failed": failed,
                    "rate": round(failed / rows_in, 4) if rows_in else 0.0,
                }
            )
        return hits

    @classmethod
    def criteria(cls, rules: QualityRules, rejected: pl.DataFrame) -> list[tuple[str, QualityRules]]:
        hit = (
            set(rejected["quality_failed"].explode().drop_nulls().to_list())
            if "quality_failed" in rejected.columns
            else set()
        )
        return [
            (f"quality rule {r.name}", rules.model_copy(update={"disable": [*rules.disable, r.name]}))
            for r in rules.active
            if r.name in hit
        ]

    @classmethod
    def produces(cls, rules) -> list[str]:
        return ["quality_failed"]

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        rules: list[QualityRule] = self.rules.active
        stats = {r.column: (r.stat, r.params) for r in rules}
        on_prose = set(self.rules.prose_rules)
        default_role = self.rules.chat_roles
        roles = {r.roles or default_role for r in rules} | {default_role}
        texts = {role: content_texts(df, role) for role in roles}
        kinds = ["text" if t is not None else "chat" for t in df["text"].to_list()]
        langs = df["lang"].to_list()
        columns: dict[str, list[float | None]] = {c: [] for c in stats}
        actions, rule_names, reasons, failed_all = [], [], [], []
        plans: dict[tuple[str, str | None], list[QualityRule]] = {}
        for i, (kind, lang) in enumerate(zip(kinds, langs)):
            applicable = plans.get((kind, lang))
            if applicable is None:
                applicable = plans[(kind, lang)] = [
                    r for r in rules if kind in r.applies_to and (not r.langs or lang in r.langs)
                ]
            docs: dict[tuple[str, bool], Doc] = {}  # (role, prose only) -> the text measured
            values: dict[str, float | None] = dict.fromkeys(stats)
            failed: list[tuple[str, str]] = []
            for rule in applicable:
                col = rule.column
                if col not in values or values[col] is None:
                    stat, params = stats[col]
                    # a document is read whole; a chat record's turns are the rule's roles
                    role = (rule.roles or default_role) if kind == "chat" else default_role
                    key = (role, rule.name in on_prose)
                    if key not in docs:
                        text = texts[role][i]
                        docs[key] = Doc(prose(text) if key[1] else text, lang)
                    doc = docs[key]
                    if key[1] and doc.letters < self.rules.min_prose_letters:
                        continue  # too little prose to judge (a code answer): the rule does not apply
                    values[col] = STATS[stat](doc, **params)
                value = values[col]
                if value is not None and (msg := _violation(rule, value)) is not None:
                    failed.append((rule.name, msg))
            for col, value in values.items():
                columns[col].append(value)
            failed_all.append([name for name, _ in failed])
            if failed:
                actions.append(DROP)
                rule_names.append(failed[0][0])
                reasons.append(failed[0][1])
            else:
                actions.append(KEEP)
                rule_names.append(None)
                reasons.append(None)
        out = df.with_columns(
            *(pl.Series(col, vals, dtype=pl.Float32) for col, vals in columns.items()),
            pl.Series("quality_failed", failed_all, dtype=pl.List(pl.Utf8)),
        )
        return with_decisions(out, actions, rule_names, reasons)
