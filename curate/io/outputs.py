"""Output folders: which ones a run may write, one run at a time per folder, and an atomic switch.

A run writes only into a folder it owns: a new or empty one (it writes the ownership marker
`.curate-output` there first), or one that already holds a curate marker or manifest and nothing
else curate did not write. Anything else is refused before any work, as is `/`, the home
folder, the catalog, and a folder that is, contains or lies inside an input.

Each local output folder has an exclusive lock (`.<name>.curate-lock`, beside it) held for the
whole run. The new version is assembled complete beside the folder (`.<name>.curate-staging`)
and swapped in with one `renameat2(RENAME_EXCHANGE)`, so at every instant the folder holds the
complete old version or the complete new one; the old one is removed only after the swap. On a
filesystem without the exchange (e.g. NFS) two renames are used, and a crash between them is
repaired by the next run (the folder is briefly absent, never mixed).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import time
from pathlib import Path

import orjson

from curate.errors import CurateError
from curate.io.shards import filesystem, inside_folder, read_manifest

MARKER = ".curate-output"
MARKER_BYTES = (
    orjson.dumps({"format": "curate.output/1", "note": "written by curate: this folder is a curate output"}) + b"\n"
)
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "curate.manifest/1"
WORK = "_work"
GX_DOCS = "gx-docs"  # Great Expectations' Data Docs for the gates that ran
ARTIFACTS = "artifacts"  # files a stage publishes beside the shards (e.g. classify's fastText model)
PUBLISHED = ("data", "rejected", "signatures", ARTIFACTS, GX_DOCS, "report.json", "report.html")  # then MANIFEST
LISTED = ("data", "rejected", "signatures", ARTIFACTS)  # folders whose every file the manifest lists
OURS = frozenset({MARKER, MANIFEST, WORK, *PUBLISHED})


class OutputError(CurateError):
    """The output folder cannot be used: not curate's, overlapping an input, or in use by another run."""


def _sibling(out: Path, what: str) -> Path:
    return out.parent / f".{out.name}.curate-{what}"


def staging_dir(out: Path) -> Path:
    return _sibling(out, "staging")


def new_staging(out: Path) -> Path:
    """An empty staging folder beside `out`, marked as curate's. One left by a crashed run of ours (it
    carries the marker) is replaced; anything else by that name is not ours, and is refused."""
    staging = staging_dir(out.resolve())
    if staging.is_dir() and not staging.is_symlink() and (staging / MARKER).is_file():
        shutil.rmtree(staging)
    if staging.exists() or staging.is_symlink():
        raise OutputError(
            f"{staging} exists and curate did not write it; move it away (curate stages the new version there)"
        )
    staging.mkdir()
    write_marker(staging)
    return staging


def _shown(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def contained(folder: Path, rel: str) -> Path:
    """`folder / rel` for a path a manifest or a run names inside `folder`, refused (OutputError) where it
    is absolute, climbs out with `..`, or passes through a link: what curate deletes or writes there must
    be the folder's own entry, never what a link points at."""
    path = folder / rel
    if not inside_folder(rel) or not _inside(path.parent.resolve(), folder.resolve()):
        raise OutputError(f"{rel!r}: not a path inside {folder} (absolute, '..' or through a link); left alone")
    return path


def remove_owned(path: Path, within: Path) -> None:
    """Delete `path`, a file or a whole folder curate made inside `within`. A link is removed as a link,
    never followed (its target is not curate's), and the tree is removed without following the links
    inside it (shutil.rmtree's fd-based walk); a path that resolves outside `within` through a linked
    parent is refused."""
    if not _inside(path.parent.resolve() / path.name, within.resolve()):
        raise OutputError(f"{path}: resolves outside {within}; refusing to delete it")
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path)


