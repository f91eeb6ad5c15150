"""Config errors fail before any data is read, naming the file, the key path and what was expected."""

from __future__ import annotations

import pytest
import yaml

from curate.config import load_pipeline
from curate.errors import ConfigError
from tests.conftest import RULES, write_pipeline

MISSING_INPUT = [{"path": "does/not/exist.jsonl"}]


def _error(path) -> str:
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    return str(info.value)


def test_unknown_stage_is_named_with_a_suggestion(tmp_path):
    path = write_pipeline(tmp_path, MISSING_INPUT, [{"stage": "normalise"}])
    msg = _error(path)
    assert f"{path}: stages[0].stage: unknown stage 'normalise'" in msg
    assert "did you mean 'normalize'" in msg
    from curate.stages.registry import STAGES

    assert {"balance", "dedup", "normalize", "split"} <= set(STAGES)
    assert f"expected one of: {', '.join(sorted(STAGES))}" in msg  # every registered stage, sorted


def test_unknown_top_level_key_lists_the_allowed_keys(tmp_path):
    path = write_pipeline(tmp_path, MISSING_INPUT, [], batchsize=10)
    msg = _error(path)
    assert f"{path}: batchsize: unknown key (did you mean 'batch_size'?)" in msg
    assert "expected one of: name, description, seed, inputs" in msg


def test_unknown_key_inside_a_rules_file_names_that_file(tmp_path):
    rules = tmp_path / "langid.yaml"
    rules.write_text("allowed: [en]\nmin_scor: 0.5\n")
    path = write_pipeline(tmp_path, MISSING_INPUT, [{"stage": "langid", "rules": str(rules)}])
    msg = _error(path)
    assert f"{rules}: min_scor: unknown key (did you mean 'min_score'?)" in msg


def test_wrong_type_in_inline_params_gives_the_key_path_and_value(tmp_path):
    path = write_pipeline(tmp_path, MISSING_INPUT, [{"stage": "langid", "params": {"min_score": "high"}}])
    msg = _error(path)
    assert f"{path}: stages[0].params.min_score: Input should be a valid number" in msg
    assert "(got 'high')" in msg


def test_wrong_type_at_top_level(tmp_path):
    path = write_pipeline(tmp_path, MISSING_INPUT, [], batch_size="big")
    assert f"{path}: batch_size: Input should be a valid integer" in _error(path)


def test_missing_rules_file(tmp_path):
    path = write_pipeline(tmp_path, MISSING_INPUT, [{"stage": "quality", "rules": "nope/quality.yaml"}])
    assert f"{path}: stages[0].rules: rules file not found: {tmp_path / 'nope/quality.yaml'}" in _error(path)


def test_nested_error_in_quality_rule_list(tmp_path):
    rules = tmp_path / "q.yaml"
    rules.write_text(
        yaml.safe_dump(
            {"rules": [{"name": "a", "stat": "word_count", "min": 1}, {"name": "b", "stat": "wordcount", "min": 1}]}
        )
    )
    path = write_pipeline(tmp_path, MISSING_INPUT, [{"stage": "quality", "rules": str(rules)}])
    msg = _error(path)
    assert f"{rules}: rules[1]: Value error, unknown stat 'wordcount'" in msg


def test_quality_rule_without_threshold(tmp_path):
    path = write_pipeline(
        tmp_path, MISSING_INPUT, [{"stage": "quality", "params": {"rules": [{"name": "x", "stat": "word_count"}]}}]
    )
    assert "rule 'x' needs a min or a max" in _error(path)


def test_input_needs_exactly_one_source(tmp_path):
    path = write_pipeline(tmp_path, [{"path": "a.jsonl", "demo": {"records": 10}}], [])
    assert f"{path}: inputs[0]: Value error, give exactly one of 'path'" in _error(path)


