"""The record schema and the mapping from the shapes users bring (text, chat, alpaca, ShareGPT).

Every record is either a `text` document or a `messages` chat record (a list of
{role, content}); `label`, `source`, `lang` are optional; anything else is kept as
JSON in `meta` unless the input promotes it to a column. `src_file`/`src_row` say
where each record came from.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import polars as pl

MESSAGE = pl.Struct({"role": pl.Utf8, "content": pl.Utf8})
BASE_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Utf8,
    "text": pl.Utf8,
    "messages": pl.List(MESSAGE),
    "label": pl.Utf8,
    "source": pl.Utf8,
    "lang": pl.Utf8,
    "meta": pl.Utf8,
    "src_file": pl.Utf8,
    "src_row": pl.Int64,
}
ROLES = {"system", "user", "assistant", "tool"}
SHAREGPT_ROLES = {
    "system": "system", "human": "user", "user": "user", "gpt": "assistant",
    "assistant": "assistant", "bot": "assistant", "chatgpt": "assistant",
    "tool": "tool", "function": "tool", "observation": "tool",
}
SCALAR_FIELDS = ("label", "source", "lang")


class RecordError(ValueError):
    """A record that cannot be used; `rule` is the quarantine reason code."""

    def __init__(self, rule: str, reason: str):
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


def schema_with(columns: list[str]) -> dict[str, pl.DataType]:
    """The record schema plus metadata keys an input promoted to their own columns."""
    schema = dict(BASE_SCHEMA)
    for col in columns:
        schema.setdefault(col, pl.Utf8)
    return schema


def derived_id(file_fingerprint: str, row: int) -> str:
    return hashlib.blake2b(f"{file_fingerprint}:{row}".encode(), digest_size=8).hexdigest()


def _scalar(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool | int | float | str):
        return str(value)
    raise RecordError("wrong_type", f"field '{field}' must be a string or number, got {type(value).__name__}")


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise RecordError("wrong_type", f"field '{field}' must be a string, got {type(value).__name__}")
    return value


def _turns(value: Any, field: str, role_key: str, content_key: str, roles: dict[str, str]) -> list[dict[str, str]]:
    """A list of turns with their role under `role_key` (mapped through `roles`) and text under `content_key`."""
    if not isinstance(value, list):
        raise RecordError("wrong_type", f"field '{field}' must be a list of {{{role_key}, {content_key}}}, got {type(value).__name__}")
    messages = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise RecordError("wrong_type", f"{field}[{i}] must be an object with {role_key} and {content_key}")
        who = turn.get(role_key)
        role = roles.get(who.lower()) if isinstance(who, str) else None
        if role is None:
            # the value itself is not quoted: reasons are written to rejected/ and the report
            shown = f"a {type(who).__name__} of {len(who)} characters" if isinstance(who, str) else type(who).__name__
            raise RecordError("wrong_type", f"{field}[{i}].{role_key} must be one of {sorted(roles)}, got {shown}")
        messages.append({"role": role, "content": _string(turn.get(content_key), f"{field}[{i}].{content_key}")})
    return messages


def _chat(value: Any, field: str) -> list[dict[str, str]]:
    return _turns(value, field, "role", "content", {r: r for r in ROLES})


def _sharegpt(value: Any, field: str) -> list[dict[str, str]]:
    return _turns(value, field, "from", "value", SHAREGPT_ROLES)


def _alpaca(obj: dict, name: dict[str, str]) -> list[dict[str, str]]:
    instruction = _string(obj.get(name["instruction"]), name["instruction"])
    output = _string(obj.get(name["output"]), name["output"])
    extra = obj.get(name["input"])
    prompt = instruction if not extra else f"{instruction}\n\n{_string(extra, name['input'])}"
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    system = obj.get(name["system"])
    if system:
        messages.insert(0, {"role": "system", "content": _string(system, name["system"])})
    return messages


def _detect(obj: dict, name: dict[str, str]) -> str:
    # Null-valued keys do not count: curated shards carry both `text` and `messages`.
    def has(key: str) -> bool:
        return obj.get(name[key]) is not None

    if has("messages"):
        return "chat"
    if has("conversations"):
        return "sharegpt"
    if has("instruction") and has("output"):
        return "alpaca"
    if has("text"):
        return "text"
    raise RecordError(
        "missing_field",
        f"no '{name['text']}', '{name['messages']}', '{name['conversations']}' or "
        f"'{name['instruction']}'/'{name['output']}' field ({len(obj)} other keys)",
    )


MAPPABLE_FIELDS = _MAPPABLE = ("id", "text", "messages", "conversations", "instruction", "input", "output", "system", *SCALAR_FIELDS)


def to_record(obj: Any, *, fmt: str, fields: dict[str, str], columns: list[str], default_source: str | None) -> dict[str, Any]:
    """Map one input object onto the record schema, or raise RecordError with a reason."""
    if not isinstance(obj, dict):
        raise RecordError("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    if not obj:
        raise RecordError("empty_record", "record has no fields")
    name = {key: fields.get(key, key) for key in _MAPPABLE}
    shape = _detect(obj, name) if fmt == "auto" else fmt
    record: dict[str, Any] = {"text": None, "messages": None}
    if shape == "text":
        if name["text"] not in obj:
            raise RecordError("missing_field", f"required field '{name['text']}' is missing")
        record["text"] = _string(obj[name["text"]], name["text"])
        consumed = {name["text"]}
    elif shape == "chat":
        record["messages"] = _chat(obj.get(name["messages"]), name["messages"])
        consumed = {name["messages"]}
    elif shape == "sharegpt":
        record["messages"] = _sharegpt(obj.get(name["conversations"]), name["conversations"])
        consumed = {name["conversations"]}
    else:
        missing = [name[k] for k in ("instruction", "output") if name[k] not in obj]
        if missing:
            raise RecordError("missing_field", f"required field '{missing[0]}' is missing")
        record["messages"] = _alpaca(obj, name)
        consumed = {name[k] for k in ("instruction", "input", "output", "system")}
    if record["text"] is not None and not record["text"].strip():
        raise RecordError("empty_record", f"field '{name['text']}' is empty")
    if record["messages"] is not None and not any(m["content"].strip() for m in record["messages"]):
        raise RecordError("empty_record", "no message has any content")
    raw_id = obj.get(name["id"])
    record["id"] = _scalar(raw_id, name["id"]) if raw_id is not None else None
    for key in SCALAR_FIELDS:
        record[key] = _scalar(obj.get(name[key]), name[key])
    record["source"] = record["source"] or default_source
    consumed |= {name[k] for k in ("id", *SCALAR_FIELDS)}
    rest = {k: v for k, v in obj.items() if k not in consumed}
    if isinstance(rest.get("meta"), str):  # a curated shard's metadata, stored as JSON text
        try:
            parsed = orjson.loads(rest["meta"])
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):  # anything else ("[1, 2]", "5", prose) stays a field named meta
            rest.pop("meta")
            rest = {**parsed, **rest}
    rest = {k: v for k, v in rest.items() if v is not None}
    for col in columns:
        record[col] = _scalar(rest.pop(col, None), col)
    # default=str: Parquet inputs may hold dates or decimals, which JSON has no type for.
    record["meta"] = orjson.dumps(rest, default=str, option=orjson.OPT_SORT_KEYS).decode() if rest else None
    return record


def content_text(text: str | None, messages: list[dict] | None, roles: str = "all") -> str:
    """The text a stage looks at: the document, or the chosen turns of a conversation."""
    if text is not None:
        return text
    if not messages:
        return ""
    wanted = None if roles == "all" else {roles}
    return "\n\n".join(m["content"] for m in messages if wanted is None or m["role"] in wanted)


def content_texts(df: pl.DataFrame, roles: str = "all") -> list[str]:
    return [content_text(t, m, roles) for t, m in zip(df["text"].to_list(), df["messages"].to_list())]
