"""Whether what the recognizers found is a private person's data, decided per record.

A recognizer sees a string; whether it is personal data depends on the record around it. A first
name in a word problem, a city in a travel tip, a month in a history lesson, a link in an install
command are not anyone's personal data; the same first name next to a phone number, in a signature or
after "my name is", the same city after "I live in", the same date as a patient's admission are.

- **Documentation values** are never personal data, in any profile: the reserved example domains
  (example.com/.org/.net, `.example`, `.test`, `.invalid`, `.localhost`, `localhost`) in e-mails and
  URLs; loopback, unspecified, link-local and documentation IP addresses (127.0.0.1, ::1, 0.0.0.0,
  192.0.2.0/24 ...); placeholder secrets made only of placeholder words (`'your-password'`,
  `YOUR_API_KEY`, `changeme`, `xxxx`).
- **Weak entities** (`identifying.weak`: names, places, dates, URLs by default) are personal data only
  in an *identifying* record, one that ties them to a person:
  - an **anchor** found in it: a contact detail, a government, account or healthcare number, a street
    address with a number (`identifying.anchors`);
  - a **cue**: a self-introduction ("my name is", "tên tôi là"), a salutation or a signature, a role
    before a name ("Patient John", "khách hàng: Lan"), a form label (date of birth, "ngày sinh"), a
    person's home ("I live in", "trú tại") (`identifying.cues`);
  - a name together with a day-level date or a place in the same record (one person's whereabouts).
  Also weak: an address without a number (a ward or district alone is a place), a private-range IP.
- **Full names** (two or more capitalised words: a given and a family name) are personal data without
  any of that (`full_names: always`), unless a public role sits next to them ("President Abraham
  Lincoln", "nhà thơ Nguyễn Du", "who was ..."): a public figure in general knowledge.

Decided once per record over all its fields and turns, so a name is replaced everywhere or nowhere.
Profiles that must stay strict (HIPAA Safe Harbor: every name and date of the individual) set
`identifying.enabled: false`.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Sequence

import regex
from pydantic import Field

from curate.schema import StrictModel

# reserved (RFC 2606/6761) and placeholder host names; the gates' independent scan skips them too
DOC_HOSTS = (
    r"example\.(?:com|org|net)|[A-Za-z0-9-]+\.(?:example|test|invalid|localhost)|localhost|"
    r"(?:your|my)-?(?:domain|company|site|website|server|host|email|mail|app)\.(?:com|org|net)"
)
DOC_DOMAIN = regex.compile(rf"(?:^|\.)(?:{DOC_HOSTS})\.?$", regex.I)
URL_HOST = regex.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:[^@/\s]*@)?(\[[^\]]+\]|[^:/?#\s]+)", regex.I)
WORD = regex.compile(r"[A-Za-z]+|\d+")
# no private person's mailbox: what exercises write (example@gmail.com, john.doe@...) and role accounts
EXAMPLE_LOCAL = frozenset(
    "example test user username name email someone somebody yourname your.name your_name youremail your.email "
    "john.doe jane.doe johndoe janedoe john_doe jane_doe foo bar info support sales contact admin noreply no-reply "
    "hello help office team billing abuse postmaster webmaster hr jobs careers press media marketing".split()
)
SECRET_NOUNS = frozenset("password passwd pass pwd secret key token apikey api access auth".split())  # "password" alone
TITLES = frozenset("mr mrs ms miss dr prof sr sra jr st mx sir madam".split())
CAPITALISED = regex.compile(r"^\p{Lu}[\p{L}\p{M}'’.-]*$")


def _faker_names(attrs: tuple[str, ...]) -> frozenset[str]:
    """The names Faker's person providers list under `attrs`, in any of its locales, lower-cased."""
    import importlib
    import pkgutil

    import faker.providers.person as person

    names: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"{person.__name__}.{module.name}").Provider
        for attr in attrs:
            value = getattr(provider, attr, None)
            if isinstance(value, dict | list | tuple):
                names.update(str(n).lower() for n in value)
    return frozenset(names)


