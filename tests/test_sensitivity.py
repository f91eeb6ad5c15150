"""The sensitivity check must give what a full rerun with the criterion relaxed would give."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml

from tests.conftest import RULES, run, write_pipeline


def _stages(quality_rules=None, **params) -> list[dict]:
    stages = []
    for stage in ("normalize", "langid", "quality", "dedup", "balance", "split"):
        spec = {"stage": stage, "rules": str(RULES / stage / "default.yaml")}
        if stage == "quality" and quality_rules is not None:
            spec = {"stage": stage, "rules": str(quality_rules)}
        if stage in params:
            spec["params"] = params[stage]
        stages.append(spec)
    return stages


def _pipeline(folder, stages):
    folder.mkdir(parents=True, exist_ok=True)
    return write_pipeline(
        folder, [{"demo": {"records": 1500, "seed": 21}, "columns": ["domain"]}], stages, name="sens", batch_size=400
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sens")
    return run(_pipeline(folder / "p", _stages()), folder / "out"), folder


def _rerun(folder, name, stages):
    result = run(_pipeline(folder / name, stages), folder / f"out-{name}")
    final = pl.read_parquet(result.out_dir / "data" / "*.parquet")
    return final


def _label_mix(df: pl.DataFrame) -> dict[str, float]:
    counts = df["label"].fill_null("(none)").value_counts().sort("label")
    return {k: round(v / df.height, 4) for k, v in counts.iter_rows()}


@pytest.mark.parametrize("criterion", ["quality", "near dedup", "balance strategy downsample", "split decontamination"])
def test_replay_matches_a_full_rerun_without_the_criterion(base, criterion, tmp_path):
    result, _ = base
    rows = {r["criterion"]: r for r in result.manifest["sensitivity"]}
    if criterion == "quality":  # the quality rule that lets the most records back in
        name = max((c for c in rows if c.startswith("quality rule")), key=lambda c: rows[c]["gained"])
        rule = name.removeprefix("quality rule ")
        rules = yaml.safe_load((RULES / "quality" / "default.yaml").read_text())
        rules["rules"] = [r for r in rules["rules"] if r["name"] != rule]
        relaxed = tmp_path / "quality.yaml"
        relaxed.write_text(yaml.safe_dump(rules))
        stages = _stages(quality_rules=relaxed)
    else:
        name = criterion
        params = {
            "near dedup": {"dedup": {"near": False}},
            "balance strategy downsample": {"balance": {"strategy": "none"}},
            "split decontamination": {"split": {"decontamination": {"action": "off"}}},
        }[criterion]
        stages = _stages(**params)
    row = rows[name]
    assert row["gained"] > 0, f"the test corpus should exercise {name}"
    final = _rerun(tmp_path, "relaxed", stages)
    assert row["kept_without"] == final.height
    assert row["more_records"] == final.height - result.manifest["rows"]["kept"]
    assert row["label_mix_without"] == _label_mix(final)


def test_sensitivity_is_in_the_report_and_can_be_turned_off(base, tmp_path):
    result, _ = base
    report = json.loads((result.out_dir / "report.json").read_text())
    assert report["sensitivity"] == result.manifest["sensitivity"]
    assert "Sensitivity: what each criterion removes" in (result.out_dir / "report.html").read_text()
    path = write_pipeline(
        tmp_path,
        [{"demo": {"records": 300, "seed": 21}, "columns": ["domain"]}],
        _stages(),
        name="off",
        sensitivity=False,
    )
    assert run(path, tmp_path / "out").manifest["sensitivity"] == []
