"""`balance`: label balance analysis with Simpson-style checks, then a deterministic rebalancing.

The analysis (label counts overall and per stratum, imbalance ratio, effective number
of classes, chi-square and Cramer's V per stratum column, crude vs Mantel-Haenszel
association of a declared factor with a declared outcome across each confounder, and
a scan of every categorical column as a confounder) is computed before and after the
strategy and lands in the manifest and the report.

Strategies only remove rows (reason `balance:<strategy>`) or, for `upsample`, set a
`repeats` column the trainer honours — a stage never invents rows. Sampling ranks rows
by a seeded hash of their id, so the result does not depend on row order.

Everything is a group-by, run as a distributed one over the stage's task pool (the
in-process pool here, Ray tasks under Ray): the statistics from per-chunk counts summed,
the quotas' cut through a shuffle that brings each group's rows to one reducer.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Literal

import numpy as np
import polars as pl
import xxhash
from pydantic import Field, model_validator

from curate.parallel import SerialPool, TaskPool, count_groups, row_chunks, shuffle_groups
from curate.schema import StrictModel
from curate.stages.base import DROP, KEEP, Evidence, Stage, require_columns, with_decisions
from curate.stratify import association_counts, simpson_cells, summarize_counts

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


def _grouped_by(r: BalanceRules) -> list[str]:
    """The column source_cap and temperature group by (none for the other strategies)."""
    return {"source_cap": [r.cap_column], "temperature": [r.mix_column]}.get(r.strategy, [])


class Simpson(StrictModel):
    """The Simpson check: the factor/outcome association crude and within each confounder."""

    outcome: dict
    factor: dict
    checks: dict[str, dict]  # per declared confounder: curate.stratify.simpson_cells
    scan: list[dict]  # other columns found to reverse or strongly confound it


class BalanceAnalysis(StrictModel):
    overall: dict  # curate.stratify.summarize_counts of the labels
    by_stratum: dict[str, dict]  # label x stratum association (chi-square, Cramer's V, the table)
    within: dict[str, dict[str, dict]]  # label counts within each value of each stratum
    simpson: Simpson | None = None


class BalanceSummary(StrictModel):
    before: BalanceAnalysis
    after: BalanceAnalysis
    strategy: str
    upsampled_rows: int


class BalanceStage(Stage):
    stage = "balance"
    kind = "global"
    Rules = BalanceRules
    Summary = BalanceSummary
    report_key = "balance"

    @classmethod
    def evidence(cls, name: str, summary: BalanceSummary | None) -> list[Evidence]:
        """A reversal or strong confounding in the Simpson check: evaluate within the confounder."""
        sp = summary.before.simpson if summary is not None else None
        out = []
        for conf, c in (sp.checks if sp else {}).items():
            if c.get("reversal") or c.get("strong_confounding"):
                what = "reverses" if c.get("reversal") else "is strongly confounded"
                out.append(
                    Evidence(
                        "balance",
                        "warn",
                        f"{sp.factor['column']}={sp.factor['value']} vs {sp.outcome['column']}="
                        f"{sp.outcome['value']} {what} within {conf} (crude OR {c['crude']['odds_ratio']}, "
                        f"Mantel-Haenszel {c['mantel_haenszel_odds_ratio']}): stratify evaluation by {conf}",
                    )
                )
        return out

    @classmethod
    def criteria(cls, rules: BalanceRules, rejected: pl.DataFrame) -> list[tuple[str, BalanceRules]]:
        if rules.strategy == "none" or not rejected.height:
            return []
        return [(f"balance strategy {rules.strategy}", rules.model_copy(update={"strategy": "none"}))]

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        r = self.rules
        require_columns("balance", df, self.requires(r))
        pool = self.pool or SerialPool()
        keep, reason, repeats = self._strategy(df, pool)
        actions = [KEEP if k else DROP for k in keep]
        rules = [None if k else f"balance:{r.strategy}" for k in keep]
        out = df.with_columns(pl.Series("repeats", repeats, dtype=pl.Int32)) if r.strategy == "upsample" else df
        self.summary = BalanceSummary(
            before=BalanceAnalysis.model_validate(self.analyse(df, pool)),
            after=BalanceAnalysis.model_validate(self.analyse(df.filter(pl.Series(keep, dtype=pl.Boolean)), pool)),
            strategy=r.strategy,
            upsampled_rows=int((np.asarray(repeats) > 1).sum()) if r.strategy == "upsample" else 0,
        )
        return with_decisions(out, actions, rules, reason)

    # --- analysis -----------------------------------------------------------------------------
    def analyse(self, df: pl.DataFrame, pool: TaskPool | None = None) -> dict:
        r, pool = self.rules, pool or SerialPool()
        labelled = df.filter(pl.col(r.label).is_not_null())
        overall, *by_stratum = count_groups(pool, labelled, [[r.label], *([s, r.label] for s in r.strata)])
        out = {
            "overall": summarize_counts(dict(overall.iter_rows())),
            "by_stratum": {s: association_counts(t, r.label, s) for s, t in zip(r.strata, by_stratum)},
            "within": {
                s: {
                    str(v): summarize_counts(dict(g.select(r.label, "len").iter_rows()))
                    for (v,), g in t.group_by(s, maintain_order=True)
                }
                for s, t in zip(r.strata, by_stratum)
            },
        }
        if r.outcome and r.factor:
            out["simpson"] = self._simpson(labelled, pool)
        return out

    def _simpson(self, df: pl.DataFrame, pool: TaskPool) -> dict:
        """Each confounder's 2x2 tables from a distributed count of (confounder, factor, outcome); the
        scan counts every other text column too, leaving out those with too many values to be one."""
        r = self.rules
        skip = {r.outcome.column, r.factor.column, "id", "text", "meta", "src_file", "dup_cluster", "dup_of"}
        scanned = [
            c for c, t in df.schema.items() if r.scan and t == pl.Utf8 and c not in skip and c not in r.confounders
        ]
        flags = df.select(
            (pl.col(r.outcome.column) == r.outcome.value).fill_null(False).alias("_o"),
            (pl.col(r.factor.column) == r.factor.value).fill_null(False).alias("_f"),
            *(pl.col(c).cast(pl.Utf8).fill_null("(none)") for c in dict.fromkeys([*r.confounders, *scanned])),
        )
        declared = count_groups(pool, flags, [[c, "_f", "_o"] for c in r.confounders])
        checks = {c: simpson_cells(_cells(t, c), r.strong_confounding_factor) for c, t in zip(r.confounders, declared)}
        found = []
        tables = count_groups(pool, flags, [[c, "_f", "_o"] for c in scanned], limit=4 * MAX_SCAN_VALUES)
        for col, table in zip(scanned, tables):
            if table is not None and 2 <= table[col].n_unique() <= MAX_SCAN_VALUES:
                check = simpson_cells(_cells(table, col), r.strong_confounding_factor)
                if check["reversal"] or check["strong_confounding"]:
                    found.append({"confounder": col, **check})
        return {"outcome": r.outcome.model_dump(), "factor": r.factor.model_dump(), "checks": checks, "scan": found}

    # --- strategies -----------------------------------------------------------------------------
    def _strategy(self, df: pl.DataFrame, pool: TaskPool) -> tuple[list[bool], list[str | None], list[int]]:
        r, n = self.rules, df.height
        keep, reason, repeats = [True] * n, [None] * n, [1] * n
        if r.strategy == "none" or n == 0:
            return keep, reason, repeats
        # A seeded, order-independent random rank per row (lower is kept first).
        ranks = pool.map(_ranks, row_chunks(df.select("id"), pool), shared=(r.seed,))
        columns = dict.fromkeys([r.label, *r.strata, *self._group_column()])
        work = df.select(*columns).with_row_index("_row").with_columns(pl.Series("_rank", np.concatenate(ranks)))
        labelled = work.filter(pl.col(r.label).is_not_null())
        groups = r.strata if r.within_strata else []
        keys = [*groups, r.label]
        if r.strategy == "source_cap":
            return self._apply(pool, work, [r.cap_column], {(k,): v for k, v in r.caps.items()}, keep, reason, "cap")
        if r.strategy == "temperature":
            (counts,) = count_groups(pool, work, [[r.mix_column]])
            return self._apply(pool, work, [r.mix_column], self._temperature_quota(counts), keep, reason, "temperature")
        (counts,) = count_groups(pool, labelled, [keys])
        if r.strategy == "upsample":
            times = self._upsample_times(counts, groups)
            if times:
                wanted = pl.DataFrame([(*k, t) for k, t in times.items()], schema=[*keys, "_times"], orient="row")
                for row, t in labelled.join(wanted, on=keys, nulls_equal=True).select("_row", "_times").iter_rows():
                    repeats[row] = t
            return keep, reason, repeats
        quota = self._downsample_quota(counts, groups) if r.strategy == "downsample" else self._stratified_quota(counts)
        return self._apply(pool, labelled, keys, quota, keep, reason, r.strategy)

    def _group_column(self) -> list[str]:
        return _grouped_by(self.rules)

    @classmethod
    def requires(cls, rules: BalanceRules) -> list[str]:
        r = rules
        return [r.label, *r.strata, *r.confounders, *_grouped_by(r), *(c.column for c in (r.outcome, r.factor) if c)]

    @staticmethod
    def _apply(
        pool: TaskPool,
        frame: pl.DataFrame,
        keys: list[str],
        quota: dict,
        keep: list[bool],
        reason: list[str | None],
        what: str,
    ):
        """Drop each group's rows beyond its quota, highest ranks first: a group-by through a shuffle."""
        for part in shuffle_groups(
            pool, frame.select(*keys, "_row", "_rank"), keys, partial(_over_quota, keys, quota, what)
        ):
            for row, why in part.iter_rows():
                keep[row] = False
                reason[row] = why
        return keep, reason, [1] * len(keep)

    def _by_group(self, counts: pl.DataFrame, groups: list[str]):
        """(group key, {label: rows}) per group of `counts` (rows per groups + label)."""
        label = self.rules.label
        for key, g in counts.group_by(groups, maintain_order=True) if groups else [((), counts)]:
            yield tuple(key), dict(g.select(label, "len").iter_rows())

    def _downsample_quota(self, counts: pl.DataFrame, groups: list[str]) -> dict:
        quota = {}
        for key, by_label in self._by_group(counts, groups):
            cap = math.floor(self.rules.max_ratio * min(by_label.values()))
            quota.update({(*key, lab): cap for lab in by_label})
        return quota

    def _upsample_times(self, counts: pl.DataFrame, groups: list[str]) -> dict:
        r, times = self.rules, {}
        for key, by_label in self._by_group(counts, groups):
            floor = max(by_label.values()) / r.max_ratio
            for lab, count in by_label.items():
                if (t := min(r.max_repeats, math.ceil(floor / count))) > 1:
                    times[(*key, lab)] = t
        return times

    def _stratified_quota(self, counts: pl.DataFrame) -> dict:
        """Target label proportions inside every stratum, shrinking all strata by one factor so the
        stratum mix stays as it was."""
        r = self.rules
        strata = list(self._by_group(counts, r.strata))
        factor = 1.0
        for _, by_label in strata:
            feasible = min(by_label.get(lab, 0) / share for lab, share in r.target.items() if share > 0)
            factor = min(factor, feasible / sum(by_label.values()))
        quota = {}
        for key, by_label in strata:
            total = factor * sum(by_label.values())
            for lab in by_label:
                quota[(*key, lab)] = math.floor(r.target.get(lab, 0.0) * total + 1e-9)
        return quota

    def _temperature_quota(self, counts: pl.DataFrame) -> dict:
        """p_i proportional to n_i^(1/T), as large a total as every group can supply."""
        sizes = dict(counts.iter_rows())
        weights = {k: n ** (1.0 / self.rules.temperature) for k, n in sizes.items()}
        total_w = sum(weights.values())
        budget = min(n / (weights[k] / total_w) for k, n in sizes.items())
        return {(k,): math.floor(weights[k] / total_w * budget + 1e-9) for k in sizes}