@functools.lru_cache(maxsize=1)
def given_names() -> frozenset[str]:
    """The given names Faker knows in any of its locales (about 30,000), lower-cased."""
    return _faker_names(("first_names", "first_names_male", "first_names_female"))


@functools.lru_cache(maxsize=1)
def family_names() -> frozenset[str]:
    """The family names Faker knows in any of its locales, lower-cased."""
    return _faker_names(("last_names", "last_names_male", "last_names_female"))


NAME_PAIR = regex.compile(
    r"(?<![\p{L}\p{M}\d@._-])\p{Lu}[\p{Ll}\p{M}'’-]+(?:[ \t]+\p{Lu}\.)?"  # a given name, perhaps an initial
    r"(?:[ \t]+(?:(?:da|de|del|della|di|do|dos|das|du|van|von|der|den|ter|le|la|bin|ibn|al|el)[ \t]+)?"
    r"\p{Lu}[\p{Ll}\p{M}'’-]+){1,2}(?![\p{L}\p{M}\d@_-])"  # one or two capitalised words (da Vinci)
)
NAME_PAIR_RECOGNIZER = "given_name_pair"
GIVEN_NAME_RECOGNIZER = "given_name"  # one capitalised word, a given name: "Pt Amara reports", "Found by Elena"
WORD_CAPITALISED = regex.compile(r"(?<![\p{L}\p{M}\d@._-])\p{Lu}[\p{Ll}\p{M}'’-]+(?![\p{L}\p{M}\d@_-])")
# "Castillo, Elena": a family name, a comma, a given name
FAMILY_FIRST = regex.compile(
    r"(?<![\p{L}\p{M}\d@._-])\p{Lu}[\p{Ll}\p{M}'’-]+,"  # the family name and its comma
    r"[ \t]+(\p{Lu}[\p{Ll}\p{M}'’-]+)(?:[ \t]+\p{Lu}\.)?(?![\p{L}\p{M}\d@_-])"  # the given name, perhaps an initial
)
OLD_YEAR = regex.compile(r"\b(?:1[0-8]\d{2}|19[0-4]\d)\b|\b\d{1,3}\s*(?:AD|BC|BCE|CE)\b")  # history, not a life
NOT_NAMES = frozenset(
    "january february march april may june july august september october november december monday tuesday "
    "wednesday thursday friday saturday sunday".split()
)


