"""The layout of a run's work folder (`<out>/_work/<run key>/`), in one place: the engine, the local
executor and the Ray executor write and read checkpoints only through these names.

    seg-00/                 one folder per segment of consecutive row stages (or one global stage)
      b-00000/              one batch's checkpoint
        kept.parquet        the rows that came through the segment
        rejected-<stage>.parquet
        done.json           written last: the batch's completion marker (its accounting)
      all/                  a global stage's segment: one checkpoint of every row, same files
      read/                 seg-00 only: the input files as the workers read them
        u-00000/            one input file's parts (its rows in input order) and done.json, its summary;
                            removed once every batch is checkpointed
        batches.json        then written: how many batches the input made
"""

from __future__ import annotations

from pathlib import Path

DONE = "done.json"
KEPT = "kept.parquet"
BATCHES = "batches.json"


def segment_dir(work: Path, index: int) -> Path:
    return work / f"seg-{index:02d}"


def batch_dir(seg_dir: Path, index: int) -> Path:
    return seg_dir / f"b-{index:05d}"


def global_dir(seg_dir: Path) -> Path:
    """The checkpoint of a global stage's segment: it sees every row at once, so there is one."""
    return seg_dir / "all"


def kept_file(batch: Path) -> Path:
    return batch / KEPT


def rejected_file(batch: Path, stage: str) -> Path:
    return batch / f"rejected-{stage}.parquet"


def rejected_files(work: Path, stage: str) -> list[Path]:
    """Every checkpoint's rejected rows of one stage, in segment and batch order."""
    return sorted(work.glob(f"seg-*/*/rejected-{stage}.parquet"))


def read_dir(seg_dir: Path) -> Path:
    """Where the workers read the input files into parts (the first segment's)."""
    return seg_dir / "read"
