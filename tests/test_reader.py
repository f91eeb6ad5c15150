"""Bad input is quarantined with file, row and reason; nothing crashes, nothing is skipped."""

from __future__ import annotations

import gzip
import json
import zlib

import orjson
import polars as pl
import pytest
import zstandard

from curate.config import load_pipeline
from curate.errors import InputError
from curate.io.readers import read_batches
from curate.io.sources import resolve_inputs
from tests.conftest import REPO, write_pipeline


def _read(tmp_path, files: dict[str, bytes], max_record_bytes: int = 1000, **input_opts):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    inputs = [{"path": name, **input_opts} for name in files]
    pipeline = load_pipeline(write_pipeline(tmp_path, inputs, []))
    batches = list(read_batches(resolve_inputs(pipeline), batch_size=1000, max_record_bytes=max_record_bytes))
    records = pl.concat([b.records for b in batches], how="diagonal_relaxed")
    rejected = pl.concat([b.quarantined for b in batches])
    assert sum(b.rows_in for b in batches) == records.height + rejected.height
    return records, rejected


def _lines(*objs) -> bytes:
    return b"".join((o if isinstance(o, bytes) else orjson.dumps(o)) + b"\n" for o in objs)


def test_every_quarantine_reason_names_file_row_and_reason(tmp_path):
    data = _lines(
        {"id": "a", "text": "good one"},  # 1 kept
        b'{"text": "unterminated',  # 2 malformed_json
        b'{"text": "bad \xff byte"}',  # 3 invalid_utf8
        {},  # 4 empty_record (no fields)
        {"text": "   \n "},  # 5 empty_record (blank text)
        {"title": "no text"},  # 6 missing_field
        {"text": 12},  # 7 wrong_type
        {"messages": [{"role": "robot", "content": "x"}]},  # 8 wrong_type (role)
        [1, 2],  # 9 not_an_object
        {"id": "a", "text": "same id again"},  # 10 duplicate_id
        {"text": "x" * 2000},  # 11 record_too_large
        {"messages": [{"role": "user", "content": ""}]},  # 12 empty_record (no content)
    )
    records, rejected = _read(tmp_path, {"in.jsonl": data})
    assert records["id"].to_list() == ["a"]
    got = {(r["src_row"], r["rule"]) for r in rejected.iter_rows(named=True)}
    assert got == {
        (2, "malformed_json"),
        (3, "invalid_utf8"),
        (4, "empty_record"),
        (5, "empty_record"),
        (6, "missing_field"),
        (7, "wrong_type"),
        (8, "wrong_type"),
        (9, "not_an_object"),
        (10, "duplicate_id"),
        (11, "record_too_large"),
        (12, "empty_record"),
    }
    assert set(rejected["src_file"]) == {"in.jsonl"}
    assert set(rejected["action"]) == {"quarantine"}
    assert rejected["reason"].null_count() == 0
    too_large = rejected.filter(pl.col("rule") == "record_too_large")["reason"][0]
    assert "2,012 bytes, above limits.max_record_bytes=1,000" in too_large


