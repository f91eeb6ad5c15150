"""Checks and bias audits for preference pairs (DPO), on plain rows: a polars frame or a list of dicts.

A pair is a record with `messages` (the prompt turns, ending with the user's or a tool's turn), `chosen`
and `rejected` (the answer turns, ending with an assistant turn), an optional `margin`; any other column
(source, category, lang, model) is a stratum. Three kinds of finding, each a reason code and a reason:

- per pair, on the text (`check_pairs`): the sides are identical, or differ only in formatting; a side
  is empty or does not end with an assistant turn; the prompt is empty or does not end with a user or
  tool turn; the margin says the sides tie or the labels are swapped;
- per pair, on the tokens the trainer will see (`pair_tokens`, `token_issues`, `truncation`): TRL's
  DPOTrainer (1.x) renders prompt (with the generation prompt) and prompt+answer, takes the answer to
  start where their tokens part, and cuts prompt+answer to `max_length` (`keep_start`: the answer's end
  goes; `keep_end`: the prompt's start goes). The dry run says where the prompt's tokens are not a
  prefix, whether each answer holds one end-of-turn per turn, and which side a cut leaves without its
  end-of-turn (a chosen answer cut short beside a rejected one that ends teaches the model not to
  stop), or with no difference left between the sides (no gradient: the pair teaches nothing);
- over the set (`length_bias`): how often the chosen answer is the longer one, and how well length
  alone predicts the label, overall and per stratum, with the balance stage's Simpson check of
  "chosen is longer" between strata; `length_matched` resamples to ~50% within every stratum.

`pair_summary` gathers them into one JSON-able dict for a report section and gates.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
import polars as pl
import xxhash
from scipy.stats import rankdata

from curate.normalize import Normalization
from curate.stratify import simpson_check
from curate.textstats import words_of
from curate.train.chat import IM_END, chatml

PAIR_FIELDS = ("messages", "chosen", "rejected")
NOT_STRATA = {"id", *PAIR_FIELDS, "margin", "text", "meta", "src_file", "src_row"}
PROMPT_ENDS = {"user", "tool"}
MAX_STRATUM_VALUES = 50  # a column with more values is an identifier, not a stratum (as balance's scan)
EXAMPLES = 5
ISSUE_SCHEMA = {"id": pl.Utf8, "code": pl.Utf8, "reason": pl.Utf8}
TOKEN_SCHEMA = {
    "id": pl.Utf8,
    "prompt_tokens": pl.Int64,
    "prompt_rendered_tokens": pl.Int64,
    **{
        f"{side}_{name}": pl.Boolean if name == "prefix_ok" else pl.Int64
        for side in ("chosen", "rejected")
        for name in ("tokens", "prefix_ok", "end_of_turns", "turns", "last_end")
    },
    "shared_prefix": pl.Int64,
    "shared_suffix": pl.Int64,
}
Mode = Literal["keep_start", "keep_end"]
Unit = Literal["words", "chars"]

# Whitespace alone: the project's normalisation with case and punctuation kept.
SPACING = Normalization(lowercase=False, punctuation=False)
# What a formatting-only difference leaves: words, numbers and the symbols that change a number or a
# formula, case-folded, after NFKC (full-width forms). Not dedup's key (curate.normalize.DEFAULT), which
# drops every symbol: for a preference pair "-3" against "3" or "2 + 3" against "2 / 3" is the whole
# answer, not formatting. Markdown's "*" and a hyphen not before a digit are formatting.
_WORDS = re.compile(r"\w+|-(?=\d)|[+/=<>^%$€£±×÷]")


class PairError(ValueError):
    """A row that is not a preference pair."""


def as_pairs(data: pl.DataFrame | Iterable[dict]) -> list[dict]:
    """The pairs as dicts, each with a string `id` (its row number where it has none)."""
    rows = data.to_dicts() if isinstance(data, pl.DataFrame) else [dict(r) for r in data]
    for i, row in enumerate(rows):
        missing = [k for k in PAIR_FIELDS if k not in row]
        if missing:
            raise PairError(
                f"row {i} (id {row.get('id')!r}) has no {', '.join(missing)}: a preference pair needs `messages` "
                "(the prompt turns), `chosen` and `rejected` (the answer turns)"
            )
        row["id"] = str(row["id"]) if row.get("id") is not None else str(i)
    return rows


def _turns(value) -> list[dict]:
    return [t or {} for t in value or []]


def side_text(turns: list[dict]) -> str:
    """The text two sides are compared by: a single turn's content, else "role: content" lines."""
    turns = _turns(turns)
    if len(turns) == 1:
        return turns[0].get("content") or ""
    return "\n".join(f"{t.get('role')}: {t.get('content') or ''}" for t in turns)


