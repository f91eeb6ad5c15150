"""`method: dpo`: direct preference optimisation on curated preference pairs, with TRL's DPOTrainer
(the loop is `curate.train.run._run_dpo`; this module holds what is particular to pairs).

A pair record holds the prompt turns in `messages` (ending with the user's turn) and the two answers
in `chosen` and `rejected` (lists of assistant turns). TRL renders each with the tokenizer's chat
template — checked against ChatML first, as for SFT — and trains LoRA (QLoRA with `quantization:
nf4`) with the reference model being the same base with the adapter disabled: no second copy of the
weights. The reference log-probs of every pair are computed once before training
(`dpo.precompute_ref_log_probs`). Each evaluation's reward metrics (loss, rewards of chosen and
rejected, margins, accuracy) land in `dpo_metrics.json` and TensorBoard; after training, the stop
check prompts with held-out pairs' prompts and judges the answers against the chosen ones.
"""

from __future__ import annotations

import statistics

REWARDS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


def pairs(frame) -> list[dict]:
    """TRL's conversational preference rows (prompt, chosen, rejected) of the pair records in `frame`."""
    if not {"chosen", "rejected"} <= set(frame.columns):
        return []
    rows = frame.select("id", "messages", "chosen", "rejected").to_dicts()
    return [
        {"id": r["id"], "prompt": r["messages"], "chosen": r["chosen"], "rejected": r["rejected"]}
        for r in rows
        if r["messages"] and r["chosen"] and r["rejected"]
    ]


def answer_tokens(tokenizer, rows: list[dict], side: str) -> float | None:
    counts = [sum(len(tokenizer(t["content"], add_special_tokens=False)["input_ids"]) for t in r[side]) for r in rows]
    return round(statistics.mean(counts), 1) if counts else None


def rewards(metrics: dict, prefix: str = "eval_") -> dict:
    return {k: round(metrics[prefix + k], 4) for k in REWARDS if prefix + k in metrics}
