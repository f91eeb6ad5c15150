"""datatrove's equivalent of the scale benchmark's cheap pipeline, for `make bench` only (bench/scale.py).

Runs in its own virtualenv (datatrove is not a dependency of curate). Usage:
    python bench/datatrove_pipeline.py CORPUS_DIR WORKDIR WORKERS LID_MODEL RESULT.json

The FineWeb recipe's order: JsonlReader -> LanguageFilter (en, vi; lid.176, the model curate uses,
given as a file since nothing may be downloaded) -> GopherQualityFilter (its defaults; spaCy's blank
English tokenizer, datatrove's default for English) -> JsonlWriter; then MinHash dedup on what is left
(signatures, buckets, clusters, filter -> JsonlWriter), datatrove's default MinhashConfig. A chat record
is read as its messages' contents joined, so it is not lost as an empty document; a record whose
text is not a string is read as empty (see `_adapter`). datatrove has no
counterpart of curate's normalize and split (decontamination, leakage-free groups); nothing replaces
them here. One task per input file, `WORKERS` at a time.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.filters import GopherQualityFilter, LanguageFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.lid import FT176LID


class LocalLid(FT176LID):
    """lid.176 from a local file (datatrove's own downloads it from fbaipublicfiles)."""

    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText

            self._model = _FastText(self.path)
        return self._model


def _lid_filter(path: str) -> LanguageFilter:
    step = LanguageFilter(languages=["en", "vi"], language_threshold=0.65)
    step.model = LocalLid(["en", "vi"])
    step.model.path = path
    return step


def _adapter(self, data: dict, path: str, id_in_file: int | str) -> dict:
    """A record as datatrove's Document. A `text` that is not a string (the demo corpus has such bad
    records on purpose) is read as empty: datatrove's reader would stop the whole task on it."""
    text = data.get("text") if isinstance(data.get("text"), str) else ""
    if not text and isinstance(data.get("messages"), list):
        text = "\n\n".join(str(m.get("content", "")) for m in data["messages"] if isinstance(m, dict))
    return {"text": text or "", "id": str(data.get("id", f"{path}/{id_in_file}")), "metadata": {}}


def main(corpus: str, work: str, workers: str, lid_model: str, result: str) -> None:
    work_dir, n = Path(work), int(workers)
    files = sorted(Path(corpus).glob("*.jsonl.gz"))
    config = MinhashConfig()
    filtered, tasks = str(work_dir / "filtered"), max(1, len(files))

    def reader(folder: str) -> JsonlReader:
        return JsonlReader(folder, glob_pattern="*.jsonl.gz", adapter=_adapter)

    steps = [
        (
            [reader(corpus), _lid_filter(lid_model), GopherQualityFilter(), JsonlWriter(filtered)],
            tasks,
        ),
        ([reader(filtered), MinhashDedupSignature(output_folder=str(work_dir / "sigs"), config=config)], tasks),
        (
            [
                MinhashDedupBuckets(
                    input_folder=str(work_dir / "sigs"), output_folder=str(work_dir / "buckets"), config=config
                )
            ],
            config.num_buckets,
        ),
        (
            [
                MinhashDedupCluster(
                    input_folder=str(work_dir / "buckets"), output_folder=str(work_dir / "remove"), config=config
                )
            ],
            1,
        ),
        (
            [
                reader(filtered),
                MinhashDedupFilter(input_folder=str(work_dir / "remove")),
                JsonlWriter(str(work_dir / "output")),
            ],
            tasks,
        ),
    ]
    start = time.perf_counter()
    seconds = []
    for i, (pipeline, count) in enumerate(steps):
        t0 = time.perf_counter()
        LocalPipelineExecutor(
            pipeline=pipeline, tasks=count, workers=min(n, count), logging_dir=str(work_dir / f"logs{i}")
        ).run()
        seconds.append(round(time.perf_counter() - t0, 1))
    kept = 0
    for path in (work_dir / "output").glob("*.jsonl*"):
        with gzip.open(path, "rt") if path.name.endswith(".gz") else open(path) as fh:
            kept += sum(1 for _ in fh)
    Path(result).write_text(
        json.dumps({"seconds": time.perf_counter() - start, "step_seconds": seconds, "kept": kept, "tasks": tasks})
    )


if __name__ == "__main__":
    main(*sys.argv[1:6])
