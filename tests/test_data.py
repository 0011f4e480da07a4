"""``ose.data``: reading D, the seeded split, the tokenizer and its cache, MLM masking and B."""

import json
import re

import pytest
import torch

from ose import data as D
from ose.config import ExtractConfig, Theta
from ose.data import DataError, Example, get_tokenizer, prepare, read_examples, split
from ose.families.bert import BertSettings
from ose.tasks import get_task

LABELS = {"negative", "neutral", "positive"}


def prep(task: str, vocab_size: int, seq_len: int, batch_size: int, seed: int, **options):
    """``data.prepare`` for one θ of ``batch_size`` and a BERT space of this vocabulary and L."""
    cfg = ExtractConfig(theta=[Theta(batch_size=batch_size)], seed=seed, **options)
    return prepare(cfg, get_task(task), BertSettings(vocab_size=vocab_size, seq_len=seq_len, max_positions=64))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tweets():
    """The first 2,000 tweets of the embedded corpus (the tokenizer's training text)."""
    return read_examples(ExtractConfig(max_examples=2000))


# --- reading ------------------------------------------------------------------------------

def test_embedded_corpus_has_text_and_labels():
    examples = read_examples(ExtractConfig())
    assert len(examples) > 30_000
    assert all(e.text.strip() for e in examples)
    assert {e.label for e in examples} == LABELS
    assert read_examples(ExtractConfig(data=D.EMBEDDED)) == examples


