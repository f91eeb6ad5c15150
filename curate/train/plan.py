"""`train plan SHARDS`: what fine-tuning these shards will take before a GPU is rented — tokens, memory,
time and money for Qwen2.5 and Qwen3 at four sizes, with LoRA and QLoRA.

**Tokens** are counted the way `train run` counts them: the train split's records (chat records, and
plain-text ones with `include_text_records`), each encoded by `curate.train.encode.encode_record` — ChatML
turn by turn, labels only where the model learns — with the base's own tokenizer (`tokenizer`: a local
folder), else with the embedded default (the BPE tokenizer `train run` trains on the shards). What
`max_length` cuts is counted, and the records the cut leaves nothing to learn from are named.

**Memory** for one training step on one GPU, from the published architectures (`ARCHS`) and what our
trainer loads (`curate/train/run.py`):

- weights: LoRA keeps the base in bf16 (2 bytes a parameter). QLoRA stores every linear layer in NF4 with
  double quantisation (4 bits, plus an 8-bit absmax per 64 weights and an fp32 one per 256 of those:
  4.127 bits), and `prepare_model_for_kbit_training` casts everything else (embeddings, output layer,
  norms, biases) to fp32: for Qwen2.5-7B, with its own output layer, 4.1 GiB of the 7.2 GiB.
- LoRA parameters (r on every linear layer of every decoder layer: `all-linear`), fp32 as peft creates
  them: weight 4 + gradient 4 + AdamW's two fp32 moments 8 = 16 bytes; QLoRA on CUDA uses paged 8-bit
  AdamW (two 8-bit moments: 10 bytes).
- activations, per token and decoder layer, from the tensors autograd saves (bf16 autocast, LoRA dropout
  on): the RMSNorm inputs in fp32, each adapted linear layer's dropout mask and input copy, the query,
  the keys and values as SDPA receives them (repeated to every query head when a padding or packing mask
  is present), the mask made additive, the attention output and its log-sum-exp, and the MLP's gate,
  activation and up outputs (fp32 in QLoRA, whose residual stream is fp32). With gradient checkpointing
  only each layer's input is kept, and one layer is recomputed at a time.
- the output layer: the logits in bf16, their fp32 copy for the loss and its log-softmax, and in the
  backward pass the gradient of each: 12 bytes per vocabulary entry per token at the peak — for a 151k
  vocabulary 1.8 MB per token, more than all decoder layers of the small models together.
- overhead: the CUDA context and libraries (1 GiB) and the caching allocator's slack (10% of activations).

Checked by `bench/train_plan.py`: on a CPU the per-layer activations, the static parts and the peak of a
step match what is measured within 3% (the embedded model, Qwen2.5-0.5B's and Qwen3-0.6B's widths, LoRA
and NF4). Against Qwen's published A100 measurements of LoRA the estimate is 0.79-0.96 of the measured
peak (median 0.86; the growth per token agrees within 11%), so a card is said to fit only when the
estimate stays under 85% of its memory.

**Time and cost** per epoch: the token positions of the epoch's batches (padding included: length-grouped
batches as the trainer draws them, or packed rows), times the FLOPs per position (forward, the backward
pass through frozen weights, and the recomputation with checkpointing), divided by the card's peak bf16
throughput times a model FLOPs utilisation (MFU) read off Qwen's own published LoRA/Q-LoRA timings
(A100, `QWEN1_PROFILE`) for the model's size and the tokens of a forward/backward pass (short passes
waste more of the card); times a list price per hour. Every default can be overridden.
"""

from __future__ import annotations

import math
import os
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from curate.train.data import TrainDataError, load
from curate.train.encode import IGNORE, EncodeStats, encode_record

GIB = 2**30

# ---------------------------------------------------------------------------------------------------------
# Architectures: the config.json of each model on the Hugging Face hub (Qwen/<name>/blob/main/config.json):
# hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size, vocab_size,
# tie_word_embeddings, head_dim (Qwen3). Qwen2.5 has biases on q/k/v; Qwen3 has none, and RMSNorms on q and k.


