"""`train run CONFIG`: LoRA (QLoRA on CUDA) on curated shards, then a check that the model stops.

transformers' Trainer and peft do the heavy lifting; this module gets right what silently ruins
fine-tunes: the chat template (checked, ChatML fallback), labels only on what the model should
write (assistant turns and their `<|im_end|>`), a pad token that is not EOS, truncation counted,
validation without leakage, and — after training — the stop rate: how many generations end with
the end-of-turn token before `max_new_tokens`.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from curate.io.shards import write_json
from curate.train.chat import IM_END, IM_START, TemplateCheck, chatml, check_template
from curate.train.config import EMBEDDED, TrainConfig
from curate.train.data import TrainData, TrainDataError, load
from curate.train.encode import IGNORE, EncodeStats, encode_record, pad_token_id
from curate.train.pack import TokenCount, collate, pack
from curate.train.tiny import CHATML_TEMPLATE, build_model, build_tokenizer


def _texts(data: TrainData) -> list[str]:
    rows = data.train.select("text", "messages").to_dicts()
    return [r["text"] if r["text"] is not None else chatml(r["messages"]) for r in rows]


def _records(df, include_text: bool) -> list[dict]:
    rows = df.select("id", "text", "messages").to_dicts()
    return [r for r in rows if r["messages"] or (include_text and r["text"])]


def resolve_quantization(requested: str, device: str) -> str:
    """What will really be loaded: `nf4` or `none`. auto is NF4 on CUDA and none on a CPU; nf4 is NF4 on
    any device bitsandbytes supports; a request that cannot be honoured is an error, never a fallback."""
    if requested == "none" or (requested == "auto" and device != "cuda"):
        return "none"
    try:
        import bitsandbytes
    except ImportError as exc:
        raise TrainDataError(
            f"quantization: {requested} needs bitsandbytes, which cannot be imported ({exc}); "
            "install curate's pinned bitsandbytes==0.50.2, or set quantization: none"
        ) from None
    major, minor = (int(x) for x in bitsandbytes.__version__.split(".")[:2])
    if device == "cpu" and (major, minor) < (0, 48):
        raise TrainDataError(
            f"quantization: nf4 on a CPU needs bitsandbytes >= 0.48 (found {bitsandbytes.__version__}); "
            "set quantization: none"
        )
    return "nf4"


def quantization_label(quantization: str, device: str) -> str:
    if quantization == "none":
        return "none"
    import bitsandbytes

    return f"nf4 (bitsandbytes {bitsandbytes.__version__}, {device}, double quantisation, bf16 compute)"


def base_kwargs(quantization: str, device: str) -> dict:
    """from_pretrained arguments for a base model: 4-bit NF4 (double quantisation, bf16 compute) placed on
    the device, or full precision (bf16 on CUDA)."""
    import torch

    kwargs: dict = {"attn_implementation": "sdpa"}
    if quantization == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["dtype"] = torch.bfloat16
        kwargs["device_map"] = {"": 0} if device == "cuda" else "cpu"
    elif device == "cuda":
        kwargs["dtype"] = torch.bfloat16
    return kwargs


def trained_quantization(adapter: Path) -> str:
    """`nf4` when the adapter was trained on a 4-bit base (its train_report.json says so), else `none`."""
    from curate.io.shards import read_json

    report = adapter.parent / "train_report.json"
    return (
        "nf4" if report.is_file() and str(read_json(report).get("quantization", "none")).startswith("nf4") else "none"
    )


def load_model(config: TrainConfig, data: TrainData, device: str, out: Path):
    """(tokenizer, model, what was loaded, quantization): every model, the embedded one included, is
    loaded from a Hugging Face model folder by the same from_pretrained code, so `quantization`
    applies to all of them. The embedded model is built (tokenizer trained on the shards, random
    init) and saved as such a folder under `<output_dir>/base_model` first."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, what = config.base_model, config.base_model
    if config.base_model == EMBEDDED:
        e = config.embedded
        tokenizer = build_tokenizer(_texts(data), e.vocab_size)
        model = build_model(
            tokenizer,
            e.hidden,
            e.layers,
            e.heads,
            e.kv_heads,
            max_positions=max(1024, config.max_length),
            seed=config.seed,
        )
        base = (out / "base_model").resolve()
        model.save_pretrained(str(base))
        tokenizer.save_pretrained(str(base))
        del model
        source, what = str(base), "embedded Qwen2 (random init) + BPE tokenizer trained on the shards"
    quantization = resolve_quantization(config.quantization, device)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, **base_kwargs(quantization, device))
    if quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
        plain_cpu_layout(model)
        what += " (4-bit NF4, double quantisation)"
    return tokenizer, model, what, quantization


