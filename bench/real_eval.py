"""The default rules on real instruction data nobody here wrote, today's behaviour beside the old one.

Data: ../shared/data/real-sft/ (GPTeacher role-play, 1,923 records; Code Alpaca, 2,017 records; see its
SOURCE). Each set goes through normalize -> pii -> langid -> quality -> dedup -> split with
rules/*/default.yaml, in one process, twice:

- before: the behaviour the defaults had before issue 17 switched on (no code detection in pii,
  URLs glued to words allowed, driver-licence formats without context, no allow-list or card
  network recognizer; langid on the whole text with no short-prose rule; no boilerplate step in
  dedup; literal numbers in decontamination) and before issue 19 (quality's chat_uppercase on the
  whole answer, code included);
- after: the defaults as shipped.

Reported per set and variant: per stage the share of records changed or dropped and why; PII
placeholders in assistant turns and in code answers (assistant turns holding code); langid drops of
code records; near-duplicate drops, with 20 sampled dropped pairs; the pii stage's docs/s. The pii
stage's speed on the demo corpus is measured the same way. Results: bench/results/real_eval.json.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import yaml

from curate.pii.analyzer import PLACEHOLDER  # what the redaction writes: one definition

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real-sft"
RESULTS = REPO / "bench" / "results"
SETS = {
    "gpteacher_roleplay": ("gpteacher_roleplay.json", {"output": "response"}),
    "code_alpaca": ("code_alpaca_2k.json", {}),
}
STAGES = ("normalize", "pii", "langid", "quality", "dedup", "split")


def _rules(stage: str, variant: str) -> dict:
    rules = yaml.safe_load((REPO / "rules" / stage / "default.yaml").read_text())
    if variant == "after":
        return rules
    if stage == "pii":
        rules["code"] = {"detect": False}
        rules["allow_list"] = []
        rules["entities"]["URL"] = {"requires": [r"\.\w"]}
        rules["entities"]["US_DRIVER_LICENSE"] = {"threshold": 0.3, "requires": [r"\d"]}
        rules["recognizers"] = [r for r in rules["recognizers"] if r["name"] != "card_networks"]
    elif stage == "langid":
        rules.update(code="keep", short_letters=0, min_prose_letters=0)
    elif stage == "dedup":
        rules["boilerplate"] = {"enabled": False}
    elif stage == "split":
        rules["decontamination"]["numbers"] = False
    elif stage == "quality":
        rules["prose_rules"] = []  # chat_uppercase on the whole answer: SQL keywords counted as shouting (issue 19)
    return rules


def _pipeline(folder: Path, name: str, path: str, fields: dict) -> Path:
    spec = {"name": name, "inputs": [{"path": path, "fields": fields}], "workers": 1, "stages": []}
    out = folder / f"{name}.yaml"
    out.write_text(yaml.safe_dump(spec))
    return out


def _read(pipeline: Path) -> pl.DataFrame:
    from curate.config import load_pipeline
    from curate.io.readers import read_batches
    from curate.io.sources import resolve_inputs

    p = load_pipeline(pipeline)
    return pl.concat([b.records for b in read_batches(resolve_inputs(p), 10**9, p.spec.limits.max_record_bytes)])


def _assistant(messages) -> list[str]:
    return [m["content"] for m in messages or [] if m["role"] == "assistant"]


def run_variant(df: pl.DataFrame, variant: str) -> dict:
    from curate.code import code_spans
    from curate.config import ResolvedStage
    from curate.executor import build_stages
    from curate.stages.base import StageContext
    from curate.stages.registry import STAGES as REGISTRY

    out = {"records": df.height, "stages": {}}
    original = dict(zip(df["id"].to_list(), df["messages"].to_list()))
    current = df
    for name in STAGES:
        cls = REGISTRY[name]
        rs = ResolvedStage(
            name=name, stage=name, rules=cls.Rules.model_validate(_rules(name, variant)), rules_path=None
        )
        stage = build_stages([rs], StageContext())[name]
        start = time.perf_counter()
        output = stage.run(current)
        result = output.frame
        seconds = time.perf_counter() - start
        kept = result.filter(pl.col("_action") == "keep")
        reasons = dict(
            result.filter(pl.col("_action") != "keep").group_by("_rule").len().sort("len", descending=True).iter_rows()
        )
        entry = {
            "rows_in": current.height,
            "kept": kept.height,
            "dropped_share": round(1 - kept.height / max(current.height, 1), 4),
            "reasons": reasons,
            "seconds": round(seconds, 2),
            "docs_per_s": round(current.height / seconds, 1),
        }
        if name == "pii":
            after = result["messages"].to_list()
            changed = sum(1 for a, i in zip(after, result["id"].to_list()) if a != original.get(i))
            turns = [
                (t, o)
                for a, i in zip(after, result["id"].to_list())
                for t, o in zip(_assistant(a), _assistant(original.get(i)))
            ]
            code_turns = [(t, o) for t, o in turns if code_spans(o)]

            def placed(t: str, o: str) -> bool:  # the redaction put a placeholder in (a source may hold `<YOUR_KEY>`)
                return len(PLACEHOLDER.findall(t)) > len(PLACEHOLDER.findall(o))

            entry.update(
                changed_share=round(changed / max(current.height, 1), 4),
                assistant_turns_with_placeholder=round(
                    sum(1 for t, o in turns if placed(t, o)) / max(len(turns), 1), 4
                ),
                code_answers=len(code_turns),
                code_answers_with_placeholder=round(
                    sum(1 for t, o in code_turns if placed(t, o)) / max(len(code_turns), 1), 4
                ),
                entities=output.summary["entities"],
                examples=[_around(t) for t, o in code_turns if placed(t, o)][:40],
            )
        if name == "langid":
            code_rows = [
                i for i, m in enumerate(current["messages"].to_list()) if any(code_spans(t) for t in _assistant(m))
            ]
            dropped = result["_action"].gather(code_rows).ne("keep").sum() if code_rows else 0
            entry.update(
                code_records=len(code_rows),
                code_records_dropped=int(dropped),
                code_records_dropped_share=round(int(dropped) / max(len(code_rows), 1), 4),
            )
        if name == "dedup":
            entry["boilerplate"] = (output.summary or {}).get("boilerplate")
            entry["sampled_pairs"] = _pairs(current, result)
        out["stages"][name] = entry
        current = kept.drop("_action", "_rule", "_reason")
    out["kept"] = current.height
    return out


def _around(text: str) -> str:
    m = PLACEHOLDER.search(text)
    return text[max(0, m.start() - 60) : m.end() + 40] if m else text[:100]


def _text(messages) -> str:
    return " | ".join(f"{m['role']}: {m['content']}" for m in messages or [])


def _pairs(before: pl.DataFrame, result: pl.DataFrame, k: int = 20) -> list[dict]:
    """Up to k sampled near-duplicate drops: the dropped record's and its duplicate's user prompts."""
    near = result.filter(pl.col("_rule") == "near_duplicate")
    texts = dict(zip(before["id"].to_list(), before["messages"].to_list()))
    rows = near.select("id", "dup_of").rows()
    random.Random(0).shuffle(rows)
    return [{"dropped": _text(texts[a])[:220], "kept": _text(texts[b])[:220]} for a, b in rows[:k]]


def pii_speed(df: pl.DataFrame, rounds: int = 2) -> dict:
    """The pii stage's docs/s, before and after, side by side: a fresh stage per timing (its NER memo
    would make a repeat cheap), the variants alternated, the best of `rounds` each."""
    from bench.pii_common import best_times
    from curate.config import ResolvedStage
    from curate.executor import build_stages
    from curate.stages.base import StageContext
    from curate.stages.pii import PiiRules

    def build(variant: str):
        rs = ResolvedStage(
            name="pii", stage="pii", rules=PiiRules.model_validate(_rules("pii", variant)), rules_path=None
        )
        return build_stages([rs], StageContext())["pii"]

    out, best = best_times(df, {v: (lambda v=v: build(v)) for v in ("before", "after")}, rounds)
    out["speed_after_vs_before"] = round(best["before"] / best["after"], 3)
    return out


def _demo(folder: Path, records: int = 2000) -> pl.DataFrame:
    spec = {"name": "demo_pii", "inputs": [{"demo": {"records": records, "seed": 3}}], "stages": []}
    path = folder / "demo.yaml"
    path.write_text(yaml.safe_dump(spec))
    return _read(path)


def main() -> dict:
    work = Path(tempfile.mkdtemp(prefix="curate-real-eval-"))
    result = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "sets": {}}
    result["pii_speed"] = {}
    for name, (file, fields) in SETS.items():
        df = _read(_pipeline(work, name, str(REAL / file), fields))
        result["sets"][name] = {v: run_variant(df, v) for v in ("before", "after")}
        result["pii_speed"][name] = pii_speed(df)
    result["pii_speed"]["demo"] = pii_speed(_demo(work))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "real_eval.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
