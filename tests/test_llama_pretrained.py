"""--from a Llama checkpoint: T from its config, query heads sliced with their key/value groups,
and a distilled decoder that stock transformers loads and generates with. Built locally."""

import json

import pytest
import torch

import ose
from ose.families import get_family
from ose.pretrained import load_source, space_for
from ose.tasks.base import Batch

LLAMA = get_family("llama")
T = {"D": 4, "A": 4, "K": 2, "H": 64, "I": 128}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("OSE_CACHE", str(tmp_path_factory.getbasetemp() / "llama-pre-cache"))


def test_t_and_its_grid_come_from_the_checkpoint(llama_checkpoint, run_cli):
    source = load_source(str(llama_checkpoint))
    assert source.family == "llama" and source.xi == T and source.settings["tie_embeddings"] is False
    space = space_for(source)
    for xi in space.architectures():
        assert xi["A"] == 2 * xi["K"] and xi["H"] == 16 * xi["A"]  # whole groups, heads of T's size
        assert all(xi[k] <= T[k] for k in T)
    code, printed, _ = run_cli("count", "--from", llama_checkpoint, "--format", "json")
    doc = json.loads(printed)
    assert code == 0 and doc["family"] == "llama" and doc["checkpoint"]["matches"] is True


def test_slicing_t_to_its_own_shape_reproduces_its_logits(llama_checkpoint):
    source = load_source(str(llama_checkpoint))
    model, state = LLAMA.load_pretrained(source.path, source.weights)
    ids = torch.randint(5, model.config.vocab_size, (3, 20), generator=torch.Generator().manual_seed(0))
    imp = LLAMA.importance(model, Batch(ids, torch.ones_like(ids), None))
    settings = space_for(source, seq_len=20).settings
    sliced = LLAMA.slice(state, imp, T, settings, "clm").eval()
    with torch.no_grad():
        assert (sliced(input_ids=ids).logits - model(input_ids=ids).logits).abs().max().item() <= 1e-5
    small = LLAMA.slice(state, imp, {"D": 2, "A": 2, "K": 1, "H": 32, "I": 64}, settings, "clm")
    assert small.config.num_key_value_heads == 1
    assert small(input_ids=ids).logits.shape == (3, 20, model.config.vocab_size)


def test_extract_from_a_llama_checkpoint_and_distil_a_generating_model(llama_checkpoint, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ose.distil import distil

    result = ose.extract(source=str(llama_checkpoint), seq_len=32, epsilon=8, steps=4, max_examples=1500,
                         eval_batches=1, threads=1, out=str(tmp_path / "run"), progress=False, log=lambda *a: None)
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["settings"]["config"]["task"] == "clm" and doc["settings"]["init"] == "inherit"
    assert doc["maximum_point"]["reference"]["status"] == "ok"
    assert all(r["status"] == "ok" for r in result.evaluations)
    done = distil(tmp_path / "run", steps=3, log=lambda *a: None)
    model = AutoModelForCausalLM.from_pretrained(done.out)
    tok = AutoTokenizer.from_pretrained(done.out)
    ids = tok("the cat sat", return_tensors="pt")["input_ids"]
    out = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] == ids.shape[1] + 5
    assert done.teacher_accuracy is not None and "a language model" in (done.out / "README.md").read_text()


def test_a_checkpoint_of_another_family_than_the_space_is_one_line(run_cli, bert_checkpoint, tmp_path):
    space = tmp_path / "llama.toml"
    space.write_text('family = "llama"\n[parameters]\nD = [1]\nA = [2]\nK = [1]\nH = [32]\nI = [64]\n'
                     '[maximum_point]\nD = 1\nA = 2\nK = 1\nH = 32\nI = 64\n')
    code, _, err = run_cli("space", space, "--from", bert_checkpoint)
    assert code == 2 and err.count("\n") == 1 and "family llama, but --from" in err and "is bert" in err


def test_a_llama_checkpoint_under_a_bert_space_is_one_line(run_cli, llama_checkpoint):
    code, _, err = run_cli("space", "bert-tiny", "--from", llama_checkpoint)
    assert code == 2 and err.count("\n") == 1 and "family bert, but --from" in err and "is llama" in err
