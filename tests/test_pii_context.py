"""The default pii profile changes only a private person's data (issue 33, point 1): the labelled cases of
tests/pii_cases.py both ways, documentation values, the strict HIPAA profile, and the language pii reads."""

from __future__ import annotations

import re

import polars as pl
import pytest
import yaml

from curate.pii.analyzer import Span
from curate.pii.context import IdentifyingRule, Judge, reserved_ip
from curate.stages.base import StageContext
from curate.stages.pii import PiiRules, PiiStage
from tests.conftest import RULES
from tests.pii_cases import KEEP, REMOVE
from tests.test_pii import _frame, _stage


@pytest.fixture(scope="module")
def default() -> PiiStage:
    return _stage()


@pytest.fixture(scope="module")
def hipaa() -> PiiStage:
    from curate.schema import load_rules

    stage = PiiStage("pii", PiiRules.model_validate(load_rules(RULES / "pii" / "hipaa.yaml")), StageContext(seed=3))
    stage.setup()
    return stage


@pytest.fixture(scope="module")
def outputs(default) -> list[str]:
    texts = [t for _, t, _ in KEEP] + [t for _, t, _, _ in REMOVE]
    langs = [lang for *_, lang in KEEP] + [lang for *_, lang in REMOVE]
    return default.process(_frame(texts, langs))["text"].to_list()


@pytest.mark.parametrize("case", range(len(KEEP)), ids=[f"{c}:{t[:40]}" for c, t, _ in KEEP])
def test_text_without_a_private_persons_data_comes_out_unchanged(outputs, case):
    assert outputs[case] == KEEP[case][1]


@pytest.mark.parametrize("case", range(len(REMOVE)), ids=[f"{c}:{v}" for c, _, v, _ in REMOVE])
def test_a_private_persons_data_is_removed(outputs, case):
    _, text, value, _ = REMOVE[case]
    out = outputs[len(KEEP) + case]
    assert value not in out, out
    assert re.search(r"<[A-Z_]+_\d+>|\*{4,}", out), out  # replaced by a placeholder or masked, not cut out


# --- documentation values, in any profile -------------------------------------------------------
@pytest.mark.parametrize(
    "value, reserved",
    [
        ("127.0.0.1", True),
        ("0.0.0.0", True),
        ("::1", True),
        ("192.0.2.15", True),
        ("203.0.113.200", True),
        ("2001:db8::7", True),
        ("169.254.3.4", True),
        ("84.21.173.9", False),
        ("10.2.3.4", False),  # private: weak (personal only in an identifying record), not reserved
        ("not an ip", False),
    ],
)
def test_reserved_ip_addresses_are_nobodys(value, reserved):
    assert reserved_ip(value) is reserved


@pytest.mark.parametrize(
    "entity, value, documentation",
    [
        ("EMAIL_ADDRESS", "john@example.com", True),
        ("EMAIL_ADDRESS", "a.b@mail.example", True),
        ("EMAIL_ADDRESS", "ops@build.test", True),
        ("EMAIL_ADDRESS", "me@yourdomain.com", True),
        ("EMAIL_ADDRESS", "john@gmail.com", False),
        ("EMAIL_ADDRESS", "john@example.com.vn", False),
        ("URL", "https://api.example.org/v1", True),
        ("URL", "http://localhost:8080/x", True),
        ("URL", "http://127.0.0.1:5000", True),
        ("URL", "https://johnsmith.me/cv", False),
        ("SECRET", "your-password", True),
        ("SECRET", "YOUR_API_KEY_HERE", True),
        ("SECRET", "********", True),
        ("SECRET", "changeme123", True),
        ("SECRET", "password123", False),  # a weak password people use, not a placeholder
        ("SECRET", "abc12345", False),
        ("SECRET", "my-secret-key", True),
        ("SECRET", "password", True),  # the word itself, as teaching code writes it
        ("SECRET", "Xk9#mP2q!vL", False),
        ("SECRET", "hunter2", False),
    ],
)
def test_documentation_values(default, entity, value, documentation):
    assert default.judge.documentation(entity, value) is documentation


def test_documentation_values_are_kept_even_by_the_strict_profile(hipaa):
    text = "Mail john@example.com or open http://localhost:3000; the server is 127.0.0.1."
    assert hipaa.process(_frame([text]))["text"][0] == text


# --- the record decides, once, for all its fields -------------------------------------------------
def _judge(**rule) -> Judge:
    return Judge(IdentifyingRule(anchors=["PHONE_NUMBER"], cues=[r"\bmy name is\b"], **rule))


def test_a_weak_value_is_personal_data_only_in_an_identifying_record():
    judge = _judge()
    texts = ["Anna went to Paris in May.", "Call 415-555-0134."]
    found = [[Span(0, 4, "PERSON", 0.85), Span(13, 18, "LOCATION", 0.85)], [Span(5, 17, "PHONE_NUMBER", 0.75)]]
    assert judge.keep(texts[:1], found[:1]) == [[]]  # a first name and a city: nobody in particular
    assert judge.keep(texts, found) == found  # the same turn next to a phone number: one person's


