"""The `curate` command line: a thin layer over curate.engine, curate.catalog and curate.report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from curate.errors import AccountingError, CurateError
from curate.failures import ACCOUNTING, CONFIG, GATES, CurateGroup
from curate.train.cli import app as train_app

app = typer.Typer(
    cls=CurateGroup,
    help="Rules-driven dataset curation: run pipelines, inspect shards, render reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
shards_app = typer.Typer(
    help="Curated shard sets registered in the local catalog ($CURATE_HOME).", no_args_is_help=True
)
app.add_typer(shards_app, name="shards")
app.add_typer(train_app, name="train")  # also `python -m curate.train` and `make train`
console = Console(stderr=True)
out = Console()


def _fail(exc: CurateError) -> None:
    console.print(f"[bold red]error:[/] {_escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(ACCOUNTING if isinstance(exc, AccountingError) else CONFIG)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


class _RichProgress:
    def __init__(self, enabled: bool):
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.task = None

    def start(self, label: str, total: int | None) -> None:
        self.task = self.bar.add_task(label, total=total)

    def advance(self, rows: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, rows)

    def note(self, text: str) -> None:
        self.bar.console.print(f"[yellow]note:[/] {_escape(text)}", soft_wrap=True, highlight=False)

    def finish(self) -> None:
        if self.task is not None:
            task = self.bar.tasks[self.task]
            self.bar.update(self.task, total=task.completed)
            self.task = None


@app.command()
def run(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML file, e.g. pipelines/sft.yaml.")],
    input: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--input",
            "-i",
            help=(
                "Input file, directory or glob; replaces the pipeline's inputs (repeatable). Uses the first input's "
                "field mapping."
            ),
        ),
    ] = None,
    out_dir: Annotated[
        Optional[str],
        typer.Option(
            "--out",
            "-o",
            help=(
                "Output directory or URL, e.g. s3://bucket/shards/name (default: the pipeline's output.dir, else "
                "out/<name>; with --input, out/<name>)."
            ),
        ),
    ] = None,
    name: Annotated[
        Optional[str],
        typer.Option(
            "--name",
            "-n",
            help=(
                "Catalog name to register the shards under (default: the pipeline name; with --input, the first "
                "input's file name)."
            ),
        ),
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option(
            "--workers",
            "-w",
            min=1,
            help="Worker processes for row-local stages (default: the pipeline's workers, 'auto' = all cores).",
        ),
    ] = None,
    executor: Annotated[
        Optional[str],
        typer.Option(
            "--executor",
            "-x",
            help="'local' (processes on this machine) or 'ray' (a Ray cluster); default: the pipeline's executor.",
        ),
    ] = None,
    ray_address: Annotated[
        Optional[str],
        typer.Option(
            "--ray-address",
            help=(
                "Run on Ray at this address: 'local' (start one here), 'auto' (join this machine's cluster) or "
                "ray://host:10001. Implies --executor ray."
            ),
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Recompute even if an identical run already finished (ignores the cache and checkpoints)."
        ),
    ] = False,
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help=(
                "Also keep the published version in $CURATE_HOME/store (hard links), so deleting the output folder "
                "does not break shards:// references."
            ),
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Run a pipeline: read inputs, apply its stages, write shards + report, register in the catalog."""
    from curate.config import load_pipeline
    from curate.engine import Progress as EngineProgress
    from curate.engine import run_pipeline

    try:
        spec = load_pipeline(pipeline)
        bars = _RichProgress(enabled=not quiet)
        with bars.bar:
            result = run_pipeline(
                spec,
                inputs=[str(p) for p in input] if input else None,
                out_dir=out_dir,
                name=name,
                workers=workers,
                executor=executor,
                ray_address=ray_address,
                force=force,
                progress=EngineProgress(bars.start, bars.advance, bars.finish, bars.note),
            )
    except CurateError as exc:
        _fail(exc)
    if keep and result.entry and not result.failed_gates:
        from curate.catalog import Catalog

        try:
            _, dest, linked, copied = Catalog().keep(result.entry)
        except CurateError as exc:
            _fail(exc)
        console.print(f"kept in {dest} ({linked} hard links, {copied:,} bytes copied)", highlight=False)
    _summary(result)
    _gates(result.manifest.get("gates", []))
    if result.failed_gates:
        console.print(
            f"[bold red]gates failed:[/] {len(result.failed_gates)} expectation(s) with severity 'fail' did not pass; "
            f"the output is written to {_display(result.out_dir)} for inspection but the catalog marks "
            f"{result.manifest['name']}@{result.manifest['version']} failed, so no project can use it.",
            soft_wrap=True,
        )
        raise typer.Exit(GATES_FAILED)


