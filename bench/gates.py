"""What the quality gates cost: the same pipeline on the same 100k-document corpus, run once
without gates (the baseline) and once with the default gates (rules/gates/demo.yaml, less
the pii_residual check: the pipeline has no pii stage, which would take ~15 min at this size).
Each variant runs twice, alternating; the faster run of each is compared.

Pipeline: normalize -> langid -> quality -> dedup -> balance -> split, 2 workers, sensitivity
replay off (so the pipeline is as cheap as it gets and the gates' share is not flattered).
The gates include the independent 13-gram leakage check over all train/held-out pairs, the
PII pattern scan of every published record (which fails, as it should: nothing removed PII here)
and GX's Data Docs. Goal: gates < 10% of the
pipeline's time. Results: bench/results/gates.json.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from curate.catalog import Catalog
from curate.config import load_pipeline
from curate.demo.generator import generate
from curate.engine import run_pipeline

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
STAGES = ("normalize", "langid", "quality", "dedup", "balance", "split")
ROUNDS = 2  # each variant runs twice; the faster run of each is compared


def _pipeline(folder: Path, corpus: Path, gates: bool) -> Path:
    spec = {
        "name": "bench-gates",
        "seed": 1,
        "workers": 2,
        "batch_size": 2000,
        "sensitivity": False,
        "inputs": [{"path": str(corpus), "columns": ["domain"]}],
        "stages": [{"stage": s, "rules": str(REPO / "rules" / s / "default.yaml")} for s in STAGES],
    }
    if gates:
        rules = yaml.safe_load((REPO / "rules" / "gates" / "demo.yaml").read_text())
        rules["expectations"] = [r for r in rules["expectations"] if "pii_residual" not in r]
        (folder / "gates.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
        spec["gates"] = [{"rules": str(folder / "gates.yaml")}]
    path = folder / f"pipeline-{'gates' if gates else 'plain'}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def main(records: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="curate-bench-gates-"))
    try:
        corpus = work / "corpus"
        generate(corpus, records, seed=2024)
        times: dict[bool, list[float]] = {False: [], True: []}
        manifest = {}
        for _ in range(ROUNDS):  # alternating, so drift on a shared machine hits both alike
            for gates in (False, True):
                start = time.perf_counter()
                result = run_pipeline(
                    load_pipeline(_pipeline(work, corpus, gates)),
                    out_dir=work / f"out-{gates}",
                    force=True,
                    catalog=Catalog(work / "_catalog"),
                )
                times[gates].append(time.perf_counter() - start)
                if gates:
                    manifest = result.manifest
        plain, with_gates = min(times[False]), min(times[True])
        g = manifest["gates"][0]
        out = {
            "benchmark": "gates: cost of the default quality gates on the final shards",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "corpus": {
                "generator_records": records,
                "input_rows": manifest["rows"]["input"],
                "published_rows": g["rows"],
            },
            "pipeline": list(STAGES),
            "baseline_pipeline_seconds": round(plain, 2),
            "pipeline_with_gates_seconds": round(with_gates, 2),
            "all_runs_seconds": {
                "without_gates": [round(t, 2) for t in times[False]],
                "with_gates": [round(t, 2) for t in times[True]],
            },
            "gates_seconds": g["seconds"],
            # the gates' own time (measuring, GX validation, Data Docs; GX's import overlaps the stages)
            "gates_share_of_pipeline": round(g["seconds"] / plain, 4),
            "wall_clock_overhead": round(with_gates / plain - 1, 4),
            "checks": len(g["checks"]),
            "counts": g["counts"],
            "status": manifest["status"],
            # expected: this pipeline has no pii stage, so the independent pattern scan finds PII
            "failed_checks": [
                f"{c['rule']}: {c['expected']}; observed {c['observed']}" for c in g["checks"] if c["status"] == "fail"
            ],
            "goal": "gates < 10% of pipeline time",
        }
        (RESULTS / "gates.json").write_text(json.dumps(out, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
