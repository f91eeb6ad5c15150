"""The pii stage: every operator, every custom recognizer, chunk boundaries, chat records,
bad input, offline loading, and that no planted value leaks into any output or log."""

from __future__ import annotations

import json
import logging
import socket

import polars as pl
import pytest
import yaml

from curate.errors import ConfigError
from curate.stages.base import ACTION, DROP, KEEP, QUARANTINE, REASON, RULE, StageContext
from curate.stages.pii import PiiRules, PiiStage
from tests.conftest import RULES, run, write_pipeline

MESSAGES = pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))


def _rules(**overrides) -> PiiRules:
    rules = yaml.safe_load((RULES / "pii" / "default.yaml").read_text())
    for key, value in overrides.items():
        rules[key] = {**rules[key], **value} if isinstance(value, dict) and isinstance(rules.get(key), dict) else value
    return PiiRules.model_validate(rules)


def _stage(**overrides) -> PiiStage:
    stage = PiiStage("pii", _rules(**overrides), StageContext(seed=3))
    stage.setup()
    return stage


@pytest.fixture(scope="module")
def stage() -> PiiStage:
    return _stage()


def _frame(texts: list[str | None], langs: list[str | None] | None = None, messages=None) -> pl.DataFrame:
    n = len(texts)
    return pl.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "text": texts,
            "messages": messages if messages is not None else [None] * n,
            "lang": langs or ["en"] * n,
        },
        schema_overrides={"messages": MESSAGES, "text": pl.Utf8, "lang": pl.Utf8},
    )


def _one(stage: PiiStage, text: str, lang: str = "en") -> dict:
    return stage.process(_frame([text], [lang])).to_dicts()[0]


# --- recognizers -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, value, entity",
    [
        ("My email is jane.moss@posteo.net, thanks.", "jane.moss@posteo.net", "EMAIL_ADDRESS"),
        ("Call me at (212) 555-0198 tomorrow.", "555-0198", "PHONE_NUMBER"),
        ("His SSN is 536-22-8724 on the form.", "536-22-8724", "US_SSN"),
        ("The login came from 84.21.173.9 last night.", "84.21.173.9", "IP_ADDRESS"),
        ("Patient Maria Gonzalez was admitted.", "Maria Gonzalez", "PERSON"),
        ("She lives at 1600 Pennsylvania Avenue NW now.", "1600 Pennsylvania Avenue", "STREET_ADDRESS"),
        ("Patient seen by Dr. Okafor on 03/14/2025.", "Okafor", "PERSON"),
        ("My driver's license number is 6940579", "6940579", "US_DRIVER_LICENSE"),  # needs its context words
        ("export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", "SECRET"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "SECRET",
        ),
        ("token: ghp_0123456789abcdefghijABCDEFGHIJ012345", "ghp_0123456789abcdefghijABCDEFGHIJ012345", "SECRET"),
        ("use glpat-AbCdEfGhIjKlMnOpQrSt to push", "glpat-AbCdEfGhIjKlMnOpQrSt", "SECRET"),
        ("bot xoxb-123456789012-abcdefABCDEF in slack", "xoxb-123456789012-abcdefABCDEF", "SECRET"),
        (
            "Authorization: Bearer "
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0",
            "SECRET",
        ),
        ("db password = s3cr3t-Pa55word!", "s3cr3t-Pa55word!", "SECRET"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq\n-----END RSA PRIVATE KEY-----",
            "MIIEowIBAAKCAQEA7bq",
            "SECRET",
        ),
        ("Chart review: MRN 00482913, admitted for chest pain.", "00482913", "MEDICAL_RECORD_NUMBER"),
        ("Ordering provider NPI 1245319599 signed the note.", "1245319599", "US_NPI"),
        ("Prescriber DEA number AB1234563 on file.", "AB1234563", "DEA_NUMBER"),
        ("Số CCCD của tôi là 001099012345 nhé.", "001099012345", "VN_NATIONAL_ID"),
        ("Gọi cho tôi: 0912 345 678 hoặc nhắn tin.", "0912 345 678", "PHONE_NUMBER"),
        ("Liên hệ +84 912345678 để biết thêm.", "912345678", "PHONE_NUMBER"),
    ],
)
def test_each_recognizer_finds_and_replaces_its_entity(stage, text, value, entity):
    lang = "vi" if any(w in text for w in ("Số", "Gọi", "Liên")) else "en"
    row = _one(stage, text, lang)
    assert value not in row["text"], row["text"]
    assert entity in row["pii_types"]
    assert row["pii_count"] >= 1