@dataclass(frozen=True)
class Arch:
    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool  # the output layer shares the embedding matrix
    head_dim: int | None = None  # None: hidden / heads
    qkv_bias: bool = False
    qk_norm: bool = False
    fused_qkv: bool = False  # Qwen (1): one c_attn projection for queries, keys and values

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_size

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_size

    def linears(self) -> list[tuple[int, int]]:
        """(in, out) of each linear layer of one decoder layer: what LoRA's `all-linear` adapts."""
        h, q, kv, i = self.hidden, self.q_dim, self.kv_dim, self.intermediate
        attention = [(h, q + 2 * kv)] if self.fused_qkv else [(h, q), (h, kv), (h, kv)]
        return attention + [(q, h), (h, i), (h, i), (i, h)]

    @property
    def linear_params(self) -> int:
        """The decoder layers' linear weights (what NF4 quantises), their biases included."""
        per_layer = sum(a * b for a, b in self.linears()) + (self.q_dim + 2 * self.kv_dim) * self.qkv_bias
        return self.layers * per_layer

    @property
    def other_params(self) -> int:
        """Embeddings, the output layer unless tied, and the norms."""
        norms = self.layers * (2 * self.hidden + 2 * self.head_size * self.qk_norm) + self.hidden
        return self.vocab * self.hidden * (1 if self.tied else 2) + norms

    @property
    def params(self) -> int:
        return self.linear_params + self.other_params

    def lora_params(self, r: int) -> int:
        return self.layers * sum(r * (a + b) for a, b in self.linears())


ARCHS = {
    a.name: a
    for a in (
        Arch("Qwen2.5-0.5B", 896, 24, 14, 2, 4864, 151936, True, qkv_bias=True),
        Arch("Qwen2.5-1.5B", 1536, 28, 12, 2, 8960, 151936, True, qkv_bias=True),
        Arch("Qwen2.5-7B", 3584, 28, 28, 4, 18944, 152064, False, qkv_bias=True),
        Arch("Qwen2.5-14B", 5120, 48, 40, 8, 13824, 152064, False, qkv_bias=True),
        Arch("Qwen3-0.6B", 1024, 28, 16, 8, 3072, 151936, True, head_dim=128, qk_norm=True),
        Arch("Qwen3-1.7B", 2048, 28, 16, 8, 6144, 151936, True, head_dim=128, qk_norm=True),
        Arch("Qwen3-8B", 4096, 36, 32, 8, 12288, 151936, False, head_dim=128, qk_norm=True),
        Arch("Qwen3-14B", 5120, 40, 40, 8, 17408, 151936, False, head_dim=128, qk_norm=True),
    )
}
ARCH_SOURCE = "config.json of Qwen/<model> on the Hugging Face hub"

# ---------------------------------------------------------------------------------------------------------
# What each method holds, in bytes, on a device.

NF4_BYTES = (4 + 8 / 64 + 32 / (64 * 256)) / 8  # 4-bit codes + 8-bit absmax per 64 + fp32 absmax per 256 blocks


@dataclass(frozen=True)
class Method:
    name: str
    optimizer: str
    linear_bytes: float  # per weight of a decoder-layer linear layer
    other_bytes: float  # per embedding, output-layer, norm parameter
    trainable_bytes: float  # per LoRA parameter: weight + gradient + optimizer state
    residual_bytes: int  # the residual stream: what gradient checkpointing keeps per layer
    act_bytes: int  # the activations the layers save (the compute dtype)
    mlp_bytes: int  # the MLP's saved intermediates
    mask_bytes: int  # a dropout mask element (CUDA's fused dropout keeps a bool)
    logits_bytes: int = 12  # per vocabulary entry and token at the output layer's peak (see the module doc)


# What `train run` loads on CUDA (curate/train/run.py: base_kwargs, _training_args).
LORA = Method("LoRA", "adamw_torch", 2, 2, 4 + 4 + 8, 2, 2, 2, 1)
QLORA = Method("QLoRA", "paged_adamw_8bit", NF4_BYTES, 4, 4 + 4 + 2, 4, 2, 4, 1)
# ... and on a CPU: no autocast, everything in fp32, plain AdamW (paging is a CUDA feature).
LORA_CPU = Method("LoRA", "adamw_torch", 4, 4, 16, 4, 4, 4, 4)
QLORA_CPU = Method("QLoRA", "adamw_torch", NF4_BYTES, 4, 16, 4, 4, 4, 4)
METHODS = {"lora": LORA, "qlora": QLORA}

CUDA_CONTEXT = 1 * GIB  # CUDA context, cuBLAS workspaces, kernels: 0.3-1.5 GiB by card and version
ALLOCATOR_SLACK = 0.10  # the caching allocator's rounding and fragmentation, on the activations
# A card fits when the estimate stays under this share of its memory: Qwen's published LoRA peaks run
# above our accounting (estimate / measured 0.79-0.96, median 0.86; bench/train_plan.py).
FIT_SHARE = 0.85


@dataclass(frozen=True)
class Step:
    """One training step's shape."""

    batch: int
    seq: int  # the longest row of the batch
    checkpointing: bool
    lora_r: int = 16
    # a padding or packing mask is present: SDPA gets keys and values repeated to every query head, and the
    # mask as an additive one in the compute dtype, per layer
    expanded_kv: bool = True


