"""What the safety guarantees cost (issue 16), each side by side with the unguarded way, in one run.

- reader: lines of a .jsonl.gz / .jsonl.zst read with a limit (curate's reader) vs plain line
  iteration (Python's `for line in GzipFile`, zstandard's stream reader), both parsing with orjson;
- bomb: peak RSS of reading a small compressed file holding one 1 GiB line vs the same file without it;
- pii fields: the pii stage on demo records scanning every field (ids, meta, source, label, columns)
  vs text and chat turns only (`fields: {ids: false, meta: false, columns: false}`), one process;
- verified reads: a shard set read through the catalog (size + sha256 of every file checked first)
  vs `polars.read_parquet` of the same files.
Results: bench/results/safety.json.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import platform
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import orjson
import polars as pl
import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
LIMIT = 2_000_000


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _corpus(folder: Path, records: int) -> tuple[Path, Path, int]:
    """The demo generator's English web documents and chats, as one .jsonl.gz and one .jsonl.zst."""
    from curate.demo.generator import generate

    raw = b""
    for path in generate(folder / "demo", records, seed=2024):
        data = path.read_bytes()
        raw += gzip.decompress(data) if path.name.endswith(".gz") else data
    gz, zst = folder / "corpus.jsonl.gz", folder / "corpus.jsonl.zst"
    gz.write_bytes(gzip.compress(raw, compresslevel=6, mtime=0))
    import zstandard

    zst.write_bytes(zstandard.ZstdCompressor(level=3).compress(raw))
    return gz, zst, raw.count(b"\n")


def reader(folder: Path, records: int) -> dict:
    import zstandard

    from curate.io.parse import ZstdFile, _lines

    gz, zst, lines = _corpus(folder, records)

    def parse(it) -> int:
        n = 0
        for line in it:
            if isinstance(line, bytes) and line.strip():
                try:  # the demo corpus holds a few deliberately broken lines
                    orjson.loads(line)
                except orjson.JSONDecodeError:
                    pass
                n += 1
            elif not isinstance(line, bytes):  # a line over the limit, skipped by the bounded reader
                n += 1
        return n

    def plain_gz():
        with open(gz, "rb") as fh:
            return parse(gzip.GzipFile(fileobj=fh))

    def bounded_gz():
        with open(gz, "rb") as fh:
            return parse(_lines(gzip.GzipFile(fileobj=fh), LIMIT))

    def plain_zst():
        with open(zst, "rb") as fh:
            return parse(io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)))

    def bounded_zst():
        with open(zst, "rb") as fh:
            return parse(_lines(ZstdFile(fh), LIMIT))

    counts = [plain_gz(), bounded_gz(), plain_zst(), bounded_zst()]
    assert len(set(counts)) == 1, counts
    out = {"lines": lines, "bytes": len(gzip.decompress(gz.read_bytes()))}
    for name, fn in (
        ("gzip: for line in GzipFile", plain_gz),
        ("gzip: readline(limit) (curate)", bounded_gz),
        ("zstd: zstandard stream_reader lines", plain_zst),
        ("zstd: ZstdFile readline(limit) (curate)", bounded_zst),
    ):
        seconds = _best(fn)
        out[name] = {
            "seconds": round(seconds, 3),
            "lines_per_s": round(lines / seconds, 1),
            "mb_per_s": round(out["bytes"] / seconds / 1e6, 2),
        }
    return out


