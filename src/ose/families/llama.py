"""Decoder language models, Llama-style: ξ = ⟨D, A, K, H, I⟩ → ``LlamaForCausalLM``, p(ξ), i(ξ).

D decoder layers, A query heads, K key/value heads (grouped-query attention, A % K == 0), H
hidden size, I intermediate (SwiGLU) size. RMSNorm, rotary positions, no biases; the LM head
optionally tied to the input embeddings.
A = the token embeddings; B = the D decoder layers; C = the final RMSNorm and (head ``lm``) the
LM head, whose weights are A's when tied.

Operations are counted for one forward pass over L tokens by ``families/ops.py``'s conventions
(docs/COUNTING.md); Llama's own: rotary embedding is 2 mults and 1 add per element of q and k
(x·cos + rotate(x)·sin, the rotation a free relabelling with a sign); the causal mask is the
additive mask of every score; SwiGLU is SiLU(gate) × up, 1 mult per element beyond SiLU; the
embedding lookup costs nothing. Grouped K/V heads are shared by A/K query heads each: the
scores cost A·L·L·d whatever K is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..costs import Op
from . import ops
from .base import (HF_COUNTS, Family, candidate_config, check_heads, check_settings, config_count, head_of,
                   heads_unbuildable)

PARAMETERS = ("D", "A", "K", "H", "I")
HEADS = ("lm", "none")


@dataclass(frozen=True)
class LlamaSettings:
    """Fixed settings the counts depend on (not searched)."""

    vocab_size: int = 32000
    max_positions: int = 2048
    seq_len: int = 128
    tie_embeddings: bool = False     # the LM head shares the input embeddings' weights
    head: str = "lm"                 # lm (the vocabulary projection) or none
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5

    def check(self) -> str | None:
        problem = check_settings(self, ("vocab_size", "max_positions", "seq_len"), HEADS)
        if problem is None and not self.rope_theta > 0:
            return f"rope_theta must be positive, got {self.rope_theta}"
        if problem is None and not self.rms_norm_eps >= 0:
            return f"rms_norm_eps must not be negative, got {self.rms_norm_eps}"
        return problem


def _layer_ops(xi: Mapping[str, int], L: int) -> list[Op]:
    """One decoder layer B_j."""
    A, K, H, I = xi["A"], xi["K"], xi["H"], xi["I"]
    d = H // A
    return [
        ops.rmsnorm("B", "input_norm", L, H),
        ops.linear("B", "attention.q", L, H, H, bias=False),
        ops.linear("B", "attention.kv", L, H, 2 * K * d, bias=False),
        Op("B", "attention.rotary", mults=2 * L * (H + K * d), adds=L * (H + K * d)),
        *ops.attention("B", A, L, d),
        ops.linear("B", "attention.output", L, H, H, bias=False),
        ops.residual("B", "attention.residual", L * H),
        ops.rmsnorm("B", "post_attention_norm", L, H),
        ops.linear("B", "mlp.gate_up", L, H, 2 * I, bias=False),
        ops.silu("B", "mlp.silu", L * I),
        Op("B", "mlp.gate_times_up", mults=L * I),
        ops.linear("B", "mlp.down", L, I, H, bias=False),
        ops.residual("B", "mlp.residual", L * H),
    ]


class Llama(Family):
    """Llama-style decoders; a causal-LM head (next-token prediction)."""

    name = "llama"
    parameters = PARAMETERS
    settings_type = LlamaSettings
    heads = {"causal-lm": "lm"}
    checkpoint_body = ("model.embed_tokens.", "model.layers.", "embed_tokens.", "layers.")
    checkpoint_head = {"lm": ("model.norm.", "norm.", "lm_head."), "none": ("model.norm.", "norm.")}
    weights_module = "llama_weights"
    pretrained_class = "AutoModelForCausalLM"
    checkpoint_prefixes = ("model.", "")  # a bare LlamaModel's tensors have no ``model.``
    layer_stem = "layers."

    def check(self, xi: Mapping[str, int]) -> str | None:
        problem = check_heads(xi, PARAMETERS)
        if problem:
            return problem
        if xi["A"] % xi["K"]:
            return f"A={xi['A']} is not divisible by K={xi['K']} (each key/value head serves A/K query heads)"
        if (xi["H"] // xi["A"]) % 2:
            return f"head size H/A={xi['H'] // xi['A']} is odd; rotary positions rotate pairs of channels"
        return None

    def unbuildable(self, columns):
        bad = heads_unbuildable(columns, PARAMETERS)
        if bad.any():
            return bad
        A, H, K = (columns[k] for k in ("A", "H", "K"))
        return (A % K != 0) | ((H // A) % 2 != 0)

    def inheritable(self, xi: Mapping[str, int], t: Mapping[str, int]) -> str | None:
        """Slicing keeps whole heads of T's size and whole key/value groups (``llama_weights``)."""
        d, g = t["H"] // t["A"], t["A"] // t["K"]
        if xi["H"] // xi["A"] != d:
            return f"head size H/A={xi['H'] // xi['A']} is not T's {d}"
        if xi["A"] // xi["K"] > g or xi["K"] > t["K"]:
            return f"A/K={xi['A'] // xi['K']} query heads per key/value head with K={xi['K']}; T has {g} with K={t['K']}"
        return None

    def params(self, xi: Mapping[str, int], s: LlamaSettings) -> dict[str, int]:
        D, K, H, I = xi["D"], xi["K"], xi["H"], xi["I"]
        kv = K * (H // xi["A"])
        layer = H * H + 2 * H * kv + H * H + 3 * H * I + 2 * H  # q, k and v, o, gate up down, two norms
        head = 0 if s.head == "none" or s.tie_embeddings else s.vocab_size * H
        return {"A": s.vocab_size * H, "B": D * layer, "C": H + head}  # the final norm, and the LM head

    def operations(self, xi: Mapping[str, int], s: LlamaSettings) -> list[Op]:
        L, H = s.seq_len, xi["H"]
        out = [o.times(xi["D"]) for o in _layer_ops(xi, L)] + [ops.rmsnorm("C", "final_norm", L, H)]
        if s.head == "lm":
            out.append(ops.linear("C", "lm_head", L, H, s.vocab_size, bias=False))
        return out

    def hf_config(self, xi: Mapping[str, int], s: LlamaSettings, num_labels: int | None = None,
                  config: dict | None = None):
        """A ``transformers.LlamaConfig`` for ξ: T's config with ξ's counts replaced, or Llama's defaults."""
        from transformers import LlamaConfig

        counts = {HF_COUNTS[k]: xi[k] for k in ("D", "A", "H", "I")}
        counts.update(num_key_value_heads=xi["K"], vocab_size=s.vocab_size, max_position_embeddings=s.max_positions,
                      tie_word_embeddings=s.tie_embeddings, rms_norm_eps=s.rms_norm_eps)
        if config and "head_dim" in config:
            counts["head_dim"] = xi["H"] // xi["A"]
        rope = dict((config or {}).get("rope_parameters") or {"rope_type": "default"})
        counts["rope_parameters"] = {**rope, "rope_theta": s.rope_theta}
        return LlamaConfig(**candidate_config({k: v for k, v in (config or {}).items() if k != "rope_theta"}, counts))

    def build(self, xi: Mapping[str, int], s: LlamaSettings, head: str | None = None, num_labels: int | None = None,
              attn: str | None = None, config: dict | None = None):
        from transformers import LlamaForCausalLM, LlamaModel

        cfg = self.hf_config(xi, s, config=config)
        if attn:
            cfg._attn_implementation = attn
        counted = self.heads[head] if head else s.head
        return LlamaForCausalLM(cfg) if counted == "lm" else LlamaModel(cfg)

    def from_hf_config(self, config: dict) -> tuple[dict[str, int], dict]:
        if config.get("model_type") != "llama":
            raise ValueError(f"a {config.get('model_type') or 'untyped'} checkpoint, not Llama")
        keys = {**HF_COUNTS, "K": "num_key_value_heads" if config.get("num_key_value_heads") is not None
                else "num_attention_heads"}  # no key/value count: one per query head
        xi = {k: config_count(config, keys[k]) for k in PARAMETERS}
        if config.get("head_dim") not in (None, xi["H"] // xi["A"]):
            raise ValueError(f"head_dim {config['head_dim']} is not hidden_size / num_attention_heads")
        # What this family does not build would be dropped silently by slicing: refuse it instead.
        for key, plain in (("hidden_act", "silu"), ("attention_bias", False), ("mlp_bias", False)):
            if config.get(key, plain) != plain:
                raise ValueError(f"{key} {config[key]!r}: ose's Llama family builds {key} {plain!r} only")
        # transformers applies a legacy rope_scaling over rope_parameters: each must be plain.
        for key in ("rope_parameters", "rope_scaling"):
            given = config.get(key) or {}
            kind = given.get("rope_type", given.get("type", "default"))
            if kind != "default":
                raise ValueError(f"{key} of rope type {kind!r}: ose's Llama family builds plain rotary positions only")
        rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
        settings = {"vocab_size": config_count(config, "vocab_size"),
                    "max_positions": config_count(config, "max_position_embeddings"),
                    "tie_embeddings": bool(config.get("tie_word_embeddings", False)),
                    # transformers 5 writes θ into rope_parameters, earlier releases at the top
                    "rope_theta": float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
                    "rms_norm_eps": float(config.get("rms_norm_eps", 1e-6)),  # transformers' default
                    "head": "lm" if head_of(config, self.heads) else "none"}
        return xi, settings

    def expected_shapes(self, config: dict, names) -> list[tuple[str, str, int, int]]:
        """The embeddings' rows and width (and an untied LM head's), each layer's query rows (heads ×
        head size), key and value rows (key/value heads × head size), gate and up rows."""
        xi, settings = self.from_hf_config(config)
        D, A, K, H, I = (xi[k] for k in PARAMETERS)
        d, V = H // A, settings["vocab_size"]
        kv = "num_key_value_heads" if config.get("num_key_value_heads") is not None else HF_COUNTS["A"]
        out = [(f"hidden_size {H}", "embed_tokens.weight", 1, H), (f"vocab_size {V}", "embed_tokens.weight", 0, V)]
        if "lm_head.weight" in names:
            out += [(f"vocab_size {V}", "lm_head.weight", 0, V), (f"hidden_size {H}", "lm_head.weight", 1, H)]
        for i in range(D):
            a = f"layers.{i}."
            out += [(f"num_attention_heads {A} of size {d}", a + "self_attn.q_proj.weight", 0, A * d),
                    *((f"{kv} {K} of size {d}", f"{a}self_attn.{p}_proj.weight", 0, K * d) for p in "kv"),
                    *((f"intermediate_size {I}", f"{a}mlp.{p}_proj.weight", 0, I) for p in ("gate", "up"))]
        return out

    def checkpoint_heads(self, tensor_names, config: dict) -> set[str]:
        return {"causal-lm"} if "lm_head.weight" in tensor_names or config.get("tie_word_embeddings") else set()

    def default_grid(self, t: Mapping[str, int]) -> tuple[dict[str, tuple[int, ...]], list[str]]:
        """Fractions of T, whole key/value groups with all their query heads, heads of T's size; with
        a single key/value head (multi-query attention), fractions of its query heads instead."""
        from .weights import DEPTHS, FFN, WIDTHS, fractions_of

        d, g = t["H"] // t["A"], t["A"] // t["K"]
        if t["K"] == 1:
            A = fractions_of(t["A"], WIDTHS)
            return ({"D": fractions_of(t["D"], DEPTHS), "A": A, "K": (1,), "H": tuple(a * d for a in A),
                     "I": fractions_of(t["I"], FFN)}, [f"H == {d} * A"])
        K = fractions_of(t["K"], WIDTHS)
        return ({"D": fractions_of(t["D"], DEPTHS), "A": tuple(k * g for k in K), "K": K,
                 "H": tuple(k * g * d for k in K), "I": fractions_of(t["I"], FFN)},
                [f"A == {g} * K", f"H == {d} * A"])

    def hidden_states(self, model, batch):
        return model.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state

    def project(self, model, hidden, head: str, attention_mask=None):
        return model.lm_head(hidden)


LLAMA = Llama()
