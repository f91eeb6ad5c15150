"""The trainer reads curated shards by catalog reference and refuses data it cannot trust."""

from __future__ import annotations

import json

import pytest

from curate.train.data import TrainDataError, load
from tests.conftest import run, write_pipeline


def _curate(tmp_path, rows, name="sft"):
    (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = write_pipeline(
        tmp_path, [{"path": f"{name}.jsonl", "columns": ["split"]}], [{"stage": "normalize"}], name=name
    )
    return run(path, tmp_path / f"out-{name}")


def _chat(i, split, answer=None):
    return {
        "id": f"c{i}",
        "split": split,
        "messages": [
            {"role": "user", "content": f"Question number {i} about clinic hours?"},
            {"role": "assistant", "content": answer or f"Answer {i}: we open at nine."},
        ],
    }


def test_loads_train_and_validation_by_catalog_reference_with_lineage(tmp_path):
    result = _curate(tmp_path, [_chat(i, "train" if i % 4 else "validation") for i in range(20)])
    data = load(f"shards://sft@{result.manifest['version']}")
    assert (data.train.height, data.validation.height) == (15, 5)
    assert data.lineage["version"] == result.manifest["version"] and data.lineage["ref"].startswith("shards://sft@")
    assert load(str(result.out_dir)).train.height == 15


def test_validation_rows_that_repeat_train_rows_are_refused(tmp_path):
    rows = [_chat(i, "train" if i % 4 else "validation") for i in range(20)]
    rows.append(
        {**_chat(99, "validation"), "messages": rows[1]["messages"]}
    )  # a train conversation, again in validation
    result = _curate(tmp_path, rows)
    with pytest.raises(TrainDataError, match="validation overlaps train \\(content 1\\)"):
        load(str(result.out_dir))


def test_missing_split_or_failed_gates_are_refused(tmp_path):
    (tmp_path / "plain.jsonl").write_text(
        "".join(json.dumps({"id": f"t{i}", "text": f"Text {i}."}) + "\n" for i in range(5))
    )
    plain = run(
        write_pipeline(tmp_path, [{"path": "plain.jsonl"}], [{"stage": "normalize"}], name="plain"), tmp_path / "plain"
    )
    with pytest.raises(TrainDataError, match="no `split` column"):
        load(str(plain.out_dir))
    manifest = json.loads((plain.out_dir / "manifest.json").read_text())
    (plain.out_dir / "manifest.json").write_text(json.dumps({**manifest, "status": "failed"}))
    with pytest.raises(TrainDataError, match="marked 'failed'"):
        load(str(plain.out_dir))
