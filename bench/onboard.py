"""Your own data, not the demo: `curate init FILE` then `curate run` on real sets nobody here wrote, beside
what a user got before (the demo pipeline with `--input`), and the cost of keeping a version in the store.

Sets: ../shared/data/real-sft (GPTeacher role-play, Code Alpaca), FastChat's ShareGPT identity
conversations, self-instruct's seed tasks (a layout no table knows: init must guess), a hand-written
GSM8K-style question/answer file (tests/onboarding_sets.py) and Python's help topics as documents.
For each: the layout and task init chose, the seconds init took, then the run's exit code, rows kept,
splits, the gates, and the top drop reasons; beside it `curate run pipelines/demo.yaml --input FILE`.
Store: `shards keep` of Code Alpaca's published version by hard links against a full copy (seconds,
bytes). Results: bench/results/onboard.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"


def _sets(work: Path) -> dict[str, Path]:
    sys.path.insert(0, str(REPO))
    from tests.onboarding_sets import gsm8k_file, pydoc_documents

    sets = {
        "gpteacher_roleplay": SHARED / "real-sft" / "gpteacher_roleplay.json",
        "code_alpaca_2k": SHARED / "real-sft" / "code_alpaca_2k.json",
        "dummy_conversation": SHARED / "fastchat-bench" / "dummy_conversation.json",
        "seed_tasks": SHARED / "self-instruct" / "seed_tasks.jsonl",
    }
    sets = {k: v for k, v in sets.items() if v.is_file()}
    sets["gsm8k_style"] = gsm8k_file(work / "gsm8k_style.jsonl")
    sets["pydoc_topics"] = pydoc_documents(work / "pydoc_topics.jsonl")
    return sets


def _curate(args: list[str], cwd: Path, home: Path) -> tuple[int, float, str]:
    env = {**os.environ, "CURATE_HOME": str(home), "COLUMNS": "200"}
    start = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "curate", *args], cwd=cwd, env=env, capture_output=True, text=True)
    return p.returncode, round(time.perf_counter() - start, 1), p.stdout + p.stderr


def _outcome(out: Path) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    failed = [c["rule"] for g in manifest["gates"] for c in g["checks"] if c["status"] == "fail"]
    reasons = {}
    for a in manifest["accounting"]:
        reasons.update({f"{a['stage']}:{k}": v for k, v in a["reasons"].items()})
    splits = {}
    if (out / "report.json").is_file():
        report = json.loads((out / "report.json").read_text())
        splits = next((s["sizes"] for s in report.get("splits", []) if "sizes" in s), {})
    return {
        "name": manifest["name"],
        "status": manifest["status"],
        "input": manifest["rows"]["input"],
        "kept": manifest["rows"]["kept"],
        "splits": splits,
        "failed_gates": failed,
        "top_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:4]),
    }


def onboard(work: Path) -> list[dict]:
    rows = []
    for name, path in _sets(work).items():
        folder = work / name
        folder.mkdir()
        home = folder / "home"
        rc_init, t_init, text = _curate(["init", str(path), "-o", "p.yaml"], folder, home)
        header = (folder / "p.yaml").read_text().splitlines() if rc_init == 0 else []
        decisions = {
            line[2:].split(":")[0]: line[2:].split(":", 1)[1].split(" — ")[0].strip()
            for line in header
            if line.startswith("# ") and " — " in line
        }
        rc_run, t_run, _ = _curate(["run", "p.yaml", "-q"], folder, home)
        row = {
            "set": name,
            "file": path.name,
            "init_exit": rc_init,
            "init_seconds": t_init,
            "layout": decisions.get("layout"),
            "task": decisions.get("task"),
            "languages": decisions.get("languages"),
            "decisions": len(decisions),
            "run_exit": rc_run,
            "run_seconds": t_run,
            "run": _outcome(folder / "out" / name) if (folder / "out" / name / "manifest.json").is_file() else None,
        }
        before = folder / "before"
        before.mkdir()
        rc_before, _, _ = _curate(
            ["run", str(REPO / "pipelines" / "demo.yaml"), "--input", str(path), "-q", "-w", "1"], before, home
        )
        row["before"] = {
            "pipeline": "pipelines/demo.yaml --input FILE",
            "run_exit": rc_before,
            "run": _outcome(before / "out" / name) if (before / "out" / name / "manifest.json").is_file() else None,
        }
        rows.append(row)
    return rows


def store_cost(work: Path) -> dict | None:
    """`shards keep` by hard links against copying the files, on one published version."""
    from curate.catalog import Catalog
    from curate.io.outputs import keep_copy

    folder = work / "code_alpaca_2k"
    home = folder / "home"
    if not (folder / "out" / "code_alpaca_2k" / "manifest.json").is_file():
        return None
    entry = Catalog(home).resolve("code_alpaca_2k@latest")
    files = [f["path"] for f in entry.manifest()["files"]]
    size = sum(f["bytes"] for f in entry.manifest()["files"])
    timings = {}
    for variant, link in (("hard links", True), ("copy", False)):
        dest = work / f"store-{variant.replace(' ', '-')}"
        best = None
        for _ in range(5):
            start = time.perf_counter()
            linked, copied = keep_copy(entry.path, dest, files, link=link)
            seconds = time.perf_counter() - start
            best = seconds if best is None else min(best, seconds)
        timings[variant] = {"seconds": round(best, 4), "files_linked": linked, "bytes_copied": copied}
    ratio = round(timings["copy"]["seconds"] / max(timings["hard links"]["seconds"], 1e-9), 1)
    return {
        "version": entry.ref,
        "files": len(files),
        "bytes": size,
        "variants": timings,
        "copy_vs_links_seconds": ratio,
    }


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="curate-bench-onboard-"))
    try:
        result = {
            "benchmark": "curate init + curate run on data nobody here wrote, beside the demo pipeline with --input",
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "machine": {"cpus": os.cpu_count()},
            "rows": onboard(work),
            "store": store_cost(work),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "onboard.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
