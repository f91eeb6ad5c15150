"""`make train` end to end on a small curated chat set: eval loss drops, the model learns to stop,
and the adapter, report, loss curve and lineage are written; generate and merge work on it."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.demo import content as C
from curate.train.cli import app
from curate.train.config import TrainConfig, load_config
from tests.conftest import run as curate_run
from tests.conftest import write_pipeline

runner = CliRunner()

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: torch's own threads in each would oversubscribe the cores
    # (these tests ran 3x slower so). Set here, where torch does the work, not for the whole suite.
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sft")
    rng = random.Random(3)
    rows = []
    for i in range(400):
        label = rng.choice(["urgent", "routine"])
        question = f"{rng.choice(C.CHAT_CONTEXTS)} {rng.choice(C.CHAT_DOMAINS['cardiology'][label])} ({i})"
        rows.append(
            {
                "id": f"c{i}",
                "label": label,
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": rng.choice(C.CHAT_ANSWERS[label])},
                ],
            }
        )
    (folder / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    split = {
        "stage": "split",
        "params": {"group_by": [], "sizes": {"train": 0.85, "validation": 0.15}, "decontamination": {"action": "off"}},
    }
    path = write_pipeline(folder, [{"path": "sft.jsonl"}], [{"stage": "normalize"}, split], name="sft")
    return curate_run(path, folder / "out")


def _train(tmp_path, config: dict) -> dict:
    """`train run` on `config` (output under tmp_path/train); it must exit 0; its train_report.json. A failed
    stop check (a few steps on a random model need not learn to answer) is a printed warning."""
    (tmp_path / "cfg.yaml").write_text(json.dumps({**config, "output_dir": str(tmp_path / "train")}))
    result = runner.invoke(app, ["run", str(tmp_path / "cfg.yaml")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "train" / "train_report.json").read_text())
    failed = report["stop_check"]["passed"] is False
    assert ("stop check: FAILED" in result.output and "WARNING" in result.output) == failed, result.output
    return report


def test_train_run_learns_and_stops(tmp_path, shards):
    report = _train(
        tmp_path,
        {
            "shards": str(shards.out_dir),
            "max_steps": 120,
            "eval_steps": 60,
            "batch_size": 16,
            "learning_rate": 0.003,
            "embedded": {"vocab_size": 800, "hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2},
            "max_length": 256,
            "stop_check": {"samples": 8, "max_new_tokens": 48},
        },
    )
    assert report["eval_loss"]["after"] < 0.85 * report["eval_loss"]["before"]  # a clear drop, not noise
    stop = report["stop_check"]
    assert stop["passed"] and stop["stop_rate"] >= 0.75 and stop["warning"] is None
    assert 0.5 <= stop["median_length_ratio"] <= 2.0 and stop["answers"]["ok"] == round(stop["stop_rate"] * 8)
    assert report["lineage"]["version"] == shards.manifest["version"]
    task = report["stop_check"]["task"]
    assert task["kind"] == "generation" and 0.0 <= task["rouge_l_f1"] <= 1.0
    assert report["template"]["use_builtin"] is False and report["pad_token_id"] != report["eos_token_id"]
    for name in ("adapter/adapter_config.json", "adapter/tokenizer.json", "loss_curve.png", "base_model/config.json"):
        assert (tmp_path / "train" / name).is_file(), name
    assert list((tmp_path / "train" / "tensorboard").glob("events.out.tfevents*"))  # this run's own folder
    answer = runner.invoke(
        app,
        ["generate", str(tmp_path / "train" / "adapter"), "--prompt", "I have chest pain.", "--max-new-tokens", "48"],
    )
    assert answer.exit_code == 0 and answer.output.strip()
    evaluated = runner.invoke(app, ["eval", str(tmp_path / "train" / "adapter")])
    assert evaluated.exit_code == 0, evaluated.output
    result = json.loads(evaluated.stdout)
    assert result["eval_loss"] == pytest.approx(
        report["eval_loss"]["after"], abs=0.02
    )  # the same split, the same model
    assert result["stop_check"]["stop_rate"] == report["stop_check"]["stop_rate"]
    merged = runner.invoke(app, ["merge", str(tmp_path / "train" / "adapter"), "--out", str(tmp_path / "merged")])
    assert merged.exit_code == 0 and (tmp_path / "merged" / "model.safetensors").is_file()
    checks = json.loads((tmp_path / "merged" / "merge_report.json").read_text())
    assert (
        checks["logits"]["passed"]
        and checks["logits"]["max_abs_logit_diff"] <= 1e-3
        and checks["saved_dtype"] == "float32"
    )
    assert (
        checks["eos"]["terminator_id"] in _ids(checks["eos"]["generation_config_eos"])
        and checks["eos"]["tokenizer_eos"] == "<|im_end|>"
    )
    again = runner.invoke(app, ["merge", str(tmp_path / "train" / "adapter"), "--out", str(tmp_path / "merged")])
    assert again.exit_code == 2 and "not empty" in again.output  # never over what is there


def _ids(value) -> list[int]:
    return [value] if isinstance(value, int) else list(value)


def test_train_run_with_packing_trains_on_packed_rows(tmp_path, shards):
    report = _train(
        tmp_path,
        {
            "shards": str(shards.out_dir),
            "max_steps": 80,
            "eval_steps": 80,
            "batch_size": 8,
            "learning_rate": 0.003,
            "embedded": {"vocab_size": 800, "hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2},
            "packing": True,
            "max_length": 256,
            "stop_check": {"samples": 4, "max_new_tokens": 16},
        },
    )
    packing = report["packing"]
    assert packing["examples"] == report["examples"]["train"]["trained"] > 2 * packing["rows"]
    assert packing["fill"] > 0.8
    t = report["throughput"]  # every training batch counted, evaluation batches not
    assert 80 * 8 <= t["tokens"] <= t["slots"] <= 80 * 8 * 256 and t["padding_share"] < 0.2
    assert t["tokens_per_s"] == pytest.approx(t["tokens"] / t["train_seconds"], rel=0.01)
    assert report["eval_loss"]["after"] < 0.85 * report["eval_loss"]["before"]


def test_task_metrics_classification_and_generation():
    from curate.train.run import task_metrics

    records = [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": c}]}
        for c in ("urgent", "routine")
    ]
    got = task_metrics(["urgent", "urgent", "routine"], ["urgent", "routine", "routine"], records)
    assert got == {"kind": "classification", "classes": 2, "accuracy": 0.6667, "macro_f1": 0.6667}
    long = [
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": f"a long answer number {i} here now"},
            ]
        }
        for i in range(30)
    ]
    got = task_metrics(["the cat sat on the mat"], ["the cat is on the mat"], long)
    assert got == {"kind": "generation", "rouge_l_f1": 0.8333}


def test_bad_training_config_is_a_clear_error(tmp_path):
    (tmp_path / "bad.yaml").write_text("lora: {rank: 8}\nmax_steps: 0\n")
    from curate.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"lora\.rank: unknown key; expected one of: r, alpha, dropout, target_modules"
    ):
        load_config(tmp_path / "bad.yaml")
    result = runner.invoke(app, ["run", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2 and "lora.rank" in result.output


def test_qlora_nf4_trains_on_a_cpu_through_the_same_loading_path(tmp_path, shards):
    """quantization: nf4 is honoured on a CPU (bitsandbytes 4-bit layers, forward and backward), said in
    the report, and the eval loss still falls."""
    report = _train(
        tmp_path,
        {
            "shards": str(shards.out_dir),
            "max_steps": 40,
            "eval_steps": 40,
            "batch_size": 16,
            "learning_rate": 0.004,
            "embedded": {"vocab_size": 800, "hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2},
            "quantization": "nf4",
            "max_eval_records": 24,
            "max_length": 256,
            "stop_check": {"samples": 2, "max_new_tokens": 8},
        },
    )
    assert report["quantization"].startswith("nf4 (bitsandbytes 0.50.2, cpu")
    assert "4-bit NF4" in report["model"] and report["optimizer"] == "adamw_torch"  # paged AdamW is CUDA-only
    assert report["eval_loss"]["after"] < 0.9 * report["eval_loss"]["before"]
    assert (tmp_path / "train" / "base_model" / "config.json").is_file()  # the embedded model as a model folder
    merged = runner.invoke(app, ["merge", str(tmp_path / "train" / "adapter"), "--out", str(tmp_path / "merged")])
    assert merged.exit_code == 0, merged.output
    checks = json.loads((tmp_path / "merged" / "merge_report.json").read_text())
    assert checks["merged_into"] == "de-quantised base in bfloat16" and checks["logits"]["passed"]
    assert checks["logits"]["top1_agreement"] >= 0.99
    from safetensors import safe_open

    with safe_open(str(tmp_path / "merged" / "model.safetensors"), "pt") as f:  # 16-bit weights, no 4-bit packing
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert dtypes == {"BF16"}, dtypes


def test_quantization_is_what_was_asked_or_an_error(tmp_path, shards, monkeypatch):
    import sys

    import torch

    from curate.errors import CurateError
    from curate.train.data import load
    from curate.train.run import load_model, resolve_quantization

    assert resolve_quantization("auto", "cpu") == "none" and resolve_quantization("none", "cuda") == "none"
    assert resolve_quantization("nf4", "cpu") == "nf4"
    data = load(str(shards.out_dir), "train", "validation")
    tiny = {
        "embedded": {"vocab_size": 300, "hidden": 32, "layers": 1, "heads": 2, "kv_heads": 1},
        "output_dir": str(tmp_path),
    }
    loaded = {}
    for q in ("none", "nf4"):
        tokenizer, model, _, got = load_model(
            TrainConfig.model_validate({**tiny, "quantization": q}), data, "cpu", tmp_path / q
        )
        assert got == q
        kinds = {type(m).__name__ for m in model.modules()}
        assert ("Linear4bit" in kinds) == (q == "nf4")
        ids = tokenizer("hello there", return_tensors="pt")["input_ids"]
        with torch.no_grad():
            loaded[q] = model(input_ids=ids).logits.float()
    assert not torch.allclose(loaded["none"], loaded["nf4"])  # the 4-bit weights are really used
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as where it is not installed
    with pytest.raises(CurateError, match="quantization: nf4 needs bitsandbytes"):
        resolve_quantization("nf4", "cpu")


QWEN2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "qwen2-tokenizer"


@pytest.fixture(scope="module")
def qwen2_model(tmp_path_factory):
    """A real-model-shaped base: a tiny Qwen2 (random weights) with the real Qwen2 tokenizer, saved as a
    model folder. Its template is the shared LLaMA-Factory export (a trap the template check catches),
    and its generation config ends on <|endoftext|> only, as merges by other trainers have shipped."""
    if not QWEN2.is_dir():
        pytest.skip(f"the shared Qwen2 tokenizer is not at {QWEN2}")
    from curate.train.tiny import save_qwen2_like

    shape = {"hidden": 32, "intermediate": 64, "layers": 2, "heads": 2, "kv_heads": 1}
    return save_qwen2_like(QWEN2, tmp_path_factory.mktemp("qwen2_tiny"), **shape)


@pytest.mark.parametrize("quantization", ["none", "nf4"])
def test_lora_and_qlora_on_a_qwen2_shaped_model_folder_end_to_end(tmp_path, shards, qwen2_model, quantization):
    report = _train(
        tmp_path,
        {
            "base_model": str(qwen2_model),
            "shards": str(shards.out_dir),
            "quantization": quantization,
            "max_steps": 10,
            "eval_steps": 10,
            "batch_size": 2,
            "learning_rate": 0.01,
            "max_length": 64,
            "max_eval_records": 8,
            "stop_check": {"samples": 2, "max_new_tokens": 8},
        },
    )
    assert report["template"]["use_builtin"] is True  # the LLaMA-Factory export is caught and replaced
    assert report["quantization"].startswith(quantization)
    assert report["examples"]["train"]["trained"] > 0 and report["eos_token_id"] == 151645
    assert report["examples"]["validation"]["trained"] == 8  # max_eval_records
    assert report["eval_loss"]["after"] < report["eval_loss"]["before"]
    assert report["stop_check"]["samples"] == 2 and report["stop_check"]["stop_rate"] is not None
    answer = runner.invoke(
        app, ["generate", str(tmp_path / "train" / "adapter"), "--prompt", "Hello", "--max-new-tokens", "4"]
    )
    assert answer.exit_code == 0, answer.output
    merged = runner.invoke(app, ["merge", str(tmp_path / "train" / "adapter"), "--out", str(tmp_path / "merged")])
    assert merged.exit_code == 0, merged.output
    checks = json.loads((tmp_path / "merged" / "merge_report.json").read_text())
    assert checks["logits"]["passed"]
    assert checks["eos"]["fixed"] and 151645 in _ids(
        checks["eos"]["generation_config_eos"]
    )  # serving stops at <|im_end|>
    saved = json.loads((tmp_path / "merged" / "generation_config.json").read_text())
    assert 151645 in _ids(saved["eos_token_id"])


class _Scripted:
    """A stand-in model whose greedy answer to every prompt is `answer` (token ids)."""

    def __init__(self, answer: list[int]):
        self.answer = answer

    def eval(self):
        return self

    def generate(self, input_ids, max_new_tokens, **kwargs):
        import torch

        return torch.cat([input_ids, torch.tensor([self.answer[:max_new_tokens]])], dim=1)


@pytest.fixture(scope="module")
def tokenizer():
    from curate.train.tiny import build_tokenizer

    return build_tokenizer([f"{w} {i}" for i in range(50) for w in C.CHAT_ANSWERS["routine"]], vocab_size=400)


def test_the_stop_check_fails_short_empty_looping_and_endless_answers(tokenizer):
    """Stopping at once is not stopping well: answers are judged against the reference answers' length."""
    from curate.train.run import stop_check

    reference = C.CHAT_ANSWERS["routine"][0]  # 25 words
    records = [
        {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": reference}]}
        for i in range(6)
    ]
    config = TrainConfig(stop_check={"samples": 6, "max_new_tokens": 256})
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids = tokenizer(reference, add_special_tokens=False)["input_ids"]

    def judged(answer: list[int]) -> dict:
        return stop_check(_Scripted(answer), tokenizer, records, config, "cpu")

    good = judged(ids + [end])
    assert good["passed"] and good["answers"]["ok"] == 6 and good["median_length_ratio"] == 1.0
    short = judged(ids[:3] + [end])  # ends with <|im_end|>, 3 tokens: what the old check passed
    assert short["passed"] is False and short["stop_rate"] == 1.0 and "too short" in short["warning"]
    empty = judged([end])
    assert empty["passed"] is False and empty["answers"]["empty"] == 6
    loop = judged(ids[:4] * 8 + [end])
    assert loop["passed"] is False and loop["answers"]["loops"] == 6 and "loops" in loop["warning"]
    endless = judged(ids * 5)  # never ends: cut at twice the reference's length + 8 tokens
    assert endless["passed"] is False and endless["answers"]["cut_off"] == 6
    assert endless["mean_new_tokens"] == 2 * (len(ids) + 1) + 8
    assert judged(ids + ids[:5] + [end])["passed"]  # a little longer than the reference is fine


def test_the_output_folder_is_outside_the_checkout_by_default_and_never_someone_elses(tmp_path, shards, monkeypatch):
    from curate.train.data import TrainDataError, load
    from curate.train.run import output_folder

    monkeypatch.setenv("CURATE_HOME", str(tmp_path / "home"))
    data = load(str(shards.out_dir))
    default = output_folder(TrainConfig(), data)
    assert default.parent == tmp_path / "home" / "train" / "sft" and default.name.startswith(data.lineage["version"])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(TrainDataError, match="holds files `train run` did not write \\(notes.txt\\)"):
        output_folder(TrainConfig(output_dir=str(mine)), data)
    assert (mine / "notes.txt").read_text() == "keep me"
    earlier = tmp_path / "earlier"
    (earlier / "adapter").mkdir(parents=True)
    (earlier / "train_report.json").write_text("{}")
    assert output_folder(TrainConfig(output_dir=str(earlier)), data) == earlier  # a previous run's: replaced
