"""Atomic, deterministic Parquet writes (temp file + rename), and JSON helpers."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import polars as pl
import pyarrow.parquet as pq

from curate.hashing import sha256_file


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json(path: Path, value: object, sort_keys: bool = True) -> None:
    """Pretty JSON; keep `sort_keys=False` where order carries meaning (ranked counts in a report)."""
    option = orjson.OPT_INDENT_2 | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    atomic_write_bytes(path, orjson.dumps(value, option=option) + b"\n")


def read_parquets(paths: list[Path]) -> pl.DataFrame:
    """The Parquet files among `paths` that exist, as one frame (columns unioned)."""
    frames = [pl.read_parquet(p) for p in paths if p.is_file()]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def read_json(path: Path) -> dict:
    return orjson.loads(path.read_bytes())


def write_parquet(df: pl.DataFrame, path: Path, level: int = 3) -> None:
    """zstd Parquet with classic Arrow types, readable by pandas, DuckDB and HF datasets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    table = df.to_arrow(compat_level=pl.CompatLevel.oldest())
    pq.write_table(table, tmp, compression="zstd", compression_level=level)
    os.replace(tmp, path)


def write_shards(df: pl.DataFrame, folder: Path, shard_rows: int, level: int) -> list[dict]:
    """Split `df` into part-NNNNN.parquet files of at most `shard_rows` rows."""
    entries = []
    count = max(1, -(-df.height // shard_rows))
    for i in range(count):
        part = df.slice(i * shard_rows, shard_rows)
        path = folder / f"part-{i:05d}.parquet"
        write_parquet(part, path, level)
        entries.append({"path": path, "rows": part.height})
    return entries


def describe_file(path: Path, root: Path, rows: int | None = None) -> dict:
    entry = {"path": path.relative_to(root).as_posix(), "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    if rows is not None:
        entry["rows"] = rows
    return entry
