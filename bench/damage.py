"""What the pipeline `curate init` fits to a set drops from it, on every real set here (issue 34).

Every real set under ../shared/data (instruction, preference, tool-call and benchmark prompts, the
labelled PII sentences) and the OS's own text (Python's pydoc topics, Debian's HTML manuals, the
Vietnamese UI strings of the OS's message catalogs) is written as a JSONL file and taken through what a
new user runs: `curate init FILE` (no --task), then `curate run`. None of these sets is bad data on
purpose, so every drop is a candidate for damage; the examples say which.

Measured per set, for the code under test and for a baseline tree (the commit before the issue's work,
checked out with `git worktree`, run the same way in the same session): the task and quality rules init
chose, records in, and records dropped per stage and rule; a seeded sample of the dropped records per
stage and rule (id, the reason, the text, cut) with `label: null`, for a reader to label "right" (the
record deserved its drop) or "wrong". bench/results/damage_labels.json holds the labels; they are
joined to the examples by set, tree and record id.

    python -m bench.damage [--baseline COMMIT] [--sets NAME ...]
    python -m bench.damage --relabel      # join damage_labels.json to the examples of the last run
Results: bench/results/damage.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from bench.pii_common import REPO, commit
from bench.pii_precision import (
    DATA,
    alpaca,
    chat,
    manuals,
    pydoc_topics,
    self_instruct,
    turns_of,
    vi_catalog_strings,
)

RESULT = REPO / "bench" / "results" / "damage.json"
LABELS = REPO / "bench" / "results" / "damage_labels.json"
BASELINE = "73acd1d"  # the last commit before issue 34's work
EXAMPLES = 6  # dropped records kept per set, tree, stage and rule
CUT = 600  # characters of an example's text
SEED = 34


def _load(path: Path) -> list:
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines() if line]


def sft_pair(obj: dict) -> dict:
    """A preference or tool-call record as the SFT record a user would keep of it: the prompt turns and
    the chosen answer (a KTO row: its conversation), the tool schemas as a system turn."""
    if "chosen_messages" in obj:  # v1_dpo_demo: two whole chats sharing their prompt
        return {"messages": chat(obj["chosen_messages"])}
    turns = chat(obj.get("conversations") or obj.get("messages") or [])
    if isinstance(obj.get("chosen"), dict):
        turns.append(chat([obj["chosen"]])[0])
    tools = [{"role": "system", "content": obj["tools"]}] if obj.get("tools") else []
    return {"messages": tools + turns}


def presidio(obj: dict) -> dict:
    return {"text": obj["full_text"]}


FILES = {
    "real-sft/gpteacher_roleplay.json": alpaca,
    "real-sft/code_alpaca_2k.json": alpaca,
    "real-pref/dpo_en_demo.json": sft_pair,
    "real-pref/dpo_zh_demo.json": sft_pair,
    "real-pref/kto_en_demo.json": sft_pair,
    "real-pref/glaive_toolcall_en_demo.json": sft_pair,
    "real-pref/v1_dpo_demo.jsonl": sft_pair,
    "self-instruct/seed_tasks.jsonl": self_instruct,
    "self-instruct/user_oriented_instructions.jsonl": self_instruct,
    "fastchat-bench/mt_bench_question.jsonl": turns_of("user"),
    "fastchat-bench/vicuna_bench_question.jsonl": turns_of("user"),
    "arena-hard/question_v0.1.jsonl": turns_of("user"),
    "presidio-research/synth_dataset_v2.json": presidio,
}


def sets(only: list[str] | None = None) -> dict[str, list[dict]]:
    out = {}
    for path, build in FILES.items():
        if (DATA / path).exists() and (not only or path in only):
            out[path] = [build(obj) for obj in _load(DATA / path)]
    for name, make in (
        ("os/pydoc_topics", pydoc_topics),
        ("os/debian_html_manuals", manuals),
        ("os/vi_locale_ui_strings", vi_catalog_strings),
    ):
        if not only or name in only:
            out[name] = make()
    return out


def _slug(name: str) -> str:
    return name.split("/")[-1].split(".")[0].replace("-", "_")


def _worktree(rev: str, where: Path) -> Path:
    subprocess.run(["git", "worktree", "add", "--detach", str(where), rev], cwd=REPO, check=True, capture_output=True)
    return where


def run_set(tree: Path, name: str, records: list[dict], work: Path) -> dict:
    """`curate init` then `curate run` on the set with the curate of `tree`: init's choices, the funnel,
    and every dropped record (stage, rule, reason, id, text)."""
    slug = _slug(name)
    folder = work / slug
    folder.mkdir(parents=True)
    data = folder / f"{slug}.jsonl"
    with data.open("w", encoding="utf-8") as fh:
        for i, rec in enumerate(records):
            fh.write(json.dumps({"id": f"{slug}-{i:05d}", **rec}, ensure_ascii=False) + "\n")
    env = {**os.environ, "PYTHONPATH": str(tree), "CURATE_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1"}
    python = [sys.executable, "-m", "curate"]
    init = subprocess.run(
        [*python, "init", str(data), "-o", "p.yaml"], cwd=folder, env=env, capture_output=True, text=True
    )
    if init.returncode:
        return {"error": f"init failed: {init.stdout[-800:]}{init.stderr[-800:]}"}
    header = [ln[2:] for ln in (folder / "p.yaml").read_text().splitlines() if ln.startswith("# ")]
    chosen = {ln.split(":", 1)[0]: ln.split(":", 1)[1].strip() for ln in header if ":" in ln}
    pipeline = (folder / "p.yaml").read_text()
    quality = next(
        (ln.split("/")[-1] for ln in pipeline.splitlines() if ln.strip().startswith("rules:") and "quality/" in ln),
        None,
    )
    started = time.perf_counter()
    run = subprocess.run([*python, "run", "p.yaml", "-q"], cwd=folder, env=env, capture_output=True, text=True)
    seconds = round(time.perf_counter() - started, 1)
    report = folder / "out" / slug / "report.json"
    if not report.exists():
        return {"error": f"run failed: {run.stdout[-800:]}{run.stderr[-800:]}"}
    funnel = json.loads(report.read_text())["funnel"]
    files = list((folder / "out" / slug / "rejected").rglob("*.parquet"))
    rejected = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed") if files else pl.DataFrame()
    drops = []
    for r in rejected.iter_rows(named=True) if rejected.height else []:
        if r.get("action", "drop") == "drop" and r.get("stage") != "read":
            text = r.get("text")
            if text is None and r.get("messages"):
                text = "\n".join(f"{m['role']}: {m['content']}" for m in r["messages"])
            drops.append(
                {"stage": r["stage"], "rule": r["rule"], "reason": r["reason"], "id": r["id"], "text": text or ""}
            )
    return {
        "task": chosen.get("task", "").split(" — ")[0],
        "quality_rules": quality,
        "languages": chosen.get("languages", "").split(" — ")[0],
        "records": funnel[0]["rows_in"] if funnel else len(records),
        "kept": funnel[-1]["kept"] if funnel else 0,
        "seconds": seconds,
        "dropped": {f["stage"]: f["dropped"] for f in funnel if f["dropped"]},
        "_drops": drops,
    }


def _examples(drops: list[dict], labels: dict, tree: str, name: str) -> dict:
    """Per stage and rule: the count, and a seeded sample of the records, with any label a reader gave."""
    by: dict[str, list[dict]] = {}
    for d in drops:
        by.setdefault(f"{d['stage']}:{d['rule']}", []).append(d)
    out = {}
    for key, rows in sorted(by.items()):
        sample = random.Random(f"{SEED}{name}{key}").sample(rows, min(EXAMPLES, len(rows)))
        out[key] = {
            "dropped": len(rows),
            "examples": [
                {
                    "id": r["id"],
                    "reason": r["reason"],
                    "text": r["text"][:CUT],
                    "label": labels.get(f"{name}|{tree}|{r['id']}", {}).get("label"),
                }
                for r in sample
            ],
        }
    return out


def _labelled(results: dict) -> dict:
    """Per tree: examples read, labelled right, labelled wrong, and the share wrong."""
    out = {}
    for tree in ("baseline", "current"):
        right = wrong = 0
        for s in results["sets"].values():
            for rule in s.get(tree, {}).get("rules", {}).values():
                for e in rule["examples"]:
                    right += e["label"] == "right"
                    wrong += e["label"] == "wrong"
        read = right + wrong
        out[tree] = {"read": read, "right": right, "wrong": wrong, "share_wrong": wrong / max(1, read)}
    return out


def table(results: dict) -> str:
    """Per set: what init chose now, records, dropped by the baseline and now (share; by stage), and the read
    examples labelled wrong of those read, per tree."""

    def by_stage(r: dict) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in sorted(r.get("dropped", {}).items(), key=lambda kv: -kv[1]))

    def read(r: dict) -> str:
        labels = [e["label"] for rule in r.get("rules", {}).values() for e in rule["examples"] if e["label"]]
        return f"{labels.count('wrong')}/{len(labels)}" if labels else "–"

    lines = [
        "| set | init now: task, quality rules | records | dropped before (by stage) | dropped now (by stage) "
        "| wrong/read before | wrong/read now |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, e in results["sets"].items():
        b, c = e["baseline"], e["current"]
        cells = [
            name,
            f"{c.get('task', '?')}, {c.get('quality_rules') or '–'}",
            f"{e['records']:,}",
            f"{sum(b.get('dropped', {}).values()):,} ({b.get('dropped_share', 0):.1%}; {by_stage(b) or '–'})",
            f"{sum(c.get('dropped', {}).values()):,} ({c.get('dropped_share', 0):.1%}; {by_stage(c) or '–'})",
            read(b),
            read(c),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def relabel(labels: dict) -> dict:
    """The last results with the reader's labels joined to their examples (no run)."""
    out = json.loads(RESULT.read_text())
    for name, entry in out["sets"].items():
        for tree in ("baseline", "current"):
            for rule in entry.get(tree, {}).get("rules", {}).values():
                for e in rule["examples"]:
                    e["label"] = labels.get(f"{name}|{tree}|{e['id']}", {}).get("label")
    out["labelled"] = _labelled(out)
    out["table"] = table(out)
    RESULT.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="the commit the current tree is compared with")
    parser.add_argument("--sets", nargs="*", help="only these sets (names as in the results)")
    parser.add_argument("--relabel", action="store_true", help="only join the labels file to the last results")
    parser.add_argument(
        "--trees",
        nargs="*",
        default=["baseline", "current"],
        help="run only these trees; with --sets, the other sets and trees are kept from the last results",
    )
    args = parser.parse_args()
    labels = json.loads(LABELS.read_text())["labels"] if LABELS.exists() else {}
    if args.relabel:
        return relabel(labels)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="curate-damage-"))
    try:
        trees = {"current": REPO}
        if "baseline" in args.trees:
            trees["baseline"] = _worktree(args.baseline, work / "baseline-tree")
        trees = {t: trees[t] for t in ("baseline", "current") if t in args.trees}
        partial = bool(args.sets) or len(trees) < 2
        results: dict = {"sets": json.loads(RESULT.read_text())["sets"] if partial and RESULT.exists() else {}}
        for name, records in sets(args.sets).items():
            entry: dict = {**results["sets"].get(name, {}), "records": len(records)}
            for tree, path in trees.items():
                got = run_set(path, name, records, work / tree)
                drops = got.pop("_drops", [])
                if "error" not in got:
                    got["rules"] = _examples(drops, labels, tree, name)
                    got["dropped_share"] = round(sum(got["dropped"].values()) / max(1, got["records"]), 4)
                entry[tree] = got
                print(f"{name:50s} {tree:8s} {got.get('task')} {got.get('dropped', got.get('error'))}", flush=True)
            results["sets"][name] = entry
    finally:
        if (work / "baseline-tree").exists():
            subprocess.run(["git", "worktree", "remove", "--force", str(work / "baseline-tree")], cwd=REPO, check=False)
        shutil.rmtree(work, ignore_errors=True)
    totals = {
        tree: {
            "records": sum(s["records"] for s in results["sets"].values()),
            "dropped": sum(sum(s[tree].get("dropped", {}).values()) for s in results["sets"].values()),
        }
        for tree in ("baseline", "current")
    }
    out = {
        "benchmark": "damage",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(),
        "baseline": args.baseline,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds": round(time.perf_counter() - started, 1),
        "totals": totals,
        "labelled": _labelled(results),
        **results,
    }
    out["table"] = table(results)
    RESULT.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    result = main()
    print(json.dumps({"totals": result.get("totals"), "labelled": result["labelled"]}, indent=1))
