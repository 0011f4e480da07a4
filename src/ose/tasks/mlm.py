"""Masked-language modelling, the task of the Bort search: ê is the error rate over masked tokens."""

from __future__ import annotations

import torch

from ..data import SPECIALS
from .base import Batch, BlockData, Task, cap_rows


class MLMData(BlockData):
    """15% of positions masked, 80% [MASK] / 10% random / 10% kept; texts are concatenated and
    cut into blocks of L tokens ([CLS] …). Random replacements are drawn above ose's WordPiece specials."""

    def __init__(self, tok, specials, train: list, heldout: list, seq_len: int, eval_size: int, seed: int,
                 vocab_size: int, layout: str):
        self.ids = {role: specials.id(tok, role) for role in MLM.needs}
        self.vocab_size = vocab_size
        held, g, test = self.split_blocks(tok, specials, train, heldout, seq_len, eval_size, seed, layout)
        self.heldout = self.mask(held, g)
        test = test[cap_rows(len(test), seed + 2)]
        self.test = self.mask(test, torch.Generator().manual_seed(seed + 2)) if len(test) else None

    def mask(self, blocks: torch.Tensor, g: torch.Generator) -> Batch:
        special = (blocks == self.ids["begin"]) | (blocks == self.ids["end"]) | (blocks == self.ids["pad"])
        masked = (torch.rand(blocks.shape, generator=g) < 0.15) & ~special
        masked[:, 1] |= ~masked.any(dim=1)  # at least one target per block
        inputs = blocks.clone()
        roll = torch.rand(blocks.shape, generator=g)
        inputs[masked & (roll < 0.8)] = self.ids["mask"]
        rand = masked & (roll >= 0.8) & (roll < 0.9)
        inputs[rand] = torch.randint(len(SPECIALS), self.vocab_size, (int(rand.sum()),), generator=g)
        return Batch(inputs, torch.ones_like(inputs), blocks[masked], masked)

    def collate(self, items: torch.Tensor, generator: torch.Generator) -> Batch:
        return self.mask(items, generator)


class MLM(Task):
    name = "mlm"
    head = "masked-lm"
    needs = ("begin", "end", "pad", "mask")
    target_unit = "masked tokens"
    # A block is the begin token and L − 1 tokens of text (L = 1 leaves none: division by zero). At
    # L = 2 its one text token is always the masked target, so the input holds no text; from L = 3
    # a target usually has an unmasked token beside it.
    min_seq_len = 3
    usage = ('from transformers import pipeline\n'
             'fill = pipeline("fill-mask", model="PATH")')

    def data(self, tok, specials, train, heldout, settings, eval_size, seed, layout="texts") -> MLMData:
        return MLMData(tok, specials, train, heldout, settings.seq_len, eval_size, seed, tok.get_vocab_size(), layout)

    def check_teacher(self, config, data, vocab_size: int) -> str | None:
        if config.vocab_size != vocab_size:
            return (f"vocabulary of {config.vocab_size} does not match the student's {vocab_size}; "
                    f"the teacher needs the same tokenizer")
        return None
