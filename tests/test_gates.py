"""Quality gates: rules become Great Expectations checks; a failed `fail` check fails the run,
keeps the output for inspection and leaves nothing usable in the catalog."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from curate.catalog import Catalog
from curate.cli import app
from curate.config import load_pipeline
from curate.errors import CatalogError, ConfigError
from curate.gates.frames import records_frame
from curate.gates.rules import ChatRule, GateRule, PatternRule
from tests.conftest import RULES, run, write_pipeline

runner = CliRunner()
TEXT = "The clinic reviewed its budget for the coming quarter and approved two new nurse positions."


def _records(folder, rows: list[dict]) -> None:
    (folder / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _gated(folder, rules: list[dict], stages=None, after: str = "final", columns=None):
    (folder / "gates.yaml").write_text(yaml.safe_dump({"expectations": rules}, sort_keys=False))
    return write_pipeline(
        folder,
        [{"path": "in.jsonl", "columns": columns or []}],
        [{"stage": "normalize"}] if stages is None else stages,
        gates=[{"rules": "gates.yaml", "after": after}],
    )


def _clean(n: int = 30) -> list[dict]:
    return [{"id": f"r{i}", "text": f"{TEXT} Item {i}.", "split": "train" if i % 3 else "test"} for i in range(n)]


def test_records_frame_measures_content_without_copying_it():
    df = pl.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "text": ["Hello, World!", "hello   world", None, "Mail me at maria.k84@gmail.com or 555-123-4567."],
            "messages": [None, None, [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "  "}], None],
        },
        schema_overrides={"messages": pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))},
    )
    got = records_frame(df.lazy(), [GateRule(chat=ChatRule()), GateRule(pii_patterns=PatternRule())])
    assert "text" not in got.columns and "messages" not in got.columns
    assert (
        got["content_hash"][0] == got["content_hash"][1] != got["content_hash"][3]
    )  # normalized: case, punctuation, spaces
    assert got["content_chars"].to_list() == [13, 13, 4, 47]
    assert got["role_order_ok"].to_list() == [None, None, False, None]
    assert got["empty_assistant_turns"].to_list()[2] == 0
    assert got["pii:email"].to_list() == [0, 0, 0, 1] and got["pii:phone"].to_list() == [0, 0, 0, 1]
    assert got["pii_pattern_hits"].to_list() == [0, 0, 0, 2]


def test_the_pattern_scan_skips_the_documentation_values_the_pii_stage_keeps():
    """example.com hosts, placeholder and role mailboxes, 555-01xx: what the pii stage never redacts is no
    residual personal data (a tool-call set's "boss@example.com" failed its gates)."""
    texts = [
        "Send it to boss@example.com, yourname@yourdomain.com or a@b.test.",
        "server.login('johndoe@gmail.com', pw); write to info@acme.vn; call 555-0134.",
        "Reach maria.k84@gmail.com or 415-867-5309.",
    ]
    got = records_frame(pl.DataFrame({"text": texts}).lazy(), [GateRule(pii_patterns=PatternRule())])
    assert got["pii_pattern_hits"].to_list() == [0, 0, 2]


def test_chat_checks_catch_empty_assistant_turns_and_bad_role_order():
    schema = {"messages": pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8})), "text": pl.Utf8}
    chats = [
        [("system", "s"), ("user", "q"), ("assistant", "a")],
        [("user", "q"), ("assistant", " ")],
        [("user", "q"), ("user", "q2"), ("assistant", "a")],
        [("user", "q")],
        [
            ("user", "q"),
            ("assistant", "call"),
            ("tool", "result"),
            ("assistant", "a"),
            ("user", "q2"),
            ("assistant", "b"),
        ],
        [("user", "q"), ("tool", "result"), ("assistant", "a")],
        [("user", "q"), ("assistant", "call"), ("tool", "result")],
    ]
    df = pl.DataFrame(
        {"messages": [[{"role": r, "content": c} for r, c in m] for m in chats], "text": [None] * 7}, schema=schema
    )
    got = records_frame(df.lazy(), [GateRule(chat=ChatRule())])
    # must end on an assistant turn; a tool's result follows an assistant's call and is answered
    assert got["role_order_ok"].to_list() == [True, True, False, False, True, False, False]
    assert got["empty_assistant_turns"].to_list() == [0, 1, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(
    "rules, message",
    [
        ([{"uniq": ["id"]}], "unknown key (did you mean 'unique'?)"),
        ([{"unique": ["id"], "not_null": ["id"]}], "exactly one check"),
        ([{"length": {"mostly": 0.9}}], "give 'min', 'max' or both"),
        ([{"pii_patterns": {"patterns": {"bad": "("}}}], "not a valid regex"),
        ([{"pii_residual": {"max": 0.01}}], "needs a pii stage with residual_sample > 0"),
    ],
)
def test_bad_gate_rules_are_clear_errors_before_any_data_is_read(tmp_path, rules, message):
    path = _gated(tmp_path, rules)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_pipeline(path)


def test_gate_after_an_unknown_stage_is_an_error(tmp_path):
    path = _gated(tmp_path, [{"unique": ["id"]}], after="normalise")
    with pytest.raises(ConfigError, match="no stage named 'normalise' \\(did you mean 'normalize'\\?\\)"):
        load_pipeline(path)


def test_unknown_gx_expectation_is_named_with_a_suggestion(tmp_path):
    _records(tmp_path, _clean())
    path = _gated(tmp_path, [{"gx": {"type": "ExpectColumnValuesToBeUniq", "kwargs": {"column": "id"}}}])
    with pytest.raises(
        ConfigError,
        match="no expectation 'ExpectColumnValuesToBeUniq' \\(did you mean 'ExpectColumnValuesToBeUnique'\\?\\)",
    ):
        run(path, tmp_path / "out")


def test_clean_data_passes_every_gate_and_is_registered(tmp_path):
    _records(tmp_path, _clean())
    path = _gated(
        tmp_path,
        [
            {"columns": {"required": ["id", "split"], "types": {"id": "String", "split": "String"}}},
            {"not_null": ["id", "text"]},
            {"has_content": True},
            {"length": {"min": 20, "max": 1000}},
            {"unique": ["id", "content"]},
            {"duplicate_rate": {"max": 0.0}},
            {"split_sizes": {"min": {"train": 15, "test": 5}}},
            {"no_leakage": {"held_out": ["test"], "groups": [], "ngram": 8}},
            {"pii_patterns": {}},
            {"gx": {"type": "ExpectColumnValuesToBeBetween", "kwargs": {"column": "content_chars", "max_value": 200}}},
        ],
        columns=["split"],
    )
    result = run(path, tmp_path / "out")
    gates = result.manifest["gates"]
    assert [g["point"] for g in gates] == ["final"]
    assert gates[0]["counts"] == {"pass": len(gates[0]["checks"]), "warn": 0, "fail": 0}
    assert result.manifest["status"] == "ok" and result.failed_gates == []
    assert Catalog().resolve("t").version == result.manifest["version"]
    assert (tmp_path / "out" / "gx-docs" / "index.html").is_file()  # GX's own Data Docs are kept


def _bad_leak(folder):
    rows = _clean()
    rows.append({"id": "leak", "text": rows[1]["text"].upper() + "!!", "split": "test"})  # a train row, re-cased
    _records(folder, rows)
    return _gated(folder, [{"no_leakage": {"held_out": ["test"], "groups": [], "ngram": 8}}], columns=["split"])


def _bad_pii(folder):
    rows = _clean()
    for i in (3, 7):
        rows[i]["text"] += " Contact jane.roe84@gmail.com about it."
    _records(folder, rows)
    return _gated(folder, [{"pii_patterns": {"max_rate": 0.01}}])


def _bad_schema(folder):
    _records(folder, _clean())
    return _gated(folder, [{"columns": {"required": ["id", "domain"], "types": {"src_row": "String"}}}])


@pytest.mark.parametrize(
    "make, expected, observed",
    [
        (_bad_leak, "normalized contents in both train and test <= 0", "1"),
        (_bad_leak, "train/test pairs sharing 8-grams <= 0", "1"),
        (_bad_pii, "records matching a PII pattern", "2 of 30 records unexpected (6.67%)"),
        (_bad_schema, "column 'domain' present", "missing"),
        (_bad_schema, "column 'src_row' has type String", "Int64"),
    ],
    ids=["leaked-content", "leaked-ngrams", "pii-left-in", "missing-column", "wrong-type"],
)
def test_bad_data_fails_the_run_and_nothing_usable_is_registered(tmp_path, make, expected, observed):
    path = make(tmp_path)
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 4, result.output
    out = " ".join(result.output.split())
    assert "FAIL" in out and expected in out and observed in out and "gates failed" in out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert (tmp_path / "out" / "data").is_dir()  # written, for inspection
    entry = Catalog().entries("t")[0]
    assert entry.status == "failed"
    with pytest.raises(CatalogError, match="no usable version"):
        Catalog().resolve("t@latest")
    with pytest.raises(CatalogError, match="marked 'failed'"):
        Catalog().resolve(f"t@{entry.version}")


def test_a_failed_run_fails_again_on_a_cache_hit(tmp_path):
    path = _bad_schema(tmp_path)
    first = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    again = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    assert first.exit_code == again.exit_code == 4
    assert "cache hit" in again.output


def test_warn_gates_are_reported_but_the_run_is_usable(tmp_path):
    _records(tmp_path, _clean())
    path = _gated(tmp_path, [{"name": "short texts", "length": {"max": 10}, "severity": "warn"}])
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "1 warned" in result.output and "short texts" in result.output
    assert Catalog().resolve("t").status == "ok"


def test_gates_after_a_stage_check_what_it_passed_on_without_changing_the_result(tmp_path):
    _records(tmp_path, _clean() + [{"id": "short", "text": "Too short.", "split": "train"}])
    stages = [{"stage": "normalize"}, {"stage": "quality", "rules": str(RULES / "quality/default.yaml")}]
    baseline = run(write_pipeline(tmp_path, [{"path": "in.jsonl"}], stages, name="plain"), tmp_path / "plain")
    (tmp_path / "final.yaml").write_text(yaml.safe_dump({"expectations": [{"unique": ["id"]}]}))
    path = _gated(tmp_path, [{"length": {"min": 20}}], stages=stages, after="normalize")
    spec = yaml.safe_load(path.read_text())
    spec["gates"].append({"rules": "final.yaml"})
    path.write_text(yaml.safe_dump(spec))
    result = run(path, tmp_path / "out")
    points = {g["point"]: g for g in result.manifest["gates"]}
    assert points["normalize"]["checks"][0]["observed"] == "1 of 31 records unexpected (3.23%)"
    assert points["normalize"]["checks"][0]["examples"] == ["short"]
    assert points["final"]["counts"] == {"pass": 1, "warn": 0, "fail": 0}
    assert [(a["stage"], a["kept"]) for a in result.manifest["accounting"]] == [
        (a["stage"], a["kept"]) for a in baseline.manifest["accounting"]
    ]
    assert result.manifest["status"] == "failed"  # the check after normalize has severity fail
