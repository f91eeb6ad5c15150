"""Atomic, deterministic Parquet writes (temp file + rename), JSON helpers, and published
locations: a local path, or an fsspec URL (`s3://bucket/shards/demo`) for outputs on object
storage (remote filesystems need their package: s3fs, gcsfs, ...)."""

from __future__ import annotations

import os
import posixpath
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Union

import orjson
import polars as pl
import pyarrow.parquet as pq

from curate.errors import CatalogError, CurateError
from curate.hashing import sha256_file, sha256_stream

Location = Union[Path, str]  # a local path, or an fsspec URL


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


def read_parquets(paths: list[Path], columns: list[str] | None = None) -> pl.DataFrame:
    """The Parquet files among `paths` that exist, as one frame (columns unioned); with `columns`, only
    those of them each file has."""
    frames = [
        pl.read_parquet(p, columns=None if columns is None else [c for c in columns if c in pq.read_schema(p).names])
        for p in paths
        if p.is_file()
    ]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def iter_frames(paths: list[Path], columns: list[str] | None = None, rows: int = 5_000) -> Iterator[pl.DataFrame]:
    """The rows of the Parquet files among `paths` that exist, in order, a frame of at most `rows`
    (within one row group) at a time; with `columns`, only those of them each file has."""
    for path in paths:
        if not path.is_file():
            continue
        parquet = pq.ParquetFile(path)
        wanted = None if columns is None else [c for c in columns if c in parquet.schema_arrow.names]
        if parquet.metadata.num_rows == 0:
            yield pl.read_parquet(path, columns=wanted)
            continue
        for batch in parquet.iter_batches(batch_size=rows, columns=wanted):
            yield pl.from_arrow(batch)


