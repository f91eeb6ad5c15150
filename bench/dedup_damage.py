"""What near-dedup drops wrongly and what it still catches, on real instruction data, old default beside new.

Data, read in place (never copied): ../shared/data/real-pref/glaive_toolcall_en_demo.json (300 tool-use
conversations in LLaMA-Factory's sharegpt layout; its `function_call` turns are the assistant's), read
twice: as published (tool schemas in their own field, which the reader keeps in `meta`) and with the
schemas as a system turn, the way glaive-function-calling-v2 and most tool sets write them;
real-sft/code_alpaca_2k.json and real-sft/gpteacher_roleplay.json (alpaca layouts, read by curate's
reader mapping); self-instruct/seed_tasks.jsonl and user_oriented_instructions.jsonl (one record per
instance: instruction and input, output).

Variants of the dedup stage (everything else as rules/dedup/default.yaml):
- old default: `chat_text: user_prompts`, `min_shingles: 1`, `short_ngram: 0` (the default before issue 34);
- conversation: `chat_text: conversation`, `min_shingles: 1`, `short_ngram: 0` (pipelines/pretrain.yaml, `curate init`
  for data it does not call SFT);
- new default: rules/dedup/default.yaml as shipped (`prompt_and_answer`, `min_shingles: 45`, `short_ngram: 2`).

Measured per set and variant:
1. Drops on the set as it is. Each dropped record and the record it duplicates is a pair, classed
   by the script when the two are the same conversation after normalisation (`identical`) or the same
   conversation under another system prompt (`other system prompt`), else read and labelled by hand in
   bench/results/dedup_damage_labels.json (`right` / `wrong`, and why; `--unlabelled` prints the pairs
   without a label, `--sample` caps how many of a set's pairs need one). False drops: pairs labelled
   wrong, as a share of the set's records (a sample's share scaled to every drop of its kind).
2. Planted near copies (recall): a seeded sample of records is appended again with one small edit
   (whitespace, punctuation, case; one word replaced, in records of at least 100 words); caught =
   dropped into its original's cluster. The one-word edits are also counted by where the word fell.
3. Planted different records (false drops): the same passage with another task (a record's input under
   another record's instruction and answer; once with a short answer), and the same tool called with
   other arguments (glaive: one argument value of a call replaced all through the conversation, schemas
   as a system turn); wrongly dropped = dropped into its source's cluster.

Results: bench/results/dedup_damage.json.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import xxhash
import yaml

from bench.pii_common import commit
from curate.normalize import Normalization
from curate.records import BASE_SCHEMA, SHAREGPT_ROLES, to_record
from curate.stages.dedup import DedupRules, DedupStage, is_tool_call

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULT = REPO / "bench" / "results" / "dedup_damage.json"
LABELS = REPO / "bench" / "results" / "dedup_damage_labels.json"
ROLES = {**SHAREGPT_ROLES, "function_call": "assistant"}  # glaive's tool calls are the assistant's turns
GLAIVE_SYSTEM = "You are a helpful assistant with access to the following functions. Use them if required -\n"
VARIANTS = {
    "old default": {"chat_text": "user_prompts", "min_shingles": 1, "short_ngram": 0},
    "conversation": {"chat_text": "conversation", "min_shingles": 1, "short_ngram": 0},
    "new default": {},
}
SAMPLE = 40  # dropped pairs of a set and variant read by hand, at most (seeded sample)
PLANTED = 150  # records of a set given a planted copy, per kind of edit
LONG_WORDS = 100  # a record this long (words outside system turns) gets one-word edits
SEED = 34
NORM = Normalization()
_WORD = re.compile(r"\w+")


# --- the sets, as records {"messages": [...]} ----------------------------------------------------------
def _json(path: Path) -> list[dict]:
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines() if line]


def glaive(schemas_as_system: bool) -> list[dict]:
    out = []
    for obj in _json(DATA / "real-pref" / "glaive_toolcall_en_demo.json"):
        turns = [{"role": ROLES[t["from"]], "content": t["value"]} for t in obj["conversations"]]
        if schemas_as_system and obj.get("tools") not in (None, "", "[]"):
            turns.insert(0, {"role": "system", "content": GLAIVE_SYSTEM + obj["tools"]})
        out.append({"messages": turns})
    return out


def alpaca(name: str) -> list[dict]:
    records = (to_record(o, fmt="auto", fields={}, columns=[], default_source=None) for o in _json(DATA / name))
    return [{"messages": r["messages"]} for r in records]


def self_instruct(name: str) -> list[dict]:
    out = []
    for obj in _json(DATA / "self-instruct" / name):
        for inst in obj["instances"]:
            prompt = f"{obj['instruction']}\n\n{inst['input']}" if inst.get("input") else obj["instruction"]
            out.append(
                {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": inst["output"]}]}
            )
    return out


SETS = {
    "glaive_toolcall (schemas in meta)": lambda: glaive(False),
    "glaive_toolcall (schemas as system)": lambda: glaive(True),
    "code_alpaca_2k": lambda: alpaca("real-sft/code_alpaca_2k.json"),
    "gpteacher_roleplay": lambda: alpaca("real-sft/gpteacher_roleplay.json"),
    "self-instruct seed_tasks": lambda: self_instruct("seed_tasks.jsonl"),
    "self-instruct user_oriented": lambda: self_instruct("user_oriented_instructions.jsonl"),
}


def frame(records: list[dict], prefix: str = "s") -> pl.DataFrame:
    rows = [{"id": f"{prefix}{i}", "text": None, "messages": r["messages"]} for i, r in enumerate(records)]
    return pl.DataFrame(rows, schema={k: BASE_SCHEMA[k] for k in ("id", "text", "messages")}, orient="row")


def dedup(df: pl.DataFrame, variant: str) -> pl.DataFrame:
    rules = yaml.safe_load((REPO / "rules" / "dedup" / "default.yaml").read_text()) | VARIANTS[variant]
    stage = DedupStage("dedup", DedupRules.model_validate(rules))
    stage.setup()
    return stage.process(df)


# --- 1. drops on the set as it is ---------------------------------------------------------------------
def _dialogue(record: dict) -> list[tuple[str, str]]:
    return [(m["role"], NORM.texts([m["content"]])[0]) for m in record["messages"] if m["role"] != "system"]


def pair_class(a: dict, b: dict) -> str | None:
    """`identical`, `other system prompt`, or None: to be read."""
    if _dialogue(a) != _dialogue(b):
        return None
    system = [[m["content"] for m in r["messages"] if m["role"] == "system"] for r in (a, b)]
    return "identical" if system[0] == system[1] else "other system prompt"


def pair_key(name: str, dropped: int, kept: int) -> str:
    return f"{name}: {dropped} dup of {kept}"


def digest(a: dict, b: dict) -> str:
    """Of both records' turns: a label whose records changed no longer applies."""
    return xxhash.xxh3_64_hexdigest(json.dumps([a["messages"], b["messages"]], ensure_ascii=False).encode())[:12]


