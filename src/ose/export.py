"""The pick as a Hugging Face model directory: weights, tokenizer, labels and a model card.

``transformers.AutoModelForSequenceClassification.from_pretrained(DIR)`` (or
``AutoModelForMaskedLM``, ``AutoModelForCausalLM``) and ``AutoTokenizer.from_pretrained(DIR)``
load it offline; ``pipeline("text-classification", model=DIR)`` answers with the data's label
names, and a decoder's ``generate`` stops at its end token. The tokenizer is the one the model
trained with, with the template its inputs had (``[CLS] … [SEP]``; a decoder's begin token
alone), so that it encodes text the way training did.
"""

from __future__ import annotations

import json
from pathlib import Path

CARD = "README.md"
FACTS = "ose.json"


def tokenizer_for_export(tok, max_length: int, specials=None, generates: bool = False):
    """The training tokenizer as a ``transformers`` fast tokenizer whose template is the one training
    used: the begin token alone before a prompt a decoder continues (its blocks began so; an end
    token would tell it the text is over); begin … end for an encoder's inputs, unless the
    tokenizer brings its own post-processor (a checkpoint's)."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    from .data import Specials

    s = specials or Specials()
    tok = Tokenizer.from_str(tok.to_str())  # a copy: the study's own tokenizer stays as it is
    if generates:
        tok.post_processor = TemplateProcessing(single=f"{s.begin} $A", pair=f"{s.begin} $A $B:1",
                                                special_tokens=[(s.begin, tok.token_to_id(s.begin))])
    elif tok.post_processor is None:
        marks = [(s.begin, tok.token_to_id(s.begin)), (s.end, tok.token_to_id(s.end))]
        tok.post_processor = TemplateProcessing(single=f"{s.begin} $A {s.end}",
                                                pair=f"{s.begin} $A {s.end} $B:1 {s.end}:1", special_tokens=marks)
    # Only tokens the vocabulary has: naming another would add it, and the vocabulary would outgrow the model's.
    roles = {"pad_token": s.pad, "mask_token": s.mask, "unk_token": "[UNK]",
             **({"bos_token": s.begin, "eos_token": s.end} if generates else {"cls_token": s.begin, "sep_token": s.end})}
    named = {k: v for k, v in roles.items() if v is not None and tok.token_to_id(v) is not None}
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, **named)


def token_ids_for_generation(model, tokenizer) -> None:
    """The begin, end and padding ids a decoder's ``generate`` reads, in its config and generation
    config: transformers' Llama defaults (1, 2) are other tokens of this vocabulary."""
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id}
    for config in (model.config, model.generation_config):
        for key, value in ids.items():
            setattr(config, key, value)


def export(model, ctx, out: Path, card: dict) -> Path:
    """Write ``out``: config.json (with label names), model.safetensors, the tokenizer, README.md."""
    out.mkdir(parents=True, exist_ok=True)
    names = ctx.data.label_names
    if names:
        model.config.id2label = dict(enumerate(names))
        model.config.label2id = {name: i for i, name in enumerate(names)}
    tokenizer = tokenizer_for_export(ctx.tokenizer, ctx.space.settings.seq_len, ctx.data.specials,
                                     ctx.task.generates)
    if ctx.task.generates:
        token_ids_for_generation(model, tokenizer)
    from .pretrained import quiet_loading

    with quiet_loading():  # no "Writing model shards" bar
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / FACTS).write_text(json.dumps(card, indent=2))
    (out / CARD).write_text(model_card(card))
    return out


def card_facts(meta: dict, pick: dict, ctx, steps: int, theta, accuracy: float, teacher_accuracy: float | None,
               timings: dict) -> dict:
    """Everything the model card states, as data (also written to ose.json)."""
    from . import __version__

    t = meta["maximum_point"]
    names = list(ctx.family.parameters)
    return {"architecture": {k: pick[k] for k in names}, "maximum_point": t["architecture"],
            "family": ctx.family.name, "task": ctx.task.name, "labels": ctx.data.label_names,
            "source": meta["settings"].get("source"), "init": meta["settings"].get("init", "scratch"),
            "params": pick["params"], "ops": pick["ops"], "T_params": t["params"], "T_ops": t["ops"],
            "accuracy": accuracy, "T_accuracy": teacher_accuracy, "heldout_examples": _heldout_size(ctx),
            "latency_seconds": timings, "seq_len": ctx.space.settings.seq_len, "steps": steps,
            "theta": theta.as_dict(), "distillation": {"alpha": ctx.cfg.kd_alpha, "beta": ctx.cfg.kd_beta,
                                                       "temperature": ctx.cfg.kd_temperature},
            "search": {"W": pick["w"], "error": pick["error"], "strategy": meta["settings"]["bound"]["strategy"],
                       "epsilon": meta["settings"]["bound"]["epsilon"], "steps": meta["settings"]["bound"]["steps"]},
            "data": meta["settings"]["data"], "ose_version": __version__}


