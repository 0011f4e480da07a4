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

from . import jsonout

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


def export(model, inputs, out: Path, card: dict) -> Path:
    """Write ``out``: config.json (with label names), model.safetensors, the tokenizer, README.md
    and ose.json (the card's facts). Nothing else: training state stays with the study."""
    from .families.weights import quiet_loading

    out.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu")
    names = inputs.data.label_names
    if names:
        model.config.id2label = dict(enumerate(names))
        model.config.label2id = {name: i for i, name in enumerate(names)}
    tokenizer = tokenizer_for_export(inputs.tokenizer, inputs.space.settings.seq_len, inputs.data.specials,
                                     inputs.task.generates)
    if inputs.task.generates:
        token_ids_for_generation(model, tokenizer)
    with quiet_loading():  # no "Writing model shards" bar
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / FACTS).write_text(jsonout.dumps(card, indent=2))
    (out / CARD).write_text(model_card(card))
    return out


def _name(path: str | None) -> str | None:
    """What a card says of an input file: its name, never the local path it was read from."""
    return None if path is None else Path(path).name or str(path)


def test_facts(inputs, measured) -> dict:
    """Which rows the final numbers come from: the test part, its size and units, how it was cut."""
    data = inputs.data
    note = (f"the examples of {_name(inputs.cfg.test_data)} (--test-data)" if inputs.cfg.test_data else
            "held-out texts apart from B's" if data.layout == "texts" else
            "held-out rows B did not take (this study predates a separate test part; for text cut into "
            "blocks, a text can run across the edge of a B block into a test block)")
    return {"set": "test", "rows": measured.rows, "row_unit": data.row_unit, "targets": measured.targets,
            "target_unit": inputs.task.target_unit, "layout": data.layout, "what": note}


def _accuracy(measured) -> dict:
    lo, hi = measured.interval()
    return {"accuracy": measured.accuracy, "interval_95": [lo, hi], "loss": measured.loss}


def card_facts(meta: dict, pick: dict, inputs, theta, student, t, timings: dict, teacher: str | None = None) -> dict:
    """Everything the model card states, as data (also written to ose.json). The counts are the
    model exported (its head, its labels), p and i against T's with the same head; ``t`` is T's run
    (the yardstick: as given, or fine-tuned), ``teacher`` what the model was distilled from."""
    from .version import __version__

    space, names = inputs.space, list(inputs.family.parameters)
    xi = {k: pick[k] for k in names}
    cost, t_cost = space.cost(xi), space.max_cost
    source = meta["settings"].get("source")
    data = meta["settings"]["data"]
    return {"architecture": xi, "maximum_point": dict(space.maximum_point),
            "family": inputs.family.name, "task": inputs.task.name, "labels": inputs.data.label_names,
            "source": ({"from": _name(source["from"]), "weights_sha256": source["weights_sha256"],
                        "architecture": source["architecture"]} if source else None),
            "init": meta["settings"].get("init", "scratch"),
            "head": space.settings.head, "params": cost.params, "ops": cost.ops, "T_params": t_cost.params,
            "T_ops": t_cost.ops, "test": test_facts(inputs, student.test), "model": _accuracy(student.test),
            "T": _accuracy(t.test) if t else None, "teacher": teacher,
            "training": {"model": student.record(), "T": t.record() if t else None,
                         "validation_rows": inputs.data.validation.rows},
            "latency_seconds": timings, "seq_len": space.settings.seq_len,
            "theta": theta.as_dict(), "distillation": ({"alpha": inputs.cfg.kd_alpha, "beta": inputs.cfg.kd_beta,
                                                        "temperature": inputs.cfg.kd_temperature} if teacher else None),
            "search": {"W": pick["w"], "error": pick["error"], "strategy": meta["settings"]["bound"]["strategy"],
                       "epsilon": meta["settings"]["bound"]["epsilon"], "steps": meta["settings"]["bound"]["steps"]},
            "data": {"source": _name(data.get("source")), "examples": data.get("examples"),
                     "fingerprint": data.get("fingerprint")},
            "usage": inputs.task.usage, "run": student.run, "ose_version": __version__}


def size_text(test: dict) -> str:
    """``3,304 examples``, or ``997 blocks of 64 tokens (9,330 masked tokens)``."""
    rows = f"{test['rows']:,} {test['row_unit']}"
    return rows if test["row_unit"] == test["target_unit"] else f"{rows} ({test['targets']:,} {test['target_unit']})"


def _percent(a: dict) -> str:
    lo, hi = a["interval_95"]
    return f"{a['accuracy']:.4f} [{lo:.3f}, {hi:.3f}]"


def _trained(record: dict | None) -> str:
    if record is None:
        return "—"
    if record.get("as_given"):
        return "as given (the checkpoint, not trained here)"
    line = f"{record['steps']} of at most {record['steps_cap']} steps (best at {record['best_step']})"
    if "still_rising" in record:
        line += (f"; stopped by the cap: its best validation accuracy in the last half was "
                 f"{100 * record['still_rising']:+.1f} points on the first half's, so it may be short of its plateau")
    return line


def _unfinished(f: dict) -> str:
    left, other = f["search"].get("unfinished"), f["search"].get("search_pick")
    text = (f"\n**The search was unfinished** ({left}): this architecture is its best so far, not its answer."
            if left else "")
    keep = f.get("keep")
    if keep:
        text += (f"\n**Accuracy floor** (`ose distil --keep {keep['floor']:g}`): this model keeps "
                 f"{keep['ratio']:.3f} of T's test accuracy, {'meeting' if keep['verified'] else 'short of'} the floor.")
    if other:
        arch = ", ".join(f"{k}={v}" for k, v in other.items() if k != "W")
        text += (f"\n**Chosen with `ose distil --pick`**, not by the search: the search's pick is ⟨{arch}⟩ "
                 f"(W {other['W']:.4g}); this one has W {f['search']['W']:.4g}.")
    return text