def name_recognizers(languages: frozenset[str]) -> list:
    """Presidio recognizers for names from Faker's given-name lists, which the small NER model misses
    beside an e-mail address or in a clinical note: a given name followed by one or two capitalised words
    ("Bartholomew Quince"), a family name and a given name ("Castillo, Elena"), a given name alone
    ("Pt Amara"). Their matches are weak: redacted only in an identifying record (so "Victoria Falls" in
    a travel tip stays)."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    names = given_names()

    class NamePairs(EntityRecognizer):
        def load(self) -> None:
            pass

        gated = True  # the analyzer asks applies() before running the entity's recognizers

        scope: frozenset[str] = frozenset()  # the text's languages (set by the Analyzer before each text)

        def applies(self, text: str) -> bool:
            if not self.scope or self.scope - languages:  # Vietnamese text has its own name patterns
                return False
            return any(m.group().split()[0].lower() in names for m in NAME_PAIR.finditer(text, overlapped=True))

        def analyze(self, text, entities, nlp_artifacts=None):
            if not self.applies(text):
                return []
            out: list = []
            for m in NAME_PAIR.finditer(text, overlapped=True):  # "Thanks Priya Raman": from Priya on
                if m.group().split()[0].lower() in names and not any(m.start() < r.end for r in out):
                    out.append(RecognizerResult("PERSON", m.start(), m.end(), 0.55))
            for m in FAMILY_FIRST.finditer(text):
                if m.group(1).lower() in names and not any(m.start() < r.end and r.start < m.end() for r in out):
                    out.append(RecognizerResult("PERSON", m.start(), m.end(), 0.55))
            return out

    class GivenNames(EntityRecognizer):
        """A single capitalised given name (not a stop word, a month or a weekday): weak, so it is
        redacted only in an identifying record ("Pt Amara reports", "customer Rajesh told to reset")."""

        gated = True
        scope: frozenset[str] = frozenset()

        def load(self) -> None:
            pass

        def applies(self, text: str) -> bool:
            return bool(self.scope) and not self.scope - languages

        def analyze(self, text, entities, nlp_artifacts=None):
            if not self.applies(text):
                return []
            return [
                RecognizerResult("PERSON", m.start(), m.end(), 0.5)
                for m in WORD_CAPITALISED.finditer(text)
                if (w := m.group().lower()) in names and w not in stop and w not in NOT_NAMES
            ]

    from spacy.lang.en.stop_words import STOP_WORDS as stop

    return [
        NamePairs(supported_entities=["PERSON"], name=NAME_PAIR_RECOGNIZER),
        GivenNames(supported_entities=["PERSON"], name=GIVEN_NAME_RECOGNIZER),
    ]


class IdentifyingRule(StrictModel):
    """When a found value is a private person's data (see this module's docstring)."""

    enabled: bool = True
    documentation: bool = Field(True, description="example domains, reserved IPs, placeholder secrets are kept")
    weak: list[str] = Field(
        default_factory=lambda: ["PERSON", "LOCATION", "DATE_TIME", "URL"],
        description="entities redacted only in an identifying record",
    )
    anchors: list[str] = Field(default_factory=list, description="entities whose presence makes a record identifying")
    cues: list[str] = Field(
        default_factory=list,
        description="regexes (any case; \\L<terms>); a match anywhere in a record makes it identifying",
    )
    named_cues: list[str] = Field(
        default_factory=list,
        description="cues with a (?P<name>...) group: they count only where it holds a given name or a family name "
        '("Patient John", not "PT Serif" or "Customer Rating")',
    )
    script_cues: dict[str, list[str]] = Field(
        default_factory=dict, description="cues looked for only in texts holding that script's letters (nlp.scripts)"
    )
    full_names: str = Field("always", pattern="^(always|context)$")
    name_pairs: bool = Field(
        True,
        description="also find names from Faker's given-name lists (weak): Bartholomew Quince, Castillo, Elena, Amara",
    )
    public: list[str] = Field(
        default_factory=list, description="regexes: a full name next to one is a public figure's, kept"
    )
    public_window: int = Field(40, ge=0, description="characters either side of a full name searched for `public`")
    placeholder_markers: list[str] = Field(
        default_factory=list, description="a placeholder secret holds one of these words (your, example, changeme)"
    )
    surnames: list[str] = Field(
        default_factory=list, description="family names written first (\\L<terms> allowed): Nguyễn Văn Hùng"
    )
    placeholder_words: list[str] = Field(
        default_factory=list, description="a secret made only of these words (and digits 0-9 runs) is a placeholder"
    )


def _host(value: str) -> str:
    m = URL_HOST.match(value.strip())
    return (m.group(1).strip("[]") if m else value).lower()


def reserved_ip(value: str) -> bool:
    """Loopback, unspecified, link-local, multicast or documentation: nobody's address."""
    try:
        ip = ipaddress.ip_address(value.strip().strip("[]").split("%")[0])
    except ValueError:
        return False
    doc = any(
        ip in ipaddress.ip_network(n)
        for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
        if ip.version == ipaddress.ip_network(n).version
    )
    return doc or ip.is_loopback or ip.is_unspecified or ip.is_link_local or ip.is_multicast


def private_ip(value: str) -> bool:
    try:
        return ipaddress.ip_address(value.strip().strip("[]").split("%")[0]).is_private
    except ValueError:
        return False


