"""Preference pairs and KTO rows are records of their own kinds, read from every common layout: the prompt
turns in `messages`, the answers as turns in `chosen`/`rejected` (or `completion` + `desirable`), split
by turn structure, never by a shared character prefix; what cannot be read is quarantined with a reason."""

from __future__ import annotations

import json

import orjson
import polars as pl
import pytest

from curate.config import load_pipeline
from curate.decisions import ACTION, REASON
from curate.io.readers import read_batches
from curate.io.sources import resolve_inputs
from curate.records import (
    KIND_SCHEMA,
    KINDS,
    TURNS,
    RecordError,
    detect_layout,
    kind_expr,
    record_kind,
    to_record,
)
from tests.conftest import REPO, RULES, run, write_pipeline

REAL_PREF = REPO.parent / "shared" / "data" / "real-pref"


def _rec(obj, fields=None, columns=()):
    return to_record(obj, fmt="auto", fields=fields or {}, columns=list(columns), default_source=None)


def _rule(obj, **kwargs) -> str:
    with pytest.raises(RecordError) as err:
        _rec(obj, **kwargs)
    return err.value.rule


def user(content):
    return {"role": "user", "content": content}


def assistant(content):
    return {"role": "assistant", "content": content}


def system(content):
    return {"role": "system", "content": content}


Q = "What is the boiling point of water at sea level?"
GOOD, BAD = "100 °C, or 212 °F.", "About 50 °C."


# --- each layout: (input, layout name, prompt turns, chosen turns, rejected turns) ---
PAIR_CASES = [
    pytest.param(
        {"prompt": Q, "chosen": GOOD, "rejected": BAD},
        "pair (prompt)",
        [user(Q)],
        [assistant(GOOD)],
        [assistant(BAD)],
        id="trl-standard-explicit",
    ),
    pytest.param(
        {"prompt": [system("Be exact."), user(Q)], "chosen": [assistant(GOOD)], "rejected": [assistant(BAD)]},
        "pair (prompt)",
        [system("Be exact."), user(Q)],
        [assistant(GOOD)],
        [assistant(BAD)],
        id="trl-conversational-explicit",
    ),
    pytest.param(
        {
            "chosen": [user("Hi"), assistant("Hello!"), user(Q), assistant(GOOD)],
            "rejected": [user("Hi"), assistant("Hello!"), user(Q), assistant(BAD)],
        },
        "pair (implicit prompt)",
        [user("Hi"), assistant("Hello!"), user(Q)],
        [assistant(GOOD)],
        [assistant(BAD)],
        id="trl-conversational-implicit",
    ),
    pytest.param(
        {"chosen": f"\n\nHuman: {Q}\n\nAssistant: {GOOD}", "rejected": f"\n\nHuman: {Q}\n\nAssistant: {BAD}"},
        "pair (implicit prompt)",
        [user(Q)],
        [assistant(GOOD)],
        [assistant(BAD)],
        id="anthropic-hh",
    ),
    pytest.param(
        {
            "conversations": [{"from": "system", "value": "Be exact."}, {"from": "human", "value": Q}],
            "chosen": {"from": "gpt", "value": GOOD},
            "rejected": {"from": "gpt", "value": BAD},
        },
        "pair (conversations)",
        [system("Be exact."), user(Q)],
        [assistant(GOOD)],
        [assistant(BAD)],
        id="llamafactory-sharegpt-ranking",
    ),
    pytest.param(
        {"instruction": Q, "input": "Answer in Celsius.", "chosen": GOOD, "rejected": BAD, "system": "Be exact."},
        "pair (alpaca)",
        [system("Be exact."), user(f"{Q}\n\nAnswer in Celsius.")],
        [assistant(GOOD)],
        [assistant(BAD)],
        id="llamafactory-alpaca-ranking",
    ),
    pytest.param(
        {
            "chosen_messages": [
                {"role": "user", "content": [{"type": "text", "value": Q}], "loss_weight": 0.0},
                {"role": "assistant", "content": [{"type": "text", "value": GOOD}], "loss_weight": 1.0},
            ],
            "rejected_messages": [
                {"role": "user", "content": [{"type": "text", "value": Q}], "loss_weight": 0.0},
                {"role": "assistant", "content": [{"type": "text", "value": BAD}], "loss_weight": 1.0},
            ],
        },
        "pair (chosen_messages)",
        [user(Q)],
        [assistant(GOOD)],
        [assistant(BAD)],
        id="llamafactory-v1",
    ),
    pytest.param(
        {"messages": [system("Be exact."), user(Q)], "chosen": assistant(GOOD), "rejected": assistant(BAD)},
        "pair (messages)",
        [system("Be exact."), user(Q)],
        [assistant(GOOD)],
        [assistant(BAD)],
        id="axolotl-chat-template-default",
    ),
    pytest.param(
        {"system": "Be exact.", "question": Q, "chosen": GOOD, "rejected": BAD},
        "pair (question)",
        [system("Be exact."), user(Q)],
        [assistant(GOOD)],
        [assistant(BAD)],
        id="orca-dpo-pairs",
    ),
    pytest.param(
        {"messages": [user(Q)], "chosen": [assistant(GOOD)], "rejected": [assistant(BAD)]},
        "pair (messages)",
        [user(Q)],
        [assistant(GOOD)],
        [assistant(BAD)],
        id="canonical",
    ),
]


