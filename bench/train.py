"""The trainer beside a plain `transformers.Trainer` + `peft` script: tokens/s, peak RSS, padding.

Both sides train the same Qwen2-shaped model (random weights, the real Qwen2 tokenizer from
../shared/data/qwen2-tokenizer) on the same curated shards (the first 300 records of Code Alpaca from
../shared/data/real-sft, curated by `curate run pipelines/sft.yaml`), with the same label masks
(curate.train.encode: loss on the assistant turns and their `<|im_end|>`), sequence length, batch size,
optimiser and learning rate schedule, LoRA on all linear layers, for one epoch: every training example
is seen once on both sides.

- `train run`: the whole command (the template check, the leakage check, the eval loss before and
  after, the stop check, the report); length-grouped batches, or with packing first-fit rows of
  `max_length`.
- baseline: what a user writes by hand. Padding: `DataCollatorForSeq2Seq` with the Trainer's random
  sampler. Packing: transformers' own `DataCollatorWithFlattening` (each batch's examples in one
  padding-free row).

Variants: LoRA and QLoRA (4-bit NF4, double quantisation, bf16 compute), packing off and on. Each
run is its own process, so peak RSS (ru_maxrss) is that run's alone; the order alternates.
tokens/s counts the real (non-padding) input tokens of the training batches per second of the
training loop; the padding share is the share of batch positions holding padding. On a CUDA
machine the same script trains in bf16 and NF4 on the GPU and also reports peak GPU memory.
Results: bench/results/train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
QWEN2_TOKENIZER = SHARED / "qwen2-tokenizer"
SFT_SET = SHARED / "real-sft" / "code_alpaca_2k.json"
# A Qwen2 shape small enough for two CPU cores; the real vocabulary (151,646 tokens) keeps the
# embedding and output layer at their real width, which dominates a small model's step.
MODEL = {
    "hidden_size": 64,
    "intermediate_size": 192,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
# One epoch over the same training examples on both sides: every example is seen once, so the real tokens
# are the same, and each side meets its widest batch (a short run by steps would compare different draws).
SETTINGS = {
    "records": 300,
    "max_length": 512,
    "batch_size": 8,
    "epochs": 1,
    "learning_rate": 2e-4,
    "warmup_ratio": 0.1,
    "seed": 13,
    "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
}


def _prepare(work: Path) -> tuple[Path, Path]:
    """(curated shards, model folder)."""
    env = {**os.environ, "CURATE_HOME": str(work / "home")}
    shards, head = work / "shards", work / f"code_alpaca_{SETTINGS['records']}.json"
    head.write_text(json.dumps(json.loads(SFT_SET.read_text())[: SETTINGS["records"]]))
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "curate",
            "run",
            str(REPO / "pipelines" / "sft.yaml"),
            "--input",
            str(head),
            "--out",
            str(shards),
            "-q",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        raise SystemExit(f"curating {SFT_SET.name} failed (exit {p.returncode}):\n{p.stdout}{p.stderr}")
    from curate.train.tiny import save_qwen2_like

    m = MODEL
    shape = {
        "hidden": m["hidden_size"],
        "intermediate": m["intermediate_size"],
        "layers": m["num_hidden_layers"],
        "heads": m["num_attention_heads"],
        "kv_heads": m["num_key_value_heads"],
    }
    return shards, save_qwen2_like(QWEN2_TOKENIZER, work / "model", max_positions=SETTINGS["max_length"], **shape)


def _vocab_size(model: Path) -> int:
    return json.loads((model / "config.json").read_text())["vocab_size"]


def _ours(shards: Path, model: Path, quantization: str, packing: bool, out: Path) -> dict:
    from curate.train.config import TrainConfig
    from curate.train.run import run

    s = SETTINGS
    config = TrainConfig(
        base_model=str(model),
        shards=str(shards),
        quantization=quantization,
        packing=packing,
        max_length=s["max_length"],
        batch_size=s["batch_size"],
        epochs=s["epochs"],
        # no evaluation inside the loop (the baseline has none); before and after it, as always
        eval_steps=10_000,
        learning_rate=s["learning_rate"],
        warmup_ratio=s["warmup_ratio"],
        seed=s["seed"],
        lora={"r": s["lora"]["r"], "alpha": s["lora"]["alpha"], "dropout": s["lora"]["dropout"]},
        max_eval_records=32,
        early_stopping_patience=0,
        output_dir=str(out),
        stop_check={"samples": 4, "max_new_tokens": 16},
    )
    report = run(config)
    t = report["throughput"]
    return {
        "train_seconds": t["train_seconds"],
        "tokens": t["tokens"],
        "slots": t["slots"],
        "steps": report["steps"],
        "quantization": report["quantization"],
        "optimizer": report["optimizer"],
    }


def _baseline(shards: Path, model_dir: Path, quantization: str, packing: bool, out: Path) -> dict:
    """A plain transformers + peft script on the same encoded examples."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        BitsAndBytesConfig,
        DataCollatorForSeq2Seq,
        DataCollatorWithFlattening,
        PrinterCallback,
        Trainer,
        TrainingArguments,
    )

    from curate.train.data import load
    from curate.train.encode import EncodeStats, encode_record, pad_token_id
    from curate.train.pack import TokenCount
    from curate.train.run import _records

    s = SETTINGS
    cuda = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    kwargs: dict = {"attn_implementation": "sdpa"}
    if quantization == "nf4":
        kwargs.update(
            quantization_config=BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16,
            ),
            dtype=torch.bfloat16,
            device_map={"": 0} if cuda else "cpu",
        )
    elif cuda:
        kwargs["dtype"] = torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    if quantization == "nf4":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(
        model,
        LoraConfig(
            r=s["lora"]["r"],
            lora_alpha=s["lora"]["alpha"],
            lora_dropout=s["lora"]["dropout"],
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
    )
    pad, _ = pad_token_id(tokenizer)  # the same pad token as train run (the shared tokenizer's is already distinct)
    stats = EncodeStats()
    encoded = [
        encode_record(tokenizer, r, "all_assistant", s["max_length"], stats)
        for r in _records(load(str(shards)).train, False)
    ]
    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in encoded if e is not None]
    collator = DataCollatorWithFlattening() if packing else DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    count = TokenCount(pad)

    def counted(batch):
        out = collator(batch)
        count.add(out)
        return out

    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=s["batch_size"],
        learning_rate=s["learning_rate"],
        lr_scheduler_type="cosine",
        warmup_steps=s["warmup_ratio"],
        num_train_epochs=s["epochs"],
        seed=s["seed"],
        data_seed=s["seed"],
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        logging_steps=10_000,
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        optim="paged_adamw_8bit" if quantization == "nf4" and cuda else "adamw_torch",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=counted)
    trainer.remove_callback(PrinterCallback)
    metrics = trainer.train().metrics
    return {
        "train_seconds": round(metrics["train_runtime"], 3),
        "tokens": count.tokens,
        "slots": count.slots,
        "steps": trainer.state.global_step,
        "quantization": quantization,
        "optimizer": args.optim.value,
    }


