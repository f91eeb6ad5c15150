"""Publishing never touches what the run did not write: ownership, locks, atomic switch, immutable versions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from curate.catalog import Catalog, file_problems
from curate.cli import app
from curate.errors import CatalogError, ConfigError
from curate.io import outputs
from curate.io.outputs import OutputError, output_lock
from tests.conftest import run, write_pipeline

runner = CliRunner()


def _records(folder: Path, n: int = 30, name: str = "in.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        "".join(
            json.dumps({"id": f"r{i}", "text": f"Record {i} about the clinic budget for this year."}) + "\n"
            for i in range(n)
        )
    )
    return path


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _intact(out: Path) -> str:
    """The version a folder holds, asserting its manifest matches every file beside it."""
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(file_problems(out, manifest["files"])) == []
    listed = {f["path"] for f in manifest["files"]}
    for folder in ("data", "rejected", "signatures"):
        for p in (out / folder).rglob("*.parquet") if (out / folder).is_dir() else []:
            assert p.relative_to(out).as_posix() in listed
    return manifest["version"]


def test_output_folder_that_is_the_input_folder_is_refused_and_nothing_is_deleted(tmp_path):
    corpus = tmp_path / "corpus"
    _records(corpus / "data", name="a.jsonl")
    before = _tree(corpus)
    path = write_pipeline(tmp_path, [{"path": "corpus"}], [{"stage": "normalize"}], output={"dir": "corpus"})
    result = runner.invoke(app, ["run", str(path), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "holds the input" in " ".join(result.output.split())
    assert _tree(corpus) == before
    with pytest.raises(OutputError, match="holds the input"):
        run(path, corpus)
    with pytest.raises(OutputError, match="lies inside the input folder"):
        run(path, corpus / "out")  # every rerun would read its own output back
    assert _tree(corpus) == before


def test_home_root_and_catalog_are_refused(tmp_path, monkeypatch, curate_home):
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "data" / "notes.jsonl").write_text("mine\n")
    monkeypatch.setenv("HOME", str(home))
    _records(tmp_path / "src")
    path = write_pipeline(tmp_path / "src", [{"path": "in.jsonl"}], [{"stage": "normalize"}])
    for target, message in (
        (home, "home folder"),
        (Path("/"), "filesystem root"),
        (curate_home / "catalog", "catalog"),
        (curate_home, "catalog"),
    ):
        with pytest.raises(OutputError, match=message):
            run(path, target)
    assert (home / "data" / "notes.jsonl").read_text() == "mine\n" and sorted(p.name for p in home.iterdir()) == [
        "data"
    ]
    result = runner.invoke(app, ["run", str(path), "--out", "~", "--quiet"])
    assert result.exit_code == 2 and "home folder" in result.output


def test_a_folder_curate_did_not_write_is_refused_before_any_work(tmp_path):
    _records(tmp_path / "src")
    path = write_pipeline(tmp_path / "src", [{"path": "in.jsonl"}], [{"stage": "normalize"}])
    theirs = tmp_path / "theirs"
    (theirs / "data").mkdir(parents=True)
    (theirs / "data" / "keep.jsonl").write_text("{}\n")
    (theirs / "report.html").write_text("their report")
    before = _tree(theirs)
    with pytest.raises(OutputError, match="curate did not write"):
        run(path, theirs)
    assert _tree(theirs) == before and not (theirs / "_work").exists()
    # a manifest that is not a curate manifest does not make a folder curate's
    (theirs / "manifest.json").write_text("not json")
    with pytest.raises(OutputError, match="not a readable curate manifest"):
        run(path, theirs)
    (theirs / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        run(path, theirs / "file")


def test_files_a_user_adds_to_an_output_folder_are_never_replaced(tmp_path):
    _records(tmp_path / "src")
    path = write_pipeline(tmp_path / "src", [{"path": "in.jsonl"}], [{"stage": "normalize"}])
    out = tmp_path / "out"
    first = run(path, out)
    assert (out / outputs.MARKER).is_file()
    (out / "notes.txt").write_text("my notes")
    (out / "data" / "extra.parquet").write_bytes(b"mine")
    with pytest.raises(OutputError, match=r"notes\.txt.*|data/extra\.parquet"):
        run(path, out, force=True)
    assert (out / "notes.txt").read_text() == "my notes" and (out / "data" / "extra.parquet").read_bytes() == b"mine"
    (out / "notes.txt").unlink()
    (out / "data" / "extra.parquet").unlink()
    assert run(path, out, force=True).manifest["version"] == first.manifest["version"]


def test_a_folder_by_the_staging_name_that_curate_did_not_write_is_refused_and_kept(tmp_path):
    _records(tmp_path / "src")
    path = write_pipeline(tmp_path / "src", [{"path": "in.jsonl"}], [{"stage": "normalize"}])
    theirs = tmp_path / ".out.curate-staging"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="curate did not write it"):
        run(path, tmp_path / "out")
    assert (theirs / "notes.txt").read_text() == "mine" and not (tmp_path / "out" / "data").exists()


def test_an_owned_folder_with_a_damaged_manifest_is_republished(tmp_path):
    _records(tmp_path / "src")
    path = write_pipeline(tmp_path / "src", [{"path": "in.jsonl"}], [{"stage": "normalize"}])
    out = tmp_path / "out"
    first = run(path, out)
    (out / "manifest.json").write_text("{ broken")
    again = run(path, out)
    assert not again.cached and _intact(out) == first.manifest["version"]


def _two_versions(tmp_path: Path):
    """A published version V1 in `out`, and a pipeline that makes another version V2."""
    _records(tmp_path / "src", 30)
    v1 = write_pipeline(tmp_path / "src", [{"path": "in.jsonl"}], [{"stage": "normalize"}], name="ds")
    out = tmp_path / "out"
    old = run(v1, out)
    (tmp_path / "src2").mkdir()
    _records(tmp_path / "src2", 20)
    v2 = write_pipeline(tmp_path / "src2", [{"path": "in.jsonl"}], [{"stage": "normalize"}], name="ds")
    return out, old, v2


@pytest.mark.parametrize("crash", ["while-staging", "before-switch", "after-switch", "between-renames"])
def test_a_crash_at_any_publish_step_leaves_one_complete_version_and_a_consistent_catalog(tmp_path, monkeypatch, crash):
    out, old, v2 = _two_versions(tmp_path)
    old_ref = f"ds@{old.manifest['version']}"
    with monkeypatch.context() as m:
        if crash == "while-staging":
            import curate.engine as engine

            real = engine.write_html
            m.setattr(
                engine, "write_html", lambda *a, **k: (real(*a, **k), (_ for _ in ()).throw(KeyboardInterrupt()))[0]
            )
        elif crash == "before-switch":
            m.setattr(outputs, "_exchange", lambda a, b: (_ for _ in ()).throw(KeyboardInterrupt()))
        elif crash == "after-switch":
            real_rmtree = shutil.rmtree
            m.setattr(
                outputs.shutil,
                "rmtree",
                lambda p, *a, **k: (
                    (_ for _ in ()).throw(KeyboardInterrupt()) if ".curate-" in str(p) else real_rmtree(p, *a, **k)
                ),
            )
        else:  # a filesystem without RENAME_EXCHANGE: two renames, killed between them
            real_rename = outputs.os.rename
            calls = []

            def rename(a, b):
                calls.append(a)
                if len(calls) == 2:
                    raise KeyboardInterrupt()
                real_rename(a, b)

            m.setattr(outputs, "_exchange", lambda a, b: False)
            m.setattr(outputs.os, "rename", rename)
        with pytest.raises(KeyboardInterrupt):
            run(v2, out)
    if out.exists():
        held = _intact(out)
        if held == old.manifest["version"]:  # the old version is still served, verified
            assert Catalog().resolve(old_ref).read()["id"].len() == 30
        else:  # the folder holds the new version: the old reference refuses it rather than serving it
            with pytest.raises(CatalogError, match="now holds version"):
                Catalog().resolve(old_ref)
    else:
        assert crash == "between-renames"  # absent for an instant, never mixed; the next run repairs it
    new = run(v2, out)  # the next run cleans up and publishes
    assert _intact(out) == new.manifest["version"] != old.manifest["version"]
    assert sorted(p.name for p in tmp_path.iterdir() if ".curate-" in p.name) == [".out.curate-lock"]
    assert Catalog().resolve("ds@latest").version == new.manifest["version"]


def test_a_second_run_into_a_locked_folder_is_refused_and_changes_nothing(tmp_path):
    _records(tmp_path / "src")
    path = write_pipeline(tmp_path / "src", [{"path": "in.jsonl"}], [{"stage": "normalize"}])
    out = tmp_path / "out"
    run(path, out)
    before = _tree(out)
    with output_lock(out):  # another run holds the folder
        with pytest.raises(OutputError, match="in use by another curate run"):
            run(path, out, force=True)
        result = runner.invoke(app, ["run", str(path), "--out", str(out), "--quiet", "--force"])
        assert result.exit_code == 2 and "in use by another curate run" in result.output
    assert _tree(out) == before
    assert run(path, out, force=True).manifest["rows"]["kept"] == 30  # released: runs again


def _failing_gate(folder: Path) -> Path:
    rules = folder / "gates.yaml"
    rules.write_text(yaml.safe_dump({"expectations": [{"length": {"min": 10_000, "max": 200_000}}]}))
    return rules


def test_a_gate_failed_rerun_into_a_folder_does_not_change_what_an_older_reference_serves(tmp_path):
    out, old, _ = _two_versions(tmp_path)
    v1 = f"ds@{old.manifest['version']}"
    copy = tmp_path / "copy"
    run(tmp_path / "src" / "pipeline.yaml", copy)  # the same version published in a second folder
    assert {loc["path"] for loc in Catalog().resolve(v1).locations} == {str(out.resolve()), str(copy.resolve())}
    stricter = write_pipeline(
        tmp_path / "src2",
        [{"path": "in.jsonl"}],
        [{"stage": "normalize"}],
        name="ds",
        gates=[{"rules": str(_failing_gate(tmp_path))}],
    )
    failed = run(stricter, out)
    assert failed.failed_gates and failed.manifest["version"] != old.manifest["version"]
    entry = Catalog().resolve(v1)  # still served, from the folder that still holds it
    assert entry.path == copy.resolve() and entry.read().height == 30
    assert Catalog().resolve("ds@latest").version == old.manifest["version"]
    shutil.rmtree(copy)
    with pytest.raises(CatalogError, match="cannot be used as input"):
        Catalog().resolve(v1)
    with pytest.raises(CatalogError, match="no usable version"):
        Catalog().resolve("ds@latest")


def test_deleting_one_copy_of_a_version_falls_back_to_another(tmp_path):
    _records(tmp_path / "src")
    path = write_pipeline(tmp_path / "src", [{"path": "in.jsonl"}], [{"stage": "normalize"}], name="ds")
    first, second = run(path, tmp_path / "a"), run(path, tmp_path / "b")
    assert first.manifest["version"] == second.manifest["version"]
    shutil.rmtree(tmp_path / "b")
    entry = Catalog().resolve(f"ds@{first.manifest['version']}")
    assert entry.path == (tmp_path / "a").resolve() and entry.read().height == 30


def test_a_tampered_shard_is_refused_by_every_consumer(tmp_path):
    _records(tmp_path / "src")
    path = write_pipeline(tmp_path / "src", [{"path": "in.jsonl"}], [{"stage": "normalize"}], name="ds")
    out = tmp_path / "out"
    base = run(path, out)
    shard = out / "data" / "part-00000.parquet"
    df = pl.read_parquet(shard)
    df.with_columns(pl.lit("tampered text").alias("text")).write_parquet(shard)
    ref = f"shards://ds@{base.manifest['version']}"
    with pytest.raises(CatalogError, match="refusing to read.*modified: data/part-00000.parquet"):
        Catalog().resolve(ref).read()
    (tmp_path / "down").mkdir()
    downstream = write_pipeline(tmp_path / "down", [{"path": ref}], [], name="reuse")
    with pytest.raises(CatalogError, match="modified"):
        run(downstream, tmp_path / "down_out")
    from curate.train.data import TrainDataError, load

    with pytest.raises((CatalogError, TrainDataError), match="modified"):
        load(ref)


@pytest.mark.parametrize("bad", ["../../x", "/abs/x", "a/b", ".hidden", "a..b"])
def test_catalog_names_cannot_leave_the_catalog(tmp_path, bad, curate_home):
    _records(tmp_path / "src")
    path = write_pipeline(tmp_path / "src", [{"path": "in.jsonl"}], [{"stage": "normalize"}])
    with pytest.raises(ConfigError, match="catalog name"):
        run(path, tmp_path / "out", name=bad)
    assert not (tmp_path / "out").exists()
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "--name", bad, "--quiet"])
    assert result.exit_code == 2
    assert not any(p.suffix == ".json" for p in curate_home.rglob("*") if "catalog" in p.parts)


def test_two_concurrent_runs_into_one_folder_one_refuses_and_none_corrupts(tmp_path):
    import os
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    pipeline = write_pipeline(tmp_path, [{"demo": {"records": 4000, "seed": 9}}], name="race", batch_size=150)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "curate", "run", str(pipeline), "-q", "--workers", "1", "--out", str(out)]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not any(out.glob("_work/*/seg-00/*/done.json")) and first.poll() is None:
        time.sleep(0.02)
    second = subprocess.run(cmd + ["--force"], env=env, capture_output=True, text=True)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.returncode == 2 and "in use by another curate run" in " ".join(second.stderr.split()), second.stderr
    version = _intact(out)
    assert Catalog().resolve("race@latest").version == version


def test_verify_of_a_folder_whose_manifest_is_gone_is_an_error_not_a_traceback(tmp_path):
    _records(tmp_path / "src")
    path = write_pipeline(tmp_path / "src", [{"path": "in.jsonl"}], [{"stage": "normalize"}], name="ds")
    result = run(path, tmp_path / "out")
    (tmp_path / "out" / "manifest.json").unlink()
    verify = runner.invoke(app, ["shards", "verify", f"ds@{result.manifest['version']}"])
    assert verify.exit_code == 2 and "no readable manifest" in verify.output
    assert isinstance(verify.exception, SystemExit)
