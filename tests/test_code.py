"""Code in instruction data: found (curate.code), kept intact by pii, not judged as prose by langid."""

from __future__ import annotations

import polars as pl
import pytest
import yaml

from curate.code import code_spans, mask, prose
from curate.stages.base import StageContext
from curate.stages.langid import LangIdRules, LangIdStage
from curate.stages.pii import PiiRules, PiiStage
from tests.conftest import RULES

MESSAGES = pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))

CODE = {  # text -> the code in it, as a reader would mark it
    "Write a Python function to calculate the factorial.\n\ndef factorial(number):\n    fact = 1\n"
    "    for i in range(1, number + 1):\n        fact = fact * i\n    return fact": [
        "def factorial(number):\n    fact = 1\n    for i in range(1, number + 1):\n        fact = fact * i\n    "
        "return fact"
    ],
    "Here is the code:\n```python\nx = f.read()\n```\nDone.": ["```python\nx = f.read()\n```"],
    "Implement a JavaScript function that returns the sum.\nfunction sum(a, b) {\n  return a + b;\n}": [
        "function sum(a, b) {\n  return a + b;\n}"
    ],
    "Use word_count.get(word, 0) and line.strip() to clean each `line`.": [
        "word_count.get(word, 0)",
        "line.strip()",
        "`line`",
    ],
    "SELECT name FROM users WHERE id = 5;": ["SELECT name FROM users WHERE id = 5;"],
    "even_list = [num for num in my_list if num % 2 == 0]": ["even_list = [num for num in my_list if num % 2 == 0]"],
}
PROSE = [
    "# Introduction\nThis is a heading and prose. For example, in the park we walked.",
    "If you want to go, let me know. Return the book to the library by Friday.",
    "My people war, and in their warring, die;\nIn awe of Heaven's light that doth amaze;",
    '{"name": "Dr. Ada Byron", "city": "London"}',  # JSON data: its strings are prose for PII
    "Visit example.com or e.g. the docs at www.python.org for details.",
    "Call me at 415-555-0132 between 9-5, or on 2024-05-01.",
]


@pytest.mark.parametrize("text", list(CODE))
def test_code_is_found_in_fences_lines_and_tokens(text):
    assert [text[a:b] for a, b in code_spans(text)] == CODE[text]


@pytest.mark.parametrize("text", PROSE)
def test_prose_is_not_taken_for_code(text):
    assert code_spans(text) == []


def test_mask_keeps_every_offset_and_prose_drops_the_code():
    text = next(iter(CODE))
    masked = mask(text, code_spans(text))
    assert len(masked) == len(text) and masked.count("\n") == text.count("\n")
    assert masked.startswith("Write a Python function") and "factorial(" not in masked
    assert prose(text) == "Write a Python function to calculate the factorial."


@pytest.fixture(scope="module")
def pii():
    stage = PiiStage(
        "pii",
        PiiRules.model_validate(yaml.safe_load((RULES / "pii" / "default.yaml").read_text())),
        StageContext(seed=1),
    )
    stage.setup()
    return stage


def _redact(stage, texts: list[str]) -> list[str]:
    df = pl.DataFrame(
        {
            "id": [f"r{i}" for i in range(len(texts))],
            "text": texts,
            "messages": [None] * len(texts),
            "lang": ["en"] * len(texts),
        },
        schema_overrides={"messages": MESSAGES, "text": pl.Utf8},
    )
    return stage.process(df)["text"].to_list()


# Each false positive the default rules made on real code instructions, as a regression case.
UNCHANGED = [
    "counts = {}\nfor word in words:\n    counts[word] = word_count.get(word, 0) + 1",
    "for line in open(path):\n    print(line.strip())",
    "with open(path) as f:\n    content = f.read()",
    "def concat(str1, str2):\n    return str1 + str2",
    "Implement a JavaScript function that reverses a string.",
    "ChatGPT is a language model created by OpenAI.",
    "Use line.strip() to remove whitespace, then word_count.get(word, 0) to count.",
    "The function takes a parameter str2 and a list A1234 of values.",
    "Write a SQL query: SELECT * FROM orders WHERE total > 100 AND id = 'B12345678';",
    'const user = {\n name: "Margaret Thompson",\n city: "Chicago"\n};',
    "model.compile(optimizer='adam')\nmodel.fit(x_train, y_train,\n          epochs=5)",
    "SELECT * FROM stores\nINNER JOIN products\nON stores.id = products.store_id\nWHERE stores.id = 10",
    "use rand::{thread_rng, Rng};\n\nfn main() {\n  let mut rng = thread_rng();\n}",
    "list1 <- c(3, 7, 8, 10)\nvariance <- var(list1)\nprint(variance)",
    '"""\nCreate a class called Rectangle that stores length and width\n"""\n\nclass Rectangle:\n    pass',
    'import React from "react";\nimport { View, StyleSheet } from "react-native";',
    "$primary-color: #333333;\n\n.primary-text {\n  color: $primary-color;\n}",
    '<script src="https://cdn.jsdelivr.net/npm/@popperjs/core@2.9.2/dist/umd/popper.min.js"></script>',
    "public class User {\n    public User(string password) {\n        Password = password;\n    }\n}",
    "In Javascript, a callback is a function passed to another function, e.g. with AJAX.",
    "def check(username, password):\n    if password == 'password':\n        return True\n    return False",
]


