"""The Llama family's closed forms against the real transformers models (eager attention)."""

import dataclasses
import random

import pytest
from counting import matmul_mults, meta_model, numel, traced_flops

from ose import load_space
from ose.families import get_family

llama = get_family("llama")


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("preset", ["llama-tiny", "llama-paper"])
def test_params_and_matmul_mults_equal_the_built_model_for_every_architecture(preset, tied):
    space = load_space(preset)
    settings = dataclasses.replace(space.settings, seq_len=8, tie_embeddings=tied)  # flops scale in L
    for xi in space.architectures():
        model = meta_model(llama, xi, settings)
        assert numel(model) == llama.cost(xi, settings).params, xi
        assert traced_flops(model, settings.seq_len) == 2 * matmul_mults(llama, xi, settings), xi


@pytest.mark.parametrize("head", ["lm", "none"])
def test_random_off_grid_architectures_with_grouped_key_value_heads(head):
    rng = random.Random(11)
    for _ in range(12):
        K = rng.choice([1, 2, 3])
        A = K * rng.choice([1, 2, 4])
        xi = {"D": rng.randint(1, 4), "A": A, "K": K, "H": A * 2 * rng.randint(1, 12), "I": rng.randint(1, 200)}
        s = llama.settings_type(vocab_size=rng.randint(5, 3000), max_positions=64, seq_len=rng.randint(1, 40),
                                tie_embeddings=rng.random() < 0.5, head=head)
        model = meta_model(llama, xi, s)
        assert numel(model) == llama.cost(xi, s).params, (xi, s)
        assert traced_flops(model, s.seq_len) == 2 * matmul_mults(llama, xi, s), (xi, s)


def test_parts_split_embeddings_layers_and_head():
    s = llama.settings_type(vocab_size=1000, tie_embeddings=False)
    xi = {"D": 2, "A": 4, "K": 2, "H": 64, "I": 96}
    model = meta_model(llama, xi, s)
    p = llama.params(xi, s)
    assert p["A"] == numel(model.model.embed_tokens)
    assert p["B"] == numel(model.model.layers)
    assert p["C"] == numel(model.model.norm) + numel(model.lm_head)
    tied = llama.params(xi, dataclasses.replace(s, tie_embeddings=True))
    assert tied["C"] == numel(model.model.norm) and tied["A"] == p["A"]


def test_smollm_135m_counts_its_published_size():
    """SmolLM-135M's published configuration: 134,515,008 parameters (tied embeddings)."""
    space = load_space("llama-paper")
    assert space.max_cost.params == 134_515_008


def test_unbuildable_architectures_are_reported():
    assert "not divisible by K=3" in llama.check({"D": 1, "A": 4, "K": 3, "H": 16, "I": 4})
    assert "H=18 is not divisible by A=4" in llama.check({"D": 1, "A": 4, "K": 2, "H": 18, "I": 4})
    assert llama.check({"D": 1, "A": 4, "K": 2, "H": 16, "I": 4}) is None
    assert "head size H/A=3 is odd" in llama.check({"D": 1, "A": 2, "K": 1, "H": 6, "I": 4})


def test_a_space_file_may_write_rope_theta_as_an_integer(tmp_path):
    from ose.space import SpaceError

    text = ('family = "llama"\n[parameters]\nD = [1]\nA = [2]\nK = [1]\nH = [64]\nI = [64]\n'
            '[maximum_point]\nD = 1\nA = 2\nK = 1\nH = 64\nI = 64\n[settings]\nrope_theta = {}\n')
    (tmp_path / "s.toml").write_text(text.format(500000))
    assert load_space(str(tmp_path / "s.toml")).settings.rope_theta == 500000.0
    (tmp_path / "s.toml").write_text(text.format(0))
    with pytest.raises(SpaceError, match="rope_theta must be positive"):
        load_space(str(tmp_path / "s.toml"))
