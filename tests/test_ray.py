"""The Ray executor on a local Ray cluster (loopback): the same shards, rejected rows and accounting
as the local executor on the demo corpus, also when a worker is killed mid-stage."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from curate.config import load_pipeline
from curate.engine import run_pipeline
from tests.conftest import RULES, run, write_pipeline

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

# One Ray cluster for the module; xdist keeps the module's tests in one worker (see Makefile).
pytestmark = pytest.mark.xdist_group("ray")

STAGES = ["normalize", "pii", "langid", "quality", "dedup", "balance", "split"]


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report to ray.io from the tests
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    """The default pipeline's stages on an 800-record demo corpus, in batches of 100."""
    folder = tmp_path_factory.mktemp("ray_pipeline")
    stages = [{"stage": s, "rules": str(RULES / s / "default.yaml")} for s in STAGES]
    return write_pipeline(
        folder,
        [{"demo": {"records": 800, "seed": 5}, "columns": ["domain"]}],
        stages,
        name="demo",
        batch_size=100,
        workers=2,
        output={"shard_rows": 300},
        sensitivity=False,
    )  # the replay runs in the driver either way


@pytest.fixture(scope="module")
def local_run(pipeline, tmp_path_factory):
    return run(pipeline, tmp_path_factory.mktemp("local") / "out")


def _published(result) -> dict[str, str]:
    """Every data, rejected and signature file the run published, with its sha256."""
    return {f["path"]: f["sha256"] for f in result.manifest["files"]}


def _accounting(result) -> list[dict]:
    return [{k: v for k, v in a.items() if k != "seconds"} for a in result.manifest["accounting"]]


def _assert_same(ray_run, local_run) -> None:
    assert ray_run.manifest["machine"]["executor"]["kind"] == "ray"
    assert ray_run.manifest["version"] == local_run.manifest["version"]
    assert _published(ray_run) == _published(local_run)  # same rows, same order, same bytes
    assert _accounting(ray_run) == _accounting(local_run)
    assert ray_run.manifest["stage_summaries"] == local_run.manifest["stage_summaries"]


def _map_workers() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "MapWorker" in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_ray_gives_the_local_shards_and_accounting_also_when_a_worker_is_killed_mid_stage(
    cluster, pipeline, local_run, tmp_path
):
    """One Ray run, with one map worker killed mid-segment: Ray retries its batches, and the shards,
    rejected rows, accounting, summaries and catalog version are the local executor's, byte for byte."""
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_one_worker_after_the_first_batch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            done = list(out.glob("_work/*/seg-00/b-*/done.json"))
            workers = _map_workers()
            if done and workers and len(done) < 8:  # mid-segment: some batches done, others not
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker_after_the_first_batch, daemon=True)
    killer.start()
    result = run(pipeline, out, executor="ray")
    killer.join(timeout=1)
    assert killed, "no worker was killed: the test did not exercise a failure"
    _assert_same(result, local_run)
    dedup = {a["stage"]: a for a in result.manifest["accounting"]}["dedup"]
    assert dedup["reasons"].get("near_duplicate") and dedup["reasons"].get("exact_duplicate"), (
        "the demo corpus has both kinds of duplicates: the comparison must cover dedup clusters"
    )
    assert result.entry.version == local_run.entry.version  # other projects cannot tell the runs apart


def test_executor_is_not_part_of_the_cache_key_but_is_recorded(cluster, pipeline, local_run):
    """Both executors give the same shards, so a Ray rerun of a finished local run is a cache hit."""
    result = run_pipeline(load_pipeline(pipeline), out_dir=local_run.out_dir, executor="ray")
    assert result.cached and result.manifest["version"] == local_run.manifest["version"]
    assert json.loads((local_run.out_dir / "manifest.json").read_text())["machine"]["executor"]["kind"] == "local"


def test_dedup_shuffle_on_ray_tasks_matches_in_process(cluster, monkeypatch, tmp_path):
    """Dedup's sketch tasks and (band, bucket) shuffle on the cluster give the in-process result."""
    from curate.ray_executor import RayPool
    from tests.test_dedup import dedup_with_pool, spread_case

    df, rules = spread_case()
    monkeypatch.setattr("curate.stages.dedup.MIN_CHUNK", 50)
    assert dedup_with_pool(df, rules, RayPool(2, {"CURATE_HOME": str(tmp_path)})).equals(
        dedup_with_pool(df, rules, None)
    )


