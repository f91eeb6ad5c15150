"""A local catalog of finished runs, so other projects reuse shards as `shards://name@version`.

The catalog stores a small JSON entry per version under `$CURATE_HOME/catalog/<name>/`
pointing at the run's output directory (a local path, or a URL for outputs on object
storage); shards are never copied. The version is a hash of the data files' contents,
so the same data always gets the same version. Point `CURATE_HOME` at shared storage
and every machine that mounts it sees the same catalog.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import polars as pl

from curate.errors import CatalogError
from curate.io.shards import (Location, file_sha256, file_size, is_file, join, list_files, location, read_json,
                              read_json_at, read_parquet_at, write_json)

_REF = re.compile(r"^shards://(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(@(?P<version>[A-Za-z0-9]+))?$")


def file_problems(root: Location, files: list[dict], deep: bool = True) -> Iterator[str]:
    """Each manifest-listed file that is missing or whose size or (if `deep`) sha256 differs, lazily."""
    for f in files:
        loc = join(root, f["path"])
        if not is_file(loc):
            yield f"missing: {f['path']}"
        elif file_size(loc) != f["bytes"] or (deep and file_sha256(loc) != f["sha256"]):
            yield f"modified: {f['path']} ({'sha256' if deep else 'size'} differs from the manifest)"


def curate_home() -> Path:
    return Path(os.environ.get("CURATE_HOME") or platformdirs.user_cache_dir("curate"))


@dataclass(frozen=True)
class Entry:
    name: str
    version: str
    path: Location  # the run's output directory: a local path or a URL
    created: str
    rows: int
    status: str

    @property
    def ref(self) -> str:
        return f"shards://{self.name}@{self.version}"

    def manifest(self) -> dict:
        path = join(self.path, "manifest.json")
        if not is_file(path):
            raise CatalogError(f"{self.ref}: manifest missing at {path} (was the output directory moved or deleted?)")
        return read_json_at(path)

    def files(self, folder: str = "data") -> list[Location]:
        """The manifest's files under `folder` (data/, signatures/<stage>/, ...), checked to exist."""
        prefix = folder.rstrip("/") + "/"
        files = [join(self.path, f["path"]) for f in self.manifest()["files"] if f["path"].startswith(prefix)]
        missing = [str(f) for f in files if not is_file(f)]
        if missing:
            raise CatalogError(f"{self.ref}: files missing: {', '.join(missing[:3])}; run `curate shards verify {self.name}@{self.version}`")
        return files

    def data_files(self) -> list[Location]:
        return self.files("data")

    def read(self, columns: list[str] | None = None, folder: str = "data") -> pl.DataFrame:
        """The rows of `folder`'s Parquet files (the shards by default), local or remote."""
        return read_parquet_at(self.files(folder), columns)

    def verify(self) -> list[str]:
        """Every problem found: missing, modified or unexpected files. Empty means intact."""
        files = self.manifest()["files"]
        problems = list(file_problems(self.path, files))
        listed = {str(join(self.path, f["path"])) for f in files}
        for folder in ("data", "rejected", "signatures"):
            for loc in list_files(self.path, folder, ".parquet"):
                if str(loc) not in listed:
                    problems.append(f"unexpected: {str(loc)[len(str(self.path)):].lstrip('/')} (not in the manifest)")
        return problems


class Catalog:
    def __init__(self, home: Path | None = None):
        self.root = (home or curate_home()) / "catalog"

    def register(self, out_dir: Location, manifest: dict) -> Entry:
        entry = Entry(
            name=manifest["name"], version=manifest["version"],
            path=out_dir.resolve() if isinstance(out_dir, Path) else out_dir.rstrip("/"),
            created=manifest["created"], rows=manifest["rows"]["kept"], status=manifest["status"],
        )
        write_json(self.root / entry.name / f"{entry.version}.json", {
            "name": entry.name, "version": entry.version, "path": str(entry.path),
            "created": entry.created, "rows": entry.rows, "status": entry.status,
        })
        return entry

    def entries(self, name: str | None = None) -> list[Entry]:
        pattern = f"{name}/*.json" if name else "*/*.json"
        found = []
        for path in self.root.glob(pattern):
            d = read_json(path)
            found.append(Entry(d["name"], d["version"], location(d["path"]), d["created"], d["rows"], d["status"]))
        return sorted(found, key=lambda e: (e.name, e.created, e.version))

    def resolve(self, ref: str, allow_failed: bool = False) -> Entry:
        """`shards://name@version`, `name@version`, `name@latest` or `name` (= latest). A version
        whose gates failed is refused unless `allow_failed` (for inspection, e.g. `curate diff`)."""
        text = ref if ref.startswith("shards://") else f"shards://{ref}"
        m = _REF.match(text)
        if not m:
            raise CatalogError(f"not a shard reference: {ref!r} (expected shards://name@version or shards://name@latest)")
        name, version = m["name"], m["version"] or "latest"
        candidates = self.entries(name)
        if not candidates:
            known = sorted({e.name for e in self.entries()})
            raise CatalogError(f"no shards named '{name}' in the catalog at {self.root} (known: {', '.join(known) or 'none'})")
        if version == "latest":  # the newest version that passed its gates and whose output still exists
            usable = [e for e in candidates if e.status == "ok" and is_file(join(e.path, "manifest.json"))]
            if not usable:
                raise CatalogError(f"shards '{name}' has no usable version (every version failed its gates or its output directory is gone)")
            return usable[-1]
        matches = [e for e in candidates if e.version.startswith(version)]
        if len(matches) != 1:
            versions = ", ".join(e.version for e in candidates)
            raise CatalogError(f"shards '{name}' has {'no' if not matches else 'more than one'} version matching '{version}' (versions: {versions})")
        if matches[0].status != "ok" and not allow_failed:
            raise CatalogError(f"{matches[0].ref} is marked '{matches[0].status}' and cannot be used as input")
        return matches[0]
