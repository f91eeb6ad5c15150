"""Precision of the shipped PII profiles on real data nobody here wrote (issue 33).

Every real set under ../shared/data (instruction, preference, tool-call and benchmark prompts) and the
OS's own text (Python's pydoc topics, Debian's HTML manuals, the Vietnamese UI strings of the OS's
message catalogs) is run through the `pii` stage with each shipped profile (rules/pii/default.yaml,
web.yaml, hipaa.yaml), the records' languages left for the stage to decide, as in the default pipelines
where pii runs before langid. None of these sets holds a private person's data on purpose (the labelled
presidio-research set, which does, measures recall: bench/pii_eval.py), so every change is a candidate
false positive — how many are is for a person to say, from the examples.

Measured per set and profile: records in, records the stage changed (any field differs) and their
share; the entity types written (redactions and records per type); the reason for each redaction: the
recognizer that produced it (spaCy NER, a named regex recognizer of the rules, a deny list, or a Presidio
predefined recognizer); the language the stage decided for each changed record; and a seeded sample of
changed spans (type, reason, the original span with 60 characters either side, the replacement) with
`label: null`, to be labelled "is this a private person's data?".

The reason is found without changing curate: the changed records are scanned again one at a time
(the NER memo makes that cheap) while every recognizer's results, which carry their `recognizer_name`,
are recorded; a redaction's reason is every recognizer that found its text as its type with a score
the rules keep (Presidio keeps one of identical results, an arbitrary one on a tie).
Results: bench/results/pii_precision.json.
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from urllib.parse import unquote_plus

import polars as pl

from bench.pii_common import REPO, commit
from bench.pii_eval import catalog_strings
from curate.records import SHAREGPT_ROLES, to_record

DATA = REPO.parent / "shared" / "data"
RESULT = REPO / "bench" / "results" / "pii_precision.json"
PROFILES = {name: REPO / "rules" / "pii" / f"{name}.yaml" for name in ("default", "web", "hipaa")}
MAX_RECORDS = 2000  # a larger set is sampled down to this many records (seeded)
MAX_CHARS = 20_000  # a longer manual page is cut at a line break before this many characters
EXAMPLES = 40
CONTEXT = 60
SEED = 33
MESSAGES = pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))
ROLES = {**SHAREGPT_ROLES, "function_call": "assistant"}  # glaive's tool calls are the assistant's


# --- inputs: each set as a list of records, {"messages": [...]} or {"text": ...} ------------------------
def _load(path) -> list[dict]:
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines() if line]


def _content(value) -> str:
    """A turn's content: a string, or a list of {type: text, value} parts (v1_dpo_demo)."""
    if isinstance(value, list):
        return "\n".join(p.get("value") or p.get("text") or "" for p in value if isinstance(p, dict))
    return value or ""


def chat(turns: list[dict]) -> list[dict]:
    """{role, content} turns from {role, content} or ShareGPT {from, value} ones."""
    out = []
    for t in turns:
        who = t.get("role") or t.get("from")
        out.append({"role": ROLES.get(who, "assistant"), "content": _content(t.get("content", t.get("value")))})
    return out


def alpaca(obj: dict) -> dict:
    """An instruction/input/output (or response) record, read as the reader reads it."""
    return {"messages": to_record(obj, fmt="auto", fields={}, columns=[], default_source=None)["messages"]}


def preference(obj: dict) -> dict:
    """A preference record: the prompt turns, then the chosen and the rejected answers (and a tool-call
    set's tool schemas as a system turn): one record holding every text of the source record."""
    if "chosen_messages" in obj:  # v1_dpo_demo: two whole chats sharing their prompt
        chosen, rejected = chat(obj["chosen_messages"]), chat(obj["rejected_messages"])
        return {"messages": chosen + [m for m in rejected if m["role"] == "assistant"]}
    turns = chat(obj.get("conversations") or obj.get("messages") or [])
    extra = [chat([obj[k]])[0] for k in ("chosen", "rejected") if isinstance(obj.get(k), dict)]
    tools = [{"role": "system", "content": obj["tools"]}] if obj.get("tools") else []
    return {"messages": tools + turns + extra}


