"""The pii stage on preference pairs: the answers (`chosen`, `rejected`) and a KTO `completion` are scanned
and redacted like the prompt, one value getting one replacement across the record."""

from __future__ import annotations

import json

import polars as pl

from tests.conftest import RULES, run, write_pipeline

EMAIL = "minh.nguyen84@gmail.com"
PAIRS = [
    {
        "prompt": f"My email is {EMAIL}. Can you send me the lab results?",
        "chosen": f"I cannot send email, but your clinic can write to {EMAIL} once the results are in.",
        "rejected": f"Sure, I have sent them to {EMAIL}.",
    },
    {
        "prompt": "How do I reset my password?",
        "chosen": "Open Settings, choose Security, then Reset password.",
        "rejected": "Write to support at mark.tran@outlook.com with your card 4111 1111 1111 1111.",
    },
]
KTO = [
    {"prompt": "Who should I call?", "completion": "Call Dr. Smith at lan.pham@yahoo.com tomorrow.", "label": True},
    {"prompt": "Any advice?", "completion": "Rest and drink water.", "label": False},
]


def _published(tmp_path, rows: list[dict], name: str) -> pl.DataFrame:
    (tmp_path / f"{name}.json").write_text(json.dumps(rows))
    stages = [
        {"stage": "normalize"},
        {"stage": "pii", "rules": str(RULES / "pii" / "default.yaml")},
    ]
    result = run(write_pipeline(tmp_path, [{"path": f"{name}.json"}], stages, name=name), tmp_path / "out")
    return pl.read_parquet(result.out_dir / "data" / "*.parquet").sort("src_row")


def test_pii_redacts_both_answers_of_a_pair_as_it_redacts_the_prompt(tmp_path):
    out = _published(tmp_path, PAIRS, "pairs")
    first, second = out.row(0, named=True), out.row(1, named=True)
    texts = [first["messages"][-1]["content"], first["chosen"][0]["content"], first["rejected"][0]["content"]]
    assert all(EMAIL not in t for t in texts)
    marks = {t[t.index("<") : t.index(">") + 1] for t in texts}
    assert len(marks) == 1 and next(iter(marks)).startswith("<EMAIL")  # one value, one placeholder
    assert "mark.tran@outlook.com" not in second["rejected"][0]["content"]
    assert "4111 1111 1111 1111" not in second["rejected"][0]["content"]
    assert second["chosen"][0]["content"] == PAIRS[1]["chosen"]  # nothing personal: untouched


def test_pii_redacts_a_kto_completion(tmp_path):
    out = _published(tmp_path, KTO, "kto")
    assert "lan.pham@yahoo.com" not in out["completion"][0][0]["content"]
    assert out["completion"][1][0]["content"] == KTO[1]["completion"]
    assert out["desirable"].to_list() == [True, False]
