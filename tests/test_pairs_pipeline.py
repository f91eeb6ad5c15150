"""Preference pairs from a file to DPO-ready shards: `curate init` sees pairs and writes a pipeline from
pipelines/pairs.yaml, the `pairs` stage drops what DPO cannot learn from (with its reason), the gates pass."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from curate.cli import app
from curate.stages.pairs import PairsRules, PairsStage
from tests.conftest import REPO

runner = CliRunner()
PREF = REPO.parent / "shared" / "data" / "real-pref" / "dpo_en_demo.json"


def _pair(prompt: str, chosen: str, rejected: str, margin: float | None = None) -> dict:
    return {
        "messages": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "margin": margin,
    }


def test_the_pairs_stage_drops_pairs_dpo_cannot_learn_from_and_says_why():
    rows = [
        _pair("What is 2 + 3?", "5", "6"),  # a preference: one number apart
        _pair("Say hi", "Hello there!", "Hello there!"),
        _pair("Say hi", "**Hello** there", "hello there."),  # formatting only
        _pair("Name a colour", "Blue.", "   "),
        _pair("Rate this", "Good answer.", "Bad answer.", margin=0.0),  # a tie is no preference
    ]
    df = pl.DataFrame(rows).with_columns(pl.Series("id", [f"p{i}" for i in range(5)]))
    out = PairsStage("pairs", PairsRules()).process(df)
    assert out["_action"].to_list() == ["keep", "drop", "drop", "drop", "drop"]
    assert out["_rule"].to_list()[1:] == [
        "pairs:identical_sides",
        "pairs:near_identical_sides",
        "pairs:empty_rejected",
        "pairs:margin_not_positive",
    ]
    assert all(out["_reason"].to_list()[1:])
    flagged = PairsStage("pairs", PairsRules(drop=["identical_sides"])).process(df)
    assert flagged["_action"].to_list() == ["keep", "drop", "keep", "keep", "keep"]  # the rest named, kept
    assert flagged["pair_issues"].to_list()[2:] == ["near_identical_sides", "empty_rejected", "margin_not_positive"]
    chats = pl.DataFrame({"id": ["c"], "messages": [[{"role": "user", "content": "hi"}]]})
    assert PairsStage("pairs", PairsRules()).process(chats)["_action"].to_list() == ["keep"]  # not a pair


@pytest.mark.skipif(not PREF.is_file(), reason="needs ../shared/data/real-pref")
def test_init_and_run_publish_real_pairs_for_dpo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pairs.json").write_text(json.dumps(json.loads(PREF.read_text())[:150]))
    result = runner.invoke(app, ["init", "pairs.json", "-o", "p.yaml"])
    assert result.exit_code == 0, result.output
    pipeline = yaml.safe_load((tmp_path / "p.yaml").read_text())
    assert [s["stage"] for s in pipeline["stages"]] == ["normalize", "langid", "pii", "pairs", "split"]
    run = runner.invoke(app, ["run", "p.yaml", "-q"])
    assert run.exit_code == 0, run.output
    out = pl.read_parquet(tmp_path / "out" / "pairs" / "data" / "*.parquet")
    assert out.height >= 140 and set(out["split"]) == {"train", "validation", "test"}
    assert out["chosen"].list.last().struct.field("role").eq("assistant").all()
    assert out["messages"].list.last().struct.field("role").is_in(["user", "tool"]).all()
