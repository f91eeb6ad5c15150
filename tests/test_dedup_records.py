"""Near-duplicates of instruction data are whole records (issue 34): labelled cases, in English and
Vietnamese, of what near dedup must leave alone (other tasks over one passage, the same tool with other
arguments, records sharing a tool description) and what it must still catch (exact copies, a long
record with whitespace, punctuation or one word changed); the old modes stay available."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from datasketch import MinHash

from curate.records import BASE_SCHEMA
from curate.stages.base import ACTION, REASON, RULE
from curate.stages.dedup import DedupRules, DedupStage, comparison_views, is_tool_call

REPO = Path(__file__).resolve().parents[1]
GLAIVE = REPO.parent / "shared" / "data" / "real-pref" / "glaive_toolcall_en_demo.json"
OLD = {"chat_text": "user_prompts", "min_shingles": 1, "short_ngram": 0}  # the shipped default before issue 34


def _stage(**rules) -> DedupStage:
    defaults = yaml.safe_load((REPO / "rules" / "dedup" / "default.yaml").read_text())
    stage = DedupStage("dedup", DedupRules.model_validate(defaults | rules))
    stage.setup()
    return stage


def _chat(*turns: tuple[str, str]) -> list[dict]:
    return [{"role": role, "content": content} for role, content in turns]


def _frame(chats: list[list[dict]]) -> pl.DataFrame:
    rows = [{"id": f"c{i}", "text": None, "messages": m} for i, m in enumerate(chats)]
    return pl.DataFrame(rows, schema={k: BASE_SCHEMA[k] for k in ("id", "text", "messages")}, orient="row")


def _rules(chats: list[list[dict]], **rules) -> list[str | None]:
    return _stage(**rules).process(_frame(chats))[RULE].to_list()


# --- other tasks over the same passage ------------------------------------------------------------------
PASSAGE_VI = (
    "Bệnh viện Đa khoa tỉnh vừa đưa vào sử dụng hệ thống đặt lịch khám trực tuyến, giúp người bệnh chọn "
    "bác sĩ và khung giờ phù hợp mà không phải xếp hàng từ sáng sớm. Trong tháng đầu tiên, hơn ba nghìn "
    "lượt đặt lịch đã được ghi nhận, thời gian chờ trung bình tại khoa khám bệnh giảm từ hai giờ xuống còn "
    "khoảng bốn mươi phút. Ban giám đốc cho biết bệnh viện sẽ mở rộng hệ thống sang khoa nhi và khoa sản "
    "trong quý tới, đồng thời bổ sung tính năng nhắc lịch tái khám qua tin nhắn cho người bệnh mạn tính."
)
TASKS_VI = [
    (
        "Tóm tắt đoạn văn sau trong một câu.",
        "Bệnh viện tỉnh đã triển khai đặt lịch khám trực tuyến, giúp giảm "
        "thời gian chờ từ hai giờ xuống khoảng bốn mươi phút và sẽ mở rộng sang khoa nhi, khoa sản.",
    ),
    ("Đặt một tiêu đề ngắn cho đoạn văn sau.", "Đặt lịch khám trực tuyến giúp giảm thời gian chờ"),
    ("Thời gian chờ trung bình sau khi áp dụng hệ thống là bao lâu?", "Khoảng bốn mươi phút."),
    ("Bệnh viện sẽ mở rộng hệ thống sang những khoa nào?", "Khoa nhi và khoa sản."),
]
PASSAGE_EN = (
    "Riverside Clinic moved its appointment booking online last spring. Patients now choose a doctor and a "
    "time slot on the website instead of calling the front desk, and reminders go out by text message two "
    "days before each visit. In the first three months missed appointments fell from eleven percent to six "
    "percent, and the front desk answered about four hundred fewer calls a week. The clinic plans to add "
    "online check-in and a waiting list for cancelled slots before the end of the year."
)
TASKS_EN = [
    (
        "Summarise the passage below in one sentence.",
        "Online booking with text reminders cut missed "
        "appointments at Riverside Clinic from eleven to six percent and reduced calls to the front desk.",
    ),
    ("Suggest a short title for the passage below.", "Online booking halves missed appointments"),
    ("By how much did missed appointments fall?", "From eleven percent to six percent."),
    ("Is the passage below positive or negative about online booking?", "Positive."),
]


@pytest.mark.parametrize("passage, tasks", [(PASSAGE_VI, TASKS_VI), (PASSAGE_EN, TASKS_EN)], ids=["vi", "en"])
def test_other_tasks_over_the_same_passage_are_other_records(passage, tasks):
    chats = [_chat(("user", f"{q}\n\n{passage}"), ("assistant", a)) for q, a in tasks]
    assert _rules(chats) == [None] * len(tasks)
    # the old default compared the prompts alone: the passage made them near duplicates
    assert _rules(chats, **OLD).count("near_duplicate") >= 2


def test_the_same_question_with_another_answer_is_another_record():
    question = f"Which two departments come next?\n\n{PASSAGE_VI}"
    chats = [
        _chat(("user", question), ("assistant", "Khoa nhi và khoa sản.")),
        _chat(("user", question), ("assistant", "Khoa tim mạch và khoa thần kinh.")),
    ]
    assert _rules(chats) == [None, None]
    assert _rules(chats, **OLD) == [None, "exact_duplicate"]


# --- tools ---------------------------------------------------------------------------------------------
WEATHER_TOOLS = {  # name: (what it returns, its parameters)
    "get_current_weather": (
        "the current temperature, humidity, wind speed and direction, and a short "
        "description of the sky, as reported by the nearest station",
        ["location", "unit"],
    ),
    "get_forecast": (
        "one entry per day with the lowest and highest temperature and the chance of rain",
        ["location", "days"],
    ),
    "get_air_quality": ("the air quality index with the main pollutant and advice for sensitive groups", ["location"]),
    "get_uv_index": (
        "the ultraviolet index for each hour of the day and when sun protection is needed",
        ["location", "date"],
    ),
    "get_sunrise_sunset": (
        "the times of sunrise, sunset and the length of the day in hours and minutes",
        ["location", "date"],
    ),
}
TOOLS = json.dumps(
    [
        {
            "name": name,
            "description": f"Get, for a city, {returns}.",
            "parameters": {
                "type": "object",
                "properties": {p: {"type": "string", "description": f"The {p} to ask about"} for p in params},
                "required": params[:1],
            },
        }
        for name, (returns, params) in WEATHER_TOOLS.items()
    ],
    indent=2,
)
SYSTEM = f"You are a helpful assistant with access to the following functions. Use them if required -\n{TOOLS}"


def _weather(city: str, place: str, temp: int) -> list[dict]:
    return _chat(
        ("system", SYSTEM),
        ("user", f"What's the weather in {place} today?"),
        ("assistant", json.dumps({"name": "get_current_weather", "arguments": {"location": place}})),
        ("tool", json.dumps({"temperature": temp, "sky": "sunny"})),
        ("assistant", f"It is {temp} degrees and sunny in {city} today."),
    )


def test_a_shared_tool_description_does_not_make_records_alike():
    """Four records behind one long tool description (too few to be boilerplate): the description is
    a system turn, left out of near matching, so the questions decide."""
    chats = [_weather("Houston", "Houston", 31), _weather("London", "London, UK", 18)]
    chats += [
        _chat(
            ("system", SYSTEM),
            ("user", "Will it rain in Hanoi this week?"),
            ("assistant", json.dumps({"name": "get_forecast", "arguments": {"location": "Hanoi", "days": 7}})),
        ),
        _chat(
            ("system", SYSTEM),
            ("user", "Can you book me a table for two tonight?"),
            ("assistant", "I'm sorry, I can only look up the weather and the forecast."),
        ),
    ]
    assert _rules(chats) == [None] * 4
    # the whole conversation as one text: the description dominates it
    assert "near_duplicate" in _rules(chats, chat_text="conversation", min_shingles=1)


def test_the_same_tool_with_other_arguments_is_another_record():
    """Tool calls are compared whole: a long conversation repeated with another argument value is
    another record, however alike the rest is."""
    story = (
        "I am planning a long walk along the river with my two children this afternoon and I would like to "
        "know whether we need rain jackets, sun hats or warm sweaters, because the little one gets cold "
        "easily and the older one always forgets her water bottle when it is hot outside. "
    )
    answer = (
        "Based on the current conditions it looks like a pleasant afternoon for a walk by the river. You "
        "probably will not need rain jackets, but sun hats and a bottle of water for each child are a good "
        "idea, and a light sweater for the little one in case the wind picks up near the water later on."
    )

    def record(unit: str) -> list[dict]:
        return _chat(
            ("user", story + "Please check the weather in Houston."),
            (
                "assistant",
                json.dumps({"name": "get_current_weather", "arguments": {"location": "Houston", "unit": unit}}),
            ),
            ("tool", json.dumps({"temperature": 24, "sky": "sunny"})),
            ("assistant", answer),
        )

    chats = [record("celsius"), record("fahrenheit")]
    assert _rules(chats) == [None, None]
    assert _rules(chats, chat_text="conversation", min_shingles=1) == [None, "near_duplicate"]


def test_tool_calls_are_found_in_the_formats_chat_sets_write():
    assert is_tool_call('{"name": "get_weather", "arguments": {"location": "Hanoi"}}')
    assert is_tool_call('<tool_call>\n{"arguments": {"q": "x"}, "name": "search"}\n</tool_call>')
    assert is_tool_call('<functioncall> {"name": "get_weather", "arguments": \'{"location": "Hanoi"}\'}')
    assert is_tool_call('[{"name": "a", "parameters": {}}]')
    assert not is_tool_call('Here is the JSON: {"name": "Lan", "age": 30}')
    assert not is_tool_call("The function takes two arguments: a name and a list.")


# --- what must still be caught ----------------------------------------------------------------------------
LONG_ANSWER_EN = (
    "To lower missed appointments, send a text reminder two days before each visit and again on the morning "
    "of the appointment, and let patients confirm or cancel by replying to the message. Offer online booking "
    "so that people can choose a time that suits them, keep a waiting list for cancelled slots, and call the "
    "patients who miss two visits in a row to ask what would help them come. Review the numbers every month "
    "so that you can see which of these steps makes the biggest difference for your clinic."
)
LONG_ANSWER_VI = (
    "Để giảm tình trạng người bệnh quên lịch khám, bệnh viện nên gửi tin nhắn nhắc lịch trước hai ngày và "
    "vào buổi sáng ngày khám, cho phép người bệnh xác nhận hoặc hủy lịch bằng cách trả lời tin nhắn. Nên mở "
    "đặt lịch trực tuyến để người bệnh tự chọn khung giờ phù hợp, lập danh sách chờ cho các lịch bị hủy và "
    "gọi điện cho những người bỏ lỡ hai lần liên tiếp để hỏi nguyên nhân. Hằng tháng cần xem lại số liệu để "
    "biết biện pháp nào mang lại hiệu quả rõ nhất."
)
EDITS = {
    "whitespace": lambda t: t.replace(" ", "  ", 3).replace(". ", ".\n", 1),
    "punctuation": lambda t: t.replace(",", "", 2).rstrip(".") + "!",
    "one word": lambda t: t.replace("two", "three", 1).replace("hai", "ba", 1),
}


@pytest.mark.parametrize(
    "question, answer",
    [
        ("How can a clinic reduce missed appointments?", LONG_ANSWER_EN),
        ("Làm thế nào để bệnh viện giảm tình trạng người bệnh bỏ lỡ lịch khám?", LONG_ANSWER_VI),
    ],
    ids=["en", "vi"],
)
@pytest.mark.parametrize("edit", list(EDITS))
def test_a_long_record_with_a_small_edit_is_still_a_duplicate(question, answer, edit):
    chats = [
        _chat(("user", question), ("assistant", answer)),
        _chat(("user", question), ("assistant", EDITS[edit](answer))),
    ]
    out = _stage().process(_frame(chats))
    assert out[ACTION].to_list() == ["keep", "drop"]
    assert out[RULE][1] == ("near_duplicate" if edit == "one word" else "exact_duplicate")
    assert out[REASON][1].startswith("duplicate of c0")


def test_a_one_line_prompt_with_a_word_changed_is_weighed_with_its_long_answer():
    chats = [
        _chat(("user", "How can a clinic reduce missed appointments?"), ("assistant", LONG_ANSWER_EN)),
        _chat(("user", "How can a practice reduce missed appointments?"), ("assistant", LONG_ANSWER_EN)),
    ]
    assert _rules(chats) == [None, "near_duplicate"]


def test_exact_copies_are_caught_and_the_same_dialogue_under_another_system_prompt_is_near():
    base = _weather("Hanoi", "Hanoi", 30)
    other_system = [{"role": "system", "content": "You are a weather assistant."}] + base[1:]
    out = _stage().process(_frame([base, [dict(m) for m in base], other_system]))
    assert out[RULE].to_list() == [None, "exact_duplicate", "near_duplicate"]


# --- short records -----------------------------------------------------------------------------------
def test_short_records_are_compared_whole():
    """A record of a few words: one changed word is another question, not a near copy; case,
    punctuation and spacing are still the same record."""
    chats = [
        _chat(("user", "What is the capital of France?"), ("assistant", "Paris.")),
        _chat(("user", "What is the capital of Spain?"), ("assistant", "Madrid.")),
        _chat(("user", "Thủ đô của Pháp là gì?"), ("assistant", "Paris.")),
        _chat(("user", "Thủ đô của Việt Nam là gì?"), ("assistant", "Hà Nội.")),
        _chat(("user", "what is the capital of  France"), ("assistant", "Paris")),
        _chat(("user", "Is 7 a prime number? Answer yes or no."), ("assistant", "Yes.")),
        _chat(("user", "Is 11 a prime number? Answer yes or no."), ("assistant", "Yes.")),
    ]
    assert _rules(chats) == [None, None, None, None, "exact_duplicate", None, None]


def test_a_short_answer_with_a_word_changed_is_another_answer():
    """Over a long passage, an answer of a few words is the whole point of the record."""
    question = f"Which departments come next?\n\n{PASSAGE_EN}"
    chats = [
        _chat(("user", question), ("assistant", "Online check-in and a waiting list.")),
        _chat(("user", question), ("assistant", "Online check-in and a reminder list.")),
    ]
    assert _rules(chats) == [None, None]
    # the whole conversation as one text: the passage makes them near
    assert _rules(chats, chat_text="conversation", min_shingles=1) == [None, "near_duplicate"]


def test_mid_length_parts_are_compared_by_word_pairs():
    """A part of 19 to 48 words is too short for 5-grams (one changed word already takes it under 0.8)
    but long enough for bigrams: a word changed in a 30-word answer is still a near copy."""
    answer = (
        "Send a text reminder two days before each visit, offer online booking, keep a waiting list for "
        "cancelled slots and call the patients who miss two visits in a row."
    )
    question = "How can a clinic reduce missed appointments?"
    chats = [
        _chat(("user", question), ("assistant", answer)),
        _chat(("user", question), ("assistant", answer.replace("text", "phone"))),
    ]
    assert _rules(chats) == [None, "near_duplicate"]
    assert _rules(chats, short_ngram=0) == [None, None]  # short parts compared whole


def test_short_documents_are_compared_whole_long_ones_by_jaccard():
    texts = [
        "Clinic closed on Monday for staff training.",
        "Clinic closed on Tuesday for staff training.",
        LONG_ANSWER_EN,
        LONG_ANSWER_EN.replace("morning", "evening"),
    ]
    df = pl.DataFrame(
        {"id": [f"t{i}" for i in range(4)], "text": texts, "messages": [None] * 4},
        schema={k: BASE_SCHEMA[k] for k in ("id", "text", "messages")},
    )
    assert _stage().process(df)[RULE].to_list() == [None, None, None, "near_duplicate"]


# --- the views, the old modes, datasketch ----------------------------------------------------------------
def test_views_leave_system_turns_out_and_compare_calls_whole():
    texts, views = comparison_views(_frame([_weather("Hanoi", "Hanoi", 30)]), "prompt_and_answer")
    (view,) = views
    assert "functions" not in view.prompt + view.answer + view.call
    assert view.prompt == 'What\'s the weather in Hanoi today?\n{"temperature": 30, "sky": "sunny"}'
    assert view.answer == "It is 30 degrees and sunny in Hanoi today."
    assert view.call == '{"name": "get_current_weather", "arguments": {"location": "Hanoi"}}'
    assert texts[0].startswith("system: You are a helpful assistant")  # exact keys: the whole record


def test_the_old_modes_are_kept():
    q = "Summarise the passage below in one sentence."
    chats = [
        _chat(("user", f"{q}\n\n{PASSAGE_EN}"), ("assistant", "One.")),
        _chat(("user", f"{q}\n\n{PASSAGE_EN}"), ("assistant", "Two.")),
    ]
    assert _rules(chats, chat_text="user_prompts", min_shingles=1) == [None, "exact_duplicate"]
    assert _rules(chats, chat_text="conversation", min_shingles=1) == [None, "near_duplicate"]
    assert _rules(chats) == [None, None]


def test_a_record_without_parts_compared_whole_has_datasketch_s_signature():
    """Prompt and answer long enough for 5-grams and no tool call: the MinHash of their shingles."""
    stage = _stage()
    chats = [_chat(("user", PASSAGE_EN), ("assistant", LONG_ANSWER_EN))]
    _, views = comparison_views(_frame(chats), "prompt_and_answer")
    ours = stage.sketch(views).signatures[0]
    reference = MinHash(num_perm=128, seed=1, hashfunc=stage.hasher.hashfunc)
    reference.update_batch(stage.hasher.shingles(PASSAGE_EN) + stage.hasher.shingles(LONG_ANSWER_EN))
    assert np.array_equal(reference.hashvalues, ours)


def test_settings_are_checked():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="short_ngram"):
        DedupRules(short_ngram=5)
    assert DedupRules().chat_text == "prompt_and_answer"
    assert DedupRules().hashing()["min_shingles"] == 45 and DedupRules().hashing()["short_ngram"] == 2


# --- real tool-use data ------------------------------------------------------------------------------------
@pytest.mark.skipif(not GLAIVE.is_file(), reason="real tool-call data not present (../shared/data/real-pref)")
def test_real_tool_use_set_loses_no_record_that_is_not_a_copy():
    """glaive_toolcall_en_demo (300 conversations, the tool schemas as a system turn): the records
    dropped that do not repeat another's dialogue are at most 2% of the set (one, read: a refusal with two
    words changed); each conversation again with one argument value changed throughout is kept."""
    from bench.dedup_damage import glaive, other_arguments, pair_class

    records = glaive(True)
    frame = _frame([r["messages"] for r in records])
    out = _stage().process(frame)
    dropped = out.filter(pl.col(ACTION) == "drop")
    pairs = [(int(i[1:]), int(d[1:])) for i, d in dropped.select("id", "dup_of").iter_rows()]
    other = [p for p in pairs if pair_class(records[p[0]], records[p[1]]) is None]
    assert len(pairs) >= 30 and len(other) <= 0.02 * len(records)
    sources, planted = other_arguments(records, random.Random(1))
    both = pl.concat([frame, _frame([r["messages"] for r in planted]).with_columns(pl.format("p{}", pl.col("id")))])
    decided = _stage().process(both)
    cluster = dict(zip(decided["id"].to_list(), decided["dup_cluster"].to_list()))
    assert len(planted) > 100
    assert not [i for k, i in enumerate(sources) if cluster[f"pc{k}"] and cluster[f"pc{k}"] == cluster[f"c{i}"]]
