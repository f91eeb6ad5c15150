"""Sample packing: packed examples give the same logits and loss as each example alone, so packing
saves padding without letting examples see each other."""

from __future__ import annotations

import pytest

from curate.train.encode import IGNORE, encode_chat
from curate.train.pack import TokenCount, collate, pack

torch = pytest.importorskip("torch")

CHATS = [
    [
        {"role": "user", "content": "I have chest pain when climbing stairs."},
        {
            "role": "assistant",
            "content": "Stop and rest; if the pain lasts more than a few minutes, call emergency services.",
        },
    ],
    [
        {"role": "user", "content": "How do I book a routine check-up?"},
        {"role": "assistant", "content": "Call the front desk or use the patient portal."},
    ],
    [
        {"role": "system", "content": "You are a clinic assistant."},
        {"role": "user", "content": "Can I bring my own medication list?"},
        {"role": "assistant", "content": "Yes, please bring it."},
    ],
]


@pytest.fixture(scope="module")
def tiny():
    from curate.train.tiny import build_model, build_tokenizer

    texts = [m["content"] for chat in CHATS for m in chat] * 20
    tokenizer = build_tokenizer(texts, vocab_size=400)
    model = build_model(tokenizer, hidden=64, layers=2, heads=4, kv_heads=2).eval()
    examples = [vars(encode_chat(tokenizer, chat)) for chat in CHATS]
    return tokenizer, model, [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples]


def test_packed_examples_attend_only_to_themselves(tiny):
    tokenizer, model, examples = tiny
    rows, stats = pack(examples, max_length=512)
    assert stats.rows == 1 and stats.examples == 3
    batch = collate(tokenizer.pad_token_id)(
        rows + [{"input_ids": rows[0]["input_ids"][:10], "labels": [IGNORE] * 10, "position_ids": list(range(10))}]
    )
    with torch.no_grad():
        packed = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=batch["use_cache"]
        ).logits[0]
        # The same row without restarting positions: examples would see each other, and logits change.
        naive = model(input_ids=batch["input_ids"][:1]).logits[0]
    start, moved = 0, False
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))  # how pack placed them
    for i in order:
        ids = examples[i]["input_ids"]
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([ids])).logits[0]
        torch.testing.assert_close(packed[start : start + len(ids)], alone, atol=1e-5, rtol=1e-4)
        moved |= not torch.allclose(naive[start : start + len(ids)], alone, atol=1e-4)
        start += len(ids)
    assert moved, "the check must be able to fail: without position restarts the later examples change"


def test_packed_loss_is_the_token_weighted_loss_of_the_examples(tiny):
    tokenizer, model, examples = tiny
    rows, _ = pack(examples, max_length=512)
    batch = collate(tokenizer.pad_token_id)(rows)
    with torch.no_grad():
        packed = float(model(**batch).loss)
        total, count = 0.0, 0
        for e in examples:
            n = sum(label != IGNORE for label in e["labels"][1:])
            total += float(model(input_ids=torch.tensor([e["input_ids"]]), labels=torch.tensor([e["labels"]])).loss) * n
            count += n
    assert packed == pytest.approx(total / count, rel=1e-4)


def test_packing_places_every_example_once_within_max_length(tiny):
    _, _, examples = tiny
    many = examples * 7
    longest = max(len(e["input_ids"]) for e in many)
    rows, stats = pack(many, max_length=2 * longest + 5)
    assert all(len(r["input_ids"]) <= 2 * longest + 5 for r in rows)
    assert stats.tokens == sum(len(r["input_ids"]) for r in rows) == sum(len(e["input_ids"]) for e in many)
    assert stats.rows < len(many) and 0 < stats.fill <= 1
    # Each example is one run of positions 0..n-1; its trained labels are all kept (its first is never trained).
    starts = sum(r["position_ids"].count(0) for r in rows)
    assert starts == len(many)
    trained = sorted(t for r in rows for t in r["labels"] if t != IGNORE)
    assert trained == sorted(t for e in many for t in e["labels"] if t != IGNORE)
    with pytest.raises(ValueError, match="more than max_length"):
        pack(many, max_length=longest - 1)


def test_token_count_separates_real_tokens_from_padding_in_padded_and_packed_batches(tiny):
    tokenizer, _, examples = tiny
    pad = tokenizer.pad_token_id
    lengths = [len(e["input_ids"]) for e in examples[:3]]
    count = TokenCount(pad)
    count.add(collate(pad)(examples[:3]))  # padded to the longest: the attention mask says what is real
    assert (count.tokens, count.slots) == (sum(lengths), 3 * max(lengths))
    assert len(set(lengths)) > 1 and count.padding_share > 0
    rows, _ = pack(examples[:3], max_length=sum(lengths))  # all three in one row: no padding left
    packed = TokenCount(pad)
    packed.add(collate(pad)(rows))  # packed rows have no mask: their padding is the pad id
    assert (packed.tokens, packed.slots, packed.padding_share) == (sum(lengths), sum(lengths), 0.0)
    shorter = TokenCount(pad)
    shorter.add(
        collate(pad)(rows + pack(examples[:1], max_length=sum(lengths))[0])
    )  # beside a shorter row: that row's tail is padding
    assert (shorter.tokens, shorter.slots) == (sum(lengths) + lengths[0], 2 * sum(lengths))