@pytest.mark.parametrize("text", UNCHANGED)
def test_code_and_tech_names_are_not_redacted(pii, text):
    assert _redact(pii, [text]) == [text]


def test_inside_code_only_high_precision_entities_are_redacted_and_every_other_character_is_kept(pii):
    code = (
        "def notify():\n    # ask Margaret Thompson, mail margaret.t@fastmail.com\n"
        "    send(to='margaret.t@fastmail.com', phone='(415) 555-0132', port=4155550132)\n    return True"
    )
    (out,) = _redact(pii, [code])
    assert out == code.replace("margaret.t@fastmail.com", "<EMAIL_1>").replace("(415) 555-0132", "<PHONE_1>")
    prose_and_code = "Ask Dr. Margaret Thompson (margaret.t@fastmail.com):\n\nx = compute(a, b)\nprint(x)"
    (out,) = _redact(pii, [prose_and_code])
    assert out == "Ask Dr. <PERSON_1> (<EMAIL_1>):\n\nx = compute(a, b)\nprint(x)"


def _luhn_complete(prefix: str, length: int) -> str:
    from curate.pii.validators import luhn

    body = prefix + "0" * (length - len(prefix) - 1)
    return next(body + d for d in "0123456789" if luhn(body + d))


@pytest.mark.parametrize(
    "number",
    [
        _luhn_complete("2221", 16),
        _luhn_complete("2720", 16),
        _luhn_complete("2500", 16),  # Mastercard 2-series
        _luhn_complete("51", 16),
        _luhn_complete("4", 13),
        _luhn_complete("4", 19),
        _luhn_complete("37", 15),
        _luhn_complete("6011", 16),
        _luhn_complete("3530", 16),
        _luhn_complete("36", 14),
    ],
)
def test_card_numbers_of_every_major_network_are_found(pii, number):
    spaced = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    for shown in (number, spaced, spaced.replace(" ", "-")):
        text = f"Please charge card {shown} for the visit."
        (out,) = _redact(pii, [text])
        # masked in place: same length, the last 4 characters kept, nothing around it changed
        assert shown not in out and len(out) == len(text) and out.startswith("Please charge card *")
        assert out.endswith(f"{shown[-4:]} for the visit.")


def test_a_number_that_fails_luhn_is_not_a_card(pii):
    bad = _luhn_complete("2221", 16)[:-1] + str((int(_luhn_complete("2221", 16)[-1]) + 1) % 10)
    assert _redact(pii, [f"Order reference {bad} shipped."]) == [f"Order reference {bad} shipped."]


@pytest.fixture(scope="module")
def langid():
    stage = LangIdStage(
        "langid", LangIdRules.model_validate(yaml.safe_load((RULES / "langid" / "default.yaml").read_text())), 0
    )
    stage.setup()
    return stage


def _chat(prompt: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def test_langid_judges_prose_and_keeps_code_records(langid):
    answers = "def add(a, b):\n    return a + b\n\nprint(add(2, 3))"
    rows = [
        _chat("Write a Python function that adds two numbers and show how to call it.", answers),  # prose + code
        _chat("x = 1", "y = x + 1\nprint(y)"),  # code only
        _chat("Viết một hàm Python cộng hai số và cho biết cách gọi hàm đó trong chương trình.", answers),
        _chat(
            "Écris une fonction Python qui additionne deux nombres et montre comment l'appeler dans un programme.",
            answers,
        ),
    ]
    df = pl.DataFrame(
        {"id": ["en", "code", "vi", "fr"], "text": [None] * 4, "messages": rows, "lang": [None] * 4},
        schema_overrides={"messages": MESSAGES, "text": pl.Utf8, "lang": pl.Utf8},
    )
    out = langid.process(df)
    got = {r["id"]: (r["_action"], r["lang"], r["lang_basis"]) for r in out.iter_rows(named=True)}
    assert got["en"] == ("keep", "en", "prompt")  # the request is read, without its code
    assert got["code"] == ("keep", "und", "too_little_prose")
    assert got["vi"][:2] == ("keep", "vi")
    assert got["fr"][0] == "drop" and out.filter(pl.col("id") == "fr")["_rule"][0] == "lang_not_allowed"
