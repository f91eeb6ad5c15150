"""`pairs`: check preference pairs as pairs (curate.pairs.check_pairs) and drop what DPO cannot learn from.

A pair whose sides are the same text, or differ only in formatting, teaches nothing; an empty side, a
side that does not end with the assistant's turn, a prompt that is empty or does not end with the
user's (or a tool's) turn, or a non-positive `margin` is a broken pair. Each finding named in `drop`
drops the pair with its reason (`pairs:<code>`); the others are kept and named in `pair_issues`.
Records that are not pairs pass untouched.
"""

from __future__ import annotations

import polars as pl
from pydantic import Field, field_validator

from curate.schema import StrictModel
from curate.stages.base import DROP, KEEP, Stage, keep_all, rejected_by, with_decisions

CODES = (
    "identical_sides",
    "near_identical_sides",
    "empty_chosen",
    "empty_rejected",
    "chosen_not_assistant_end",
    "rejected_not_assistant_end",
    "empty_prompt",
    "prompt_not_user_end",
    "margin_not_positive",
)


class PairsRules(StrictModel):
    # findings that drop the pair; the others are kept and listed in `pair_issues`
    drop: list[str] = Field(default_factory=lambda: list(CODES))

    @field_validator("drop")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in CODES]
        if unknown:
            raise ValueError(f"unknown pair checks {unknown}; expected some of: {', '.join(CODES)}")
        return value


class PairsStage(Stage):
    stage = "pairs"
    Rules = PairsRules

    @classmethod
    def produces(cls, rules: PairsRules) -> list[str]:
        return ["pair_issues"]

    @classmethod
    def criteria(cls, rules: PairsRules, rejected: pl.DataFrame) -> list[tuple[str, PairsRules]]:
        return [
            (f"pair check {code}", rules.model_copy(update={"drop": [c for c in rules.drop if c != code]}))
            for code in rules.drop
            if rejected_by(rejected, f"pairs:{code}")
        ]

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        from curate.pairs import check_pairs

        if not {"chosen", "rejected"} <= set(df.columns):
            return keep_all(df.with_columns(pl.lit(None, dtype=pl.Utf8).alias("pair_issues")))
        index = df.with_row_index("_row").filter(pl.col("chosen").is_not_null() | pl.col("rejected").is_not_null())
        fields = [c for c in ("messages", "chosen", "rejected", "margin") if c in df.columns]
        found = check_pairs(index.select(pl.col("_row").cast(pl.Utf8).alias("id"), *fields))
        by_row: dict[int, list[tuple[str, str]]] = {}
        for row, code, reason in found.iter_rows():
            by_row.setdefault(int(row), []).append((code, reason))
        issues, actions, rules, reasons = [], [], [], []
        for row in range(df.height):
            found_here = by_row.get(row, [])
            dropping = next(((c, r) for c, r in found_here if c in self.rules.drop), None)
            issues.append(",".join(c for c, _ in found_here) or None)
            actions.append(DROP if dropping else KEEP)
            rules.append(f"pairs:{dropping[0]}" if dropping else None)
            reasons.append(dropping[1] if dropping else None)
        return with_decisions(df.with_columns(pl.Series("pair_issues", issues, dtype=pl.Utf8)), actions, rules, reasons)
