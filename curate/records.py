"""The record schema and the mapping from the shapes users bring (text, chat, alpaca, ShareGPT).

Every record is either a `text` document or a `messages` chat record (a list of
{role, content}); `label`, `source`, `lang` are optional; anything else is kept as
JSON in `meta` unless the input promotes it to a column. `src_file`/`src_row` say
where each record came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from dataclasses import field as dc_field
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
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "chatgpt": "assistant",
    "function_call": "assistant",  # LLaMA-Factory's sharegpt tool data: the assistant calling a tool
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
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


# Every input layout auto-detection knows, in the order it is tried: the first whose keys are all
# present (with a non-null value; curated shards carry both `text` and `messages`) wins. `turns`
# layouts hold a list of {role, content} or ShareGPT {from, value} turns; `pair` layouts a prompt,
# an optional input/context appended to it, an answer and an optional system prompt. The keys
# are the record fields users map with `fields:` (`fields: {output: reply}`), so a mapped field
# replaces every default name for that part.
@dataclass(frozen=True)
class Layout:
    name: str  # what `curate init` and the docs call it
    kind: str  # "turns", "pair" or "text"
    keys: dict[str, str]  # record field -> the input key it is read from by default
    optional: dict[str, tuple[str, ...]] = dc_field(default_factory=dict)  # record field -> input keys tried in order


_PAIR_EXTRAS = {"input": ("input", "context"), "system": ("system",)}
LAYOUTS: tuple[Layout, ...] = (
    Layout("chat (messages)", "turns", {"messages": "messages"}),
    Layout("sharegpt (conversations)", "turns", {"conversations": "conversations"}),
    Layout("sharegpt (conversation)", "turns", {"conversations": "conversation"}),
    Layout("alpaca", "pair", {"instruction": "instruction", "output": "output"}, _PAIR_EXTRAS),
    Layout("alpaca (response)", "pair", {"instruction": "instruction", "output": "response"}, _PAIR_EXTRAS),
    Layout("alpaca (completion)", "pair", {"instruction": "instruction", "output": "completion"}, _PAIR_EXTRAS),
    Layout("prompt/completion", "pair", {"instruction": "prompt", "output": "completion"}, _PAIR_EXTRAS),
    Layout("prompt/response", "pair", {"instruction": "prompt", "output": "response"}, _PAIR_EXTRAS),
    Layout("question/answer", "pair", {"instruction": "question", "output": "answer"}, _PAIR_EXTRAS),
    Layout("text", "text", {"text": "text"}),
)
# An explicit `format:` names the first layout of its kind; `sharegpt` is kept as a synonym of chat
# (both accept either turn style).
FORMATS = {
    "text": "text",
    "chat": "chat (messages)",
    "sharegpt": "sharegpt (conversations)",
    "alpaca": "alpaca",
    "prompt_completion": "prompt/completion",
    "question_answer": "question/answer",
}
_BY_NAME = {layout.name: layout for layout in LAYOUTS}
_TURN_STYLES = (("role", "content", {r: r for r in ROLES}), ("from", "value", SHAREGPT_ROLES))


def _keys(layout: Layout, fields: dict[str, str]) -> dict[str, str]:
    """The layout's input keys after the user's `fields:` mapping."""
    return {part: fields.get(part, key) for part, key in layout.keys.items()}


def _optional(layout: Layout, fields: dict[str, str]) -> dict[str, tuple[str, ...]]:
    return {part: (fields[part],) if part in fields else keys for part, keys in layout.optional.items()}


def detect_layout(obj: dict, fields: dict[str, str] | None = None) -> Layout | None:
    """The first layout whose keys this object has (non-null), after the `fields:` mapping."""
    fields = fields or {}
    seen = set()
    for layout in LAYOUTS:
        keys = _keys(layout, fields)
        marker = tuple(sorted(keys.items()))
        if marker in seen:  # a mapping can make two layouts read the same keys
            continue
        seen.add(marker)
        if all(obj.get(k) is not None for k in keys.values()):
            return layout
    return None


def _turns(value: Any, field: str) -> list[dict[str, str]]:
    """A list of turns, each {role, content} or ShareGPT's {from, value} (roles mapped through SHAREGPT_ROLES)."""
    if not isinstance(value, list):
        raise RecordError(
            "wrong_type",
            f"field '{field}' must be a list of {{role, content}} or {{from, value}} turns, got {type(value).__name__}",
        )
    messages = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise RecordError("wrong_type", f"{field}[{i}] must be an object with role and content (or from and value)")
        role_key, content_key, roles = next((s for s in _TURN_STYLES if s[0] in turn), _TURN_STYLES[0])
        who = turn.get(role_key)
        role = roles.get(who.lower()) if isinstance(who, str) else None
        if role is None:
            # the value itself is not quoted: reasons are written to rejected/ and the report
            shown = f"a {type(who).__name__} of {len(who)} characters" if isinstance(who, str) else type(who).__name__
            raise RecordError("wrong_type", f"{field}[{i}].{role_key} must be one of {sorted(roles)}, got {shown}")
        messages.append({"role": role, "content": _string(turn.get(content_key), f"{field}[{i}].{content_key}")})
    return messages


