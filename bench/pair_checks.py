"""Preference-pair checks (curate.pairs, issue 36) on real DPO data: what each check flags, what the
near-identical check must catch and must leave alone, the token dry run checked against TRL itself, and
the length bias.

Data (../shared/data/real-pref, read in place): LLaMA-Factory's dpo_en_demo.json and dpo_zh_demo.json,
300 sharegpt ranking pairs each, turned into the canonical shape by `canonical` below (the reader's job;
this bench does not depend on it). Strata: lang (the file), turns (single or multi-turn prompt), system
(the prompt opens with a system turn: the Orca-style records).

Measured:
1. Text checks: counts per reason code, per set.
2. Near-identical sides, both ways. Leave alone: the real pairs (none is a formatting-only pair), the
   most similar real pairs by character ratio with what differs (read by a person: READ below), and
   minimal edits of each real chosen answer (one number changed, one word changed, the last sentence
   dropped: a legitimate preference each) — flagged by the check, and by a character-ratio threshold
   for comparison. Catch: formatting-only variants of each real chosen answer (case and end
   punctuation, markdown emphasis, full-width/half-width punctuation, spacing).
3. Token dry run with the shared Qwen2 tokenizer and ChatML, max_length 1024 (TRL's default) and 2048,
   keep_start and keep_end; every per-pair finding compared with what TRL 1.x's own tokenisation
   (`_tokenize` with the ChatML template the trainer installs) and DataCollatorForPreference produce,
   on the real pairs and on planted ones (`planted_token_pairs`: an answer opening with a newline, and
   the TRL trap: sides that differ only after the whole chosen answer).
4. Length bias in tokens, words and characters, overall and per stratum, the Simpson check, and the
   length-matched subset.

Results: bench/results/pair_checks.json.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import time
from datetime import datetime, timezone

import numpy as np
import polars as pl

from bench.pii_common import REPO, commit
from curate.pairs import (
    SPACING,
    check_pairs,
    format_key,
    length_bias,
    length_matched,
    pair_summary,
    pair_tokens,
    side_lengths,
    token_issues,
)

DATA = REPO.parent / "shared" / "data"
RESULT = REPO / "bench" / "results" / "pair_checks.json"
SETS = {"en": "real-pref/dpo_en_demo.json", "zh": "real-pref/dpo_zh_demo.json"}
TOKENIZER = DATA / "qwen2-tokenizer"
ROLES = {"system": "system", "human": "user", "gpt": "assistant", "observation": "tool", "function_call": "assistant"}
RATIOS = (0.8, 0.9, 0.95, 0.98)
TOP = 10
TEXT = 300
# What a person read in the most similar real pairs (character ratio of the whitespace-normalised sides).
READ = {
    "en-43": "translation; rejected drops 'in Gorazde' (the town) and lower-cases 'Eastern': a real error",
    "zh-134": "translation of 'I actually did'; rejected drops 真 ('actually'): less faithful",
    "en-64": "the same arithmetic; rejected wordier and adds 'Confidence: 100%': a style preference",
    "en-54": "translation; rejected quotes and words the query differently, chosen adds 'Confidence: 95%'",
    "zh-186": "two different Chinese renderings of the same sentence",
    "zh-258": "ingredient lists; rejected splits 'venison sausage or salami' into two items",
    "zh-68": "start an Express server: chosen gives steps, code and the expected output; rejected only the code",
    "zh-198": "two different summaries of one article; rejected adds the age and the floor",
    "en-12": "rephrase professionally: chosen rephrases as asked, rejected turns it into a letter",
    "zh-125": "['Ralph', 'Tom'] against ['none', '汤姆']: a wrong answer",
}
NUMBER = re.compile(r"\d+")
SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")
FULLWIDTH = str.maketrans({",": "，", ".": "．", ":": "：", ";": "；", "!": "！", "?": "？", "(": "（", ")": "）"})
HALFWIDTH = str.maketrans({v: k for k, v in {",": "，", ":": "：", ";": "；", "!": "！", "?": "？"}.items()})


def canonical(lang: str) -> list[dict]:
    """LLaMA-Factory's sharegpt ranking rows as canonical pairs, with the strata columns."""
    rows = json.loads((DATA / SETS[lang]).read_text())
    out = []
    for i, row in enumerate(rows):
        messages = [{"role": ROLES[t["from"]], "content": t["value"]} for t in row["conversations"]]
        out.append(
            {
                "id": f"{lang}-{i}",
                "messages": messages,
                "chosen": [{"role": ROLES[row["chosen"]["from"]], "content": row["chosen"]["value"]}],
                "rejected": [{"role": ROLES[row["rejected"]["from"]], "content": row["rejected"]["value"]}],
                "lang": lang,
                "turns": "multi" if sum(m["role"] == "user" for m in messages) > 1 else "single",
                "system": "yes" if messages[0]["role"] == "system" else "no",
            }
        )
    return out