def plain_cpu_layout(model, training: bool = True) -> None:
    """On a CPU with AVX512-BF16, bitsandbytes repacks a 4-bit layer's weights in place, for a faster
    kernel, on its first forward pass without gradients (an evaluation). Training that follows then
    fails ("a view of a leaf Variable ... in-place operation"), and a layer narrower than a
    quantisation block (or not a multiple of 32 wide) fails outright. The packing is an inference
    speed-up: training keeps the plain layout on every CPU; inference keeps it where it cannot pack."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu") and (training or not _packable(module)):
            module.support_avx512bf16_for_cpu = False


def _packable(module) -> bool:
    state = getattr(module.weight, "quant_state", None)
    block = state.blocksize if state is not None else 64
    return module.in_features % block == 0 and module.out_features % 32 == 0


def _encode_all(tokenizer, records: list[dict], config: TrainConfig, stats: EncodeStats) -> list[dict]:
    """Ids and labels of every record with something to learn (the rest are counted in stats)."""
    rows = (encode_record(tokenizer, r, config.train_on, config.max_length, stats) for r in records)
    return [{"input_ids": e.input_ids, "labels": e.labels} for e in rows if e is not None]


def load_adapter(adapter: Path):
    """(model with the LoRA adapter on its base, tokenizer) from a folder `train run` wrote."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not (adapter / "adapter_config.json").is_file():
        raise TrainDataError(f"{adapter}: not a LoRA adapter folder (no adapter_config.json)")
    hf_logging.disable_progress_bar()
    # the base as it was trained: 4-bit if the adapter was trained on a 4-bit base
    kwargs = base_kwargs(trained_quantization(adapter), "cuda" if torch.cuda.is_available() else "cpu")
    model = AutoPeftModelForCausalLM.from_pretrained(str(adapter), **kwargs)
    plain_cpu_layout(model, training=False)
    return model, AutoTokenizer.from_pretrained(str(adapter))


def stop_check(model, tokenizer, records: list[dict], config: TrainConfig, device: str) -> dict:
    """Generate for validation prompts; the share that ends with `<|im_end|>` before the limit."""
    import torch

    chats = [r for r in records if r["messages"] and r["messages"][-1]["role"] == "assistant"]
    sample = random.Random(config.seed).sample(chats, min(config.stop_check.samples, len(chats)))
    end = tokenizer.convert_tokens_to_ids(IM_END)
    stopped, lengths, answers = 0, [], []
    model.eval()
    for r in sample:
        prompt = chatml(r["messages"][:-1], add_generation_prompt=True)
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=config.stop_check.max_new_tokens,
                do_sample=False,
                eos_token_id=end,
                pad_token_id=tokenizer.pad_token_id,
            )
        new = out[0, ids.shape[1] :].tolist()
        stopped += end in new
        lengths.append(new.index(end) + 1 if end in new else len(new))
        answers.append(tokenizer.decode(new[: lengths[-1]], skip_special_tokens=True).strip())
    rate = stopped / len(sample) if sample else None
    references = [r["messages"][-1]["content"].strip() for r in sample]
    return {
        "samples": len(sample),
        "stopped": stopped,
        "stop_rate": rate,
        "mean_new_tokens": sum(lengths) / len(lengths) if lengths else None,
        "max_new_tokens": config.stop_check.max_new_tokens,
        "task": task_metrics(answers, references, chats),
        "warning": (
            f"only {rate:.0%} of generations stopped: the model has not learned to end its turn"
            if rate is not None and rate < config.stop_check.min_stop_rate
            else None
        ),
    }


CLASSES_MAX = 20  # validation answers drawn from at most this many distinct short strings: classification-style


def task_metrics(answers: list[str], references: list[str], records: list[dict]) -> dict | None:
    """Accuracy and macro-F1 when the answers are labels (few distinct short answers across the
    validation records), ROUGE-L F1 otherwise."""
    if not answers:
        return None
    distinct = {r["messages"][-1]["content"].strip() for r in records}
    if len(distinct) <= CLASSES_MAX and all(len(d.split()) <= 5 for d in distinct):
        classes = sorted(distinct)
        f1 = []
        for c in classes:
            tp = sum(a == c and ref == c for a, ref in zip(answers, references))
            fp = sum(a == c and ref != c for a, ref in zip(answers, references))
            fn = sum(a != c and ref == c for a, ref in zip(answers, references))
            f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
        return {
            "kind": "classification",
            "classes": len(classes),
            "accuracy": round(sum(a == ref for a, ref in zip(answers, references)) / len(answers), 4),
            "macro_f1": round(sum(f1) / len(f1), 4),
        }
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    scores = [scorer.score(ref, a)["rougeL"].fmeasure for a, ref in zip(answers, references)]
    return {"kind": "generation", "rouge_l_f1": round(sum(scores) / len(scores), 4)}


