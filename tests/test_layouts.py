"""Every input layout auto-detection knows maps onto the same chat record, from one table."""

from __future__ import annotations

import pytest

from curate.records import LAYOUTS, RecordError, detect_layout, to_record

CHAT = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "5"}]


def _rec(obj, fmt="auto", fields=None, columns=()):
    return to_record(obj, fmt=fmt, fields=fields or {}, columns=list(columns), default_source=None)


@pytest.mark.parametrize(
    ("obj", "layout"),
    [
        ({"messages": CHAT}, "chat (messages)"),
        (
            {"messages": [{"from": "human", "value": "What is 2 + 3?"}, {"from": "gpt", "value": "5"}]},
            "chat (messages)",
        ),
        (
            {"conversations": [{"from": "human", "value": "What is 2 + 3?"}, {"from": "gpt", "value": "5"}]},
            "sharegpt (conversations)",
        ),
        (
            {"conversation": [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "5"}]},
            "sharegpt (conversation)",
        ),
        ({"instruction": "What is 2 + 3?", "input": "", "output": "5"}, "alpaca"),
        ({"instruction": "What is 2 + 3?", "input": "", "response": "5"}, "alpaca (response)"),
        ({"instruction": "What is 2 + 3?", "completion": "5"}, "alpaca (completion)"),
        ({"prompt": "What is 2 + 3?", "completion": "5"}, "prompt/completion"),
        ({"prompt": "What is 2 + 3?", "response": "5"}, "prompt/response"),
        ({"question": "What is 2 + 3?", "answer": "5"}, "question/answer"),
    ],
)
def test_each_layout_is_detected_and_mapped_to_the_same_messages(obj, layout):
    assert detect_layout(obj).name == layout
    rec = _rec(obj)
    assert rec["messages"] == CHAT and rec["text"] is None
    assert rec["meta"] is None  # every key of the layout was consumed, the empty input too


def test_the_table_covers_every_layout_the_docs_promise():
    names = {layout.name for layout in LAYOUTS}
    assert {
        "alpaca",
        "alpaca (response)",
        "alpaca (completion)",
        "prompt/completion",
        "question/answer",
        "chat (messages)",
        "sharegpt (conversations)",
        "sharegpt (conversation)",
        "text",
    } <= names


def test_system_and_context_extras_and_other_keys_go_to_meta():
    rec = _rec(
        {
            "instruction": "Summarise.",
            "context": "A long passage.",
            "response": "Short.",
            "system": "Be brief.",
            "category": "summarization",
        },
        columns=["category"],
    )
    assert rec["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Summarise.\n\nA long passage."},
        {"role": "assistant", "content": "Short."},
    ]
    assert rec["category"] == "summarization" and rec["meta"] is None


def test_sharegpt_system_turn_and_unknown_role():
    rec = _rec(
        {
            "conversations": [
                {"from": "system", "value": "S"},
                {"from": "human", "value": "hi"},
                {"from": "gpt", "value": "hello"},
            ]
        }
    )
    assert [m["role"] for m in rec["messages"]] == ["system", "user", "assistant"]
    with pytest.raises(RecordError, match=r"conversations\[0\]\.from must be one of") as err:
        _rec({"conversations": [{"from": "narrator", "value": "x"}]})
    assert err.value.rule == "wrong_type"


def test_user_mapping_replaces_the_default_names():
    obj = {"q": "What is 2 + 3?", "a": "5", "answer": "ignored"}
    assert _rec(obj, fields={"instruction": "q", "output": "a"})["messages"] == CHAT
    assert _rec({"body": "a document"}, fields={"text": "body"})["text"] == "a document"


def test_explicit_format_reads_its_layout_and_names_a_missing_key():
    assert _rec({"question": "What is 2 + 3?", "answer": "5"}, fmt="question_answer")["messages"] == CHAT
    with pytest.raises(RecordError, match="required field 'completion' is missing") as err:
        _rec({"prompt": "x"}, fmt="prompt_completion")
    assert err.value.rule == "missing_field"


def test_a_record_matching_no_layout_is_missing_field_naming_its_keys():
    with pytest.raises(RecordError) as err:
        _rec({"title": "t", "body": "b"})
    assert err.value.rule == "missing_field"
    assert "'body', 'title'" in err.value.reason and "'question'" in err.value.reason


def test_turn_list_priority_over_pairs_and_text():
    obj = {"messages": CHAT, "text": None, "prompt": "p", "completion": "c"}
    assert detect_layout(obj).name == "chat (messages)"
    assert detect_layout({"text": "t", "messages": None}).name == "text"  # null keys do not count (curated shards)


def test_the_comparison_text_is_one_text_in_python_and_in_polars():
    """dedup, decontamination and the leakage gate compare the same text: the document, or the
    conversation as role: content lines; the polars form (the gates' content hash) agrees row by row."""
    import polars as pl

    from curate.records import comparison_expr, comparison_texts

    turns = pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))
    df = pl.DataFrame(
        {
            "text": ["a document", None, None, None],
            "messages": [
                None,
                [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}],
                [],
                None,
            ],
        },
        schema={"text": pl.Utf8, "messages": turns},
    )
    texts = comparison_texts(df)
    assert texts == ["a document", "user: Hi?\nassistant: Hello.", "", ""]
    assert df.select(comparison_expr(df.schema)[0].fill_null(""))[:, 0].to_list() == texts
    assert comparison_texts(df, "user_prompts") == ["a document", "Hi?", "", ""]


def test_sharegpt_tool_calls_read_as_the_assistant_calling_and_the_tool_answering():
    """LLaMA-Factory's tool data (glaive): function_call and observation turns; they were quarantined as
    wrong_type (153 of 300 records of the real set)."""
    obj = {
        "conversations": [
            {"from": "human", "value": "What's the weather in Houston?"},
            {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Houston"}}'},
            {"from": "observation", "value": '{"temp_c": 31}'},
            {"from": "gpt", "value": "It is 31 °C in Houston."},
        ],
        "tools": '[{"name": "get_weather"}]',
    }
    assert [m["role"] for m in _rec(obj)["messages"]] == ["user", "assistant", "tool", "assistant"]