@pytest.mark.parametrize(("obj", "layout", "prompt", "chosen", "rejected"), PAIR_CASES)
def test_each_pair_layout_reads_as_prompt_turns_and_two_answers(obj, layout, prompt, chosen, rejected):
    assert detect_layout(obj).name == layout
    rec = _rec(obj)
    assert (rec["messages"], rec["chosen"], rec["rejected"]) == (prompt, chosen, rejected)
    assert rec["text"] is None and rec["margin"] is None and rec["meta"] is None  # every key consumed
    assert record_kind(rec) == "pair"


def test_hh_answers_sharing_a_long_prefix_are_split_at_the_turn_not_the_characters():
    """TRL's character-prefix split runs into the answer where both start alike (19% of HH's harmless
    test pairs); turn markers keep each answer whole, and a multi-turn prompt keeps all its turns."""
    opening = "I'm sorry, but I can't help with that. However, "
    before = "\n\nHuman: How do I pick a lock?\n\nAssistant: Why?\n\nHuman: I'm locked out.\n\nAssistant: "
    chosen, rejected = f"{before}{opening}a locksmith can.", f"{before}{opening}here is how."
    rec = _rec({"chosen": chosen, "rejected": rejected})
    assert rec["messages"] == [user("How do I pick a lock?"), assistant("Why?"), user("I'm locked out.")]
    assert rec["chosen"] == [assistant(f"{opening}a locksmith can.")]
    assert rec["rejected"] == [assistant(f"{opening}here is how.")]


def test_hh_transcripts_stripped_of_their_first_blank_lines_read_the_same():
    rec = _rec({"chosen": f"Human: {Q}\n\nAssistant: {GOOD}", "rejected": f" \n\nHuman: {Q}\n\nAssistant: {BAD}"})
    assert (rec["messages"], rec["chosen"], rec["rejected"]) == ([user(Q)], [assistant(GOOD)], [assistant(BAD)])


def test_identical_sides_still_split_at_the_last_user_turn():
    side = [user(Q), assistant(GOOD)]
    rec = _rec({"chosen": side, "rejected": side})
    assert rec["messages"] == [user(Q)] and rec["chosen"] == rec["rejected"] == [assistant(GOOD)]


