"""The stage contract: what a stage is given (StageContext) and what it gives back (a typed summary
that reaches the manifest, the report and the readiness checklist without editing them)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest
import yaml

from curate.catalog import Catalog
from curate.config import load_pipeline
from curate.engine import describe_stages, run_key, run_pipeline
from curate.io.sources import resolve_inputs
from curate.schema import StrictModel
from curate.stages.base import Evidence, Stage, keep_all
from curate.stages.normalize import NormalizeRules
from tests.conftest import run, write_pipeline

QUESTION = "Compose an engaging travel blog post about a recent trip to Hawaii, highlighting cultural experiences."


def _docs(n: int) -> list[str]:
    topics = ["bread", "tides", "glaciers", "violins", "orchards", "lighthouses", "comets", "ferns"]
    return [
        f"Record {i} explains {topics[i % 8]} with example number {i * 7} and a note on item {i * 13}."
        for i in range(n)
    ]


def _eval_set_layout(root: Path) -> Path:
    """rules/split.yaml naming evals/questions.jsonl relative to itself; a pipeline in another folder."""
    (root / "rules" / "evals").mkdir(parents=True)
    (root / "rules" / "evals" / "questions.jsonl").write_text(json.dumps({"question": QUESTION}) + "\n")
    rules = {
        "sizes": {"train": 1.0},
        "group_by": [],
        "decontamination": {"eval_sets": [{"path": "evals/questions.jsonl", "field": "question"}]},
    }
    (root / "rules" / "split.yaml").write_text(yaml.safe_dump(rules))
    (root / "project").mkdir()
    texts = _docs(40)
    texts[5] = "A task found online: " + QUESTION + " Answer it."
    (root / "project" / "in.jsonl").write_text(
        "".join(json.dumps({"id": f"r{i}", "text": t}) + "\n" for i, t in enumerate(texts))
    )
    return write_pipeline(
        root / "project", [{"path": "in.jsonl"}], [{"stage": "split", "rules": "../rules/split.yaml"}]
    )


def test_a_rules_file_names_its_eval_set_relative_to_itself_wherever_curate_runs(tmp_path, monkeypatch):
    path = _eval_set_layout(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    keys = []
    for cwd in (tmp_path / "elsewhere", tmp_path / "project"):
        monkeypatch.chdir(cwd)
        pipeline = load_pipeline(path)
        keys.append(run_key(pipeline, resolve_inputs(pipeline), describe_stages(pipeline, pipeline.stage_context())))
    assert keys[0] == keys[1]  # the cache key does not depend on the working directory
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = run(path, tmp_path / "out")
    rejected = pl.read_parquet(tmp_path / "out" / "rejected" / "split" / "*.parquet")
    assert rejected["id"].to_list() == ["r5"] and rejected["rule"][0] == "split:contaminated"
    assert result.manifest["pipeline"]["stages"][0]["eval_set_files"].keys() == {"evals/questions.jsonl"}
    # new eval-set contents: a new cache key, so the run is not a stale cache hit
    (tmp_path / "rules" / "evals" / "questions.jsonl").write_text(json.dumps({"question": "Other words."}) + "\n")
    pipeline = load_pipeline(path)
    described = describe_stages(pipeline, pipeline.stage_context())
    assert run_key(pipeline, resolve_inputs(pipeline), described) != keys[0]


def test_an_eval_set_in_a_stages_params_is_found_beside_the_pipeline(tmp_path, monkeypatch):
    path = _eval_set_layout(tmp_path)
    (tmp_path / "rules" / "evals" / "questions.jsonl").rename(tmp_path / "project" / "local.jsonl")
    spec = yaml.safe_load(path.read_text())
    eval_sets = [{"path": "local.jsonl", "field": "question"}]
    spec["stages"][0]["params"] = {"decontamination": {"eval_sets": eval_sets}}  # over the rules file's
    path.write_text(yaml.safe_dump(spec))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    run(path, tmp_path / "out")
    rejected = pl.read_parquet(tmp_path / "out" / "rejected" / "split" / "*.parquet")
    assert rejected["id"].to_list() == ["r5"]


def test_a_missing_or_unreadable_eval_set_is_a_clear_error_naming_file_and_row(tmp_path):
    path = _eval_set_layout(tmp_path)
    evals = tmp_path / "rules" / "evals" / "questions.jsonl"
    evals.write_text(json.dumps({"question": QUESTION}) + "\n{not json\n")
    from curate.errors import ConfigError

    with pytest.raises(ConfigError, match=r"eval_sets: .*questions.jsonl row 2: malformed JSON"):
        run(path, tmp_path / "out")
    evals.unlink()
    with pytest.raises(ConfigError, match=r"file not found: .*rules/evals/questions.jsonl"):
        run(path, tmp_path / "out2")


def test_shards_refs_resolve_in_the_catalog_the_run_was_given(tmp_path, monkeypatch):
    (tmp_path / "base.jsonl").write_text(json.dumps({"id": "b0", "text": _docs(1)[0]}) + "\n")
    mine = Catalog(tmp_path / "my_home")
    first = run_pipeline(
        load_pipeline(write_pipeline(tmp_path, [{"path": "base.jsonl"}], [{"stage": "dedup"}], name="base")),
        out_dir=tmp_path / "base_out",
        catalog=mine,
    )
    (tmp_path / "p2").mkdir()
    (tmp_path / "p2" / "new.jsonl").write_text(json.dumps({"id": "n0", "text": _docs(1)[0]}) + "\n")
    against = [{"stage": "dedup", "params": {"against": ["shards://base@latest"]}}]
    path = write_pipeline(tmp_path / "p2", [{"path": "new.jsonl"}], against, name="next")
    # $CURATE_HOME's catalog has never heard of `base`; the run's own catalog has
    assert os.environ["CURATE_HOME"] != str(tmp_path / "my_home")
    second = run_pipeline(load_pipeline(path), out_dir=tmp_path / "next_out", catalog=mine)
    assert second.manifest["rows"]["kept"] == 0
    assert second.manifest["pipeline"]["stages"][0]["against"] == [f"shards://base@{first.manifest['version']}"]


class _CountSummary(StrictModel):
    rows: int
    long_rows: int
    by_source: dict[str, int]


class _Counter(Stage):
    """A stage the report and readiness modules have never heard of."""

    stage: ClassVar[str] = "counter"
    kind = "global"
    Rules = NormalizeRules
    Summary = _CountSummary

    @classmethod
    def evidence(cls, name, summary):
        return [Evidence("risks", "warn", f"{summary.long_rows} long rows counted by {name}")] if summary else []

    def process(self, df):
        long = int((df["text"].str.len_chars() > 30).sum())
        self.summary = _CountSummary(rows=df.height, long_rows=long, by_source={"x": df.height})
        return keep_all(df)


class _Untyped(_Counter):
    def process(self, df):
        self.summary = {"rows": df.height}
        return keep_all(df)


def test_a_new_stage_summary_reaches_manifest_report_and_readiness_through_its_own_class(tmp_path, monkeypatch):
    from curate.stages import registry

    monkeypatch.setitem(registry.STAGES, "counter", _Counter)
    texts = ["short one", "a considerably longer line of text than thirty characters", "tiny"]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    result = run(write_pipeline(tmp_path, [{"path": "in.jsonl"}], [{"stage": "counter"}]), tmp_path / "out")
    expected = {"rows": 3, "long_rows": 1, "by_source": {"x": 3}}
    assert result.manifest["stage_summaries"]["counter"] == expected
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["stages"] == [{"stage": "counter", **expected}]
    risks = next(x for x in report["readiness"] if x["question"] == "What remains risky?")
    assert "1 long rows counted by counter" in risks["evidence"] and risks["mark"] == "warn"
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<h2>counter</h2>" in html and "<td>long_rows</td><td>1</td>" in html


def test_a_summary_that_is_not_the_declared_model_fails_naming_the_stage(tmp_path, monkeypatch):
    from curate.stages import registry

    monkeypatch.setitem(registry.STAGES, "untyped", _Untyped)
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "one"}) + "\n")
    with pytest.raises(TypeError, match="untyped: process\\(\\) set a summary of type dict, expected _CountSummary"):
        run(write_pipeline(tmp_path, [{"path": "in.jsonl"}], [{"stage": "untyped"}]), tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()
