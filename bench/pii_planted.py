"""Recall of the shipped PII profiles, counted the way a leak is: planted values that survive.

About 600 records in six styles (English clinical notes, e-mails with salutations and signatures,
billing records and IT support tickets; Vietnamese customer-service notes and chats, some of them
typed without diacritics) are generated from hand-written templates by a seeded generator
(random.Random(33)). Each record plants 1-4 values whose exact strings are known, of eleven types:
PERSON (full names, and single given or family names where the text ties them to a person: a
signature, "my name is", "Patient X", "khách hàng X", "anh Tuấn ơi"), EMAIL, PHONE (US and Vietnamese
layouts), STREET_ADDRESS (US and Vietnamese, with house numbers), DATE (birth and visit dates in
several layouts, "ngày 5 tháng 3 năm 2024" too), US_SSN, CREDIT_CARD (Luhn-valid, Vietnamese Napas
cards too), MRN, VN_NATIONAL_ID (12-digit CCCD), IP_ADDRESS (public) and SECRET (passwords in prose
and assignments, cloud and chat tokens, API keys, JWTs, a connection string's password).

The records go through the `pii` stage as pipelines/sft.yaml runs it: langid decides `lang` first
(lid.176; `und` below a confidence of 0.5, which the stage reads as English), then the stage, with
rules/pii/default.yaml and with rules/pii/hipaa.yaml. A planted value *survives* when its exact string
(for the digit types, its digit sequence, whatever separators surround it) still appears anywhere in
the record's output: its text or any chat turn. The generator makes sure a planted string appears
nowhere in a record except where it was planted, so an occurrence in the output is a leak.

Reported per type, per slot (the value's layout or secret format), per style and overall: planted,
survived, share; the goal (mirroring a held-out check) is at most 1% overall and at most 5% for every
type. Also, not counted as surviving: values left in part ("partly": a word of a full name, the local
part of an e-mail address); every survivor with the output around it, up to 5 examples a type, and the
languages langid decided per style. Results: bench/results/pii_planted.json.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import platform
import re
import string
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import partial
from random import Random

import polars as pl

from bench.pii_common import REPO, commit

RESULT = REPO / "bench" / "results" / "pii_planted.json"
PROFILES = {name: REPO / "rules" / "pii" / f"{name}.yaml" for name in ("default", "hipaa")}
SEED = 33
PER_STYLE = 100
MIN_CONFIDENCE = 0.5  # langid's guess below this is `und` (read as English by the stage)
CONTEXT = 60
EXAMPLES = 5
GOAL = {"overall": 0.01, "per_type": 0.05}
MESSAGES = pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))
TYPES = [
    "PERSON",
    "EMAIL",
    "PHONE",
    "STREET_ADDRESS",
    "DATE",
    "US_SSN",
    "CREDIT_CARD",
    "MRN",
    "VN_NATIONAL_ID",
    "IP_ADDRESS",
    "SECRET",
]
DIGIT_TYPES = {"PHONE", "US_SSN", "CREDIT_CARD", "VN_NATIONAL_ID", "MRN"}  # matched by their digits too

# --- value pools ---------------------------------------------------------------------------------
EN_GIVEN = (
    "Maria James Priya Wei Oluwaseun Fatima Diego Hannah Kenji Aisha Liam Sofia Mateo Chloe Rahul Ngozi Ahmed "
    "Yuki Olga Carlos Emily Daniel Tomasz Ines Kwame Mei Arjun Leila Noah Isabella Hiroshi Svetlana Omar Ana "
    "Thabo Ewa Jamal Zoe Rajesh Siobhan Mohammed Lucia Dmitri Amara Connor Yusuf Harper Elena Kofi Bridget "
    "Xiaoling Malik Ingrid Rosa Takumi Deepa Gareth Nadia"
).split()
EN_FAMILY = (
    "Smith Gonzalez Patel Chen Okafor Haddad Hernandez Nakamura Kowalski Johnson Nguyen Mbeki Rossi Schmidt "
    "O'Brien Kim Sato Ivanova Silva Mensah Novak Fischer Robinson Martinez Cohen Dubois Lindqvist Adeyemi Kaur "
    "Goldberg Walsh Reyes Tanaka Petrov Osei Moreau Bianchi Ramirez Wright Murphy Al-Farsi Park Sharma Tran "
    "Jackson Abernathy Castillo Mwangi Hoffmann Yilmaz"
).split()
VI_FAMILY = (
    "Nguyễn Nguyễn Nguyễn Trần Trần Lê Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý Đinh Trịnh Lương Đoàn"
).split()
VI_MIDDLE_M = "Văn Minh Đức Quốc Hữu Thanh Công Gia Bảo Trung Đình Xuân".split()
VI_MIDDLE_F = "Thị Ngọc Thu Thanh Phương Mỹ Kim Hồng Thùy Bích Diệu".split()
VI_GIVEN_M = "Tuấn Hùng Dũng Khoa Long Phúc Sơn Thắng Đạt Hiếu Duy Kiên Quang Huy Tài Vinh Khánh Tùng Lộc".split()
VI_GIVEN_F = "Lan Hương Trang Linh Thảo Hạnh Yến Nhung Vy Nhi Ngân Quỳnh Uyên Oanh Loan Thủy Hằng Trâm My".split()

EN_DOMAINS = [
    "gmail.com",
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "hotmail.com",
    "icloud.com",
    "protonmail.com",
    "comcast.net",
    "acme-health.com",
    "northwindclinic.org",
    "kestrel-logistics.com",
    "brightpath.io",
    "meridianbank.com",
]
VI_DOMAINS = ["gmail.com", "gmail.com", "gmail.com", "yahoo.com.vn", "fpt.vn", "vnpt.vn", "outlook.com", "hcmut.edu.vn"]

US_STREETS = (
    "Maple|Oak|Cedar Ridge|Lincoln|Washington|Elm|Sunset|Park|Willow Creek|Highland|Jefferson|Lakeview|Hillcrest|"
    "Magnolia|Chestnut|Riverside|Peachtree|Mission|Birch Hollow|Franklin|Juniper|Prospect|Harbor View|Sycamore"
).split("|")
US_TYPES = "St|Street|Ave|Avenue|Rd|Road|Blvd|Dr|Drive|Ln|Lane|Ct|Way|Pl|Ter|Pkwy|Circle".split("|")
US_CITIES = [
    "Springfield, IL 62704",
    "Austin, TX 78745",
    "Columbus, OH 43215",
    "Portland, OR 97214",
    "Brookline, MA 02446",
    "Tucson, AZ 85719",
    "Raleigh, NC 27606",
    "Boise, ID 83702",
    "Sacramento, CA 95818",
    "Madison, WI 53703",
    "Savannah, GA 31401",
    "Plano, TX 75024",
]
US_AREA = "212 312 415 617 713 206 303 404 503 602 702 808 919 512 646 857 929 470 615 720".split()

VI_STREETS = (
    "Lê Lợi|Nguyễn Trãi|Trần Phú|Hai Bà Trưng|Điện Biên Phủ|Lý Thường Kiệt|Cách Mạng Tháng Tám|Võ Văn Tần|"
    "Phan Đình Phùng|Hoàng Diệu|Kim Mã|Láng Hạ|Xuân Thủy|Lê Văn Sỹ|Nguyễn Văn Cừ|Quang Trung|Trường Chinh|"
    "Nguyễn Hữu Thọ|Bà Triệu|Pasteur"
).split("|")
# (ward, district, province): the province is written after the planted address, not part of it
VI_AREAS = [
    ("phường Thượng Đình", "quận Thanh Xuân", "Hà Nội"),
    ("phường Dịch Vọng", "quận Cầu Giấy", "Hà Nội"),
    ("phường Kim Liên", "quận Đống Đa", "Hà Nội"),
    ("phường Ngọc Khánh", "quận Ba Đình", "Hà Nội"),
    ("Phường 13", "Quận 3", "TP.HCM"),
    ("phường Bến Nghé", "Quận 1", "TP. Hồ Chí Minh"),
    ("Phường 25", "quận Bình Thạnh", "TP.HCM"),
    ("Phường 7", "quận Gò Vấp", "TP. Hồ Chí Minh"),
    ("phường Tân Hưng", "Quận 7", "TP.HCM"),
    ("phường Hải Châu 1", "quận Hải Châu", "Đà Nẵng"),
    ("phường An Hải Bắc", "quận Sơn Trà", "Đà Nẵng"),
    ("phường An Hòa", "quận Ninh Kiều", "Cần Thơ"),
    ("phường Lộc Thọ", "TP. Nha Trang", "Khánh Hòa"),
]
VI_MOBILE = (
    "090 091 093 094 096 097 098 032 033 034 035 036 037 038 039 070 077 078 079 081 083 085 086 088 089".split()
)
# public IPv4 blocks (Vietnamese ISPs among them); every address is checked to be global below
IP_FIRST = [14, 27, 42, 58, 103, 113, 115, 116, 117, 118, 123, 125, 171, 183, 23, 34, 45, 52, 66, 73, 81, 89, 94, 151]
IP6_PREFIXES = ["2001:ee0", "2402:800", "2405:4802", "2600:1700", "2a02:c7f"]

PASSWORD_WORDS = (
    "Summer Winter Sunshine Dragon Monkey Tiger Saigon Hanoi Mekong Bluebird Coffee Mimi Lucky Rocket Falcon "
    "Ocean Phoenix Mango Banana Thunder Starlight Kitty Bamboo Lotus"
).split()
# passwords people really type (no placeholder words: the stage rightly keeps 'your-password')
PASSWORD_FIXED = [
    "Tr0ub4dor&3",
    "hunter2",
    "abc12345",
    "anhyeuem123",
    "iloveyou2",
    "correcthorsebatterystaple",
    "matkhau@2023",
    "q1w2e3r4",
    "bongbong99",
    "Khanh#1995",
    "letmein2024",
    "zaq1@WSX",
]
B64URL = string.ascii_letters + string.digits + "-_"
ALNUM = string.ascii_letters + string.digits


@dataclass
class Fill:
    """One slot's fill: the text written into the template, the planted value inside it (at `start`)
    and the parts a template may name separately (`{NAME.given}`)."""

    rendered: str
    value: str
    start: int = 0
    parts: dict[str, str] = field(default_factory=dict)


def _plain(text: str) -> str:
    """Vietnamese typed without diacritics: 'Nguyễn Văn Tuấn' -> 'Nguyen Van Tuan'."""
    text = text.replace("đ", "d").replace("Đ", "D")
    return unicodedata.normalize(
        "NFC", "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    )


def _digits(rng: Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _chars(rng: Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


# --- generators: (rng, lang) -> Fill -------------------------------------------------------------
def person(rng: Random, lang: str, female: bool | None = None) -> Fill:
    """A full name; a Vietnamese one of the given sex where the template says chị/anh/ông/bà."""
    if lang == "vi":
        female = rng.random() < 0.5 if female is None else female
        family = rng.choice(VI_FAMILY)
        given = rng.choice(VI_GIVEN_F if female else VI_GIVEN_M)
        middle = rng.sample(VI_MIDDLE_F if female else VI_MIDDLE_M, rng.choice([0, 1, 1, 1, 1, 1, 1, 2]))
        name = " ".join([family, *middle, given])
        return Fill(name, name, parts={"given": given, "family": family})
    given, family = rng.choice(EN_GIVEN), rng.choice(EN_FAMILY)
    roll = rng.random()
    if roll < 0.15:
        name = f"{given} {rng.choice(string.ascii_uppercase)}. {family}"  # a middle initial
    elif roll < 0.22:
        name = f"{family}, {given}"  # as forms and charts list people
    else:
        name = f"{given} {family}"
    return Fill(name, name, parts={"given": given, "family": family})


def given_name(rng: Random, lang: str, female: bool | None = None) -> Fill:
    if lang != "vi":
        pool = EN_GIVEN
    else:
        pool = {None: VI_GIVEN_M + VI_GIVEN_F, True: VI_GIVEN_F, False: VI_GIVEN_M}[female]
    name = rng.choice(pool)
    return Fill(name, name)


def family_name(rng: Random, lang: str) -> Fill:
    name = rng.choice(VI_FAMILY if lang == "vi" else EN_FAMILY)
    return Fill(name, name)


def name_upper(rng: Random, lang: str) -> Fill:
    """A card holder's name as the card prints it: NGUYEN VAN TUAN."""
    name = _plain(person(rng, "vi").value).upper()
    return Fill(name, name)


