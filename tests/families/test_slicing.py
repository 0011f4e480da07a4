"""Slicing a pretrained T with provenance: every unit a candidate keeps (a layer, a head with its
dimensions, a key/value group with its query heads, a feed-forward neuron, a hidden channel) holds
exactly T's rows and columns for that unit, and the units kept are the most important ones.

The expected tensors are rebuilt here unit by unit, with loops, from T's state and the recorded
provenance (``weights.Slice``), independently of the vectorised indexing in ``cut``.
"""

import pytest
import torch
from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

from ose.families import bert_weights, get_family, llama_weights
from ose.tasks.base import Batch

BERT, LLAMA = get_family("bert"), get_family("llama")


def _batch(vocab: int, seed: int = 0) -> Batch:
    ids = torch.randint(5, vocab, (6, 20), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    mask[0, 15:] = 0  # one padded row: importance averages over real tokens only
    return Batch(ids, mask, None)


def _kept_are_the_most_important(scores: torch.Tensor, kept: list[int], k: int) -> None:
    """``kept`` is k of the indices, ascending, and none dropped scores higher than one kept."""
    assert len(kept) == k and kept == sorted(kept) and len(set(kept)) == k
    dropped = [i for i in range(len(scores)) if i not in kept]
    if dropped:
        assert min(float(scores[i]) for i in kept) >= max(float(scores[i]) for i in dropped)


@pytest.fixture(scope="module")
def bert_t():
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                 intermediate_size=48, max_position_embeddings=32)).eval()
    state = bert_weights.normalize({k: v.clone() for k, v in model.state_dict().items()})
    return model, state, bert_weights.importance(model, _batch(100))


@pytest.mark.parametrize("xi", [{"D": 2, "A": 2, "H": 16, "I": 24},   # whole heads of T's size 8
                                {"D": 2, "A": 4, "H": 16, "I": 24},   # heads of 4 of T's 8 dimensions
                                {"D": 3, "A": 4, "H": 32, "I": 48}])  # T itself
def test_every_bert_unit_holds_ts_rows_for_that_unit(bert_t, xi):
    _, t, imp = bert_t
    kept = bert_weights.choose(imp, xi)
    cut = bert_weights.cut(t, kept, BERT.settings_type(vocab_size=100, max_positions=32))
    d_t, d = 8, xi["H"] // xi["A"]
    ch = kept.channels
    _kept_are_the_most_important(imp.channels, ch, xi["H"])
    _kept_are_the_most_important(imp.layers, [layer.source for layer in kept.layers], xi["D"])
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        w = f"embeddings.{name}.weight"
        for new, old in enumerate(ch):
            assert torch.equal(cut[w][:, new], t[w][:, old])
    for j, layer in enumerate(kept.layers):
        src, dst = f"encoder.layer.{layer.source}.", f"encoder.layer.{j}."
        _kept_are_the_most_important(imp.heads[layer.source], layer.heads, xi["A"])
        _kept_are_the_most_important(imp.neurons[layer.source], layer.neurons, xi["I"])
        for i, (h, dims) in enumerate(zip(layer.heads, layer.head_dims)):
            _kept_are_the_most_important(imp.head_dims[layer.source, h], dims, d)
            for r, dim in enumerate(dims):  # row r of new head i is dimension dim of T's head h
                new_row, old_row = i * d + r, h * d_t + dim
                for proj in ("query", "key", "value"):
                    w, b = f"attention.self.{proj}.weight", f"attention.self.{proj}.bias"
                    assert torch.equal(cut[dst + w][new_row], t[src + w][old_row, ch])
                    assert cut[dst + b][new_row] == t[src + b][old_row]
                o = "attention.output.dense.weight"
                assert torch.equal(cut[dst + o][:, new_row], t[src + o][ch, old_row])
        for n, neuron in enumerate(layer.neurons):
            assert torch.equal(cut[dst + "intermediate.dense.weight"][n], t[src + "intermediate.dense.weight"][neuron, ch])
            assert cut[dst + "intermediate.dense.bias"][n] == t[src + "intermediate.dense.bias"][neuron]
            assert torch.equal(cut[dst + "output.dense.weight"][:, n], t[src + "output.dense.weight"][ch, neuron])
        for part in ("attention.output.dense.bias", "output.dense.bias", "attention.output.LayerNorm.weight",
                     "output.LayerNorm.bias"):
            assert torch.equal(cut[dst + part], torch.stack([t[src + part][c] for c in ch]))


