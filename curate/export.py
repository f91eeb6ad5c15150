"""`curate export`: curated shards as the files LLaMA-Factory, Axolotl or TRL read, and how to train on them.

The shards are resolved as the trainer resolves them (`shards://name@version`, `@latest`, or a run
folder with its manifest): a version whose gates failed is refused, and every data file is checked
against the manifest's size and sha256 before it is read. Each record is one of three kinds (chat,
classification, text) and goes to one JSON Lines file per kind and split; a record the target
format cannot hold fails the export with its id, never silently left out. The lines of every file
are counted after writing and must equal the shards' rows of that kind and split.

An export writes only into a new or empty folder; `--force` lets it write beside other files and
replace files an earlier export wrote there, never one it did not write (export.json records what
each export wrote, with sha256). Files are written under temporary names and renamed into place
once every check has passed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl
import yaml

from curate.catalog import Catalog, listed_files
from curate.errors import AccountingError, CurateError
from curate.hashing import sha256_file
from curate.io.outputs import MARKER
from curate.io.shards import Location, check_manifest, join, location, read_manifest, read_parquet_at

KINDS = ("chat", "classification", "text")
COLUMNS = ("id", "text", "messages", "label", "split")  # what an export reads of each record
RECORD = "export.json"  # what an export wrote, with sha256: what a later --force may replace
FORMAT = "curate.export/1"
TRAIN, EVAL = "train", "validation"  # the split trained on, and the one evaluated during training
EXAMPLE_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"  # in the printed configs; the README says to set yours
_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_SHOWN = 10  # ids named in an error


class ExportError(CurateError):
    """The shards cannot be exported as asked: unknown target, refused folder, unrepresentable records."""


def record_kind(text: str | None, messages: list | None, label: str | None) -> str:
    """chat (turns), classification (a text with a non-blank label) or text (a document)."""
    if messages is not None:
        return "chat"
    return "classification" if label is not None and label.strip() else "text"


# --- the source: a catalog reference or a run folder, checked ----------------------------------------
@dataclass(frozen=True)
class Source:
    ref: str  # shards://name@version, or the run folder as given
    name: str
    version: str
    folder: Location
    files: list[Location]  # the data files, checked against the manifest
    rows: int  # the records the manifest says the shards hold
    columns: list[str]  # the record columns an export reads that the shards have


def resolve(ref: str) -> Source:
    """A catalog reference (`name`, `name@version`, `shards://name@latest`) or a run folder: refused
    when its gates failed or a data file is missing or modified."""
    manifest = read_manifest(location(ref)) if Path(ref).expanduser().is_dir() else None
    if manifest is not None:
        folder = location(ref)
        check_manifest(manifest, join(folder, "manifest.json"))
        label = f"{manifest.get('name')}@{manifest['version']}"
        files, shown = listed_files(folder, manifest, "data", label), str(folder)
    else:
        try:
            entry = Catalog().resolve(ref)
        except CurateError as exc:
            raise ExportError(f"{ref}: not a run folder (no readable manifest.json), and {exc}") from None
        folder, manifest = entry.path, entry.manifest()
        files, shown = entry.data_files(), entry.ref
    if manifest.get("status") != "ok":
        raise ExportError(
            f"{ref}: marked '{manifest.get('status')}' (its gates failed); fix the data before exporting it"
        )
    schema = manifest.get("schema")
    if not isinstance(schema, dict):
        raise ExportError(f"{ref}: its manifest has no schema (written by a curate too old to export from); rerun it")
    return Source(
        ref=shown,
        name=manifest["name"],
        version=manifest["version"],
        folder=folder,
        files=files,
        rows=int(manifest["rows"]["kept"]),
        columns=[c for c in COLUMNS if c in schema],
    )


def _records(source: Source) -> Iterator[dict]:
    """Every record of the shards, in order, a file at a time: its COLUMNS (None where the shards have none)."""
    absent = [pl.lit(None).alias(c) for c in COLUMNS if c not in source.columns]
    for loc in source.files:
        yield from read_parquet_at([loc], source.columns).with_columns(absent).iter_rows(named=True)


# --- the three targets ----------------------------------------------------------------------------
@dataclass
class Part:
    """One output file: the records of one kind in one split."""

    kind: str
    split: str
    rows: int = 0  # records of this kind and split in the shards
    file: str = ""  # its name in the export folder, set once every kind is known
    written: int = 0  # lines counted in the file after writing
    dataset: str = ""  # the name a trainer's config uses for it (LLaMA-Factory's dataset_info key)


@dataclass
class Export:
    source: Source
    target: str
    folder: Path
    command: str  # the `curate export` command that wrote it
    parts: list[Part]
    files: list[str] = field(default_factory=list)  # every file written, data first
    notes: list[str] = field(default_factory=list)

    def of(self, *kinds: str, split: str | None = None) -> list[Part]:
        return [p for p in self.parts if p.kind in kinds and (split is None or p.split == split)]

    def path(self, part: Part) -> str:
        return str(self.folder.resolve() / part.file)


def _prompt_answer(r: dict) -> list[dict]:
    """A classification record as the turns a chat model learns it from: the text, then its label."""
    return [{"role": "user", "content": r["text"]}, {"role": "assistant", "content": r["label"]}]


def _turns(r: dict) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in r["messages"]]


class Target:
    """What one trainer reads: a JSON object per record, why a record cannot be written (None: it
    can), the config files beside the data, and the README's section on how to train."""

    name = ""
    title = ""

    def row(self, kind: str, r: dict) -> dict:
        raise NotImplementedError

    def problem(self, kind: str, r: dict) -> str | None:
        return None

    def configs(self, ex: Export) -> dict[str, str]:
        return {}

    def usage(self, ex: Export) -> str:
        raise NotImplementedError


