"""Decontamination that can be audited and trusted (issue 34): what counts as a match (the share of the
held-out text the shared n-grams cover; templates whose numbers are their substance never match by their
shape), and every drop naming the record it matched, on its reason, its columns and `curate rejected
--match`, from the in-memory, the task-pool and the on-disk paths alike."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from curate.records import BASE_SCHEMA
from curate.stages.base import ACTION, REASON, StageContext
from curate.stages.split import MATCH_COLUMNS, SplitRules, SplitStage

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MT_BENCH = DATA / "fastchat-bench" / "mt_bench_question.jsonl"
VICUNA = DATA / "fastchat-bench" / "vicuna_bench_question.jsonl"
CODE_ALPACA = DATA / "real-sft" / "code_alpaca_2k.json"

TRIANGLE = "The vertices of a triangle are at points (0, 0), (-1, 1), and (3, 3). What is the area of the triangle?"
JANET = (
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
    "friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. "
    "How much in dollars does she make every day at the farmers' market?"
)
APPLES = (
    "Một cửa hàng có 120 quả táo. Buổi sáng cửa hàng bán được 45 quả, buổi chiều bán được 38 quả. "
    "Hỏi cửa hàng còn lại bao nhiêu quả táo?"
)
TIME = "How can I improve my time management skills?"  # vicuna_bench question 1: 8 tokens, under the n-gram


def renumbered(text: str, shift: int = 7) -> str:
    """Every number changed, as the number-blind pass reads numbers."""
    return re.sub(r"\b\d+(?:[.,]\d+)*\b", lambda m: str(int(re.sub(r"\D", "", m.group())) * 3 + shift), text)


def chat(prompt: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


# (label, held-out record, train record, must they match): a held-out record in validation/test and a
# train record, each a prompt and an answer. Templates whose numbers are their substance must not match;
# a copy with its numbers changed, or wrapped in other words, must.
PAIRS = [
    ("vi percent", ("Tính 10% của 180", "10% của 180 là 18."), ("Tính 15% của 500", "15% của 500 là 75."), False),
    (
        "vi percent, worked answer",
        ("Tính 10% của 180", "Ta có 10% của 180 = 180 × 10 : 100 = 18. Vậy 10% của 180 là 18."),
        ("Tính 15% của 500", "Ta có 15% của 500 = 500 × 15 : 100 = 75. Vậy 15% của 500 là 75."),
        False,
    ),
    ("vi units", ("Đổi 5 km ra mét", "5 km = 5000 m."), ("Đổi 12 km ra mét", "12 km = 12000 m."), False),
    (
        "vi equation",
        ("Tìm x biết x + 5 = 17", "x = 17 - 5 = 12."),
        ("Tìm x biết x + 9 = 31", "x = 31 - 9 = 22."),
        False,
    ),
    ("en percent", ("What is 15% of 200?", "15% of 200 is 30."), ("What is 20% of 340?", "20% of 340 is 68."), False),
    (
        "en units",
        ("Convert 25 degrees Celsius to Fahrenheit.", "25 °C is 77 °F."),
        ("Convert 40 degrees Celsius to Fahrenheit.", "40 °C is 104 °F."),
        False,
    ),
    (
        "number tables",  # two Code Alpaca records: sorting different arrays
        ("Sort this array of integers in descending order.\n\n[2, 5, 3, 8, 6, 1]", "[8, 6, 5, 3, 2, 1]"),
        ("Sort this input array [1, 6, 4, 3, 0, 9] in ascending order.\n\n[1, 6, 4, 3, 0, 9]", "[0, 1, 3, 4, 6, 9]"),
        False,
    ),
    (
        "a shared opening",  # GPTeacher and vicuna_bench: the same role, another task
        (
            "Imagine you are a time traveler from the year 3000. What technological advancements would you tell "
            "people about?",
            "Teleportation, fusion power and neural interfaces.",
        ),
        (
            "You are a time traveler from the year 2500 who has been asked to give a speech about the biggest "
            "challenges humanity faced in the 21st century.",
            "Ladies and gentlemen, climate change came first.",
        ),
        False,
    ),
    ("en word problem, numbers changed", (JANET, "She makes $18."), (renumbered(JANET), "She makes $146."), True),
    ("vi word problem, numbers changed", (APPLES, "Còn lại 37 quả táo."), (renumbered(APPLES), "Còn lại 8 quả."), True),
    ("geometry, numbers changed", (TRIANGLE, "The area is 3."), (renumbered(TRIANGLE), "The area is 54."), True),
    (
        "wrapped and renumbered",
        (JANET, "She makes $18."),
        ("Here is a question from a quiz I found: " + renumbered(JANET).lower() + " Please answer briefly.", "$146"),
        True,
    ),
]


def _records(rows: list[dict]) -> pl.DataFrame:
    df = pl.DataFrame(rows, schema={**BASE_SCHEMA, "src_row": pl.Int64}, strict=False)
    return df.with_columns(pl.lit(None, dtype=pl.Utf8).alias("dup_cluster"))


def _pair_frame(held: tuple[str, str], train: tuple[str, str], label: str) -> pl.DataFrame:
    """The two records of a pair under one label: with sizes 50/50 stratified by label, one lands in
    train and one in test, whichever comes first in the seeded order."""
    return _records(
        [
            {"id": f"{label}:{side}", "messages": chat(*rec), "label": label, "src_row": k + 1}
            for k, (side, rec) in enumerate((("held", held), ("train", train)))
        ]
    )


def _split(df: pl.DataFrame, pool=None, **rules) -> tuple[pl.DataFrame, dict]:
    stage = SplitStage("split", SplitRules.model_validate(rules), StageContext(pool=pool))
    stage.setup()
    output = stage.run(df)
    return output.frame, output.summary


@pytest.mark.parametrize("label, held, train, leaks", PAIRS, ids=[p[0] for p in PAIRS])
def test_labelled_pairs_match_only_when_the_words_are_copied(label, held, train, leaks):
    """Each pair straddles train and test (both ways round: the pair is dealt in both orders)."""
    for seed in (1, 2):
        out, summary = _split(
            _pair_frame(held, train, label),
            sizes={"train": 0.5, "test": 0.5},
            stratify_by="label",
            group_by=[],
            seed=seed,
        )
        assert set(out["split"]) == {"train", "test"}
        assert (summary["leaking_pairs_before"] > 0) == leaks, (label, seed, out[REASON].to_list())


def test_a_vietnamese_set_of_short_maths_templates_keeps_every_record():
    """The user's case: a set of short number templates, split 80/10/10, loses nothing."""
    ops = [
        "Tính {a}% của {b}",
        "Đổi {a} km ra mét",
        "Tìm x biết x + {a} = {b}",
        "Tính {a} × {b}",
        "{a} + {b} bằng bao nhiêu?",
    ]
    rows = []
    for i in range(400):
        a, b = 3 + i % 47, 100 + (i * 37) % 900
        rows.append(
            {"id": f"r{i}", "messages": chat(ops[i % 5].format(a=a, b=b), f"Đáp số: {a * b % 1000}."), "label": "a"}
        )
    out, summary = _split(_records(rows), seed=3)
    assert summary["leaking_pairs_before"] == 0 and (out[ACTION] == "keep").all()


