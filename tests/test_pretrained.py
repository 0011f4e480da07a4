"""Extracting from a pretrained T (--from): T and its grid from the checkpoint, sliced weights,
the extraction, and the distilled, exported model. A small BERT checkpoint is built locally."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import ose
from ose.families import get_family
from ose.families.bert_weights import importance
from ose.families.weights import top_k
from ose.pretrained import load_source, space_for
from ose.tasks.base import Batch

BERT = get_family("bert")
T = {"D": 4, "A": 4, "H": 64, "I": 128}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("OSE_CACHE", str(tmp_path_factory.getbasetemp() / "pretrained-cache"))


@pytest.fixture(scope="module")
def t_model(bert_checkpoint):
    model, state = BERT.load_pretrained(str(bert_checkpoint), str(bert_checkpoint / "model.safetensors"))
    return model, state


def _batch(vocab: int, rows: int = 6, length: int = 20, seed: int = 0) -> Batch:
    ids = torch.randint(5, vocab, (rows, length), generator=torch.Generator().manual_seed(seed))
    return Batch(ids, torch.ones_like(ids), None)


def _settings(checkpoint, **kw):
    return space_for(load_source(str(checkpoint)), seq_len=20, **kw).settings


def test_t_and_its_default_grid_come_from_the_checkpoint(bert_checkpoint):
    source = load_source(str(bert_checkpoint))
    assert source.family == "bert" and source.xi == T and not source.heads
    space = space_for(source)
    assert space.maximum_point == T and space.settings.vocab_size == source.config["vocab_size"]
    for xi in space.architectures():
        assert all(xi[k] <= T[k] for k in T) and xi["H"] // xi["A"] == 16  # whole heads: exact slices
    assert T in space.architectures()


def test_slicing_t_to_its_own_shape_reproduces_t(t_model, bert_checkpoint):
    model, state = t_model
    batch = _batch(model.config.vocab_size)
    imp = importance(model, batch)
    sliced = BERT.inherited_model(state, imp, T, _settings(bert_checkpoint), "sequence-classification", 3).eval()
    with torch.no_grad():
        want = model(input_ids=batch.input_ids).last_hidden_state
        got = sliced.base_model(input_ids=batch.input_ids).last_hidden_state
    assert (got - want).abs().max().item() <= 1e-5


def test_a_candidate_is_ts_config_with_only_its_counts_replaced(bert_checkpoint, tmp_path):
    """A ReLU BERT with layer_norm_eps 1e-5: T sliced to its own shape reproduces T (before, the
    rebuilt config dropped both and differed by 6.5e-2), and a smaller candidate keeps both switches."""
    relu = tmp_path / "relu-bert"
    shutil.copytree(bert_checkpoint, relu)
    config = json.loads((relu / "config.json").read_text())
    (relu / "config.json").write_text(json.dumps({**config, "hidden_act": "relu", "layer_norm_eps": 1e-5,
                                                  "hidden_dropout_prob": 0.0}))
    source = load_source(str(relu))
    model, state = BERT.load_pretrained(source.path, source.weights)
    batch = _batch(model.config.vocab_size)
    imp = importance(model, batch)
    settings = space_for(source, seq_len=20).settings
    assert settings.hidden_act == "relu"
    own = BERT.inherited_model(state, imp, T, settings, "sequence-classification", 3, config=source.config).eval()
    with torch.no_grad():
        want = model(input_ids=batch.input_ids).last_hidden_state
        got = own.base_model(input_ids=batch.input_ids).last_hidden_state
    assert (got - want).abs().max().item() <= 1e-5
    small = BERT.build({"D": 1, "A": 2, "H": 32, "I": 64}, settings, head="masked-lm", config=source.config)
    assert (small.config.hidden_act, small.config.layer_norm_eps, small.config.hidden_dropout_prob) == ("relu", 1e-5, 0.0)
    assert small.config.num_hidden_layers == 1 and small.config.intermediate_size == 64


@pytest.mark.parametrize("change, says", [
    ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key'"),
    ({"is_decoder": True}, "is_decoder True"),
    ({"add_cross_attention": True}, "add_cross_attention True"),
    ({"tie_word_embeddings": False}, "tie_word_embeddings False"),
    ({"hidden_act": "quick_gelu"}, "hidden_act 'quick_gelu': ose's BERT family counts gelu, relu"),
    ({"layer_norm_eps": "small"}, "does not describe a bert model"),
])
def test_a_bert_config_ose_cannot_rebuild_or_count_is_one_line(bert_checkpoint, tmp_path, run_cli, change, says):
    odd = tmp_path / "odd"
    shutil.copytree(bert_checkpoint, odd)
    config = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(json.dumps({**config, **change}))
    code, _, err = run_cli("space", "--from", odd)
    assert code == 2 and err.count("\n") == 1 and says in err and "config.json" in err


def test_a_depth_only_slice_equals_running_ts_kept_layers(t_model, bert_checkpoint):
    model, state = t_model
    batch = _batch(model.config.vocab_size, seed=1)
    imp = importance(model, batch)
    sliced = BERT.inherited_model(state, imp, {**T, "D": 2}, _settings(bert_checkpoint), "sequence-classification", 3).eval()
    kept = top_k(imp.layers, 2).tolist()
    with torch.no_grad():
        hidden = model.embeddings(input_ids=batch.input_ids)
        for layer in kept:
            hidden = model.encoder.layer[layer](hidden)
        got = sliced.base_model(input_ids=batch.input_ids).last_hidden_state
    assert len(kept) == 2 and (got - hidden).abs().max().item() <= 1e-5


def test_every_slice_saves_and_reloads_with_stock_transformers(t_model, bert_checkpoint, tmp_path):
    """Every slice of the grid round-trips through save_pretrained with every tensor intact, and p
    counts it exactly with the head and the labels it was built with."""
    from transformers import AutoModelForSequenceClassification

    model, state = t_model
    imp = importance(model, _batch(model.config.vocab_size))
    space = space_for(load_source(str(bert_checkpoint)), seq_len=20)
    ids = _batch(model.config.vocab_size, seed=2).input_ids
    for xi in space.architectures():
        sliced = BERT.inherited_model(state, imp, xi, space.settings, "sequence-classification", 3).eval()
        sliced.save_pretrained(tmp_path / "m")
        again, info = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m", output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"], (xi, info)
        mine, theirs = sliced.state_dict(), again.state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine), xi
        with torch.no_grad():
            assert torch.equal(again.eval()(input_ids=ids).logits, sliced(input_ids=ids).logits), xi
        built = dataclasses.replace(space.settings, head=BERT.counted_head("sequence-classification"),
                                    num_labels=again.config.num_labels)
        assert sum(p.numel() for p in again.parameters()) == BERT.cost(xi, built).params


def test_count_from_checks_p_against_the_weights(run_cli, bert_checkpoint):
    code, printed, _ = run_cli("count", "--from", bert_checkpoint, "--format", "json")
    doc = json.loads(printed)
    assert code == 0 and doc["architecture"] == T and doc["checkpoint"]["matches"] is True
    assert doc["checkpoint"]["counted_A_plus_B"] == doc["checkpoint"]["tensor_elements_embeddings_and_layers"]
    assert doc["settings"]["vocab_size"] == load_source(str(bert_checkpoint)).config["vocab_size"]


def test_a_space_file_narrows_the_grid_and_may_not_exceed_t(run_cli, bert_checkpoint, tmp_path):
    narrow = tmp_path / "narrow.toml"
    narrow.write_text('family = "bert"\nconstraints = ["H % A == 0"]\n[parameters]\nD = [1, 2]\nA = [4]\n'
                      'H = [32, 64]\nI = [64]\n[maximum_point]\nD = 1\nA = 1\nH = 1\nI = 1\n')
    code, printed, _ = run_cli("space", narrow, "--from", bert_checkpoint, "--format", "json")
    doc = json.loads(printed)
    assert code == 0 and len(doc["architectures"]) == 4 and doc["maximum_point"]["D"] == 4  # T is the checkpoint
    wide = tmp_path / "wide.toml"
    wide.write_text(narrow.read_text().replace("D = [1, 2]", "D = [1, 8]"))
    code, _, err = run_cli("space", wide, "--from", bert_checkpoint)
    assert code == 2 and err.count("\n") == 1 and "parameters.D: 8 exceeds T's D=4" in err


@pytest.fixture(scope="module")
def extraction(bert_checkpoint, tmp_path_factory):
    """An inherit extraction (cls) on the small checkpoint."""
    out = tmp_path_factory.mktemp("from") / "run"
    with pytest.MonkeyPatch.context() as m:
        m.setenv("OSE_CACHE", str(tmp_path_factory.getbasetemp() / "pretrained-cache"))
        result = ose.extract(source=str(bert_checkpoint), task="cls", seq_len=32, epsilon=8, steps=6,
                             max_examples=2000, eval_batches=2, threads=1, out=str(out), progress=False,
                             log=lambda *a: None)
    return result, out


def test_an_extraction_from_a_checkpoint_records_t_and_the_init(extraction, bert_checkpoint):
    result, out = extraction
    doc = json.loads((out / "results.json").read_text())
    assert doc["settings"]["init"] == "inherit" and doc["settings"]["source"]["architecture"] == T
    assert len(doc["settings"]["source"]["weights_sha256"]) == 16
    assert doc["settings"]["config"]["theta"] == [{"lr": 0.0005, "momentum": 0.9, "batch_size": 32,
                                                   "optimizer": "adamw"}]
    ref = doc["maximum_point"]["reference"]
    # ê with inherited weights: the mean training loss of the run's last quarter (config.INHERIT_METRIC)
    assert doc["settings"]["config"]["metric"] == "train-loss"
    assert ref["status"] == "ok" and ref["error"] > 0 and ref["error"] != ref["loss"] and ref["steps"] == 6
    n = -(-len(space_for(load_source(str(bert_checkpoint))).architectures()) // 8)  # ⌈|Ξ|/ε⌉
    assert all(r["status"] == "ok" for r in result.evaluations) and len(result.evaluations) == n
    assert doc["progress"] == {"stored": n + 1, "total": n + 1}  # and T's own run


def test_inherited_weights_train_differently_from_scratch(bert_checkpoint, tmp_path, run_cli):
    common = dict(source=str(bert_checkpoint), task="cls", seq_len=32, epsilon=30, steps=4, max_examples=2000,
                  eval_batches=2, threads=1, progress=False, log=lambda *a: None)
    inherit = ose.extract(out=str(tmp_path / "i"), **common)
    scratch = ose.extract(out=str(tmp_path / "s"), init="scratch", **common)
    assert json.loads((tmp_path / "s" / "results.json").read_text())["settings"]["init"] == "scratch"
    assert [r["loss"] for r in inherit.evaluations] != [r["loss"] for r in scratch.evaluations]
    # ose report --compare: one figure of ê against p, by init mode, in the page
    code, printed, _ = run_cli("report", tmp_path / "i", "--compare", tmp_path / "s")
    assert code == 0 and "init_modes.png" in printed
    assert "one colour per init mode" in (tmp_path / "i" / "report.html").read_text()
    code, printed, _ = run_cli("report", tmp_path / "i", "--compare", tmp_path / "i")
    assert code == 0 and "init_modes.png" not in printed


@pytest.fixture(scope="module")
def distilled(extraction, tmp_path_factory):
    _, out = extraction
    model = tmp_path_factory.mktemp("distilled") / "model"
    with pytest.MonkeyPatch.context() as m:
        m.setenv("OSE_CACHE", str(tmp_path_factory.getbasetemp() / "pretrained-cache"))
        from ose.distil import distil

        result = distil(out, steps=6, out=model, save_every=2, log=lambda *a: None)
    return result, model


def test_distil_exports_a_model_stock_transformers_loads_offline(distilled):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    result, model = distilled
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md"):
        assert (model / name).is_file(), name
    loaded = AutoModelForSequenceClassification.from_pretrained(model)
    assert set(loaded.config.id2label.values()) == {"negative", "neutral", "positive"}
    tok = AutoTokenizer.from_pretrained(model)
    ids = tok("the cat sat on the mat")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and tok.unk_token_id not in ids[1:-1]
    answer = pipeline("text-classification", model=str(model))("what a lovely day")
    assert answer[0]["label"] in {"negative", "neutral", "positive"}
    card = (model / "README.md").read_text()
    assert "test accuracy [95% interval]" in card and "CPU latency" in card and "faster" in card
    assert result.teacher_accuracy is not None and 0 <= result.accuracy <= 1


def test_count_from_an_export_counts_its_head_and_labels(distilled, run_cli):
    from transformers import AutoModelForSequenceClassification

    _, model = distilled
    code, printed, _ = run_cli("count", "--from", model, "--format", "json")
    doc = json.loads(printed)
    numel = sum(p.numel() for p in AutoModelForSequenceClassification.from_pretrained(model).parameters())
    assert code == 0 and doc["settings"]["head"] == "classifier" and doc["settings"]["num_labels"] == 3
    assert doc["params"] == numel == json.loads((model / "ose.json").read_text())["params"]
    assert doc["checkpoint"]["matches"] is True


def test_a_killed_distil_resumes_to_the_same_model(extraction, distilled, tmp_path, bert_checkpoint):
    """SIGKILL right after the student's first saved state; the resumed run ends with the same
    weights. The study is a copy without the reference's saved runs, and another directory is
    current: the study finds its inputs from anywhere."""
    _, out = extraction
    _, reference = distilled
    study = tmp_path / "moved-study"
    shutil.copytree(out, study, ignore=shutil.ignore_patterns(".distil", "model"))
    target = tmp_path / "model"
    cmd = [sys.executable, "-m", "ose", "distil", str(study), "--steps", "6", "--out", str(target), "--quiet",
           "--save-every", "2"]
    env = {**os.environ, "OSE_FAULT": "save-student:1"}
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert killed.returncode == -9, killed.stderr[-2000:]
    saved = list((study / ".distil").glob("student-*.pt"))
    assert len(saved) == 1 and not torch.load(saved[0], weights_only=True).get("finished")
    assert not target.exists() or not (target / "model.safetensors").exists()
    env.pop("OSE_FAULT")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    want, got = load_file(reference / "model.safetensors"), load_file(target / "model.safetensors")
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    facts = (target / "ose.json").read_text()
    assert not (target / ".distil").exists() and str(tmp_path) not in facts and str(bert_checkpoint) not in facts


def test_distil_exports_a_scratch_study_with_its_tokenizer(tmp_path, tiny_space):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ose.distil import distil

    space = tmp_path / "space.toml"
    space.write_text(tiny_space())
    ose.extract(space=str(space), task="cls", epsilon=8, steps=3, max_examples=1500, eval_batches=1, threads=1,
                out=str(tmp_path / "run"), progress=False, log=lambda *a: None)
    result = distil(tmp_path / "run", steps=3, log=lambda *a: None)
    assert result.teacher_accuracy is None and (tmp_path / "run" / "model" / "tokenizer.json").is_file()
    tok = AutoTokenizer.from_pretrained(tmp_path / "run" / "model")
    ids = tok("the cat sat on the mat")["input_ids"]
    assert tok.unk_token_id not in ids and ids[0] == tok.cls_token_id
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "model").config.num_labels == 3


def _broken(tmp_path, checkpoint, name, change):
    bad = tmp_path / name
    shutil.copytree(checkpoint, bad)
    change(bad)
    return bad


@pytest.mark.parametrize("name, change, message", [
    ("no-config", lambda d: (d / "config.json").unlink(), "has no config.json"),
    ("no-weights", lambda d: (d / "model.safetensors").unlink(), "has no weights"),
    ("gpt2", lambda d: (d / "config.json").write_text(json.dumps({"model_type": "gpt2"})), "a gpt2 checkpoint"),
    ("truncated", lambda d: (d / "model.safetensors").write_bytes(b"\x01\x02"), "not a readable weights file"),
    ("bad-header", lambda d: (d / "model.safetensors").write_bytes((9).to_bytes(8, "little") + b"{not json"),
     "not a readable weights file"),
    ("cut-after-header", lambda d: (d / "model.safetensors").write_bytes(
        (d / "model.safetensors").read_bytes()[:50000]),
     "model.safetensors is not a readable weights file (truncated: 50,000 of the "),
    ("heads", lambda d: (d / "config.json").write_text(json.dumps(
        {**json.loads((d / "config.json").read_text()), "num_attention_heads": 0})), "num_attention_heads must be"),
])
def test_a_bad_checkpoint_is_one_line(run_cli, bert_checkpoint, tmp_path, name, change, message):
    bad = _broken(tmp_path, bert_checkpoint, name, change)
    code, _, err = run_cli("extract", "--from", bad, "--out", tmp_path / "out", "--quiet")
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "out").exists()


def _with_config(tmp_path, checkpoint, change):
    def edit(d):
        config = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({**config, **change(config)}))
    return _broken(tmp_path, checkpoint, "contradicted", edit)


@pytest.mark.parametrize("change, message", [
    (lambda c: {"num_hidden_layers": 12}, "config.json says num_hidden_layers 12, model.safetensors has 4 layers"),
    (lambda c: {"hidden_size": 128, "num_attention_heads": 8}, "config.json says hidden_size 128, model.safetensors "
                                                               "has embeddings.word_embeddings.weight of "),
    (lambda c: {"max_position_embeddings": 128}, "config.json says max_position_embeddings 128, model.safetensors "
                                                 "has embeddings.position_embeddings.weight of 64 × 64"),
    (lambda c: {"max_position_embeddings": 32}, "config.json says max_position_embeddings 32"),
    (lambda c: {"vocab_size": c["vocab_size"] + 7}, "config.json says vocab_size "),
    (lambda c: {"type_vocab_size": 3}, "config.json says type_vocab_size 3"),
    (lambda c: {"intermediate_size": 256}, "config.json says intermediate_size 256, model.safetensors has "
                                           "encoder.layer.0.intermediate.dense.weight of 128 × 64"),
], ids=["layers", "hidden", "more-positions", "fewer-positions", "vocabulary", "token-types", "intermediate"])
def test_a_config_its_weights_contradict_is_one_line_before_anything(run_cli, bert_checkpoint, tmp_path, change,
                                                                     message):
    """ose count --from counted such a T (12 layers over 6: 33.4 M parameters instead of 22.7 M) and
    said DIFFERENT; ose extract failed mid-run with a traceback, or trained on layers T lacks."""
    bad = _with_config(tmp_path, bert_checkpoint, change)
    code, printed, err = run_cli("count", "--from", bad)
    assert code == 2 and printed == "" and err.startswith(f"ose: error: --from {bad}: config.json says ")
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_extract_refuses_a_checkpoint_with_fewer_layers_than_its_config(run_cli, bert_checkpoint, tmp_path):
    bad = _with_config(tmp_path, bert_checkpoint, lambda c: {"num_hidden_layers": 6})
    code, _, err = run_cli("extract", "--from", bad, "--task", "cls", "--epsilon", 100, "--steps", 1,
                           "--max-examples", 1500, "--out", tmp_path / "out", "--quiet")
    assert code == 2 and err == (f"ose: error: --from {bad}: config.json says num_hidden_layers 6, "
                                 f"model.safetensors has 4 layers\n")
    assert not (tmp_path / "out").exists()


def test_count_from_a_pretraining_checkpoint_checks_its_mlm_head_alone(bert_checkpoint, tmp_path, run_cli):
    """bert-base-uncased's layout: config names BertForMaskedLM, the weights hold the pooler and the
    next-sentence head too. A + B against the body, C against the MLM head's tensors alone."""
    from transformers import BertForPreTraining

    full = tmp_path / "pretraining"
    BertForPreTraining.from_pretrained(bert_checkpoint).save_pretrained(full)
    config = json.loads((full / "config.json").read_text())
    (full / "config.json").write_text(json.dumps({**config, "architectures": ["BertForMaskedLM"]}))
    code, printed, _ = run_cli("count", "--from", full, "--format", "json")
    c = json.loads(printed)["checkpoint"]
    assert code == 0 and c["head"] == "mlm" and c["matches"] is True and c["inherited_heads"] == ["masked-lm"]
    assert c["tensor_elements_other"] == 64 * 64 + 64 + 64 * 2 + 2  # the pooler and the next-sentence head