@pytest.mark.parametrize(
    "text, entity",
    [
        ("Ordering provider NPI 1245319598 signed the note.", "US_NPI"),  # checksum fails
        ("Prescriber DEA number AB1234567 on file.", "DEA_NUMBER"),  # checksum fails
    ],
)
def test_a_failed_checksum_is_not_that_identifier(stage, text, entity):
    assert entity not in _one(stage, text)["pii_types"]


@pytest.mark.parametrize(
    "text",
    [
        "The invoice total was 1,245 dollars for 3 items.",
        "We met on a sunny day and talked about the weather for 8 hours.",
    ],
)
def test_plain_text_is_left_alone(stage, text):
    row = _one(stage, text)
    assert row["text"] == text and row["pii_count"] == 0


@pytest.mark.parametrize("lang", ["vi", None])  # None: language unknown (pii before langid), guessed by lid.176
def test_vietnamese_records_get_the_vietnamese_pack_not_english_ner(stage, lang):
    text = "Nguyễn Văn An sống ở Hà Nội cùng gia đình, số điện thoại của anh ấy là 0987654321."
    output = stage.run(_frame([text], [lang]))
    row = output.frame.to_dicts()[0]
    # the name by its family name; the province stays; no English NER model ran on it
    assert row["text"] == "<PERSON_1> sống ở Hà Nội cùng gia đình, số điện thoại của anh ấy là <PHONE_1>."
    assert output.summary["regex_only_records"] == {"vi": 1}
    assert output.summary["coverage"]["vi"] == {"records": 1, "names": "rules", "places": "rules", "dates": "rules"}


# --- operators ---------------------------------------------------------------------------------
def test_mask_keeps_the_last_digits(stage):
    row = _one(stage, "Charge card 4111 1111 1111 1111 today.")
    assert "4111 1111 1111 1111" not in row["text"] and row["text"].endswith("***1111 today.")
    mask = stage._operators()["CREDIT_CARD"].params["lambda"]
    assert mask("123") == "***"  # never reveals a value no longer than keep_last


def test_keyed_hash_is_stable_per_key_and_needs_the_key(monkeypatch):
    entities = {"EMAIL_ADDRESS": {"operator": "hash", "requires": ["@"]}}
    monkeypatch.delenv("CURATE_PII_HASH_KEY", raising=False)
    with pytest.raises(ConfigError, match="CURATE_PII_HASH_KEY"):
        _stage(entities=entities)
    monkeypatch.setenv("CURATE_PII_HASH_KEY", "k1")
    first = _stage(entities=entities)
    texts = ["write to ann@fastmail.com", "ann@fastmail.com again", "bob@fastmail.com"]
    a, b, c = first.process(_frame(texts))["text"].to_list()
    token = a.split()[-1]
    assert token.startswith("<EMAIL_ADDRESS:") and b.startswith(token) and token not in c
    monkeypatch.setenv("CURATE_PII_HASH_KEY", "k2")
    other = _stage(entities=entities)
    assert other.process(_frame(texts[:1]))["text"][0] != a


def test_drop_operator_drops_the_record_and_stores_it_redacted():
    stage = _stage(entities={"US_SSN": {"operator": "drop", "requires": ["\\d"]}, "PERSON": {}})
    out = stage.process(_frame(["John Carter's SSN is 536-22-8724.", "Nothing to see."]))
    assert out[ACTION].to_list() == [DROP, KEEP]
    assert out[RULE][0] == "pii:drop" and "US_SSN" in out[REASON][0]
    assert "536-22-8724" not in out["text"][0] and "John Carter" not in out["text"][0]


def test_allow_and_deny_lists(monkeypatch):
    stage = _stage(allow_list=["Alice Walker"], deny_list={"PERSON": ["Project Nightingale"]})
    row = _one(stage, "Alice Walker wrote about Project Nightingale with Robert Jones.")
    assert "Alice Walker" in row["text"]
    assert "Project Nightingale" not in row["text"] and "Robert Jones" not in row["text"]


# --- chunking, chat, bad input ------------------------------------------------------------------
def test_entities_on_chunk_boundaries_are_found_and_offsets_stay_right():
    stage = _stage(nlp={"gate": False, "max_tokens": 16, "overlap": 6}, identifying={"enabled": False})
    filler = "the committee reviewed the quarterly report and the budget in detail "
    text = filler * 3 + "and then Margaret Thompson called from Chicago about it. " + filler * 3
    row = _one(stage, text)
    assert "Margaret Thompson" not in row["text"] and "Chicago" not in row["text"]
    assert row["text"] == text.replace("Margaret Thompson", "<PERSON_1>").replace("Chicago", "<LOCATION_1>")


