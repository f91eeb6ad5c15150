"""What a record holds for the `pii` stage to scan, and how the redacted values are written back.

A record's strings are listed as jobs `(row, slot, string)`: its text, the content of its chat turns of
the configured roles (and of a preference pair's answers `chosen`/`rejected`, a KTO `completion`), its
other string columns, the string values inside its `meta` at any depth and its id columns (`jobs`).
`Edits` holds the changed values and writes them back as one frame.
"""

from __future__ import annotations

import re

import orjson
import polars as pl

from curate.decisions import REJECTED_LEAD
from curate.pii.rules import PiiRules
from curate.records import TURN_COLUMNS

WITHHELD = "<WITHHELD: PII scan failed>"

STRING_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"?')  # a JSON string, possibly cut off by the line end

# Columns holding record ids: an id with personal data becomes a keyed hash, the same in each.
ID_COLUMNS = ("id", "dup_cluster", "dup_of", "matched_id")
# String columns the stages write (a decision, a rule name): curate's own, never scanned as fields
GENERATED = frozenset(
    {"lang", "lang_basis", "split", "phrase_list", "url_list", "exact_key", "matched_in", "pair_issues"}
)
# String columns that are structure, not record content: never scanned as fields.
NOT_SCANNED = frozenset({"text", *TURN_COLUMNS, "meta", "src_file", "raw", *GENERATED, *REJECTED_LEAD})
# curate's derived ids (records.derived_id: 16 hex characters) are hashes: read as one, not as a card or a
# phone number (one in about 1,800 is all digits by chance, and a tenth of those pass the Luhn check)
DERIVED_ID = re.compile(r"[0-9a-f]{16}")


def meta_leaves(meta: str | None):
    """(parsed meta, [(container, key, string value)]) for the string values inside a meta JSON
    object, at any depth; None where there is no meta object."""
    if not meta:
        return None
    try:
        doc = orjson.loads(meta)
    except orjson.JSONDecodeError:
        return None
    leaves: list = []

    def walk(node) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if isinstance(value, str) and value.strip():
                leaves.append((node, key, value))
            elif isinstance(value, (dict, list)):
                walk(value)

    walk(doc)
    return doc, leaves


class Edits:
    """Mutable copies of a frame's scanned fields, written back as one frame."""

    def __init__(self, df: pl.DataFrame, metas: list):
        self.df, self.metas, self.changed_meta = df, metas, False
        self.columns: dict[str, list] = {}

    def _column(self, name: str) -> list:
        if name not in self.columns:
            values = self.df[name].to_list()
            self.columns[name] = (
                [[dict(m) for m in v] if v is not None else None for v in values] if name in TURN_COLUMNS else values
            )
        return self.columns[name]

    def put(self, row: int, slot: tuple, value: str) -> None:
        kind = slot[0]
        if kind == "text":
            self._column("text")[row] = value
        elif kind == "msg":
            self._column("messages")[row][slot[1]]["content"] = value
        elif kind == "turn":  # a turn of an answer column: ("turn", column, index)
            self._column(slot[1])[row][slot[2]]["content"] = value
        elif kind in ("col", "id"):
            self._column(slot[1])[row] = value
        else:  # meta
            container, key, _ = self.metas[row][1][slot[1]]
            container[key] = value
            self.changed_meta = True

    def withhold(self, row: int, id_token) -> None:
        """A record the analyser failed on: every scanned field withheld, ids replaced."""
        for name in self.df.columns:
            if name in TURN_COLUMNS:
                for msg in self._column(name)[row] or []:
                    msg["content"] = WITHHELD
            elif name == "meta":
                self._column(name)[row] = None
            elif (
                self.df.schema[name] == pl.Utf8
                and name not in NOT_SCANNED - {"text"}
                and self.df[name][row] is not None
            ):
                self._column(name)[row] = id_token(self.df[name][row]) if name in ID_COLUMNS else WITHHELD

    def frame(self) -> pl.DataFrame:
        if self.changed_meta:
            meta = self._column("meta")
            for row, parsed in enumerate(self.metas):
                if parsed and meta[row] is not None:
                    meta[row] = orjson.dumps(parsed[0], option=orjson.OPT_SORT_KEYS).decode()
        if not self.columns:
            return self.df
        return self.df.with_columns(
            [pl.Series(name, values, dtype=self.df.schema[name]) for name, values in self.columns.items()]
        )


def scanned_columns(df: pl.DataFrame, rules: PiiRules) -> list[str]:
    """The string columns scanned besides text, messages, meta and the id columns: source,
    label, promoted `columns:` and any other record field (structural columns excepted)."""
    if not rules.fields.columns:
        return []
    return [
        c
        for c, dtype in df.schema.items()
        if dtype == pl.Utf8 and c not in NOT_SCANNED and c not in ID_COLUMNS and not c.startswith("_")
    ]


def _scanned_turn(msg, roles: set[str]) -> bool:
    return (
        isinstance(msg, dict)
        and msg.get("role") in roles
        and isinstance(msg.get("content"), str)
        and bool(msg["content"])
    )


def jobs(df: pl.DataFrame, rules: PiiRules) -> tuple[list[tuple[int, tuple, str]], list]:
    """(row, slot, string) of everything to scan, and each row's parsed meta (or None). A slot is
    ("text",), ("msg", i), ("turn", answer column, i), ("col", name), ("meta", leaf index) or ("id", column)."""
    r, n, cols = rules, df.height, df.columns
    roles = set(r.chat_roles)
    jobs: list[tuple[int, tuple, str]] = []
    texts = df["text"].to_list() if "text" in cols else [None] * n
    messages = df["messages"].to_list() if "messages" in cols else [None] * n
    answers = {c: df[c].to_list() for c in TURN_COLUMNS if c != "messages" and c in cols}
    for row in range(n):
        if isinstance(texts[row], str) and texts[row]:
            jobs.append((row, ("text",), texts[row]))
        for m, msg in enumerate(messages[row] or []):
            if _scanned_turn(msg, roles):
                jobs.append((row, ("msg", m), msg["content"]))
        for name, values in answers.items():  # a pair's answers, a KTO completion: what the model learns to write
            for m, msg in enumerate(values[row] or []):
                if _scanned_turn(msg, roles):
                    jobs.append((row, ("turn", name, m), msg["content"]))
    for name in scanned_columns(df, rules):
        jobs += [
            (row, ("col", name), v) for row, v in enumerate(df[name].to_list()) if isinstance(v, str) and v.strip()
        ]
    metas: list = [None] * n
    if r.fields.meta and "meta" in cols:
        metas = [meta_leaves(v) for v in df["meta"].to_list()]
        for row, parsed in enumerate(metas):
            jobs += [(row, ("meta", k), leaf[2]) for k, leaf in enumerate(parsed[1])] if parsed else []
    if r.fields.ids:
        for name in ID_COLUMNS:
            if name in cols and df.schema[name] == pl.Utf8:
                jobs += [
                    (row, ("id", name), v)
                    for row, v in enumerate(df[name].to_list())
                    if isinstance(v, str) and v and not DERIVED_ID.fullmatch(v)
                ]
    return jobs, metas