class LlamaFactory(Target):
    """LLaMA-Factory's data/README.md: sharegpt for chats (OpenAI-style role/content tags, `tool`
    turns as its observation tag), alpaca for classification, `{"columns": {"prompt": "text"}}` for
    pre-training text. Its sharegpt converter skips, with a log line, a conversation whose turns do
    not alternate user/observation and assistant after one optional system prompt, or that does not
    end on the assistant: those are refused here instead, by id."""

    name, title = "llamafactory", "LLaMA-Factory"
    TAGS = {
        "role_tag": "role",
        "content_tag": "content",
        "user_tag": "user",
        "assistant_tag": "assistant",
        "observation_tag": "tool",
        "system_tag": "system",
    }

    def row(self, kind: str, r: dict) -> dict:
        if kind == "chat":
            return {"id": r["id"], "messages": _turns(r)}
        if kind == "classification":
            return {"id": r["id"], "instruction": r["text"], "output": r["label"]}
        return {"id": r["id"], "text": r["text"]}

    def problem(self, kind: str, r: dict) -> str | None:
        if kind != "chat":
            return None
        roles = [m["role"] for m in r["messages"]]
        first = 1 if roles and roles[0] == "system" else 0
        for i, role in enumerate(roles[first:]):
            expected = ("user", "tool") if i % 2 == 0 else ("assistant",)
            if role not in expected:
                return f"turn {first + i + 1} is {role} where sharegpt expects {' or '.join(expected)}"
        if (len(roles) - first) % 2:
            return "it does not end with an assistant turn"
        return "it has no turn besides the system prompt" if len(roles) == first else None

    # Each kind's dataset_info.json description (data/README.md), beside its `file_name`. Preference
    # pairs (`"ranking": true`, with `chosen`/`rejected` columns) get theirs here once curate has a
    # preference record kind; none holds pairs today.
    DESCRIPTIONS = {
        "chat": {"formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": TAGS},
        "classification": {"formatting": "alpaca", "columns": {"prompt": "instruction", "response": "output"}},
        "text": {"columns": {"prompt": "text"}},
    }

    def configs(self, ex: Export) -> dict[str, str]:
        info = {p.dataset: {"file_name": p.file, **self.DESCRIPTIONS[p.kind]} for p in ex.parts}
        return {"dataset_info.json": orjson.dumps(info, option=orjson.OPT_INDENT_2).decode() + "\n"}

    def usage(self, ex: Export) -> str:
        blocks = []
        for stage, kinds, what in (
            ("sft", ("chat", "classification"), "fine-tuning"),
            ("pt", ("text",), "pre-training"),
        ):
            train, evals = ex.of(*kinds, split=TRAIN), ex.of(*kinds, split=EVAL)
            if not train:
                continue
            config = {
                "model_name_or_path": EXAMPLE_MODEL,
                "template": "qwen",
                "stage": stage,
                "do_train": True,
                "finetuning_type": "lora",
                "lora_target": "all",
                "dataset_dir": str(ex.folder.resolve()),
                "dataset": ",".join(p.dataset for p in train),
                **({"eval_dataset": ",".join(p.dataset for p in evals), "eval_strategy": "epoch"} if evals else {}),
                "cutoff_len": 2048,
                "per_device_train_batch_size": 2,
                "gradient_accumulation_steps": 8,
                "learning_rate": 1.0e-4,
                "num_train_epochs": 3.0,
                "output_dir": f"saves/{ex.source.name}-{stage}-lora",
            }
            blocks.append(
                f"{what.capitalize()} (`stage: {stage}`): save as `{ex.source.name}_{stage}.yaml`, then run\n\n"
                f"```bash\nllamafactory-cli train {ex.source.name}_{stage}.yaml\n```\n\n"
                f"```yaml\n{_yaml(config)}```"
            )
        return (
            "`dataset_info.json` describes every file (LLaMA-Factory reads it from `dataset_dir`). "
            "Set `model_name_or_path` and `template` to your model.\n\n" + "\n\n".join(blocks)
        )