def self_instruct(obj: dict) -> dict:
    """A task: its instruction with each instance's input, and the instance's output."""
    messages = []
    for inst in obj["instances"]:
        prompt = f"{obj['instruction']}\n\n{inst['input']}" if inst.get("input") else obj["instruction"]
        messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": inst["output"]}]
    return {"messages": messages}


def turns_of(role: str):
    """A benchmark record's `turns` (MT-bench, Vicuna) or `choices[0].turns` (reference answers)."""

    def build(obj: dict) -> dict:
        turns = obj["choices"][0]["turns"] if "choices" in obj else obj.get("turns") or [obj["prompt"]]
        return {"messages": [{"role": role, "content": t if isinstance(t, str) else t["content"]} for t in turns]}

    return build


FILES = {
    "real-sft/gpteacher_roleplay.json": alpaca,
    "real-sft/code_alpaca_2k.json": alpaca,
    "real-pref/dpo_en_demo.json": preference,
    "real-pref/dpo_zh_demo.json": preference,
    "real-pref/kto_en_demo.json": preference,
    "real-pref/glaive_toolcall_en_demo.json": preference,
    "real-pref/v1_dpo_demo.jsonl": preference,
    "self-instruct/seed_tasks.jsonl": self_instruct,
    "self-instruct/user_oriented_instructions.jsonl": self_instruct,
    "fastchat-bench/mt_bench_question.jsonl": turns_of("user"),
    "fastchat-bench/vicuna_bench_question.jsonl": turns_of("user"),
    "fastchat-bench/mt_bench_reference_answer_gpt-4.jsonl": turns_of("assistant"),
    "arena-hard/question_v0.1.jsonl": turns_of("user"),
}


def pydoc_topics() -> list[dict]:
    """Python's own help topics (pydoc_data.topics), each a text."""
    from pydoc_data.topics import topics

    return [{"text": topics[k]} for k in sorted(topics)]


def _cut(text: str, limit: int = MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: text.rfind("\n", 0, limit) + 1 or limit]


def manuals() -> list[dict]:
    """The text of the HTML manuals Debian packages install (tests/warcs.py's doc_files), one page a
    record, each cut to MAX_CHARS."""
    from resiliparse.extract.html2text import extract_plain_text

    from tests.warcs import doc_files

    pages = (extract_plain_text(p.read_text(errors="replace"), main_content=False) for p in doc_files())
    return [{"text": _cut(t)} for t in pages if t.strip()]


def vi_catalog_strings() -> list[dict]:
    """The Vietnamese UI strings of the OS's message catalogs (headers, which name translators, left
    out): the strings bench/pii_eval.py's os_catalogs samples from."""
    return [{"text": s} for s in catalog_strings()[1]]


def sets() -> dict[str, list[dict]]:
    """Every set's records, by name."""
    out = {path: [build(obj) for obj in _load(DATA / path)] for path, build in FILES.items()}
    out["os/pydoc_topics"] = pydoc_topics()
    out["os/debian_html_manuals"] = manuals()
    out["os/vi_locale_ui_strings"] = vi_catalog_strings()
    return out


def frame(name: str, records: list[dict]) -> pl.DataFrame:
    """The set as a frame of id, text and messages, sampled down to MAX_RECORDS (seeded)."""
    if len(records) > MAX_RECORDS:
        records = random.Random(SEED).sample(records, MAX_RECORDS)
    return pl.DataFrame(
        {
            "id": [f"{name.split('/')[-1].split('.')[0]}-{i:05d}" for i in range(len(records))],
            "text": [r.get("text") for r in records],
            "messages": [r.get("messages") for r in records],
        },
        schema_overrides={"text": pl.Utf8, "messages": MESSAGES},
    )


