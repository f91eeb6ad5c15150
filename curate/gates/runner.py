"""Quality gates: rules/gates/*.yaml checked with Great Expectations at chosen points of a run.

At a gate point (after a named stage, or `final`: the shards about to be published) the
gates build three frames with polars (curate.gates.frames), turn each rule into GX
expectations (curate.gates.rules), and validate them in one ephemeral GX context whose
Data Docs site is written beside the shards. A failed `fail` check marks the run failed:
the output is still written, for inspection, but the catalog refuses it as input.
"""

from __future__ import annotations

import difflib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import polars as pl

from curate.errors import ConfigError
from curate.gates.frames import dataset_frame, records_frame, schema_frame
from curate.gates.rules import Check, GateRule, GateRules, checks

FINAL = "final"
EXAMPLES = 5


def stages_upto(stages: tuple, point: str) -> tuple:
    """The pipeline's stages (ResolvedStage) that ran before a gate point, in order."""
    if point == FINAL:
        return stages
    names = [s.name for s in stages]
    return stages[: names.index(point) + 1]


@dataclass(frozen=True)
class ResolvedGate:
    point: str  # a stage name, or "final"
    rules: GateRules
    rules_path: Path

    @property
    def source(self) -> str:
        return self.rules_path.name


class GateRunner:
    """One ephemeral GX context for a run; its Data Docs site lives in `docs_dir`."""

    def __init__(self, docs_dir: Path):
        self.docs_dir = docs_dir
        self._ctx = None
        self._gx = None
        self._lock = threading.Lock()
        self._warming: threading.Thread | None = None

    def warm(self) -> None:
        """Import GX (seconds of pure Python) in a background thread, while the run's workers
        compute; the first validation waits for it."""
        if self._warming is None and self._ctx is None:
            self._warming = threading.Thread(target=self._context, name="gx-import", daemon=True)
            self._warming.start()

    def _context(self):
        with self._lock:
            return self._make_context()

    def _make_context(self):
        if self._ctx is None:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
            import great_expectations as gx  # imported here: it costs seconds
            from great_expectations.data_context.types.base import ProgressBarsConfig

            ctx = gx.get_context(mode="ephemeral")
            ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
            ctx.add_data_docs_site(
                site_name="curate",
                site_config={
                    "class_name": "SiteBuilder",
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(self.docs_dir.resolve()),
                    },
                },
            )
            self._gx, self._ctx = gx, ctx
            self._source = ctx.data_sources.add_pandas("curate")
        return self._ctx

    def build_docs(self) -> float:
        """Render GX's Data Docs once for every suite validated in this run; seconds taken."""
        if self._ctx is None:
            return 0.0
        started = time.perf_counter()
        self._ctx.build_data_docs(site_names=["curate"])
        return time.perf_counter() - started

    def check_types(self, gates: list[ResolvedGate]) -> None:
        """Unknown GX expectation names in `gx:` rules are errors before any stage runs."""
        for g in gates:
            for r in g.rules.expectations:
                if r.gx is not None:
                    self.expectation_class(r.gx.type, str(g.rules_path))

    def expectation_class(self, name: str, where: str):
        self._context()
        cls = getattr(self._gx.expectations, name, None)
        if cls is None:
            known = [n for n in dir(self._gx.expectations) if n.startswith("Expect")]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: gx.type: Great Expectations has no expectation '{name}'{hint}")
        return cls

    def validate(self, suite_name: str, frame, found: list[Check], where: str, withhold: bool = False) -> list:
        """Validate `frame` (pandas) against `found`; results in the order of `found`. `withhold`: keep
        no unexpected values or rows in the results (nor so in the Data Docs built from them)."""
        ctx = self._context()
        gx = self._gx
        suite = ctx.suites.add(gx.ExpectationSuite(name=suite_name))
        # GX keeps one of two equal expectations (two rules may ask the same thing), so each
        # distinct one is added once, tagged, and its result shared by the checks asking it.
        keys = [orjson.dumps([c.type, c.kwargs], option=orjson.OPT_SORT_KEYS) for c in found]
        distinct = list(dict.fromkeys(keys))
        for k, key in enumerate(distinct):
            c = found[keys.index(key)]
            try:
                suite.add_expectation(self.expectation_class(c.type, where)(**c.kwargs, meta={"check": k}))
            except ConfigError:
                raise
            except Exception as exc:  # pydantic errors from GX for bad kwargs
                raise ConfigError(f"{where}: rule '{c.rule}': {c.type}{c.kwargs}: {str(exc).splitlines()[0]}") from None
        batch = self._source.add_dataframe_asset(suite_name).add_batch_definition_whole_dataframe("all")
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch, suite=suite))
        checkpoint = ctx.checkpoints.add(
            gx.Checkpoint(
                name=suite_name,
                validation_definitions=[vd],
                result_format={"result_format": "SUMMARY", **({"partial_unexpected_count": 0} if withhold else {})},
            )
        )
        run = checkpoint.run(batch_parameters={"dataframe": frame})
        results = {r.expectation_config.meta["check"]: r for vr in run.run_results.values() for r in vr.results}
        return [results[distinct.index(key)] for key in keys]


