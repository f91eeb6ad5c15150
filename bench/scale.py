"""Scale: what a cheap pretraining pipeline costs per record as the corpus grows, and a crawl of real pages.

Pipeline: normalize, langid, quality, dedup, split with the default rules, 2 workers (the issue's
"cheap pipeline": pretrain.yaml without pii). Corpus: the demo generator's records, written in chunks
of 100,000 with their own seed and id prefix (so 3M records never sit in the generator's memory), for
each size asked. Each size runs `curate run` in its own process; the process tree (the driver and its
workers) is sampled every 0.1 s for its total RSS and the work folder every 2 s for the checkpoints'
size. Reported per size: records/s, peak RSS, peak checkpoint bytes, memory per record, and the
marginal memory per record between consecutive sizes (what each extra record costs, the start-up
cost left out).

The WARC row: the HTML manual pages under /usr/share/doc packed as one WARC (tests/warcs.py) through
pipelines/commoncrawl.yaml.

    python -m bench.scale                    # 20k, 100k, 200k and the WARC
    python -m bench.scale --sizes 100000 1000000 3000000
    python -m bench.scale --baseline 826ab2a --no-warc   # and that commit's code on the same corpora

Results: bench/results/scale.json (one row per size; rows of other sizes measured earlier are kept).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CHUNK = 100_000
STAGES = ("normalize", "langid", "quality", "dedup", "split")


def corpus(folder: Path, records: int) -> list[Path]:
    """`records` demo records in files of CHUNK, each chunk generated with its own seed, ids prefixed."""
    from curate.demo.generator import generate

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for chunk, start in enumerate(range(0, records, CHUNK)):
        out = folder / f"chunk-{chunk:03d}.jsonl.gz"
        if not out.is_file():
            raw = folder / f"raw-{chunk:03d}"
            lines = []
            for path in generate(raw, min(CHUNK, records - start), seed=1000 + chunk):
                data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
                for line in data.splitlines():
                    try:
                        obj = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        lines.append(line)  # the generator's deliberately bad lines stay bad
                        continue
                    if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                        obj["id"] = f"c{chunk}-{obj['id']}"
                    lines.append(orjson.dumps(obj))
            out.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", compresslevel=1, mtime=0))
            shutil.rmtree(raw)
        paths.append(out)
    return paths


class Sampler:
    """Peak RSS of a process and all its children, and peak size of a folder, sampled in a thread."""

    def __init__(self, pid: int, folder: Path):
        self.proc, self.folder = psutil.Process(pid), folder
        self.peak_rss = self.peak_disk = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _rss(self) -> int:
        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _disk(self) -> int:
        total = 0
        for root, _, files in os.walk(self.folder):
            for name in files:
                try:
                    total += os.path.getsize(os.path.join(root, name))
                except OSError:
                    pass
        return total

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            try:
                self.peak_rss = max(self.peak_rss, self._rss())
            except psutil.Error:
                pass
            if tick % 20 == 0:
                self.peak_disk = max(self.peak_disk, self._disk())
            tick += 1
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def sampled(cmd: list[str], env: dict, folder: Path, ok=(0,)) -> dict:
    """Run `cmd` in its own process: wall time, peak RSS of its process tree, peak bytes in `folder`."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sampler = Sampler(proc.pid, folder)
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    sampler.stop()
    if proc.returncode not in ok:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(sampler.peak_rss / 2**20),
        "peak_checkpoint_mb": round(sampler.peak_disk / 2**20),
        "exit": proc.returncode,
    }


def measure(pipeline: Path, out: Path, inputs: list[str], code: Path | None = None) -> dict:
    """One `curate run` in its own process (`sampled`). With `code`, another checkout's curate package
    runs (the baseline), with this one's rules."""
    home = out.parent / "home"
    env = {**os.environ, "CURATE_HOME": str(home)}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    cmd = [str(Path(sys.executable).parent / "curate"), "run", str(pipeline), "--out", str(out), "--force"]
    for path in inputs:
        cmd += ["--input", path]
    result = sampled(cmd, env, out, ok=(0, 4))  # 4: a gate failed; the run itself completed
    manifest = json.loads((out / "manifest.json").read_text())
    return {**result, "kept": manifest["rows"]}