_PEAK = """
import resource, sys
from curate.config import load_pipeline
from curate.io.readers import read_batches
from curate.io.sources import resolve_inputs
batches = list(read_batches(resolve_inputs(load_pipeline(sys.argv[1])), batch_size=1000, max_record_bytes=2_000_000))
print(sum(b.records.height for b in batches), sum(b.quarantined.height for b in batches),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def bomb(folder: Path) -> dict:
    """Peak RSS (MB) of reading one compressed file with a 1 GiB line and without it."""
    import zstandard

    good = b"".join(orjson.dumps({"text": f"record {i} about the ward rota"}) + b"\n" for i in range(50))
    out = {}
    for kind in ("gz", "zst"):
        for case, size in (("with a 1 GiB line", 1 << 30), ("without it", 0)):
            sub = folder / f"bomb-{kind}-{size}"
            sub.mkdir()
            comp = (
                zlib.compressobj(6, zlib.DEFLATED, 31)
                if kind == "gz"
                else zstandard.ZstdCompressor(level=3).compressobj()
            )
            path = sub / f"in.jsonl.{kind}"
            with open(path, "wb") as fh:
                fh.write(comp.compress(good))
                if size:
                    fh.write(comp.compress(b'{"text": "'))
                    for _ in range(size >> 24):
                        fh.write(comp.compress(b"a" * (1 << 24)))
                    fh.write(comp.compress(b'"}\n'))
                fh.write(comp.compress(good) + comp.flush())
            (sub / "p.yaml").write_text(yaml.safe_dump({"name": "bomb", "inputs": [{"path": path.name}], "stages": []}))
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", _PEAK, str(sub / "p.yaml")], capture_output=True, text=True, check=True, cwd=REPO
            )
            kept, quarantined, peak = (int(v) for v in done.stdout.split())
            out[f"{kind}, {case}"] = {
                "file_bytes": path.stat().st_size,
                "kept": kept,
                "quarantined": quarantined,
                "peak_rss_mb": peak,
                "seconds": round(time.perf_counter() - start, 2),
            }
    return out


def pii_fields(folder: Path, records: int) -> dict:
    from curate.config import load_pipeline
    from curate.executor import build_stages
    from curate.io.readers import read_batches
    from curate.io.sources import resolve_inputs
    from curate.stages.base import StageContext

    spec = {
        "name": "piif",
        "inputs": [{"demo": {"records": records, "seed": 7}, "columns": ["domain"]}],
        "stages": [{"stage": "pii", "rules": str(REPO / "rules/pii/default.yaml")}],
    }
    path = folder / "piif.yaml"
    path.write_text(yaml.safe_dump(spec))
    pipeline = load_pipeline(path)
    df = pl.concat([b.records for b in read_batches(resolve_inputs(pipeline), 10**9, LIMIT)])
    out = {"records": df.height}
    for name, fields in (
        ("text and chat turns only", {"ids": False, "meta": False, "columns": False}),
        ("every field (default)", {}),
    ):
        rs = pipeline.stages[0]
        rules = rs.rules.model_copy(update={"fields": rs.rules.fields.model_copy(update=fields)})
        stage = build_stages([dataclasses.replace(rs, rules=rules)], StageContext())[rs.name]
        stage.process(df.head(200))  # warm the models
        seconds = _best(lambda stage=stage: stage.process(df), repeats=1)
        out[name] = {
            "seconds": round(seconds, 3),
            "docs_per_s": round(df.height / seconds, 1),
            "entities": stage.summary["entities"],
        }
    return out


def verified_reads(folder: Path, records: int) -> dict:
    from curate.catalog import Catalog
    from curate.config import load_pipeline
    from curate.engine import run_pipeline

    spec = {
        "name": "verified",
        "inputs": [{"demo": {"records": records, "seed": 7}}],
        "workers": 1,
        "output": {"shard_rows": 5000},
        "sensitivity": False,
        "stages": [{"stage": "normalize", "rules": str(REPO / "rules/normalize/default.yaml")}],
    }
    path = folder / "verified.yaml"
    path.write_text(yaml.safe_dump(spec))
    catalog = Catalog(folder / "home")
    result = run_pipeline(load_pipeline(path), out_dir=folder / "verified_out", catalog=catalog)
    entry = catalog.resolve(result.entry.ref)
    files = sorted((folder / "verified_out" / "data").glob("*.parquet"))
    plain = _best(lambda: pl.read_parquet(files))
    verified = _best(lambda: entry.read())
    size = sum(f.stat().st_size for f in files)
    return {
        "files": len(files),
        "bytes": size,
        "rows": result.manifest["rows"]["kept"],
        "polars.read_parquet (no check)": {"seconds": round(plain, 4)},
        "Entry.read (sha256 of every file first)": {
            "seconds": round(verified, 4),
            "ratio_to_plain": round(verified / plain, 2),
        },
    }


def main(records: int = 20_000) -> dict:
    work = Path(tempfile.mkdtemp(prefix="curate-bench-safety-"))
    try:
        result = {
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
            "reader": reader(work, records),
            "bomb": bomb(work),
            "pii_fields": pii_fields(work, min(records, 4000)),
            "verified_reads": verified_reads(work, records),
        }
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "safety.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
