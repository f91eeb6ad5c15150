"""`make bench`: engine throughput, dedup speed/accuracy, the sensitivity replay, PII speed/accuracy
and the cost of the quality gates (bench/gates.py), each side by side with its baseline.

Throughput of normalize + langid + quality on a generated corpus:

Measured side by side in one run:
- baseline: the same three stages applied in-process to one DataFrame — pure compute,
  no batching, checkpoints, accounting or Parquet;
- the engine (`curate run`) with 1 and with 2 worker processes.
Reported as docs/s, MB/s and MB/s per core, and as ratios to the baseline.
Results: bench/results/throughput.json and bench/results/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import yaml

from bench.pii_planted import table as planted_table
from bench.pii_sidebyside import table as sidebyside_table
from bench.train_tasks import table as train_tasks_table
from curate.catalog import Catalog
from curate.config import load_pipeline
from curate.demo.generator import generate
from curate.engine import run_pipeline
from curate.executor import build_stages
from curate.io.readers import read_batches
from curate.io.sources import resolve_inputs
from curate.records import content_texts

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def _pipeline(folder: Path, corpus: Path, workers: int) -> Path:
    spec = {
        "name": "bench",
        "seed": 1,
        "workers": workers,
        "batch_size": 2000,
        "inputs": [{"path": str(corpus)}],
        "stages": [
            {"stage": s, "rules": str(REPO / "rules" / s / "default.yaml")} for s in ("normalize", "langid", "quality")
        ],
    }
    path = folder / f"bench-{workers}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _baseline(pipeline_path: Path) -> tuple[float, int, int]:
    pipeline = load_pipeline(pipeline_path)
    files = resolve_inputs(pipeline)
    start = time.perf_counter()
    batches = list(read_batches(files, batch_size=10**9, max_record_bytes=pipeline.spec.limits.max_record_bytes))
    df = batches[0].records
    docs, size = df.height, sum(len(t.encode()) for t in content_texts(df))
    stages = build_stages(list(pipeline.stages), pipeline.stage_context())
    for stage in stages.values():
        out = stage.process(df)
        df = out.filter(pl.col("_action") == "keep").drop("_action", "_rule", "_reason")
    return time.perf_counter() - start, docs, size


def _engine(pipeline_path: Path, out: Path, workers: int) -> tuple[float, dict]:
    start = time.perf_counter()
    result = run_pipeline(
        load_pipeline(pipeline_path), out_dir=out, workers=workers, force=True, catalog=Catalog(out / "_catalog")
    )
    return time.perf_counter() - start, result.manifest


def throughput(records: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="curate-bench-"))
    try:
        corpus = work / "corpus"
        generate(corpus, records, seed=2024)
        rows = []
        seconds, docs, size = _baseline(_pipeline(work, corpus, 1))
        rows.append({"variant": "baseline: stages in-process, no engine", "workers": 1, "seconds": seconds})
        for workers in (1, 2):
            secs, manifest = _engine(_pipeline(work, corpus, workers), work / f"out-{workers}", workers)
            rows.append(
                {
                    "variant": f"engine (curate run), {workers} worker{'s' if workers > 1 else ''}",
                    "workers": workers,
                    "seconds": secs,
                    "kept": manifest["rows"]["kept"],
                }
            )
        base = rows[0]["seconds"]
        for r in rows:
            r["docs_per_s"] = round(docs / r["seconds"], 1)
            r["mb_per_s"] = round(size / 1e6 / r["seconds"], 3)
            r["mb_per_s_per_core"] = round(size / 1e6 / r["seconds"] / r["workers"], 3)
            r["speed_vs_baseline"] = round(base / r["seconds"], 3)
            r["seconds"] = round(r["seconds"], 2)
        result = {
            "benchmark": "throughput: normalize + langid + quality",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "corpus": {
                "generator_records": records,
                "documents_entering_stages": docs,
                "text_mb": round(size / 1e6, 2),
            },
            "rows": rows,
        }
        (RESULTS / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def dedup(records: int) -> None:
    """In a child process pinned to one polars thread, so its figures are per core."""
    env = {**os.environ, "POLARS_MAX_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "bench.dedup", str(records)], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL
    )
    subprocess.run(
        [sys.executable, "-m", "bench.dedup_scale"], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument(
        "--only",
        choices=[
            "throughput",
            "dedup",
            "sensitivity",
            "pii",
            "pii_precision",
            "pii_planted",
            "pii_sidebyside",
            "gates",
            "retrieve",
            "scaling",
            "safety",
            "real",
            "onboard",
            "train",
            "extract",
            "scale",
            "hostile",
            "dedup_damage",
            "decontam",
            "damage",
            "train_plan",
            "train_tasks",
            "pair_checks",
        ],
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "throughput"):
        throughput(args.records)
    if args.only in (None, "dedup"):
        dedup(args.records)
    if args.only in (None, "dedup", "dedup_damage"):  # whole-record near dedup on real sets (issue 34)
        subprocess.run([sys.executable, "-m", "bench.dedup_damage"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "decontam"):  # split decontamination's false drops and recall (issue 34)
        subprocess.run([sys.executable, "-m", "bench.decontam"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "damage"):  # what init + run drop from every real set, beside the baseline (issue 34)
        subprocess.run([sys.executable, "-m", "bench.damage"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "sensitivity"):
        subprocess.run([sys.executable, "-m", "bench.sensitivity"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "pii"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # one BLAS thread per process, as the engine's workers
        for module in ("bench.pii_eval", "bench.pii_speed"):
            subprocess.run([sys.executable, "-m", module], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "pii", "pii_precision"):  # what the shipped profiles change on real data (issue 33)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        subprocess.run(
            [sys.executable, "-m", "bench.pii_precision"], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL
        )
    if args.only in (None, "pii", "pii_planted"):  # planted personal data that survives the shipped profiles
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        subprocess.run(
            [sys.executable, "-m", "bench.pii_planted"], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL
        )
    if args.only in (None, "pii", "pii_sidebyside"):  # the stage's speed beside the code before issue 33
        subprocess.run([sys.executable, "-m", "bench.pii_sidebyside"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "retrieve"):
        subprocess.run([sys.executable, "-m", "bench.retrieve"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "gates"):
        subprocess.run(
            [sys.executable, "-m", "bench.gates", str(args.records)], cwd=REPO, check=True, stdout=subprocess.DEVNULL
        )
    if args.only in (None, "scaling"):  # the default pipeline on the 20k demo corpus, local vs Ray
        subprocess.run([sys.executable, "-m", "bench.scaling"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "real"):  # the default rules on real SFT data, before/after issue 17's behaviour
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        subprocess.run(
            [sys.executable, "-m", "bench.real_eval"], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL
        )
    if args.only in (None, "onboard"):  # curate init + run on data nobody here wrote
        subprocess.run([sys.executable, "-m", "bench.onboard"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "train"):  # train run beside a plain transformers.Trainer + peft script
        subprocess.run([sys.executable, "-m", "bench.train"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "pair_checks"):  # preference-pair checks on real DPO data, against TRL (issue 36)
        subprocess.run([sys.executable, "-m", "bench.pair_checks"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "train_plan"):  # train plan's memory, speed and token estimates vs measured and published
        subprocess.run([sys.executable, "-m", "bench.train_plan"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "train_tasks"):  # init -> run -> train run (default config): classification and 8k SFT
        subprocess.run([sys.executable, "-m", "bench.train_tasks"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "extract"):  # main text of real HTML pages: resiliparse beside trafilatura
        subprocess.run([sys.executable, "-m", "bench.extract"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "scale"):  # memory and speed per record by corpus size, and a WARC of real pages
        subprocess.run(
            [sys.executable, "-m", "bench.scale", "--datatrove-sizes", "20000", "100000"],
            cwd=REPO,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if args.only in (None, "safety"):  # what the publishing, PII and bounded-read guarantees cost
        subprocess.run([sys.executable, "-m", "bench.safety"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if args.only in (None, "hostile"):  # hostile input and misuse, beside the code before issue 37
        subprocess.run([sys.executable, "-m", "bench.hostile"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    _markdown()
    print((RESULTS / "README.md").read_text())


def _markdown() -> None:
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (bench/run.py); the JSON files beside this one hold every figure.",
        "",
    ]
    path = RESULTS / "throughput.json"
    if path.exists():
        result = json.loads(path.read_text())
        c = result["corpus"]
        lines += [
            f"## {result['benchmark']}",
            "",
            f"{c['documents_entering_stages']:,} records ({c['text_mb']} MB of text) from the demo generator; "
            f"{result['machine']['cpus']} CPUs, Python {result['machine']['python']}, {result['date']}.",
            "",
            "| variant | seconds | docs/s | MB/s | MB/s per core | speed vs baseline |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in result["rows"]:
            lines.append(
                f"| {r['variant']} | {r['seconds']} | {r['docs_per_s']:,} | {r['mb_per_s']} | "
                f"{r['mb_per_s_per_core']} | {r['speed_vs_baseline']}x |"
            )
        lines += [
            "",
            "Baseline = the same stage code on one in-memory DataFrame in one process (no batching, checkpoints, "
            "accounting or Parquet output). Ratios above 1 are faster than the baseline.",
            "",
        ]
    path = RESULTS / "dedup.json"
    if path.exists():
        result = json.loads(path.read_text())
        lines += [
            f"## {result['benchmark']}",
            "",
            f"{result['documents']:,} documents (mean {result['mean_shingles_per_doc']} shingles), one core "
            f"(POLARS_MAX_THREADS=1), peak RSS {result['peak_rss_mb']} MB.",
            "",
            "| variant | seconds | docs/s | speed vs datasketch | documents removed |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in result["rows"]:
            lines.append(
                f"| {r['variant']} | {r['seconds']} | {r['docs_per_s']:,} | {r['speed_vs_datasketch']}x | "
                f"{r['duplicates']:,} |"
            )
        agree = ", ".join(f"{k} {v}" for k, v in result["removed_set_agreement_with_datasketch"].items())
        acc = result["accuracy"]
        lines += [
            "",
            f"Agreement of the removed-document sets with datasketch's (Jaccard of the sets): {agree}.",
            "",
            f"### Accuracy against exact Jaccard (threshold 0.8, {acc['documents']:,} documents, all pairs)",
            "",
            f"{acc['true_pairs']:,} true pairs; {acc['true_removed']:,} documents a perfect dedup removes (all but "
            "the first of each cluster).",
            "",
            "| method | pair precision | pair recall | pair F1 | doc precision | doc recall | doc F1 |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, scores in acc.items():
            if not isinstance(scores, dict):
                continue
            p, d = scores.get("pairs", {}), scores["documents"]
            lines.append(
                f"| {name} | {p.get('precision', '–')} | {p.get('recall', '–')} | {p.get('f1', '–')} | "
                f"{d['precision']} | {d['recall']} | {d['f1']} |"
            )
        lines.append("")
    path = RESULTS / "dedup_scale.json"
    if path.exists():
        r = json.loads(path.read_text())
        lines += [
            f"## {r['benchmark']}",
            "",
            f"{r['documents']:,} synthetic documents of {r['mean_bytes_per_doc']:,} bytes on average: "
            f"{r['seconds']} s ({r['docs_per_s']:,} docs/s), {r['removed']:,} removed, peak RSS "
            f"{r['peak_rss_mb']:,} MB ({r['peak_rss_mb_before_stage']:,} MB of it held by the input frame "
            "before the stage started).",
            "",
        ]
    path = RESULTS / "sensitivity.json"
    if path.exists():
        r = json.loads(path.read_text())
        lines += [
            f"## {r['benchmark']}",
            "",
            f"Default six-stage pipeline on {r['records']:,} demo records, 2 workers: "
            f"{r['pipeline_seconds_with_sensitivity']} s "
            f"including the replay of all {r['criteria']} criteria ({r['replay_seconds_all_criteria']} s). A full "
            "rerun per "
            f"criterion would take about {r['rerun_seconds_all_criteria_estimated']} s (mean of the reruns below x "
            "criteria): "
            f"**{r['speed_vs_rerun_all_criteria']}x** faster.",
            "",
            "| criterion relaxed | replay s | full rerun s | speed vs rerun | kept (replay) | kept (rerun) | agree |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for x in r["rows"]:
            lines.append(
                f"| {x['criterion']} | {x['replay_seconds']} | {x['rerun_seconds']} | {x['speed_vs_rerun']}x | "
                f"{x['replay_kept']:,} | {x['rerun_kept']:,} | {'yes' if x['agree'] else 'NO'} |"
            )
        lines.append("")
    lines += _pii_markdown()
    lines += pii_precision_table(_result("pii_precision"))
    lines += pii_planted_table(_result("pii_planted"))
    lines += sidebyside_table(_result("pii_sidebyside"))
    lines += _gates_markdown()
    lines += _retrieve_markdown()
    lines += _scaling_markdown()
    lines += _safety_markdown()
    lines += hostile_markdown()
    lines += _real_markdown()
    lines += extract_table(_result("extract"))
    lines += scale_table(_result("scale"))
    lines += onboard_table(_result("onboard"))
    lines += train_table(_result("train"))
    lines += _train_plan_markdown(_result("train_plan"))
    lines += train_tasks_table(_result("train_tasks")) + [""]
    (RESULTS / "README.md").write_text("\n".join(lines))


def _train_plan_markdown(r: dict | None) -> list[str]:
    """bench/train_plan.py's tables: the plan's estimates beside what was measured here and published."""
    if r is None:
        return []
    from bench.train_plan import table

    return [
        f"## train plan: estimate vs measured (this CPU) vs published (bench/train_plan.py, {r['date'][:10]})",
        "",
        *table(r["measured_here"]),
        "",
        f"Published: {r['published']['source']}",
        "",
        *table(r["published"]["rows"] + r["published"]["slopes"]),
        "",
        f"Rule of thumb: {r['rule_of_thumb']['source']}",
        "",
        *table(r["rule_of_thumb"]["rows"]),
        "",
    ]


def scale_table(r: dict | None) -> list[str]:
    if r is None:
        return []
    lines = [
        f"## {r['benchmark']} (bench/scale.py)",
        "",
        f"{r['machine']['cpus']} CPUs, {r['machine']['workers']} workers, {r['measured_at']}. Peak RSS is the "
        "whole process tree's (the driver and its workers), sampled every 0.1 s.",
        "",
        "| corpus | code | commit | records | seconds | records/s | peak RSS MB | KB per record | "
        "peak work folder MB | kept |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for x in r["rows"]:
        lines.append(
            f"| {x['corpus']} | {x.get('code', 'this code')} | {x.get('commit', '')} | {x['records']:,} | "
            f"{x['seconds']} | "
            f"{x['records_per_s']:,} | {x['peak_rss_mb']:,} | {x['kb_per_record']} | {x['peak_checkpoint_mb']:,} | "
            f"{x['kept']['kept']:,} |"
        )
    lines.append("")
    for m in r["marginal"]:
        lines.append(
            f"- {m.get('code', 'this code')}, {m['from']:,} to {m['to']:,} records: "
            f"{m['marginal_kb_per_record']} KB per extra record"
        )
    return [*lines, ""]


def extract_table(r: dict | None) -> list[str]:
    if r is None:
        return []
    c = r["corpus"]
    lines = [
        "## Main-text extraction on real HTML (bench/extract.py)",
        "",
        f"{c['pages']} HTML manual pages ({c['mb']} MB, {c['manuals']} manuals, {c['paragraphs']:,} paragraphs of "
        f"80+ characters) under {c['where']}; the extract stage with its default rules, one core, {r['measured_at']}.",
        "",
        "| engine | pages/s | MB/s | paragraph recall | boilerplate share | pages with markup left | empty |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, x in r["extractors"].items():
        lines.append(
            f"| {name} | {x['pages_per_s']} | {x['mb_per_s']} | {x['paragraph_recall']:.1%} | "
            f"{x['boilerplate_share']:.2%} | {x['pages_with_markup_left']} | {x['empty_extracts']} |"
        )
    lines += [
        "",
        f"resiliparse is **{r['ratios']['resiliparse_speed_vs_trafilatura']}x** trafilatura's speed. Recall: the "
        "share of the page's paragraphs found in the extract; boilerplate: the share of extracted characters in "
        "lines recurring on half the pages of a manual.",
        "",
    ]
    return lines


def onboard_table(r: dict | None) -> list[str]:
    """bench/onboard.py's table: the same lines go into bench/results/README.md and the README."""
    if r is None:
        return []
    lines = [
        "## your own data: `curate init` + `curate run` on sets nobody here wrote",
        "",
        f"bench/onboard.py, {r['date']}, {r['machine']['cpus']} CPUs. Before: `curate run pipelines/demo.yaml --input "
        "FILE`.",
        "",
        "| set | layout found | task | init s | run exit | kept of input | train / validation / test | gates failed "
        "| top drop reasons | before: exit, gates failed |",
        "|---|---|---|---:|---:|---:|---|---|---|---|",
    ]
    for x in r["rows"]:
        run = x["run"] or {}
        sp = run.get("splits", {})
        reasons = ", ".join(f"{k.split(':', 1)[1]} {v:,}" for k, v in run.get("top_reasons", {}).items()) or "none"
        before = x["before"]
        failed_before = sorted(set((before.get("run") or {}).get("failed_gates", [])))
        lines.append(
            f"| {x['set']} | {x['layout']} | {x['task']} | {x['init_seconds']} | {x['run_exit']} | "
            f"{run.get('kept', 0):,} of {run.get('input', 0):,} | {sp.get('train', 0):,} / "
            f"{sp.get('validation', 0):,} / "
            f"{sp.get('test', 0):,} | {', '.join(run.get('failed_gates', [])) or 'none'} | {reasons} | "
            f"{before['run_exit']}: {', '.join(failed_before) or 'none'} |"
        )
    st = r.get("store")
    if st:
        v = st["variants"]
        lines += [
            "",
            f"Keeping {st['version']} in the store ({st['files']} listed files, {st['bytes']:,} bytes): hard links "
            f"{v['hard links']['seconds'] * 1000:.1f} ms, 0 bytes; a copy {v['copy']['seconds'] * 1000:.1f} ms, "
            f"{v['copy']['bytes_copied']:,} bytes ({st['copy_vs_links_seconds']}x; best of 5 each).",
        ]
    lines.append("")
    return lines