def drops(name: str, records: list[dict], variant: str, labels: dict) -> dict:
    out = dedup(frame(records), variant)
    dropped = out.filter(pl.col("_action") == "drop")
    pairs = [(int(i[1:]), int(d[1:]), rule) for i, d, rule in dropped.select("id", "dup_of", "_rule").iter_rows()]
    classes, to_read = Counter(), []
    for i, j, rule in pairs:
        kind = pair_class(records[i], records[j])
        if kind:
            classes[f"{rule}: {kind}"] += 1
        else:
            to_read.append((i, j, rule))
    sample = random.Random(f"{SEED}{name}{variant}").sample(to_read, min(SAMPLE, len(to_read)))
    verdict, unlabelled = Counter(), []
    for i, j, rule in sample:
        label = labels.get(pair_key(name, i, j))
        if label is None or label["digest"] != digest(records[i], records[j]):
            unlabelled.append((i, j, rule))
            continue
        verdict[label["label"]] += 1
    read = verdict["right"] + verdict["wrong"]
    wrong = round(verdict["wrong"] * len(to_read) / read) if read else None
    return {
        "records": len(records),
        "dropped": len(pairs),
        "by_rule": dict(Counter(rule for _, _, rule in pairs)),
        "same_conversation": dict(classes),
        "read": len(to_read),
        "labelled": dict(verdict),
        "unlabelled": len(unlabelled),
        "false_drops": wrong,
        "false_drop_rate": round(wrong / len(records), 4) if wrong is not None else (0.0 if not to_read else None),
        "_unlabelled": unlabelled,
    }


