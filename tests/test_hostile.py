"""Hostile input and misuse: a run never deletes or writes what it did not create, one bad record never
stops it, personal data never leaves the pii stage's reach, and every foreseeable failure is one line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.catalog import Catalog
from curate.cli import app
from curate.io.outputs import OutputError, contained, remove_owned
from tests.conftest import run, write_pipeline

runner = CliRunner()


def _records(folder: Path, n: int = 20, name: str = "in.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        "".join(json.dumps({"id": f"r{i}", "text": f"Record {i} about the clinic budget."}) + "\n" for i in range(n))
    )
    return path


def _victim(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A user's folder with subfolders and files, and its contents."""
    victim = tmp_path / "victim"
    (victim / "photos" / "2026").mkdir(parents=True)
    (victim / "photos" / "2026" / "a.jpg").write_bytes(b"\xff\xd8 a photo")
    (victim / "notes").mkdir()
    (victim / "notes" / "todo.txt").write_text("mine")
    (victim / "top.txt").write_text("also mine")
    return victim, _tree(victim)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- nothing outside what curate owns is deleted or written -----------------------------------------
@pytest.mark.parametrize("force", [False, True])
def test_a_work_folder_that_links_to_a_user_folder_deletes_nothing_there(tmp_path, force):
    _records(tmp_path)
    path = write_pipeline(tmp_path, [{"path": "in.jsonl"}], [{"stage": "normalize"}], output={"dir": "out"})
    out = tmp_path / "out"
    first = run(path, out)
    victim, before = _victim(tmp_path)
    (out / "_work").symlink_to(victim, target_is_directory=True)
    _records(tmp_path, n=25)  # another input: not a cache hit, the stale work is cleared
    result = runner.invoke(app, ["run", str(path), "--quiet", *(["--force"] if force else [])])
    assert result.exit_code == 0, result.output
    assert _tree(victim) == before  # every file and folder of the user's is still there
    assert sorted(p.name for p in victim.iterdir()) == ["notes", "photos", "top.txt"]
    assert "its target is untouched" in " ".join(result.output.split())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"]["input"] == 25 and manifest["version"] != first.manifest["version"]


def test_links_planted_inside_the_work_folder_are_not_followed(tmp_path):
    _records(tmp_path)
    path = write_pipeline(tmp_path, [{"path": "in.jsonl"}], [{"stage": "normalize"}], output={"dir": "out"})
    out = tmp_path / "out"
    run(path, out)
    victim, before = _victim(tmp_path)
    (out / "_work").mkdir()
    (out / "_work" / "0123456789abcdef").symlink_to(victim, target_is_directory=True)  # someone else's run key
    _records(tmp_path, n=22)
    run(path, out)
    assert _tree(victim) == before
    assert not (out / "_work").exists()


def test_removal_never_leaves_the_folder_it_is_given(tmp_path):
    victim, before = _victim(tmp_path)
    owned = tmp_path / "owned"
    owned.mkdir()
    (owned / "link").symlink_to(victim, target_is_directory=True)
    remove_owned(owned / "link", owned)  # the link goes, its target stays
    assert not (owned / "link").is_symlink() and _tree(victim) == before
    (owned / "via").symlink_to(victim, target_is_directory=True)
    with pytest.raises(OutputError, match="outside"):
        remove_owned(owned / "via" / "notes", owned)
    for rel in ("../victim/top.txt", "/etc/passwd", "via/top.txt", "data/../../victim/top.txt"):
        with pytest.raises(OutputError, match="not a path inside"):
            contained(owned, rel)
    assert _tree(victim) == before


def test_shards_rm_files_deletes_only_the_files_inside_the_output_folder(tmp_path):
    _records(tmp_path)
    path = write_pipeline(tmp_path, [{"path": "in.jsonl"}], [{"stage": "normalize"}], output={"dir": "out"})
    out = tmp_path / "out"
    result = run(path, out)
    victim, before = _victim(tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"] += [
        {"path": "../victim/top.txt", "bytes": 9, "sha256": "0" * 64},
        {"path": str(victim / "notes" / "todo.txt"), "bytes": 4, "sha256": "0" * 64},
    ]
    (out / "manifest.json").write_text(json.dumps(manifest))
    ref = f"{result.manifest['name']}@{result.manifest['version']}"
    done = runner.invoke(app, ["shards", "rm", ref, "--files"])
    assert done.exit_code == 0, done.output
    assert _tree(victim) == before
    assert not (out / "data").exists()
    assert "../victim/top.txt" in done.output  # said, not deleted
    assert Catalog().entries() == []


