"""The task interface: what ê is measured on, and everything about it.

A task owns its data (how examples become training batches and the fixed held-out batches
B), its loss, its ê metric on B, and what a teacher must share with the student. The family
owns the model and its logits; training (``ose.train``) joins the two.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import DataError


@dataclass
class Batch:
    input_ids: torch.Tensor               # (N, L)
    attention_mask: torch.Tensor          # (N, L)
    labels: torch.Tensor                  # one target per row of the task's logits
    masked: torch.Tensor | None = None    # MLM: bool (N, L), the positions the logits are taken at

    def to(self, device: str) -> Batch:
        if device == "cpu":
            return self
        return Batch(*(t.to(device) if t is not None else None for t in
                       (self.input_ids, self.attention_mask, self.labels, self.masked)))


class TaskData:
    """The encoded training set and the fixed held-out batches B of one task."""

    train: object              # what train_batches draws from
    heldout: Batch             # B
    num_labels: int = 0        # classes of a classification head (0: none)
    label_names: list[str] = []
    specials: object = None    # ose.data.Specials: the tokens its inputs were built with
    train_unit: str            # what one training item is, for messages: "examples", "blocks of L tokens"

    def train_size(self) -> int:
        """How many items one epoch of training batches draws from."""
        return len(self.train)

    @abstractmethod
    def train_batches(self, batch_size: int, generator: torch.Generator):
        """Endless seeded training batches."""

    @abstractmethod
    def chunks(self, size: int):
        """B in batches of at most ``size`` rows, each with its own targets."""


class BlockData(TaskData):
    """Texts joined by the end token, cut into blocks of L tokens, each starting with the begin
    token ([CLS] for ose's WordPiece); the targets of a batch are positions marked in
    ``masked``, stored flat in row order."""

    def split_blocks(self, tok, specials, train: list, heldout: list, seq_len: int, eval_size: int, seed: int):
        """Training blocks (kept as ``self.train``), and ``eval_size`` held-out blocks drawn with a
        generator seeded by ``seed``, returned with it (it draws B's masks next, where a task has any)."""
        self.train_unit = f"blocks of {seq_len} tokens"
        self.specials = specials
        self.train = self.blocks(tok, train, seq_len)
        held = self.blocks(tok, heldout, seq_len)
        if len(self.train) < 1 or len(held) < 1:
            raise DataError(f"too little text for blocks of {seq_len} tokens in train and held-out parts")
        g = torch.Generator().manual_seed(seed + 1)
        return held[torch.randperm(len(held), generator=g)[:eval_size]], g

    def blocks(self, tok, examples: list, seq_len: int) -> torch.Tensor:
        sep, cls = self.specials.id(tok, "end"), self.specials.id(tok, "begin")
        stream = []
        for enc in tok.encode_batch([e.text for e in examples], add_special_tokens=False):
            stream.extend(enc.ids)
            stream.append(sep)
        body = seq_len - 1
        n = len(stream) // body
        if n == 0:
            return torch.empty(0, seq_len, dtype=torch.long)
        rows = torch.tensor(stream[: n * body], dtype=torch.long).view(n, body)
        return torch.cat([torch.full((n, 1), cls, dtype=torch.long), rows], dim=1)

    def chunks(self, size: int):
        b = self.heldout
        first = 0  # targets are stored flat, in row order: each chunk takes the next ones
        for start in range(0, b.input_ids.shape[0], size):
            rows = slice(start, start + size)
            n = int(b.masked[rows].sum())
            yield Batch(b.input_ids[rows], b.attention_mask[rows], b.labels[first: first + n], b.masked[rows])
            first += n


class Task(ABC):
    name: str
    teacher_class: str   # the transformers Auto class a teacher checkpoint loads with
    needs: tuple[str, ...] = ("begin", "end")  # the roles of ose.data.Specials its inputs are built with
    generates: bool = False  # a language model that continues text (its export's template adds no end token)

    def check_examples(self, examples: list, source: str, label_field: str) -> None:
        """Refuse examples this task cannot learn from (one-line DataError)."""

    @abstractmethod
    def data(self, tok, specials, train: list, heldout: list, settings, eval_size: int, seed: int) -> TaskData:
        """Encode the split examples: training items and the held-out batches B."""

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(logits.float(), batch.labels)

    def score(self, logits: torch.Tensor, batch: Batch) -> tuple[int, float, int]:
        """(wrong predictions, summed cross-entropy, targets) on one chunk of B: ê's parts."""
        out = logits.float()
        ce = F.cross_entropy(out, batch.labels, reduction="sum").item()
        return int((out.argmax(-1) != batch.labels).sum().item()), ce, batch.labels.numel()

    def teacher_logits(self, teacher, batch: Batch) -> torch.Tensor:
        return teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits

    @abstractmethod
    def check_teacher(self, config, data: TaskData, vocab_size: int) -> str | None:
        """Why a teacher with this transformers ``config`` cannot teach this task's student."""