def test_a_full_name_is_personal_data_unless_a_public_role_stands_beside_it():
    judge = _judge(public=[r"\bpresident\b"])
    private = "I met Jennifer Alvarez today."
    public = "President Abraham Lincoln spoke."
    assert judge.keep([private], [[Span(6, 21, "PERSON", 0.85)]]) == [[Span(6, 21, "PERSON", 0.85)]]
    assert judge.keep([public], [[Span(10, 25, "PERSON", 0.85)]]) == [[]]
    # title case that the NER model calls a person, with no given name first: "Merge Sort"
    assert judge.keep(["Implement Merge Sort."], [[Span(10, 20, "PERSON", 0.85)]]) == [[]]


def test_a_deny_listed_term_is_redacted_whatever_the_record():
    judge = _judge()
    span = Span(0, 19, "PERSON", 1.0, "deny_list_PERSON")
    assert judge.keep(["Project Nightingale is late."], [[span]]) == [[span]]


def test_a_disabled_judge_keeps_every_match_but_documentation_values():
    judge = _judge(enabled=False)
    text = "Anna wrote to john@example.com."
    found = [[Span(0, 4, "PERSON", 0.85), Span(14, 30, "EMAIL_ADDRESS", 1.0)]]
    assert judge.keep([text], found) == [[Span(0, 4, "PERSON", 0.85)]]


def test_the_strict_profile_removes_names_the_default_leaves(default, hipaa):
    text = "Dr. Okafor reviewed the chart in the afternoon."
    assert default.process(_frame([text]))["text"][0] == text
    assert "Okafor" not in hipaa.process(_frame([text]))["text"][0]


def test_a_profile_that_trims_entities_keeps_its_anchors_valid():
    rules = yaml.safe_load((RULES / "pii" / "default.yaml").read_text())
    rules["entities"] = {"PERSON": rules["entities"]["PERSON"], "EMAIL_ADDRESS": rules["entities"]["EMAIL_ADDRESS"]}
    rules["recognizers"] = [r for r in rules["recognizers"] if r["entity"] in rules["entities"]]
    assert PiiRules.model_validate(rules).identifying.anchors == ["EMAIL_ADDRESS"]


# --- the language pii reads -------------------------------------------------------------------------
def test_pii_reads_the_language_langid_decided(default):
    text = "Anh Tuấn gọi lại lúc 14h ngày 5/3, xin đổi lịch hẹn."
    assert default.languages(_frame([text], ["vi"]), [(0, ("text",), text)]) == ["vi"]
    # `und` (short maths, lists) is read as the fallback language, not left without NER
    assert default.languages(_frame(["2 + 2 = 4"], ["und"]), [(0, ("text",), "2 + 2 = 4")]) == ["en"]


def test_an_unsure_guess_of_its_own_falls_back(default):
    text = "Bartholomew Quince bart.quince@posteo.net"
    frame = pl.DataFrame({"id": ["a"], "text": [text]})
    assert default.languages(frame, [(0, ("text",), text)]) == ["en"]


@pytest.mark.parametrize("pipeline", ["sft.yaml", "pretrain.yaml", "demo.yaml"])
def test_the_generic_pipelines_run_langid_before_pii(pipeline):
    from tests.conftest import REPO

    stages = [s["stage"] for s in yaml.safe_load((REPO / "pipelines" / pipeline).read_text())["stages"]]
    assert stages.index("langid") < stages.index("pii")


# --- what curate wrote itself ----------------------------------------------------------------------
def test_curates_own_ids_and_columns_are_not_personal_data(default):
    from curate.records import derived_id

    digits = next(i for i in (derived_id("f", n) for n in range(100_000)) if i.isdigit())  # a hash, all digits
    frame = _frame(["Nothing personal here.", "Write to maria.gonzalez84@gmail.com."]).with_columns(
        pl.Series("id", [digits, "maria.gonzalez84@gmail.com"]), pl.Series("lang_basis", ["fasttext", "fasttext"])
    )
    out = default.process(frame)
    assert out["id"][0] == digits  # a derived id stays itself
    assert out["id"][1].startswith("id-")  # a user's id holding an e-mail is still replaced
    assert out["pii_count"][0] == 0


def test_every_string_column_a_stage_writes_is_known_as_curates_own():
    from curate.pii.fields import GENERATED, ID_COLUMNS
    from curate.stages.registry import STAGES

    numeric_or_lists = {
        "lang_score",
        "quality_score",
        "html_chars",
        "normalize_changed",
        "pii_count",
        "pii_types",
        "quality_failed",
        "retrieved",
        "retrieval_score",
        "retrieval_score_mean",
        "contaminated",
        "matched_row",
        "match_coverage",
    }
    written = {c for stage in STAGES.values() for c in stage.produces(None)}
    assert written - numeric_or_lists - GENERATED - set(ID_COLUMNS) == {"nearest_seed_id"}  # a seed's id: scanned


def test_a_gate_of_words_never_says_no_where_its_pattern_would_match():
    from curate.pii.analyzer import Gate

    gate = Gate([r"(?:patient|emergency\ contact|next\ of\ kin)", r"\bdr\b"])
    assert gate.words == ("patient", "emergency contact", "next of kin")  # substring tests, no regex
    assert gate.holds("The PATIENT was seen") and gate.holds("see Dr Who") and gate.holds("Emergency Contact: Ann")
    assert not gate.holds("nothing here")
    first, second = "next of kin: Lan", "".join(["nothing", " else"])  # a new text is never answered from the last
    assert gate.holds(first) and not gate.holds(second)