def own_folder(path: Path, within: Path) -> list[str]:
    """Make `path` a real folder of curate's inside `within`: a link or file by its name is removed (the
    link itself: its target is left alone), and links found inside it are removed too (curate never
    makes links in its work folders, so one there was put by someone else and must not be followed).
    Returns a note for each link removed."""
    notes = []
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        notes.append(f"{path} was a link or a file, not curate's work folder: removed it (its target is untouched)")
        remove_owned(path, within)
    path.mkdir(parents=True, exist_ok=True)
    for parent, dirs, files in os.walk(path):  # os.walk does not descend into linked folders
        for name in [*dirs, *files]:
            entry = Path(parent) / name
            if entry.is_symlink():
                notes.append(f"removed the link {entry} from curate's work folder (its target is untouched)")
                entry.unlink()
    return notes


def check_location(out: Path, input_files: list[Path], input_folders: list[Path], catalog_root: Path) -> None:
    """Refuse an output folder that would destroy or re-read data: `/`, the home folder, the catalog,
    an input file or folder, a folder holding an input, or one inside an input folder."""
    out = out.resolve()
    home = Path.home().resolve()
    if out == Path(out.anchor):
        raise OutputError(f"output folder {out}: refusing the filesystem root")
    if out == home:
        raise OutputError(f"output folder {out}: refusing the home folder itself (choose a folder inside it)")
    catalog_root = catalog_root.resolve()
    if _inside(out, catalog_root) or _inside(catalog_root, out):
        raise OutputError(
            f"output folder {out}: refusing a folder that is, holds or lies inside the catalog ({catalog_root})"
        )
    for f in input_files:
        f = f.resolve()
        if _inside(f, out):
            raise OutputError(
                f"output folder {out} holds the input {f}: publishing would replace or re-read it; "
                "choose an output folder outside the inputs"
            )
    for folder in input_folders:
        folder = folder.resolve()
        if _inside(out, folder):
            raise OutputError(
                f"output folder {out} lies inside the input folder {folder}: every rerun would read its "
                "own output back; choose an output folder outside the inputs"
            )
    if not os.access(_existing(out.parent), os.W_OK):
        raise OutputError(
            f"output folder {out}: its parent folder is not writable (the new version is staged beside it)"
        )


def _existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def foreign_entries(out: Path) -> list[str]:
    """What inside an owned folder curate did not write: other top-level entries, and files under
    data/, rejected/, signatures/, artifacts/ the manifest does not list. Publishing would replace them.
    (A folder with the marker whose manifest is gone or damaged is curate's to replace whole.)"""
    found = sorted(p.name for p in out.iterdir() if p.name not in OURS)
    manifest = read_manifest(out)
    try:
        listed = {f["path"] for f in manifest["files"]}
    except (KeyError, TypeError):
        if (out / MARKER).is_file():
            return found
        listed = set()
    for folder in LISTED:
        root = out / folder
        if not root.exists():
            continue
        if not root.is_dir() or root.is_symlink():
            found.append(folder)
            continue
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(out).as_posix()
            if p.is_symlink() or (p.is_file() and rel not in listed):
                found.append(rel)
    return found


def claim(out: Path) -> None:
    """Make sure `out` is curate's to write (else OutputError, before any work), creating it and
    writing the ownership marker first where it is new or empty. Call with the folder's lock held."""
    out = out.resolve()
    _repair(out)
    for sibling in (staging_dir(out), _sibling(out, "old")):  # what _repair left is not ours
        if sibling.exists() or sibling.is_symlink():
            raise OutputError(
                f"{sibling} exists and curate did not write it; move it away (curate stages the new "
                f"version of {out} there)"
            )
    if out.exists() and not out.is_dir():
        raise OutputError(f"output folder {out} is a file, not a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries and MARKER not in entries:
        if MANIFEST not in entries:
            raise OutputError(
                f"output folder {out} holds files curate did not write ({_shown(entries)}); "
                "refusing to replace them: choose a new or empty folder"
            )
        if (read_manifest(out) or {}).get("format") != MANIFEST_FORMAT:
            raise OutputError(
                f"output folder {out}: its manifest.json is not a readable curate manifest; "
                "refusing to replace a folder curate may not own: move it away or choose another folder"
            )
    if entries:
        foreign = foreign_entries(out)
        if foreign:
            raise OutputError(
                f"output folder {out} holds files curate did not write: {_shown(foreign)}; "
                "publishing would replace them: move them out or choose another folder"
            )
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MARKER).is_file():
        write_marker(out)


