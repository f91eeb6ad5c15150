"""The layout of a run's work folder (`<out>/_work/<run key>/`), in one place: the engine, the local
executor and the Ray executor write and read checkpoints only through these names.

    seg-00/                 one folder per segment of consecutive row stages (or one global stage)
      b-00000/              one batch's checkpoint
        kept.parquet        the rows that came through the segment
        rejected-<stage>.parquet
        done.json           written last: the batch's completion marker (its accounting)
      all/                  a global stage's segment: one checkpoint of every row, same files
      in/b-00000.parquet    Ray only: the batch the driver handed to the workers (and .quarantined)
"""

from __future__ import annotations

from pathlib import Path

DONE = "done.json"
KEPT = "kept.parquet"
INPUTS = "in"


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


def input_file(seg_dir: Path, index: int, what: str = "records") -> Path:
    """A batch handed to the Ray workers: its records, or the rows the reader quarantined (the worker
    writes those into the batch's checkpoint, redacted where the segment has a pii stage)."""
    return seg_dir / INPUTS / f"b-{index:05d}{'' if what == 'records' else '.' + what}.parquet"
