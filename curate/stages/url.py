"""`url`: drop (or flag) records by where they came from — domain and URL blocklists kept as plain
files, banned words and substrings of the URL, and allow-lists that override them all.

A blocklist is a text file, one entry a line (`#` starts a comment): a domain blocks itself and every
subdomain (`example.com` blocks `ads.example.com`, not `badexample.com`); an entry with a path blocks
that URL (scheme, `www.`, the fragment and a trailing slash ignored). Banned words match whole tokens of
the URL, split at everything but letters and digits (`sex` catches `/sex-videos/`, not `sussex.ac.uk`);
banned substrings match anywhere in the lower-cased URL. A record is rejected by the first list it
matches, in the order blocklists, banned words, banned substrings, with the list and the entry as the
reason; an allow-list match keeps it whatever the others say. The summary counts, per list, the records
it matched and those an allow-list kept against a block.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from curate.errors import ConfigError
from curate.schema import StrictModel
from curate.stages.base import DROP, KEEP, QUARANTINE, Stage, StageContext, rejected_by, with_decisions

_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*://")
_OTHER_URI = re.compile(r"^[a-z][a-z0-9+.\-]*:(?!\d)")  # mailto:, javascript:, data: (a host:port is not one)
_HOST = re.compile(r"^(?:[^@/?#]*@)?([^:/?#\s]+)(?::\d*)?(.*)$")
_VALID_HOST = re.compile(r"^[\w-]+(?:\.[\w-]+)+$")
_TOKEN = re.compile(r"[^\W_]+")


class ListFile(StrictModel):
    name: str  # the rule of a record it blocks is url:<name>
    path: str  # one entry a line: a domain (and its subdomains) or a URL; relative to the rules file


class UrlRules(StrictModel):
    column: str = "url"  # WARC inputs have it; JSONL inputs keep theirs with `columns: [url]`
    blocklists: list[ListFile] = Field(default_factory=list)
    # list name -> words; a URL token equal to one (case-insensitive) blocks the record
    banned_words: dict[str, list[str]] = Field(default_factory=dict)
    # list name -> substrings of the lower-cased URL
    banned_substrings: dict[str, list[str]] = Field(default_factory=dict)
    allowlists: list[ListFile] = Field(default_factory=list)  # matches are kept whatever the rest says
    missing: Literal["keep", "quarantine"] = "keep"  # a record without a URL, or one that is not a web URL
    action: Literal["drop", "flag"] = "drop"  # flag: keep the record, name the list in `url_list`

    @field_validator("banned_words", "banned_substrings")
    @classmethod
    def _entries(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, entries in value.items():
            if not entries or any(not e.strip() for e in entries):
                raise ValueError(f"list '{name}': a list needs entries, and an entry needs characters")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> "UrlRules":
        names = self.names()
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"list names must be unique across blocklists, words, substrings and allowlists: {repeated}"
            )
        return self

    def names(self) -> list[str]:
        """Every list, in the order they are checked (allow-lists first)."""
        return [
            *(a.name for a in self.allowlists),
            *(b.name for b in self.blocklists),
            *self.banned_words,
            *self.banned_substrings,
        ]


class UrlSummary(StrictModel):
    records: int = 0
    missing: int = 0  # no URL, or not a web URL
    matched: dict[str, int] = Field(default_factory=dict)  # per list, the records it matched (all lists)
    kept_by_allowlist: dict[str, int] = Field(default_factory=dict)  # per allow-list, kept against a block


def split_url(url: str) -> tuple[str, str] | None:
    """(host, the rest: path, query) of a web URL, lower-cased, without scheme, user, port or fragment;
    None when it names no host with a dot."""
    low = url.strip().lower()
    if _SCHEME.match(low):
        low = _SCHEME.sub("", low, count=1)
    elif _OTHER_URI.match(low):
        return None
    m = _HOST.match(low)
    if m is None:
        return None
    host = m.group(1).rstrip(".")
    if not _VALID_HOST.match(host):
        return None
    return host, m.group(2).split("#", 1)[0]


def url_key(host: str, rest: str) -> str:
    """How a URL is compared with a listed URL: no `www.`, no trailing slash."""
    return host.removeprefix("www.") + rest.rstrip("/")


def _suffixes(host: str) -> list[str]:
    parts = host.split(".")
    return [".".join(parts[i:]) for i in range(len(parts))]


class _Entries:
    """One list file: its domains and its URLs."""

    def __init__(self, name: str, lines: list[str]):
        self.name = name
        self.domains: set[str] = set()
        self.urls: set[str] = set()
        for line in lines:
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            parsed = split_url(entry if "://" in entry else "http://" + entry)
            if parsed is None:
                continue
            host, rest = parsed
            if rest.strip("/"):
                self.urls.add(url_key(host, rest))
            else:
                self.domains.add(host.removeprefix("www."))  # www.example.com: the site, example.com

    def match(self, host: str, rest: str) -> str | None:
        for suffix in _suffixes(host):
            if suffix in self.domains:
                return suffix
        key = url_key(host, rest)
        return key if key in self.urls else None


class UrlStage(Stage):
    stage = "url"
    Rules = UrlRules
    Summary = UrlSummary

    @classmethod
    def requires(cls, rules: UrlRules) -> list[str]:
        return [rules.column]

    @classmethod
    def produces(cls, rules: UrlRules) -> list[str]:
        return ["url_list"]

    @classmethod
    def describe(cls, rules: UrlRules, context: StageContext) -> dict:
        """The list files' contents belong in the cache key: a new blocklist, new decisions."""
        return {
            "list_files": {
                **context.file_hashes([b.path for b in rules.blocklists], "blocklists"),
                **context.file_hashes([a.path for a in rules.allowlists], "allowlists"),
            }
        }

    @classmethod
    def criteria(cls, rules: UrlRules, rejected: pl.DataFrame) -> list[tuple[str, UrlRules]]:
        out = []
        for b in rules.blocklists:
            if rejected_by(rejected, f"url:{b.name}"):
                out.append(
                    (
                        f"url blocklist {b.name}",
                        rules.model_copy(update={"blocklists": [x for x in rules.blocklists if x.name != b.name]}),
                    )
                )
        for field in ("banned_words", "banned_substrings"):
            for name in getattr(rules, field):
                if rejected_by(rejected, f"url:{name}"):
                    rest = {k: v for k, v in getattr(rules, field).items() if k != name}
                    out.append((f"url {field.replace('_', ' ')} {name}", rules.model_copy(update={field: rest})))
        return out

    def _read(self, lists: list[ListFile], key: str) -> list[_Entries]:
        out = []
        for item in lists:
            path = self.context.path(item.path, key)
            if not path.is_file():
                raise ConfigError(f"url.{key}: {item.name}: file not found: {path} (relative to the rules file)")
            out.append(_Entries(item.name, path.read_text(encoding="utf-8", errors="replace").splitlines()))
        return out

    @cached_property
    def blocks(self) -> list[_Entries]:
        return self._read(self.rules.blocklists, "blocklists")

    @cached_property
    def allows(self) -> list[_Entries]:
        return self._read(self.rules.allowlists, "allowlists")

    def setup(self) -> None:
        self.blocks, self.allows  # noqa: B018 - read the list files once per worker, and fail before any batch

    @cached_property
    def words(self) -> dict[str, set[str]]:
        return {name: {w.strip().lower() for w in words} for name, words in self.rules.banned_words.items()}

    @cached_property
    def substrings(self) -> dict[str, re.Pattern]:
        return {
            name: re.compile("|".join(re.escape(s.strip().lower()) for s in sorted(subs, key=len, reverse=True)))
            for name, subs in self.rules.banned_substrings.items()
        }

    def _blocks(self, host: str, rest: str, low: str) -> list[tuple[str, str]]:
        """Every block list the URL matches, in check order, with what matched."""
        found = []
        for entries in self.blocks:
            if (hit := entries.match(host, rest)) is not None:
                found.append((entries.name, f"{'domain' if '/' not in hit else 'URL'} {hit}"))
        tokens = set(_TOKEN.findall(low)) if self.words else set()
        for name, words in self.words.items():
            if hit := sorted(tokens & words):
                found.append((name, f"word {hit[0]}"))
        for name, pattern in self.substrings.items():
            if m := pattern.search(low):
                found.append((name, f"substring {m.group(0)}"))
        return found

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        r = self.rules
        names = r.names()
        summary = UrlSummary(matched=dict.fromkeys(names, 0), kept_by_allowlist={a.name: 0 for a in self.allows})
        values = df[r.column].cast(pl.Utf8).to_list() if r.column in df.columns else [None] * df.height
        listed, actions, rules, reasons = [], [], [], []
        for value in values:
            parsed = split_url(value) if isinstance(value, str) else None
            if parsed is None:
                summary.missing += 1
                listed.append(None)
                q = r.missing == "quarantine"
                actions.append(QUARANTINE if q else KEEP)
                rules.append("url:missing" if q else None)
                shown = (
                    "no URL" if not isinstance(value, str) or not value.strip() else f"not a web URL: {value[:80]!r}"
                )
                reasons.append(f"{r.column}: {shown}" if q else None)
                continue
            host, rest = parsed
            allowed = [(a.name, hit) for a in self.allows if (hit := a.match(host, rest)) is not None]
            blocked = self._blocks(host, rest, value.strip().lower())
            for name, _ in allowed + blocked:
                summary.matched[name] += 1
            if allowed and blocked:
                summary.kept_by_allowlist[allowed[0][0]] += 1
            first = blocked[0] if blocked and not allowed else None
            listed.append(first[0] if first else None)
            drop = first is not None and r.action == "drop"
            actions.append(DROP if drop else KEEP)
            rules.append(f"url:{first[0]}" if drop else None)
            reasons.append(f"{host}: {first[1]} is on list {first[0]}" if drop else None)
        summary.records = df.height
        self.summary = summary
        return with_decisions(df.with_columns(pl.Series("url_list", listed, dtype=pl.Utf8)), actions, rules, reasons)
