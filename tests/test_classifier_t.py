"""A user's own fine-tuned classifier is T as given: its head and label names are kept, it is the
yardstick and the teacher unchanged, candidates inherit its classifier sliced, and the data's
integer labels are its class indices. Labels it cannot read are said in one line, and it is not used."""

import json
import shutil

import pytest
import torch

import ose

NAMES = {0: "negative", 1: "positive"}
SEQ_LEN = 32


@pytest.fixture(scope="module")
def classifier(bert_checkpoint, tmp_path_factory):
    """The small checkpoint as a BertForSequenceClassification with named classes; its bias set so
    that it answers each class for about half of the embedded tweets."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from ose.config import ExtractConfig
    from ose.data import read_examples

    path = tmp_path_factory.mktemp("classifier") / "my-classifier"
    config = BertConfig.from_pretrained(bert_checkpoint, id2label=NAMES, label2id={v: k for k, v in NAMES.items()})
    torch.manual_seed(1)
    model = BertForSequenceClassification.from_pretrained(bert_checkpoint, config=config).eval()
    tok = AutoTokenizer.from_pretrained(bert_checkpoint)
    texts = [e.text for e in read_examples(ExtractConfig(max_examples=1200))]
    with torch.no_grad():
        enc = tok(texts, truncation=True, max_length=SEQ_LEN, padding=True, return_tensors="pt")
        logits = model(**enc).logits
        gap = logits[:, 1] - logits[:, 0]
        model.classifier.bias[1] -= gap.median()
        answers = (gap > gap.median()).long().tolist()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path, texts, answers


def _data(tmp_path, texts, labels):
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels)))
    return path


def _extract(ck, data, out, log=lambda *a: None, **kw):
    return ose.extract(source=str(ck), data=str(data), seq_len=SEQ_LEN, epsilon=30, steps=3, eval_batches=2,
                       threads=1, out=str(out), progress=False, log=log, **kw)


@pytest.fixture(scope="module")
def own_answers(classifier, tmp_path_factory):
    """A study on data labelled with the classifier's own answers (integer labels), and its distil."""
    from ose.distil import distil

    ck, texts, answers = classifier
    tmp = tmp_path_factory.mktemp("own")
    lines = []
    result = _extract(ck, _data(tmp, texts, answers), tmp / "run", log=lines.append)
    distilled = distil(tmp / "run", steps=4, out=tmp / "model", log=lines.append)
    return result, distilled, tmp, lines


def test_the_task_defaults_from_the_checkpoint_and_t_is_used_as_given(own_answers):
    result, distilled, tmp, lines = own_answers
    assert result.config.task == "cls"
    assert any("as given, with its own sequence-classification head" in line for line in lines)
    doc = json.loads((tmp / "run" / "results.json").read_text())
    assert doc["maximum_point"]["as_given"]["error"] == 0.0  # its own answers, on B
    assert doc["settings"]["data"]["t_head"] == "used"
    # The yardstick is the checkpoint untouched: it answers its own labels on the test part.
    assert distilled.teacher.stop is None and distilled.teacher_accuracy == 1.0
    card = json.loads((tmp / "model" / "ose.json").read_text())
    assert card["T"]["accuracy"] == 1.0 and card["training"]["T"] == {"as_given": True, "steps": 0}
    assert card["teacher"] == "T as given"
    assert "as given" in (tmp / "model" / "README.md").read_text()


def test_integer_labels_are_the_checkpoints_classes_and_keep_its_names(own_answers):
    from transformers import AutoConfig, pipeline

    _, _, tmp, _ = own_answers
    assert AutoConfig.from_pretrained(tmp / "model").id2label == NAMES
    answer = pipeline("text-classification", model=str(tmp / "model"))("what a lovely day")
    assert answer[0]["label"] in NAMES.values()


def test_candidates_inherit_the_classifier_sliced(classifier, own_answers):
    """T sliced to its own shape is T, classifier included; a narrower candidate keeps the
    classifier's columns of the hidden channels it keeps."""
    from transformers import AutoModelForSequenceClassification

    from ose.inputs import reopen
    from ose.store import open_store

    ck, _, _ = classifier
    _, _, tmp, _ = own_answers
    store = open_store(tmp / "run", readonly=True)
    inputs = reopen(tmp / "run", store.meta())
    store.close()
    given = AutoModelForSequenceClassification.from_pretrained(ck)
    t = inputs.build(dict(inputs.space.maximum_point))
    assert torch.equal(t.classifier.weight, given.classifier.weight)
    narrow = inputs.build({"D": 2, "A": 2, "H": 32, "I": 64})
    kept = inputs.family._weights().choose(inputs.inherited.importance, {"D": 2, "A": 2, "H": 32, "I": 64}).channels
    assert torch.equal(narrow.classifier.weight, given.classifier.weight[:, kept])
    assert torch.equal(narrow.classifier.bias, given.classifier.bias)


def test_labels_the_classifier_cannot_read_leave_its_head_unused(classifier, tmp_path):
    ck, texts, answers = classifier
    lines = []
    _extract(ck, _data(tmp_path, texts, ["bad" if y else "good" for y in answers]), tmp_path / "run",
             log=lines.append, max_examples=600)
    said = [line for line in lines if "head is not used" in line]
    assert len(said) == 1 and "its classes are negative, positive; the data's labels are bad, good" in said[0]
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "as_given" not in doc["maximum_point"] and doc["settings"]["data"]["t_head"].startswith("not used")


