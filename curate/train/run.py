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
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from curate.io.shards import write_json
from curate.train import classify
from curate.train.chat import IM_END, IM_START, TemplateCheck, chatml, check_template
from curate.train.classify import task_of
from curate.train.config import EMBEDDED, TrainConfig
from curate.train.data import TrainData, TrainDataError, load
from curate.train.encode import IGNORE, EncodeStats, encode_record, pad_token_id
from curate.train.pack import TokenCount, collate, pack
from curate.train.progress import Progress
from curate.train.tiny import CHATML_TEMPLATE, build_model, build_tokenizer


def _texts(data: TrainData) -> list[str]:
    """The training records as text (what the embedded tokenizer is trained on): documents, chats, and both
    answers of preference pairs."""
    sides = [c for c in ("chosen", "rejected") if c in data.train.columns]
    rows = data.train.select("text", "messages", *sides).to_dicts()
    texts = []
    for r in rows:
        texts.append(r["text"] if r["text"] is not None else chatml(r["messages"] or []))
        texts += [chatml(r[side]) for side in sides if r[side]]
    return texts


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


def load_model(config: TrainConfig, data: TrainData, device: str, out: Path, classes: list[str] | None = None):
    """(tokenizer, model, what was loaded, quantization): every model, the embedded one included, is
    loaded from a Hugging Face model folder by the same from_pretrained code, so `quantization`
    applies to all of them. The embedded model is built (tokenizer trained on the shards, random
    init) and saved as such a folder under `<output_dir>/base_model` first. With `classes`, the base
    gets a classification head over them (its ForSequenceClassification class, head initialised fresh)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # loading bars for a local folder say nothing; Progress reports the training

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
            tied=not e.train_embeddings,
        )
        base = (out / "base_model").resolve()
        model.save_pretrained(str(base))
        tokenizer.save_pretrained(str(base))
        del model
        source, what = str(base), "embedded Qwen2 (random init) + BPE tokenizer trained on the shards"
    quantization = resolve_quantization(config.quantization, device)
    tokenizer = AutoTokenizer.from_pretrained(source)
    if classes:
        model = classifier_base(source, classes, **base_kwargs(quantization, device))
        what += f" with a classification head over {len(classes)} labels"
    else:
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


def eval_sample(rows: list, config: TrainConfig) -> list:
    """The validation rows evaluated on: a seeded sample of at most `max_eval_records`, the same every time
    (in `train run`, at every evaluation, and in `train eval`)."""
    limit = config.max_eval_records
    return random.Random(config.seed).sample(rows, limit) if limit and len(rows) > limit else rows


def _encode_all(tokenizer, records: list[dict], config: TrainConfig, stats: EncodeStats) -> list[dict]:
    """Ids and labels of every record with something to learn (the rest are counted in stats)."""
    rows = (encode_record(tokenizer, r, config.train_on, config.max_length, stats) for r in records)
    return [{"input_ids": e.input_ids, "labels": e.labels} for e in rows if e is not None]


def _trained_report(adapter: Path) -> dict:
    from curate.io.shards import read_json

    report = adapter.parent / "train_report.json"
    return read_json(report) if report.is_file() else {}


def trained_task(adapter: Path) -> str:
    """`classification` when the adapter carries a classification head (its train_report.json says so)."""
    return _trained_report(adapter).get("task", "sft")


def classifier_base(source: str, labels: list[str], **kwargs):
    """`source` (a causal LM folder) with a classification head over `labels`; its load report, which lists
    the new head as missing weights, is expected and not shown."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={c: i for i, c in enumerate(labels)},
            **kwargs,
        )
    finally:
        hf_logging.set_verbosity(verbosity)


