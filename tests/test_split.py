"""Splits: stratified, group-aware (near-duplicates never straddle), decontaminated against eval sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.records import BASE_SCHEMA
from curate.stages.base import ACTION, RULE, StageContext
from curate.stages.dedup import DedupRules, DedupStage
from curate.stages.split import SplitRules, SplitStage

MT_BENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "fastchat-bench" / "mt_bench_question.jsonl"


def _docs(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = [f"v{i}" for i in range(5000)]
    return [" ".join(rng.choice(vocab, 60)) for _ in range(n)]


def _frame(texts: list[str], labels: list[str] | None = None, **cols) -> pl.DataFrame:
    df = pl.DataFrame(
        {"id": [f"r{i}" for i in range(len(texts))], "text": texts, "label": labels or ["a"] * len(texts), **cols}
    )
    return df.with_columns(*(pl.lit(None, dtype=t).alias(c) for c, t in BASE_SCHEMA.items() if c not in df.columns))


def _split(df: pl.DataFrame, **rules) -> tuple[pl.DataFrame, dict]:
    stage = SplitStage("split", SplitRules.model_validate(rules))
    stage.setup()
    output = stage.run(df)
    return output.frame, output.summary


def test_splits_follow_sizes_and_keep_the_label_mix():
    texts = _docs(1000)
    labels = ["pos"] * 200 + ["neg"] * 800
    out, summary = _split(_frame(texts, labels, dup_cluster=[None] * 1000), seed=3)
    sizes = dict(out.group_by("split").len().iter_rows())
    assert sizes == {"train": 800, "validation": 100, "test": 100}
    for split, mix in summary["label_mix"].items():
        assert mix["pos"] == pytest.approx(0.2, abs=0.01), split


def test_groups_and_dedup_clusters_never_straddle_splits():
    texts = _docs(300)
    # plant near-duplicates: each of the first 40 documents has an edited copy later on
    for i in range(40):
        words = texts[i].split()
        words[5] = "edited"
        texts[200 + i] = " ".join(words)
    df = _frame(texts, patient=[f"p{i // 3}" for i in range(300)])
    dedup = DedupStage("dedup", DedupRules(exact=False))
    dedup.setup()
    clustered = dedup.process(df).drop("_action", "_rule", "_reason")
    assert clustered["dup_cluster"].drop_nulls().len() == 80
    out, _ = _split(clustered, group_by=["dup_cluster", "patient"], seed=1)
    per_cluster = (
        out.filter(pl.col("dup_cluster").is_not_null()).group_by("dup_cluster").agg(pl.col("split").n_unique())
    )
    assert per_cluster["split"].max() == 1
    out, _ = _split(df.with_columns(pl.lit(None, dtype=pl.Utf8).alias("dup_cluster")), group_by=["patient"], seed=1)
    assert out.group_by("patient").agg(pl.col("split").n_unique())["split"].max() == 1


def test_train_records_overlapping_eval_sets_are_dropped_and_no_leak_remains(tmp_path):
    questions = (
        [json.loads(line) for line in MT_BENCH.read_text().splitlines()]
        if MT_BENCH.exists()
        else [
            {
                "turns": [
                    "Compose an engaging travel blog post about a recent trip to Hawaii, highlighting cultural "
                    "experiences and must-see attractions."
                ]
            }
        ]
    )
    evals = tmp_path / "evals.jsonl"
    evals.write_text("".join(json.dumps(q) + "\n" for q in questions))
    texts = _docs(200)
    leaked = questions[0]["turns"][0]
    texts[7] = "Here is a task I found online. " + leaked + " Please answer it."
    rules = {"sizes": {"train": 1.0}, "decontamination": {"eval_sets": [{"path": str(evals), "field": "turns"}]}}
    out, summary = _split(_frame(texts, dup_cluster=[None] * 200), **rules)
    assert out.filter(pl.col(ACTION) == "drop")["id"].to_list() == ["r7"]
    assert out[RULE][7] == "split:contaminated"
    assert summary["leaking_pairs_before"] >= 1 and summary["leaking_pairs_after"] == 0
    # Re-running on what was kept finds nothing left to leak.
    kept = out.filter(pl.col(ACTION) == "keep").drop("_action", "_rule", "_reason", "split")
    again, summary2 = _split(kept, **rules)
    assert summary2["leaking_pairs_before"] == 0 and (again[ACTION] == "keep").all()


def test_overlap_between_train_and_test_is_removed_or_flagged():
    texts = _docs(400, seed=5)
    out, _ = _split(_frame(texts, dup_cluster=[None] * 400), seed=2, decontamination={"action": "off"})
    test_text = out.filter(pl.col("split") == "test")["text"][0]
    train_row = out.filter(pl.col("split") == "train")["id"][0]
    idx = int(train_row[1:])
    texts[idx] = texts[idx] + " " + test_text  # a train record swallowed a test record
    df = _frame(texts, dup_cluster=[None] * 400)
    dropped, summary = _split(df, seed=2)
    assert train_row in dropped.filter(pl.col(ACTION) == "drop")["id"].to_list()
    assert summary["leaking_pairs_after"] == 0
    flagged, _ = _split(df, seed=2, decontamination={"action": "flag"})
    assert (flagged[ACTION] == "keep").all()
    assert flagged.filter(pl.col("id") == train_row)["contaminated"][0] is True


def test_boilerplate_shared_by_many_documents_is_not_leakage():
    boiler = "this website uses cookies to improve your experience by continuing you accept our cookie policy today"
    texts = [f"{t} end{i} {boiler}" for i, t in enumerate(_docs(300, seed=9))]  # end{i}: no accidental shared spans
    out, summary = _split(_frame(texts, dup_cluster=[None] * 300), seed=4, decontamination={"min_overlap": 0.0})
    assert summary["contaminated_train_records"] == 0


def test_config_errors():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must include 'train'"):
        SplitRules(sizes={"a": 1.0})
    with pytest.raises(ValidationError, match="sum to 1"):
        SplitRules(sizes={"train": 0.8, "test": 0.3})


def split_case() -> tuple[pl.DataFrame, dict]:
    """Train records that swallowed test records, plus boilerplate in many documents: both the
    leak pairs and the document-frequency filter matter."""
    boiler = "this website uses cookies to improve your experience by continuing you accept our cookie policy today"
    texts = [f"{t} {boiler}" if i % 3 == 0 else t for i, t in enumerate(_docs(500, seed=5))]
    rules = {"seed": 2, "decontamination": {"min_overlap": 0.05}}
    first, _ = _split(_frame(texts, dup_cluster=[None] * 500), **{**rules, "decontamination": {"action": "off"}})
    tests = first.filter(pl.col("split") == "test")["text"].to_list()
    trains = [int(i[1:]) for i in first.filter(pl.col("split") == "train")["id"].to_list()]
    for k, idx in enumerate(trains[:12]):
        texts[idx] = texts[idx] + " " + tests[k % len(tests)]
    return _frame(texts, dup_cluster=[None] * 500), rules


def split_with_pool(df: pl.DataFrame, rules: dict, pool) -> tuple[pl.DataFrame, dict]:
    stage = SplitStage("split", SplitRules.model_validate(rules), StageContext(pool=pool))
    output = stage.run(df)
    return output.frame, output.summary


def test_decontamination_spread_over_a_task_pool_matches_the_in_process_result(monkeypatch):
    from curate.parallel import SerialPool

    df, rules = split_case()
    expected, summary = split_with_pool(df, rules, None)
    assert summary["contaminated_train_records"] >= 12 and summary["leaking_pairs_after"] == 0

    class ThreeWorkers(SerialPool):
        workers = 3

    monkeypatch.setattr("curate.stages.split.MIN_CHUNK", 40)  # 13 chunks, 3 reducers
    got, got_summary = split_with_pool(df, rules, ThreeWorkers())
    assert got.equals(expected) and got_summary == summary


def test_group_assignment_as_a_distributed_group_by_matches_one_chunk(monkeypatch):
    from curate.parallel import SerialPool

    df, rules = split_case()
    clusters = [f"c{i % 40}" if i % 5 == 0 else None for i in range(df.height)]  # groups of 2 to 3 rows
    df = df.with_columns(dup_cluster=pl.Series(clusters, dtype=pl.Utf8))
    rules = {**rules, "decontamination": {"action": "off"}}
    expected, summary = split_with_pool(df, rules, None)

    class ThreeWorkers(SerialPool):
        workers = 3

    monkeypatch.setattr("curate.parallel.GROUP_CHUNK", 29)  # many chunks, 3 reducers
    got, got_summary = split_with_pool(df, rules, ThreeWorkers())
    assert got.equals(expected) and got_summary == summary
    assert set(expected["split"]) == {"train", "validation", "test"}


MATH = [  # benchmark-style word problems: numbers every few words
    "Janet has 16 ducks that lay 3 eggs each day. She eats 3 for breakfast and bakes 4 into muffins. She sells "
    "the rest at 2 dollars each. How many dollars does she make every day at the market?",
    "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take to "
    "make 5 robes for the 3 tailors who ordered them last week?",
    "Josh buys a house for 80000 dollars and puts in 50000 dollars in repairs. This increased the value of the "
    "house by 150 percent. How much profit did he make after selling it 2 years later?",
]


def _renumbered(text: str, shift: int) -> str:
    import re

    return re.sub(r"\d+", lambda m: str(int(m.group()) * 7 + shift), text)


def test_benchmark_copies_with_every_number_changed_are_still_caught(tmp_path):
    evals = tmp_path / "gsm.jsonl"
    evals.write_text("".join(json.dumps({"question": q}) + "\n" for q in MATH))
    texts = _docs(300, seed=9)
    for k, q in enumerate(MATH):
        texts[10 + k] = _renumbered(q, k + 1)  # copied into train with every number edited
    rules = {"sizes": {"train": 1.0}, "decontamination": {"eval_sets": [{"path": str(evals), "field": "question"}]}}
    out, summary = _split(_frame(texts, dup_cluster=[None] * 300), **rules)
    assert sorted(out.filter(pl.col(ACTION) == "drop")["id"].to_list()) == ["r10", "r11", "r12"]
    assert summary["contaminated_by_split"] == {"train": 3}
    literal = {**rules, "decontamination": {**rules["decontamination"], "numbers": False}}
    out, _ = _split(_frame(texts, dup_cluster=[None] * 300), **literal)
    assert out.filter(pl.col(ACTION) == "drop").height < 3  # without number normalisation some slip through


def test_eval_sets_are_checked_against_every_split_and_reported_per_split(tmp_path):
    evals = tmp_path / "gsm.jsonl"
    evals.write_text("".join(json.dumps({"question": q}) + "\n" for q in MATH))
    texts = _docs(400, seed=4)
    first, _ = _split(_frame(texts, dup_cluster=[None] * 400), seed=2, decontamination={"action": "off"})
    held = first.filter(pl.col("split") == "test")["id"][0]
    texts[int(held[1:])] = _renumbered(MATH[0], 3)  # a test record that is a benchmark question
    rules = {"seed": 2, "decontamination": {"eval_sets": [{"path": str(evals), "field": "question"}]}}
    out, summary = _split(_frame(texts, dup_cluster=[None] * 400), **rules)
    dropped = out.filter(pl.col(ACTION) == "drop")
    assert dropped["id"].to_list() == [held] and dropped["_reason"][0].startswith(
        "test record shares 13-grams with gsm.jsonl"
    )
    assert summary["contaminated_by_split"] == {"test": 1}


def test_number_normalisation_drops_no_clean_records():
    """Distinct documents full of numbers do not start to collide once numbers are one token."""
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(3000)]
    texts = [
        " ".join(str(rng.integers(0, 1000)) if j % 3 == 0 else rng.choice(words) for j in range(60)) for _ in range(400)
    ]
    out, summary = _split(_frame(texts, dup_cluster=[None] * 400), seed=1)
    assert (out[ACTION] == "keep").all() and summary["leaking_pairs_before"] == 0


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"decontamination": {"action": "flag", "min_overlap": 0.05}},
        {"decontamination": {"max_document_frequency": 0}},
    ],
)
def test_deciding_from_checkpoint_files_with_ngrams_on_disk_matches_the_in_memory_split(tmp_path, monkeypatch, extra):
    """The engine's path (executor.run_global on a stage with decide_files): the text never held at
    once, n-grams in hash partitions on disk; rows, order, columns, decisions and summary unchanged."""
    from curate.executor import run_global
    from curate.workdir import kept_file, rejected_file

    df, rules = split_case()
    evals = tmp_path / "evals.jsonl"
    evals.write_text(json.dumps({"text": df["text"][3]}) + "\n")  # an eval record copied into the data
    rules = {**rules, **extra}
    rules["decontamination"] = {**rules["decontamination"], **extra.get("decontamination", {})}
    rules["decontamination"]["eval_sets"] = [{"path": str(evals)}]
    expected, summary = split_with_pool(df, rules, None)
    assert summary["contaminated_train_records"] >= 12
    files = []
    for i, start in enumerate(range(0, df.height, 90)):  # six checkpoint files of uneven content
        files.append(tmp_path / f"b-{i}" / "kept.parquet")
        files[-1].parent.mkdir()
        df.slice(start, 90).write_parquet(files[-1])
    monkeypatch.setattr("curate.ngrams.PARTITION_ROWS", 70)  # eight n-gram partitions on disk
    monkeypatch.setattr("curate.ngrams.MERGE_ROWS", 5)  # their pair counts merged as they come, several times
    stage = SplitStage("split", SplitRules.model_validate(rules))
    stage.setup()
    decided = stage.run_files(files, tmp_path / "scratch")
    assert decided.summary == summary
    assert decided.frame.equals(expected.select(decided.frame.columns))

    from curate.config import ResolvedStage

    rs = ResolvedStage(name="split", stage="split", rules=SplitRules.model_validate(rules), rules_path=None)
    done = run_global(rs, StageContext(), tmp_path / "all", files, "artifacts")
    assert done["summary"] == summary and not (tmp_path / "all" / "scratch").exists()
    kept = expected.filter(pl.col(ACTION) == "keep").drop("_action", "_rule", "_reason")
    assert pl.read_parquet(kept_file(tmp_path / "all")).equals(kept)
    dropped = expected.filter(pl.col(ACTION) != "keep")["id"].to_list()
    path = rejected_file(tmp_path / "all", "split")
    assert (pl.read_parquet(path)["id"].to_list() if path.exists() else []) == dropped
