"""Training examples are rendered in checked ChatML and labelled token by token: loss on assistant
turns and their end-of-turn token only, a pad token distinct from EOS, truncation accounted for."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from curate.train.chat import PROBE, chatml, check_template
from curate.train.encode import IGNORE, EncodeStats, encode_chat, encode_record, pad_token_id

QWEN2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "qwen2-tokenizer"


@pytest.fixture(scope="module")
def qwen2():
    if not QWEN2.is_dir():
        pytest.skip(f"the shared Qwen2 tokenizer is not at {QWEN2}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(QWEN2))


def _trained_text(tok, enc) -> str:
    return tok.decode([i for i, label in zip(enc.input_ids, enc.labels) if label != IGNORE])


def test_the_shared_qwen2_template_is_caught_ignoring_add_generation_prompt(qwen2):
    check = check_template(qwen2)
    assert check.use_builtin
    assert "ignores the flag" in check.reason


def test_a_canonical_template_is_kept_and_a_missing_one_replaced(qwen2):
    from copy import deepcopy

    good = deepcopy(qwen2)
    good.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    assert check_template(good).use_builtin is False
    good.chat_template = None
    assert check_template(good).reason == "the tokenizer has no chat template"


def test_label_mask_is_exact_token_by_token(qwen2):
    enc = encode_chat(qwen2, PROBE, "all_assistant")
    assert qwen2.decode(enc.input_ids) == chatml(PROBE)  # the pieces add up to exactly the ChatML text
    end = qwen2.convert_tokens_to_ids("<|im_end|>")
    # Walk the conversation: which tokens must carry a label, by construction of ChatML.
    expected = []
    for m in PROBE:
        head = qwen2(f"<|im_start|>{m['role']}\n", add_special_tokens=False)["input_ids"]
        body = qwen2(m["content"], add_special_tokens=False)["input_ids"] + [end]
        newline = qwen2("\n", add_special_tokens=False)["input_ids"]
        expected += (
            [IGNORE] * len(head)
            + (body if m["role"] == "assistant" else [IGNORE] * len(body))
            + [IGNORE] * len(newline)
        )
    assert enc.labels == expected
    assert _trained_text(qwen2, enc) == "4.<|im_end|>6.<|im_end|>"
    assert enc.labels.count(end) == 2  # every trained assistant turn teaches the model to stop


def test_train_on_last_assistant_and_all(qwen2):
    last = encode_chat(qwen2, PROBE, "last_assistant")
    assert _trained_text(qwen2, last) == "6.<|im_end|>"
    everything = encode_chat(qwen2, PROBE, "all")
    assert everything.labels == everything.input_ids


def test_pad_token_is_never_eos(qwen2):
    from copy import deepcopy

    pad, added = pad_token_id(qwen2)
    assert (pad, added) == (qwen2.convert_tokens_to_ids("<|endoftext|>"), None)
    same = deepcopy(qwen2)
    same.pad_token = same.eos_token  # a common misconfiguration: padding masked as EOS
    pad, added = pad_token_id(same)
    assert pad != same.eos_token_id and pad == same.convert_tokens_to_ids("<|endoftext|>")


def test_truncation_is_counted_and_records_with_nothing_left_to_learn_are_dropped(qwen2):
    stats = EncodeStats()
    long_answer = [{"role": "user", "content": "Tell me."}, {"role": "assistant", "content": "word " * 200}]
    prompt_only = len(encode_chat(qwen2, long_answer[:1]).input_ids)
    cut = encode_record(qwen2, {"id": "a", "messages": long_answer}, "all_assistant", prompt_only + 10, stats)
    assert cut is not None and cut.truncated and len(cut.input_ids) == prompt_only + 10
    assert encode_record(qwen2, {"id": "b", "messages": long_answer}, "all_assistant", prompt_only + 2, stats) is None
    assert encode_record(qwen2, {"id": "c", "messages": long_answer[:1]}, "all_assistant", 512, stats) is None
    assert stats.records == 3 and stats.truncated == 2
    assert stats.dropped == [
        ("b", "longer than max_length {}: the cut removed every trained token".format(prompt_only + 2)),
        ("c", "no trained tokens (no assistant turn)"),
    ]
    text = encode_record(qwen2, {"id": "t", "text": "Plain text."}, "all_assistant", 512, stats)
    assert text.input_ids[-1] == qwen2.eos_token_id and text.labels == text.input_ids


@pytest.fixture(scope="module")
def tiny():
    from curate.demo import content as C
    from curate.train.tiny import build_tokenizer

    texts = (
        C.EN_SENTENCES
        + [a for answers in C.CHAT_ANSWERS.values() for a in answers]
        + ["What is 2 + 2? 4. And 3 + 3? 6."]
    )
    return build_tokenizer(texts * 3, vocab_size=600)


def test_embedded_tokenizer_has_chatml_a_distinct_pad_and_exact_masks(tiny):
    assert check_template(tiny).use_builtin is False  # its own template is canonical ChatML
    assert tiny.eos_token == "<|im_end|>" and tiny.pad_token_id not in (tiny.eos_token_id, None)
    assert pad_token_id(tiny) == (tiny.pad_token_id, None)
    enc = encode_chat(tiny, PROBE, "all_assistant")
    assert tiny.decode(enc.input_ids) == chatml(PROBE)
    assert _trained_text(tiny, enc) == "4.<|im_end|>6.<|im_end|>"
    assert enc.labels.count(tiny.eos_token_id) == 2


def test_embedded_model_is_a_small_qwen2_that_computes_a_loss(tiny):
    import torch

    from curate.train.tiny import build_model

    model = build_model(tiny, hidden=64, layers=1, heads=4, kv_heads=2)
    assert type(model).__name__ == "Qwen2ForCausalLM" and model.config.vocab_size == len(tiny)
    enc = encode_chat(tiny, PROBE, "all_assistant")
    out = model(input_ids=torch.tensor([enc.input_ids]), labels=torch.tensor([enc.labels]))
    assert torch.isfinite(out.loss) and out.loss.item() > 0
