"""Causal language modelling (next-token prediction), the task of decoder families.

ê is the next-token error rate on B: at every position of a block that has a next token, the
argmax of the vocabulary projection against that token; ``--metric loss`` gives the
cross-entropy instead (its exponential is B's perplexity).
"""

from __future__ import annotations

import torch

from .base import Batch, BlockData, Task, cap_rows


class CLMData(BlockData):
    """Blocks of L tokens; the output at every position but the last is scored against the next token."""

    def __init__(self, tok, specials, train: list, heldout: list, seq_len: int, eval_size: int, seed: int,
                 layout: str):
        held, _, test = self.split_blocks(tok, specials, train, heldout, seq_len, eval_size, seed, layout)
        self.heldout = self.batch(held)
        test = test[cap_rows(len(test), seed + 2)]
        self.test = self.batch(test) if len(test) else None

    @staticmethod
    def batch(blocks: torch.Tensor) -> Batch:
        positions = torch.ones_like(blocks, dtype=torch.bool)
        positions[:, -1] = False  # the last token has no next one
        return Batch(blocks, torch.ones_like(blocks), blocks[:, 1:].reshape(-1), positions)

    def collate(self, items: torch.Tensor, generator: torch.Generator) -> Batch:
        return self.batch(items)


class CausalLM(Task):
    name = "clm"
    head = "causal-lm"
    needs = ("begin",)  # texts are joined with the end token, the begin one where a tokenizer has only that
    generates = True
    target_unit = "next-token positions"
    # A block is the begin token and L − 1 tokens of text (L = 1 leaves none: division by zero). At
    # L = 2 the one target is predicted from the begin token alone, a guess without context; from
    # L = 3 a target is predicted from text.
    min_seq_len = 3
    usage = ('from transformers import AutoModelForCausalLM, AutoTokenizer\n'
             'model = AutoModelForCausalLM.from_pretrained("PATH")\n'
             'tokenizer = AutoTokenizer.from_pretrained("PATH")\n'
             'ids = tokenizer("the weather today", return_tensors="pt").input_ids\n'
             'print(tokenizer.decode(model.generate(ids, max_new_tokens=20)[0]))')

    def data(self, tok, specials, train, heldout, settings, eval_size, seed, layout="texts") -> CLMData:
        return CLMData(tok, specials, train, heldout, settings.seq_len, eval_size, seed, layout)

    def check_teacher(self, config, data, vocab_size: int) -> str | None:
        if config.vocab_size != vocab_size:
            return (f"vocabulary of {config.vocab_size} does not match the student's {vocab_size}; "
                    f"the teacher needs the same tokenizer")
        return None