def _loss_curve(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _checkpointing(args_cls, config: TrainConfig) -> dict:
    """transformers 5 renamed gradient_checkpointing to activation_checkpointing; older ones lack it."""
    import inspect

    name = (
        "activation_checkpointing"
        if "activation_checkpointing" in inspect.signature(args_cls.__init__).parameters
        else "gradient_checkpointing"
    )
    return {name: config.gradient_checkpointing}


def _prepare_tokenizer(config: TrainConfig, tokenizer, model) -> tuple[TemplateCheck, int]:
    """A ChatML tokenizer with a template that renders what the model is trained on, and a pad token."""
    missing = [t for t in (IM_START, IM_END) if t not in tokenizer.get_vocab()]
    if missing:
        raise TrainDataError(
            f"{config.base_model}: its tokenizer has no {missing}; only ChatML models (e.g. Qwen2/2.5/3) are supported"
        )
    template = check_template(tokenizer)
    if template.use_builtin:
        tokenizer.chat_template = CHATML_TEMPLATE  # the saved tokenizer then renders what the model was trained on
    pad, added = pad_token_id(tokenizer)
    if added:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = pad
    return template, pad


@dataclass
class _Encoded:
    rows: dict[str, list[dict]]  # train (packed, if asked) and validation, as the trainer gets them
    stats: dict[str, EncodeStats]
    trained: dict[str, int]  # examples per split before packing
    packing: dict | None
    validation_records: list[dict]  # for the stop check


def _encode(config: TrainConfig, tokenizer, data: TrainData) -> _Encoded:
    stats = {"train": EncodeStats(), "validation": EncodeStats()}
    records = {
        "train": _records(data.train, config.include_text_records),
        "validation": _records(data.validation, config.include_text_records),
    }
    rows = {}
    for name, recs in records.items():
        rows[name] = _encode_all(tokenizer, recs, config, stats[name])
        if not rows[name]:
            raise TrainDataError(f"{config.shards}: no {name} record left to train on ({len(recs)} chat records)")
    if config.max_eval_records and len(rows["validation"]) > config.max_eval_records:
        rows["validation"] = random.Random(config.seed).sample(rows["validation"], config.max_eval_records)
    trained = {name: len(r) for name, r in rows.items()}
    packing = None
    if config.packing:
        rows["train"], stats_packed = pack(rows["train"], config.max_length)
        packing = stats_packed.to_dict()
    return _Encoded(rows, stats, trained, packing, records["validation"])


def _training_args(config: TrainConfig, out: Path, device: str, quantization: str):
    """Hugging Face TrainingArguments for this config on this device, and the optimizer they name."""
    import torch
    from transformers import TrainingArguments

    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    # paged 8-bit AdamW pages optimizer state between GPU and CPU memory: a CUDA feature; a plain AdamW elsewhere
    optimizer = "paged_adamw_8bit" if quantization == "nf4" and device == "cuda" else "adamw_torch"
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_ratio,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        eval_strategy="steps",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=max(1, config.eval_steps // 5),
        report_to="none",
        seed=config.seed,
        data_seed=config.seed,
        train_sampling_strategy="group_by_length" if config.group_by_length and not config.packing else "random",
        bf16=bf16,
        use_cpu=device == "cpu",
        optim=optimizer,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        **_checkpointing(TrainingArguments, config),
    )
    return args, optimizer


def _trainer(config: TrainConfig, model, args, encoded: _Encoded, pad: int, out: Path, count: TokenCount):
    """A Trainer that counts the tokens of every training batch, logging to its own TensorBoard folder."""
    from transformers import EarlyStoppingCallback, PrinterCallback, Trainer
    from transformers.integrations import TensorBoardCallback

    # Each run logs into its own folder. Setting TENSORBOARD_LOGGING_DIR instead is per process: a second run in
    # the same process (a notebook, a sweep, a test worker) wrote into the first run's folder.
    tensorboard = TensorBoardCallback()
    tensorboard.logging_dir = str(out / "tensorboard")
    callbacks = [tensorboard]
    if config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))

    class CountingTrainer(Trainer):
        """Counts the tokens of every training batch (evaluation batches do not pass here)."""

        def training_step(self, model, inputs, *rest, **kwargs):
            count.add(inputs)
            return super().training_step(model, inputs, *rest, **kwargs)

    trainer = CountingTrainer(
        model=model,
        args=args,
        train_dataset=encoded.rows["train"],
        eval_dataset=encoded.rows["validation"],
        data_collator=collate(pad),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # the losses go to TensorBoard and the report, not raw dicts on stdout
    return trainer


def run(config: TrainConfig, config_path: Path | None = None) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    started = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(config.output_dir)
    data = load(config.shards, config.train_split, config.validation_split)
    tokenizer, model, loaded, quantization = load_model(config, data, device, out)
    template, pad = _prepare_tokenizer(config, tokenizer, model)
    encoded = _encode(config, tokenizer, data)
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    args, optimizer = _training_args(config, out, device, quantization)
    count = TokenCount(pad)
    trainer = _trainer(config, model, args, encoded, pad, out, count)
    before = trainer.evaluate()["eval_loss"]
    loop = trainer.train().metrics["train_runtime"]
    after = trainer.evaluate()["eval_loss"]
    adapter = out / "adapter"
    model.save_pretrained(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    _loss_curve(trainer.state.log_history, out / "loss_curve.png")
    stop = stop_check(model, tokenizer, encoded.validation_records, config, device)
    report = {
        "format": "curate.train_report/1",
        "config": config.model_dump(mode="json"),
        "config_path": str(config_path) if config_path else None,
        "model": loaded,
        "device": device,
        "quantization": quantization_label(quantization, device),
        "optimizer": optimizer,
        "template": asdict(template),
        "pad_token_id": pad,
        "eos_token_id": tokenizer.convert_tokens_to_ids(IM_END),
        "lineage": data.lineage,
        "examples": {
            name: {
                "records": s.records,
                "truncated": s.truncated,
                "dropped": len(s.dropped),
                "dropped_examples": s.dropped[:10],
                "trained": encoded.trained[name],
            }
            for name, s in encoded.stats.items()
        },
        "packing": encoded.packing,
        # the training loop (its evaluations and checkpoints included): real tokens per second, padding share
        "throughput": {
            "train_seconds": round(loop, 2),
            "tokens": count.tokens,
            "slots": count.slots,
            "padding_share": round(count.padding_share, 4),
            "tokens_per_s": round(count.tokens / loop, 1) if loop else None,
        },
        "eval_loss": {"before": round(before, 4), "after": round(after, 4), "best": trainer.state.best_metric},
        "steps": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "stop_check": stop,
        "adapter": str(adapter),
        "loss_curve": str(out / "loss_curve.png"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(out / "train_report.json", report, sort_keys=False)
    return report


def main(config_path: str) -> None:
    from curate.train.config import load_config

    config, path = load_config(config_path)
    report = run(config, path)
    print(json.dumps({k: report[k] for k in ("eval_loss", "stop_check", "adapter")}, indent=2))


def evaluate(adapter: Path, shards: str | None = None) -> dict:
    """Eval loss and the stop check for a saved adapter, on the validation split of the shards it
    was trained on (from its train_report.json) or of `shards`."""
    import torch

    from curate.io.shards import read_json

    report_path = adapter.parent / "train_report.json"
    if not report_path.is_file():
        raise TrainDataError(f"{adapter}: no train_report.json beside it; was it written by `train run`?")
    trained = read_json(report_path)
    config = TrainConfig.model_validate(trained["config"])
    source = shards or trained["lineage"]["path"]
    data = load(source, config.train_split, config.validation_split)
    model, tokenizer = load_adapter(adapter)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if trained_quantization(adapter) == "none":  # a 4-bit base is placed on its device when loaded
        model.to(device)
    model.eval()
    records = _records(data.validation, config.include_text_records)
    encoded = _encode_all(tokenizer, records, config, EncodeStats())
    collate_batch = collate(tokenizer.pad_token_id)
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(encoded), config.batch_size):
            batch = collate_batch(encoded[start : start + config.batch_size])
            batch = {k: v.to(device) for k, v in batch.items()}
            n = int((batch["labels"][:, 1:] != IGNORE).sum())  # the model shifts labels by one
            total += float(model(**batch).loss) * n
            tokens += n
    return {
        "adapter": str(adapter),
        "shards": source,
        "lineage": data.lineage,
        "records": len(encoded),
        "eval_loss": round(total / tokens, 4) if tokens else None,
        "trained_eval_loss": trained["eval_loss"]["after"],
        "stop_check": stop_check(model, tokenizer, records, config, device),
    }