GATES_FAILED = GATES


@app.command()
def init(
    data: Annotated[
        list[Path],
        typer.Argument(help="Input files, directories or globs to look at (JSONL, JSON, Parquet; .gz/.zst)."),
    ],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            help=(
                "Pipeline file to write (default: pipelines/<name>.yaml); its gates go beside it as <name>.gates.yaml."
            ),
        ),
    ] = None,
    task: Annotated[
        Optional[str],
        typer.Option("--task", "-t", help="sft | pretrain | classification | pairs (default: from the data)."),
    ] = None,
    name: Annotated[
        Optional[str], typer.Option("--name", "-n", help="Catalog name (default: the first input's file name).")
    ] = None,
    sample: Annotated[int, typer.Option(min=10, help="Rows to look at.")] = 5_000,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the pipeline and gates files if they exist.")
    ] = False,
) -> None:
    """Look at a sample of your data and write a pipeline (and gates) that fit it, printing each decision and why."""
    from collections import Counter

    from curate import onboard
    from curate.io.sources import name_from_inputs
    from curate.withheld import withheld

    inputs = [str(p) for p in data]
    try:
        target = output or Path("pipelines") / f"{name or name_from_inputs(inputs)}.yaml"
        gates = target.with_name(f"{target.name.removesuffix('.yaml').removesuffix('.yml')}.gates.yaml")
        onboard.check_targets((target, gates), force)  # before the (slow) look at the data
        with withheld(Counter()):  # library messages about the sample may quote its records
            ins = onboard.inspect(inputs, sample)
        plan = onboard.plan(
            ins, task=task, name=name, inputs=inputs, pipeline_dir=target.resolve().parent, gates_file=gates.name
        )
        onboard.write(plan, target, gates, force=force)
    except CurateError as exc:
        _fail(exc)
    table = Table(title=f"curate init: {plan.name} ({plan.task})", title_justify="left")
    for col in ("decision", "choice", "why"):
        table.add_column(col)
    for x in plan.decisions:
        table.add_row(x.what, _escape(x.choice), _escape(x.reason))
    out.print(table)
    out.print(f"wrote {_display(target)} and {_display(gates)}\nnext:  curate run {_display(target)}", highlight=False)


def _gates(results: list[dict]) -> None:
    """Each gate point's tally, then every check that did not pass: rule, expected, observed."""
    for r in results:
        c = r["counts"]
        out.print(
            f"gates ({r['point']}): {c['pass']} passed, {c['warn']} warned, {c['fail']} failed in {r['seconds']:.1f} s",
            highlight=False,
        )
        for x in r["checks"]:
            if x["status"] != "pass":
                mark = "[bold red]FAIL[/]" if x["status"] == "fail" else "[yellow]warn[/]"
                examples = f" (e.g. {', '.join(x['examples'][:3])})" if x["examples"] else ""
                out.print(
                    f"  {mark} {_escape(x['rule'])}: expected {_escape(x['expected'])}; observed "
                    f"{_escape(x['observed'])}" + _escape(examples),
                    soft_wrap=True,
                    highlight=False,
                )


def _display(path) -> str:
    """A path as short as possible: relative to the current directory when under it (URLs as they are)."""
    if isinstance(path, str):
        return path
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(Path.cwd()))
    except ValueError:
        return str(resolved)