def _cells(table: pl.DataFrame, column: str) -> dict:
    """{value: [a, b, c, d]} from rows per (column, _f, _o)."""
    cells: dict = {}
    for value, f, o, n in table.select(column, "_f", "_o", "len").iter_rows():
        cells.setdefault(value, [0, 0, 0, 0])[(0 if o else 1) if f else (2 if o else 3)] += n
    return cells


def _ranks(ids: pl.DataFrame, seed: int) -> np.ndarray:
    return np.fromiter((xxhash.xxh3_64_intdigest(i.encode(), seed) for i in ids["id"].to_list()), np.uint64, ids.height)


def _over_quota(keys: list[str], quota: dict, what: str, rows: pl.DataFrame) -> pl.DataFrame:
    """A reducer: the rows beyond their group's quota, with why, for the groups in `rows`."""
    dropped, why = [], []
    for key, group in rows.group_by(keys):
        limit = quota.get(tuple(key))
        if limit is None or group.height <= limit:
            continue
        cut = group.sort("_rank").slice(int(limit))["_row"].to_list()
        where = ", ".join(f"{k}={v}" for k, v in zip(keys, key))
        dropped += cut
        why += [f"{what}: {where} keeps {int(limit)} of {group.height}"] * len(cut)
    return pl.DataFrame({"_row": dropped, "why": why}, schema={"_row": pl.Int64, "why": pl.Utf8})