def test_decontamination_shuffle_on_ray_tasks_matches_in_process(cluster, monkeypatch, tmp_path):
    """split's n-gram hashing tasks and n-gram shuffle on the cluster give the in-process result."""
    from curate.ray_executor import RayPool
    from tests.test_split import split_case, split_with_pool

    df, rules = split_case()
    monkeypatch.setattr("curate.stages.split.MIN_CHUNK", 100)
    got, got_summary = split_with_pool(df, rules, RayPool(2, {"CURATE_HOME": str(tmp_path)}))
    expected, summary = split_with_pool(df, rules, None)
    assert got.equals(expected) and got_summary == summary


def test_retrieval_on_ray_tasks_matches_in_process(cluster, monkeypatch, tmp_path):
    """retrieve's embed-and-search tasks (GPU workers on a GPU cluster) against one broadcast index
    give the in-process result, chunk for chunk."""
    from curate.ray_executor import RayPool
    from tests.test_retrieve import retrieve_with_pool

    folder = tmp_path / "seeds.jsonl"
    rows = [
        {"id": f"s{i}", "text": t}
        for i, t in enumerate(
            [
                "Wash your hands before meals.",
                "Take the tablets with water.",
                "Call the clinic if the fever lasts three days.",
            ]
        )
    ]
    folder.write_text("".join(json.dumps(r) + "\n" for r in rows))
    import polars as pl

    texts = [
        f"Document {i}: " + ("rest and drink fluids while the fever lasts" if i % 2 else "buy cheap watches online now")
        for i in range(90)
    ]
    df = pl.DataFrame(
        {"id": [f"d{i}" for i in range(90)], "text": texts, "messages": [None] * 90},
        schema_overrides={"messages": pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))},
    )
    monkeypatch.setattr("curate.stages.retrieve.CHUNK", 30)
    rules = {"select": {"by": "top_fraction", "value": 0.5}, "index": "hnsw"}
    got, summary = retrieve_with_pool(df, folder, RayPool(2, {"CURATE_HOME": str(tmp_path)}), **rules)
    expected, _ = retrieve_with_pool(df, folder, None, **rules)
    assert got.drop("retrieval_score", "retrieval_score_mean").equals(
        expected.drop("retrieval_score", "retrieval_score_mean")
    )
    np.testing.assert_allclose(got["retrieval_score"].to_numpy(), expected["retrieval_score"].to_numpy(), atol=1e-6)
    assert summary["backend"] == "faiss-cpu hnsw"


def test_cli_runs_a_pipeline_on_ray_and_a_stage_error_surfaces_as_itself(cluster, tmp_path):
    from typer.testing import CliRunner

    from curate.cli import app

    corpus = tmp_path / "in.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"text": f"Doc {i}: wash your hands before meals and after visits.", "label": "a"}) + "\n"
            for i in range(60)
        )
    )
    pipeline = write_pipeline(tmp_path, [{"path": str(corpus)}], batch_size=20)
    result = CliRunner().invoke(app, ["run", str(pipeline), "--executor", "ray", "-q", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["machine"]["executor"]["kind"] == "ray" and manifest["rows"]["input"] == 60
    # A stage's own error (here: balance on a column the records lack) is reported as on the local
    # executor, exit 2 with the message, not as a Ray traceback.
    bad = write_pipeline(tmp_path, [{"path": str(corpus)}], [{"stage": "balance", "params": {"label": "nope"}}])
    result = CliRunner().invoke(app, ["run", str(bad), "--executor", "ray", "-q", "--out", str(tmp_path / "bad")])
    assert result.exit_code == 2 and "nope" in result.output, result.output


def test_unknown_executor_is_a_config_error(pipeline):
    from curate.errors import ConfigError

    with pytest.raises(ConfigError, match="choose 'local' or 'ray'"):
        run_pipeline(load_pipeline(pipeline), executor="spark")
