"""The trainer as a new user meets it: `curate init` → `curate run` → `curate train run configs/train/default.yaml`.

Two sets, each curated and trained by the commands the README gives, the default training config
unchanged, from a scratch folder with its own CURATE_HOME (so nothing may land in the checkout: its
untracked and ignored files are listed before and after):

- classification: 7,000 Vietnamese patient questions shaped like ViMQ (tests/onboarding_sets.py:
  word-segmented and not, capitals, unaccented; an intent in `sent_label`), `init --task classification`.
  The public ViMQ set itself is held out; this is a proxy of its class. Accuracy, macro-F1, per-label and
  per-stratum metrics from `classification_metrics.json`.
- sft: 8,000 instruction records: every real instruction record in ../shared/data (Code Alpaca,
  GPTeacher role-play, self-instruct, the LLaMA-Factory DPO and KTO demos' prompts with their
  answers, FastChat's dummy conversations), topped up with Vietnamese patient questions given a templated
  answer so that the set holds Vietnamese and counts 8,000. Wall time of `train run` (the done-when of
  issue 35: ≤ 15 minutes on 2 cores), seconds per step, the stop check.

Results: bench/results/train_tasks.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bench.onboard import _curate  # the curate command in a subprocess: exit code, seconds, output

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
CONFIG = REPO / "configs" / "train" / "default.yaml"
ANSWERS_VI = [
    "Bạn nên đi khám bác sĩ chuyên khoa để được chẩn đoán chính xác. Trong lúc chờ khám, hãy nghỉ ngơi, uống đủ "
    "nước và ghi lại các triệu chứng để báo cho bác sĩ.",
    "Triệu chứng này thường không nguy hiểm nếu xuất hiện ngắn ngày. Nếu kéo dài hơn một tuần hoặc nặng hơn, bạn "
    "cần đến cơ sở y tế gần nhất để được kiểm tra.",
    "Nguyên nhân có thể do nhiều yếu tố như nhiễm trùng, dị ứng hoặc căng thẳng. Bác sĩ sẽ hỏi bệnh sử và có thể "
    "chỉ định xét nghiệm để tìm nguyên nhân.",
]


def _chat(prompt: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}


def _value(turns: list[dict], role: str) -> str:
    """The first turn of `role` in sharegpt (`from`/`value`) or OpenAI (`role`/`content`) turns."""
    return next((t.get("value", t.get("content")) for t in turns if t.get("from", t.get("role")) == role), "")


def instruction_records(n: int, seed: int = 13) -> tuple[list[dict], dict]:
    """Every real instruction record here as a chat record, topped up to `n` with Vietnamese questions."""
    sys.path.insert(0, str(REPO))
    from tests.onboarding_sets import patient_questions

    records, counts = [], {}

    def add(name: str, rows: list[dict]) -> None:
        rows = [r for r in rows if r["messages"][0]["content"].strip() and r["messages"][-1]["content"].strip()]
        records.extend(rows)
        counts[name] = len(rows)

    sft = SHARED / "real-sft"
    for name in ("code_alpaca_2k.json", "gpteacher_roleplay.json"):
        rows = json.loads((sft / name).read_text())
        add(
            name,
            [
                _chat(f"{r['instruction']}\n\n{r['input']}".strip(), r.get("output") or r.get("response") or "")
                for r in rows
            ],
        )
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        rows = [json.loads(line) for line in (SHARED / "self-instruct" / name).read_text().splitlines() if line]
        add(
            name,
            [
                _chat(f"{r['instruction']}\n\n{i.get('input', '')}".strip(), i.get("output", ""))
                for r in rows
                for i in r["instances"]
            ],
        )
    pref = SHARED / "real-pref"
    for name in ("dpo_en_demo.json", "dpo_zh_demo.json"):
        rows = json.loads((pref / name).read_text())
        add(name, [_chat(_value(r["conversations"], "human"), r["chosen"]["value"]) for r in rows])
    kto = json.loads((pref / "kto_en_demo.json").read_text())
    add("kto_en_demo.json", [_chat(_value(r["messages"], "user"), _value(r["messages"], "assistant")) for r in kto])
    dummy = json.loads((SHARED / "fastchat-bench" / "dummy_conversation.json").read_text())
    add(
        "dummy_conversation.json",
        [
            {
                "messages": [
                    {"role": "user" if t["from"] == "human" else "assistant", "content": t["value"]}
                    for t in r["conversations"]
                ]
            }
            for r in dummy
        ],
    )
    rng = random.Random(seed)
    rng.shuffle(records)
    if len(records) < n:
        with tempfile.TemporaryDirectory() as tmp:
            questions = json.loads(patient_questions(Path(tmp) / "q.json", n=n - len(records)).read_text())
        add(
            "vietnamese patient questions + templated answers",
            [_chat(q["sentence"].replace("_", " "), rng.choice(ANSWERS_VI)) for q in questions],
        )
    return records[:n], counts


def _checkout_files() -> set[str]:
    """Untracked and ignored files in the checkout (byte-code, tool caches and bench results aside): what a
    run could add."""
    lines = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    paths = {line[3:] for line in lines if line[:2] in ("??", "!!")}
    tools = ("bench/results/", ".ruff_cache/", ".pytest_cache/")  # a developer's linter running beside the bench
    return {p for p in paths if "__pycache__" not in p and not p.startswith(tools)}


def _one(name: str, data: Path, task: str, work: Path) -> dict:
    home = work / "home"
    pipeline = work / f"{name}.yaml"
    out: dict = {"set": name}
    code, seconds, log = _curate(["init", str(data), "--task", task, "-o", str(pipeline), "--name", name], work, home)
    out["init"] = {"exit": code, "seconds": seconds}
    if code:
        return {**out, "error": log[-2000:]}
    code, seconds, log = _curate(["run", str(pipeline), "-q"], work, home)
    out["run"] = {"exit": code, "seconds": seconds}
    if code:
        return {**out, "error": log[-2000:]}
    exported = work / f"export_{name}"
    code, seconds, log = _curate(
        ["export", f"shards://{name}@latest", "--to", "llamafactory", "-o", str(exported)], work, home
    )
    out["export"] = {"exit": code, "seconds": seconds}
    if not code:
        import polars as pl

        shards = pl.read_parquet(work / "out" / name / "data" / "*.parquet")["split"].value_counts()
        parts = json.loads((exported / "export.json").read_text())["parts"]
        written = {p["split"]: sum(1 for _ in open(exported / p["file"], encoding="utf-8")) for p in parts}
        out["export"]["rows"] = {s: {"shards": n, "written": written.get(s)} for s, n in shards.iter_rows()}
    target = work / f"train_{name}"
    code, seconds, log = _curate(
        ["train", "run", str(CONFIG), "--shards", f"shards://{name}@latest", "--output-dir", str(target)], work, home
    )
    out["train"] = {"exit": code, "seconds": seconds}
    report_path = target / "train_report.json"
    if not report_path.is_file():
        return {**out, "error": log[-2000:]}
    report = json.loads(report_path.read_text())
    out["train"].update(
        task=report["task"],
        steps=report["steps"],
        records=report["examples"]["train"]["records"],
        seconds_per_step=report["throughput"]["seconds_per_step"],
        tokens_per_s=report["throughput"]["tokens_per_s"],
        eval_loss=report["eval_loss"],
        evaluation=report["evaluation"],
    )
    if report["task"] == "classification":
        m = report["classification"]
        out["classification"] = {
            k: m[k] for k in ("split", "records", "accuracy", "macro_f1", "per_label", "strata_columns", "reversals")
        }
    else:
        stop = report["stop_check"]
        out["stop_check"] = {
            k: stop[k] for k in ("passed", "stop_rate", "answers", "median_length_ratio", "warning", "task")
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["classification", "sft"])
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.onboarding_sets import patient_questions

    before = _checkout_files()
    results = []
    with tempfile.TemporaryDirectory(prefix="curate-train-bench-") as tmp:
        work = Path(tmp)
        if args.only in (None, "classification"):
            results.append(
                _one("vimq_like", patient_questions(work / "vimq_like.json", n=7000), "classification", work)
            )
        if args.only in (None, "sft"):
            records, counts = instruction_records(8000)
            path = work / "instructions_8k.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            results.append({**_one("instructions_8k", path, "sft", work), "records": len(records), "sources": counts})
    import torch

    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": f"{os.cpu_count()} CPU cores" if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "config": str(CONFIG.relative_to(REPO)),
        "written_inside_checkout": sorted(_checkout_files() - before),
        "sets": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_tasks.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print("\n".join(table(result)))


def _export_cell(e: dict) -> str:
    rows = e.get("rows")
    if not rows:
        return f"exit {e.get('exit')}"
    same = all(v["shards"] == v["written"] for v in rows.values())
    return ("yes: " if same else "NO: ") + ", ".join(f"{s} {v['written']:,}" for s, v in sorted(rows.items()))


def table(r: dict | None) -> list[str]:
    """The lines bench/results/README.md and the README show."""
    if not r:
        return []
    inside = r.get("written_inside_checkout", [])
    lines = [
        "## training tasks: init → run → `train run configs/train/default.yaml`",
        "",
        f"bench/train_tasks.py, {r['date'][:10]}, {r['device']}, torch {r['torch']}; nothing written inside the "
        f"checkout: {'yes' if not inside else 'NO: ' + ', '.join(inside[:5])}.",
        "",
        "| set | task | init / run / train s | steps | s/step | eval loss before → after | result "
        "| export rows = shards |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in r["sets"]:
        t = s.get("train", {})
        if "error" in s:
            lines.append(f"| {s['set']} | – | – | – | – | – | error: {s['error'][-120:]!r} |")
            continue
        if "classification" in s:
            c = s["classification"]
            per = ", ".join(f"{k} {v['f1']:.3f}" for k, v in c["per_label"].items())
            result = f"{c['split']}: accuracy {c['accuracy']:.3f}, macro-F1 {c['macro_f1']:.3f} (F1 {per})"
        else:
            st = s["stop_check"]
            result = (
                f"stop check {'passed' if st['passed'] else 'FAILED'}: {st['stop_rate']:.0%} well formed, median "
                f"length {st['median_length_ratio']}x the reference's"
            )
        lines.append(
            f"| {s['set']} ({t.get('records', 0):,} train records) | {t.get('task')} | {s['init']['seconds']} / "
            f"{s['run']['seconds']} / {t.get('seconds')} | {t.get('steps')} | {t.get('seconds_per_step')} | "
            f"{t['eval_loss']['before']} → {t['eval_loss']['after']} | {result} | {_export_cell(s.get('export', {}))} |"
        )
    return lines


if __name__ == "__main__":
    main()