def load_adapter(adapter: Path):
    """(model with the LoRA adapter on its base, tokenizer) from a folder `train run` wrote: a causal LM, or
    the base with its classification head for a classification adapter."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from peft import AutoPeftModelForCausalLM, PeftConfig, PeftModel
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not (adapter / "adapter_config.json").is_file():
        raise TrainDataError(f"{adapter}: not a LoRA adapter folder (no adapter_config.json)")
    hf_logging.disable_progress_bar()
    # the base as it was trained: 4-bit if the adapter was trained on a 4-bit base
    kwargs = base_kwargs(trained_quantization(adapter), "cuda" if torch.cuda.is_available() else "cpu")
    trained = _trained_report(adapter)
    if trained.get("task") == "classification":
        base = PeftConfig.from_pretrained(str(adapter)).base_model_name_or_path
        labels = trained["classification"]["confusion"]["labels"]
        model = PeftModel.from_pretrained(classifier_base(base, labels, **kwargs), str(adapter))
    else:
        model = AutoPeftModelForCausalLM.from_pretrained(str(adapter), **kwargs)
    plain_cpu_layout(model, training=False)
    return model, AutoTokenizer.from_pretrained(str(adapter))


LOOP_MIN_TOKENS = 16  # an answer this long or longer loops when under half of its token 4-grams are distinct


def _loops(tokens: list[int]) -> bool:
    grams = [tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3)]
    return len(tokens) >= LOOP_MIN_TOKENS and len(set(grams)) < 0.5 * len(grams)


def stop_check(model, tokenizer, records: list[dict], config: TrainConfig, device: str) -> dict:
    """Greedy answers to held-out prompts, judged as answers: does each end with `<|im_end|>` (a cut-off one
    ran past twice its reference's length), is it empty, does it loop; and is the median ratio of answer
    to reference length plausible? A model that stops at once, or repeats one line, does not pass."""
    import torch

    chats = [r for r in records if r["messages"] and r["messages"][-1]["role"] == "assistant"]
    sample = random.Random(config.seed).sample(chats, min(config.stop_check.samples, len(chats)))
    end = tokenizer.convert_tokens_to_ids(IM_END)
    check = config.stop_check
    kinds, lengths, ratios, answers = Counter(), [], [], []
    model.eval()
    for r in sample:
        reference = len(tokenizer(r["messages"][-1]["content"], add_special_tokens=False)["input_ids"]) + 1
        budget = min(check.max_new_tokens, 2 * reference + 8)
        prompt = chatml(r["messages"][:-1], add_generation_prompt=True)
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=budget,
                do_sample=False,
                eos_token_id=end,
                pad_token_id=tokenizer.pad_token_id,
            )
        new = out[0, ids.shape[1] :].tolist()
        stopped = end in new
        body = new[: new.index(end)] if stopped else new
        kind = "cut_off" if not stopped else "empty" if not body else "loops" if _loops(body) else "ok"
        kinds[kind] += 1
        lengths.append(len(body) + stopped)
        ratios.append((len(body) + stopped) / min(reference, budget))
        answers.append(tokenizer.decode(body, skip_special_tokens=True).strip())
    n = len(sample)
    rate = kinds["ok"] / n if n else None
    median = round(statistics.median(ratios), 3) if ratios else None
    low, high = check.length_ratio
    problems = []
    if rate is not None and rate < check.min_stop_rate:
        bad = ", ".join(f"{kinds[k]} {k.replace('_', ' ')}" for k in ("cut_off", "empty", "loops") if kinds[k])
        problems.append(f"only {rate:.0%} of {n} answers are well formed ({bad}): the model has not learned to answer")
    if median is not None and not low <= median <= high:
        problems.append(
            f"answers are {'too short' if median < low else 'too long'}: median length {median}x the reference's "
            f"(plausible: {low}-{high}x)"
        )
    references = [r["messages"][-1]["content"].strip() for r in sample]
    return {
        "samples": n,
        "passed": None if not n else not problems,
        "stopped": n - kinds["cut_off"],
        "stop_rate": rate,  # well-formed answers: ended with <|im_end|>, not empty, not looping
        "answers": {k: kinds[k] for k in ("ok", "cut_off", "empty", "loops")},
        "mean_new_tokens": sum(lengths) / len(lengths) if lengths else None,
        "median_length_ratio": median,
        "length_ratio_band": [low, high],
        "max_new_tokens": check.max_new_tokens,
        "task": task_metrics(answers, references, chats),
        "warning": "; ".join(problems) or None,
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
            texts = int(getattr(data, name)["text"].is_not_null().sum())
            hint = (
                f"; it holds {texts:,} text records: `task: classification` trains a classifier on labelled ones, "
                "`include_text_records: true` trains on the texts as documents"
                if texts and not config.include_text_records
                else ""
            )
            raise TrainDataError(f"{config.shards}: no {name} record left to train on ({len(recs)} chat records){hint}")
    rows["validation"] = eval_sample(rows["validation"], config)
    trained = {name: len(r) for name, r in rows.items()}
    packing = None
    if config.packing:
        rows["train"], stats_packed = pack(rows["train"], config.max_length)
        packing = stats_packed.to_dict()
    return _Encoded(rows, stats, trained, packing, records["validation"])


def _training_args(config: TrainConfig, out: Path, device: str, quantization: str, kind=None, **extra):
    """Hugging Face TrainingArguments (or `kind`, a subclass such as TRL's DPOConfig, with `extra` settings)
    for this config on this device, and the optimizer they name."""
    import torch
    from transformers import TrainingArguments

    kind = kind or TrainingArguments
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    # paged 8-bit AdamW pages optimizer state between GPU and CPU memory: a CUDA feature; a plain AdamW elsewhere
    optimizer = "paged_adamw_8bit" if quantization == "nf4" and device == "cuda" else "adamw_torch"
    settings = dict(
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
    return kind(**{**settings, **extra}), optimizer


def _trainer(
    config: TrainConfig,
    model,
    args,
    rows: dict,
    collator,
    out: Path,
    count: TokenCount,
    echo,
    loss=None,
    kind=None,
    **extra,
):
    """A Trainer that counts the tokens of every training batch, prints its progress and logs to its own
    TensorBoard folder; `loss` replaces its compute_loss (the classification head's weighted loss)."""
    from transformers import EarlyStoppingCallback, PrinterCallback, Trainer
    from transformers.integrations import TensorBoardCallback

    kind = kind or Trainer
    # Each run logs into its own folder. Setting TENSORBOARD_LOGGING_DIR instead is per process: a second run in
    # the same process (a notebook, a sweep, a test worker) wrote into the first run's folder.
    tensorboard = TensorBoardCallback()
    tensorboard.logging_dir = str(out / "tensorboard")
    callbacks = [Progress(count, echo, len(rows["validation"])), tensorboard]  # Progress first: it adds tokens/s
    if config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))

    class CountingTrainer(kind):
        """Counts the tokens of every training batch (evaluation batches do not pass here)."""

        def training_step(self, model, inputs, *rest, **kwargs):
            count.add(inputs)
            return super().training_step(model, inputs, *rest, **kwargs)

        if loss is not None:

            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                return loss(model, inputs, return_outputs, num_items_in_batch)

    trainer = CountingTrainer(
        model=model,
        args=args,
        train_dataset=rows["train"],
        eval_dataset=rows["validation"],
        data_collator=collator,
        callbacks=callbacks,
        **extra,
    )
    trainer.remove_callback(PrinterCallback)  # Progress prints; raw dicts on stdout help nobody
    return trainer


# What `train run` writes into its output folder; a folder holding anything else is not its to write into.
OUTPUT_NAMES = {
    "base_model",
    "checkpoints",
    "adapter",
    "tensorboard",
    "train_report.json",
    "loss_curve.png",
    "classification_metrics.json",
    "dpo_metrics.json",
}


def output_folder(config: TrainConfig, data: TrainData) -> Path:
    """The configured folder (`--output-dir`), else a new one under $CURATE_HOME/train/<name>/: never
    inside the checkout unless asked. A folder holding files `train run` did not write is refused."""
    from curate.catalog import curate_home

    if config.output_dir:
        out = Path(config.output_dir)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = curate_home() / "train" / data.lineage["name"] / f"{data.lineage['version']}-{stamp}"
    if out.exists() and not out.is_dir():
        raise TrainDataError(f"output folder {out} is a file")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in OUTPUT_NAMES) if out.is_dir() else []
    if foreign:
        raise TrainDataError(
            f"output folder {out} holds files `train run` did not write ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}); choose an empty or new --output-dir"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(config: TrainConfig, config_path: Path | None = None, echo=_stderr) -> dict:
    """Train as the config says (the task decided by the shards when `task: auto`); write the adapter and
    train_report.json into the output folder; return the report."""
    import torch

    started = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = load(config.shards, config.train_split, config.validation_split, config.test_split)
    task = "dpo" if config.method == "dpo" else task_of(config, data)
    out = output_folder(config, data)
    echo(f"training {task} on {data.lineage['name']}@{data.lineage['version']} ({device}); output: {out}")
    common = {
        "format": "curate.train_report/1",
        "task": task,
        "config": config.model_dump(mode="json"),
        "config_path": str(config_path) if config_path else None,
        "output_dir": str(out),
        "device": device,
        "lineage": data.lineage,
    }
    if task == "dpo":
        report = _run_dpo(config, data, device, out, echo)
    else:
        report = (_run_classification if task == "classification" else _run_sft)(config, data, device, out, echo)
    report = {**common, **report, "seconds": round(time.perf_counter() - started, 1)}
    write_json(out / "train_report.json", report, sort_keys=False)
    return report


def _lora(config: TrainConfig, task_type: str):
    from peft import LoraConfig

    embeddings = config.base_model == EMBEDDED and config.embedded.train_embeddings
    return LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules,
        task_type=task_type,
        # the embedded model's random embeddings are trained in full (a classifier's head is added by peft)
        modules_to_save=["embed_tokens", "lm_head"]
        if embeddings and task_type == "CAUSAL_LM"
        else ["embed_tokens"]
        if embeddings
        else None,
    )