def _eval_file(tmp_path: Path, items: list[dict]) -> Path:
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def _questions() -> list[dict]:
    if MT_BENCH.exists():
        return [json.loads(line) for line in MT_BENCH.read_text().splitlines()]
    return [{"question_id": 111, "turns": [TRIANGLE, "What's area of the circle circumscribing the triangle?"]}]


def test_an_mt_bench_question_copied_with_its_numbers_changed_is_dropped_naming_the_question(tmp_path):
    questions = _questions()
    triangle = next(q for q in questions if q["turns"][0].startswith("The vertices of a triangle"))
    evals = _eval_file(tmp_path, questions)
    rows = [
        {
            "id": f"r{i}",
            "messages": chat(f"Task {i}: describe the colour number {i} of the palette.", "Blue."),
            "src_row": i,
        }
        for i in range(1, 40)
    ]
    rows.append({"id": "copy", "messages": chat(renumbered(triangle["turns"][0]), "The area is 54."), "src_row": 40})
    rows.append({"id": "short", "messages": chat(TIME, "Plan your day."), "src_row": 41})  # not in this eval set
    rules = {
        "sizes": {"train": 1.0},
        "group_by": [],
        "decontamination": {"eval_sets": [{"path": str(evals), "field": "turns"}]},
    }
    out, _ = _split(_records(rows), **rules)
    dropped = out.filter(pl.col(ACTION) == "drop")
    assert dropped["id"].to_list() == ["copy"]
    row = questions.index(triangle) + 1
    assert dropped.select(*MATCH_COLUMNS).row(0) == (str(triangle["question_id"]), "bench.jsonl", row, 1.0)
    assert dropped[REASON][0] == (
        f"train record shares 13-grams with bench.jsonl record {triangle['question_id']} (row {row}, turn 1): "
        "100% of its tokens"
    )


