"""Configuration files under hostile conditions: YAML alias bombs, huge files and files the pipeline
names that cannot be read are refused by `curate validate`, quickly, naming the file, the key and the
path, before any work."""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest
import yaml
from typer.testing import CliRunner

from curate.cli import app
from curate.config import load_pipeline
from curate.errors import ConfigError
from curate.schema import MAX_CONFIG_BYTES, load_yaml
from tests.conftest import RULES, write_pipeline

runner = CliRunner()

# 9 levels of 9 aliases each: ~500 bytes that expand to 9**9 (387 million) strings
BOMB = "name: bomb\ninputs: [{demo: {records: 10}}]\nstages:\n  - stage: quality\n    params:\n"
BOMB += '      l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
BOMB += "".join(f"      l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))


def _validate(path) -> object:
    return runner.invoke(app, ["validate", str(path)], terminal_width=250)


def test_an_alias_bomb_is_refused_by_validate_quickly_in_bounded_memory(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 600
    tracemalloc.start()
    start = time.perf_counter()
    result = _validate(path)
    seconds, (_, peak) = time.perf_counter() - start, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.exit_code == 2, result.output
    assert f"{path}: line " in result.output and "aliases expand to more than 1,000,000" in result.output
    assert seconds < 10 and peak < 100_000_000


def test_a_training_config_uses_the_same_bounded_loader(tmp_path):
    from curate.train.config import load_config

    path = tmp_path / "train.yaml"
    path.write_text(BOMB)
    with pytest.raises(ConfigError, match="aliases expand to more than"):
        load_config(path)


def test_a_recursive_alias_and_deep_nesting_are_config_errors(tmp_path):
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("a: &a [1, *a]\n")
    with pytest.raises(ConfigError, match=r"recursive.yaml: line 1, column 11: the alias \*a refers to itself"):
        load_yaml(recursive, "rules")
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="deep.yaml: not valid YAML: nested too deeply"):
        load_yaml(deep, "rules")


def test_modest_anchors_and_merge_keys_still_work(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("base: &base {min_words: 50, max_words: 1000}\nstrict: {<<: *base, min_words: 80}\nalso: *base\n")
    assert load_yaml(path, "rules") == {
        "base": {"min_words": 50, "max_words": 1000},
        "strict": {"min_words": 80, "max_words": 1000},
        "also": {"min_words": 50, "max_words": 1000},
    }


def test_a_rules_file_over_the_size_limit_is_refused_naming_its_size(tmp_path):
    rules = tmp_path / "quality.yaml"
    with open(rules, "wb") as fh:
        fh.truncate(MAX_CONFIG_BYTES + 1)  # sparse: nothing is really written
    path = write_pipeline(tmp_path, [{"demo": {"records": 10}}], [{"stage": "quality", "rules": str(rules)}])
    result = _validate(path)
    assert result.exit_code == 2
    assert f"{rules}: the rules file is {MAX_CONFIG_BYTES + 1:,} bytes" in result.output
    assert f"limited to {MAX_CONFIG_BYTES:,} bytes" in result.output


# --- files the stages name ------------------------------------------------------------------------
def _split_with_eval_set(tmp_path, eval_path: str):
    rules = tmp_path / "split.yaml"
    rules.write_text(
        yaml.safe_dump({"group_by": [], "decontamination": {"eval_sets": [{"path": eval_path, "field": "question"}]}})
    )
    return write_pipeline(tmp_path, [{"demo": {"records": 10}}], [{"stage": "split", "rules": str(rules)}]), rules


def test_a_missing_eval_set_is_refused_when_the_pipeline_is_loaded_naming_stage_key_and_path(tmp_path):
    path, rules = _split_with_eval_set(tmp_path, "evals/questions.jsonl")
    result = _validate(path)
    assert result.exit_code == 2
    assert (
        f"{rules}: stages[0] (split): decontamination.eval_sets[0].path: file not found: "
        f"{tmp_path / 'evals/questions.jsonl'}"
    ) in result.output
    (tmp_path / "evals" / "questions.jsonl").mkdir(parents=True)  # a folder is not a readable file
    with pytest.raises(ConfigError, match=r"eval_sets\[0\].path: not a file: .*questions.jsonl"):
        load_pipeline(path)
    (tmp_path / "evals" / "questions.jsonl").rmdir()
    (tmp_path / "evals" / "questions.jsonl").write_text(json.dumps({"question": "What is 2 + 2?"}) + "\n")
    assert _validate(path).exit_code == 0


def test_a_shards_eval_set_is_the_catalogs_not_a_file(tmp_path):
    path, _ = _split_with_eval_set(tmp_path, "shards://bench@latest")
    assert load_pipeline(path).stages[0].stage == "split"


def test_a_blocklist_given_in_params_is_found_beside_the_pipeline_and_named_in_its_file(tmp_path):
    params = {"blocklists": [{"name": "blocked", "path": "lists/blocked.txt"}]}
    stages = [{"stage": "url", "rules": str(RULES / "url/default.yaml"), "params": params}]
    path = write_pipeline(tmp_path, [{"path": "in.jsonl", "columns": ["url"]}], stages)
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    assert f"{path}: stages[0] (url): blocklists[0].path: file not found: {tmp_path / 'lists/blocked.txt'}" in str(
        info.value
    )
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "blocked.txt").write_text("example.com\n")
    assert load_pipeline(path).stages[0].stage == "url"


# --- inputs ---------------------------------------------------------------------------------------
def test_validate_checks_the_inputs_exist_and_can_be_read(tmp_path):
    missing = write_pipeline(tmp_path, [{"path": "in.jsonl"}], [])
    result = _validate(missing)
    assert result.exit_code == 2 and f"{missing}: inputs[0]: input file not found: {tmp_path / 'in.jsonl'}" in (
        result.output
    )
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "hello"}) + "\n")
    assert _validate(missing).exit_code == 0
    glob = write_pipeline(tmp_path, [{"path": "parts/*.jsonl"}], [])
    result = _validate(glob)
    assert result.exit_code == 2 and "no file matches" in result.output
    ref = write_pipeline(tmp_path, [{"path": "shards://nothing@latest"}], [])
    result = _validate(ref)
    assert result.exit_code == 2 and "inputs[0]: no shards named 'nothing'" in result.output