def _summary(result) -> None:
    m = result.manifest
    title = f"{m['name']}@{m['version']}" + ("  (cache hit: nothing recomputed)" if result.cached else "")
    table = Table(title=title, title_justify="left")
    for col in ("stage", "rows in", "kept", "dropped", "quarantined", "seconds"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for a in m["accounting"]:
        table.add_row(
            a["stage"],
            f"{a['rows_in']:,}",
            f"{a['kept']:,}",
            f"{a['dropped']:,}",
            f"{a['quarantined']:,}",
            f"{a['seconds']:.1f}",
        )
    out.print(table)
    for a in m["accounting"]:
        if a["reasons"]:
            top = sorted(a["reasons"].items(), key=lambda kv: -kv[1])
            out.print(
                f"  {a['stage']}: " + ", ".join(f"{k} {v:,}" for k, v in top[:6]) + (", …" if len(top) > 6 else ""),
                highlight=False,
            )
        # input lines that are not records (blank lines, WARC requests), counted but not rows; and notes
        # about records that were kept (`noted:` kinds: a crawl page's charset label was wrong)
        for what, items in (
            ("skipped", [(k, v) for k, v in a.get("skipped", {}).items() if not k.startswith("noted:")]),
            (
                "noted",
                [(k.removeprefix("noted:"), v) for k, v in a.get("skipped", {}).items() if k.startswith("noted:")],
            ),
        ):
            if items:
                out.print(
                    f"  {a['stage']}: {what} " + ", ".join(f"{k} {v:,}" for k, v in sorted(items)), highlight=False
                )
    rows = m["rows"]
    out.print(
        f"input {rows['input']:,} → kept {rows['kept']:,}, dropped {rows['dropped']:,}, "
        f"quarantined {rows['quarantined']:,} in {result.seconds:.1f} s",
        highlight=False,
    )
    from curate.io.shards import join

    for what, item in (("shards", "data"), ("rejected", "rejected"), ("report", "report.html")):
        out.print(f"{what + ':':<9} {_display(join(result.out_dir, item))}", highlight=False)
    if result.entry:
        failed = "  (marked failed: its gates did not pass)" if result.entry.status != "ok" else ""
        out.print(f"catalog:  {result.entry.ref}{failed}", highlight=False)


@app.command()
def validate(pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML file to check.")]) -> None:
    """Check a pipeline, every rules and gates file it references, the files its stages name (eval sets,
    seed sets, lists) and that its inputs exist and can be read, without reading any data."""
    from curate.config import load_pipeline
    from curate.io.sources import check_inputs

    try:
        spec = load_pipeline(pipeline)
        check_inputs(spec)
    except CurateError as exc:
        _fail(exc)
    gates = ", ".join(f"{g.source} after {g.point}" for g in spec.gates)
    out.print(
        f"{pipeline}: ok — {len(spec.spec.inputs)} input(s), stages: {', '.join(s.name for s in spec.stages) or 'none'}"
        + (f"; gates: {gates}" if gates else ""),
        highlight=False,
    )


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the demo corpus files into.")],
    records: Annotated[int, typer.Option(min=1, help="Approximate number of records.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same bytes.")] = 13,
) -> None:
    """Write the embedded demo corpus as plain files, to look at or to adapt."""
    from curate.demo.generator import generate

    for path in generate(out_dir, records, seed):
        out.print(str(path))


@app.command()
def report(folder: Annotated[Path, typer.Argument(help="A run's output directory (holding report.json).")]) -> None:
    """Re-render report.html from report.json."""
    from curate.io.shards import read_json
    from curate.report.html import write_html

    source = folder / "report.json"
    if not source.is_file():
        _fail(CurateError(f"{source}: not found; is {folder} the output directory of a finished run?"))
    write_html(read_json(source), folder / "report.html")
    out.print(str(folder / "report.html"))


def _report_of(ref: str) -> tuple[dict, str]:
    """report.json of a run directory or of a catalog reference (failed versions included)."""
    from curate.catalog import Catalog
    from curate.io.shards import is_file, join, read_json_at

    folder = Path(ref)
    if not folder.is_dir():
        try:
            folder = Catalog().resolve(ref, allow_failed=True).path
        except CurateError as exc:
            _fail(CurateError(f"{ref}: not a run directory, and {exc}"))
    source = join(folder, "report.json")
    if not is_file(source):
        _fail(CurateError(f"{source}: not found; is {folder} the output directory of a finished run?"))
    return read_json_at(source), str(folder)


def _run_files(root, *folders: str) -> list[list]:
    """The Parquet files under each of `folders` (rejected/, data/) of a run folder: with a manifest, only
    the files it lists, each checked against its size and sha256 (a tampered or missing one is refused);
    without one (a folder curate did not finish publishing), every file found there, with a warning that
    nothing could be checked."""
    from curate.catalog import listed_files
    from curate.io.shards import check_manifest, join, list_files, read_manifest

    manifest = read_manifest(root)
    if manifest is None:
        console.print(
            f"[yellow]warning:[/] {_escape(str(join(root, 'manifest.json')))} is missing: the "
            f"{' and '.join(f'{f}/' for f in folders)} files are not checked against a manifest",
            soft_wrap=True,
        )
        return [list_files(root, folder, ".parquet") for folder in folders]
    check_manifest(manifest, join(root, "manifest.json"))
    label = f"{manifest.get('name')}@{manifest['version']}"
    return [
        [f for f in listed_files(root, manifest, folder, label) if str(f).endswith(".parquet")] for folder in folders
    ]


MATCH_CHARS = 2_000  # of each text `rejected --match` prints


@app.command()
def rejected(
    where: Annotated[str, typer.Argument(help="A run's output directory or a catalog ref (name@version).")],
    stage: Annotated[
        Optional[str], typer.Option("--stage", "-s", help="Only rows this stage rejected (read, quality, dedup, ...).")
    ] = None,
    rule: Annotated[
        Optional[str], typer.Option("--rule", "-r", help="Only rows rejected by this rule (e.g. gopher_min_words).")
    ] = None,
    export: Annotated[
        Optional[Path],
        typer.Option("--export", "-e", help="Write the rows, every column, to this .parquet or .jsonl file."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to print.")] = 20,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the --export file if it exists.")] = False,
    match: Annotated[
        bool,
        typer.Option(
            "--match",
            help="Print the texts: each record split decontamination dropped beside the record or eval item it "
            "matched (from the run's records or the eval file).",
        ),
    ] = False,
) -> None:
    """Rows a run rejected, from every stage in one table: stage, rule, where it came from, why (never the text,
    unless --match asks for the texts of contaminated records and what they matched)."""
    import polars as pl

    from curate.io.shards import join, location, read_parquet_at

    report, folder = _report_of(where)
    root = location(folder)
    try:
        (files,) = _run_files(root, "rejected")
    except CurateError as exc:
        _fail(exc)
    frame = read_parquet_at(files, None) if files else pl.DataFrame(schema={"stage": pl.Utf8, "rule": pl.Utf8})
    if stage:
        frame = frame.filter(pl.col("stage") == stage)
    if rule:
        frame = frame.filter(pl.col("rule") == rule)
    if export:
        from curate.io.outputs import export_rows

        try:
            export_rows(frame, export, force)
        except CurateError as exc:
            _fail(exc)
        out.print(f"wrote {frame.height:,} rows to {_display(export)}", highlight=False)
        return
    counts = frame.group_by("stage", "rule").len().sort("len", descending=True) if frame.height else frame
    out.print(
        f"{frame.height:,} rejected rows in {_display(join(root, 'rejected'))}"
        + "".join(f"; {s}/{r} {n:,}" for s, r, n in counts.head(8).iter_rows()),
        soft_wrap=True,
        highlight=False,
    )
    if match:
        _print_matches(report, root, frame, limit)
        return
    table = Table()
    for col in ("stage", "rule", "id", "file", "row", "reason"):
        table.add_column(col)
    for r in frame.head(limit).iter_rows(named=True):
        table.add_row(
            r["stage"],
            r["rule"],
            str(r.get("id")),
            str(r.get("src_file")),
            str(r.get("src_row")),
            _escape(str(r.get("reason"))),
        )
    out.print(table)


def _print_matches(report: dict, root, frame, limit: int) -> None:
    """`rejected --match`: the dropped record's text beside the text it matched, a row each."""
    import polars as pl

    from curate.catalog import Catalog
    from curate.records import comparison_texts
    from curate.stages.split import EvalSource, matched_texts

    rows = frame.filter(pl.col("matched_in").is_not_null()) if "matched_in" in frame.columns else frame.clear()
    if not rows.height:
        out.print("none of these rows names a record it matched (only split:contaminated rows do)", highlight=False)
        return
    rows = rows.head(limit)
    try:
        (data,) = _run_files(root, "data")
    except CurateError as exc:
        _fail(exc)

    def records(ids: list[str]) -> pl.DataFrame:
        found = [_records_by_id(data, ids), frame.filter(pl.col("id").is_in(ids))]
        return pl.concat(
            [f.select(c for c in ("id", "text", "messages") if c in f.columns) for f in found], how="diagonal_relaxed"
        )

    texts = []
    for (name,), part in rows.group_by("stage", maintain_order=True):
        sections = [s for s in report.get("splits", []) if s.get("stage") == name]
        sources = [EvalSource.model_validate(e) for s in sections for e in s.get("eval_sources", [])]
        found, notes = matched_texts(part, sources, records, Catalog().resolve)
        for note in notes:
            console.print(f"[yellow]warning:[/] {_escape(note)}", soft_wrap=True)
        texts += list(zip(part.iter_rows(named=True), comparison_texts(part, "conversation"), found))
    table = Table(show_lines=True)
    table.add_column("dropped", ratio=1)
    table.add_column("matched", ratio=1)
    for r, text, theirs in texts:
        source = f"{_escape(str(r.get('src_file')))} row {r.get('src_row')}"
        mine = f"[bold]{_escape(str(r['id']))}[/] ({r.get('split')}, {source})"
        them = _escape(str(r.get("reason")))  # names the matched record, its row and turn, and the coverage
        missing = "[italic](not found)[/]"
        table.add_row(f"{mine}\n\n{_clip(text)}", f"{them}\n\n{_clip(theirs) if theirs is not None else missing}")
    out.print(table)


def _clip(text: str) -> str:
    return _escape(text if len(text) <= MATCH_CHARS else text[:MATCH_CHARS] + " …")


def _records_by_id(files: list, ids: list[str]):
    """The id, text and messages of the records with these ids in Parquet files (local or at URLs), read
    a file at a time, only those columns."""
    import polars as pl

    from curate.io.shards import read_parquet_at

    found = []
    for f in files:
        schema = pl.read_parquet_schema(f) if isinstance(f, Path) else None
        columns = [c for c in ("id", "text", "messages") if schema is None or c in schema]
        found.append(read_parquet_at([f], columns).filter(pl.col("id").is_in(ids)))
    return pl.concat(found, how="diagonal_relaxed") if found else pl.DataFrame(schema={"id": pl.Utf8})


@app.command()
def export(
    ref: Annotated[
        str,
        typer.Argument(help="A catalog ref (name, name@version, shards://name@latest) or a run's output directory."),
    ],
    to: Annotated[str, typer.Option("--to", "-t", help="The trainer: llamafactory | axolotl | trl.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into: new or empty.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Write into a folder that is not empty, replacing only files an earlier `curate export` wrote there.",
        ),
    ] = False,
) -> None:
    """Write curated shards as the files LLaMA-Factory, Axolotl or TRL read: a JSON Lines file per kind of
    record and split, the trainer's config entries, and a README.md saying how to train."""
    from curate.export import export as run_export

    try:
        result = run_export(ref, to, out_dir, force=force)
    except CurateError as exc:
        _fail(exc)
    table = Table(title=f"{result.source.name}@{result.source.version} → {to}", title_justify="left")
    for col in ("file", "kind", "split", "shard rows", "written"):
        table.add_column(col, justify="right" if col in ("shard rows", "written") else "left")
    for p in result.parts:
        table.add_row(p.file, p.kind, p.split, f"{p.rows:,}", f"{p.written:,}")
    out.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {_escape(note)}", soft_wrap=True, highlight=False)
    out.print(
        f"wrote {', '.join(result.files)} to {_display(out_dir)}\nnext:  see {_display(out_dir / 'README.md')}",
        soft_wrap=True,
        highlight=False,
    )


def _change(x, y) -> str:
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return f"{x:,} → {y:,} ({y - x:+,})"
    return f"{x} → {y}"


@app.command()
def diff(
    a: Annotated[str, typer.Argument(help="Older version: a run directory or a catalog ref (name@version).")],
    b: Annotated[str, typer.Argument(help="Newer version: a run directory or a catalog ref.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the difference as JSON.")] = False,
) -> None:
    """What changed between two versions of a dataset: counts, distributions, gates, readiness, lineage."""
    import json

    from curate.report.diff import diff_reports

    (ra, pa), (rb, pb) = _report_of(a), _report_of(b)
    d = diff_reports(ra, rb)
    if as_json:
        print(json.dumps(d, indent=2, ensure_ascii=False))
        return
    out.print(
        f"[bold]A[/] {d['a']['name']}@{d['a']['version']} ({d['a']['status']}, {pa})\n"
        f"[bold]B[/] {d['b']['name']}@{d['b']['version']} ({d['b']['status']}, {pb})"
        + ("  — same data" if d["same_data"] else ""),
        highlight=False,
    )
    lin = d["lineage"]
    out.print(
        f"inputs changed: {', '.join(lin['inputs_changed']) or 'none'} · stage rules changed: "
        f"{', '.join(lin['stages_changed']) or 'none'} · code changed: {'yes' if lin['code_changed'] else 'no'}",
        highlight=False,
    )
    table = Table(title="counts and distributions", title_justify="left")
    for col in ("what", "key", "A → B"):
        table.add_column(col)
    for what in ("rows", "labels", "languages", "sources", "splits"):
        for c in d[what]:
            table.add_row(what, str(c["key"]), _change(c["a"], c["b"]))
    for s in d["stages"]:
        if "only_in" in s:
            table.add_row("stage", s["stage"], f"only in {s['only_in'].upper()}")
            continue
        for k in ("rows_in", "kept", "dropped", "quarantined"):
            if k in s:
                table.add_row(f"stage {s['stage']}", k, _change(s[k]["a"], s[k]["b"]))
        for r in s["reasons"]:
            table.add_row(f"stage {s['stage']}", f"reason {r['key']}", _change(r["a"], r["b"]))
    m = d["lengths"]["median_bucket"]
    if m["a"] != m["b"]:
        table.add_row("lengths", "median bucket", f"{m['a']} → {m['b']}")
    out.print(table if table.row_count else "counts and distributions: no change")
    for g in d["gates"]:
        sa = f"{g['a']['status']} ({g['a']['observed']})" if g["a"] else "absent"
        sb = f"{g['b']['status']} ({g['b']['observed']})" if g["b"] else "absent"
        out.print(
            f"gate {g['point']} · {_escape(g['rule'])}: {_escape(g['expected'])}: {_escape(sa)} → {_escape(sb)}",
            highlight=False,
        )
    for r in d["readiness"]:
        out.print(f"readiness · {r['question']} {r['a']} → {r['b']}", highlight=False)


def _entry(ref: str):
    from curate.catalog import Catalog

    try:
        return Catalog().resolve(ref)
    except CurateError as exc:
        _fail(exc)


@shards_app.command("list")
def shards_list() -> None:
    """List every registered shard set, with each place it was published and what that place holds now."""
    from curate.catalog import Catalog

    catalog = Catalog()
    table = Table()
    for col in ("name", "version", "rows", "status", "created", "locations"):
        table.add_column(col)
    gone = 0
    for e in catalog.entries():
        states = catalog.location_states(e)
        gone += sum(s == "gone" or s.startswith("replaced") for _, s in states)
        where = (
            "\n".join(
                f"{_escape(loc['path'])} ({s})" if s == "ok" else f"[red]{_escape(loc['path'])} ({s})[/]"
                for loc, s in states
            )
            or "[red](none)[/]"
        )
        table.add_row(e.name, e.version, f"{e.rows:,}", e.status, e.created, where)
    out.print(table)
    if gone:
        out.print(
            f"{gone} location(s) are gone or hold another version now; `curate shards gc` forgets them", highlight=False
        )


@shards_app.command("gc")
def shards_gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be forgotten.")] = False,
) -> None:
    """Forget locations that are gone or hold another version now (and versions left with none). Deletes no file."""
    from curate.catalog import Catalog

    forgotten = Catalog().gc(dry_run=dry_run)
    for ref, path, why in forgotten:
        out.print(
            f"{'would forget' if dry_run else 'forgot'} {ref} at {_escape(path)} ({why})",
            highlight=False,
            soft_wrap=True,
        )
    if not forgotten:
        out.print("nothing to forget: every recorded location still holds its version")


