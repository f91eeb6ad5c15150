"""Split decontamination on real instruction data (issue 34): what it drops wrongly, what it catches, the
rules before the issue beside today's.

Data (../shared/data, read in place): Code Alpaca (2,017 records), GPTeacher role-play (1,923), the
Self-Instruct seed tasks (175) and user-oriented instructions (252; each with its first instance). The
eval sets are the benchmarks' questions: MT-bench (80, two turns each), vicuna_bench (80) and
Arena-Hard v0.1 (500).

- before: `curate.ngrams`, `curate/stages/split.py` and rules/split/default.yaml as of commit
  OLD_COMMIT, loaded from git: a pair leaks when its shared 13-grams are >= 10% of the shorter text's
  13-grams, numbers read as one token with no other condition, eval turns joined into one text;
- after: the code and rules as checked out (coverage of the held-out text, number-blind matches only for
  prompts of >= min_words words and n-grams of mostly words, short eval items looked for whole);
- after, ngram 8: the same with Tülu 3's 8-grams, the alternative the rules file mentions.

Measured, each version side by side:
1. False drops. Each set runs dedup then split with the shipped default rules (80/10/10, the three
   eval sets), as a pipeline does. Every drop is listed with its text and the text it matched (before
   the issue no reason named it: the partner shown is the held-out record or eval item it shares the
   most n-grams with) and judged by a person in bench/results/decontam_labels.json: "right" when the
   two are one task (a copy, a paraphrase, the same task with other names, or an answer that holds the
   other's whole), "wrong" when they are different tasks that share a template whose numbers are the
   task, a role, an input (a table, a class definition) or an idiom. False-drop rate = wrong drops /
   records split. A drop without a label is counted as unlabelled, never as right.
2. Recall on eval copies. Each eval item (MT-bench's first turn, vicuna's and Arena-Hard's question) is
   planted in the four sets together (4,367 records) as a user turn with a real record's answer:
   verbatim; with every standalone number changed; reworded (a lead-in, the case, the punctuation and
   the spacing changed); wrapped in a sentence before and after; numbers changed and reworded or
   wrapped; one word swapped for another (not a done-when target: a changed word breaks every n-gram
   over it, so a short item is lost). A renumbered item whose prompt has fewer than min_words words is,
   by design, compared as written only: those are counted apart ("short"). The pipeline then runs
   (dedup, split); a copy is caught when split drops it.
3. Recall on held-out copies. COPIES records of each set (seeded) are copied with the same variants;
   each copy and its original get a label of their own so that with 50/50 sizes one lands in train and
   one in test (no dedup: it would group the two, which is its job); a pair is caught when the train one
   is dropped. Counted by direction (the copy in train: the case the issue names) and by the held-out
   record: whether its prompt has min_words words, whether it is as long as an n-gram.

Results: bench/results/decontam.json (every drop with both texts, the recall per variant and eval set,
the seconds split took).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
import types
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from bench.pii_common import REPO, commit
from curate.records import BASE_SCHEMA, comparison_texts, to_record
from curate.stages.dedup import DedupRules, DedupStage

DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
RESULT = RESULTS / "decontam.json"
LABELS = RESULTS / "decontam_labels.json"
OLD_COMMIT = "73acd1d"  # the last commit before issue 34 changed decontamination
SETS = [
    "real-sft/code_alpaca_2k.json",
    "real-sft/gpteacher_roleplay.json",
    "self-instruct/seed_tasks.jsonl",
    "self-instruct/user_oriented_instructions.jsonl",
]
EVALS = [
    ("fastchat-bench/mt_bench_question.jsonl", "turns"),
    ("fastchat-bench/vicuna_bench_question.jsonl", "turns"),
    ("arena-hard/question_v0.1.jsonl", "prompt"),
]
NUMBER = re.compile(r"\b\d+(?:[.,]\d+)*\b")  # what the number-blind pass reads as a number
SWAPS = {"write": "compose", "explain": "describe", "describe": "explain", "what": "which", "create": "make"}
SEED = 34
COPIES = 200
TEXT = 700  # characters of each text kept in the results


# --- data ---------------------------------------------------------------------------------------------
def _rows(rel: str) -> list[dict]:
    path = DATA / rel
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines() if line]


def real_set(rel: str) -> list[dict]:
    """A set's records as the reader makes them (a Self-Instruct task: its instruction and first instance)."""
    out = []
    for row, obj in enumerate(_rows(rel), start=1):
        if "instances" in obj:
            first = obj["instances"][0]
            obj = {"instruction": obj["instruction"], "input": first.get("input", ""), "output": first["output"]}
        record = to_record(obj, fmt="auto", fields={}, columns=[], default_source=None)
        out.append({**record, "id": f"{Path(rel).name}:{row}", "src_file": Path(rel).name, "src_row": row})
    return out


