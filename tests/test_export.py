"""`curate export`: curated shards as LLaMA-Factory, Axolotl and TRL files, checked against each tool's
documented schema (LLaMA-Factory's data/README.md, Axolotl's dataset formats, TRL's dataset formats):
every record in exactly one file, rows per split equal to the shards', nothing unrepresentable dropped
silently, and never a file the export did not write replaced."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from curate.cli import app
from curate.errors import CurateError
from curate.export import ExportError, export
from tests.conftest import REPO, write_pipeline
from tests.conftest import run as curate_run

CODE_ALPACA = REPO.parent / "shared" / "data" / "real-sft" / "code_alpaca_2k.json"
SPLIT = {
    "stage": "split",
    "params": {
        "group_by": [],
        "sizes": {"train": 0.7, "validation": 0.15, "test": 0.15},
        "decontamination": {"action": "off"},
    },
}
TARGETS = ("llamafactory", "axolotl", "trl")
runner = CliRunner()


def _chat(i: int) -> dict:
    """A conversation; every fourth has a system prompt, every third a tool call and its result."""
    turns = [{"role": "user", "content": f"What is the weather in town {i}?"}]
    if i % 4 == 0:
        turns.insert(0, {"role": "system", "content": "You answer questions about the weather."})
    if i % 3 == 0:
        turns += [
            {"role": "assistant", "content": json.dumps({"name": "weather", "arguments": {"town": i}})},
            {"role": "tool", "content": f"sunny, {i % 30} degrees"},
        ]
    turns.append({"role": "assistant", "content": f"Town {i} is sunny today, {i % 30} degrees."})
    return {"id": f"chat-{i}", "messages": turns, "label": "weather"}


def _curate(folder: Path, name: str, rows: list[dict], stages: list[dict]) -> Path:
    """`rows` through a pipeline; the published run folder."""
    folder.mkdir(parents=True)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = write_pipeline(folder, [{"path": f"{name}.jsonl"}], stages, name=name)
    return curate_run(path, folder / "out").out_dir


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict:
    """Small curated sets in their own catalog: chats (system and tool turns), labelled short texts,
    a mix of chats and documents, documents without a split stage."""
    root = tmp_path_factory.mktemp("export_sets")
    home = root / "home"
    old = os.environ.get("CURATE_HOME")
    os.environ["CURATE_HOME"] = str(home)
    try:
        labels = ["billing", "delivery", "returns"]
        texts = [
            {
                "id": f"q{i}",
                "text": f"Question {i} about the {labels[i % 3]} of my order number {i}.",
                "label": labels[i % 3],
            }
            for i in range(90)
        ]
        docs = [
            {"id": f"d{i}", "text": f"Document {i}. " + "A sentence of plain prose. " * (1 + i % 4)} for i in range(30)
        ]
        stratified = {**SPLIT, "params": {**SPLIT["params"], "stratify_by": "label"}}
        found = {
            "chat": _curate(root / "chat", "chats", [_chat(i) for i in range(80)], [{"stage": "normalize"}, SPLIT]),
            "classification": _curate(root / "cls", "intents", texts, [{"stage": "normalize"}, stratified]),
            "mixed": _curate(root / "mixed", "mixed", [_chat(i) for i in range(40)] + docs, [SPLIT]),
            "nosplit": _curate(root / "nosplit", "docs", docs, [{"stage": "normalize"}]),
        }
    finally:
        if old is None:
            os.environ.pop("CURATE_HOME")
        else:
            os.environ["CURATE_HOME"] = old
    return {**found, "home": home}


def _shard_counts(run_dir: Path) -> dict[str, int]:
    df = pl.read_parquet(run_dir / "data")
    return dict(df.group_by("split").len().iter_rows()) if "split" in df.columns else {"train": df.height}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- each tool's documented schema ------------------------------------------------------------------
def _check_llamafactory(folder: Path) -> None:
    """data/README.md: every dataset_info.json entry names a file in the folder; sharegpt rows hold
    role/content turns under the mapped tags, user/observation and assistant alternating after one
    optional system turn and ending on the assistant (its converter skips any other); alpaca rows an
    instruction and an output; pre-training rows their `prompt` column."""
    info = json.loads((folder / "dataset_info.json").read_text())
    for entry in info.values():
        rows = _lines(folder / entry["file_name"])
        assert rows and "ranking" not in entry
        if entry.get("formatting") == "sharegpt":
            tags = entry["tags"]
            assert entry["columns"] == {"messages": "messages"}
            assert (tags["role_tag"], tags["content_tag"]) == ("role", "content")
            odd, even = {tags["user_tag"], tags["observation_tag"]}, {tags["assistant_tag"]}
            for row in rows:
                turns = row["messages"]
                if turns[0]["role"] == tags["system_tag"]:
                    turns = turns[1:]
                assert turns and len(turns) % 2 == 0, row["id"]
                assert all(t["role"] in (odd if i % 2 == 0 else even) for i, t in enumerate(turns)), row["id"]
                assert all(isinstance(t["content"], str) for t in turns)
        elif entry.get("formatting") == "alpaca":
            assert entry["columns"] == {"prompt": "instruction", "response": "output"}
            assert all(isinstance(r["instruction"], str) and isinstance(r["output"], str) for r in rows)
        else:
            assert entry["columns"] == {"prompt": "text"}
            assert all(isinstance(r["text"], str) for r in rows)


def _check_axolotl(folder: Path) -> None:
    """`type: chat_template` on `messages` with role/content turns in its default roles, `type:
    completion` on `text`; test_datasets name their file's split ("train" for a JSON file)."""
    snippet = yaml.safe_load((folder / "axolotl_datasets.yml").read_text())
    entries = snippet["datasets"] + snippet.get("test_datasets", [])
    for entry in entries:
        rows = _lines(Path(entry["path"]))
        assert entry["ds_type"] == "json"
        if entry["type"] == "chat_template":
            assert entry["field_messages"] == "messages"
            assert entry["message_property_mappings"] == {"role": "role", "content": "content"}
            for row in rows:
                assert {t["role"] for t in row["messages"]} <= {"system", "user", "assistant", "tool"}
        else:
            assert entry["type"] == "completion" and all(isinstance(r["text"], str) for r in rows)
    for entry in snippet.get("test_datasets", []):
        assert entry["split"] == "train" and entry["data_files"] == [entry["path"]]