def _observed(check: Check, result, records: pl.DataFrame | None, values: dict) -> tuple[bool, str, list[str]]:
    """(passed, what was observed, example record ids) for one GX result."""
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return False, f"error: {str(info.get('exception_message', '')).splitlines()[0]}", []
    if check.frame != "records":
        value = values.get(check.metric, None) if check.metric is not None else None
        if check.type == "ExpectColumnToExist":
            return result.success, "present" if check.metric in values else "missing", []
        if value is None:
            return False, "not measured" if check.metric in values else "missing", []
        return result.success, f"{value:,}" if isinstance(value, int) else str(value), []
    res = result.result or {}
    total, bad = res.get("element_count", 0), res.get("unexpected_count", 0)
    ids = []
    if records is not None and "id" in records.columns:
        ids = [
            records["id"][i] for i in (res.get("partial_unexpected_index_list") or [])[:EXAMPLES] if isinstance(i, int)
        ]
    share = f" ({bad / total:.2%})" if total else ""
    return result.success, f"{bad:,} of {total:,} records unexpected{share}", ids


def run_gates(
    runner: GateRunner,
    point: str,
    gates: list[ResolvedGate],
    lf: pl.LazyFrame,
    summaries: dict[str, dict],
    pii_stages: list[str],
    load_content: Callable,
    withhold: bool = False,
) -> dict:
    """Check every rule of `gates` at one point; a JSON-able summary for the manifest and report.
    `withhold` (a point before the pipeline's pii stage): no example ids or values are kept, since
    they are not redacted yet."""
    started = time.perf_counter()
    rules: list[tuple[ResolvedGate, GateRule]] = [(g, r) for g in gates for r in g.rules.expectations]
    only = [r for _, r in rules]
    runner.warm()  # if the run did not already: GX imports beside the measuring (polars releases the GIL)
    schema = lf.collect_schema()
    records = records_frame(lf, only)
    metrics, names = dataset_frame(records, only, summaries, pii_stages, load_content)
    types = schema_frame(schema)
    frames = {
        "schema": (types, pl.DataFrame({k: [v] for k, v in types.items()})),
        "records": (None, records),
        "dataset": (metrics, pl.DataFrame({k: [v] for k, v in metrics.items()}, strict=False)),
    }
    found = [(g, c) for g, r in rules for c in checks(r, names)]
    out = []
    for frame, (values, df) in frames.items():
        mine = [(g, c) for g, c in found if c.frame == frame]
        if not mine:
            continue
        where = ", ".join(sorted({str(g.rules_path) for g, _ in mine}))
        results = runner.validate(f"{point}.{frame}", df.to_pandas(), [c for _, c in mine], where, withhold)
        for (g, c), res in zip(mine, results):
            ok, observed, examples = _observed(
                c, res, records if frame == "records" and not withhold else None, values or {}
            )
            out.append(
                {
                    "rule": c.rule,
                    "source": g.source,
                    "severity": c.severity,
                    "frame": frame,
                    "expectation": res.expectation_config.type,
                    "column": c.kwargs.get("column"),
                    "expected": c.says,
                    "observed": observed,
                    "status": "pass" if ok else c.severity,
                    "examples": examples,
                }
            )
    pii_hits = {c[4:]: int((records[c] > 0).sum()) for c in records.columns if c.startswith("pii:")}
    return {
        "point": point,
        "rules": sorted({str(g.rules_path) for g in gates}),
        "rows": records.height,
        "checks": out,
        "metrics": metrics,
        "pii_pattern_records": pii_hits,
        "counts": {s: sum(1 for x in out if x["status"] == s) for s in ("pass", "warn", "fail")},
        "seconds": round(time.perf_counter() - started, 3),
    }


def failures(results: list[dict]) -> list[dict]:
    return [dict(c, point=r["point"]) for r in results for c in r["checks"] if c["status"] == "fail"]
