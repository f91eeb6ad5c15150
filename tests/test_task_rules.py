"""Rules that fit what a record is (issue 34): short questions, instructions and classification inputs
keep their good records. Labelled cases for each class of damage measured on real Vietnamese data:
web-page rules judging one-line questions, pii's placeholders counted as the author's text, a request
judged by the language of the answer it asks for, init not seeing a label under another name."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from curate.cli import app
from curate.onboard import _stage
from curate.stages.base import ACTION, RULE
from tests.onboarding_sets import patient_questions

runner = CliRunner()
MESSAGES = pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))


def _frame(texts=(), chats=(), lang=None) -> pl.DataFrame:
    rows = [{"id": f"t{i}", "text": t, "messages": None} for i, t in enumerate(texts)]
    rows += [
        {"id": f"c{i}", "text": None, "messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}
        for i, (u, a) in enumerate(chats)
    ]
    return pl.DataFrame(
        [{**r, "lang": lang} for r in rows],
        schema={"id": pl.Utf8, "text": pl.Utf8, "messages": MESSAGES, "lang": pl.Utf8},
        orient="row",
    )


# --- short texts: questions, sentences, classification inputs -----------------------------------------
VALID_QUESTIONS = [
    "Vì sao bị tiểu đêm ?",  # spaced punctuation
    "Bị đau_đầu , chóng_mặt , buồn_nôn là bệnh gì ?",  # word-segmented, commas standing alone
    "Triệu_chứng của bệnh tiểu_đường type 2",  # no question mark
    "CÁCH CHỮA TÁO BÓN TẠI NHÀ",  # capitals
    "Cho em hoi so mui co phai do thieu chat khong ?",  # no diacritics
    "Đau bụng",  # two words
    "Is it safe to take ibuprofen with coffee?",
    "😡",  # an emoji is a sentiment set's input, not an empty text
]
BAD_SHORT = {
    "": "short_empty",
    " ? ": "short_empty",
    "đau " * 12 + "quá": "short_word_loop",
}


def test_short_text_rules_keep_valid_questions_that_page_rules_drop():
    kept = _stage("quality", "short.yaml").process(_frame(VALID_QUESTIONS, lang="vi"))
    assert kept[ACTION].to_list() == ["keep"] * len(VALID_QUESTIONS)
    pages = _stage("quality", "default.yaml").process(_frame(VALID_QUESTIONS, lang="vi"))
    assert set(pages[ACTION].to_list()) == {"drop"}  # the class of damage: page rules judging questions


def test_short_text_rules_drop_what_is_wrong_with_a_short_text():
    out = _stage("quality", "short.yaml").process(_frame(list(BAD_SHORT), lang="vi"))
    assert out[RULE].to_list() == list(BAD_SHORT.values())


def test_segmented_vietnamese_and_lone_punctuation_are_measured_as_the_words_they_hold():
    from curate.textstats import STATS, Doc

    doc = Doc("Bị đau_đầu , chóng_mặt , buồn_nôn là bệnh gì ?", "vi")
    assert STATS["word_count"](doc) == 10 and STATS["alpha_word_ratio"](doc) == 1.0
    # symbols standing alone are still words: a menu bar is no prose
    assert STATS["alpha_word_ratio"](Doc("Home | About | Contact | Blog", "en")) == pytest.approx(4 / 7)


# --- what pii wrote is not the author's text ---------------------------------------------------------
def test_placeholders_do_not_count_toward_ratios_but_stand_for_a_word():
    answer = "Dear <PERSON_1>, your visit on <DATE_TIME_1> with <PERSON_2> at <LOCATION_1> is confirmed."
    chats = [
        ("Write a reminder for <PERSON_1> about the visit on <DATE_TIME_1>.", answer),
        ("Use regular expressions to extract the phone number from: My phone number is <PHONE_1>", "<PHONE_1>"),
        ("", "Hello! How can I help you today?"),
        ("Say nothing.", " "),
    ]
    out = _stage("quality", "default.yaml").process(_frame(chats=chats, lang="en"))
    assert out[RULE].to_list() == [None, None, "chat_empty_prompt", "chat_empty_assistant"]
    assert out["q_uppercase_ratio"][0] < 0.1  # 0.5 and more when the placeholders counted


def test_a_word_looping_in_an_answer_is_dropped_but_a_row_of_numbers_is_not():
    chats = [
        ("Say something.", "I think " + "the " * 15 + "answer is yes, and it helps."),
        ("Print a zero matrix.", "Here is the matrix you asked for, as rows:\n0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"),
        ("Is it very cold?", "It is very very very cold outside today, so wear a warm coat and gloves."),
    ]
    out = _stage("quality", "default.yaml").process(_frame(chats=chats, lang="en"))
    assert out[RULE].to_list() == ["chat_word_loop", None, None]


# --- langid reads the request -----------------------------------------------------------------------
KEEP_LANG = {  # (prompt, answer) -> the language the record is in
    (
        "Viết một đoạn văn ngắn bằng tiếng Tây Ban Nha về mùa hè ở biển.",
        "El verano en la playa es la época más "
        "alegre del año. El sol brilla, las olas rompen suavemente y las familias disfrutan del mar.",
    ): "vi",
    (
        "Hãy dịch câu sau sang tiếng Pháp: Tôi yêu gia đình của tôi và luôn muốn ở bên họ.",
        "J'aime ma famille et je veux toujours être avec elle.",
    ): "vi",
    (
        "Liệt kê tên 10 bang của nước Mỹ.",
        "1. Alabama\n2. Alaska\n3. Arizona\n4. Arkansas\n5. California\n"
        "6. Colorado\n7. Connecticut\n8. Delaware\n9. Florida\n10. Georgia",
    ): "vi",
    ("Bảng cửu chương 7", "\n".join(f"7 x {i} = {7 * i}" for i in range(1, 11))): "und",
    ("Tính 15% của 500", "15% của 500 là 75."): "und",
    (
        "Dịch đoạn văn sau sang tiếng Việt.\n\nLa vida es bella cuando compartimos nuestro tiempo con las personas "
        "que amamos y cuidamos cada día.",
        "Cuộc sống thật đẹp khi ta chia sẻ thời gian với người ta yêu thương.",
    ): "vi",
    (
        'Dịch câu "The weather is lovely today and we should go for a long walk" sang tiếng Việt',
        "Hôm nay trời đẹp và chúng ta nên đi dạo thật lâu.",
    ): "vi",
    ("BÁC SĨ CHO EM HỎI , CÁCH CHỮA TÁO BÓN TẠI NHÀ VÀ CÓ NÊN ĐI KHÁM KHÔNG ?", "Bạn nên uống nhiều nước."): "vi",
    ("Chao bac si , cho em hoi so mui co phai do thieu chat khong ?", "Không hẳn, sổ mũi thường do virus."): "vi",
}
DROP_LANG = [
    ("Schreibe ein Gedicht über den Herbst und die fallenden Blätter im Wald.", "Die Blätter fallen leise."),
    ("Escribe un poema sobre el mar y las estrellas en una noche de verano.", "El mar canta bajo las estrellas."),
    ("Il gatto dorme sul tavolo della cucina ogni pomeriggio dopo pranzo, perché?", "Perché è caldo."),
]


def test_langid_judges_the_request_not_the_answer_it_asks_for():
    stage = _stage("langid", "default.yaml")  # allowed: en, vi
    out = stage.process(_frame(chats=[*KEEP_LANG, *DROP_LANG]))
    got = list(zip(out[ACTION].to_list(), out["lang"].to_list()))
    assert got[: len(KEEP_LANG)] == [("keep", lang) for lang in KEEP_LANG.values()]
    assert [a for a, _ in got[len(KEEP_LANG) :]] == ["drop"] * len(DROP_LANG)
    reasons = out[len(KEEP_LANG) :]["_reason"].to_list()
    assert all("read on the prompt" in r for r in reasons)  # an auditor sees what was judged


def test_unaccented_vietnamese_is_told_from_romance_languages():
    from curate.lang import unaccented_vietnamese

    assert unaccented_vietnamese("Con toi 5 tuoi bi ngua da co nghiem_trong khong")
    for other in [
        "Il gatto dorme sul tavolo della cucina",
        "El perro come la comida en la casa",
        "Eu gosto de comer pao com manteiga todos os dias",
        "Write a Python function that returns the sum of a list",
        "Ich bin mude und gehe nach hause",
    ]:
        assert not unaccented_vietnamese(other), other


# --- init reads the data's shape ----------------------------------------------------------------------
def _init(tmp_path: Path, data: Path, *extra: str) -> tuple[str, dict]:
    out = tmp_path / "p.yaml"
    result = runner.invoke(app, ["init", str(data), "-o", str(out), *extra], terminal_width=200)
    assert result.exit_code == 0, result.output
    return out.read_text(), yaml.safe_load(out.read_text())


def test_init_sees_a_classification_set_under_any_label_name_and_counts_a_json_array(tmp_path, monkeypatch):
    """The held-out check's shape: a pretty-printed JSON array of short Vietnamese patient questions, the
    intent in `sent_label`, span labels beside it. More rows than init samples, so the size is counted."""
    monkeypatch.chdir(tmp_path)
    data = patient_questions(tmp_path / "vimq_like.json", n=900)
    header, pipeline = _init(tmp_path, data, "--sample", "400")
    assert "# task: classification — texts with a 'sent_label' column of 4 values" in header
    assert "# size: 900 records — counted;" in header
    stages = {s["stage"]: s for s in pipeline["stages"]}
    assert stages["quality"]["rules"].endswith("quality/short.yaml")
    assert pipeline["inputs"][0]["fields"] == {"text": "sentence", "label": "sent_label"}
    assert stages["split"]["params"]["stratify_by"] == "label"
    run = runner.invoke(app, ["run", "p.yaml", "-q"])
    assert run.exit_code == 0, run.output
    report = json.loads((tmp_path / "out" / "vimq_like" / "report.json").read_text())
    dropped = {s["stage"]: s["dropped"] for s in report["funnel"]}
    assert dropped["langid"] + dropped["quality"] <= 0.02 * 900


@pytest.mark.parametrize("key", ["y", "intent_name", "nhan"])
def test_a_column_of_few_repeated_values_beside_short_texts_is_a_label(tmp_path, key):
    rows = [
        {"content": f"Câu hỏi số {i}: thuốc {['A', 'B', 'C'][i % 3]} uống trước hay sau bữa ăn?", key: f"k{i % 3}"}
        for i in range(90)
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    header, pipeline = _init(tmp_path, data)
    assert "# task: classification" in header and pipeline["inputs"][0]["fields"]["label"] == key


def test_a_few_valued_column_of_where_a_document_came_from_is_no_label(tmp_path):
    from pydoc_data.topics import topics

    rows = [{"text": t, "source": ["docs", "faq"][i % 2]} for i, t in enumerate(sorted(topics.values())[:80])]
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    header, _ = _init(tmp_path, data)
    assert "# task: pretrain" in header and "# label: none" in header


def test_the_generic_classification_pipeline_publishes_short_labelled_questions(tmp_path, monkeypatch):
    from tests.conftest import REPO

    monkeypatch.chdir(tmp_path)
    rows = json.loads(patient_questions(tmp_path / "q.json", n=300).read_text())
    data = tmp_path / "questions.jsonl"
    data.write_text(
        "".join(json.dumps({"text": r["sentence"], "label": r["sent_label"]}, ensure_ascii=False) + "\n" for r in rows),
        encoding="utf-8",
    )
    result = runner.invoke(
        app, ["run", str(REPO / "pipelines" / "classification.yaml"), "--input", str(data), "-q", "-w", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output
    report = json.loads((tmp_path / "out" / "questions" / "report.json").read_text())
    dropped = {s["stage"]: s["dropped"] for s in report["funnel"]}
    assert dropped["langid"] + dropped["quality"] <= 0.02 * 300


INSTRUCTION_ABOUT_A_PASSAGE = [  # (request, answer): an English instruction about a passage in another language
    (
        "Q: You are given a sentence in Japanese. Your job is to translate the Japanese sentence into Polish.\n"
        "このページでは用語集が用意されている語句が赤く表示されています\nA:",
        "Na tej stronie terminy są zaznaczone na czerwono.",
    ),
    (
        "Abdulah Hasanagic este mândrul proprietar al AS Consulting, o firmă de consultanță din Sarajevo care "
        "lucrează cu clienți din toată regiunea.\n\nTranslate to English",
        "Abdulah Hasanagic is the proud owner of AS Consulting.",
    ),
    (
        "Detailed Instructions: In this task, given a sentence in the Malay language, and your task is to convert "
        "it into the English language.\nQ: Walau bagaimanapun, keputusan itu masih belum dimuktamadkan oleh pihak "
        "kerajaan negeri.",
        "However, the decision has not been finalised.",
    ),
]
INSTRUCTION_ABOUT_A_PASSAGE.append(
    (
        "Legen Sie die Füße nicht auf die Instrumententafel.\n\nCould you please translate this to English?",
        "Sure! It translates to: do not put your feet on the dashboard.",
    )
)
A_PASSAGE_ALONE = [
    (
        "Arvoisa puhemies, Pohjois-Irlannin edustajana tiedän aivan liian hyvin, millaisia hirvittäviä vaikutuksia "
        "terrorismilla on.",
        "Mr President, as a representative of Northern Ireland I know all too well.",
    ),
]


def test_an_instruction_about_a_passage_in_another_language_keeps_the_record():
    """Real preference sets (LLaMA-Factory's demos) hold translation and language tasks whose instruction
    comes before or after the passage, on its own line or before a colon."""
    stage = _stage("langid", "default.yaml", {"allowed": ["en"]})
    out = stage.process(_frame(chats=[*INSTRUCTION_ABOUT_A_PASSAGE, *A_PASSAGE_ALONE]))
    assert out[ACTION].to_list() == ["keep"] * len(INSTRUCTION_ABOUT_A_PASSAGE) + ["drop"] * len(A_PASSAGE_ALONE)
    assert set(out["lang_basis"].to_list()[: len(INSTRUCTION_ABOUT_A_PASSAGE)]) == {"request"}