@shards_app.command("rm")
def shards_rm(
    ref: Annotated[str, typer.Argument(help="name@version (a unique version prefix is enough)")],
    files: Annotated[
        bool,
        typer.Option(
            "--files",
            help="Also delete the published files at every local location that "
            "still holds this version (files curate did not write are left).",
        ),
    ] = False,
) -> None:
    """Remove a version from the catalog; its files stay unless --files."""
    from curate.catalog import Catalog
    from curate.io.outputs import remove_published

    catalog = Catalog()
    try:
        entry = catalog.exact(ref)
        deleted = []
        if files:
            for loc, state in catalog.location_states(entry):
                if state == "gone" or state.startswith("replaced"):
                    continue
                if "://" in loc["path"]:
                    console.print(
                        f"[yellow]left[/] {_escape(loc['path'])}: deleting files on object storage is not supported; "
                        "remove them with your storage's tools",
                        soft_wrap=True,
                    )
                    continue
                left = remove_published(Path(loc["path"]), entry.version)
                deleted.append(loc["path"])
                if left:
                    out.print(
                        f"kept in {_escape(loc['path'])}: {_escape(', '.join(left[:5]))} (not written by curate)",
                        highlight=False,
                    )
        catalog.remove(entry)
    except CurateError as exc:
        _fail(exc)
    out.print(
        f"removed {entry.ref} from the catalog"
        + (
            f"; deleted its files in {', '.join(deleted)}"
            if deleted
            else ""
            if not files
            else "; no location held its files"
        )
        + ("" if files else "; its files are untouched"),
        highlight=False,
        soft_wrap=True,
    )


