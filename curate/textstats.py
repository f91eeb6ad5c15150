"""Per-document text statistics behind the heuristic quality rules (Gopher, C4, FineWeb).

Statistics are computed first and stored as columns; thresholds live in rules/ and
are applied afterwards, so changing a threshold never needs a recompute.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property

import numpy as np

WORD_STRIP = ".,;:!?\"'()[]{}<>«»“”‘’…-–—*#/\\|"
TERMINAL = (".", "!", "?", '"', "”", "'", "’", "…", ":", ")")
BULLETS = ("•", "-", "*", "·", "‣", "▪", "–", "●", "◦")
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
STOP_WORDS = {
    # Gopher's English list; the Vietnamese list is its analogue of frequent function words.
    "en": frozenset({"the", "be", "to", "of", "and", "that", "have", "with"}),
    "vi": frozenset(
        {"và", "của", "là", "có", "được", "cho", "không", "những", "các", "trong", "người", "này", "với", "một"}
    ),
}
_PARAGRAPH = re.compile(r"\n\s*\n")
_MULT = np.uint64(1_000_003)
_LETTER = re.compile(r"[^\W\d_]")
_DIGIT = re.compile(r"\d")
# What another stage wrote in place of a value: the pii stage's placeholders (<PERSON>, <PERSON_1>,
# <DATE_TIME:2024>, <EMAIL_ADDRESS:3fa9c2>). They are not the author's text, so no ratio counts them: a
# redacted answer is not "shouting" for its <PERSON_1>. They still stand for a value the author wrote, so
# word_count counts each as one word: an extraction task's answer "<PHONE_1>" is no empty answer.
# (Surrogates are written like the value they replace, so they measure as it did.)
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*(?::[^<>\n]{0,64})?>")
# Word-segmented Vietnamese (VnCoreNLP, pyvi: "động_mạch vành") joins a word's syllables with
# underscores; it holds the words of its syllables.
_SEGMENTED = re.compile(r"(?<=[^\W\d_])_(?=[^\W\d_])")
# Sentence punctuation standing alone ("Vì sao bị tiểu đêm ?", French "Quoi ?", tokenised text) belongs
# to the word before it, as in unspaced writing: it is no word of its own. Other symbols standing alone
# ("|", "#", "•") still count, as Gopher's symbol and alphabetic-word rules expect.
_ATTACHED = frozenset(".,;:!?…)(]['\"“”‘’«»")


def without_placeholders(text: str) -> str:
    """`text` with the placeholders another stage wrote taken out (see PLACEHOLDER)."""
    return PLACEHOLDER.sub(" ", text) if "<" in text else text


def unsegmented(text: str) -> str:
    """Word-segmented Vietnamese with its syllables apart: "động_mạch vành" -> "động mạch vành"."""
    return _SEGMENTED.sub(" ", text) if "_" in text else text


def words_of(text: str) -> list[str]:
    """The words a text holds: whitespace-separated, segmented syllables apart, lone punctuation not counted."""
    return [w for w in unsegmented(text).split() if not _ATTACHED.issuperset(w)]


class Doc:
    """Lazily tokenised view of one document, shared by all statistics; placeholders are not measured."""

    def __init__(self, text: str, lang: str | None):
        self.text, self.placeholders = PLACEHOLDER.subn(" ", text) if "<" in text else (text, 0)
        self.lang = lang

    @cached_property
    def words(self) -> list[str]:
        return words_of(self.text)

    @cached_property
    def clean_words(self) -> list[str]:
        return [w for w in (w.strip(WORD_STRIP) for w in (w.lower() for w in self.words)) if w]

    @cached_property
    def word_ids(self) -> np.ndarray:
        # Python's string hash is only compared within one document, so its per-process seed is harmless.
        return np.fromiter(map(hash, self.clean_words), dtype=np.int64, count=len(self.clean_words)).view(np.uint64)

    @cached_property
    def word_lengths(self) -> np.ndarray:
        return np.fromiter(map(len, self.clean_words), dtype=np.int64, count=len(self.clean_words))

    @cached_property
    def lines(self) -> list[str]:
        return [ln.strip() for ln in self.text.split("\n") if ln.strip()]

    @cached_property
    def paragraphs(self) -> list[str]:
        return [p.strip() for p in _PARAGRAPH.split(self.text) if p.strip()]

    @cached_property
    def letters(self) -> int:
        return len(_LETTER.findall(self.text))

    @cached_property
    def uppercase(self) -> int:
        lower = self.text.lower()
        if len(lower) != len(self.text):  # a few letters lower-case to two characters
            return sum(c.isupper() for c in self.text)
        a = np.frombuffer(self.text.encode("utf-32-le"), dtype=np.uint32)
        b = np.frombuffer(lower.encode("utf-32-le"), dtype=np.uint32)
        return int((a != b).sum())


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def _dup_fraction(items: list[str], by_chars: bool) -> float:
    seen: set[str] = set()
    dup = total = 0
    for item in items:
        weight = len(item) if by_chars else 1
        total += weight
        if item in seen:
            dup += weight
        seen.add(item)
    return _ratio(dup, total)


def _ngram_hashes(doc: Doc, n: int) -> np.ndarray:
    """One 64-bit hash per word n-gram (positions 0..len-n), computed without Python loops."""
    ids = doc.word_ids
    hashes = np.zeros(len(ids) - n + 1, dtype=np.uint64)
    for k in range(n):
        hashes = hashes * _MULT + ids[k : len(ids) - n + 1 + k]
    return hashes


def top_ngram_char_fraction(doc: Doc, n: int = 2) -> float:
    """Share of word characters covered by the single most frequent n-gram (Gopher)."""
    if len(doc.clean_words) < n:
        return 0.0
    _, first, counts = np.unique(_ngram_hashes(doc, n), return_index=True, return_counts=True)
    top = counts.max()
    if top < 2:
        return 0.0
    # Ties go to the earliest n-gram in the text, so the result never depends on hash order.
    start = int(first[counts == top].min())
    best_count = int(top)
    gram_chars = int(doc.word_lengths[start : start + n].sum())
    return _ratio(best_count * gram_chars, int(doc.word_lengths.sum()))


def dup_ngram_char_fraction(doc: Doc, n: int = 5) -> float:
    """Share of word characters inside n-grams that occur more than once (Gopher)."""
    if len(doc.clean_words) < n:
        return 0.0
    _, inverse, counts = np.unique(_ngram_hashes(doc, n), return_inverse=True, return_counts=True)
    starts = np.flatnonzero(counts[inverse] > 1)
    if not len(starts):
        return 0.0
    # Mark every word covered by a repeated n-gram: +1 at each start, -1 after its end.
    delta = np.zeros(len(doc.clean_words) + 1, dtype=np.int64)
    np.add.at(delta, starts, 1)
    np.add.at(delta, starts + n, -1)
    covered = np.cumsum(delta[:-1]) > 0
    return _ratio(int(doc.word_lengths[covered].sum()), int(doc.word_lengths.sum()))


def word_run(doc: Doc) -> float:
    """The longest run of one word repeated back to back ("hello hello hello ..."), over words holding a
    letter: a degenerate loop, not emphasis ("very very"), and not a row of numbers in a table."""
    best = run = 0
    last = None
    for w in doc.clean_words:
        run = run + 1 if w == last else 1
        last = w
        if run > best and _LETTER.search(w):
            best = run
    return float(best)


def stop_word_count(doc: Doc) -> float | None:
    stops = STOP_WORDS.get(doc.lang or "")
    if stops is None:
        return None
    return float(len(stops.intersection(doc.clean_words)))


def short_line_ratio(doc: Doc, max_chars: int = 30) -> float:
    return _ratio(sum(len(ln) <= max_chars for ln in doc.lines), len(doc.lines))


STATS: dict[str, Callable[..., float | None]] = {
    "char_count": lambda d: float(len(d.text)),
    "letter_count": lambda d: float(d.letters),
    "word_run": word_run,
    "word_count": lambda d: float(len(d.words) + d.placeholders),
    "line_count": lambda d: float(len(d.lines)),
    "mean_word_length": lambda d: _ratio(int(d.word_lengths.sum()), len(d.clean_words)),
    "symbol_word_ratio": lambda d: _ratio(d.text.count("#") + d.text.count("...") + d.text.count("…"), len(d.words)),
    "ellipsis_line_ratio": lambda d: _ratio(sum(ln.endswith(("...", "…")) for ln in d.lines), len(d.lines)),
    "bullet_line_ratio": lambda d: _ratio(sum(ln.startswith(BULLETS) for ln in d.lines), len(d.lines)),
    "alpha_word_ratio": lambda d: _ratio(sum(bool(_LETTER.search(w)) for w in d.words), len(d.words)),
    "stop_word_count": stop_word_count,
    "dup_line_fraction": lambda d: _dup_fraction(d.lines, by_chars=False),
    "dup_line_char_fraction": lambda d: _dup_fraction(d.lines, by_chars=True),
    "dup_paragraph_fraction": lambda d: _dup_fraction(d.paragraphs, by_chars=False),
    "dup_paragraph_char_fraction": lambda d: _dup_fraction(d.paragraphs, by_chars=True),
    "top_ngram_char_fraction": top_ngram_char_fraction,
    "dup_ngram_char_fraction": dup_ngram_char_fraction,
    "terminal_punct_line_ratio": lambda d: _ratio(sum(ln.endswith(TERMINAL) for ln in d.lines), len(d.lines)),
    "short_line_ratio": short_line_ratio,
    "uppercase_ratio": lambda d: _ratio(d.uppercase, d.letters),
    "digit_ratio": lambda d: _ratio(len(_DIGIT.findall(d.text)), len(d.text)),
    "lorem_ipsum_count": lambda d: float(d.text.lower().count("lorem ipsum")),
    "policy_line_ratio": lambda d: _ratio(
        sum(any(p in ln.lower() for p in POLICY_PHRASES) for ln in d.lines), len(d.lines)
    ),
    "javascript_line_ratio": lambda d: _ratio(sum("javascript" in ln.lower() for ln in d.lines), len(d.lines)),
}
STAT_PARAMS: dict[str, set[str]] = {
    "top_ngram_char_fraction": {"n"},
    "dup_ngram_char_fraction": {"n"},
    "short_line_ratio": {"max_chars"},
}
