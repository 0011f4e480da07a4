"""ose export --onnx / --quantize int8: a graph ONNX Runtime loads from the tokenizer's own outputs,
checked against PyTorch on the test part, quantized, timed beside PyTorch; the bad inputs refused."""

import json
import sys

import numpy as np
import pytest
import torch

import ose


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("OSE_CACHE", str(tmp_path_factory.getbasetemp() / "deploy-cache"))


def _distilled(source, tmp_path_factory, name, **task):
    from ose.distil import distil

    out = tmp_path_factory.mktemp(name) / "run"
    with pytest.MonkeyPatch.context() as m:
        m.setenv("OSE_CACHE", str(tmp_path_factory.getbasetemp() / "deploy-cache"))
        ose.extract(source=str(source), seq_len=32, epsilon=30, steps=3, max_examples=1500, eval_batches=1,
                    threads=1, out=str(out), progress=False, log=lambda *a: None, **task)
        return distil(out, steps=3, log=lambda *a: None).out


@pytest.fixture(scope="module")
def bert_model(bert_checkpoint, tmp_path_factory):
    return _distilled(bert_checkpoint, tmp_path_factory, "deploy-bert", task="cls")


@pytest.fixture(scope="module")
def exported(bert_model):
    from ose.deploy import deploy

    return deploy(bert_model, quantize_int8=True, log=lambda *a: None, rounds=1, repeats=2)


def test_the_graph_answers_like_pytorch_from_the_tokenizers_own_outputs(bert_model, exported):
    import onnxruntime as ort
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    assert exported["max_abs_diff"] <= 1e-3 and exported["inputs"] == ["input_ids", "attention_mask"]
    assert abs(exported["fp32"]["accuracy"] - exported["pytorch"]["accuracy"]) <= 2 / exported["fp32"]["targets"]
    tok = AutoTokenizer.from_pretrained(bert_model)
    enc = tok(["what a lovely day", "the worst service I have had in years, truly"], padding=True, return_tensors="np")
    session = ort.InferenceSession(str(bert_model / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], dict(enc))[0]
    model = AutoModelForSequenceClassification.from_pretrained(bert_model).eval()
    with torch.no_grad():
        want = model(**{k: torch.as_tensor(v) for k, v in enc.items()}).logits.numpy()
    assert np.abs(got - want).max() <= 1e-4
    int8 = ort.InferenceSession(str(bert_model / "model_quantized.onnx"), providers=["CPUExecutionProvider"])
    assert int8.run(["logits"], dict(enc))[0].shape == want.shape
    assert 0 <= exported["int8"]["accuracy"] <= 1 and exported["int8"]["targets"] == exported["fp32"]["targets"]


def test_latency_of_three_runtimes_for_t_and_the_model_lands_in_ose_json_and_the_card(bert_model, exported):
    facts = json.loads((bert_model / "ose.json").read_text())
    assert facts["onnx"] == json.loads(json.dumps(exported))
    lat = facts["onnx"]["latency_seconds"]
    for who in ("model", "T"):
        assert set(lat[who]) == {"PyTorch fp32", "ORT fp32", "ORT int8"}
        assert all(set(per) == {"1", "32"} and all(v > 0 for v in per.values()) for per in lat[who].values())
    card = (bert_model / "README.md").read_text()
    assert "## ONNX Runtime" in card and "model_quantized.onnx" in card and "| T, ms per batch of 32 |" in card


def test_check_catches_a_graph_of_other_weights(bert_model, exported):
    from ose.deploy import Graph, check, load
    from ose.distil import load_study
    from ose.inputs import reopen

    model, _ = load(bert_model)
    run = bert_model.parent
    inputs = reopen(run, load_study(run)[0])
    assert check(Graph(bert_model / "model.onnx"), model, inputs).within
    with torch.no_grad():
        model.classifier.bias += 0.01  # a graph that is not of these weights any more
    found = check(Graph(bert_model / "model.onnx"), model, inputs)
    assert not found.within and found.max_abs_diff == pytest.approx(0.01, abs=1e-3)


def test_bad_input_is_one_line_and_leaves_the_model_as_it_was(bert_model, exported, run_cli, monkeypatch):
    before = (bert_model / "ose.json").read_text()
    code, _, err = run_cli("export", bert_model)
    assert code == 2 and err.count("\n") == 1 and "--onnx" in err
    code, _, err = run_cli("distil", bert_model.parent, "--quantize", "int8")
    assert code == 2 and err.count("\n") == 1 and "add --onnx" in err
    facts = json.loads(before)
    facts["onnx"]["weights_sha256"] = "0" * 16  # as if the graph there were of another model
    (bert_model / "ose.json").write_text(json.dumps(facts))
    code, _, err = run_cli("export", bert_model, "--onnx")
    assert code == 2 and err.count("\n") == 1 and "not a graph of this model's weights" in err
    (bert_model / "ose.json").write_text(before)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    code, _, err = run_cli("export", bert_model, "--onnx")
    assert code == 2 and err.count("\n") == 1 and "pip install -e '.[onnx]'" in err
    assert (bert_model / "ose.json").read_text() == before