def write_marker(folder: Path) -> None:
    (folder / MARKER).write_bytes(MARKER_BYTES)


def _repair(out: Path) -> None:
    """Finish or undo what a crashed run left beside `out`: a folder moved aside by the two-rename
    switch comes back; staging and old copies (ours: they carry the marker) are removed."""
    old = _sibling(out, "old")
    if not out.exists() and (old / MARKER).is_file():
        os.rename(old, out)
    for leftover in (staging_dir(out), old):
        if leftover.is_dir() and not leftover.is_symlink() and (leftover / MARKER).is_file():
            shutil.rmtree(leftover)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, f"cannot switch {b} to the new version: {os.strerror(err)}")


def switch(staging: Path, out: Path) -> None:
    """Put the complete folder `staging` in the place of `out` atomically, then remove the old one.
    Files that appeared in `out` since `claim` are not ours: refuse rather than remove them."""
    out = out.resolve()
    foreign = foreign_entries(out)
    if foreign:
        raise OutputError(
            f"output folder {out}: files appeared during the run that curate did not write "
            f"({_shown(foreign)}); the new version is left in {staging}, the folder unchanged"
        )
    if _exchange(staging, out):
        shutil.rmtree(staging)
        return
    old = _sibling(out, "old")
    os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old)


class Lock:
    """An exclusive, non-blocking lock on a lock file (flock: released when the process dies).
    A second run into the same output is refused, naming the pid that holds it."""

    def __init__(self, path: Path, what: str, wait: float = 0.0):
        self.path, self.what, self.wait, self.fd = path, what, wait, None

    def __enter__(self) -> "Lock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline, pause = time.monotonic() + self.wait, 0.001
        while True:  # held by another process: retried for up to `wait` seconds (a short write's lock)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(pause)
                    pause = min(2 * pause, 0.05)
                    continue
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                waited = f" for {self.wait:.0f} s" if self.wait else ""
                raise OutputError(
                    f"{self.what} is in use by another curate run (pid {holder}){waited}; "
                    "wait for it to finish or choose another output folder"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing releases the flock; the file stays (removing it would race)
            self.fd = None


def output_lock(out: Path) -> Lock:
    out = out.resolve()
    return Lock(_sibling(out, "lock"), f"output folder {out}")


def claim_remote(url: str) -> None:
    """`claim` for an output on object storage (a URL): the same ownership rule, no lock or swap
    there (the run's local work folder is locked instead; see curate.engine)."""
    import posixpath

    fs, root = filesystem(url)
    root = root.rstrip("/")
    names = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False)) if fs.isdir(root) else []
    if names and MARKER not in names and MANIFEST not in names:
        raise OutputError(
            f"output folder {url} holds files curate did not write ({_shown(names)}); "
            "refusing to replace them: choose a new or empty folder"
        )
    foreign = [n for n in names if n not in OURS]
    if foreign:
        raise OutputError(
            f"output folder {url} holds files curate did not write: {_shown(foreign)}; "
            "publishing would replace them: move them out or choose another folder"
        )
    if MARKER not in names:
        fs.makedirs(root, exist_ok=True)
        fs.pipe_file(f"{root}/{MARKER}", MARKER_BYTES)