# --- one bad record never stops a run ---------------------------------------------------------------
def _nested(depth: int) -> str:
    return "<html><body>" + "<div>" * depth + "deep" + "</div>" * depth + "</body></html>"


def test_a_page_over_the_time_limit_is_quarantined_and_the_pages_beside_it_are_extracted():
    from curate.stages.base import StageContext
    from curate.stages.extract import ExtractRules, ExtractStage
    from tests.test_extract import ARTICLE, PAGE, _frame

    stage = ExtractStage("extract", ExtractRules(), StageContext(record_seconds=1.0))
    stage.setup()
    started = time.monotonic()
    out = stage.run(_frame([PAGE, _nested(100_000), PAGE]))
    assert time.monotonic() - started < 60  # the engine alone spends ~17 minutes on the nested page
    frame = out.frame
    assert frame["_rule"].to_list() == [None, "extract:timeout", None]
    assert "over the per-record time limit of 1 s" in frame["_reason"][1]
    assert ARTICLE in frame["text"][0] and ARTICLE in frame["text"][2]
    assert out.summary["failed"] == 1 and out.summary["pages"] == 3
    stage.sandbox.close()


def _python_reference(chars: int) -> str:
    """Real English prose of the given length: Python's own reference topics, repeated."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics.values())
    return (text * (chars // len(text) + 1))[:chars]


@pytest.fixture(scope="module")
def pii_rules():
    from curate.schema import load_rules
    from curate.stages.pii import PiiRules
    from tests.conftest import RULES

    return PiiRules.model_validate(load_rules(RULES / "pii" / "default.yaml"))


def _pii(rules, **context):
    from curate.stages.base import StageContext
    from curate.stages.pii import PiiStage

    stage = PiiStage("pii", rules, StageContext(**context))
    stage.setup()
    return stage


def test_a_document_of_over_a_million_characters_is_scanned_not_a_crash(pii_rules):
    import polars as pl

    book = "Write to maria.lopez@example.org about the order.\n\n" + _python_reference(1_200_000)
    out = _pii(pii_rules).process(pl.DataFrame({"id": ["book", "note"], "text": [book, "Mail ann.lee@example.org"]}))
    assert out["_action"].to_list() == ["keep", "keep"]
    assert "maria.lopez@example.org" not in out["text"][0] and len(out["text"][0]) > 1_000_000
    assert "ann.lee@example.org" not in out["text"][1]


def test_a_text_over_the_pii_size_limit_is_quarantined_and_withheld(pii_rules):
    import polars as pl

    rules = pii_rules.model_copy(update={"nlp": pii_rules.nlp.model_copy(update={"max_chars": 50_000})})
    big = "Call Maria Lopez on 555-123-4567. " + _python_reference(60_000)
    out = _pii(rules).process(pl.DataFrame({"id": ["big", "small"], "text": [big, "Mail ann.lee@example.org"]}))
    assert out["_rule"].to_list() == ["pii:too_large", None]
    assert "60,034 characters, over the pii stage's nlp.max_chars of 50,000" in out["_reason"][0]
    assert "Maria Lopez" not in out["text"][0] and "ann.lee@example.org" not in out["text"][1]


def test_a_record_over_the_time_limit_is_quarantined_by_pii_not_published(pii_rules):
    import polars as pl

    texts = ["Call Maria Lopez on 555-123-4567. " + _python_reference(20_000)] * 2
    out = _pii(pii_rules, record_seconds=1e-4).process(pl.DataFrame({"id": ["a", "b"], "text": texts}))
    assert out["_rule"].to_list() == ["pii:timeout", "pii:timeout"]
    assert "Maria Lopez" not in out["text"][0]


def test_deadline_stops_python_code_and_is_gone_afterwards():
    from curate.sandbox import RecordTimeout, deadline

    with pytest.raises(RecordTimeout, match="0.2 s"):
        with deadline(0.2):
            while True:
                pass
    with deadline(0.2):
        pass
    time.sleep(0.3)  # no alarm is left behind to fire later
