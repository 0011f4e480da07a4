"""The closed forms against the real transformers models."""

import dataclasses
import random

import pytest
import torch
from counting import matmul_mults, meta_model, numel, traced_flops
from torch.utils.flop_counter import FlopCounterMode

from ose import load_space
from ose.families import get_family

bert = get_family("bert")


@pytest.mark.parametrize("preset", ["bert-tiny", "bert-paper"])
def test_params_and_matmul_mults_equal_the_built_model_for_every_architecture(preset):
    space = load_space(preset)
    settings = dataclasses.replace(space.settings, seq_len=16)  # flops scale exactly in L; keep traces small
    for xi in space.architectures():
        model = meta_model(bert, xi, settings)
        assert numel(model) == bert.cost(xi, settings).params, xi
        # FlopCounterMode counts 2 FLOPs per multiply-add of a matrix product.
        assert traced_flops(model, settings.seq_len) == 2 * matmul_mults(bert, xi, settings), xi


@pytest.mark.parametrize("head", ["classifier", "mlm", "none"])
def test_random_off_grid_architectures_and_settings(head):
    rng = random.Random(7)
    for _ in range(12):
        A = rng.choice([1, 2, 3, 5, 6, 7])
        xi = {"D": rng.randint(1, 5), "A": A, "H": A * rng.randint(1, 40), "I": rng.randint(1, 300)}
        s = bert.settings_type(vocab_size=rng.randint(5, 3000), max_positions=rng.randint(40, 200),
                              type_vocab_size=rng.randint(1, 4), seq_len=rng.randint(1, 40), head=head,
                              num_labels=rng.randint(1, 9))
        model = meta_model(bert, xi, s)
        cost = bert.cost(xi, s)
        assert numel(model) == cost.params, (xi, s)
        assert traced_flops(model, s.seq_len) == 2 * matmul_mults(bert, xi, s), (xi, s)


def test_parts_split_embeddings_encoder_and_head():
    s = bert.settings_type()
    xi = {"D": 4, "A": 8, "H": 1024, "I": 768}
    model = meta_model(bert, xi, s)
    p = bert.params(xi, s)
    assert p["A"] == numel(model.bert.embeddings)
    assert p["B"] == numel(model.bert.encoder)
    assert p["C"] == numel(model.bert.pooler) + numel(model.classifier)


def test_real_forward_pass_counts_the_same_as_meta():
    s = bert.settings_type(vocab_size=100, max_positions=32, seq_len=8)
    xi = {"D": 2, "A": 2, "H": 16, "I": 32}
    model = bert.build(xi, s, attn="eager").eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(input_ids=torch.randint(0, 100, (1, 8)))
    assert counter.get_total_flops() == 2 * matmul_mults(bert, xi, s)


def test_operation_kinds_grow_with_the_architecture():
    s = bert.settings_type()
    small = bert.cost({"D": 2, "A": 4, "H": 512, "I": 256}, s)
    big = bert.cost({"D": 4, "A": 4, "H": 512, "I": 256}, s)
    for k in ("mults", "adds", "other"):
        assert getattr(big.parts["B"], k) == 2 * getattr(small.parts["B"], k)
        assert getattr(big.parts["A"], k) == getattr(small.parts["A"], k)
    assert small.other > 0 and small.adds > 0


def test_unbuildable_architecture_is_reported():
    assert "divisible" in bert.check({"D": 1, "A": 3, "H": 16, "I": 4})
    assert bert.check({"D": 1, "A": 4, "H": 16, "I": 4}) is None
