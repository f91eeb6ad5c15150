"""`balance`: label balance analysis with Simpson-style checks, then a deterministic rebalancing.

The analysis (label counts overall and per stratum, imbalance ratio, effective number
of classes, chi-square and Cramer's V per stratum column, crude vs Mantel-Haenszel
association of a declared factor with a declared outcome across each confounder, and
a scan of every categorical column as a confounder) is computed before and after the
strategy and lands in the manifest and the report.

Strategies only remove rows (reason `balance:<strategy>`) or, for `upsample`, set a
`repeats` column the trainer honours — a stage never invents rows. Sampling ranks rows
by a seeded hash of their id, so the result does not depend on row order.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import polars as pl
import xxhash
from pydantic import Field, model_validator

from curate.config import StrictModel
from curate.stages.base import DROP, KEEP, Stage, require_columns, with_decisions
from curate.stratify import association, label_summary, simpson_check

MAX_SCAN_VALUES = 50


class Outcome(StrictModel):
    column: str = "label"
    value: str


class Factor(StrictModel):
    column: str
    value: str


class BalanceRules(StrictModel):
    label: str = "label"
    strata: list[str] = Field(default_factory=list)
    outcome: Outcome | None = None
    factor: Factor | None = None
    confounders: list[str] = Field(default_factory=list)
    scan: bool = True
    strong_confounding_factor: float = Field(1.5, gt=1.0)
    strategy: Literal["none", "downsample", "upsample", "stratified", "source_cap", "temperature"] = "none"
    max_ratio: float = Field(3.0, ge=1.0)
    within_strata: bool = True
    max_repeats: int = Field(3, ge=1)
    target: dict[str, float] = Field(default_factory=dict)
    caps: dict[str, int] = Field(default_factory=dict)
    cap_column: str = "source"
    temperature: float = Field(2.0, gt=0.0)
    mix_column: str = "source"
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "BalanceRules":
        if (self.outcome is None) != (self.factor is None):
            raise ValueError("the Simpson check needs both 'outcome' and 'factor' (or neither)")
        if self.strategy == "stratified":
            if not self.target:
                raise ValueError("strategy stratified needs 'target' label proportions")
            if abs(sum(self.target.values()) - 1.0) > 1e-6:
                raise ValueError(f"target proportions must sum to 1, got {sum(self.target.values()):.4f}")
        if self.strategy == "source_cap" and not self.caps:
            raise ValueError("strategy source_cap needs 'caps' (value of cap_column -> max rows)")
        return self


class BalanceStage(Stage):
    kind = "global"
    Rules = BalanceRules

    @classmethod
    def criteria(cls, rules: BalanceRules, rejected: pl.DataFrame) -> list[tuple[str, BalanceRules]]:
        if rules.strategy == "none" or not rejected.height:
            return []
        return [(f"balance strategy {rules.strategy}", rules.model_copy(update={"strategy": "none"}))]

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        r = self.rules
        require_columns("balance", df, [r.label, *r.strata, *r.confounders, *(c.column for c in (r.outcome, r.factor) if c)])
        keep, reason, repeats = self._strategy(df)
        actions = [KEEP if k else DROP for k in keep]
        rules = [None if k else f"balance:{r.strategy}" for k in keep]
        out = df.with_columns(pl.Series("repeats", repeats, dtype=pl.Int32)) if r.strategy == "upsample" else df
        self.summary = {
            "before": self.analyse(df),
            "after": self.analyse(df.filter(pl.Series(keep))),
            "strategy": r.strategy,
            "upsampled_rows": int((np.asarray(repeats) > 1).sum()) if r.strategy == "upsample" else 0,
        }
        return with_decisions(out, actions, rules, reason)

    # --- analysis -----------------------------------------------------------------------------
    def analyse(self, df: pl.DataFrame) -> dict:
        r = self.rules
        labelled = df.filter(pl.col(r.label).is_not_null())
        out = {
            "overall": label_summary(labelled[r.label]),
            "by_stratum": {s: association(labelled, r.label, s) for s in r.strata},
            "within": {s: {str(v): label_summary(g[r.label]) for (v,), g in labelled.group_by(s, maintain_order=True)}
                       for s in r.strata},
        }
        if r.outcome and r.factor:
            out["simpson"] = self._simpson(labelled)
        return out

    def _simpson(self, df: pl.DataFrame) -> dict:
        r = self.rules
        outcome = (df[r.outcome.column] == r.outcome.value).fill_null(False).to_numpy()
        factor = (df[r.factor.column] == r.factor.value).fill_null(False).to_numpy()
        checks = {c: simpson_check(outcome, factor, df[c].fill_null("(none)").to_list(), r.strong_confounding_factor)
                  for c in r.confounders}
        scanned = []
        if r.scan:
            skip = {r.outcome.column, r.factor.column, "id", "text", "meta", "src_file", "dup_cluster", "dup_of"}
            for col, dtype in df.schema.items():
                if col in skip or dtype != pl.Utf8 or col in checks:
                    continue
                distinct = df[col].n_unique()
                if 2 <= distinct <= MAX_SCAN_VALUES:
                    check = simpson_check(outcome, factor, df[col].fill_null("(none)").to_list(), r.strong_confounding_factor)
                    if check["reversal"] or check["strong_confounding"]:
                        scanned.append({"confounder": col, **check})
        return {"outcome": r.outcome.model_dump(), "factor": r.factor.model_dump(), "checks": checks, "scan": scanned}

    # --- strategies -----------------------------------------------------------------------------
    def _rank(self, df: pl.DataFrame) -> np.ndarray:
        """A seeded, order-independent random rank per row (lower is kept first)."""
        seed = self.rules.seed
        return np.fromiter((xxhash.xxh3_64_intdigest(i.encode(), seed) for i in df["id"].to_list()), np.uint64, df.height)

    def _strategy(self, df: pl.DataFrame) -> tuple[list[bool], list[str | None], list[int]]:
        r, n = self.rules, df.height
        keep, reason, repeats = [True] * n, [None] * n, [1] * n
        if r.strategy == "none" or n == 0:
            return keep, reason, repeats
        work = df.with_row_index("_row").with_columns(pl.Series("_rank", self._rank(df)))
        labelled = work.filter(pl.col(r.label).is_not_null())
        groups = r.strata if r.within_strata else []
        if r.strategy == "downsample":
            quota = self._downsample_quota(labelled, groups)
        elif r.strategy == "upsample":
            for row, times in self._upsample(labelled, groups):
                repeats[row] = times
            return keep, reason, repeats
        elif r.strategy == "stratified":
            quota = self._stratified_quota(labelled)
        elif r.strategy == "source_cap":
            return self._apply(work, [r.cap_column], {(k,): v for k, v in r.caps.items()}, keep, reason, repeats, "cap")
        else:
            return self._apply(work, [r.mix_column], self._temperature_quota(work), keep, reason, repeats, "temperature")
        return self._apply(labelled, [*groups, r.label], quota, keep, reason, repeats, r.strategy)

    def _apply(self, frame: pl.DataFrame, keys: list[str], quota: dict, keep, reason, repeats, what: str):
        for key, group in frame.group_by(keys, maintain_order=True):
            limit = quota.get(tuple(key))
            if limit is None or group.height <= limit:
                continue
            dropped = group.sort("_rank").slice(int(limit))["_row"].to_list()
            where = ", ".join(f"{k}={v}" for k, v in zip(keys, key))
            for row in dropped:
                keep[row] = False
                reason[row] = f"{what}: {where} keeps {int(limit)} of {group.height}"
        return keep, reason, repeats

    def _downsample_quota(self, labelled: pl.DataFrame, groups: list[str]) -> dict:
        r, quota = self.rules, {}
        for key, group in (labelled.group_by(groups, maintain_order=True) if groups else [((), labelled)]):
            counts = dict(group.group_by(r.label).len().iter_rows())
            cap = math.floor(r.max_ratio * min(counts.values()))
            for lab in counts:
                quota[(*key, lab)] = cap
        return quota

    def _upsample(self, labelled: pl.DataFrame, groups: list[str]):
        r = self.rules
        for _, group in (labelled.group_by(groups, maintain_order=True) if groups else [((), labelled)]):
            counts = dict(group.group_by(r.label).len().iter_rows())
            floor = max(counts.values()) / r.max_ratio
            for lab, count in counts.items():
                times = min(r.max_repeats, math.ceil(floor / count))
                if times > 1:
                    for row in group.filter(pl.col(r.label) == lab)["_row"].to_list():
                        yield row, times

    def _stratified_quota(self, labelled: pl.DataFrame) -> dict:
        """Target label proportions inside every stratum, shrinking all strata by one factor so the
        stratum mix stays as it was."""
        r, groups = self.rules, self.rules.strata
        strata = list(labelled.group_by(groups, maintain_order=True)) if groups else [((), labelled)]
        factor = 1.0
        for _, group in strata:
            counts = dict(group.group_by(r.label).len().iter_rows())
            feasible = min(counts.get(lab, 0) / share for lab, share in r.target.items() if share > 0)
            factor = min(factor, feasible / group.height)
        quota = {}
        for key, group in strata:
            total = factor * group.height
            for lab in group[r.label].unique().to_list():
                quota[(*key, lab)] = math.floor(r.target.get(lab, 0.0) * total + 1e-9)
        return quota

    def _temperature_quota(self, work: pl.DataFrame) -> dict:
        """p_i proportional to n_i^(1/T), as large a total as every group can supply."""
        counts = dict(work.group_by(self.rules.mix_column).len().iter_rows())
        weights = {k: n ** (1.0 / self.rules.temperature) for k, n in counts.items()}
        total_w = sum(weights.values())
        budget = min(n / (weights[k] / total_w) for k, n in counts.items())
        return {(k,): math.floor(weights[k] / total_w * budget + 1e-9) for k in counts}
