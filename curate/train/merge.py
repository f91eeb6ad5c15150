"""`train merge`: the LoRA adapter merged into its base, checked before anyone serves it.

- A 4-bit base is never merged into: it is loaded as it was trained (NF4), de-quantised to its compute
  dtype (bf16) — the weights the adapter was trained against — and the merge happens there; the merged
  model is saved in that dtype. A full-precision base is merged in float32.
- The merged model's logits must match the adapter model's on a few held-out examples, within a
  stated tolerance.
- Serving must stop: the merged model's `generation_config.eos_token_id` and the tokenizer's EOS must
  include the chat template's turn terminator (`<|im_end|>` for ChatML). Where they do not, they are set
  so, and the report says what was changed.
A `merge_report.json` beside the weights records all of it.
"""

from __future__ import annotations

import os
from pathlib import Path

from curate.errors import ConfigError
from curate.io.shards import read_json, write_json
from curate.train.chat import IM_END, chatml
from curate.train.data import TrainDataError

# Largest |logit difference| allowed between the merged model and the adapter model. Merging adds the
# LoRA product to the weights once instead of computing it per token: float32 differs by rounding
# only; bf16 (a de-quantised 4-bit base) by about one bf16 step of the largest logits.
TOLERANCE = {"float32": 1e-3, "bfloat16": 0.25}
PROBES = [
    "What should I do if I miss a dose?",
    "Summarise the main point in one sentence.",
    "Xin chào, bạn khỏe không?",
]


def _examples(adapter: Path, n: int) -> list[str]:
    """Held-out prompts: the validation split the adapter was trained with, else fixed probes."""
    report = adapter.parent / "train_report.json"
    if report.is_file():
        try:
            from curate.train.data import load

            trained = read_json(report)
            data = load(trained["lineage"]["path"], "train", trained["config"].get("validation_split", "validation"))
            if trained.get("task") == "classification":  # the texts the head reads
                texts = [t for t in data.validation["text"].to_list() if t][:n]
                if texts:
                    return texts
            chats = [m for m in data.validation["messages"].to_list() if m][:n]
            if chats:
                return [
                    chatml([{"role": t["role"], "content": t["content"]} for t in m], add_generation_prompt=False)
                    for m in chats
                ]
        except Exception:  # the shards may be gone; the probes still check the merge
            pass
    return [chatml([{"role": "user", "content": p}], add_generation_prompt=True) for p in PROBES[:n]]


def _logits(model, tokenizer, texts: list[str]):
    import torch

    out = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :256]
            out.append(model(input_ids=ids.to(model.device)).logits.float().cpu())
    return out


def _eos(merged, tokenizer) -> dict:
    """The turn terminator in the generation config's EOS ids and as the tokenizer's EOS; fixed if not."""
    end = tokenizer.convert_tokens_to_ids(IM_END)
    gen = merged.generation_config
    before = gen.eos_token_id
    ids = [before] if isinstance(before, int) else list(before or [])
    fixed = []
    if end not in ids:
        gen.eos_token_id = [end, *ids]
        fixed.append(f"generation_config.eos_token_id {before} -> {gen.eos_token_id}")
    if tokenizer.eos_token != IM_END:
        fixed.append(f"tokenizer eos_token {tokenizer.eos_token!r} -> {IM_END!r}")
        tokenizer.eos_token = IM_END
    if gen.pad_token_id is None and tokenizer.pad_token_id is not None:
        gen.pad_token_id = tokenizer.pad_token_id
    return {
        "terminator": IM_END,
        "terminator_id": end,
        "generation_config_eos": gen.eos_token_id,
        "tokenizer_eos": tokenizer.eos_token,
        "fixed": fixed,
    }


def merge(adapter: Path, out: Path, examples: int = 3, force: bool = False) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from curate.train.run import base_kwargs, classifier_base, load_adapter, trained_quantization, trained_task

    if out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(
            f"{out} exists and is not empty; pass --force to write the merged model there, or choose another folder"
        )
    adapted, tokenizer = load_adapter(adapter)
    adapted.eval()
    texts = _examples(adapter, examples)
    expected = _logits(adapted, tokenizer, texts)
    quantization = trained_quantization(adapter)
    base_path = adapted.peft_config["default"].base_model_name_or_path
    device = "cuda" if torch.cuda.is_available() else "cpu"
    classification = trained_task(adapter) == "classification"
    # a classification adapter goes onto the base with a head of the same labels (peft then loads the head)
    labels = [adapted.config.id2label[i] for i in range(len(adapted.config.id2label))] if classification else []
    del adapted

    def load(**kwargs):
        return (
            classifier_base(base_path, labels, **kwargs)
            if labels
            else AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
        )

    if quantization == "nf4":
        base = load(**base_kwargs("nf4", device))
        base = base.dequantize()  # nn.Linear in the compute dtype: the weights the adapter was trained against
        dtype = "bfloat16"
    else:
        base = load(dtype=torch.float32)
        dtype = "float32"
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.eval()
    got = _logits(merged, tokenizer, texts)
    diff = max(float((a - b).abs().max()) for a, b in zip(expected, got))
    agree = sum(int((a.argmax(-1) == b.argmax(-1)).sum()) for a, b in zip(expected, got)) / sum(
        a.argmax(-1).numel() for a in got
    )
    check = {
        "examples": len(texts),
        "max_abs_logit_diff": round(diff, 6),
        "tolerance": TOLERANCE[dtype],
        "top1_agreement": round(agree, 4),
        "passed": diff <= TOLERANCE[dtype],
    }
    eos = None if classification else _eos(merged, tokenizer)  # a classifier writes no text to stop
    report = {
        "format": "curate.merge_report/1",
        "adapter": str(adapter),
        "base": base_path,
        "trained_on": "4-bit NF4 base" if quantization == "nf4" else "full-precision base",
        "merged_into": f"{'de-quantised ' if quantization == 'nf4' else ''}base in {dtype}",
        "saved_dtype": dtype,
        "logits": check,
        "eos": eos,
    }
    if not check["passed"]:
        raise TrainDataError(
            f"merge of {adapter}: the merged model's logits differ from the adapter model's by {diff:.4g} "
            f"(tolerance {TOLERANCE[dtype]}); nothing was written"
        )
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    write_json(out / "merge_report.json", report, sort_keys=False)
    return report
