"""Causal language modelling (next-token prediction), the task of decoder families.

ê is the next-token error rate on B: at every position of a block that has a next token, the
argmax of the vocabulary projection against that token; ``--metric loss`` gives the
cross-entropy instead (its exponential is B's perplexity).
"""

from __future__ import annotations

import torch

from .base import Batch, BlockData, Task


class CLMData(BlockData):
    """Blocks of L tokens; every position after the first is a target (the next token of the one before)."""

    def __init__(self, tok, specials, train: list, heldout: list, seq_len: int, eval_size: int, seed: int):
        held, _ = self.split_blocks(tok, specials, train, heldout, seq_len, eval_size, seed)
        self.heldout = self.batch(held)

    @staticmethod
    def batch(blocks: torch.Tensor) -> Batch:
        targets = torch.ones_like(blocks, dtype=torch.bool)
        targets[:, 0] = False
        return Batch(blocks, torch.ones_like(blocks), blocks[targets], targets)

    def train_batches(self, batch_size: int, generator: torch.Generator):
        while True:
            for idx in torch.randperm(len(self.train), generator=generator).split(batch_size):
                yield self.batch(self.train[idx])


class CausalLM(Task):
    name = "clm"
    teacher_class = "AutoModelForCausalLM"
    needs = ("begin",)  # texts are joined with the end token, the begin one where a tokenizer has only that
    generates = True

    def data(self, tok, specials, train, heldout, settings, eval_size, seed) -> CLMData:
        return CLMData(tok, specials, train, heldout, settings.seq_len, eval_size, seed)

    def teacher_logits(self, teacher, batch: Batch) -> torch.Tensor:
        out = teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        return out[:, :-1][batch.masked[:, 1:]]

    def check_teacher(self, config, data, vocab_size: int) -> str | None:
        if config.vocab_size != vocab_size:
            return (f"vocabulary of {config.vocab_size} does not match the student's {vocab_size}; "
                    f"the teacher needs the same tokenizer")
        return None
