"""Sample packing: several encoded examples per row of `max_length` tokens, none seeing another.

Examples are placed first-fit in decreasing length order (deterministic: ties keep input
order). Each packed row carries `position_ids` that restart at 0 for every example; with
no attention mask and no KV cache, transformers turns those restarts into a block-diagonal causal mask
(sdpa and eager attention), and flash-attention-2 into variable-length attention, so a
token attends only to earlier tokens of its own example. The first label of every
example is ignored: it would be predicted from the previous example's last token.
Padding after the last example starts its own block, so nothing real attends to it, and
its labels are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from curate.train.encode import IGNORE


@dataclass
class PackStats:
    examples: int
    rows: int
    tokens: int
    max_length: int

    @property
    def fill(self) -> float:
        """Share of the rows' token slots holding example tokens (1.0: no padding at all)."""
        return self.tokens / (self.rows * self.max_length) if self.rows else 0.0

    def to_dict(self) -> dict:
        return {
            "examples": self.examples,
            "rows": self.rows,
            "tokens": self.tokens,
            "max_length": self.max_length,
            "fill": round(self.fill, 4),
        }


@dataclass
class TokenCount:
    """Token positions of the training batches: `tokens` real ones, `slots` all of them (padding
    included). Padding is what the attention mask masks, or, in packed rows (no mask), the pad id."""

    pad_id: int
    tokens: int = 0
    slots: int = 0

    def add(self, batch: dict) -> None:
        if "input_ids" not in batch:  # a trainer whose batches name their tokens otherwise: not counted
            return
        ids = batch["input_ids"]
        self.slots += ids.numel()
        real = batch["attention_mask"].sum() if "attention_mask" in batch else (ids != self.pad_id).sum()
        self.tokens += int(real)

    @property
    def padding_share(self) -> float:
        return 1 - self.tokens / self.slots if self.slots else 0.0


def pack(examples: list[dict], max_length: int) -> tuple[list[dict], PackStats]:
    """Rows of `input_ids`, `labels`, `position_ids`, each at most `max_length` tokens long."""
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    bins: list[list[int]] = []
    free: list[int] = []
    for i in order:
        size = len(examples[i]["input_ids"])
        if size > max_length:
            raise ValueError(f"example {i} has {size} tokens, more than max_length={max_length}")
        slot = next((b for b, room in enumerate(free) if room >= size), None)
        if slot is None:
            bins.append([i])
            free.append(max_length - size)
        else:
            bins[slot].append(i)
            free[slot] -= size
    rows = []
    for members in bins:
        ids, labels, positions = [], [], []
        for i in members:
            example = examples[i]
            ids += example["input_ids"]
            labels += [IGNORE] + example["labels"][1:]
            positions += list(range(len(example["input_ids"])))
        rows.append({"input_ids": ids, "labels": labels, "position_ids": positions})
    tokens = sum(len(e["input_ids"]) for e in examples)
    return rows, PackStats(len(examples), len(rows), tokens, max_length)


def collate(pad_id: int):
    """Batches padded to their longest row, padding labels ignored. One example per row gets an
    attention mask; packed rows (with `position_ids`) get none, see the module doc."""
    import torch

    def collate_batch(batch: list[dict]) -> dict:
        width = max(len(x["input_ids"]) for x in batch)
        tails = [width - len(x["input_ids"]) for x in batch]
        out = {
            "input_ids": torch.tensor([x["input_ids"] + [pad_id] * t for x, t in zip(batch, tails)]),
            "labels": torch.tensor([x["labels"] + [IGNORE] * t for x, t in zip(batch, tails)]),
        }
        if "position_ids" not in batch[0]:
            out["attention_mask"] = torch.tensor([[1] * (width - t) + [0] * t for t in tails])
            return out
        out["position_ids"] = torch.tensor([x["position_ids"] + list(range(t)) for x, t in zip(batch, tails)])
        # use_cache=False: transformers builds the packed mask only without a KV cache, which a model in
        # eval mode (or with use_cache in its config) would otherwise create.
        out["use_cache"] = False
        return out

    return collate_batch
