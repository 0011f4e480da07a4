"""The family boundary: a second family, written here and nowhere else, runs count, space and extract.

The toy is a residual MLP over token embeddings, an ABⁿC network: A embeds the tokens, each
of the D layers B is H → I → H with a ReLU and a residual, C is the task's head (a mean-pooled
classifier, or a vocabulary projection at masked positions). It touches no file of ose: it
implements ``ose.families.base.Family`` and registers itself, and its space file is its preset.
"""

import json
from dataclasses import dataclass
from typing import Mapping

import pytest
import torch
from torch import nn

import ose
from ose.costs import Op
from ose.families import FAMILIES, get_family
from ose.families.base import Family


@dataclass(frozen=True)
class ToySettings:
    vocab_size: int = 512
    seq_len: int = 32
    head: str = "classifier"      # classifier | mlm | none: the head the counts describe
    num_labels: int = 2

    def check(self) -> str | None:
        if min(self.vocab_size, self.seq_len, self.num_labels) < 1:
            return "vocab_size, seq_len and num_labels must be positive"
        return None if self.head in ("classifier", "mlm", "none") else f"unknown head {self.head!r}"


class ToyNet(nn.Module):
    def __init__(self, xi, s: ToySettings, head: str, num_labels: int):
        super().__init__()
        self.embed = nn.Embedding(s.vocab_size, xi["H"])
        self.layers = nn.ModuleList(nn.Sequential(nn.Linear(xi["H"], xi["I"]), nn.ReLU(), nn.Linear(xi["I"], xi["H"]))
                                    for _ in range(xi["D"]))
        out = {"classifier": num_labels, "mlm": s.vocab_size, "none": 0}[head]
        self.head = nn.Linear(xi["H"], out) if out else None

    def hidden(self, input_ids):
        x = self.embed(input_ids)
        for layer in self.layers:
            x = x + layer(x)
        return x


class Toy(Family):
    name = "toy"
    parameters = ("D", "H", "I")
    settings_type = ToySettings
    heads = {"masked-lm": "mlm", "sequence-classification": "classifier"}

    def check(self, xi: Mapping[str, int]) -> str | None:
        return None if min(xi.values()) >= 1 else "every parameter must be positive"

    def params(self, xi, s):
        D, H, I = xi["D"], xi["H"], xi["I"]
        out = {"classifier": s.num_labels, "mlm": s.vocab_size, "none": 0}[s.head]
        return {"A": s.vocab_size * H, "B": D * (H * I + I + I * H + H), "C": H * out + out}

    def operations(self, xi, s):
        L, D, H, I = s.seq_len, xi["D"], xi["H"], xi["I"]
        ops = [Op("B", "up", mults=D * L * H * I, adds=D * L * H * I, matmul=True),
               Op("B", "relu", other=D * L * I),
               Op("B", "down", mults=D * L * I * H, adds=D * L * I * H, matmul=True),
               Op("B", "residual", adds=D * L * H)]
        if s.head == "classifier":
            ops += [Op("C", "pool", adds=L * H, other=H),
                    Op("C", "classifier", mults=H * s.num_labels, adds=H * s.num_labels, matmul=True)]
        elif s.head == "mlm":
            ops += [Op("C", "decoder", mults=L * H * s.vocab_size, adds=L * H * s.vocab_size, matmul=True)]
        return ops

    def hf_config(self, xi, s, num_labels=None, config=None):
        from transformers import PretrainedConfig

        return PretrainedConfig(toy_layers=xi["D"], hidden_size=xi["H"], intermediate_size=xi["I"],
                                vocab_size=s.vocab_size)

    def build(self, xi, s, head=None, num_labels=None, attn=None, config=None):
        return ToyNet(xi, s, self.heads[head] if head else s.head, num_labels or s.num_labels)

    def hidden_states(self, model, batch):
        return model.hidden(batch.input_ids)

    def project(self, model, hidden, head, attention_mask=None):
        if attention_mask is None:  # rows at a task's target positions
            return model.head(hidden)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # whole sequences: mean-pooled
        return model.head((hidden * mask).sum(1) / mask.sum(1))


PRESET = """
family = "toy"
[parameters]
D = [1, 2]
H = [16, 32]
I = [32, 64]
[maximum_point]
D = 2
H = 32
I = 64
[settings]
vocab_size = 512
seq_len = 32
head = "classifier"
num_labels = 3
"""


@pytest.fixture(autouse=True)
def toy(monkeypatch, tmp_path):
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    FAMILIES.register("toy", Toy())
    yield get_family("toy")
    FAMILIES._entries.pop("toy")


@pytest.fixture
def preset(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(PRESET)
    return path


def test_the_closed_form_counts_the_built_model(toy):
    s = ToySettings(num_labels=3)
    for head in ("classifier", "mlm", "none"):
        settings = ToySettings(num_labels=3, head=head)
        model = toy.build({"D": 2, "H": 16, "I": 32}, settings)
        assert sum(p.numel() for p in model.parameters()) == toy.cost({"D": 2, "H": 16, "I": 32}, settings).params
    assert toy.cost({"D": 2, "H": 16, "I": 32}, s).parts["B"].params == 2 * (16 * 32 + 32 + 32 * 16 + 16)


def test_count_and_space_on_the_command_line(run_cli, preset):
    code, printed, err = run_cli("count", "--family", "toy", "D=2", "H=16", "I=32", "--num-labels", "3",
                                 "--format", "json")
    doc = json.loads(printed)
    assert code == 0 and doc["family"] == "toy" and doc["settings"]["num_labels"] == 3
    assert doc["params"] == 512 * 16 + 2 * (16 * 32 + 32 + 32 * 16 + 16) + 16 * 3 + 3
    code, _, err = run_cli("count", "--family", "toy", "D=2", "H=16", "I=32", "--max-positions", "64")
    assert code == 2 and "family toy has no setting --max-positions" in err
    code, printed, _ = run_cli("space", str(preset), "--format", "json")
    space = json.loads(printed)
    assert code == 0 and space["family"] == "toy" and len(space["architectures"]) == 8
    code, printed, _ = run_cli("space", str(preset))
    assert code == 0 and "ABⁿC:" in printed


@pytest.mark.parametrize("task", ["cls", "mlm"])
def test_a_tiny_extraction_end_to_end(preset, tmp_path, task):
    result = ose.extract(space=str(preset), task=task, epsilon=2, steps=5, max_examples=1500, eval_batches=1,
                         threads=1, out=str(tmp_path / task), progress=False, log=lambda *a: None)
    assert len(result.evaluations) == 4 and all(r["status"] == "ok" for r in result.evaluations)
    assert set(result.best) >= {"D", "H", "I", "w", "error"} and "A" not in result.best
    header = (tmp_path / task / "results.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["D", "H", "I"]
    assert json.loads((tmp_path / task / "best" / "config.json").read_text())["hidden_size"] == result.best["H"]
    assert "toy" in (tmp_path / task / "report.html").read_text()
