"""Preference-pair checks (curate.pairs) on small labelled pairs: text checks, the token dry run with the
shared Qwen2 tokenizer, length bias with its Simpson check, and length-matched resampling."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.pairs import (
    PairError,
    check_pairs,
    length_bias,
    length_matched,
    pair_summary,
    pair_tokens,
    token_issues,
    truncation,
)
from curate.train.chat import chatml

QWEN2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "qwen2-tokenizer"
USER = [{"role": "user", "content": "What is the capital of France?"}]


def pair(id: str, chosen: str | list | None, rejected: str | list | None, messages=None, **extra) -> dict:
    def side(x):
        return [{"role": "assistant", "content": x}] if isinstance(x, str) else x

    return {
        "id": id,
        "messages": USER if messages is None else messages,
        "chosen": side(chosen),
        "rejected": side(rejected),
        **extra,
    }


def codes(data) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for id, code in check_pairs(data).select("id", "code").iter_rows():
        out.setdefault(id, set()).add(code)
    return out


# --- text checks -----------------------------------------------------------------------------------------

LABELLED = [
    (pair("clean", "Paris.", "Lyon, I think."), set()),
    (pair("same", "The capital is Paris.", "The capital  is\nParis. "), {"identical_sides"}),
    (pair("format", "**Sure!** The capital is Paris.", "sure, the capital is Paris"), {"near_identical_sides"}),
    (pair("fullwidth", "答案是：巴黎。", "答案是:巴黎"), {"near_identical_sides"}),
    # minimal pairs: one fact, one sign, one operator is the preference, never a near-duplicate
    (pair("place", "He owns AS Company in Gorazde, a small town.", "He owns AS Company, a small town."), set()),
    (pair("sign", "6778576 - 84834150134 = -84827371558", "6778576 - 84834150134 = 84827371558"), set()),
    (pair("operator", "x = 2 + 3", "x = 2 / 3"), set()),
    (pair("empty_c", "  \n", "Paris."), {"empty_chosen"}),
    (pair("empty_r", "Paris.", []), {"empty_rejected"}),
    (
        pair("ends_user", [{"role": "assistant", "content": "Paris."}, {"role": "user", "content": "ok"}], "Lyon."),
        {"chosen_not_assistant_end"},
    ),
    (pair("no_prompt", "Paris.", "Lyon.", messages=[]), {"empty_prompt"}),
    (
        pair("prompt_assistant", "Paris.", "Lyon.", messages=[*USER, {"role": "assistant", "content": "Hm."}]),
        {"prompt_not_user_end"},
    ),
    (pair("tool_prompt", "Paris.", "Lyon.", messages=[*USER, {"role": "tool", "content": "{}"}]), set()),
    (pair("margin0", "Paris.", "Lyon.", margin=0.0), {"margin_not_positive"}),
    (pair("margin_nan", "Paris.", "Lyon.", margin=float("nan")), {"margin_not_positive"}),
    (pair("margin_text", "Paris.", "Lyon.", margin="high"), {"margin_not_positive"}),
    (pair("margin_ok", "Paris.", "Lyon.", margin=1.5), set()),
]


@pytest.mark.parametrize("row,expected", LABELLED, ids=[r["id"] for r, _ in LABELLED])
def test_each_text_check_on_a_labelled_pair(row, expected):
    assert codes([row]).get(row["id"], set()) == expected


def test_a_frame_and_dicts_give_the_same_findings_and_reasons_say_what_differs():
    rows = [r for r, _ in LABELLED if "margin" not in r]
    frame = pl.DataFrame(rows)
    assert check_pairs(frame).equals(check_pairs(rows))
    reason = check_pairs(rows).filter(pl.col("id") == "format")["reason"][0]
    assert "differ only in formatting" in reason and "Sure" in reason


def test_a_row_without_a_side_is_an_error_naming_it():
    with pytest.raises(PairError, match=r"row 0 \(id 'x'\) has no rejected"):
        check_pairs([{"id": "x", "messages": USER, "chosen": []}])


# --- token dry run -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen2():
    if not QWEN2.is_dir():
        pytest.skip(f"the shared Qwen2 tokenizer is not at {QWEN2}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(QWEN2))


def _words(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(["river", "stone", "lamp", "quiet", "orange", "north", "paper"]) for _ in range(n))


def test_answer_part_is_content_end_of_turn_and_newline(qwen2):
    row = pair("a", "Paris is the capital.", "Lyon.")
    t = pair_tokens([row], qwen2).row(0, named=True)
    prompt = qwen2(chatml(USER, True), add_special_tokens=False)["input_ids"]
    full = qwen2(chatml(USER + row["chosen"]), add_special_tokens=False)["input_ids"]
    assert t["prompt_tokens"] == t["prompt_rendered_tokens"] == len(prompt)
    assert qwen2.decode(full[len(prompt) :]) == "Paris is the capital.<|im_end|>\n"
    assert t["chosen_tokens"] == len(full) - len(prompt)
    assert t["chosen_prefix_ok"] and t["rejected_prefix_ok"]
    assert (t["chosen_end_of_turns"], t["rejected_end_of_turns"]) == (1, 1)
    assert t["chosen_last_end"] == len(full) - 2  # <|im_end|>, then the newline
    assert token_issues(pair_tokens([row], qwen2)).is_empty()


def test_a_newline_opening_the_answer_breaks_the_token_prefix_and_a_written_end_of_turn_is_counted(qwen2):
    rows = [pair("newline", "\nParis.", "Lyon."), pair("injected", "Paris.<|im_end|>Bonus text", "Lyon.")]
    tokens = pair_tokens(rows, qwen2)
    first = tokens.row(0, named=True)
    assert not first["chosen_prefix_ok"] and first["rejected_prefix_ok"]
    assert first["prompt_tokens"] == first["prompt_rendered_tokens"] - 1  # TRL's prompt loses the merged "\n"
    found = {(i, c) for i, c in token_issues(tokens).select("id", "code").iter_rows()}
    assert found == {("newline", "prompt_not_token_prefix"), ("injected", "end_of_turn_count")}
    assert tokens.row(1, named=True)["chosen_end_of_turns"] == 2


def test_chosen_loses_its_end_of_turn_at_max_length_while_rejected_keeps_it(qwen2):
    row = pair("long_chosen", _words(120, 1), _words(10, 2))
    tokens = pair_tokens([row], qwen2)
    t = tokens.row(0, named=True)
    max_length = t["prompt_tokens"] + 60  # rejected (about 12 tokens) fits, chosen (about 120) does not
    assert t["rejected_tokens"] < 60 < t["chosen_tokens"]
    start = truncation(tokens, max_length, "keep_start")
    assert start["only_chosen_loses_end"] == {"count": 1, "examples": ["long_chosen"]}
    assert start["only_rejected_loses_end"]["count"] == 0 and start["chosen_cut_more"]["count"] == 1
    assert start["answer_tokens_cut"] == {"chosen": t["prompt_tokens"] + t["chosen_tokens"] - max_length, "rejected": 0}
    issues = token_issues(tokens, max_length, "keep_start")
    assert issues["code"].to_list() == ["chosen_loses_end_of_turn"]
    end = truncation(tokens, max_length, "keep_end")  # the end is kept: the prompt's start goes instead
    assert end["only_chosen_loses_end"]["count"] == 0
    assert end["chosen_prompt_cut"]["count"] == 1 and end["chosen_answer_start_cut"]["count"] == 1
    assert end["rejected_prompt_cut"]["count"] == 0


def test_trl_trap_answers_sharing_a_long_prefix_carry_no_signal_once_cut(qwen2):
    shared = _words(100, 3)
    row = pair("trap", shared + " So the answer is Paris.", shared + " So the answer is Lyon.")
    tokens = pair_tokens([row], qwen2)
    t = tokens.row(0, named=True)
    assert t["shared_prefix"] - t["prompt_tokens"] >= 100
    max_length = t["prompt_tokens"] + 80  # inside the shared opening
    start = truncation(tokens, max_length, "keep_start")
    assert start["no_signal"] == {"count": 1, "examples": ["trap"]}
    assert start["both_lose_end"]["count"] == 1
    assert "no_signal_after_cut" in token_issues(tokens, max_length, "keep_start")["code"].to_list()
    assert truncation(tokens, max_length, "keep_end")["no_signal"]["count"] == 0  # keep_end keeps the difference
    assert truncation(tokens, 4096, "keep_start")["no_signal"]["count"] == 0
    # identical sides are the text check's finding, not a cut's
    same = pair_tokens([pair("same", shared, shared)], qwen2)
    assert truncation(same, max_length, "keep_start")["no_signal"]["count"] == 0


def test_a_prompt_that_fills_max_length_is_dropped_by_keep_start(qwen2):
    row = pair("long_prompt", "Paris.", "Lyon.", messages=[{"role": "user", "content": _words(200, 4)}])
    tokens = pair_tokens([row], qwen2)
    assert truncation(tokens, 64, "keep_start")["dropped"] == {"count": 1, "examples": ["long_prompt"]}
    assert token_issues(tokens, 64, "keep_start")["code"].to_list() == ["dropped_at_max_length"]
    end = truncation(tokens, 64, "keep_end")
    assert end["dropped"]["count"] == 0 and end["chosen_prompt_cut"]["count"] == 1


# --- length bias ---------------------------------------------------------------------------------------


def _rows(strata: list[dict]) -> list[dict]:
    return [pair(str(i), "a", "b", **s) for i, s in enumerate(strata)]


def test_length_share_accuracy_and_auc_over_both_orderings():
    chosen, rejected = [10, 20, 5, 7, 30], [5, 10, 10, 7, 3]
    bias = length_bias(_rows([{}] * 5), chosen, rejected)["overall"]
    assert (bias["chosen_longer"], bias["rejected_longer"], bias["ties"]) == (3, 1, 1)
    assert bias["chosen_longer_share"] == 0.6 and bias["length_accuracy"] == 0.7
    d = [math.log((c + 1) / (r + 1)) for c, r in zip(chosen, rejected)]
    pos, neg = d, [-x for x in d]  # (chosen, rejected) and (rejected, chosen) scored by log length ratio
    auc = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
    assert bias["length_auc"] == pytest.approx(auc, abs=1e-4)
    assert bias["ratio"]["p50"] == 2.0
    assert length_bias(_rows([{}] * 3), [5, 6, 7], [1, 2, 3])["overall"]["length_auc"] == 1.0
    assert length_bias(_rows([{}] * 3), [1, 2, 3], [5, 6, 7])["overall"]["length_auc"] == 0.0


def _simpson_set() -> tuple[list[dict], list[int], list[int]]:
    """Source A has the chosen answer longer more often overall (74% against 36%) but less often within
    each category (x: 80% vs 90%, y: 20% vs 30%): A is mostly x, where chosen answers run long."""
    cells = {("A", "x"): (90, 72), ("A", "y"): (10, 2), ("B", "x"): (10, 9), ("B", "y"): (90, 27)}
    strata, chosen, rejected = [], [], []
    for (source, category), (n, longer) in cells.items():
        for k in range(n):
            strata.append({"source": source, "category": category})
            chosen.append(20 if k < longer else 10)
            rejected.append(15)
    return _rows(strata), chosen, rejected


def test_simpson_reversal_of_length_bias_across_strata():
    rows, chosen, rejected = _simpson_set()
    bias = length_bias(pl.DataFrame(rows), chosen, rejected)
    assert bias["by_stratum"]["source"]["A"]["chosen_longer_share"] == 0.74
    assert bias["by_stratum"]["source"]["B"]["chosen_longer_share"] == 0.36
    flagged = {(f["factor"], f["confounder"]): f for f in bias["simpson"]["flagged"]}
    check = flagged[("source = A", "category")]
    assert check["reversal"] and check["crude"]["odds_ratio"] > 1 > check["mantel_haenszel_odds_ratio"]
    assert (
        "more often than the others overall" in check["reading"]
        and "less often within each category" in (check["reading"])
    )
    assert bias["simpson"]["checked"] == 2  # source = A across category, category = x across source


def test_no_flag_when_strata_do_not_confound():
    rng = np.random.default_rng(0)
    strata = [{"source": s, "category": c} for s in "AB" for c in "xy" for _ in range(50)]
    chosen = rng.integers(1, 100, len(strata))
    bias = length_bias(_rows(strata), chosen, np.full(len(strata), 50))
    assert bias["simpson"]["checked"] == 2 and bias["simpson"]["flagged"] == []


def test_length_matched_leaves_half_chosen_longer_in_every_stratum_whatever_the_order():
    rows, chosen, rejected = _simpson_set()
    rows[0]["id"], chosen[0], rejected[0] = "tie", 15, 15
    subset, info = length_matched(rows, chosen, rejected, ["source", "category"], seed=7)
    kept = {r["id"] for r in subset}
    lengths = {r["id"]: (c, j) for r, c, j in zip(rows, chosen, rejected)}
    for source in "AB":
        for category in "xy":
            ids = [r["id"] for r in subset if (r["source"], r["category"]) == (source, category)]
            longer = sum(lengths[i][0] > lengths[i][1] for i in ids)
            shorter = sum(lengths[i][0] < lengths[i][1] for i in ids)
            assert longer == shorter
    assert "tie" in kept
    assert info["dropped"] == len(rows) - len(subset) == sum(s["dropped"] for s in info["by_stratum"].values())
    assert info["by_stratum"]["source=A, category=x"] == {
        "chosen_longer": 71,
        "rejected_longer": 18,
        "ties": 1,
        "dropped": 53,
    }
    order = list(range(len(rows)))
    random.Random(1).shuffle(order)
    again, _ = length_matched(
        [rows[i] for i in order],
        [chosen[i] for i in order],
        [rejected[i] for i in order],
        ["source", "category"],
        seed=7,
    )
    assert {r["id"] for r in again} == kept
    frame, _ = length_matched(pl.DataFrame(rows), chosen, rejected, ["source", "category"], seed=7)
    assert isinstance(frame, pl.DataFrame) and set(frame["id"]) == kept
    other, _ = length_matched(rows, chosen, rejected, ["source", "category"], seed=8)
    assert {r["id"] for r in other} != kept


# --- summary -------------------------------------------------------------------------------------------


def test_summary_counts_reasons_and_bias_without_and_with_a_tokenizer(qwen2):
    rows = [r for r, _ in LABELLED] + [pair("long_chosen", _words(120, 1), _words(10, 2))]
    plain = pair_summary(rows)
    assert plain["pairs"] == len(rows) and plain["length_bias"]["unit"] == "words"
    assert plain["checks"]["counts"]["identical_sides"] == {"count": 1, "examples": ["same"]}
    assert plain["checks"]["flagged_pairs"] == sum(1 for _, e in LABELLED if e)
    full = pair_summary(rows, qwen2, max_length=64)
    assert full["length_bias"]["unit"] == "tokens"
    assert full["checks"]["counts"]["chosen_loses_end_of_turn"]["examples"] == ["long_chosen"]
    assert set(full["tokens"]["truncation"]) == {"keep_start", "keep_end"}