def deployment(f: dict) -> str:
    """The card's section on the ONNX graphs, when ``ose export --onnx`` wrote them."""
    d = f.get("onnx")
    if not d:
        return ""
    lat = d["latency_seconds"]
    runtimes = list(lat["model"])
    acc = {"PyTorch fp32": d["pytorch"], "ORT fp32": d["fp32"], "ORT int8": d.get("int8")}
    rows = ["| | " + " | ".join(runtimes) + " |", "|---|" + "---|" * len(runtimes),
            "| test accuracy [95% interval] | " + " | ".join(_percent(acc[r]) for r in runtimes) + " |"]
    for who in ("model", "T"):
        for b in lat[who]["PyTorch fp32"]:
            rows.append(f"| {'this model' if who == 'model' else 'T'}, ms per batch of {b} | "
                        + " | ".join(f"{1000 * lat[who][r][b]:.3g}" for r in runtimes) + " |")
    int8 = d.get("int8")
    warn = ("" if not int8 or int8["within_tolerance"] else
            f"\n**Warning:** the int8 model is more than {100 * int8['tolerance']:g} point(s) less accurate than fp32.")
    files = f"`{d['file']}`" + (f" (fp32) and `{int8['file']}` (int8, ONNX Runtime's dynamic quantization)"
                                if int8 else "")
    past = (", without past key/values (each generated token recomputes the prefix)" if "position_ids" in d["inputs"]
            else "")
    return f"""
## ONNX Runtime

{files}, inputs {', '.join(d['inputs'])}, output `logits`; Optimum's `ORTModelFor…` loads them from this
directory (`file_name=` for the int8 one){past}. The fp32
graph's logits match PyTorch's on every test row within {d['tolerance']['atol']:g} + {d['tolerance']['rtol']:g}·|logit|
(largest difference {d['max_abs_diff']:.2g}). Latency: median forward pass, 1 thread, onnxruntime
{d['runtime']['onnxruntime']}, all measured side by side in alternating rounds (T timed in its shape).

{chr(10).join(rows)}
{warn}"""


def model_card(f: dict) -> str:
    """README.md of the exported model."""
    arch = ", ".join(f"{k}={v}" for k, v in f["architecture"].items())
    t_arch = ", ".join(f"{k}={v}" for k, v in f["maximum_point"].items())
    lat, test, t = f["latency_seconds"], f["test"], f["T"]
    rows = [("parameters p", f"{f['params']:,}", f"{f['T_params']:,}", f"{f['params'] / f['T_params']:.3f}"),
            ("operations i (one sequence of L tokens)", f"{f['ops']:,}", f"{f['T_ops']:,}",
             f"{f['ops'] / f['T_ops']:.4f}"),
            ("test accuracy [95% interval]", _percent(f["model"]), _percent(t) if t else "—",
             f"{f['model']['accuracy'] / t['accuracy']:.3f}" if t else "—"),
            ("trained", _trained(f["training"]["model"]), _trained(f["training"]["T"]), "")]
    for b in lat["model"]:
        m, tt = 1000 * lat["model"][b], 1000 * lat["T"][b]
        rows.append((f"CPU latency, ms per batch of {b}", f"{m:.3g}", f"{tt:.3g}", f"{tt / m:.2f}× faster"))
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    source = f["source"]
    origin = (f"extracted from `{source['from']}` (T = ⟨{t_arch}⟩), starting from T's weights sliced to its shape"
              if source else f"trained from scratch; T = ⟨{t_arch}⟩ is the search space's maximum point")
    stop = (f"once accuracy on a validation part of {f['training']['validation_rows']:,} training rows stopped "
            f"improving, or at the cap of {f['training']['model']['steps_cap']} steps")
    given = t and f["training"]["T"].get("as_given")
    teacher = (f"trained (stopped {stop})" if not f.get("teacher") else
               f"distilled from {f['teacher']} (stopped {stop})" if given or not t else
               f"distilled from {f['teacher']} (each stopped {stop})")
    labels = ", ".join(f["labels"]) if f["labels"] else "none (a language model)"
    usage = f.get("usage")
    snippet = f"\n```python\n{usage.replace('PATH', 'PATH/TO/THIS/DIRECTORY')}\n```\n" if usage else ""
    kd = f["distillation"]
    kd = f"; distillation α = {kd['alpha']}, β = {kd['beta']}, τ = {kd['temperature']}" if kd else ""
    return f"""---
library_name: transformers
tags: [ose, optimal-subarchitecture-extraction, {f['family']}]
---

# ⟨{arch}⟩: a {f['family']} sub-architecture found by ose

This model was {origin}, chosen by `ose` (optimal subarchitecture extraction, de Wynter 2020)
as the argmax of the W-coefficient (W = {float(f['search']['W']):.4g}, strategy {f['search']['strategy']},
ε = {f['search']['epsilon']}, s = {f['search']['steps']}), then {teacher}.{_unfinished(f)}

Task: `{f['task']}` (head: {f['head']}); labels: {labels}. Data: {f['data']['source']} ({f['data']['examples']} examples).
Accuracies are measured on the test part: {size_text(test)}, {test['what']}; neither the search nor
the training selected on them. Sequences of up to {f['seq_len']} tokens.

| | this model | T | model / T |
|---|---|---|---|
{table}

p and i count the model as exported (its head and labels), T with the same head. Latency: median
forward pass on this machine's CPU (1 torch thread, fp32), the model and T measured side by side
in alternating rounds.

Training: θ = {json.dumps(f['theta'])}{kd}.
Made with ose {f['ose_version']}.
{snippet}{deployment(f)}"""
