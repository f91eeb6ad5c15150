"""Label balance and Simpson's-paradox statistics over polars frames.

All functions take plain columns and return JSON-able dicts, so the balance stage,
the report and users' notebooks share one implementation.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from scipy.stats import chi2_contingency


def label_summary(labels: pl.Series) -> dict:
    """Counts, proportions, imbalance ratio (max/min) and effective number of classes (exp of entropy)."""
    counts = labels.drop_nulls().value_counts()
    return summarize_counts(dict(zip(counts[labels.name].to_list(), counts["count"].to_list())))


def summarize_counts(counts: dict) -> dict:
    """`label_summary` from label -> count (what a distributed count gives)."""
    values = dict(sorted(((k, int(v)) for k, v in counts.items() if v), key=lambda kv: (-kv[1], kv[0])))
    total = sum(values.values())
    if not total:
        return {"rows": 0, "counts": {}, "proportions": {}, "imbalance_ratio": None, "effective_classes": 0.0}
    p = np.array(list(values.values())) / total
    return {
        "rows": total,
        "counts": values,
        "proportions": {k: round(v / total, 4) for k, v in values.items()},
        "imbalance_ratio": round(max(values.values()) / min(values.values()), 3),
        "effective_classes": round(float(np.exp(-(p * np.log(p)).sum())), 3),
    }


def association(df: pl.DataFrame, label: str, stratum: str) -> dict:
    """Label x stratum contingency table with a chi-square test and Cramer's V."""
    return association_counts(df.group_by(stratum, label).len(), label, stratum)


def association_counts(counts: pl.DataFrame, label: str, stratum: str) -> dict:
    """`association` from rows per (stratum, label) in column `len` (what a distributed count gives)."""
    sub = counts.select(stratum, label, "len").drop_nulls([stratum, label])
    table = sub.pivot(on=label, index=stratum, values="len").fill_null(0).sort(stratum)
    labels = sorted(c for c in table.columns if c != stratum)
    matrix = table.select(labels).to_numpy()
    result = {"stratum": stratum, "labels": labels, "strata": table[stratum].to_list(), "table": matrix.tolist()}
    if matrix.shape[0] < 2 or matrix.shape[1] < 2:
        return {**result, "chi2": None, "p_value": None, "dof": 0, "cramers_v": None}
    chi2, p, dof, _ = chi2_contingency(matrix, correction=False)  # Pearson, so Cramer's V is exact
    n = matrix.sum()
    v = math.sqrt(chi2 / (n * (min(matrix.shape) - 1))) if n else 0.0
    return {**result, "chi2": round(float(chi2), 3), "p_value": float(p), "dof": int(dof), "cramers_v": round(v, 4)}


def _odds_ratio(a: int, b: int, c: int, d: int) -> float | None:
    # Haldane-Anscombe correction only where a cell is empty, so the ratio stays defined.
    if min(a, b, c, d) == 0:
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
    return (a * d) / (b * c) if b * c else None


def _risk_difference(a: int, b: int, c: int, d: int) -> float | None:
    if not (a + b) or not (c + d):
        return None
    return a / (a + b) - c / (c + d)


def _sign(x: float | None, of_ratio: bool) -> int:
    if x is None:
        return 0
    v = math.log(x) if of_ratio else x
    return 0 if abs(v) < 1e-12 else (1 if v > 0 else -1)


def simpson_check(outcome: np.ndarray, factor: np.ndarray, strata: list, strong_factor: float = 1.5) -> dict:
    """Crude vs stratified association of a binary factor with a binary outcome.

    Returns the 2x2 table per stratum, per-stratum and crude odds ratios and risk
    differences, the Mantel-Haenszel pooled odds ratio, and two verdicts: `reversal`
    (the crude direction differs from the Mantel-Haenszel direction, or from the
    direction in every stratum that has one) and `strong_confounding` (crude and
    adjusted odds ratios differ by more than `strong_factor`).
    """
    cells: dict = {}
    for value, f, o in zip(strata, np.asarray(factor, bool).tolist(), np.asarray(outcome, bool).tolist()):
        cell = cells.setdefault(value, [0, 0, 0, 0])
        cell[(0 if o else 1) if f else (2 if o else 3)] += 1
    return simpson_cells(cells, strong_factor)


def simpson_cells(cells: dict, strong_factor: float = 1.5) -> dict:
    """`simpson_check` from each stratum's 2x2 table (a, b, c, d) = (factor & outcome, factor & not
    outcome, not factor & outcome, neither): what a distributed count gives."""
    rows, num, den = [], 0.0, 0.0
    crude = [0, 0, 0, 0]
    for value in sorted(cells, key=str):
        a, b, c, d = (int(x) for x in cells[value])
        crude = [crude[0] + a, crude[1] + b, crude[2] + c, crude[3] + d]
        n = a + b + c + d
        if n:
            num += a * d / n
            den += b * c / n
        rows.append(
            {
                "stratum": value,
                "a": a,
                "b": b,
                "c": c,
                "d": d,
                "odds_ratio": _round(_odds_ratio(a, b, c, d)),
                "risk_difference": _round(_risk_difference(a, b, c, d)),
            }
        )
    mh = num / den if den else None
    crude_or = _odds_ratio(*crude)
    crude_sign = _sign(crude_or, True)
    stratum_signs = [s for s in (_sign(r["odds_ratio"], True) for r in rows) if s]
    mh_sign = _sign(mh, True)
    reversal = bool(crude_sign) and (
        (mh_sign != 0 and mh_sign != crude_sign)
        or (len(stratum_signs) > 0 and all(s != crude_sign for s in stratum_signs))
    )
    ratio = max(crude_or / mh, mh / crude_or) if crude_or and mh else None
    return {
        "crude": {
            "a": crude[0],
            "b": crude[1],
            "c": crude[2],
            "d": crude[3],
            "odds_ratio": _round(crude_or),
            "risk_difference": _round(_risk_difference(*crude)),
        },
        "strata": rows,
        "mantel_haenszel_odds_ratio": _round(mh),
        "crude_vs_adjusted": _round(ratio),
        "reversal": reversal,
        "strong_confounding": bool(ratio is not None and ratio > strong_factor),
    }


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)