def test_a_sharded_checkpoint_loads_like_the_single_file(bert_checkpoint, tmp_path, run_cli):
    from transformers import BertModel

    sharded = tmp_path / "sharded"
    BertModel.from_pretrained(bert_checkpoint).save_pretrained(sharded, max_shard_size="40KB")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(bert_checkpoint / name, sharded / name)
    shards = sorted(p.name for p in sharded.glob("model-*.safetensors"))
    assert len(shards) > 2 and (sharded / "model.safetensors.index.json").is_file()
    source = load_source(str(sharded))
    assert source.weights.endswith("model.safetensors.index.json") and source.xi == T
    _, one = BERT.load_pretrained(str(bert_checkpoint), str(bert_checkpoint / "model.safetensors"))
    _, many = BERT.load_pretrained(source.path, source.weights)
    assert one.keys() == many.keys() and all(torch.equal(one[k], many[k]) for k in one)
    code, printed, _ = run_cli("count", "--from", sharded, "--format", "json")
    assert code == 0 and json.loads(printed)["checkpoint"]["matches"] is True
    cut = sharded / shards[1]
    cut.write_bytes(cut.read_bytes()[:-100])
    code, _, err = run_cli("count", "--from", sharded)
    assert code == 2 and err.count("\n") == 1 and f"({shards[1]}: truncated: " in err
    (sharded / shards[1]).unlink()
    code, _, err = run_cli("count", "--from", sharded)
    assert code == 2 and err.count("\n") == 1 and f"names shard {shards[1]}, which is missing" in err