def test_an_eval_item_shorter_than_the_ngram_is_found_inside_a_longer_record(tmp_path):
    items = [json.loads(line) for line in VICUNA.read_text().splitlines()] if VICUNA.exists() else []
    items = items or [{"question_id": 1, "turns": [TIME]}]
    evals = _eval_file(tmp_path, items)
    rows = [
        {"id": "copy", "messages": chat(TIME, "Plan the day the evening before, and keep a list."), "src_row": 1},
        {
            "id": "wrapped",
            "messages": chat(f"My manager asked me: {TIME.lower()} Any ideas?", "Use a calendar."),
            "src_row": 2,
        },
        {"id": "part", "messages": chat("How can I improve my cooking skills?", "Cook every day."), "src_row": 3},
    ]
    rules = {
        "sizes": {"train": 1.0},
        "group_by": [],
        "decontamination": {"eval_sets": [{"path": str(evals), "field": "turns"}]},
    }
    out, _ = _split(_records(rows), **rules)
    assert out.filter(pl.col(ACTION) == "drop")["id"].to_list() == ["copy", "wrapped"]


def test_a_train_record_that_covers_little_of_a_long_held_out_text_is_kept(tmp_path):
    """One sentence shared with a long eval item covers under min_overlap of it; a copy covers all."""
    sentence = "the quick brown fox jumps over the lazy dog near the quiet river bank today"
    long = " ".join(f"word{i}" for i in range(200)) + " " + sentence
    evals = _eval_file(tmp_path, [{"id": "long", "text": long}])
    rows = [{"id": "note", "text": f"A note: {sentence}."}, {"id": "copy", "text": f"Copied: {long} (end)"}]
    rules = {"sizes": {"train": 1.0}, "group_by": [], "decontamination": {"eval_sets": [{"path": str(evals)}]}}
    out, _ = _split(_records(rows), **rules)
    assert out.filter(pl.col(ACTION) == "drop")["id"].to_list() == ["copy"]


