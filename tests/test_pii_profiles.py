"""PII for users' own data: the Vietnamese pack (names, addresses, dates; no US formats and no
English NER on Vietnamese), mixed English/Vietnamese records, the HIPAA Safe Harbor profile (every
kind, date/ZIP/age generalisation), rules files extending another, word lists in regexes, and the
coverage the report shows per language."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.config import load_pipeline
from curate.errors import ConfigError
from curate.pii.validators import vin
from curate.schema import load_rules
from curate.stages.base import StageContext
from curate.stages.pii import PiiRules, PiiStage
from tests.conftest import RULES
from tests.test_pii import _frame

US_FORMATS = ("US_DRIVER_LICENSE", "US_SSN", "US_ITIN", "US_PASSPORT", "US_BANK_NUMBER", "US_NPI", "DEA_NUMBER")


def _stage(path: Path) -> PiiStage:
    stage = PiiStage("pii", PiiRules.model_validate(load_rules(path)), StageContext(seed=3))
    stage.setup()
    return stage


@pytest.fixture(scope="module")
def default() -> PiiStage:
    return _stage(RULES / "pii" / "default.yaml")


@pytest.fixture(scope="module")
def hipaa() -> PiiStage:
    return _stage(RULES / "pii" / "hipaa.yaml")


def _found(stage: PiiStage, text: str, lang: str) -> list[tuple[str, str]]:
    spans = stage.analyzer.analyze([text], [lang in stage.rules.nlp.ner_languages], None, [lang])[0]
    return [(text[s.start : s.end], s.entity) for s in spans]


def _redacted(stage: PiiStage, text: str, lang: str = "en") -> str:
    return stage.process(_frame([text], [lang])).to_dicts()[0]["text"]


# --- Vietnamese names --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, name",
    [
        ("Bác sĩ Trần Văn Hùng cho biết bệnh nhân đã ổn định.", "Trần Văn Hùng"),  # family name + 2 syllables
        ("Hôm qua Lê Minh đã về quê.", "Lê Minh"),  # family name + 1 syllable, mid-sentence
        ("Họ tên: NGUYỄN THỊ MAI ANH, giới tính nữ.", "NGUYỄN THỊ MAI ANH"),  # forms write names in capitals
        ("Chị Lan và anh Minh đến khám lúc 9 giờ.", "Lan"),  # a title before a given name
        ("Tôi đã gặp điều dưỡng Hạnh ở khoa Nội.", "Hạnh"),
        ("Mình tên là Thảo, rất vui được làm quen.", "Thảo"),  # "tên là"
        ("Tuấn ơi, chiều nay họp lúc mấy giờ?", "Tuấn"),  # the vocative
    ],
)
def test_vietnamese_names_are_found(default, text, name):
    assert (name, "PERSON") in _found(default, text, "vi")


@pytest.mark.parametrize(
    "text, not_a_name",
    [
        ("Bệnh nhân N.V.A. đã được xuất viện sau 20 ngày.", "N.V.A."),  # initials: already anonymous
        ("Trần nhà bị dột nên phải sửa gấp.", "Trần"),  # "ceiling", not the family name
        ("Đoàn công tác đến Hà Nội vào sáng nay.", "Hà Nội"),  # a province
        ("Bệnh nhân được chuyển lên Bệnh viện Bạch Mai.", "Bạch Mai"),  # a hospital named after a place
        ("Cửa hàng nằm trên đường Lê Lợi, rất đông khách.", "Lê Lợi"),  # a street, not a person
        ("Bệnh nhân Covid-19 được theo dõi tại nhà.", "Covid"),
        ("Ghi chú: Phần này chỉ dành cho quản trị viên.", "Phần"),  # "ghi chú" (a note) holds "chú" (uncle)
        ("Đồng Pê-sô Đo-mi-ni-ca được dùng ở đó.", "Đồng Pê"),  # a transliteration, not a name
        ("Mở Từ Điển Mã Nguồn rồi chọn Tùy Chọn.", "Từ Điển"),  # Title Case words that are family names too
        ("Hệ ngôn ngữ Châu Âu rất phong phú.", "Châu Âu"),
        ("Danh sách Tên          Kiểu       Cỡ", "Kiểu"),  # a table header, not "tên X"
    ],
)
def test_vietnamese_words_that_are_not_names_stay(default, text, not_a_name):
    assert not any(value == not_a_name and entity == "PERSON" for value, entity in _found(default, text, "vi"))


# --- Vietnamese addresses and dates --------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    [
        "số 12 đường Lê Lợi, phường Bến Nghé, quận 1, TP. Hồ Chí Minh",
        "45/12 Nguyễn Trãi, phường 2, quận 5",
        "ngõ 15 phố Huế, quận Hai Bà Trưng, Hà Nội",
        "thôn Đông, xã Tân Lập, huyện Đông Anh, tỉnh Bắc Ninh",
        "264 3 Tháng 2, P. 12, Q. 10",
        "hẻm 42 Lê Văn Sỹ, phường 13, quận 3",
    ],
)
def test_vietnamese_addresses_are_found_whole(default, address):
    text = f"Khách hàng đăng ký nhận hàng tại {address}, thanh toán khi nhận."
    assert (address, "STREET_ADDRESS") in _found(default, text, "vi")


@pytest.mark.parametrize(
    "text",
    [
        "Đoàn sẽ đến tỉnh Bắc Ninh vào tuần sau.",  # a province alone, like a US state
        "Cần phiên bản 3 hoặc mới hơn của giấy phép.",  # "bản" (a hamlet) in "phiên bản" (a version)
        "Bảo hiểm xã hội chi trả cho người lao động.",  # "xã hội" (society), not a commune
    ],
)
def test_words_that_look_like_address_units_are_no_address(default, text):
    assert not [e for _, e in _found(default, text, "vi") if e == "STREET_ADDRESS"]


@pytest.mark.parametrize("date", ["ngày 5 tháng 3 năm 2024", "ngày 12/3/2024", "hôm 12/3", "15/08/2023"])
def test_vietnamese_dates_are_found(default, date):
    text = f"Bệnh nhân nhập viện {date} vì sốt cao."
    found = _found(default, text, "vi")
    assert any(
        entity == "DATE_TIME" and date in value or value in date and len(value) > 4 for value, entity in found
    ), found


def test_a_month_of_a_year_is_a_date_under_hipaa_only(default, hipaa):
    text = "Bệnh nhân nhập viện tháng 3/2024 vì sốt cao."
    assert not [v for v, e in _found(default, text, "vi") if e == "DATE_TIME"]  # the default profile's dates are days
    assert any(e == "DATE_TIME" and "3/2024" in v for v, e in _found(hipaa, text, "vi"))


def test_no_us_format_in_vietnamese_text(default):
    # numbers an English record would read as a licence, an SSN or a bank account
    text = (
        "Bằng lái xe số B2 123456789, giấy phép số A12345678, tài khoản 123456789012 tại Vietcombank, "
        "mã hồ sơ 536228724."
    )
    assert not [e for _, e in _found(default, text, "vi") if e in US_FORMATS]
    assert "<US_" not in _redacted(default, text, "vi")


def test_vietnamese_phone_and_id_rules_stay(default):
    text = "Khách hàng Phạm Quốc Dũng, số điện thoại 0912 345 678, số CCCD 079123456789."
    assert _redacted(default, text, "vi") == "Khách hàng <PERSON_1>, số điện thoại <PHONE_1>, số CCCD <VN_ID_1>."


# --- mixed English / Vietnamese records --------------------------------------------------------
def test_mixed_record_gets_both_packs(default):
    text = (
        "Dear Dr. Emily Carter, please call the patient tomorrow.\n"
        "Xin chào chị Hương, hẹn gặp chị tại số 7 đường Kim Mã, quận Ba Đình vào ngày 5/3/2024."
    )
    out = _redacted(default, text, "en")
    assert "Emily Carter" not in out and "Hương" not in out and "Kim Mã" not in out and "5/3/2024" not in out
    assert out.startswith(
        "Dear Dr. <PERSON_1>, please call the patient tomorrow.\nXin chào chị <PERSON_2>, hẹn gặp chị tại"
    )


def test_english_ner_skips_vietnamese_lines(default):
    analyzer = default.analyzer
    text = "The nurse checked the chart.\nSáng nay Khoa Nội tiếp nhận thêm ba người bệnh mới từ Quảng Ninh."
    doc = analyzer.nlp.make_doc(text)
    segments = analyzer.segments(doc)
    covered = " ".join(doc[a:b].text for a, b in segments)
    assert "Khoa" not in covered and "Quảng" not in covered  # the Vietnamese line gets no English NER
    english = "The nurse met Sarah Connor.\nShe lives in Denver now."
    assert len(analyzer.segments(analyzer.nlp.make_doc(english))) >= 2  # English lines still do


# --- HIPAA Safe Harbor ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, value, entity",
    [
        ("Patient John A. Smith was seen today.", "John A. Smith", "PERSON"),
        (
            "Mailing address: 742 Evergreen Terrace, Apt 4B, Springfield, IL 62704.",
            "742 Evergreen Terrace, Apt 4B, Springfield, IL 62704",
            "STREET_ADDRESS",
        ),
        ("Ship to PSC 1234, Box 5678, APO AE 09123 by Friday.", "PSC 1234, Box 5678, APO AE 09123", "STREET_ADDRESS"),
        ("Send to USNS Comfort, FPO AA 34090 please.", "USNS Comfort, FPO AA 34090", "STREET_ADDRESS"),
        ("Remit to PO Box 4471, Dayton, OH 45401.", "PO Box 4471, Dayton, OH 45401", "STREET_ADDRESS"),
        ("The patient lives in Worcester with her son.", "Worcester", "LOCATION"),
        ("Zip code: 02139 on file.", "02139", "ZIP_CODE"),
        ("Discharged on May 25, 2026 in stable condition.", "May 25, 2026", "DATE_TIME"),
        ("A 93-year-old woman presented with dyspnea.", "93", "AGE_OVER_89"),
        ("Call back at (617) 555-0199 after noon.", "(617) 555-0199", "PHONE_NUMBER"),
        ("Fax: +1 617 555 0142 for the records.", "+1 617 555 0142", "PHONE_NUMBER"),
        ("Reach her at maria.lopez@posteo.net today.", "maria.lopez@posteo.net", "EMAIL_ADDRESS"),
        ("SSN 536-22-8724 was verified.", "536-22-8724", "US_SSN"),
        ("MRN: 00482913, bed 12.", "00482913", "MEDICAL_RECORD_NUMBER"),
        ("Member ID XJH448291002 is active.", "XJH448291002", "HEALTH_PLAN_ID"),
        ("Account number 88213-4 has a balance.", "88213-4", "ACCOUNT_NUMBER"),
        ("Nursing license RN448812 expires soon.", "RN448812", "LICENSE_NUMBER"),
        ("Vehicle with license plate 7ABC123 is parked outside.", "7ABC123", "VEHICLE_ID"),
        ("The car's VIN is 1HGCM82633A004352 per the form.", "1HGCM82633A004352", "VEHICLE_ID"),
        ("Pacemaker serial PJN386479H was interrogated.", "PJN386479H", "DEVICE_ID"),
        (
            "Results are at https://portal.stmarys.org/patient/4471 now.",
            "https://portal.stmarys.org/patient/4471",
            "URL",
        ),
        ("Login from 10.24.8.191 was blocked.", "10.24.8.191", "IP_ADDRESS"),
        ("Pathology accession S24-1182 was received.", "S24-1182", "UNIQUE_ID"),
    ],
)
def test_each_safe_harbor_kind_is_found(hipaa, text, value, entity):
    found = _found(hipaa, text, "en")
    assert (value, entity) in found, found


def test_clinical_values_are_not_identifiers(hipaa):
    text = "BP 142/88, HR 96, EF 30%, A1c 8.1%. Metformin 500 mg BID. CPT 99213, ICD-10 E11.9. Follow up in 2 weeks."
    assert _redacted(hipaa, text) == text


def test_profile_lists_every_kind(hipaa):
    profile = hipaa.rules.profile
    assert profile.name == "hipaa-safe-harbor"
    letters = [k.kind.split(")")[0].strip("(") for k in profile.kinds + profile.out_of_scope]
    assert sorted(letters) == list("ABCDEFGHIJKLMNOPQR")  # all 18 Safe Harbor identifier kinds
    assert all(k.entities for k in profile.kinds)


# --- generalisation, keeping exact surroundings -----------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("Admitted on May 25, 2026 for chest pain.", "Admitted on <DATE_TIME:2026> for chest pain."),
        ("Seen 03/14/2025, again 2025-04-02.", "Seen <DATE_TIME:2025>, again <DATE_TIME:2025>."),
        ("Follow-up on June 3 at the clinic.", "Follow-up on <DATE_TIME> at the clinic."),  # no year to keep
        ("Zip code: 02139 on file.", "Zip code: <ZIP_CODE:021> on file."),
        ("Zip code: 03601 on file.", "Zip code: <ZIP_CODE:000> on file."),  # a 3-digit area under 20,000 people
        ("A 93-year-old man, aged 91 at onset.", "A <AGE:90+>-year-old man, aged <AGE:90+> at onset."),
        ("A 89-year-old man, aged 45 at onset.", "A 89-year-old man, aged 45 at onset."),  # 89 and under stay
    ],
)
def test_generalisation_keeps_what_safe_harbor_allows(hipaa, text, expected):
    assert _redacted(hipaa, text) == expected


def test_zip_digits_can_be_dropped_too(tmp_path):
    (tmp_path / "strict.yaml").write_text(
        f"extends: {RULES / 'pii' / 'hipaa.yaml'}\nentities:\n  ZIP_CODE: {{operator: replace}}\n"
    )
    stage = _stage(tmp_path / "strict.yaml")
    assert _redacted(stage, "Zip code: 02139 on file.") == "Zip code: <ZIP_CODE_1> on file."
    assert stage.rules.entities["ZIP_CODE"].requires == [r"\d{5}"]  # the rest of the entity is inherited


# --- rules files: extends, key+, word lists ----------------------------------------------------
def test_extends_merges_mappings_and_appends_lists(tmp_path):
    (tmp_path / "base.yaml").write_text("a: {x: 1, y: 2}\nitems: [1, 2]\nkeep: base\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\na: {y: 3}\nitems+: [3]\n")
    assert load_rules(tmp_path / "child.yaml") == {"a": {"x": 1, "y": 3}, "items": [1, 2, 3], "keep": "base"}
    (tmp_path / "replace.yaml").write_text("extends: base.yaml\nitems: [9]\n")
    assert load_rules(tmp_path / "replace.yaml")["items"] == [9]


@pytest.mark.parametrize(
    "files, message",
    [
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, "extends itself"),
        ({"a.yaml": "extends: missing.yaml\n"}, "rules file not found"),
        ({"a.yaml": "items+: [1]\n"}, "has no 'extends:'"),
        ({"a.yaml": "extends: b.yaml\nitems+: [1]\n", "b.yaml": "items: {x: 1}\n"}, "appending needs a list"),
    ],
)
def test_bad_extends_is_a_clear_error(tmp_path, files, message):
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_rules(tmp_path / "a.yaml")


def test_a_pipeline_picks_the_hipaa_profile(tmp_path):
    (tmp_path / "p.yaml").write_text(
        f"name: notes\ninputs: [{{path: x.jsonl}}]\nstages:\n"
        f"  - {{stage: pii, rules: {RULES / 'pii' / 'hipaa.yaml'}}}\n"
    )
    stage = load_pipeline(tmp_path / "p.yaml").stages[0]
    assert stage.rules.profile.name == "hipaa-safe-harbor"
    assert stage.rules.operator("DATE_TIME") == "keep_year"
    assert any(r.name == "vn_name_surname" for r in stage.rules.recognizers)  # the default's recognizers too


def test_fragments_and_word_lists_expand(tmp_path):
    rules = PiiRules.model_validate(
        {
            "entities": {"PERSON": {}},
            "terms": {"title": ["dr", "prof"]},
            "fragments": {"name": r"\p{Lu}\p{Ll}+", "full": r"\R<name>(?:[ \t]+\R<name>)?"},
            "recognizers": [{"name": "t", "entity": "PERSON", "patterns": [{"regex": r"\L<title:title>\.? \R<full>"}]}],
        }
    )
    assert (
        rules.expand(r"\L<title:title>\.? \R<full>")
        == r"(?:Prof|Dr)\.? (?:(?:\p{Lu}\p{Ll}+)(?:[ \t]+(?:\p{Lu}\p{Ll}+))?)"
    )
    with pytest.raises(ValueError, match="uses itself"):
        PiiRules.model_validate({"entities": {"PERSON": {}}, "fragments": {"a": r"\R<b>", "b": r"x\R<a>"}})
    with pytest.raises(ValueError, match="nope"):
        PiiRules.model_validate(
            {
                "entities": {"PERSON": {}},
                "recognizers": [{"name": "t", "entity": "PERSON", "patterns": [{"regex": r"\R<nope>"}]}],
            }
        )


def test_unknown_word_list_is_a_clear_error():
    rules = load_rules(RULES / "pii" / "default.yaml")
    rules["recognizers"].append({"name": "x", "entity": "PERSON", "patterns": [{"regex": r"\L<nope>"}]})
    with pytest.raises(ValueError, match="nope"):
        PiiRules.model_validate(rules)


def test_vin_check_digit():
    assert vin("1HGCM82633A004352") and not vin("1HGCM82633A004353") and not vin("11111111111111111")


# --- what the report shows ----------------------------------------------------------------------
def test_summary_names_the_profile_and_coverage_per_language(hipaa):
    frame = _frame(
        ["Patient Maria Gonzalez was admitted.", "Bệnh nhân Nguyễn Văn An nhập viện.", "Der Patient kam."],
        ["en", "vi", "de"],
    )
    s = hipaa.run(frame).summary
    assert s["profile"] == "hipaa-safe-harbor" and len(s["kinds"]) == 16 and len(s["out_of_scope"]) == 2
    assert s["coverage"]["en"] == {"records": 1, "names": "NER", "places": "NER", "dates": "NER"}
    assert s["coverage"]["vi"] == {"records": 1, "names": "rules", "places": "rules", "dates": "rules"}
    assert s["coverage"]["de"] == {"records": 1, "names": None, "places": None, "dates": None}


def _empty_measures():
    import polars as pl

    return pl.DataFrame({"content_hash": [], "content_chars": [], "turns": []})


def test_readiness_row_names_profile_and_gaps():
    from curate.report.readiness import _pii, _risks, stage_evidence

    summary = {
        "profile": "hipaa-safe-harbor",
        "kinds": [{"kind": "(A) names", "entities": ["PERSON"]}],
        "coverage": {
            "vi": {"records": 3, "names": "rules", "places": "rules", "dates": "rules"},
            "de": {"records": 2, "names": None, "places": None, "dates": None},
        },
        "records_with_pii": 1,
        "residual": {"sampled": 0},
    }
    manifest = {
        "pipeline": {"stages": [{"name": "pii", "stage": "pii"}]},
        "stage_summaries": {"pii": summary},
        "rows": {"quarantined": 0},
    }
    evidence = stage_evidence(manifest)
    row = _pii([], evidence)["evidence"]
    assert "profile hipaa-safe-harbor" in row and "vi: names (rules), places (rules), dates (rules)" in row
    assert "de: names NOT covered" in row
    risks = _risks(manifest, _empty_measures(), [], evidence)["evidence"]
    assert "names, places, dates not redacted in de (2 records)" in risks and " vi " not in risks