def email(rng: Random, lang: str) -> Fill:
    if lang == "vi":
        p = person(rng, "vi")
        first, last = _plain(p.parts["given"]).lower(), _plain(p.parts["family"]).lower()
        whole = _plain(p.value).lower().replace(" ", "")
        local = rng.choice([f"{first}.{last}", whole, f"{whole}{rng.randint(80, 99)}", f"{first}{last}.hcm"])
        domain = rng.choice(VI_DOMAINS)
    else:
        first, last = rng.choice(EN_GIVEN).lower(), re.sub(r"\W", "", rng.choice(EN_FAMILY).lower())
        local = rng.choice(
            [f"{first}.{last}", f"{first}{last}{rng.randint(1, 99)}", f"{first[0]}{last}", f"{first}_{last}"]
        )
        domain = rng.choice(EN_DOMAINS)
    value = f"{local}@{domain}"
    return Fill(value, value)


def phone(rng: Random, lang: str) -> Fill:
    if lang == "vi":
        if rng.random() < 0.2:  # a landline: Hà Nội 024, TP.HCM 028
            code, n = rng.choice([("024", "3"), ("028", "3")])
            rest = n + _digits(rng, 7)
            value = rng.choice([f"{code} {rest[:4]} {rest[4:]}", f"({code}) {rest[:4]} {rest[4:]}", code + rest])
            return Fill(value, value)
        p, rest = rng.choice(VI_MOBILE), _digits(rng, 7)
        value = rng.choice(
            [
                f"{p}{rest[0]} {rest[1:4]} {rest[4:]}",
                f"{p}{rest}",
                f"{p} {rest[:3]} {rest[3:]}",
                f"+84 {p[1:]} {rest[:3]} {rest[3:]}",
                f"+84{p[1:]}{rest}",
                f"{p}{rest[0]}.{rest[1:4]}.{rest[4:]}",
                f"{p}-{rest[:3]}-{rest[3:]}",
            ]
        )
        return Fill(value, value)
    area = rng.choice(US_AREA)
    exchange = str(rng.randint(2, 9)) + _digits(rng, 2)
    if exchange == "555":
        exchange = "556"
    line = _digits(rng, 4)
    value = rng.choice(
        [
            f"({area}) {exchange}-{line}",
            f"{area}-{exchange}-{line}",
            f"{area}.{exchange}.{line}",
            f"+1 {area} {exchange} {line}",
            f"+1-{area}-{exchange}-{line}",
            f"{area} {exchange} {line}",
            f"{area}{exchange}{line}",
            f"1 ({area}) {exchange}-{line}",
        ]
    )
    return Fill(value, value)


