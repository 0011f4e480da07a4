"""BERT weights: what a pretrained T's parts are worth, and T's weights sliced to a candidate.

The rule (as structured-pruning work measures it, one forward pass of T over a calibration
batch, no gradients):

- hidden channels: mean |activation| of each channel at the outputs of every LayerNorm
  (embeddings and both of each layer's), summed;
- layers: block influence, 1 − cos(input, output) of the layer, averaged over tokens: a layer
  that barely changes its input matters least;
- attention heads: mean L2 norm of each head's context vector (the input of the attention
  output projection); within a head, each dimension by its mean |context|;
- feed-forward neurons: mean |GELU activation|.

A candidate ⟨D, A, H, I⟩ (``choose``, which records the provenance ``cut`` follows) keeps the D most influential layers, and in each the A most important
heads, the I most important neurons, and everywhere the H most important hidden channels,
each kept in T's order. Ties break by index, so a slice depends only on T, the calibration
batch and ξ. Stock BERT fixes a head's size at H/A; a slice is exact (each kept head whole)
when H/A equals T's head size, and the default grids hold only such shapes. Otherwise each
kept head keeps its H/A most important dimensions: an approximation. Keeping fewer hidden
channels is also an approximation (LayerNorm then normalises over fewer); keeping all of
them, and all layers, heads and neurons, reproduces T.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .weights import LayerSlice, Slice, block_influence, run_hooked, token_mean, top_k


@dataclass
class Importance:
    channels: torch.Tensor    # (H,)
    layers: torch.Tensor      # (D,)  block influence
    heads: torch.Tensor       # (D, A)
    head_dims: torch.Tensor   # (D, A, d)
    neurons: torch.Tensor     # (D, I)


@torch.no_grad()
def importance(model, batch) -> Importance:
    """One forward pass of ``model`` (a BERT with or without a head) over ``batch``, with hooks."""
    base = model.base_model
    layers = base.encoder.layer
    D, A = len(layers), base.config.num_attention_heads
    d = base.config.hidden_size // A
    mask = batch.attention_mask
    channels = torch.zeros(base.config.hidden_size)
    influence, heads, dims, neurons = [None] * D, [None] * D, [None] * D, [None] * D
    hooks = []

    def on_norm(_, __, out):
        channels.add_(token_mean(out.abs().float(), mask))

    def on_layer(i):
        def hook(_, args, out):
            influence[i] = block_influence(args[0], out[0] if isinstance(out, tuple) else out, mask)
        return hook

    def on_context(i):
        def hook(_, args):
            ctx = args[0].float().reshape(*args[0].shape[:2], A, d)
            heads[i] = token_mean(ctx.norm(dim=-1), mask)
            dims[i] = token_mean(ctx.abs(), mask)
        return hook

    def on_ffn(i):
        def hook(_, args):
            neurons[i] = token_mean(args[0].abs().float(), mask)
        return hook

    hooks.append(base.embeddings.LayerNorm.register_forward_hook(on_norm))
    for i, layer in enumerate(layers):
        hooks += [layer.register_forward_hook(on_layer(i)),
                  layer.attention.output.LayerNorm.register_forward_hook(on_norm),
                  layer.output.LayerNorm.register_forward_hook(on_norm),
                  layer.attention.output.dense.register_forward_pre_hook(on_context(i)),
                  layer.output.dense.register_forward_pre_hook(on_ffn(i))]
    run_hooked(model, base, hooks, batch)
    return Importance(channels, torch.stack(influence), torch.stack(heads), torch.stack(dims), torch.stack(neurons))


def normalize(state: dict) -> dict:
    """A BERT checkpoint's tensors named as in ``BertModel`` (no ``bert.`` prefix), heads kept apart."""
    return {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in state.items()}


def choose(imp: Importance, xi: dict) -> Slice:
    """Which of T's layers, heads (and dimensions of each), neurons and channels ξ keeps, by the rule above."""
    d = xi["H"] // xi["A"]
    layers = []
    for old in top_k(imp.layers, xi["D"]).tolist():
        heads = top_k(imp.heads[old], xi["A"]).tolist()
        layers.append(LayerSlice(old, heads, top_k(imp.neurons[old], xi["I"]).tolist(),
                                 head_dims=[top_k(imp.head_dims[old, h], d).tolist() for h in heads]))
    return Slice(top_k(imp.channels, xi["H"]).tolist(), layers, imp.head_dims.shape[-1])