def test_unnamed_classes_and_string_labels_are_not_guessed(classifier, tmp_path):
    from ose.tasks.cls import head_labels

    unnamed = {"id2label": {"0": "LABEL_0", "1": "LABEL_1"}}
    assert head_labels({"pos", "neg"}, unnamed)[0] is None
    assert head_labels({"0", "1"}, unnamed)[:2] == (["0", "1"], {"0": "0", "1": "1"})
    named = {"id2label": {"0": "negative", "1": "positive"}}
    assert head_labels({"1", "0"}, named)[1] == {"0": "negative", "1": "positive"}
    assert head_labels({"positive"}, named)[0] == ["negative", "positive"]
    assert head_labels({"0", "2"}, named)[0] is None  # class 2 is not one of its outputs


def test_a_models_load_report_is_not_shown(classifier, capfd):
    from ose.families import get_family
    from ose.pretrained import load_source

    ck, _, _ = classifier
    source = load_source(str(ck))
    get_family("bert").load_pretrained(source.path, source.weights)
    captured = capfd.readouterr()
    assert "UNEXPECTED" not in captured.err + captured.out
    assert source.heads == {"sequence-classification"}


def test_a_copy_without_names_still_classifies_integer_labels(classifier, tmp_path):
    """Unnamed classes (LABEL_0, LABEL_1) and integer labels: the head is used, the names are the data's."""
    ck, texts, answers = classifier
    copy = tmp_path / "unnamed"
    shutil.copytree(ck, copy)
    config = json.loads((copy / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "LABEL_0", "1": "LABEL_1"}, {"LABEL_0": 0, "LABEL_1": 1}
    (copy / "config.json").write_text(json.dumps(config))
    _extract(copy, _data(tmp_path, texts, answers), tmp_path / "run", max_examples=600)
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["maximum_point"]["as_given"]["error"] == 0.0


def test_a_teacher_is_checked_for_its_label_order_and_distil_honours_it(classifier, tmp_path, run_cli):
    from ose.distil import distil

    ck, texts, answers = classifier
    data = _data(tmp_path, texts, [NAMES[y] for y in answers])
    inverted = tmp_path / "inverted"
    shutil.copytree(ck, inverted)
    config = json.loads((inverted / "config.json").read_text())
    config["id2label"] = {"0": "positive", "1": "negative"}
    config["label2id"] = {"positive": 0, "negative": 1}
    (inverted / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli("extract", "--from", ck, "--data", data, "--teacher", inverted, "--out", tmp_path / "x",
                           "--seq-len", SEQ_LEN, "--quiet")
    assert code == 2 and err.count("\n") == 1
    assert "its classes are positive, negative in that order; the study's are negative, positive" in err
    _extract(ck, data, tmp_path / "run", teacher=str(ck))
    distilled = distil(tmp_path / "run", steps=2, out=tmp_path / "model", log=lambda *a: None)
    assert distilled.card["teacher"] == "the teacher my-classifier"
    assert distilled.card["T"]["accuracy"] == 1.0


def test_a_config_edited_after_the_study_is_refused_by_distil(classifier, tmp_path, run_cli):
    ck, texts, answers = classifier
    copy = tmp_path / "copy"
    shutil.copytree(ck, copy)
    _extract(copy, _data(tmp_path, texts, answers), tmp_path / "run")
    config = json.loads((copy / "config.json").read_text())
    config["id2label"] = {"0": "sad", "1": "happy"}
    config["label2id"] = {"sad": 0, "happy": 1}
    (copy / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli("distil", tmp_path / "run", "--steps", 2)
    assert code == 2 and err.count("\n") == 1 and "the class names changed since the study ran" in err


def test_a_study_encoded_with_the_tokenizers_own_padding_does_not_resume_silently(classifier, tmp_path, run_cli):
    """A study made before ose switched a tokenizer's own padding off scored its candidates on other
    inputs: resuming it under this ose would mix the two, so it is refused, naming the difference."""
    import sqlite3

    from tokenizers import Tokenizer

    ck, texts, answers = classifier
    copy = tmp_path / "padded"
    shutil.copytree(ck, copy)
    tok = Tokenizer.from_file(str(copy / "tokenizer.json"))
    tok.enable_padding(length=SEQ_LEN, pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]")
    tok.save(str(copy / "tokenizer.json"))
    data = _data(tmp_path, texts, answers)
    _extract(copy, data, tmp_path / "run")
    with sqlite3.connect(tmp_path / "run" / "study.db") as db:  # as the study of an older ose stored it
        (value,) = db.execute("SELECT value FROM ose_meta WHERE key = 'study'").fetchone()
        meta = json.loads(value)
        assert meta["settings"]["data"].pop("encoding").startswith("as served")
        db.execute("UPDATE ose_meta SET value = ? WHERE key = 'study'", (json.dumps(meta),))
    code, _, err = run_cli("extract", "--from", copy, "--data", data, "--seq-len", SEQ_LEN, "--epsilon", 30,
                           "--steps", 3, "--eval-batches", 2, "--threads", 1, "--out", tmp_path / "run", "--quiet")
    assert code == 2 and "data.encoding: None → 'as served" in err and "--new-study" in err