def layer_bytes(arch: Arch, method: Method, step: Step) -> float:
    """Activation bytes one decoder layer saves for the backward pass, per token."""
    h, q, i = arch.hidden, arch.q_dim, arch.intermediate
    kv = q if step.expanded_kv else arch.kv_dim
    lora_inputs = sum(a for a, _ in arch.linears())
    return (
        2 * 4 * h  # the two RMSNorms keep their input in fp32
        + 4 * (q + arch.kv_dim) * arch.qk_norm  # Qwen3's query and key norms, likewise
        + (method.mask_bytes + method.act_bytes) * lora_inputs  # each adapter's dropout mask and input
        + len(arch.linears()) * method.act_bytes * step.lora_r  # each adapter's A output
        + method.act_bytes * (2 * q + 2 * kv)  # query, keys, values, attention output
        + 4 * arch.heads  # the attention's log-sum-exp, fp32
        + method.act_bytes * step.seq * step.expanded_kv  # SDPA turns the boolean mask into an additive one
        + method.mlp_bytes * 3 * i  # gate, its activation, up
    )


def memory(arch: Arch, method: Method, step: Step, context: float = CUDA_CONTEXT) -> dict[str, float]:
    """Peak memory of a training step, in bytes, by part. Without checkpointing every layer's activations
    are held when the output layer's backward pass peaks; with it, every layer's input and the larger of
    that peak and one recomputed layer."""
    tokens = step.batch * step.seq
    layer = layer_bytes(arch, method, step)
    logits = method.logits_bytes * arch.vocab
    if step.checkpointing:
        activations = tokens * (arch.layers * method.residual_bytes * arch.hidden + max(logits, layer))
    else:
        activations = tokens * (arch.layers * layer + logits)
    activations += step.batch * step.seq**2  # the boolean attention mask (padding or packing)
    if method.linear_bytes < 1:  # bitsandbytes de-quantises one weight at a time to bf16 to multiply by it
        activations += 2 * max(a * b for a, b in arch.linears())
    lora = arch.lora_params(step.lora_r)
    parts = {
        "weights": arch.linear_params * method.linear_bytes + arch.other_params * method.other_bytes,
        "lora": lora * 4.0,
        "gradients": lora * 4.0,
        "optimizer": lora * (method.trainable_bytes - 8),
        "activations": activations * (1 + ALLOCATOR_SLACK * (context > 0)),
        "overhead": context,
    }
    return {**parts, "total": sum(parts.values())}


# ---------------------------------------------------------------------------------------------------------
# Speed: FLOPs per token position, and the utilisation Qwen's own published timings show.


def flops_per_position(arch: Arch, seq: float, checkpointing: bool, lora_r: int = 16) -> float:
    """Training FLOPs per token position: the forward pass, the backward pass through frozen weights (the
    gradient of the input only: as much again; attention twice as much), the forward again per layer with
    checkpointing, and the adapters' forward and backward. Causal attention over `seq` positions."""
    linear = 2 * arch.linear_params
    output = 2 * arch.vocab * arch.hidden
    attention = arch.layers * 2 * seq * arch.q_dim
    return linear * (2 + checkpointing) + output * 2 + attention * (3 + checkpointing) + 6 * arch.lora_params(lora_r)


# Qwen (1)'s README, "Profiling of Memory and Speed" (github.com/QwenLM/Qwen): one A100-SXM4-80G, batch 1,
# gradient accumulation 8, sequences padded to the length, gradient checkpointing, flash attention 2, LoRA
# r=64 on c_attn/c_proj/w1/w2 (finetune.py); Q-LoRA on the GPTQ Int4 models in fp16 with DeepSpeed ZeRO-2.
# Peak GB / seconds per iteration at 256 ... 8192 tokens.
QWEN1_ARCHS = {
    "1.8B": Arch("Qwen-1.8B", 2048, 24, 16, 16, 5504, 151936, False, qkv_bias=True, fused_qkv=True),
    "7B": Arch("Qwen-7B", 4096, 32, 32, 32, 11008, 151936, False, qkv_bias=True, fused_qkv=True),
    "14B": Arch("Qwen-14B", 5120, 40, 40, 40, 13696, 152064, False, qkv_bias=True, fused_qkv=True),
}
QWEN1_SEQS = (256, 512, 1024, 2048, 4096, 8192)
QWEN1_PROFILE = {
    ("1.8B", "LoRA"): ((6.7, 1.0), (7.4, 1.0), (8.4, 1.1), (11.0, 1.7), (16.2, 3.3), (21.8, 6.8)),
    ("1.8B", "QLoRA"): ((5.8, 1.4), (6.0, 1.4), (6.6, 1.4), (7.8, 2.0), (10.2, 3.4), (15.8, 6.5)),
    ("7B", "LoRA"): ((20.1, 1.2), (20.4, 1.5), (21.5, 2.8), (23.8, 5.2), (29.7, 10.1), (36.6, 21.3)),
    ("7B", "QLoRA"): ((11.5, 3.0), (11.5, 3.0), (12.3, 3.5), (13.9, 7.0), (16.9, 11.6), (23.5, 22.3)),
    ("14B", "LoRA"): ((34.6, 1.6), (35.1, 2.4), (35.3, 4.4), (37.4, 8.4), (42.5, 17.0), (55.2, 36.0)),
    ("14B", "QLoRA"): ((18.7, 5.3), (18.4, 6.3), (18.9, 8.2), (19.9, 11.8), (23.0, 20.1), (27.9, 38.3)),
}
QWEN1_SOURCE = "QwenLM/Qwen README, 'Profiling of Memory and Speed' (A100-SXM4-80G, batch 1 x 8, r=64)"
QWEN1_LORA_R, QWEN1_TOKENS_PER_ITERATION = 64, 8  # sequences per iteration: batch 1 x accumulation 8
A100_TFLOPS = 312


