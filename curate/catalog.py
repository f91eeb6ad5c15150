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
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import platformdirs
import polars as pl

from curate.errors import CatalogError, ConfigError
from curate.io.shards import (
    Location,
    check_manifest,
    check_manifest_file,
    file_sha256,
    file_size,
    is_file,
    join,
    list_files,
    location,
    read_json,
    read_manifest,
    read_parquet_at,
    write_json,
)

NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
VERSION = r"[0-9a-f]{6,64}"
_REF = re.compile(rf"^shards://(?P<name>{NAME})(@(?P<version>[A-Za-z0-9]+))?$")
LOCK_WAIT_S = 60.0  # how long a catalog write waits for another process holding the name's lock


def check_name(name: str) -> str:
    """A catalog name: letters, digits, `_`, `.`, `-`, starting with a letter or digit, no `..`
    (it is a folder under the catalog, so `../x` or `/abs` must never get through)."""
    if not isinstance(name, str) or not re.fullmatch(NAME, name) or ".." in name:
        raise ConfigError(
            f"catalog name {name!r}: use letters, digits, '_', '.' and '-', starting with a letter or "
            "digit (at most 128 characters, no '..')"
        )
    return name


def _check_version(version: str) -> str:
    if not isinstance(version, str) or not re.fullmatch(VERSION, version):
        raise CatalogError(f"catalog version {version!r}: expected 6 to 64 lowercase hex digits")
    return version


def file_problems(root: Location, files: list[dict], deep: bool = True) -> Iterator[str]:
    """Each manifest-listed file that is missing or whose size or (if `deep`) sha256 differs, lazily; an
    entry that is not a {path, bytes, sha256} inside the folder is a problem too, and is never opened."""
    for i, f in enumerate(files):
        try:
            check_manifest_file(f, f"files[{i}]")
        except CatalogError as exc:
            yield f"malformed manifest entry {exc}"
            continue
        loc = join(root, f["path"])
        if not is_file(loc):
            yield f"missing: {f['path']}"
        elif file_size(loc) != f["bytes"] or (deep and file_sha256(loc) != f["sha256"]):
            yield f"modified: {f['path']} ({'sha256' if deep else 'size'} differs from the manifest)"


def curate_home() -> Path:
    return Path(os.environ.get("CURATE_HOME") or platformdirs.user_cache_dir("curate"))


def _home_hint() -> str:
    home = os.environ.get("CURATE_HOME")
    return f"CURATE_HOME={home}" if home else f"CURATE_HOME is not set, so the default {curate_home()} is used"


def listed_files(root: Location, manifest: dict, folder: str, label: str) -> list[Location]:
    """The files a (checked) manifest lists under `folder` (data/, rejected/, signatures/<stage>/, ...),
    each verified against its size and sha256: a missing or tampered file is refused, never read.
    `label` names the version in the error (name@version, for `curate shards verify`)."""
    prefix = folder.rstrip("/") + "/"
    listed = [f for f in manifest["files"] if f["path"].startswith(prefix)]
    problems = list(file_problems(root, listed))
    if problems:
        raise CatalogError(
            f"shards://{label}: refusing to read {root}: {'; '.join(problems[:3])}"
            f"{' ...' if len(problems) > 3 else ''}; run `curate shards verify {label}`"
        )
    return [join(root, f["path"]) for f in listed]


@dataclass(frozen=True)
class Entry:
    name: str
    version: str
    path: Location  # the output directory this entry was resolved to: a local path or a URL
    created: str
    rows: int
    status: str
    locations: tuple[dict, ...] = ()  # every folder the version was published to: {path, created, status}

    @property
    def ref(self) -> str:
        return f"shards://{self.name}@{self.version}"

    def manifest(self) -> dict:
        manifest = read_manifest(self.path)
        if manifest is None:
            raise CatalogError(
                f"{self.ref}: no readable manifest at {join(self.path, 'manifest.json')} "
                "(was the output directory moved or deleted?)"
            )
        if manifest.get("version") != self.version:
            raise CatalogError(
                f"{self.ref}: the folder {self.path} now holds version {manifest.get('version')}, "
                "not this one (it was republished)"
            )
        try:
            return check_manifest(manifest, join(self.path, "manifest.json"))
        except CatalogError as exc:
            raise CatalogError(f"{self.ref}: damaged manifest: {exc}") from None

    def files(self, folder: str = "data") -> list[Location]:
        """The manifest's files under `folder` (data/, signatures/<stage>/, ...), each checked against
        the manifest's size and sha256: a missing or tampered file is refused, never read."""
        return listed_files(self.path, self.manifest(), folder, f"{self.name}@{self.version}")

    def data_files(self) -> list[Location]:
        return self.files("data")

    def read(self, columns: list[str] | None = None, folder: str = "data") -> pl.DataFrame:
        """The rows of `folder`'s Parquet files (the shards by default), local or remote, verified."""
        return read_parquet_at(self.files(folder), columns)

    def verify(self) -> list[str]:
        """Every problem found: missing, modified or unexpected files. Empty means intact."""
        files = self.manifest()["files"]
        problems = list(file_problems(self.path, files))
        listed = {str(join(self.path, f["path"])) for f in files}
        for folder in ("data", "rejected", "signatures"):
            for loc in list_files(self.path, folder, ".parquet"):
                if str(loc) not in listed:
                    problems.append(f"unexpected: {str(loc)[len(str(self.path)) :].lstrip('/')} (not in the manifest)")
        return problems


