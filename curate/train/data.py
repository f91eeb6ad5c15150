"""Training data from curated shards: train/validation from the split stage, refused if they leak.

`shards://name@version` (or `@latest`, or a run directory) resolves through the catalog, which
refuses versions whose gates failed; the version and manifest travel with the adapter as its
lineage. Before anything trains, the validation records are checked against the training
records: shared ids, shared near-duplicate clusters (`dup_cluster`) or identical normalized
content mean the validation loss would measure memorisation, so training refuses to start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from curate.catalog import Catalog
from curate.errors import CurateError
from curate.gates.frames import record_hash
from curate.io.shards import is_file, join, list_files, location, read_json_at, read_parquet_at


class TrainDataError(CurateError):
    """The shards cannot be trained on as they are (missing split, leakage, nothing to learn)."""


@dataclass
class TrainData:
    train: pl.DataFrame
    validation: pl.DataFrame
    lineage: dict  # name, version, path, manifest pipeline fingerprint
    manifest: dict = field(default_factory=dict)
    test: pl.DataFrame | None = None  # the held-out split, when the shards have one

    @property
    def held_out(self) -> tuple[str, pl.DataFrame]:
        """The split final metrics are measured on: test when there is one, else validation."""
        return ("test", self.test) if self.test is not None and self.test.height else ("validation", self.validation)

    def stage_rules(self, stage: str) -> dict:
        """The rules a pipeline stage ran with (e.g. the balance stage's label and strata), {} if it did not run."""
        stages = self.manifest.get("pipeline", {}).get("stages", [])
        return next((s.get("rules") or {} for s in stages if s.get("stage") == stage), {})


def leaks(train: pl.DataFrame, validation: pl.DataFrame) -> dict[str, int]:
    """Validation records that also appear in train: by id, by near-duplicate cluster, by content."""
    out = {"ids": int(validation["id"].is_in(train["id"].implode()).sum())}
    if "dup_cluster" in train.columns and "dup_cluster" in validation.columns:
        clusters = train["dup_cluster"].drop_nulls().implode()
        out["dup_clusters"] = int(validation["dup_cluster"].drop_nulls().is_in(clusters).sum())
    hashes = {
        name: df.select(record_hash(df.schema))[:, 0] for name, df in (("train", train), ("validation", validation))
    }
    out["content"] = int(hashes["validation"].is_in(hashes["train"].implode()).sum())
    return out


def load(
    source: str, train_split: str = "train", validation_split: str = "validation", test_split: str = "test"
) -> TrainData:
    if source.startswith("shards://") or "@" in source and not Path(source).exists():
        entry = Catalog().resolve(source)
        folder, files, lineage = entry.path, entry.data_files(), {"ref": entry.ref}
    else:
        folder = location(source)
        if not is_file(join(folder, "manifest.json")):
            raise TrainDataError(f"{source}: not a catalog reference or a curated run directory (no manifest.json)")
        files, lineage = list_files(folder, "data", ".parquet"), {"ref": str(folder)}
    manifest = read_json_at(join(folder, "manifest.json"))
    if manifest.get("status") != "ok":
        raise TrainDataError(
            f"{source}: marked '{manifest.get('status')}' (its gates failed); fix the data before training"
        )
    lineage.update(
        name=manifest["name"],
        version=manifest["version"],
        path=str(folder),
        pipeline_fingerprint=manifest["pipeline"]["fingerprint"],
        run_key=manifest["run_key"],
    )
    df = read_parquet_at(files)
    if "split" not in df.columns:
        raise TrainDataError(f"{source}: no `split` column; add a split stage to the pipeline")
    train, validation = df.filter(pl.col("split") == train_split), df.filter(pl.col("split") == validation_split)
    if not train.height or not validation.height:
        raise TrainDataError(
            f"{source}: needs rows in both '{train_split}' ({train.height}) and '{validation_split}' "
            f"({validation.height})"
        )
    test = df.filter(pl.col("split") == test_split)
    for name, held in ((validation_split, validation), (test_split, test)):
        found = {k: v for k, v in leaks(train, held).items() if v} if held.height else {}
        if found:
            raise TrainDataError(
                f"{source}: {name} overlaps train ({', '.join(f'{k} {v}' for k, v in found.items())}); "
                f"the {name} metrics would measure memorisation — re-run the split stage"
            )
    return TrainData(train, validation, lineage, manifest, test if test.height else None)