def _check_trl(folder: Path) -> None:
    """Conversational language modeling (`messages`), conversational prompt-completion, or standard
    language modeling (`text`): one type per file."""
    for path in folder.glob("*.jsonl"):
        rows = _lines(path)
        keys = {frozenset(r) - {"id"} for r in rows}
        assert len(keys) == 1, path
        (columns,) = keys
        if columns == {"messages"}:
            assert all(set(t) == {"role", "content"} for r in rows for t in r["messages"])
        elif columns == {"prompt", "completion"}:
            for r in rows:
                assert [t["role"] for t in r["prompt"]] == ["user"]
                assert [t["role"] for t in r["completion"]] == ["assistant"]
        else:
            assert columns == {"text"}


CHECKS = {"llamafactory": _check_llamafactory, "axolotl": _check_axolotl, "trl": _check_trl}


def _check_counts(folder: Path, run_dir: Path) -> dict:
    """Rows per split in the export equal the shards', and every id is written once."""
    record = json.loads((folder / "export.json").read_text())
    written: dict[str, int] = {}
    ids = []
    for part in record["parts"]:
        rows = _lines(folder / part["file"])
        assert len(rows) == part["rows"]
        written[part["split"]] = written.get(part["split"], 0) + len(rows)
        ids += [r["id"] for r in rows]
    assert written == _shard_counts(run_dir)
    shard_ids = pl.read_parquet(run_dir / "data")["id"].to_list()
    assert sorted(ids) == sorted(shard_ids)
    return record


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", ["chat", "classification"])
def test_each_target_writes_every_record_in_its_documented_schema(tmp_path, sets, target, kind):
    out = tmp_path / "export"
    result = export(str(sets[kind]), target, out)
    record = _check_counts(out, sets[kind])
    CHECKS[target](out)
    assert {p.kind for p in result.parts} == {kind}
    assert [p.file for p in result.parts] == ["train.jsonl", "validation.jsonl", "test.jsonl"]
    assert all(p.rows == p.written for p in result.parts)
    readme = (out / "README.md").read_text()
    assert record["source"]["version"] in readme and result.command in readme
    for p in result.parts:
        assert f"| `{p.file}` | {kind} | {p.split} | {p.rows:,} |" in readme
    assert {"llamafactory": "llamafactory-cli train", "axolotl": "axolotl train config.yml", "trl": "SFTTrainer("}[
        target
    ] in readme
    assert set(os.listdir(out)) == set(result.files)  # no temporary file left


def test_records_keep_their_content_in_each_format(tmp_path, sets):
    chats = {r["id"]: r for r in pl.read_parquet(sets["chat"] / "data").to_dicts()}
    for target in TARGETS:
        export(str(sets["chat"]), target, tmp_path / target)
        row = next(r for r in _lines(tmp_path / target / "train.jsonl") if r["id"] == "chat-0")
        assert row["messages"] == chats["chat-0"]["messages"]  # system, user, assistant, tool, assistant
    texts = {r["id"]: r for r in pl.read_parquet(sets["classification"] / "data").to_dicts()}
    for target in TARGETS:
        export(str(sets["classification"]), target, tmp_path / f"cls-{target}")
        row = _lines(tmp_path / f"cls-{target}" / "train.jsonl")[0]
        text, label = texts[row["id"]]["text"], texts[row["id"]]["label"]
        expected = {
            "llamafactory": {"id": row["id"], "instruction": text, "output": label},
            "axolotl": {
                "id": row["id"],
                "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": label}],
            },
            "trl": {
                "id": row["id"],
                "prompt": [{"role": "user", "content": text}],
                "completion": [{"role": "assistant", "content": label}],
            },
        }[target]
        assert row == expected


