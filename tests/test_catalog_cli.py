"""Catalog round trip (shards:// inputs), verify, and the CLI commands users type."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from curate.catalog import Catalog
from curate.cli import app
from curate.errors import CatalogError
from tests.conftest import run, write_pipeline

runner = CliRunner()


@pytest.fixture
def curated(tmp_path):
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"id": f"r{i}", "text": f"Record {i} about the clinic budget."}) + "\n" for i in range(40))
    )
    path = write_pipeline(tmp_path, [{"path": "in.jsonl"}], [{"stage": "normalize"}], name="base")
    return run(path, tmp_path / "base_out")


def test_shards_reference_feeds_another_pipeline(tmp_path, curated):
    ref = f"shards://base@{curated.manifest['version']}"
    downstream = tmp_path / "down"
    downstream.mkdir()
    path = write_pipeline(downstream, [{"path": ref}], [], name="reuse")
    result = run(path, tmp_path / "reuse_out")
    got = pl.read_parquet(tmp_path / "reuse_out" / "data" / "*.parquet")
    assert sorted(got["id"]) == sorted(f"r{i}" for i in range(40))
    assert set(got["src_file"]) == {f"{ref}/part-00000.parquet"}
    assert result.manifest["inputs"][0]["sha256"] == curated.manifest["files"][0]["sha256"]
    latest = write_pipeline(downstream, [{"path": "shards://base@latest"}], [], name="reuse2")
    assert run(latest, tmp_path / "latest_out").manifest["rows"]["kept"] == 40


def test_unknown_reference_is_a_clear_error(curated):
    with pytest.raises(CatalogError, match="no shards named 'nope'.*known: base"):
        Catalog().resolve("shards://nope@latest")
    with pytest.raises(CatalogError, match="no version matching 'ffff'"):
        Catalog().resolve("base@ffff")


def test_verify_detects_modified_and_missing_files(curated):
    entry = Catalog().resolve("base@latest")
    assert entry.verify() == []
    shard = curated.out_dir / "data" / "part-00000.parquet"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert entry.verify() == ["modified: data/part-00000.parquet (sha256 differs from the manifest)"]
    result = runner.invoke(app, ["shards", "verify", "base"])
    assert result.exit_code == 1 and "modified: data/part-00000.parquet" in result.output
    shard.unlink()
    assert entry.verify() == ["missing: data/part-00000.parquet"]
    (curated.out_dir / "data" / "part-00009.parquet").write_bytes(b"x")
    assert "unexpected: data/part-00009.parquet (not in the manifest)" in entry.verify()


def test_cli_shards_list_show_path_verify(curated):
    version = curated.manifest["version"]
    listed = runner.invoke(app, ["shards", "list"])
    assert listed.exit_code == 0 and "base" in listed.output and version in listed.output
    shown = runner.invoke(app, ["shards", "show", f"base@{version}"])
    assert shown.exit_code == 0 and "'kept': 40" in shown.output
    path = runner.invoke(app, ["shards", "path", "shards://base@latest"])
    assert path.exit_code == 0 and path.output.strip() == str(curated.out_dir.resolve())
    ok = runner.invoke(app, ["shards", "verify", "base"])
    assert ok.exit_code == 0 and "ok" in ok.output


def test_cli_run_prints_summary_and_locations(tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "hello world, this is fine."}) + "\n" + "{broken\n")
    path = write_pipeline(tmp_path, [{"path": "in.jsonl"}], [{"stage": "normalize"}], name="cli")
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "o"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "input 2 → kept 1, dropped 0, quarantined 1" in result.output
    assert "read: malformed_json 1" in result.output
    assert "report:" in result.output and "catalog:  shards://cli@" in result.output
    again = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "o"), "--quiet"])
    assert "cache hit" in again.output


def test_cli_run_input_override_and_name(tmp_path):
    (tmp_path / "other.jsonl").write_text(json.dumps({"text": "from the override"}) + "\n")
    path = write_pipeline(tmp_path, [{"path": "missing.jsonl"}], [], name="p")
    result = runner.invoke(
        app, ["run", str(path), "-i", str(tmp_path / "other.jsonl"), "-o", str(tmp_path / "o"), "-n", "mine", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert Catalog().resolve("mine@latest").rows == 1


def test_cli_validate_and_errors_exit_2(tmp_path):
    good = write_pipeline(tmp_path, [{"path": "x.jsonl"}])
    no_input = runner.invoke(app, ["validate", str(good)])  # validate checks the inputs can be read
    assert no_input.exit_code == 2 and "inputs[0]: input file not found" in no_input.output
    (tmp_path / "x.jsonl").write_text(json.dumps({"text": "a record"}) + "\n")
    ok = runner.invoke(app, ["validate", str(good)])
    assert ok.exit_code == 0 and "stages: normalize, langid, quality" in ok.output
    (tmp_path / "bad").mkdir()
    bad = write_pipeline(tmp_path / "bad", [{"path": "x.jsonl"}], [{"stage": "dedupe"}])
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2 and "unknown stage 'dedupe'" in result.output
    (tmp_path / "x.jsonl").unlink()
    missing = runner.invoke(app, ["run", str(good), "-q"])
    assert missing.exit_code == 2 and "input file not found" in missing.output


def test_help_explains_options():
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--input", "--out", "--name", "--workers", "--force"):
        assert option in result.output


def test_report_is_self_contained_and_rerenders(demo_run):
    html_path = demo_run.out_dir / "report.html"
    html = html_path.read_text()
    assert "<svg" in html and "Funnel per stage" in html
    assert "src=" not in html and "<link" not in html and "@import" not in html
    report = json.loads((demo_run.out_dir / "report.json").read_text())
    assert [s["stage"] for s in report["funnel"]] == ["read", "normalize", "langid", "quality"]
    assert sum(report["lengths"]["after"]) == demo_run.manifest["rows"]["kept"]
    assert sum(report["lengths"]["before"]) == demo_run.manifest["accounting"][1]["rows_in"]
    assert set(report["languages"]["kept"]) == {"en", "vi"}
    html_path.unlink()
    result = runner.invoke(app, ["report", str(demo_run.out_dir)])
    assert result.exit_code == 0 and html_path.read_text() == html


def test_report_examples_never_carry_record_text(demo_run):
    report = (demo_run.out_dir / "report.json").read_text()
    rejected = pl.read_parquet(demo_run.out_dir / "rejected" / "quality" / "*.parquet")
    texts = [t for t in rejected["text"].drop_nulls().to_list() if len(t) >= 20][:50]  # "ok" is also a status
    assert texts
    for text in texts:
        assert text[:60] not in report


def test_sensitivity_table_counts_what_each_criterion_alone_removed(demo_run):
    # The demo run ends with quality, so relaxing one quality rule keeps exactly the rows that
    # failed that rule alone.
    report = json.loads((demo_run.out_dir / "report.json").read_text())
    rows = {r["criterion"]: r for r in report["sensitivity"]}
    rejected = pl.read_parquet(demo_run.out_dir / "rejected" / "quality" / "*.parquet")
    only = rejected.filter(pl.col("quality_failed").list.len() == 1)
    expected = dict(only.group_by(pl.col("quality_failed").list.first()).len().iter_rows())
    hit = set(rejected["quality_failed"].explode().to_list())
    assert {c for c in rows if c.startswith("quality rule")} == {f"quality rule {r}" for r in hit}
    for rule in hit:
        assert rows[f"quality rule {rule}"]["more_records"] == expected.get(rule, 0)
        assert rows[f"quality rule {rule}"]["lost"] == 0
    langid = rows["langid allowed languages"]
    assert 0 <= langid["more_records"] <= demo_run.manifest["accounting"][2]["reasons"]["lang_not_allowed"]
    assert abs(sum(langid["label_mix_without"].values()) - 1.0) < 1e-3


def test_outputs_on_object_storage_publish_register_and_feed_other_pipelines(tmp_path, curated, curate_home):
    """output.dir as a URL (fsspec's in-memory filesystem stands in for s3:// or gs://): the same files
    and manifest as a local run, uploaded with the manifest last; the catalog points at the URL, and
    shards:// inputs, the trainer's loader, verify and the cache all read through it."""
    import fsspec

    from curate.train.data import TrainDataError, load

    fs = fsspec.filesystem("memory")
    url = f"memory://bucket/{tmp_path.name}/base"
    path = write_pipeline(
        tmp_path, [{"path": "in.jsonl"}], [{"stage": "normalize"}], name="remote", output={"dir": url, "shard_rows": 16}
    )
    result = run(path, None)
    assert result.out_dir == url and not result.cached
    manifest = json.loads(fs.cat_file(f"{url}/manifest.json"))
    assert manifest["version"] == result.manifest["version"] and manifest["rows"]["kept"] == 40
    assert sorted(f["path"] for f in manifest["files"] if f["path"].startswith("data/")) == [
        f"data/part-0000{i}.parquet" for i in range(3)
    ]
    assert fs.isfile(f"{url}/report.html") and not (tmp_path / "out").exists()
    # the checkpoints went there and were removed; the run's lock file stays (removing it would race)
    assert [p.suffix for p in (curate_home / "work").iterdir()] == [".lock"]

    entry = Catalog().resolve("remote@latest")
    assert entry.path == url and entry.verify() == []
    assert sorted(entry.read(["id"])["id"]) == sorted(f"r{i}" for i in range(40))
    down = tmp_path / "down"
    down.mkdir()
    reuse = run(write_pipeline(down, [{"path": "shards://remote@latest"}], [], name="reuse"), tmp_path / "reuse_out")
    assert reuse.manifest["rows"]["kept"] == 40
    assert reuse.manifest["inputs"][0]["path"] == f"{url}/data/part-00000.parquet"

    assert run(path, None).cached  # checked by size where the outputs are remote
    fs.pipe_file(f"{url}/data/part-00001.parquet", b"truncated")
    assert entry.verify() == ["modified: data/part-00001.parquet (sha256 differs from the manifest)"]
    assert not run(path, None).cached and Catalog().resolve("remote@latest").verify() == []
    with pytest.raises(TrainDataError, match="no `split` column"):
        load("shards://remote@latest")  # read through the URL, refused only for want of a split stage


def test_cli_rejected_lists_filters_and_exports_every_stage_in_one_table(demo_run, tmp_path):
    result = runner.invoke(app, ["rejected", str(demo_run.out_dir), "--limit", "3"], terminal_width=200)
    assert result.exit_code == 0, result.output
    total = sum(a["dropped"] + a["quarantined"] for a in demo_run.manifest["accounting"])
    assert f"{total:,} rejected rows" in result.output
    quality = runner.invoke(
        app,
        [
            "rejected",
            str(demo_run.out_dir),
            "--stage",
            "quality",
            "--rule",
            "gopher_min_words",
            "--export",
            str(tmp_path / "short.parquet"),
        ],
    )
    assert quality.exit_code == 0, quality.output
    rows = pl.read_parquet(tmp_path / "short.parquet")
    counts = next(a for a in demo_run.manifest["accounting"] if a["stage"] == "quality")["reasons"]
    assert rows.height == counts["gopher_min_words"] and set(rows["rule"]) == {"gopher_min_words"}
    again = runner.invoke(app, ["rejected", str(demo_run.out_dir), "--export", str(tmp_path / "short.parquet")])
    assert again.exit_code == 2 and pl.read_parquet(tmp_path / "short.parquet").height == rows.height  # not overwritten
    html = (demo_run.out_dir / "report.html").read_text()
    assert "curate rejected demo@" in html and "--rule gopher_min_words" in html


def _wide(monkeypatch):
    from rich.console import Console

    import curate.cli

    monkeypatch.setattr(curate.cli, "out", Console(width=250))


def test_shards_list_shows_gone_locations_and_gc_forgets_them_without_touching_files(tmp_path, curated, monkeypatch):
    import shutil

    _wide(monkeypatch)  # the table's paths on one line each
    version = curated.manifest["version"]
    path = write_pipeline(tmp_path, [{"path": "in.jsonl"}], [{"stage": "normalize"}], name="base")
    run(path, tmp_path / "second_out")  # the same version, published to a second folder
    assert len(Catalog().exact(f"base@{version}").locations) == 2
    shutil.rmtree(tmp_path / "second_out")
    listed = runner.invoke(app, ["shards", "list"], terminal_width=250)
    assert (
        "second_out (gone)" in listed.output
        and "base_out (ok)" in listed.output
        and "curate shards gc" in listed.output
    )
    dry = runner.invoke(app, ["shards", "gc", "--dry-run"], terminal_width=250)
    assert "would forget" in dry.output and len(Catalog().exact(f"base@{version}").locations) == 2
    gc = runner.invoke(app, ["shards", "gc"], terminal_width=250)
    assert gc.exit_code == 0 and f"forgot shards://base@{version}" in gc.output
    entry = Catalog().exact(f"base@{version}")
    assert [loc["path"] for loc in entry.locations] == [str((tmp_path / "base_out").resolve())]
    assert (tmp_path / "base_out" / "manifest.json").is_file()  # gc forgets, never deletes
    assert runner.invoke(app, ["shards", "gc"]).output.startswith("nothing to forget")


def test_shards_rm_forgets_a_version_and_deletes_only_its_own_files_when_asked(tmp_path, curated, monkeypatch):
    _wide(monkeypatch)
    version = curated.manifest["version"]
    out = tmp_path / "base_out"
    kept = runner.invoke(app, ["shards", "rm", f"base@{version[:8]}"])
    assert kept.exit_code == 0 and "its files are untouched" in kept.output
    assert (out / "manifest.json").is_file() and not Catalog().entries("base")
    assert runner.invoke(app, ["shards", "rm", "base@latest"]).exit_code == 2  # a version must be named
    again = run(write_pipeline(tmp_path, [{"path": "in.jsonl"}], [{"stage": "normalize"}], name="base"), out)
    (out / "notes.txt").write_text("mine")  # a file the run did not write
    deleted = runner.invoke(app, ["shards", "rm", f"base@{version}", "--files"], terminal_width=250)
    assert deleted.exit_code == 0, deleted.output
    assert "kept in" in deleted.output and "notes.txt" in deleted.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # every published file gone, the user's file kept
    assert not Catalog().entries("base") and again.manifest["version"] == version


def test_shards_keep_survives_deleting_the_output_folder(tmp_path, curated, monkeypatch):
    import shutil

    _wide(monkeypatch)
    ref = f"base@{curated.manifest['version']}"
    result = runner.invoke(app, ["shards", "keep", ref], terminal_width=250)
    assert result.exit_code == 0 and "hard-linked, 0 bytes copied" in result.output, result.output
    shutil.rmtree(tmp_path / "base_out")
    entry = Catalog().resolve("base@latest")
    assert "store" in entry.path.parts and entry.verify() == []
    assert entry.read(["id"]).height == 40