def format_key(text: str) -> tuple[str, ...]:
    """The words, numbers and formula symbols of a text, case-folded: equal for two texts that differ
    only in case, punctuation, spacing, markdown emphasis or full-width forms."""
    return tuple(_WORDS.findall(unicodedata.normalize("NFKC", text).casefold()))


def _first_difference(a: str, b: str, context: int = 20) -> str:
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    start = max(0, i - context)
    return f"{a[start : i + context]!r} vs {b[start : i + context]!r}"


# --- per-pair checks on the text -------------------------------------------------------------------


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _structure(pair: dict) -> list[tuple[str, str]]:
    issues = []
    prompt = _turns(pair["messages"])
    if not any((t.get("content") or "").strip() for t in prompt):
        issues.append(("empty_prompt", "the prompt has no turn with content"))
    elif prompt[-1].get("role") not in PROMPT_ENDS:
        issues.append(
            (
                "prompt_not_user_end",
                f"the prompt ends with a {prompt[-1].get('role')!r} turn, not a user or tool turn: "
                "the answer would not be a reply to it",
            )
        )
    for side in ("chosen", "rejected"):
        turns = _turns(pair[side])
        if not any((t.get("content") or "").strip() for t in turns):
            issues.append((f"empty_{side}", f"the {side} side has no turn with content"))
        elif turns[-1].get("role") != "assistant":
            issues.append(
                (
                    f"{side}_not_assistant_end",
                    f"the {side} side ends with a {turns[-1].get('role')!r} turn, not an assistant turn",
                )
            )
    margin = pair.get("margin")
    if margin is not None and not _number(margin) > 0:  # NaN and text too
        issues.append(
            (
                "margin_not_positive",
                f"margin {margin!r}: not a positive number; the scores tie or say rejected is better (swapped?)",
            )
        )
    return issues


def check_pairs(data: pl.DataFrame | Iterable[dict]) -> pl.DataFrame:
    """One row (id, code, reason) per problem found; a pair without problems has no row.

    Codes: identical_sides (equal after whitespace normalisation), near_identical_sides (equal
    `format_key`: they differ only in case, punctuation, spacing, markdown emphasis or full-width
    forms; one changed word, number, sign or operator is a preference, not a duplicate), empty_chosen /
    empty_rejected, chosen_not_assistant_end / rejected_not_assistant_end, empty_prompt,
    prompt_not_user_end, margin_not_positive."""
    pairs = as_pairs(data)
    chosen = [side_text(p["chosen"]) for p in pairs]
    rejected = [side_text(p["rejected"]) for p in pairs]
    spaced_c, spaced_r = SPACING.texts(chosen), SPACING.texts(rejected)
    rows = []
    for i, pair in enumerate(pairs):
        issues = _structure(pair)
        empty = any(code in ("empty_chosen", "empty_rejected") for code, _ in issues)
        if not empty and spaced_c[i] == spaced_r[i]:
            issues.append(("identical_sides", "chosen and rejected are the same text (whitespace aside)"))
        elif not empty and format_key(chosen[i]) == format_key(rejected[i]):
            issues.append(
                (
                    "near_identical_sides",
                    "chosen and rejected differ only in formatting (case, punctuation, spacing): "
                    + _first_difference(spaced_c[i], spaced_r[i]),
                )
            )
        rows += [(pair["id"], code, reason) for code, reason in issues]
    return pl.DataFrame(rows, schema=ISSUE_SCHEMA, orient="row")


