"""`report.html`: one self-contained page rendered from report.json (no external requests)."""

from __future__ import annotations

from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from curate.io.shards import atomic_write_bytes

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("curate.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_ENV.filters["n"] = lambda value: f"{value:,}"


def bar_chart(series: dict[str, list[int]], labels: list[str], width: int = 720, height: int = 220) -> str:
    """Grouped bar chart as inline SVG; series are drawn side by side per label."""
    colors = ["#8ea9c8", "#2f6f9f", "#d98c4a"]
    peak = max((v for values in series.values() for v in values), default=0) or 1
    filled = [i for i in range(len(labels)) if any(values[i] for values in series.values())]
    if not filled:
        return "<p>No data.</p>"
    keep = list(range(filled[0], filled[-1] + 1))  # contiguous, so empty buckets in between stay visible
    slot = (width - 40) / len(keep)
    bar = slot / (len(series) + 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 60}" height="{height + 60}" role="img">']
    for j, (name, values) in enumerate(series.items()):
        parts.append(
            f'<rect x="{40 + j * 110}" y="4" width="10" height="10" fill="{colors[j % 3]}"/>'
            f'<text x="{54 + j * 110}" y="13" font-size="11">{escape(name)}</text>'
        )
        for k, i in enumerate(keep):
            h = values[i] / peak * (height - 30)
            x = 40 + k * slot + j * bar
            parts.append(
                f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colors[j % 3]}">'
                f"<title>{escape(name)} {labels[i]}: {values[i]}</title></rect>"
            )
    for k, i in enumerate(keep):
        x = 40 + k * slot + slot / 2 - bar / 2
        parts.append(
            f'<text x="{x:.1f}" y="{height + 14}" font-size="10" transform="rotate(40 {x:.1f} '
            f'{height + 14})">{labels[i]}</text>'
        )
    parts.append(
        f'<text x="2" y="{height}" font-size="10">0</text><text x="2" y="34" font-size="10">{peak}</text></svg>'
    )
    return "".join(parts)


def render_html(report: dict) -> str:
    lengths = report["lengths"]
    chart = bar_chart({"before": lengths["before"], "after": lengths["after"]}, lengths["buckets"])
    cluster_charts = [
        Markup(
            bar_chart({"clusters": list(d["cluster_sizes"].values())}, list(d["cluster_sizes"]), width=480, height=160)
        )
        for d in report.get("duplicates", [])
    ]
    bins = [f"{i / 20:.2f}" for i in range(20)]
    score_charts = [
        Markup(
            bar_chart({"embedded": x["score_bins"], "selected": x["score_bins_selected"]}, bins, width=560, height=160)
        )
        for x in report.get("retrieval", [])
        if "score_bins" in x
    ]
    classifier_charts = [
        Markup(bar_chart({"records": x["score_bins"]}, bins, width=560, height=160))
        for x in report.get("classifiers", [])
        if "score_bins" in x
    ]
    return _ENV.get_template("report.html").render(
        r=report,
        length_chart=Markup(chart),
        cluster_charts=cluster_charts,
        score_charts=score_charts,
        classifier_charts=classifier_charts,
    )


def write_html(report: dict, path: Path) -> None:
    atomic_write_bytes(path, render_html(report).encode("utf-8"))
