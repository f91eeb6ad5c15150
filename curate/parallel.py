"""Task pools a global stage uses to spread its own work: in-process here, Ray tasks under Ray.

A stage's `pool` is None unless an executor gives it one; with a pool the stage splits
its work into tasks and must produce exactly what its in-process path produces (the
Ray tests compare the two). Task functions must be picklable (module-level functions
or partials of them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class TaskPool(Protocol):
    workers: int

    def map(self, fn: Callable[..., Any], items: Sequence[Any], shared: tuple = (), gpus: float = 0.0) -> list[Any]:
        """fn(item, *shared) for every item, results in item order. `shared` values are sent once
        (broadcast), not once per task; `gpus`: what each task asks for where the cluster has GPUs."""

    def shuffle(self, map_fn: Callable[[Any, int], tuple[Any, list[Any]]], items: Sequence[Any], partitions: int,
                reduce_fn: Callable[..., Any]) -> tuple[list[Any], list[Any]]:
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
