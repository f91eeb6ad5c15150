"""A person's labels of the default profile's changed spans on real data (bench/results/pii_precision_labels.json).

bench/pii_precision.py saves, per set and profile, a seeded sample of the spans the `pii` stage changed with
`label: null`; a reader labelled every example of the default profile "private", "not private" or "unsure"
(the file's `definition` says what each means). This module renders that file's per-set summary.
"""

from __future__ import annotations

import json

from bench.pii_common import REPO

LABELS = REPO / "bench" / "results" / "pii_precision_labels.json"


def _share(value) -> str:
    return "–" if value is None else f"{value:.1%}"


def labels_table(labels: dict) -> list[str]:
    """The per-set summary of a labels file as the lines of a markdown table.

    `labels` is the parsed pii_precision_labels.json: its `summary.sets` maps each set to spans_read, private,
    not_private, unsure and share_private (private / spans read). One row per set in the file's order, then an
    `overall` row (bold) when `summary.overall` is present. Unsure spans count in the share's denominator only;
    where any set has some, the share column shows the share with them counted as private too ("3.7% – 4.5%").
    A top-level `previous` (an earlier labelling's overall figures: commit, spans_read, private, not_private,
    unsure) adds a last row "previous (commit)", its shares worked out from its counts where it has none.
    """
    summary = labels.get("summary", {})
    rows = list(summary.get("sets", {}).items())
    overall = summary.get("overall")
    if overall:
        rows.append(("**overall**", overall))
    previous = labels.get("previous")
    if previous:
        read = previous["spans_read"]
        shares = {
            "share_private": previous["private"] / read if read else None,
            "share_private_max": (previous["private"] + previous["unsure"]) / read if read else None,
        }
        name = f"previous ({previous['commit']})" if previous.get("commit") else "previous"
        rows.append((name, {**shares, **previous}))

    def share(s: dict) -> str:
        low = _share(s.get("share_private"))
        if s.get("unsure") and s.get("share_private_max") is not None:
            return f"{low} – {_share(s['share_private_max'])}"
        return low

    lines = [
        "| set | spans read | private | not private | unsure | share private |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in rows:
        lines.append(
            f"| {name} | {s['spans_read']:,} | {s['private']:,} | {s['not_private']:,} | {s['unsure']:,} | {share(s)} |"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(labels_table(json.loads(LABELS.read_text()))))
