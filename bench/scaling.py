"""Local executor vs Ray: the default pipeline (pipelines/demo.yaml, the demo corpus) run by the
local executor with 2 worker processes (the baseline, as `make curate` runs it) and with 1, and by
the Ray executor on a Ray instance it starts on this machine with 1 and with 2 workers, one after
the other in the same session. Reported as docs/s and as ratios to the baseline; each Ray run's wall time
includes starting Ray, which is also timed on its own. All three must publish the same version.

Also timed: the driver's reader alone (parse the inputs, quarantine, write each batch as Parquet
for the workers, as the Ray executor's driver does), on one core: the rate at which it can feed
the cluster, the limit the README's estimate starts from.

Also written: what the Ray executor moves per million documents (for the README's scaling
estimate), computed from the default rules: dedup's shuffled (band, bucket) keys, the signatures
and shingle sets its sketch tasks return. Results: bench/results/scaling.json.
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
from curate.engine import run_pipeline
from curate.io.readers import read_batches
from curate.io.shards import write_parquet
from curate.io.sources import resolve_inputs
from curate.minhash import lsh_params
from curate.stages.dedup import DedupRules

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def _pipeline(folder: Path, records: int) -> Path:
    """pipelines/demo.yaml with absolute rule paths (and `records` demo records)."""
    spec = yaml.safe_load((REPO / "pipelines" / "demo.yaml").read_text())
    spec["inputs"][0]["demo"]["records"] = records
    for stage in spec["stages"]:
        stage["rules"] = str((REPO / "pipelines" / stage["rules"]).resolve())
    for gate in spec.get("gates", []):
        gate["rules"] = str((REPO / "pipelines" / gate["rules"]).resolve())
    spec["output"].pop("dir", None)
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _ray_startup() -> float:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.shutdown()
    return time.perf_counter() - start


def _reader_throughput(pipeline, folder: Path) -> dict:
    """Docs/s of the driver's part of a Ray run's first segment: read + quarantine + write batches."""
    spec = pipeline.spec
    files = resolve_inputs(pipeline, None)
    start = time.perf_counter()
    docs = 0
    for batch in read_batches(files, spec.batch_size, spec.limits.max_record_bytes):
        write_parquet(batch.records, folder / f"b-{batch.index:05d}.parquet", level=1)
        docs += batch.rows_in
    seconds = time.perf_counter() - start
    return {
        "docs": docs,
        "seconds": round(seconds, 2),
        "docs_per_s": round(docs / seconds, 1),
        "bytes_per_doc_as_parquet": round(sum(p.stat().st_size for p in folder.glob("*.parquet")) / docs, 1),
    }


def _shuffle_estimate() -> dict:
    rules = DedupRules.model_validate(yaml.safe_load((REPO / "rules" / "dedup" / "default.yaml").read_text()) or {})
    bands, rows = lsh_params(rules.threshold, rules.num_perm, rules.bands, rules.rows, rules.false_negative_weight)
    per_doc_keys = bands * (rows * 4 + 8)  # each band's values + the record's position, per record
    return {
        "num_perm": rules.num_perm,
        "bands": bands,
        "rows": rows,
        "dedup_shuffle_bytes_per_doc": per_doc_keys,
        "dedup_shuffle_mb_per_million_docs": round(per_doc_keys * 1e6 / 2**20, 1),
        "signature_mb_per_million_docs": round(rules.num_perm * 4 * 1e6 / 2**20, 1),
    }


def main(records: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="curate-bench-scaling-"))
    old_home = os.environ.get("CURATE_HOME")
    os.environ["CURATE_HOME"] = str(work / "home")
    try:
        pipeline = load_pipeline(_pipeline(work, records))
        runs = []
        for label, executor, workers in [
            ("local, 2 workers", "local", 2),
            ("local, 1 worker", "local", 1),
            ("ray, 1 worker", "ray", 1),
            ("ray, 2 workers", "ray", 2),
        ]:
            start = time.perf_counter()
            result = run_pipeline(
                pipeline,
                out_dir=work / label.replace(", ", "-").replace(" ", ""),
                executor=executor,
                workers=workers,
                force=True,
                catalog=Catalog(),
            )
            seconds = time.perf_counter() - start
            rows = result.manifest["rows"]
            runs.append(
                {
                    "run": label,
                    "executor": executor,
                    "workers": workers,
                    "seconds": round(seconds, 2),
                    "docs_per_s": round(rows["input"] / seconds, 1),
                    "input": rows["input"],
                    "kept": rows["kept"],
                    "version": result.manifest["version"],
                }
            )
            print(
                f"{label}: {seconds:.1f} s, {rows['input'] / seconds:.0f} docs/s, {result.manifest['version']}",
                flush=True,
            )
        local = {r["workers"]: r["docs_per_s"] for r in runs if r["executor"] == "local"}
        for r in runs:
            r["vs_local_2_workers"] = round(r["docs_per_s"] / local[2], 3)
            r["vs_local_same_workers"] = round(r["docs_per_s"] / local[r["workers"]], 3)
        startup = _ray_startup()
        reader = _reader_throughput(pipeline, work / "reader")
        out = {
            "benchmark": "scaling",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "pipeline": (
                "pipelines/demo.yaml (normalize, pii, langid, quality, dedup, balance, split, gates, sensitivity)"
            ),
            "records": records,
            "runs": runs,
            "same_version": len({r["version"] for r in runs}) == 1,
            "ray_startup_seconds": round(startup, 2),
            "driver_reader": reader,
            "moved_per_million_docs": _shuffle_estimate(),
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "scaling.json").write_text(json.dumps(out, indent=2) + "\n")
        print(json.dumps(out, indent=2))
    finally:
        if old_home is None:
            os.environ.pop("CURATE_HOME", None)
        else:
            os.environ["CURATE_HOME"] = old_home
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
