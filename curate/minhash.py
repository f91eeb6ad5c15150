"""MinHash signatures computed in batches, bit-for-bit identical to `datasketch.MinHash`.

datasketch hashes every shingle with a Python call and applies its permutations with
numpy per document. Here shingle hashes are built from per-token xxh3 hashes with a
small polynomial (a hash function of the shingle's bytes, see `shingle_hash32`), and
the permutations run in one compiled (numba) loop over the whole batch. Give
datasketch the same `hashfunc` and seed and it produces exactly the same
`hashvalues` (scheme "affine32", datasketch's default since 2.0) — a test checks it.

Banding follows datasketch's MinHashLSH: `bands` x `rows`, from datasketch's own
optimal-parameter search unless given; docs sharing any band's exact values are
candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numba
import numpy as np
import polars as pl
import xxhash
from datasketch import MinHash

from curate.normalize import Normalization

MASK32 = np.uint64(0xFFFFFFFF)
PART_BIT = np.uint32(1)  # the lowest bit of a stored shingle hash: which of a record's two parts holds it
_POLY = np.uint64(0x100000001B3)  # FNV-64 prime: combines token hashes into a shingle hash
SEP = " "  # how a word shingle is written as bytes for datasketch's hashfunc


def token_hash(token: str) -> int:
    return xxhash.xxh3_64_intdigest(token.encode())


def _mix32(h: int) -> int:
    return (h ^ (h >> 32)) & 0xFFFFFFFF


def shingle_hash32(shingle: bytes) -> int:
    """The hash function of a word shingle's bytes (tokens joined by a space).

    Pass it as `hashfunc` to `datasketch.MinHash` to reproduce curate's signatures.
    """
    h = 0
    for token in shingle.decode("utf-8").split(SEP):
        h = (h * int(_POLY) + token_hash(token)) & 0xFFFFFFFFFFFFFFFF
    return _mix32(h)


def char_shingle_hash32(shingle: bytes) -> int:
    """The hash function of a character shingle's bytes (its UTF-8 text)."""
    h = 0
    for ch in shingle.decode("utf-8"):
        h = (h * int(_POLY) + ord(ch)) & 0xFFFFFFFFFFFFFFFF
    return _mix32(h)