def published_mfu(size: str, method: str, seq: int) -> float:
    """The utilisation a row of Qwen's table shows: tokens per second x FLOPs per token / A100 peak."""
    _, seconds = QWEN1_PROFILE[(size, method)][QWEN1_SEQS.index(seq)]
    per_second = QWEN1_TOKENS_PER_ITERATION * seq / seconds
    return per_second * flops_per_position(QWEN1_ARCHS[size], seq, True, QWEN1_LORA_R) / (A100_TFLOPS * 1e12)


def _between(x: float, points: list[tuple[float, float]]) -> float:
    """y at x on the line through `points` (sorted by x), held level beyond the first and the last."""
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def default_mfu(arch: Arch, method: str, tokens_per_step: float) -> float:
    """MFU for a model of this size at this many token positions per forward/backward pass, read off Qwen's
    table: per published size, between its rows (256 to 8,192 tokens a pass: short passes are dominated by
    per-pass overheads, so utilisation grows with them), then between the sizes on log(parameters); held
    level beyond the table's ends."""
    per_size = sorted(
        (
            math.log(QWEN1_ARCHS[size].params),
            _between(math.log(tokens_per_step), [(math.log(s), published_mfu(size, method, s)) for s in QWEN1_SEQS]),
        )
        for size in QWEN1_ARCHS
    )
    return _between(math.log(arch.params), per_size)


# ---------------------------------------------------------------------------------------------------------
# Cards: memory as nvidia-smi reports it, dense bf16 tensor peak from NVIDIA's datasheets (half the
# "with sparsity" figure), and list prices.


@dataclass(frozen=True)
class Gpu:
    name: str
    label: str
    memory_mib: int
    tflops: float
    price: float  # $ per hour
    price_source: str
    note: str = ""

    @property
    def memory(self) -> float:
        return self.memory_mib * 2**20


PRICES_SOURCE = (
    "list prices verified 2026-05-07 in techbytes.app/posts/serverless-gpu-pricing-matrix-modal-replicate-lambda-2026 "
    "(Lambda on-demand: 1x H100 SXM $3.78/h, 1x A100 40GB $1.48/h; Modal: T4 $0.5904/h, L4 $0.7992/h, "
    "A100 80GB $2.4984/h)"
)
GPUS = {
    g.name: g
    for g in (
        Gpu(
            "T4",
            "T4 16GB",
            15360,
            65,
            0.59,
            "Modal",
            "fp16 peak: Turing has no bf16, so a bf16 run is slower than shown",
        ),
        Gpu("L4", "L4 24GB", 23034, 121, 0.80, "Modal"),
        Gpu("A100-40", "A100 40GB", 40960, 312, 1.48, "Lambda"),
        Gpu("A100-80", "A100 80GB", 81920, 312, 2.50, "Modal"),
        Gpu("H100", "H100 SXM 80GB", 81559, 989, 3.78, "Lambda"),
    )
}
TFLOPS_SOURCE = "NVIDIA datasheets, dense bf16 tensor (T4: fp16): T4 65, L4 121, A100 312, H100 SXM 989"


# ---------------------------------------------------------------------------------------------------------
# Tokens.


@dataclass(frozen=True)
class RecordTokens:
    id: str
    tokens: int  # the whole record, before the cut
    kept: int  # what max_length keeps
    trained: int  # labelled tokens among them
    dropped: str | None = None  # why train run skips it


