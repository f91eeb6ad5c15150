"""End-to-end runs: accounting, determinism, cache hits, resume after kill -9, and outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from curate.errors import AccountingError
from curate.stages.base import Stage, keep_all
from curate.workdir import batch_dir, kept_file
from tests.conftest import REPO, run, write_pipeline


def _data_hashes(out: Path) -> dict[str, str]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {f["path"]: f["sha256"] for f in manifest["files"]}


def test_accounting_adds_up_for_every_stage_on_the_demo_corpus(demo_run):
    m = demo_run.manifest
    for acc in m["accounting"]:
        assert acc["rows_in"] == acc["kept"] + acc["dropped"] + acc["quarantined"], acc["stage"]
        assert sum(acc["reasons"].values()) == acc["dropped"] + acc["quarantined"]
    for prev, nxt in zip(m["accounting"], m["accounting"][1:]):
        assert prev["kept"] == nxt["rows_in"]
    rows = m["rows"]
    assert rows["input"] == rows["kept"] + rows["dropped"] + rows["quarantined"]
    # Every input line of the demo files is accounted for: count them independently.
    lines = 0
    for inp in m["inputs"]:
        path = Path(inp["path"])
        import gzip

        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        lines += sum(1 for ln in data.split(b"\n") if ln.strip())
    assert rows["input"] == lines


def test_every_rejected_row_is_written_with_stage_rule_and_reason(demo_run):
    out, m = demo_run.out_dir, demo_run.manifest
    for acc in m["accounting"]:
        rejected = acc["dropped"] + acc["quarantined"]
        folder = out / "rejected" / acc["stage"]
        if not rejected:
            assert not folder.exists()
            continue
        df = pl.read_parquet(folder / "*.parquet")
        assert df.height == rejected
        assert set(df["stage"]) == {acc["stage"]}
        assert df["rule"].null_count() == 0 and df["reason"].null_count() == 0
        assert dict(df.group_by("rule").len().iter_rows()) == acc["reasons"]
        assert df["src_file"].null_count() == 0 and df["src_row"].null_count() == 0


def test_demo_corpus_exercises_every_stage(demo_run):
    reasons = {a["stage"]: a["reasons"] for a in demo_run.manifest["accounting"]}
    assert {
        "malformed_json",
        "invalid_utf8",
        "empty_record",
        "missing_field",
        "wrong_type",
        "not_an_object",
        "duplicate_id",
        "record_too_large",
    } <= set(reasons["read"])
    assert reasons["langid"].get("lang_not_allowed", 0) > 0
    assert reasons["quality"].get("chat_empty_assistant", 0) > 0
    kept = pl.read_parquet(demo_run.out_dir / "data" / "*.parquet")
    assert set(kept["lang"]) == {"en", "vi"}
    assert kept["normalize_changed"].sum() > 0
    assert kept["messages"].is_not_null().sum() > 0 and kept["text"].is_not_null().sum() > 0
    assert set(kept["domain"].drop_nulls()) >= {"cardiology", "dermatology"}


def test_shards_load_with_polars_pyarrow_and_pandas(demo_run):
    data = demo_run.out_dir / "data"
    files = sorted(data.glob("part-*.parquet"))
    assert len(files) == -(-demo_run.manifest["rows"]["kept"] // 700)
    table = pq.read_table(data)
    assert table.num_rows == demo_run.manifest["rows"]["kept"]
    assert pl.read_parquet(data / "*.parquet").height == table.num_rows
    pdf = pq.read_table(files[0]).to_pandas()
    assert list(pdf.columns[:3]) == ["id", "text", "messages"]
    assert pq.ParquetFile(files[0]).metadata.row_group(0).column(0).compression == "ZSTD"


def test_same_inputs_give_byte_identical_shards(tmp_path, demo_run):
    path = write_pipeline(
        tmp_path,
        [{"demo": {"records": 2000, "seed": 5}, "columns": ["domain"]}],
        name="demo",
        batch_size=300,
        output={"shard_rows": 700},
        workers=2,
    )
    again = run(path, tmp_path / "elsewhere")
    assert again.manifest["version"] == demo_run.manifest["version"]
    assert _data_hashes(again.out_dir) == _data_hashes(demo_run.out_dir)


def test_unchanged_rerun_is_a_cache_hit_and_a_change_is_not(tmp_path):
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"text": f"Record number {i} is about the clinic."}) + "\n" for i in range(50))
    )
    path = write_pipeline(tmp_path, [{"path": "in.jsonl"}], [{"stage": "normalize"}])
    first = run(path, tmp_path / "out")
    stamp = (tmp_path / "out" / "data" / "part-00000.parquet").stat().st_mtime_ns
    second = run(path, tmp_path / "out")
    assert not first.cached and second.cached
    assert (tmp_path / "out" / "data" / "part-00000.parquet").stat().st_mtime_ns == stamp
    (tmp_path / "in.jsonl").write_text((tmp_path / "in.jsonl").read_text() + json.dumps({"text": "one more"}) + "\n")
    third = run(path, tmp_path / "out")
    assert not third.cached and third.manifest["rows"]["kept"] == 51


def test_a_tampered_output_is_not_a_cache_hit(tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "hello there"}) + "\n")
    path = write_pipeline(tmp_path, [{"path": "in.jsonl"}], [])
    run(path, tmp_path / "out")
    (tmp_path / "out" / "data" / "part-00000.parquet").write_bytes(b"garbage")
    assert not run(path, tmp_path / "out").cached
    assert pl.read_parquet(tmp_path / "out" / "data" / "part-00000.parquet").height == 1


class _LosesRows(Stage):
    """A broken stage that silently filters instead of marking rows."""

    from curate.stages.normalize import NormalizeRules as Rules

    def process(self, df):
        return keep_all(df.head(df.height // 2))


class _SilentDrop(Stage):
    from curate.stages.normalize import NormalizeRules as Rules

    def process(self, df):
        out = keep_all(df)
        return out.with_columns(pl.lit("drop").alias("_action"))


@pytest.mark.parametrize(
    "stage_cls, message",
    [(_LosesRows, "must mark rows, never add or remove"), (_SilentDrop, "without a rule and reason")],
)
def test_a_stage_that_loses_rows_fails_the_run_loudly(tmp_path, monkeypatch, stage_cls, message):
    from curate.stages import registry

    monkeypatch.setitem(registry.STAGES, "broken", stage_cls)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(10)))
    path = write_pipeline(tmp_path, [{"path": "in.jsonl"}], [{"stage": "broken"}])
    with pytest.raises(AccountingError, match=message):
        run(path, tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_resume_after_kill_gives_identical_shards(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reference = tmp_path / "ref"
    pipeline = write_pipeline(tmp_path, [{"demo": {"records": 3000, "seed": 9}}], name="resume", batch_size=100)
    cmd = [sys.executable, "-m", "curate", "run", str(pipeline), "-q", "--workers", "1"]
    subprocess.run(cmd + ["--out", str(reference)], env=env, check=True, capture_output=True)

    out = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("_work/*/seg-00/*/done.json"))) < 5:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(out.glob("_work/*/seg-00/*/done.json")))
    assert done_before >= 5 and not (out / "manifest.json").exists(), "the run finished before it could be killed"
    # A batch killed mid-write leaves files but no done.json: the resume must redo it, not trust it.
    partial = batch_dir(next(out.glob("_work/*/seg-00")), done_before)
    partial.mkdir(exist_ok=True)
    kept_file(partial).write_bytes(b"half a parquet file")
    subprocess.run(cmd + ["--out", str(out)], env=env, check=True, capture_output=True)
    assert _data_hashes(out) == _data_hashes(reference)
    resumed = json.loads((out / "manifest.json").read_text())
    assert resumed["rows"] == json.loads((reference / "manifest.json").read_text())["rows"]
    assert not (out / "_work").exists()


def _children(pid: int) -> set[int]:
    """Every live descendant of `pid` (pool workers, the resource tracker)."""
    found, frontier = set(), {pid}
    while frontier:
        nxt = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) in frontier and fields[0] != "Z":
                nxt.add(int(stat.parent.name))
        found |= nxt
        frontier = nxt - {pid}
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_pool_workers_die_with_a_killed_driver(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    pipeline = write_pipeline(tmp_path, [{"demo": {"records": 6000, "seed": 9}}], name="orphans", batch_size=150)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "curate", "run", str(pipeline), "-q", "--workers", "2", "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("_work/*/seg-00/*/done.json"))) < 2:
        time.sleep(0.05)
    children = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(children) >= 2, "the pool had not started"
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(c) for c in children):
        time.sleep(0.1)
    assert not [c for c in children if _alive(c)], "pool workers outlived the killed driver"


def test_all_rejected_rows_read_in_one_call_with_one_schema(demo_run):
    out = demo_run.out_dir
    files = sorted((out / "rejected").glob("*/*.parquet"))
    assert len({f.parent.name for f in files}) >= 3  # read, langid, quality at least
    schemas = {tuple(pl.read_parquet_schema(f).items()) for f in files}
    assert len(schemas) == 1  # every stage's file: the same columns, in the same order, with the same types
    everything = pl.read_parquet(out / "rejected" / "*" / "*.parquet")
    m = demo_run.manifest
    assert everything.height == sum(a["dropped"] + a["quarantined"] for a in m["accounting"])
    assert everything.columns[:4] == ["stage", "rule", "reason", "action"]
    read = everything.filter(pl.col("stage") == "read")
    assert read["raw"].null_count() < read.height and read["q_word_count"].null_count() == read.height
    quality = everything.filter(pl.col("stage") == "quality")
    assert quality["q_word_count"].null_count() == 0 and quality["raw"].null_count() == quality.height


def test_a_run_where_nothing_reaches_the_global_stages_finishes_and_accounts_for_every_row(tmp_path):
    from tests.conftest import RULES

    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"title": f"no content field {i}"}) + "\n" for i in range(5)))
    stages = [{"stage": s, "rules": str(RULES / s / "default.yaml")} for s in ("normalize", "quality", "dedup")]
    stages += [
        {"stage": "balance", "params": {"label": "label"}},
        {"stage": "split", "rules": str(RULES / "split/default.yaml")},
    ]
    result = run(write_pipeline(tmp_path, [{"path": "in.jsonl"}], stages), tmp_path / "out")
    assert result.manifest["rows"] == {**result.manifest["rows"], "input": 5, "kept": 0, "quarantined": 5}
    assert [a["rows_in"] for a in result.manifest["accounting"]] == [5, 0, 0, 0, 0, 0]


def test_published_rows_are_read_a_part_at_a_time_as_one_frame_would_hold_them(tmp_path):
    """Publishing and the report read the final (and rejected) checkpoints a part at a time
    (`RowFiles`): the same rows, columns and types as reading them all at once, shards cut at the
    same rows and byte-identical, whatever the files' boundaries."""
    from curate.hashing import sha256_file
    from curate.io.shards import RowFiles, read_parquets, read_pieces, write_parts, write_shards

    frames = [
        pl.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y", None], "n": pl.Series([1, 2, 3], dtype=pl.Int32)}),
        pl.DataFrame({"id": ["d", "e"], "text": ["z", "w"], "n": [4, 5], "dup_of": ["a", None]}),
        pl.DataFrame(schema={"id": pl.Utf8, "text": pl.Utf8, "n": pl.Int64}),
        pl.DataFrame({"id": [f"r{i}" for i in range(6)], "text": ["t"] * 6, "n": list(range(6))}),
    ]
    files = []
    for i, df in enumerate(frames):
        files.append(tmp_path / f"f{i}.parquet")
        df.write_parquet(files[-1])
    whole = read_parquets(files)
    rows = RowFiles(files)
    assert rows.height == whole.height == 11 and rows.schema == whole.schema
    assert pl.concat(list(rows.frames())).equals(whole)
    parts = list(rows.slices(4))
    assert [p.height for p in parts] == [4, 4, 3] and pl.concat(parts).equals(whole)
    assert rows.without(["text"]).collect().equals(whole.drop("text"))
    assert rows.select(["id", "dup_of", "absent"]).equals(whole.select("id", "dup_of"))
    by_whole = write_shards(whole, tmp_path / "whole", 4, 3)
    by_parts = write_parts(rows.slices(4), tmp_path / "parts", 3)
    assert [sha256_file(e["path"]) for e in by_parts] == [sha256_file(e["path"]) for e in by_whole]
    # a row segment after a global stage: each worker reads its batch's pieces of the files itself
    for size in (1, 4, 5, 11, 20):
        batches = [read_pieces(pieces, rows.schema) for pieces in rows.batches(size)]
        expected = [whole.slice(start, size) for start in range(0, whole.height, size)]
        assert len(batches) == len(expected) and all(a.equals(b) for a, b in zip(batches, expected))
    nothing = RowFiles([tmp_path / "missing.parquet"])
    assert nothing.height == 0 and [p.height for p in nothing.slices(4)] == [0]
    assert [read_pieces(b, nothing.schema).height for b in nothing.batches(4)] == [0]