# --- the token-level dry run -------------------------------------------------------------------------


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _last(ids: list[int], token: int) -> int:
    return max((i for i, t in enumerate(ids) if t == token), default=-1)


def pair_tokens(
    data: pl.DataFrame | Iterable[dict],
    tokenizer,
    render: Callable[[list[dict], bool], str] = chatml,
    batch: int = 512,
) -> pl.DataFrame:
    """Per pair, what TRL's DPOTrainer tokenises: `render(prompt, True)` and `render(prompt + side,
    False)` for each side; as in TRL, the answers start where the prompt's tokens stop matching either
    side's. The trainer renders canonical ChatML (the tokenizer's template when it matches, else the
    built-in one), hence the default.

    Columns: id; prompt_tokens (TRL's prompt, the common prefix); prompt_rendered_tokens; per side
    `<side>_tokens` (the answer part: content, end-of-turn, newline), `<side>_prefix_ok` (the rendered
    prompt's tokens are a prefix of prompt+side's), `<side>_end_of_turns` (`<|im_end|>` in the answer
    part), `<side>_turns`, `<side>_last_end` (the last end-of-turn's position in prompt+side, -1 if
    none); shared_prefix / shared_suffix (tokens prompt+chosen and prompt+rejected share at each end)."""
    pairs = as_pairs(data)
    end = tokenizer.convert_tokens_to_ids(IM_END)
    rows = []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        texts = []
        for p in chunk:
            prompt = _turns(p["messages"])
            texts += [render(prompt, True), render(prompt + _turns(p["chosen"]), False)]
            texts.append(render(prompt + _turns(p["rejected"]), False))
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        for k, p in enumerate(chunk):
            prompt, full_c, full_r = ids[3 * k : 3 * k + 3]
            agree = {"chosen": _common_prefix(prompt, full_c), "rejected": _common_prefix(prompt, full_r)}
            plen = min(agree.values())
            row = {"id": p["id"], "prompt_tokens": plen, "prompt_rendered_tokens": len(prompt)}
            for side, full in (("chosen", full_c), ("rejected", full_r)):
                answer = full[plen:]
                row |= {
                    f"{side}_tokens": len(answer),
                    f"{side}_prefix_ok": agree[side] == len(prompt),
                    f"{side}_end_of_turns": answer.count(end),
                    f"{side}_turns": len(_turns(p[side])),
                    f"{side}_last_end": _last(full, end) if end in answer else -1,
                }
            row["shared_prefix"] = _common_prefix(full_c, full_r)
            row["shared_suffix"] = _common_prefix(full_c[::-1], full_r[::-1])
            rows.append(row)
    return pl.DataFrame(rows, schema=TOKEN_SCHEMA)


def _cut(row: dict, max_length: int, mode: Mode) -> dict:
    """What cutting prompt+side to max_length does to one pair, as TRL's collator cuts."""
    plen = row["prompt_tokens"]
    out = {"dropped": mode == "keep_start" and plen >= max_length}  # TRL drops these before training
    kept = {}
    for side in ("chosen", "rejected"):
        total = plen + row[f"{side}_tokens"]
        cut = max(0, total - max_length)
        kept[side] = min(total, max_length)
        last = row[f"{side}_last_end"]
        out[side] = {
            "over": cut > 0,
            "answer_cut": min(cut, row[f"{side}_tokens"]) if mode == "keep_start" else max(0, cut - plen),
            "prompt_cut": 0 if mode == "keep_start" else min(cut, plen),
            "loses_end": mode == "keep_start" and last >= max_length,
        }
    shared = row["shared_prefix"] if mode == "keep_start" else row["shared_suffix"]
    same = row["chosen_tokens"] == row["rejected_tokens"] and row["shared_prefix"] >= plen + row["chosen_tokens"]
    # identical sides are a text finding; this one is the cut erasing the only difference
    out["no_signal"] = not same and kept["chosen"] == kept["rejected"] and shared >= kept["chosen"]
    return out


def _ids(ids: list[str]) -> dict:
    return {"count": len(ids), "examples": ids[:EXAMPLES]}


