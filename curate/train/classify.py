"""Classification on curated shards: LoRA on the base model with a classification head, and metrics a
reviewer can act on — per label, a confusion matrix, and the same per stratum, so that a Simpson-style
reversal in the model's errors shows.

A classification set is what `pipelines/classification.yaml` (or `curate init` on a labelled file)
publishes: texts with a label column, balanced and split stratified by label. The trainer picks this
task when the records are texts with a label (`task: auto`), or when told (`task: classification`).

The head is the base's own sequence-classification class (`Qwen2ForSequenceClassification`: a linear
`score` layer on the last real token), trained in full beside the LoRA adapters (peft's SEQ_CLS task
saves it with the adapter). The loss weighs each class by n / (classes × n_class) unless
`class_weights: none` — on shards the balance stage already balanced the weights are close to 1.
"""

from __future__ import annotations

from collections import Counter

import polars as pl

from curate.stratify import simpson_check
from curate.train.data import TrainData, TrainDataError

MAX_CLASSES = 200  # a label column with more distinct values is not a classification target
FALLBACK_STRATA = ("source", "lang")  # measured per value when the balance stage named no strata
MIN_STRATUM = 5  # per-stratum rows below this are counted but get no metrics of their own


def label_of(config, data: TrainData) -> str:
    """The label column: the config's, else the one the balance stage balanced, else `label`."""
    return config.label_column or data.stage_rules("balance").get("label") or "label"


def task_of(config, data: TrainData) -> str:
    """`classification` or `sft`: what `task: auto` means for these shards, checked when it was asked."""
    train = data.train
    label = label_of(config, data)
    labelled = label in train.columns and train[label].drop_nulls().len() > 0
    has_label = pl.col(label).is_not_null() if labelled else pl.lit(False)
    texts = train.filter(pl.col("text").is_not_null() & has_label).height if "text" in train.columns else 0
    chats = train.filter(pl.col("messages").is_not_null()).height if "messages" in train.columns else 0
    if config.task == "classification":
        if not labelled:
            raise TrainDataError(
                f"{config.shards}: task: classification needs a label column; '{label}' is not one of "
                f"{train.columns} (set label_column)"
            )
        if not texts:
            raise TrainDataError(
                f"{config.shards}: task: classification trains on labelled `text` records; these have none"
            )
        return "classification"
    if config.task == "sft":
        return "sft"
    classes = train[label].n_unique() if labelled else 0
    # labelled texts outnumber the conversations: a classification set (a chat set's labels are its metadata)
    return "classification" if texts > chats and 2 <= classes <= MAX_CLASSES else "sft"


def strata_of(config, data: TrainData, frame: pl.DataFrame) -> list[str]:
    """Columns to measure per stratum: the config's, else the balance stage's strata (those present)."""
    wanted = (
        config.strata
        if config.strata is not None
        else data.stage_rules("balance").get("strata")
        or [c for c in FALLBACK_STRATA if c in frame.columns and frame[c].n_unique() > 1]
    )
    missing = [c for c in wanted if c not in frame.columns]
    if config.strata is not None and missing:
        raise TrainDataError(f"{config.shards}: strata {missing} are not columns of the shards ({frame.columns})")
    return [c for c in wanted if c in frame.columns]


def labelled(frame: pl.DataFrame, label: str) -> pl.DataFrame:
    """The records a classifier learns from or is measured on: a text and a label."""
    return frame.filter(pl.col("text").is_not_null() & pl.col(label).is_not_null())


def class_weights(labels: list[int], classes: int, how: str) -> list[float] | None:
    if how == "none":
        return None
    counts = Counter(labels)
    return [len(labels) / (classes * counts[c]) if counts[c] else 0.0 for c in range(classes)]


def encode(tokenizer, frame: pl.DataFrame, label: str, index: dict[str, int], max_length: int) -> tuple[list, int]:
    """Token ids (cut to max_length) and the class index of every record; how many were cut."""
    texts, labels = frame["text"].to_list(), frame[label].cast(pl.Utf8).to_list()
    rows, cut = [], 0
    if not texts:
        return rows, cut
    for ids, y in zip(tokenizer(texts, add_special_tokens=False)["input_ids"], labels):
        cut += len(ids) > max_length
        rows.append({"input_ids": ids[:max_length] or [tokenizer.pad_token_id], "labels": index[y]})
    return rows, cut


