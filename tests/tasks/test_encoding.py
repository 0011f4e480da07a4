"""Text is encoded as the exported model will be served: a checkpoint tokenizer's own padding and
truncation (all-MiniLM-L6-v2's tokenizer.json pads every text to 128 tokens) change nothing; an
example is ``[CLS] text [SEP]`` padded after, exactly as the exported tokenizer encodes it; a
language model's stream of text holds no padding."""

import shutil

import pytest
import torch
from tokenizers import Tokenizer

from ose.data import Example, get_tokenizer, read_specials
from ose.export import tokenizer_for_export
from ose.families import get_family
from ose.tasks import get_task

TEXTS = ["good morning to you all", "what a day", "i really did not like the ending of that film at all", "ok"]


def _padded_copy(checkpoint, tmp_path, pad_token: str):
    """The checkpoint's tokenizer saved with fixed padding to 48 tokens and truncation at 48."""
    path = tmp_path / "padded"
    shutil.copytree(checkpoint, path)
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.enable_padding(length=48, pad_id=tok.token_to_id(pad_token), pad_token=pad_token)
    tok.enable_truncation(48)
    tok.save(str(path / "tokenizer.json"))
    return path


def _served(tok, specials, seq_len, generates, tmp_path):
    """The tokenizer an export writes, loaded back as a user loads it."""
    from transformers import AutoTokenizer

    tokenizer_for_export(tok, seq_len, specials, generates).save_pretrained(tmp_path / "export")
    return AutoTokenizer.from_pretrained(tmp_path / "export")


def _settings(checkpoint, seq_len=32):
    import json

    config = json.loads((checkpoint / "config.json").read_text())
    family = get_family(config["model_type"])
    return family.settings_type(**{**family.from_hf_config(config)[1], "seq_len": seq_len})


def test_a_saved_tokenizers_padding_changes_no_input(bert_checkpoint, tmp_path):
    padded = _padded_copy(bert_checkpoint, tmp_path, "[PAD]")
    settings = _settings(bert_checkpoint)
    examples = [Example(t, label="ab"[i % 2]) for i, t in enumerate(TEXTS * 20)]
    encoded = {}
    for name, path in (("shipped", bert_checkpoint), ("padded", padded)):
        tok = get_tokenizer([], settings.vocab_size, str(path))
        data = get_task("cls").data(tok, read_specials(tok, str(path)), examples[:60], examples[60:], settings, 8, 0)
        encoded[name] = data.heldout
    assert torch.equal(encoded["shipped"].input_ids, encoded["padded"].input_ids)
    assert encoded["padded"].input_ids.shape[1] < 48  # padded to the longest in the batch, not to 48


def test_classification_inputs_are_what_the_exported_tokenizer_gives(bert_checkpoint, tmp_path):
    padded = _padded_copy(bert_checkpoint, tmp_path, "[PAD]")
    settings = _settings(bert_checkpoint)
    tok = get_tokenizer([], settings.vocab_size, str(padded))
    specials = read_specials(tok, str(padded))
    examples = [Example(t, label="ab"[i % 2]) for i, t in enumerate(TEXTS * 20)]
    data = get_task("cls").data(tok, specials, examples[:60], examples[60:], settings, 8, 0)
    ours = data.collate(data._encode(tok, [Example(t, "a") for t in TEXTS], settings.seq_len))
    theirs = _served(tok, specials, settings.seq_len, False, tmp_path)(TEXTS, padding=True, return_tensors="pt")
    assert torch.equal(ours.input_ids, theirs["input_ids"])
    assert torch.equal(ours.attention_mask, theirs["attention_mask"])
    last = int(ours.attention_mask[3].sum()) - 1  # "ok": [CLS] ok [SEP], then padding
    assert ours.input_ids[3, last] == tok.token_to_id("[SEP]") and ours.input_ids.shape[1] < 48


@pytest.mark.parametrize("task, fixture, pad", [("mlm", "bert_checkpoint", "[PAD]"),
                                                 ("clm", "decoder_checkpoint", "<|endoftext|>")])
def test_a_language_models_stream_holds_no_padding_and_starts_as_served(task, fixture, pad, request, tmp_path):
    checkpoint = request.getfixturevalue(fixture)
    padded = _padded_copy(checkpoint, tmp_path, pad)
    settings = _settings(checkpoint, seq_len=16)
    tok = get_tokenizer([], settings.vocab_size, str(padded))
    specials = read_specials(tok, str(padded))
    examples = [Example(t) for t in TEXTS * 30]
    data = get_task(task).data(tok, specials, examples[:80], examples[80:], settings, 4, 0)
    # Blocks of L tokens: the begin token, then the texts joined by the end token; nothing else.
    end = tok.token_to_id(specials.end)
    plain = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))  # as shipped: no padding of its own
    texts = [i for e in examples[:80] for i in [*plain.encode(e.text, add_special_tokens=False).ids, end]]
    body = data.train[:, 1:].flatten().tolist()
    assert body == texts[: len(body)] and len(texts) - len(body) < 15
    assert pad == specials.end or tok.token_to_id(pad) not in body
    served = _served(tok, specials, settings.seq_len, get_task(task).generates, tmp_path)(TEXTS[0])["input_ids"]
    assert data.train[0, : len(served)].tolist() == served