def count_tokens(tokenizer, records: list[dict], train_on: str, max_length: int) -> list[RecordTokens]:
    """Each record as `train run` encodes it. A record longer than max_length is encoded again with the
    cut, so whether the trainer skips it, and why, is the trainer's own decision."""
    out = []
    for record in records:
        whole = EncodeStats()
        full = encode_record(tokenizer, record, train_on, sys.maxsize, whole)
        if full is None:
            out.append(RecordTokens(str(record.get("id")), 0, 0, 0, whole.dropped[0][1]))
            continue
        n = len(full.input_ids)
        if n <= max_length:
            out.append(RecordTokens(str(record.get("id")), n, n, sum(x != IGNORE for x in full.labels)))
            continue
        cut_stats = EncodeStats()
        cut = encode_record(tokenizer, record, train_on, max_length, cut_stats)
        trained = 0 if cut is None else sum(x != IGNORE for x in cut.labels)
        out.append(
            RecordTokens(
                str(record.get("id")), n, max_length, trained, cut_stats.dropped[0][1] if cut is None else None
            )
        )
    return out


def load_tokenizer(path: str | None, texts) -> tuple[object, dict]:
    """(tokenizer, what it is): a local tokenizer folder, never downloaded, or the embedded default trained
    on `texts()` as `train run` trains it."""
    from curate.train.chat import IM_END, IM_START

    if path is None:
        from curate.train.config import EmbeddedModel
        from curate.train.tiny import build_tokenizer

        size = EmbeddedModel().vocab_size
        tokenizer = build_tokenizer(texts(), size)
        return tokenizer, {
            "kind": "embedded",
            "vocab": len(tokenizer),
            "what": f"embedded BPE tokenizer ({len(tokenizer):,} tokens) trained on the train split, as `train run` "
            "builds it for base_model: embedded. A Qwen tokenizer (151k tokens) needs fewer tokens for the same "
            "text: pass --tokenizer for the base you will train",
        }
    folder = Path(path)
    if not folder.is_dir():
        raise TrainDataError(
            f"--tokenizer {path}: not a folder (a local tokenizer folder is needed; nothing is downloaded)"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # a folder without tokenizer files fails inside transformers in many ways
        raise TrainDataError(
            f"--tokenizer {path}: cannot load a tokenizer from it ({type(exc).__name__}: {exc})"
        ) from None
    missing = [t for t in (IM_START, IM_END) if t not in tokenizer.get_vocab()]
    if missing:
        raise TrainDataError(f"--tokenizer {path}: no {missing}; only ChatML tokenizers (Qwen2/2.5/3) are supported")
    return tokenizer, {
        "kind": "local",
        "path": str(folder),
        "vocab": len(tokenizer),
        "what": f"{folder} ({len(tokenizer):,} tokens)",
    }


def percentile(values: list[int], p: float) -> int:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


GROUP_MEGABATCH = 50  # transformers' LengthGroupedSampler sorts megabatches of 50 batches by length


def batch_positions(
    lengths: list[int], batch: int, max_length: int, packing: bool, seed: int = 13
) -> tuple[int, float]:
    """(token positions of one epoch's batches, mean row width): padded to each batch's longest row, the
    batches drawn as transformers' length-grouped sampler draws them (shuffled, then megabatches of 50
    batches sorted by length), or `pack`'s first-fit rows of max_length."""
    if not lengths:
        return 0, 0.0
    if packing:
        from curate.train.pack import pack

        _, stats = pack([{"input_ids": [0] * n, "labels": [0] * n} for n in lengths], max_length)
        rows = [max_length] * stats.rows
    else:
        order = lengths[:]
        random.Random(seed).shuffle(order)
        mega = batch * GROUP_MEGABATCH
        order = [n for i in range(0, len(order), mega) for n in sorted(order[i : i + mega], reverse=True)]
        rows = [max(order[i : i + batch]) for i in range(0, len(order), batch) for _ in order[i : i + batch]]
    return sum(rows), sum(rows) / len(rows)


# ---------------------------------------------------------------------------------------------------------
# The plan.


@dataclass(frozen=True)
class Settings:
    max_length: int = 512
    batch_size: int = 8
    train_on: str = "all_assistant"
    include_text_records: bool = False
    packing: bool = False
    lora_r: int = 16
    sample: int | None = None  # count a seeded sample of this many records, scaled to the split
    seed: int = 13


def _fit(arch: Arch, method: Method, gpu: Gpu, settings: Settings, seq: int) -> dict:
    """The lightest setting that fits the card: as asked, with checkpointing, then with checkpointing at a
    smaller batch (the rest made up by gradient accumulation)."""
    for checkpointing in (False, True):
        step = Step(settings.batch_size, seq, checkpointing, settings.lora_r)
        if memory(arch, method, step)["total"] <= FIT_SHARE * gpu.memory:
            return {"fits": True, "batch": settings.batch_size, "checkpointing": checkpointing}
    for batch in range(settings.batch_size - 1, 0, -1):
        if memory(arch, method, Step(batch, seq, True, settings.lora_r))["total"] <= FIT_SHARE * gpu.memory:
            return {
                "fits": True,
                "batch": batch,
                "checkpointing": True,
                "gradient_accumulation": math.ceil(settings.batch_size / batch),
            }
    return {"fits": False}


def model_rows(
    settings: Settings,
    seq: int,
    positions: float,
    tokens: float,
    mean_width: float,
    models: list[str] | None = None,
    methods: list[str] | None = None,
    gpus: list[str] | None = None,
    prices: dict[str, float] | None = None,
    tokens_per_second: dict[str, float] | None = None,
    mfu: float | None = None,
) -> list[dict]:
    """For each model and method: memory with and without checkpointing, and per card whether it fits,
    how, and the epoch's hours and dollars."""
    rows = []
    for name in models or list(ARCHS):
        arch = ARCHS[name]
        for key in methods or list(METHODS):
            method = METHODS[key]
            used = {
                ck: memory(arch, method, Step(settings.batch_size, seq, ck, settings.lora_r)) for ck in (False, True)
            }
            cards = {}
            for gname in gpus or list(GPUS):
                gpu = GPUS[gname]
                fit = _fit(arch, method, gpu, settings, seq)
                if fit["fits"]:
                    per_position = flops_per_position(arch, mean_width, fit["checkpointing"], settings.lora_r)
                    utilisation = mfu if mfu is not None else default_mfu(arch, method.name, fit["batch"] * mean_width)
                    speed = (tokens_per_second or {}).get(gname)
                    if speed is None:  # real tokens per second: positions per second x the share that are real
                        speed = (
                            utilisation * gpu.tflops * 1e12 / per_position * (tokens / positions if positions else 1)
                        )
                    hours = tokens / speed / 3600
                    price = (prices or {}).get(gname, gpu.price)
                    fit.update(mfu=round(utilisation, 3), tokens_per_s=round(speed, 1), hours=hours)
                    fit.update(price_per_hour=price, cost=hours * price)
                cards[gname] = fit
            fitting = {g: c for g, c in cards.items() if c["fits"]}
            cheapest = min(fitting, key=lambda g: (fitting[g]["cost"], fitting[g]["hours"])) if fitting else None
            for card in fitting.values():
                card.update(hours=float(f"{card['hours']:.4g}"), cost=float(f"{card['cost']:.4g}"))
            rows.append(
                {
                    "model": name,
                    "method": method.name,
                    "optimizer": method.optimizer,
                    "params_b": round(arch.params / 1e9, 3),
                    "lora_params_m": round(arch.lora_params(settings.lora_r) / 1e6, 2),
                    "memory_gib": {
                        "without_checkpointing": {k: round(v / GIB, 2) for k, v in used[False].items()},
                        "with_checkpointing": {k: round(v / GIB, 2) for k, v in used[True].items()},
                    },
                    "gpus": cards,
                    "cheapest": cheapest,
                }
            )
    return rows


def plan(
    shards_ref: str,
    tokenizer: str | None = None,
    settings: Settings = Settings(),
    models: list[str] | None = None,
    methods: list[str] | None = None,
    gpus: list[str] | None = None,
    prices: dict[str, float] | None = None,
    tokens_per_second: dict[str, float] | None = None,
    mfu: float | None = None,
) -> dict:
    """Tokens, truncation, and memory, fit, time and cost per model, method and card, for the train split
    of `shards_ref` (a catalog reference or a curated run directory, resolved as `train run` resolves it)."""
    models, methods, gpus = (
        _names(models, ARCHS, "--model"),
        _names(methods, METHODS, "--method"),
        _names(gpus, GPUS, "--gpu"),
    )
    prices = dict(zip(_names(list(prices or {}), GPUS, "--gpu-hours-price"), (prices or {}).values()))
    tokens_per_second = dict(
        zip(_names(list(tokens_per_second or {}), GPUS, "--tokens-per-second"), (tokens_per_second or {}).values())
    )
    if tokens_per_second and (len(models or ARCHS) != 1 or len(methods or METHODS) != 1):
        raise TrainDataError(
            "--tokens-per-second depends on the model and the method: pick one --model and one --method"
        )
    from curate.train.run import _records, _texts

    data = load(shards_ref)
    records = _records(data.train, settings.include_text_records)
    counted = records
    if settings.sample and len(records) > settings.sample:
        counted = random.Random(settings.seed).sample(records, settings.sample)
    tok, tokenizer_info = load_tokenizer(tokenizer, lambda: _texts(data))
    per_record = count_tokens(tok, counted, settings.train_on, settings.max_length)
    scale = len(records) / len(counted) if counted else 0.0
    trained = [r for r in per_record if r.dropped is None]
    lengths = [r.tokens for r in trained]
    kept = [r.kept for r in trained]
    positions, mean_width = batch_positions(
        kept, settings.batch_size, settings.max_length, settings.packing, settings.seed
    )
    truncated = [r for r in per_record if r.tokens > settings.max_length]
    tokens = sum(kept) * scale
    seq = settings.max_length if settings.packing else min(settings.max_length, max(lengths, default=1))
    result = {
        "format": "curate.train_plan/1",
        "shards": data.lineage,
        "tokenizer": tokenizer_info,
        "settings": asdict(settings),
        "records": {
            "train_split": data.train.height,
            "encoded": len(records),
            "counted": len(counted),
            "scaled_by": round(scale, 4),
            "trained": round(len(trained) * scale),
            "not_trained": round((len(per_record) - len(trained)) * scale),
        },
        "tokens": {
            "per_epoch": round(tokens),
            "trained_labels": round(sum(r.trained for r in trained) * scale),
            "before_cut": round(sum(lengths) * scale),
            "positions": round(positions * scale),
            "padding_share": round(1 - sum(kept) / positions, 4) if positions else 0.0,
            "mean_row": round(mean_width, 1),
        },
        "lengths": {f"p{p}": percentile(lengths, p) for p in (50, 90, 99)} | {"max": max(lengths, default=0)},
        "truncation": {
            "max_length": settings.max_length,
            "records": round(len(truncated) * scale),
            "share": round(len(truncated) / len(per_record), 4) if per_record else 0.0,
            "tokens_cut": round(sum(r.tokens - r.kept for r in truncated if r.tokens) * scale),
            "dropped": round(sum(r.dropped is not None and r.tokens > 0 for r in per_record) * scale),
            "examples": [(r.id, r.dropped) for r in per_record if r.dropped][:10],
        },
        "step": {"batch": settings.batch_size, "seq": seq},
        "models": model_rows(
            settings, seq, positions * scale, tokens, mean_width, models, methods, gpus, prices, tokens_per_second, mfu
        ),
        "gpus": [asdict(GPUS[g]) | {"price": (prices or {}).get(g, GPUS[g].price)} for g in gpus or GPUS],
        "sources": sources(),
    }
    return result


def _names(given: list[str] | None, known: dict, flag: str) -> list[str] | None:
    """`given` as the names of `known` (any case), or an error naming the flag and what it accepts."""
    if given is None:
        return None
    lower = {k.lower(): k for k in known}
    unknown = [g for g in given if g.lower() not in lower]
    if unknown:
        raise TrainDataError(f"{flag}: unknown {unknown}; expected one of {list(known)}")
    return [lower[g.lower()] for g in given]


def sources() -> dict[str, str]:
    return {
        "architectures": ARCH_SOURCE,
        "peak_tflops": TFLOPS_SOURCE,
        "prices": PRICES_SOURCE,
        "mfu": f"{QWEN1_SOURCE}: the utilisation of its rows, by model size and tokens per pass, interpolated",
        "memory_check": "bench/train_plan.py: the estimate beside CPU measurements and Qwen's published GPU figures",
        "fit": f"a card fits when the estimate is under {FIT_SHARE:.0%} of its memory",
    }


# ---------------------------------------------------------------------------------------------------------
# Rendering.


def _fit_label(card: dict) -> str:
    if not card["fits"]:
        return "no"
    if not card["checkpointing"]:
        return "yes"
    return f"ckpt, batch {card['batch']}" if "gradient_accumulation" in card else "ckpt"


def _hours(hours: float) -> str:
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} s"
    return f"{hours * 60:.1f} min" if hours < 1 else f"{hours:,.1f} h"