def child(side: str, shards: Path, model: Path, quantization: str, packing: bool, out: Path) -> dict:
    start = time.perf_counter()
    result = (_ours if side == "train run" else _baseline)(shards, model, quantization, packing, out)
    result["wall_seconds"] = round(time.perf_counter() - start, 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    import torch

    if torch.cuda.is_available():
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def _run_child(side: str, shards: Path, model: Path, quantization: str, packing: bool, out: Path) -> dict:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.train",
            "--child",
            side,
            "--shards",
            str(shards),
            "--model",
            str(model),
            "--quantization",
            quantization,
            *(["--packing"] if packing else []),
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        raise SystemExit(f"{side} ({quantization}, packing {packing}) failed:\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=["train run", "baseline"])
    parser.add_argument("--shards", type=Path)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--quantization", default="none")
    parser.add_argument("--packing", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.shards, args.model, args.quantization, args.packing, args.out)))
        return
    import torch

    work = Path(tempfile.mkdtemp(prefix="curate-bench-train-"))
    try:
        shards, model = _prepare(work)
        rows = []
        for quantization in ("none", "nf4"):
            for packing in (False, True):
                pair = {}
                for side in (
                    ("train run", "baseline") if packing else ("baseline", "train run")
                ):  # alternate who goes first
                    r = _run_child(
                        side,
                        shards,
                        model,
                        quantization,
                        packing,
                        work / f"{side.replace(' ', '-')}-{quantization}-{packing}",
                    )
                    r["tokens_per_s"] = round(r["tokens"] / r["train_seconds"], 1)
                    r["padding_share"] = round(1 - r["tokens"] / r["slots"], 4) if r["slots"] else 0.0
                    r["tokens_per_step"] = round(r["tokens"] / r["steps"], 1)
                    pair[side] = r
                ours, base = pair["train run"], pair["baseline"]
                rows.append(
                    {
                        "method": "QLoRA (nf4)" if quantization == "nf4" else "LoRA",
                        "packing": packing,
                        "train run": ours,
                        "baseline": base,
                        "tokens_per_s_ratio": round(ours["tokens_per_s"] / base["tokens_per_s"], 3),
                        "peak_rss_ratio": round(ours["peak_rss_mb"] / base["peak_rss_mb"], 3),
                        "wall_ratio": round(ours["wall_seconds"] / base["wall_seconds"], 3),
                    }
                )
        result = {
            "benchmark": "train run vs a plain transformers.Trainer + peft script",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": f"cuda ({torch.cuda.get_device_name(0)})"
            if torch.cuda.is_available()
            else f"cpu ({os.cpu_count()} cores)",
            "torch": torch.__version__,
            "data": f"The first {SETTINGS['records']} records of {SFT_SET.name}, curated by pipelines/sft.yaml",
            "model": {
                "shape": MODEL,
                "vocab": "the real Qwen2 tokenizer",
                "vocab_size": _vocab_size(model),
                "weights": "random",
            },
            "settings": SETTINGS,
            "rows": rows,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