def test_a_copy_of_a_templated_eval_item_is_caught_though_its_template_is_boilerplate(tmp_path):
    """The template is in more than max_document_frequency records: it is no evidence of a leak, and
    no reason either to miss the item's copy (the tokens only boilerplate covers are not counted)."""
    template = (
        "You are a careful translator working for a small publishing house. Translate the following English "
        "sentence into French, keep the tone and the register of the original, and do not add any notes or "
        "explanations of your own:"
    )
    sentences = [
        f"the {animal} slept near the {place} all afternoon"
        for animal in ("cat", "dog", "fox", "owl")
        for place in ("river", "barn", "fence", "well")
    ]
    evals = _eval_file(tmp_path, [{"id": "fr1", "prompt": f"{template} the old fisherman mended his torn nets."}])
    rows = [
        {"id": f"t{i}", "messages": chat(f"{template} {s}.", "Une phrase."), "src_row": i}
        for i, s in enumerate(sentences)
    ]
    rows.append(
        {
            "id": "copy",
            "messages": chat(f"{template} The old fisherman mended his torn nets.", "Le vieux..."),
            "src_row": 99,
        }
    )
    rules = {
        "sizes": {"train": 1.0},
        "group_by": [],
        "decontamination": {"eval_sets": [{"path": str(evals), "field": "prompt"}]},
    }
    out, _ = _split(_records(rows), **rules)
    assert out.filter(pl.col(ACTION) == "drop")["id"].to_list() == ["copy"]


def _mixed_case(tmp_path: Path) -> tuple[pl.DataFrame, dict]:
    """Held-out records copied into train (renumbered, wrapped), short eval items inside records,
    templates: every path of the matching is exercised."""
    evals = _eval_file(
        tmp_path, [{"id": "q1", "turns": [TIME]}, {"id": "q2", "turns": [TRIANGLE, "And its perimeter?"]}]
    )
    rows = []
    for i in range(150):
        rows.append(
            {
                "id": f"t{i}",
                "messages": chat(f"Tính {i}% của {i * 7 + 3}", f"Kết quả là {i * (i * 7 + 3) / 100}."),
                "label": "a",
            }
        )
    for i, text in enumerate([JANET, APPLES, TRIANGLE]):
        rows.append({"id": f"o{i}", "messages": chat(text, "Answer."), "label": "b"})
        rows.append({"id": f"n{i}", "messages": chat(renumbered(text, i), "Other answer."), "label": "b"})
        rows.append({"id": f"w{i}", "messages": chat("Quiz time! " + text + " Go.", "Answer."), "label": "b"})
    rows.append({"id": "s", "messages": chat(f"Someone asked: {TIME}", "Keep a list."), "label": "a"})
    rows = [{**r, "src_row": k + 1} for k, r in enumerate(rows)]
    rules = {"seed": 5, "group_by": [], "decontamination": {"eval_sets": [{"path": str(evals), "field": "turns"}]}}
    return _records(rows), rules


@pytest.mark.parametrize("action", ["drop", "flag"])
def test_the_pool_and_the_disk_paths_name_the_same_matches_as_the_in_memory_path(tmp_path, monkeypatch, action):
    from curate.parallel import SerialPool

    df, rules = _mixed_case(tmp_path)
    rules["decontamination"]["action"] = action
    expected, summary = _split(df, **rules)
    matched = expected.filter(pl.col("matched_id").is_not_null())
    assert matched.height >= 4 and not matched["id"].str.starts_with("t").any()
    assert {"s"} <= set(matched["id"]) and summary["eval_sources"][0]["name"] == "bench.jsonl"

    class ThreeWorkers(SerialPool):
        workers = 3

    monkeypatch.setattr("curate.stages.split.MIN_CHUNK", 20)
    got, got_summary = _split(df, pool=ThreeWorkers(), **rules)
    assert got.equals(expected) and got_summary == summary

    files = []
    for i, start in enumerate(range(0, df.height, 40)):
        files.append(tmp_path / f"b-{i}" / "kept.parquet")
        files[-1].parent.mkdir()
        df.slice(start, 40).write_parquet(files[-1])
    monkeypatch.setattr("curate.ngrams.PARTITION_ROWS", 30)
    monkeypatch.setattr("curate.ngrams.MERGE_ROWS", 3)
    stage = SplitStage("split", SplitRules.model_validate(rules))
    decided = stage.run_files(files, tmp_path / "scratch")
    assert decided.summary == summary
    assert decided.frame.equals(expected.select(decided.frame.columns))


