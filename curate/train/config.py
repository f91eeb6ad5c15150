"""Training configuration (`configs/train/*.yaml`), validated by pydantic with the same precise
errors as pipelines: file, key path, what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from curate.schema import StrictModel, load_yaml, parse_model

EMBEDDED = "embedded"  # the small Qwen2 model + BPE tokenizer built from the data (curate.train.tiny)


class EmbeddedModel(StrictModel):
    vocab_size: int = Field(4000, ge=300, le=65_536)
    hidden: int = Field(128, ge=16)
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    kv_heads: int = Field(2, ge=1)
    # A random-init base has no embeddings worth keeping: train them in full beside the LoRA adapters
    # (peft modules_to_save; input and output embeddings untied so the merge keeps what was trained).
    train_embeddings: bool = True

    @model_validator(mode="after")
    def _shape(self) -> "EmbeddedModel":
        if self.hidden % self.heads or self.heads % self.kv_heads:
            raise ValueError("hidden must be a multiple of heads, and heads a multiple of kv_heads")
        return self


class Lora(StrictModel):
    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class StopCheck(StrictModel):
    """After training, greedy answers to held-out prompts. A model passes when at least `min_stop_rate` of
    its answers are well formed (end with `<|im_end|>`, are not empty, do not loop) and the median ratio of
    its answer length to the reference answer's is inside `length_ratio`."""

    samples: int = Field(16, ge=0)
    # the generation budget per answer: twice the reference's tokens + 8, at most this
    max_new_tokens: int = Field(256, ge=1)
    min_stop_rate: float = Field(0.8, ge=0.0, le=1.0, description="share of well-formed answers needed to pass")
    # Two valid answers to the same prompt (LLaMA-Factory's dpo_en_demo, chosen vs rejected, Qwen2 tokens):
    # the median length ratio over 16 of them lies in [0.54, 1.98] in 99.9% of draws.
    length_ratio: tuple[float, float] = (0.5, 2.0)

    @model_validator(mode="after")
    def _band(self) -> "StopCheck":
        low, high = self.length_ratio
        if not 0 < low < 1 < high:
            raise ValueError("length_ratio must be [low, high] with 0 < low < 1 < high")
        return self


class Dpo(StrictModel):
    """Direct preference optimisation (TRL's DPOTrainer) on preference pairs: `messages` (the prompt turns),
    `chosen` and `rejected` (the answers)."""

    beta: float = Field(0.1, gt=0.0, description="how far the policy may move from the reference")
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = "sigmoid"
    # the reference model's log-probs of every pair computed once before training (the reference is the base
    # with the adapter disabled), not at every step
    precompute_ref_log_probs: bool = True
    truncation_mode: Literal["keep_end", "keep_start"] = "keep_end"


class TrainConfig(StrictModel):
    base_model: str = EMBEDDED  # "embedded", a local folder, or a hub id already in the local cache
    embedded: EmbeddedModel = Field(default_factory=EmbeddedModel)
    shards: str = "shards://demo@latest"  # a catalog reference or a curated run directory
    # sft (with `task`) or dpo: preference pairs, TRL's DPOTrainer (`dpo:` settings)
    method: Literal["sft", "dpo"] = "sft"
    dpo: Dpo = Field(default_factory=Dpo)
    # auto: classification when the records are texts with a label column (a classification set), else sft
    task: Literal["auto", "sft", "classification"] = "auto"
    label_column: str | None = None  # classification: None = the balance stage's label, else `label`
    # classification: metrics per value of these columns; None = the balance stage's strata
    strata: list[str] | None = None
    # classification: weight each class's loss by n / (classes * n_class) ("balanced"), or not ("none")
    class_weights: Literal["balanced", "none"] = "balanced"
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"  # classification metrics are measured here (validation when it is empty)
    train_on: Literal["last_assistant", "all_assistant", "all"] = "all_assistant"
    include_text_records: bool = False  # plain-text records (continued pretraining) next to chat SFT records
    max_length: int = Field(512, ge=16)
    quantization: Literal["auto", "none", "nf4"] = "auto"  # auto: 4-bit NF4 (QLoRA) on CUDA, none on CPU
    lora: Lora = Field(default_factory=Lora)
    learning_rate: float = Field(2e-4, gt=0.0, le=1.0)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    epochs: float = Field(1.0, gt=0.0)
    max_steps: int = Field(-1, description="stop after this many optimiser steps (-1: run the epochs)")
    batch_size: int = Field(8, ge=1)
    gradient_accumulation: int = Field(1, ge=1)
    gradient_checkpointing: bool = False
    eval_steps: int = Field(50, ge=1)
    # evaluate on at most this many validation records (a seeded sample, the same every evaluation); None: all
    max_eval_records: int | None = Field(200, ge=1)
    early_stopping_patience: int = Field(
        3, ge=0, description="evaluations without improvement before stopping; 0 = off"
    )
    group_by_length: bool = True
    # Pack several examples per max_length row (curate.train.pack): less padding, same result per example.
    packing: bool = False
    seed: int = 13
    # None: a new folder under $CURATE_HOME/train (never inside the checkout); `--output-dir` overrides
    output_dir: str | None = None
    stop_check: StopCheck = Field(default_factory=StopCheck)

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError("max_steps must be -1 (run the epochs) or a positive number of steps")
        return self


def load_config(path: str | Path, overrides: dict | None = None) -> tuple[TrainConfig, Path]:
    path = Path(path)
    data = {**load_yaml(path, "training config"), **(overrides or {})}
    config = parse_model(TrainConfig, data, path)
    assert isinstance(config, TrainConfig)
    return config, path
