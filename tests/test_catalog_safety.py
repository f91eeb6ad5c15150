"""The catalog under hostile conditions: concurrent writers, a catalog folder that cannot be written,
manifests of the wrong shape, and tampered rejected/ files. Output folders are built by hand (no run),
so every test is fast."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from curate.catalog import Catalog, file_problems
from curate.cli import app
from curate.errors import CatalogError
from curate.io.shards import describe_file, write_json, write_parquet
from tests.catalog_writer import register_many
from tests.conftest import write_pipeline

runner = CliRunner()
VERSION = "abcdef123456"


def _manifest(name: str, version: str, created: str = "2026-01-01T00:00:00Z") -> dict:
    return {"name": name, "version": version, "created": created, "status": "ok", "rows": {"kept": 1}}


def _publish(out: Path, name: str = "base", version: str = VERSION) -> dict:
    """An output folder as a run leaves it: data/ and rejected/ Parquet files, report.json and a manifest
    listing the files; registered in the catalog."""
    write_parquet(pl.DataFrame({"id": ["a"], "text": ["kept row"]}), out / "data" / "part-00000.parquet")
    rejected = pl.DataFrame({"id": ["r1", "r2"], "stage": ["quality"] * 2, "rule": ["gopher_min_words"] * 2})
    write_parquet(
        rejected.with_columns(reason=pl.lit("too short")), out / "rejected" / "quality" / "part-00000.parquet"
    )
    write_json(out / "report.json", {})
    files = [describe_file(p, out) for p in sorted(out.rglob("*.parquet"))]
    manifest = {**_manifest(name, version), "files": files, "record_columns": ["id", "text"]}
    write_json(out / "manifest.json", manifest)
    Catalog().register(out, manifest)
    return manifest


def _damage(out: Path, change) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    change(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))


# --- lost updates -----------------------------------------------------------------------------------
def test_concurrent_processes_registering_one_version_keep_every_location(tmp_path):
    spawn = multiprocessing.get_context("spawn")
    writers = [
        spawn.Process(target=register_many, args=(str(tmp_path), "shared", VERSION, who, 50)) for who in range(2)
    ]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
    assert [w.exitcode for w in writers] == [0, 0]
    entry = Catalog(tmp_path).exact(f"shared@{VERSION}")
    expected = {str((tmp_path / f"out-{who}-{i}").resolve()) for who in range(2) for i in range(50)}
    assert {loc["path"] for loc in entry.locations} == expected and len(entry.locations) == 100
    leftovers = [p.name for p in (tmp_path / "catalog" / "shared").iterdir() if p.suffix != ".json"]
    assert leftovers == []  # entries are written through a temp file and renamed: none is left behind


def test_gc_keeps_a_location_registered_while_it_was_looking(tmp_path, monkeypatch):
    catalog = Catalog()
    catalog.register(tmp_path / "gone", _manifest("base", VERSION))  # no manifest there: gone
    looked = catalog.location_states

    def meanwhile(entry):  # other runs register after gc read the entry: a new folder, and the gone one again
        states = looked(entry)
        catalog.register(tmp_path / "new", _manifest("base", VERSION))
        catalog.register(tmp_path / "gone", _manifest("base", VERSION, created="2026-02-01T00:00:00Z"))
        return states

    monkeypatch.setattr(catalog, "location_states", meanwhile)
    assert [why for _, _, why in catalog.gc()] == ["gone"]
    kept = [(loc["path"], loc["created"]) for loc in catalog.exact(f"base@{VERSION}").locations]
    assert kept == [
        (str((tmp_path / "new").resolve()), "2026-01-01T00:00:00Z"),
        (str((tmp_path / "gone").resolve()), "2026-02-01T00:00:00Z"),
    ]


def test_a_writer_waits_for_the_lock_and_gives_up_with_a_clear_error(curate_home, monkeypatch):
    import curate.catalog
    from curate.io.outputs import Lock

    catalog = Catalog()
    catalog.register(curate_home / "a", _manifest("base", VERSION))
    monkeypatch.setattr(curate.catalog, "LOCK_WAIT_S", 0.3)
    with Lock(catalog.root / ".base.lock", "held by another process"):  # another open file: flock conflicts
        with pytest.raises(CatalogError, match="locked for over 0 s"):
            catalog.register(curate_home / "b", _manifest("base", VERSION))
    catalog.register(curate_home / "b", _manifest("base", VERSION))  # released: the write goes through
    assert len(catalog.entries("base")[0].locations) == 2


# --- a catalog that cannot be written ---------------------------------------------------------------
def test_a_catalog_folder_that_cannot_be_written_is_refused_before_work_and_at_register(curate_home):
    (curate_home / "catalog").write_text("not a folder")  # mkdir fails, as on a read-only mount
    catalog = Catalog()
    with pytest.raises(CatalogError) as before:
        catalog.check_writable("base")
    assert f"cannot write the catalog folder {curate_home / 'catalog'}" in str(before.value)
    assert f"CURATE_HOME={curate_home}" in str(before.value)
    with pytest.raises(CatalogError, match="cannot write the catalog folder"):
        catalog.register(curate_home / "out", _manifest("base", VERSION))


def test_check_writable_creates_a_missing_catalog_folder(tmp_path):
    catalog = Catalog(tmp_path / "new_home")
    catalog.check_writable("base")
    assert catalog.root.is_dir() and list(catalog.root.iterdir()) == []  # the probe is removed


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_catalog_folder_is_refused(curate_home):
    (curate_home / "catalog").mkdir()
    (curate_home / "catalog").chmod(0o555)
    try:
        with pytest.raises(CatalogError, match="Permission denied"):
            Catalog().check_writable()
    finally:
        (curate_home / "catalog").chmod(0o755)


# --- manifests of the wrong shape -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m["files"][0].pop("sha256"), "files[0].sha256: expected 64 lowercase hex digits, got nothing"),
        (lambda m: m["files"][0].update(bytes="12"), "files[0].bytes: expected the file's size, a whole number"),
        (lambda m: m["files"][0].pop("path"), "files[0].path: expected a file path relative to the output folder"),
        (lambda m: m.update(files={"a": 1}), "files: expected a list of {path, bytes, sha256}"),
        (lambda m: m["files"].append("data/x.parquet"), "files[2]: expected a mapping with path, bytes and sha256"),
        (lambda m: m["files"][0].update(path="../../etc/passwd"), "'../../etc/passwd' leaves the output folder"),
        (lambda m: m["files"][0].update(path="/etc/passwd"), "'/etc/passwd' leaves the output folder"),
    ],
)
def test_a_malformed_manifest_is_a_clear_error_naming_the_file_and_the_entry(tmp_path, change, expected):
    out = tmp_path / "out"
    _publish(out)
    _damage(out, change)
    with pytest.raises(CatalogError) as info:
        Catalog().resolve(f"base@{VERSION}")
    assert f"{out / 'manifest.json'}: " in str(info.value) and expected in str(info.value)
    entry = Catalog().exact(f"base@{VERSION}")
    with pytest.raises(CatalogError, match="damaged manifest"):
        entry.verify()
    listed = runner.invoke(app, ["shards", "list"], terminal_width=250)
    assert listed.exit_code == 0 and "(damaged)" in listed.output


def test_file_problems_report_a_malformed_entry_without_opening_anything(tmp_path):
    problems = list(file_problems(tmp_path, [{"path": "../x", "bytes": 1, "sha256": "0" * 64}, {"path": "data/y"}]))
    assert problems[0].startswith("malformed manifest entry files[0].path: '../x' leaves the output folder")
    assert problems[1].startswith("malformed manifest entry files[1].bytes")


def test_a_shards_input_with_a_malformed_manifest_fails_with_exit_2_and_no_traceback(tmp_path):
    out = tmp_path / "out"
    _publish(out)
    _damage(out, lambda m: m["files"][0].pop("sha256"))
    (tmp_path / "down").mkdir()
    pipeline = write_pipeline(tmp_path / "down", [{"path": f"shards://base@{VERSION}"}], [], name="reuse")
    result = runner.invoke(app, ["run", str(pipeline), "-o", str(tmp_path / "reuse_out"), "-q"])
    assert result.exit_code == 2, result.output
    assert "files[0].sha256" in result.output and "Traceback" not in result.output
    assert not isinstance(result.exception, KeyError)


# --- rejected rows are verified like the data ---------------------------------------------------------
def test_rejected_rows_are_checked_against_the_manifest_and_a_forged_file_is_refused(tmp_path):
    out = tmp_path / "out"
    _publish(out)
    for where in (str(out), f"base@{VERSION}"):
        ok = runner.invoke(app, ["rejected", where], terminal_width=200)
        assert ok.exit_code == 0 and "2 rejected rows" in ok.output, ok.output
    # a file the manifest does not list is never read
    write_parquet(
        pl.DataFrame({"id": ["x"], "stage": ["quality"], "rule": ["forged"]}), out / "rejected" / "extra.parquet"
    )
    assert "2 rejected rows" in runner.invoke(app, ["rejected", str(out)], terminal_width=200).output
    # a listed file that was replaced is refused, with the way to check the whole version
    forged = pl.DataFrame({"id": ["x"], "stage": ["quality"], "rule": ["forged"], "reason": ["planted"]})
    write_parquet(forged, out / "rejected" / "quality" / "part-00000.parquet")
    for where in (str(out), f"base@{VERSION}"):
        refused = runner.invoke(app, ["rejected", where, "--export", str(tmp_path / "x.jsonl")], terminal_width=200)
        assert refused.exit_code == 2, refused.output
        assert "modified: rejected/quality/part-00000.parquet" in refused.output
        assert f"curate shards verify base@{VERSION}" in refused.output
        assert not (tmp_path / "x.jsonl").exists()
