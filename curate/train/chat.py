"""Chat rendering for training: the tokenizer's own template, checked against canonical ChatML.

Many exported chat templates misbehave: they ignore `add_generation_prompt` (the shared Qwen2
tokenizer's LLaMA-Factory export appends `<|im_start|>assistant\\n` after every user turn, so a
prompt rendered for training and one rendered for generation differ), or drop the end-of-turn
token after assistant turns. `check_template` renders probe conversations both ways and compares
them with canonical ChatML; when the tokenizer has no template or its template misbehaves, the
built-in ChatML rendering is used and the reason is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
ROLES = ("system", "user", "assistant")

PROBE = [
    {"role": "system", "content": "You are a careful assistant."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And 3 + 3?"},
    {"role": "assistant", "content": "6."},
]


def header(role: str) -> str:
    return f"{IM_START}{role}\n"


def chatml(messages: list[dict], add_generation_prompt: bool = False) -> str:
    """Canonical ChatML: every turn `<|im_start|>role\\ncontent<|im_end|>\\n`; the generation prompt
    `<|im_start|>assistant\\n` only when asked for."""
    text = "".join(f"{header(m['role'])}{m['content']}{IM_END}\n" for m in messages)
    return text + (header("assistant") if add_generation_prompt else "")


@dataclass(frozen=True)
class TemplateCheck:
    use_builtin: bool
    reason: str  # why the built-in ChatML is used, or "tokenizer template matches ChatML"


def check_template(tokenizer) -> TemplateCheck:
    """Whether the tokenizer's chat template renders canonical ChatML, with and without a
    generation prompt; the probe carries its own system turn, so default system prompts don't matter."""
    if not getattr(tokenizer, "chat_template", None):
        return TemplateCheck(True, "the tokenizer has no chat template")
    checks = [
        (PROBE, False, "renders a finished conversation differently from ChatML"),
        (PROBE[:2], True, "renders the generation prompt differently from ChatML"),
        (PROBE[:2], False, "adds an assistant header without add_generation_prompt (it ignores the flag)"),
    ]
    for messages, gen, problem in checks:
        try:
            got = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        except Exception as exc:  # a template that raises on a plain conversation is as bad as a wrong one
            return TemplateCheck(True, f"the tokenizer's chat template fails: {type(exc).__name__}: {exc}")
        if got != chatml(messages, gen):
            return TemplateCheck(
                True,
                f"the tokenizer's chat template {problem}: got {got[-60:]!r}, expected {chatml(messages, gen)[-60:]!r}",
            )
    return TemplateCheck(False, "tokenizer template matches ChatML")