def _train(trainer, tokenizer, out: Path, count: TokenCount) -> tuple[dict, dict, dict]:
    """Evaluate, train, evaluate; save the adapter and the loss curve. (The report's shared part, the
    evaluation metrics before training, after it.)"""
    before = trainer.evaluate()
    loop = trainer.train().metrics["train_runtime"]
    after = trainer.evaluate()
    steps = trainer.state.global_step
    adapter = out / "adapter"
    trainer.model.save_pretrained(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    _loss_curve(trainer.state.log_history, out / "loss_curve.png")
    shared = {
        # the training loop (its evaluations and checkpoints included): real tokens per second, padding share
        "throughput": {
            "train_seconds": round(loop, 2),
            "seconds_per_step": round(loop / steps, 3) if steps else None,
            "steps_per_s": round(steps / loop, 3) if loop else None,
            "tokens": count.tokens,
            "slots": count.slots,
            "padding_share": round(count.padding_share, 4),
            "tokens_per_s": round(count.tokens / loop, 1) if loop else None,
        },
        "eval_loss": {
            "before": round(before["eval_loss"], 4),
            "after": round(after["eval_loss"], 4),
            "best": trainer.state.best_metric,
        },
        "steps": steps,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "adapter": str(adapter),
        "loss_curve": str(out / "loss_curve.png"),
    }
    return shared, before, after


def _run_sft(config: TrainConfig, data: TrainData, device: str, out: Path, echo) -> dict:
    from peft import get_peft_model

    tokenizer, model, loaded, quantization = load_model(config, data, device, out)
    template, pad = _prepare_tokenizer(config, tokenizer, model)
    encoded = _encode(config, tokenizer, data)
    model = get_peft_model(model, _lora(config, "CAUSAL_LM"))
    args, optimizer = _training_args(config, out, device, quantization)
    count = TokenCount(pad)
    trainer = _trainer(config, model, args, encoded.rows, collate(pad), out, count, echo)
    trained, _, _ = _train(trainer, tokenizer, out, count)
    echo("stop check: greedy answers to held-out prompts")
    stop = stop_check(model, tokenizer, encoded.validation_records, config, device)
    return {
        "model": loaded,
        "quantization": quantization_label(quantization, device),
        "optimizer": optimizer,
        "template": asdict(template),
        "pad_token_id": pad,
        "eos_token_id": tokenizer.convert_tokens_to_ids(IM_END),
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
        "evaluation": _evaluation_note(config, encoded.trained["validation"], encoded.stats["validation"].records),
        "packing": encoded.packing,
        **trained,
        "stop_check": stop,
    }


def _evaluation_note(config: TrainConfig, used: int, records: int) -> dict:
    return {
        "split": config.validation_split,
        "records": used,
        "of": records,
        "sample": f"seeded ({config.seed}), at most {config.max_eval_records}" if config.max_eval_records else "all",
    }


def classify_split(model, tokenizer, config: TrainConfig, data: TrainData, device: str) -> dict:
    """The classification metrics of `model` on the held-out split (test, else validation), per label and
    per stratum."""
    label = classify.label_of(config, data)
    held_name, held = data.held_out
    frame = classify.labelled(held, label)
    classes = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    index = {c: i for i, c in enumerate(classes)}
    unseen = sorted({str(v) for v in frame[label].to_list()} - set(classes))
    if unseen:
        raise TrainDataError(
            f"{config.shards}: the {held_name} split has labels the model was not trained on: {unseen[:5]}"
        )
    rows, _ = classify.encode(tokenizer, frame, label, index, config.max_length)
    predicted = classify.predict(model, rows, tokenizer.pad_token_id, config.batch_size, device)
    strata = classify.strata_of(config, data, frame)
    result = classify.metrics(
        frame[label].cast(pl.Utf8).to_list(),
        [classes[p] for p in predicted],
        classes,
        {c: frame[c].to_list() for c in strata},
    )
    return {"split": held_name, "label_column": label, "strata_columns": strata, **result}


def _run_classification(config: TrainConfig, data: TrainData, device: str, out: Path, echo) -> dict:
    from peft import get_peft_model

    label = classify.label_of(config, data)
    held_name, held = data.held_out
    classes = sorted({str(v) for v in data.train[label].drop_nulls().to_list()})
    unseen = sorted({str(v) for v in held[label].drop_nulls().to_list()} - set(classes))
    if unseen:
        raise TrainDataError(f"{config.shards}: the {held_name} split has labels train has not: {unseen[:5]}")
    frames = {"train": classify.labelled(data.train, label), "validation": classify.labelled(data.validation, label)}
    tokenizer, model, loaded, quantization = load_model(config, data, device, out, classes=classes)
    _, pad = _prepare_tokenizer(config, tokenizer, model)
    index = {c: i for i, c in enumerate(classes)}
    rows, cut = {}, {}
    for name, frame in frames.items():
        rows[name], cut[name] = classify.encode(tokenizer, frame, label, index, config.max_length)
    evaluated = eval_sample(rows["validation"], config)
    weights = classify.class_weights([r["labels"] for r in rows["train"]], len(classes), config.class_weights)
    model = get_peft_model(model, _lora(config, "SEQ_CLS"))
    args, optimizer = _training_args(config, out, device, quantization)
    count = TokenCount(pad)
    trainer = _trainer(
        config,
        model,
        args,
        {"train": rows["train"], "validation": evaluated},
        classify.collate(pad),
        out,
        count,
        echo,
        loss=classify.weighted_loss(weights),
    )
    trained, _, _ = _train(trainer, tokenizer, out, count)
    echo(f"classification metrics on the {held_name} split")
    result = {**classify_split(model, tokenizer, config, data, device), "class_weights": weights}
    write_json(out / "classification_metrics.json", result, sort_keys=False)
    return {
        "model": loaded,
        "quantization": quantization_label(quantization, device),
        "optimizer": optimizer,
        "pad_token_id": pad,
        "examples": {name: {"records": len(r), "truncated": cut[name]} for name, r in rows.items()},
        "evaluation": _evaluation_note(config, len(evaluated), len(rows["validation"])),
        **trained,
        "classification": result,
        "stop_check": None,  # a classification head writes no text: nothing to stop
    }


def _run_dpo(config: TrainConfig, data: TrainData, device: str, out: Path, echo) -> dict:
    """DPO on the shards' preference pairs (curate.train.dpo): TRL's DPOTrainer inside the same loop, callbacks
    and checks as SFT."""
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from curate.train.dpo import answer_tokens, pairs, rewards

    rows = {"train": pairs(data.train), "validation": pairs(data.validation)}
    for name, found in rows.items():
        if not found:
            raise TrainDataError(
                f"{config.shards}: no preference pair in the {name} split (records with `messages`, `chosen` and "
                "`rejected`); method: dpo trains on pairs"
            )
    evaluated = eval_sample(rows["validation"], config)
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
    trained, before, after = _train(trainer, tokenizer, out, count)
    evaluations = {}  # the evaluations during training (the final one repeats the last step's)
    for h in trainer.state.log_history:
        if "eval_rewards/accuracies" in h:
            evaluations.setdefault(h["step"], {"step": h["step"], **rewards(h)})
    history = list(evaluations.values())
    metrics = {
        "before": rewards(before),
        "after": rewards(after),
        "evaluations": history,
        "train": [{"step": h["step"], **rewards(h, "")} for h in trainer.state.log_history if "rewards/margins" in h],
        "answer_tokens": {  # the answers' mean lengths: DPO learns length when chosen is the longer one
            "chosen": answer_tokens(tokenizer, evaluated, "chosen"),
            "rejected": answer_tokens(tokenizer, evaluated, "rejected"),
        },
        "beta": d.beta,
        "loss_type": d.loss_type,
    }
    write_json(out / "dpo_metrics.json", metrics, sort_keys=False)
    echo("stop check: greedy answers to held-out prompts, judged against the chosen answers")
    chats = [{"id": r["id"], "messages": r["prompt"] + r["chosen"]} for r in rows["validation"]]
    stop = stop_check(trainer.model, tokenizer, chats, config, device)
    return {
        "model": loaded,
        "quantization": quantization_label(quantization, device),
        "optimizer": optimizer,
        "template": asdict(template),
        "pad_token_id": pad,
        "examples": {name: {"records": len(r)} for name, r in rows.items()},
        "evaluation": _evaluation_note(config, len(evaluated), len(rows["validation"])),
        **trained,
        "dpo": metrics,
        "stop_check": stop,
    }


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
    data = load(source, config.train_split, config.validation_split, config.test_split)
    model, tokenizer = load_adapter(adapter)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if trained_quantization(adapter) == "none":  # a 4-bit base is placed on its device when loaded
        model.to(device)
    model.eval()
    if trained.get("task") == "classification":
        return {
            "adapter": str(adapter),
            "shards": source,
            "lineage": data.lineage,
            "classification": classify_split(model, tokenizer, config, data, device),
            "trained_classification": {k: trained["classification"][k] for k in ("split", "accuracy", "macro_f1")},
        }
    records = _records(data.validation, config.include_text_records)
    encoded = _encode_all(tokenizer, records, config, EncodeStats())
    encoded = eval_sample(encoded, config)  # the sample `train run` evaluated on
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