@numba.njit(cache=True, nogil=True)
def _rolling(values: np.ndarray, offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hash of every window of `n` consecutive values per document (one window if shorter)."""
    docs = len(offsets) - 1
    counts = np.zeros(docs, np.int64)
    for d in range(docs):
        length = offsets[d + 1] - offsets[d]
        counts[d] = length - n + 1 if length >= n else (1 if length > 0 else 0)
    out_offsets = np.zeros(docs + 1, np.int64)
    out_offsets[1:] = np.cumsum(counts)
    out = np.empty(out_offsets[-1], np.uint64)
    for d in range(docs):
        start, length = offsets[d], offsets[d + 1] - offsets[d]
        width = n if length >= n else length
        for i in range(counts[d]):
            h = np.uint64(0)
            for k in range(width):
                h = h * np.uint64(0x100000001B3) + values[start + i + k]
            out[out_offsets[d] + i] = h
    return out, out_offsets


def _fold32(hashes: np.ndarray) -> np.ndarray:
    return ((hashes ^ (hashes >> np.uint64(32))) & MASK32).astype(np.uint32)


@numba.njit(cache=True, nogil=True)
def _signatures(hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """datasketch affine32: fmix32 pre-mix, then min over shingles of a*h + b mod 2^32."""
    docs, perms = len(offsets) - 1, len(a)
    out = np.full((docs, perms), 0xFFFFFFFF, np.uint32)
    mask = np.uint64(0xFFFFFFFF)
    for d in range(docs):
        row = out[d]
        for i in range(offsets[d], offsets[d + 1]):
            h = np.uint64(hashes[i])
            h ^= h >> np.uint64(16)
            h = (h * np.uint64(0x85EBCA6B)) & mask
            h ^= h >> np.uint64(13)
            h = (h * np.uint64(0xC2B2AE35)) & mask
            h ^= h >> np.uint64(16)
            for k in range(perms):
                row[k] = min(row[k], np.uint32((np.uint64(a[k]) * h + np.uint64(b[k])) & mask))
    return out


@dataclass(frozen=True)
class MinHasher:
    num_perm: int = 128
    seed: int = 1
    shingle: str = "word"  # "word" or "char"
    ngram: int = 5
    normalization: Normalization = Normalization()
    # `sketch_parts`: a part is compared by its `ngram` shingles if it has `min_shingles` of them, else
    # by `short_ngram` ones if it has as many in proportion (min_shingles x short_ngram / ngram), else
    # whole (with short_ngram 0, every part under min_shingles). The defaults: every part by `ngram`.
    min_shingles: int = 1
    short_ngram: int = 0

    def __post_init__(self) -> None:
        a, b = MinHash(num_perm=self.num_perm, seed=self.seed).permutations
        object.__setattr__(self, "_a", np.ascontiguousarray(a, dtype=np.uint32))
        object.__setattr__(self, "_b", np.ascontiguousarray(b, dtype=np.uint32))
        short = self.short_ngram and replace(self, ngram=self.short_ngram, min_shingles=1, short_ngram=0)
        object.__setattr__(self, "_short", short)

    @property
    def hashfunc(self):
        return shingle_hash32 if self.shingle == "word" else char_shingle_hash32

    def shingles(self, text: str) -> list[bytes]:
        """The shingles of one text as datasketch would be fed them (for tests and tools)."""
        if self.shingle == "word":
            units, joiner = self.normalization.tokens([text])[0].to_list(), SEP
        else:
            units, joiner = list(self.normalization.texts([text])[0]), ""
        if not units:
            return []
        n = min(self.ngram, len(units))
        return [joiner.join(units[i : i + n]).encode() for i in range(len(units) - n + 1)]

    def shingle_hashes64(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per-document 64-bit shingle hashes, concatenated, with offsets (n-gram overlap checks)."""
        if self.shingle == "word":
            tokens = self.normalization.tokens(texts)
            lengths = tokens.list.len().to_numpy().astype(np.int64)
            flat = tokens.explode().drop_nulls()
            # Hash each distinct token once; a batch has far fewer distinct tokens than tokens.
            vocab = flat.unique()
            hashes = pl.Series(np.fromiter(map(token_hash, vocab.to_list()), np.uint64, len(vocab)), dtype=pl.UInt64)
            values = flat.replace_strict(vocab, hashes, return_dtype=pl.UInt64).to_numpy()
        else:
            norms = self.normalization.texts(texts)
            lengths = np.fromiter(map(len, norms), np.int64, len(norms))
            values = np.frombuffer("".join(norms).encode("utf-32-le"), np.uint32).astype(np.uint64)
        offsets = np.zeros(len(texts) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return _rolling(np.ascontiguousarray(values, dtype=np.uint64), offsets, self.ngram)

    def shingle_hashes(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per-document 32-bit shingle hashes (what MinHash consumes), concatenated, with offsets."""
        wide, offsets = self.shingle_hashes64(texts)
        return _fold32(wide), offsets

    def signatures(self, texts: list[str]) -> np.ndarray:
        """One row of `num_perm` uint32 values per text; an empty text gets all 0xFFFFFFFF."""
        hashes, offsets = self.shingle_hashes(texts)
        return _signatures(hashes, offsets, self._a, self._b)

    def sketch(self, texts: list[str], batch: int = 4096) -> "Sketch":
        """Signatures plus each text's shingle set (sorted hashes), kept for exact verification."""
        none = [""] * len(texts)
        return self.sketch_parts(texts, none, none, batch)

    def sketch_parts(self, first: list[str], second: list[str], whole: list[str], batch: int = 4096) -> "Sketch":
        """Sketches of records in parts: `first` and `second` (a prompt and its answer) are compared by
        Jaccard each, `whole` (a tool call) only whole.

        One changed word takes n shingles of n words out of a text and puts n others in; on a text of S
        shingles that leaves (S - n) / (S + n) in common, so below some S whether a one-word edit is
        near depends on where it falls (its ends take fewer). `min_shingles` is that S for `ngram`; a
        part with fewer is compared by `short_ngram` shingles (the same rule scaled), and a part too
        short for those is compared whole, except that a short first part (a one-line prompt) is
        compared along with a second part compared by Jaccard: a word changed in it is a small edit of
        the record, while a short answer (a label, a number, a name) with a word changed is another target.

        What is compared whole salts the record's shingle hashes (XOR with a hash of its normalised
        text), so two records that differ there share no shingle: no LSH band, a Jaccard of 0. The
        signature is the MinHash of the salted hashes of both parts; a record with nothing compared
        whole is not salted, so a long text's signature is still datasketch's. The stored set tags each
        hash with its part (lowest bit) for `Sketch.jaccard`. A record whose parts are all compared
        whole is one shingle: near only to the records equal to it where compared."""
        sigs, sets, offsets = [], [], [np.zeros(1, np.int64)]
        for start in range(0, len(first), batch):
            stop = start + batch
            hashes, parts, offs = self._part_hashes(first[start:stop], second[start:stop], whole[start:stop])
            sigs.append(_signatures(hashes, offs, self._a, self._b))
            uniq, uniq_offs = _unique_sorted((hashes & ~PART_BIT) | parts, offs)
            sets.append(uniq)
            offsets.append(uniq_offs[1:] + offsets[-1][-1])
        if not sigs:
            return Sketch(np.empty((0, self.num_perm), np.uint32), np.empty(0, np.uint32), np.zeros(1, np.int64))
        return Sketch(np.concatenate(sigs), np.concatenate(sets), np.concatenate(offsets))

    def _part_hashes(
        self, first: list[str], second: list[str], whole: list[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The salted shingle hashes each record is compared by, the part each is compared in (0 or
        1), and the records' offsets. A record with nothing left to compare by Jaccard is one shingle,
        its salt."""
        docs = len(first)
        long = [_hashes(self, first), _hashes(self, second)]
        fits = [np.diff(o) >= self.min_shingles for _, o in long]
        short, by_short = long, [np.zeros(docs, bool), np.zeros(docs, bool)]
        if self._short:
            floor = -(-self.min_shingles * self.short_ngram // self.ngram)
            short = [
                _hashes(self._short, [t if not f else "" for t, f in zip(texts, fit.tolist())])
                for texts, fit in zip((first, second), fits)
            ]
            by_short = [~fit & (np.diff(o) >= floor) for fit, (_, o) in zip(fits, short)]
        whole1 = ~fits[1] & ~by_short[1]
        too_short0 = ~fits[0] & ~by_short[0]
        whole0, joined = too_short0 & whole1, too_short0 & ~whole1
        pieces = [  # (hashes, offsets) of every record, the records taking them, the part they are in
            (long[0], fits[0], 0),
            (short[0], by_short[0], 0),
            (long[1], fits[1], 1),
            (short[1], by_short[1], 1),
            (long[0], joined & fits[1], 1),  # a prompt too short for itself, weighed with its answer
            (short[0], joined & by_short[1], 1),
        ]
        salts = self._salts(
            [t if w else "" for t, w in zip(first, whole0.tolist())],
            [t if w else "" for t, w in zip(second, whole1.tolist())],
            whole,
        )
        taken = [(hashes, offsets, take, part) for (hashes, offsets), take, part in pieces if take.any()]
        counts = sum((np.diff(offsets) * take for _, offsets, take, _ in taken), np.zeros(docs, np.int64))
        alone = np.flatnonzero((counts == 0) & (salts != 0))
        counts[alone] = 1
        offsets = np.zeros(docs + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        hashes, parts = _merge(taken, alone, docs)
        return hashes ^ np.repeat(salts, counts), parts, offsets

    def _salts(self, first: list[str], second: list[str], whole: list[str]) -> np.ndarray:
        """Per record, a 32-bit hash of its normalised pieces compared whole (0: none)."""
        out = np.zeros(len(first), np.uint32)
        pending = [i for i, pieces in enumerate(zip(first, second, whole)) if any(pieces)]
        if not pending:
            return out
        texts = self.normalization.texts([p for i in pending for p in (first[i], second[i], whole[i])])
        for k, i in enumerate(pending):
            pieces = texts[3 * k : 3 * k + 3]
            if any(pieces):  # punctuation alone normalises to nothing: nothing to compare
                out[i] = _mix32(xxhash.xxh3_64_intdigest("\x00".join(pieces).encode()))
        return out


def _hashes(hasher: MinHasher, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """`hasher.shingle_hashes`, without the work when every text is empty (documents have no answer)."""
    if any(texts):
        return hasher.shingle_hashes(texts)
    return np.empty(0, np.uint32), np.zeros(len(texts) + 1, np.int64)


def _merge(
    taken: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]], alone: np.ndarray, docs: int
) -> tuple[np.ndarray, np.ndarray]:
    """The hashes of the pieces taken, and a 0 for each record `alone`, in record order; with their parts."""
    if len(taken) <= 1:  # documents, say: already in record order
        hashes, offsets, take, part = (
            taken[0] if taken else (np.empty(0, np.uint32), np.zeros(docs + 1, np.int64), np.zeros(docs, bool), 0)
        )
        n = np.diff(offsets) * take
        hashes = hashes if take.all() else hashes[np.repeat(take, np.diff(offsets))]
        if len(alone):
            at = np.concatenate([[0], np.cumsum(n)])[alone]
            return np.insert(hashes, at, 0), np.insert(np.full(len(hashes), part, np.uint32), at, 0)
        return hashes, np.full(len(hashes), part, np.uint32)
    ids = np.arange(docs)
    flat, parts, record = [np.zeros(len(alone), np.uint32)], [np.zeros(len(alone), np.uint32)], [alone]
    for hashes, offsets, take, part in taken:
        n = np.diff(offsets)
        flat.append(hashes[np.repeat(take, n)])
        record.append(np.repeat(ids, n * take))
        parts.append(np.full(len(flat[-1]), part, np.uint32))
    order = np.argsort(np.concatenate(record), kind="stable")  # by record, then piece
    return np.concatenate(flat)[order], np.concatenate(parts)[order]


@dataclass(frozen=True)
class Sketch:
    signatures: np.ndarray
    sets: np.ndarray
    set_offsets: np.ndarray

    @staticmethod
    def concat(parts: list["Sketch"]) -> "Sketch":
        """Sketches of consecutive runs of texts, as one."""
        offsets = [np.zeros(1, np.int64)]
        for part in parts:
            offsets.append(part.set_offsets[1:] + offsets[-1][-1])
        return Sketch(
            np.concatenate([p.signatures for p in parts]),
            np.concatenate([p.sets for p in parts]),
            np.concatenate(offsets),
        )

    @property
    def rows(self) -> int:
        return len(self.signatures)

    def band(self, band: int, rows: int) -> np.ndarray:
        """Every text's values of one LSH band."""
        return self.signatures[:, band * rows : (band + 1) * rows]

    def signature_rows(self, index: np.ndarray) -> np.ndarray:
        return self.signatures[index]

    def empty(self) -> np.ndarray:
        """Texts without a single shingle (the all-0xFFFFFFFF signature)."""
        return (self.signatures == np.uint32(0xFFFFFFFF)).all(axis=1)

    def jaccard(self, pairs: np.ndarray) -> np.ndarray:
        """Exact Jaccard of the shingle sets of each pair (row indices); of records in two parts, the
        lower of the parts' (`MinHasher.sketch_parts`)."""
        return _pair_jaccard(self.sets, self.set_offsets, pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64))


class SketchFiles:
    """Sketches of many texts kept on disk under `folder`, added batch by batch, read back as `Sketch`
    is: each LSH band in a file of its own (read whole, one band at a time), the signatures row by row,
    the shingle sets one after another. In memory: per text its set's offset and whether it is empty
    (9 bytes), so memory does not grow with the signatures or sets. Reads of some texts' signatures or
    sets (verifying candidate pairs) go `PAIRS_PER_READ` pairs at a time."""

    PAIRS_PER_READ = 50_000

    def __init__(self, folder: Path, num_perm: int, bands: int, rows: int):
        self.folder, self.num_perm, self.bands, self.band_rows = folder, num_perm, bands, rows
        folder.mkdir(parents=True, exist_ok=True)
        self.rows = 0
        self._offsets = [np.zeros(1, np.int64)]
        self._empty: list[np.ndarray] = []

    def _path(self, name: str) -> Path:
        return self.folder / name

    def add(self, sketch: Sketch) -> None:
        with open(self._path("signatures"), "ab") as fh:
            fh.write(np.ascontiguousarray(sketch.signatures).tobytes())
        for band in range(self.bands):
            with open(self._path(f"band-{band}"), "ab") as fh:
                fh.write(np.ascontiguousarray(sketch.band(band, self.band_rows)).tobytes())
        with open(self._path("sets"), "ab") as fh:
            fh.write(sketch.sets.tobytes())
        self._offsets.append(sketch.set_offsets[1:] + self._offsets[-1][-1])
        self._empty.append(sketch.empty())
        self.rows += sketch.rows

    def _read(self, name: str, dtype, count: int = -1, offset: int = 0) -> np.ndarray:
        path = self._path(name)
        if not path.is_file():
            return np.empty(0, dtype)
        return np.fromfile(path, dtype, count=count, offset=offset * np.dtype(dtype).itemsize)

    def band(self, band: int, rows: int) -> np.ndarray:
        assert rows == self.band_rows, "bands are stored as they were cut"
        return self._read(f"band-{band}", np.uint32).reshape(self.rows, rows)

    def signature_range(self, start: int, stop: int) -> np.ndarray:
        """The signatures of texts start..stop-1, in order."""
        count = (stop - start) * self.num_perm
        return self._read("signatures", np.uint32, count, start * self.num_perm).reshape(stop - start, self.num_perm)

    def signature_rows(self, index: np.ndarray) -> np.ndarray:
        width = np.full(len(index), self.num_perm, np.int64)
        return self._gather("signatures", index * self.num_perm, width).reshape(len(index), self.num_perm)

    def _gather(self, name: str, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The uint32 values at starts[k]..starts[k]+lengths[k]-1 of a stored file, one run after another."""
        out = np.empty(int(lengths.sum()), np.uint32)
        at = 0
        with open(self._path(name), "rb") as fh:
            for start, length in zip(starts.tolist(), lengths.tolist()):
                fh.seek(start * 4)
                fh.readinto(memoryview(out[at : at + length]))
                at += length
        return out

    def empty(self) -> np.ndarray:
        return np.concatenate(self._empty) if self._empty else np.empty(0, bool)

    def jaccard(self, pairs: np.ndarray) -> np.ndarray:
        """`Sketch.jaccard`, reading only the sets of the texts in the pairs, a block of pairs at a time."""
        offsets = np.concatenate(self._offsets)
        out = np.empty(len(pairs))
        for start in range(0, len(pairs), self.PAIRS_PER_READ):
            block = pairs[start : start + self.PAIRS_PER_READ]
            texts = np.unique(block)
            lengths = offsets[texts + 1] - offsets[texts]
            local = np.zeros(len(texts) + 1, np.int64)
            np.cumsum(lengths, out=local[1:])
            sets = self._gather("sets", offsets[texts], lengths)
            at = np.searchsorted(texts, block)
            out[start : start + len(block)] = _pair_jaccard(sets, local, at[:, 0], at[:, 1])
        return out


@numba.njit(cache=True, nogil=True)
def _unique_sorted(hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each document's shingle hashes as a sorted set."""
    docs = len(offsets) - 1
    out = np.empty(len(hashes), np.uint32)
    out_offsets = np.zeros(docs + 1, np.int64)
    pos = 0
    for d in range(docs):
        seg = np.sort(hashes[offsets[d] : offsets[d + 1]])
        for i in range(len(seg)):
            if i == 0 or seg[i] != seg[i - 1]:
                out[pos] = seg[i]
                pos += 1
        out_offsets[d + 1] = pos
    return out[:pos], out_offsets


@numba.njit(cache=True, nogil=True)
def _pair_jaccard(sets: np.ndarray, offsets: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Exact Jaccard of sorted sets, pair by pair, by merging: of each part (the lowest bit of a value)
    apart, the lower of the two; a part neither set has is left out."""
    out = np.zeros(len(left))
    for p in range(len(left)):
        i, i_end = offsets[left[p]], offsets[left[p] + 1]
        j, j_end = offsets[right[p]], offsets[right[p] + 1]
        size = np.zeros(2, np.int64)
        common = np.zeros(2, np.int64)
        for k in range(i, i_end):
            size[sets[k] & 1] += 1
        for k in range(j, j_end):
            size[sets[k] & 1] += 1
        while i < i_end and j < j_end:
            if sets[i] == sets[j]:
                common[sets[i] & 1] += 1
                i += 1
                j += 1
            elif sets[i] < sets[j]:
                i += 1
            else:
                j += 1
        lowest, seen = 1.0, False
        for part in range(2):
            union = size[part] - common[part]
            if union:
                lowest = min(lowest, common[part] / union)
                seen = True
        out[p] = lowest if seen else 0.0
    return out


def lsh_params(
    threshold: float,
    num_perm: int,
    bands: int | None = None,
    rows: int | None = None,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """datasketch's optimal (bands, rows) for a Jaccard threshold, unless both are given.

    A false-negative weight above 0.5 favours recall; verification then removes the
    extra false positives.
    """
    if bands and rows:
        return bands, rows
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, 1.0 - false_negative_weight, false_negative_weight)


def candidate_pairs(signatures: np.ndarray, bands: int, rows: int, max_bucket: int = 64) -> np.ndarray:
    """Pairs (i, j), i < j, of rows that share all values of at least one band.

    Buckets up to `max_bucket` members contribute every pair; a bigger bucket (a mass of
    copies) contributes a star to its first member, which is enough to connect it.
    Everything is vectorised per band and bucket size, never per bucket.
    """

    def band_of(band: int) -> np.ndarray:
        return signatures[:, band * rows : (band + 1) * rows]

    return band_candidates(band_of, len(signatures), bands, max_bucket)


def band_candidates(band_of: Callable[[int], np.ndarray], n: int, bands: int, max_bucket: int = 64) -> np.ndarray:
    """`candidate_pairs` of `n` records whose band values come one band at a time: `band_of(b)` gives
    every record's values of band b (read from disk, say), and only one band is held at once. The
    pairs are merged band by band, so a pair that several bands find is held once (near-duplicates
    share most bands: holding every band's pairs before merging cost up to `bands` times as much)."""
    positions = np.arange(n, dtype=np.int64)
    unique = np.empty(0, np.int64)
    for band in range(bands):
        unique = np.union1d(unique, band_pair_codes(band_of(band), positions, n, max_bucket))
    return _code_pairs(unique, n)


def band_pair_codes(block: np.ndarray, positions: np.ndarray, n: int, max_bucket: int) -> np.ndarray:
    """For one band: each candidate pair among rows with equal values in `block` (one row per record,
    at record number `positions`), as one int64 `i * n + j`, i < j, so de-duplication is a 1-D unique."""
    block = np.ascontiguousarray(block)
    keys = block.view(np.dtype((np.void, block.shape[1] * block.itemsize))).ravel()
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    codes = [np.empty(0, np.int64)]
    for size in np.unique(sizes[sizes > 1]):
        members = np.sort(positions[order[starts[sizes == size][:, None] + np.arange(size)]], axis=1)
        if size <= max_bucket:
            i, j = np.triu_indices(size, k=1)
            left, right = members[:, i], members[:, j]
        else:
            left, right = np.repeat(members[:, :1], size - 1, axis=1), members[:, 1:]
        codes.append((left.astype(np.int64) * n + right).ravel())
    return np.concatenate(codes)


def pairs_from_codes(codes: list[np.ndarray], n: int) -> np.ndarray:
    return _code_pairs(np.unique(np.concatenate(codes)) if codes else np.empty(0, np.int64), n)


def _code_pairs(unique: np.ndarray, n: int) -> np.ndarray:
    """Sorted unique pair codes `i * n + j` as (i, j) rows."""
    return np.stack([unique // n, unique % n], axis=1) if len(unique) else np.empty((0, 2), np.int64)


def band_partitions(
    signatures: np.ndarray, positions: np.ndarray, bands: int, rows: int, partitions: int
) -> list[dict[int, tuple[np.ndarray, np.ndarray]]]:
    """The map side of the LSH shuffle: each (band, bucket) key goes to one of `partitions`
    (by a hash of the key, so equal keys meet in the same one), as {band: (positions, values)}."""
    out: list[dict] = [{} for _ in range(partitions)]
    for band in range(bands):
        block = signatures[:, band * rows : (band + 1) * rows]
        mixed = (block[:, 0].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(band)) >> np.uint64(32)
        part = (mixed % np.uint64(partitions)).astype(np.int64)
        for p in np.unique(part):
            take = part == p
            out[p][band] = (positions[take], block[take])
    return out


def reduce_band_partition(n: int, max_bucket: int, *parts: dict[int, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The reduce side: one partition's keys from every mapper, grouped by band into pair codes."""
    codes = []
    for band in sorted({b for part in parts for b in part}):
        pieces = [part[band] for part in parts if band in part]
        positions = np.concatenate([p for p, _ in pieces])
        block = np.concatenate([v for _, v in pieces])
        codes.append(band_pair_codes(block, positions, n, max_bucket))
    return np.concatenate(codes) if codes else np.empty(0, np.int64)


@numba.njit(cache=True, nogil=True)
def _pair_agreement(signatures: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    out = np.empty(len(left))
    perms = signatures.shape[1]
    for p in range(len(left)):
        same = 0
        for k in range(perms):
            same += signatures[left[p], k] == signatures[right[p], k]
        out[p] = same / perms
    return out


def estimated_jaccard(signatures: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The MinHash estimate: the share of positions where two signatures agree."""
    if not len(pairs):
        return np.empty(0)
    return _pair_agreement(np.ascontiguousarray(signatures), pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64))


def true_jaccard_pairs(hasher: MinHasher, texts: list[str], threshold: float) -> set[tuple[int, int]]:
    """Every pair (i < j) whose exact shingle-set Jaccard is at least `threshold` (sparse all-pairs)."""
    from scipy.sparse import csr_matrix

    hashes, offsets = hasher.shingle_hashes(texts)
    rows = np.repeat(np.arange(len(texts)), np.diff(offsets))
    _, cols = np.unique(hashes, return_inverse=True)
    incidence = csr_matrix(
        (np.ones(len(cols), np.float32), (rows, cols)), shape=(len(texts), cols.max() + 1 if len(cols) else 0)
    )
    incidence.data[:] = 1.0
    incidence.sum_duplicates()
    incidence.data[:] = 1.0  # sets, not multisets
    sizes = np.asarray(incidence.sum(axis=1)).ravel()
    inter = (incidence @ incidence.T).tocoo()
    i, j, n = inter.row, inter.col, inter.data
    upper = i < j
    i, j, n = i[upper], j[upper], n[upper]
    jac = n / (sizes[i] + sizes[j] - n)
    keep = jac >= threshold
    return set(zip(i[keep].tolist(), j[keep].tolist()))


def pair_scores(found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> dict[str, float]:
    tp = len(found & truth)
    precision = tp / len(found) if found else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "pairs_true": len(truth),
        "pairs_found": len(found),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
    }
