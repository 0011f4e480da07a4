"""The task interface: what ê is measured on, and everything about it.

A task owns its data (how examples become training batches, the fixed held-out batches B the
search selects on, and a test part nobody selects on), its loss, what counts as a correct
answer, and what a teacher must share with the student. It declares the head kind it trains
(``head``) and, in each batch it builds, the positions whose outputs carry targets
(``Batch.positions``). The family builds that head and projects the outputs at those positions
(``families.base.Family.logits``); training (``ose.train``) joins the two.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError

# How a study's held-out part is cut into B and the test part. ``texts``: B and the test part
# are built from disjoint held-out texts. ``legacy`` (studies made before the test part
# existed): B as those studies drew it, the test part from what B left; for text cut into blocks
# a text may then run across the edge of a B block into a test block.
LAYOUTS = ("texts", "legacy")
TEST_ROWS = 4096        # at most this many rows in the test part (drawn with its own seed)
VALIDATION_ROWS = 512   # rows carved from training for final training's early stop


@dataclass
class Batch:
    input_ids: torch.Tensor               # (N, L)
    attention_mask: torch.Tensor          # (N, L)
    labels: torch.Tensor                  # the targets: one per row, or one per marked position in row order
    positions: torch.Tensor | None = None  # bool (N, L): the positions whose outputs are scored; None: one
                                           # output per sequence (the head pools it)

    def to(self, device: str) -> Batch:
        if device == "cpu":
            return self
        return Batch(*(t.to(device) if t is not None else None for t in
                       (self.input_ids, self.attention_mask, self.labels, self.positions)))

    @property
    def rows(self) -> int:
        return self.input_ids.shape[0]

    def targets_per_row(self) -> torch.Tensor:
        if self.positions is None:
            return torch.ones(self.rows, dtype=torch.long)
        return self.positions.sum(1)

    def target_rows(self) -> torch.Tensor:
        """The row each target belongs to, in the order of ``labels``."""
        return torch.repeat_interleave(torch.arange(self.rows), self.targets_per_row().cpu())

    def chunks(self, size: int):
        """This batch in batches of at most ``size`` rows, each with its own targets."""
        first = 0  # targets are stored flat, in row order: each chunk takes the next ones
        counts = self.targets_per_row()
        for start in range(0, self.rows, size):
            rows = slice(start, start + size)
            n = int(counts[rows].sum())
            yield Batch(self.input_ids[rows], self.attention_mask[rows], self.labels[first: first + n],
                        None if self.positions is None else self.positions[rows])
            first += n


def take(items, idx: torch.Tensor):
    """The items at ``idx`` of a training set: a tensor of rows, or a list."""
    return items[idx] if torch.is_tensor(items) else [items[i] for i in idx.tolist()]


class TaskData:
    """The encoded data of one task: training items, B (the search selects on it), the test part."""

    train: object              # what train_batches draws from: a tensor of rows or a list of items
    heldout: Batch             # B
    test: Batch | None = None  # held-out rows nobody selects on: every final number comes from here
    validation: Batch | None = None  # rows carved from training (``with_validation``): final training's stop
    layout: str = "texts"      # how B and the test part were cut (LAYOUTS)
    num_labels: int = 0        # classes of a classification head (0: none)
    label_names: list[str] = []
    specials: object = None    # ose.data.Specials: the tokens its inputs were built with
    train_unit: str            # what one training item is, for messages: "examples", "blocks of L tokens"
    row_unit: str = "examples"  # what one row of B or the test part is
    head_unused: str | None = None  # why T's own head for the task cannot read these labels (data.prepare)
    labelled_examples: int = 0      # examples of the source that carry a label

    def train_size(self) -> int:
        """How many items one epoch of training batches draws from."""
        return len(self.train)

    @abstractmethod
    def collate(self, items, generator: torch.Generator) -> Batch:
        """Training items as one batch (random masks, where a task has any, drawn from ``generator``)."""

    def train_batches(self, batch_size: int, generator: torch.Generator):
        """Endless seeded training batches."""
        while True:
            for idx in torch.randperm(len(self.train), generator=generator).split(batch_size):
                yield self.collate(take(self.train, idx), generator)

    def chunks(self, size: int):
        """B in batches of at most ``size`` rows, each with its own targets."""
        return self.heldout.chunks(size)

    def encode_test(self, tok, examples: list, seed: int) -> Batch:
        """A test part of the user's own (``--test-data``), encoded as B is (masks drawn with ``seed + 2``)."""
        raise DataError(f"this task's data ({type(self).__name__}) cannot encode a test set of your own")

    def with_validation(self, seed: int, rows: int = VALIDATION_ROWS) -> TaskData:
        """A copy whose training set gives up ``rows`` items (at most a tenth, drawn with its own
        seed) to ``validation``: where final training sees when to stop, apart from B and the test part."""
        n = min(rows, len(self.train) // 10)
        if n < 1:
            raise DataError(f"too little training data to carve a validation part ({len(self.train)} "
                            f"{self.train_unit})")
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(seed + 3))
        out = copy.copy(self)
        out.train = take(self.train, order[n:].sort().values)
        out.validation = self.collate(take(self.train, order[:n]), torch.Generator().manual_seed(seed + 4))
        return out


def cap_rows(n: int, seed: int, cap: int = TEST_ROWS) -> torch.Tensor:
    """Which of ``n`` rows a part keeps: all, or ``cap`` of them drawn with the generator ``seed``."""
    if n <= cap:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:cap].sort().values


