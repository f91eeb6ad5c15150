"""`classify`: distil a selection into a fastText classifier that scores every record (DCLM style).

Training labels come from the `retrieved` column a `retrieve` stage wrote (selected = positive,
embedded but not selected = negative; or random unlabelled records as negatives), or from any
label column with a chosen positive value. A seeded held-out share measures the classifier
against those labels (precision, recall, ROC AUC); then every record gets `quality_score`
(the probability of the positive class) and is kept or dropped by a threshold or a top
fraction. The model is saved with the shards (`artifacts/<stage>/model.bin`) so other projects
score their own pools with it.
"""

from __future__ import annotations

import random
import re
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from curate.errors import ConfigError
from curate.records import content_texts
from curate.schema import StrictModel
from curate.selection import select
from curate.stages.base import DROP, KEEP, Stage, rejected_by, require_columns, with_decisions

_SPACE = re.compile(r"\s+")
POS, NEG = "__label__pos", "__label__neg"


class FastTextParams(StrictModel):
    epoch: int = Field(10, ge=1, le=200)
    lr: float = Field(0.5, gt=0.0, le=5.0)
    word_ngrams: int = Field(2, ge=1, le=5)
    dim: int = Field(32, ge=4, le=300)
    min_count: int = Field(1, ge=1)
    max_chars: int = Field(4000, ge=100, description="characters of each record the model reads")


class Labels(StrictModel):
    column: str = "retrieved"
    positive: str | bool = True
    negatives: Literal["labelled", "random"] = "labelled"  # the column's other values, or random other records
    negatives_per_positive: float = Field(1.0, gt=0.0, le=20.0)


class Threshold(StrictModel):
    by: Literal["threshold", "top_fraction", "none"] = "threshold"
    value: float = Field(0.5, ge=0.0, le=1.0)


class ClassifyRules(StrictModel):
    labels: Labels = Field(default_factory=Labels)
    fasttext: FastTextParams = Field(default_factory=FastTextParams)
    holdout: float = Field(0.2, gt=0.0, lt=1.0)
    chat_roles: Literal["all", "user", "assistant"] = "all"
    select: Threshold = Field(default_factory=Threshold)
    action: Literal["filter", "label"] = "filter"
    min_training_rows: int = Field(20, ge=2)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "ClassifyRules":
        if self.select.by == "top_fraction" and self.select.value == 0:
            raise ValueError("top_fraction needs a value above 0")
        return self