def test_dataset_info_json_describes_each_file(tmp_path, sets):
    export(str(sets["chat"]), "llamafactory", tmp_path / "chat")
    info = json.loads((tmp_path / "chat" / "dataset_info.json").read_text())
    assert list(info) == ["chats_train", "chats_validation", "chats_test"]
    assert info["chats_train"] == {
        "file_name": "train.jsonl",
        "formatting": "sharegpt",
        "columns": {"messages": "messages"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "observation_tag": "tool",
            "system_tag": "system",
        },
    }
    readme = (tmp_path / "chat" / "README.md").read_text()
    config = yaml.safe_load(readme.split("```yaml\n")[1].split("```")[0])
    assert config["dataset_dir"] == str((tmp_path / "chat").resolve())
    assert (config["stage"], config["dataset"], config["eval_dataset"]) == ("sft", "chats_train", "chats_validation")
    assert "tool turns" in readme  # the chat template must render them


def test_a_catalog_reference_exports_like_its_run_folder(tmp_path, sets, monkeypatch):
    monkeypatch.setenv("CURATE_HOME", str(sets["home"]))
    result = export("intents@latest", "trl", tmp_path / "by_ref")
    export(str(sets["classification"]), "trl", tmp_path / "by_dir")
    assert result.source.ref == f"shards://intents@{result.source.version}"
    for p in result.parts:
        assert (tmp_path / "by_ref" / p.file).read_bytes() == (tmp_path / "by_dir" / p.file).read_bytes()
    with pytest.raises(
        ExportError, match=r"not a run folder \(no readable manifest.json\), and no shards named 'nothing'"
    ):
        export("nothing@latest", "trl", tmp_path / "x")


def test_mixed_kinds_go_to_one_file_per_kind_and_split(tmp_path, sets):
    for target in TARGETS:
        out = tmp_path / target
        result = export(str(sets["mixed"]), target, out)
        _check_counts(out, sets["mixed"])
        CHECKS[target](out)
        assert {p.file for p in result.parts if p.split == "train"} == {"chat_train.jsonl", "text_train.jsonl"}
    info = json.loads((tmp_path / "llamafactory" / "dataset_info.json").read_text())
    assert info["mixed_text_train"] == {"file_name": "text_train.jsonl", "columns": {"prompt": "text"}}
    readme = (tmp_path / "llamafactory" / "README.md").read_text()
    assert "stage: sft" in readme and "stage: pt" in readme and "dataset: mixed_text_train" in readme
    snippet = yaml.safe_load((tmp_path / "axolotl" / "axolotl_datasets.yml").read_text())
    assert sorted(d["type"] for d in snippet["datasets"]) == ["chat_template", "completion"]


def test_shards_without_a_split_are_exported_as_train(tmp_path, sets):
    result = export(str(sets["nosplit"]), "llamafactory", tmp_path / "out")
    assert [(p.file, p.rows) for p in result.parts] == [("train.jsonl", 30)]
    assert any("no split column" in n for n in result.notes)
    assert "no split column" in (tmp_path / "out" / "README.md").read_text()
    _check_llamafactory(tmp_path / "out")


def test_a_conversation_llamafactory_cannot_hold_fails_by_id_and_writes_nothing(tmp_path):
    rows = [_chat(i) for i in range(30)]
    rows[3]["messages"].append({"role": "user", "content": "And tomorrow?"})  # ends without an answer
    rows[5]["messages"].insert(1, {"role": "user", "content": "Please hurry."})  # two user turns in a row
    run_dir = _curate(tmp_path / "run", "odd", rows, [SPLIT])
    out = tmp_path / "lf"
    with pytest.raises(ExportError) as err:
        export(str(run_dir), "llamafactory", out)
    message = str(err.value)
    assert "2 record(s) cannot be written for LLaMA-Factory" in message
    assert "chat-3 (it does not end with an assistant turn)" in message
    assert "chat-5 (turn 2 is user where sharegpt expects assistant)" in message
    assert not out.exists()  # the folder it created, and its temporary files, are gone
    for target in ("axolotl", "trl"):  # their formats hold any order of turns
        export(str(run_dir), target, tmp_path / target)
        _check_counts(tmp_path / target, run_dir)