class BlockData(TaskData):
    """Texts joined by the end token, cut into blocks of L tokens, each starting with the begin
    token ([CLS] for ose's WordPiece); the targets of a batch are at the positions it marks."""

    def split_blocks(self, tok, specials, train: list, heldout: list, seq_len: int, eval_size: int, seed: int,
                     layout: str):
        """Training blocks (kept as ``self.train``); B, ``eval_size`` held-out blocks; and the
        test part's blocks. Returns (B's blocks, the generator that draws B's masks next, the test
        part's blocks): the test part draws its masks with its own seed, ``seed + 2``."""
        self.train_unit = self.row_unit = f"blocks of {seq_len} tokens"
        self.specials, self.layout = specials, layout
        self.begin = specials.id(tok, "begin")
        self.train = self.blocks(tok, train, seq_len)
        g = torch.Generator().manual_seed(seed + 1)
        if layout == "legacy":
            held = self.blocks(tok, heldout, seq_len)
            if len(self.train) < 1 or len(held) < 1:
                raise DataError(f"too little text for blocks of {seq_len} tokens in train and held-out parts")
            order = torch.randperm(len(held), generator=g)
            return held[order[:eval_size]], g, held[order[eval_size:]]
        # B: the first held-out texts (in the split's random order) until eval_size blocks are
        # full; the test part: the texts after the last one B touches, so that no text is in both.
        stream, starts = self.stream(tok, heldout)
        body = seq_len - 1
        n = min(eval_size, len(stream) // body)
        if len(self.train) < 1 or n < 1:
            raise DataError(f"too little text for blocks of {seq_len} tokens in train and held-out parts")
        after = next((s for s in starts if s >= n * body), len(stream))
        return self.rows_of(stream[: n * body], seq_len), g, self.rows_of(stream[after:], seq_len)

    def encode_test(self, tok, examples: list, seed: int) -> Batch:
        rows = self.blocks(tok, examples, self.train.shape[1])
        if not len(rows):
            raise DataError(f"the test data holds too little text for one block of {self.train.shape[1]} tokens")
        return self.collate(rows, torch.Generator().manual_seed(seed + 2))

    def stream(self, tok, examples: list) -> tuple[list[int], list[int]]:
        """The token ids of the texts joined by the end token, and where each text starts."""
        sep = self.specials.id(tok, "end")
        stream, starts = [], []
        for enc in tok.encode_batch([e.text for e in examples], add_special_tokens=False):
            starts.append(len(stream))
            stream.extend(enc.ids)
            stream.append(sep)
        return stream, starts

    def blocks(self, tok, examples: list, seq_len: int) -> torch.Tensor:
        return self.rows_of(self.stream(tok, examples)[0], seq_len)

    def rows_of(self, stream: list[int], seq_len: int) -> torch.Tensor:
        """Whole blocks of L tokens cut from a token stream, each led by the begin token."""
        body = seq_len - 1
        n = len(stream) // body
        if n == 0:
            return torch.empty(0, seq_len, dtype=torch.long)
        rows = torch.tensor(stream[: n * body], dtype=torch.long).view(n, body)
        return torch.cat([torch.full((n, 1), self.begin, dtype=torch.long), rows], dim=1)


class Task(ABC):
    name: str
    head: str            # the head kind it trains: sequence-classification, masked-lm, causal-lm, ...
    needs: tuple[str, ...] = ("begin", "end")  # the roles of ose.data.Specials its inputs are built with
    generates: bool = False  # a language model that continues text (its export's template adds no end token)
    target_unit: str = "examples"  # what one target of B or the test part is, for numbers reported on it
    usage: str | None = None  # the model card's snippet; PATH stands for the exported directory
    labelled: bool = False  # learns from the examples' labels: a label of the wrong type or kind is refused
    min_seq_len: int = 3  # L below this trains on inputs that hold no text to learn from
    min_seq_text: str = "the begin token and 2 of text"  # what the shortest sequence holds, for the message

    def check_seq_len(self, seq_len: int) -> None:
        """Refuse an L too short for this task, before any data is read (one-line ConfigError)."""
        if seq_len < self.min_seq_len:
            raise ConfigError(f"seq_len {seq_len} is too short for task {self.name}: it needs at least "
                              f"{self.min_seq_len} tokens per sequence ({self.min_seq_text})")

    def check_examples(self, examples: list, source: str, label_field: str) -> None:
        """Refuse examples this task cannot learn from (one-line DataError)."""

    def fit_head(self, examples: list, config: dict) -> tuple[list, list[str] | None, str | None]:
        """How T's own head for this task (its checkpoint's ``config``) reads the examples: (the
        examples relabelled as its classes name them, those classes in its order, None), or (the
        examples, None, why the head cannot be used). A language model's head reads any text."""
        return examples, None, None

    @abstractmethod
    def data(self, tok, specials, train: list, heldout: list, settings, eval_size: int, seed: int,
             layout: str = "texts") -> TaskData:
        """Encode the split examples: training items, B and the test part."""

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(logits.float(), batch.labels)

    def correct(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Which targets the outputs answer right (bool, one per target): ê is the share of wrong ones."""
        return logits.argmax(-1) == batch.labels

    def teacher_logits(self, teacher, batch: Batch) -> torch.Tensor:
        """A Hugging Face teacher's outputs at the batch's target positions (rows of ``labels``)."""
        out = teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        return out if batch.positions is None else out[batch.positions]

    @property
    def teacher_class(self) -> str | None:
        """The transformers Auto class a teacher checkpoint for this task's head loads with."""
        from ..families.base import AUTO_CLASSES

        return AUTO_CLASSES.get(self.head)

    @abstractmethod
    def check_teacher(self, config, data: TaskData, vocab_size: int) -> str | None:
        """Why a teacher with this transformers ``config`` cannot teach this task's student."""
