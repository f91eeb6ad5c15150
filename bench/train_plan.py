"""`train plan`'s memory, speed and token estimates beside what can be measured here and what was published.

Measured on this CPU (the trainer's CPU path: fp32, plain AdamW; NF4 through bitsandbytes 0.50.2, as
`train run` loads it with `quantization: nf4`):

1. Saved activations per decoder layer and token: the tensors autograd keeps for the backward pass
   (`torch.autograd.graph.saved_tensors_hooks`, each storage once, parameters left out), for a model of
   3 layers minus one of 1 layer, on padded batches (an attention mask, as in training). Shapes: the
   embedded default model, and Qwen2.5-0.5B's and Qwen3-0.6B's real widths (fewer layers); LoRA r=16 on
   all linear layers with dropout; QLoRA (NF4) at Qwen2.5-0.5B's widths.
2. The static memory after a training step: base weights (for NF4 the packed 4-bit weights and their
   quantisation state), LoRA weights, their gradients, AdamW's state — summed tensor by tensor.
3. The peak of a training step over the memory before it (peak RSS, its high-water mark reset before the
   step, big allocations returned to the system at once: MALLOC_MMAP_THRESHOLD_), for the embedded model
   and a 2-layer model of Qwen2.5-0.5B's widths with the real 151k vocabulary, trained on real curated
   records (the first 300 of Code Alpaca, curated by pipelines/sft.yaml), batch 8 of the longest records.
4. Tokens: `train plan`'s count with the real Qwen2 tokenizer beside the trainer's own encoding of the
   same records; and the characters per Qwen2 token of the real SFT sets, the constant the data report's
   estimate uses.

Published: Qwen (1)'s own GPU measurements (QwenLM/Qwen README, "Profiling of Memory and Speed", A100,
batch 1, gradient checkpointing, r=64), the estimate made for those architectures and that setup; and
LLaMA-Factory's README rule of thumb (no batch or length stated). Ratios are estimate / measured.
Results: bench/results/train_plan.json; a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from bench.pii_common import commit
from curate.train.plan import (
    GIB,
    LORA,
    LORA_CPU,
    NF4_BYTES,
    QLORA,
    QLORA_CPU,
    QWEN1_ARCHS,
    QWEN1_LORA_R,
    QWEN1_PROFILE,
    QWEN1_SEQS,
    QWEN1_SOURCE,
    Arch,
    Step,
    layer_bytes,
    memory,
    published_mfu,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
RESULT = RESULTS / "train_plan.json"
QWEN2_TOKENIZER = SHARED / "qwen2-tokenizer"
SFT_SET = SHARED / "real-sft" / "code_alpaca_2k.json"
SETS = [SHARED / "real-sft" / "code_alpaca_2k.json", SHARED / "real-sft" / "gpteacher_roleplay.json"]
RECORDS, MAX_LENGTH, R = 300, 512, 16
# the peak measurement's batch and cut per model: the 151k-token output layer makes a step of the
# Qwen-width model slow on 2 cores, so its batch is smaller
PEAK_STEPS = {"embedded": (8, 512), "qwen2.5-0.5b-widths": (4, 256), "qwen2.5-0.5b-widths-nf4": (4, 256)}
SHAPES = {  # (hidden, intermediate, heads, kv heads, head_dim, qk norm): the measured widths
    "embedded": (128, 512, 4, 2, None, False),
    "Qwen2.5-0.5B widths": (896, 4864, 14, 2, None, False),
    "Qwen3-0.6B widths": (1024, 3072, 16, 8, 128, True),
}
# Qwen (1)'s setup (finetune.py): peft of late 2023 made the adapters in the base's dtype (bf16: weight,
# gradient and AdamW's moments 2 bytes each); Q-LoRA runs a GPTQ Int4 model (4 bits + an fp16 scale and a
# 4-bit zero per 128 weights) in plain fp16 under DeepSpeed ZeRO-2 (fp16 adapter and gradient, fp32
# master copy and moments), so the logits stay fp16 (6 bytes per vocabulary entry at the peak).
QWEN1_METHODS = {
    "LoRA": replace(LORA, trainable_bytes=2 + 2 + 4),
    "QLoRA": replace(
        QLORA,
        linear_bytes=(4 + 16 / 128 + 4 / 128) / 8,
        other_bytes=2,
        trainable_bytes=16,
        residual_bytes=2,
        mlp_bytes=2,
        logits_bytes=6,
    ),
}
LLAMA_FACTORY = {  # hiyouga/LLaMA-Factory README, "Hardware Requirement" (GB; no batch or length stated)
    ("Qwen2.5-7B", "LoRA"): 16,
    ("Qwen2.5-7B", "QLoRA"): 6,
    ("Qwen2.5-14B", "LoRA"): 32,
    ("Qwen2.5-14B", "QLoRA"): 12,
}


def _arch(shape: str, layers: int, vocab: int) -> Arch:
    hidden, intermediate, heads, kv, head_dim, qk_norm = SHAPES[shape]
    return Arch(shape, hidden, layers, heads, kv, intermediate, vocab, True, head_dim, not qk_norm, qk_norm)


def _model(shape: str, layers: int, vocab: int, folder: Path, quantization: str):
    """A LoRA model of this shape, loaded as `train run` loads a base (from a saved folder)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

    from curate.train.run import base_kwargs, plain_cpu_layout

    hidden, intermediate, heads, kv, head_dim, qk_norm = SHAPES[shape]
    common = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        tie_word_embeddings=True,
        max_position_embeddings=1024,
    )
    torch.manual_seed(0)
    model = (
        Qwen3ForCausalLM(Qwen3Config(head_dim=head_dim, **common))
        if qk_norm
        else Qwen2ForCausalLM(Qwen2Config(**common))
    )
    path = folder / f"{shape.replace(' ', '_')}-{layers}-{vocab}"
    model.save_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), **base_kwargs(quantization, "cpu"))
    if quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        plain_cpu_layout(model)
    lora = LoraConfig(r=R, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    return model


def _batch(vocab: int, batch: int, seq: int) -> dict:
    """Random ids, the first row padded at its end: a mask, as padded training batches have."""
    import torch

    torch.manual_seed(1)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[0, seq // 2 :] = 0
    ids = torch.randint(0, vocab, (batch, seq))
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def _method_label(quantization: str) -> str:
    return "QLoRA (NF4)" if quantization == "nf4" else "LoRA"


def _saved_bytes(model, batch: dict) -> int:
    """Bytes autograd keeps for the backward pass of one forward, each storage once, parameters left out."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**batch)
    return sum(seen.values())


def saved_per_layer(work: Path) -> list[dict]:
    """Measured and estimated activation bytes per decoder layer and token."""
    rows = []
    cases = [(shape, "none") for shape in SHAPES] + [("Qwen2.5-0.5B widths", "nf4")]
    batch, seq, vocab = 4, 256, 512
    for shape, quantization in cases:
        measured = [
            _saved_bytes(_model(shape, n, vocab, work, quantization), _batch(vocab, batch, seq)) for n in (1, 3)
        ]
        per_token = (measured[1] - measured[0]) / 2 / (batch * seq)
        method = QLORA_CPU if quantization == "nf4" else LORA_CPU
        estimate = layer_bytes(_arch(shape, 1, vocab), method, Step(batch, seq, False, R))
        rows.append(
            {
                "what": f"saved activations per layer and token: {shape}, {_method_label(quantization)}",
                "estimate": round(estimate),
                "measured": round(per_token),
                "ratio": round(estimate / per_token, 3),
                "unit": "bytes",
            }
        )
    return rows


def static_memory(work: Path) -> list[dict]:
    """Weights, LoRA weights, gradients and optimizer state after one step, tensor by tensor."""
    import torch

    rows = []
    vocab, batch, seq = 4000, 2, 64
    for shape, quantization in (("embedded", "none"), ("Qwen2.5-0.5B widths", "none"), ("Qwen2.5-0.5B widths", "nf4")):
        model = _model(shape, 2, vocab, work, quantization)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-4)
        model(**_batch(vocab, batch, seq)).loss.backward()
        optimizer.step()
        measured = {
            "weights": _base_bytes(model),
            "lora": sum(p.nbytes for p in trainable),
            "gradients": sum(p.grad.nbytes for p in trainable),
            "optimizer": sum(
                v.nbytes for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim()
            ),
        }
        method = QLORA_CPU if quantization == "nf4" else LORA_CPU
        estimate = memory(_arch(shape, 2, vocab), method, Step(batch, seq, False, R), context=0)
        label = f"{shape}, 2 layers, {_method_label(quantization)}"
        for part, value in measured.items():
            rows.append(
                {
                    "what": f"{part}: {label}",
                    "estimate": round(estimate[part]),
                    "measured": value,
                    "ratio": round(estimate[part] / value, 3),
                    "unit": "bytes",
                }
            )
    return rows


def _base_bytes(model) -> int:
    """The frozen base: its parameters, and for 4-bit layers the packed weights with their quantisation state."""
    total = 0
    for p in model.parameters():
        if p.requires_grad:
            continue
        total += p.nbytes
        state = getattr(p, "quant_state", None)
        if state is not None:
            total += state.absmax.nbytes + state.code.nbytes
            if state.nested:
                total += state.state2.absmax.nbytes + state.state2.code.nbytes
    return total


def _hwm_mib() -> tuple[float, float]:
    status = Path("/proc/self/status").read_text()
    return tuple(int(re.search(rf"{k}:\s+(\d+)", status).group(1)) / 1024 for k in ("VmHWM", "VmRSS"))


def peak_child(kind: str, shards: Path, folder: Path) -> dict:
    """One model trained for two steps on the longest records: the peak of step 2 over the memory before it
    (step 1 creates the optimizer state). Runs in its own process (see _peak)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from curate.train.data import load
    from curate.train.encode import EncodeStats, encode_record
    from curate.train.pack import collate
    from curate.train.run import _records, _texts

    torch.set_num_threads(2)
    data = load(str(shards))
    if kind == "embedded":
        from curate.train.tiny import build_model, build_tokenizer

        tokenizer = build_tokenizer(_texts(data), 4000)
        lora = LoraConfig(r=R, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
        model = get_peft_model(build_model(tokenizer), lora)
        model.train()
        arch = Arch("embedded", 128, 2, 4, 2, 512, len(tokenizer), True, qkv_bias=True)
        pad = tokenizer.pad_token_id
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(QWEN2_TOKENIZER))
        model = _model("Qwen2.5-0.5B widths", 2, len(tokenizer), folder, "nf4" if kind.endswith("nf4") else "none")
        arch = _arch("Qwen2.5-0.5B widths", 2, len(tokenizer))
        pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    size, cut = PEAK_STEPS[kind]
    encoded = [encode_record(tokenizer, r, "all_assistant", cut, EncodeStats()) for r in _records(data.train, False)]
    rows = sorted(
        ({"input_ids": e.input_ids, "labels": e.labels} for e in encoded if e), key=lambda x: -len(x["input_ids"])
    )
    batch = collate(pad)(rows[:size])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    before = _hwm_mib()[1]
    step()
    peak = _hwm_mib()[0] - before
    seq = batch["input_ids"].shape[1]
    estimate = memory(arch, QLORA_CPU if kind.endswith("nf4") else LORA_CPU, Step(size, seq, False, R), context=0)
    return {
        "what": f"step peak over the memory before it: {kind}, batch {size} x {seq} real tokens",
        "estimate": round((estimate["activations"] + estimate["gradients"]) / 2**20, 1),
        "measured": round(peak, 1),
        "unit": "MiB",
    }


def _peak(kind: str, shards: Path, folder: Path) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "2"}
    p = subprocess.run(
        [sys.executable, "-m", "bench.train_plan", "--child", kind, "--shards", str(shards), "--folder", str(folder)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        raise SystemExit(f"peak measurement {kind} failed:\n{p.stderr[-3000:]}")
    row = json.loads(p.stdout.strip().splitlines()[-1])
    return row | {"ratio": round(row["estimate"] / row["measured"], 3)}


def _curate(work: Path) -> Path:
    head = work / f"code_alpaca_{RECORDS}.json"
    head.write_text(json.dumps(json.loads(SFT_SET.read_text())[:RECORDS]))
    env = {**os.environ, "CURATE_HOME": str(work / "home")}
    cmd = [sys.executable, "-m", "curate", "run", str(REPO / "pipelines" / "sft.yaml"), "--input", str(head)]
    p = subprocess.run([*cmd, "--out", str(work / "shards"), "-q"], cwd=work, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"curating {SFT_SET.name} failed:\n{p.stdout}{p.stderr}")
    return work / "shards"


def tokens(shards: Path) -> list[dict]:
    """`train plan`'s token count with the real Qwen2 tokenizer beside the trainer's encoding, and the
    data report's character estimate beside both."""
    from transformers import AutoTokenizer

    from curate.train.data import load
    from curate.train.encode import EncodeStats, encode_record
    from curate.train.plan import Settings, plan, report_section
    from curate.train.run import _records

    result = plan(str(shards), str(QWEN2_TOKENIZER), Settings(max_length=MAX_LENGTH), models=["Qwen2.5-0.5B"])
    tokenizer = AutoTokenizer.from_pretrained(str(QWEN2_TOKENIZER))
    data = load(str(shards))
    encoded = [
        encode_record(tokenizer, r, "all_assistant", MAX_LENGTH, EncodeStats()) for r in _records(data.train, False)
    ]
    trainer = sum(len(e.input_ids) for e in encoded if e)
    estimated = report_section([data.train.select("text", "messages", "split")], Settings(max_length=MAX_LENGTH))
    return [
        {
            "what": "tokens per epoch: train plan (Qwen2 tokenizer) vs the trainer's encoding",
            "estimate": result["tokens"]["per_epoch"],
            "measured": trainer,
            "ratio": round(result["tokens"]["per_epoch"] / trainer, 4),
            "unit": "tokens",
        },
        {
            "what": "tokens per epoch: the data report's character estimate vs the trainer's encoding",
            "estimate": estimated["tokens_per_epoch"],
            "measured": trainer,
            "ratio": round(estimated["tokens_per_epoch"] / trainer, 3),
            "unit": "tokens",
        },
    ]


def chars_per_token() -> dict:
    """Characters of content per Qwen2 token on the real SFT sets (instruction, input and output joined)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(QWEN2_TOKENIZER))
    out = {}
    for path in SETS:
        rows = json.loads(path.read_text())
        texts = [
            " ".join(str(v) for k, v in r.items() if k in ("instruction", "input", "output", "response")) for r in rows
        ]
        chars = sum(len(t) for t in texts)
        toks = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
        out[path.name] = round(chars / toks, 3)
    return out


def published() -> list[dict]:
    """The estimate for Qwen (1)'s architectures in its own published setup beside its measured figures."""
    rows = []
    for (size, name), values in QWEN1_PROFILE.items():
        arch = QWEN1_ARCHS[size]
        for seq, (gb, seconds) in zip(QWEN1_SEQS, values):
            estimate = memory(arch, QWEN1_METHODS[name], Step(1, seq, True, QWEN1_LORA_R))["total"] / GIB
            rows.append(
                {
                    "what": f"Qwen-{size} {name}, {seq} tokens, batch 1, checkpointing (A100)",
                    "estimate": round(estimate, 1),
                    "measured": gb,
                    "ratio": round(estimate / gb, 3),
                    "unit": "GiB",
                    "mfu": round(published_mfu(size, name, seq), 3),
                    "seconds_per_iteration": seconds,
                }
            )
    return rows


def slopes(rows: list[dict]) -> list[dict]:
    """GiB per 1,000 more tokens, 256 -> 8192: the per-token part (activations, logits) alone."""
    out = []
    for (size, name), values in QWEN1_PROFILE.items():
        mine = [r for r in rows if r["what"].startswith(f"Qwen-{size} {name},")]
        est = (mine[-1]["estimate"] - mine[0]["estimate"]) / (QWEN1_SEQS[-1] - QWEN1_SEQS[0]) * 1000
        pub = (values[-1][0] - values[0][0]) / (QWEN1_SEQS[-1] - QWEN1_SEQS[0]) * 1000
        out.append(
            {
                "what": f"Qwen-{size} {name}: GiB per 1,000 tokens (256 -> 8,192)",
                "estimate": round(est, 3),
                "measured": round(pub, 3),
                "ratio": round(est / pub, 3),
                "unit": "GiB",
            }
        )
    return out


def rule_of_thumb() -> list[dict]:
    from curate.train.plan import ARCHS, METHODS

    rows = []
    for (model, name), gb in LLAMA_FACTORY.items():
        method = METHODS[name.lower()]
        estimate = memory(ARCHS[model], method, Step(1, 512, True, R))["total"] / GIB
        rows.append(
            {
                "what": f"{model} {name}, batch 1 x 512, checkpointing, vs LLaMA-Factory's rule of thumb",
                "estimate": round(estimate, 1),
                "measured": gb,
                "ratio": round(estimate / gb, 3),
                "unit": "GB",
            }
        )
    return rows


def table(rows: list[dict]) -> list[str]:
    lines = ["| what | estimate | measured / published | estimate / measured |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['what']} | {r['estimate']:,} {r['unit']} | {r['measured']:,} {r['unit']} | {r['ratio']} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child")
    parser.add_argument("--shards", type=Path)
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(peak_child(args.child, args.shards, args.folder)))
        return
    import torch

    torch.set_num_threads(2)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="curate-bench-plan-") as tmp:
        work = Path(tmp)
        shards = _curate(work)
        measured = (
            saved_per_layer(work)
            + static_memory(work)
            + [_peak(kind, shards, work) for kind in PEAK_STEPS]
            + tokens(shards)
        )
    qwen = published()
    result = {
        "benchmark": "train plan: memory, speed and token estimates vs measured and published",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(),
        "device": f"cpu ({os.cpu_count()} cores), torch {torch.__version__}",
        "nf4_bytes_per_weight": round(NF4_BYTES, 5),
        "measured_here": measured,
        "published": {"source": QWEN1_SOURCE, "rows": qwen, "slopes": slopes(qwen)},
        "rule_of_thumb": {"source": "hiyouga/LLaMA-Factory README, Hardware Requirement", "rows": rule_of_thumb()},
        "chars_per_qwen2_token": chars_per_token(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    lines = ["## train plan: estimate vs measured (this CPU) vs published", "", *table(measured), ""]
    lines += [f"Published: {QWEN1_SOURCE}", "", *table(qwen + result["published"]["slopes"]), ""]
    lines += ["Rule of thumb: LLaMA-Factory README", "", *table(result["rule_of_thumb"]["rows"]), ""]
    lines += [f"Characters per Qwen2 token: {result['chars_per_qwen2_token']}", ""]
    print("\n".join(lines))
    print(f"wrote {RESULT.relative_to(REPO)} in {result['seconds']} s")


if __name__ == "__main__":
    main()
