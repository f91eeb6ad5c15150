"""Messages that may quote records are not printed: a library's warning or log line raised while a stage
processes records can carry their text (warcio quoted a page's bytes, e-mail included, to stderr).
While a stage runs, each is counted by where it came from (`noted:warning_<Category>_from_<package>`,
`noted:log_<LEVEL>_from_<logger>` in the stage's accounting, printed after the run's summary) and its
text is withheld."""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class _Withhold(logging.Filter):
    def __init__(self, counts: Counter):
        super().__init__()
        self.counts, self.seen = counts, set()

    def filter(self, record: logging.LogRecord) -> bool:
        if id(record) not in self.seen:  # one record passes every handler: counted once
            self.seen.add(id(record))
            self.counts[f"noted:log_{record.levelname}_from_{record.name.split('.')[0]}"] += 1
        return False


def _package(filename: str) -> str:
    """The package a warning was raised in (`spacy`), from its file's path."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages", "lib"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return Path(parts[parts.index(marker) + 1]).stem
    return Path(filename).stem


@contextmanager
def withheld(counts: Counter) -> Iterator[None]:
    """Within the block, warnings and log records reach no output; `counts` gets one per origin."""
    handlers = [h for h in (logging.lastResort, *logging.getLogger().handlers) if h is not None]
    drop = _Withhold(counts)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for handler in handlers:
            handler.addFilter(drop)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(drop)
    for w in caught:
        counts[f"noted:warning_{w.category.__name__}_from_{_package(w.filename)}"] += 1
