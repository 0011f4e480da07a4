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
    sliced = LLAMA.inherited_model(state, imp, T, settings, "causal-lm").eval()
    with torch.no_grad():
        assert (sliced(input_ids=ids).logits - model(input_ids=ids).logits).abs().max().item() <= 1e-5
    small = LLAMA.inherited_model(state, imp, {"D": 2, "A": 2, "K": 1, "H": 32, "I": 64}, settings, "causal-lm")
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
    assert ids[0, 0] == tok.convert_tokens_to_ids("[CLS]") and tok.convert_tokens_to_ids("[SEP]") not in ids[0]
    assert model.config.eos_token_id == tok.convert_tokens_to_ids("[SEP]")
    out = model.generate(ids, max_new_tokens=5, do_sample=False, min_new_tokens=5)
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


def test_a_decoder_with_its_own_bpe_tokenizer_and_rope_theta(decoder_checkpoint, tmp_path):
    """No [CLS]: blocks begin and texts end with the bos/eos the checkpoint names; θ read from
    rope_parameters; the export prompts with bos alone and generation knows its end token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ose.distil import distil

    source = load_source(str(decoder_checkpoint))
    assert source.settings["rope_theta"] == 500000.0 and source.settings["tie_embeddings"] is True
    model, state = LLAMA.load_pretrained(source.path, source.weights)
    ids = torch.randint(1, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    imp = LLAMA.importance(model, Batch(ids, torch.ones_like(ids), None))
    own = {"D": 2, "A": 4, "K": 2, "H": 64, "I": 128}
    sliced = LLAMA.inherited_model(state, imp, own, space_for(source, seq_len=16).settings, "causal-lm").eval()
    with torch.no_grad():
        assert (sliced(input_ids=ids).logits - model(input_ids=ids).logits).abs().max().item() <= 1e-5

    ose.extract(source=str(decoder_checkpoint), seq_len=32, epsilon=8, steps=3, max_examples=1500, eval_batches=1,
                threads=1, out=str(tmp_path / "run"), progress=False, log=lambda *a: None)
    done = distil(tmp_path / "run", steps=2, log=lambda *a: None)
    tok = AutoTokenizer.from_pretrained(done.out)
    prompt = tok("the cat sat", return_tensors="pt")["input_ids"]
    assert prompt[0, 0].item() == 0 and (prompt[0, 1:] != 0).all()  # <|endoftext|> begins it, nothing ends it
    student = AutoModelForCausalLM.from_pretrained(done.out)
    assert student.config.eos_token_id == 0 == student.generation_config.eos_token_id
    assert tok.get_vocab() == AutoTokenizer.from_pretrained(decoder_checkpoint).get_vocab()
    out = student.generate(prompt, max_new_tokens=4, do_sample=False)
    assert out.shape[1] <= prompt.shape[1] + 4
    assert "text-generation" not in (done.out / "README.md").read_text()
    assert "model.generate" in (done.out / "README.md").read_text()


def test_a_bare_llama_model_trains_a_fresh_lm_head(llama_checkpoint, tmp_path):
    """A LlamaModel saved without its untied head: candidates inherit the body, the head starts fresh."""
    from transformers import LlamaModel

    bare = tmp_path / "bare"
    LlamaModel.from_pretrained(llama_checkpoint).save_pretrained(bare)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (bare / name).write_bytes((llama_checkpoint / name).read_bytes())
    lines = []
    result = ose.extract(source=str(bare), seq_len=32, epsilon=16, steps=2, max_examples=1500, eval_batches=1,
                         threads=1, out=str(tmp_path / "run"), progress=False, log=lines.append)
    assert any("has no causal-lm head" in line for line in lines)
    assert all(r["status"] == "ok" for r in result.evaluations)


def _with_config(checkpoint, copy, change: dict):
    """A copy of ``checkpoint`` whose config.json has ``change`` applied."""
    copy.mkdir()
    for f in checkpoint.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, **change}))
    return copy


@pytest.mark.parametrize("change, says", [
    ({"attention_bias": True}, "attention_bias True"),
    ({"mlp_bias": True}, "mlp_bias True"),
    ({"head_dim": 8}, "head_dim 8 is not hidden_size / num_attention_heads"),
    # transformers builds linear scaling from a legacy rope_scaling beside plain rope_parameters
    ({"rope_scaling": {"type": "linear", "factor": 2.0}}, "rope_scaling of rope type 'linear'"),
    ({"hidden_act": "gelu"}, "hidden_act 'gelu'"),
    ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}}, "rope type 'llama3'"),
    ({"num_attention_heads": "4"}, "num_attention_heads must be a positive whole number"),
    ({"num_key_value_heads": 0}, "num_key_value_heads must be a positive whole number"),
])
def test_a_checkpoint_ose_cannot_rebuild_is_one_line(llama_checkpoint, tmp_path, run_cli, change, says):
    code, _, err = run_cli("space", "--from", _with_config(llama_checkpoint, tmp_path / "odd", change))
    assert code == 2 and err.count("\n") == 1 and says in err and "config.json" in err


@pytest.mark.parametrize("change, says", [
    ({"num_hidden_layers": 6}, "config.json says num_hidden_layers 6, model.safetensors has 4 layers"),
    ({"hidden_size": 128, "head_dim": 32}, "config.json says hidden_size 128, model.safetensors has "
                                           "model.embed_tokens.weight of 512 × 64"),
    ({"num_key_value_heads": 4}, "config.json says num_key_value_heads 4 of size 16, model.safetensors has "
                                 "model.layers.0.self_attn.k_proj.weight of 32 × 64"),
    ({"intermediate_size": 256}, "config.json says intermediate_size 256, model.safetensors has "
                                 "model.layers.0.mlp.gate_proj.weight of 128 × 64"),
], ids=["layers", "hidden", "key-value-heads", "intermediate"])
def test_a_config_its_weights_contradict_is_one_line(llama_checkpoint, tmp_path, run_cli, change, says):
    code, printed, err = run_cli("count", "--from", _with_config(llama_checkpoint, tmp_path / "contradicted", change))
    assert code == 2 and printed == "" and err.count("\n") == 1 and says in err and "Traceback" not in err


def test_a_space_whose_heads_t_cannot_give_is_refused_before_training(llama_checkpoint, tmp_path, run_cli):
    space = tmp_path / "groups.toml"
    space.write_text('family = "llama"\n[parameters]\nD = [1]\nA = [4]\nK = [1, 2]\nH = [64]\nI = [64]\n'
                     '[maximum_point]\nD = 1\nA = 4\nK = 2\nH = 64\nI = 64\n')
    code, _, err = run_cli("extract", "--from", llama_checkpoint, "--space", space, "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and "1 of 2 architectures cannot inherit" in err
    assert "A/K=4" in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("top", [T, {"D": 6, "A": 4, "K": 1, "H": 64, "I": 128}, {"D": 30, "A": 9, "K": 3, "H": 576, "I": 1536}])
def test_the_default_grid_narrows_width_and_every_candidate_can_inherit(top):
    """Multi-query T (K = 1) too: its width is cut in query heads, not in (its one) group."""
    parameters, constraints = LLAMA.default_grid(top)
    assert len(parameters["A"]) > 1 and max(parameters["A"]) == top["A"]
    from ose.space import space_from_dict

    space = space_from_dict({"family": "llama", "parameters": {k: list(v) for k, v in parameters.items()},
                             "constraints": constraints, "maximum_point": top})
    assert space.architectures() and all(LLAMA.inheritable(xi, top) is None for xi in space.architectures())
