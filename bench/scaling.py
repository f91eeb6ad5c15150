"""Local executor vs Ray: the default pipeline (pipelines/demo.yaml, the demo corpus) run by the
local executor with 2 worker processes (the baseline, as `make curate` runs it) and with 1, and by
the Ray executor on a Ray instance it starts on this machine with 1 and with 2 workers, one after
the other in the same session. Reported as docs/s and as ratios to the baseline; each Ray run's wall time
includes starting Ray, which is also timed on its own. All three must publish the same version.

Also timed (`reading`), each on one core: a worker parsing the input files into read parts, the
driver planning the batches from their ids (all the driver still does of reading: the rate at which
it can feed the cluster, the limit the README's estimate starts from) and a worker reading a batch
back. `python -m bench.scaling 20000 --reading-only` measures only these.

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
from curate.io.readers import ReadUnit, load_batch, plan_batches, read_columns, read_unit, unit_dir
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


def _reading(pipeline, folder: Path) -> dict:
    """The three parts of reading the input, each on one core: a worker parsing its files into read
    parts (`read_unit`), the driver planning the batches from the parts' ids (`plan_batches`, the only
    part of reading left in the driver: the rate at which it can feed a cluster), and a worker reading
    a planned batch back (`load_batch`)."""
    spec = pipeline.spec
    files = resolve_inputs(pipeline, None)
    columns = read_columns(files)
    timed = {}
    start = time.perf_counter()
    summaries = [
        read_unit(ReadUnit(i, f), unit_dir(folder, i), columns, spec.limits.max_record_bytes)
        for i, f in enumerate(files)
    ]
    timed["worker_read"] = time.perf_counter() - start
    start = time.perf_counter()
    plan = list(plan_batches(summaries, spec.batch_size, columns))
    timed["driver_plan"] = time.perf_counter() - start
    start = time.perf_counter()
    for index, source in plan:
        load_batch(index, source)
    timed["worker_load"] = time.perf_counter() - start
    docs = sum(s["rows_in"] for s in summaries)
    return {
        "docs": docs,
        "batches": len(plan),
        **{f"{k}_docs_per_s": round(docs / v, 1) for k, v in timed.items()},
        "read_part_bytes_per_doc": round(sum(p.stat().st_size for p in folder.glob("u-*/*.parquet")) / docs, 1),
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


def main(records: int, reading_only: bool = False) -> None:
    work = Path(tempfile.mkdtemp(prefix="curate-bench-scaling-"))
    old_home = os.environ.get("CURATE_HOME")
    os.environ["CURATE_HOME"] = str(work / "home")
    try:
        pipeline = load_pipeline(_pipeline(work, records))
        if reading_only:  # only the reading figures, the rest of scaling.json kept
            path = RESULTS / "scaling.json"
            out = {**json.loads(path.read_text()), "reading": _reading(pipeline, work / "reading")}
            out["reading"]["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            out.pop("driver_reader", None)
            path.write_text(json.dumps(out, indent=2) + "\n")
            print(json.dumps(out["reading"], indent=2))
            return
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
        reading = _reading(pipeline, work / "reading")
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
            "reading": reading,
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
    args = [a for a in sys.argv[1:] if a != "--reading-only"]
    main(int(args[0]) if args else 20_000, reading_only="--reading-only" in sys.argv)