@shards_app.command("keep")
def shards_keep(ref: Annotated[str, typer.Argument(help="name, name@version or shards://name@version")]) -> None:
    """Keep a version in the catalog's own store ($CURATE_HOME/store, hard links where possible), so deleting
    its output folder does not break other projects' shards:// references."""
    from curate.catalog import Catalog

    catalog = Catalog()
    try:
        entry, dest, linked, copied = catalog.keep(catalog.resolve(ref, allow_failed=True))
    except CurateError as exc:
        _fail(exc)
    out.print(f"kept {entry.ref} in {dest}: {linked} file(s) hard-linked, {copied:,} bytes copied", highlight=False)


@shards_app.command("show")
def shards_show(ref: Annotated[str, typer.Argument(help="name, name@version or shards://name@latest")]) -> None:
    """Show a shard set's manifest summary: rows, schema, files, lineage."""
    entry = _entry(ref)
    m = entry.manifest()
    out.print(f"[bold]{entry.ref}[/]  status={m['status']}  created={m['created']}  path={entry.path}")
    out.print(f"rows: {m['rows']}")
    out.print("schema: " + ", ".join(f"{k}:{v}" for k, v in m["schema"].items()))
    out.print(f"pipeline: {m['pipeline']['path']} (stages: {', '.join(s['name'] for s in m['pipeline']['stages'])})")
    out.print("inputs: " + ", ".join(f"{i['file']} ({i['sha256'][:12]})" for i in m["inputs"]))
    out.print(f"files: {len(m['files'])} ({sum(f['bytes'] for f in m['files']):,} bytes)")


@shards_app.command("verify")
def shards_verify(ref: Annotated[str, typer.Argument(help="name, name@version or shards://name@version")]) -> None:
    """Re-hash every file against the manifest; exit 1 if anything is missing or modified."""
    entry = _entry(ref)
    try:
        problems = entry.verify()
    except CurateError as exc:
        _fail(exc)
    if problems:
        for p in problems:
            out.print(f"[red]{_escape(p)}[/]", soft_wrap=True)
        raise typer.Exit(1)
    out.print(f"{entry.ref}: ok ({len(entry.manifest()['files'])} files match the manifest)")


@shards_app.command("path")
def shards_path(ref: Annotated[str, typer.Argument(help="name, name@version or shards://name@version")]) -> None:
    """Print the directory holding a shard set (for scripts)."""
    print(_entry(ref).path)
