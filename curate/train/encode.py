"""Token ids and labels for one record: loss only where the model should learn to write.

A chat record is tokenised turn by turn in ChatML: each turn's header (`<|im_start|>role\\n`),
its content, then `<|im_end|>` and a newline. Tokenising the pieces separately puts token
boundaries exactly where generation puts them (a prompt ends with the assistant header; the
model writes the content and the end-of-turn token), and makes the label mask exact: with
`train_on: last_assistant` or `all_assistant`, labels are the content tokens **and the
`<|im_end|>` token** of the trained assistant turns (so the model learns to stop); everything
else is IGNORE (-100). `train_on: all` trains every token (plain-text records always do, and
end with EOS).

Records longer than `max_length` are cut; a record whose cut removed every trained token is
not trained on and is reported with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from curate.train.chat import IM_END, header

IGNORE = -100
TrainOn = Literal["last_assistant", "all_assistant", "all"]


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False


@dataclass
class EncodeStats:
    records: int = 0
    truncated: int = 0
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)


def pad_token_id(tokenizer) -> tuple[int, str | None]:
    """A pad id distinct from EOS and from `<|im_end|>`: the tokenizer's own pad if distinct, else
    `<|endoftext|>` if the vocabulary has it and it is not EOS, else a new `<|pad|>` token (the
    caller must resize the model's embeddings). Returns (id, the token added or None)."""
    eos = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(IM_END)}
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id not in eos:
        return tokenizer.pad_token_id, None
    vocab = tokenizer.get_vocab()
    if "<|endoftext|>" in vocab and vocab["<|endoftext|>"] not in eos:
        tokenizer.pad_token = "<|endoftext|>"
        return vocab["<|endoftext|>"], None
    tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
    return tokenizer.pad_token_id, "<|pad|>"


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def encode_chat(tokenizer, messages: list[dict], train_on: TrainOn = "all_assistant") -> Encoded:
    ids: list[int] = []
    labels: list[int] = []
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    end = tokenizer.convert_tokens_to_ids(IM_END)
    newline = _ids(tokenizer, "\n")
    for i, m in enumerate(messages):
        trained = train_on == "all" or (m["role"] == "assistant" and (train_on == "all_assistant" or i == last))
        head, body = _ids(tokenizer, header(m["role"])), _ids(tokenizer, m["content"]) + [end]
        ids += head + body + newline
        labels += ([IGNORE] * len(head) if train_on != "all" else head) + (body if trained else [IGNORE] * len(body))
        labels += newline if train_on == "all" else [IGNORE] * len(newline)
    return Encoded(ids, labels)


def encode_text(tokenizer, text: str) -> Encoded:
    ids = _ids(tokenizer, text) + [tokenizer.eos_token_id]
    return Encoded(ids, list(ids))


def encode_record(tokenizer, record: dict, train_on: TrainOn, max_length: int, stats: EncodeStats) -> Encoded | None:
    """Ids and labels for a record, cut to max_length; None (with the reason in stats) when the
    cut left nothing to learn from."""
    stats.records += 1
    enc = (
        encode_chat(tokenizer, record["messages"], train_on)
        if record.get("messages")
        else encode_text(tokenizer, record["text"])
    )
    if len(enc.input_ids) > max_length:
        enc = Encoded(enc.input_ids[:max_length], enc.labels[:max_length], truncated=True)
        stats.truncated += 1
    if all(label == IGNORE for label in enc.labels):
        reason = (
            f"longer than max_length {max_length}: the cut removed every trained token"
            if enc.truncated
            else "no trained tokens (no assistant turn)"
        )
        stats.dropped.append((str(record.get("id")), reason))
        return None
    return enc
