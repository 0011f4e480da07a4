"""Llama weights: what a pretrained T's parts are worth, and T's weights sliced to a candidate.

The rule is BERT's (``bert_weights``), with grouped-query attention kept consistent: hidden
channels by mean |activation| at every RMSNorm output, layers by block influence, FFN neurons
by mean |SiLU(gate) · up|, and key/value groups by the summed context norms of their query
heads. A candidate ⟨D, A, K, H, I⟩ (``choose``, which records the provenance ``cut`` follows) keeps the D most influential layers and, in each, the K
most important key/value groups with their query heads (the A/K most important of each
group's), the I most important neurons, and the H most important channels, in T's order.
Whole heads keep rotary positions exact; fewer channels is an approximation (RMSNorm then
normalises over fewer). Keeping everything reproduces T.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .weights import LayerSlice, Slice, block_influence, rows_of, run_hooked, token_mean, top_k


@dataclass
class Importance:
    channels: torch.Tensor    # (H,)
    layers: torch.Tensor      # (D,)
    heads: torch.Tensor       # (D, A) query heads
    neurons: torch.Tensor     # (D, I)
    group_size: int           # query heads per key/value head (A / K of T)
    head_size: int            # H / A of T


@torch.no_grad()
def importance(model, batch) -> Importance:
    """One forward pass of ``model`` (a Llama with its LM head) over ``batch``, with hooks."""
    base = model.model
    cfg = base.config
    D, A, d = len(base.layers), cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    mask = batch.attention_mask
    channels = torch.zeros(cfg.hidden_size)
    influence, heads, neurons, hooks = [None] * D, [None] * D, [None] * D, []

    def on_norm(_, __, out):
        channels.add_(token_mean(out.abs().float(), mask))

    def on_layer(i):
        def hook(_, args, kwargs, out):
            x = args[0] if args else kwargs["hidden_states"]
            influence[i] = block_influence(x, out[0] if isinstance(out, tuple) else out, mask)
        return hook

    def on_context(i):
        def hook(_, args):
            heads[i] = token_mean(args[0].float().reshape(*args[0].shape[:2], A, d).norm(dim=-1), mask)
        return hook

    def on_ffn(i):
        def hook(_, args):
            neurons[i] = token_mean(args[0].abs().float(), mask)
        return hook

    hooks.append(base.norm.register_forward_hook(on_norm))
    for i, layer in enumerate(base.layers):
        hooks += [layer.register_forward_hook(on_layer(i), with_kwargs=True),
                  layer.input_layernorm.register_forward_hook(on_norm),
                  layer.post_attention_layernorm.register_forward_hook(on_norm),
                  layer.self_attn.o_proj.register_forward_pre_hook(on_context(i)),
                  layer.mlp.down_proj.register_forward_pre_hook(on_ffn(i))]
    run_hooked(model, base, hooks, batch)
    return Importance(channels, torch.stack(influence), torch.stack(heads), torch.stack(neurons),
                      A // cfg.num_key_value_heads, d)


def normalize(state: dict) -> dict:
    """A Llama checkpoint's tensors named as in ``LlamaForCausalLM`` (a bare ``LlamaModel``'s get ``model.``)."""
    return {k if k.startswith("model.") or k.startswith("lm_head.") else f"model.{k}": v for k, v in state.items()}


def choose(imp: Importance, xi: dict) -> Slice:
    """Which of T's layers, key/value groups, query heads, neurons and channels ξ keeps: in each
    kept layer the K most important groups and, in each, its A/K most important query heads."""
    g, per_group = imp.group_size, xi["A"] // xi["K"]
    layers = []
    for old in top_k(imp.layers, xi["D"]).tolist():
        scores = imp.heads[old].reshape(-1, g)
        groups = top_k(scores.sum(-1), xi["K"]).tolist()
        queries = [k * g + h for k in groups for h in top_k(scores[k], per_group).tolist()]
        layers.append(LayerSlice(old, queries, top_k(imp.neurons[old], xi["I"]).tolist(), groups=groups))
    return Slice(top_k(imp.channels, xi["H"]).tolist(), layers, imp.head_size)


def cut(state: dict, kept: Slice, settings=None) -> dict:
    """T's tensors (``normalize`` names) cut to the units ``kept`` names: each kept query head with
    the key/value group it belongs to."""
    ch = torch.tensor(kept.channels)
    out = {"model.embed_tokens.weight": state["model.embed_tokens.weight"][:, ch],
           "model.norm.weight": state["model.norm.weight"][ch]}
    if "lm_head.weight" in state:
        out["lm_head.weight"] = state["lm_head.weight"][:, ch]
    for new, layer in enumerate(kept.layers):
        q_rows, kv_rows = rows_of(layer.heads, kept.head_size), rows_of(layer.groups, kept.head_size)
        neurons = torch.tensor(layer.neurons)
        src, dst = f"model.layers.{layer.source}.", f"model.layers.{new}."
        out[dst + "self_attn.q_proj.weight"] = state[src + "self_attn.q_proj.weight"][q_rows][:, ch]
        out[dst + "self_attn.k_proj.weight"] = state[src + "self_attn.k_proj.weight"][kv_rows][:, ch]
        out[dst + "self_attn.v_proj.weight"] = state[src + "self_attn.v_proj.weight"][kv_rows][:, ch]
        out[dst + "self_attn.o_proj.weight"] = state[src + "self_attn.o_proj.weight"][ch][:, q_rows]
        out[dst + "mlp.gate_proj.weight"] = state[src + "mlp.gate_proj.weight"][neurons][:, ch]
        out[dst + "mlp.up_proj.weight"] = state[src + "mlp.up_proj.weight"][neurons][:, ch]
        out[dst + "mlp.down_proj.weight"] = state[src + "mlp.down_proj.weight"][ch][:, neurons]
        for norm in ("input_layernorm.weight", "post_attention_layernorm.weight"):
            out[dst + norm] = state[src + norm][ch]
    return {k: v.clone() for k, v in out.items()}


def load_into(model, state: dict) -> list[str]:
    """Load a ``cut`` state into a freshly built ``LlamaForCausalLM`` (tied or not); the keys left
    fresh: an untied LM head that T (a bare ``LlamaModel``) never had."""
    own = model.state_dict()
    missing, _ = model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    if model.config.tie_word_embeddings:
        model.tie_weights()
    fresh = [k for k in missing if k == "lm_head.weight" and not model.config.tie_word_embeddings]
    body = [k for k in missing if k != "lm_head.weight"]
    if body:  # cut names every tensor of the body: a gap is a bug, not a checkpoint's
        raise RuntimeError(f"sliced weights lack {', '.join(body[:3])}")
    return fresh