def test_tool_calls_the_sides_share_stay_in_the_prompt_and_different_ones_in_the_answers():
    call, result = {"role": "assistant", "content": '{"name": "boil"}'}, {"role": "tool", "content": "100"}
    shared = _rec(
        {"chosen": [user(Q), call, result, assistant(GOOD)], "rejected": [user(Q), call, result, assistant(BAD)]}
    )
    assert shared["messages"] == [user(Q), call, result] and shared["chosen"] == [assistant(GOOD)]
    own = _rec({"chosen": [user(Q), call, result, assistant(GOOD)], "rejected": [user(Q), assistant(BAD)]})
    assert own["messages"] == [user(Q)] and own["chosen"] == [call, result, assistant(GOOD)]


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(
            {"chosen": f"\n\nHuman: {Q}\n\nAssistant: {GOOD}", "rejected": f"\n\nHuman: Another?\n\nAssistant: {BAD}"},
            id="hh-prompts-differ",
        ),
        pytest.param(
            {
                "chosen": [user("Hi"), assistant("Hello!"), user(Q), assistant(GOOD)],
                "rejected": [user("Hi"), assistant("Hey."), user(Q), assistant(BAD)],
            },
            id="an-earlier-assistant-turn-differs",
        ),
        pytest.param(
            {
                "chosen": [user(Q), assistant(GOOD)],
                "rejected": [user(Q), assistant(GOOD), user("More?"), assistant(BAD)],
            },
            id="one-side-goes-on",
        ),
        pytest.param(
            {"prompt": "Another question", "chosen": [user(Q), assistant(GOOD)], "rejected": [user(Q), assistant(BAD)]},
            id="sides-carry-another-prompt-than-the-prompt",
        ),
    ],
)
def test_pairs_whose_prompts_differ_are_quarantined(obj):
    assert _rule(obj) == "pair_prompt_mismatch"


def test_sides_that_repeat_the_prompt_are_read_once_with_the_margin_of_their_scores():
    """UltraFeedback binarized: `prompt`, whole conversations as the sides, and their scores."""
    rec = _rec(
        {
            "prompt": Q,
            "chosen": [user(Q), assistant(GOOD)],
            "rejected": [user(Q), assistant(BAD)],
            "score_chosen": 9.0,
            "score_rejected": 4,
        }
    )
    assert rec["messages"] == [user(Q)] and rec["chosen"] == [assistant(GOOD)] and rec["margin"] == 5.0
    assert json.loads(rec["meta"]) == {"score_chosen": 9.0, "score_rejected": 4}


def test_an_hh_prompt_given_apart_opens_the_answer_with_its_last_marker():
    rec = _rec({"prompt": f"\n\nHuman: {Q}\n\nAssistant:", "chosen": GOOD, "rejected": BAD})
    assert rec["messages"] == [user(Q)] and rec["chosen"] == [assistant(GOOD)]


