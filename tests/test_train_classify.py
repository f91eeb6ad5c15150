"""Classification training: a labelled text set trains a classification head (no chat records needed),
with metrics per label, a confusion matrix and the same per stratum; eval, generate and merge work on
the adapter; the task is chosen from the shards."""

from __future__ import annotations

import json
import os
import random

import polars as pl
import pytest
from typer.testing import CliRunner

from curate.train.classify import metrics, task_of
from curate.train.cli import app
from curate.train.config import TrainConfig
from curate.train.data import TrainData, TrainDataError
from tests.conftest import RULES, write_pipeline
from tests.conftest import run as curate_run
from tests.onboarding_sets import patient_questions

runner = CliRunner()

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def questions(tmp_path_factory):
    """Vietnamese patient questions (an intent label each) from two clinics, curated: normalised, balanced per
    clinic, split stratified by label."""
    folder = tmp_path_factory.mktemp("questions")
    rows = json.loads(patient_questions(folder / "raw.json", n=900).read_text())
    rng = random.Random(5)
    records = [
        {"id": f"q{i}", "text": r["sentence"], "label": r["sent_label"], "clinic": rng.choice(["hanoi", "hue"])}
        for i, r in enumerate(rows)
    ]
    (folder / "q.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    stages = [
        {"stage": "normalize"},
        {"stage": "dedup", "rules": str(RULES / "dedup/default.yaml")},
        {"stage": "balance", "params": {"label": "label", "strata": ["clinic"], "strategy": "downsample"}},
        {
            "stage": "split",
            "params": {
                "group_by": ["dup_cluster"],
                "sizes": {"train": 0.7, "validation": 0.1, "test": 0.2},
                "stratify_by": "label",
                "decontamination": {"action": "off"},
            },
        },
    ]
    return curate_run(
        write_pipeline(folder, [{"path": "q.jsonl", "columns": ["clinic"]}], stages, name="questions"), folder / "out"
    )