WHAT = {
    "real-sft/gpteacher_roleplay.json": "GPT-4 role-play prompts and answers (GPTeacher): fictional people and places",
    "real-sft/code_alpaca_2k.json": "short coding instructions with code answers (Code Alpaca)",
    "real-pref/dpo_en_demo.json": "English DPO pairs (LlamaFactory demo): prompt, chosen and rejected answers",
    "real-pref/dpo_zh_demo.json": "Chinese DPO pairs (LlamaFactory demo): prompt, chosen and rejected answers",
    "real-pref/kto_en_demo.json": "English KTO chats (LlamaFactory demo)",
    "real-pref/glaive_toolcall_en_demo.json": "tool-call chats with their tool schemas (glaive, LlamaFactory demo)",
    "real-pref/v1_dpo_demo.jsonl": "DPO pairs as two whole chats (LlamaFactory demo)",
    "self-instruct/seed_tasks.jsonl": "self-instruct's 175 seed tasks: instruction, input, output",
    "self-instruct/user_oriented_instructions.jsonl": "self-instruct's 252 user-oriented tasks",
    "fastchat-bench/mt_bench_question.jsonl": "MT-bench questions (two user turns)",
    "fastchat-bench/vicuna_bench_question.jsonl": "Vicuna-bench questions",
    "fastchat-bench/mt_bench_reference_answer_gpt-4.jsonl": "MT-bench GPT-4 reference answers (assistant turns)",
    "arena-hard/question_v0.1.jsonl": "Arena-Hard v0.1 prompts",
    "os/pydoc_topics": "Python's pydoc help topics (pydoc_data.topics), one topic a text",
    "os/debian_html_manuals": "Debian's HTML manuals under /usr/share/doc, text by resiliparse, one page a text",
    "os/vi_locale_ui_strings": "Vietnamese UI strings of /usr/share/locale/vi/LC_MESSAGES/*.mo, one a text",
}


# --- measuring --------------------------------------------------------------------------------------
def load_stage(path):
    from curate.schema import load_rules
    from curate.stages.pii import PiiRules, PiiStage

    stage = PiiStage("pii", PiiRules.model_validate(load_rules(path)))
    stage.setup()
    return stage


class Trace:
    """Wraps one set-up stage's analyser and anonymizer (instance attributes only: curate is unchanged)
    to record every recognizer's results (with their final score, before Presidio keeps one of each set
    of duplicates), the redactions the anonymizer writes (after its conflict resolution and merging, in
    the original text's offsets) and the languages the stage decides."""

    def __init__(self, stage):
        self.found: list[tuple[str, str, float, str]] = []  # (entity, matched text, score, recognizer)
        self.written: list[tuple[str, list[tuple[int, int, str, str]]]] = []  # (text, [(start, end, type, new)])
        self.langs: list[str | None] = []
        self.custom = {r.name for r in stage.rules.recognizers}
        self.thresholds = {e: r.threshold for e, r in stage.rules.entities.items()}
        presidio, anonymizer = stage.analyzer.presidio, stage.anonymizer
        enhance, operate, languages = presidio._enhance_using_context, anonymizer._operate, stage.scanner.languages

        def traced_enhance(text, *args, **kwargs):  # every recognizer's results, context applied
            results = enhance(text, *args, **kwargs)
            self.found += [
                (
                    r.entity_type,
                    text[r.start : r.end],
                    r.score,
                    (r.recognition_metadata or {}).get("recognizer_name") or "?",
                )
                for r in results
            ]
            return results

        def traced_operate(*args, **kwargs):
            result = operate(*args, **kwargs)
            spans = sorted(kwargs["pii_entities"], key=lambda e: e.start)  # one item per entity, same order
            items = sorted(result.items, key=lambda i: i.start)
            self.written.append(
                (kwargs["text"], [(e.start, e.end, e.entity_type, i.text) for e, i in zip(spans, items)])
            )
            return result

        def traced_languages(df, jobs):
            self.langs = languages(df, jobs)
            return self.langs

        presidio._enhance_using_context, anonymizer._operate = traced_enhance, traced_operate
        stage.scanner.languages = traced_languages  # what the stage's scan asks (curate.pii.scan)

    def reason(self, entity: str, value: str) -> str:
        """The recognizers behind a redaction: every one that found its text as its type with a score the
        rules keep (or found it where code, blanked out with spaces before the analysis, was not), else,
        for a merged span, an e-mail trimmed to its address or a URL part decoded, those inside it or
        holding it."""
        floor = self.thresholds.get(entity, 0.5)
        same = [(v, name) for e, v, score, name in self.found if e == entity and v and score >= floor]
        names = {name for v, name in same if _blanked(v, value)} or {
            name for v, name in same if v in value or value in v or v in unquote_plus(value)
        }
        return " + ".join(sorted(_reason(n, self.custom) for n in names)) or "unknown"


