"""Hostile input and misuse (issue 37): each case run through the `curate` command line with this code and,
side by side in the same run, with the code before the issue (a git worktree of BASELINE), on files built
from the machine's own pages (Debian's HTML manuals, Python's reference text).

Each case records, for both codes: the exit status, the seconds, whether the user's files are intact,
how many pages were read of how many the input holds, and whether a planted address (an e-mail) was
written anywhere (the output folder, the catalog, the terminal). A case passes when this code does what
the issue asks. Results: bench/results/hostile.json (and the README table of bench/results).

    python -m bench.hostile                 # every case, both codes
    python -m bench.hostile --only crawl    # cases whose name holds 'crawl'
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
BASELINE = "8f11c0b"  # the last commit before issue 37
SECRET = "maria.lopez@posteo.net"  # planted in URLs and records: must be written nowhere
CAP_S = 240  # the bound for the whole hostile crawl; a baseline run over it is stopped there


@dataclass
class Outcome:
    exit: int | None  # None: stopped at the time cap
    seconds: float
    lines: int  # lines printed (stdout and stderr)
    traceback: bool
    leaked: bool  # SECRET printed
    facts: dict = field(default_factory=dict)


def cli(code: Path, args: list[str], cwd: Path, home: Path, cap: float = CAP_S, interrupt_after: float | None = None):
    """`curate ARGS` with the code at `code`, in its own process group; Ctrl-C sent after `interrupt_after`."""
    env = {**os.environ, "PYTHONPATH": str(code), "CURATE_HOME": str(home), "COLUMNS": "200"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from curate.cli import app; app()", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if interrupt_after is not None:
        try:
            proc.wait(interrupt_after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)
            started = time.monotonic()  # seconds from the interrupt to the exit
    try:
        output, _ = proc.communicate(timeout=cap)
        code_ = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        code_ = None
    text = output.decode(errors="replace")
    return Outcome(
        exit=code_,
        seconds=round(time.monotonic() - started, 1),
        lines=len([x for x in text.replace("\r", "\n").splitlines() if x.strip()]),
        traceback="Traceback" in text,
        leaked=SECRET in text,
    ), text


def written_anywhere(*folders: Path, needle: str = SECRET) -> bool:
    """Whether `needle` is in any file under the folders, Parquet columns read as text."""
    import polars as pl

    for folder in folders:
        for path in folder.rglob("*") if folder.exists() else []:
            if not path.is_file() or path.is_symlink():
                continue
            if path.suffix == ".parquet":
                frame = pl.read_parquet(path)
                if any(needle in str(v) for c in frame.columns for v in frame[c].to_list() if v is not None):
                    return True
            elif needle.encode() in path.read_bytes():
                return True
    return False


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def victim(folder: Path) -> dict[str, bytes]:
    (folder / "photos" / "2026").mkdir(parents=True)
    (folder / "photos" / "2026" / "a.jpg").write_bytes(b"\xff\xd8 a photo")
    (folder / "notes.txt").write_text("mine")
    return tree(folder)


# --- inputs built from the machine's own pages ---------------------------------------------------------
def reference_text(chars: int) -> str:
    from pydoc_data.topics import topics

    text = "\n\n".join(topics.values())
    return (text * (chars // len(text) + 1))[:chars]


def hostile_pages() -> list:
    """A page of over a million characters, one of 100,000 nested <div>s, one whose URL holds an e-mail."""
    from html import escape

    from tests.warcs import Rec, doc_pages

    paragraphs = "".join(f"<p>{escape(p)}</p>" for p in reference_text(1_200_000).split("\n\n"))
    nested = "<html><body>" + "<div>" * 100_000 + "deep" + "</div>" * 100_000 + "</body></html>"
    url, body = doc_pages(1)[0]
    return [
        Rec("https://books.example/python-reference.html", f"<html><body>{paragraphs}</body></html>".encode()),
        Rec("https://hostile.example/nested.html", nested.encode()),
        Rec(f"https://clinic.example/profile.html?email={SECRET}&id=7", body),
    ]


def crawl(folder: Path, pages: int, hostile: bool = True, junk: bool = True) -> tuple[Path, int]:
    """A .warc.gz of `pages` manual pages (and the hostile ones), junk after its last gzip member."""
    from tests.warcs import Rec, doc_pages, write_warc

    records = [Rec(u, b) for u, b in doc_pages(pages)]
    if hostile:
        extra = hostile_pages()
        records = records[: pages // 2] + extra + records[pages // 2 :]
    path = write_warc(folder / "crawl.warc.gz", records)
    if junk:
        with open(path, "ab") as fh:
            fh.write(b"\n-- written by a broken uploader --\n" + bytes(range(256)) * 16)
    return path, len(records)


def rows(out: Path) -> dict:
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").is_file() else None
    if manifest is None:
        return {"published": False}
    read = manifest["accounting"][0]
    return {"published": True, "rows_in": manifest["rows"]["input"], "read_reasons": read["reasons"]}


# --- the cases -----------------------------------------------------------------------------------------
def case_crawl_held_out(code: Path, scratch: Path) -> Outcome:
    """The issue's held-out case: a `_work` link to a user folder; a page of over a million characters;
    junk after the last gzip member; an e-mail in a page URL; 100,000 nested <div>s beside normal pages."""
    home, user = scratch / "home", scratch / "user"
    before = victim(user)
    (scratch / "first").mkdir()
    small, _ = crawl(scratch / "first", pages=8, hostile=False, junk=False)
    warc, records = crawl(scratch, pages=120)
    out = scratch / "out"
    first, _ = cli(
        code, ["run", str(code / "pipelines/commoncrawl.yaml"), "-i", str(small), "-o", str(out), "-q"], scratch, home
    )
    (out / "_work").symlink_to(user, target_is_directory=True)  # where the earlier run kept its work
    outcome, text = cli(
        code,
        ["run", str(code / "pipelines/commoncrawl.yaml"), "-i", str(warc), "-o", str(out), "-q", "--force"],
        scratch,
        home,
    )
    outcome.leaked |= written_anywhere(out, home)
    outcome.facts = {
        "pages_in_the_crawl": records,
        **rows(out),
        "user_files_intact": tree(user) == before,
        "first_run_exit": first.exit,
    }
    return outcome


def case_big_document(code: Path, scratch: Path) -> Outcome:
    """A JSONL document of 1.2 million characters among Python's reference topics (pretrain.yaml, pii default)."""
    from pydoc_data.topics import topics

    with open(scratch / "in.jsonl", "w") as fh:
        for key, value in list(topics.items())[:40]:
            fh.write(json.dumps({"id": key, "text": value}) + "\n")
        fh.write(json.dumps({"id": "book", "text": reference_text(1_200_000)}) + "\n")
    out = scratch / "out"
    outcome, _ = cli(
        code,
        ["run", str(code / "pipelines/pretrain.yaml"), "-i", str(scratch / "in.jsonl"), "-o", str(out), "-q"],
        scratch,
        scratch / "home",
    )
    outcome.facts = {"records": 41, **rows(out)}
    return outcome


