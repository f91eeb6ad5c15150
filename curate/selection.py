"""Which scored records are selected: above a threshold, the top fraction or the top n (within each
group when groups are given), or all. retrieve and classify select with this."""

from __future__ import annotations

import numpy as np


def select(score: np.ndarray, by: str, value: float, groups: np.ndarray | None = None) -> np.ndarray:
    """A boolean mask over `score`. Ties keep the input order (a stable sort), so a selection is
    deterministic; `top_fraction` takes round(value x size) of each group, `top_n` int(value)."""
    if by == "none":
        return np.ones(len(score), bool)
    if by == "threshold":
        return score >= value
    if groups is None:
        groups = np.zeros(len(score), dtype=object)
    chosen = np.zeros(len(score), bool)
    for group in dict.fromkeys(groups.tolist()):
        members = np.flatnonzero(groups == group)
        take = int(round(value * len(members))) if by == "top_fraction" else int(value)
        chosen[members[np.argsort(-score[members], kind="stable")][:take]] = True
    return chosen