class Judge:
    """Keeps, per record, the spans that are a private person's data."""

    def __init__(
        self,
        rule: IdentifyingRule,
        expand: Callable[[str], str] = lambda p: p,
        terms: Callable[[str], list[str]] = lambda entry: [entry],
        scripts: dict[str, str] | None = None,
    ):
        scripts = scripts or {}
        self.rule = rule
        self.weak = frozenset(rule.weak)
        self.anchors = frozenset(rule.anchors)
        flags = regex.IGNORECASE | regex.MULTILINE
        from curate.pii.analyzer import Gate, GateSet

        # one gate each (an alternation of them all is tried at every position, several times slower); one
        # Hyperscan pass per text says which may match
        self.cues = [Gate([expand(c)], flags) for c in rule.cues]
        self.script_cues = [
            (regex.compile(scripts[name]), [Gate([expand(c)], flags) for c in cues])
            for name, cues in rule.script_cues.items()
            if name in scripts
        ]
        self.named_cues = [Gate([expand(c)], flags) for c in rule.named_cues]
        GateSet([*self.cues, *self.named_cues, *(g for _, gates in self.script_cues for g in gates)])
        self._cued: dict[str, bool] = {}  # text -> whether a cue is in it (asked before and after NER)
        self.public = regex.compile("|".join(f"(?:{expand(c)})" for c in rule.public), flags) if rule.public else None
        self.placeholder_words = frozenset(w.lower() for w in rule.placeholder_words)
        self.placeholder_markers = frozenset(w.lower() for w in rule.placeholder_markers)
        self.surnames = frozenset(w.lower() for entry in rule.surnames for w in terms(entry))

    # --- documentation values ---------------------------------------------------------------
    def documentation(self, entity: str, value: str) -> bool:
        if not self.rule.documentation:
            return False
        if entity == "EMAIL_ADDRESS":
            local, _, domain = value.rpartition("@")
            return (
                bool(DOC_DOMAIN.search(domain.strip(".>")))
                or local.lower() in EXAMPLE_LOCAL
                or (len(local) <= 1 and len(domain.split(".")[0]) <= 2)  # a@d.co
            )
        if entity == "URL":
            host = _host(value)
            return bool(DOC_DOMAIN.search(host)) or reserved_ip(host)
        if entity == "IP_ADDRESS":
            return reserved_ip(value)
        if entity == "SECRET":
            return self.placeholder_secret(value)
        return False

    def placeholder_secret(self, value: str) -> bool:
        """`'your-password'`, `YOUR_API_KEY_HERE`, `<token>`, `xxxxxx`, `********`, `changeme123`; not
        `password123`, `abc12345` or `admin`, which people do use."""
        stripped = value.strip("'\"`<>[]{}()")
        if not stripped or len(set(stripped.lower())) <= 2:
            return True  # xxxx, ****, 0000
        words = [w.lower() for w in WORD.findall(stripped)]
        if not words or not self.placeholder_words:
            return False
        # every word a placeholder word, one of them saying so ("your", "example", "changeme"): "password123"
        # or "admin" alone may well be someone's real, weak password
        if not all(w in self.placeholder_words or (w.isdigit() and w in "0123456789") for w in words):
            return False
        return any(w in self.placeholder_markers for w in words) or all(w in SECRET_NOUNS for w in words)

    # --- the record -------------------------------------------------------------------------
    def weak_span(self, entity: str, value: str, recognizer: str = "") -> bool:
        if recognizer.startswith("deny_list"):
            return False  # the user's own list: always
        if entity in self.weak:
            return True
        if entity == "STREET_ADDRESS":
            return not any(c.isdigit() for c in value)  # a ward or a district alone: a place
        if entity == "IP_ADDRESS":
            return private_ip(value)
        return False

    def full_name(self, value: str) -> bool:
        """Two or more capitalised words that start with a given name (or an initial) or a family name
        written first: "Jennifer Alvarez", "J. Smith", "Nguyễn Văn Hùng"; not "Merge Sort" or
        "Format String Syntax", which the NER model also tags."""
        words = [w for w in value.replace(",", " ").split() if w.rstrip(".").lower() not in TITLES]
        if sum(1 for w in words if CAPITALISED.match(w) and len(w.rstrip(".")) > 1) < 2:
            return False
        first = words[0].rstrip(".'’s").lower()
        return len(first) == 1 or first in given_names() or first in self.surnames

    def keep(self, texts: Sequence[str], found: Sequence[list]) -> list[list]:
        """`found[i]`: the spans of `texts[i]` (objects with start, end, entity), all texts of one
        record. Returns the spans to redact, per text (an Exception in place of a list is passed on)."""
        values = [
            [(s, t[s.start : s.end]) for s in spans] if isinstance(spans, list) else spans
            for t, spans in zip(texts, found)
        ]
        values = [
            [(s, v) for s, v in sv if not self.documentation(s.entity, v)] if isinstance(sv, list) else sv
            for sv in values
        ]
        if not self.rule.enabled:
            return [[s for s, _ in sv] if isinstance(sv, list) else sv for sv in values]
        spans = [(s, v) for sv in values if isinstance(sv, list) for s, v in sv]
        if self.identifying(texts, spans):
            return [[s for s, _ in sv] if isinstance(sv, list) else sv for sv in values]
        out = []
        for sv in values:
            if not isinstance(sv, list):
                out.append(sv)
                continue
            out.append([s for s, v in sv if not self.weak_span(s.entity, v, s.recognizer) or self._named(texts, s, v)])
        return out

    def identifying(self, texts: Sequence[str], spans: list[tuple]) -> bool:
        """Whether the record ties what it holds to a person (anchors, cues, a name with a day or a place)."""
        if any(s.entity in self.anchors and not self.weak_span(s.entity, v) for s, v in spans):
            return True
        if any(self.cued(t) for t in texts if t):
            return True
        people = [
            (s, v) for s, v in spans if s.entity == "PERSON" and self._a_name(s, v) and not self._public_value(texts, v)
        ]
        if people:
            # a day of a private person's life: beside a first name, not a date of history (a year before 1950);
            # beside a private full name, any day; never beside a public figure's name
            days = [v for s, v in spans if s.entity == "DATE_TIME" and any(c.isdigit() for c in v)]
            full = any(self.full_name(v) for s, v in people)
            dated = any(full or not OLD_YEAR.search(v) for v in days)
            placed = any(s.entity == "STREET_ADDRESS" for s, v in spans)
            return dated or placed
        return False

    def cued(self, text: str) -> bool:
        """Whether a cue is in a text (remembered: a record is judged before and after NER)."""
        known = self._cued.get(text)
        if known is None:
            known = (
                any(g.holds(text) for g in self.cues)
                or any(self._names(p, text) for g in self.named_cues for p in g.candidates(text))
                or any(letters.search(text) and any(g.holds(text) for g in cues) for letters, cues in self.script_cues)
            )
            if len(self._cued) > 20_000:
                self._cued.clear()
            self._cued[text] = known
        return known

    def _a_name(self, span, value: str) -> bool:
        """Whether a found "person" reads as one: a pattern found it (a title, a role, a Vietnamese name's
        structure), or a word of it is a given or family name Faker knows ("Jaws", "Satisfaction" are
        the NER model's, not names)."""
        if span.recognizer not in ("SpacyRecognizer", ""):
            return True
        given, family = given_names(), family_names()
        words = [w.strip(".,:;'’").lower() for w in value.split()]
        return any(w in given or w in family or w in self.surnames for w in words if w not in TITLES)

    def _names(self, pattern, text: str) -> bool:
        given, family = given_names(), family_names()
        for m in pattern.finditer(text):
            word = m.group("name").split()[0].rstrip(".,:;").lower()
            if word in given or word in family or word in self.surnames:
                return True
        return False

    def _named(self, texts: Sequence[str], span, value: str) -> bool:
        """A full name outside an identifying record: kept (redacted) unless a public role is beside it."""
        if span.entity != "PERSON" or self.rule.full_names != "always" or not self.full_name(value):
            return False
        if span.recognizer in (NAME_PAIR_RECOGNIZER, GIVEN_NAME_RECOGNIZER):
            return False  # found by the name list alone: a name only in an identifying record
        return not self._public_value(texts, value)

    def _public_value(self, texts: Sequence[str], value: str) -> bool:
        """Whether a public role stands beside any occurrence of a name in the record ("the famous film
        director, Steven Spielberg" makes every other "Steven Spielberg" of the record a public figure's)."""
        if self.public is None or len(value) < 3:
            return False
        w = self.rule.public_window
        for text in texts:
            start = text.find(value)
            while start >= 0:
                end = start + len(value)
                if self.public.search(text[max(0, start - w) : start] + " … " + text[end : end + w]):
                    return True
                start = text.find(value, end)
        return False