class Axolotl(Target):
    """Axolotl's dataset formats: `type: chat_template` on OpenAI-style `messages` (its default roles
    include system, user, assistant and tool), a classification record as a user turn and the
    label's assistant turn, `type: completion` on `text`."""

    name, title = "axolotl", "Axolotl"
    SNIPPET = "axolotl_datasets.yml"

    def row(self, kind: str, r: dict) -> dict:
        if kind == "text":
            return {"id": r["id"], "text": r["text"]}
        return {"id": r["id"], "messages": _turns(r) if kind == "chat" else _prompt_answer(r)}

    def entry(self, ex: Export, part: Part, test: bool) -> dict:
        path = ex.path(part)
        # test_datasets need the split named: a JSON file's only split is "train" (Axolotl's config docs)
        where = {"path": path, "ds_type": "json", **({"split": "train", "data_files": [path]} if test else {})}
        if part.kind == "text":
            return {**where, "type": "completion"}
        return {
            **where,
            "type": "chat_template",
            "field_messages": "messages",
            "message_property_mappings": {"role": "role", "content": "content"},
            "roles_to_train": ["assistant"],
            "train_on_eos": "turn",
        }

    def configs(self, ex: Export) -> dict[str, str]:
        snippet = {"datasets": [self.entry(ex, p, test=False) for p in ex.of(*KINDS, split=TRAIN)]}
        evals = ex.of(*KINDS, split=EVAL)
        if evals:
            snippet["test_datasets"] = [self.entry(ex, p, test=True) for p in evals]
        head = (
            f"# Written by `{ex.command}`.\n# Paste these keys into your Axolotl config "
            "(test_datasets replaces val_set_size: use one or the other).\n"
        )
        return {self.SNIPPET: head + _yaml(snippet)}

    def usage(self, ex: Export) -> str:
        config = {
            "base_model": EXAMPLE_MODEL,
            "chat_template": "tokenizer_default",
            "adapter": "lora",
            "lora_r": 16,
            "lora_alpha": 32,
            "lora_dropout": 0.05,
            "lora_target_linear": True,
            "sequence_len": 2048,
            "micro_batch_size": 2,
            "gradient_accumulation_steps": 8,
            "num_epochs": 3,
            "optimizer": "adamw_torch",
            "learning_rate": 1.0e-4,
            "output_dir": f"./outputs/{ex.source.name}-lora",
        }
        return (
            f"`{self.SNIPPET}` holds the `datasets:` (and `test_datasets:`) entries, with absolute paths. "
            "Add them to a config such as this one (set `base_model` to yours), save it as `config.yml`, "
            f"then run\n\n```bash\naxolotl train config.yml\n```\n\n```yaml\n{_yaml(config)}"
            f"# ... then the contents of {self.SNIPPET}\n```"
        )