def truncation(tokens: pl.DataFrame, max_length: int = 1024, mode: Mode = "keep_start") -> dict:
    """What `max_length` (TRL's default 1024) cuts from chosen and rejected under `mode` (TRL's default
    keep_start: the end of prompt+answer goes; keep_end: the start goes). Counts with example ids:
    pairs TRL drops (keep_start: the prompt alone fills max_length), each side over the length and the
    answer tokens it loses, which side loses its end-of-turn, the prompt cut (keep_end), and pairs left
    with no difference between the sides."""
    rows, found = tokens.to_dicts(), {}
    totals = {"chosen": 0, "rejected": 0}
    for row in rows:
        cut = _cut(row, max_length, mode)
        if cut["dropped"]:
            found.setdefault("dropped", []).append(row["id"])
            continue
        c, r = cut["chosen"], cut["rejected"]
        for side, facts in (("chosen", c), ("rejected", r)):
            totals[side] += facts["answer_cut"]
            if facts["over"]:
                found.setdefault(f"{side}_over", []).append(row["id"])
            if facts["answer_cut"] and mode == "keep_end":
                found.setdefault(f"{side}_answer_start_cut", []).append(row["id"])
            if facts["prompt_cut"]:
                found.setdefault(f"{side}_prompt_cut", []).append(row["id"])
        pattern = {(True, False): "only_chosen_loses_end", (False, True): "only_rejected_loses_end"}
        pattern[(True, True)] = "both_lose_end"
        if (c["loses_end"], r["loses_end"]) in pattern:
            found.setdefault(pattern[(c["loses_end"], r["loses_end"])], []).append(row["id"])
        if c["answer_cut"] > r["answer_cut"]:
            found.setdefault("chosen_cut_more", []).append(row["id"])
        elif r["answer_cut"] > c["answer_cut"]:
            found.setdefault("rejected_cut_more", []).append(row["id"])
        if cut["no_signal"]:
            found.setdefault("no_signal", []).append(row["id"])
    keys = ["dropped", "chosen_over", "rejected_over", "only_chosen_loses_end", "only_rejected_loses_end"]
    keys += ["both_lose_end", "chosen_cut_more", "rejected_cut_more", "no_signal"]
    if mode == "keep_end":
        keys += ["chosen_prompt_cut", "rejected_prompt_cut", "chosen_answer_start_cut", "rejected_answer_start_cut"]
    return {
        "max_length": max_length,
        "mode": mode,
        "pairs": len(rows),
        **{k: _ids(found.get(k, [])) for k in keys},
        "answer_tokens_cut": totals,
    }


def token_issues(tokens: pl.DataFrame, max_length: int | None = None, mode: Mode = "keep_start") -> pl.DataFrame:
    """Per-pair token findings as (id, code, reason) rows: prompt_not_token_prefix, end_of_turn_count,
    and with a max_length: dropped_at_max_length, chosen_loses_end_of_turn (rejected keeps its own),
    rejected_loses_end_of_turn (chosen keeps its own), no_signal_after_cut."""
    rows = []
    for row in tokens.to_dicts():
        for side in ("chosen", "rejected"):
            if not row[f"{side}_prefix_ok"]:
                rows.append(
                    (
                        row["id"],
                        "prompt_not_token_prefix",
                        f"the prompt's tokens are not a prefix of prompt+{side}'s (tokens merge across the "
                        "boundary, e.g. an answer starting with a newline): TRL trains on a shorter prompt",
                    )
                )
            if row[f"{side}_end_of_turns"] != row[f"{side}_turns"]:
                rows.append(
                    (
                        row["id"],
                        "end_of_turn_count",
                        f"the {side} answer holds {row[f'{side}_end_of_turns']} end-of-turn tokens for "
                        f"{row[f'{side}_turns']} turn(s) ({IM_END} written in the text?)",
                    )
                )
        if max_length is None:
            continue
        cut = _cut(row, max_length, mode)
        if cut["dropped"]:
            reason = f"the prompt alone fills max_length {max_length}: TRL drops the pair ({mode})"
            rows.append((row["id"], "dropped_at_max_length", reason))
            continue
        for side, other in (("chosen", "rejected"), ("rejected", "chosen")):
            if cut[side]["loses_end"] and not cut[other]["loses_end"]:
                reason = f"at max_length {max_length} ({mode}) {side} loses its end-of-turn and {other} keeps its own"
                rows.append((row["id"], f"{side}_loses_end_of_turn", reason))
        if cut["no_signal"]:
            reason = f"at max_length {max_length} ({mode}) prompt+chosen and prompt+rejected are the same tokens"
            rows.append((row["id"], "no_signal_after_cut", reason))
    return pl.DataFrame(rows, schema=ISSUE_SCHEMA, orient="row")