def remove_published(out: Path, version: str) -> list[str]:
    """Delete what curate published in the local folder `out`, which must hold `version`: every file its
    manifest lists, the report, the Data Docs, the manifest and the marker. Files curate did not write
    stay (and with them the folder); they are returned. Holds the folder's lock: not during a run."""
    out = out.resolve()
    with output_lock(out):
        manifest = read_manifest(out)
        if manifest is None or manifest.get("version") != version:
            held = manifest.get("version") if manifest else None
            raise OutputError(
                f"{out} does not hold version {version}"
                + (f" (it holds {held})" if held else "")
                + "; nothing was deleted"
            )
        foreign = foreign_entries(out)
        listed = []
        for f in manifest.get("files", []):
            try:  # a manifest entry naming a path outside the folder is not curate's file: left, and said
                listed.append(contained(out, str(f["path"])))
            except (OutputError, KeyError, TypeError):
                foreign.append(str(f.get("path") if isinstance(f, dict) else f))
        for path in listed:
            if path.is_file() and not path.is_symlink():
                path.unlink()
        for name in (GX_DOCS, WORK):
            remove_owned(out / name, out)
        for name in ("report.json", "report.html", MANIFEST, MARKER):
            (out / name).unlink(missing_ok=True)
        for folder in LISTED:  # the folders the listed files were in, if nothing else is left in them
            root = out / folder
            if root.is_dir() and not root.is_symlink():
                found = (p for p in root.rglob("*") if p.is_dir() and not p.is_symlink())
                for d in sorted(found, key=lambda p: -len(p.parts)) + [root]:
                    if not any(d.iterdir()):
                        d.rmdir()
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        return foreign


def keep_copy(src: Path, dest: Path, files: list[str], link: bool = True) -> tuple[int, int]:
    """A published version's files (manifest-relative paths, plus the manifest and report) hard-linked
    into `dest`, copied where a link cannot be made (another filesystem). Publishing replaces files by
    renaming, never rewrites them in place, so a link keeps the version's bytes whatever happens to
    `src`. Returns (files linked, bytes copied)."""
    staging = dest.with_name(f".{dest.name}.keeping")
    shutil.rmtree(staging, ignore_errors=True)
    linked = copied = 0
    for rel in [*files, "report.json", "report.html", MANIFEST]:
        source = src / rel
        if not source.is_file():
            continue
        target = staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if not link:
                raise OSError("copy asked for")
            os.link(source, target)
            linked += 1
        except OSError:
            shutil.copy2(source, target)
            copied += source.stat().st_size
    write_marker(staging)
    if dest.exists():
        shutil.rmtree(dest)
    os.rename(staging, dest)
    return linked, copied


def export_rows(frame, export: Path, force: bool) -> None:
    """Write rows to a .parquet or .jsonl file the user names: never through a link (a link by that name
    is replaced itself, with --force, as an existing file is), never into a curate output folder (a
    later publish would replace it; the run's own rejected/ would count it twice), and whole or not at
    all (a temporary file beside it, renamed into place)."""
    import tempfile

    if export.suffix not in (".parquet", ".jsonl", ".ndjson"):
        raise OutputError(f"--export {export}: use a .parquet or .jsonl file name")
    if (export.exists() or export.is_symlink()) and not force:
        what = "is a link" if export.is_symlink() else "already exists"
        raise OutputError(f"{export} {what}; pass --force to replace it, or choose another file")
    if export.is_dir() and not export.is_symlink():
        raise OutputError(f"--export {export}: is a folder; name a file")
    folder = export.absolute().parent
    if not folder.is_dir():
        raise OutputError(f"--export {export}: the folder {folder} does not exist")
    owner = next((p for p in (folder, *folder.parents) if (p / MARKER).is_file()), None)
    if owner is not None:
        raise OutputError(
            f"--export {export}: {owner} is a curate output folder (publishing replaces what is in it); "
            "choose a file outside it"
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{export.name}.", suffix=".part", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as any file the user writes, not mkstemp's 0600
    try:
        frame.write_parquet(tmp) if export.suffix == ".parquet" else frame.write_ndjson(tmp)
        os.replace(tmp, export)  # replaces a link by that name, never what it points at
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