def render(result: dict, console) -> None:
    """The plan as a person reads it: the data's tokens first, then memory per card, then time and cost."""
    from rich.table import Table

    lineage, tok, rec, t = result["shards"], result["tokenizer"], result["records"], result["tokens"]
    s, cut, lengths = result["settings"], result["truncation"], result["lengths"]
    name = f"{lineage.get('name')}@{lineage.get('version')}" if lineage.get("name") else lineage.get("ref")
    console.print(f"[bold]Training plan[/] for {name}: train split {rec['train_split']:,} records", highlight=False)
    console.print(f"tokens counted with: {tok['what']}", highlight=False)
    if rec["counted"] < rec["encoded"]:
        console.print(
            f"counted on a seeded sample of {rec['counted']:,} of {rec['encoded']:,} records, scaled up",
            highlight=False,
        )
    console.print(
        f"tokens per epoch: {t['per_epoch']:,} ({t['trained_labels']:,} trained labels) in {rec['trained']:,} records; "
        f"batches of {s['batch_size']} {'packed' if s['packing'] else 'length-grouped'}: {t['positions']:,} positions "
        f"({t['padding_share']:.1%} padding)",
        highlight=False,
    )
    console.print(
        f"sequence length, whole records: p50 {lengths['p50']:,} | p90 {lengths['p90']:,} | p99 {lengths['p99']:,} | "
        f"max {lengths['max']:,} tokens",
        highlight=False,
    )
    console.print(
        f"max_length {cut['max_length']:,} cuts {cut['records']:,} records ({cut['share']:.1%}), {cut['tokens_cut']:,} "
        f"tokens; {cut['dropped']:,} lose every trained token and are not trained on",
        highlight=False,
    )
    step = result["step"]
    gpus = [g["name"] for g in result["gpus"]]
    labels = {g["name"]: g["label"] for g in result["gpus"]}
    memory_table = Table(
        title=f"Memory per GPU (GiB): batch {step['batch']} x {step['seq']} tokens, LoRA r={s['lora_r']} on all "
        f"linear layers; a card fits under {FIT_SHARE:.0%} of its memory",
        title_justify="left",
    )
    for column in ("model", "method", "weights", "activations", "total", "with ckpt"):
        memory_table.add_column(column, justify="left" if column in ("model", "method") else "right")
    for g in gpus:
        memory_table.add_column(labels[g], justify="center")
    for row in result["models"]:
        plain, ckpt = row["memory_gib"]["without_checkpointing"], row["memory_gib"]["with_checkpointing"]
        memory_table.add_row(
            row["model"],
            row["method"],
            f"{plain['weights']:.1f}",
            f"{plain['activations']:.1f}",
            f"{plain['total']:.1f}",
            f"{ckpt['total']:.1f}",
            *(_fit_label(row["gpus"][g]) for g in gpus),
        )
    console.print(memory_table)
    cost_table = Table(title="One epoch on the cheapest card that fits", title_justify="left")
    for column in ("model", "method", "card", "setting", "MFU", "tokens/s", "time", "$/h", "$"):
        cost_table.add_column(column, justify="left" if column in ("model", "method", "card", "setting") else "right")
    for row in result["models"]:
        g = row["cheapest"]
        if g is None:
            cost_table.add_row(row["model"], row["method"], "none fits", "", "", "", "", "", "")
            continue
        card = row["gpus"][g]
        cost_table.add_row(
            row["model"],
            row["method"],
            labels[g],
            _fit_label(card),
            f"{card['mfu']:.2f}",
            f"{card['tokens_per_s']:,.0f}",
            _hours(card["hours"]),
            f"{card['price_per_hour']:.2f}",
            "<0.01" if card["cost"] < 0.01 else f"{card['cost']:,.2f}",
        )
    console.print(cost_table)
    for key, text in result["sources"].items():
        console.print(f"[dim]{key}: {text}[/]", highlight=False)


