"""Content hashes and fingerprints used for lineage, caching and the catalog."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import orjson

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return sha256_stream(fh)


def sha256_stream(fh: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_json(value: object) -> str:
    """Hash of a JSON-able value with sorted keys, so dict order never changes it."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def short(digest: str, n: int = 12) -> str:
    return digest[:n]


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the engine's own source, so a code change invalidates cached results."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in {".py", ".html"} and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