def train_table(r: dict | None) -> list[str]:
    """bench/train.py's table: the same lines go into bench/results/README.md and the README."""
    if r is None:
        return []
    s, m = r["settings"], r["model"]["shape"]
    lines = [
        "## training: `train run` beside a plain transformers.Trainer + peft script",
        "",
        f"bench/train.py, {r['date'][:10]}, {r['device']}, torch {r['torch']}. {r['data']}; a Qwen2 of hidden "
        f"{m['hidden_size']}, {m['num_hidden_layers']} layers, random weights, the real Qwen2 tokenizer (vocabulary "
        f"{r['model']['vocab_size']:,}); max_length {s['max_length']}, batch {s['batch_size']}, "
        f"one epoch on both sides, LoRA r {s['lora']['r']} on all linear layers, the same label masks. "
        "tokens/s: real tokens of the training batches per second of the training loop; "
        "padding: the share of batch positions that are padding; wall: the whole process.",
        "",
        "| method | packing | steps: train run / baseline | tokens/s: train run / baseline | ratio "
        "| padding: train run / baseline | peak RSS MB: train run / baseline | ratio | wall s: train run / baseline |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for x in r["rows"]:
        a, b = x["train run"], x["baseline"]
        gpu = f" (GPU {a['peak_gpu_mb']:,.0f} / {b['peak_gpu_mb']:,.0f})" if "peak_gpu_mb" in a else ""
        lines.append(
            f"| {x['method']} | {'on' if x['packing'] else 'off'} | {a['steps']} / {b['steps']} | "
            f"{a['tokens_per_s']:,} / {b['tokens_per_s']:,} | "
            f"{x['tokens_per_s_ratio']}x | {a['padding_share']:.1%} / {b['padding_share']:.1%} | "
            f"{a['peak_rss_mb']:,.0f} / {b['peak_rss_mb']:,.0f}{gpu} | {x['peak_rss_ratio']}x | "
            f"{a['wall_seconds']} / {b['wall_seconds']} |"
        )
    lines += [
        "",
        "Baseline: `DataCollatorForSeq2Seq` with the Trainer's random sampler; with packing, transformers' "
        "`DataCollatorWithFlattening`. train run: length-grouped batches; with packing, first-fit rows of max_length. "
        "Its wall time also holds the template and leakage checks, the eval loss before and after, the stop check "
        "and the report.",
        "",
    ]
    return lines


def _real_markdown() -> list[str]:
    r = _result("real_eval")
    if r is None:
        return []
    lines = [
        "## real data: the default rules on real SFT sets, before and after code/boilerplate awareness",
        "",
        f"bench/real_eval.py, {r['when']}; normalize, pii, langid, quality, dedup, split in one process.",
        "",
        "| set | variant | kept | pii: records changed | assistant turns with a placeholder | code answers with a "
        "placeholder "
        "| langid: code records dropped | near-dup drops | split: contaminated |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in r["sets"].items():
        for variant in ("before", "after"):
            x = v[variant]
            st = x["stages"]
            p, lang, d = st["pii"], st["langid"], st["dedup"]
            lines.append(
                f"| {name} | {variant} | {x['kept']:,} of {x['records']:,} | {p['changed_share']:.1%} | "
                f"{p['assistant_turns_with_placeholder']:.1%} | {p['code_answers_with_placeholder']:.1%} of "
                f"{p['code_answers']:,} | "
                f"{lang['code_records_dropped']:,} of {lang['code_records']:,} | "
                f"{d['reasons'].get('near_duplicate', 0):,} | "
                f"{st['split']['reasons'].get('split:contaminated', 0):,} |"
            )
    lines += [
        "",
        "pii stage speed, before and after side by side (a fresh stage per timing, alternated, best of 2):",
        "",
        "| corpus | records | before docs/s | after docs/s | after vs before |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, x in r["pii_speed"].items():
        lines.append(
            f"| {name} | {x['records']:,} | {x['before']['docs_per_s']} | {x['after']['docs_per_s']} | "
            f"{x['speed_after_vs_before']}x |"
        )
    lines.append("")
    return lines


def _result(name: str) -> dict | None:
    """bench/results/<name>.json, None if that benchmark has not run."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def hostile_markdown() -> list[str]:
    """bench/results/hostile.json as a table: each case with the code before issue 37 and this code."""
    r = _result("hostile")
    if r is None:
        return []

    def said(o: dict | None) -> str:
        if o is None:
            return "not run"
        f = o["facts"]
        parts = ["stopped at the time cap" if o["exit"] is None else f"exit {o['exit']}", f"{o['seconds']} s"]
        if o["exit"] is None:  # stopped: what its folder holds is an earlier run's
            pass
        elif "pages_read" in f:
            parts.append(f"{f['pages_read']} of {f['whole_pages']} whole pages read")
        elif "rows_in" in f and "pages_in_the_crawl" in f:
            parts.append(f"{f['rows_in']} rows for {f['pages_in_the_crawl']} pages")
        if f.get("read_reasons"):
            parts.append(", ".join(f"{k} {v}" for k, v in f["read_reasons"].items()))
        if "user_files_intact" in f:
            parts.append("user files intact" if f["user_files_intact"] else "**user files deleted**")
        if "kept" in f:
            parts.append(f"{f['kept']} of {f['registrations']} registrations kept")
        if f.get("written_through_the_link"):
            parts.append("**written through the link**")
        if o["traceback"]:
            parts.append(f"**traceback** ({o['lines']} lines)")
        elif o["exit"] not in (0, None):
            parts.append(f"{o['lines']} line(s)")
        if o["leaked"]:
            parts.append("**address printed**")
        return "; ".join(parts)

    lines = [
        "## hostile: hostile input and misuse (issue 37)",
        "",
        f"`bench/hostile.py`, {r['when']}, code {r['code']} beside {r['baseline']} (the code before the issue), "
        f"{r['machine']['cpus']} CPUs: {sum(c['passed'] for c in r['cases'])} of {len(r['cases'])} cases pass.",
        "",
        "| case | before | this code | passes |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {c['case']} | {said(c['baseline'])} | {said(c['this_code'])} | {'yes' if c['passed'] else '**no**'} |"
        for c in r["cases"]
    ]
    cost = r.get("limits_cost")
    if cost:
        sec = cost["seconds"]
        lines += [
            "",
            f"What the per-record limits cost on normal input (best of 3, one process): extract on {cost['pages']} "
            f"manual pages in the sandbox {sec['extract, sandbox + time limit']} s vs the engine in-process "
            f"{sec['extract, engine in-process']} s ({cost['extract_ratio']}x); pii (default rules) on "
            f"{cost['pii_records']} Python reference topics with a deadline per record "
            f"{sec['pii, deadline per record']} s vs none {sec['pii, no limit']} s ({cost['pii_ratio']}x).",
        ]
    return lines + [""]


def _safety_markdown() -> list[str]:
    r = _result("safety")
    if r is None:
        return []
    lines = [
        "## safety: what bounded reads, PII in every field and verified reads cost",
        "",
        f"{r['machine']['cpus']} CPUs, Python {r['machine']['python']}, {r['when']}.",
        "",
    ]
    rd = r["reader"]
    lines += [
        f"Reading {rd['lines']:,} demo lines ({rd['bytes'] / 1e6:.1f} MB), parsed with orjson, best of 3:",
        "",
        "| reader | seconds | lines/s | MB/s | vs plain iteration |",
        "|---|---:|---:|---:|---:|",
    ]
    variants = [k for k in rd if isinstance(rd[k], dict)]
    for k in variants:
        base = rd[variants[0] if k.startswith("gzip") else variants[2]]["seconds"]
        lines.append(
            f"| {k} | {rd[k]['seconds']} | {rd[k]['lines_per_s']:,} | {rd[k]['mb_per_s']} | "
            f"{base / rd[k]['seconds']:.2f}x |"
        )
    lines += [
        "",
        "Peak RSS of reading a compressed file with one 1 GiB line (quarantined as `record_too_large`) and without it:",
        "",
        "| file | on disk | kept | quarantined | peak RSS MB | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {k} | {v['file_bytes']:,} B | {v['kept']} | {v['quarantined']} | {v['peak_rss_mb']} | {v['seconds']} |"
        for k, v in r["bomb"].items()
    ]
    pf = r["pii_fields"]
    off, on = pf["text and chat turns only"], pf["every field (default)"]
    lines += [
        "",
        f"pii stage on {pf['records']:,} demo records, one process:",
        "",
        "| fields scanned | seconds | docs/s | speed vs text only |",
        "|---|---:|---:|---:|",
        f"| text and chat turns only | {off['seconds']} | {off['docs_per_s']} | 1.0x |",
        f"| every field (default) | {on['seconds']} | {on['docs_per_s']} | {off['seconds'] / on['seconds']:.2f}x |",
    ]
    v = r["verified_reads"]
    plain, checked = v["polars.read_parquet (no check)"], v["Entry.read (sha256 of every file first)"]
    lines += [
        "",
        f"Reading a published shard set ({v['files']} files, {v['bytes'] / 1e6:.1f} MB, {v['rows']:,} rows): "
        f"`polars.read_parquet` {plain['seconds']} s, through the catalog with every file's sha256 checked "
        f"{checked['seconds']} s ({checked['ratio_to_plain']}x the time).",
        "",
    ]
    return lines


def _retrieve_markdown() -> list[str]:
    r = _result("retrieve")
    if r is None:
        return []
    a, sp = r["accuracy"], r["cpu_speed"]
    ft = a["fasttext_holdout_vs_retrieval_labels"]
    lines = [
        f"## {r['benchmark']}",
        "",
        f"Model: {r['model']}.",
        "",
        f"Accuracy — pool {a['pool']}: retrieval ROC AUC vs the populations **{a['retrieval_auc_vs_populations']}** "
        f"(mean of the 5 nearest seeds; {a['retrieval_auc_vs_populations_max_score']} with the nearest alone) "
        f"(goal {a['goals']['retrieval_auc']}), precision of the selected half {a['retrieval_selected_precision']}; "
        f"fastText held out vs the retrieval labels: ROC AUC **{ft['roc_auc']}** (goal "
        f"{a['goals']['fasttext_auc_vs_retrieval']}), "
        f"precision {ft['precision']}, recall {ft['recall']}; fastText vs the populations: ROC AUC "
        f"{a['fasttext_auc_vs_populations']}.",
        "",
        f"CPU speed on {sp['device']} ({sp['torch_threads']} torch threads):",
        "",
    ]
    for run in sp["runs"]:
        lines += [
            f"{run['documents']:,} documents, {run['corpus']}, {run['min_chars']:,}-{run['max_chars']:,} characters "
            f"(mean {run['mean_chars']:,}); scores agree with the baseline's (Pearson r = "
            f"{run['score_correlation_with_baseline']}):",
            "",
            "| variant | seconds | docs/s | speed vs baseline |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {x['variant']} | {x['seconds']} | {x['docs_per_s']} | {x['speed_vs_baseline']}x |" for x in run["rows"]
        ]
        lines.append("")
    lines += [f"GPU: {r['gpu']}.", ""]
    return lines


def _scaling_markdown() -> list[str]:
    r = _result("scaling")
    if r is None:
        return []
    m = r["moved_per_million_docs"]
    lines = [
        f"## {r['benchmark']}",
        "",
        f"{r['pipeline']} on {r['records']:,} demo records, {r['machine']['cpus']} cores; "
        f"same version from every run: {r['same_version']}. Ray runs include starting Ray ({r['ray_startup_seconds']} "
        "s).",
        "",
        "| run | seconds | docs/s | vs local, 2 workers | vs local, same workers |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {x['run']} | {x['seconds']} | {x['docs_per_s']} | {x['vs_local_2_workers']} | "
        f"{x['vs_local_same_workers']} |"
        for x in r["runs"]
    ]
    lines += [
        "",
        f"Moved per million documents: dedup shuffle {m['dedup_shuffle_mb_per_million_docs']} MB "
        f"({m['bands']} bands x {m['rows']} rows), signatures {m['signature_mb_per_million_docs']} MB.",
        "",
    ]
    if reader := r.get("driver_reader"):
        lines += [
            f"The driver's reader alone (read, quarantine, write batch Parquet; one core): {reader['docs_per_s']:,} "
            "docs/s "
            f"({reader['bytes_per_doc_as_parquet']} bytes per document as batch Parquet).",
            "",
        ]
    return lines


def _gates_markdown() -> list[str]:
    r = _result("gates")
    if r is None:
        return []
    c = r["corpus"]
    return [
        f"## {r['benchmark']}",
        "",
        f"{c['input_rows']:,} input records ({c['generator_records']:,} generated), {c['published_rows']:,} published; "
        f"pipeline {' -> '.join(r['pipeline'])}, 2 workers, sensitivity off; {r['checks']} checks ({r['counts']}).",
        "",
        "| variant | seconds | ratio |",
        "|---|---:|---:|",
        f"| baseline: pipeline without gates | {r['baseline_pipeline_seconds']} | 1.0 |",
        f"| pipeline with the default gates | {r['pipeline_with_gates_seconds']} | {1 + r['wall_clock_overhead']:.3f} "
        "|",
        f"| the gates alone (measuring, GX validation, Data Docs) | {r['gates_seconds']} | "
        f"{r['gates_share_of_pipeline']:.3f} |",
        "",
        f"Goal: {r['goal']}; measured: the gates' own time is {r['gates_share_of_pipeline']:.1%} of the pipeline's, "
        f"the wall-clock overhead {r['wall_clock_overhead']:.1%} (faster of two alternating runs each: "
        f"{r['all_runs_seconds']}).",
        "",
    ]


def pii_precision_table(r: dict | None) -> list[str]:
    """bench/pii_precision.py's table: per set and profile, the records the pii stage changed and why."""
    if r is None:
        return []

    def top(counts: dict) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in list(counts.items())[:3]) or "–"

    lines = [
        f"## {r['benchmark']}",
        "",
        f"bench/pii_precision.py, {r['date']}, commit {r['commit']}, {r['machine']['cpus']} CPUs, {r['seconds']} s. "
        f"{r['sampling']}. Every change is a candidate false positive: the sets hold no private person's data on "
        "purpose; the JSON has a sample of changed spans per set and profile to label.",
        "",
        "| set | profile | records | changed | top entity types (redactions) | top reasons (redactions) |",
        "|---|---|---:|---:|---|---|",
    ]
    for name, profiles in r["results"].items():
        for profile, x in profiles.items():
            lines.append(
                f"| {name} | {profile} | {x['records']:,} | {x['changed_share']:.1%} | "
                f"{top(x['redactions_by_entity'])} | {top(x['redactions_by_reason'])} |"
            )
    return lines + [""]


def pii_planted_table(r: dict | None) -> list[str]:
    """bench/pii_planted.py's table: per type, the planted values that survive each shipped profile."""
    if r is None:
        return []
    s = r["set"]
    return [
        f"## {r['benchmark']}",
        "",
        f"bench/pii_planted.py, {r['date']}, commit {r['commit']}, {r['machine']['cpus']} CPUs, {r['seconds']} s. "
        f"{s['records']} records ({', '.join(f'{k} {v}' for k, v in s['styles'].items())}; "
        f"{s['records_without_diacritics']} chats typed without diacritics), langid before pii as in "
        f"pipelines/sft.yaml. Goal: {r['goal']}. The JSON lists every survivor with the output around it.",
        "",
        planted_table(r),
        "",
    ]


def _pii_markdown() -> list[str]:
    lines = []
    path = RESULTS / "pii_speed.json"
    if path.exists():
        r = json.loads(path.read_text())
        c = r["corpus"]
        lines += [
            f"## {r['benchmark']}",
            "",
            f"{c['documents']:,} documents of {c['mean_chars']} characters on average ({c['what']}); "
            f"recall over {', '.join(r['recall_types'])}.",
            "",
            "| variant | docs | seconds | docs/s | MB/s | speed vs stock | recall |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for x in r["rows"]:
            lines.append(
                f"| {x['variant']} | {x['docs']:,} | {x['seconds']} | {x['docs_per_s']} | {x['mb_per_s']} | "
                f"{x['speed_vs_stock']}x | {x.get('recall', '–')} |"
            )
        lines += [
            "",
            "Where the stage's time goes (1 process, memo off):",
            "",
            "| area | seconds | share |",
            "|---|---:|---:|",
        ]
        lines += [f"| {p['area']} | {p['seconds']} | {p['share']:.0%} |" for p in r["profile_memo_off"]]
        lines.append("")
    path = RESULTS / "pii_eval.json"
    if path.exists():
        r = json.loads(path.read_text())
        lines += [
            f"## {r['benchmark']}",
            "",
            f"Model: {r['model']}. curate's default rules cover: {', '.join(r['curate_covers'])}.",
            "",
            "| type | gold | stock P | stock R | stock F2 | curate P | curate R | curate F2 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for t, s in r["stock"].items():
            c = r["curate"][t]
            lines.append(
                f"| {t} | {s['gold']:,} | {s['precision']} | {s['recall']} | {s['f2']} | {c['precision']} | "
                f"{c['recall']} | {c['f2']} |"
            )
        lines.append("")
        if "before" in r:
            lines += pii_profile_tables(r)
    return lines


def pii_profile_tables(r: dict) -> list[str]:
    """bench/pii_eval.py's results on presidio-research (before vs today), our own Vietnamese and
    clinical sets (recall/precision/F2 per kind, every variant) and the demo's docs/s: the README's tables."""
    lines = [
        "English, presidio-research (recall, before issue 18 → today):",
        "",
        "| type | gold | stock | before | today | today's precision |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t, s in r["stock"].items():
        b, c = r["before"][t], r["curate"][t]
        lines.append(f"| {t} | {s['gold']:,} | {s['recall']} | {b['recall']} | {c['recall']} | {c['precision']} |")
    own = r["own_sets"]
    for name, title in (("vietnamese", "Vietnamese set"), ("clinical", "Clinical set (HIPAA kinds)")):
        variants = own[name]["variants"]
        kinds = [k for k in next(iter(variants.values())) if k != "overall"]
        lines += [
            "",
            f"{title}, {own[name]['records']} records "
            f"({', '.join(f'{k} {v}' for k, v in own[name]['styles'].items())}): "
            "recall / precision / F2 per kind",
            "",
            "| kind | gold | " + " | ".join(variants) + " |",
            "|---|---:|" + "---:|" * len(variants),
        ]
        for k in kinds:
            cells = [f"{v[k]['recall']:.3f} / {v[k]['precision']:.2f} / {v[k]['f2']:.2f}" for v in variants.values()]
            lines.append(f"| {k} | {next(iter(variants.values()))[k]['gold']} | " + " | ".join(cells) + " |")
        lines.append(
            "| all kinds (recall, any-type recall) | "
            + f"{next(iter(variants.values()))['overall']['gold']} | "
            + " | ".join(
                f"{v['overall']['recall']:.3f}, {v['overall']['any_type_recall']:.3f}" for v in variants.values()
            )
            + " |"
        )
        if name == "vietnamese":
            lines += [
                "",
                "US-format predictions (driver licence, SSN, ITIN, passport, bank, NPI, DEA) in the Vietnamese set: "
                + ", ".join(f"{k} {v}" for k, v in own[name]["us_format_predictions"].items())
                + (
                    f"; underthesea: {own['underthesea_seconds_per_sentence'] * 1000:.0f} ms a sentence."
                    if "underthesea_seconds_per_sentence" in own
                    else "."
                ),
            ]
    if c := r.get("os_catalogs"):
        lines += [
            "",
            f"Real Vietnamese: the OS's {c['catalogs']} Vietnamese message catalogs — translator names in "
            f"{c['headers_with_a_translator_name']} headers, and {c['ui_strings']:,} UI strings with no personal data:",
            "",
            "| rules | translator names found | false names/places/addresses/dates per 1,000 UI strings |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {k} | {c[k]['translator_name_recall']} | {c[k]['false_positives_per_1000_ui_strings']} |"
            for k in ("stock", "before", "default")
        ]
    d = r["demo_speed"]
    lines += [
        "",
        f"pii stage on {d['records']:,} demo records, one process (median of 5, alternated; every timing in the JSON):",
        "",
        "| rules | seconds | docs/s | vs before |",
        "|---|---:|---:|---:|",
        f"| before issue 18 | {d['before']['seconds']} | {d['before']['docs_per_s']} | 1.0 |",
        f"| default | {d['default']['seconds']} | {d['default']['docs_per_s']} | {d['default_vs_before']} |",
        f"| hipaa | {d['hipaa']['seconds']} | {d['hipaa']['docs_per_s']} | {d['hipaa_vs_before']} |",
        "",
    ]
    return lines


if __name__ == "__main__":
    main()
