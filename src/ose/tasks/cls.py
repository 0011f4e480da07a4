"""Sequence classification: ê is the error rate over held-out examples."""

from __future__ import annotations

import torch

from ..errors import DataError
from .base import Batch, Task, TaskData, cap_rows


class ClassificationData(TaskData):
    """[CLS] text [SEP], truncated to L tokens, padded to the longest in the batch. B is drawn from
    the held-out examples; the test part is the held-out examples B did not take."""

    def __init__(self, tok, specials, train: list, heldout: list, seq_len: int, eval_size: int, seed: int,
                 label_names: list[str], layout: str):
        self.specials, self.layout = specials, layout
        self.label_names = label_names
        self.num_labels = len(label_names)
        self.train_unit = self.row_unit = "examples"
        self.pad = specials.id(tok, "pad")
        self.train = self._encode(tok, train, seq_len)
        order = torch.randperm(len(heldout), generator=torch.Generator().manual_seed(seed + 1))
        held = self._encode(tok, [heldout[i] for i in order.tolist()], seq_len)
        self.heldout = self.collate(held[:eval_size])
        rest = held[eval_size:]
        self.test = self.collate([rest[i] for i in cap_rows(len(rest), seed + 2).tolist()]) if rest else None

    def _encode(self, tok, examples: list, seq_len: int):
        cls, sep = self.specials.id(tok, "begin"), self.specials.id(tok, "end")
        index = {name: i for i, name in enumerate(self.label_names)}
        encoded = tok.encode_batch([e.text for e in examples], add_special_tokens=False)
        return [([cls, *enc.ids[: seq_len - 2], sep], index[e.label]) for enc, e in zip(encoded, examples)]

    def collate(self, items, generator: torch.Generator | None = None) -> Batch:
        width = max(len(ids) for ids, _ in items)
        ids = torch.full((len(items), width), self.pad, dtype=torch.long)
        for row, (seq, _) in enumerate(items):
            ids[row, : len(seq)] = torch.tensor(seq)
        return Batch(ids, (ids != self.pad).long(), torch.tensor([y for _, y in items]))


class Classification(Task):
    name = "cls"
    head = "sequence-classification"
    needs = ("begin", "end", "pad")
    # [CLS] and [SEP] take two places: at L = 1 or 2 every input is [CLS] [SEP] (or less), no text.
    min_seq_len = 3
    min_seq_text = "[CLS], one token of text, [SEP]"
    usage = ('from transformers import pipeline\n'
             'classify = pipeline("text-classification", model="PATH")')

    def check_examples(self, examples: list, source: str, label_field: str) -> None:
        unlabelled = sum(e.label is None for e in examples)
        if unlabelled:
            raise DataError(f"{source}: {unlabelled} examples have no label field {label_field!r}; "
                            f"classification needs a label for each")
        names = sorted({e.label for e in examples})
        if len(names) < 2:
            raise DataError(f"{source}: classification needs at least 2 labels, found {names}")

    def data(self, tok, specials, train, heldout, settings, eval_size, seed, layout="texts") -> ClassificationData:
        labels = sorted({e.label for e in train + heldout})
        return ClassificationData(tok, specials, train, heldout, settings.seq_len, eval_size, seed, labels, layout)

    def check_teacher(self, config, data, vocab_size: int) -> str | None:
        if config.num_labels != data.num_labels:
            return f"{config.num_labels} labels, the data has {data.num_labels}"
        return None