class Trl(Target):
    """TRL's dataset formats: conversational language modeling (`messages`) for chats, conversational
    prompt-completion for classification (the loss falls on the label alone), standard language
    modeling (`text`) for documents."""

    name, title = "trl", "TRL"

    def row(self, kind: str, r: dict) -> dict:
        if kind == "chat":
            return {"id": r["id"], "messages": _turns(r)}
        if kind == "classification":
            prompt, answer = _prompt_answer(r)
            return {"id": r["id"], "prompt": [prompt], "completion": [answer]}
        return {"id": r["id"], "text": r["text"]}

    def usage(self, ex: Export) -> str:
        blocks = []
        for kind in KINDS:
            train, evals = ex.of(kind, split=TRAIN), ex.of(kind, split=EVAL)
            if not train:
                continue
            files = {TRAIN: ex.path(train[0]), **({EVAL: ex.path(evals[0])} if evals else {})}
            evaluate = ', eval_strategy="epoch"' if evals else ""
            blocks.append(
                f"```python\n# {ex.source.name}: {kind} records\n"
                "from datasets import load_dataset\nfrom trl import SFTConfig, SFTTrainer\n\n"
                f'data = load_dataset("json", data_files={json.dumps(files)})\n'
                "trainer = SFTTrainer(\n"
                f'    model="{EXAMPLE_MODEL}",\n'
                '    train_dataset=data["train"],\n'
                + ('    eval_dataset=data["validation"],\n' if evals else "")
                + f'    args=SFTConfig(output_dir="{ex.source.name}-trl"{evaluate}),\n'
                ")\ntrainer.train()\n```"
            )
        return (
            "Save as `train_trl.py` (set `model` to yours), then run `python train_trl.py`. "
            "With `messages` SFTTrainer learns the whole conversation unless `assistant_only_loss=True` "
            "(which needs a chat template with generation markers); with `prompt`/`completion` it learns "
            "the completion only.\n\n" + "\n\n".join(blocks)
        )


TARGETS: dict[str, Target] = {t.name: t for t in (LlamaFactory(), Axolotl(), Trl())}


def _yaml(value: dict) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=120)