def cut(state: dict, kept: Slice, settings) -> dict:
    """T's tensors (``normalize`` names) cut to the units ``kept`` names."""
    ch = torch.tensor(kept.channels)
    out = {}
    e = "embeddings."
    out[e + "word_embeddings.weight"] = state[e + "word_embeddings.weight"][:, ch]
    out[e + "position_embeddings.weight"] = state[e + "position_embeddings.weight"][:settings.max_positions, ch]
    out[e + "token_type_embeddings.weight"] = state[e + "token_type_embeddings.weight"][:, ch]
    for p in ("weight", "bias"):
        out[e + "LayerNorm." + p] = state[e + "LayerNorm." + p][ch]
    for new, layer in enumerate(kept.layers):
        rows = torch.cat([h * kept.head_size + torch.tensor(dims) for h, dims in zip(layer.heads, layer.head_dims)])
        neurons = torch.tensor(layer.neurons)
        src, dst = f"encoder.layer.{layer.source}.", f"encoder.layer.{new}."
        for name in ("query", "key", "value"):
            out[f"{dst}attention.self.{name}.weight"] = state[f"{src}attention.self.{name}.weight"][rows][:, ch]
            out[f"{dst}attention.self.{name}.bias"] = state[f"{src}attention.self.{name}.bias"][rows]
        out[dst + "attention.output.dense.weight"] = state[src + "attention.output.dense.weight"][ch][:, rows]
        out[dst + "intermediate.dense.weight"] = state[src + "intermediate.dense.weight"][neurons][:, ch]
        out[dst + "intermediate.dense.bias"] = state[src + "intermediate.dense.bias"][neurons]
        out[dst + "output.dense.weight"] = state[src + "output.dense.weight"][ch][:, neurons]
        for part in ("attention.output.dense.bias", "output.dense.bias", "attention.output.LayerNorm.weight",
                     "attention.output.LayerNorm.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"):
            out[dst + part] = state[src + part][ch]
    for name, take in (("pooler.dense.weight", lambda t: t[ch][:, ch]), ("pooler.dense.bias", lambda t: t[ch]),
                       ("cls.predictions.transform.dense.weight", lambda t: t[ch][:, ch]),
                       ("cls.predictions.transform.dense.bias", lambda t: t[ch]),
                       ("cls.predictions.transform.LayerNorm.weight", lambda t: t[ch]),
                       ("cls.predictions.transform.LayerNorm.bias", lambda t: t[ch]),
                       ("cls.predictions.bias", lambda t: t),
                       ("classifier.weight", lambda t: t[:, ch]), ("classifier.bias", lambda t: t)):
        if name in state:
            out[name] = take(state[name])
    return {k: v.clone() for k, v in out.items()}


def load_into(model, state: dict) -> list[str]:
    """Load a ``cut`` state into a freshly built BERT (any head); the keys left fresh (the task
    head, a pooler or an MLM head T never had). A gap in the body is an error: ``cut`` names
    every tensor of the embeddings and layers."""
    prefix = "" if model.base_model is model else f"{model.base_model_prefix}."
    named = {(k if k.startswith(("cls.", "classifier.")) else prefix + k): v for k, v in state.items()}
    own = model.state_dict()
    missing, _ = model.load_state_dict({k: v for k, v in named.items() if k in own}, strict=False)
    if "cls.predictions.decoder.weight" in own:  # tied to the (sliced) word embeddings
        model.tie_weights()
    head = ("classifier.", "cls.", f"{prefix}pooler.")
    body = [k for k in missing if not k.startswith(head)]
    if body:
        raise RuntimeError(f"sliced weights lack {', '.join(body[:3])}")
    return [k for k in missing if k != "cls.predictions.decoder.weight" and not k.endswith("decoder.bias")]