def _percentiles(values, qs=(5, 25, 50, 75, 95)) -> dict:
    values = np.asarray(values, dtype=float)
    if not values.size:
        return {}
    return {f"p{q}": round(float(v), 3) for q, v in zip(qs, np.percentile(values, qs))}


def token_summary(
    tokens: pl.DataFrame, max_length: int = 1024, modes: Sequence[Mode] = ("keep_start", "keep_end")
) -> dict:
    """The dry run for a report: token lengths, prefix and end-of-turn findings, and each mode's cut."""
    issues = token_issues(tokens)
    return {
        "pairs": tokens.height,
        "prompt_tokens": _percentiles(tokens["prompt_tokens"], (50, 90, 99, 100)),
        "answer_tokens": {s: _percentiles(tokens[f"{s}_tokens"], (50, 90, 99, 100)) for s in ("chosen", "rejected")},
        "shared_prefix_answer_tokens": _percentiles(
            (tokens["shared_prefix"] - tokens["prompt_tokens"]).clip(0), (50, 90, 99, 100)
        ),
        **{
            code: _ids(issues.filter(pl.col("code") == code)["id"].unique(maintain_order=True).to_list())
            for code in ("prompt_not_token_prefix", "end_of_turn_count")
        },
        "truncation": {mode: truncation(tokens, max_length, mode) for mode in modes},
    }


# --- length bias -------------------------------------------------------------------------------------


def side_lengths(data: pl.DataFrame | Iterable[dict], unit: Unit = "words") -> tuple[np.ndarray, np.ndarray]:
    """Each side's length in words (`curate.textstats.words_of`: whitespace words, so Chinese or Japanese
    text counts few) or characters, summed over its turns."""
    measure = (lambda t: len(words_of(t))) if unit == "words" else len
    pairs = as_pairs(data)
    return tuple(
        np.array([sum(measure(t.get("content") or "") for t in _turns(p[s])) for p in pairs], dtype=float)
        for s in ("chosen", "rejected")
    )


def strata_columns(pairs: list[dict]) -> list[str]:
    """The columns that can stratify: text values, 2 to MAX_STRATUM_VALUES of them."""
    names = dict.fromkeys(k for p in pairs for k in p if k not in NOT_STRATA)
    out = []
    for name in names:
        values = [p.get(name) for p in pairs]
        if all(v is None or isinstance(v, str) for v in values):
            if 2 <= len(set(values)) <= MAX_STRATUM_VALUES:
                out.append(name)
    return out


def _bias(chosen: np.ndarray, rejected: np.ndarray) -> dict:
    n = len(chosen)
    if not n:
        return {"pairs": 0}
    longer, shorter = int((chosen > rejected).sum()), int((chosen < rejected).sum())
    # A length-only classifier scores an ordered pair (a, b) by log(len a / len b) and says "a is chosen"
    # when the score is positive. Over both orderings of every pair the positives score d and the
    # negatives -d: its AUC is the Mann-Whitney statistic of d against -d (0.5: length says nothing).
    d = np.log((chosen + 1) / (rejected + 1))
    ranks = rankdata(np.concatenate([d, -d]))
    auc = (ranks[:n].sum() - n * (n + 1) / 2) / (n * n)
    return {
        "pairs": n,
        "chosen_longer": longer,
        "rejected_longer": shorter,
        "ties": n - longer - shorter,
        "chosen_longer_share": round(longer / n, 4),
        "length_accuracy": round((longer + (n - longer - shorter) / 2) / n, 4),  # "the longer one", ties half
        "length_auc": round(float(auc), 4),
        "ratio": _percentiles(chosen / np.maximum(rejected, 1)),  # chosen / rejected
    }


