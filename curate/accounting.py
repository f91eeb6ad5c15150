"""Row accounting: for every stage, rows_in == kept + dropped + quarantined, with reasons."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import polars as pl

from curate.decisions import ACTION, AS_REJECTED, DECISION_COLUMNS, DROP, KEEP, QUARANTINE, REASON, REJECTED_LEAD, RULE
from curate.errors import AccountingError


@dataclass
class StageAccount:
    stage: str
    rows_in: int = 0
    kept: int = 0
    dropped: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # input lines that are not records and so not rows (the reader's blank lines), by kind; and notes
    # (`noted:` kinds) about rows that were kept or messages withheld (curate.withheld), by kind
    skipped: dict[str, int] = field(default_factory=dict)

    def merge(self, other: "StageAccount") -> None:
        self.rows_in += other.rows_in
        self.kept += other.kept
        self.dropped += other.dropped
        self.quarantined += other.quarantined
        self.seconds += other.seconds
        for k, v in other.reasons.items():
            self.reasons[k] = self.reasons.get(k, 0) + v
        for k, v in other.skipped.items():
            self.skipped[k] = self.skipped.get(k, 0) + v

    def check(self) -> None:
        if self.rows_in != self.kept + self.dropped + self.quarantined:
            raise AccountingError(
                f"stage '{self.stage}' lost rows: rows_in={self.rows_in} but kept={self.kept} + "
                f"dropped={self.dropped} + quarantined={self.quarantined} = "
                f"{self.kept + self.dropped + self.quarantined}"
            )
        if sum(self.reasons.values()) != self.dropped + self.quarantined:
            raise AccountingError(f"stage '{self.stage}': reason counts do not add up to dropped + quarantined")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StageAccount":
        return cls(**d)


def split_decisions(
    stage: str, before: pl.DataFrame, after: pl.DataFrame, rewrites_ids: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame, StageAccount]:
    """Split a stage's output into kept and rejected rows, checking nothing was lost or invented.
    A stage that `rewrites_ids` (pii: an id holding personal data is replaced) keeps rows in order
    and ids unique and present, but may change them."""
    missing = [c for c in DECISION_COLUMNS if c not in after.columns]
    if missing:
        raise AccountingError(f"stage '{stage}' returned no decision columns {missing}")
    if rewrites_ids:
        same = (
            after.height == before.height and after["id"].null_count() == 0 and after["id"].n_unique() == after.height
        )
    else:
        same = after.height == before.height and after["id"].equals(before["id"])
    if not same:
        raise AccountingError(
            f"stage '{stage}' returned {after.height} rows for {before.height} input rows, or changed their ids/order; "
            "a stage must mark rows, never add or remove them"
        )
    actions = after[ACTION]
    bad = actions.filter(~actions.is_in([KEEP, DROP, QUARANTINE]) | actions.is_null())
    if bad.len():
        raise AccountingError(f"stage '{stage}' returned unknown actions {bad.unique().to_list()[:5]}")
    rejected_mask = actions != KEEP
    unexplained = after.filter(rejected_mask & (pl.col(RULE).is_null() | pl.col(REASON).is_null()))
    if unexplained.height:
        raise AccountingError(
            f"stage '{stage}' rejected {unexplained.height} rows without a rule and reason (first id: "
            f"{unexplained['id'][0]})"
        )
    kept = after.filter(~rejected_mask).drop(list(DECISION_COLUMNS))
    rejected = after.filter(rejected_mask).rename(AS_REJECTED).with_columns(pl.lit(stage).alias("stage"))
    account = StageAccount(
        stage=stage,
        rows_in=before.height,
        kept=kept.height,
        dropped=int((actions == DROP).sum()),
        quarantined=int((actions == QUARANTINE).sum()),
        reasons=reason_counts(rejected),
    )
    account.check()
    return kept, rejected, account


def reason_counts(rejected: pl.DataFrame) -> dict[str, int]:
    if rejected.height == 0:
        return {}
    counts = rejected.group_by("rule").len().sort("rule")
    return dict(zip(counts["rule"].to_list(), counts["len"].to_list()))


def check_chain(accounts: list[StageAccount], final_rows: int) -> None:
    """Whole-run invariant: each stage starts with what the previous one kept, and the
    input equals the output plus everything rejected."""
    for prev, nxt in zip(accounts, accounts[1:]):
        if prev.kept != nxt.rows_in:
            raise AccountingError(
                f"stage '{nxt.stage}' received {nxt.rows_in} rows but '{prev.stage}' kept {prev.kept}"
            )
    if accounts and accounts[-1].kept != final_rows:
        raise AccountingError(f"the last stage kept {accounts[-1].kept} rows but {final_rows} were written")
    rejected = sum(a.dropped + a.quarantined for a in accounts)
    if accounts and accounts[0].rows_in != final_rows + rejected:
        raise AccountingError(f"input rows {accounts[0].rows_in} != written {final_rows} + rejected {rejected}")


def one_schema(rejected: dict[str, pl.DataFrame], record_columns: list[str]) -> dict[str, pl.DataFrame]:
    """Every stage's rejected rows with the same columns in the same order, so one read takes them all
    (`pl.read_parquet("rejected/*/*.parquet")`): the decision columns, the record columns, then every
    column any stage added (the reader's `raw` preview, `q_*` statistics, `dup_of`, ...) in pipeline
    order, null where a stage did not write it. Types are the common supertype across stages."""
    layout = rejected_layout({stage: df.schema for stage, df in rejected.items() if df.width}, record_columns)
    if layout is None:
        return rejected
    return {stage: to_layout(df, layout) for stage, df in rejected.items()}


def rejected_layout(schemas: dict[str, pl.Schema], record_columns: list[str]) -> pl.Schema | None:
    """`one_schema`'s columns, in order, with their types, from each stage's schema (None: no columns)."""
    if not schemas:
        return None
    union = pl.concat([pl.DataFrame(schema=s) for s in schemas.values()], how="diagonal_relaxed").schema
    lead = [c for c in REJECTED_LEAD if c in union]
    lead += [c for c in record_columns if c in union and c not in REJECTED_LEAD]
    return pl.Schema({c: union[c] for c in lead + [c for c in union if c not in lead]})


def to_layout(df: pl.DataFrame, layout: pl.Schema) -> pl.DataFrame:
    """`df`'s rows in the columns and types of `layout` (null where `df` has no such column)."""
    return df.select(
        [pl.col(c).cast(t) if c in df.columns else pl.lit(None, dtype=t).alias(c) for c, t in layout.items()]
    )
