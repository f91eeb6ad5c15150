"""Stage behaviour on small, hand-built batches."""

from __future__ import annotations

import unicodedata

import ftfy.bad_codecs  # noqa: F401  (registers sloppy-windows-1252)
import polars as pl
import pytest
import yaml

from curate.records import BASE_SCHEMA
from curate.schema import load_rules
from curate.stages.base import ACTION, REASON, RULE
from curate.stages.langid import LangIdRules, LangIdStage
from curate.stages.normalize import Normalizer, NormalizeRules, NormalizeStage
from curate.stages.quality import QualityRules, QualityStage
from curate.textstats import STATS, Doc
from tests.conftest import RULES

VIETNAMESE = [
    "Bệnh nhân được chuyển đến khoa cấp cứu lúc 3 giờ sáng.",
    "Người bệnh tiểu đường nên kiểm tra đường huyết thường xuyên.",
    "Công ty bảo hiểm đã thanh toán chi phí điều trị cho nhân viên.",
]


def _batch(texts: list[str | None] = (), chats: list[list[dict]] = (), langs=None) -> pl.DataFrame:
    rows = [{"id": f"t{i}", "text": t} for i, t in enumerate(texts)]
    rows += [{"id": f"c{i}", "messages": m} for i, m in enumerate(chats)]
    df = (
        pl.DataFrame(rows, schema={k: v for k, v in BASE_SCHEMA.items()}, orient="row")
        if rows
        else pl.DataFrame(schema=BASE_SCHEMA)
    )
    if langs is not None:
        df = df.with_columns(pl.Series("lang", langs, dtype=pl.Utf8))
    return df


def _stage(cls, rules_model, **params):
    stage = cls("s", rules_model.model_validate(params) if isinstance(rules_model, type) else rules_model)
    stage.setup()
    return stage


@pytest.mark.parametrize("codec", ["sloppy-windows-1252", "latin-1", "mac_roman"])
@pytest.mark.parametrize("text", VIETNAMESE)
def test_mojibake_repair_restores_double_encoded_vietnamese(codec, text):
    broken = text.encode("utf-8").decode(codec)
    assert broken != text
    assert Normalizer(NormalizeRules())(broken) == text


def test_double_mojibake_is_repaired_too():
    text = VIETNAMESE[0]
    twice = text.encode("utf-8").decode("sloppy-windows-1252").encode("utf-8").decode("sloppy-windows-1252")
    assert Normalizer(NormalizeRules())(twice) == text


def test_decomposed_vietnamese_is_composed_to_nfc():
    nfd = unicodedata.normalize("NFD", VIETNAMESE[1])
    assert nfd != VIETNAMESE[1]
    assert Normalizer(NormalizeRules())(nfd) == VIETNAMESE[1]


def test_control_characters_and_whitespace():
    fix = Normalizer(NormalizeRules())
    assert fix("a\x00b\x07c   d\t\te  \n\n\n\n f \r\n") == "abc d e\n\n f"
    keep_spaces = Normalizer(NormalizeRules(normalize_whitespace=False))
    assert keep_spaces("a   b") == "a   b"


def test_ascii_fast_path_matches_ftfy():
    fix = Normalizer(NormalizeRules(normalize_whitespace=False))
    for text in [
        "plain ascii text.",
        "tab\tand newline\n",
        "html &amp; entity",
        "cr\r\nlf",
        "esc \x1b[31mred\x1b[0m",
        "nul\x00",
    ]:
        assert fix(text) == ftfy.fix_text(text, fix.config), text


def test_normalize_stage_fixes_chat_content_and_drops_what_becomes_empty():
    stage = _stage(NormalizeStage, NormalizeRules)
    broken = VIETNAMESE[2].encode("utf-8").decode("latin-1")
    df = _batch(
        ["\x00\x01 \t", "fine"], [[{"role": "user", "content": broken}, {"role": "assistant", "content": "ok"}]]
    )
    out = stage.process(df)
    assert out[ACTION].to_list() == ["drop", "keep", "keep"]
    assert out[RULE][0] == "empty_after_normalize"
    assert out["messages"][2].to_list()[0]["content"] == VIETNAMESE[2]
    assert out["normalize_changed"].to_list() == [True, False, True]