def _values(pairs: list[dict], column: str) -> list[str]:
    return [str(v) if (v := p.get(column)) is not None else "(none)" for p in pairs]


def _length_simpson(longer: np.ndarray, strata: dict[str, list[str]], min_pairs: int, strong: float) -> dict:
    """For each stratum value (a factor: this value vs the rest) and each other stratum column (a
    confounder): is the crude association of the factor with "chosen is longer" what holds within the
    confounder's strata? The balance stage's check, on "chosen is longer" as the outcome."""
    flagged, checked = [], 0
    for column, values in strata.items():
        counts = Counter(values)
        levels = sorted(counts)[:1] if len(counts) == 2 else sorted(counts)  # with two, one mirrors the other
        for level in levels:
            if counts[level] < min_pairs or len(values) - counts[level] < min_pairs:
                continue
            factor = np.array([v == level for v in values])
            for other, confounder in strata.items():
                if other == column:
                    continue
                checked += 1
                check = simpson_check(longer, factor, confounder, strong)
                if check["reversal"] or check["strong_confounding"]:
                    flagged.append(
                        {"factor": f"{column} = {level}", "confounder": other, **check}
                        | _reading(f"{column} = {level}", other, check)
                    )
    return {"outcome": "chosen is longer", "checked": checked, "flagged": flagged}


def _reading(factor: str, confounder: str, check: dict) -> dict:
    crude, mh = check["crude"]["odds_ratio"] or 1.0, check["mantel_haenszel_odds_ratio"] or 1.0
    overall = "more" if crude > 1 else "less"
    if check["reversal"]:
        within = "less" if crude > 1 else "more"
        text = (
            f"pairs with {factor} have the chosen answer longer {overall} often than the others overall "
            f"(crude OR {crude}) but {within} often within each {confounder} (Mantel-Haenszel OR {mh}): the "
            f"overall gap comes from how {confounder} is mixed"
        )
    else:
        change = "hides part of" if abs(np.log(mh)) > abs(np.log(crude)) else "explains part of"
        text = (
            f"pairs with {factor}: the odds that the chosen answer is longer are {crude}x the others' overall "
            f"and {mh}x within each {confounder}: {confounder} {change} the gap"
        )
    return {"reading": text}


def length_bias(
    data: pl.DataFrame | Iterable[dict],
    chosen: Sequence[float],
    rejected: Sequence[float],
    strata: list[str] | None = None,
    min_pairs: int = 20,
    strong_confounding_factor: float = 1.5,
) -> dict:
    """How much length tells the label: the share of pairs whose chosen side is longer, the ratio
    chosen/rejected (percentiles), the accuracy of "the longer one is chosen" (ties half) and the AUC of
    a length-only classifier over both orderings — overall, per value of each stratum column (default:
    `strata_columns`), and the Simpson check of "chosen is longer" across strata (values with at least
    `min_pairs` pairs, and as many without)."""
    pairs = as_pairs(data)
    c, r = np.asarray(chosen, dtype=float), np.asarray(rejected, dtype=float)
    if len(c) != len(pairs) or len(r) != len(pairs):
        raise PairError(f"{len(pairs)} pairs but {len(c)} chosen and {len(r)} rejected lengths")
    columns = strata_columns(pairs) if strata is None else strata
    values = {col: _values(pairs, col) for col in columns}
    by_stratum = {}
    for col, vals in values.items():
        index: dict[str, list[int]] = {}
        for i, v in enumerate(vals):
            index.setdefault(v, []).append(i)
        by_stratum[col] = {v: _bias(c[idx], r[idx]) for v, idx in sorted(index.items(), key=lambda kv: -len(kv[1]))}
    return {
        "overall": _bias(c, r),
        "by_stratum": by_stratum,
        "simpson": _length_simpson(c > r, values, min_pairs, strong_confounding_factor),
    }


