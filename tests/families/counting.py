"""What the counting tests of every family share: the built model on the meta device, its
element count, the FLOPs a tracer sees, and the closed form's matrix-product multiplications."""

import torch
from torch.utils.flop_counter import FlopCounterMode


def meta_model(family, xi, settings):
    with torch.device("meta"):
        return family.build(xi, settings, attn="eager").eval()


def numel(model):
    return sum(p.numel() for p in model.parameters())  # a tied tensor is counted once


def traced_flops(model, L):
    """FlopCounterMode's count of one forward pass over L tokens: 2 per multiply-add of a matrix product."""
    ids = torch.zeros(1, L, dtype=torch.long, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(input_ids=ids)
    return counter.get_total_flops()


def matmul_mults(family, xi, settings):
    return sum(op.mults for op in family.operations(xi, settings) if op.matmul)
