"""`report.json`: everything the HTML report shows, computed once from the run's results.

Examples of rejected rows name the record (id, file, row) and the reason, never its
text, so the report can be shared without leaking what the data contains.
"""

from __future__ import annotations

import polars as pl

from curate.profile import BUCKETS, bucket_label, length_histogram, value_counts
from curate.report import stage_names
from curate.report.readiness import readiness

EXAMPLES_PER_REASON = 5


def _examples(rejected: pl.DataFrame, rule: str) -> list[dict]:
    rows = rejected.filter(pl.col("rule") == rule).head(EXAMPLES_PER_REASON)
    return [
        {"id": r.get("id"), "src_file": r.get("src_file"), "src_row": r.get("src_row"), "reason": r.get("reason")}
        for r in rows.select([c for c in ("id", "src_file", "src_row", "reason") if c in rows.columns]).to_dicts()
    ]


def _funnel(manifest: dict, rejected: dict[str, pl.DataFrame]) -> list[dict]:
    funnel = []
    for acc in manifest["accounting"]:
        rej = rejected.get(acc["stage"], pl.DataFrame())
        actions = dict(rej.group_by("rule").agg(pl.col("action").first()).iter_rows()) if rej.height else {}
        funnel.append(
            {
                **{k: acc[k] for k in ("stage", "rows_in", "kept", "dropped", "quarantined")},
                "seconds": round(acc["seconds"], 3),
                "rejected_path": f"rejected/{acc['stage']}/" if rej.height else None,
                "reasons": [
                    {"rule": rule, "action": actions.get(rule, "drop"), "count": n, "examples": _examples(rej, rule)}
                    for rule, n in sorted(acc["reasons"].items(), key=lambda kv: -kv[1])
                ],
            }
        )
    return funnel


def _pii(name: str, summary: dict | None) -> dict:
    """Counts only: by entity type and by operator, residual rate of the re-scanned sample."""
    s = summary or {}
    residual = s.get("residual", {})
    sampled = residual.get("sampled", 0)
    return {
        "stage": name,
        "records": s.get("records", 0),
        "records_with_pii": s.get("records_with_pii", 0),
        "entities": dict(sorted(s.get("entities", {}).items(), key=lambda kv: -kv[1])),
        "operators": s.get("operators", {}),
        "dropped": s.get("dropped", 0),
        "quarantined": s.get("quarantined", 0),
        "regex_only_records": s.get("regex_only_records", {}),
        "profile": s.get("profile", "default"),
        "kinds": s.get("kinds", []),
        "out_of_scope": s.get("out_of_scope", []),
        "coverage": s.get("coverage", {}),
        "residual": {
            "sampled": sampled,
            "with_pii": residual.get("with_pii", 0),
            "rate": round(residual.get("with_pii", 0) / sampled, 4) if sampled else None,
            "entities": residual.get("entities", {}),
        },
    }


def _summaries(manifest: dict, stage_type: str) -> list[dict]:
    """Each stage of a type with the summary it measured (empty when it measured nothing)."""
    return [
        {"stage": name, **manifest.get("stage_summaries", {}).get(name, {})}
        for name in stage_names(manifest, stage_type)
    ]


def _quality_hits(manifest: dict, rejected: dict[str, pl.DataFrame]) -> list[dict]:
    hits = []
    for name in stage_names(manifest, "quality"):
        acc = next(a for a in manifest["accounting"] if a["stage"] == name)
        rej = rejected.get(name, pl.DataFrame())
        counts = (
            dict(rej["quality_failed"].explode().drop_nulls().value_counts().iter_rows())
            if rej.height and "quality_failed" in rej.columns
            else {}
        )
        for rule in sorted(set(acc["reasons"]) | set(counts), key=lambda r: (-counts.get(r, 0), r)):
            failed = counts.get(rule, acc["reasons"].get(rule, 0))
            hits.append(
                {
                    "stage": name,
                    "rule": rule,
                    "first_failed": acc["reasons"].get(rule, 0),
                    "failed": failed,
                    "rate": round(failed / acc["rows_in"], 4) if acc["rows_in"] else 0.0,
                }
            )
    return hits


