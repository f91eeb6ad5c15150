"""The pii stage's speed beside the code before issue 33, in one run (issue 33, point 6).

Two inputs, built once with this code and read by both: the demo generator's records (4,000, seed 7)
and every real set of ../shared/data (bench/pii_precision.py's sets but the OS's manuals), each record
read, normalised and given its language by the langid stage, as `pipelines/sft.yaml` now runs them
(langid before pii). Each tree's `pii` stage (rules/pii/default.yaml of that tree) processes the same
records in a fresh process of its own, one at a time: CPU seconds (per core: the stage's own threads
included, so a BLAS pool that spreads over both cores counts twice) and wall seconds, after a
warm-up on 50 records. The baseline is a git worktree of BASELINE.
Results: bench/results/pii_sidebyside.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.pii_common import REPO, commit

RESULT = REPO / "bench" / "results" / "pii_sidebyside.json"
BASELINE = "f74dea1"  # the last commit before issue 33's work on the pii stage
RECORDS = 2000  # of each input

TIMER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import polars as pl
from pathlib import Path
from curate.schema import load_rules
from curate.stages.base import StageContext
from curate.stages.pii import PiiRules, PiiStage

rules = PiiRules.model_validate(load_rules(Path(sys.argv[1]) / "rules/pii/default.yaml"))
stage = PiiStage("pii", rules, StageContext(seed=3))
stage.setup()
df = pl.read_parquet(sys.argv[2])
stage.process(df.head(50))
cpu, wall = time.process_time(), time.perf_counter()
out = stage.process(df)
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
before = zip(df["text"].to_list(), df["messages"].to_list())
after = zip(out["text"].to_list(), out["messages"].to_list())
changed = sum(1 for a, b in zip(before, after) if a != b)
print(json.dumps({"records": df.height, "cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 2),
                  "changed": changed}))
"""


def inputs(folder: Path) -> dict[str, Path]:
    """The two inputs as Parquet files: records with their language, as the pii stage receives them."""
    import polars as pl
    import yaml

    from bench import pii_precision
    from curate.config import load_pipeline
    from curate.executor import build_stages
    from curate.io.readers import read_batches
    from curate.io.sources import resolve_inputs
    from curate.stages.base import StageContext

    spec = {
        "name": "speed",
        "inputs": [{"demo": {"records": 4000, "seed": 7}}],
        "stages": [
            {"stage": "normalize", "rules": str(REPO / "rules/normalize/default.yaml")},
            {"stage": "langid", "rules": str(REPO / "rules/langid/default.yaml")},
        ],
    }
    (folder / "speed.yaml").write_text(yaml.safe_dump(spec))
    pipeline = load_pipeline(folder / "speed.yaml")
    stages = build_stages(pipeline.stages, StageContext())
    demo = pl.concat([b.records for b in read_batches(resolve_inputs(pipeline), 10**9, 2_000_000)])
    for s in pipeline.stages:
        demo = stages[s.name].process(demo)
    real = pl.concat(
        [
            stages["langid"].process(pii_precision.frame(name, records))
            for name, records in pii_precision.sets().items()
            if not name.startswith("os/debian")
        ],
        how="diagonal_relaxed",
    )
    keep = ["id", "text", "messages", "lang"]
    paths = {"demo": folder / "demo.parquet", "real": folder / "real.parquet"}
    demo.select(keep).head(RECORDS).write_parquet(paths["demo"])
    real.select(keep).sample(min(RECORDS, real.height), seed=33).write_parquet(paths["real"])
    return paths


def timed(tree: Path, data: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", TIMER, str(tree), str(data)],
        cwd=tempfile.gettempdir(),  # not the checkout: the tree named is the code imported
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(baseline: str = BASELINE) -> dict:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        old = folder / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), baseline], cwd=REPO, check=True, capture_output=True
        )
        try:
            paths = inputs(folder)
            results = {}
            for name, path in paths.items():
                before, now = timed(old, path), timed(REPO, path)
                results[name] = {
                    "baseline": before,
                    "now": now,
                    "cpu_speedup": round(before["cpu_seconds"] / now["cpu_seconds"], 2),
                    "wall_speedup": round(before["wall_seconds"] / now["wall_seconds"], 2),
                }
                print(f"{name}: {results[name]}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO, check=False)
    result = {
        "benchmark": "the pii stage (default profile) beside the code before issue 33, same records, one process each",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(),
        "baseline": baseline,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "inputs": {
            "demo": f"{RECORDS:,} demo records (generator seed 7) after normalize and langid",
            "real": f"{RECORDS:,} records sampled (seed 33) from every real set of ../shared/data and the OS's "
            "pydoc topics and Vietnamese UI strings, after langid",
        },
        "results": results,
        "seconds": round(time.perf_counter() - start, 1),
    }
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    return result


def table(r: dict | None) -> list[str]:
    """The side-by-side speed as a markdown table."""
    if not r:
        return []
    lines = [
        "## pii_sidebyside: the pii stage beside the code before issue 33",
        "",
        f"`bench/pii_sidebyside.py`, {r['date']}, code {r['commit']} beside {r['baseline']}, "
        f"{r['machine']['cpus']} CPUs, the same records in one process each.",
        "",
        "| input | records | CPU s before | CPU s now | per core | wall s before | wall s now | wall "
        "| changed before | changed now |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, x in r["results"].items():
        b, n = x["baseline"], x["now"]
        lines.append(
            f"| {name} | {n['records']:,} | {b['cpu_seconds']} | {n['cpu_seconds']} | **{x['cpu_speedup']}x** | "
            f"{b['wall_seconds']} | {n['wall_seconds']} | {x['wall_speedup']}x | {b['changed']:,} | {n['changed']:,} |"
        )
    return lines + [""]


if __name__ == "__main__":
    print("\n".join(table(main(*sys.argv[1:2]))))
