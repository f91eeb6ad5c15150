"""Personal data planted in every field a record has never reaches an output file, a checkpoint or the log."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import orjson
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from curate.cli import app
from tests.conftest import RULES, write_pipeline

runner = CliRunner()

PLANTED = {
    "id": "maria.lopez@posteo.net",
    "dup_id": "dup.owner@posteo.net",
    "meta": "jane.roe@fastmail.com",
    "meta_nested": "536-22-8724",
    "meta_name": "Margaret Thompson",
    "column": "owner.name@fastmail.com",
    "source": "peter.novak@fastmail.com",
    "label": "ann.smith@fastmail.com",
    "tool": "bob.jones@fastmail.com",
    "system": "sys.admin@fastmail.com",
    "role": "carol.white@fastmail.com",
    "malformed": "dan.brown@fastmail.com",
    "missing": "erin.black@fastmail.com",
    "quality": "fay.green@fastmail.com",
}


WORDS = (
    "clinic staffing budget quarter review plan nurse ward rota shift report audit supply order invoice "
    "schedule meeting training policy update schedule visit room bed pharmacy stock forecast"
).split()


def _filler(i: int) -> str:
    """Distinct text per record, so no two are near duplicates."""
    rng = random.Random(i)
    return "The " + " ".join(rng.choice(WORDS) for _ in range(24)) + "."


def _corpus(folder: Path, early_gate: bool = True) -> Path:
    rows = [
        {"id": PLANTED["id"], "text": f"{_filler(1)} Record one.", "owner": "team"},
        {
            "id": "r2",
            "text": f"{_filler(2)} Record two.",
            "contact": f"write {PLANTED['meta']}",
            "nested": {"ssn": f"SSN {PLANTED['meta_nested']}", "notes": [f"seen by Dr. {PLANTED['meta_name']} today"]},
        },
        {"id": "r3", "text": f"{_filler(3)} Record three.", "owner": PLANTED["column"]},
        {"id": "r4", "text": f"{_filler(4)} Record four.", "source": f"export for {PLANTED['source']}"},
        {"id": "r5", "text": f"{_filler(5)} Record five.", "label": PLANTED["label"]},
        {
            "id": "r6",
            "messages": [
                {"role": "system", "content": f"You help the clinic. Escalate to {PLANTED['system']}."},
                {"role": "user", "content": "Look up the staffing plan for next quarter, please."},
                {"role": "assistant", "content": "Looking it up now with the directory tool."},
                {"role": "tool", "content": f"directory result: contact {PLANTED['tool']} for the plan"},
                {"role": "assistant", "content": "The plan is ready; the contact is in the directory."},
            ],
        },
        {"id": "r7", "messages": [{"role": PLANTED["role"], "content": "hello there"}]},
        {"id": PLANTED["dup_id"], "text": f"{_filler(6)} Record eight."},
        {"id": PLANTED["dup_id"], "text": f"{_filler(7)} Record nine, same id."},
        {"title": f"no text field, written by {PLANTED['missing']}"},
        {"id": "r10", "text": f"hi {PLANTED['quality']}"},  # dropped by quality, before pii
    ]
    lines = [orjson.dumps(r) for r in rows] + [f'{{"text": "cut off line from {PLANTED["malformed"]}'.encode()]
    lines += [
        orjson.dumps({"id": f"f{i}", "text": f"{_filler(100 + i)} Filler record number {i} for the split."})
        for i in range(30)
    ]
    (folder / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    gates = folder / "gates.yaml"
    gates.write_text(
        yaml.safe_dump(
            {
                "expectations": [
                    {"values_in_set": {"column": "label", "values": ["routine"]}, "severity": "warn"},
                    {"unique": ["source"], "severity": "warn"},
                ]
            }
        )
    )
    return write_pipeline(
        folder,
        [{"path": "in.jsonl", "columns": ["owner"]}],
        [
            {"stage": "normalize", "rules": str(RULES / "normalize/default.yaml")},
            {
                "stage": "quality",
                "rules": str(RULES / "quality/default.yaml"),
                "params": {"rules": [{"name": "min_words", "stat": "word_count", "min": 3, "applies_to": ["text"]}]},
            },
            {"stage": "pii", "rules": str(RULES / "pii/default.yaml")},
            {"stage": "dedup", "rules": str(RULES / "dedup/default.yaml")},
            {"stage": "split", "rules": str(RULES / "split/default.yaml")},
        ],
        gates=[{"rules": "gates.yaml", "after": "normalize"}] * early_gate + [{"rules": "gates.yaml"}],
        name="planted",
        batch_size=8,
    )


def _leaks(text: str) -> list[str]:
    return sorted(k for k, v in PLANTED.items() if v in text)


def _file_text(path: Path) -> str:
    if path.suffix == ".parquet":
        return orjson.dumps(pl.read_parquet(path).to_dicts(), default=str).decode()
    return path.read_bytes().decode("utf-8", errors="replace")


def _leaks_in(folder: Path) -> dict[str, list[str]]:
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = _file_text(path)
        if leaked := _leaks(text):
            found[str(path.relative_to(folder))] = leaked
    return found


def test_checkpoints_of_a_crashed_run_hold_no_planted_value_when_pii_runs_in_the_first_segment(tmp_path, monkeypatch):
    """Rows the reader quarantined and rows rejected before pii are redacted in the worker before
    they are checkpointed. (Before the first global stage or gate point, that is; see the README.)"""
    import curate.engine as engine

    pipeline = _corpus(tmp_path, early_gate=False)
    monkeypatch.setattr(engine, "_publish", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    with pytest.raises(RuntimeError, match="crash"):
        runner.invoke(app, ["run", str(pipeline), "--out", str(tmp_path / "out"), "--quiet"], catch_exceptions=False)
    work = tmp_path / "out" / "_work"
    assert any(work.rglob("rejected-read.parquet")) and any(work.rglob("rejected-quality.parquet"))
    assert _leaks_in(work) == {}


def test_planted_values_in_every_field_never_reach_an_output_file_the_catalog_or_the_log(tmp_path, curate_home):
    pipeline = _corpus(tmp_path)
    result = runner.invoke(app, ["run", str(pipeline), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert _leaks(result.output) == []
    out = tmp_path / "out"
    assert _leaks_in(out) == {}
    assert _leaks_in(curate_home / "catalog") == {}
    # what was redacted is still accounted for, and the records are still there
    data = pl.read_parquet(out / "data" / "*.parquet")
    ids = set(data["id"])
    assert {"r2", "r3", "r4", "r5", "r6"} <= ids and any(i.startswith("id-") for i in ids)
    read = pl.read_parquet(out / "rejected" / "read" / "*.parquet")
    assert sorted(read["rule"]) == ["duplicate_id", "malformed_json", "missing_field", "wrong_type"]
    tool = next(m["content"] for m in data.filter(pl.col("id") == "r6")["messages"][0] if m["role"] == "tool")
    assert re.search(r"<EMAIL_\d+>", tool)  # numbered per record: the tool's address is the record's second
    meta = json.loads(data.filter(pl.col("id") == "r2")["meta"][0])
    assert meta["contact"] == "write <EMAIL_1>" and meta["nested"]["notes"] == ["seen by Dr. <PERSON_1> today"]
    assert data.filter(pl.col("id") == "r3")["owner"][0] == "<EMAIL_1>"
    assert data.filter(pl.col("id") == "r5")["label"][0] == "<EMAIL_1>"
    gates = json.loads((out / "manifest.json").read_text())["gates"]
    before = next(g for g in gates if g["point"] == "normalize")
    assert all(c["examples"] == [] for c in before["checks"])  # not redacted yet: no examples kept