class RowFiles:
    """Rows kept in Parquet files (a run's checkpoints), seen as `read_parquets(files)` returns them
    (columns unioned, types relaxed, in file order) but read a part at a time, so what is done with
    them (publishing, the report) never holds every row; `drop` leaves columns out of every read."""

    def __init__(self, files: list[Path], drop: tuple[str, ...] = ()):
        self.files = [p for p in files if p.is_file()]
        self.drop = tuple(drop)
        schemas = [pl.DataFrame(schema=pl.read_parquet_schema(p)) for p in self.files]
        self._union = pl.concat(schemas, how="diagonal_relaxed") if schemas else pl.DataFrame()
        self._empty = self._union.drop(self.drop, strict=False)
        self.height = sum(pq.ParquetFile(p).metadata.num_rows for p in self.files)

    def without(self, columns: list[str]) -> "RowFiles":
        return RowFiles(self.files, (*self.drop, *columns))

    @property
    def schema(self) -> pl.Schema:
        return self._empty.schema

    @property
    def columns(self) -> list[str]:
        return self._empty.columns

    def frames(self, columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
        """The rows, a row group (at most 5,000 rows: `iter_frames`) at a time; with `columns`, those the rows
        have. Nothing when there are no rows."""
        wanted = self.columns if columns is None else [c for c in columns if c in self.schema]
        empty = self._union.select(wanted)
        for chunk in iter_frames(self.files, wanted):
            if chunk.height:
                yield pl.concat([empty, chunk], how="diagonal_relaxed").select(wanted)

    def select(self, columns: list[str]) -> pl.DataFrame:
        """Those of `columns` the rows have, all rows at once (for small columns: ids, labels, splits)."""
        wanted = [c for c in columns if c in self.schema]
        return pl.concat([self._empty.select(wanted), *self.frames(wanted)], how="vertical")

    def slices(self, rows: int, columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
        """The rows in consecutive frames of `rows` rows (the last one shorter); one empty frame when
        there are none: what slicing the whole frame would give, `write_shards`' parts."""
        wanted = self.columns if columns is None else [c for c in columns if c in self.schema]
        runs = FrameRuns(self.frames(wanted), self._empty.select(wanted).schema)
        for _ in range(max(1, -(-self.height // rows))):
            yield runs.take(rows).rechunk()

    def batches(self, rows: int) -> list[tuple["Piece", ...]]:
        """The rows cut into consecutive batches of `rows` rows (the last one shorter; one empty batch
        when there are none), each as the pieces of files it spans, for a worker to read
        (`read_pieces` with this schema gives what slicing the whole frame would)."""
        runs = ((str(path), pq.ParquetFile(path).metadata.num_rows, ()) for path in self.files)
        return list(cut_batches(runs, rows))

    def collect(self) -> pl.DataFrame:
        """Every row at once (reading only the columns not dropped)."""
        return self.select(self.columns) if self.files else pl.DataFrame()

    def lazy(self) -> pl.LazyFrame:
        """A scan of the rows (read as a query needs them) where the files share one schema."""
        union = dict(self._union.schema)
        if self.files and all(dict(pl.read_parquet_schema(p)) == union for p in self.files):
            return pl.scan_parquet(self.files).drop(self.drop, strict=False)
        return self.collect().lazy()


@dataclass(frozen=True)
class Piece:
    """`length` rows of a Parquet file from row `offset`; `duplicates`: those of them (counted from
    `offset`) whose id an earlier record already had (an input's read parts: curate.io.readers)."""

    path: str
    offset: int
    length: int
    duplicates: tuple[int, ...] = ()

    def read(self) -> pl.DataFrame:
        return pl.scan_parquet(self.path).slice(self.offset, self.length).collect()


def cut_batches(runs: Iterable[tuple[str, int, tuple[int, ...]]], rows: int) -> Iterator[tuple[Piece, ...]]:
    """Consecutive runs of rows, each (Parquet file, its row count, which of its rows are duplicates),
    cut into batches of `rows` rows, each the pieces of the runs it spans: the last one shorter, and
    one empty batch when there are no rows. Runs are pulled only as a batch needs them."""
    pieces: list[Piece] = []
    filled = cut = 0
    for path, n, duplicates in runs:
        offset = 0
        while offset < n:
            take = min(n - offset, rows - filled)
            dups = tuple(r - offset for r in duplicates if offset <= r < offset + take)
            pieces.append(Piece(path, offset, take, dups))
            offset, filled = offset + take, filled + take
            if filled == rows:
                yield tuple(pieces)
                pieces, filled, cut = [], 0, cut + 1
    if pieces or not cut:
        yield tuple(pieces)


def read_pieces(pieces: tuple[Piece, ...], schema: pl.Schema) -> pl.DataFrame:
    """The pieces' rows as one frame of `schema` (columns a piece lacks are null, types relaxed to it)."""
    empty = pl.DataFrame(schema=schema)
    return pl.concat([empty, *(p.read() for p in pieces)], how="diagonal_relaxed").select(empty.columns)


class FrameRuns:
    """Frames in order (of one schema), handed out again in runs of any number of rows."""

    def __init__(self, frames: Iterator[pl.DataFrame], schema: pl.Schema):
        self._frames, self._schema = frames, schema
        self._buffer = pl.DataFrame(schema=schema)

    def take(self, n: int) -> pl.DataFrame:
        """The next `n` rows (fewer at the end; none left: an empty frame of the schema)."""
        parts, have = [], 0
        while have < n:
            if self._buffer.height == 0:
                self._buffer = next(self._frames, None)
                if self._buffer is None:
                    self._buffer = pl.DataFrame(schema=self._schema)
                    break
            part = self._buffer.slice(0, n - have)
            self._buffer = self._buffer.slice(part.height)
            parts.append(part)
            have += part.height
        return pl.concat(parts) if parts else pl.DataFrame(schema=self._schema)


class ParquetAppender:
    """One Parquet file written frame by frame (a row group each), as `write_parquet` writes one frame:
    zstd, classic Arrow types; it appears under its name on `close` only."""

    def __init__(self, path: Path, level: int = 3):
        self.path, self.level = path, level
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, df: pl.DataFrame) -> None:
        table = df.to_arrow(compat_level=pl.CompatLevel.oldest())
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(
                _tmp(self.path), table.schema, compression="zstd", compression_level=self.level
            )
        self.writer.write_table(table.cast(self.writer.schema))
        self.rows += df.height

    def close(self) -> None:
        """Publish the file (none if nothing was written)."""
        if self.writer is not None:
            self.writer.close()
            os.replace(_tmp(self.path), self.path)


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
    count = max(1, -(-df.height // shard_rows))
    return write_parts((df.slice(i * shard_rows, shard_rows) for i in range(count)), folder, level)


def write_parts(parts: Iterator[pl.DataFrame], folder: Path, level: int) -> list[dict]:
    """Each frame of `parts` as the next part-NNNNN.parquet file (`RowFiles.slices` gives them)."""
    entries = []
    for i, part in enumerate(parts):
        path = folder / f"part-{i:05d}.parquet"
        write_parquet(part, path, level)
        entries.append({"path": path, "rows": part.height})
    return entries


def describe_file(path: Path, root: Path, rows: int | None = None) -> dict:
    entry = {"path": path.relative_to(root).as_posix(), "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    if rows is not None:
        entry["rows"] = rows
    return entry


# --- locations: local paths and URLs ---------------------------------------------------------------
def location(value: str) -> Location:
    """A URL stays a string; anything else is a local path (`~` expanded: polars and others expand it
    when writing, so every check must see the same folder)."""
    return value if "://" in value else Path(value).expanduser()


def join(root: Location, relative: str) -> Location:
    return f"{root.rstrip('/')}/{relative}" if isinstance(root, str) else root / relative


def filesystem(url: str):
    """(fsspec filesystem, path inside it) for a URL, with a clear error when its package is missing."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # "Install s3fs to access S3"; an unknown protocol
        raise CurateError(f"cannot use {url}: {exc}") from None


def is_file(loc: Location) -> bool:
    if isinstance(loc, Path):
        return loc.is_file()
    fs, path = filesystem(loc)
    return fs.isfile(path)


def file_size(loc: Location) -> int:
    if isinstance(loc, Path):
        return loc.stat().st_size
    fs, path = filesystem(loc)
    return int(fs.size(path))


def open_at(loc: Location) -> BinaryIO:
    """A local path, or a URL through fsspec, opened for binary reading."""
    if isinstance(loc, Path):
        return open(loc, "rb")
    fs, path = filesystem(loc)
    return fs.open(path, "rb")


def file_sha256(loc: Location) -> str:
    with open_at(loc) as fh:
        return sha256_stream(fh)


def read_json_at(loc: Location) -> dict:
    if isinstance(loc, Path):
        return read_json(loc)
    fs, path = filesystem(loc)
    return orjson.loads(fs.cat_file(path))


def read_manifest(folder: Location) -> dict | None:
    """The manifest.json in an output folder (local or URL), None where it is missing or not a JSON object."""
    loc = join(folder, "manifest.json")
    try:
        value = read_json_at(loc) if is_file(loc) else None
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _got(value: object) -> str:
    return "nothing" if value is None else f"{value!r:.80}"


def inside_folder(relative: str) -> bool:
    """Whether a manifest's path stays inside the output folder: relative, with no `..` part."""
    parts = PurePosixPath(relative).parts
    return (
        bool(parts)
        and not relative.startswith("/")
        and ".." not in parts
        and "\\" not in relative
        and "\0" not in relative
    )


def check_manifest_file(entry: object, where: str) -> dict:
    """One entry of a manifest's `files`: {path, bytes, sha256}, the path inside the output folder.
    Raises CatalogError naming `where` (the manifest and the entry), the key and what was expected."""
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: expected a mapping with path, bytes and sha256, got {_got(entry)}")
    path, size, digest = entry.get("path"), entry.get("bytes"), entry.get("sha256")
    if not isinstance(path, str) or not path:
        raise CatalogError(f"{where}.path: expected a file path relative to the output folder, got {_got(path)}")
    if not inside_folder(path):
        raise CatalogError(
            f"{where}.path: {path!r} leaves the output folder (expected a relative path without '..'); refused"
        )
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CatalogError(f"{where}.bytes: expected the file's size, a whole number >= 0, got {_got(size)}")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise CatalogError(f"{where}.sha256: expected 64 lowercase hex digits, got {_got(digest)}")
    return entry


def check_manifest(manifest: dict, source: Location) -> dict:
    """A manifest's shape, checked before it is used (`source`: its file, for errors): `version` a string,
    `files` a list of {path, bytes, sha256} whose paths stay inside the folder, `record_columns` (where
    present) a list of names. Raises CatalogError naming the file, the entry and what was expected."""
    if not isinstance(manifest.get("version"), str):
        raise CatalogError(f"{source}: version: expected the version's hex digits, got {_got(manifest.get('version'))}")
    files = manifest.get("files")
    if not isinstance(files, list):
        raise CatalogError(f"{source}: files: expected a list of {{path, bytes, sha256}}, got {_got(files)}")
    for i, entry in enumerate(files):
        check_manifest_file(entry, f"{source}: files[{i}]")
    columns = manifest.get("record_columns", [])
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise CatalogError(f"{source}: record_columns: expected a list of column names, got {_got(columns)}")
    return manifest


def read_parquet_at(locs: list[Location], columns: list[str] | None = None) -> pl.DataFrame:
    """Parquet files at local paths or URLs as one frame (URLs read through fsspec)."""
    frames = []
    for loc in locs:
        if isinstance(loc, Path):
            frames.append(pl.read_parquet(loc, columns=columns))
        else:
            with open_at(loc) as fh:
                frames.append(pl.read_parquet(fh, columns=columns))
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def list_files(root: Location, folder: str, suffix: str) -> list[Location]:
    """Files under root/folder ending in `suffix`, recursively."""
    if isinstance(root, Path):
        return sorted((root / folder).rglob(f"*{suffix}"))
    fs, path = filesystem(join(root, folder))
    if not fs.isdir(path):
        return []
    base = root.rstrip("/")
    inside = filesystem(base)[1].rstrip("/")
    return sorted(f"{base}/{p[len(inside) :].lstrip('/')}" for p in fs.find(path) if p.endswith(suffix))


def publish_tree(staging: Path, target: Location, items: tuple[str, ...], last: str) -> None:
    """Replace each of `items` under `target` with staging's (files or folders), `last` (the
    manifest) removed first and written last: its presence means everything else is complete."""
    if isinstance(target, Path):
        target.mkdir(parents=True, exist_ok=True)
        (target / last).unlink(missing_ok=True)
        for item in (*items, last):
            dest = target / item
            if dest.is_dir():
                shutil.rmtree(dest)
            elif dest.exists():
                dest.unlink()
            if (staging / item).exists():
                shutil.move(staging / item, dest)  # a rename, unless output.work_dir is on another filesystem
        return
    fs, root = filesystem(target)
    root = root.rstrip("/")
    if fs.exists(f"{root}/{last}"):
        fs.rm(f"{root}/{last}")
    for item in (*items, last):
        dest = f"{root}/{item}"
        if fs.exists(dest):
            fs.rm(dest, recursive=True)
        source = staging / item
        files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source] * source.exists()
        for f in files:
            remote = f"{dest}/{f.relative_to(source).as_posix()}" if f != source else dest
            fs.makedirs(posixpath.dirname(remote), exist_ok=True)  # object stores: nothing; file://: folders
            fs.put_file(str(f), remote)