def _heldout_size(ctx) -> int:
    return sum(chunk.labels.numel() for chunk in ctx.data.chunks(256))


def model_card(f: dict) -> str:
    """README.md of the exported model."""
    arch = ", ".join(f"{k}={v}" for k, v in f["architecture"].items())
    top = ", ".join(f"{k}={v}" for k, v in f["maximum_point"].items())
    lat = f["latency_seconds"]
    rows = [("parameters p", f"{f['params']:,}", f"{f['T_params']:,}", f"{f['params'] / f['T_params']:.3f}"),
            ("operations i (one sequence of L tokens)", f"{f['ops']:,}", f"{f['T_ops']:,}",
             f"{f['ops'] / f['T_ops']:.4f}")]
    if f["T_accuracy"] is not None:
        rows.append(("held-out accuracy", f"{f['accuracy']:.4f}", f"{f['T_accuracy']:.4f}",
                     f"{f['accuracy'] / f['T_accuracy']:.3f}"))
    else:
        rows.append(("held-out accuracy", f"{f['accuracy']:.4f}", "—", "—"))
    for b in lat["model"]:
        m, t = 1000 * lat["model"][b], 1000 * lat["T"][b]
        rows.append((f"CPU latency, ms per batch of {b}", f"{m:.3g}", f"{t:.3g}", f"{t / m:.2f}× faster"))
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    source = f["source"]
    origin = (f"extracted from `{source['from']}` (T = ⟨{top}⟩), starting from T's weights sliced to its shape"
              if source else f"trained from scratch; T = ⟨{top}⟩ is the search space's maximum point")
    teacher = ("distilled for {steps} steps from T fine-tuned on the task for the same {steps} steps"
               .format(steps=f["steps"]) if f["T_accuracy"] is not None else f"trained for {f['steps']} steps")
    labels = ", ".join(f["labels"]) if f["labels"] else "none (a language model)"
    return f"""---
library_name: transformers
tags: [ose, optimal-subarchitecture-extraction, {f['family']}]
---

# ⟨{arch}⟩: a {f['family']} sub-architecture found by ose

This model was {origin}, chosen by `ose` (optimal subarchitecture extraction, de Wynter 2020)
as the argmax of the W-coefficient (W = {float(f['search']['W']):.4g}, strategy {f['search']['strategy']},
ε = {f['search']['epsilon']}, s = {f['search']['steps']}), then {teacher}.

Task: `{f['task']}`; labels: {labels}. Data: {f['data'].get('source')} ({f['data'].get('examples')} examples);
held-out accuracy on {f['heldout_examples']:,} examples the training never saw. Sequences of up to
{f['seq_len']} tokens.

| | this model | T | model / T |
|---|---|---|---|
{table}

Latency: median forward pass on this machine's CPU (1 torch thread), the model and T measured
side by side in alternating rounds.

Training: θ = {json.dumps(f['theta'])}; distillation α = {f['distillation']['alpha']},
β = {f['distillation']['beta']}, τ = {f['distillation']['temperature']}. Made with ose {f['ose_version']}.

```python
{USAGE.get(f['task'], USAGE['cls'])}
```
"""


USAGE = {
    "cls": 'from transformers import pipeline\n'
           'classify = pipeline("text-classification", model="PATH/TO/THIS/DIRECTORY")',
    "mlm": 'from transformers import pipeline\n'
           'fill = pipeline("fill-mask", model="PATH/TO/THIS/DIRECTORY")',
    "clm": 'from transformers import AutoModelForCausalLM, AutoTokenizer\n'
           'model = AutoModelForCausalLM.from_pretrained("PATH/TO/THIS/DIRECTORY")\n'
           'tokenizer = AutoTokenizer.from_pretrained("PATH/TO/THIS/DIRECTORY")\n'
           'ids = tokenizer("the weather today", return_tensors="pt").input_ids\n'
           'print(tokenizer.decode(model.generate(ids, max_new_tokens=20)[0]))',
}