def test_quantize_without_a_graph_is_refused(bert_model, exported, run_cli, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(bert_model, copy, ignore=shutil.ignore_patterns("*.onnx"))
    code, _, err = run_cli("export", copy, "--quantize", "int8", "--run", bert_model.parent)
    assert code == 2 and err.count("\n") == 1 and "needs the fp32 graph" in err


def test_a_decoders_graph_generates_what_transformers_generates(llama_checkpoint, tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ose.deploy import Graph, deploy

    model_dir = _distilled(llama_checkpoint, tmp_path_factory, "deploy-llama")
    out = deploy(model_dir, log=lambda *a: None, rounds=1, repeats=1)
    assert out["inputs"] == ["input_ids", "attention_mask", "position_ids"] and out["max_abs_diff"] <= 1e-3
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = tok("the cat sat on", return_tensors="pt")["input_ids"]
    want = model.generate(ids, max_new_tokens=6, min_new_tokens=6, do_sample=False, use_cache=False)
    graph, got = Graph(model_dir / "model.onnx"), ids
    for _ in range(6):  # greedy, the whole prefix each step: a graph without past key/values
        got = torch.cat([got, graph(input_ids=got)[:, -1].argmax(-1, keepdim=True)], 1)
    assert got.tolist() == want.tolist()
    # Left-padded, as generate pads a batch: positions come from the mask, so each prompt's logits
    # are what it gets alone (to 1e-4: this tiny model's logits move by about 1e-3 with positions).
    short = tok("the cat", return_tensors="pt")["input_ids"]
    long = tok("a dog ran far away", return_tensors="pt")["input_ids"]
    pad = long.shape[1] - short.shape[1]
    batch = torch.cat([torch.cat([torch.full((1, pad), tok.pad_token_id), short], 1), long])
    mask = torch.ones_like(batch)
    mask[0, :pad] = 0
    logits = graph(input_ids=batch, attention_mask=mask)
    with torch.no_grad():
        alone = [model(input_ids=short).logits[0], model(input_ids=long).logits[0]]
    assert (logits[0, pad:] - alone[0]).abs().max() <= 1e-4 and (logits[1] - alone[1]).abs().max() <= 1e-4


SMALL = ('family = "bert"\n[parameters]\nD = [1]\nA = [2]\nH = [16, 32]\nI = [32]\n[maximum_point]\nD = 1\nA = 2\n'
         'H = 32\nI = 32\n[settings]\nvocab_size = 128\nmax_positions = 32\nseq_len = 16\n')


def test_latency_in_onnxruntime_times_the_graphs_and_a_table_of_another_runtime_is_refused(tmp_path, run_cli,
                                                                                          monkeypatch):
    from ose import deploy, latency
    from ose.context import timings
    from ose.errors import ConfigError
    from ose.space import load_space

    (tmp_path / "s.toml").write_text(SMALL)
    space = load_space(str(tmp_path / "s.toml"))
    timed, run = [], deploy.Graph.__call__
    monkeypatch.setattr(deploy.Graph, "__call__", lambda self, *a, **k: timed.append(self) or run(self, *a, **k))
    doc = latency.measure_space(space, batch_sizes=(1,), repeats=2, warmup=1, t_samples=2, progress=False,
                                runtime="onnxruntime")
    assert latency.runtime_of(doc) == "onnxruntime" and "ONNX Runtime" in latency.summary(doc).splitlines()[0]
    assert len(doc["architectures"]) == 2 and all(a["latency"]["1"] > 0 for a in doc["architectures"])
    assert len(set(map(id, timed))) == 3  # a graph for each of the two and for T, each timed
    latency.save(tmp_path / "ort", doc)
    assert timings(space, str(tmp_path / "ort"), 1, 1, runtime="onnxruntime")["T"] > 0
    with pytest.raises(ConfigError, match="measured in onnxruntime, not torch"):
        timings(space, str(tmp_path / "ort"), 1, 1, runtime="torch")
    code, printed, _ = run_cli("latency", tmp_path / "s.toml", "--runtime", "onnxruntime", "--out", tmp_path / "cli",
                               "--repeats", "1", "--batch-sizes", "1", "--quiet")
    assert code == 0 and "ONNX Runtime" in printed