@pytest.mark.parametrize("stages, alive", [(["normalize", "dedup"], 0), (["normalize", "dedup", "langid"], 2)])
def test_row_workers_are_shut_down_before_the_global_stages_that_end_a_pipeline(tmp_path, monkeypatch, stages, alive):
    """Worker processes hold the row stages' models (fastText, spaCy): once no row stage is left they
    go, so the driver's dedup and split do not run beside them; a row stage after dedup keeps them."""
    import multiprocessing

    from curate.stages.dedup import DedupStage

    seen, decide = [], DedupStage.decide_files

    def watching(self, files, scratch):
        seen.append(len(multiprocessing.active_children()))
        return decide(self, files, scratch)

    monkeypatch.setattr(DedupStage, "decide_files", watching)
    path = write_pipeline(
        tmp_path, [{"demo": {"records": 400, "seed": 3}}], [{"stage": s} for s in stages], workers=2, batch_size=100
    )
    run(path, tmp_path / "out")
    assert seen == [alive]


def test_workers_read_the_inputs_and_give_the_shards_the_driver_would(tmp_path, monkeypatch):
    """With worker processes, the driver parses no input row (a parser that fails in it changes nothing):
    the workers read the files, the driver plans batches across files from the ids, so a record whose id
    another file used first is still quarantined with its own row and line, and the shards, the rejected
    rows and the accounting are those of a run in one process. The read parts go once every batch is
    checkpointed, before the global stages."""
    from curate.stages.dedup import DedupStage

    first = [{"id": f"a{i}", "text": f"first file row {i} " * 3} for i in range(7)]
    second = [{"id": "b0", "text": "second file own row"}, {"id": "a3", "text": "taken id"}, {"text": "no id"}]
    (tmp_path / "one.jsonl").write_text("".join(json.dumps(r) + "\n" for r in first) + "\n{broken\n")
    (tmp_path / "two.jsonl").write_text("\n" + "".join(json.dumps(r) + "\n" for r in second))
    inputs = [{"path": "one.jsonl"}, {"path": "two.jsonl"}]
    stages = [{"stage": "normalize"}, {"stage": "dedup"}]
    reference = run(write_pipeline(tmp_path, inputs, stages, name="one", workers=1, batch_size=3), tmp_path / "ref")

    def no_parsing_here(*args, **kwargs):
        raise AssertionError("the driver parsed an input")

    parts_left, decide = [], DedupStage.decide_files

    def watching(self, files, scratch):
        read = next(tmp_path.glob("out/_work/*/seg-00/read"))
        parts_left.append((sorted(p.name for p in read.iterdir()), list(read.glob("u-*/*.parquet"))))
        return decide(self, files, scratch)

    monkeypatch.setattr("curate.io.readers.parse_rows", no_parsing_here)
    monkeypatch.setattr(DedupStage, "decide_files", watching)
    result = run(write_pipeline(tmp_path, inputs, stages, name="two", workers=2, batch_size=3), tmp_path / "out")
    assert parts_left == [(["batches.json"], [])]
    assert _data_hashes(tmp_path / "out") == _data_hashes(tmp_path / "ref")
    untimed = [{k: v for k, v in a.items() if k != "seconds"} for a in result.manifest["accounting"]]
    assert untimed == [{k: v for k, v in a.items() if k != "seconds"} for a in reference.manifest["accounting"]]
    assert untimed[0]["skipped"] == {"blank_line": 2} and untimed[0]["reasons"] == {
        "duplicate_id": 1,
        "malformed_json": 1,
    }
    taken = pl.read_parquet(tmp_path / "out" / "rejected" / "read" / "*.parquet").filter(
        pl.col("rule") == "duplicate_id"
    )
    assert taken.select("id", "src_file", "src_row").rows() == [("a3", "two.jsonl", 3)]
    assert json.loads(taken["raw"][0]) == second[1]
