"""The fine-tune readiness checklist: the questions a team asks before a LoRA run, answered
from the data and the run's own measurements, each with its evidence and a pass/warn/fail mark.

Thresholds are rules of thumb from LoRA/SFT practice, stated in each item's evidence so a
reader can disagree with them: about 1,000 examples is where small-model SFT stops being
noise; a validation split needs enough rows to measure a loss (>= 100); a label more than
10x rarer than another is rarely learned without reweighting.
"""

from __future__ import annotations

import polars as pl

from curate.report import stage_names
from curate.stages.base import Evidence
from curate.stages.registry import STAGES

ENOUGH, SOME = 1_000, 200
MIN_VALIDATION = 100
IMBALANCE_WARN, IMBALANCE_FAIL = 3.0, 10.0
LONG_CHARS = 16_000  # ~4k tokens: beyond a typical max_length, such records get truncated


def _item(question: str, mark: str, evidence: str) -> dict:
    return {"question": question, "mark": mark, "evidence": evidence}


_WORSE = {"pass": 0, "warn": 1, "fail": 2}


def _with(mark: str, notes: list[str], evidence: list[Evidence], question: str) -> tuple[str, list[str]]:
    """The item's own mark and notes with the stages' evidence for its question added (the worst mark wins)."""
    mine = [e for e in evidence if e.question == question]
    return max([mark, *(e.mark for e in mine)], key=_WORSE.__getitem__), notes + [e.note for e in mine]


def _enough(final: pl.DataFrame) -> dict:
    train = final.filter(pl.col("split") == "train").height if "split" in final.columns else final.height
    mark = "pass" if train >= ENOUGH else "warn" if train >= SOME else "fail"
    return _item(
        "Is there enough data for the task?",
        mark,
        f"{train:,} training records (pass >= {ENOUGH:,}, warn >= {SOME:,}).",
    )


def _format(measures: pl.DataFrame) -> dict:
    chat = measures.filter(pl.col("turns").is_not_null()) if "turns" in measures.columns else measures.head(0)
    text = measures.height - chat.height
    if chat.height == 0:
        return _item(
            "Is it in the expected chat format?",
            "warn",
            f"no chat records: {text:,} plain-text documents suit continued pretraining, not instruction tuning.",
        )
    bad_order = int((~chat["role_order_ok"]).sum()) if "role_order_ok" in chat.columns else 0
    empty = int((chat["empty_assistant_turns"] > 0).sum()) if "empty_assistant_turns" in chat.columns else 0
    mark = "fail" if bad_order or empty else ("warn" if text else "pass")
    mixed = f"; {text:,} plain-text documents are mixed in (trained as raw text)" if text else ""
    return _item(
        "Is it in the expected chat format?",
        mark,
        f"{chat.height:,} chat records: {bad_order:,} with roles out of order, {empty:,} with an empty assistant "
        f"turn{mixed}.",
    )


def _clean(manifest: dict, measures: pl.DataFrame) -> dict:
    dups = measures.height - measures["content_hash"].n_unique() if measures.height else 0
    missing = [k for k in ("quality", "dedup") if not stage_names(manifest, k)]
    mark = "fail" if dups else ("warn" if missing else "pass")
    ran = ", ".join(f"{k} ({'ran' if k not in missing else 'not in the pipeline'})" for k in ("quality", "dedup"))
    return _item(
        "Is it clean (filtered, deduplicated)?", mark, f"{ran}; {dups:,} exact duplicates of normalized content remain."
    )


def _balance(final: pl.DataFrame, evidence: list[Evidence]) -> dict:
    counts = final["label"].drop_nulls().value_counts() if "label" in final.columns else pl.DataFrame()
    if counts.height == 0:
        return _item("Are labels balanced (per stratum too)?", "pass", "no labels: nothing to balance.")
    n = counts["count"]
    ratio = n.max() / max(n.min(), 1)
    mark = "pass" if ratio <= IMBALANCE_WARN else "warn" if ratio <= IMBALANCE_FAIL else "fail"
    notes = [f"largest/smallest label {ratio:.2f} (warn > {IMBALANCE_WARN:g}, fail > {IMBALANCE_FAIL:g})"]
    mark, notes = _with(mark, notes, evidence, "balance")
    return _item("Are labels balanced (per stratum too)?", mark, "; ".join(notes) + ".")