@pytest.mark.parametrize(
    ("obj", "rule"),
    [
        ({"prompt": Q, "chosen": GOOD}, "pair_side_missing"),
        ({"prompt": Q, "chosen": GOOD, "rejected": None}, "pair_side_missing"),
        ({"messages": [user(Q)], "rejected": assistant(BAD)}, "pair_side_missing"),  # was read as a chat
        (
            {"conversations": [{"from": "human", "value": Q}], "chosen": {"from": "gpt", "value": GOOD}},
            "pair_side_missing",
        ),
        ({"chosen_messages": [user(Q), assistant(GOOD)]}, "pair_side_missing"),
        ({"prompt": Q, "chosen": GOOD, "rejected": "  "}, "answer_empty"),
        ({"prompt": Q, "chosen": [], "rejected": BAD}, "answer_empty"),
        ({"chosen": [user(Q), assistant(GOOD)], "rejected": [user(Q), assistant("")]}, "answer_empty"),
        (
            {"chosen": f"\n\nHuman: {Q}\n\nAssistant: {GOOD}", "rejected": f"\n\nHuman: {Q}\n\nAssistant:"},
            "answer_empty",
        ),
        (
            {"prompt": Q, "chosen": [assistant(GOOD), {"role": "tool", "content": "x"}], "rejected": BAD},
            "answer_not_assistant",
        ),
        (
            {
                "chosen": [user(Q), assistant(GOOD), user("Thanks")],
                "rejected": [user(Q), assistant(BAD), user("Thanks")],
            },
            "answer_not_assistant",
        ),
        ({"chosen": GOOD, "rejected": BAD}, "prompt_invalid"),  # standard implicit: no turns to split by
        ({"chosen": f"Preamble\n\nHuman: {Q}\n\nAssistant: {GOOD}", "rejected": BAD}, "prompt_invalid"),
        ({"prompt": "", "chosen": GOOD, "rejected": BAD}, "prompt_invalid"),
        (
            {"messages": [user(Q), assistant("Sure.")], "chosen": assistant(GOOD), "rejected": assistant(BAD)},
            "prompt_invalid",
        ),
        ({"chosen": [assistant(GOOD)], "rejected": [assistant(BAD)]}, "prompt_invalid"),
        ({"prompt": Q, "chosen": 5, "rejected": BAD}, "wrong_type"),
        ({"prompt": Q, "chosen": GOOD, "rejected": BAD, "margin": "big"}, "wrong_type"),
        (
            {"prompt": Q, "chosen": [{"role": "assistant", "content": [{"type": "image_url"}]}], "rejected": BAD},
            "wrong_type",
        ),
    ],
)
def test_what_cannot_be_read_as_a_pair_is_quarantined_with_its_own_rule(obj, rule):
    assert _rule(obj) == rule


# --- rated answers, binarised ---
def test_rated_answers_binarise_to_the_best_against_the_lowest_with_their_margin():
    rec = _rec(
        {
            "prompt": Q,
            "completions": [
                {"response": "Warm.", "score": 3},
                {"response": GOOD, "score": 9},
                {"response": BAD, "score": 1},
                {"response": "Hot.", "score": 9},  # a tie with the best: the first one is chosen
                {"response": "Cold.", "score": 1},  # a tie with the lowest: the first one is rejected
                {"response": "unscored"},
                {"response": "   ", "score": 0},  # no text: not an answer
            ],
        }
    )
    assert rec["messages"] == [user(Q)] and rec["chosen"] == [assistant(GOOD)] and rec["rejected"] == [assistant(BAD)]
    assert rec["margin"] == 8.0 and rec["meta"] is None


@pytest.mark.parametrize(
    ("obj", "layout"),
    [
        (
            {"prompt": Q, "completions": [{"text": GOOD, "rating": 5}, {"text": BAD, "rating": 2}]},
            "rated (prompt/completions)",
        ),
        (
            {
                "instruction": Q,  # UltraFeedback's own rows
                "models": ["a", "b"],
                "completions": [
                    {"model": "a", "response": BAD, "overall_score": 2.0, "fine-grained_score": 4.5},
                    {"model": "b", "response": GOOD, "overall_score": 5.0, "fine-grained_score": 1.0},
                ],
            },
            "rated (instruction/completions)",
        ),
        ({"prompt": Q, "responses": [BAD, GOOD], "scores": [2, 5]}, "rated (responses/scores)"),
    ],
)
def test_each_rated_layout_reads_its_text_and_score_keys(obj, layout):
    assert detect_layout(obj).name == layout
    rec = _rec(obj)
    assert (rec["chosen"], rec["rejected"], rec["margin"]) == ([assistant(GOOD)], [assistant(BAD)], 3.0)


@pytest.mark.parametrize(
    ("obj", "rule"),
    [
        ({"prompt": Q, "completions": [{"response": GOOD, "score": 4}, {"response": BAD, "score": 4}]}, "ratings_tied"),
        ({"prompt": Q, "completions": [{"response": GOOD, "score": 4}, {"response": BAD}]}, "ratings_too_few"),
        ({"prompt": Q, "completions": []}, "ratings_too_few"),
        ({"prompt": Q, "responses": [GOOD, BAD], "scores": [1]}, "wrong_type"),
        (
            {"prompt": Q, "completions": [{"response": GOOD, "score": "high"}, {"response": BAD, "score": 1}]},
            "wrong_type",
        ),
        ({"prompt": "", "responses": [GOOD, BAD], "scores": [2, 1]}, "prompt_invalid"),
    ],
)
def test_rated_rows_without_a_lower_rated_answer_are_quarantined(obj, rule):
    assert _rule(obj) == rule