def length_matched(
    data: pl.DataFrame | list[dict],
    chosen: Sequence[float],
    rejected: Sequence[float],
    strata: list[str] | None = None,
    seed: int = 0,
):
    """(the subset, what was dropped): within each combination of the strata columns' values, as many
    pairs with the chosen side longer as with it shorter (the majority cut to the minority, ranked by a
    seeded hash of the id, so row order never matters); ties are kept. Same type as `data`."""
    pairs = as_pairs(data)
    c, r = np.asarray(chosen, dtype=float), np.asarray(rejected, dtype=float)
    columns = strata_columns(pairs) if strata is None else strata
    keys = list(zip(*(_values(pairs, col) for col in columns))) if columns else [()] * len(pairs)
    groups: dict[tuple, dict[str, list[int]]] = {}
    for i, key in enumerate(keys):
        kind = "chosen_longer" if c[i] > r[i] else "rejected_longer" if c[i] < r[i] else "ties"
        groups.setdefault(key, {"chosen_longer": [], "rejected_longer": [], "ties": []})[kind].append(i)
    keep = np.ones(len(pairs), dtype=bool)
    report = {}
    for key, group in sorted(groups.items()):
        quota = min(len(group["chosen_longer"]), len(group["rejected_longer"]))
        dropped = 0
        for kind in ("chosen_longer", "rejected_longer"):
            ranked = sorted(group[kind], key=lambda i: xxhash.xxh3_64_intdigest(pairs[i]["id"].encode(), seed))
            keep[ranked[quota:]] = False
            dropped += len(ranked) - quota
        name = ", ".join(f"{col}={v}" for col, v in zip(columns, key)) or "all"
        report[name] = {k: len(v) for k, v in group.items()} | {"dropped": dropped}
    info = {"seed": seed, "strata": columns, "pairs": len(pairs), "kept": int(keep.sum())}
    info |= {"dropped": len(pairs) - int(keep.sum()), "by_stratum": report}
    if isinstance(data, pl.DataFrame):
        return data.filter(pl.Series(keep)), info
    return [row for row, k in zip(data, keep) if k], info


# --- the summary ---------------------------------------------------------------------------------------


def issue_summary(issues: pl.DataFrame, pairs: int) -> dict:
    """Counts per reason code with example ids, and the pairs with any finding."""
    counts = {}
    for code in sorted(issues["code"].unique().to_list()):
        ids = issues.filter(pl.col("code") == code)["id"].unique(maintain_order=True).to_list()
        counts[code] = _ids(ids)
    flagged = issues["id"].n_unique()
    return {"counts": counts, "flagged_pairs": flagged, "flagged_share": round(flagged / pairs, 4) if pairs else 0.0}


def pair_summary(
    data: pl.DataFrame | Iterable[dict],
    tokenizer=None,
    strata: list[str] | None = None,
    max_length: int = 1024,
    modes: Sequence[Mode] = ("keep_start", "keep_end"),
    render: Callable[[list[dict], bool], str] = chatml,
) -> dict:
    """Everything for a report section and gates: the text checks, the token dry run (with a
    tokenizer; its findings at `max_length` under the first mode join the checks' counts), and the
    length bias (in tokens with a tokenizer, else in words)."""
    pairs = as_pairs(data)
    issues = [check_pairs(pairs)]
    out: dict = {"pairs": len(pairs)}
    if tokenizer is not None:
        tokens = pair_tokens(pairs, tokenizer, render)
        issues.append(token_issues(tokens, max_length, modes[0]))
        out["tokens"] = token_summary(tokens, max_length, modes)
        lengths, unit = (tokens["chosen_tokens"].to_numpy(), tokens["rejected_tokens"].to_numpy()), "tokens"
    else:
        lengths, unit = side_lengths(pairs, "words"), "words"
    out["checks"] = issue_summary(pl.concat(issues), len(pairs))
    out["length_bias"] = {"unit": unit, **length_bias(pairs, *lengths, strata)}
    return out