def test_chat_messages_of_the_configured_roles_are_redacted():
    stage = _stage(chat_roles=["user"])
    messages = [
        [
            {"role": "user", "content": "I'm Peter Novak, email peter.novak@fastmail.com"},
            {"role": "assistant", "content": "Hello Peter Novak, I will write to peter.novak@fastmail.com"},
        ]
    ]
    out = stage.process(_frame([None], messages=messages)).to_dicts()[0]
    user, assistant = out["messages"]
    assert "peter.novak@fastmail.com" not in user["content"] and "Peter Novak" not in user["content"]
    assert assistant["content"] == messages[0][1]["content"]  # not a configured role
    assert out["pii_types"] == ["EMAIL_ADDRESS", "PERSON"]


def test_bad_input_does_not_crash(stage):
    long_text = ("Logged 2024-01-05 12:00:01 value 48213 ok 93.5 " * 600) + " Contact bob@fastmail.com"
    digits = " ".join(str(i * 7919 % 1000003) for i in range(2500))
    messages = [None, None, None, [{"role": "user", "content": ""}], None]
    out = stage.process(
        _frame(
            ["", long_text, digits, None, "Émilie Dubois à Paris, tél 06 12 34 56 78"],
            ["en", "en", "en", "en", None],
            messages,
        )
    )
    assert out.height == 5 and set(out[ACTION].to_list()) <= {KEEP}
    assert "bob@fastmail.com" not in out["text"][1]


def test_a_failing_analysis_quarantines_the_record_with_content_withheld(stage, monkeypatch):
    original = stage.analyzer.presidio.analyze

    def flaky(text, *args, **kwargs):
        if "EXPLODE" in text:
            raise RuntimeError("recognizer bug with Kim Lee 536-22-8724")
        return original(text, *args, **kwargs)

    monkeypatch.setattr(stage.analyzer.presidio, "analyze", flaky)
    out = stage.process(_frame(["EXPLODE: Kim Lee 536-22-8724", "Ann Smith is fine"]))
    assert out[ACTION].to_list() == [QUARANTINE, KEEP]
    assert out[REASON][0] == "PII analysis failed with RuntimeError; content withheld"
    assert "Kim Lee" not in out["text"][0] and "536-22-8724" not in out["text"][0]


def test_residual_rescan_reports_a_rate(stage):
    full = _stage(residual_sample=1.0)
    output = full.run(_frame(["Jane Roe called 212-555-0198.", "Plain words here.", "Mail x@y.com now"]))
    residual = output.summary["residual"]
    assert residual["sampled"] == 3 and residual["with_pii"] == 0


def test_rules_errors_are_clear():
    rules = yaml.safe_load((RULES / "pii" / "default.yaml").read_text())
    with pytest.raises(ValueError, match="not under 'entities'"):
        PiiRules.model_validate({**rules, "deny_list": {"PASSPORTX": ["a"]}})
    bad = {**rules, "recognizers": [{"name": "x", "entity": "SECRET", "patterns": [{"regex": "(unclosed"}]}]}
    with pytest.raises(ConfigError, match="bad regex"):
        PiiStage("pii", PiiRules.model_validate(bad)).setup()
    with pytest.raises(ConfigError, match="not installed"):
        _stage(nlp={"model": "no_such_spacy_model"})


def test_loads_and_runs_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    stage = _stage()
    assert "<EMAIL_1>" in _one(stage, "write to s.hughes@company.co.uk or visit https://www.company.co.uk")["text"]


# --- end to end: nothing leaks -----------------------------------------------------------------
PLANTED = [
    "Evangeline Whitcombe",
    "evangeline.whitcombe@runbox.com",
    "536-22-8724",
    "AKIAZZZZZZZZZZZZZZZZ",
    "Bartholomew Quince",
    "bart.quince@posteo.net",
]


