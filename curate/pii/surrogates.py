"""The `surrogate` operator: realistic stand-ins in place of placeholders.

A placeholder (`<PERSON_1>`) keeps a record readable but teaches a model to write placeholders; a
surrogate keeps it natural: another name in the record's language (Faker's lists: a Vietnamese name in
Vietnamese text, `Nguyễn Thị Hằng` for `Trần Văn Bình`), a reserved or documentation value where one exists
(phone numbers in the 555-0100–0199 block NANP keeps for fiction, e-mails at example.com, IPs in
192.0.2.0/24, the SSNs 987-65-4320–4329 reserved for advertising, the card networks' test numbers), and
dates shifted by one offset per record (1–180 days either way), so the intervals between a record's dates
survive. A value keeps its form: a given name alone gets a given name, capitals stay capitals.

The same value gets the same surrogate everywhere in a record; with the hash key set
(`hash.key_env`), the same surrogate across the dataset (chosen by an HMAC of the value under the key,
so nobody without the key can link a surrogate to its value). Without the key the choice is seeded by the
record id and the value. Entities without a reserved stand-in (MRN, national ids, secrets, IBANs ...)
get their numbered placeholder.

What a record's surrogates are is kept (`written`) so the residual re-scan does not count them as leaks.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
from datetime import date, timedelta

FAKER_LOCALES = {
    "en": "en_US",
    "vi": "vi_VN",
    "es": "es_ES",
    "fr": "fr_FR",
    "de": "de_DE",
    "it": "it_IT",
    "pt": "pt_BR",
}
CARDS = ["4111 1111 1111 1111", "5555 5555 5555 4444", "3782 822463 10005", "6011 1111 1111 1117"]
MONTHS = "january february march april may june july august september october november december".split()
NUMERIC = re.compile(r"^(\d{1,4})([/.-])(\d{1,2})(?:\2(\d{2,4}))?$")
WRITTEN = re.compile(r"^([A-Za-z]+)\.?\s+(\d{1,2})(st|nd|rd|th)?(?:,?\s+(\d{4}))?$")
WRITTEN_DAY_FIRST = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?([A-Za-z]+)\.?(?:,?\s+(\d{4}))?$")
VI_DATE = re.compile(r"^(ngày\s+)?(\d{1,2})\s+tháng\s+(\d{1,2})(?:(\s*(?:năm|,)\s*)(\d{4}))?$", re.I)


class Surrogates:
    """Stand-in values for one stage: `value(entity, original, record, lang)`."""

    def __init__(self, key: bytes | None, seed: int = 0):
        self.key = key
        self.seed = seed
        self._fakers: dict[str, object] = {}
        self._record: str | None = None
        self._chosen: dict[str | None, dict[tuple[str, str], str]] = {}
        self.written: dict[str | None, set[str]] = {}  # record -> the surrogates written in it

    def reset(self) -> None:
        """A new batch."""
        self._chosen, self.written = {}, {}

    def start(self, record: str) -> None:
        """The record the next values belong to: its own choices and its own date offset."""
        self._record = record

    def _rng(self, *parts: str) -> random.Random:
        material = "\x1f".join(parts).encode()
        if self.key:
            digest = hmac.new(self.key, material, hashlib.sha256).digest()
        else:
            digest = hashlib.sha256(f"{self.seed}\x1f{self._record}\x1f".encode() + material).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def _faker(self, lang: str | None):
        locale = FAKER_LOCALES.get(lang or "en", "en_US")
        if locale not in self._fakers:
            from faker import Faker

            self._fakers[locale] = Faker(locale)
        return self._fakers[locale]

    def value(self, entity: str, original: str, lang: str | None) -> str | None:
        """The stand-in for `original`, or None where the entity has none (a placeholder is written)."""
        key = (entity, " ".join(original.split()).casefold())
        chosen = self._chosen.setdefault(self._record, {})
        if key in chosen:
            return chosen[key]
        make = getattr(self, f"_{entity.lower()}", None)
        if make is None:
            return None
        if entity == "DATE_TIME":  # one offset per record, whatever the key: intervals survive
            made = make(original, self._rng("date offset", self._record or ""), lang)
        else:
            made = make(original, self._rng(entity, key[1]), lang)
        if made is not None:
            chosen[key] = made
            self.written.setdefault(self._record, set()).add(made)
        return made

    # --- per entity -----------------------------------------------------------------------------
    def _person(self, original: str, rng: random.Random, lang: str | None) -> str:
        """A name of the same form; a full name's given name (first in English, last in Vietnamese) and
        family name are the record's stand-ins for those words alone too ("Priya" of "Priya Raman")."""
        fake = self._faker(lang)
        fake.seed_instance(rng.getrandbits(32))
        vietnamese = (lang or "en") == "vi"
        given = fake.first_name_female() if rng.random() < 0.5 else fake.first_name_male()
        words = original.split()
        chosen = self._chosen.setdefault(self._record, {})
        if len(words) == 1:
            made = given
        else:
            first, last = words[0].casefold(), words[-1].casefold()
            given_of, family_of = (last, first) if vietnamese else (first, last)
            given = chosen.get(("PERSON", given_of), given)
            family = chosen.get(("PERSON", family_of)) or fake.last_name()
            made = f"{family} {fake.middle_name()} {given}" if vietnamese else f"{given} {family}"
            chosen.setdefault(("PERSON", given_of), given)
            chosen.setdefault(("PERSON", family_of), family)
            self.written.setdefault(self._record, set()).update((given, family))
        return made.upper() if original.isupper() and len(original) > 1 else made

    def _email_address(self, original: str, rng: random.Random, lang: str | None) -> str:
        fake = self._faker("en")
        fake.seed_instance(rng.getrandbits(32))
        return f"{fake.first_name().lower()}.{fake.last_name().lower()}{rng.randint(1, 99)}@example.com"

    def _phone_number(self, original: str, rng: random.Random, lang: str | None) -> str:
        if original.lstrip().startswith("+84") or (lang == "vi" and original.lstrip().startswith("0")):
            # no block of Vietnamese numbers is reserved for fiction: 0900 555 0NN, the NANP convention's digits
            return f"0900 555 0{rng.randint(0, 99):02d}"
        return f"({rng.randint(201, 989)}) 555-01{rng.randint(0, 99):02d}"  # NANP keeps 555-0100..0199 for fiction

    def _ip_address(self, original: str, rng: random.Random, lang: str | None) -> str:
        return f"192.0.2.{rng.randint(1, 254)}"  # TEST-NET-1 (RFC 5737)

    def _url(self, original: str, rng: random.Random, lang: str | None) -> str:
        return f"https://example.com/{rng.getrandbits(32):08x}"

    def _us_ssn(self, original: str, rng: random.Random, lang: str | None) -> str:
        return f"987-65-432{rng.randint(0, 9)}"  # reserved for advertising by the SSA

    def _credit_card(self, original: str, rng: random.Random, lang: str | None) -> str:
        return rng.choice(CARDS)  # the networks' published test numbers

    def _street_address(self, original: str, rng: random.Random, lang: str | None) -> str:
        fake = self._faker(lang)
        fake.seed_instance(rng.getrandbits(32))
        return fake.street_address()

    def _location(self, original: str, rng: random.Random, lang: str | None) -> str:
        fake = self._faker(lang)
        fake.seed_instance(rng.getrandbits(32))
        return fake.city()

    def _date_time(self, original: str, rng: random.Random, lang: str | None) -> str | None:
        days = rng.randint(1, 180) * rng.choice((-1, 1))
        return shift_date(original.strip(), days, day_first=lang not in (None, "en"))