def _validation(final: pl.DataFrame, gates: list[dict], evidence: list[Evidence]) -> dict:
    sizes = dict(final["split"].value_counts().iter_rows()) if "split" in final.columns else {}
    held = {k: v for k, v in sizes.items() if k != "train"}
    if not held:
        return _item("Is there a validation split without leakage?", "fail", "no split column: add a split stage.")
    leaks = {k: v for r in gates for k, v in r["metrics"].items() if k.startswith("leaked_") and v}
    small = min(held.values()) < MIN_VALIDATION
    checked = any(k.startswith("leaked_") for r in gates for k in r["metrics"])
    mark = "fail" if leaks else ("warn" if small or not checked else "pass")
    leak_text = (
        (", ".join(f"{k} {v:,}" for k, v in leaks.items()) if leaks else "none found")
        if checked
        else "not checked by a gate"
    )
    notes = [
        ", ".join(f"{k} {v:,}" for k, v in sorted(sizes.items())) + f" (held-out splits need >= {MIN_VALIDATION}); "
        f"leakage: {leak_text}"
    ]
    mark, notes = _with(mark, notes, evidence, "validation")
    return _item("Is there a validation split without leakage?", mark, "; ".join(notes) + ".")


def _pii(gates: list[dict], evidence: list[Evidence]) -> dict:
    hits = {k: v for r in gates for k, v in r.get("pii_pattern_records", {}).items() if v}
    scan = ", ".join(f"{k} in {v:,} records" for k, v in hits.items())
    if not any(e.question == "pii" for e in evidence):
        return _item(
            "Was personal data removed?",
            "fail",
            "no pii stage in the pipeline" + (f"; pattern scan finds {scan}." if hits else "."),
        )
    mark, notes = _with("warn" if hits else "pass", [], evidence, "pii")
    return _item(
        "Was personal data removed?",
        mark,
        "; ".join(notes) + "; independent pattern scan: " + (scan if hits else "nothing found") + ".",
    )


def _risks(manifest: dict, measures: pl.DataFrame, gates: list[dict], evidence: list[Evidence]) -> dict:
    risks = []
    if manifest["rows"]["quarantined"]:
        risks.append(f"{manifest['rows']['quarantined']:,} records quarantined (see rejected/)")
    risks += [e.note for e in evidence if e.question == "risks"]
    long = int((measures["content_chars"] > LONG_CHARS).sum()) if measures.height else 0
    if long:
        risks.append(f"{long:,} records over {LONG_CHARS:,} characters will be truncated at a 4k-token max_length")
    warned = [c for r in gates for c in r["checks"] if c["status"] == "warn"]
    if warned:
        risks.append(
            f"{len(warned)} gate warning(s): "
            + "; ".join(f"{c['rule']}: {c['expected']} (observed {c['observed']})" for c in warned[:3])
        )
    big = [
        x for x in manifest.get("sensitivity", []) if x.get("more_records", 0) > 0.05 * max(manifest["rows"]["kept"], 1)
    ]
    if big:
        risks.append("criteria that each remove over 5% of the output: " + ", ".join(x["criterion"] for x in big[:5]))
    return _item(
        "What remains risky?",
        "warn" if risks else "pass",
        "; ".join(risks) + "." if risks else "nothing the run measured.",
    )


def stage_evidence(manifest: dict) -> list[Evidence]:
    """What each stage's summary tells the checklist (`Stage.evidence`), in pipeline order."""
    summaries = manifest.get("stage_summaries", {})
    out = []
    for s in manifest["pipeline"]["stages"]:
        cls = STAGES[s["stage"]]
        out += cls.evidence(s["name"], cls.read_summary(summaries.get(s["name"])))
    return out


def readiness(manifest: dict, final: pl.DataFrame, gates: list[dict], measures: pl.DataFrame) -> list[dict]:
    """The checklist. `final`: the published rows' id, split and label columns (those they have);
    `measures`: their `records_frame` with the chat rule (format, length and duplicate measures)."""
    failed = [c for r in gates for c in r["checks"] if c["status"] == "fail"]
    gate_item = _item(
        "Did the quality gates pass?",
        "fail" if failed else ("pass" if gates else "warn"),
        (
            f"{len(failed)} failed: "
            + "; ".join(f"{c['rule']}: {c['expected']} (observed {c['observed']})" for c in failed[:5])
        )
        if failed
        else (f"{sum(r['counts']['pass'] for r in gates)} checks passed" if gates else "no gates configured"),
    )
    evidence = stage_evidence(manifest)
    return [
        _enough(final),
        _format(measures),
        _clean(manifest, measures),
        _balance(final, evidence),
        _validation(final, gates, evidence),
        _pii(gates, evidence),
        gate_item,
        _risks(manifest, measures, gates, evidence),
    ]
