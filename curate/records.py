"""The record schema, what kind a record is, and the mapping from the shapes users bring (text, chat,
alpaca, ShareGPT, preference pairs, KTO).

A record is one of four kinds (`KINDS`, `record_kind`): a `text` document, a `messages` chat record (a
list of {role, content}), a preference pair (`messages` the prompt turns, `chosen` and `rejected` the
two answers as turns, optional `margin`) or an unpaired KTO row (`messages` the prompt turns,
`completion` the answer as turns, `desirable`). `label`, `source`, `lang` are optional; anything else
is kept as JSON in `meta` unless the input promotes it to a column. `src_file`/`src_row` say where
each record came from.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import orjson
import polars as pl

MESSAGE = pl.Struct({"role": pl.Utf8, "content": pl.Utf8})
TURNS = pl.List(MESSAGE)
BASE_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Utf8,
    "text": pl.Utf8,
    "messages": TURNS,
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

# What a record is. A pair's or KTO row's `messages` are its prompt: the conversation so far, ending
# with the user's turn (or a tool's); its answers are assistant turns (tool results between them),
# typed like `messages`. A kind's columns are in a run's records only when some record is of that
# kind (`without_absent_kinds`): text and chat outputs keep exactly their old schema.
KINDS = ("text", "chat", "pair", "kto")
KIND_SCHEMA: dict[str, dict[str, pl.DataType]] = {
    "pair": {"chosen": TURNS, "rejected": TURNS, "margin": pl.Float64},  # margin: chosen's score - rejected's
    "kto": {"completion": TURNS, "desirable": pl.Boolean},
}
PREFERENCE_SCHEMA: dict[str, pl.DataType] = {c: t for cols in KIND_SCHEMA.values() for c, t in cols.items()}
TURN_COLUMNS = ("messages", *(c for c, t in PREFERENCE_SCHEMA.items() if t == TURNS))  # every list of turns


def record_kind(row: Mapping[str, Any]) -> str:
    """ "pair", "kto", "chat" or "text": the kind of one record (a row as a dict). `kind_expr` is the same
    as a polars expression."""
    if row.get("chosen") is not None:
        return "pair"
    if row.get("completion") is not None:
        return "kto"
    if row.get("messages") is not None:
        return "chat"
    return "text"


def kind_expr(schema: Mapping[str, Any]) -> pl.Expr:
    """`record_kind` of every row, as a polars expression over a frame of `schema` (named "kind")."""
    kind = pl.lit("text")
    for column, name in (("messages", "chat"), ("completion", "kto"), ("chosen", "pair")):  # the last one wins
        if column in schema:
            kind = pl.when(pl.col(column).is_not_null()).then(pl.lit(name)).otherwise(kind)
    return kind.alias("kind")


def without_absent_kinds(df: pl.DataFrame) -> pl.DataFrame:
    """The frame without the pair and KTO columns no row fills (all of them for text and chat records)."""
    return df.drop([c for c in PREFERENCE_SCHEMA if c in df.columns and df[c].null_count() == df.height])


class RecordError(ValueError):
    """A record that cannot be used; `rule` is the quarantine reason code."""

    def __init__(self, rule: str, reason: str):
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


def schema_with(columns: list[str]) -> dict[str, pl.DataType]:
    """The record schema with every kind's columns, plus metadata keys an input promoted to their own
    columns (a published set of pairs read back promotes its pair columns: they keep their types)."""
    schema = {**BASE_SCHEMA, **PREFERENCE_SCHEMA}
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
# present (with a non-null value; curated shards carry both `text` and `messages`) and of the type it
# names (a KTO label is a boolean) wins. The kind says how a layout is read: `turns` a list of
# {role, content} or ShareGPT {from, value} turns; `instruction` a prompt, an optional input/context
# appended to it, an answer and an optional system prompt; `text` a document; `preference` a prompt
# and two answers, `rated` a prompt and scored answers (binarised to a pair), `kto` a prompt, an
# answer and a boolean. Preference layouts come first: their keys include a chat's or an
# instruction's. The keys are the record fields users map with `fields:` (`fields: {output: reply}`),
# so a mapped field replaces every default name for that part.
@dataclass(frozen=True)
class Layout:
    name: str  # what `curate init` and the docs call it
    kind: str  # "turns", "instruction", "text", "preference", "rated" or "kto"
    keys: dict[str, str]  # record field -> the input key it is read from by default
    optional: dict[str, tuple[str, ...]] = dc_field(default_factory=dict)  # record field -> input keys tried in order
    types: dict[str, type] = dc_field(default_factory=dict)  # record field -> the type its value must have


_PAIR_EXTRAS = {"input": ("input", "context"), "system": ("system",)}
_SYSTEM = {"system": ("system",)}
_SIDES = {"chosen": "chosen", "rejected": "rejected"}
_LABEL = {"desirable": bool}
LAYOUTS: tuple[Layout, ...] = (
    Layout("pair (messages)", "preference", {"messages": "messages", **_SIDES}),
    Layout("pair (conversations)", "preference", {"conversations": "conversations", **_SIDES}),
    Layout("pair (prompt)", "preference", {"instruction": "prompt", **_SIDES}, _SYSTEM),
    Layout("pair (alpaca)", "preference", {"instruction": "instruction", **_SIDES}, _PAIR_EXTRAS),
    Layout("pair (question)", "preference", {"instruction": "question", **_SIDES}, _SYSTEM),
    Layout("pair (implicit prompt)", "preference", dict(_SIDES)),
    Layout("pair (chosen_messages)", "preference", {"chosen": "chosen_messages", "rejected": "rejected_messages"}),
    Layout("rated (prompt/completions)", "rated", {"instruction": "prompt", "completions": "completions"}, _SYSTEM),
    Layout("rated (instruction/completions)", "rated", {"instruction": "instruction", "completions": "completions"}),
    Layout(
        "rated (responses/scores)", "rated", {"instruction": "prompt", "responses": "responses", "scores": "scores"}
    ),
    Layout(
        "kto (messages/completion)", "kto", {"messages": "messages", "output": "completion", "desirable": "desirable"}
    ),
    Layout(
        "kto (prompt/completion)",
        "kto",
        {"instruction": "prompt", "output": "completion", "desirable": "label"},
        types=_LABEL,
    ),
    Layout("kto (messages)", "kto", {"messages": "messages", "desirable": "label"}, types=_LABEL),
    Layout("kto (conversations)", "kto", {"conversations": "conversations", "desirable": "label"}, types=_LABEL),
    Layout("chat (messages)", "turns", {"messages": "messages"}),
    Layout("sharegpt (conversations)", "turns", {"conversations": "conversations"}),
    Layout("sharegpt (conversation)", "turns", {"conversations": "conversation"}),
    Layout("alpaca", "instruction", {"instruction": "instruction", "output": "output"}, _PAIR_EXTRAS),
    Layout("alpaca (response)", "instruction", {"instruction": "instruction", "output": "response"}, _PAIR_EXTRAS),
    Layout("alpaca (completion)", "instruction", {"instruction": "instruction", "output": "completion"}, _PAIR_EXTRAS),
    Layout("prompt/completion", "instruction", {"instruction": "prompt", "output": "completion"}, _PAIR_EXTRAS),
    Layout("prompt/response", "instruction", {"instruction": "prompt", "output": "response"}, _PAIR_EXTRAS),
    Layout("question/answer", "instruction", {"instruction": "question", "output": "answer"}, _PAIR_EXTRAS),
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
# Rated answers (`completions`: a list of objects): the first of these keys an answer has holds its
# text, and the first of these its score.
RESPONSE_KEYS = ("response", "text", "completion", "output")
SCORE_KEYS = ("score", "rating", "overall_score")


def _keys(layout: Layout, fields: dict[str, str]) -> dict[str, str]:
    """The layout's input keys after the user's `fields:` mapping."""
    return {part: fields.get(part, key) for part, key in layout.keys.items()}


def _optional(layout: Layout, fields: dict[str, str]) -> dict[str, tuple[str, ...]]:
    return {part: (fields[part],) if part in fields else keys for part, keys in layout.optional.items()}


def detect_layout(obj: dict, fields: dict[str, str] | None = None) -> Layout | None:
    """The first layout whose keys this object has (non-null, of the layout's types), after the
    `fields:` mapping."""
    fields = fields or {}
    seen = set()
    for layout in LAYOUTS:
        keys = _keys(layout, fields)
        marker = (tuple(sorted(keys.items())), tuple(sorted(layout.types)))
        if marker in seen:  # a mapping can make two layouts read the same keys
            continue
        seen.add(marker)
        if all(obj.get(k) is not None for k in keys.values()) and all(
            isinstance(obj[keys[part]], kind) for part, kind in layout.types.items()
        ):
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
        content = turn.get(content_key)
        if isinstance(content, list):  # content parts ({type: text, text | value}): LLaMA-Factory v1, OpenAI
            content = _text_parts(content, f"{field}[{i}].{content_key}")
        messages.append({"role": role, "content": _string(content, f"{field}[{i}].{content_key}")})
    return messages


def _text_parts(parts: list, field: str) -> str:
    """The text of a turn's content parts, joined; a part that is not text (an image) cannot be read."""
    texts = []
    for j, part in enumerate(parts):
        text = part.get("text", part.get("value")) if isinstance(part, dict) and part.get("type") == "text" else None
        if not isinstance(text, str):
            raise RecordError("wrong_type", f"{field}[{j}] must be a text part ({{type: text, text}}), got another")
        texts.append(text)
    return "".join(texts)


def _instruction(
    obj: dict, keys: dict[str, str], optional: dict[str, tuple[str, ...]]
) -> tuple[list[dict[str, str]], set[str]]:
    """The user's turn (the instruction, then its input/context after a blank line), after the system
    prompt if one is given; and the keys read."""
    instruction = _string(obj.get(keys["instruction"]), keys["instruction"])
    extra_key = next((k for k in optional.get("input", ()) if obj.get(k) is not None), None)
    extra = _string(obj[extra_key], extra_key) if extra_key else ""
    turns = [{"role": "user", "content": f"{instruction}\n\n{extra}" if extra else instruction}]
    system_key = next((k for k in optional.get("system", ()) if obj.get(k) is not None), None)
    if system_key and obj[system_key]:
        turns.insert(0, {"role": "system", "content": _string(obj[system_key], system_key)})
    # an empty input/system ("input": "") is consumed too, not left behind in meta
    return turns, {keys["instruction"]} | {
        k for part in ("input", "system") for k in optional.get(part, ()) if k in obj
    }


def _pair(
    obj: dict, keys: dict[str, str], optional: dict[str, tuple[str, ...]]
) -> tuple[list[dict[str, str]], set[str]]:
    turns, used = _instruction(obj, keys, optional)
    output = _string(obj.get(keys["output"]), keys["output"])
    return [*turns, {"role": "assistant", "content": output}], used | {keys["output"]}


# Anthropic HH-RLHF transcripts: "\n\nHuman: ...\n\nAssistant: ..." (the first marker's blank lines may
# have been stripped, the last marker may end the text). Turns are found by these markers, never by a
# common character prefix of the two sides: HH's answers often start alike, and a character prefix
# runs into them.
_HH_MARKER = re.compile(r"\n\n(Human|Assistant): ?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def _transcript(text: str, field: str) -> list[dict[str, str]]:
    parts = _HH_MARKER.split(f"\n\n{text.lstrip()}" if _is_transcript(text) else text)
    if len(parts) == 1 or parts[0].strip():
        raise RecordError(
            "prompt_invalid",
            f"field '{field}' is a string that does not start with a '\\n\\nHuman: ' turn marker (an Anthropic "
            "HH transcript): its prompt cannot be told from its answer; give the prompt apart ('prompt')",
        )
    return [{"role": _HH_ROLES[who], "content": content} for who, content in zip(parts[1::2], parts[2::2])]


def _is_transcript(text: str) -> bool:
    return text.lstrip().startswith("Human:")


def _prompt(obj: dict, keys: dict[str, str], optional: dict[str, tuple[str, ...]]) -> tuple[list[dict], set[str]]:
    """A preference record's prompt turns and the keys read: a list of turns (`messages`,
    `conversations`, or a conversational `prompt`), an HH transcript ("...\\n\\nAssistant:" at its end
    opens the answer), or an instruction as in `_instruction`."""
    key = next(keys[part] for part in ("messages", "conversations", "instruction") if part in keys)
    value = obj.get(key)
    if isinstance(value, list):
        return _turns(value, key), {key}
    if isinstance(value, str) and _is_transcript(value):
        turns = _transcript(value, key)
        if turns[-1]["role"] == "assistant" and not turns[-1]["content"].strip():
            turns.pop()
        return turns, {key}
    if "instruction" in keys:
        return _instruction(obj, keys, optional)
    return _turns(value, key), {key}


def _side(value: Any, field: str) -> list[dict[str, str]]:
    """One answer given apart from the prompt: a string (the assistant's), one turn, or a list of turns."""
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    return _turns([value] if isinstance(value, dict) else value, field)


def _check_prompt(turns: list[dict[str, str]], what: str) -> None:
    """A prompt has a user turn with content and ends with the user's turn or a tool's."""
    if not any(t["role"] == "user" and t["content"].strip() for t in turns):
        raise RecordError("prompt_invalid", f"{what} has no user turn with content")
    if turns[-1]["role"] not in ("user", "tool"):
        raise RecordError("prompt_invalid", f"{what} must end with a user or tool turn, not a {turns[-1]['role']} turn")


def _check_answer(turns: list[dict[str, str]], what: str) -> None:
    """An answer is assistant turns (tool results between them) ending with the assistant's, with content."""
    if not any(t["content"].strip() for t in turns if t["role"] == "assistant"):
        raise RecordError("answer_empty", f"{what} has no content")
    roles = [t["role"] for t in turns]
    if roles[0] != "assistant" or roles[-1] != "assistant" or not set(roles) <= {"assistant", "tool"}:
        raise RecordError(
            "answer_not_assistant",
            f"{what} must be assistant turns (tool results between them) ending with the assistant's; "
            f"its roles are {'/'.join(roles)}",
        )


def _split_shared(chosen: list[dict], rejected: list[dict], names: tuple[str, str]) -> tuple[list[dict], ...]:
    """Two whole conversations (implicit prompt) as (prompt, chosen answer, rejected answer): the
    prompt is the turns both share, up to the last user or tool turn before the answers; the answers
    are what follows on each side. Sides whose turns differ before their answers do not share a prompt."""
    for side, name in zip((chosen, rejected), names):
        if not side:
            raise RecordError("answer_empty", f"the answer '{name}' has no turns")
        if side[-1]["role"] != "assistant":
            raise RecordError("answer_not_assistant", f"'{name}' ends with a {side[-1]['role']} turn, not an answer")
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    differ = n
    while n and chosen[n - 1]["role"] not in ("user", "tool"):
        n -= 1
    for side, name in zip((chosen, rejected), names):
        if any(t["role"] in ("user", "system") for t in side[n:]):
            raise RecordError(
                "pair_prompt_mismatch",
                f"'{names[0]}' and '{names[1]}' do not share their prompt: they differ at turn {differ + 1}, "
                f"before the answer of '{name}'",
            )
    return chosen[:n], chosen[n:], rejected[n:]


def _margin(obj: dict) -> float | None:
    """A pair's margin: `margin`, else `score_chosen` - `score_rejected` (binarised rated data, e.g.
    UltraFeedback binarized; the scores themselves stay in meta)."""
    margin = _number(obj.get("margin"), "margin")
    if margin is not None:
        return float(margin)
    chosen, rejected = (_number(obj.get(k), k) for k in ("score_chosen", "score_rejected"))
    return float(chosen - rejected) if chosen is not None and rejected is not None else None


def _number(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError("wrong_type", f"field '{field}' must be a number, got {type(value).__name__}")
    return value


def _prompt_key(keys: dict[str, str]) -> str | None:
    return next((keys[part] for part in ("messages", "conversations", "instruction") if part in keys), None)


def _preference(obj: dict, keys: dict[str, str], optional: dict[str, tuple[str, ...]]) -> tuple[dict, set[str]]:
    """A pair: its prompt given apart (explicit), or the turns two whole conversations share (implicit)."""
    names = (keys["chosen"], keys["rejected"])
    prompt_key = _prompt_key(keys)
    if prompt_key is not None:
        prompt, used = _prompt(obj, keys, optional)
        chosen, rejected = (_side(obj[k], k) for k in names)
        if any(t["role"] == "user" for t in chosen + rejected):  # each side repeats the prompt (UltraFeedback)
            shared, chosen, rejected = _split_shared(chosen, rejected, names)
            if shared != prompt:
                raise RecordError(
                    "pair_prompt_mismatch",
                    f"'{names[0]}' and '{names[1]}' carry prompt turns that differ from '{prompt_key}'",
                )
    else:
        used = set()
        sides = [_transcript(obj[k], k) if isinstance(obj[k], str) else _turns(obj[k], k) for k in names]
        prompt, chosen, rejected = _split_shared(*sides, names)
    _check_prompt(
        prompt, f"the prompt '{prompt_key}'" if prompt_key else f"the turns '{names[0]}' and '{names[1]}' share"
    )
    for turns, name in zip((chosen, rejected), names):
        _check_answer(turns, f"the answer '{name}'")
    pair = {"messages": prompt, "chosen": chosen, "rejected": rejected, "margin": _margin(obj)}
    return pair, used | {*names, "margin"}


def _rated_answers(obj: dict, keys: dict[str, str]) -> list[tuple[str, float]]:
    """(text, score) of each rated answer with text and a score, in input order: `completions` objects
    (text under RESPONSE_KEYS, score under SCORE_KEYS), or `responses` beside `scores`."""
    if "completions" in keys:
        key = keys["completions"]
        items = obj[key]
        if not isinstance(items, list) or not all(isinstance(c, dict) for c in items):
            raise RecordError("wrong_type", f"field '{key}' must be a list of objects")
        pairs = []
        for i, item in enumerate(items):
            text_key = next((k for k in RESPONSE_KEYS if item.get(k) is not None), None)
            score_key = next((k for k in SCORE_KEYS if item.get(k) is not None), None)
            pairs.append(
                (
                    _string(item[text_key], f"{key}[{i}].{text_key}") if text_key else None,
                    _number(item[score_key], f"{key}[{i}].{score_key}") if score_key else None,
                )
            )
    else:
        responses, scores = obj[keys["responses"]], obj[keys["scores"]]
        if not isinstance(responses, list) or not isinstance(scores, list) or len(responses) != len(scores):
            raise RecordError(
                "wrong_type", f"fields '{keys['responses']}' and '{keys['scores']}' must be lists of the same length"
            )
        pairs = [
            (_string(r, f"{keys['responses']}[{i}]"), _number(s, f"{keys['scores']}[{i}]"))
            for i, (r, s) in enumerate(zip(responses, scores))
        ]
    return [(text, score) for text, score in pairs if text is not None and text.strip() and score is not None]


def _rated(obj: dict, keys: dict[str, str], optional: dict[str, tuple[str, ...]]) -> tuple[dict, set[str]]:
    """Scored answers binarised: the best-scored against the lowest-scored (the first of equals, in
    input order); `margin` is the difference of their scores."""
    prompt, used = _prompt(obj, keys, optional)
    _check_prompt(prompt, f"the prompt '{_prompt_key(keys)}'")
    answers = _rated_answers(obj, keys)
    answer_keys = {keys[p] for p in ("completions", "responses", "scores") if p in keys}
    if len(answers) < 2:
        raise RecordError(
            "ratings_too_few",
            f"{len(answers)} answer(s) with text and a score in {sorted(answer_keys)}: a pair needs 2",
        )
    (best, high), (worst, low) = max(answers, key=lambda a: a[1]), min(answers, key=lambda a: a[1])  # first of equals
    if high == low:
        raise RecordError("ratings_tied", f"all {len(answers)} rated answers have the same score: none is rejected")
    pair = {
        "messages": prompt,
        "chosen": [{"role": "assistant", "content": best}],
        "rejected": [{"role": "assistant", "content": worst}],
        "margin": float(high - low),
    }
    return pair, used | answer_keys


def _kto(obj: dict, keys: dict[str, str], optional: dict[str, tuple[str, ...]]) -> tuple[dict, set[str]]:
    """An unpaired answer and whether it is desirable: the completion given apart, or a conversation whose
    answer is the turns after its last user turn."""
    flag = keys["desirable"]
    if not isinstance(obj[flag], bool):
        raise RecordError("wrong_type", f"field '{flag}' must be true or false, got {type(obj[flag]).__name__}")
    prompt, used = _prompt(obj, keys, optional)
    prompt_key = _prompt_key(keys)
    if "output" in keys:
        completion, what = _side(obj[keys["output"]], keys["output"]), f"the answer '{keys['output']}'"
        used.add(keys["output"])
    else:
        what = f"the answer after the last user turn of '{prompt_key}'"
        last_user = max((i for i, t in enumerate(prompt) if t["role"] == "user"), default=len(prompt) - 1)
        prompt, completion = prompt[: last_user + 1], prompt[last_user + 1 :]
    _check_prompt(prompt, f"the prompt '{prompt_key}'")
    _check_answer(completion, what)
    return {"messages": prompt, "completion": completion, "desirable": obj[flag]}, used | {flag}


_READERS = {"preference": _preference, "rated": _rated, "kto": _kto}
# Keys that say a record is a pair: an answer (a string, a turn or turns) under one of them without the
# other is a pair missing a side, not a chat or an instruction with something in meta.
_SIDE_KEYS = (("chosen", "rejected"), ("chosen_messages", "rejected_messages"))


def _one_sided(obj: dict, fields: dict[str, str]) -> RecordError | None:
    for chosen, rejected in _SIDE_KEYS:
        chosen, rejected = fields.get("chosen", chosen), fields.get("rejected", rejected)
        given = [k for k in (chosen, rejected) if isinstance(obj.get(k), str | dict | list)]
        if len(given) == 1:
            other = rejected if given == [chosen] else chosen
            return RecordError(
                "pair_side_missing",
                f"a preference pair with '{given[0]}' but no '{other}' ({'null' if other in obj else 'missing'})",
            )
    return None


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
    "chosen",
    "rejected",
    "desirable",
    "completions",
    "responses",
    "scores",
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
        if layout is None or layout.kind in ("turns", "instruction"):  # a document's metadata is its own
            one_sided = _one_sided(obj, fields)
            if one_sided is not None:
                raise one_sided
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
    elif layout.kind == "instruction":
        record["messages"], consumed = _pair(obj, keys, _optional(layout, fields))
    else:
        parts, consumed = _READERS[layout.kind](obj, keys, _optional(layout, fields))
        record.update(parts)
    if record["text"] is not None and not record["text"].strip():
        raise RecordError("empty_record", f"field '{keys['text']}' is empty")
    if record["messages"] is not None and not any(m["content"].strip() for m in record["messages"]):
        raise RecordError("empty_record", "no message has any content")
    name = {key: fields.get(key, key) for key in ("id", *SCALAR_FIELDS)}
    raw_id = obj.get(name["id"])
    record["id"] = _scalar(raw_id, name["id"]) if raw_id is not None else None
    for key in SCALAR_FIELDS:  # a KTO label read as `desirable` is not the record's label too
        record[key] = _scalar(obj.get(name[key]), name[key]) if name[key] not in consumed else None
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
        if col not in PREFERENCE_SCHEMA:  # a set of pairs read back promotes its pair columns: read by the layout
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
