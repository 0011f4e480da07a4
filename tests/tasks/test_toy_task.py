"""The task boundary: a third task, written here and nowhere else, runs extract and distil.

The toy predicts each text's last word from the rest of it: [CLS] text [SEP] with the last
word's token replaced by [MASK], one target per example at that position. It trains BERT's
masked-LM head, which the family already builds; it declares its head kind and marks its target
positions, and touches no file of ose. It brings no card snippet, and the card shows none.
"""

import json

import pytest
import torch

import ose
from ose.tasks import TASKS, tasks_of
from ose.tasks.base import Batch, Task, TaskData


class LastWordData(TaskData):
    def __init__(self, tok, specials, train, heldout, seq_len, eval_size, seed, layout):
        self.specials, self.layout = specials, layout
        self.train_unit = self.row_unit = "examples"
        self.pad, self.mask = specials.id(tok, "pad"), specials.id(tok, "mask")
        self.train = self._encode(tok, specials, train, seq_len)
        held = self._encode(tok, specials, heldout, seq_len)
        self.heldout = self.collate(held[:eval_size], None)
        self.test = self.collate(held[eval_size:], None) if len(held) > eval_size else None

    def _encode(self, tok, specials, examples, seq_len):
        begin, end = specials.id(tok, "begin"), specials.id(tok, "end")
        encoded = tok.encode_batch([e.text for e in examples], add_special_tokens=False)
        return [[begin, *enc.ids[: seq_len - 2], end] for enc in encoded if len(enc.ids) >= 2]

    def collate(self, items, generator):
        ids = torch.full((len(items), max(len(s) for s in items)), self.pad)
        positions = torch.zeros_like(ids, dtype=torch.bool)
        labels = []
        for row, seq in enumerate(items):
            ids[row, : len(seq)] = torch.tensor(seq)
            last = len(seq) - 2  # the token before [SEP]
            labels.append(seq[last])
            ids[row, last], positions[row, last] = self.mask, True
        return Batch(ids, (ids != self.pad).long(), torch.tensor(labels), positions)


class LastWord(Task):
    name = "lastword"
    head = "masked-lm"
    needs = ("begin", "end", "pad", "mask")
    target_unit = "last words"

    def data(self, tok, specials, train, heldout, settings, eval_size, seed, layout="texts"):
        return LastWordData(tok, specials, train, heldout, settings.seq_len, eval_size, seed, layout)

    def check_teacher(self, config, data, vocab_size):
        return None if config.vocab_size == vocab_size else "another vocabulary"


@pytest.fixture(autouse=True)
def lastword(monkeypatch, tmp_path):
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    TASKS.register("lastword", LastWord)
    yield
    TASKS._entries.pop("lastword")


def test_a_third_task_runs_extract_and_distil_through_the_interface(tmp_path, tiny_space):
    from transformers import AutoModelForMaskedLM

    from ose.distil import distil
    from ose.families import get_family

    assert tasks_of(get_family("bert")) == ("mlm", "lastword", "cls")  # its head kind's; mlm stays the default
    space = tmp_path / "space.toml"
    space.write_text(tiny_space())
    result = ose.extract(space=str(space), task="lastword", epsilon=4, steps=3, max_examples=1500, eval_batches=1,
                         threads=1, out=str(tmp_path / "run"), progress=False, log=lambda *a: None)
    assert len(result.evaluations) == 2 and all(r["status"] == "ok" for r in result.evaluations)
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["settings"]["data"]["heldout_targets"] == 32  # one target per example of B
    assert doc["settings"]["space"]["settings"]["head"] == "mlm"  # C counted as the head it trains
    done = distil(tmp_path / "run", steps=3, log=lambda *a: None)
    facts = json.loads((done.out / "ose.json").read_text())
    assert facts["task"] == "lastword" and facts["test"]["target_unit"] == "last words"
    assert facts["test"]["targets"] == facts["test"]["rows"] > 0
    model = AutoModelForMaskedLM.from_pretrained(done.out)
    assert sum(p.numel() for p in model.parameters()) == facts["params"]
    assert "```python" not in (done.out / "README.md").read_text()  # no snippet of another task's
