"""`train plan`: tokens counted as the trainer encodes them, truncation counted right, a memory model that
grows where it must and matches published measurements within a band, fit decisions, and the command."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from curate.train.cli import app
from curate.train.data import load
from curate.train.encode import IGNORE, EncodeStats, encode_record
from curate.train.plan import (
    ARCHS,
    GIB,
    GPUS,
    LORA,
    QLORA,
    QWEN1_ARCHS,
    QWEN1_LORA_R,
    QWEN1_PROFILE,
    QWEN1_SEQS,
    Settings,
    Step,
    batch_positions,
    count_tokens,
    default_mfu,
    memory,
    model_rows,
    plan,
    report_section,
)
from curate.train.run import _records
from tests.conftest import run as curate_run
from tests.conftest import write_pipeline

runner = CliRunner()
QWEN2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "qwen2-tokenizer"
MAX_LENGTH = 64


@pytest.fixture(scope="module")
def tokenizer():
    if not QWEN2.is_dir():
        pytest.skip(f"the shared Qwen2 tokenizer is not at {QWEN2}")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(QWEN2))


def _chat(i: int, user: str, answer: str, turns: int = 1) -> dict:
    messages = []
    for t in range(turns):
        messages += [{"role": "user", "content": f"{user} (turn {t})"}, {"role": "assistant", "content": answer}]
    return {"id": f"r{i}", "messages": messages}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Short chats, multi-turn chats, chats with an answer longer than MAX_LENGTH (cut, still trained) and
    with a prompt longer than it (the cut leaves nothing to learn), and plain texts; each record unique."""
    folder = tmp_path_factory.mktemp("plan")
    long = " ".join(f"word{j}" for j in range(120))
    rows = []
    for i in range(60):
        kind = i % 6
        if kind == 0:
            rows.append(_chat(i, f"Why is the sky blue? Case {i}.", f"Rayleigh scattering, case {i}. {long}"))
        elif kind == 1:
            rows.append(_chat(i, f"Summarise this: {long} ({i})", f"A list of words, {i}."))
        elif kind == 2:
            rows.append(_chat(i, f"Count to three, {i}.", "One, two, three.", turns=3))
        elif kind == 3:
            rows.append({"id": f"r{i}", "text": f"A plain document number {i} about tokens."})
        else:
            rows.append(_chat(i, f"What is {i} plus {i}?", f"{2 * i}."))
    (folder / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    split = {
        "stage": "split",
        "params": {"group_by": [], "sizes": {"train": 0.8, "validation": 0.2}, "decontamination": {"action": "off"}},
    }
    path = write_pipeline(folder, [{"path": "sft.jsonl"}], [{"stage": "normalize"}, split], name="plan")
    return curate_run(path, folder / "out").out_dir


def _trainer_view(tokenizer, shards, include_text: bool = False):
    """What `train run` does with the train split: its records, encoded and cut, with the stats it reports."""
    stats = EncodeStats()
    records = _records(load(str(shards)).train, include_text)
    encoded = [encode_record(tokenizer, r, "all_assistant", MAX_LENGTH, stats) for r in records]
    return records, encoded, stats


def test_token_counts_equal_the_trainers_encoding(tokenizer, shards):
    records, encoded, stats = _trainer_view(tokenizer, shards)
    counted = count_tokens(tokenizer, records, "all_assistant", MAX_LENGTH)
    assert len(counted) == len(records)
    for c, e in zip(counted, encoded):
        if e is None:
            assert c.dropped is not None
            continue
        assert (c.kept, c.trained, c.dropped) == (len(e.input_ids), sum(x != IGNORE for x in e.labels), None)
    assert sorted(c.id for c in counted if c.dropped) == sorted(i for i, _ in stats.dropped)
    result = plan(str(shards), str(QWEN2), Settings(max_length=MAX_LENGTH), models=["Qwen2.5-0.5B"])
    assert result["tokenizer"]["kind"] == "local" and result["tokenizer"]["vocab"] == len(tokenizer)
    assert result["tokens"]["per_epoch"] == sum(len(e.input_ids) for e in encoded if e)
    assert result["tokens"]["trained_labels"] == sum(sum(x != IGNORE for x in e.labels) for e in encoded if e)
    assert result["records"]["trained"] == sum(e is not None for e in encoded)


def test_truncation_is_counted_as_the_trainer_counts_it(tokenizer, shards):
    records, encoded, stats = _trainer_view(tokenizer, shards)
    full = [encode_record(tokenizer, r, "all_assistant", 10**9, EncodeStats()) for r in records]
    cut = plan(str(shards), str(QWEN2), Settings(max_length=MAX_LENGTH), models=["Qwen2.5-0.5B"])["truncation"]
    assert cut["records"] == stats.truncated > 0
    assert cut["dropped"] == len(stats.dropped) > 0  # long prompts: the cut removed every trained token
    assert all("removed every trained token" in reason for _, reason in cut["examples"])
    assert cut["tokens_cut"] == sum(len(f.input_ids) - MAX_LENGTH for f in full if len(f.input_ids) > MAX_LENGTH)
    # plain-text records count only when asked for, as in training
    with_text = plan(
        str(shards), str(QWEN2), Settings(max_length=MAX_LENGTH, include_text_records=True), models=["Qwen2.5-0.5B"]
    )
    _, encoded_text, _ = _trainer_view(tokenizer, shards, include_text=True)
    assert with_text["tokens"]["per_epoch"] == sum(len(e.input_ids) for e in encoded_text if e)
    assert with_text["records"]["encoded"] > len(records)


def test_the_embedded_tokenizer_is_the_default_and_says_so(shards):
    result = plan(str(shards), None, Settings(max_length=MAX_LENGTH), models=["Qwen3-0.6B"], methods=["qlora"])
    assert result["tokenizer"]["kind"] == "embedded" and "--tokenizer" in result["tokenizer"]["what"]
    assert result["tokens"]["per_epoch"] > 0 and [r["method"] for r in result["models"]] == ["QLoRA"]


def test_parameter_counts_match_the_model_cards():
    published = {  # billions, from the model cards
        "Qwen2.5-0.5B": 0.49,
        "Qwen2.5-1.5B": 1.54,
        "Qwen2.5-7B": 7.61,
        "Qwen2.5-14B": 14.7,
        "Qwen3-0.6B": 0.6,
        "Qwen3-1.7B": 1.7,
        "Qwen3-8B": 8.2,
        "Qwen3-14B": 14.8,
    }
    for name, billions in published.items():
        assert ARCHS[name].params / 1e9 == pytest.approx(billions, rel=0.02), name


def test_memory_grows_where_it_must():
    base = Step(batch=4, seq=512, checkpointing=False)
    for method in (LORA, QLORA):
        for name in ARCHS:
            arch = ARCHS[name]
            total = memory(arch, method, base)["total"]
            assert memory(arch, method, Step(8, 512, False))["total"] > total
            assert memory(arch, method, Step(4, 1024, False))["total"] > total
            assert memory(arch, method, Step(4, 512, False, lora_r=64))["total"] > total
            assert memory(arch, method, Step(4, 512, True))["activations"] < memory(arch, method, base)["activations"]
        for small, large in (
            ("Qwen2.5-0.5B", "Qwen2.5-1.5B"),
            ("Qwen2.5-7B", "Qwen2.5-14B"),
            ("Qwen3-1.7B", "Qwen3-8B"),
        ):
            assert memory(ARCHS[large], method, base)["total"] > memory(ARCHS[small], method, base)["total"]
    for name in ("Qwen2.5-7B", "Qwen2.5-14B", "Qwen3-8B", "Qwen3-14B"):
        lora, qlora = (memory(ARCHS[name], m, Step(1, 512, True))["weights"] for m in (LORA, QLORA))
        assert qlora < 0.6 * lora


def test_a_published_measurement_is_within_the_band():
    """Qwen's README: Qwen-7B, LoRA r=64, batch 1, 1,024 tokens, checkpointing, one A100: 21.5 GB. In Qwen's
    setup the adapters and AdamW's moments were bf16 (8 bytes a parameter, not 16)."""
    from dataclasses import replace

    gb, _ = QWEN1_PROFILE[("7B", "LoRA")][QWEN1_SEQS.index(1024)]
    estimate = memory(QWEN1_ARCHS["7B"], replace(LORA, trainable_bytes=8), Step(1, 1024, True, QWEN1_LORA_R))
    assert 0.78 <= estimate["total"] / GIB / gb <= 1.0
    # the utilisation read off the same table is plausible for LoRA on an A100, larger for larger models and
    # for longer passes
    small, large = (default_mfu(ARCHS[m], "LoRA", 2048) for m in ("Qwen2.5-1.5B", "Qwen2.5-14B"))
    assert 0.2 < small < large < 0.6
    assert default_mfu(ARCHS["Qwen2.5-7B"], "LoRA", 256) < default_mfu(ARCHS["Qwen2.5-7B"], "LoRA", 4096)


def test_fit_decisions():
    settings = Settings(max_length=512, batch_size=8)
    rows = model_rows(settings, 512, 1e6, 9e5, 400.0)
    by = {(r["model"], r["method"]): r["gpus"] for r in rows}
    assert not by[("Qwen2.5-14B", "LoRA")]["T4"]["fits"]  # 27 GiB of bf16 weights on a 16 GB card
    assert not by[("Qwen2.5-14B", "LoRA")]["L4"]["fits"]
    assert by[("Qwen2.5-0.5B", "QLoRA")]["H100"] == {**by[("Qwen2.5-0.5B", "QLoRA")]["H100"], "fits": True}
    h100 = by[("Qwen2.5-0.5B", "LoRA")]["H100"]
    assert h100["fits"] and not h100["checkpointing"] and h100["batch"] == 8
    t4 = by[("Qwen2.5-7B", "QLoRA")]["T4"]  # fits only with checkpointing and a smaller batch
    assert t4["fits"] and t4["checkpointing"] and t4["batch"] < 8 and t4["gradient_accumulation"] >= 2
    a100 = by[("Qwen2.5-14B", "QLoRA")]["A100-40"]
    assert a100["fits"] and a100["checkpointing"]
    # a fitting card has a time and a cost, the cost its hours times its price; bigger models take longer
    assert h100["cost"] == pytest.approx(h100["hours"] * GPUS["H100"].price, rel=1e-3)
    assert by[("Qwen2.5-7B", "LoRA")]["H100"]["hours"] > h100["hours"]


def test_padding_and_packing_positions():
    lengths = [10, 100, 12, 95, 50, 51, 20, 200]
    positions, width = batch_positions(lengths, 2, 256, packing=False)
    assert positions >= sum(lengths) and width == positions / len(lengths)
    packed, row = batch_positions(lengths, 2, 256, packing=True)
    assert row == 256 and packed % 256 == 0 and packed >= sum(lengths)


def test_cli_prints_and_writes_json(shards):
    args = ["plan", str(shards), "--tokenizer", str(QWEN2), "--max-length", str(MAX_LENGTH), "--model", "qwen2.5-7b"]
    if not QWEN2.is_dir():
        pytest.skip(f"the shared Qwen2 tokenizer is not at {QWEN2}")
    printed = runner.invoke(app, [*args, "--gpu-hours-price", "H100=2.00"])
    assert printed.exit_code == 0, printed.output
    for text in ("tokens per epoch", "max_length 64 cuts", "Qwen2.5-7B", "QLoRA", "H100", "prices:"):
        assert text in printed.output, text
    as_json = runner.invoke(app, [*args, "--method", "qlora", "--json", "--tokens-per-second", "A100-40=1000"])
    assert as_json.exit_code == 0, as_json.output
    result = json.loads(as_json.stdout)
    assert result["format"] == "curate.train_plan/1" and result["tokenizer"]["kind"] == "local"
    (row,) = result["models"]
    assert (row["model"], row["method"]) == ("Qwen2.5-7B", "QLoRA")
    a100 = row["gpus"]["A100-40"]
    assert a100["tokens_per_s"] == 1000 and a100["hours"] == pytest.approx(
        result["tokens"]["per_epoch"] / 1000 / 3600, rel=1e-3
    )
    bad = runner.invoke(app, ["plan", str(shards), "--gpu-hours-price", "H100"])
    assert bad.exit_code == 2 and "GPU=NUMBER" in bad.output
    unknown = runner.invoke(app, ["plan", str(shards), "--gpu", "V100"])
    assert unknown.exit_code == 2 and "H100" in unknown.output
    ambiguous = runner.invoke(app, ["plan", str(shards), "--tokens-per-second", "H100=900"])
    assert ambiguous.exit_code == 2 and "one --model" in ambiguous.output


def test_report_section_estimates_from_characters(tokenizer, shards):
    data = load(str(shards))
    frame = pl.concat([data.train, data.validation], how="diagonal_relaxed").select("text", "messages", "split")
    section = report_section([frame], Settings(max_length=MAX_LENGTH))
    records, encoded, _ = _trainer_view(tokenizer, shards)
    assert section["records"] == data.train.height  # the train split only, texts included
    counted = sum(min(len(e.input_ids), MAX_LENGTH) for e in encoded if e)
    assert 0.5 < section["tokens_per_epoch"] / counted < 2.0
    assert section["truncated"] > 0 and len(section["models"]) == 2 * len(ARCHS)