def address(rng: Random, lang: str) -> Fill:
    if lang == "vi":
        ward, district, province = rng.choice(VI_AREAS)
        street = rng.choice(VI_STREETS)
        n = rng.randint(2, 480)
        value = rng.choice(
            [
                f"số {n} ngõ {rng.randint(10, 200)} {street}, {ward}, {district}",
                f"{n}/{rng.randint(2, 40)} {street}, {ward}, {district}",
                f"Số nhà {n}, đường {street}, {ward}, {district}",
                f"{n}{rng.choice('ABC')} {street}, {ward}, {district}",
                f"{n} đường {street}, {ward}",
                f"hẻm {n} {street}, số {rng.randint(2, 60)}, {ward}, {district}",
                f"căn hộ {rng.randint(2, 30)}.{rng.randint(1, 20):02d}, {n} {street}, {ward}, {district}",
            ]
        )
        rendered = value if rng.random() < 0.3 else f"{value}, {province}"
        return Fill(rendered, value)
    number = str(rng.randint(10, 9899))
    street = rng.choice(US_STREETS)
    direction = rng.choice(["", "", "", "N ", "S ", "E ", "W "])
    value = f"{number} {direction}{street} {rng.choice(US_TYPES)}"
    roll = rng.random()
    if roll < 0.3:
        value += rng.choice([f", Apt {rng.randint(1, 30)}{rng.choice('ABCD')}", f" #{rng.randint(2, 40)}"])
    elif roll < 0.4:
        value += f", Unit {rng.randint(100, 999)}"
    rendered = value if rng.random() < 0.3 else f"{value}, {rng.choice(US_CITIES)}"
    return Fill(rendered, value)


MONTHS = "January February March April May June July August September October November December".split()


def _day(rng: Random, first: int, last: int) -> date:
    start = date(first, 1, 1)
    return start + timedelta(days=rng.randint(0, (date(last, 12, 31) - start).days))


def _en_date(rng: Random, d: date, year: bool = True) -> str:
    month = MONTHS[d.month - 1]
    if not year:
        return rng.choice([f"{d.month}/{d.day}", f"{month} {d.day}", f"{month[:3]} {d.day}"])
    return rng.choice(
        [
            f"{d.month:02d}/{d.day:02d}/{d.year}",
            f"{d.month}/{d.day}/{d.year}",
            f"{d.month}/{d.day}/{d.year % 100:02d}",
            d.isoformat(),
            f"{month} {d.day}, {d.year}",
            f"{month[:3]} {d.day}, {d.year}",
            f"{d.day} {month} {d.year}",
            f"{month} {d.day}th, {d.year}" if d.day in range(4, 21) else f"{month} {d.day}, {d.year}",
            # day first only where it cannot be read month first
            f"{d.day:02d}/{d.month:02d}/{d.year}" if d.day > 12 else f"{d.month:02d}-{d.day:02d}-{d.year}",
        ]
    )


def _vi_date(rng: Random, d: date) -> str:
    return rng.choice(
        [
            f"{d.day:02d}/{d.month:02d}/{d.year}",
            f"{d.day}/{d.month}/{d.year}",
            f"{d.day:02d}-{d.month:02d}-{d.year}",
            f"{d.day} tháng {d.month} năm {d.year}",
            f"{d.day:02d}.{d.month:02d}.{d.year}",
        ]
    )


def birth_date(rng: Random, lang: str) -> Fill:
    d = _day(rng, 1938, 2006)
    value = _vi_date(rng, d) if lang == "vi" else _en_date(rng, d)
    return Fill(value, value)


def visit_date(rng: Random, lang: str) -> Fill:
    """An English visit, stay or event date ("on {VISIT}"), now and then without its year."""
    d = _day(rng, 2022, 2025)
    value = _en_date(rng, d, year=rng.random() > 0.15)
    return Fill(value, value)


def vi_day(rng: Random, lang: str) -> Fill:
    """A Vietnamese date with its own 'ngày' (or 'hôm'), which is not part of the planted value."""
    d = _day(rng, 2022, 2025)
    value = rng.choice(
        [
            f"{d.day} tháng {d.month} năm {d.year}",
            f"{d.day} tháng {d.month}",
            f"{d.day:02d}/{d.month:02d}/{d.year}",
            f"{d.day}/{d.month}",
            f"{d.day}-{d.month}-{d.year}",
        ]
    )
    word = "hôm" if "/" in value and rng.random() < 0.3 else "ngày"
    return Fill(f"{word} {value}", value, start=len(word) + 1)


def ssn(rng: Random, lang: str) -> Fill:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    group, serial = rng.randint(1, 99), rng.randint(1, 9999)
    sep = rng.choice(["-", "-", "-", "-", " ", ""])
    value = f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"
    return Fill(value, value)


def _luhn(body: str) -> str:
    """`body` with its Luhn check digit appended."""
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def card(rng: Random, lang: str) -> Fill:
    networks = [("4", 16), ("51", 16), ("53", 16), ("2221", 16), ("37", 15), ("6011", 16)]
    if lang == "vi":
        networks += [("9704", 16)] * 3  # Napas, the domestic ATM cards
    prefix, size = rng.choice(networks)
    number = _luhn(prefix + _digits(rng, size - len(prefix) - 1))
    groups = [number[:4], number[4:10], number[10:]] if size == 15 else [number[i : i + 4] for i in range(0, 16, 4)]
    value = rng.choice([" ".join(groups), " ".join(groups), "-".join(groups), number])
    return Fill(value, value)


def mrn(rng: Random, lang: str) -> Fill:
    value = rng.choice(
        [
            _digits(rng, 7),
            "00" + _digits(rng, 6),
            rng.choice(["M", "E", "AHC", "NW"]) + _digits(rng, rng.randint(6, 8)),
            f"{_digits(rng, 2)}-{_digits(rng, 3)}-{_digits(rng, 3)}",
            _digits(rng, 9),
        ]
    )
    return Fill(value, value)


def cccd(rng: Random, lang: str) -> Fill:
    """A 12-digit citizen ID: province code, century and sex, year of birth, then six digits."""
    province = rng.choice(["001", "079", "048", "031", "092", "056", "038", "040", "036", "075", "034", "027"])
    born = rng.randint(1950, 2006)
    century = (0 if born < 2000 else 2) + rng.randint(0, 1)
    value = f"{province}{century}{born % 100:02d}{_digits(rng, 6)}"
    if rng.random() < 0.1:
        value = " ".join(value[i : i + 3] for i in range(0, 12, 3))
    return Fill(value, value)


def ip(rng: Random, lang: str) -> Fill:
    if rng.random() < 0.1:
        groups = [format(rng.randint(1, 0xFFFF), "x") for _ in range(4)]
        value = f"{rng.choice(IP6_PREFIXES)}:{':'.join(groups[:2])}::{groups[3]}"
        return Fill(value, value)
    while True:
        value = f"{rng.choice(IP_FIRST)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        if ipaddress.ip_address(value).is_global:
            return Fill(value, value)


def password(rng: Random, lang: str) -> Fill:
    word = rng.choice(PASSWORD_WORDS)
    value = rng.choice(
        [
            f"{word}{rng.randint(2015, 2025)}{rng.choice('!@#$')}",
            f"{word.lower()}{rng.randint(10, 999)}",
            f"{word}@{_digits(rng, rng.randint(2, 4))}",
            f"{word[0].lower()}{word[1:]}{rng.choice('!?*')}{_digits(rng, 2)}",
            rng.choice(PASSWORD_FIXED),
            rng.choice(PASSWORD_FIXED),
        ]
    )
    return Fill(value, value)


def url_password(rng: Random, lang: str) -> Fill:
    """A connection string; the planted value is its password."""
    pw = rng.choice(PASSWORD_WORDS) + _digits(rng, rng.randint(2, 4)) + rng.choice(["", "!", "_x", "*"])
    scheme, user, host = rng.choice(
        [
            ("postgres", "admin", "db.internal.corp:5432/app"),
            ("postgresql", "svc_billing", "pg-prod-02.kestrel.local:5432/billing"),
            ("mysql", "app_user", "10.20.4.17:3306/crm"),
            ("mongodb+srv", "reporting", "cluster0.x7k2p.mongodb.net/analytics"),
            ("redis", "default", "cache-01.acme-health.com:6379/0"),
            ("amqp", "worker", "mq.brightpath.io:5672/jobs"),
        ]
    )
    head = f"{scheme}://{user}:"
    return Fill(f"{head}{pw}@{host}", pw, start=len(head))


