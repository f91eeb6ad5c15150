"""`method: dpo`: direct preference optimisation on curated preference pairs, with TRL's DPOTrainer.

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

import random
import statistics
from pathlib import Path

from curate.io.shards import write_json
from curate.train.config import TrainConfig
from curate.train.data import TrainData, TrainDataError

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


def _lengths(tokenizer, rows: list[dict], side: str) -> float | None:
    counts = [sum(len(tokenizer(t["content"], add_special_tokens=False)["input_ids"]) for t in r[side]) for r in rows]
    return round(statistics.mean(counts), 1) if counts else None


def _rewards(metrics: dict, prefix: str = "eval_") -> dict:
    return {k: round(metrics[prefix + k], 4) for k in REWARDS if prefix + k in metrics}


def run_dpo(config: TrainConfig, data: TrainData, device: str, out: Path, echo) -> dict:
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from curate.train.pack import TokenCount
    from curate.train.run import (
        _evaluation_note,
        _lora,
        _loss_curve,
        _prepare_tokenizer,
        _trainer,
        _training_args,
        load_model,
        quantization_label,
        stop_check,
    )

    rows = {"train": pairs(data.train), "validation": pairs(data.validation)}
    for name, found in rows.items():
        if not found:
            raise TrainDataError(
                f"{config.shards}: no preference pair in the {name} split (records with `messages`, `chosen` and "
                "`rejected`); method: dpo trains on pairs"
            )
    evaluated = (
        random.Random(config.seed).sample(rows["validation"], config.max_eval_records)
        if config.max_eval_records and len(rows["validation"]) > config.max_eval_records
        else rows["validation"]
    )
    tokenizer, model, loaded, quantization = load_model(config, data, device, out)
    template, pad = _prepare_tokenizer(config, tokenizer, model)
    d = config.dpo
    args, optimizer = _training_args(
        config,
        out,
        device,
        quantization,
        kind=DPOConfig,
        beta=d.beta,
        loss_type=[d.loss_type],
        max_length=config.max_length,
        truncation_mode=d.truncation_mode,
        precompute_ref_log_probs=d.precompute_ref_log_probs,
        train_sampling_strategy="random",  # pairs have no single length to group by
        remove_unused_columns=True,
    )
    count = TokenCount(pad)
    datasets = {
        "train": Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows["train"]]),
        "validation": Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in evaluated]),
    }
    trainer = _trainer(
        config,
        model,
        args,
        datasets,
        None,
        out,
        count,
        echo,
        kind=DPOTrainer,
        processing_class=tokenizer,
        peft_config=_lora(config, "CAUSAL_LM"),
    )
    # TRL keeps a 4-bit base's trainable copies (the embedded model's embeddings) in bf16, which the fp32
    # activations of a kbit-prepared model then meet in generation; train them in fp32, as SFT does
    for parameter in trainer.model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()
    before = trainer.evaluate()
    loop = trainer.train().metrics["train_runtime"]
    after = trainer.evaluate()
    adapter = out / "adapter"
    trainer.model.save_pretrained(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    _loss_curve(trainer.state.log_history, out / "loss_curve.png")
    evaluations = {}  # the evaluations during training (the final one repeats the last step's)
    for h in trainer.state.log_history:
        if "eval_rewards/accuracies" in h:
            evaluations.setdefault(h["step"], {"step": h["step"], **_rewards(h)})
    history = list(evaluations.values())
    metrics = {
        "before": _rewards(before),
        "after": _rewards(after),
        "evaluations": history,
        "train": [{"step": h["step"], **_rewards(h, "")} for h in trainer.state.log_history if "rewards/margins" in h],
        "answer_tokens": {  # the answers' mean lengths: DPO learns length when chosen is the longer one
            "chosen": _lengths(tokenizer, evaluated, "chosen"),
            "rejected": _lengths(tokenizer, evaluated, "rejected"),
        },
        "beta": d.beta,
        "loss_type": d.loss_type,
    }
    write_json(out / "dpo_metrics.json", metrics, sort_keys=False)
    echo("stop check: greedy answers to held-out prompts, judged against the chosen answers")
    chats = [{"id": r["id"], "messages": r["prompt"] + r["chosen"]} for r in rows["validation"]]
    stop = stop_check(trainer.model, tokenizer, chats, config, device)
    steps = trainer.state.global_step
    return {
        "model": loaded,
        "quantization": quantization_label(quantization, device),
        "optimizer": optimizer,
        "template": {"use_builtin": template.use_builtin, "reason": template.reason},
        "pad_token_id": pad,
        "examples": {name: {"records": len(r)} for name, r in rows.items()},
        "evaluation": _evaluation_note(config, len(evaluated), len(rows["validation"])),
        "throughput": {
            "train_seconds": round(loop, 2),
            "seconds_per_step": round(loop / steps, 3) if steps else None,
            "steps_per_s": round(steps / loop, 3) if loop else None,
        },
        "eval_loss": {
            "before": round(before["eval_loss"], 4),
            "after": round(after["eval_loss"], 4),
            "best": trainer.state.best_metric,
        },
        "dpo": metrics,
        "steps": steps,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "adapter": str(adapter),
        "loss_curve": str(out / "loss_curve.png"),
        "stop_check": stop,
    }