# --- 2. planted near copies ---------------------------------------------------------------------------
def _turn_words(record: dict, prose: bool) -> list[tuple[int, int]]:
    """(turn, word index) of every word outside system turns (`prose`: in user and assistant turns
    that are not tool calls: a changed call or tool result is another record, not a near copy)."""
    return [
        (t, k)
        for t, m in enumerate(record["messages"])
        if m["role"] != "system" and not (prose and (m["role"] == "tool" or is_tool_call(m["content"])))
        for k in range(len(m["content"].split(" ")))
    ]


def _edit_turn(record: dict, turn: int, edit) -> dict:
    messages = [dict(m) for m in record["messages"]]
    messages[turn]["content"] = edit(messages[turn]["content"])
    return {"messages": messages}


def near_copy(record: dict, kind: str, rng: random.Random) -> tuple[dict, str]:
    """The record with one small edit of `kind`, and where it fell (the role of the turn edited)."""
    turn, k = rng.choice(_turn_words(record, kind == "one word"))
    role = record["messages"][turn]["role"]

    def at(f):
        def edit(content: str) -> str:
            words = content.split(" ")
            words[k] = f(words[k])
            return " ".join(words)

        return edit

    edits = {
        "whitespace": at(lambda w: w + rng.choice(["  ", "\n", "\t"])),
        "punctuation": at(lambda w: w.rstrip(".,;:!?") if w[-1:] in ".,;:!?" else w + ","),
        "case": at(lambda w: w.upper() if w.lower() == w else w.lower()),
        "one word": at(lambda w: "zebra" if w.lower() != "zebra" else "giraffe"),
    }
    return _edit_turn(record, turn, edits[kind]), role


def _words(record: dict) -> int:
    return sum(len(_WORD.findall(m["content"])) for m in record["messages"] if m["role"] != "system")


def recall(name: str, records: list[dict], variant: str) -> dict:
    out = {}
    for kind in ("whitespace", "punctuation", "case", "one word"):
        pool = [i for i, r in enumerate(records) if kind != "one word" or _words(r) >= LONG_WORDS]
        rng = random.Random(f"{SEED}{name}{kind}")
        chosen = rng.sample(pool, min(PLANTED, len(pool)))
        copies = [near_copy(records[i], kind, rng) for i in chosen]
        caught = _caught(records, chosen, [c for c, _ in copies], variant)
        entry = {"planted": len(chosen), "caught": sum(caught)}
        if kind == "one word":
            by_role = Counter()
            for (_, role), hit in zip(copies, caught):
                by_role[f"{role}: {'caught' if hit else 'missed'}"] += 1
            entry["by_turn"] = dict(sorted(by_role.items()))
        out[kind] = entry
    return out


def _caught(records: list[dict], sources: list[int], planted: list[dict], variant: str) -> list[bool]:
    """For each planted record (appended after the set), whether it was dropped into its source's cluster."""
    df = pl.concat([frame(records), frame(planted, "p")])
    out = dedup(df, variant)
    cluster = dict(zip(out["id"].to_list(), out["dup_cluster"].to_list()))
    action = dict(zip(out["id"].to_list(), out["_action"].to_list()))
    return [
        action[f"p{k}"] == "drop" and cluster[f"p{k}"] is not None and cluster[f"p{k}"] == cluster[f"s{i}"]
        for k, i in enumerate(sources)
    ]


