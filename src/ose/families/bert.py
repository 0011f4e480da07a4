"""The BERT encoder family: ξ = ⟨D, A, H, I⟩ → a Hugging Face model, and p(ξ), i(ξ) in closed form.

D encoder layers, A attention heads, H hidden size, I intermediate (feed-forward) size.
A = embeddings (word + position + token type, LayerNorm); B = the D encoder layers;
C = the deployed head (pooler + classifier, the MLM head, or nothing).

Operations are counted for one sequence of L tokens by the conventions of ``families/ops.py``
(docs/COUNTING.md has the table); BERT's own: tanh is 1 other per element, the embedding sum
1 add per element, embedding lookups and dropout (off at inference) cost nothing. The
feed-forward activation is the config's ``hidden_act``, counted by its own formula.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..costs import Op
from . import ops
from .base import (HF_COUNTS, Family, candidate_config, check_heads, check_settings, config_count, head_of,
                   heads_unbuildable)

PARAMETERS = ("D", "A", "H", "I")
HEADS = ("classifier", "mlm", "none")
# The activations a BERT config may name, each counted by its own formula (transformers' names).
ACTIVATIONS = {"gelu": ops.gelu, "relu": ops.relu, "gelu_new": ops.gelu_tanh, "gelu_pytorch_tanh": ops.gelu_tanh,
               "silu": ops.silu}


@dataclass(frozen=True)
class BertSettings:
    """Fixed settings the counts depend on (not searched)."""

    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    seq_len: int = 128
    head: str = "classifier"
    num_labels: int = 2
    hidden_act: str = "gelu"

    def check(self) -> str | None:
        problem = check_settings(self, ("vocab_size", "max_positions", "type_vocab_size", "seq_len", "num_labels"),
                                 HEADS)
        if problem is None and self.hidden_act not in ACTIVATIONS:
            return f"hidden_act must be one of {', '.join(ACTIVATIONS)}, got {self.hidden_act!r}"
        return problem


def _layer_ops(xi: Mapping[str, int], L: int, act: str) -> list[Op]:
    """One encoder layer B_j."""
    A, H, I = xi["A"], xi["H"], xi["I"]
    return [
        ops.linear("B", "attention.qkv", L, H, 3 * H),
        *ops.attention("B", A, L, H // A),
        ops.linear("B", "attention.output", L, H, H),
        ops.residual("B", "attention.residual", L * H),
        ops.layernorm("B", "attention.layernorm", L, H),
        ops.linear("B", "ffn.intermediate", L, H, I),
        ACTIVATIONS[act]("B", f"ffn.{act}", L * I),
        ops.linear("B", "ffn.output", L, I, H),
        ops.residual("B", "ffn.residual", L * H),
        ops.layernorm("B", "ffn.layernorm", L, H),
    ]


class Bert(Family):
    """BERT encoders: ξ = ⟨D, A, H, I⟩; heads for masked-LM (the Bort search) and classification."""

    name = "bert"
    parameters = PARAMETERS
    settings_type = BertSettings
    heads = {"masked-lm": "mlm", "sequence-classification": "classifier"}
    checkpoint_body = ("embeddings.", "encoder.", "bert.embeddings.", "bert.encoder.")
    checkpoint_head = {"classifier": ("pooler.", "bert.pooler.", "classifier."), "mlm": ("cls.predictions.",),
                       "none": ()}
    head_tensors = {"sequence-classification": ("classifier.",), "masked-lm": ("cls.",)}
    weights_module = "bert_weights"
    checkpoint_prefixes = ("", "bert.")
    layer_stem = "encoder.layer."

    def check(self, xi: Mapping[str, int]) -> str | None:
        return check_heads(xi, PARAMETERS)

    def unbuildable(self, columns):
        return heads_unbuildable(columns, PARAMETERS)

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
        out += [o.times(xi["D"]) for o in _layer_ops(xi, L, s.hidden_act)]
        if s.head == "classifier":  # pooler reads the first token only
            out += [ops.linear("C", "pooler.dense", 1, H, H), Op("C", "pooler.tanh", other=H),
                    ops.linear("C", "classifier", 1, H, s.num_labels)]
        elif s.head == "mlm":
            out += [ops.linear("C", "mlm.transform", L, H, H), ACTIVATIONS[s.hidden_act]("C", f"mlm.{s.hidden_act}", L * H),
                    ops.layernorm("C", "mlm.layernorm", L, H), ops.linear("C", "mlm.decoder", L, H, V)]
        return out

    def hf_config(self, xi: Mapping[str, int], s: BertSettings, num_labels: int | None = None,
                  config: dict | None = None):
        """A ``transformers.BertConfig`` for ξ: T's config with ξ's counts replaced, or BERT's defaults."""
        from transformers import BertConfig

        counts = {HF_COUNTS[k]: xi[k] for k in PARAMETERS}
        counts.update(vocab_size=s.vocab_size, max_position_embeddings=s.max_positions,
                      type_vocab_size=s.type_vocab_size, hidden_act=s.hidden_act)
        return BertConfig(**candidate_config(config or {}, counts), num_labels=num_labels or s.num_labels)

    def build(self, xi: Mapping[str, int], s: BertSettings, head: str | None = None, num_labels: int | None = None,
              attn: str | None = None, config: dict | None = None):
        from transformers import BertForMaskedLM, BertForSequenceClassification, BertModel

        cfg = self.hf_config(xi, s, num_labels, config)
        if attn:
            cfg._attn_implementation = attn
        counted = self.heads[head] if head else s.head
        if counted == "classifier":
            return BertForSequenceClassification(cfg)
        if counted == "mlm":
            return BertForMaskedLM(cfg)
        return BertModel(cfg, add_pooling_layer=False)

    def from_hf_config(self, config: dict) -> tuple[dict[str, int], dict]:
        if config.get("model_type") != "bert":
            raise ValueError(f"a {config.get('model_type') or 'untyped'} checkpoint, not BERT")
        xi = {k: config_count(config, HF_COUNTS[k]) for k in PARAMETERS}
        act = config.get("hidden_act", "gelu")
        if act not in ACTIVATIONS:
            raise ValueError(f"hidden_act {act!r}: ose's BERT family counts {', '.join(ACTIVATIONS)} only")
        # What this family would not build as T has it (or not count) is refused, not dropped.
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"position_embedding_type {config['position_embedding_type']!r}: ose's BERT family "
                             f"builds absolute positions only")
        for key, plain in (("is_decoder", False), ("add_cross_attention", False), ("tie_word_embeddings", True)):
            if config.get(key, plain) != plain:
                raise ValueError(f"{key} {config[key]!r}: ose's BERT family builds {key} {plain!r} only")
        settings = {"vocab_size": config_count(config, "vocab_size"),
                    "max_positions": config_count(config, "max_position_embeddings"),
                    "type_vocab_size": config_count(config, "type_vocab_size") if "type_vocab_size" in config else 2,
                    "hidden_act": act}
        head = head_of(config, self.heads)
        settings["head"] = self.heads[head] if head else "none"
        if head == "sequence-classification":
            settings["num_labels"] = len(config.get("id2label") or {}) or config.get("num_labels", 2)
        return xi, settings

    def expected_shapes(self, config: dict, names) -> list[tuple[str, str, int, int]]:
        """The embeddings' rows and width, each layer's query, key and value rows (heads × head size)
        and intermediate rows; a classifier's rows, when it has one (its labels count in C)."""
        xi, settings = self.from_hf_config(config)
        D, A, H, I = (xi[k] for k in PARAMETERS)
        V, P, T = settings["vocab_size"], settings["max_positions"], settings["type_vocab_size"]
        e = "embeddings."
        out = [(f"hidden_size {H}", e + "word_embeddings.weight", 1, H),
               (f"vocab_size {V}", e + "word_embeddings.weight", 0, V),
               (f"max_position_embeddings {P}", e + "position_embeddings.weight", 0, P),
               (f"type_vocab_size {T}", e + "token_type_embeddings.weight", 0, T)]
        for i in range(D):
            out += [(f"num_attention_heads {A} of size {H // A}", f"encoder.layer.{i}.attention.self.{p}.weight", 0,
                     A * (H // A)) for p in ("query", "key", "value")]
            out.append((f"intermediate_size {I}", f"encoder.layer.{i}.intermediate.dense.weight", 0, I))
        if settings["head"] == "classifier" and "classifier.weight" in names:
            n = settings["num_labels"]
            out.append((f"{n} labels (id2label)", "classifier.weight", 0, n))
        return out

    def inheritable(self, xi: Mapping[str, int], t: Mapping[str, int]) -> str | None:
        """Slicing keeps the most important dimensions of T's heads (``bert_weights``): no more than T has."""
        if xi["H"] // xi["A"] > t["H"] // t["A"]:
            return f"head size H/A={xi['H'] // xi['A']} exceeds T's {t['H'] // t['A']}"
        return None

    def checkpoint_heads(self, tensor_names, config: dict) -> set[str]:
        """An MLM head, and a classifier (``*ForSequenceClassification``), are sliced with the body."""
        names = list(tensor_names)
        heads = {"masked-lm"} if any(n.startswith("cls.predictions") for n in names) else set()
        if any(n.startswith("classifier.") for n in names) and head_of(config, self.heads) == "sequence-classification":
            heads.add("sequence-classification")
        return heads

    def default_grid(self, t: Mapping[str, int]) -> tuple[dict[str, tuple[int, ...]], list[str]]:
        """Fractions of T in each dimension, every head kept whole (H/A = T's head size: exact slices)."""
        from .weights import DEPTHS, FFN, WIDTHS, fractions_of

        head = t["H"] // t["A"]
        H = fractions_of(t["H"], WIDTHS, step=head)
        return ({"D": fractions_of(t["D"], DEPTHS), "A": tuple(h // head for h in H), "H": H,
                 "I": fractions_of(t["I"], FFN)}, [f"H == {head} * A"])

    def hidden_states(self, model, batch):
        return model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state

    def project(self, model, hidden, head: str, attention_mask=None):
        """Masked-LM: the vocabulary projection of the given rows. Classification: BERT's pooler reads
        each sequence's first token, then dropout and the classifier, as ``BertForSequenceClassification``."""
        if head == "masked-lm":
            return model.cls(hidden)
        return model.classifier(model.dropout(model.base_model.pooler(hidden)))


BERT = Bert()