def test_planted_pii_appears_in_no_output_file_and_no_log(tmp_path, caplog):
    records = [
        {
            "id": "keep-1",
            "text": "Evangeline Whitcombe (evangeline.whitcombe@runbox.com, SSN 536-22-8724) "
            "asked about the new clinic schedule and the parking rules for staff.",
        },
        {
            "id": "keep-2",
            "messages": [
                {"role": "user", "content": "My key is AKIAZZZZZZZZZZZZZZZZ, is that safe to share here?"},
                {"role": "assistant", "content": "No. Rotate the key now and never paste it into chats."},
            ],
        },
        {"id": "short-1", "text": "Bartholomew Quince bart.quince@posteo.net"},  # rejected by quality, before pii
    ]
    lines = [json.dumps(r) for r in records] + ['{"id": "bad", "text": "Bartholomew Quince bart.quince@posteo.net" ']
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(lines) + "\n")
    stages = [
        {"stage": "quality", "params": {"rules": [{"name": "min_words", "stat": "word_count", "min": 8}]}},
        {"stage": "pii", "rules": str(RULES / "pii" / "default.yaml"), "params": {"residual_sample": 1.0}},
    ]
    path = write_pipeline(tmp_path, [{"path": str(data)}], stages, name="leak")
    with caplog.at_level(logging.DEBUG):
        result = run(path, tmp_path / "out")
    assert result.manifest["rows"]["kept"] == 2 and result.manifest["rows"]["quarantined"] == 1
    scanned = 0
    for f in (tmp_path / "out").rglob("*"):
        if not f.is_file():
            continue
        content = pl.read_parquet(f).write_ndjson() if f.suffix == ".parquet" else f.read_text(errors="replace")
        scanned += 1
        for value in PLANTED:
            assert value not in content, f"{value!r} leaked into {f.relative_to(tmp_path)}"
    assert scanned >= 6
    for value in PLANTED:
        assert value not in caplog.text
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    pii = report["pii"][0]
    assert pii["records_with_pii"] == 2 and pii["residual"]["rate"] == 0.0
    assert pii["entities"]["PERSON"] >= 1 and pii["operators"]["replace"] >= 4
    assert "Personal data (pii)" in (tmp_path / "out" / "report.html").read_text()


def test_a_rotated_hash_key_is_a_cache_miss_and_a_missing_key_stops_before_any_worker(tmp_path, monkeypatch):
    """The key's fingerprint (never the key) is part of the cache key; with no key the run stops with
    one clear error on the driver, also with a pool of workers."""
    params = {"entities": {"EMAIL_ADDRESS": {"operator": "hash", "requires": ["@"]}}, "recognizers": []}
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"text": f"mail ann{i}@fastmail.com about the rota"}) + "\n" for i in range(6))
    )
    path = write_pipeline(
        tmp_path,
        [{"path": "in.jsonl"}],
        [{"stage": "pii", "rules": str(RULES / "pii/default.yaml"), "params": params}],
        workers=2,
        batch_size=2,
    )
    monkeypatch.delenv("CURATE_PII_HASH_KEY", raising=False)
    with pytest.raises(ConfigError, match="CURATE_PII_HASH_KEY"):
        run(path, tmp_path / "out")
    # The rotation itself runs in-process: a pool's workers would only load the analyzer twice more.
    monkeypatch.setenv("CURATE_PII_HASH_KEY", "first key")
    first = run(path, tmp_path / "out", workers=1)
    assert "first key" not in json.dumps(first.manifest)
    monkeypatch.setenv("CURATE_PII_HASH_KEY", "second key")
    second = run(path, tmp_path / "out", workers=1)
    assert not second.cached and second.manifest["version"] != first.manifest["version"]


def test_the_web_profile_leaves_links_and_dates_and_still_redacts_contacts():
    """rules/pii/web.yaml extends the default with URL and DATE_TIME `enabled: false` and no NER: the
    turned-off entities are gone from the rules (recognizers included), not only skipped."""
    from curate.schema import load_rules

    web = PiiRules.model_validate(load_rules(RULES / "pii" / "web.yaml"))
    assert "URL" not in web.entities and "DATE_TIME" not in web.entities
    assert all(r.entity not in ("URL", "DATE_TIME") for r in web.recognizers)
    stage = PiiStage("pii", web, StageContext(seed=3))
    stage.setup()
    text = "Release notes of 12 March 2024 at https://docs.example.org/notes. Questions: jane.roe@fastmail.com"
    out = _one(stage, text)
    assert "https://docs.example.org/notes" in out["text"] and "12 March 2024" in out["text"]
    assert "jane.roe@fastmail.com" not in out["text"] and "<EMAIL_1>" in out["text"]
    with pytest.raises(ValueError, match="every entity is disabled"):
        _rules(entities={name: {"enabled": False} for name in web.entities | {"URL": 0, "DATE_TIME": 0}})
