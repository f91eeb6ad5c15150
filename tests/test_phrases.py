"""The phrases stage: disclaimers and refusals out of SFT answers, on labelled cases of what must go
and what merely looks like it (role-play personas, ordinary "I cannot")."""

from __future__ import annotations

import json

import polars as pl
import pytest

from curate.config import load_pipeline
from curate.errors import ConfigError
from curate.schema import load_rules, parse_model
from curate.stages.phrases import PhrasesRules, PhrasesStage
from tests.conftest import RULES, run, write_pipeline

TURNS = pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))

# (assistant answer, the list it must be dropped by, or None: it must be kept)
ANSWERS = [
    ("As an AI language model, I don't have personal opinions on politics.", "ai_disclaimer"),
    ("I'm sorry, but I can't assist with that.", "refusal"),
    ("Sure. But as an AI\nlanguage   model I cannot browse the web.", "ai_disclaimer"),
    ("I was trained by OpenAI and my knowledge cutoff is 2021.", "ai_disclaimer"),
    ("As an AI therapist, I am here to support and guide you.", None),  # a role-play persona
    ("I cannot emphasize enough the importance of strong, unique passwords.", None),
    ("The paper trains a language model on code and evaluates it.", None),
    ("She works as an AI language modeling researcher.", None),  # not the whole phrase
    ("Here is the SQL: SELECT name FROM staff;", None),
]


def _chats(answers: list[str], question: str = "Tell me something.") -> pl.DataFrame:
    messages = [[{"role": "user", "content": question}, {"role": "assistant", "content": a}] for a in answers]
    n = len(answers)
    return pl.DataFrame(
        {"id": [f"r{i}" for i in range(n)], "text": [None] * n, "messages": messages},
        schema={"id": pl.Utf8, "text": pl.Utf8, "messages": TURNS},
    )


def _default(**update) -> PhrasesStage:
    rules = parse_model(PhrasesRules, load_rules(RULES / "phrases" / "default.yaml"), RULES)
    return PhrasesStage("phrases", rules.model_copy(update=update))


def test_default_lists_drop_disclaimers_and_refusals_and_keep_what_only_looks_like_them():
    out = _default().process(_chats([a for a, _ in ANSWERS]))
    expected = [f"phrases:{list_}" if list_ else None for _, list_ in ANSWERS]
    assert out["_rule"].to_list() == expected
    assert out["_action"].to_list() == ["drop" if e else "keep" for e in expected]
    assert out["_reason"][0] == "contains 'As an AI language model' (list ai_disclaimer)"


def test_only_the_chosen_roles_are_searched_and_documents_whole():
    asked = _chats(["Paris is the capital of France."], question="Answer as an AI language model would.")
    assert _default().process(asked)["_action"].to_list() == ["keep"]  # the user asked; the answer is fine
    assert _default(roles="all").process(asked)["_action"].to_list() == ["drop"]
    doc = pl.DataFrame(
        {"id": ["d"], "text": ["Review: as an AI language model, it cannot taste food."], "messages": [None]},
        schema={"id": pl.Utf8, "text": pl.Utf8, "messages": TURNS},
    )
    assert _default().process(doc)["_rule"].to_list() == ["phrases:ai_disclaimer"]


def test_flag_keeps_every_record_and_names_the_list():
    out = _default(action="flag").process(_chats([a for a, _ in ANSWERS]))
    assert set(out["_action"].to_list()) == {"keep"}
    assert out["phrase_list"].to_list() == [list_ for _, list_ in ANSWERS]


def test_a_pipeline_accounts_for_each_list_and_the_replay_relaxes_each(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": a}]}
        for i, (a, _) in enumerate(ANSWERS)
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    stages = [{"stage": "phrases", "rules": str(RULES / "phrases" / "default.yaml")}]
    result = run(write_pipeline(tmp_path, [{"path": "in.jsonl"}], stages), tmp_path / "out")
    account = result.manifest["accounting"][-1]
    assert account["stage"] == "phrases" and account["reasons"] == {"phrases:ai_disclaimer": 3, "phrases:refusal": 1}
    assert result.manifest["rows"]["kept"] == 5
    criteria = PhrasesStage.criteria(_default().rules, pl.DataFrame({"rule": ["phrases:refusal"]}))
    assert [(name, list(rules.lists)) for name, rules in criteria] == [("phrases list refusal", ["ai_disclaimer"])]


def test_an_empty_list_or_phrase_is_a_config_error_naming_the_list(tmp_path):
    bad = {"stage": "phrases", "params": {"lists": {"mine": ["  "]}}}
    with pytest.raises(ConfigError, match="list 'mine': every phrase needs a word"):
        load_pipeline(write_pipeline(tmp_path, [{"path": "in.jsonl"}], [bad]))
