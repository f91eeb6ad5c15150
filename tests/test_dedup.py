"""Exact and near-duplicate removal: datasketch equivalence, clustering, keep policies, incremental dedup."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash, MinHashLSH

from curate.minhash import MinHasher, candidate_pairs, lsh_params
from curate.normalize import Normalization
from curate.records import BASE_SCHEMA
from curate.stages.base import ACTION, REASON, RULE, StageContext
from curate.stages.dedup import DedupRules, DedupStage
from tests.conftest import run, write_pipeline

BASE = (
    "Riverside Health announced that its billing team reduced claim denials by twelve percent over the last "
    "year after training every new hire on the documentation checklist and reviewing rejected claims weekly. "
    "The finance director said the biggest gains came from fixing missing referral numbers before submission, "
    "while the front desk now confirms insurance details when patients book instead of on arrival. Staff who "
    "handle appeals meet every Thursday to compare notes, and a simple dashboard shows the denial rate per payer "
    "so that problems are visible within days rather than at the end of the quarter."
)


def _edit(text: str, words: int) -> str:
    tokens = text.split()
    for i in range(words):
        tokens[3 + i * 4] = f"changed{i}"
    return " ".join(tokens)


def _stage(**rules) -> DedupStage:
    stage = DedupStage("dedup", DedupRules.model_validate(rules))
    stage.setup()
    return stage


def _frame(texts=(), chats=(), **columns) -> pl.DataFrame:
    rows = [{"id": f"t{i}", "text": t} for i, t in enumerate(texts)]
    rows += [{"id": f"c{i}", "messages": m} for i, m in enumerate(chats)]
    df = pl.DataFrame(rows, schema=dict(BASE_SCHEMA), orient="row")
    return df.with_columns(**{k: pl.Series(v) for k, v in columns.items()})


@pytest.mark.parametrize("shingle, ngram", [("word", 5), ("word", 1), ("char", 7)])
def test_signatures_are_bit_identical_to_datasketch(shingle, ngram):
    hasher = MinHasher(num_perm=256, seed=7, shingle=shingle, ngram=ngram)
    texts = [BASE, _edit(BASE, 2), "Bệnh nhân được chuyển đến khoa cấp cứu lúc 3 giờ sáng.", "two words", "", "!!!"]
    ours = hasher.signatures(texts)
    for text, row in zip(texts, ours):
        reference = MinHash(num_perm=256, seed=7, hashfunc=hasher.hashfunc)
        reference.update_batch(hasher.shingles(text))
        assert np.array_equal(reference.hashvalues, row), text
        assert reference.hashvalues.dtype == row.dtype == np.uint32


def test_candidate_pairs_match_datasketch_lsh():
    hasher = MinHasher()
    texts = [
        BASE,
        BASE + " Updated today.",
        _edit(BASE, 1),
        _edit(BASE, 2),
        _edit(BASE, 6),
        "an unrelated sentence about the weather",
    ]
    sigs = hasher.signatures(texts)
    bands, rows = lsh_params(0.8, 128)
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    hashes = []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=128, seed=1, hashfunc=hasher.hashfunc)
        m.update_batch(hasher.shingles(text))
        hashes.append(m)
        lsh.insert(str(i), m)
    expected = {tuple(sorted((i, int(j)))) for i, m in enumerate(hashes) for j in lsh.query(m) if int(j) != i}
    assert {tuple(p) for p in candidate_pairs(sigs, bands, rows).tolist()} == expected
    assert (0, 1) in expected


def test_exact_and_near_duplicates_are_clustered_and_explained():
    stage = _stage()
    texts = [
        BASE,
        BASE.upper() + "!!",
        BASE + " Updated today.",
        "A completely different document about dental hygiene and flossing every night.",
    ]
    out = stage.process(_frame(texts))
    assert out[ACTION].to_list() == ["keep", "drop", "drop", "keep"]
    assert out[RULE].to_list()[1:3] == ["exact_duplicate", "near_duplicate"]
    assert out["dup_of"].to_list() == [None, "t0", "t0", None]
    assert out["dup_cluster"].to_list() == ["t0", "t0", "t0", None]
    assert out[REASON][1] == "duplicate of t0 (identical after normalisation)"
    assert out[REASON][2].startswith("duplicate of t0 (near-duplicate cluster of 3, highest Jaccard 0.9")


def test_transitive_clusters_keep_one_representative():
    # a~b and b~c pass the threshold, a~c does not: still one cluster with one record kept.
    a = " ".join(f"w{i}" for i in range(100))
    b = a.replace("w10 ", "x10 ")
    c = b.replace("w60 ", "x60 ")
    hasher = MinHasher()

    def jac(x, y):
        sx, sy = set(hasher.shingles(x)), set(hasher.shingles(y))
        return len(sx & sy) / len(sx | sy)

    assert jac(a, b) > 0.85 and jac(b, c) > 0.85 and jac(a, c) < 0.85
    out = _stage(threshold=0.85, verify="exact", bands=64, rows=2).process(_frame([a, b, c]))
    assert out[ACTION].to_list() == ["keep", "drop", "drop"]
    assert set(out["dup_cluster"]) == {"t0"}
    assert out["dup_of"].to_list() == [None, "t0", "t0"]


@pytest.mark.parametrize("keep, expected", [("first", "t0"), ("longest", "t1"), ("score", "t2")])
def test_keep_policy_chooses_the_representative(keep, expected):
    texts = [BASE, BASE + " and more", BASE + " again"]
    stage = _stage(keep=keep, score_column="quality_score" if keep == "score" else None, near=True, threshold=0.7)
    out = stage.process(_frame(texts, quality_score=[0.1, 0.2, 0.9]))
    kept = out.filter(pl.col(ACTION) == "keep")["id"].to_list()
    assert kept == [expected]


def test_chat_records_dedup_on_user_prompts_or_whole_conversation():
    q = [{"role": "user", "content": BASE}]
    chats = [
        q + [{"role": "assistant", "content": "Answer one."}],
        q + [{"role": "assistant", "content": "A different answer entirely."}],
    ]
    by_prompt = _stage(chat_text="user_prompts").process(_frame(chats=chats))
    assert by_prompt[ACTION].to_list() == ["keep", "drop"]
    by_conversation = _stage(chat_text="conversation", near=False).process(_frame(chats=chats))
    assert by_conversation[ACTION].to_list() == ["keep", "keep"]


def test_exact_verification_rejects_lsh_false_positives():
    texts = [BASE, _edit(BASE, 3)]
    none = _stage(verify="none", bands=32, rows=4).process(_frame(texts))
    exact = _stage(verify="exact", bands=32, rows=4, threshold=0.95).process(_frame(texts))
    assert none[ACTION].to_list() == ["keep", "drop"]  # candidates are taken as is
    assert exact[ACTION].to_list() == ["keep", "keep"]


def test_normalisation_options():
    norm = Normalization(lowercase=True, punctuation=True, digits=True)
    assert norm.texts(["Order #123, shipped!", "order 456 shipped"]) == ["order 000 shipped", "order 000 shipped"]
    out = _stage(normalization={"digits": True}, near=False).process(
        _frame(["Invoice 1001 paid", "invoice 2002 PAID."])
    )
    assert out[ACTION].to_list() == ["keep", "drop"]


def test_texts_without_shingles_are_not_near_duplicates_of_each_other():
    out = _stage(verify="signature", exact=False).process(_frame(["!!!", "...", "?!"]))
    assert out[ACTION].to_list() == ["keep", "keep", "keep"]


def test_config_errors():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="give both 'bands' and 'rows'"):
        DedupRules(bands=4)
    with pytest.raises(ValidationError, match="exceeds num_perm"):
        DedupRules(bands=20, rows=10)
    with pytest.raises(ValidationError, match="needs score_column"):
        DedupRules(keep="score")


def _jsonl(path, texts, prefix):
    path.write_text("".join(json.dumps({"id": f"{prefix}{i}", "text": t}) + "\n" for i, t in enumerate(texts)))


def test_dedup_against_published_shards_uses_their_stored_signatures(tmp_path):
    base_texts = [
        BASE,
        "The clinic extended its opening hours so that working parents could bring children after school today.",
    ]
    _jsonl(tmp_path / "base.jsonl", base_texts, "b")
    dedup = [{"stage": "dedup", "params": {}}]
    (tmp_path / "p1").mkdir()
    first = run(
        write_pipeline(tmp_path / "p1", [{"path": str(tmp_path / "base.jsonl")}], dedup, name="base"),
        tmp_path / "base_out",
    )
    sig_files = [f["path"] for f in first.manifest["files"] if f["path"].startswith("signatures/dedup/")]
    assert sig_files, "signatures are stored beside the shards"
    stored = pl.read_parquet(tmp_path / "base_out" / sig_files[0])
    assert stored.columns == ["id", "exact_key", "minhash"] and stored.height == 2
    assert "minhash" not in pl.read_parquet(tmp_path / "base_out" / "data" / "*.parquet").columns

    new_texts = [
        BASE + " Updated today.",
        "Something new about pharmacy supply chains and the cost of insulin in rural areas.",
    ]
    _jsonl(tmp_path / "new.jsonl", new_texts, "n")
    (tmp_path / "p2").mkdir()
    against = [{"stage": "dedup", "params": {"against": ["shards://base@latest"]}}]
    second = run(
        write_pipeline(tmp_path / "p2", [{"path": str(tmp_path / "new.jsonl")}], against, name="next"),
        tmp_path / "next_out",
    )
    kept = pl.read_parquet(tmp_path / "next_out" / "data" / "*.parquet")
    assert kept["id"].to_list() == ["n1"]
    rejected = pl.read_parquet(tmp_path / "next_out" / "rejected" / "dedup" / "*.parquet")
    assert rejected["dup_of"].to_list() == ["b0"]
    assert f"in shards://base@{first.manifest['version']}" in rejected["reason"][0]
    assert second.manifest["pipeline"]["stages"][0]["against"] == [f"shards://base@{first.manifest['version']}"]


def test_demo_pipeline_removes_planted_duplicates(tmp_path):
    from tests.conftest import default_stages

    path = write_pipeline(
        tmp_path, [{"demo": {"records": 1500, "seed": 3}}], default_stages() + [{"stage": "dedup"}], name="d"
    )
    result = run(path, tmp_path / "out")
    reasons = next(a for a in result.manifest["accounting"] if a["stage"] == "dedup")["reasons"]
    assert reasons["exact_duplicate"] > 0 and reasons["near_duplicate"] > 0
    kept = pl.read_parquet(tmp_path / "out" / "data" / "*.parquet")
    texts = kept["text"].drop_nulls()
    assert texts.n_unique() == texts.len()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["duplicates"][0]["cluster_sizes"]
    assert sum(report["duplicates"][0]["by_source"].values()) == sum(reasons.values())


def test_pair_f1_against_exact_jaccard_on_a_near_duplicate_sample():
    from curate.minhash import pair_scores, true_jaccard_pairs

    rng = np.random.default_rng(11)
    vocab = [f"word{i}" for i in range(3000)]
    sample = []
    for _ in range(40):
        base = list(rng.choice(vocab, 200))
        sample.append(" ".join(base))
        for _ in range(4):
            edited = list(base)
            for _ in range(int(rng.integers(0, 9))):
                edited[int(rng.integers(len(edited)))] = str(rng.choice(vocab))
            sample.append(" ".join(edited))
    truth = true_jaccard_pairs(MinHasher(), sample, 0.8)
    stage = _stage()
    sketch = stage.sketch(sample)
    pairs, _ = stage.near_pairs(sketch.signatures, sketch)
    scores = pair_scores({tuple(p) for p in pairs.tolist()}, truth)
    assert len(truth) > 100
    assert scores["precision"] == 1.0 and scores["f1"] >= 0.95, scores


def spread_case() -> tuple[pl.DataFrame, "DedupRules"]:
    """Records with exact copies, near copies, empty texts and one oversized bucket; and chat records in
    parts: long and short answers, tool calls, near copies, other answers to the same prompt."""
    from curate.stages.dedup import DedupRules

    base = [
        f"record {i} about clinic scheduling and patient intake forms number {i % 7} of the series" for i in range(300)
    ]
    texts = base + [t.replace("series", "set") for t in base[:80]] + base[:40] + ["", "   "]
    texts += ["ok", "OK!", "thanks a lot", "Thanks a lot."]  # too short for any shingle: compared whole
    rows = [{"id": f"r{i}", "text": t} for i, t in enumerate(texts)]
    rng = np.random.default_rng(5)

    def words(n: int) -> str:
        return " ".join(f"w{k}" for k in rng.integers(0, 400, n))

    chats = []
    for i in range(60):
        turns = [
            {"role": "system", "content": "You are the clinic's scheduling assistant."},
            {"role": "user", "content": words(30)},
            {"role": "assistant", "content": words(30 if i % 2 else 4)},
        ]
        if i % 3 == 0:
            turns.append({"role": "assistant", "content": f'{{"name": "book", "arguments": {{"slot": {i % 4}}}}}'})
        chats.append(turns)
    for turns in chats[:30]:  # a near copy, another answer, another call
        copy = [dict(t) for t in turns]
        copy[1]["content"] += " w7"
        chats.append(copy)
        chats.append(turns[:2] + [{"role": "assistant", "content": words(30)}])
        if len(turns) > 3:
            chats.append(turns[:3] + [{"role": "assistant", "content": '{"name": "book", "arguments": {"slot": 9}}'}])
    rows += [{"id": f"c{i}", "messages": m} for i, m in enumerate(chats)]
    df = pl.DataFrame(rows, schema={k: BASE_SCHEMA[k] for k in ("id", "text", "messages")}, orient="row")
    return df, DedupRules(threshold=0.7, max_bucket=8, min_shingles=8)


def dedup_with_pool(df: pl.DataFrame, rules, pool) -> pl.DataFrame:
    from curate.stages.dedup import DedupStage

    stage = DedupStage("dedup", rules, StageContext(pool=pool))
    stage.setup()
    return stage.process(df)


def test_dedup_spread_over_a_task_pool_matches_the_in_process_result(monkeypatch):
    """The path the Ray executor takes (chunked sketches, LSH keys shuffled to reducers) must give
    the same decisions, clusters, keys and signatures; chunks are made small here."""
    from curate.parallel import SerialPool

    df, rules = spread_case()
    expected = dedup_with_pool(df, rules, None)
    assert (expected["_rule"] == "near_duplicate").sum() > 0 and (expected["_rule"] == "exact_duplicate").sum() > 0
    chats = expected.filter(pl.col("id").str.starts_with("c"))["_rule"].to_list()
    # per original: its near copy dropped, the other answer and the other call kept
    assert chats[:60] == [None] * 60 and chats[60:].count("near_duplicate") == 30 and chats.count(None) == 100

    class ThreeWorkers(SerialPool):
        workers = 3

    monkeypatch.setattr("curate.stages.dedup.MIN_CHUNK", 50)  # 9 chunks, 3 reducers
    assert dedup_with_pool(df, rules, ThreeWorkers()).equals(expected)


PREAMBLE = (
    "You are an assistant with access to these tools.\n"
    "Tool calculator: evaluates arithmetic expressions given as strings and returns the numeric result.\n"
    "Tool string_length: returns the number of characters in the given string, counting spaces.\n"
    "Tool search: looks up a term in the encyclopedia and returns the first paragraph of the article.\n"
    "Answer the user's task using the tools when they help, and say which tool you used.\n"
)
TASKS = [
    "Find the sum of the digits of 12345",
    "Find the length of the given string 'hello world'",
    "Look up the capital of France and say it in one sentence",
    "What is 17 times 23?",
    "Count the vowels in the word encyclopedia",
    "Is 97 a prime number? Explain briefly.",
    "Reverse the string 'stressed' and tell me the word you get",
    "Convert 100 degrees Fahrenheit to Celsius",
    "Search for the year the Eiffel Tower was finished",
    "How many characters are in 'curate your data'?",
    "Compute the average of 3, 8 and 10",
    "Find the first paragraph about the Nile river",
]


def test_distinct_tasks_behind_a_shared_preamble_are_not_near_duplicates():
    """Tool descriptions and system prompts repeated in every record are boilerplate: left out of the
    shingles, so what differs (the task) decides. Without that step they all look alike."""
    df = _frame([PREAMBLE + t for t in TASKS] + [PREAMBLE, PREAMBLE + "\n"])
    on = _stage()
    output = on.run(df)
    out = output.frame
    rules = dict(zip(out["id"], out[RULE]))
    assert [rules[f"t{i}"] for i in range(len(TASKS))] == [None] * len(TASKS)
    # records that are nothing but the preamble are still duplicates of each other
    assert rules[f"t{len(TASKS) + 1}"] in ("exact_duplicate", "near_duplicate")
    found = output.summary["boilerplate"]
    assert found["lines"] == 5 and found["records"] == len(TASKS) + 2
    assert all(line["text"] is None for line in found["top"])  # no text unless show_text
    off = _stage(boilerplate={"enabled": False}).process(df)
    assert (off[RULE] == "near_duplicate").sum() >= len(TASKS) - 1


def test_boilerplate_needs_enough_records_and_leaves_exact_dedup_alone():
    few = _frame([PREAMBLE + t for t in TASKS[:3]])  # 3 records: below min_records, nothing is boilerplate
    assert _stage().run(few).summary["boilerplate"]["lines"] == 0
    same = _frame([PREAMBLE + TASKS[0]] * 2 + [PREAMBLE + t for t in TASKS])
    out = _stage().process(same)
    assert (out[RULE] == "exact_duplicate").sum() == 2  # the repeated record, and its copy among TASKS


def test_the_report_lists_boilerplate_lines_by_hash_and_count_without_their_text(tmp_path):
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"id": f"t{i}", "text": PREAMBLE + t}) + "\n" for i, t in enumerate(TASKS))
    )
    path = write_pipeline(tmp_path, [{"path": "in.jsonl"}], [{"stage": "dedup"}], name="tools")
    result = run(path, tmp_path / "out")
    found = result.manifest["stage_summaries"]["dedup"]["boilerplate"]
    assert found["lines"] == 5 and found["records"] == len(TASKS) and result.manifest["rows"]["kept"] == len(TASKS)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Boilerplate left out of near-duplicate shingles: 5 lines" in html and found["top"][0]["hash"] in html
    assert "Tool calculator" not in html


@pytest.mark.parametrize("keep, verify", [("first", "exact"), ("longest", "exact"), ("first", "signature")])
def test_deciding_from_checkpoint_files_matches_the_in_memory_dedup(tmp_path, monkeypatch, keep, verify):
    """The engine's local path (executor.run_global on a stage with decide_files): keys and sketches
    computed file by file, boilerplate lines counted over every file first, sketches kept on disk and
    read back a band (and a few pairs) at a time, decisions written in row groups that do not line up
    with the files; same decisions, clusters, keys, signatures and summary as dedup on all the rows."""
    from curate import minhash
    from curate.config import ResolvedStage
    from curate.executor import run_global
    from curate.stages import dedup
    from curate.workdir import kept_file

    monkeypatch.setattr(dedup, "DECISION_ROWS", 100)
    monkeypatch.setattr(minhash.SketchFiles, "PAIRS_PER_READ", 7)

    df, rules = spread_case()
    header = "This message was sent from the clinic scheduling system, please do not reply to it"
    df = df.with_columns(  # a boilerplate line in a quarter of the records, spread over the files
        pl.when(pl.int_range(pl.len()) % 4 == 0)
        .then(header + "\n" + pl.col("text"))
        .otherwise(pl.col("text"))
        .alias("text")
    )
    rules = rules.model_copy(update={"keep": keep, "verify": verify})
    expected_stage = DedupStage("dedup", rules)
    expected_stage.setup()
    expected = expected_stage.run(df)
    assert expected.summary["boilerplate"]["lines"] == 1
    files = []
    for i, start in enumerate(range(0, df.height, 64)):
        files.append(tmp_path / f"b-{i}" / "kept.parquet")
        files[-1].parent.mkdir()
        df.slice(start, 64).write_parquet(files[-1])
    stage = DedupStage("dedup", rules)
    stage.setup()
    decided = stage.run_files(files, tmp_path / "scratch")
    assert decided.summary == expected.summary
    frame = pl.read_parquet(decided.frame)
    assert pq.ParquetFile(decided.frame).num_row_groups == -(-df.height // 100)
    assert frame.equals(expected.frame.select(frame.columns))
    assert frame.columns == [
        "id",
        "dup_cluster",
        "dup_of",
        "exact_key",
        "minhash",
        "_action",
        "_rule",
        "_reason",
    ]
    done = run_global(ResolvedStage("dedup", "dedup", rules, None), StageContext(), tmp_path / "all", files, "a")
    assert done["summary"] == expected.summary
    kept = expected.frame.filter(pl.col(ACTION) == "keep").drop(ACTION, RULE, REASON)
    assert pl.read_parquet(kept_file(tmp_path / "all")).equals(kept)