def _answer(p: dict, side: str) -> str:
    return p[side][0]["content"]


def char_ratio(a: str, b: str) -> float:
    a, b = SPACING.texts([a, b])
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


# --- 1-2. text checks, near-identical both ways ------------------------------------------------------------


def text_checks(pairs: list[dict]) -> dict:
    issues = check_pairs(pairs)
    out = {}
    for lang in SETS:
        sub = issues.filter(pl.col("id").str.starts_with(f"{lang}-"))
        out[lang] = {code: sub.filter(pl.col("code") == code)["id"].to_list() for code in sorted(set(sub["code"]))}
    return out


def _format_variants(text: str, lang: str) -> dict[str, str]:
    stripped = text.rstrip().rstrip(".!?。！？")
    return {
        "case_and_end_punctuation": stripped[:1].swapcase() + stripped[1:],
        "markdown_emphasis": f"**{text.strip()}**",
        "full_or_half_width": text.translate(FULLWIDTH if lang == "en" else HALFWIDTH),
        "spacing": re.sub(r"\s+", lambda m: m.group() + " ", text) + "\n",
    }


def _minimal_edits(text: str, lang: str) -> dict[str, str]:
    edits = {}
    number = NUMBER.search(text)
    if number:
        edits["one_number"] = text[: number.start()] + str(int(number.group()) + 1) + text[number.end() :]
    if lang == "en":
        words = text.split(" ")
        at = next(
            (j for j in range(len(words) // 2, len(words)) if words[j].isalpha() and len(words[j]) > 3),
            None,
        )
        if at is not None and words[at].lower() == "something":  # a case change alone is formatting
            at = None
        if at is not None:
            edits["one_word"] = " ".join(words[:at] + ["something"] + words[at + 1 :])
    else:
        at = next((j for j in range(len(text) // 2, len(text)) if "\u4e00" <= text[j] <= "\u9fff"), None)
        if at is not None:
            edits["one_word"] = text[:at] + ("某" if text[at] != "某" else "此") + text[at + 1 :]
    sentences = [s for s in SENTENCE_END.split(text.strip()) if re.search(r"\w", s)]  # not a lone emoji or quote
    if len(sentences) >= 2:
        edits["last_sentence_dropped"] = text.strip()[: text.strip().rfind(sentences[-1])].rstrip()
    return edits


def _flagged(rows: list[dict]) -> set[str]:
    found = check_pairs(rows).filter(pl.col("code").is_in(["identical_sides", "near_identical_sides"]))
    return set(found["id"])


def near_identical(pairs: list[dict]) -> dict:
    ratios = {p["id"]: char_ratio(_answer(p, "chosen"), _answer(p, "rejected")) for p in pairs}
    top = sorted(ratios, key=lambda i: -ratios[i])[:TOP]
    by_id = {p["id"]: p for p in pairs}
    real_flagged = _flagged(pairs)
    planted: dict[str, dict[str, list]] = {"catch": {}, "leave_alone": {}}
    for p in pairs:
        text = _answer(p, "chosen")
        for kind, made in (
            ("catch", _format_variants(text, p["lang"])),
            ("leave_alone", _minimal_edits(text, p["lang"])),
        ):
            for name, variant in made.items():
                if variant.strip() and variant != text:
                    row = {**p, "id": f"{p['id']}:{name}", "rejected": [{"role": "assistant", "content": variant}]}
                    planted[kind].setdefault(name, []).append((row, char_ratio(text, variant)))
    results = {}
    for kind, groups in planted.items():
        results[kind] = {}
        for name, items in groups.items():
            flagged = _flagged([row for row, _ in items])
            ratios_ = [r for _, r in items]
            results[kind][name] = {
                "pairs": len(items),
                "flagged": len(flagged),
                "missed" if kind == "catch" else "flagged_examples": sorted(
                    ({row["id"] for row, _ in items} - flagged if kind == "catch" else flagged)
                )[:5],
                **{f"char_ratio_ge_{t}": sum(r >= t for r in ratios_) for t in RATIOS},
            }
    values = np.array(list(ratios.values()))
    return {
        "rule": "near-identical = equal words, numbers and formula symbols after NFKC and case folding "
        "(curate.pairs.format_key); identical = equal after whitespace normalisation",
        "real": {
            "pairs": len(pairs),
            "flagged": sorted(real_flagged),
            "char_ratio": {f"p{q}": round(float(np.percentile(values, q)), 3) for q in (50, 90, 99, 100)},
            **{f"char_ratio_ge_{t}": int((values >= t).sum()) for t in RATIOS},
            "most_similar": [
                {
                    "id": i,
                    "char_ratio": round(ratios[i], 3),
                    "same_format_key": format_key(_answer(by_id[i], "chosen"))
                    == format_key(_answer(by_id[i], "rejected")),
                    "read": READ.get(i, ""),
                    "chosen": _answer(by_id[i], "chosen")[:TEXT],
                    "rejected": _answer(by_id[i], "rejected")[:TEXT],
                }
                for i in top
            ],
        },
        "planted": results,
    }


# --- 3. token dry run and TRL -------------------------------------------------------------------------


def load_tokenizer():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TOKENIZER))


def trl_findings(pairs: list[dict], tokenizer, lengths: list[int]) -> dict:
    """TRL's own view of every pair: its tokenize_fn (prompt with the generation prompt, prompt+side,
    the completion from where they part) and its collator's cut; as (id, code) sets like token_issues'."""
    import trl
    from trl.data_utils import _tokenize, common_prefix_length
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from curate.train.tiny import CHATML_TEMPLATE

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = CHATML_TEMPLATE  # what curate's trainer installs when the tokenizer's own misbehaves
    end = tok.convert_tokens_to_ids("<|im_end|>")
    examples = []
    for p in pairs:
        prompt = _tokenize(tok, p["messages"], add_generation_prompt=True)["input_ids"]
        full = {s: _tokenize(tok, p["messages"] + p[s])["input_ids"] for s in ("chosen", "rejected")}
        plen = min(common_prefix_length(prompt, f) for f in full.values())
        examples.append(
            {"prompt_ids": prompt[:plen], "chosen_ids": full["chosen"][plen:], "rejected_ids": full["rejected"][plen:]}
        )
    out = {"trl": trl.__version__, "examples": examples, "findings": {}}
    for max_length in lengths:
        for mode in ("keep_start", "keep_end"):
            collate = DataCollatorForPreference(
                pad_token_id=tok.pad_token_id, max_length=max_length, truncation_mode=mode
            )
            found = set()
            for p, ex in zip(pairs, examples):
                if mode == "keep_start" and len(ex["prompt_ids"]) >= max_length:
                    found.add((p["id"], "dropped_at_max_length"))  # TRL's _prepare_dataset filter
                    continue
                batch = collate([ex])
                rows = [ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]
                answers = [ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["completion_mask"])]
                kept_end = [end in answer for answer in answers]  # the prompt's own turns end too
                if kept_end == [False, True]:
                    found.add((p["id"], "chosen_loses_end_of_turn"))
                if kept_end == [True, False]:
                    found.add((p["id"], "rejected_loses_end_of_turn"))
                whole = ex["chosen_ids"] == ex["rejected_ids"]
                if rows[0] == rows[1] and not whole:
                    found.add((p["id"], "no_signal_after_cut"))
            out["findings"][(max_length, mode)] = found
    return out


CUT_CODES = ["dropped_at_max_length", "chosen_loses_end_of_turn", "rejected_loses_end_of_turn", "no_signal_after_cut"]


def against_trl(pairs: list[dict], tokenizer, lengths: list[int]) -> dict:
    """curate.pairs' per-pair token findings beside TRL's, for each max_length and mode."""
    started = time.perf_counter()
    tokens = pair_tokens(pairs, tokenizer)
    seconds = time.perf_counter() - started
    trl_view = trl_findings(pairs, tokenizer, lengths)
    ours_lengths = tokens.select("prompt_tokens", "chosen_tokens", "rejected_tokens").rows()
    theirs_lengths = [
        (len(e["prompt_ids"]), len(e["chosen_ids"]), len(e["rejected_ids"])) for e in trl_view["examples"]
    ]
    prefix = token_issues(tokens).filter(pl.col("code") == "prompt_not_token_prefix")["id"].unique()
    runs = {}
    for max_length in lengths:
        for mode in ("keep_start", "keep_end"):
            issues = token_issues(tokens, max_length, mode).filter(pl.col("code").is_in(CUT_CODES))
            ours = set(issues.select("id", "code").iter_rows())
            theirs = trl_view["findings"][(max_length, mode)]
            runs[f"{mode}@{max_length}"] = {
                "counts": {code: sum(c == code for _, c in ours) for code in CUT_CODES},
                "by_lang": {
                    lang: {code: sum(c == code and i.startswith(f"{lang}-") for i, c in ours) for code in CUT_CODES}
                    for lang in SETS
                },
                "agrees_with_trl": ours == theirs,
                "only_ours": sorted(ours - theirs)[:5],
                "only_trl": sorted(theirs - ours)[:5],
            }
    return {
        "trl": trl_view["trl"],
        "pairs": len(pairs),
        "pair_tokens_seconds": round(seconds, 2),
        "lengths_equal_trl": sum(a == b for a, b in zip(ours_lengths, theirs_lengths)),
        "prompt_not_token_prefix": prefix.len(),
        "runs": runs,
    }


def planted_token_pairs(pairs: list[dict]) -> list[dict]:
    """Each real pair twice: its chosen answer opening with a newline (the prompt's last token merges
    into the answer's), and the TRL trap: rejected = the chosen answer with a different last sentence
    added, so the sides differ only after all of chosen (a cut inside chosen leaves no difference)."""
    out = []
    for p in pairs:
        chosen = _answer(p, "chosen")
        out.append({**p, "id": f"{p['id']}:newline", "chosen": [{"role": "assistant", "content": "\n" + chosen}]})
        trap = [{"role": "assistant", "content": chosen + " I may be wrong about this."}]
        out.append({**p, "id": f"{p['id']}:shared_prefix", "rejected": trap})
    return out


def dry_run(pairs: list[dict], tokenizer, lengths=(1024, 2048)) -> dict:
    summary = pair_summary(pairs, tokenizer, strata=["lang", "turns", "system"], max_length=lengths[0])["tokens"]
    return {
        "tokenizer": str(TOKENIZER.relative_to(REPO.parent)),
        "summary": summary,
        "real": against_trl(pairs, tokenizer, list(lengths)),
        "planted": against_trl(planted_token_pairs(pairs), tokenizer, list(lengths)),
    }


# --- 4. length bias ----------------------------------------------------------------------------------------


def bias(pairs: list[dict], tokenizer) -> dict:
    tokens = pair_tokens(pairs, tokenizer)
    units = {
        "tokens": (tokens["chosen_tokens"].to_numpy(), tokens["rejected_tokens"].to_numpy()),
        "words": side_lengths(pairs, "words"),
        "chars": side_lengths(pairs, "chars"),
    }
    strata = ["lang", "turns", "system"]
    out = {unit: length_bias(pairs, c, r, strata) for unit, (c, r) in units.items()}
    subset, info = length_matched(pairs, *units["tokens"], strata, seed=36)
    keep = {p["id"] for p in subset}
    mask = np.array([p["id"] in keep for p in pairs])
    after = length_bias(subset, units["tokens"][0][mask], units["tokens"][1][mask], strata)
    out["length_matched_tokens"] = {
        **info,
        "after": {"overall": after["overall"], "by_stratum": after["by_stratum"]},
    }
    return out


def main() -> None:
    started = time.perf_counter()
    pairs = canonical("en") + canonical("zh")
    tokenizer = load_tokenizer()
    result = {
        "benchmark": "preference-pair checks on real DPO data (issue 36): checks, near-identical both ways, "
        "the token dry run against TRL, length bias",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(),
        "data": list(SETS.values()),
        "pairs": {lang: sum(p["lang"] == lang for p in pairs) for lang in SETS},
        "text_checks": text_checks(pairs),
        "near_identical": near_identical(pairs),
        "tokens": dry_run(pairs, tokenizer),
        "length_bias": bias(pairs, tokenizer),
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    RESULT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    lb = result["length_bias"]["tokens"]
    print(
        f"text checks: {json.dumps({k: {c: len(v) for c, v in d.items()} for k, d in result['text_checks'].items()})}"
    )
    print(f"near-identical: real flagged {result['near_identical']['real']['flagged']}")
    for kind in ("real", "planted"):
        for name, run in result["tokens"][kind]["runs"].items():
            print(f"{kind} {name}: {run['counts']} agrees with TRL: {run['agrees_with_trl']}")
    print(
        f"chosen longer (tokens) {lb['overall']['chosen_longer_share']}, length AUC {lb['overall']['length_auc']}, "
        f"simpson flagged {len(lb['simpson']['flagged'])}"
    )
    print(f"wrote {RESULT.relative_to(REPO)} in {result['seconds']} s")


if __name__ == "__main__":
    main()