def test_max_examples_spreads_over_the_source():
    # The embedded corpus is sorted by label: its first 2,000 tweets are all negative.
    examples = read_examples(ExtractConfig())
    some = read_examples(ExtractConfig(max_examples=2000))
    assert len(some) == 2000 and some[0] == examples[0]
    assert {e.label for e in some} == LABELS
    assert [examples.index(e) for e in some[:3]] == [0, len(examples) // 2000, 2 * len(examples) // 2000]
    assert read_examples(ExtractConfig(max_examples=10 ** 6)) == examples


def test_plain_text_file_one_example_a_line(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text("first line\n\n   \nsecond line  \n  third\n")
    examples = read_examples(ExtractConfig(data=str(f)))
    assert examples == [Example("first line"), Example("second line"), Example("third")]
    assert all(e.label is None for e in examples)


def test_folder_of_text_files_in_sorted_order(tmp_path):
    (tmp_path / "b.txt").write_text("from b\n")
    (tmp_path / "a.txt").write_text("from a 1\nfrom a 2\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("from c\n")
    (tmp_path / "ignored.json").write_text('{"text": "not read"}\n')
    texts = [e.text for e in read_examples(ExtractConfig(data=str(tmp_path)))]
    assert texts == ["from a 1", "from a 2", "from b", "from c"]


def test_folder_without_data_files(tmp_path):
    (tmp_path / "x.json").write_text("{}\n")
    (tmp_path / "README.md").write_text("# about this data\n")
    with pytest.raises(DataError, match=r"folder holds no data files \(\.txt, \.text, \.jsonl, \.csv, \.tsv\)$"):
        read_examples(ExtractConfig(data=str(tmp_path)))


def test_which_files_a_folder_takes_is_said_and_recorded(tmp_path):
    """.txt, .text, .jsonl, .csv and .tsv in any case, at any depth; not a README.md (it used to
    become examples), nor anything under a hidden name (a notebook's checkpoint copies)."""
    rows = "".join(json.dumps({"text": f"row {i}", "label": i % 2}) + "\n" for i in range(20))
    (tmp_path / "a.jsonl").write_text(rows)
    (tmp_path / "B.CSV").write_text("text,label\n" + "".join(f"csv {i},{i % 2}\n" for i in range(20)))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.tsv").write_text("label\ttext\n1\ttabbed\n")
    (tmp_path / "README.md").write_text("# about this data\n")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "a-checkpoint.jsonl").write_text(rows)
    (tmp_path / ".hidden.txt").write_text("not read\n")
    assert [p.name for p in D.source_files(str(tmp_path))] == ["B.CSV", "a.jsonl", "c.tsv"]
    assert D.describe_source(str(tmp_path)) == f"data: 3 files from {tmp_path} (B.CSV, a.jsonl, sub/c.tsv)"
    assert D.describe_source(str(tmp_path), shown=2).endswith("(B.CSV, a.jsonl, …)")
    assert len(read_examples(ExtractConfig(data=str(tmp_path)))) == 41
    _, _, identity = prep("cls", 512, 32, 4, 0, data=str(tmp_path), eval_batches=1)
    assert identity["files"] == 3 and identity["examples"] == 41
    # A file, or the embedded corpus, is no folder: no count, no note.
    assert D.describe_source(str(tmp_path / "a.jsonl")) is None and D.describe_source(None) is None
    assert "files" not in prep("cls", 512, 32, 4, 0, data=str(tmp_path / "a.jsonl"), eval_batches=1)[2]


def test_jsonl_with_text_and_label(tmp_path):
    f = tmp_path / "d.jsonl"
    rows = [{"body": "good stuff", "y": 1}, {"body": "bad stuff", "y": 0}, {"body": "meh", "y": None}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    examples = read_examples(ExtractConfig(data=str(f), text_field="body", label_field="y"))
    assert examples == [Example("good stuff", "1"), Example("bad stuff", "0"), Example("meh", None)]


def test_jsonl_without_text_field_is_a_data_error(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "ok"}\n{"body": "no text here"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: no text field 'text'"):
        read_examples(ExtractConfig(data=str(f)))


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_a_number_label_names_one_class_however_written(tmp_path):
    """1, 1.0, "1" and "01" were four classes; a JSON boolean was Python's "True"."""
    labels = [1, 1.0, "1", " 01 ", 0, -0.0, "0.50", 0.5, 1e20, "12345678901234567891", None, "", float("nan")]
    f = _jsonl(tmp_path / "d.jsonl", [{"text": f"t {i}", "label": v} for i, v in enumerate(labels)])
    assert [e.label for e in read_examples(ExtractConfig(data=f))] == [
        "1", "1", "1", "1", "0", "0", "0.5", "0.5", "100000000000000000000", "12345678901234567891",
        None, None, None]
    f = _jsonl(tmp_path / "b.jsonl", [{"text": "yes", "label": True}, {"text": "no", "label": False}])
    assert [e.label for e in read_examples(ExtractConfig(data=f))] == ["true", "false"]
    f = _jsonl(tmp_path / "s.jsonl", [{"text": "a", "label": "pos"}, {"text": "b", "label": "true"}])
    assert [e.label for e in read_examples(ExtractConfig(data=f))] == ["pos", "true"]  # text stays as written


def test_labels_of_mixed_kinds_are_refused_naming_one_of_each(tmp_path):
    f = _jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"},
                                      {"text": "c", "label": 1}, {"text": "d", "label": True}])
    with pytest.raises(DataError) as e:
        read_examples(ExtractConfig(data=f))
    assert str(e.value) == (f'{f}: labels of mixed kinds: text "pos" ({f}:1), number 1 ({f}:3), boolean true '
                            f"({f}:4); give every label as one kind")
    # Across the files of a folder too; a number written as a string is a number.
    (tmp_path / "d.jsonl").unlink()
    _jsonl(tmp_path / "a.jsonl", [{"text": "a", "label": "0"}])
    _jsonl(tmp_path / "b.jsonl", [{"text": "b", "label": "pos"}])
    mixed = r'labels of mixed kinds: number "0" \(.*a\.jsonl:1\), text "pos" \(.*b\.jsonl:1\)'
    with pytest.raises(DataError, match=mixed):
        read_examples(ExtractConfig(data=str(tmp_path)))
    # A task that learns no labels reads them as they come.
    assert [e.label for e in read_examples(ExtractConfig(data=str(tmp_path)), strict_labels=False)] == ["0", "pos"]


@pytest.mark.parametrize("text, problem", [(5, "a number"), (["a", "b"], "a list"), ({"a": 1}, "an object"),
                                           (True, "a boolean")])
def test_a_text_field_of_the_wrong_type_is_named(tmp_path, text, problem):
    f = _jsonl(tmp_path / "d.jsonl", [{"text": "fine"}, {"text": text}])
    with pytest.raises(DataError, match=rf"^{re.escape(f)}:2: field 'text' is {problem}, not a string$"):
        read_examples(ExtractConfig(data=f))


@pytest.mark.parametrize("label, problem", [([1, 2], "a list"), ({"y": 1}, "an object")])
def test_a_label_of_the_wrong_type_is_named(tmp_path, label, problem):
    f = _jsonl(tmp_path / "d.jsonl", [{"text": "fine", "label": 1}, {"text": "odd", "label": label}])
    with pytest.raises(DataError, match=rf"^{re.escape(f)}:2: field 'label' is {problem}, not a label "):
        read_examples(ExtractConfig(data=f))
    assert [e.label for e in read_examples(ExtractConfig(data=f), strict_labels=False)] == ["1", None]


def test_a_jsonl_row_that_is_no_object_is_named(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "ok"}\n["a", "list"]\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: a list, not a JSON object with a text field 'text'$"):
        read_examples(ExtractConfig(data=str(f)))


def test_csv_and_tsv_are_read_by_their_header(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text('id,text,label\n1,"hello, world",pos\n2,"a ""quoted""\nline",neg\n3,,pos\n')
    assert read_examples(ExtractConfig(data=str(f))) == [Example("hello, world", "pos"),
                                                         Example('a "quoted"\nline', "neg")]
    t = tmp_path / "d.tsv"
    t.write_text("sentence\tgold\nit works, truly\t1\nit does not\t0.0\n")
    assert read_examples(ExtractConfig(data=str(t), text_field="sentence", label_field="gold")) == [
        Example("it works, truly", "1"), Example("it does not", "0")]
    assert read_examples(ExtractConfig(data=str(t), text_field="sentence")) == [  # no label column: no labels
        Example("it works, truly"), Example("it does not")]


def test_csv_without_the_text_column_names_the_columns_found(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("sentence,gold\nsome text,1\n")
    with pytest.raises(DataError) as e:
        read_examples(ExtractConfig(data=str(f)))
    assert str(e.value) == (f"{f}: no column 'text' in its header (columns: sentence, gold); name the text column "
                            f"with --text-field")


def test_csv_row_with_the_wrong_number_of_fields(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("text,label\nfine,1\nshort\nfine,0\n")
    with pytest.raises(DataError, match=r"d\.csv:3: 1 fields where the header has 2$"):
        read_examples(ExtractConfig(data=str(f)))
    f.write_text("text,label\nfine,1\ntoo,many,fields\n")
    with pytest.raises(DataError, match=r"d\.csv:3: 3 fields where the header has 2$"):
        read_examples(ExtractConfig(data=str(f)))


@pytest.mark.parametrize("name, content, field", [
    ("d.jsonl", '{"text": "first", "label": 1}\n', "text"),
    ("d.txt", "first\n", "text"),
    ("d.csv", "text,label\nfirst,1\n", "text"),
    ("d.tsv", "words\tlabel\nfirst\t1\n", "words"),
])
def test_a_utf8_byte_order_mark_is_accepted(tmp_path, name, content, field):
    """Excel and Notepad write one; JSONL was refused with Python's "decode using utf-8-sig", a
    CSV's first column was named "\ufefftext", and a text file's first example began with it."""
    f = tmp_path / name
    f.write_bytes(b"\xef\xbb\xbf" + content.encode() + content.splitlines()[-1].replace("first", "second").encode())
    examples = read_examples(ExtractConfig(data=str(f), text_field=field))
    assert [e.text for e in examples] == ["first", "second"]


def test_invalid_json_line_is_a_data_error(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: invalid JSON"):
        read_examples(ExtractConfig(data=str(f)))


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_file_without_text_is_a_data_error(tmp_path, content):
    f = tmp_path / "empty.txt"
    f.write_text(content)
    with pytest.raises(DataError, match="no usable text"):
        read_examples(ExtractConfig(data=str(f)))


def test_missing_path_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_examples(ExtractConfig(data=str(tmp_path / "nope.txt")))



def test_text_with_a_stray_invalid_byte_is_read(tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("a line in UTF-8: naïve\n".encode() + b"caf\xe9 in Latin-1\n" + b"plain text\n" * 20)
    examples = read_examples(ExtractConfig(data=str(f)))
    assert examples[:2] == [Example("a line in UTF-8: naïve"), Example("caf\ufffd in Latin-1")]
    assert len(examples) == 22
    j = tmp_path / "d.jsonl"
    j.write_bytes(b'{"text": "caf\xe9"}\n{"text": "tea"}\n')
    assert read_examples(ExtractConfig(data=str(j))) == [Example("caf\ufffd"), Example("tea")]


def test_binary_files_are_refused_also_in_a_folder(tmp_path):
    (tmp_path / "a.txt").write_text("some text\n")
    (tmp_path / "b.jsonl").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"b\.jsonl: not a text file \(binary content: NUL bytes\)$"):
        read_examples(ExtractConfig(data=str(tmp_path)))
    noisy = tmp_path / "noisy.txt"  # no NUL, but a quarter of its bytes are controls or invalid UTF-8
    noisy.write_bytes(b"text\x01\xff\x02" * 100)
    with pytest.raises(DataError, match=r"noisy\.txt: not a text file \(binary content: 43% of its first 700 bytes"):
        read_examples(ExtractConfig(data=str(noisy)))

# --- split --------------------------------------------------------------------------------

def test_split_is_seeded_disjoint_and_complete():
    examples = [Example(f"text {i}") for i in range(200)]
    train, held = split(examples, 0.1, seed=7)
    assert len(held) == 20 and len(train) == 180
    assert {e.text for e in train}.isdisjoint({e.text for e in held})
    assert {e.text for e in train} | {e.text for e in held} == {e.text for e in examples}
    assert split(examples, 0.1, seed=7) == (train, held)
    assert split(examples, 0.1, seed=8) != (train, held)


def test_split_needs_two_examples():
    with pytest.raises(DataError, match="too few"):
        split([Example("only one")], 0.1, seed=0)


# --- tokenizer ----------------------------------------------------------------------------

def test_tokenizer_is_trained_once_then_loaded_from_the_cache(tmp_path, tweets, monkeypatch):
    texts = [e.text for e in tweets]
    first = get_tokenizer(texts, 512, None)
    cached = list((tmp_path / "cache" / "tokenizers").glob("wordpiece-512-*.json"))
    assert len(cached) == 1
    assert first.get_vocab_size() == 512
    for s in D.SPECIALS:
        assert first.token_to_id(s) is not None

    def no_training(*a, **k):
        raise AssertionError("the cached tokenizer should have been loaded")

    monkeypatch.setattr(D, "train_wordpiece", no_training)
    second = get_tokenizer(texts, 512, None)
    sample = texts[:50]
    assert [e.ids for e in second.encode_batch(sample)] == [e.ids for e in first.encode_batch(sample)]
    assert second.get_vocab() == first.get_vocab()


def test_fresh_tokenizer_trainings_number_tokens_alike(tweets):
    # The trainer numbers equal-frequency tokens in hash-map order; without renumbering, two
    # processes (or an emptied cache) gave different ids, hence different batches and results.
    texts = [e.text for e in tweets]
    a, b = D.train_wordpiece(texts, 512), D.train_wordpiece(texts, 512)
    assert a.get_vocab() == b.get_vocab()
    assert [a.token_to_id(s) for s in D.SPECIALS] == list(range(len(D.SPECIALS)))
    enc = a.encode("Hello [MASK] world")
    assert a.token_to_id("[MASK]") in enc.ids and a.decode(enc.ids) == "hello world"


def test_the_scratch_path_uses_the_shipped_tokenizer_of_the_embedded_corpus(monkeypatch, tmp_path):
    """tokenizers' trainer numbers equally frequent symbols in hash-map order, so fresh trainings
    on two machines can learn different token sets; the embedded corpus's tokenizers at the
    presets' sizes ship with ose instead, the same bytes everywhere, and nothing trains."""
    import gzip
    from importlib import resources

    from tokenizers import Tokenizer

    monkeypatch.setattr(D, "train_wordpiece", lambda *a: pytest.fail("trained a tokenizer"))
    for vocab in (4096, 30522):
        data, tok, identity = prep("mlm", vocab, 32, 8, 0, max_examples=2000, eval_batches=1)
        shipped = gzip.decompress(resources.files("ose.corpora").joinpath(f"wordpiece-{vocab}.json.gz").read_bytes())
        assert tok.get_vocab() == Tokenizer.from_str(shipped.decode()).get_vocab()
        assert tok.get_vocab_size() == vocab and identity["tokenizer"] == f"embedded-wordpiece-{vocab}"
        assert [tok.token_to_id(s) for s in D.SPECIALS] == [0, 1, 2, 3, 4]
    # Any other source, or a size ose ships none of, still trains one (on the training split).
    assert D.shipped_tokenizer(512) is None


def _save_tokenizer(tok, folder):
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    return str(folder)


def test_user_tokenizer_that_fits_is_used(tmp_path, tweets):
    tok = D.train_wordpiece([e.text for e in tweets], 300)
    folder = _save_tokenizer(tok, tmp_path / "tok")
    data, loaded, identity = prep("mlm", 512, 32, 8, 0, max_examples=2000, eval_batches=1, tokenizer=folder)
    assert loaded.get_vocab() == tok.get_vocab()
    assert identity["tokenizer_vocab"] == tok.get_vocab_size()
    assert int(data.train.max()) < tok.get_vocab_size()


def test_user_tokenizer_larger_than_the_space_vocabulary_does_not_fit(tmp_path, tweets):
    tok = D.train_wordpiece([e.text for e in tweets], 1024)
    folder = _save_tokenizer(tok, tmp_path / "big")
    with pytest.raises(DataError, match="does not fit") as e:
        get_tokenizer([], 512, folder)
    assert "512" in str(e.value) and "\n" not in str(e.value)


def test_a_tokenizer_fits_a_task_by_the_special_tokens_it_needs(tmp_path, tweets):
    """No [MASK]: fit for classification, a one-line error for MLM naming what is missing."""
    tok = D.train_wordpiece([e.text for e in tweets], 300)
    vocab = {k: v for k, v in tok.get_vocab().items() if k != "[MASK]"}
    from tokenizers import Tokenizer, models, pre_tokenizers

    nomask = Tokenizer(models.WordLevel({k: i for i, k in enumerate(sorted(vocab, key=vocab.get))}, unk_token="[UNK]"))
    nomask.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = _save_tokenizer(nomask, tmp_path / "nomask")
    data, _, _ = prep("cls", 512, 32, 8, 0, max_examples=2000, eval_batches=1, tokenizer=folder)
    assert data.heldout.input_ids[0, 0] == nomask.token_to_id("[CLS]")
    with pytest.raises(DataError, match=r"does not fit task mlm: it names no \[MASK\] or mask token") as e:
        prep("mlm", 512, 32, 8, 0, max_examples=2000, eval_batches=1, tokenizer=folder)
    assert "\n" not in str(e.value)


def test_specials_of_a_decoder_tokenizer_come_from_its_config(tmp_path):
    """A byte-level BPE as decoders ship it: no [CLS]; bos and eos named in tokenizer_config.json."""
    from tokenizers import Tokenizer, models

    tok = Tokenizer(models.WordLevel({"<|endoftext|>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "hi": 4}, unk_token="<unk>"))
    folder = _save_tokenizer(tok, tmp_path / "bpe")
    assert D.read_specials(tok, folder) == D.Specials(begin=None, end=None, pad=None, mask=None)
    (tmp_path / "bpe" / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|endoftext|>",
                                                                        "eos_token": {"content": "<|endoftext|>"}}))
    assert D.read_specials(tok, folder) == D.Specials(begin="<|endoftext|>", end="<|endoftext|>", pad=None, mask=None)
    (tmp_path / "bpe" / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<s>", "pad_token": "<none>"}))
    (tmp_path / "bpe" / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    assert D.read_specials(tok, folder) == D.Specials(begin="<s>", end="</s>", pad=None, mask=None)


def test_user_tokenizer_that_is_not_a_tokenizer(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(DataError, match="not a tokenizer"):
        get_tokenizer([], 512, str(folder))
    with pytest.raises(DataError, match="no tokenizer.json"):
        get_tokenizer([], 512, str(tmp_path / "absent"))


# --- MLM masking and B --------------------------------------------------------------------

@pytest.fixture(scope="module")
def mlm_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("mlm-cache"))


@pytest.fixture(scope="module")
def mlm(mlm_cache):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OSE_CACHE", mlm_cache)
        return prep("mlm", 512, 32, 32, 0, max_examples=2000, eval_batches=2)


def test_mlm_blocks_start_with_cls(mlm):
    data, tok, _ = mlm
    assert data.train.shape[1] == 32
    assert (data.train[:, 0] == tok.token_to_id("[CLS]")).all()
    assert data.heldout.input_ids.shape == (64, 32)


def test_mlm_masks_about_15_percent_of_ordinary_positions(mlm):
    data, tok, _ = mlm
    blocks = data.train
    batch = data.mask(blocks, torch.Generator().manual_seed(3))
    special = torch.zeros_like(blocks, dtype=torch.bool)
    for s in ("[CLS]", "[SEP]", "[PAD]"):
        special |= blocks == tok.token_to_id(s)
    # No special position is a target, unless a block needed its forced target at position 1.
    forced = batch.positions & special
    assert forced[:, [i for i in range(32) if i != 1]].sum() == 0
    rate = (batch.positions & ~special).sum().item() / (~special).sum().item()
    assert 0.14 < rate < 0.16, rate
    # The targets are the original tokens at the masked positions.
    assert torch.equal(batch.labels, blocks[batch.positions])
    # 80% of targets become [MASK], 10% a random token, 10% stay; unmasked positions are untouched.
    mask_id = tok.token_to_id("[MASK]")
    inputs = batch.input_ids
    assert torch.equal(inputs[~batch.positions], blocks[~batch.positions])
    share = (inputs[batch.positions] == mask_id).float().mean().item()
    assert 0.77 < share < 0.83, share
    kept = (inputs[batch.positions] == blocks[batch.positions]).float().mean().item()
    assert 0.08 < kept < 0.13, kept
    assert int(inputs.max()) < tok.get_vocab_size()
    assert batch.positions.any(dim=1).all()  # at least one target per block


def test_heldout_batches_are_fixed_by_the_seed(mlm, mlm_cache, monkeypatch):
    monkeypatch.setenv("OSE_CACHE", mlm_cache)
    data, _, identity = mlm
    again, _, identity2 = prep("mlm", 512, 32, 32, 0, max_examples=2000, eval_batches=2)
    assert identity == identity2
    for name in ("input_ids", "attention_mask", "labels", "positions"):
        assert torch.equal(getattr(data.heldout, name), getattr(again.heldout, name)), name
    other, _, _ = prep("mlm", 512, 32, 32, 1, max_examples=2000, eval_batches=2)
    assert not torch.equal(other.heldout.input_ids, data.heldout.input_ids)


def test_training_batches_follow_the_generator(mlm):
    data, _, _ = mlm
    a = next(data.train_batches(8, torch.Generator().manual_seed(5)))
    b = next(data.train_batches(8, torch.Generator().manual_seed(5)))
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)
    assert a.input_ids.shape == (8, 32) and a.labels.numel() == int(a.positions.sum())


# --- classification -----------------------------------------------------------------------

def test_classification_on_the_embedded_corpus(tmp_path):
    data, tok, identity = prep("cls", 512, 32, 16, 0, max_examples=2000, eval_batches=1)
    assert data.label_names == sorted(LABELS) and data.num_labels == 3
    held = data.heldout
    assert held.input_ids.shape[0] == 16 and held.input_ids.shape[1] <= 32
    assert held.positions is None and 0 <= int(held.labels.min()) and int(held.labels.max()) < 3
    assert (held.input_ids[:, 0] == tok.token_to_id("[CLS]")).all()
    assert torch.equal(held.attention_mask, (held.input_ids != tok.token_to_id("[PAD]")).long())
    assert identity["examples"] == 2000


def test_classification_needs_labels(tmp_path):
    f = tmp_path / "plain.txt"
    f.write_text("one text\nanother text\n")
    with pytest.raises(DataError, match="no label field"):
        prep("cls", 512, 32, 4, 0, data=str(f))


def test_classification_needs_two_labels_and_names_the_source(tmp_path, monkeypatch):
    f = tmp_path / "one.jsonl"
    f.write_text("".join(json.dumps({"text": f"t {i}", "label": "x"}) + "\n" for i in range(10)))
    with pytest.raises(DataError, match=r"one\.jsonl: classification needs at least 2 labels"):
        prep("cls", 512, 32, 4, 0, data=str(f))
    # Without a path the message names the embedded corpus (it used to say "None").
    monkeypatch.setattr(D, "read_examples", lambda cfg, **_: [Example(f"t {i}", "x") for i in range(10)])
    with pytest.raises(DataError, match="^embedded corpus: classification needs at least 2 labels"):
        prep("cls", 512, 32, 4, 0)


def test_one_class_however_written_is_one_class(tmp_path):
    f = _jsonl(tmp_path / "one.jsonl", [{"text": f"t {i}", "label": [1, "1", 1.0][i % 3]} for i in range(12)])
    with pytest.raises(DataError, match=r"one\.jsonl: classification needs at least 2 labels, found \['1'\]$"):
        prep("cls", 512, 32, 4, 0, data=f)


def test_label_order_puts_numbers_by_value():
    assert D.label_order(str(i) for i in range(12)) == [str(i) for i in range(12)]
    assert D.label_order(["10", "-1", "0.5", "2", "1e-05"]) == ["-1", "1e-05", "0.5", "2", "10"]
    assert D.label_order(["true", "false"]) == ["false", "true"]
    assert D.label_order(["pos", "neg", "Neutral", "10"]) == ["10", "Neutral", "neg", "pos"]


def test_integer_labels_are_their_class_index(tmp_path):
    """Labels 0..11 sorted as strings made class 2 the label "10"; label k is class k."""
    f = _jsonl(tmp_path / "twelve.jsonl", [{"text": f"text number {i}", "label": i % 12} for i in range(240)])
    data, tok, _ = prep("cls", 512, 32, 8, 0, data=f, eval_batches=1)
    assert data.label_names == [str(k) for k in range(12)]
    numbers = [int(tok.decode(ids).split()[-1]) for ids in data.heldout.input_ids.tolist()]
    assert [n % 12 for n in numbers] == data.heldout.labels.tolist()