# --- KTO ---
@pytest.mark.parametrize(
    ("obj", "layout", "prompt", "completion"),
    [
        ({"prompt": Q, "completion": GOOD, "label": True}, "kto (prompt/completion)", [user(Q)], [assistant(GOOD)]),
        (
            {"prompt": [user(Q)], "completion": [assistant(GOOD)], "label": True},
            "kto (prompt/completion)",
            [user(Q)],
            [assistant(GOOD)],
        ),
        (
            {"messages": [user("Hi"), assistant("Hello!"), user(Q), assistant(GOOD)], "label": True},  # LLaMA-Factory
            "kto (messages)",
            [user("Hi"), assistant("Hello!"), user(Q)],
            [assistant(GOOD)],
        ),
        (
            {"conversations": [{"from": "human", "value": Q}, {"from": "gpt", "value": GOOD}], "label": True},
            "kto (conversations)",
            [user(Q)],
            [assistant(GOOD)],
        ),
        (
            {"messages": [user(Q)], "completion": [assistant(GOOD)], "desirable": True},
            "kto (messages/completion)",
            [user(Q)],
            [assistant(GOOD)],
        ),
    ],
)
def test_each_kto_layout_reads_as_prompt_turns_a_completion_and_desirable(obj, layout, prompt, completion):
    assert detect_layout(obj).name == layout
    rec = _rec(obj)
    assert (rec["messages"], rec["completion"], rec["desirable"]) == (prompt, completion, True)
    assert rec["label"] is None and rec["meta"] is None  # the boolean label is `desirable`, not the record's label
    assert record_kind(rec) == "kto"
    assert _rec({**obj, **{k: False for k in ("label", "desirable") if k in obj}})["desirable"] is False


def test_a_flag_or_a_document_beside_one_side_key_is_not_a_pair():
    assert record_kind(_rec({"messages": [user(Q), assistant(GOOD)], "chosen": True})) == "chat"
    assert record_kind(_rec({"text": "a document", "rejected": "not the pick"})) == "text"


def test_a_label_that_is_not_a_boolean_keeps_a_chat_labelled():
    rec = _rec({"messages": [user(Q), assistant(GOOD)], "label": "true"})
    assert record_kind(rec) == "chat" and rec["label"] == "true" and "completion" not in rec


@pytest.mark.parametrize(
    ("obj", "rule"),
    [
        ({"messages": [user(Q)], "label": False}, "answer_empty"),
        ({"messages": [assistant(GOOD)], "label": True}, "prompt_invalid"),
        ({"prompt": Q, "completion": "", "label": True}, "answer_empty"),
        ({"messages": [user(Q)], "completion": [assistant(GOOD)], "desirable": "yes"}, "wrong_type"),
    ],
)
def test_what_cannot_be_read_as_a_kto_row_is_quarantined(obj, rule):
    assert _rule(obj) == rule


# --- mapping, kinds ---
def test_fields_map_the_sides_the_prompt_and_the_kto_flag():
    rec = _rec({"q": Q, "good": GOOD, "bad": BAD}, fields={"instruction": "q", "chosen": "good", "rejected": "bad"})
    assert (rec["messages"], rec["chosen"], rec["rejected"]) == ([user(Q)], [assistant(GOOD)], [assistant(BAD)])
    kto = _rec({"prompt": Q, "completion": GOOD, "kto_tag": True}, fields={"desirable": "kto_tag"})
    assert kto["desirable"] is True
    assert _rule({"q": Q, "good": GOOD}, fields={"instruction": "q", "chosen": "good", "rejected": "bad"}) == (
        "pair_side_missing"
    )