PAGE = 22  # the record damaged: the 11th page (records: warcinfo, then a request and a response per page)


def damage_cases() -> dict:
    """name -> (gzip, the damage, how many pages a reader that loses nothing it can read keeps of 40)."""
    from tests.warcs import damage_crc, edit_record, set_header, shift_length, warc_records

    def cut_in_header(data: bytes) -> bytes:
        return data[: data.index(b"WARC/1.", len(data) // 2) + 40]

    def before_the_cut(data: bytes) -> int:
        cut = len(cut_in_header(data))
        return sum(b"WARC-Type: response" in data[a:b] for a, b in warc_records(data) if b <= cut)

    def page(edit):
        return lambda gz: lambda d: edit_record(d, PAGE, edit, gz)

    all_, one_less = (lambda d: 40), (lambda d: 39)
    return {
        "junk after the last member": (True, lambda d: d + b"\n-- junk --\n" + bytes(range(256)) * 8, all_),
        "garbage between members": (True, lambda d: _between(d, b"\x00garbage\xff" * 50), all_),
        "one CRC-damaged member": (True, lambda d: damage_crc(d, PAGE), one_less),
        "a page with no WARC-Target-URI": (
            True,
            page(lambda r: set_header(r, "WARC-Target-URI", None))(True),
            one_less,
        ),
        "Content-Length 100 too long": (False, page(lambda r: shift_length(r, 100))(False), one_less),
        "Content-Length 100 too short": (False, page(lambda r: shift_length(r, -100))(False), one_less),
        "plain .warc cut inside a header": (False, cut_in_header, before_the_cut),
    }


def _between(data: bytes, junk: bytes) -> bytes:
    from tests.warcs import gzip_members

    at = gzip_members(data)[PAGE][1]
    return data[:at] + junk + data[at:]


def case_damaged_warcs(code: Path, scratch: Path) -> list[tuple[str, Outcome]]:
    """Each kind of damage in a crawl of 40 pages (request records between them): pages read."""
    from tests.warcs import Rec, doc_pages, write_warc

    pages = [Rec(u, b) for u, b in doc_pages(40)]
    pipeline = scratch / "read.yaml"
    pipeline.write_text(
        json.dumps({"name": "read", "inputs": [{"path": "x.warc"}], "stages": [], "sensitivity": False})
    )
    found = []
    for name, (gz, damage, whole) in damage_cases().items():
        folder = scratch / name.replace(" ", "-").replace(".", "")
        folder.mkdir()
        clean = write_warc(folder / ("clean.warc.gz" if gz else "clean.warc"), pages)
        bad = folder / ("bad.warc.gz" if gz else "bad.warc")
        bad.write_bytes(damage(clean.read_bytes()))
        out = folder / "out"
        outcome, text = cli(code, ["run", str(pipeline), "-i", str(bad), "-o", str(out), "-q"], folder, folder / "home")
        outcome.facts = {"pages_in_the_crawl": len(pages), **rows(out), "whole_pages": whole(clean.read_bytes())}
        if outcome.facts.get("published"):
            import polars as pl

            outcome.facts["pages_read"] = pl.read_parquet(sorted((out / "data").glob("*.parquet"))).height
        found.append((f"damaged WARC: {name}", outcome))
    return found


def case_catalog_race(code: Path, scratch: Path) -> Outcome:
    """2 processes x 150 registrations of one version at different folders, started together: locations kept."""
    script = (
        "import sys, time\nfrom pathlib import Path\nfrom curate.catalog import Catalog\n"
        "c = Catalog()\ntime.sleep(max(0.0, float(sys.argv[2]) - time.time()))\nfor i in range(150):\n"
        "    c.register(Path(f'/data/{sys.argv[1]}/{i}'), {'name': 'race', 'version': 'abcdef12', "
        "'created': '2026-12-07T00:00:00+00:00', 'status': 'ok', 'rows': {'kept': 1}})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(code), "CURATE_HOME": str(scratch / "home")}
    start_at = str(time.time() + 8)  # both have imported curate by then: their writes overlap
    procs = [
        # cwd: the scratch folder, so `-c` finds `code`'s curate, not the one in the current directory
        subprocess.Popen([sys.executable, "-c", script, w, start_at], cwd=scratch, env=env, stderr=subprocess.PIPE)
        for w in "ab"
    ]
    errors = [p.communicate()[1].decode() for p in procs]
    entry = scratch / "home" / "catalog" / "race" / "abcdef12.json"
    kept = len(json.loads(entry.read_text())["locations"]) if entry.is_file() else 0
    return Outcome(
        exit=max(p.returncode for p in procs),
        seconds=round(time.time() - float(start_at), 1),
        lines=sum(len(e.splitlines()) for e in errors),
        traceback=any("Traceback" in e for e in errors),
        leaked=False,
        facts={"registrations": 300, "kept": kept},
    )


def case_ctrl_c(code: Path, scratch: Path) -> Outcome:
    """Ctrl-C (SIGINT to the process group) 15 s into the demo pipeline with 2 workers."""
    outcome, text = cli(
        code,
        ["run", str(code / "pipelines/demo.yaml"), "-o", str(scratch / "out"), "-w", "2"],
        scratch,
        scratch / "home",
        interrupt_after=15,
    )
    outcome.facts = {"last_line": text.replace("\r", "\n").strip().splitlines()[-1][:160] if text.strip() else ""}
    return outcome


def case_disk_full(code: Path, scratch: Path) -> Outcome | None:
    """The output folder on a 24 MB tmpfs filling up during a run of the demo pipeline (root only)."""
    mount = scratch / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24M", "tmpfs", str(mount)], capture_output=True).returncode:
        return None
    try:
        outcome, text = cli(
            code, ["run", str(code / "pipelines/demo.yaml"), "-o", str(mount / "out")], scratch, scratch / "home"
        )
        outcome.facts = {"last_line": text.replace("\r", "\n").strip().splitlines()[-1][:160] if text.strip() else ""}
        return outcome
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def case_alias_bomb(code: Path, scratch: Path) -> Outcome:
    """`curate validate` of a pipeline of ~700 bytes whose YAML aliases, under a key that takes any value
    (ray.runtime_env), expand to 10^9 strings."""
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i, name in enumerate("bcdefghi"):
        lines.append(f"{name}: &{name} [{','.join(['*' + 'abcdefghi'[i]] * 10)}]")
    anchors = "\n".join("    " + line for line in lines)
    (scratch / "bomb.yaml").write_text(f"name: bomb\ninputs: [{{path: x.jsonl}}]\nray:\n  runtime_env:\n{anchors}\n")
    (scratch / "x.jsonl").write_text(json.dumps({"text": "a record"}) + "\n")
    outcome, _ = cli(code, ["validate", str(scratch / "bomb.yaml")], scratch, scratch / "home", cap=60)
    outcome.facts = {"bytes": (scratch / "bomb.yaml").stat().st_size}
    return outcome


def case_rm_outside(code: Path, scratch: Path) -> Outcome:
    """`curate shards rm NAME@V --files` where the manifest lists ../victim.txt and an absolute path."""
    home = scratch / "home"
    (scratch / "in.jsonl").write_text(
        "".join(json.dumps({"id": f"r{i}", "text": f"Record {i} about budgets."}) + "\n" for i in range(20))
    )
    pipeline = scratch / "p.yaml"
    pipeline.write_text(
        json.dumps({"name": "rm", "inputs": [{"path": "in.jsonl"}], "stages": [{"stage": "normalize"}]})
    )
    cli(code, ["run", str(pipeline), "-o", str(scratch / "out"), "-q"], scratch, home)
    (scratch / "victim.txt").write_text("mine")
    (scratch / "victim2.txt").write_text("mine too")
    manifest = json.loads((scratch / "out" / "manifest.json").read_text())
    manifest["files"] += [
        {"path": "../victim.txt", "bytes": 4, "sha256": "0" * 64},
        {"path": str(scratch / "victim2.txt"), "bytes": 8, "sha256": "0" * 64},
    ]
    (scratch / "out" / "manifest.json").write_text(json.dumps(manifest))
    outcome, _ = cli(code, ["shards", "rm", f"rm@{manifest['version']}", "--files"], scratch, home)
    outcome.facts = {"user_files_intact": (scratch / "victim.txt").exists() and (scratch / "victim2.txt").exists()}
    return outcome


def case_export_link(code: Path, scratch: Path) -> Outcome:
    """`curate rejected OUT --export rows.jsonl` where rows.jsonl is a dangling link to another folder."""
    home = scratch / "home"
    (scratch / "in.jsonl").write_text("not json\n" + json.dumps({"id": "a", "text": "A record."}) + "\n")
    pipeline = scratch / "p.yaml"
    pipeline.write_text(json.dumps({"name": "ex", "inputs": [{"path": "in.jsonl"}], "stages": []}))
    cli(code, ["run", str(pipeline), "-o", str(scratch / "out"), "-q"], scratch, home)
    (scratch / "elsewhere").mkdir()
    (scratch / "rows.jsonl").symlink_to(scratch / "elsewhere" / "planted.jsonl")
    outcome, _ = cli(code, ["rejected", str(scratch / "out"), "--export", str(scratch / "rows.jsonl")], scratch, home)
    outcome.facts = {"written_through_the_link": (scratch / "elsewhere" / "planted.jsonl").exists()}
    return outcome


CASES = {
    "crawl held-out": case_crawl_held_out,
    "big document": case_big_document,
    "catalog race": case_catalog_race,
    "ctrl-c": case_ctrl_c,
    "disk full": case_disk_full,
    "alias bomb": case_alias_bomb,
    "shards rm outside": case_rm_outside,
    "export through a link": case_export_link,
}


def limits_cost(pages: int = 244) -> dict:
    """What the per-record limits cost on normal input, side by side in one process: the extract stage
    (pages in a sandbox process, each under the time limit) vs the same engine called in-process on the
    same manual pages; the pii stage (default rules, a deadline per record) vs the same with no limit."""
    import polars as pl

    from curate.schema import load_rules
    from curate.stages.base import StageContext
    from curate.stages.extract import ExtractRules, ExtractStage, main_text
    from curate.stages.pii import PiiRules, PiiStage
    from tests.warcs import doc_pages

    html = [b.decode("utf-8", "replace") for _, b in doc_pages(pages)]
    frame = pl.DataFrame({"id": [f"p{i}" for i in range(len(html))], "text": html})
    stage = ExtractStage("extract", ExtractRules.model_validate(load_rules(REPO / "rules/extract/default.yaml")))
    stage.setup()
    stage.run(frame.head(2))  # the sandbox's start is a one-off per worker, not per page
    from pydoc_data.topics import topics

    texts = pl.DataFrame({"id": list(topics), "text": list(topics.values())})
    rules = PiiRules.model_validate(load_rules(REPO / "rules/pii/default.yaml"))
    piis = {}
    for label, seconds in (("pii, deadline per record", 20.0), ("pii, no limit", None)):
        piis[label] = PiiStage("pii", rules, StageContext(record_seconds=seconds))
        piis[label].setup()
        piis[label].run(texts.head(5))
    runs = {
        "extract, sandbox + time limit": lambda: stage.run(frame),
        "extract, engine in-process": lambda: [main_text(page, **stage.options) for page in html],
        **{label: (lambda p=p: p.run(texts)) for label, p in piis.items()},
    }
    out: dict[str, float] = {}
    for _ in range(3):  # best of 3, the variants taking turns
        for label, fn in runs.items():
            start = time.perf_counter()
            fn()
            out[label] = min(out.get(label, float("inf")), time.perf_counter() - start)
    stage.sandbox.close()
    return {
        "pages": len(html),
        "pii_records": texts.height,
        "seconds": {k: round(v, 3) for k, v in out.items()},
        "extract_ratio": round(out["extract, sandbox + time limit"] / out["extract, engine in-process"], 3),
        "pii_ratio": round(out["pii, deadline per record"] / out["pii, no limit"], 3),
    }


def passed(name: str, o: Outcome) -> bool:
    """What the issue asks of this code, per case."""
    f = o.facts
    if name == "crawl held-out":
        accounted = f.get("rows_in") == f.get("pages_in_the_crawl") + 1  # + the corrupt_bytes row of the junk
        return o.exit == 0 and f["user_files_intact"] and accounted and not o.leaked and o.seconds <= CAP_S
    if name == "big document":
        return o.exit == 0 and f.get("rows_in") == f["records"]
    if name.startswith("damaged WARC"):
        said = f.get("rows_in", 0) >= f.get("pages_read", 0) + 1  # the damage is a row, with its reason
        return o.exit == 0 and f.get("pages_read") == f["whole_pages"] and said and not o.traceback
    if name == "catalog race":
        return o.exit == 0 and f["kept"] == f["registrations"]
    if name == "ctrl-c":
        return o.exit == 130 and o.lines <= 3 and not o.traceback and o.seconds <= 10
    if name == "disk full":
        return o.exit == 5 and not o.traceback
    if name == "alias bomb":
        return o.exit == 2 and o.seconds <= 10
    if name == "shards rm outside":
        return f["user_files_intact"]
    if name == "export through a link":
        return not f["written_through_the_link"]
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="run the cases whose name holds this")
    parser.add_argument("--baseline", default=BASELINE, help="the code to compare with (a commit)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    results = []
    with tempfile.TemporaryDirectory(prefix="curate-hostile-") as tmp:
        scratch = Path(tmp)
        old = scratch / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), args.baseline], cwd=REPO, check=True, capture_output=True
        )
        try:
            cases = {**CASES, "damaged WARCs": case_damaged_warcs}
            for name, case in cases.items():
                if args.only and args.only not in name:
                    continue
                pair = {}
                for label, code in (("baseline", old), ("this code", REPO)):
                    folder = scratch / f"{name}-{label}".replace(" ", "-")
                    folder.mkdir()
                    got = case(code, folder)
                    for sub, outcome in got if isinstance(got, list) else [(name, got)]:
                        pair.setdefault(sub, {})[label] = outcome
                for sub, both in pair.items():
                    if both.get("this code") is None:
                        continue
                    results.append(
                        {
                            "case": sub,
                            "baseline": asdict(both["baseline"]) if both.get("baseline") else None,
                            "this_code": asdict(both["this code"]),
                            "passed": passed(sub, both["this code"]),
                            "baseline_passed": passed(sub, both["baseline"]) if both.get("baseline") else None,
                        }
                    )
                    print(sub, "passed" if results[-1]["passed"] else "FAILED", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO, check=False)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "hostile.json"
    previous = json.loads(path.read_text())["cases"] if path.is_file() and args.only else []
    kept = [r for r in previous if r["case"] not in {x["case"] for x in results}]
    cost = limits_cost() if not args.only or "cost" in args.only else None
    if cost is None and path.is_file():
        cost = json.loads(path.read_text()).get("limits_cost")
    report = {
        "benchmark": "hostile input and misuse (issue 37)",
        "limits_cost": cost,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "baseline": args.baseline,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "cases": kept + results,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{sum(r['passed'] for r in report['cases'])} of {len(report['cases'])} cases passed; {path}")


if __name__ == "__main__":
    main()