def test_langid_keeps_allowed_languages_and_explains_drops():
    stage = _stage(LangIdStage, LangIdRules, allowed=["en", "vi"], min_score=0.5)
    df = _batch(
        [
            "The clinic extended its opening hours so that working parents could come after school.",
            VIETNAMESE[1],
            "Die Klinik hat ihre Öffnungszeiten verlängert, damit berufstätige Eltern kommen können.",
        ],
        [
            [
                {"role": "user", "content": "Which sunscreen is best for sensitive skin?"},
                {"role": "assistant", "content": "A mineral one."},
            ]
        ],
    )
    out = stage.process(df)
    assert out["lang"].to_list() == ["en", "vi", "de", "en"]
    assert out[ACTION].to_list() == ["keep", "keep", "drop", "keep"]
    assert out[RULE][2] == "lang_not_allowed" and "language de" in out[REASON][2]
    assert out["lang_score"].min() > 0.5


def test_langid_low_confidence_uses_per_language_floor():
    stage = _stage(
        LangIdStage,
        LangIdRules,
        allowed=[],
        min_score=0.999,
        min_score_by_lang={"vi": 0.1},
        min_prose_letters=0,
        short_letters=0,
    )
    out = stage.process(_batch([VIETNAMESE[0], "ok"]))
    assert out[ACTION].to_list() == ["keep", "drop"]
    assert out[RULE][1] == "low_confidence"


def test_langid_keeps_what_it_cannot_judge_and_says_why():
    """Too little prose, or short prose lid.176 is unsure of: kept, with `und` and the reason in lang_basis."""
    stage = _stage(LangIdStage, LangIdRules, allowed=["en"], min_score=0.65)
    out = stage.process(
        _batch(
            [
                "ok",
                "Write a JavaScript function to convert a number to a roman numeral.",
                " ".join(["Riverside Health announced that its billing team reduced claim denials."] * 4),
            ]
        )
    )
    assert out[ACTION].to_list() == ["keep", "keep", "keep"]
    assert out["lang_basis"].to_list() == ["too_little_prose", "unsure_short_prose", "text"]
    assert out["lang"].to_list()[:2] == ["und", "und"] and out["lang"][2] == "en"


def test_langid_missing_model_file_is_a_clear_error(tmp_path):
    from curate.errors import ConfigError

    with pytest.raises(ConfigError, match="model file not found"):
        _stage(LangIdStage, LangIdRules, model_path=str(tmp_path / "none.ftz"))


def _default_quality() -> QualityStage:
    return _stage(
        QualityStage, QualityRules.model_validate(yaml.safe_load((RULES / "quality/default.yaml").read_text()))
    )


GOOD_DOC = (
    "Riverside Health announced that its billing team reduced claim denials by 12% over the last year. "
    "The finance director explained that clean documentation is the cheapest way to reduce denials, and that "
    "staff training with the new checklist made the biggest difference.\n\n"
    "Patients with asthma should discuss a medication review with their pharmacist before making any change. "
    "Family members play an important role in helping patients stick to the plan that they agreed with the clinic."
)


def test_default_quality_rules_keep_a_good_document_and_drop_junk():
    stage = _default_quality()
    spam = "\n".join(["BUY CHEAP MEDS ONLINE NOW!!!", "CLICK HERE FOR A FREE TRIAL"] * 10)
    lorem = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 10 + " the and of to with that have be"
    out = stage.process(_batch([GOOD_DOC, "Click here", spam, lorem], langs=["en"] * 4))
    assert out[ACTION].to_list() == ["keep", "drop", "drop", "drop"]
    assert out[RULE].to_list()[1:3] == ["gopher_min_words", "gopher_stop_words"]
    assert {"gopher_dup_lines", "gopher_dup_line_chars"} <= set(out["quality_failed"][2].to_list())
    assert "c4_lorem_ipsum" in out["quality_failed"][3].to_list()
    assert out["quality_failed"][0].to_list() == []
    assert out["q_word_count"][1] == 2.0


def test_quality_rules_are_scoped_by_shape_and_language():
    stage = _stage(
        QualityStage,
        QualityRules,
        chat_roles="assistant",
        rules=[
            {"name": "short_text", "stat": "word_count", "min": 5, "applies_to": ["text"]},
            {"name": "empty_answer", "stat": "word_count", "min": 1, "applies_to": ["chat"]},
            {"name": "vi_only", "stat": "char_count", "max": 3, "langs": ["vi"]},
        ],
    )
    chats = [
        [{"role": "user", "content": "a long question here"}, {"role": "assistant", "content": ""}],
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "an answer"}],
    ]
    out = stage.process(_batch(["two words"], chats, langs=["en", "en", "en"]))
    assert out[RULE].to_list() == ["short_text", "empty_answer", None]
    assert out["q_char_count"].to_list() == [None, None, None]  # vi-only rule never applied