def _shifted(year: int | None, month: int, day: int, days: int) -> date | None:
    try:
        return date(year or 2000, month, day) + timedelta(days=days)
    except ValueError:
        return None


def shift_date(text: str, days: int, day_first: bool = False) -> str | None:
    """`text` moved by `days`, written the way it was (5/3/2024, 2024-03-05, March 5, 2024, ngày 5 tháng 3);
    None for a form this does not read (a placeholder is written instead). `d/m/y` is read day first where
    `day_first` (Vietnamese) or the first number is over 12, else month first (US English)."""
    if m := NUMERIC.match(text):
        a, sep, b, c = m.group(1), m.group(2), m.group(3), m.group(4)
        if len(a) == 4:  # ISO: year-month-day
            if c is None:
                return None
            d = _shifted(int(a), int(b), int(c), days)
            return d and f"{d.year:04d}{sep}{d.month:02d}{sep}{d.day:02d}"
        month_first = not day_first and int(a) <= 12 and sep == "/"  # 5/3/2024 as the US writes it
        month, day = (int(a), int(b)) if month_first and int(b) <= 31 else (int(b), int(a))
        year = None if c is None else int(c) + (2000 if len(c) == 2 else 0)
        d = _shifted(year, month, day, days)
        if d is None:
            return None
        first, second = (d.month, d.day) if month_first else (d.day, d.month)
        pad_a, pad_b = (2 if a.startswith("0") else 1), (2 if b.startswith("0") else 1)  # 05/03 stays padded
        out = f"{first:0{pad_a}d}{sep}{second:0{pad_b}d}"
        return out if c is None else f"{out}{sep}{d.year % 100:02d}" if len(c) == 2 else f"{out}{sep}{d.year}"
    if m := WRITTEN.match(text):
        month = _month(m.group(1))
        d = month and _shifted(int(m.group(4)) if m.group(4) else None, month, int(m.group(2)), days)
        if not d:
            return None
        name = _month_name(d.month, m.group(1))
        return f"{name} {d.day}" + (f", {d.year}" if m.group(4) else "")
    if m := WRITTEN_DAY_FIRST.match(text):
        month = _month(m.group(2))
        d = month and _shifted(int(m.group(3)) if m.group(3) else None, month, int(m.group(1)), days)
        if not d:
            return None
        return f"{d.day} {_month_name(d.month, m.group(2))}" + (f" {d.year}" if m.group(3) else "")
    if m := VI_DATE.match(text):
        d = _shifted(int(m.group(5)) if m.group(5) else None, int(m.group(3)), int(m.group(2)), days)
        if not d:
            return None
        return f"{m.group(1) or ''}{d.day} tháng {d.month}" + (f"{m.group(4)}{d.year}" if m.group(5) else "")
    return None


def _month(word: str) -> int | None:
    w = word.lower()
    return next((i + 1 for i, name in enumerate(MONTHS) if name.startswith(w) and len(w) >= 3), None)


def _month_name(month: int, like: str) -> str:
    name = MONTHS[month - 1]
    name = name[: len(like)] if len(like) <= 4 and len(like) < len(name) else name
    return name.capitalize() if like[:1].isupper() else name
