"""The `surrogate` operator (issue 33, point 4): realistic stand-ins, consistent in a record and, with the
hash key, across the dataset; dates shifted by one offset per record; known to the residual re-scan."""

from __future__ import annotations

import re
from datetime import date

import pytest

from curate.pii.surrogates import shift_date
from tests.test_pii import _frame, _stage

MESSAGES = [
    {
        "role": "user",
        "content": "Hi, my name is Priya Raman, call me at (415) 555-2671 or priya.r@gmail.com. "
        "I was admitted on 03/14/2024 and discharged on 03/18/2024. MRN 00482913.",
    },
    {"role": "assistant", "content": "Thanks Priya, I noted (415) 555-2671. Ms. Raman, see you."},
]


@pytest.fixture(scope="module")
def surrogate():
    return _stage(default_operator="surrogate")


def test_values_become_realistic_stand_ins_the_same_in_every_turn(surrogate):
    out = surrogate.process(_frame([None], ["en"], messages=[MESSAGES]))
    user, assistant = (m["content"] for m in out["messages"][0])
    for value in ("Priya", "Raman", "555-2671", "priya.r@gmail.com", "03/14/2024", "00482913"):
        assert value not in user + assistant
    name = re.search(r"my name is (\w+) (\w+),", user)
    assert name, user  # a name, not a placeholder
    given, family = name.groups()
    assert f"Thanks {given}," in assistant and f"Ms. {family}," in assistant  # one value, one stand-in
    phone = re.search(r"\(\d{3}\) 555-01\d\d", user).group()  # the block NANP keeps for fiction
    assert phone in assistant
    assert re.search(r"[a-z]+\.[a-z]+\d+@example\.com", user)
    assert "<MRN_1>" in user  # no reserved stand-in for a record number: its placeholder
    assert surrogate.summary.residual.with_pii == 0  # the re-scan knows what it wrote


def test_dates_of_a_record_move_together(surrogate):
    out = surrogate.process(_frame([None], ["en"], messages=[MESSAGES]))["messages"][0][0]["content"]
    admitted, discharged = (date(int(y), int(m), int(d)) for m, d, y in re.findall(r"(\d\d)/(\d\d)/(\d{4})", out))
    assert admitted != date(2024, 3, 14) and (discharged - admitted).days == 4


def test_vietnamese_text_gets_vietnamese_names_and_numbers(surrogate):
    text = "Khách hàng Nguyễn Văn Tuấn, số điện thoại 0912 345 678.\nDạ em cập nhật rồi nhé Tuấn."
    out = surrogate.process(_frame([text], ["vi"]))["text"][0]
    assert "Tuấn" not in out and "0912 345 678" not in out
    full = re.search(r"Khách hàng (\S+) (\S+) (\S+),", out)
    assert full and re.search(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹáàãéèíìóòõúùýÂĐ]", full.group())
    assert out.endswith(f"nhé {full.group(3)}.")  # the given name alone: the stand-in's given name
    assert "0900 555 0" in out


def test_the_hash_key_makes_a_value_one_stand_in_across_the_dataset(monkeypatch):
    texts = ["Patient Jennifer Alvarez called 415-555-0134.", "Patient Jennifer Alvarez wrote again."]
    monkeypatch.setenv("CURATE_PII_HASH_KEY", "k" * 32)
    out = _stage(default_operator="surrogate").process(_frame(texts))["text"].to_list()
    assert out[0].split(" called")[0] == out[1].split(" wrote")[0]
    monkeypatch.delenv("CURATE_PII_HASH_KEY")
    unkeyed = _stage(default_operator="surrogate").process(_frame(texts))["text"].to_list()
    assert unkeyed[0].split(" called")[0] != unkeyed[1].split(" wrote")[0]  # seeded by the record id


@pytest.mark.parametrize(
    "text, days, day_first, shifted",
    [
        ("5/3/2024", 30, False, "6/2/2024"),
        ("5/3/2024", 30, True, "4/4/2024"),
        ("05/03/2024", 30, False, "06/02/2024"),
        ("2024-03-05", 30, False, "2024-04-04"),
        ("March 5", 30, False, "April 4"),
        ("Mar 5, 2024", -5, False, "Feb 29, 2024"),
        ("5 March 2024", 30, False, "4 April 2024"),
        ("ngày 5 tháng 3 năm 2024", 30, True, "ngày 4 tháng 4 năm 2024"),
        ("hôm qua", 30, True, None),
    ],
)
def test_a_date_is_shifted_and_written_the_way_it_was(text, days, day_first, shifted):
    assert shift_date(text, days, day_first) == shifted