def test_text_statistics_on_known_inputs():
    doc = Doc("a b c d e f a b c d e f x y z", "en")
    assert STATS["dup_ngram_char_fraction"](doc, n=5) == pytest.approx(12 / 15)
    assert STATS["top_ngram_char_fraction"](doc, n=2) == pytest.approx(4 / 15)
    lines = Doc("same line\nsame line\nother line\n- bullet...", "en")
    assert STATS["dup_line_fraction"](lines) == pytest.approx(1 / 4)
    assert STATS["bullet_line_ratio"](lines) == pytest.approx(1 / 4)
    assert STATS["ellipsis_line_ratio"](lines) == pytest.approx(1 / 4)
    assert STATS["stop_word_count"](Doc("The cat and the dog", "en")) == 2
    assert STATS["stop_word_count"](Doc("Tôi và bạn của tôi", "vi")) == 2
    assert STATS["stop_word_count"](Doc("irgendwas", "de")) is None
    assert STATS["dup_ngram_char_fraction"](Doc("one two three", "en"), n=5) == 0.0


def test_top_ngram_ties_do_not_depend_on_hash_order():
    # "aa bb" and "c d" both occur twice; the earliest wins, in any process.
    import subprocess
    import sys

    code = (
        "from curate.textstats import Doc, top_ngram_char_fraction as f; print(f(Doc('aa bb c d aa bb c d', 'en'), "
        "n=2))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
            cwd=RULES.parent,
        ).stdout
        for seed in range(6)
    }
    assert outputs == {f"{2 * 4 / 12}\n"}


def test_normalize_keeps_indentation_and_spacing_inside_code():
    from curate.stages.normalize import Normalizer, NormalizeRules

    fix = Normalizer(NormalizeRules())
    code = "Here is the function:\n\ndef f(x):\n    if x:\n        return  x   + 1\n    return 0"
    assert fix(code) == code  # Python without its indentation is another program
    assert fix("Hello   world \t and\u00a0more  \n\n\n\nNext   para  ") == "Hello world and more\n\nNext para"


def _chat(answer: str) -> list[dict]:
    return [{"role": "user", "content": "Write a query for the task."}, {"role": "assistant", "content": answer}]


def test_uppercase_is_judged_on_prose_so_sql_answers_are_kept_but_shouting_is_not():
    stage = _default_quality()
    sql = "SELECT Name FROM Employees WHERE Salary > 50000 ORDER BY Name DESC LIMIT 10;"
    mixed = (
        "Use this query:\n\nSELECT COUNT(*) FROM orders WHERE customer_name LIKE '%ar%';\n\nIt counts the matching "
        "orders."
    )
    shouting = "THIS IS THE BEST OFFER YOU WILL EVER SEE, CALL US TODAY AND GET IT FREE"
    out = stage.process(_batch(chats=[_chat(sql), _chat(mixed), _chat(shouting)], langs=["en"] * 3))
    assert out[ACTION].to_list() == ["keep", "keep", "drop"]
    assert out[RULE][2] == "chat_uppercase"
    assert out["q_uppercase_ratio"][0] is None  # a code-only answer is not judged by a prose rule
    # the demo's rules judge the whole text, as when its version was fixed: the SQL answer is shouting there
    demo = _stage(QualityStage, QualityRules.model_validate(load_rules(RULES / "quality/demo.yaml")))
    assert demo.process(_batch(chats=[_chat(sql)], langs=["en"]))[RULE].to_list() == ["chat_uppercase"]


def test_quality_rules_can_be_disabled_by_name_and_unknown_names_are_errors():
    rules = load_rules(RULES / "quality/default.yaml")
    stage = _stage(QualityStage, QualityRules.model_validate({**rules, "disable": ["gopher_min_words"]}))
    out = stage.process(_batch(["Click here to read the short note."], langs=["en"]))
    assert "gopher_min_words" not in out["quality_failed"][0].to_list()
    assert "q_word_count" in out.columns  # other rules on the statistic still measure it
    with pytest.raises(ValueError, match="disable: no rule named"):
        QualityRules.model_validate({**rules, "disable": ["gopher_min_wrds"]})
    # an inline list of rules replaces the file's, and prose_rules naming the file's rules does not get in the way
    only = QualityRules.model_validate({**rules, "rules": [{"name": "min_words", "stat": "word_count", "min": 3}]})
    assert [r.name for r in only.active] == ["min_words"]
