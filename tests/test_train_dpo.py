"""`method: dpo`: TRL's DPOTrainer with LoRA (and QLoRA on a CPU) on preference pairs from curated shards,
reward metrics in the output folder, the stop check after training."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from curate.records import MESSAGE
from curate.train.cli import app
from tests.conftest import run as curate_run
from tests.conftest import write_pipeline

runner = CliRunner()
PREF = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-pref" / "dpo_en_demo.json"

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pair_shards(tmp_path_factory):
    """Real preference pairs (LLaMA-Factory's dpo_en_demo, its first 160, sharegpt ranking layout) curated by
    `curate run`: read as pairs (prompt turns in `messages`, the answers in `chosen` and `rejected`),
    normalised, split 80/20 (a prompt in train and held-out is dropped there as contaminated)."""
    if not PREF.is_file():
        pytest.skip(f"the shared preference data is not at {PREF}")
    folder = tmp_path_factory.mktemp("pairs")
    (folder / "pairs.json").write_text(json.dumps(json.loads(PREF.read_text())[:160]))
    split = {"stage": "split", "params": {"group_by": [], "sizes": {"train": 0.8, "validation": 0.2}}}
    path = write_pipeline(folder, [{"path": "pairs.json"}], [{"stage": "normalize"}, split], name="pairs")
    return curate_run(path, folder / "out").out_dir


def _dpo(tmp_path, shards: Path, **extra) -> tuple[dict, str]:
    config = {
        "method": "dpo",
        "shards": str(shards),
        "embedded": {"vocab_size": 800, "hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2},
        "max_steps": 24,
        "eval_steps": 12,
        "batch_size": 8,
        "learning_rate": 0.002,
        "max_length": 384,
        "stop_check": {"samples": 4, "max_new_tokens": 32},
        **extra,
    }
    (tmp_path / "dpo.yaml").write_text(json.dumps(config))
    result = runner.invoke(app, ["run", str(tmp_path / "dpo.yaml"), "--output-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    return json.loads((tmp_path / "run" / "train_report.json").read_text()), result.output


def test_dpo_trains_on_pairs_and_writes_reward_metrics(tmp_path, pair_shards):
    published = pl.read_parquet(pair_shards / "data" / "*.parquet")
    assert (
        published["chosen"].list.len().min() == 1
        and published["messages"].list.last().struct.field("role").eq("user").all()
    )  # the reader's pairs: the prompt ends with the user, the answers are turns
    report, output = _dpo(tmp_path, pair_shards)
    assert report["task"] == "dpo" and report["steps"] == 24
    assert report["examples"]["train"]["records"] == published["split"].eq("train").sum()
    metrics = json.loads((tmp_path / "run" / "dpo_metrics.json").read_text())
    assert metrics == report["dpo"] and metrics["beta"] == 0.1
    for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert key in metrics["after"] and key in metrics["before"], key
    assert [e["step"] for e in metrics["evaluations"]] == [12, 24]
    # before training the policy is the reference: rewards are zero, the loss is log 2
    assert metrics["before"]["rewards/margins"] == pytest.approx(0.0, abs=1e-3)
    assert metrics["before"]["loss"] == pytest.approx(0.6931, abs=1e-3)
    # on its training batches the policy moves toward the chosen answers (held-out loss on 30 pairs is noise)
    margins = [t["rewards/margins"] for t in metrics["train"]]
    assert len(margins) >= 4 and sum(margins) / len(margins) > 0 and metrics["after"]["rewards/margins"] != 0
    assert metrics["answer_tokens"]["chosen"] > 0 and metrics["answer_tokens"]["rejected"] > 0
    assert report["stop_check"]["samples"] == 4 and "passed" in report["stop_check"]
    assert "reward accuracy" in output and "margin" in output
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents*"))


def test_dpo_with_qlora_on_a_cpu(tmp_path, pair_shards):
    report, _ = _dpo(tmp_path, pair_shards, quantization="nf4", max_steps=6, eval_steps=6, max_eval_records=8)
    assert report["quantization"].startswith("nf4") and "4-bit NF4" in report["model"]
    assert report["dpo"]["after"]["loss"] > 0 and report["evaluation"]["records"] == 8


def test_dpo_on_shards_without_pairs_is_a_clear_error(tmp_path):
    folder = tmp_path / "chats"
    (folder / "data").mkdir(parents=True)
    chats = [[{"role": "user", "content": q}, {"role": "assistant", "content": "hello"}] for q in ("hi", "hey")]
    pl.DataFrame(
        {"id": ["a", "b"], "text": [None, None], "messages": chats, "split": ["train", "validation"]},
        schema={"id": pl.Utf8, "text": pl.Utf8, "messages": pl.List(MESSAGE), "split": pl.Utf8},
    ).write_parquet(folder / "data" / "part-00000.parquet")
    manifest = {"name": "c", "version": "1", "status": "ok", "pipeline": {"fingerprint": "x"}, "run_key": "x"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "dpo.yaml").write_text(json.dumps({"method": "dpo", "shards": str(folder)}))
    result = runner.invoke(app, ["run", str(tmp_path / "dpo.yaml"), "--output-dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and "no preference pair in the train split" in " ".join(result.output.split())
