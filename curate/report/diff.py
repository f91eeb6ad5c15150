"""`curate diff A B`: what changed between two versions of a dataset, from their report.json.

Counts (rows, per stage, per reason), distributions (labels, languages, sources, splits,
lengths), gates and readiness marks, and which inputs and rules differ — so a reviewer
sees why version B has 3% fewer rows before reading either report.
"""

from __future__ import annotations


def _counts(a: dict, b: dict) -> list[dict]:
    """Keys of two count maps whose values differ, with both values and the change."""
    out = []
    for k in sorted(set(a) | set(b), key=str):
        x, y = a.get(k, 0), b.get(k, 0)
        if x != y:
            out.append({"key": k, "a": x, "b": y, "change": y - x})
    return out


def _split_sizes(report: dict) -> dict:
    return {k: v for s in report.get("splits", []) for k, v in s.get("sizes", {}).items()}


def _checks(report: dict) -> dict:
    return {
        (g["point"], c["rule"], c["expected"]): c
        for g in report.get("gates", {}).get("points", [])
        for c in g["checks"]
    }


def _stages(a: dict, b: dict) -> list[dict]:
    fa = {s["stage"]: s for s in a["funnel"]}
    fb = {s["stage"]: s for s in b["funnel"]}
    out = []
    for name in list(dict.fromkeys([*fa, *fb])):
        x, y = fa.get(name), fb.get(name)
        if x is None or y is None:
            out.append({"stage": name, "only_in": "a" if y is None else "b"})
            continue
        reasons = _counts({r["rule"]: r["count"] for r in x["reasons"]}, {r["rule"]: r["count"] for r in y["reasons"]})
        row = {k: {"a": x[k], "b": y[k]} for k in ("rows_in", "kept", "dropped", "quarantined") if x[k] != y[k]}
        if row or reasons:
            out.append({"stage": name, **row, "reasons": reasons})
    return out


def _lineage(a: dict, b: dict) -> dict:
    ia = {i["file"]: i["sha256"] for i in a["inputs"]}
    ib = {i["file"]: i["sha256"] for i in b["inputs"]}
    ra = {s["name"]: s["fingerprint"] for s in a["pipeline"]["stages"]}
    rb = {s["name"]: s["fingerprint"] for s in b["pipeline"]["stages"]}
    return {
        "inputs_changed": sorted(k for k in set(ia) | set(ib) if ia.get(k) != ib.get(k)),
        "stages_changed": sorted(k for k in set(ra) | set(rb) if ra.get(k) != rb.get(k)),
        "code_changed": a["code"]["fingerprint"] != b["code"]["fingerprint"],
    }


def _median_bucket(hist: list[int], labels: list[str]) -> str | None:
    total = sum(hist)
    if not total:
        return None
    half, seen = total / 2, 0
    for n, label in zip(hist, labels):
        seen += n
        if seen >= half:
            return label
    return labels[-1]


def diff_reports(a: dict, b: dict) -> dict:
    ca, cb = _checks(a), _checks(b)
    gates = []
    for key in sorted(set(ca) | set(cb)):
        x, y = ca.get(key), cb.get(key)
        if x is None or y is None or x["status"] != y["status"] or x["observed"] != y["observed"]:
            gates.append(
                {
                    "point": key[0],
                    "rule": key[1],
                    "expected": key[2],
                    "a": {"status": x["status"], "observed": x["observed"]} if x else None,
                    "b": {"status": y["status"], "observed": y["observed"]} if y else None,
                }
            )
    ready_a = {x["question"]: x["mark"] for x in a.get("readiness", [])}
    ready_b = {x["question"]: x["mark"] for x in b.get("readiness", [])}
    lengths = a["lengths"]["buckets"]
    return {
        "format": "curate.diff/1",
        "a": {k: a[k] for k in ("name", "version", "status", "created")},
        "b": {k: b[k] for k in ("name", "version", "status", "created")},
        "same_data": a["version"] == b["version"],
        "rows": _counts(a["rows"], b["rows"]),
        "stages": _stages(a, b),
        "labels": _counts(a["labels"], b["labels"]),
        "languages": _counts(a["languages"]["kept"], b["languages"]["kept"]),
        "sources": _counts(a["sources"], b["sources"]),
        "splits": _counts(_split_sizes(a), _split_sizes(b)),
        "lengths": {
            "median_bucket": {
                "a": _median_bucket(a["lengths"]["after"], lengths),
                "b": _median_bucket(b["lengths"]["after"], lengths),
            },
            "buckets": _counts(dict(zip(lengths, a["lengths"]["after"])), dict(zip(lengths, b["lengths"]["after"]))),
        },
        "gates": gates,
        "readiness": [
            {"question": q, "a": ready_a.get(q), "b": ready_b.get(q)}
            for q in dict.fromkeys([*ready_a, *ready_b])
            if ready_a.get(q) != ready_b.get(q)
        ],
        "lineage": _lineage(a, b),
    }