def test_rejected_rows_keep_the_match_columns_and_rejected_match_shows_both_texts(tmp_path, monkeypatch):
    from curate.cli import app
    from tests.conftest import run, write_pipeline

    questions = _questions()
    triangle = next(q for q in questions if q["turns"][0].startswith("The vertices of a triangle"))
    evals = _eval_file(tmp_path, questions)
    rows = [
        {"id": f"r{i}", "text": f"Note {i} about the garden, the weather and the {i}th visitor."} for i in range(60)
    ]
    rows.append({"id": "copy", "text": "Homework: " + renumbered(triangle["turns"][0])})
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    split = {
        "stage": "split",
        "params": {"group_by": [], "stratify_by": None, "sizes": {"train": 1.0}},
        "rules": str(Path(__file__).resolve().parents[1] / "rules" / "split" / "default.yaml"),
    }
    split["params"]["decontamination"] = {"eval_sets": [{"path": str(evals), "field": "turns"}]}
    path = write_pipeline(tmp_path, [{"path": "in.jsonl"}], [split])
    result = run(path, tmp_path / "out")
    rejected = pl.read_parquet(tmp_path / "out" / "rejected" / "split" / "*.parquet")
    assert rejected["id"].to_list() == ["copy"]
    assert rejected.select(*MATCH_COLUMNS).row(0)[:3] == (
        str(triangle["question_id"]),
        "bench.jsonl",
        questions.index(triangle) + 1,
    )
    runner = CliRunner()
    plain = runner.invoke(app, ["rejected", str(result.out_dir)], terminal_width=240)
    assert plain.exit_code == 0 and "Homework" not in plain.output  # the default never prints the text
    shown = runner.invoke(
        app, ["rejected", str(result.out_dir), "--rule", "split:contaminated", "--match"], terminal_width=240
    )
    assert shown.exit_code == 0, shown.output
    assert "Homework" in shown.output and "The vertices of a triangle" in shown.output
    evals.write_text(evals.read_text().replace("triangle", "square"))
    changed = runner.invoke(app, ["rejected", str(result.out_dir), "--match"], terminal_width=240)
    assert "changed since the run" in changed.output


@pytest.mark.skipif(not (CODE_ALPACA.exists() and MT_BENCH.exists() and VICUNA.exists()), reason="shared data missing")
def test_on_code_alpaca_every_renumbered_benchmark_question_is_caught_and_no_real_record_matches_a_benchmark(tmp_path):
    """Every MT-bench and vicuna_bench first turn with numbers, renumbered (and one wrapped), planted in
    Code Alpaca's 2,017 records: all dropped; no real record is dropped for an eval set."""
    from curate.records import to_record

    real = [
        {**to_record(r, fmt="auto", fields={}, columns=[], default_source=None), "id": f"ca{i}", "label": "a"}
        for i, r in enumerate(json.loads(CODE_ALPACA.read_text()))
    ]
    items = [json.loads(line) for path in (MT_BENCH, VICUNA) for line in path.read_text().splitlines()]
    planted = []
    for k, item in enumerate(items):
        question = item["turns"][0]
        if renumbered(question, k) != question and len(re.findall(r"[^\W\d_]\w*", question)) >= 8:
            text = renumbered(question, k) if k % 2 else f"Solve this for me. {renumbered(question, k)} Thanks!"
            planted.append({"id": f"plant{k}", "messages": chat(text, "Here is the answer."), "label": "a"})
    assert len(planted) >= 25
    evals = [
        {"path": str(MT_BENCH), "field": "turns"},
        {"path": str(VICUNA), "field": "turns"},
    ]
    df = _records([{**r, "src_row": k + 1} for k, r in enumerate(real + planted)])
    out, _ = _split(df, seed=13, group_by=[], decontamination={"eval_sets": evals})
    dropped = out.filter(pl.col(ACTION) == "drop")
    assert set(p["id"] for p in planted) <= set(dropped["id"])
    assert not dropped.filter(pl.col("id").str.starts_with("ca") & pl.col("matched_in").str.ends_with(".jsonl")).height
