"""datatrove's MinHash dedup on a JSONL corpus, for `make bench` only.

Runs in its own virtualenv (datatrove is not a dependency of curate). Usage:
    python bench/datatrove_minhash.py CORPUS.jsonl WORKDIR RESULT.json
Writes the seconds spent in signature + buckets + cluster and the removed document indices.
"""

from __future__ import annotations

import json
import struct
import sys
import time
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupSignature,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.utils.word_tokenizers import WordTokenizer


class Whitespace(WordTokenizer):
    """Split on whitespace: offline (no NLTK/spaCy models), and what curate's word shingles use."""

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        raise NotImplementedError


def main(corpus: str, work: str, result: str) -> None:
    work_dir = Path(work)
    config = MinhashConfig()  # datatrove defaults: 5-grams, 14 buckets x 8 hashes
    steps = [
        [
            JsonlReader(str(Path(corpus).parent), glob_pattern=Path(corpus).name),
            MinhashDedupSignature(output_folder=str(work_dir / "sigs"), config=config, language=Whitespace()),
        ],
        [
            MinhashDedupBuckets(
                input_folder=str(work_dir / "sigs"), output_folder=str(work_dir / "buckets"), config=config
            )
        ],
        [
            MinhashDedupCluster(
                input_folder=str(work_dir / "buckets"), output_folder=str(work_dir / "remove"), config=config
            )
        ],
    ]
    start = time.perf_counter()
    for i, pipeline in enumerate(steps):
        tasks = config.num_buckets if i == 1 else 1
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=str(work_dir / f"logs{i}")).run()
    seconds = time.perf_counter() - start
    removed = []
    remove_file = work_dir / "remove" / "000000.remove"
    if remove_file.exists():
        data = remove_file.read_bytes()
        removed = [struct.unpack_from("<I", data, k)[0] for k in range(0, len(data), 4)]
    Path(result).write_text(json.dumps({"seconds": seconds, "removed": removed, "config": str(config)}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