def _blanked(found: str, value: str) -> bool:
    """Whether `found` is `value` with some characters blanked out (curate.code.mask)."""
    return len(found) == len(value) and all(a == b or a == " " for a, b in zip(found, value))


def _reason(name: str, custom: set[str]) -> str:
    if name == "SpacyRecognizer":
        return "spaCy NER"
    if name in custom:
        return f"regex {name}"
    if name.startswith("deny_list_"):
        return "deny list"
    return f"presidio {name}"


def _kind(reason: str) -> str:
    """The kinds of recognizer behind a reason: spaCy NER, regex, deny list, presidio (joined where merged)."""
    kinds = ("spaCy NER", "regex", "deny list", "presidio", "unknown")
    return " + ".join(sorted({next(k for k in kinds if p.startswith(k)) for p in reason.split(" + ")}))


def _field(slot: tuple, df: pl.DataFrame, row: int) -> str:
    if slot[0] == "msg":
        return f"messages[{slot[1]}] ({df['messages'][row][slot[1]]['role']})"
    return slot[0]


def redactions(stage, trace: Trace, df: pl.DataFrame, rows: list[int], langs: list) -> list[dict]:
    """Every redaction the stage writes in the given records, with its reason: each record is scanned
    and redacted again on its own (the same spans: same rules, same language), Presidio's results traced."""
    out = []
    for row in rows:
        trace.found.clear()
        trace.written.clear()
        jobs, found, _, _ = stage.scan(df[row : row + 1], [langs[row]])
        for (_, slot, text), spans in zip(jobs, found):
            if slot[0] not in ("text", "msg") or isinstance(spans, Exception) or not spans:
                continue
            stage.redact(text, spans)
            for start, end, entity, new in trace.written[-1][1]:
                value = text[start:end]
                out.append(
                    {
                        "record": df["id"][row],
                        "field": _field(slot, df, row),
                        "lang": langs[row],
                        "entity": entity,
                        "reason": trace.reason(entity, value),
                        "before": text[max(0, start - CONTEXT) : start],
                        "span": value,
                        "after": text[end : end + CONTEXT],
                        "replacement": new,
                        "label": None,
                    }
                )
    return out


def changed_rows(df: pl.DataFrame, out: pl.DataFrame) -> list[int]:
    """Rows where any of the record's fields (id, text, messages) differs after the stage."""
    cols = ["id", "text", "messages"]
    return [i for i, (a, b) in enumerate(zip(df.select(cols).rows(), out.select(cols).rows())) if a != b]


def _top(counter: Counter) -> dict:
    return dict(counter.most_common())