# --- the export folder: new or empty, or --force over an earlier export's own files ----------------
def check_folder(out: Path, force: bool) -> None:
    """Refuse a folder that is a file, lies inside a curate output folder (publishing replaces what is
    in it), or holds anything (unless `force`). Checked before any data is read."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"-o {out}: is a file; name a folder")
    folder = out.absolute()
    owner = next((p for p in (folder, *folder.parents) if (p / MARKER).is_file()), None)
    if owner is not None:
        raise ExportError(
            f"-o {out}: {owner} is a curate output folder (publishing replaces what is in it); "
            "choose a folder outside it"
        )
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(
            f"-o {out}: the folder is not empty; choose a new or empty folder, or pass --force to write beside "
            "what is there (only files an earlier `curate export` wrote are replaced)"
        )


def _earlier(out: Path) -> dict[str, str]:
    """name -> sha256 of the files an earlier export wrote here, as its export.json recorded them (and
    export.json itself, which no record can hash)."""
    record = out / RECORD
    if not record.is_file() or record.is_symlink():
        return {}
    try:
        value = orjson.loads(record.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        return {}
    files = [f for f in value.get("files", []) + value.get("earlier", []) if isinstance(f, dict)]
    return {RECORD: "", **{f["path"]: f["sha256"] for f in files}}


def _check_replaceable(out: Path, names: list[str], earlier: dict[str, str]) -> None:
    """Each name this export writes is free, or holds a file an earlier export wrote and nobody changed since."""
    blocked = []
    for name in names:
        path = out / name
        if not (path.exists() or path.is_symlink()):
            continue
        if path.is_symlink() or not path.is_file():
            blocked.append(f"{name} (a link or folder)")
        elif name not in earlier:
            blocked.append(f"{name} (not written by curate export)")
        elif name != RECORD and sha256_file(path) != earlier[name]:
            blocked.append(f"{name} (changed since curate export wrote it)")
    if blocked:
        raise ExportError(f"-o {out}: refusing to replace {', '.join(blocked)}; move it away or choose another folder")


# --- the export -----------------------------------------------------------------------------------
def export(ref: str, to: str, out: Path, force: bool = False) -> Export:
    """Write the shards at `ref` as `to` (llamafactory, axolotl, trl) into `out`, with a README.md on
    how to train and export.json; see the module docstring for what is checked."""
    target = TARGETS.get(to)
    if target is None:
        raise ExportError(f"--to {to!r}: expected one of {', '.join(TARGETS)}")
    check_folder(out, force)
    source = resolve(ref)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    command = f"curate export {source.ref} --to {to} -o {out}" + (" --force" if force else "")
    ex = Export(source, to, out, command, parts=[])
    staged: dict[str, Path] = {}  # file name -> this run's temporary file, renamed into place at the end
    try:
        _write_parts(ex, target, staged)
        texts = {**target.configs(ex), "README.md": readme(ex, target)}
        for name, text in texts.items():
            staged[name] = _temp(out, name)
            staged[name].write_text(text, encoding="utf-8")
        earlier = _earlier(out)
        _check_replaceable(out, [*staged, RECORD], earlier)
        files = [{"path": n, "sha256": sha256_file(p), "bytes": p.stat().st_size} for n, p in staged.items()]
        left = [
            {"path": n, "sha256": h}
            for n, h in earlier.items()
            if n not in staged and n != RECORD and (out / n).is_file() and sha256_file(out / n) == h
        ]
        staged[RECORD] = _temp(out, RECORD)
        staged[RECORD].write_bytes(orjson.dumps(_record(ex, files, left), option=orjson.OPT_INDENT_2) + b"\n")
        for name, path in list(staged.items()):  # export.json last: present means the export is complete
            os.replace(path, out / name)
            del staged[name]
    finally:
        for path in staged.values():  # this run's own temporary files, after a failure
            path.unlink(missing_ok=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
    ex.files = [f["path"] for f in files] + [RECORD]
    ex.notes += [f"{x['path']} is left from an earlier export (not part of this one)" for x in left]
    return ex


def _temp(out: Path, name: str) -> Path:
    return out / f".{name}.curate-export-part"


def _write_parts(ex: Export, target: Target, staged: dict[str, Path]) -> None:
    """Every record into its kind's and split's temporary file (in `staged` under its file name once
    every kind is known), counted back; records the target cannot hold are refused together, by id."""
    has_split = "split" in ex.source.columns
    if not has_split:
        ex.notes.append(f"{ex.source.ref} has no split column (no split stage): every record is in '{TRAIN}'")
    parts: dict[tuple[str, str], Part] = {}
    handles = {}
    problems: list[str] = []
    unplaced: list[str] = []
    with_tools = 0
    try:
        for r in _records(ex.source):
            split = r["split"] if has_split else TRAIN
            if split is None or not _SPLIT_NAME.fullmatch(split):
                unplaced.append(f"{r['id']} ({'no split' if split is None else f'split {split[:40]!r}'})")
                continue
            kind = record_kind(r["text"], r["messages"], r["label"])
            why = target.problem(kind, r)
            if why:
                problems.append(f"{r['id']} ({why})")
                continue
            key = (kind, split)
            if key not in parts:
                parts[key] = Part(kind, split)
                staged[f"{kind}/{split}"] = _temp(ex.folder, f"{kind}-{split}.jsonl")  # no file name has a '/'
                handles[key] = open(staged[f"{kind}/{split}"], "wb")
            parts[key].rows += 1
            with_tools += kind == "chat" and any(m["role"] == "tool" for m in r["messages"])
            handles[key].write(orjson.dumps(target.row(kind, r)) + b"\n")
    finally:
        for fh in handles.values():
            fh.close()
    if unplaced:
        raise ExportError(
            f"{ex.source.ref}: {len(unplaced):,} record(s) have no usable split (a name of letters, digits, "
            f"'_' and '-' is needed for their file): {_some(unplaced)}"
        )
    if problems:
        raise ExportError(
            f"{ex.source.ref}: {len(problems):,} record(s) cannot be written for {target.title}: {_some(problems)}"
        )
    if with_tools:
        ex.notes.append(
            f"{with_tools:,} conversation(s) have tool turns: check that your model's chat template renders the "
            "tool role (a template without one drops those turns without a word)"
        )
    ex.parts = sorted(parts.values(), key=lambda p: (KINDS.index(p.kind), _split_order(p.split)))
    if not ex.of(*KINDS, split=TRAIN):
        ex.notes.append(
            f"no split is named '{TRAIN}': the training configs in README.md name no data; point them at the files "
            "to train on"
        )
    _name_parts(ex)
    for p in ex.parts:
        staged[p.file] = staged.pop(f"{p.kind}/{p.split}")
    _count(ex, staged)


def _split_order(split: str) -> tuple[int, str]:
    order = (TRAIN, EVAL, "test")
    return (order.index(split) if split in order else len(order), split)


def _some(items: list[str]) -> str:
    return ", ".join(items[:_SHOWN]) + (f" and {len(items) - _SHOWN:,} more" if len(items) > _SHOWN else "")


def _name_parts(ex: Export) -> None:
    """`train.jsonl` when the shards hold one kind of record, `chat_train.jsonl` and `text_train.jsonl`
    when they mix kinds (a trainer reads one kind per dataset)."""
    mixed = len({p.kind for p in ex.parts}) > 1
    for p in ex.parts:
        stem = f"{p.kind}_{p.split}" if mixed else p.split
        p.file, p.dataset = f"{stem}.jsonl", f"{ex.source.name}_{stem}"


def _count(ex: Export, staged: dict[str, Path]) -> None:
    """Each file's lines, parsed back, must equal the shards' records of its kind and split, and all
    of them the rows the manifest records."""
    for p in ex.parts:
        with open(staged[p.file], "rb") as fh:
            p.written = sum(1 for line in fh if isinstance(orjson.loads(line), dict))
    wrong = [f"{p.file}: {p.written:,} lines for {p.rows:,} records" for p in ex.parts if p.written != p.rows]
    total = sum(p.rows for p in ex.parts)
    if total != ex.source.rows:
        wrong.append(f"the shards gave {total:,} records where the manifest records {ex.source.rows:,}")
    if wrong:
        raise AccountingError(f"export of {ex.source.ref}: the counts do not add up: {'; '.join(wrong)}")


def _record(ex: Export, files: list[dict], left: list[dict]) -> dict:
    return {
        "format": FORMAT,
        "command": ex.command,
        "source": {"ref": ex.source.ref, "name": ex.source.name, "version": ex.source.version, "rows": ex.source.rows},
        "target": ex.target,
        "parts": [{"file": p.file, "kind": p.kind, "split": p.split, "rows": p.rows} for p in ex.parts],
        "files": files,
        "earlier": left,
    }


KIND_TEXT = {
    "chat": "conversations, every turn as curated (system, user, assistant, tool)",
    "classification": "a text and its label: the text is the prompt, the label the answer",
    "text": "documents, for pre-training or continued pre-training",
}


def readme(ex: Export, target: Target) -> str:
    """The export folder's README.md: files, rows per split, the source, and how to train."""
    rows = "\n".join(f"| `{p.file}` | {p.kind} | {p.split} | {p.written:,} |" for p in ex.parts)
    kinds = "\n".join(f"- **{k}**: {KIND_TEXT[k]}" for k in KINDS if ex.of(k))
    notes = "".join(f"\n\nNote: {n}." for n in ex.notes)
    held = sorted({p.split for p in ex.parts} - {TRAIN, EVAL})
    held_out = "".join(
        f"\n\n`{s}` is held out: evaluate the final model on it, never train or tune on it." for s in held
    )
    return (
        f"# {ex.source.name}@{ex.source.version} for {target.title}\n\n"
        f"Written by `{ex.command}` from `{ex.source.ref}` "
        f"(version {ex.source.version}, {ex.source.rows:,} records).\n\n"
        f"| file | kind | split | rows |\n|---|---|---|---:|\n{rows}\n\n"
        f"Each file holds one kind of record, one JSON object per line, each with the record's `id`. "
        f"The rows of every file were counted after writing and equal the shards' records of that kind and "
        f"split; no record was left out.\n\n{kinds}{held_out}{notes}\n\n"
        f"## Train with {target.title}\n\n{target.usage(ex)}\n"
    )
