"""`curate init` on the layouts users bring: what it decides and why, and that the pipeline it writes
runs and passes its gates on the data it was made from."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from curate.catalog import Catalog
from curate.cli import app
from curate.config import load_pipeline
from curate.schema import load_rules
from tests.conftest import REPO
from tests.onboarding_sets import WORD_PROBLEMS, gsm8k_file, gsm8k_style, pydoc_documents

runner = CliRunner()
REAL_SFT = REPO.parent / "shared" / "data" / "real-sft"
FASTCHAT = REPO.parent / "shared" / "data" / "fastchat-bench"


def _init(tmp_path: Path, *args: str) -> tuple[object, dict, dict]:
    result = runner.invoke(app, ["init", *args], terminal_width=200)
    assert result.exit_code == 0, result.output
    target = Path(args[args.index("-o") + 1])
    pipeline = yaml.safe_load(target.read_text())
    gates = yaml.safe_load(target.with_name(target.name.replace(".yaml", ".gates.yaml")).read_text())
    return result, pipeline, gates


def _stage(pipeline: dict, name: str) -> dict | None:
    return next((s for s in pipeline["stages"] if s["stage"] == name), None)


def _expectations(gates: dict) -> list[dict]:
    return gates["expectations+"]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _layout_rows(layout: str) -> list[dict]:
    rows = []
    for q, steps, ans in WORD_PROBLEMS:
        a = f"{steps} The answer is {ans:g}."
        rows.append(
            {
                "messages": {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
                "sharegpt": {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]},
                "alpaca_response": {"instruction": q, "input": "", "response": a},
                "prompt_completion": {"prompt": q, "completion": a},
                "question_answer": {"question": q, "answer": a},
                "text": {"text": f"{q} {a}"},
            }[layout]
        )
    return rows


@pytest.mark.parametrize(
    ("layout", "detected", "task"),
    [
        ("messages", "chat (messages)", "sft"),
        ("sharegpt", "sharegpt (conversations)", "sft"),
        ("alpaca_response", "alpaca (response)", "sft"),
        ("prompt_completion", "prompt/completion", "sft"),
        ("question_answer", "question/answer", "sft"),
        ("text", "text", "pretrain"),
    ],
)
def test_init_detects_each_layout_and_writes_a_pipeline_that_validates(tmp_path, layout, detected, task):
    data = _write(tmp_path / f"{layout}.jsonl", _layout_rows(layout))
    result, pipeline, gates = _init(tmp_path, str(data), "-o", str(tmp_path / "p.yaml"))
    assert "layout" in result.output and f"{detected} 100%" in result.output
    assert f"curate init: {layout} ({task})" in result.output
    assert pipeline["name"] == layout and gates["extends"].endswith(
        f"rules/gates/{'sft' if task == 'sft' else 'pretrain'}.yaml"
    )
    spec = load_pipeline(tmp_path / "p.yaml")  # validates every rules file and the gates it extends
    chats = ["phrases"] if task == "sft" else []  # AI disclaimers and rote refusals: answers only
    assert [s.name for s in spec.stages] == ["normalize", "langid", "pii", "quality", *chats, "dedup", "split"]
    assert spec.stages[1].rules.allowed == ["en"]
    header = (tmp_path / "p.yaml").read_text().splitlines()[:12]
    assert any(line.startswith("# languages: en — lid.176") for line in header)  # each decision with its reason


def test_gsm8k_style_file_init_then_run_exits_0_with_gates_passed_and_three_splits(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = gsm8k_file(tmp_path / "gsm8k_style.jsonl")
    result, pipeline, gates = _init(tmp_path, str(data), "-o", "pipelines/gsm.yaml")
    assert "question/answer 100%" in result.output and "label     │ none" in result.output
    assert _stage(pipeline, "balance") is None and _stage(pipeline, "split")["params"]["stratify_by"] is None
    assert not any("label" in json.dumps(e) for e in _expectations(gates))  # label gates only where there is a label
    assert _stage(pipeline, "split")["params"]["sizes"] == {
        "train": 0.7,
        "validation": 0.15,
        "test": 0.15,
    }  # small: larger held-out
    run = runner.invoke(app, ["run", "pipelines/gsm.yaml", "-q"])
    assert run.exit_code == 0, run.output
    entry = Catalog().resolve("gsm8k_style@latest")
    assert entry.status == "ok" and entry.path == (tmp_path / "out" / "gsm8k_style").resolve()
    shards = entry.read(["split", "messages"])
    assert set(shards["split"]) == {"train", "validation", "test"}
    assert shards.height == len(WORD_PROBLEMS)  # a reader finds nothing to drop here, and nothing is
    assert shards["messages"][0][1]["role"] == "assistant" and "####" in shards["messages"][0][1]["content"]


def test_labelled_documents_become_classification_with_label_gates_balance_and_stratified_splits(tmp_path, monkeypatch):
    import keyword
    from pydoc_data.topics import topics

    monkeypatch.chdir(tmp_path)
    # Python's own help topics (real text), labelled by whether the topic is a statement keyword; the
    # shorter ones (enough to show it, and quick)
    short = sorted(sorted(topics.items(), key=lambda kv: len(kv[1]))[:40])
    rows = [{"id": k, "text": v, "kind": "keyword" if k in keyword.kwlist else "concept"} for k, v in short]
    data = _write(tmp_path / "pyhelp.jsonl", rows)
    result, pipeline, gates = _init(tmp_path, str(data), "-o", "p.yaml", "--task", "classification")
    assert "label     │ kind" in result.output
    assert pipeline["inputs"][0]["fields"] == {"label": "kind"}
    assert _stage(pipeline, "balance")["params"]["label"] == "label"
    assert _stage(pipeline, "split")["params"]["stratify_by"] == "label"
    values = next(
        e["values_in_set"] for e in _expectations(gates) if e.get("values_in_set", {}).get("column") == "label"
    )
    assert values["values"] == ["concept", "keyword"]
    run = runner.invoke(app, ["run", "p.yaml", "-q"])
    assert run.exit_code == 0, run.output
    shards = Catalog().resolve("pyhelp@latest").read(["label", "split"])
    assert set(shards["label"]) == {"concept", "keyword"} and set(shards["split"]) == {"train", "validation", "test"}


def test_pretrain_documents_run_with_generic_gates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = pydoc_documents(tmp_path / "pydoc_topics.jsonl", shortest=40)
    result, pipeline, _ = _init(tmp_path, str(data), "-o", "p.yaml")
    assert "(pretrain)" in result.output and "code      │" in result.output  # the help topics hold code examples
    assert _stage(pipeline, "dedup")["params"] == {"chat_text": "conversation"}
    run = runner.invoke(app, ["run", "p.yaml", "-q"])
    assert run.exit_code == 0, run.output
    assert "gates (final):" in run.output and "0 failed" in run.output


def test_short_texts_get_short_text_rules_and_code_answers_are_noticed(tmp_path):
    notes = [
        {"text": f"Short note {i}: the meeting with the design team moved to room {i % 7}, bring the draft."}
        for i in range(60)
    ]
    _, pipeline, _ = _init(
        tmp_path, str(_write(tmp_path / "notes.jsonl", notes)), "-o", str(tmp_path / "n.yaml"), "--task", "pretrain"
    )
    quality = _stage(pipeline, "quality")
    assert quality["rules"].endswith("quality/short.yaml") and "params" not in quality  # no page rule to switch off
    header = (tmp_path / "n.yaml").read_text()
    assert "quality: short-text rules (rules/quality/short.yaml) — the records are short texts (median 16" in header
    assert "the page rules would drop 100% of the sample (most: gopher_min_words 60" in header
    code = [
        {
            "instruction": f"Write a Python function that returns {i} times its argument.",
            "output": f"def times_{i}(x):\n    return {i} * x\n",
        }
        for i in range(40)
    ]
    result, pipeline, _ = _init(tmp_path, str(_write(tmp_path / "code.jsonl", code)), "-o", str(tmp_path / "c.yaml"))
    assert "code      │ 100% of records" in result.output
    assert _stage(pipeline, "quality").get("params") is None  # the chat rules fit code answers: nothing switched off
    # too little prose in the answers to judge: languages come from the prompts
    assert _stage(pipeline, "langid")["params"]["allowed"] == ["en"]


def test_small_and_large_inputs_get_held_out_shares_and_gate_sizes_that_fit(tmp_path):
    big = gsm8k_style(tmp_path / "big.jsonl", n=30_000)
    result, pipeline, gates = _init(tmp_path, str(big), "-o", str(tmp_path / "big.yaml"), "--sample", "500")
    estimate = int(
        next(line for line in (tmp_path / "big.yaml").read_text().splitlines() if line.startswith("# size:"))
        .split()[2]
        .replace(",", "")
    )
    assert estimate == 30_000  # counted, not estimated from the 500 sampled rows
    assert "# size: 30,000 records — counted;" in (tmp_path / "big.yaml").read_text()
    sizes = _stage(pipeline, "split")["params"]["sizes"]
    assert sizes["validation"] == sizes["test"] == pytest.approx(2_000 / estimate, abs=0.002)
    minimum = next(e["split_sizes"]["min"] for e in _expectations(gates) if "split_sizes" in e)
    assert minimum["validation"] <= 0.5 * 500 * sizes["validation"] + 1  # from rows known to exist, never the estimate
    small = gsm8k_file(tmp_path / "small.jsonl")
    _, pipeline, _ = _init(tmp_path, str(small), "-o", str(tmp_path / "small.yaml"))
    assert _stage(pipeline, "split")["params"]["sizes"]["validation"] == 0.15


def test_group_ids_are_promoted_and_keep_a_conversation_in_one_split(tmp_path):
    rows = [
        {"conversation_id": f"conv{i // 3}", "turn": i % 3, "question": q, "answer": f"{s} #### {a:g}"}
        for i, (q, s, a) in enumerate(WORD_PROBLEMS)
    ]
    result, pipeline, _ = _init(tmp_path, str(_write(tmp_path / "threads.jsonl", rows)), "-o", str(tmp_path / "t.yaml"))
    assert "groups    │ conversation_id" in result.output
    assert pipeline["inputs"][0]["columns"] == ["conversation_id"]
    assert _stage(pipeline, "split")["params"]["group_by"] == ["dup_cluster", "conversation_id"]


def test_init_never_overwrites_without_force(tmp_path):
    data = gsm8k_file(tmp_path / "gsm.jsonl")
    target = tmp_path / "mine.yaml"
    target.write_text("# my own pipeline\n")
    refused = runner.invoke(app, ["init", str(data), "-o", str(target)])
    assert refused.exit_code == 2 and "already exists; pass --force" in refused.output
    assert target.read_text() == "# my own pipeline\n" and not (tmp_path / "mine.gates.yaml").exists()
    (tmp_path / "other.gates.yaml").write_text("# my gates\n")
    refused = runner.invoke(app, ["init", str(data), "-o", str(tmp_path / "other.yaml")])
    assert refused.exit_code == 2 and (tmp_path / "other.gates.yaml").read_text() == "# my gates\n"
    forced = runner.invoke(app, ["init", str(data), "-o", str(target), "--force"])
    assert forced.exit_code == 0 and load_pipeline(target).spec.name == "gsm"


def test_init_never_writes_through_a_link_to_nothing(tmp_path):
    data = gsm8k_file(tmp_path / "gsm.jsonl")
    (tmp_path / "p.yaml").symlink_to(tmp_path / "elsewhere" / "planted.yaml")
    refused = runner.invoke(app, ["init", str(data), "-o", str(tmp_path / "p.yaml"), "--force"])
    assert refused.exit_code == 2 and "is a symbolic link to" in refused.output and "does not exist" in refused.output
    assert not (tmp_path / "elsewhere").exists()
    (tmp_path / "q.gates.yaml").symlink_to(tmp_path / "planted.gates.yaml")  # the gates file too
    refused = runner.invoke(app, ["init", str(data), "-o", str(tmp_path / "q.yaml")])
    assert refused.exit_code == 2 and "q.gates.yaml is a symbolic link" in refused.output
    assert not (tmp_path / "planted.gates.yaml").exists() and not (tmp_path / "q.yaml").exists()


def test_init_on_a_crawl_writes_url_and_extract_first_and_measures_the_extracted_text(tmp_path):
    from tests.warcs import pages_warc

    warc = pages_warc(tmp_path / "crawl.warc.gz", limit=30)
    result, pipeline, _ = _init(tmp_path, str(warc), "-o", str(tmp_path / "p.yaml"))
    assert "crawl     │ url, extract first" in result.output and "task      │ pretrain" in result.output
    stages = [s["stage"] for s in pipeline["stages"]]
    assert stages[:3] == ["url", "extract", "normalize"] and stages[-2:] == ["dedup", "split"]
    assert _stage(pipeline, "pii")["rules"].endswith("pii/web.yaml")
    assert "label     │ none" in result.output  # the crawl's own columns (domain, url...) are not labels
    assert load_pipeline(tmp_path / "p.yaml").stages[0].stage == "url"


def test_init_on_data_with_no_usable_record_is_a_clear_error(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": ""}\n[1, 2]\nnot json\n')
    result = runner.invoke(app, ["init", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "p.yaml")])
    assert result.exit_code == 2 and "no usable record" in result.output
    assert not (tmp_path / "p.yaml").exists()


def test_generic_pipelines_publish_under_the_inputs_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _write(
        tmp_path / "word_problems.jsonl",
        [{"question": q, "answer": f"{s}\n#### {a:g}"} for q, s, a in WORD_PROBLEMS[:12]],
    )
    result = runner.invoke(app, ["run", str(REPO / "pipelines" / "sft.yaml"), "--input", str(data), "-q", "-w", "1"])
    assert result.exit_code == 0, result.output
    assert "catalog:  shards://word_problems@" in result.output
    assert Catalog().resolve("word_problems@latest").path == (tmp_path / "out" / "word_problems").resolve()
    assert not Catalog().entries("sft")  # never the pipeline's own name
    for generic in ("sft.yaml", "pretrain.yaml"):
        rules = load_rules(REPO / "rules" / "gates" / generic)
        assert "routine" not in json.dumps(rules) and "domain" not in json.dumps(rules)  # nothing demo-specific


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("data/gsm8k_train.jsonl.gz", "gsm8k_train"),
        ("corpus/", "corpus"),
        ("crawl/2024/*.jsonl.zst", "2024"),
        ("s3://bucket/sets/Dolly 15k (en).parquet", "Dolly-15k-en"),
        ("shards://base@latest", "base"),
        ("...hidden...name.json", "hidden.name"),
        ("dữ_liệu_đào_tạo.jsonl", "du_lieu_dao_tao"),
        ("日本.jsonl", "input"),
    ],
)
def test_the_name_from_an_input_is_a_valid_catalog_name(given, name):
    from curate.catalog import check_name
    from curate.io.sources import name_from_inputs

    assert check_name(name_from_inputs([given])) == name


@pytest.mark.skipif(not REAL_SFT.is_dir(), reason="needs ../shared/data/real-sft")
def test_readme_own_data_flow_init_run_train_on_a_real_set(tmp_path, monkeypatch):
    """The README's "Curate your own data": curate init, curate run, make train (a few steps here)."""
    from curate.train.cli import app as train_app

    monkeypatch.chdir(tmp_path)
    # the first 400 records of the real set (the whole set runs in `make bench`, bench/onboard.py)
    records = json.loads((REAL_SFT / "code_alpaca_2k.json").read_text())[:400]
    (tmp_path / "code_alpaca_2k.json").write_text(json.dumps(records))
    result, pipeline, _ = _init(tmp_path, "code_alpaca_2k.json", "-o", "pipelines/code_alpaca.yaml")
    assert "alpaca 100%" in result.output
    run = runner.invoke(app, ["run", "pipelines/code_alpaca.yaml", "-q"])
    assert run.exit_code == 0, run.output
    entry = Catalog().resolve("code_alpaca_2k@latest")
    shards = entry.read(["split", "messages"])
    assert shards.height > 0.95 * 400  # SQL answers are not "shouting", code is not dropped as junk
    assert shards["split"].value_counts().height == 3
    (tmp_path / "train.yaml").write_text(
        json.dumps(
            {
                "max_steps": 4,
                "eval_steps": 4,
                "batch_size": 4,
                "max_length": 128,
                "embedded": {"vocab_size": 600, "hidden": 32, "layers": 1, "heads": 2, "kv_heads": 1},
                "stop_check": {"samples": 2, "max_new_tokens": 8},
            }
        )
    )
    trained = CliRunner().invoke(
        train_app,
        [
            "run",
            "train.yaml",
            "--shards",
            "shards://code_alpaca_2k@latest",
            "--output-dir",
            str(tmp_path / "train"),
            "--strict",
        ],
    )
    report = json.loads((tmp_path / "train" / "train_report.json").read_text())
    # 4 steps do not teach a model to answer: --strict exits 4 when the stop check fails; the run completes
    assert trained.exit_code == (4 if report["stop_check"]["passed"] is False else 0), trained.output
    assert report["task"] == "sft" and report["steps"] == 4
    assert report["lineage"]["name"] == "code_alpaca_2k" and report["lineage"]["version"] == entry.version


@pytest.mark.skipif(not FASTCHAT.is_dir(), reason="needs ../shared/data/fastchat-bench")
def test_init_sizes_the_gates_from_what_survives_on_a_real_set_that_is_mostly_duplicates(tmp_path, monkeypatch):
    """FastChat's identity conversations: 500 ShareGPT records, most of them duplicates of a few."""
    monkeypatch.chdir(tmp_path)
    result, _, gates = _init(tmp_path, str(FASTCHAT / "dummy_conversation.json"), "-o", "p.yaml")
    assert "sharegpt (conversations) 100%" in result.output and "near_duplicate" in result.output
    run = runner.invoke(app, ["run", "p.yaml", "-q"])
    assert run.exit_code == 0, run.output
    kept = pl.read_parquet(tmp_path / "out" / "dummy_conversation" / "data" / "*.parquet")
    # 154 distinct prompts, answers reworded: whole records (prompt and answer) near each other go
    assert set(kept["split"]) == {"train", "validation", "test"} and kept.height < 0.5 * 500
    minimum = next(e["split_sizes"]["min"] for e in _expectations(gates) if "split_sizes" in e)
    assert minimum["train"] <= kept.filter(pl.col("split") == "train").height