def aws_key(rng: Random, lang: str) -> Fill:
    value = "AKIA" + _chars(rng, string.ascii_uppercase + string.digits, 16)
    return Fill(value, value)


def github_token(rng: Random, lang: str) -> Fill:
    if rng.random() < 0.2:
        value = f"github_pat_11{_chars(rng, string.ascii_uppercase + string.digits, 20)}_{_chars(rng, ALNUM, 59)}"
    else:
        value = "ghp_" + _chars(rng, ALNUM, 36)
    return Fill(value, value)


def openai_key(rng: Random, lang: str) -> Fill:
    if rng.random() < 0.65:
        value = "sk-proj-" + _chars(rng, B64URL, rng.randint(48, 120))
    else:
        value = f"sk-{_chars(rng, ALNUM, 20)}T3BlbkFJ{_chars(rng, ALNUM, 20)}"
    return Fill(value, value)


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def jwt(rng: Random, lang: str) -> Fill:
    head = _b64({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"})
    body = _b64(
        {
            "sub": f"u{_digits(rng, 6)}",
            "role": rng.choice(["billing", "admin", "agent"]),
            "iat": 1_700_000_000 + rng.randint(0, 10**8),
        }
    )
    value = f"{head}.{body}.{_chars(rng, B64URL, 43)}"
    return Fill(value, value)


def slack_token(rng: Random, lang: str) -> Fill:
    value = f"xox{rng.choice('bbp')}-{_digits(rng, 12)}-{_digits(rng, 13)}-{_chars(rng, ALNUM, 24)}"
    return Fill(value, value)


def hex_key(rng: Random, lang: str) -> Fill:
    value = _chars(rng, "0123456789abcdef", 32)
    return Fill(value, value)


# slot kind -> (type, generator)
SLOTS = {
    "NAME": ("PERSON", person),
    "NAME_F": ("PERSON", partial(person, female=True)),
    "NAME_M": ("PERSON", partial(person, female=False)),
    "GIVEN": ("PERSON", given_name),
    "GIVEN_F": ("PERSON", partial(given_name, female=True)),
    "GIVEN_M": ("PERSON", partial(given_name, female=False)),
    "SURNAME": ("PERSON", family_name),
    "NAME_UPPER": ("PERSON", name_upper),
    "EMAIL": ("EMAIL", email),
    "PHONE": ("PHONE", phone),
    "ADDRESS": ("STREET_ADDRESS", address),
    "DOB": ("DATE", birth_date),
    "VISIT": ("DATE", visit_date),
    "VDATE": ("DATE", vi_day),
    "SSN": ("US_SSN", ssn),
    "CARD": ("CREDIT_CARD", card),
    "MRN": ("MRN", mrn),
    "CCCD": ("VN_NATIONAL_ID", cccd),
    "IP": ("IP_ADDRESS", ip),
    "PASSWORD": ("SECRET", password),
    "DB_URL": ("SECRET", url_password),
    "AWS_KEY": ("SECRET", aws_key),
    "GH_TOKEN": ("SECRET", github_token),
    "OPENAI_KEY": ("SECRET", openai_key),
    "JWT": ("SECRET", jwt),
    "SLACK_TOKEN": ("SECRET", slack_token),
    "HEX_KEY": ("SECRET", hex_key),
}

# --- templates -----------------------------------------------------------------------------------
# {KIND} or {KIND2} is a slot (the same key twice is the same value); {NAME.given} is a part of NAME.
CLINICAL = [
    "Patient {NAME}, DOB {DOB}, MRN {MRN}, presented to the ED with chest pain radiating to the left arm. "
    "Troponin negative x2. Discharged with cardiology follow-up.",
    "CC: worsening shortness of breath.\nHPI: {NAME} is a 67 y/o M with COPD, seen {VISIT} for an exacerbation. "
    "Wife reachable at {PHONE}.\nPlan: prednisone 40 mg x5d, albuterol nebs q4h PRN.",
    "Progress note, {VISIT}\nPt {GIVEN} reports better sleep since starting trazodone 50 mg qhs. Denies SI/HI. "
    "Return in 4 weeks.\nMedical record number: {MRN}",
    "Discharge summary for {NAME} (MRN: {MRN}). Admitted {VISIT} for community-acquired pneumonia, treated with "
    "ceftriaxone and azithromycin. Home address on file: {ADDRESS}.",
    "Telephone encounter: the patient's daughter, {NAME}, called from {PHONE} asking about her mother's INR. "
    "Advised to hold warfarin tonight; recheck Thursday.",
    "Referral: please see {NAME}, born {DOB}, for evaluation of a 2.1 cm thyroid nodule (TI-RADS 4). "
    "Contact: {EMAIL}, {PHONE}.",
    "Intake form\nName: {NAME}\nDate of birth: {DOB}\nSSN: {SSN}\nAddress: {ADDRESS}\nAllergies: penicillin (rash)",
    "Nursing note 0300: {GIVEN} was restless overnight and pulled at the IV line twice. Son updated by phone at "
    "{PHONE}. Fall precautions in place.",
    'Portal message from {NAME} <{EMAIL}>: "I ran out of lisinopril and the pharmacy says the refill needs '
    'approval. Can someone call me at {PHONE}?"',
    "Pre-op checklist: {NAME}, MRN# {MRN}, scheduled for laparoscopic cholecystectomy on {VISIT}. NPO after "
    "midnight. Consent signed, site marked.",
    "Well-child visit: {GIVEN} (DOB {DOB}) is meeting milestones; immunizations up to date. Mother asked that "
    "results be sent to {EMAIL}.",
    "ED triage: 34F, fall from a ladder at home ({ADDRESS}). GCS 15. Pt states her name is {NAME} and gave SSN "
    "{SSN} for registration.",
    "Lab result notification, chart # {MRN}\nHbA1c 8.9% on {VISIT}. Left a voicemail for {GIVEN} at {PHONE} to "
    "schedule diabetes education.",
    "Patient {NAME} joined the telehealth visit on {VISIT} from {IP}; exam limited to video. Amoxicillin sent "
    "to the pharmacy on file.",
    "Home health visit (MRN {MRN}) at {ADDRESS}: left heel wound healing, no signs of infection. Caregiver "
    "{GIVEN} was shown how to change the dressing.",
    "Dr. {SURNAME} discussed the biopsy results with the patient on {VISIT}; she prefers to start treatment "
    "at the Savannah clinic. Callback number {PHONE}.",
]
BILLING = [
    "Invoice INV-20931\nBill to: {NAME}\n{ADDRESS}\nAmount due: $1,284.50 (balance after insurance)\n"
    "Card on file: {CARD}",
    "Payment declined for card {CARD} (exp 09/27). Customer {NAME} notified by email at {EMAIL}.",
    "Statement for account holder {NAME}, SSN {SSN}. Services on {VISIT}: office visit (99214) and lipid "
    "panel (80061). Patient responsibility: $86.00.",
    "Refund request: {NAME} was charged $49.99 twice on {VISIT}. Original charge on card {CARD}. Call back at {PHONE}.",
    "Guarantor: {NAME}\nGuarantor SSN: {SSN}\nPhone: {PHONE}\nMailing address: {ADDRESS}",
    "Hi, this is {NAME}. Please update the card on my account to {CARD}; the billing address stays {ADDRESS}.",
    "Collections note: patient {GIVEN} agreed to a payment plan of $75/month starting {VISIT}. MRN {MRN}. "
    "Confirmation sent to {EMAIL}.",
    "Claim denied (CO-97) for MRN {MRN}, DOS {VISIT}. Subscriber: {NAME}, DOB {DOB}. Resubmit with modifier 25.",
    "Order 884120 shipped to {NAME}, {ADDRESS}. Paid by Visa {CARD}; receipt emailed to {EMAIL}.",
    "Autopay enrolment\nCardholder name: {NAME}\nCard number: {CARD}\nExpiry: 11/26\nEmail for receipts: {EMAIL}",
    "Customer called from {PHONE} disputing a late fee. Identity verified with last name and DOB ({DOB}). "
    "Fee waived as a courtesy.",
    "ACH details requested by {NAME} ({EMAIL}); told them we take card payments only. Card used before: {CARD}.",
    "Itemized bill mailed to {ADDRESS} on {VISIT}. Account notes: {GIVEN} prefers a text at {PHONE}.",
    "Self-pay estimate for {NAME}, born {DOB}: MRI lumbar spine w/o contrast, $640. SSN on file {SSN} for the "
    "financial assistance application.",
    "Chargeback received for {CARD}. Cardholder {NAME} says she never stayed at the hotel on {VISIT}.",
    "Payment portal login for {EMAIL} from {IP} failed 5 times; account locked, customer {GIVEN} told to reset.",
]
TICKETS = [
    "Ticket 48213: VPN login failing\nReported by: {NAME} ({EMAIL})\nCan't connect from home ({IP}). User says "
    "the password is {PASSWORD} and it worked yesterday.",
    "Our CI broke after the key rotation. The old key is still in the repo: aws_access_key_id = {AWS_KEY}. "
    "Can someone revoke it?\n\nThanks,\n{GIVEN}",
    "Priority: High\nSummary: leaked GitHub token\nDescription: I pushed a personal access token ({GH_TOKEN}) to "
    "a public gist by mistake. Please revoke it ASAP.\nContact: {PHONE}",
    "Can't reach the staging DB. Connection string from the wiki: {DB_URL} - is the host down? Reported by {NAME}.",
    "Hi IT, my name is {NAME} and I'm locked out of Outlook. My cell is {PHONE} if you need to call. Thanks!",
    "Firewall blocked repeated SSH attempts from {IP} against the bastion host. Account targeted: {EMAIL}.",
    "Please reset MFA for {GIVEN} in Finance. Temporary credentials issued: {EMAIL} / pwd={PASSWORD}",
    "Incident 2291: the Slack bot token {SLACK_TOKEN} was posted in #general by mistake. Reported by {NAME}.",
    "The billing service logs the request header 'Authorization: Bearer {JWT}' in plain text. Source IP {IP}.",
    "New laptop for {NAME}, starting {VISIT}. Ship to {ADDRESS}. The home Wi-Fi password she gave us: {PASSWORD}",
    "Someone shared our OpenAI key in a notebook: OPENAI_API_KEY={OPENAI_KEY}. Owner: {EMAIL}",
    "Printer on the 3rd floor keeps jamming. Call me at {PHONE} when a tech is on the way.\n\nRegards,\n{NAME}",
    "Vendor portal integration. API key: {HEX_KEY} (from {NAME}, {EMAIL}). Is it safe to keep in the config repo?",
    "User {GIVEN} reports a suspicious login from {IP} at 03:14 UTC. She says my password is {PASSWORD} for "
    "everything, so it may be reused elsewhere.",
    "The Jenkins job has GITHUB_TOKEN={GH_TOKEN} and the AWS key {AWS_KEY} hard-coded. Please move them to the "
    "vault.\n\nCheers,\n{GIVEN}",
    'config.json on the shared drive contains "password": "{PASSWORD}" for the admin account of {EMAIL}.',
    "Outlook keeps asking for credentials. I typed my password ({PASSWORD}) three times. - {NAME}, ext. 4471",
    "HR portal: {NAME} can't see her W-2 and pasted her SSN ({SSN}) into the chat widget. Please scrub the "
    "transcript. Her login came from {IP}.",
    "After the upgrade the worker reads DATABASE_URL={DB_URL} and crashes on start. Assigned to {NAME}.",
    "The mobile app sends 'Authorization: Bearer {JWT}' over plain HTTP to {IP}. Found by {GIVEN} in a pcap.",
]
EMAILS = [
    "Hi {GIVEN},\n\nThanks for meeting with me on {VISIT}. As promised, here's my cell: {PHONE}.\n\n"
    "Best regards,\n{NAME}",
    "Dear Dr. {SURNAME},\n\nI'm writing about my father's MRI results. Could your office call me back?\n\n"
    "Sincerely,\n{NAME}\n{PHONE}",
    "Hello {GIVEN},\n\nCould you send the signed lease to my new address, {ADDRESS}? My personal email is "
    "{EMAIL}.\n\nThanks,\n{GIVEN2}",
    "Hey {GIVEN}!\n\nThe Wi-Fi password at the cabin is {PASSWORD} and the door code is 4471. See you Friday!\n\n"
    "Cheers,\n{GIVEN2}",
    "Good morning {GIVEN},\n\nPlease find the W-9 attached. My SSN is {SSN} in case the scan is unreadable.\n\n"
    "Kind regards,\n{NAME}",
    "Hi team,\n\nI'm out of office from {VISIT}. For anything urgent, reach me at {PHONE} or {EMAIL}.\n\n"
    "Thanks,\n{GIVEN}",
    "Dear {NAME},\n\nYour order has shipped to {ADDRESS} and should arrive within 3-5 business days.\n\n"
    "Warm regards,\nThe Brightpath team",
    "Hi {GIVEN},\n\nHere's the company card for the conference registration: {CARD}, exp 04/28. Please delete "
    "this email afterwards.\n\nThanks,\n{GIVEN2}",
    "From: {NAME} <{EMAIL}>\nSubject: can't access my account\n\nHello,\n\nMy name is {NAME.given} and I can't "
    "log in since Monday. Please call me at {PHONE}.",
    "Hi {GIVEN},\n\nHR needs my birthday for the form: it's {DOB}. Also, my new number is {PHONE}.\n\nBest,\n{GIVEN2}",
    "Hello {GIVEN},\n\nI set up your account on the analytics server. Login: {EMAIL}, temporary password: "
    "{PASSWORD}. Please change it after the first login.\n\nRegards,\n{NAME}\nIT Operations, Kestrel Logistics",
    "Dear Ms. {SURNAME},\n\nThank you for your application. We will call you at {PHONE} to schedule an "
    "interview on {VISIT}.\n\nYours sincerely,\n{NAME}",
    "Hi {GIVEN},\n\nI forwarded the deploy token to you: {GH_TOKEN}. Let me know once you've rotated it.\n\n"
    "Thanks,\n{GIVEN2}",
    "Hi all,\n\nMy mom, {NAME}, will pick up the kids today. Her phone is {PHONE}. We live at {ADDRESS}.\n\n"
    "Thanks so much,\n{GIVEN2}",
    "Dear {GIVEN},\n\nFollowing up on our call: the server at {IP} is ours, please whitelist it.\n\n"
    "Best wishes,\n{NAME}",
    "Hi {GIVEN},\n\nThe Stripe webhook kept failing, so I put the API key in the email thread: {HEX_KEY}. "
    "Sorry!\n\nRespectfully,\n{NAME}",
    "Hello {GIVEN},\n\nFor the background check you asked for my social security number: {SSN}. My date of "
    "birth is {DOB}.\n\nThank you,\n{NAME}",
    "Hi {GIVEN},\n\nHere's the OpenAI key for the pilot: {OPENAI_KEY}. Please don't commit it!\n\nThanks,\n{GIVEN2}",
    "Hi {GIVEN},\n\nThe reporting DB is back. Use {DB_URL} until we move it to the vault.\n\nBest,\n{NAME}",
]
VI_NOTES = [
    "Khách hàng {NAME}, SĐT {PHONE}, phản ánh đơn hàng giao trễ 3 ngày. Đã xin lỗi và tặng voucher 50.000đ.",
    "Ghi chú CSKH: chị {GIVEN_F} gọi lên hỏi đổi trả máy lọc nước. Địa chỉ giao hàng: {ADDRESS}. Hẹn kỹ thuật "
    "viên qua kiểm tra.",
    "Khách hàng: {NAME}\nCCCD: {CCCD}\nNgày sinh: {DOB}\nĐịa chỉ thường trú: {ADDRESS}\nYêu cầu: mở thẻ tín "
    "dụng hạn mức 50 triệu.",
    "Anh {GIVEN_M} báo mất thẻ ATM số {CARD}. Đã khóa thẻ tạm thời, hướng dẫn anh ra chi nhánh gần nhất, mang "
    "theo căn cước {CCCD}.",
    "KH {NAME} gửi email từ {EMAIL} khiếu nại bị trừ tiền hai lần {VDATE}. Đã chuyển bộ phận đối soát.",
    "Bệnh nhân {NAME}, sinh ngày {DOB}, đến khám {VDATE} vì đau bụng kéo dài. Người nhà liên hệ: {PHONE}.",
    "Ông {NAME_M} (CCCD số {CCCD}) đề nghị cập nhật số điện thoại mới {PHONE} cho hợp đồng bảo hiểm nhân thọ.",
    "Tổng đài viên ghi nhận: khách tên {GIVEN}, ở {ADDRESS}, muốn lắp internet cáp quang gói 150Mbps. Hẹn "
    "khảo sát {VDATE}.",
    "Khách hàng {NAME} quên mật khẩu ứng dụng, đọc cho nhân viên mật khẩu cũ là {PASSWORD}. Đã nhắc khách "
    "không chia sẻ mật khẩu qua điện thoại.",
    "Đơn hàng DH58213 giao cho {NAME}, {ADDRESS}. Điện thoại người nhận: {PHONE}. Thu hộ 1.250.000đ.",
    "Cô {GIVEN_F} phản ánh nhân viên giao hàng thái độ không tốt. Email liên hệ: {EMAIL}. Đã xin lỗi và ghi nhận.",
    "Hồ sơ vay tiêu dùng: {NAME}, căn cước công dân {CCCD}, cấp {VDATE} tại Cục Cảnh sát QLHC về TTXH. Thu "
    "nhập 18 triệu/tháng.",
    "Tài khoản của khách hàng {NAME} đăng nhập bất thường từ IP {IP} lúc 2 giờ sáng. Đã tạm khóa và gọi xác "
    "minh qua số {PHONE}.",
    "Chị {NAME_F} gọi lại lần 2 về hóa đơn tiền điện tháng 3 cao bất thường. Địa chỉ: {ADDRESS}.",
    "Người liên hệ: {NAME} - {PHONE} - {EMAIL}. Công ty muốn đặt 200 phần quà Tết, giao trước {VDATE}.",
    "Khách hàng thanh toán bằng thẻ {CARD}, chủ thẻ {NAME_UPPER}. Giao dịch bị từ chối, đã hướng dẫn liên hệ "
    "ngân hàng phát hành.",
    "Em {GIVEN} (sđt {PHONE}) nhờ đổi mật khẩu wifi thành {PASSWORD} khi kỹ thuật viên qua lắp modem.",
    "Bộ phận IT ghi nhận nhân viên {NAME} dán access token {JWT} vào nhóm Zalo chung. Đã thu hồi token.",
    "Xác minh eKYC thất bại: ảnh CCCD của khách bị mờ, số {CCCD} không khớp với tên {NAME} trên hệ thống.",
]
# Chats are (role, content) turns; the second list is typed without diacritics, as many people chat.
VI_CHATS = [
    [
        ("user", "Chào shop, mình muốn đặt 2 hộp sữa Ensure. Tên mình là {NAME_F}, sđt {PHONE} nha."),
        ("assistant", "Dạ shop cảm ơn chị {NAME_F.given} ạ. Chị cho shop xin địa chỉ nhận hàng nhé."),
        ("user", "Giao giúp mình tới {ADDRESS} nhé, giờ hành chính."),
    ],
    [
        ("user", "Viết giúp tôi đơn xin nghỉ phép 3 ngày. Tôi tên {NAME}, phòng Kế toán, nghỉ từ {VDATE} vì con ốm."),
        (
            "assistant",
            "Dạ, anh/chị tham khảo mẫu sau:\n\nĐƠN XIN NGHỈ PHÉP\n\nTôi tên là {NAME}, công tác tại phòng Kế toán. "
            "Tôi xin phép được nghỉ 3 ngày kể từ {VDATE} vì con bị ốm.\n\nNgười làm đơn\n{NAME}",
        ),
    ],
    [
        (
            "user",
            "Tài khoản ngân hàng của tôi bị khóa. CCCD của tôi là {CCCD}, số điện thoại đăng ký {PHONE}. "
            "Tôi phải làm gì để mở lại?",
        ),
        (
            "assistant",
            "Bạn vui lòng gọi tổng đài của ngân hàng hoặc mang căn cước công dân đến quầy giao dịch gần nhất. "
            "Lần sau đừng gửi số CCCD đầy đủ qua tin nhắn nhé.",
        ),
    ],
    [
        ("user", "Giúp mình viết lời chúc sinh nhật cho bạn thân tên {GIVEN}, sinh nhật bạn ấy {VDATE}."),
        ("assistant", "Chúc mừng sinh nhật {GIVEN}! Cảm ơn cậu vì bao năm qua đã luôn ở bên mình, vui buồn có nhau."),
    ],
    [
        ("user", "Em chuyển khoản học phí giúp chị nhé: số thẻ {CARD}, chủ thẻ {NAME_UPPER}."),
        ("assistant", "Dạ em nhận được rồi ạ. Chị nên hạn chế gửi số thẻ qua tin nhắn để tránh lộ thông tin nhé."),
    ],
    [
        ("user", "Gmail của tôi là {EMAIL}, mật khẩu là {PASSWORD} mà sao đăng nhập không được?"),
        (
            "assistant",
            "Bạn nên đổi mật khẩu ngay vì vừa chia sẻ nó ở đây, sau đó khôi phục tài khoản qua số điện thoại.",
        ),
    ],
    [
        ("user", "Tôi là {NAME}, sinh ngày {DOB}. Năm nay tôi bao nhiêu tuổi, tuổi con gì?"),
        ("assistant", "Chào anh/chị {NAME.given}, theo năm sinh anh/chị đưa, mình tính tuổi âm lịch như sau..."),
    ],
    [
        (
            "user",
            "Em ơi, chị là {NAME_F}, khách đặt phòng {VDATE} đó. Chị muốn đổi sang phòng 2 giường, số chị là "
            "{PHONE} nha.",
        ),
        ("assistant", "Dạ em chào chị {NAME_F.given}, em đã ghi chú đổi phòng rồi ạ. Có gì em gọi vào số {PHONE} nhé."),
    ],
    [
        ("user", "anh {GIVEN_M} ơi, mật khẩu wifi văn phòng mới là {PASSWORD} nha, anh đổi giúp em trên máy in luôn"),
        ("assistant", "Ok em, anh cập nhật xong rồi."),
    ],
    [
        ("user", "Mình tên {GIVEN}, nhà ở {ADDRESS}. Khu mình hay mất điện buổi tối, gọi số nào để báo?"),
        ("assistant", "Bạn có thể gọi tổng đài điện lực 1900 1006 hoặc báo qua ứng dụng của điện lực nhé."),
    ],
    [
        ("user", "Viết email xin lỗi khách hàng {NAME} vì giao hàng trễ, email khách là {EMAIL}."),
        (
            "assistant",
            "Kính gửi Quý khách {NAME},\n\nChúng tôi thành thật xin lỗi vì đơn hàng của Quý khách đã bị giao "
            "trễ.\n\nTrân trọng,\nBộ phận Chăm sóc Khách hàng",
        ),
    ],
    [
        ("user", "Đăng ký tạm trú online cần gì vậy? Mình là {NAME}, CCCD {CCCD}, đang thuê trọ ở {ADDRESS}."),
        ("assistant", "Bạn cần ảnh chụp CCCD và hợp đồng thuê nhà. Lưu ý không nên chia sẻ số CCCD công khai."),
    ],
    [
        ("user", "Em làm lại thẻ căn cước, số CCCD mới là {CCCD}. Chị cập nhật giúp em với, em là {NAME} lớp 12A3."),
        ("assistant", "Dạ chị cập nhật rồi nhé {NAME.given}."),
    ],
    [
        ("user", "Code gọi API bị lỗi 401 dù key OpenAI mình dùng là {OPENAI_KEY}, mình sai ở đâu?"),
        ("assistant", "Bạn hãy thu hồi key này ngay vì đã lộ, tạo key mới và đặt nó trong biến môi trường."),
    ],
    [
        ("user", "Chuỗi kết nối DB bên mình là {DB_URL}, sao app Node báo ECONNREFUSED?"),
        ("assistant", "Bạn kiểm tra lại cổng và tường lửa. Nhớ đổi mật khẩu DB vì bạn vừa chia sẻ nó ở đây."),
    ],
    [
        ("user", "Bạn ơi, token Slack của team mình là {SLACK_TOKEN}, sao bot không gửi tin nhắn được?"),
        ("assistant", "Bạn nên thu hồi token này ngay vì đã chia sẻ ở đây, rồi tạo token mới trong trang quản lý app."),
    ],
]
VI_CHATS_PLAIN = [
    [
        ("user", "ban oi minh ten {GIVEN}, sdt {PHONE}, minh muon hoi ve goi cuoc 4G thang"),
        ("assistant", "Chào bạn {GIVEN}, hiện bên mình có gói 90.000đ/tháng, mỗi ngày 1GB ạ."),
    ],
    [
        ("user", "shop oi giao hang toi {ADDRESS} dc ko a, sdt {PHONE}"),
        ("assistant", "Dạ được ạ, shop sẽ giao trong 2-3 ngày ạ."),
    ],
    [
        ("user", "chi {GIVEN_F} oi, em gui thong tin nhe: so the {CARD}, ngay sinh {DOB}"),
        ("assistant", "Ok em, chị nhận rồi nha."),
    ],
    [
        ("user", "toi la {NAME}, cccd {CCCD}, mat khau app ngan hang la {PASSWORD}, sao toi k chuyen tien duoc"),
        ("assistant", "Bạn không nên chia sẻ mật khẩu ở đây, vui lòng đổi mật khẩu ngay rồi thử lại."),
    ],
    [
        ("user", "e oi a {GIVEN_M} day, mail cua a la {EMAIL}, gui bao gia qua do nhe"),
        ("assistant", "Dạ vâng anh, em gửi ngay ạ."),
    ],
]
STYLES = {  # style -> (language of its values, templates)
    "en_clinical": ("en", CLINICAL),
    "en_email": ("en", EMAILS),
    "en_billing": ("en", BILLING),
    "en_ticket": ("en", TICKETS),
    "vi_note": ("vi", VI_NOTES),
    "vi_chat": ("vi", VI_CHATS + VI_CHATS_PLAIN),
}
SLOT = re.compile(r"\{([A-Z]+(?:_[A-Z]+)*)(\d?)(?:\.(given|family))?\}")


# --- building the set ----------------------------------------------------------------------------
def _occurrences(value: str, text: str) -> list[tuple[int, int]]:
    """Where `value` stands in `text` as a whole (no letter or digit glued to either end)."""
    pattern = r"(?<![\w])" + re.escape(value) + r"(?![\w])"
    return [(m.start(), m.end()) for m in re.finditer(pattern, text)]


def _render(fields: list[str], lang: str, plain: bool, rng: Random) -> tuple[list[str], dict, list]:
    """The template's fields with every slot filled: (texts, {key: (type, slot, value)}, the planted
    values' spans as (field, start, end)). Chats typed without diacritics (`plain`) get plain values."""
    fills: dict[str, Fill] = {}
    for text in fields:
        for m in SLOT.finditer(text):
            if m[1] + m[2] not in fills:
                fills[m[1] + m[2]] = SLOTS[m[1]][1](rng, lang)
    if plain:
        fills = {
            k: Fill(_plain(f.rendered), _plain(f.value), f.start, {p: _plain(v) for p, v in f.parts.items()})
            for k, f in fills.items()
        }
    texts, planted, spans = [], {}, []
    for i, text in enumerate(fields):
        out, pos = [], 0
        for m in SLOT.finditer(text):
            out.append(text[pos : m.start()])
            at = sum(map(len, out))
            fill, part = fills[m[1] + m[2]], f".{m[3]}" if m[3] else ""
            if m[3]:  # a part of another slot's value, planted as a value of its own
                value, start, rendered = fill.parts[m[3]], 0, fill.parts[m[3]]
            else:
                value, start, rendered = fill.value, fill.start, fill.rendered
            out.append(rendered)
            planted[m[1] + m[2] + part] = (SLOTS[m[1]][0], m[1] + part, value)
            spans.append((i, at + start, at + start + len(value)))
            pos = m.end()
        texts.append("".join(out) + text[pos:])
    return texts, planted, spans


def _unambiguous(texts: list[str], planted: dict, spans: list) -> bool:
    """Every planted value distinct and found only inside planted spans: an occurrence after the stage
    can only be a planted value that survived."""
    values = [v for _, _, v in planted.values()]
    if len(set(values)) < len(values):
        return False
    for value in values:
        for i, text in enumerate(texts):
            for a, b in _occurrences(value, text):
                if not any(j == i and s <= a and b <= e for j, s, e in spans):
                    return False
    return True


def records(seed: int = SEED, per_style: int = PER_STYLE) -> list[dict]:
    """The labelled set: {id, style, template, plain, text | messages, planted: [{key, type, slot, value}]}."""
    rng = Random(seed)
    out = []
    for style, (lang, templates) in STYLES.items():
        order = [i % len(templates) for i in range(per_style)]
        rng.shuffle(order)  # every template used about equally often, in a seeded order
        for n, t in enumerate(order):
            template = templates[t]
            chat = isinstance(template, list)
            fields = [content for _, content in template] if chat else [template]
            plain = chat and template in VI_CHATS_PLAIN
            for _ in range(100):
                texts, planted, spans = _render(fields, lang, plain, rng)
                if _unambiguous(texts, planted, spans):
                    break
            else:
                raise RuntimeError(f"{style} template {t}: no unambiguous fill in 100 tries")
            record = {
                "id": f"{style}-t{t:02d}-{n:03d}",
                "style": style,
                "template": t,
                "plain": plain,
                "text": None if chat else texts[0],
                "messages": [{"role": r, "content": c} for (r, _), c in zip(template, texts)] if chat else None,
                "planted": [{"key": k, "type": ty, "slot": slot, "value": v} for k, (ty, slot, v) in planted.items()],
            }
            out.append(record)
    return out


def frame(recs: list[dict]) -> pl.DataFrame:
    """The records as the pii stage sees them in pipelines/sft.yaml: langid has decided `lang` (`und`
    below MIN_CONFIDENCE)."""
    from curate.lang import LanguageId
    from curate.records import content_texts

    df = pl.DataFrame(
        {"id": [r["id"] for r in recs], "text": [r["text"] for r in recs], "messages": [r["messages"] for r in recs]},
        schema_overrides={"text": pl.Utf8, "messages": MESSAGES},
    )
    langs, scores = LanguageId().predict(content_texts(df))
    langs = [lang if score >= MIN_CONFIDENCE else "und" for lang, score in zip(langs, scores)]
    return df.with_columns(pl.Series("lang", langs, dtype=pl.Utf8))


# --- measuring -----------------------------------------------------------------------------------
DIGIT_RUN = re.compile(r"\d+(?:[ .()/+-]{1,2}\d+)*")


def find(value: str, entity: str, texts: list[str]) -> tuple[int, int, int] | None:
    """Where a planted value still stands in a record's output texts: (text index, start, end), or None.
    A digit type also survives as its digit sequence inside a run of digits and separators."""
    for i, text in enumerate(texts):
        if hits := _occurrences(value, text):
            return i, *hits[0]
    digits = re.sub(r"\D", "", value)
    if entity in DIGIT_TYPES and len(digits) >= 5:
        for i, text in enumerate(texts):
            for m in DIGIT_RUN.finditer(text):
                if digits in re.sub(r"\D", "", m[0]):
                    return i, m.start(), m.end()
    return None


def _pieces(value: str, entity: str) -> list[str]:
    """What identifies a person in a value redacted in part: the words of a multi-word name, the
    local part of an e-mail address (`connor_smith@<URL>`)."""
    if entity == "EMAIL":
        return [value.split("@")[0]]
    words = [w for w in re.findall(r"[\w'-]+", value) if len(w) > 1]
    return words if entity == "PERSON" and len(words) > 1 else []


def partly(value: str, entity: str, after: list[str], blanked: list[str]) -> list[str]:
    """The pieces of a value that did not survive whole standing in the output more often than in the
    input outside the record's planted values (`blanked`)."""
    return [
        w
        for w in _pieces(value, entity)
        if sum(len(_occurrences(w, t)) for t in after) > sum(len(_occurrences(w, t)) for t in blanked)
    ]


def _texts(text: str | None, messages: list | None) -> list[str]:
    return [text] if text is not None else [m["content"] for m in messages or []]


def _blank(texts: list[str], values: list[str]) -> list[str]:
    """The input texts with every planted value blanked out."""
    out = []
    for t in texts:
        for v in sorted(values, key=len, reverse=True):
            t = t.replace(v, "\x00" * len(v))
        out.append(t)
    return out


def _share(survived: int, planted: int) -> float:
    return round(survived / planted, 4) if planted else 0.0


def _stage(path):
    from curate.schema import load_rules
    from curate.stages.pii import PiiRules, PiiStage

    stage = PiiStage("pii", PiiRules.model_validate(load_rules(path)))
    stage.setup()
    return stage


def _tally(outcomes: list[dict], key, order: list[str] | None = None) -> dict:
    """Planted, survived and their share, per value of `key` over the planted values' outcomes."""
    planted, survived = Counter(), Counter()
    for o in outcomes:
        planted[key(o)] += 1
        survived[key(o)] += o["survived"]
    keys = order if order is not None else sorted(planted)
    return {k: {"planted": planted[k], "survived": survived[k], "share": _share(survived[k], planted[k])} for k in keys}


def measure(path, recs: list[dict], df: pl.DataFrame) -> dict:
    """One profile over the set: survivors per type, slot, style and overall, and every survivor."""
    stage = _stage(path)
    start = time.perf_counter()
    out = stage.process(df)
    seconds = time.perf_counter() - start
    rows = {r["id"]: r for r in out.to_dicts()}
    outcomes, survivors, partials = [], [], []
    for rec in recs:
        row = rows[rec["id"]]
        after = _texts(row["text"], row["messages"])
        blanked = _blank(_texts(rec["text"], rec["messages"]), [p["value"] for p in rec["planted"]])
        for p in rec["planted"]:
            hit = find(p["value"], p["type"], after)
            left = partly(p["value"], p["type"], after, blanked) if hit is None else []
            outcomes.append({"style": rec["style"], "type": p["type"], "slot": p["slot"], "survived": hit is not None})
            if left:
                partials.append({"id": rec["id"], "type": p["type"], "value": p["value"], "left": left})
            if hit is None:
                continue
            i, a, b = hit
            survivors.append(
                {
                    "id": rec["id"],
                    "style": rec["style"],
                    "lang": row["lang"],
                    "type": p["type"],
                    "slot": p["slot"],
                    "value": p["value"],
                    "field": "text" if rec["text"] is not None else f"messages[{i}] ({rec['messages'][i]['role']})",
                    "output": after[i][max(0, a - CONTEXT) : b + CONTEXT],
                }
            )
    overall = _tally(outcomes, lambda o: "overall")["overall"]
    per_type = _tally(outcomes, lambda o: o["type"], TYPES)
    for t in ("PERSON", "EMAIL"):
        per_type[t]["partly"] = sum(x["type"] == t for x in partials)
    examples = {t: [s for s in survivors if s["type"] == t][:EXAMPLES] for t in TYPES}
    return {
        "profile": str(path.relative_to(REPO)),
        "seconds": round(seconds, 2),
        "overall": overall,
        "meets_goal": overall["share"] <= GOAL["overall"]
        and all(x["share"] <= GOAL["per_type"] for x in per_type.values()),
        "per_type": per_type,
        "per_style": _tally(outcomes, lambda o: o["style"], list(STYLES)),
        "per_style_type": {
            style: {
                t: x
                for t, x in _tally([o for o in outcomes if o["style"] == style], lambda o: o["type"], TYPES).items()
                if x["planted"]
            }
            for style in STYLES
        },
        "per_slot": _tally(outcomes, lambda o: o["slot"]),
        "actions": dict(Counter(out["_action"].to_list())),
        "examples": {t: x for t, x in examples.items() if x},
        "survivors": survivors,
        "partly": partials,
    }


def table(r: dict) -> str:
    """Per type, planted and surviving values under each profile, as a markdown table."""
    profiles = list(r["results"])
    head = "| type | planted | " + " | ".join(f"survived ({p}) | share ({p})" for p in profiles) + " |"
    lines = [head, "|---|---:|" + "---:|---:|" * len(profiles)]
    for t in [*TYPES, "overall"]:
        cells = [r["results"][p]["overall" if t == "overall" else "per_type"] for p in profiles]
        cells = [c if t == "overall" else c[t] for c in cells]
        name = "**overall**" if t == "overall" else t
        lines.append(
            f"| {name} | {cells[0]['planted']:,} | "
            + " | ".join(f"{c['survived']:,} | {c['share']:.1%}" for c in cells)
            + " |"
        )
    return "\n".join(lines)


def main() -> dict:
    start = time.perf_counter()
    recs = records()
    df = frame(recs)
    langs = dict(zip(df["id"].to_list(), df["lang"].to_list()))
    results = {name: measure(path, recs, df) for name, path in PROFILES.items()}
    result = {
        "benchmark": "pii planted values: how many survive the shipped profiles, by type",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "goal": f"share of planted values surviving <= {GOAL['overall']:.0%} overall, <= {GOAL['per_type']:.0%} "
        "for every type",
        "set": {
            "records": len(recs),
            "seed": SEED,
            "styles": {s: sum(r["style"] == s for r in recs) for s in STYLES},
            "templates": {s: len(t) for s, (_, t) in STYLES.items()},
            "records_without_diacritics": sum(r["plain"] for r in recs),
            "planted_by_type": dict(Counter(p["type"] for r in recs for p in r["planted"])),
            "planted_by_slot": dict(Counter(p["slot"] for r in recs for p in r["planted"])),
            "langid_by_style": {
                s: dict(Counter(langs[r["id"]] for r in recs if r["style"] == s).most_common()) for s in STYLES
            },
        },
        "survival": (
            "a planted value survives when its exact string stands in the record's output (text or any chat "
            "turn) with no letter or digit glued to it, or, for PHONE, US_SSN, CREDIT_CARD, VN_NATIONAL_ID and "
            "MRN, when its digits stand inside one run of digits and separators; 'partly' (not counted as "
            "surviving): a multi-word name with a word of it left, an e-mail address with its local part left"
        ),
        "results": results,
        "seconds": round(time.perf_counter() - start, 1),
    }
    RESULT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


if __name__ == "__main__":
    r = main()
    print(table(r))
    for name, x in r["results"].items():
        print(f"\n{name}: " + ", ".join(f"{s} {v['survived']}/{v['planted']}" for s, v in x["per_style"].items()))
