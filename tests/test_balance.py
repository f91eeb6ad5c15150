"""Balance analysis on textbook tables with known answers, and the rebalancing strategies."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curate.stages.balance import BalanceRules, BalanceStage
from curate.stages.base import ACTION, RULE, StageContext
from curate.stratify import association, label_summary, simpson_check


def _cells(table: dict[str, tuple[int, int, int, int]]):
    """{stratum: (a, b, c, d)} -> outcome, factor, strata arrays (a = factor & outcome, ...)."""
    outcome, factor, strata = [], [], []
    for stratum, (a, b, c, d) in table.items():
        for f, o, n in ((1, 1, a), (1, 0, b), (0, 1, c), (0, 0, d)):
            outcome += [o] * n
            factor += [f] * n
            strata += [stratum] * n
    return np.array(outcome, bool), np.array(factor, bool), strata


KIDNEY_STONES = {"small": (81, 6, 234, 36), "large": (192, 71, 55, 25)}  # treatment A vs B, success (Charig 1986)


def test_kidney_stones_reversal_and_mantel_haenszel_by_hand():
    result = simpson_check(*_cells(KIDNEY_STONES))
    crude_or = (273 * 61) / (77 * 289)
    mh = (81 * 36 / 357 + 192 * 25 / 343) / (6 * 234 / 357 + 71 * 55 / 343)
    assert result["crude"]["odds_ratio"] == pytest.approx(crude_or, abs=1e-4)
    assert result["crude"]["risk_difference"] == pytest.approx(273 / 350 - 289 / 350, abs=1e-4)
    assert result["mantel_haenszel_odds_ratio"] == pytest.approx(mh, abs=1e-4)
    by = {s["stratum"]: s["odds_ratio"] for s in result["strata"]}
    assert by["small"] == pytest.approx(81 * 36 / (6 * 234), abs=1e-4)
    assert by["large"] == pytest.approx(192 * 25 / (71 * 55), abs=1e-4)
    assert crude_or < 1 < mh
    assert result["reversal"] is True


def test_no_confounding_no_reversal():
    table = {"x": (30, 70, 15, 85), "y": (30, 70, 15, 85)}  # identical strata: crude == adjusted
    result = simpson_check(*_cells(table))
    assert result["reversal"] is False and result["strong_confounding"] is False
    assert result["crude"]["odds_ratio"] == pytest.approx(result["mantel_haenszel_odds_ratio"], abs=1e-4)


def test_strong_confounding_without_reversal():
    # Within strata OR = 1 (no effect); pooled, the factor looks strongly associated.
    table = {"x": (80, 20, 8, 2), "y": (2, 8, 20, 80)}
    result = simpson_check(*_cells(table))
    assert result["mantel_haenszel_odds_ratio"] == pytest.approx(1.0, abs=1e-4)
    assert result["crude"]["odds_ratio"] > 5
    assert result["strong_confounding"] is True and result["reversal"] is False


def test_label_summary_and_association():
    s = label_summary(pl.Series("label", ["a"] * 75 + ["b"] * 25 + [None] * 5))
    assert s["counts"] == {"a": 75, "b": 25} and s["imbalance_ratio"] == 3.0
    assert s["effective_classes"] == pytest.approx(np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))), abs=1e-3)
    df = pl.DataFrame({"label": ["a"] * 50 + ["b"] * 50, "src": ["x"] * 50 + ["y"] * 50})
    a = association(df, "label", "src")
    assert a["table"] == [[50, 0], [0, 50]] and a["cramers_v"] == pytest.approx(1.0, abs=1e-3)


def _records(n_by_cell: dict[tuple[str, str], int]) -> pl.DataFrame:
    rows = []
    for (stratum, label), n in n_by_cell.items():
        rows += [{"id": f"{stratum}-{label}-{i}", "label": label, "source": stratum} for i in range(n)]
    return pl.DataFrame(rows)


def _run(df: pl.DataFrame, **rules) -> tuple[pl.DataFrame, dict]:
    stage = BalanceStage("balance", BalanceRules.model_validate(rules))
    stage.setup()
    output = stage.run(df)
    return output.frame, output.summary


CELLS = {("x", "pos"): 20, ("x", "neg"): 200, ("y", "pos"): 90, ("y", "neg"): 100}


def test_downsample_within_strata_caps_every_stratum():
    out, summary = _run(_records(CELLS), strata=["source"], strategy="downsample", max_ratio=2.0)
    kept = out.filter(pl.col(ACTION) == "keep")
    counts = {(s, lab): n for s, lab, n in kept.group_by("source", "label").len().iter_rows()}
    assert counts == {("x", "pos"): 20, ("x", "neg"): 40, ("y", "pos"): 90, ("y", "neg"): 100}
    assert set(out.filter(pl.col(ACTION) == "drop")[RULE]) == {"balance:downsample"}
    assert summary["after"]["within"]["source"]["x"]["imbalance_ratio"] == 2.0


def test_sampling_does_not_depend_on_row_order():
    df = _records(CELLS)
    a, _ = _run(df, strata=["source"], strategy="downsample", max_ratio=2.0)
    b, _ = _run(df.reverse(), strata=["source"], strategy="downsample", max_ratio=2.0)
    assert set(a.filter(pl.col(ACTION) == "keep")["id"]) == set(b.filter(pl.col(ACTION) == "keep")["id"])


def test_stratified_targets_label_mix_in_every_stratum_and_keeps_stratum_mix():
    cells = {("x", "pos"): 100, ("x", "neg"): 300, ("y", "pos"): 150, ("y", "neg"): 150}
    out, _ = _run(_records(cells), strata=["source"], strategy="stratified", target={"pos": 0.5, "neg": 0.5})
    kept = out.filter(pl.col(ACTION) == "keep")
    counts = {(s, lab): n for s, lab, n in kept.group_by("source", "label").len().iter_rows()}
    assert counts[("x", "pos")] == counts[("x", "neg")] and counts[("y", "pos")] == counts[("y", "neg")]
    before_share = 400 / 700
    after_share = (counts[("x", "pos")] * 2) / kept.height
    assert after_share == pytest.approx(before_share, abs=0.01)


def test_upsample_sets_repeats_without_dropping():
    out, summary = _run(_records(CELLS), strata=["source"], strategy="upsample", max_ratio=2.0, max_repeats=3)
    assert (out[ACTION] == "keep").all()
    reps = {lab: set(g["repeats"].to_list()) for (lab,), g in out.filter(pl.col("source") == "x").group_by("label")}
    assert reps == {"pos": {3}, "neg": {1}}  # 100/20 = 5 repeats wanted, capped at 3
    assert summary["upsampled_rows"] == 20


def test_temperature_and_source_caps():
    df = _records({("big", "a"): 900, ("small", "a"): 100})
    out, _ = _run(df, strategy="temperature", temperature=2.0, mix_column="source")
    kept = dict(out.filter(pl.col(ACTION) == "keep").group_by("source").len().iter_rows())
    assert kept["big"] / kept["small"] == pytest.approx(3.0, rel=0.02)  # sqrt(900 / 100)
    out, _ = _run(df, strategy="source_cap", caps={"big": 150}, cap_column="source")
    kept = dict(out.filter(pl.col(ACTION) == "keep").group_by("source").len().iter_rows())
    assert kept == {"big": 150, "small": 100}


def test_scan_finds_an_undeclared_confounder():
    outcome, factor, strata = _cells(KIDNEY_STONES)
    df = pl.DataFrame(
        {
            "id": [str(i) for i in range(len(outcome))],
            "label": np.where(outcome, "success", "failure"),
            "source": np.where(factor, "A", "B"),
            "stone": strata,
        }
    )
    _, summary = _run(df, outcome={"column": "label", "value": "success"}, factor={"column": "source", "value": "A"})
    scan = summary["before"]["simpson"]["scan"]
    assert [s["confounder"] for s in scan] == ["stone"] and scan[0]["reversal"]


def test_config_errors():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs both 'outcome' and 'factor'"):
        BalanceRules(outcome={"value": "x"})
    with pytest.raises(ValidationError, match="must sum to 1"):
        BalanceRules(strategy="stratified", target={"a": 0.5, "b": 0.6})


@pytest.mark.parametrize("strategy", ["downsample", "upsample", "stratified", "source_cap", "temperature"])
def test_balance_as_distributed_group_bys_matches_one_chunk(monkeypatch, strategy):
    """Counts summed over chunks and the quota cut through a shuffle to several reducers give exactly
    what one chunk gives: the same rows, reasons, repeats and statistics."""
    from curate.parallel import SerialPool

    cells = {("x", "pos"): 40, ("x", "neg"): 260, ("y", "pos"): 120, ("y", "neg"): 90, ("z", "neg"): 30}
    df = _records(cells).with_columns(
        domain=pl.Series([("a", "b", None)[i % 3] for i in range(sum(cells.values()))]),
        label=pl.when(pl.int_range(pl.len()) % 17 == 0).then(None).otherwise(pl.col("label")),
    )
    rules = {
        "strata": ["source", "domain"],
        "strategy": strategy,
        "max_ratio": 2.0,
        "target": {"pos": 0.5, "neg": 0.5},
        "caps": {"x": 100},
        "outcome": {"column": "label", "value": "pos"},
        "factor": {"column": "source", "value": "x"},
        "confounders": ["domain"],
    }
    if strategy != "stratified":
        rules.pop("target")
    expected, summary = _run(df, **rules)

    class ThreeWorkers(SerialPool):
        workers = 3

    monkeypatch.setattr("curate.parallel.GROUP_CHUNK", 37)  # 15 chunks, 3 reducers
    stage = BalanceStage("balance", BalanceRules.model_validate(rules), StageContext(pool=ThreeWorkers()))
    got = stage.run(df)
    assert got.frame.equals(expected) and got.summary == summary
    assert summary["before"]["simpson"]["checks"]["domain"]["strata"]
    if strategy != "upsample":
        assert (expected[ACTION] == "drop").sum() > 0
