"""B and the test part: for every task, built from disjoint held-out texts (nothing selected on B
is measured again on the test part); the layout of studies made before keeps their B as it was;
final training's validation part comes out of the training set."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from ose.data import SPECIALS, Example, Specials
from ose.families import get_family
from ose.tasks import get_task
from ose.tasks.base import BlockData

WORDS = [f"w{i}" for i in range(400)]
SETTINGS = get_family("bert").settings_type(vocab_size=len(SPECIALS) + len(WORDS), max_positions=16, seq_len=16)


@pytest.fixture(scope="module")
def tok():
    """One token per word: a text's tokens tell which text they came from."""
    vocab = {t: i for i, t in enumerate([*SPECIALS, *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tok


def _examples():
    """400 texts, each one word said 6 times: with its end token 7 tokens, so B's 8 blocks of 15
    (120 tokens) end inside a text."""
    return [Example(" ".join([w] * 6), label=("a", "b", "c")[i % 3]) for i, w in enumerate(WORDS)]


def _words(batch, tok, task: str = "cls") -> set[str]:
    """The words of the texts a batch was built from (an MLM batch's masked inputs restored)."""
    ids = batch.input_ids.clone()
    if task == "mlm":
        ids[batch.positions] = batch.labels
    return {tok.id_to_token(i) for i in ids.flatten().tolist()} - set(SPECIALS)


@pytest.mark.parametrize("task", ["mlm", "clm", "cls"])
def test_b_and_the_test_part_hold_disjoint_held_out_texts(tok, task):
    examples = _examples()
    train, heldout = examples[:300], examples[300:]
    data = get_task(task).data(tok, Specials(), train, heldout, SETTINGS, eval_size=8, seed=0)
    b, test = _words(data.heldout, tok, task), _words(data.test, tok, task)
    assert data.heldout.rows == 8 and data.test.rows > 8
    assert b and test and not b & test, sorted(b & test)[:5]
    assert b | test <= {e.text.split()[0] for e in heldout}  # held-out texts only, none from training
    assert data.test.labels.numel() == int(data.test.targets_per_row().sum())


@pytest.mark.parametrize("task", ["mlm", "clm", "cls"])
def test_the_legacy_layout_keeps_the_b_that_studies_made_before_had(tok, task):
    """A study without a format resumes on the B it scored its evaluations on: for blocks, eval_size
    of all held-out blocks drawn with seed + 1 (and their masks drawn next); for examples, as now."""
    examples = _examples()
    train, heldout = examples[:300], examples[300:]
    legacy = get_task(task).data(tok, Specials(), train, heldout, SETTINGS, eval_size=8, seed=3, layout="legacy")
    if task == "cls":
        now = get_task(task).data(tok, Specials(), train, heldout, SETTINGS, eval_size=8, seed=3)
        assert torch.equal(legacy.heldout.input_ids, now.heldout.input_ids)
        assert torch.equal(legacy.heldout.labels, now.heldout.labels)
        return
    g = torch.Generator().manual_seed(4)
    held = BlockData.blocks(legacy, tok, heldout, 16)
    old_b = held[torch.randperm(len(held), generator=g)[:8]]
    expected = legacy.mask(old_b, g) if task == "mlm" else legacy.batch(old_b)
    for name in ("input_ids", "labels", "positions"):
        assert torch.equal(getattr(legacy.heldout, name), getattr(expected, name)), name
    assert legacy.test.rows == len(held) - 8


def test_final_training_carves_its_validation_part_from_training_alone(tok):
    examples = _examples()
    data = get_task("cls").data(tok, Specials(), examples[:300], examples[300:], SETTINGS, eval_size=8, seed=0)
    carved = data.with_validation(seed=0, rows=20)
    assert carved.validation.rows == 20 and len(carved.train) == 280 and len(data.train) == 300
    held = _words(data.heldout, tok) | _words(data.test, tok)
    val = _words(carved.validation, tok)
    rest = {tok.id_to_token(i) for ids, _ in carved.train for i in ids} - set(SPECIALS)
    assert val and not val & rest and not val & held