@pytest.fixture(scope="module")
def llama_t():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=100, hidden_size=48, intermediate_size=40, num_hidden_layers=3,
                         num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=32,
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    state = llama_weights.normalize({k: v.clone() for k, v in model.state_dict().items()})
    return model, state, llama_weights.importance(model, _batch(100))


@pytest.mark.parametrize("xi", [{"D": 2, "A": 2, "K": 1, "H": 16, "I": 20},   # one group, 2 of its 3 queries
                                {"D": 2, "A": 4, "K": 2, "H": 32, "I": 20},   # both groups, 2 queries each
                                {"D": 1, "A": 2, "K": 2, "H": 16, "I": 40},   # both groups, 1 query each
                                {"D": 3, "A": 6, "K": 2, "H": 48, "I": 40}])  # T itself
def test_every_llama_query_head_keeps_its_own_key_value_group(llama_t, xi):
    _, t, imp = llama_t
    kept = llama_weights.choose(imp, xi)
    cut = llama_weights.cut(t, kept)
    d, g_t, per_group = 8, 3, xi["A"] // xi["K"]
    ch = kept.channels
    _kept_are_the_most_important(imp.channels, ch, xi["H"])
    _kept_are_the_most_important(imp.layers, [layer.source for layer in kept.layers], xi["D"])
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        for new, old in enumerate(ch):
            assert torch.equal(cut[name][:, new], t[name][:, old])
    for j, layer in enumerate(kept.layers):
        src, dst = f"model.layers.{layer.source}.self_attn.", f"model.layers.{j}.self_attn."
        group_scores = imp.heads[layer.source].reshape(-1, g_t)
        _kept_are_the_most_important(group_scores.sum(-1), layer.groups, xi["K"])
        for i, h in enumerate(layer.heads):
            group = layer.groups[i // per_group]  # the candidate's group of its query head i
            assert h // g_t == group, f"query head {h} of T is in T's group {h // g_t}, kept with group {group}"
            for r in range(d):
                assert torch.equal(cut[dst + "q_proj.weight"][i * d + r], t[src + "q_proj.weight"][h * d + r, ch])
                assert torch.equal(cut[dst + "o_proj.weight"][:, i * d + r], t[src + "o_proj.weight"][ch, h * d + r])
        for k, group in enumerate(layer.groups):
            members = layer.heads[k * per_group:(k + 1) * per_group]
            _kept_are_the_most_important(group_scores[group], [h - group * g_t for h in members], per_group)
            for r in range(d):
                for proj in ("k_proj.weight", "v_proj.weight"):
                    assert torch.equal(cut[dst + proj][k * d + r], t[src + proj][group * d + r, ch])
        mlp_src, mlp_dst = f"model.layers.{layer.source}.mlp.", f"model.layers.{j}.mlp."
        _kept_are_the_most_important(imp.neurons[layer.source], layer.neurons, xi["I"])
        for n, neuron in enumerate(layer.neurons):
            for proj in ("gate_proj.weight", "up_proj.weight"):
                assert torch.equal(cut[mlp_dst + proj][n], t[mlp_src + proj][neuron, ch])
            assert torch.equal(cut[mlp_dst + "down_proj.weight"][:, n], t[mlp_src + "down_proj.weight"][ch, neuron])


def test_a_bert_state_with_a_gap_in_its_body_is_an_error_not_a_fresh_tensor(bert_t):
    _, t, imp = bert_t
    xi = {"D": 1, "A": 2, "H": 16, "I": 24}
    settings = BERT.settings_type(vocab_size=100, max_positions=32)
    cut = bert_weights.cut(t, bert_weights.choose(imp, xi), settings)
    del cut["encoder.layer.0.attention.self.key.weight"]
    with pytest.raises(RuntimeError, match="sliced weights lack bert.encoder.layer.0.attention.self.key.weight"):
        bert_weights.load_into(BERT.build(xi, settings, head="sequence-classification"), cut)