# --- 3. planted different records ---------------------------------------------------------------------
def other_task(records: list[dict], short: bool, rng: random.Random) -> tuple[list[int], list[dict]]:
    """Records whose prompt is an instruction and a passage of 30+ words, each planted again with
    another record's instruction and answer over the same passage (`short`: an answer of a few words)."""
    split = [
        (i, r["messages"][0]["content"].split("\n\n", 1))
        for i, r in enumerate(records)
        if len(r["messages"]) == 2 and "\n\n" in r["messages"][0]["content"]
    ]
    with_passage = [(i, parts) for i, parts in split if len(parts[1].split()) >= 30]
    donors = [r for r in records if len(r["messages"]) == 2 and "\n\n" not in r["messages"][0]["content"]]
    answers = ["Yes.", "No.", "Positive", "Three.", "The second one.", "Negative", "2019"]
    sources, planted = [], []
    for i, (_, passage) in rng.sample(with_passage, min(PLANTED, len(with_passage))):
        donor = rng.choice(donors)["messages"]
        answer = rng.choice(answers) if short else donor[1]["content"]
        planted.append(
            {
                "messages": [
                    {"role": "user", "content": f"{donor[0]['content']}\n\n{passage}"},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
        sources.append(i)
    return sources, planted


_VALUE = re.compile(r'"\w+":\s*("[A-Za-z][^"]{2,}"|\d{2,})')


def other_arguments(records: list[dict], rng: random.Random) -> tuple[list[int], list[dict]]:
    """Records with a tool call, each planted again with one argument value (a word of 3+ letters or a
    number of 2+ digits) replaced in every turn: the same request about another city, amount, date."""
    sources, planted = [], []
    for i, r in enumerate(records):
        calls = [m["content"] for m in r["messages"] if m["role"] == "assistant" and is_tool_call(m["content"])]
        values = [v for c in calls for v in _VALUE.findall(c.split('"arguments"', 1)[-1])]
        if not values:
            continue
        value = rng.choice(values).strip('"')
        other = str(int(value) + 7) if value.isdigit() else "Springfield"
        messages = [
            {**m, "content": m["content"].replace(value, other) if m["role"] != "system" else m["content"]}
            for m in r["messages"]
        ]
        sources.append(i)
        planted.append({"messages": messages})
    return sources, planted


def false_drops(name: str, records: list[dict], variant: str) -> dict:
    rng = random.Random(f"{SEED}{name}")
    cases = {}
    if name.startswith("glaive") and "system" in name:
        cases["same tool, other arguments"] = other_arguments(records, rng)
    elif not name.startswith("glaive"):
        cases["same passage, other task"] = other_task(records, False, rng)
        cases["same passage, other task, short answer"] = other_task(records, True, rng)
    out = {}
    for kind, (sources, planted) in cases.items():
        if sources:
            wrong = _caught(records, sources, planted, variant)
            out[kind] = {"planted": len(sources), "dropped": sum(wrong)}
    return out


# --- report -------------------------------------------------------------------------------------------
def _table(results: dict) -> str:
    lines = [
        "| set | records | variant | dropped (exact / near) | same conversation | read: wrong / right | false drops | "
        "planted copies caught (ws / punct / case / one word) | planted different records dropped |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, by_variant in results["sets"].items():
        for variant, r in by_variant.items():
            d, rec = r["drops"], r["recall"]
            rules = d["by_rule"]
            same = sum(d["same_conversation"].values())
            lab = d["labelled"]
            rate = "–" if d["false_drop_rate"] is None else f"{d['false_drops'] or 0} ({d['false_drop_rate']:.1%})"
            caught = " / ".join(
                f"{rec[k]['caught']}/{rec[k]['planted']}" for k in ("whitespace", "punctuation", "case", "one word")
            )
            neg = "; ".join(f"{k}: {v['dropped']}/{v['planted']}" for k, v in r["different"].items()) or "–"
            lines.append(
                f"| {name} | {d['records']:,} | {variant} | {d['dropped']} ({rules.get('exact_duplicate', 0)} / "
                f"{rules.get('near_duplicate', 0)}) | {same} | {lab.get('wrong', 0)} / {lab.get('right', 0)}"
                f"{' (+' + str(d['unlabelled']) + ' unread)' if d['unlabelled'] else ''} | {rate} | {caught} | {neg} |"
            )
    return "\n".join(lines)


def _show(name: str, records: list[dict], i: int, j: int, rule: str) -> None:
    print(f"\n===== {pair_key(name, i, j)} ({rule}) digest {digest(records[i], records[j])}")
    for tag, r in (("DROPPED", records[i]), ("KEPT", records[j])):
        for m in r["messages"]:
            print(f"  {tag} {m['role']}: {m['content'][:400]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unlabelled", action="store_true", help="print the sampled pairs without a label")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"no data at {DATA}")
    labels = json.loads(LABELS.read_text()) if LABELS.is_file() else {}
    results = {"sets": {}}
    for name, load in SETS.items():
        records = load()
        results["sets"][name] = {}
        for variant in VARIANTS:
            d = drops(name, records, variant, labels)
            for i, j, rule in d.pop("_unlabelled"):
                if args.unlabelled:
                    _show(name, records, i, j, rule)
            results["sets"][name][variant] = {
                "drops": d,
                "recall": recall(name, records, variant),
                "different": false_drops(name, records, variant),
            }
    results.update(
        commit=commit(),
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        settings={"sample": SAMPLE, "planted": PLANTED, "long_words": LONG_WORDS, "seed": SEED, "variants": VARIANTS},
        table=_table(results),
    )
    if not args.unlabelled:
        RESULT.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print(results["table"])


if __name__ == "__main__":
    main()