POSSESSIVE = regex.compile(r"['’]s$")


def spread(texts: Sequence[str], found: Sequence[list], make: Callable) -> list[list]:
    """Every value redacted somewhere in a record, redacted wherever else it occurs in the record (as
    written or in capitals, as a whole word): the small NER model finds a name in the question and misses
    it in the answer, and question and answer must still agree. A full name's first and last words count
    too ("Jennifer" and "Alvarez" of "Jennifer Alvarez", "Tuấn" of "Nguyễn Văn Tuấn"), and a person's name
    loses its possessive 's ("Derek Olsen's" is "Derek Olsen"). `make(start, end, entity, score,
    recognizer)` builds a span."""
    values: dict[str, tuple[str, float]] = {}
    trimmed = []
    for text, spans in zip(texts, found):
        if not isinstance(spans, list):
            trimmed.append(spans)
            continue
        own = []
        for s in spans:
            end = s.end
            if s.entity == "PERSON" and POSSESSIVE.search(text[s.start : s.end]) and s.end - s.start > 3:
                end -= 2
            own.append(make(s.start, end, s.entity, s.score, s.recognizer) if end != s.end else s)
            value = " ".join(text[s.start : end].split())
            if len(value) >= 3 and any(c.isalnum() for c in value):
                values.setdefault(value, (s.entity, s.score))
            words = [w for w in value.split() if w.rstrip(".").lower() not in TITLES]
            if s.entity == "PERSON" and len(words) >= 2:
                for part in (words[0], words[-1]):
                    if len(part) >= 3 and CAPITALISED.match(part) and part[-1].isalpha():
                        values.setdefault(part, (s.entity, s.score))
        trimmed.append(own)
    if not values:
        return trimmed
    # as written, or in capitals (a signature block); not in lower case, where "Salary" the NER model took
    # for a name is the word salary
    forms = {form for v in values for form in (v, v.upper())}
    pattern = regex.compile(
        r"(?<![\w@.-])(?:"
        + "|".join(r"\s+".join(map(regex.escape, v.split())) for v in sorted(forms, key=len, reverse=True))
        + r")(?![\w@-])"
    )
    out = []
    for text, spans in zip(texts, trimmed):
        if not isinstance(spans, list) or not text:
            out.append(spans)
            continue
        extra = []
        for m in pattern.finditer(text):
            if any(s.start < m.end() and m.start() < s.end for s in spans):
                continue
            found_value = " ".join(m.group().split())
            entity, score = values.get(found_value) or next(
                (values[v] for v in values if v.upper() == found_value), (None, 0.0)
            )
            if entity is not None:
                extra.append(make(m.start(), m.end(), entity, score, "same value in the record"))
        out.append(sorted(spans + extra, key=lambda s: (s.start, s.end)) if extra else spans)
    return out
