"""Sensitivity check: the exact what-if replay vs a full rerun per relaxed criterion.

Runs the default six-stage pipeline on the demo corpus (which computes the sensitivity table),
then, in the same session, reruns the whole pipeline with each of three criteria relaxed
(balance strategy off, near dedup off, decontamination off) and checks the replay's kept
count against the rerun's. Results: bench/results/sensitivity.json.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from curate.catalog import Catalog
from curate.config import load_pipeline
from curate.engine import run_pipeline

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
RELAXED = {
    "balance strategy downsample": {"balance": {"strategy": "none"}},
    "near dedup": {"dedup": {"near": False}},
    "split decontamination": {"split": {"decontamination": {"action": "off"}}},
}


def _pipeline(folder: Path, name: str, records: int, params: dict, sensitivity: bool) -> Path:
    stages = []
    for stage in ("normalize", "langid", "quality", "dedup", "balance", "split"):
        spec = {"stage": stage, "rules": str(REPO / "rules" / stage / "default.yaml")}
        if stage in params:
            spec["params"] = params[stage]
        stages.append(spec)
    spec = {
        "name": name,
        "seed": 13,
        "workers": 2,
        "sensitivity": sensitivity,
        "inputs": [{"demo": {"records": records, "seed": 13}, "columns": ["domain"]}],
        "stages": stages,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def main(records: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        catalog = Catalog(folder / "home")
        start = time.perf_counter()
        base = run_pipeline(
            load_pipeline(_pipeline(folder, "base", records, {}, True)), out_dir=folder / "base", catalog=catalog
        )
        total = time.perf_counter() - start
        table = {r["criterion"]: r for r in base.manifest["sensitivity"]}
        replay_seconds = sum(r["seconds"] for r in table.values())
        rows = []
        for criterion, params in RELAXED.items():
            start = time.perf_counter()
            rerun = run_pipeline(
                load_pipeline(_pipeline(folder, "relaxed", records, params, False)),
                out_dir=folder / "relaxed",
                catalog=catalog,
                force=True,
            )
            seconds = time.perf_counter() - start
            row = table[criterion]
            rows.append(
                {
                    "criterion": criterion,
                    "replay_seconds": row["seconds"],
                    "rerun_seconds": round(seconds, 3),
                    "speed_vs_rerun": round(seconds / row["seconds"], 1),
                    "replay_kept": row["kept_without"],
                    "rerun_kept": rerun.manifest["rows"]["kept"],
                    "agree": row["kept_without"] == rerun.manifest["rows"]["kept"],
                }
            )
    mean_rerun = sum(r["rerun_seconds"] for r in rows) / len(rows)
    result = {
        "benchmark": "sensitivity: exact replay vs full rerun per criterion",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": 2},
        "records": records,
        "pipeline_seconds_with_sensitivity": round(total, 3),
        "criteria": len(table),
        "replay_seconds_all_criteria": round(replay_seconds, 3),
        "rerun_seconds_all_criteria_estimated": round(mean_rerun * len(table), 1),
        "speed_vs_rerun_all_criteria": round(mean_rerun * len(table) / replay_seconds, 1),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sensitivity.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
