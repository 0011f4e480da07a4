"""The BERT encoder family: ξ = ⟨D, A, H, I⟩ → a Hugging Face model, and p(ξ), i(ξ) in closed form.

D encoder layers, A attention heads, H hidden size, I intermediate (feed-forward) size.
A = embeddings (word + position + token type, LayerNorm); B = the D encoder layers;
C = the deployed head (pooler + classifier, the MLM head, or nothing).

Operations are counted for one sequence of L tokens by the conventions of ``families/ops.py``
(docs/COUNTING.md has the table); BERT's own: tanh is 1 other per element, the embedding sum
1 add per element, embedding lookups and dropout (off at inference) cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..costs import Op
from . import ops
from .base import HF_COUNTS, Family, check_heads, check_settings, config_count

PARAMETERS = ("D", "A", "H", "I")
HEADS = ("classifier", "mlm", "none")
TASK_HEADS = {"mlm": "mlm", "cls": "classifier"}  # the head each task trains


@dataclass(frozen=True)
class BertSettings:
    """Fixed settings the counts depend on (not searched)."""

    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    seq_len: int = 128
    head: str = "classifier"
    num_labels: int = 2

    def check(self) -> str | None:
        return check_settings(self, ("vocab_size", "max_positions", "type_vocab_size", "seq_len", "num_labels"),
                              HEADS)


def _layer_ops(xi: Mapping[str, int], L: int) -> list[Op]:
    """One encoder layer B_j."""
    A, H, I = xi["A"], xi["H"], xi["I"]
    return [
        ops.linear("B", "attention.qkv", L, H, 3 * H),
        *ops.attention("B", A, L, H // A),
        ops.linear("B", "attention.output", L, H, H),
        ops.residual("B", "attention.residual", L * H),
        ops.layernorm("B", "attention.layernorm", L, H),
        ops.linear("B", "ffn.intermediate", L, H, I),
        ops.gelu("B", "ffn.gelu", L * I),
        ops.linear("B", "ffn.output", L, I, H),
        ops.residual("B", "ffn.residual", L * H),
        ops.layernorm("B", "ffn.layernorm", L, H),
    ]


class Bert(Family):
    """BERT encoders: ξ = ⟨D, A, H, I⟩; tasks mlm (the Bort search) and cls."""

    name = "bert"
    parameters = PARAMETERS
    settings_type = BertSettings
    tasks = ("mlm", "cls")
    checkpoint_body = ("embeddings.", "encoder.", "bert.embeddings.", "bert.encoder.")
    weights_module = "bert_weights"

    def check(self, xi: Mapping[str, int]) -> str | None:
        return check_heads(xi, PARAMETERS)

    def params(self, xi: Mapping[str, int], s: BertSettings) -> dict[str, int]:
        D, H, I = xi["D"], xi["H"], xi["I"]
        embeddings = (s.vocab_size + s.max_positions + s.type_vocab_size) * H + 2 * H
        attention = 4 * (H * H + H) + 2 * H
        feed_forward = (H * I + I) + (I * H + H) + 2 * H
        if s.head == "classifier":
            head = (H * H + H) + (H * s.num_labels + s.num_labels)
        elif s.head == "mlm":  # transform + LayerNorm + decoder bias; decoder weight is tied to A
            head = (H * H + H) + 2 * H + s.vocab_size
        else:
            head = 0
        return {"A": embeddings, "B": D * (attention + feed_forward), "C": head}

    def operations(self, xi: Mapping[str, int], s: BertSettings) -> list[Op]:
        """Every operation of one forward pass over a sequence of ``s.seq_len`` tokens."""
        L, H, V = s.seq_len, xi["H"], s.vocab_size
        out = [Op("A", "embeddings.sum", adds=2 * L * H), ops.layernorm("A", "embeddings.layernorm", L, H)]
        out += [o.times(xi["D"]) for o in _layer_ops(xi, L)]
        if s.head == "classifier":  # pooler reads the first token only
            out += [ops.linear("C", "pooler.dense", 1, H, H), Op("C", "pooler.tanh", other=H),
                    ops.linear("C", "classifier", 1, H, s.num_labels)]
        elif s.head == "mlm":
            out += [ops.linear("C", "mlm.transform", L, H, H), ops.gelu("C", "mlm.gelu", L * H),
                    ops.layernorm("C", "mlm.layernorm", L, H), ops.linear("C", "mlm.decoder", L, H, V)]
        return out

    def hf_config(self, xi: Mapping[str, int], s: BertSettings, num_labels: int | None = None):
        """A ``transformers.BertConfig`` for ξ (dropout as in BERT)."""
        from transformers import BertConfig

        return BertConfig(
            vocab_size=s.vocab_size, hidden_size=xi["H"], num_hidden_layers=xi["D"],
            num_attention_heads=xi["A"], intermediate_size=xi["I"],
            max_position_embeddings=s.max_positions, type_vocab_size=s.type_vocab_size,
            num_labels=num_labels or s.num_labels, hidden_act="gelu",
        )

    def build(self, xi: Mapping[str, int], s: BertSettings, task: str | None = None, num_labels: int | None = None,
              attn: str | None = None):
        from transformers import BertForMaskedLM, BertForSequenceClassification, BertModel

        cfg = self.hf_config(xi, s, num_labels)
        if attn:
            cfg._attn_implementation = attn
        head = TASK_HEADS[task] if task else s.head
        if head == "classifier":
            return BertForSequenceClassification(cfg)
        if head == "mlm":
            return BertForMaskedLM(cfg)
        return BertModel(cfg, add_pooling_layer=False)

    def from_hf_config(self, config: dict) -> tuple[dict[str, int], dict]:
        if config.get("model_type") != "bert":
            raise ValueError(f"a {config.get('model_type') or 'untyped'} checkpoint, not BERT")
        xi = {k: config_count(config, HF_COUNTS[k]) for k in PARAMETERS}
        settings = {"vocab_size": config_count(config, "vocab_size"),
                    "max_positions": config_count(config, "max_position_embeddings"),
                    "type_vocab_size": config_count(config, "type_vocab_size") if "type_vocab_size" in config else 2}
        return xi, settings

    def inheritable(self, xi: Mapping[str, int], top: Mapping[str, int]) -> str | None:
        """Slicing keeps the most important dimensions of T's heads (``bert_weights``): no more than T has."""
        if xi["H"] // xi["A"] > top["H"] // top["A"]:
            return f"head size H/A={xi['H'] // xi['A']} exceeds T's {top['H'] // top['A']}"
        return None

    def has_lm_head(self, tensor_names, config: dict) -> bool:
        return any(n.startswith("cls.predictions") for n in tensor_names)

    def default_grid(self, top: Mapping[str, int]) -> tuple[dict[str, tuple[int, ...]], list[str]]:
        """Fractions of T in each dimension, every head kept whole (H/A = T's head size: exact slices)."""
        from .weights import DEPTHS, FFN, WIDTHS, fractions_of

        head = top["H"] // top["A"]
        H = fractions_of(top["H"], WIDTHS, step=head)
        return ({"D": fractions_of(top["D"], DEPTHS), "A": tuple(h // head for h in H), "H": H,
                 "I": fractions_of(top["I"], FFN)}, [f"H == {head} * A"])

    def logits(self, model, batch, task: str):
        """MLM: vocabulary logits at masked positions only (the projection is most of the cost)."""
        if task == "mlm":
            hidden = model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
            return model.cls(hidden[batch.masked])
        return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
