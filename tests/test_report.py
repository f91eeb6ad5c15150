"""The data-quality report for the demo corpus, as a user opens it: every section present,
self-contained (no network, no console errors in a real browser), and `curate diff`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from curate.cli import app
from tests.conftest import REPO, RULES, run, write_pipeline

runner = CliRunner()
SECTIONS = [
    "readiness",
    "gates",
    "rows",
    "funnel",
    "lengths",
    "languages",
    "quality",
    "pii",
    "duplicates",
    "retrieval",
    "balance",
    "splits",
    "sensitivity",
    "lineage",
    "plan",
]
ARTIFACTS = Path(os.environ.get("CURATE_TEST_ARTIFACTS", REPO / "tests" / "artifacts"))


@pytest.fixture(scope="module")
def full_demo(tmp_path_factory):
    """The default pipeline (every stage, the default gates) on a 1,500-record demo corpus."""
    folder = tmp_path_factory.mktemp("full_demo")
    default = yaml.safe_load((REPO / "pipelines" / "demo.yaml").read_text())
    stages = [{**s, "rules": str((REPO / "pipelines" / s["rules"]).resolve())} for s in default["stages"]]
    gates = yaml.safe_load((RULES / "gates" / "demo.yaml").read_text())
    for rule in gates["expectations"]:
        if "split_sizes" in rule:  # the default minimums are for the 20k demo
            rule["split_sizes"]["min"] = {"train": 500, "validation": 50, "test": 50}
    (folder / "gates.yaml").write_text(yaml.safe_dump(gates, sort_keys=False))
    path = write_pipeline(
        folder,
        [{"demo": {"records": 1500, "seed": 13}, "columns": ["domain"]}],
        stages,
        name="demo",
        batch_size=500,
        gates=[{"rules": "gates.yaml"}],
    )
    return run(path, folder / "out")


def test_demo_report_has_every_section_and_passes_its_gates(full_demo):
    report = json.loads((full_demo.out_dir / "report.json").read_text())
    html = (full_demo.out_dir / "report.html").read_text()
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    assert full_demo.failed_gates == [] and report["status"] == "ok"
    assert report["gates"]["counts"]["pass"] >= 30 and report["gates"]["docs"] == "gx-docs/index.html"
    assert [x["question"] for x in report["readiness"]][:2] == [
        "Is there enough data for the task?",
        "Is it in the expected chat format?",
    ]
    marks = {x["question"]: x["mark"] for x in report["readiness"]}
    assert marks["Did the quality gates pass?"] == "pass"
    assert marks["Is there a validation split without leakage?"] == "pass"
    # the demo plants a Simpson reversal (source vs urgency, confounded by domain): the checklist says so
    balance = next(x for x in report["readiness"] if x["question"].startswith("Are labels balanced"))
    assert balance["mark"] == "warn" and "within domain" in balance["evidence"]
    train = report["splits"][0]["sizes"]["train"]
    assert f"{train:,} training records" in report["readiness"][0]["evidence"]
    plan = report["training_plan"]  # what a fine-tune of the train split would take, before a GPU is rented
    assert plan["records"] == train and plan["tokens_per_epoch"] > 50 * train
    qlora_7b = next(m for m in plan["models"] if m["model"] == "Qwen2.5-7B" and m["method"] == "QLoRA")
    assert qlora_7b["cheapest"] and f"{plan['records']:,} training records" in html


def test_report_opens_in_a_real_browser_offline_without_errors(full_demo):
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    browser_path = next(
        (shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
    )
    if browser_path is None:
        pytest.skip(
            "no Chromium on PATH: install it (`apt-get install chromium`; .ci/run does) to run the browser test"
        )
    page_url = (full_demo.out_dir / "report.html").resolve().as_uri()
    requests, problems = [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(page_url, wait_until="load")
        present = [s for s in SECTIONS if page.locator(f"#{s}").count() == 1 and page.locator(f"#{s}").is_visible()]
        svgs = page.locator("svg").count()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()
    assert requests == [page_url]  # no fonts, scripts or images fetched from anywhere
    assert problems == []
    assert present == SECTIONS
    assert svgs >= 2  # length and cluster-size charts are inline SVG
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_diff_shows_what_changed_between_two_versions(tmp_path):
    lines = [
        {
            "id": f"r{i}",
            "text": f"Record {i}: the clinic reviewed its budget and staffing plan for next year.",
            "label": "a" if i % 3 else "b",
        }
        for i in range(60)
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "fewer.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines[:45]))
    a = write_pipeline(tmp_path, [{"path": "in.jsonl"}], [{"stage": "normalize"}], name="ds")
    run(a, tmp_path / "a")
    b = write_pipeline(tmp_path, [{"path": "fewer.jsonl"}], [{"stage": "normalize"}], name="ds")
    version_b = run(b, tmp_path / "b").manifest["version"]
    result = runner.invoke(app, ["diff", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "kept" in result.output and "60 → 45 (-15)" in result.output
    assert "inputs changed: fewer.jsonl, in.jsonl" in result.output
    as_json = json.loads(runner.invoke(app, ["diff", str(tmp_path / "a"), f"ds@{version_b}", "--json"]).output)
    assert {"key": "b", "a": 20, "b": 15, "change": -5} in as_json["labels"]
    assert as_json["same_data"] is False
    same = json.loads(runner.invoke(app, ["diff", str(tmp_path / "b"), str(tmp_path / "b"), "--json"]).output)
    assert same["same_data"] is True and same["rows"] == [] and same["stages"] == []