def test_missing_required_key(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: x\nstages: []\n")
    assert f"{path}: inputs: required key is missing" in _error(path)


def test_invalid_yaml_reports_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: x\ninputs: [\n")
    assert f"{path}: not valid YAML (line 3" in _error(path)


def test_duplicate_stage_names(tmp_path):
    path = write_pipeline(
        tmp_path, MISSING_INPUT, [{"stage": "quality", "rules": str(RULES / "quality/default.yaml")}] * 2
    )
    assert "stage names must be unique, repeated: quality" in _error(path)


def test_pipeline_file_missing(tmp_path):
    assert f"{tmp_path / 'none.yaml'}: pipeline file not found" in _error(tmp_path / "none.yaml")


def test_valid_pipeline_loads_without_touching_inputs(tmp_path):
    # The input does not exist; validation must still pass because it reads no data.
    path = write_pipeline(tmp_path, MISSING_INPUT)
    pipeline = load_pipeline(path)
    assert [s.name for s in pipeline.stages] == ["normalize", "langid", "quality"]


def test_repo_pipelines_are_valid():
    from tests.conftest import REPO

    names = set()
    for path in sorted((REPO / "pipelines").glob("*.yaml")):
        if path.name.endswith(".gates.yaml"):  # written by `curate init` beside its pipeline
            continue
        names.add(load_pipeline(path).spec.name)
    assert {"demo", "sft", "pretrain"} <= names


def test_field_mapping_keys_must_be_record_fields(tmp_path):
    path = write_pipeline(tmp_path, [{"path": "a.jsonl", "fields": {"txt": "body"}}], [])
    msg = _error(path)
    assert f"{path}: inputs[0].fields: Value error, cannot map ['txt']" in msg


def test_rules_paths_expand_home_and_are_relative_to_the_file_that_names_them(tmp_path, monkeypatch):
    """Stage rules, gate rules and `extends:` resolve alike: `~` is the home folder, a relative path
    starts at the folder of the file it is written in, whatever the working directory."""
    home = tmp_path / "home"
    (home / "rules").mkdir(parents=True)
    (home / "rules" / "base.yaml").write_text((RULES / "normalize" / "default.yaml").read_text())
    (home / "rules" / "mine.yaml").write_text(yaml.safe_dump({"extends": "base.yaml"}))
    (home / "gates.yaml").write_text(yaml.safe_dump({"expectations": [{"unique": ["id"]}]}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p").mkdir()
    stages = [{"stage": "normalize", "rules": "~/rules/mine.yaml"}]
    path = write_pipeline(tmp_path / "p", [{"path": "in.jsonl"}], stages, gates=[{"rules": "~/gates.yaml"}])
    pipeline = load_pipeline(path)
    assert pipeline.stages[0].rules_path == home / "rules" / "mine.yaml" and len(pipeline.gates) == 1


def test_a_column_no_input_or_earlier_stage_provides_is_an_error_before_any_data_is_read(tmp_path):
    """split groups by dedup's `dup_cluster` and balance by an input column: a pipeline missing either
    is refused when it is loaded (the input file does not even exist), naming the stage and column."""
    split = {"stage": "split", "rules": str(RULES / "split" / "default.yaml")}
    path = write_pipeline(tmp_path, [{"path": "missing.jsonl"}], [split])
    with pytest.raises(ConfigError, match=r"stages\[0\] \(split\): needs columns \['dup_cluster'\]"):
        load_pipeline(path)
    dedup = {"stage": "dedup", "rules": str(RULES / "dedup" / "default.yaml")}
    assert load_pipeline(write_pipeline(tmp_path, [{"path": "missing.jsonl"}], [dedup, split])).stages
    balance = {"stage": "balance", "params": {"label": "label", "strata": ["ward"], "confounders": []}}
    with pytest.raises(ConfigError, match=r"\(balance\): needs columns \['ward'\]"):
        load_pipeline(write_pipeline(tmp_path, [{"path": "missing.jsonl"}], [balance]))
    declared = [{"path": "missing.jsonl", "columns": ["ward"]}]
    assert load_pipeline(write_pipeline(tmp_path, declared, [balance])).stages
