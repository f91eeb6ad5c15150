"""A catalog writer run in its own process by tests/test_catalog_safety.py (a small module, so a spawned
process starts fast)."""

from __future__ import annotations

from pathlib import Path

from curate.catalog import Catalog


def register_many(home: str, name: str, version: str, who: int, n: int) -> None:
    """Register `n` distinct locations of one version, as concurrent runs publishing it would."""
    catalog = Catalog(Path(home))
    for i in range(n):
        manifest = {"name": name, "version": version, "created": f"{who}-{i}", "status": "ok", "rows": {"kept": 1}}
        catalog.register(Path(home) / f"out-{who}-{i}", manifest)