CLUSTER_BINS = [(2, 2), (3, 3), (4, 4), (5, 5), (6, 10), (11, 20), (21, 50), (51, 100), (101, None)]


def _size_histogram(sizes: list[int]) -> dict[str, int]:
    """Clusters per size bin ("2", "3", ..., "6-10", ..., "101+"), empty bins included."""
    out = {}
    for lo, hi in CLUSTER_BINS:
        label = str(lo) if lo == hi else (f"{lo}+" if hi is None else f"{lo}-{hi}")
        out[label] = sum(1 for n in sizes if n >= lo and (hi is None or n <= hi))
    return out


def _duplicates(manifest: dict, rejected: dict[str, pl.DataFrame]) -> list[dict]:
    """Per dedup stage: cluster-size histogram and duplicates removed per source and rule."""
    sections = []
    for name in stage_names(manifest, "dedup"):
        rej = rejected.get(name, pl.DataFrame())
        removed = rej.group_by("dup_of").len() if rej.height else pl.DataFrame({"dup_of": [], "len": []})
        sizes = (removed["len"] + 1).to_list() if removed.height else []
        by_source = value_counts(rej, "source", top=50)
        by_rule = dict(rej.group_by("rule").len().sort("rule").iter_rows()) if rej.height else {}
        sections.append(
            {
                "stage": name,
                "clusters": removed.height,
                "removed": rej.height,
                "by_rule": by_rule,
                "cluster_sizes": _size_histogram(sizes),
                "by_source": by_source,
                "boilerplate": (manifest.get("stage_summaries", {}).get(name) or {}).get("boilerplate"),
            }
        )
    return sections


def _gates(manifest: dict, has_docs: bool) -> dict:
    results = manifest.get("gates", [])
    return {
        "points": results,
        "counts": {s: sum(r["counts"][s] for r in results) for s in ("pass", "warn", "fail")},
        "seconds": round(sum(r["seconds"] for r in results), 3),
        "docs": "gx-docs/index.html" if has_docs else None,
    }


def build_report(
    manifest: dict,
    final: pl.DataFrame,
    rejected: dict[str, pl.DataFrame],
    lengths_before: list[int],
    has_gx_docs: bool = False,
) -> dict:
    langid_drops: dict[str, int] = {}
    for name in stage_names(manifest, "langid"):
        if name in rejected and "lang" in rejected[name].columns:
            for lang, n in value_counts(rejected[name], "lang").items():
                langid_drops[lang] = langid_drops.get(lang, 0) + n
    report = {
        "format": "curate.report/1",
        "name": manifest["name"],
        "version": manifest["version"],
        "status": manifest["status"],
        "created": manifest["created"],
        "run_key": manifest["run_key"],
        "code": manifest["code"],
        "machine": manifest["machine"],
        "pipeline": manifest["pipeline"],
        "inputs": manifest["inputs"],
        "rows": manifest["rows"],
        "seconds": manifest["seconds"],
        "funnel": _funnel(manifest, rejected),
        "lengths": {
            "buckets": [bucket_label(i) for i in range(len(BUCKETS))],
            "before": lengths_before,
            "after": length_histogram(final) if final.height else [0] * len(BUCKETS),
        },
        "languages": {"kept": value_counts(final, "lang"), "dropped_by_langid": langid_drops},
        "quality": _quality_hits(manifest, rejected),
        "pii": [_pii(name, manifest.get("stage_summaries", {}).get(name)) for name in stage_names(manifest, "pii")],
        "duplicates": _duplicates(manifest, rejected),
        "balance": _summaries(manifest, "balance"),
        "sensitivity": manifest.get("sensitivity", []),
        "splits": _summaries(manifest, "split"),
        "retrieval": _summaries(manifest, "retrieve"),
        "classifiers": _summaries(manifest, "classify"),
        "labels": value_counts(final, "label"),
        "sources": value_counts(final, "source"),
        "shapes": {
            "text": int(final["text"].is_not_null().sum()) if final.height else 0,
            "chat": int(final["messages"].is_not_null().sum()) if final.height else 0,
        },
        "gates": _gates(manifest, has_gx_docs),
    }
    report["readiness"] = readiness(manifest, report, final, manifest.get("gates", []))
    return report
