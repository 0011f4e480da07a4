"""Sequence classification: ê is the error rate over held-out examples."""

from __future__ import annotations

import re

import torch

from ..data import label_order
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
        self.pad, self.seq_len = specials.id(tok, "pad"), seq_len
        self.train = self._encode(tok, train, seq_len)
        order = torch.randperm(len(heldout), generator=torch.Generator().manual_seed(seed + 1))
        held = self._encode(tok, [heldout[i] for i in order.tolist()], seq_len)
        self.heldout = self.collate(held[:eval_size])
        rest = held[eval_size:]
        self.test = self.collate([rest[i] for i in cap_rows(len(rest), seed + 2).tolist()]) if rest else None

    def encode_test(self, tok, examples: list, seed: int) -> Batch:
        unknown = sorted({e.label for e in examples} - set(self.label_names))
        if unknown:
            raise DataError(f"the test data has labels the training data lacks: {', '.join(unknown[:4])}")
        return self.collate(self._encode(tok, examples, self.seq_len))

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
    labelled = True
    # [CLS] and [SEP] take two places: at L = 1 or 2 every input is [CLS] [SEP] (or less), no text.
    min_seq_len = 3
    min_seq_text = "[CLS], one token of text, [SEP]"
    usage = ('from transformers import pipeline\n'
             'classify = pipeline("text-classification", model="PATH")')

    def check_examples(self, examples: list, source: str, label_field: str) -> None:
        unlabelled = sum(e.label is None for e in examples)
        if unlabelled:
            raise DataError(f"{source}: {unlabelled} examples have no label field {label_field!r} (or a null "
                            f"or empty one); classification needs a label for each")
        names = label_order(e.label for e in examples)
        if len(names) < 2:
            raise DataError(f"{source}: classification needs at least 2 labels, found {names}")

    def fit_head(self, examples: list, config: dict) -> tuple[list, list[str] | None, str | None]:
        classes, relabel, why = head_labels({e.label for e in examples}, config)
        if classes is None:
            return examples, None, why
        return [type(e)(e.text, relabel[e.label]) for e in examples], classes, None

    def data(self, tok, specials, train, heldout, settings, eval_size, seed, layout="texts",
             classes: list[str] | None = None) -> ClassificationData:
        labels = classes or label_order(e.label for e in train + heldout)
        return ClassificationData(tok, specials, train, heldout, settings.seq_len, eval_size, seed, labels, layout)

    def check_teacher(self, config, data, vocab_size: int) -> str | None:
        if config.num_labels != data.num_labels:
            return f"{config.num_labels} labels, the data has {data.num_labels}"
        # Named classes must be the data's, in the same order: a teacher whose class 0 means another
        # label would teach every answer inverted.
        theirs = [str(config.id2label[i]) for i in range(config.num_labels)]
        if not all(GENERIC.fullmatch(name) for name in theirs) and theirs != list(data.label_names):
            return f"its classes are {', '.join(theirs)} in that order; the study's are {', '.join(data.label_names)}"
        return None


GENERIC = re.compile(r"LABEL_\d+")  # transformers' names for classes nobody named


def head_labels(labels: set[str], config: dict) -> tuple[list[str] | None, dict[str, str], str | None]:
    """How the data's ``labels`` meet a checkpoint's classifier (its config's ``id2label``): (its
    classes in index order, data label → class name, None), or (None, {}, why it cannot be used).

    A label that is one of the classifier's names is that class; integer labels 0..n-1 are class
    indices (the classifier's names then name them). Anything else would be a guess about which
    output means what, so the classifier is not used.
    """
    id2label = config.get("id2label") or {}
    try:
        classes = [str(id2label.get(str(i), id2label.get(i))) for i in range(len(id2label))]
    except (TypeError, AttributeError):
        classes = []
    if not classes or "None" in classes:
        return None, {}, "its config.json names no classes (id2label)"
    named = [c for c in classes if not GENERIC.fullmatch(c)]
    if named and labels <= set(classes):
        return classes, {label: label for label in labels}, None
    if all(re.fullmatch(r"[0-9]+", label) for label in labels) and max(int(label) for label in labels) < len(classes):
        names = classes if named else [str(i) for i in range(len(classes))]
        return names, {label: names[int(label)] for label in labels}, None
    shown = ", ".join(sorted(labels)[:4]) + (", …" if len(labels) > 4 else "")
    if not named:
        return None, {}, (f"its classes are unnamed ({', '.join(classes[:4])}), so which of the data's labels "
                          f"({shown}) each one means is unknown; name them in config.json's id2label, or use "
                          f"integer labels 0..{len(classes) - 1}")
    return None, {}, f"its classes are {', '.join(classes[:6])}; the data's labels are {shown}"