SMALL = {
    "embedded": {"vocab_size": 600, "hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2},
    "max_steps": 60,
    "eval_steps": 30,
    "batch_size": 16,
    "learning_rate": 0.003,
    "max_length": 64,
}


def test_a_labelled_text_set_trains_a_classifier_with_metrics_per_label_and_stratum(tmp_path, questions):
    (tmp_path / "cfg.yaml").write_text(json.dumps({**SMALL, "shards": str(questions.out_dir)}))
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(tmp_path / "cfg.yaml"), "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "train_report.json").read_text())
    assert report["task"] == "classification" and report["stop_check"] is None
    got = json.loads((out / "classification_metrics.json").read_text())
    assert got == report["classification"]
    labels = ["cause", "diagnosis", "severity", "treatment"]
    assert got["split"] == "test" and got["label_column"] == "label" and got["confusion"]["labels"] == labels
    published = pl.read_parquet(questions.out_dir / "data" / "*.parquet")
    assert got["records"] == sum(map(sum, got["confusion"]["matrix"])) == published["split"].eq("test").sum()
    assert got["accuracy"] > 0.6 and got["macro_f1"] > 0.6  # four intents, chance is 0.25: it learned
    assert set(got["per_label"]) == set(labels) and all(m["support"] for m in got["per_label"].values())
    assert got["strata_columns"] == ["clinic"] and set(got["strata"]["clinic"]) == {"hanoi", "hue"}
    assert sum(s["records"] for s in got["strata"]["clinic"].values()) == got["records"]
    assert "accuracy" in result.output and "macro-F1" in result.output and "severity" in result.output
    assert report["evaluation"]["records"] <= 200 and report["examples"]["train"]["records"] > 400

    adapter = str(out / "adapter")
    evaluated = runner.invoke(app, ["eval", adapter])
    assert evaluated.exit_code == 0, evaluated.output
    again = json.loads(evaluated.stdout)["classification"]
    assert again["accuracy"] == pytest.approx(got["accuracy"], abs=0.01)  # the same model, the same split
    answer = runner.invoke(app, ["generate", adapter, "--prompt", "Đau đầu kéo dài điều trị như thế nào ạ ?"])
    assert answer.exit_code == 0 and answer.stdout.splitlines()[0] in labels
    merged = runner.invoke(app, ["merge", adapter, "--out", str(tmp_path / "merged")])
    assert merged.exit_code == 0, merged.output
    check = json.loads((tmp_path / "merged" / "merge_report.json").read_text())
    assert check["logits"]["passed"] and check["eos"] is None


def test_the_task_is_read_from_the_shards(tmp_path, questions):
    def data(frame: pl.DataFrame, manifest: dict | None = None) -> TrainData:
        return TrainData(frame, frame, {}, manifest or {})

    texts = pl.DataFrame({"text": ["a", "b", "c"], "messages": [None, None, None], "label": ["x", "y", "x"]})
    chats = pl.DataFrame(  # the demo: chats carry a label as metadata, documents none
        {
            "text": [None, None, "doc"],
            "messages": [[{"role": "user", "content": "q"}]] * 2 + [None],
            "label": ["x", "y", None],
        }
    )
    auto = TrainConfig()
    assert task_of(auto, data(texts)) == "classification"
    assert task_of(auto, data(chats)) == "sft"
    assert task_of(TrainConfig(task="sft"), data(texts)) == "sft"
    renamed = texts.rename({"label": "intent"})
    assert task_of(auto, data(renamed)) == "sft"  # no label column it knows of
    balanced = {"pipeline": {"stages": [{"stage": "balance", "rules": {"label": "intent"}}]}}
    assert task_of(auto, data(renamed, balanced)) == "classification"  # the balance stage names it
    with pytest.raises(TrainDataError, match="'label' is not one of"):
        task_of(TrainConfig(task="classification"), data(renamed))


def test_metrics_per_label_confusion_and_a_simpson_reversal_in_the_errors():
    # Clinic A: mostly "flu" questions, answered well; clinic B: mostly "covid", answered badly. Within
    # each clinic covid is recognised better than flu, but pooled, covid looks worse.
    truth, predicted, clinic = [], [], []

    def add(where: str, label: str, right: int, wrong: int) -> None:
        other = "flu" if label == "covid" else "covid"
        for ok, n in ((True, right), (False, wrong)):
            truth.extend([label] * n)
            predicted.extend([label if ok else other] * n)
            clinic.extend([where] * n)

    add("A", "flu", 80, 10)  # 0.89
    add("A", "covid", 10, 0)  # 1.00
    add("B", "flu", 5, 5)  # 0.50
    add("B", "covid", 60, 30)  # 0.67
    got = metrics(truth, predicted, ["covid", "flu"], {"clinic": clinic})
    assert got["records"] == 200 and got["accuracy"] == pytest.approx(155 / 200)
    assert got["confusion"]["matrix"] == [[70, 30], [15, 85]]  # rows: true covid, flu; columns: predicted
    covid = got["per_label"]["covid"]
    assert covid["recall"] == pytest.approx(70 / 100) and covid["precision"] == pytest.approx(70 / 85, abs=1e-4)
    assert covid["support"] == 100
    assert got["strata"]["clinic"]["A"]["per_label"]["covid"]["recall"] == 1.0
    reversed_labels = {r["label"] for r in got["reversals"]}
    assert reversed_labels == {"covid", "flu"} and all(r["stratum"] == "clinic" for r in got["reversals"])
    covid_reading = next(r["reading"] for r in got["reversals"] if r["label"] == "covid")
    assert "worse than the other labels overall but better within clinic" in covid_reading
    fair = metrics(truth, truth, ["covid", "flu"], {"clinic": clinic})  # no errors: nothing reverses
    assert fair["reversals"] == [] and fair["macro_f1"] == 1.0


def test_sft_on_a_classification_set_says_how_to_go_on(tmp_path, questions):
    (tmp_path / "cfg.yaml").write_text(json.dumps({**SMALL, "task": "sft", "shards": str(questions.out_dir)}))
    result = runner.invoke(app, ["run", str(tmp_path / "cfg.yaml"), "--output-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "no train record left to train on (0 chat records)" in result.output
    assert "`task: classification` trains a classifier" in " ".join(result.output.split())