def test_truncated_gzip_keeps_rows_before_the_break(tmp_path):
    data = gzip.compress(_lines(*({"text": f"row {i} " + "word " * 20} for i in range(3000))), mtime=0)
    records, rejected = _read(tmp_path, {"cut.jsonl.gz": data[: len(data) // 2]}, max_record_bytes=10_000)
    assert 0 < records.height < 3000
    assert records["src_row"].to_list() == list(range(1, records.height + 1))
    trunc = rejected.filter(pl.col("rule") == "truncated_file")
    assert trunc.height == 1 and "truncated" in trunc["reason"][0]


def test_truncated_zstd_is_reported_not_silent(tmp_path):
    data = zstandard.ZstdCompressor().compress(_lines(*({"text": f"row {i} " + "w " * 30} for i in range(4000))))
    records, rejected = _read(tmp_path, {"cut.jsonl.zst": data[: len(data) // 2]}, max_record_bytes=10_000)
    assert 0 < records.height < 4000
    assert rejected.filter(pl.col("rule") == "truncated_file").height == 1


def test_complete_zstd_and_multi_frame_read_fully(tmp_path):
    c = zstandard.ZstdCompressor()
    frames = c.compress(_lines(*({"text": f"a{i}"} for i in range(500)))) + c.compress(
        _lines(*({"text": f"b{i}"} for i in range(500)))
    )
    records, rejected = _read(tmp_path, {"ok.jsonl.zst": frames})
    assert records.height == 1000 and rejected.height == 0


def test_missing_input_is_a_clear_error(tmp_path):
    pipeline = load_pipeline(write_pipeline(tmp_path, [{"path": "nowhere.jsonl"}], []))
    with pytest.raises(InputError, match=r"inputs\[0\]: input file not found: .*nowhere.jsonl"):
        resolve_inputs(pipeline)


def test_unsupported_format_is_a_clear_error(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n")
    pipeline = load_pipeline(write_pipeline(tmp_path, [{"path": "data.csv"}], []))
    with pytest.raises(InputError, match="unsupported input format: .*data.csv"):
        resolve_inputs(pipeline)


def test_alpaca_sharegpt_and_chat_map_to_messages(tmp_path):
    data = _lines(
        {"instruction": "Translate", "input": "hola", "output": "hello", "system": "Be brief."},
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello!"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "label": 1},
    )
    records, rejected = _read(tmp_path, {"mix.jsonl": data})
    assert rejected.height == 0
    convs = records["messages"].to_list()
    assert convs[0] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Translate\n\nhola"},
        {"role": "assistant", "content": "hello"},
    ]
    assert convs[1] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello!"}]
    assert records["label"].to_list() == [None, None, "1"]
    assert records["text"].null_count() == 3


def test_field_mapping_promoted_columns_and_meta(tmp_path):
    data = _lines({"doc_id": "d1", "body": "some text", "category": "news", "url": "u", "nested": {"k": 1}})
    records, _ = _read(
        tmp_path,
        {"x.jsonl": data},
        fields={"id": "doc_id", "text": "body", "label": "category"},
        columns=["url"],
        source="crawl",
    )
    row = records.row(0, named=True)
    assert (row["id"], row["text"], row["label"], row["source"], row["url"]) == (
        "d1",
        "some text",
        "news",
        "crawl",
        "u",
    )
    assert json.loads(row["meta"]) == {"nested": {"k": 1}}


def test_parquet_and_json_array_inputs(tmp_path):
    pl.DataFrame({"text": ["a parquet row", "another"]}).write_parquet(tmp_path / "p.parquet")
    (tmp_path / "arr.json").write_bytes(orjson.dumps([{"text": "from an array"}, {"text": 5}]))
    pipeline = load_pipeline(write_pipeline(tmp_path, [{"path": "p.parquet"}, {"path": "arr.json"}], []))
    batches = list(read_batches(resolve_inputs(pipeline), 1000, 10_000))
    assert batches[0].records["text"].to_list() == ["a parquet row", "another", "from an array"]
    assert batches[0].quarantined.select("src_file", "src_row", "rule").row(0) == ("arr.json", 2, "wrong_type")


def test_ids_are_derived_from_content_and_position_when_absent(tmp_path):
    data = _lines({"text": "one"}, {"text": "two"})
    first, _ = _read(tmp_path, {"a.jsonl": data})
    (tmp_path / "moved").mkdir()
    again, _ = _read(tmp_path / "moved", {"a.jsonl": data})
    assert first["id"].to_list() == again["id"].to_list()
    assert first["id"].n_unique() == 2


def test_parquet_metadata_of_any_type_is_kept_not_crashing(tmp_path):
    import datetime

    pl.DataFrame({"text": ["dated row"], "when": [datetime.date(2024, 5, 1)]}).write_parquet(tmp_path / "d.parquet")
    pipeline = load_pipeline(write_pipeline(tmp_path, [{"path": "d.parquet"}], []))
    batch = next(read_batches(resolve_inputs(pipeline), 10, 10_000))
    assert json.loads(batch.records["meta"][0]) == {"when": "2024-05-01"}


def test_url_inputs_read_through_fsspec_give_the_same_shards_as_local_files(tmp_path):
    """Inputs on any fsspec filesystem (here memory://, as s3:// or gs:// would be) are listed,
    fingerprinted and read like local files: same rows, same ids, same shards."""
    import fsspec

    from tests.conftest import run

    lines = [
        json.dumps({"text": f"Record {i}: patients should bring their insurance card and a list of medicines."})
        for i in range(40)
    ] + ["{not json"]
    local_dir = tmp_path / "corpus"
    local_dir.mkdir()
    (local_dir / "a.jsonl").write_text("\n".join(lines[:20]) + "\n")
    (local_dir / "b.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines[20:]) + "\n").encode()))
    fs = fsspec.filesystem("memory")
    for f in local_dir.iterdir():
        fs.pipe(f"/bucket/corpus/{f.name}", f.read_bytes())
    try:
        results = {}
        for where, path in {"local": str(local_dir / "*"), "url": "memory://bucket/corpus/*"}.items():
            folder = tmp_path / where
            folder.mkdir()
            pipeline = write_pipeline(folder, [{"path": path}], stages=[])
            results[where] = run(pipeline, folder / "out")
        local, url = results["local"].manifest, results["url"].manifest
        assert url["version"] == local["version"]
        assert url["rows"] == local["rows"] == {"input": 41, "kept": 40, "dropped": 0, "quarantined": 1}
        assert [i["path"] for i in url["inputs"]] == [
            "memory:///bucket/corpus/a.jsonl",
            "memory:///bucket/corpus/b.jsonl.gz",
        ]
        assert [i["sha256"] for i in url["inputs"]] == [i["sha256"] for i in local["inputs"]]
    finally:
        fs.rm("/bucket", recursive=True)


def test_url_input_without_its_filesystem_package_is_a_clear_error(tmp_path):
    pipeline = load_pipeline(write_pipeline(tmp_path, [{"path": "s3://some-bucket/corpus/*.jsonl"}]))
    with pytest.raises(InputError, match="s3fs"):
        resolve_inputs(pipeline)


_PEAK_SCRIPT = """
import resource, sys
from curate.config import load_pipeline
from curate.io.readers import read_batches
from curate.io.sources import resolve_inputs
batches = list(read_batches(resolve_inputs(load_pipeline(sys.argv[1])), batch_size=1000, max_record_bytes=2_000_000))
rules = [r for b in batches for r in b.quarantined["rule"].to_list()]
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(sum(b.records.height for b in batches), ",".join(rules), peak_mb)
"""


def _compressed_bomb(path, kind: str, line_bytes: int) -> None:
    """Good records around one `line_bytes` line of 'a' characters, compressed as it streams."""
    good = _lines(*({"text": f"record {i} about the ward rota"} for i in range(50)))
    if kind == "gz":
        comp = zlib.compressobj(6, zlib.DEFLATED, 31)
        write = comp.compress
    else:
        comp = zstandard.ZstdCompressor(level=3).compressobj()
        write = comp.compress
    with open(path, "wb") as fh:
        fh.write(write(good))
        if line_bytes:
            fh.write(write(b'{"text": "'))
            chunk = b"a" * (1 << 24)
            for _ in range(line_bytes // len(chunk)):
                fh.write(write(chunk))
            fh.write(write(b'"}\n'))
        fh.write(write(good))
        fh.write(comp.flush())


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_a_1gib_line_in_a_small_compressed_file_is_quarantined_in_bounded_memory(tmp_path, kind):
    """max_record_bytes is enforced while reading: a decompression bomb cannot exhaust memory."""
    import subprocess
    import sys

    peaks = {}
    for case, size in (("bomb", 1 << 30), ("plain", 0)):
        folder = tmp_path / case
        folder.mkdir()
        _compressed_bomb(folder / f"in.jsonl.{kind}", kind, size)
        if case == "bomb":
            assert (folder / f"in.jsonl.{kind}").stat().st_size < 10_000_000  # small on disk
        pipeline = write_pipeline(folder, [{"path": f"in.jsonl.{kind}"}], [])
        done = subprocess.run(
            [sys.executable, "-c", _PEAK_SCRIPT, str(pipeline)], capture_output=True, text=True, check=True, cwd=REPO
        )
        kept, rules, peak_mb = done.stdout.split()[0], done.stdout.split()[1:-1], int(done.stdout.split()[-1])
        peaks[case] = peak_mb
        assert kept == "100"
        assert rules == (["record_too_large"] if case == "bomb" else [])  # split() drops an empty rules field
    assert peaks["bomb"] - peaks["plain"] < 300, peaks


def test_blank_lines_are_counted_and_a_bom_is_stripped(tmp_path):
    data = (
        b"\xef\xbb\xbf"
        + _lines({"id": "a", "text": "first record"})
        + b"\n   \n"
        + _lines({"id": "b", "text": "second"})
        + b"\n"
    )
    records, rejected = _read(
        tmp_path, {"in.jsonl": data, "arr.json": b"\xef\xbb\xbf" + orjson.dumps([{"id": "c", "text": "x y"}])}
    )
    assert sorted(records["id"]) == ["a", "b", "c"] and rejected.height == 0
    assert records.filter(pl.col("id") == "b")["src_row"].item() == 4  # line numbers still count the blank lines
    pipeline = load_pipeline(write_pipeline(tmp_path, [{"path": "in.jsonl"}], []))
    assert sum(b.skipped.get("blank_line", 0) for b in read_batches(resolve_inputs(pipeline), 1000, 1000)) == 3


def test_a_meta_field_that_is_not_an_object_is_kept_as_a_field(tmp_path):
    data = _lines(
        {"id": "a", "text": "one", "meta": "[1, 2]"},
        {"id": "b", "text": "two", "meta": "5"},
        {"id": "c", "text": "three", "meta": '{"k": "v"}'},
        {"id": "d", "text": "four", "meta": "plain words"},
    )
    records, rejected = _read(tmp_path, {"in.jsonl": data})
    meta = dict(zip(records["id"], records["meta"]))
    assert rejected.height == 0
    assert json.loads(meta["a"]) == {"meta": "[1, 2]"} and json.loads(meta["b"]) == {"meta": "5"}
    assert json.loads(meta["c"]) == {"k": "v"} and json.loads(meta["d"]) == {"meta": "plain words"}


def test_a_file_name_that_is_not_utf8_is_a_clear_error(tmp_path):
    import os

    (tmp_path / "d").mkdir()
    with open(os.fsencode(tmp_path / "d") + b"/bad\xffname.jsonl", "wb") as fh:
        fh.write(_lines({"text": "x"}))
    pipeline = load_pipeline(write_pipeline(tmp_path, [{"path": "d"}], []))
    with pytest.raises(InputError, match=r"bad\\xffname.jsonl is not valid UTF-8"):
        resolve_inputs(pipeline)


def test_a_remote_file_without_a_bounded_readline_is_still_read_with_the_limit(tmp_path, monkeypatch):
    """fsspec's remote files (s3fs, gcsfs, http) have readline() with no size argument."""
    import io

    from curate.io.sources import InputFile

    class RemoteLike:
        def __init__(self, data: bytes):
            self.buf = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self.buf.read(n)

        def readline(self) -> bytes:  # no limit: reading a bomb through it would hold the whole line
            raise AssertionError("readline without a limit was used")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    data = _lines({"text": "first"}, {"text": "x" * 5000}, {"text": "third"})
    monkeypatch.setattr(InputFile, "open", lambda self: RemoteLike(data))
    records, rejected = _read(tmp_path, {"in.jsonl": data})
    assert records["text"].to_list() == ["first", "third"] and rejected["rule"].to_list() == ["record_too_large"]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 1000])
def test_batches_cut_input_rows_across_files_whatever_their_size(tmp_path, batch_size):
    """Batches hold `batch_size` input rows each, across file boundaries, in input order; a record whose
    id another file used first is quarantined there; blank lines count in the batch of the row after
    them (the last batch for those at the end). Workers read the files, the driver plans from the ids."""
    (tmp_path / "a.jsonl").write_bytes(_lines(b"", {"id": "x", "text": "one"}, b"{bad", {"text": "two"}, b""))
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(_lines({"id": "x", "text": "again"}, b"", {"text": "3"}, b"")))
    pipeline = load_pipeline(write_pipeline(tmp_path, [{"path": "a.jsonl"}, {"path": "b.jsonl.gz"}], []))
    batches = list(read_batches(resolve_inputs(pipeline), batch_size=batch_size, max_record_bytes=1000))
    rows = 5  # input rows: one, {bad, two, again (duplicate id), 3
    assert [b.index for b in batches] == list(range(len(batches)))
    assert [b.rows_in for b in batches] == [min(batch_size, rows - s) for s in range(0, rows, batch_size)] + (
        [0] if rows % batch_size == 0 else []
    )
    before = [0, 3, 4, 5]  # the blank lines come before these input rows (5: after the last one)
    assert [b.skipped.get("blank_line", 0) for b in batches] == [
        sum(1 for g in before if g // batch_size == b.index) for b in batches
    ]
    records = pl.concat([b.records for b in batches])
    assert records["text"].to_list() == ["one", "two", "3"]
    rejected = pl.concat([b.quarantined for b in batches])
    assert rejected.select("src_file", "src_row", "rule").rows() == [
        ("a.jsonl", 3, "malformed_json"),
        ("b.jsonl.gz", 1, "duplicate_id"),
    ]
    assert json.loads(rejected["raw"][1]) == {"id": "x", "text": "again"}