def _line(text: str, max_chars: int) -> str:
    return _SPACE.sub(" ", text[:max_chars].lower()).strip()


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank-sum formula (ties count one half)."""
    pos, neg = int(labels.sum()), int((~labels).sum())
    if not pos or not neg:
        return None
    ranks = pl.Series(scores).rank("average").to_numpy()
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


class BinaryMetrics(StrictModel):
    rows: int
    positives: int
    precision: float | None
    recall: float | None
    roc_auc: float | None


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> BinaryMetrics:
    pred = scores >= threshold
    tp, fp, fn = int((pred & labels).sum()), int((pred & ~labels).sum()), int((~pred & labels).sum())
    auc = roc_auc(labels, scores)
    return BinaryMetrics(
        rows=int(len(labels)),
        positives=int(labels.sum()),
        precision=round(tp / (tp + fp), 4) if tp + fp else None,
        recall=round(tp / (tp + fn), 4) if tp + fn else None,
        roc_auc=round(auc, 4) if auc is not None else None,
    )


class ClassifySummary(StrictModel):
    training_rows: int
    holdout_rows: int
    holdout: BinaryMetrics  # against the labels it learned from, on rows it did not train on
    train: BinaryMetrics
    labels_from: str
    selected: int
    records: int
    cut: float | None  # the lowest selected score
    select: dict
    action: str
    score_bins: list[int]
    fasttext: dict
    model: str | None  # the published model file, artifacts/<stage>/model.bin


class ClassifyStage(Stage):
    stage = "classify"
    kind = "global"
    Summary = ClassifySummary
    report_key = "classifiers"
    Rules = ClassifyRules

    @classmethod
    def criteria(cls, rules: ClassifyRules, rejected: pl.DataFrame) -> list[tuple[str, ClassifyRules]]:
        if not rejected_by(rejected, "classify:below_threshold"):
            return []
        return [("classifier threshold", rules.model_copy(update={"action": "label"}))]

    @classmethod
    def requires(cls, rules: ClassifyRules) -> list[str]:
        return [rules.labels.column]

    @classmethod
    def produces(cls, rules: ClassifyRules) -> list[str]:
        return ["quality_score"]

    def _training_rows(self, df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(row numbers, is positive) of the records the classifier learns from."""
        lab = self.rules.labels
        require_columns(
            "classify",
            df,
            self.requires(self.rules),
            "; labels come from a retrieve stage's `retrieved` column or a label column",
        )
        values = df[lab.column].to_list()
        wanted = str(lab.positive) if df[lab.column].dtype == pl.Utf8 else lab.positive
        pos = [i for i, v in enumerate(values) if v is not None and v == wanted]
        if lab.negatives == "labelled":
            neg = [i for i, v in enumerate(values) if v is not None and v != wanted]
        else:
            neg = [i for i, v in enumerate(values) if v is None or v != wanted]
        rng = random.Random(self.rules.seed)
        limit = int(round(len(pos) * lab.negatives_per_positive))
        if len(neg) > limit:
            neg = sorted(rng.sample(neg, limit))
        rows = np.array(pos + neg, dtype=np.int64)
        return rows, np.array([True] * len(pos) + [False] * len(neg))

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        import fasttext

        r = self.rules
        rows, positive = self._training_rows(df)
        if len(rows) < r.min_training_rows or positive.all() or not positive.any():
            raise ConfigError(
                f"classify: needs at least {r.min_training_rows} labelled records of both classes to train on; "
                f"got {int(positive.sum())} positive and {int((~positive).sum())} negative "
                f"(from column '{r.labels.column}')"
            )
        texts = [_line(t, r.fasttext.max_chars) for t in content_texts(df, r.chat_roles)]
        order = np.random.default_rng(r.seed).permutation(len(rows))
        cut = max(1, int(round(len(rows) * r.holdout)))
        held, train = order[:cut], order[cut:]
        p = r.fasttext
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.txt"
            path.write_text(
                "".join(f"{POS if positive[j] else NEG} {texts[rows[j]]}\n" for j in train), encoding="utf-8"
            )
            model = fasttext.train_supervised(
                str(path),
                epoch=p.epoch,
                lr=p.lr,
                wordNgrams=p.word_ngrams,
                dim=p.dim,
                minCount=p.min_count,
                thread=1,
                seed=r.seed,
                verbose=0,
            )
        scores = self._scores(model, texts)
        holdout = binary_metrics(positive[held], scores[rows[held]])
        train_fit = binary_metrics(positive[train], scores[rows[train]])
        chosen = select(scores, r.select.by, r.select.value).tolist()
        n = df.height
        drop = r.action == "filter"
        actions = [DROP if (drop and not c) else KEEP for c in chosen]
        rules_ = ["classify:below_threshold" if (drop and not c) else None for c in chosen]
        reasons = [
            f"quality_score {s:.3f} below the cut ({r.select.by} {r.select.value:g})" if (drop and not c) else None
            for s, c in zip(scores.tolist(), chosen)
        ]
        if self.artifacts_dir is not None:
            self.artifacts_dir.mkdir(parents=True, exist_ok=True)
            model.save_model(str(self.artifacts_dir / "model.bin"))
        counts, _ = np.histogram(scores, bins=20, range=(0.0, 1.0))
        self.summary = ClassifySummary(
            training_rows=int(len(train)),
            holdout_rows=int(len(held)),
            holdout=holdout,
            train=train_fit,
            labels_from=r.labels.column,
            selected=int(sum(chosen)),
            records=n,
            cut=round(float(scores[chosen].min()), 4) if any(chosen) else None,
            select=r.select.model_dump(),
            action=r.action,
            score_bins=counts.tolist(),
            fasttext=p.model_dump(),
            model="artifacts/{}/model.bin".format(self.name) if self.artifacts_dir is not None else None,
        )
        return with_decisions(
            df.with_columns(pl.Series("quality_score", scores.astype(np.float32))), actions, rules_, reasons
        )

    @staticmethod
    def _scores(model, texts: list[str]) -> np.ndarray:
        labels, probs = model.predict(texts, k=2)
        out = np.empty(len(texts), np.float64)
        for i, (ls, ps) in enumerate(zip(labels, probs)):
            d = dict(zip(ls, ps))
            out[i] = min(1.0, max(0.0, float(d.get(POS, 1.0 - d.get(NEG, 0.0)))))
        return out