def _pair(
    obj: dict, keys: dict[str, str], optional: dict[str, tuple[str, ...]]
) -> tuple[list[dict[str, str]], set[str]]:
    instruction = _string(obj.get(keys["instruction"]), keys["instruction"])
    output = _string(obj.get(keys["output"]), keys["output"])
    used = {keys["instruction"], keys["output"]}
    extra_key = next((k for k in optional.get("input", ()) if obj.get(k) is not None), None)
    extra = _string(obj[extra_key], extra_key) if extra_key else ""
    prompt = f"{instruction}\n\n{extra}" if extra else instruction
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    system_key = next((k for k in optional.get("system", ()) if obj.get(k) is not None), None)
    if system_key and obj[system_key]:
        messages.insert(0, {"role": "system", "content": _string(obj[system_key], system_key)})
    # an empty input/system ("input": "") is consumed too, not left behind in meta
    used |= {k for part in ("input", "system") for k in optional.get(part, ()) if k in obj}
    return messages, used


def _no_layout(obj: dict, fields: dict[str, str]) -> RecordError:
    keys = sorted(str(k)[:32] for k in obj)
    shown = ", ".join(f"'{k}'" for k in keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
    wanted = sorted({k for layout in LAYOUTS for k in _keys(layout, fields).values()})
    return RecordError(
        "missing_field",
        f"no known layout: the record has {shown}; expected one of the layouts "
        f"with {', '.join(repr(k) for k in wanted)} (or map yours with 'fields:')",
    )


MAPPABLE_FIELDS = _MAPPABLE = (
    "id",
    "text",
    "messages",
    "conversations",
    "instruction",
    "input",
    "output",
    "system",
    *SCALAR_FIELDS,
)


def to_record(
    obj: Any, *, fmt: str, fields: dict[str, str], columns: list[str], default_source: str | None
) -> dict[str, Any]:
    """Map one input object onto the record schema, or raise RecordError with a reason."""
    if not isinstance(obj, dict):
        raise RecordError("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    if not obj:
        raise RecordError("empty_record", "record has no fields")
    if fmt == "auto":
        layout = detect_layout(obj, fields)
        if layout is None:
            raise _no_layout(obj, fields)
    else:
        layout = _BY_NAME[FORMATS[fmt]]
    keys = _keys(layout, fields)
    missing = [k for k in keys.values() if k not in obj]
    if missing:
        raise RecordError("missing_field", f"required field '{missing[0]}' is missing")
    record: dict[str, Any] = {"text": None, "messages": None}
    if layout.kind == "text":
        record["text"] = _string(obj[keys["text"]], keys["text"])
        consumed = set(keys.values())
    elif layout.kind == "turns":
        ((part, key),) = keys.items()
        record["messages"] = _turns(obj.get(key), key)
        consumed = {key}
    else:
        record["messages"], consumed = _pair(obj, keys, _optional(layout, fields))
    if record["text"] is not None and not record["text"].strip():
        raise RecordError("empty_record", f"field '{keys['text']}' is empty")
    if record["messages"] is not None and not any(m["content"].strip() for m in record["messages"]):
        raise RecordError("empty_record", "no message has any content")
    name = {key: fields.get(key, key) for key in ("id", *SCALAR_FIELDS)}
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


def comparison_texts(df: pl.DataFrame, chat_text: str = "conversation") -> list[str]:
    """The text dedup, decontamination and the leakage gate compare: the document, or the conversation
    as "role: content" lines (`chat_text: user_prompts`: its user turns alone). A record with neither is
    the empty text. `comparison_expr` is the same text as a polars expression."""
    out = []
    for text, messages in zip(df["text"].to_list(), df["messages"].to_list()):
        if text is not None:
            out.append(text)
        elif chat_text == "user_prompts":
            out.append("\n".join(m["content"] for m in messages or [] if m["role"] == "user"))
        else:
            out.append("\n".join(f"{m['role']}: {m['content']}" for m in messages or []))
    return out


def comparison_expr(schema: pl.Schema) -> tuple[pl.Expr, pl.Expr]:
    """(`comparison_texts`' conversation text as an expression, null for a record with neither; the
    record's length in characters: the document's, or the sum of its turns' contents)."""
    text = pl.col("text") if "text" in schema else pl.lit(None, pl.Utf8)
    if "messages" not in schema:
        return text, text.str.len_chars()
    turn = pl.element()
    chat = (
        pl.col("messages")
        .list.eval(pl.concat_str(turn.struct.field("role"), pl.lit(": "), turn.struct.field("content")))
        .list.join("\n")
    )
    chars = pl.col("messages").list.eval(turn.struct.field("content").str.len_chars()).list.sum()
    return pl.coalesce(text, chat), pl.coalesce(text.str.len_chars(), chars)