def test_record_kind_and_its_polars_expression_agree():
    rows = [
        {"text": "a document", "messages": None},
        {"text": None, "messages": [user(Q), assistant(GOOD)]},
        _rec({"prompt": Q, "chosen": GOOD, "rejected": BAD}),
        _rec({"prompt": Q, "completion": GOOD, "label": False}),
    ]
    schema = {"text": pl.Utf8, "messages": TURNS, **KIND_SCHEMA["pair"], **KIND_SCHEMA["kto"]}
    df = pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row")
    assert [record_kind(r) for r in rows] == list(KINDS)
    assert df.select(kind_expr(df.schema))["kind"].to_list() == list(KINDS)
    text_only = df.select("text", "messages")  # a frame without the pair and KTO columns
    assert text_only.select(kind_expr(text_only.schema))["kind"].to_list() == ["text", "chat", "chat", "chat"]


# --- through the reader and a run ---
def _read(tmp_path, rows: list) -> tuple[pl.DataFrame, pl.DataFrame]:
    (tmp_path / "in.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    pipeline = load_pipeline(write_pipeline(tmp_path, [{"path": "in.jsonl"}], []))
    batches = list(read_batches(resolve_inputs(pipeline), batch_size=2, max_record_bytes=100_000))
    return pl.concat([b.records for b in batches], how="diagonal_relaxed"), pl.concat([b.quarantined for b in batches])


def test_a_batch_carries_the_pair_and_kto_columns_only_when_it_holds_such_records(tmp_path):
    records, rejected = _read(
        tmp_path,
        [
            {"text": "a document"},
            {"messages": [user(Q), assistant(GOOD)]},
            {"prompt": Q, "chosen": GOOD, "rejected": BAD},
            {"prompt": Q, "completions": [{"response": GOOD, "score": 3}, {"response": BAD, "score": 1}]},
            {"prompt": Q, "completion": GOOD, "label": True},
            {"chosen": f"\n\nHuman: {Q}\n\nAssistant: {GOOD}", "rejected": f"\n\nHuman: Other\n\nAssistant: {BAD}"},
        ],
    )
    assert records.schema["chosen"] == records.schema["rejected"] == records.schema["completion"] == TURNS
    assert records.schema["margin"] == pl.Float64 and records.schema["desirable"] == pl.Boolean
    assert records.select(kind_expr(records.schema))["kind"].to_list() == ["text", "chat", "pair", "pair", "kto"]
    assert records["margin"].to_list() == [None, None, None, 2.0, None]
    assert rejected.select("src_row", "rule").rows() == [(6, "pair_prompt_mismatch")]

    texts, _ = _read(tmp_path, [{"text": "a document"}, {"messages": [user(Q), assistant(GOOD)]}])
    assert not set(texts.columns) & {"chosen", "rejected", "margin", "completion", "desirable"}


def test_a_run_with_normalize_and_split_publishes_pairs_and_reads_them_back(tmp_path):
    rows = [
        {"prompt": f"Question {i}: {Q}", "chosen": f"{GOOD}  Answer {i}.", "rejected": f"{BAD} ({i})", "margin": 1}
        for i in range(40)
    ]
    rows.append({"prompt": Q, "chosen": " ", "rejected": BAD})  # quarantined: answer_empty
    (tmp_path / "pairs.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    stages = [
        {"stage": "normalize", "rules": str(RULES / "normalize/default.yaml")},
        {"stage": "split", "rules": str(RULES / "split/default.yaml"), "params": {"group_by": []}},
    ]
    result = run(write_pipeline(tmp_path, [{"path": "pairs.jsonl"}], stages, name="pairs"), tmp_path / "out")
    manifest = result.manifest
    assert manifest["accounting"][0]["reasons"] == {"answer_empty": 1}
    assert {"chosen", "rejected", "margin"} <= set(manifest["record_columns"])
    data = pl.read_parquet(tmp_path / "out" / "data")
    assert data.schema["chosen"] == data.schema["rejected"] == data.schema["messages"] == TURNS
    assert data.schema["margin"] == pl.Float64 and "completion" not in data.columns
    first = data.filter(pl.col("src_row") == 1).row(0, named=True)
    assert first["chosen"] == [assistant(f"{GOOD} Answer 0.")]  # normalize reached the answers
    assert first["messages"] == [user(f"Question 0: {Q}")] and first["text"] is None and first["margin"] == 1.0

    (tmp_path / "back").mkdir()
    back = run(
        write_pipeline(tmp_path / "back", [{"path": f"shards://pairs@{manifest['version']}"}], [], name="back"),
        tmp_path / "back" / "out",
    )
    again = pl.read_parquet(tmp_path / "back" / "out" / "data")
    cols = ["id", "messages", "chosen", "rejected", "margin", "meta"]
    assert again.select(cols).sort("id").equals(data.select(cols).sort("id"))
    assert back.manifest["accounting"][0]["quarantined"] == 0


# --- the real sets (LLaMA-Factory's demo data, ../shared/data/real-pref) ---
@pytest.mark.skipif(not REAL_PREF.is_dir(), reason="needs ../shared/data/real-pref")
@pytest.mark.parametrize(
    ("name", "kind", "rows"),
    [("dpo_en_demo.json", "pair", 300), ("dpo_zh_demo.json", "pair", 300), ("kto_en_demo.json", "kto", 300)],
)
def test_the_real_preference_sets_read_whole(name, kind, rows):
    records = [_rec(obj) for obj in json.loads((REAL_PREF / name).read_text())]
    assert len(records) == rows and {record_kind(r) for r in records} == {kind}
    assert all(r["messages"][-1]["role"] == "user" for r in records)
    answers = ("chosen", "rejected") if kind == "pair" else ("completion",)
    assert all(r[a][-1]["role"] == "assistant" for r in records for a in answers)
    if kind == "kto":
        assert sum(r["desirable"] for r in records) == 150


@pytest.mark.skipif(not REAL_PREF.is_dir(), reason="needs ../shared/data/real-pref")
def test_llamafactory_v1_pairs_drop_the_loss_weights_and_keep_the_system_prompt():
    lines = (REAL_PREF / "v1_dpo_demo.jsonl").read_text().splitlines()
    records = [_rec(orjson.loads(line)) for line in lines]
    assert len(records) == 10 and all(record_kind(r) == "pair" for r in records)
    assert all([t["role"] for t in r["messages"]] == ["system", "user"] for r in records)
    assert all(r["meta"] is None for r in records)


def test_normalize_cleans_the_answers_and_drops_a_pair_whose_side_it_empties():
    from curate.stages.normalize import NormalizeRules, NormalizeStage

    rows = [
        _rec({"prompt": f"{Q}  ", "chosen": f"{GOOD}   Really.", "rejected": BAD}),
        _rec({"prompt": Q, "chosen": GOOD, "rejected": "\x07\x08"}),  # nothing but control characters: nothing is left
        _rec({"prompt": Q, "completion": "Cafe\u0301 au   lait.", "label": True}),
    ]
    schema = {"id": pl.Utf8, "text": pl.Utf8, "messages": TURNS, **KIND_SCHEMA["pair"], **KIND_SCHEMA["kto"]}
    df = pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row")
    stage = NormalizeStage("normalize", NormalizeRules())
    stage.setup()
    out = stage.process(df)
    assert out["chosen"][0].to_list() == [assistant(f"{GOOD} Really.")] and out["messages"][0].to_list() == [user(Q)]
    assert out["completion"][2].to_list() == [assistant("Café au lait.")]
    assert out[ACTION].to_list() == ["keep", "drop", "keep"] and "in rejected" in out[REASON][1]
    assert out["normalize_changed"].to_list() == [True, True, True]