def measure(stage, trace: Trace, df: pl.DataFrame) -> tuple[dict, list[dict]]:
    """One set through one profile: the figures, and every redaction traced."""
    start = time.perf_counter()
    out = stage.process(df)
    seconds = time.perf_counter() - start
    langs = trace.langs
    rows = changed_rows(df, out)
    found = redactions(stage, trace, df, rows, langs)
    types = out["pii_types"].to_list()
    by_reason, records_by_reason, by_kind = Counter(), defaultdict(set), Counter()
    entity_reason: dict[str, Counter] = defaultdict(Counter)
    for x in found:
        by_reason[x["reason"]] += 1
        records_by_reason[x["reason"]].add(x["record"])
        by_kind[_kind(x["reason"])] += 1
        entity_reason[x["entity"]][x["reason"]] += 1
    figures = {
        "records": df.height,
        "changed": len(rows),
        "changed_share": round(len(rows) / df.height, 4) if df.height else 0.0,
        "actions": dict(Counter(out["_action"].to_list())),
        "seconds": round(seconds, 2),
        "redactions": sum(stage.summary.entities.values()),
        "redactions_by_entity": _top(Counter(stage.summary.entities)),
        "records_by_entity": _top(Counter(t for ts in types for t in ts)),
        "redactions_by_reason": _top(by_reason),
        "records_by_reason": _top(Counter({k: len(v) for k, v in records_by_reason.items()})),
        "redactions_by_reason_kind": _top(by_kind),
        "redactions_by_entity_and_reason": {e: _top(c) for e, c in entity_reason.items()},
        "languages_all_records": _top(Counter(str(lang) for lang in langs)),
        "languages_changed_records": _top(Counter(str(langs[i]) for i in rows)),
        # the re-scan one record at a time found as many redactions as the stage wrote: reasons are complete
        "traced_redactions": len(found),
        "traced_matches_stage": len(found) == sum(stage.summary.entities.values()),
    }
    return figures, found


def examples(found: list[dict], n: int = EXAMPLES) -> list[dict]:
    """A seeded sample of a set's redactions under one profile, in record order."""
    picked = random.Random(SEED).sample(range(len(found)), min(n, len(found)))
    return [found[i] for i in sorted(picked)]


def main() -> dict:
    start = time.perf_counter()
    data = sets()
    frames = {name: frame(name, records) for name, records in data.items()}
    results: dict[str, dict] = {name: {} for name in frames}
    samples: dict[str, dict] = {name: {} for name in frames}
    for profile, path in PROFILES.items():
        stage = load_stage(path)
        trace = Trace(stage)
        for name, df in frames.items():
            figures, found = measure(stage, trace, df)
            results[name][profile] = figures
            samples[name][profile] = examples(found)
            print(f"{profile:8s} {name:55s} {figures['changed_share']:7.1%} {figures['seconds']:6.1f} s", flush=True)
    result = {
        "benchmark": "pii precision: what the shipped profiles change on real data nobody here wrote (issue 33)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "profiles": {p: str(path.relative_to(REPO)) for p, path in PROFILES.items()},
        "sampling": (
            f"A set of over {MAX_RECORDS:,} records is sampled to {MAX_RECORDS:,} (random.Random({SEED}).sample); "
            f"a manual page is cut at a line break before {MAX_CHARS:,} characters; languages are left to the stage"
        ),
        "reasons": (
            "the recognizer behind each redaction: 'spaCy NER' (the NER model), 'regex <name>' (a recognizer of "
            "the rules), 'deny list', 'presidio <Recognizer>' (a Presidio predefined recognizer); joined with ' + ' "
            "where several found the span (score at or above the entity's threshold) or the anonymizer merged spans"
        ),
        "sets": {
            name: {
                "what": WHAT[name],
                "records_available": len(data[name]),
                "records": frames[name].height,
                "sampled": frames[name].height < len(data[name]),
            }
            for name in frames
        },
        "results": results,
        "examples": samples,
        "seconds": round(time.perf_counter() - start, 1),
    }
    RESULT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


if __name__ == "__main__":
    main()
