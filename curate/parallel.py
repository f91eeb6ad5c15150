"""Task pools a global stage uses to spread its own work: in-process here, Ray tasks under Ray.

A stage's `pool` is None unless an executor gives it one; with a pool the stage splits
its work into tasks and must produce exactly what its in-process path produces (the
Ray tests compare the two). Task functions must be picklable (module-level functions
or partials of them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

import polars as pl


class TaskPool(Protocol):
    workers: int

    def map(self, fn: Callable[..., Any], items: Sequence[Any], shared: tuple = (), gpus: float = 0.0) -> list[Any]:
        """fn(item, *shared) for every item, results in item order. `shared` values are sent once
        (broadcast), not once per task; `gpus`: what each task asks for where the cluster has GPUs."""

    def shuffle(
        self,
        map_fn: Callable[[Any, int], tuple[Any, list[Any]]],
        items: Sequence[Any],
        partitions: int,
        reduce_fn: Callable[..., Any],
    ) -> tuple[list[Any], list[Any]]:
        """A map-reduce: map_fn(item, partitions) returns (result, one part per partition); reducer k
        gets part k of every mapper, reduce_fn(*parts). Returns (map results, reduce results), in order."""


class SerialPool:
    """Runs every task in this process, in order (the reference a distributed pool must match)."""

    workers = 1

    def map(self, fn, items, shared=(), gpus=0.0):
        return [fn(item, *shared) for item in items]

    def shuffle(self, map_fn, items, partitions, reduce_fn):
        mapped = [map_fn(item, partitions) for item in items]
        reduced = [reduce_fn(*[parts[k] for _, parts in mapped]) for k in range(partitions)]
        return [result for result, _ in mapped], reduced


# --- distributed group-bys --------------------------------------------------------------------
# Two shapes, both over row chunks of a frame: counting (each task counts its chunk, the partial
# counts are summed: a combiner, for low-cardinality keys such as labels and strata) and a hash
# shuffle (all rows of a group meet in one reducer, for per-group decisions over many groups).

GROUP_CHUNK = 50_000  # rows per pool task, at least


def row_chunks(frame: pl.DataFrame, pool: TaskPool) -> list[pl.DataFrame]:
    size = max(GROUP_CHUNK, -(-frame.height // (4 * pool.workers)))
    return [frame.slice(start, size) for start in range(0, max(frame.height, 1), size)]


def count_groups(
    pool: TaskPool, frame: pl.DataFrame, keysets: list[list[str]], limit: int | None = None
) -> list[pl.DataFrame | None]:
    """For each key set, the rows per distinct combination of its columns (column `len`), sorted by
    the keys. With `limit`, a key set with more combinations than that is not counted (None)."""
    frame = frame.select(sorted({c for keys in keysets for c in keys}))
    parts = pool.map(_count_chunk, row_chunks(frame, pool), shared=(keysets, limit))
    out: list[pl.DataFrame | None] = []
    for i, keys in enumerate(keysets):
        tables = [p[i] for p in parts]
        if any(t is None for t in tables):
            out.append(None)
            continue
        merged = pl.concat(tables).group_by(keys).agg(pl.col("len").sum()).sort(keys, nulls_last=True)
        out.append(None if limit is not None and merged.height > limit else merged)
    return out


def _count_chunk(chunk: pl.DataFrame, keysets: list[list[str]], limit: int | None) -> list[pl.DataFrame | None]:
    counts = []
    for keys in keysets:
        table = chunk.group_by(keys).len().with_columns(pl.col("len").cast(pl.Int64))
        counts.append(None if limit is not None and table.height > limit else table)
    return counts


def shuffle_groups(
    pool: TaskPool, frame: pl.DataFrame, keys: list[str], reduce_fn: Callable[[pl.DataFrame], Any]
) -> list[Any]:
    """A group-by through a shuffle: pool tasks hash-partition row chunks by `keys`, so every row of
    a group reaches the same reducer, which gets them as one frame: reduce_fn(rows of its groups)."""
    _, reduced = pool.shuffle(
        partial(_partition_rows, keys), row_chunks(frame, pool), max(1, pool.workers), partial(_reduce_rows, reduce_fn)
    )
    return reduced


def _partition_rows(keys: list[str], chunk: pl.DataFrame, partitions: int) -> tuple[None, list[pl.DataFrame]]:
    part = chunk.select(pl.struct(keys).hash(seed=0) % partitions).to_series()
    return None, [chunk.filter(part == k) for k in range(partitions)]


def _reduce_rows(reduce_fn: Callable[[pl.DataFrame], Any], *parts: pl.DataFrame) -> Any:
    return reduce_fn(pl.concat(parts))