def frame(records: list[dict]) -> pl.DataFrame:
    schema = {**BASE_SCHEMA, "label": pl.Utf8}
    return pl.DataFrame(records, schema=schema, strict=False).with_columns(pl.col("label").fill_null("all"))


def eval_items() -> list[tuple[str, int, str]]:
    """(file, row, question): MT-bench's first turn, the others' one question."""
    items = []
    for rel, field in EVALS:
        for row, obj in enumerate(_rows(rel), start=1):
            value = obj[field]
            items.append((Path(rel).name, row, value[0] if isinstance(value, list) else value))
    return items


def renumbered(text: str, k: int) -> str:
    return NUMBER.sub(lambda m: str(int(re.sub(r"\D", "", m.group())) * 3 + k % 7 + 1), text)


def wrapped(text: str) -> str:
    body = text.strip().rstrip(".?!")
    return f"Please help me with the following task. {body[:1].lower()}{body[1:]}? Thanks in advance!"


def reworded(text: str) -> str:
    """Light rewording: a lead-in, the case, the punctuation and the spacing changed."""
    body = re.sub(r"[.?!]+$", "", text.strip())
    return "Question:  " + re.sub(r"([,;:])", r" \1", body[:1].lower() + body[1:]) + " ?"


def one_word(text: str) -> str:
    words = text.split(" ")
    at = next((j for j, w in enumerate(words) if j >= 2 and w.lower() in SWAPS), len(words) // 2)
    words[at] = SWAPS.get(words[at].lower(), "some")
    return " ".join(words)


EIGHT = "after, ngram 8"  # the same rules with Tülu 3's 8-grams: a measured alternative, not the default
VARIANTS = {
    "verbatim": lambda t, k: t,
    "numbers": renumbered,
    "reworded": lambda t, k: reworded(t),
    "numbers+reworded": lambda t, k: reworded(renumbered(t, k)),
    "wrapped": lambda t, k: wrapped(t),
    "numbers+wrapped": lambda t, k: wrapped(renumbered(t, k)),
    "one word": lambda t, k: one_word(t),
}


# --- the two versions of the stage ------------------------------------------------------------------
def _git(path: str) -> str:
    return subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:{path}"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


def old_version() -> tuple[types.ModuleType, types.ModuleType, dict]:
    """The stage module, its curate.ngrams and its default rules as of OLD_COMMIT, as modules of their own."""
    modules = {}
    for name, path in (("bench_old_ngrams", "curate/ngrams.py"), ("bench_old_split", "curate/stages/split.py")):
        module = types.ModuleType(name)
        sys.modules[name] = module  # pydantic resolves the models' annotations through it
        exec(
            compile(_git(path).replace("from curate.ngrams import", "from bench_old_ngrams import"), path, "exec"),
            module.__dict__,
        )
        modules[name] = module
    return modules["bench_old_split"], modules["bench_old_ngrams"], yaml.safe_load(_git("rules/split/default.yaml"))


class Version:
    def __init__(self, name: str, module, rules: dict, ngrams=None):
        self.name, self.module, self.rules, self.ngrams = name, module, rules, ngrams

    def split(self, df: pl.DataFrame, **changes) -> tuple[pl.DataFrame, float]:
        rules = json.loads(json.dumps(self.rules))
        rules["decontamination"]["eval_sets"] = [{"path": str(DATA / rel), "field": field} for rel, field in EVALS]
        for key, value in changes.items():
            rules[key] = {**rules[key], **value} if key == "decontamination" else value
        stage = self.module.SplitStage("split", self.module.SplitRules.model_validate(rules))
        stage.setup()
        start = time.perf_counter()
        out = stage.run(df).frame
        return out, time.perf_counter() - start


def versions() -> list[Version]:
    import curate.stages.split as new

    old, old_ngrams, old_rules = old_version()
    now = yaml.safe_load((REPO / "rules" / "split" / "default.yaml").read_text())
    eight = {**now, "decontamination": {**now["decontamination"], "ngram": 8}}
    return [Version("before", old, old_rules, old_ngrams), Version("after", new, now), Version(EIGHT, new, eight)]


def dedup(df: pl.DataFrame) -> pl.DataFrame:
    stage = DedupStage(
        "dedup", DedupRules.model_validate(yaml.safe_load((REPO / "rules/dedup/default.yaml").read_text()))
    )
    stage.setup()
    out = stage.process(df)
    return out.filter(pl.col("_action") == "keep").drop("_action", "_rule", "_reason")


# --- 1. false drops ---------------------------------------------------------------------------------
def _text(df: pl.DataFrame) -> list[str]:
    return comparison_texts(df, "conversation")


def _old_partner(version: Version, out: pl.DataFrame, row: dict) -> tuple[str | None, str | None]:
    """(name, text) of what an old drop most likely matched: among the held-out records or eval items its
    reason names, the one it shares the most n-grams with (the old reason names only the split or file)."""
    where = row["_reason"].rsplit(" with ", 1)[1]
    if where.endswith((".jsonl", ".json")):
        rel, field = next((r, f) for r, f in EVALS if Path(r).name == where)
        objs = _rows(rel)
        names = [f"{where} row {k}" for k in range(1, len(objs) + 1)]
        texts = ["\n".join(o[field]) if isinstance(o[field], list) else o[field] for o in objs]
    else:
        held = out.filter(pl.col("split") == where)
        names, texts = held["id"].to_list(), _text(held)
    mine = _text(pl.DataFrame([row], schema=out.schema))
    best = {}
    for hasher in version.ngrams.hashers(13, True):
        pairs, _, _ = version.ngrams.overlaps(hasher, texts, mine, np.array([0]), 0)
        for held_index, shared in pairs.select("held", "len").iter_rows():
            best[held_index] = max(best.get(held_index, 0), shared)
    if not best:
        return None, None
    k = max(best, key=best.get)
    return names[k], texts[k]


def _matched_text(out: pl.DataFrame, row: dict, items: dict) -> str | None:
    if row["matched_in"] in {Path(r).name for r, _ in EVALS}:
        return items.get((row["matched_in"], row["matched_row"]))
    held = out.filter(pl.col("id") == row["matched_id"])
    return _text(held)[0] if held.height else None


def false_drops(versions: list[Version], labels: dict) -> dict:
    items = {}
    for rel, field in EVALS:
        for row, obj in enumerate(_rows(rel), start=1):
            value = obj[field]
            items[(Path(rel).name, row)] = "\n\n".join(value) if isinstance(value, list) else value
    result = {}
    for rel in SETS:
        df = dedup(frame(real_set(rel)))
        name = Path(rel).name
        result[name] = {"records_split": df.height}
        for version in versions:
            out, seconds = version.split(df)
            drops = []
            for row in out.filter(pl.col("_action") == "drop").iter_rows(named=True):
                if version.name != "before":
                    matched = f"{row['matched_in']} record {row['matched_id']}"
                    if row["matched_in"] in {Path(r).name for r, _ in EVALS}:
                        matched = f"{row['matched_in']} row {row['matched_row']}"
                    theirs = _matched_text(out, row, items)
                else:
                    matched, theirs = _old_partner(version, out, row)
                label = labels.get((name, row["id"], matched), {})
                drops.append(
                    {
                        "dropped": row["id"],
                        "split": row["split"],
                        "reason": row["_reason"],
                        "matched": matched,
                        "label": label.get("label"),
                        "note": label.get("note"),
                        "dropped_text": _text(pl.DataFrame([row], schema=out.schema))[0][:TEXT],
                        "matched_text": (theirs or "")[:TEXT],
                    }
                )
            wrong = sum(d["label"] == "wrong" for d in drops)
            result[name][version.name] = {
                "dropped": len(drops),
                "right": sum(d["label"] == "right" for d in drops),
                "wrong": wrong,
                "unlabelled": sum(d["label"] is None for d in drops),
                "false_drop_rate": round(wrong / df.height, 5),
                "seconds": round(seconds, 2),
                "drops": drops,
            }
    for version in versions:
        total = {
            k: sum(result[Path(s).name][version.name][k] for s in SETS)
            for k in ("dropped", "right", "wrong", "unlabelled")
        }
        records = sum(result[Path(s).name]["records_split"] for s in SETS)
        result.setdefault("all", {"records_split": records})[version.name] = {
            **total,
            "false_drop_rate": round(total["wrong"] / records, 5),
        }
    return result


def read_labels() -> dict:
    if not LABELS.exists():
        return {}
    data = json.loads(LABELS.read_text())
    return {(x["set"], x["dropped"], x["matched"]): x for x in data["labels"]}


# --- 2. recall on eval copies -------------------------------------------------------------------------
def _words(text: str) -> int:
    from curate.normalize import Normalization

    return sum(t != "0" for t in Normalization(numbers=True).tokens([text])[0].to_list())


def eval_recall(versions: list[Version], min_words: int) -> dict:
    base = [r for rel in SETS for r in real_set(rel)]
    answers = [r["messages"][-1]["content"] for r in base]
    items = eval_items()
    result = {}
    for variant, change in VARIANTS.items():
        rng = random.Random(SEED)
        planted, kinds = [], {}
        for k, (file, row, question) in enumerate(items):
            copy = change(question, k)
            if variant.startswith("numbers") and renumbered(question, k) == question:
                continue  # no standalone number to change
            pid = f"copy:{file}:{row}"
            kinds[pid] = (
                file,
                "short" if variant.startswith("numbers") and _words(question) < min_words else "eligible",
            )
            planted.append(
                {
                    "id": pid,
                    "messages": [
                        {"role": "user", "content": copy},
                        {"role": "assistant", "content": rng.choice(answers)},
                    ],
                    "src_file": "planted",
                    "src_row": k + 1,
                }
            )
        df = dedup(frame(base + planted))
        result[variant] = {}
        for version in versions:
            out, _ = version.split(df)
            reached = out.filter(pl.col("src_file") == "planted")
            caught = set(reached.filter(pl.col("_action") == "drop")["id"])
            tally: dict = {}
            for pid in reached["id"]:
                file, kind = kinds[pid]
                for key in (f"{file} {kind}", f"all {kind}"):
                    t = tally.setdefault(key, {"planted": 0, "caught": 0, "missed": []})
                    t["planted"] += 1
                    t["caught"] += pid in caught
                    if pid not in caught and key.startswith("all"):
                        t["missed"].append(pid)
            result[variant][version.name] = dict(sorted(tally.items()))
    return result


# --- 3. recall on held-out copies ---------------------------------------------------------------------
def _held_kind(prompt: str, text: str, min_words: int, ngram: int) -> str:
    """The bucket of a held-out record: whether its prompt may match number-blind, whether it is as long
    as an n-gram (a shorter record is one n-gram: only its whole text, uninterrupted, matches)."""
    from curate.normalize import Normalization

    tokens = len(Normalization().tokens([text])[0])
    words = ">=" if _words(prompt) >= min_words else "<"
    return f"prompt {words} {min_words} words, {'>=' if tokens >= ngram else '<'} {ngram} tokens"


def heldout_recall(versions: list[Version], min_words: int, ngram: int) -> dict:
    """Per variant and version: pairs caught by direction (the copy in train: a held-out record copied
    into train, the case that must be caught; or the original in train) and kind of held-out record."""
    result: dict = {}
    for rel in SETS:
        records = real_set(rel)
        rng = random.Random(SEED)
        chosen = rng.sample(range(len(records)), min(COPIES, len(records)))
        for variant in ("numbers", "reworded", "numbers+reworded", "wrapped", "numbers+wrapped"):
            pairs, rows = [], [{**r, "label": "rest"} for r in records]
            for k in chosen:
                original = records[k]
                turns = original["messages"]
                prompt, answer = turns[0]["content"], turns[-1]["content"]
                if variant.startswith("numbers"):
                    if renumbered(prompt + answer, k) == prompt + answer:
                        continue
                    prompt, answer = renumbered(prompt, k), renumbered(answer, k)
                if variant.endswith("wrapped"):
                    prompt = wrapped(prompt)
                if variant.endswith("reworded"):
                    prompt = reworded(prompt)
                copy = {
                    "id": f"copy:{original['id']}",
                    "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                }
                rows[k] = {**rows[k], "label": f"pair{k}"}
                rows.append({**copy, "label": f"pair{k}", "src_file": "copy", "src_row": k + 1})
                pairs.append((original["id"], copy["id"]))
            df = frame(rows)
            texts = dict(zip(df["id"], _text(df)))
            prompts = dict(zip(df["id"], comparison_texts(df, "user_prompts")))
            for version in versions:
                out, _ = version.split(
                    df, group_by=[], sizes={"train": 0.5, "test": 0.5}, decontamination={"eval_sets": []}
                )
                split = dict(zip(out["id"], out["split"]))
                dropped = set(out.filter(pl.col("_action") == "drop")["id"])
                tally = result.setdefault(variant, {}).setdefault(version.name, {})
                for a, b in pairs:
                    if split[a] == split[b]:
                        continue
                    held = a if split[b] == "train" else b
                    direction = "copy in train" if split[b] == "train" else "original in train"
                    kind = _held_kind(prompts[held], texts[held], min_words, ngram)
                    for key in (f"{direction}: {kind}", f"{direction}: all"):
                        t = tally.setdefault(key, {"pairs": 0, "caught": 0})
                        t["pairs"] += 1
                        t["caught"] += a in dropped or b in dropped
    return {v: {w: dict(sorted(t.items())) for w, t in by.items()} for v, by in result.items()}


def summary(result: dict, names: list[str]) -> list[str]:
    """The results as lines to read: every version side by side."""
    lines = ["false drops (wrong / records split), each version: dropped, wrong, unlabelled"]
    for key, row in result["false_drops"].items():
        cells = [
            f"{row[v]['dropped']:3d} {row[v]['wrong']:2d} {row[v]['unlabelled']:2d} {row[v]['false_drop_rate']:.2%}"
            for v in names
        ]
        lines.append(f"  {key:34s} {row['records_split']:5d} | " + " | ".join(cells))
    lines.append("eval copies caught (all eval sets; short: renumbered items under min_words, compared as written)")
    for variant, by in result["eval_copies"].items():
        cells = [
            " ".join(f"{t['caught']}/{t['planted']} {k.split()[1]}" for k, t in by[v].items() if k.startswith("all "))
            for v in names
        ]
        lines.append(f"  {variant:18s} | " + " | ".join(cells))
    lines.append("held-out copies caught (held-out record copied into train; by the held-out record)")
    for variant, by in result["held_out_copies"].items():
        for key in sorted(k for k in by[names[-1]] if k.startswith("copy in train")):
            cells = [f"{by[v].get(key, {}).get('caught', 0)}/{by[v].get(key, {}).get('pairs', 0)}" for v in names]
            lines.append(f"  {variant:18s} {key[15:]:34s} | " + " | ".join(cells))
    return [lines[0] + f" ({' | '.join(names)})", *lines[1:]]


def main() -> None:
    both = versions()
    min_words = both[1].rules["decontamination"]["min_words"]
    labels = read_labels()
    started = time.perf_counter()
    result = {
        "benchmark": "split decontamination on real instruction data: false drops and recall, before and after",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(),
        "before": f"commit {OLD_COMMIT}: curate/ngrams.py, curate/stages/split.py, rules/split/default.yaml",
        "after": {"rules": both[1].rules["decontamination"] | {"eval_sets": [rel for rel, _ in EVALS]}},
        "labels": str(LABELS.relative_to(REPO)),
        "false_drops": false_drops(both, labels),
        "eval_copies": eval_recall(both, min_words),
        "held_out_copies": heldout_recall(both, min_words, both[1].rules["decontamination"]["ngram"]),
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    RESULT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    for line in summary(result, [v.name for v in both]):
        print(line)
    print(f"wrote {RESULT.relative_to(REPO)} in {result['seconds']} s")


if __name__ == "__main__":
    main()