def test_a_tokenizer_that_does_not_match_ts_vocabulary_is_one_line(run_cli, bert_checkpoint, tmp_path):
    from ose.config import ExtractConfig
    from ose.data import read_examples, train_wordpiece

    other = tmp_path / "other-tokenizer"
    other.mkdir()
    train_wordpiece([e.text for e in read_examples(ExtractConfig(max_examples=1500))], 300).save(
        str(other / "tokenizer.json"))
    code, _, err = run_cli("extract", "--from", bert_checkpoint, "--tokenizer", other, "--task", "cls",
                           "--max-examples", "1500", "--out", tmp_path / "out", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "use the checkpoint's own tokenizer" in err
    assert not (tmp_path / "out").exists()


def test_an_unknown_model_name_and_a_study_less_distil_are_one_line(run_cli, tmp_path):
    code, _, err = run_cli("count", "--from", "no-such/model-here")
    assert code == 2 and err.count("\n") == 1 and "nothing is downloaded" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("distil", tmp_path / "empty")
    assert code == 2 and err.count("\n") == 1 and "no study here" in err
    assert list((tmp_path / "empty").iterdir()) == []


def test_workers_receive_t_through_the_driver(extraction, bert_checkpoint, tmp_path):
    """Worker processes get T's weights with the context, as they get the data: the same records."""
    result, _ = extraction
    there = ose.extract(source=str(bert_checkpoint), task="cls", seq_len=32, epsilon=8, steps=6, max_examples=2000,
                        eval_batches=2, threads=1, out=str(tmp_path / "p"), executor="processes", workers=2,
                        progress=False, log=lambda *a: None)

    def table(r):
        return [{k: v for k, v in e.items() if k != "seconds"} for e in r.evaluations]
    assert table(there) == table(result)


def test_a_distil_into_the_state_of_another_is_refused(extraction, distilled, run_cli):
    _, out = extraction
    _, model = distilled
    before = {p: p.read_bytes() for p in model.rglob("*") if p.is_file()}
    code, _, err = run_cli("distil", out, "--steps", "7", "--out", model, "--quiet")
    assert code == 2 and err.count("\n") == 1 and "steps: 6 → 7" in err
    assert {p: p.read_bytes() for p in model.rglob("*") if p.is_file()} == before


def test_a_distil_onto_ts_checkpoint_is_refused_even_when_forced(extraction, bert_checkpoint, run_cli):
    _, out = extraction
    before = {p: p.read_bytes() for p in bert_checkpoint.rglob("*") if p.is_file()}
    code, _, err = run_cli("distil", out, "--steps", "2", "--out", bert_checkpoint, "--force", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "is T's checkpoint" in err
    assert {p: p.read_bytes() for p in bert_checkpoint.rglob("*") if p.is_file()} == before


def test_distil_refuses_a_study_whose_state_it_cannot_save(extraction, tmp_path, run_cli, monkeypatch):
    """A study folder ose distil cannot write in (its runs' state goes there) is one line, before training."""
    import ose.study

    _, out = extraction
    monkeypatch.setattr(ose.study.os, "access", lambda path, mode: not str(path).startswith(str(out)))
    code, _, err = run_cli("distil", out, "--out", tmp_path / "elsewhere", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "cannot write in" in err and str(out) in err
    assert not (tmp_path / "elsewhere").exists()


def test_a_final_training_that_diverges_is_one_line(extraction, tmp_path, run_cli, monkeypatch):
    from ose import train

    def diverge(*args, **kwargs):
        raise train.CandidateFailed("non-finite loss (nan) at step 3")
    monkeypatch.setattr("ose.distil.fit", diverge)
    _, out = extraction
    code, _, err = run_cli("distil", out, "--out", tmp_path / "m", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "the T run failed: non-finite loss (nan) at step 3" in err


def test_ts_fine_tune_is_trained_once_per_study_and_reused(extraction, distilled, tmp_path):
    """A second ose distil of the study (into another folder) trains no T: it reads T's finished run."""
    from ose.distil import distil

    _, out = extraction
    first, _ = distilled
    saved = next((out / ".distil").glob("T-*.pt"))
    before = saved.read_bytes()
    lines = []
    again = distil(out, steps=6, out=tmp_path / "again", save_every=2, log=lines.append)
    assert again.teacher.reused and again.student.reused
    assert any(line.startswith("distil: T trained earlier, reused") for line in lines)
    assert saved.read_bytes() == before and again.teacher_accuracy == first.teacher_accuracy


def test_a_study_with_relative_paths_distils_from_another_directory(bert_checkpoint, tmp_path, monkeypatch):
    """--from and --data given relative to where ose extract ran; ose distil runs elsewhere."""
    from ose.distil import distil

    work = tmp_path / "work"
    shutil.copytree(bert_checkpoint, work / "ckpt")
    rows = [json.dumps({"text": f"the {w} sat on mat {i} and it was {w}", "label": w})
            for i, w in enumerate(["good", "bad"] * 300)]
    (work / "data.jsonl").write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(work)
    ose.extract(source="ckpt", data="data.jsonl", task="cls", seq_len=32, epsilon=30, steps=2, eval_batches=1,
                threads=1, out="run", progress=False, log=lambda *a: None)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    done = distil(work / "run", steps=2, log=lambda *a: None)
    facts = (done.out / "ose.json").read_text()
    assert done.out == work / "run" / "model" and str(work) not in facts and '"from": "ckpt"' in facts


def test_teacher_from_distils_every_candidate_from_t_fine_tuned(extraction, bert_checkpoint, tmp_path, run_cli):
    result, _ = extraction
    taught = ose.extract(source=str(bert_checkpoint), task="cls", seq_len=32, epsilon=8, steps=6, max_examples=2000,
                         eval_batches=2, threads=1, teacher="from", out=str(tmp_path / "t"), progress=False,
                         log=lambda *a: None)
    assert len(taught.evaluations) == len(result.evaluations)
    assert all(r["status"] == "ok" for r in taught.evaluations)
    assert [r["train_loss"] for r in taught.evaluations] != [r["train_loss"] for r in result.evaluations]
    code, _, err = run_cli("extract", "--teacher", "from", "--out", tmp_path / "x", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "needs --from MODEL" in err


def test_distil_refuses_a_study_whose_t_changed_since(bert_checkpoint, tmp_path, run_cli):
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "t"
    shutil.copytree(bert_checkpoint, copy)
    code, _, err = run_cli("extract", "--from", copy, "--task", "cls", "--seq-len", 32, "--epsilon", 64, "--steps", 1,
                           "--max-examples", 2000, "--eval-batches", 1, "--threads", 1, "--out", tmp_path / "run",
                           "--quiet")
    assert code == 0, err
    state = load_file(copy / "model.safetensors")
    name = next(iter(state))
    state[name] = state[name] + 1e-3  # same names and shapes, other weights
    save_file(state, copy / "model.safetensors")
    code, _, err = run_cli("distil", tmp_path / "run", "--steps", 2)
    assert code == 2 and err.count("\n") == 1 and "its weights changed since the study ran" in err


def test_a_study_made_under_the_old_default_is_refused_without_its_flags_and_resumes_with_them(
        bert_checkpoint, tmp_path, run_cli):
    """Before issue 21 an inherit study's ê was the error rate after 100 steps; such a study
    resumes with --metric error --steps N and is refused, unchanged, without them."""
    common = ["extract", "--from", bert_checkpoint, "--task", "cls", "--seq-len", "32", "--epsilon", "30",
              "--max-examples", "2000", "--eval-batches", "2", "--threads", "1", "--quiet", "--out", tmp_path / "old"]
    assert run_cli(*common, "--metric", "error", "--steps", "4")[0] == 0
    before = (tmp_path / "old" / "results.json").read_text()
    code, _, err = run_cli(*common)
    assert code == 2 and err.count("\n") == 1 and "config.metric: 'error' → 'train-loss'" in err
    assert "config.steps: 4 → 50" in err and (tmp_path / "old" / "results.json").read_text() == before
    code, printed, _ = run_cli(*common, "--metric", "error", "--steps", "4")
    assert code == 0 and (tmp_path / "old" / "results.json").read_text() == before