DATATROVE_FILE_LINES = 10_000


def datatrove(sizes: list[int], scratch: Path, python: str) -> list[dict]:
    """datatrove's equivalent pipeline (bench/datatrove_pipeline.py) on the same records, 2 workers. It
    reads one file per task, so it gets the same records dealt into files of about 10,000 lines (at
    least 2): with one 100,000-record file it could use one core only. Lines it cannot read without
    stopping are left out and counted (`_resplit`)."""
    from curate.lang import bundled_model_path

    version = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('datatrove'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    rows = []
    for records in sizes:
        folder = scratch / f"n{records}"
        files, split = corpus(folder / "corpus", records), folder / "datatrove-input"
        split.mkdir(parents=True, exist_ok=True)
        dropped = _resplit(files, split, max(2, -(-records // DATATROVE_FILE_LINES)))
        work, result = folder / "datatrove-work", folder / "datatrove.json"
        cmd = [python, str(REPO / "bench" / "datatrove_pipeline.py"), str(split), str(work), "2"]
        measured = sampled([*cmd, str(bundled_model_path()), str(result)], dict(os.environ), work)
        out = json.loads(result.read_text())
        rows.append(
            {
                "corpus": "demo generator",
                "code": f"datatrove {version}",
                "commit": commit_of(REPO),
                "records": records,
                "input_mb_gz": round(sum(f.stat().st_size for f in files) / 2**20, 1),
                **measured,
                "kept": {"kept": out["kept"], "input_lines_left_out": dropped},
                "step_seconds": out["step_seconds"],
                "records_per_s": round(records / measured["seconds"]),
                "kb_per_record": round(measured["peak_rss_mb"] * 1024 / records, 2),
            }
        )
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(split, ignore_errors=True)
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _resplit(files: list[Path], folder: Path, parts: int) -> int:
    """The files' JSON-object lines dealt in turn into `parts` gzip files (so each of datatrove's tasks
    gets as many long and short records: the corpus is ordered by kind). The others are left out and
    their number returned: datatrove's JsonlReader stops a task on a line that is a JSON array or
    number, and stops reading a file at invalid UTF-8 (the demo corpus has both on purpose)."""
    outs = [gzip.open(folder / f"part-{i:04d}.jsonl.gz", "wb", compresslevel=1) for i in range(parts)]
    dropped = written = 0
    try:
        for path in files:
            for line in gzip.decompress(path.read_bytes()).splitlines(keepends=True):
                try:
                    if not isinstance(orjson.loads(line), dict):
                        raise ValueError
                    line.decode("utf-8")
                except ValueError:  # orjson's JSONDecodeError and UnicodeDecodeError are ValueErrors
                    dropped += 1
                    continue
                outs[written % parts].write(line)
                written += 1
    finally:
        for out in outs:
            out.close()
    return dropped


def commit_of(tree: Path) -> str:
    """The commit a measurement ran (rows of several sessions sit side by side in scale.json)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
    dirty = subprocess.run(  # the results a previous size wrote are not a change of the code measured
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results"],
        cwd=tree,
        capture_output=True,
    )
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def generated(sizes: list[int], scratch: Path, code: Path | None = None, label: str = "this code") -> list[dict]:
    rows = []
    commit = commit_of(code or REPO)
    for records in sizes:
        folder = scratch / f"n{records}"
        files = corpus(folder / "corpus", records)
        spec = {
            "name": f"scale-{records}",
            "seed": 1,
            "workers": 2,
            "batch_size": 2000,
            "sensitivity": False,
            "inputs": [{"path": str(folder / "corpus")}],
            "stages": [{"stage": s, "rules": str(REPO / "rules" / s / "default.yaml")} for s in STAGES],
        }
        pipeline = folder / "pipeline.yaml"
        pipeline.write_text(yaml.safe_dump(spec, sort_keys=False))
        result = measure(pipeline, folder / "out", [], code)
        size_mb = sum(f.stat().st_size for f in files) / 2**20
        rows.append(
            {
                "corpus": "demo generator",
                "code": label,
                "commit": commit,
                "records": records,
                "input_mb_gz": round(size_mb, 1),
                **result,
                "records_per_s": round(records / result["seconds"]),
                "kb_per_record": round(result["peak_rss_mb"] * 1024 / records, 2),
            }
        )
        shutil.rmtree(folder / "out", ignore_errors=True)
        print(json.dumps(rows[-1]), flush=True)
    return rows


def warc(scratch: Path) -> dict:
    sys.path.insert(0, str(REPO))
    from tests.warcs import doc_pages, pages_warc

    folder = scratch / "warc"
    folder.mkdir(parents=True, exist_ok=True)
    path = pages_warc(folder / "docs.warc.gz")
    pages = len(doc_pages())
    result = measure(REPO / "pipelines" / "commoncrawl.yaml", folder / "out", [str(path)])
    return {
        "corpus": f"WARC of {pages} HTML manual pages (/usr/share/doc)",
        "code": "this code",
        "commit": commit_of(REPO),
        "records": pages,
        "input_mb_gz": round(path.stat().st_size / 2**20, 1),
        **result,
        "records_per_s": round(pages / result["seconds"], 1),
        "kb_per_record": round(result["peak_rss_mb"] * 1024 / pages, 2),
        "pipeline": "pipelines/commoncrawl.yaml",
    }


def marginal(rows: list[dict]) -> list[dict]:
    """KB per extra record between consecutive sizes of the generated corpus, and from the smallest size
    to each larger one (the issue's 20k-to-200k figure), per code measured."""
    out = []
    for label in dict.fromkeys(r.setdefault("code", "this code") for r in rows):
        gen = sorted(
            (r for r in rows if r["corpus"] == "demo generator" and r["code"] == label), key=lambda r: r["records"]
        )
        steps = list(zip(gen, gen[1:])) + [(gen[0], b) for b in gen[2:]]
        for a, b in steps:
            kb = (b["peak_rss_mb"] - a["peak_rss_mb"]) * 1024 / (b["records"] - a["records"])
            out.append(
                {"code": label, "from": a["records"], "to": b["records"], "marginal_kb_per_record": round(kb, 2)}
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[20_000, 100_000, 200_000])
    parser.add_argument("--no-warc", action="store_true")
    parser.add_argument(
        "--baseline", metavar="COMMIT", help="also measure this commit's code (a git worktree), side by side"
    )
    parser.add_argument("--baseline-only", action="store_true", help="measure only the baseline's code")
    parser.add_argument(
        "--datatrove",
        metavar="PYTHON",
        default=os.environ.get("DATATROVE_PYTHON"),
        help="also run datatrove's equivalent pipeline with this interpreter (default: $DATATROVE_PYTHON)",
    )
    parser.add_argument("--datatrove-only", action="store_true", help="measure only datatrove's pipeline")
    parser.add_argument(
        "--datatrove-sizes",
        type=int,
        nargs="*",
        help="the sizes datatrove runs at (default: --sizes); it is about 30 times slower than this code",
    )
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="curate-scale-"))
    try:
        rows = [] if args.baseline_only or args.datatrove_only else generated(args.sizes, scratch)
        if args.datatrove:
            rows += datatrove(args.datatrove_sizes or args.sizes, scratch, args.datatrove)
        if args.baseline:
            tree = scratch / "baseline"
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.baseline], cwd=REPO, check=True)
            try:
                rows += generated(args.sizes, scratch, tree, f"baseline {args.baseline}")
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=True)
        if not args.no_warc and not args.datatrove_only:
            rows.append(warc(scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    path = RESULTS / "scale.json"
    old = (
        [{**r, "code": r.get("code", "this code")} for r in json.loads(path.read_text())["rows"]]
        if path.exists()
        else []
    )
    mine = {(r["corpus"], r["code"], r["records"]) for r in rows}
    old = [r for r in old if (r["corpus"], r["code"], r["records"]) not in mine]
    rows = sorted(old + rows, key=lambda r: (r["corpus"], r["code"] != "this code", r["records"]))
    result = {
        "benchmark": "scale: the cheap pipeline (normalize, langid, quality, dedup, split) by corpus size",
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "workers": 2},
        "rows": rows,
        "marginal": marginal(rows),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