def collate(pad_id: int):
    """Right-padded ids with an attention mask; the head reads the last real token."""
    import torch

    def collate_batch(batch: list[dict]) -> dict:
        width = max(len(x["input_ids"]) for x in batch)
        tails = [width - len(x["input_ids"]) for x in batch]
        return {
            "input_ids": torch.tensor([x["input_ids"] + [pad_id] * t for x, t in zip(batch, tails)]),
            "attention_mask": torch.tensor([[1] * (width - t) + [0] * t for t in tails]),
            "labels": torch.tensor([x["labels"] for x in batch]),
        }

    return collate_batch


def weighted_loss(weights: list[float] | None):
    """compute_loss for transformers' Trainer: cross-entropy over the classes, class-weighted if asked."""
    import torch

    def compute_loss(model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs.logits.float()
        weight = torch.tensor(weights, device=logits.device) if weights else None
        loss = torch.nn.functional.cross_entropy(logits, labels, weight=weight)
        return (loss, outputs) if return_outputs else loss

    return compute_loss


def predict(model, rows: list[dict], pad_id: int, batch_size: int, device: str) -> list[int]:
    import torch

    batches = collate(pad_id)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))  # less padding per batch
    predicted = [0] * len(rows)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = batches([rows[i] for i in chunk])
            batch.pop("labels")
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            for i, p in zip(chunk, logits.argmax(-1).tolist()):
                predicted[i] = p
    return predicted


def _per_label(truth: list[str], predicted: list[str], classes: list[str]) -> dict:
    out = {}
    for c in classes:
        tp = sum(t == c and p == c for t, p in zip(truth, predicted))
        fp = sum(t != c and p == c for t, p in zip(truth, predicted))
        fn = sum(t == c and p != c for t, p in zip(truth, predicted))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[c] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "support": tp + fn}
    return out


def _summary(truth: list[str], predicted: list[str], classes: list[str]) -> dict:
    per_label = _per_label(truth, predicted, classes)
    present = [c for c in classes if per_label[c]["support"]]  # macro-F1 over the labels this split holds
    return {
        "records": len(truth),
        "accuracy": round(sum(t == p for t, p in zip(truth, predicted)) / len(truth), 4) if truth else None,
        "macro_f1": round(sum(per_label[c]["f1"] for c in present) / len(present), 4) if present else None,
        "per_label": per_label,
    }


def metrics(truth: list[str], predicted: list[str], classes: list[str], strata: dict[str, list]) -> dict:
    """Accuracy, macro-F1, per-label precision/recall/F1, the confusion matrix (rows: true label, columns:
    predicted), the same per stratum, and per (stratum column, label) the Simpson check of the model's
    errors: is a label recognised better than the others overall but worse within every stratum (or the
    reverse)?"""
    out = _summary(truth, predicted, classes)
    at = {c: i for i, c in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for t, p in zip(truth, predicted):
        matrix[at[t]][at[p]] += 1
    out["confusion"] = {"labels": classes, "matrix": matrix}
    correct = [t == p for t, p in zip(truth, predicted)]
    out["strata"], out["reversals"] = {}, []
    for column, values in strata.items():
        groups: dict = {}
        for i, v in enumerate(values):
            groups.setdefault(v, []).append(i)
        out["strata"][column] = {
            str(v): (
                _summary([truth[i] for i in idx], [predicted[i] for i in idx], classes)
                if len(idx) >= MIN_STRATUM
                else {"records": len(idx)}
            )
            for v, idx in sorted(groups.items(), key=lambda kv: -len(kv[1]))
        }
        keep = [i for i, v in enumerate(values) if len(groups[v]) >= MIN_STRATUM]
        for c in classes:
            check = simpson_check(
                [correct[i] for i in keep], [truth[i] == c for i in keep], [str(values[i]) for i in keep]
            )
            if check["reversal"]:
                crude = check["crude"]["odds_ratio"]
                out["reversals"].append(
                    {
                        "stratum": column,
                        "label": c,
                        "crude_odds_ratio": crude,
                        "mantel_haenszel_odds_ratio": check["mantel_haenszel_odds_ratio"],
                        "reading": (
                            f"'{c}' is recognised {'better' if (crude or 0) > 1 else 'worse'} than the other labels "
                            f"overall but {'worse' if (crude or 0) > 1 else 'better'} within {column}: the overall "
                            "figure reflects how the strata are mixed, not the model"
                        ),
                    }
                )
    return out