# ---------------------------------------------------------------------------------------------------------
# The data report's section: no tokenizer at hand during curation, so tokens are estimated from characters.

# Characters per Qwen2 token measured on the real SFT sets (bench/train_plan.py): Code Alpaca 3.65,
# GPTeacher role-play 5.16. The lower one: an estimate that errs towards more tokens, memory and cost.
CHARS_PER_TOKEN = 3.65
TURN_TOKENS = 5  # <|im_start|>, the role, "\n" ... <|im_end|>, "\n" around each turn's content


def estimated_tokens(row: dict) -> int:
    """A record's tokens as the Qwen tokenizer would count them, estimated from its characters."""
    if row.get("messages"):
        return sum(math.ceil(len(m["content"] or "") / CHARS_PER_TOKEN) + TURN_TOKENS for m in row["messages"])
    return math.ceil(len(row.get("text") or "") / CHARS_PER_TOKEN) + 1


def report_section(frames, settings: Settings = Settings()) -> dict:
    """The data report's "Training plan": estimated tokens of the train split (every row when there is no
    split), what max_length would cut, and memory, fit and cost per model and method. `frames` yields
    frames with `text`, `messages` and `split` (those there are), as `RowFiles.frames` gives them."""
    lengths = []
    for frame in frames:
        for row in frame.to_dicts():
            if row.get("split", "train") in ("train", None) and (row.get("messages") or row.get("text")):
                lengths.append(estimated_tokens(row))
    kept = [min(n, settings.max_length) for n in lengths]
    positions, mean_width = batch_positions(kept, settings.batch_size, settings.max_length, settings.packing)
    seq = settings.max_length if settings.packing else min(settings.max_length, max(lengths, default=1))
    return {
        "tokenizer": f"estimated: {CHARS_PER_TOKEN} characters per Qwen token + {TURN_TOKENS} per ChatML turn",
        "records": len(lengths),
        "tokens_per_epoch": sum(kept),
        "lengths": {f"p{p}": percentile(lengths, p) for p in (50, 90, 99)} | {"max": max(lengths, default=0)},
        "truncated": sum(n > settings.max_length for n in lengths),
        "settings": asdict(settings),
        "models": model_rows(settings, seq, positions, sum(kept), mean_width) if lengths else [],
        "sources": sources(),
    }