def test_a_folder_that_is_not_empty_is_refused(tmp_path, sets):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export(str(sets["chat"]), "trl", out)
    assert os.listdir(out) == ["notes.txt"]
    result = export(str(sets["chat"]), "trl", out, force=True)  # beside it, untouched
    assert (out / "notes.txt").read_text() == "mine" and "notes.txt" not in result.files


def test_force_replaces_only_what_an_earlier_export_wrote(tmp_path, sets):
    out = tmp_path / "out"
    export(str(sets["chat"]), "llamafactory", out)
    before = (out / "train.jsonl").read_bytes()
    export(str(sets["chat"]), "llamafactory", out, force=True)  # its own files, unchanged: replaced
    assert (out / "train.jsonl").read_bytes() == before
    (out / "validation.jsonl").write_text("edited by hand\n")
    with pytest.raises(ExportError, match=r"validation.jsonl \(changed since curate export wrote it\)"):
        export(str(sets["chat"]), "llamafactory", out, force=True)
    assert (out / "validation.jsonl").read_text() == "edited by hand\n"
    other = tmp_path / "other"
    other.mkdir()
    (other / "README.md").write_text("my own readme")
    with pytest.raises(ExportError, match=r"README.md \(not written by curate export\)"):
        export(str(sets["chat"]), "trl", other, force=True)
    assert sorted(os.listdir(other)) == ["README.md"]  # no temporary file left either


def test_an_earlier_exports_files_are_left_and_still_replaceable(tmp_path, sets):
    out = tmp_path / "out"
    export(str(sets["mixed"]), "trl", out)
    result = export(str(sets["chat"]), "trl", out, force=True)
    assert (out / "text_train.jsonl").is_file()  # left, and said so
    assert any("text_train.jsonl is left from an earlier export" in n for n in result.notes)
    export(str(sets["mixed"]), "trl", out, force=True)  # still known as the export's own


def test_an_export_inside_a_curate_output_folder_is_refused(tmp_path, sets):
    with pytest.raises(ExportError, match="is a curate output folder"):
        export(str(sets["chat"]), "trl", sets["chat"] / "export")


def test_a_failed_or_modified_version_is_refused(tmp_path, sets):
    import shutil

    failed = tmp_path / "failed"
    shutil.copytree(sets["chat"], failed)
    manifest = json.loads((failed / "manifest.json").read_text())
    (failed / "manifest.json").write_text(json.dumps({**manifest, "status": "failed"}))
    with pytest.raises(ExportError, match="marked 'failed'"):
        export(str(failed), "trl", tmp_path / "a")
    modified = tmp_path / "modified"
    shutil.copytree(sets["chat"], modified)
    shard = next((modified / "data").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CurateError, match="refusing to read"):
        export(str(modified), "trl", tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(ExportError, match="expected one of llamafactory, axolotl, trl"):
        export(str(sets["chat"]), "unsloth", tmp_path / "c")


def test_the_cli_prints_the_counts_and_refuses_with_exit_2(tmp_path, sets):
    out = tmp_path / "out"
    result = runner.invoke(app, ["export", str(sets["classification"]), "--to", "axolotl", "-o", str(out)])
    assert result.exit_code == 0, result.output
    counts = _shard_counts(sets["classification"])
    for split in ("train", "validation", "test"):
        assert f"{split}.jsonl" in result.output and f"{counts[split]:,}" in result.output
    assert (out / "axolotl_datasets.yml").is_file()
    again = runner.invoke(app, ["export", str(sets["classification"]), "--to", "axolotl", "-o", str(out)])
    assert again.exit_code == 2 and "not empty" in again.output


@pytest.mark.skipif(not CODE_ALPACA.is_file(), reason="needs ../shared/data/real-sft")
def test_real_instruction_data_exports_for_every_target(tmp_path):
    """300 Code Alpaca records (alpaca layout, code in the answers) through normalize and split."""
    records = json.loads(CODE_ALPACA.read_text(encoding="utf-8"))[:300]
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "code_alpaca.json").write_text(json.dumps(records), encoding="utf-8")
    path = write_pipeline(folder, [{"path": "code_alpaca.json"}], [{"stage": "normalize"}, SPLIT], name="code_alpaca")
    run_dir = curate_run(path, folder / "out").out_dir
    for target in TARGETS:
        out = tmp_path / target
        result = export(str(run_dir), target, out)
        _check_counts(out, run_dir)
        CHECKS[target](out)
        assert sum(p.rows for p in result.parts) == 300
    row = _lines(tmp_path / "llamafactory" / "train.jsonl")[0]
    original = next(r for r in records if r["output"] == row["messages"][-1]["content"])
    assert row["messages"][0]["content"].startswith(original["instruction"])