class Catalog:
    """`<home>/catalog/<name>/<version>.json` per version: every location it was published to.
    A location counts only while its manifest still carries that version; its status is the manifest's."""

    def __init__(self, home: Path | None = None):
        self.root = (home or curate_home()) / "catalog"

    def _file(self, name: str, version: str) -> Path:
        return self.root / check_name(name) / f"{_check_version(version)}.json"

    @staticmethod
    def _load(path: Path) -> dict | None:
        try:
            d = read_json(path)
        except (OSError, ValueError):
            return None
        if not isinstance(d, dict) or not isinstance(d.get("version"), str) or not isinstance(d.get("name"), str):
            return None
        if "locations" not in d and "path" in d:  # an entry written before locations were recorded
            d["locations"] = [{"path": d["path"], "created": d.get("created", ""), "status": d.get("status", "ok")}]
        locations = d.get("locations")
        if not isinstance(locations, list) or not all(
            isinstance(loc, dict) and isinstance(loc.get("path"), str) for loc in locations
        ):
            return None
        return d

    def _write_error(self, exc: OSError) -> CatalogError:
        where = f" ({exc.filename})" if exc.filename else ""
        return CatalogError(
            f"cannot write the catalog folder {self.root}: {exc.strerror or exc}{where}; make it writable, or "
            f"point CURATE_HOME at a folder you can write ({_home_hint()})"
        )

    def check_writable(self, name: str | None = None) -> None:
        """Refuse, before any work, a catalog this process cannot write (a run would otherwise publish
        and then fail to register): creates the catalog folder if missing and writes, then removes, a
        probe file in it (and in the name's folder, where it exists)."""
        named = self.root / check_name(name) if name else None
        folders = [self.root] + ([named] if named and named.is_dir() else [])
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for folder in folders:
                fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
                os.close(fd)
                os.unlink(probe)
        except OSError as exc:
            raise self._write_error(exc) from None

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """Hold the name's lock (flock on `<catalog>/.<name>.lock`) around a read-modify-write of its
        entries, so concurrent writers (processes, machines mounting the same CURATE_HOME) never lose
        an update; waits up to LOCK_WAIT_S for another holder. An OSError inside is a CatalogError."""
        from curate.io.outputs import Lock, OutputError

        lock = Lock(self.root / f".{check_name(name)}.lock", f"the catalog entries of '{name}'", wait=LOCK_WAIT_S)
        with ExitStack() as held:
            try:
                held.enter_context(lock)
            except OutputError:
                raise CatalogError(
                    f"the catalog entries of '{name}' have been locked for over {LOCK_WAIT_S:.0f} s "
                    f"({lock.path}); another curate process is writing them, or hangs"
                ) from None
            except OSError as exc:
                raise self._write_error(exc) from None
            try:
                yield
            except OSError as exc:
                raise self._write_error(exc) from None

    def register(self, out_dir: Location, manifest: dict) -> Entry:
        """Add `out_dir` as a location of the manifest's version; other versions of the name that
        listed this folder lose it (the folder holds this version now). Under the name's lock, each
        entry written atomically; a catalog that cannot be written is a CatalogError."""
        name, version = check_name(manifest["name"]), _check_version(manifest["version"])
        path = str(out_dir.resolve() if isinstance(out_dir, Path) else out_dir.rstrip("/"))
        here = {"path": path, "created": manifest["created"], "status": manifest["status"]}
        with self._locked(name):
            for other in sorted((self.root / name).glob("*.json")) if (self.root / name).is_dir() else []:
                d = self._load(other)
                if d and d["version"] != version and any(loc["path"] == path for loc in d["locations"]):
                    d["locations"] = [loc for loc in d["locations"] if loc["path"] != path]
                    write_json(other, d)
            d = self._load(self._file(name, version)) or {}
            locations = [loc for loc in d.get("locations", []) if loc["path"] != path] + [here]
            write_json(
                self._file(name, version),
                {
                    "name": name,
                    "version": version,
                    "rows": manifest["rows"]["kept"],
                    "created": manifest["created"],
                    "status": manifest["status"],
                    "locations": locations,
                },
            )
        return self._entry(name, version, rows=manifest["rows"]["kept"], locations=locations, at=here)

    @staticmethod
    def _entry(name: str, version: str, rows: int, locations: list[dict], at: dict | None) -> Entry:
        at = at or (locations[-1] if locations else {"path": "", "created": "", "status": "gone"})
        return Entry(
            name,
            version,
            location(at["path"]) if at["path"] else Path("/nonexistent"),
            at["created"],
            rows,
            at["status"],
            tuple(locations),
        )

    def entries(self, name: str | None = None) -> list[Entry]:
        """Every registered version, as recorded (its newest location; `resolve` checks them)."""
        if name is not None:
            check_name(name)
        found = []
        for path in self.root.glob(f"{name}/*.json" if name else "*/*.json"):
            d = self._load(path)
            if d is None:
                continue
            found.append(self._entry(d["name"], d["version"], d.get("rows", 0), d["locations"], None))
        return sorted(found, key=lambda e: (e.name, e.created, e.version))

    def _located(self, entry: Entry, allow_failed: bool) -> tuple[Entry | None, list[str]]:
        """The entry at its newest location whose manifest carries this version (and, unless
        `allow_failed`, status ok), with why each other location was passed over."""
        why = []
        for loc in reversed(entry.locations):
            manifest, damaged = self._manifest_at(loc["path"])
            if damaged:
                why.append(f"{loc['path']}: damaged manifest: {damaged}")
            elif manifest is None:
                why.append(f"{loc['path']}: no readable manifest")
            elif manifest.get("version") != entry.version:
                why.append(f"{loc['path']}: now holds version {manifest.get('version')}")
            elif manifest.get("status") != "ok" and not allow_failed:
                why.append(f"{loc['path']}: marked '{manifest.get('status')}' (its gates did not pass)")
            else:
                return replace(
                    entry, path=location(loc["path"]), created=loc["created"], status=manifest.get("status", "ok")
                ), why
        return None, why

    def resolve(self, ref: str, allow_failed: bool = False) -> Entry:
        """`shards://name@version`, `name@version`, `name@latest` or `name` (= latest), at a location
        whose manifest still carries that version. A version whose gates failed is refused unless
        `allow_failed` (for inspection, e.g. `curate diff`)."""
        text = ref if ref.startswith("shards://") else f"shards://{ref}"
        m = _REF.match(text)
        if not m or ".." in m["name"]:
            raise CatalogError(
                f"not a shard reference: {ref!r} (expected shards://name@version or shards://name@latest)"
            )
        name, version = m["name"], m["version"] or "latest"
        candidates = self.entries(name)
        if not candidates:
            known = sorted({e.name for e in self.entries()})
            raise CatalogError(
                f"no shards named '{name}' in the catalog at {self.root} (known: {', '.join(known) or 'none'})"
            )
        if version == "latest":  # the newest version that passed its gates at a location that still holds it
            passed_over = []
            for e in reversed(candidates):
                found, why = self._located(e, allow_failed=False)
                if found is not None:
                    return found
                passed_over += why
            raise CatalogError(
                f"shards '{name}' has no usable version (every version failed its gates, or its "
                "output directories are gone, damaged or hold other versions now): "
                + ("; ".join(passed_over[:3]) or "no location recorded")
            )
        matches = [e for e in candidates if e.version.startswith(version)]
        if len(matches) != 1:
            versions = ", ".join(e.version for e in candidates)
            raise CatalogError(
                f"shards '{name}' has {'no' if not matches else 'more than one'} version matching '{version}' "
                f"(versions: {versions})"
            )
        found, why = self._located(matches[0], allow_failed)
        if found is None:
            raise CatalogError(
                f"{matches[0].ref} cannot be used as input: " + ("; ".join(why) or "no location recorded")
            )
        return found

    @staticmethod
    def _manifest_at(path: str) -> tuple[dict | None, str]:
        """The manifest at a recorded location (None: none readable), with what is wrong with its
        shape ('' when nothing is)."""
        folder = location(path)
        manifest = read_manifest(folder)
        if manifest is None:
            return None, ""
        try:
            return check_manifest(manifest, join(folder, "manifest.json")), ""
        except CatalogError as exc:
            return manifest, str(exc)

    # --- housekeeping ------------------------------------------------------------------------
    def location_states(self, entry: Entry) -> list[tuple[dict, str]]:
        """Each recorded location of a version with what it holds now: `ok`, `failed` (its gates did
        not pass), `gone` (no readable manifest), `damaged` (a manifest of the wrong shape) or
        `replaced by <version>`."""
        out = []
        for loc in entry.locations:
            manifest, damaged = self._manifest_at(loc["path"])
            if damaged:
                out.append((loc, "damaged"))
            elif manifest is None:
                out.append((loc, "gone"))
            elif manifest.get("version") != entry.version:
                out.append((loc, f"replaced by {manifest.get('version')}"))
            else:
                out.append((loc, "ok" if manifest.get("status") == "ok" else str(manifest.get("status"))))
        return out

    def _forget(self, entry: Entry, locations: list[dict] | None) -> None:
        """Drop `locations` (None: every one) from a version's entry, re-read under the name's lock so a
        location registered meanwhile stays (also one published again to the same folder: a location
        is its path and its `created`); a version left with none is removed."""
        file = self._file(entry.name, entry.version)
        with self._locked(entry.name):
            d = self._load(file)
            left = []
            if locations is not None:
                if d is None:  # gone meanwhile (or unreadable): nothing to forget
                    return
                drop = {(loc["path"], loc.get("created")) for loc in locations}
                left = [loc for loc in d["locations"] if (loc["path"], loc.get("created")) not in drop]
            if left:
                write_json(file, {**d, "locations": left})
                return
            file.unlink(missing_ok=True)
            if file.parent.is_dir() and not any(file.parent.iterdir()):
                file.parent.rmdir()

    def gc(self, dry_run: bool = False) -> list[tuple[str, str, str]]:
        """Forget every location that is gone or holds another version now, and versions left with
        none: (ref, path, why) for each. Files are never touched."""
        forgotten = []
        for entry in self.entries():
            gone = [
                (loc, state)
                for loc, state in self.location_states(entry)
                if state == "gone" or state.startswith("replaced")
            ]
            if gone and not dry_run:
                self._forget(entry, [loc for loc, _ in gone])
            forgotten += [(entry.ref, loc["path"], state) for loc, state in gone]
        return forgotten

    def exact(self, ref: str) -> Entry:
        """The entry a `name@version` (or unique version prefix) names, as recorded, whatever its
        locations hold now (for `rm`)."""
        text = ref if ref.startswith("shards://") else f"shards://{ref}"
        m = _REF.match(text)
        if not m or not m["version"] or m["version"] == "latest":
            raise CatalogError(f"{ref!r}: name the version to remove (name@version); `curate shards list` shows them")
        matches = [e for e in self.entries(m["name"]) if e.version.startswith(m["version"])]
        if len(matches) != 1:
            raise CatalogError(f"{ref}: {'no' if not matches else 'more than one'} registered version matches")
        return matches[0]

    def remove(self, entry: Entry) -> None:
        """Forget a version (every location). Its files stay where they are."""
        self._forget(entry, None)

    def keep(self, entry: Entry) -> tuple[Entry, Path, int, int]:
        """Hard-link (or copy) a version's published files into `<home>/store/<name>/<version>` and
        record that as one more location, so deleting the output folder does not break a
        `shards://` reference. Returns the entry there, the folder, files linked and bytes copied."""
        from curate.io.outputs import keep_copy

        located = self.resolve(f"{entry.name}@{entry.version}", allow_failed=True)
        if not isinstance(located.path, Path):
            raise CatalogError(
                f"{entry.ref}: keeping a copy of an output on object storage is not supported "
                f"({located.path}); it is already off this machine"
            )
        manifest = located.manifest()
        problems = list(file_problems(located.path, manifest["files"]))
        if problems:
            raise CatalogError(f"{entry.ref}: refusing to keep {located.path}: {'; '.join(problems[:3])}")
        dest = self.root.parent / "store" / entry.name / entry.version
        try:
            linked, copied = keep_copy(located.path, dest, [f["path"] for f in manifest["files"]])
        except OSError as exc:
            raise self._write_error(exc) from None
        return self.register(dest, manifest), dest, linked, copied
