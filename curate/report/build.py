"""`report.json`: everything the HTML report shows, computed once from the run's results.

Examples of rejected rows name the record (id, file, row) and the reason, never its
text, so the report can be shared without leaking what the data contains.
"""

from __future__ import annotations

import polars as pl

from curate.gates.frames import records_frame
from curate.gates.rules import ChatRule, GateRule
from curate.io.shards import RowFiles
from curate.profile import BUCKETS, add_histograms, bucket_label, length_histogram, value_counts
from curate.report import stage_names
from curate.report.readiness import readiness
from curate.stages.registry import STAGES

EXAMPLES_PER_REASON = 5
_NONE = pl.DataFrame()  # a stage that rejected nothing


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


def stage_sections(manifest: dict, rejected: dict[str, pl.DataFrame]) -> dict[str, list[dict]]:
    """Each stage's own part of the report (`Stage.report_section`), gathered under its `report_key`."""
    sections: dict[str, list[dict]] = {}
    summaries = manifest.get("stage_summaries", {})
    accounts = {a["stage"]: a for a in manifest["accounting"]}
    for s in manifest["pipeline"]["stages"]:
        cls = STAGES[s["stage"]]
        part = cls.report_section(
            s["name"], cls.read_summary(summaries.get(s["name"])), accounts[s["name"]], rejected.get(s["name"], _NONE)
        )
        if part is not None:
            sections.setdefault(cls.report_key, []).extend(part if isinstance(part, list) else [part])
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
    final: RowFiles,
    rejected: dict[str, pl.DataFrame],
    lengths_before: list[int],
    has_gx_docs: bool = False,
) -> dict:
    """The report of a run whose published rows are `final` (read a part at a time: the text is
    measured chunk by chunk, only small columns are held whole)."""
    small = final.select(["id", "lang", "label", "source", "split"])
    langid_drops: dict[str, int] = {}
    for name in stage_names(manifest, "langid"):
        if name in rejected and "lang" in rejected[name].columns:
            for lang, n in value_counts(rejected[name], "lang").items():
                langid_drops[lang] = langid_drops.get(lang, 0) + n
    sections = stage_sections(manifest, rejected)
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
            "after": add_histograms([length_histogram(f) for f in final.frames(["text", "messages"])]),
        },
        "languages": {"kept": value_counts(small, "lang"), "dropped_by_langid": langid_drops},
        **{key: sections.get(key, []) for key in ("quality", "pii", "duplicates", "balance")},
        "sensitivity": manifest.get("sensitivity", []),
        **{key: sections.get(key, []) for key in ("splits", "retrieval", "classifiers")},
        "stages": sections.get("stages", []),  # stages the template has no section of their own for
        "labels": value_counts(small, "label"),
        "sources": value_counts(small, "source"),
        "shapes": {"text": _present(final, "text"), "chat": _present(final, "messages")},
        "gates": _gates(manifest, has_gx_docs),
    }
    report["readiness"] = readiness(manifest, small, manifest.get("gates", []), _measures(final))
    from curate.train.plan import report_section  # here: the report's import needs nothing of training

    # what fine-tuning on these shards would take, estimated from characters (`curate train plan` counts tokens)
    report["training_plan"] = report_section(final.frames(["text", "messages", "split"]))
    return report


def _present(final: RowFiles, column: str) -> int:
    """How many rows have a value in `column`."""
    return sum(int(f[column].is_not_null().sum()) for f in final.frames([column])) if column in final.columns else 0


def _measures(final: RowFiles) -> pl.DataFrame:
    """The readiness checks' per-record measures (`records_frame`), computed a part of the rows at a time."""
    parts = [records_frame(f.lazy(), [GateRule(chat=ChatRule())]) for f in final.frames()]
    return pl.concat(parts) if parts else pl.DataFrame({"content_hash": [], "content_chars": [], "turns": []})
