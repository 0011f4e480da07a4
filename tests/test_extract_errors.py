"""Bad input to ``ose extract``: one line on stderr, exit code 2, no traceback, nothing written."""

import json
import random
import re
import subprocess
import sys

import pytest
import torch

from ose.cli import main



@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_space):
    """Every bad input, written once."""
    from tokenizers import Tokenizer, models

    from ose.config import ExtractConfig
    from ose.data import SPECIALS, read_examples, train_wordpiece
    from ose.families import get_family

    d = tmp_path_factory.mktemp("inputs")
    (d / "space.toml").write_text(tiny_space(H=(32, 64), I=(64, 128), head="mlm"))
    (d / "divzero.toml").write_text(tiny_space(H=(32, 64), I=(64, 128), head="mlm").replace(
        '["H % A == 0"]', '["H / (A - A) > 0"]'))
    (d / "empty.txt").write_text("")
    rng = random.Random(0)
    (d / "program").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + rng.randbytes(30000))
    (d / "random.bin").write_bytes(rng.randbytes(30000))
    (d / "random-no-nul.txt").write_bytes(bytes(b or 1 for b in rng.randbytes(30000)))
    (d / "folder").mkdir()
    (d / "folder" / "a.txt").write_text("".join(f"a plain line of text number {i}\n" for i in range(50)))
    (d / "folder" / "b.jsonl").write_bytes(rng.randbytes(30000))
    (d / "blank.txt").write_text("\n   \n\t\n\n")
    (d / "plain.txt").write_text("".join(f"a plain line of text number {i}\n" for i in range(50)))
    (d / "nolabels.jsonl").write_text("".join(json.dumps({"text": f"tweet {i} text"}) + "\n" for i in range(50)))
    (d / "mixed.jsonl").write_text("".join(json.dumps({"text": f"tweet {i}", "label": ["pos", 1][i % 2]}) + "\n"
                                           for i in range(50)))
    (d / "numbertext.jsonl").write_text('{"text": "a tweet"}\n{"text": 42}\n')
    (d / "columns.csv").write_text("sentence,gold\na tweet,1\n")
    (d / "badtheta.toml").write_text('[[theta]]\nlr = "fast"\nbatch_size = 8\n')
    (d / "duptheta.toml").write_text("[[theta]]\nlr = 1\nbatch_size = 8\n[[theta]]\nlr = 1.0\nbatch_size = 8\n")
    (d / "unknown.toml").write_text("steps = 2\nspeed = 11\n")
    (d / "badtype.toml").write_text('steps = "many"\n')
    (d / "badsort.toml").write_text('sort = "params"\n')
    big = d / "bigtok"
    big.mkdir()
    texts = [e.text for e in read_examples(ExtractConfig(max_examples=2000))]
    train_wordpiece(texts, 1024).save(str(big / "tokenizer.json"))
    bert = get_family("bert")
    for name, vocab in (("teacher-no-tokenizer", 512), ("teacher-other-vocab", 512), ("teacher-256", 256)):
        settings = bert.settings_type(vocab_size=vocab, max_positions=64, seq_len=32, head="mlm")
        bert.build({"D": 1, "A": 2, "H": 32, "I": 64}, settings, head="masked-lm").save_pretrained(d / name)
    other = {s: i for i, s in enumerate(SPECIALS)} | {f"word{i}": i for i in range(len(SPECIALS), 512)}
    Tokenizer(models.WordLevel(other, unk_token="[UNK]")).save(str(d / "teacher-other-vocab" / "tokenizer.json"))
    nomask = d / "nomask"
    nomask.mkdir()
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "the": 4}
    Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")).save(str(nomask / "tokenizer.json"))
    return d


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def snapshot(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


CASES = {
    "missing data path": (["--data", "{d}/no-such-file.txt"], "no such file"),
    "executable as data": (["--data", "{d}/program"], "program: not a text file (binary content: NUL bytes)"),
    "random bytes as data": (["--data", "{d}/random.bin"], "random.bin: not a text file (binary content: NUL bytes)"),
    "random bytes without NUL": (["--data", "{d}/random-no-nul.txt"],
                                 "random-no-nul.txt: not a text file (binary content: "),
    "binary file in a data folder": (["--data", "{d}/folder"], "b.jsonl: not a text file"),
    "empty data file": (["--data", "{d}/empty.txt"], "no usable text"),
    "only blank lines": (["--data", "{d}/blank.txt"], "no usable text"),
    "cls on jsonl without labels": (["--task", "cls", "--data", "{d}/nolabels.jsonl"], "no label field"),
    "cls on a text file": (["--task", "cls", "--data", "{d}/plain.txt"], "no label field"),
    "cls on labels of mixed kinds": (["--task", "cls", "--data", "{d}/mixed.jsonl"],
                                     'mixed.jsonl: labels of mixed kinds: text "pos" ('),
    "a text field that is a number": (["--data", "{d}/numbertext.jsonl"],
                                      "numbertext.jsonl:2: field 'text' is a number, not a string"),
    "csv without the text column": (["--data", "{d}/columns.csv"],
                                    "columns.csv: no column 'text' in its header (columns: sentence, gold)"),
    "tokenizer too large": (["--tokenizer", "{d}/bigtok"], "does not fit"),
    "tokenizer without [MASK]": (["--tokenizer", "{d}/nomask"], "does not fit"),
    "epsilon 0": (["--epsilon", "0"], "epsilon"),
    "epsilon -1": (["--epsilon", "-1"], "epsilon"),
    "steps 0": (["--steps", "0"], "steps"),
    "repeats 0": (["--repeats", "0"], "repeats must be a positive integer, got 0"),
    "theta lr=abc": (["--theta", "lr=abc"], "lr must be a number"),
    "config theta lr = fast": (["--config", "{d}/badtheta.toml"], "badtheta.toml: theta lr must be a number"),
    "config steps of the wrong type": (["--config", "{d}/badtype.toml"], "badtype.toml: steps must be int"),
    "repeated theta": (["--theta", "lr=0.1", "--theta", "momentum=0.9,lr=0.1"],
                       "theta lr=0.1,momentum=0.9,batch_size=32 is given twice; each θ in Θ must differ"),
    "config repeats theta": (["--config", "{d}/duptheta.toml"],
                             "duptheta.toml: theta lr=1.0,momentum=0.9,batch_size=8 is given twice"),
    "theta batch larger than the training data": (["--theta", "batch_size=100000"],
                                                  "theta batch_size 100000 exceeds the "),
    "budget with fptas": (["--budget", "3"],
                          "budget applies to random, tpe and nsga2; fptas trains ⌈|Ξ|/ε⌉ candidates"),
    "budget with exhaustive": (["--strategy", "exhaustive", "--budget", "3"],
                               "budget applies to random, tpe and nsga2; exhaustive trains all |Ξ| candidates"),
    "kl without a teacher": (["--metric", "kl"], "metric kl measures the divergence from a teacher's answers"),
    "missing teacher": (["--teacher", "{d}/no-such-teacher"], "no-such-teacher: no such directory"),
    "teacher of another vocabulary size": (["--teacher", "{d}/teacher-256"],
                                           "teacher-256: vocabulary of 256 does not match the student's 512"),
    "cls teacher with other labels": (["--task", "cls", "--teacher", "{d}/teacher-no-tokenizer"],
                                      "teacher-no-tokenizer: 2 labels, the data has 3"),
    "teacher without a tokenizer": (["--teacher", "{d}/teacher-no-tokenizer"],
                                    "teacher-no-tokenizer: no tokenizer.json or vocab.txt; save the tokenizer with "
                                    "the teacher"),
    "teacher with another vocabulary of the same size": (["--teacher", "{d}/teacher-other-vocab"],
                                                         "teacher-other-vocab: its tokenizer is not the study's ("),
    "unknown config key": (["--config", "{d}/unknown.toml"], "speed"),
    "config sort unknown": (["--config", "{d}/badsort.toml"], "sort must be one of intermediate, total, got 'params'"),
    "latency file without --speed latency": (["--latency-file", "{d}/latency.json"],
                                             "latency_file is only for --speed latency"),
    "budget above |Ξ|": (["--strategy", "random", "--budget", "9"], "budget 9 exceeds |Ξ| = 8"),
    "seq-len 1 with mlm": (["--seq-len", "1"], "seq_len 1 is too short for task mlm: it needs at least 3 tokens "
                                                "per sequence (the begin token and 2 of text)"),
    "seq-len 2 with mlm": (["--seq-len", "2"], "seq_len 2 is too short for task mlm"),
    "seq-len 2 with cls": (["--task", "cls", "--seq-len", "2"],
                           "seq_len 2 is too short for task cls: it needs at least 3 tokens per sequence ([CLS], "
                           "one token of text, [SEP])"),
    "seq-len 1 with cls": (["--task", "cls", "--seq-len", "1"], "seq_len 1 is too short for task cls"),
    "seq-len 1 with clm": (["--space", "llama-tiny", "--seq-len", "1"], "seq_len 1 is too short for task clm"),
    "seq-len 2 with clm": (["--space", "llama-tiny", "--seq-len", "2"], "seq_len 2 is too short for task clm"),
    "budget not a number": (["--max-params", "lots"], "--max-params must be a number (5e6) or a share of T's (30%), "
                                                      "got 'lots'"),
    "budget zero": (["--max-ops", "0"], "--max-ops must be positive, got '0'"),
    "budget negative share": (["--max-params=-5%"], "--max-params must be positive, got '-5%'"),
    "budget share above 100%": (["--max-params", "150%"], "--max-params 150%: a share of T's is at most 100%"),
    "budget nothing fits": (["--max-params", "1000"], "no architecture of Ξ fits --max-params 1,000 parameters: the "
                                                      "cheapest, ⟨D=1, A=2, H=32, I=64⟩, has"),
    "space constraint divides by zero": (["--space", "{d}/divzero.toml"],
                                         "constraints: 'H / (A - A) > 0' divides by zero at D=1,A=2,H=32,I=64"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, files, tmp_path, capsys):
    args, problem = CASES[case]
    out = tmp_path / "out"
    (out / "old").mkdir(parents=True)
    (out / "sentinel.txt").write_bytes(b"do not touch\n")
    (out / "old" / "results.json").write_text('{"earlier": true}\n')
    before = snapshot(out)
    code = main(["extract", "--space", str(files / "space.toml"), "--out", str(out), "--quiet", "--steps", "1",
                 "--max-examples", "2000", "--eval-batches", "1", "--threads", "1",
                 *[a.format(d=files) for a in args]])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("ose: error: ") and problem in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert snapshot(out) == before


@pytest.mark.parametrize("task", ["mlm", "cls", "clm"])
def test_the_shortest_sequence_a_task_takes_trains(task, files, tmp_path, run_cli):
    space = ["--space", "llama-tiny", "--epsilon", "24"] if task == "clm" else ["--space", files / "space.toml",
                                                                               "--epsilon", "8"]
    code, out, err = run_cli("extract", *space, "--task", task, "--seq-len", 3, "--out", tmp_path / "out", "--quiet",
                             "--steps", 1, "--max-examples", 500, "--eval-batches", 1, "--threads", 1,
                             "--theta", "batch_size=8")
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "results.json").read_text())["settings"]["space"]["settings"]["seq_len"] == 3


def test_bad_input_does_not_create_the_output_directory(files, tmp_path, capsys):
    out = tmp_path / "fresh"
    assert main(["extract", "--space", str(files / "space.toml"), "--out", str(out), "--quiet",
                 "--data", str(files / "empty.txt")]) == 2
    assert not out.exists()
    assert capsys.readouterr().err.startswith("ose: error: ")


@pytest.mark.parametrize("task, items", [("mlm", r"training blocks of 32 tokens"), ("cls", "training examples")])
def test_a_batch_larger_than_the_training_data_names_both_sizes(files, tmp_path, run_cli, task, items):
    out = tmp_path / "fresh"
    code, _, err = run_cli("extract", "--space", files / "space.toml", "--out", out, "--quiet", "--task", task,
                           "--max-examples", 300, "--theta", "batch_size=100000", "--steps", 1, "--threads", 1)
    assert code == 2 and len(err.splitlines()) == 1, err
    match = re.fullmatch(rf"ose: error: theta batch_size 100000 exceeds the ([\d,]+) {items}; "
                         rf"use a batch size ≤ ([\d,]+)\n", err)
    assert match and match[1] == match[2], err
    if task == "cls":
        assert match[1] == "270"  # 300 examples less the 10% held out
    assert not out.exists()


def test_groundtruth_refuses_a_budget(files, tmp_path, run_cli):
    out = tmp_path / "truth"
    code, _, err = run_cli("groundtruth", "--space", files / "space.toml", "--out", out, "--quiet", "--budget", 3)
    assert code == 2
    assert err == "ose: error: --budget does not apply to groundtruth, which trains every architecture of Ξ\n"
    assert not out.exists()



def test_a_refused_teacher_prints_nothing_else(files, tmp_path):
    # In a process of its own: transformers logs its load report through a handler bound to
    # the stderr of the moment it was imported, which in-process capture does not see.
    teacher = files / "teacher-no-tokenizer"
    done = subprocess.run([sys.executable, "-m", "ose", "extract", "--space", str(files / "space.toml"),
                           "--out", str(tmp_path / "out"), "--quiet", "--task", "cls", "--teacher", str(teacher),
                           "--max-examples", "2000", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr == f"ose: error: teacher {teacher}: 2 labels, the data has 3\n"


def test_an_unreadable_study_is_one_line_and_new_study_sets_it_aside(files, tmp_path, capsys):
    """A corrupt study.db: refused in one line naming --new-study; with it, renamed and run anew."""
    out = tmp_path / "out"
    out.mkdir()
    broken = random.Random(1).randbytes(4096)
    (out / "study.db").write_bytes(broken)
    args = ["extract", "--space", str(files / "space.toml"), "--out", str(out), "--quiet", "--steps", "1",
            "--epsilon", "8", "--max-examples", "2000", "--eval-batches", "1", "--threads", "1"]
    before = snapshot(out)
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"ose: error: {out / 'study.db'}: not a usable study file (file is not a database); "
                            f"--new-study sets it aside (renamed, not deleted) and starts anew\n")
    assert snapshot(out) == before
    assert main([*args, "--new-study"]) == 0
    aside = [p for p in out.iterdir() if p.name.startswith("study.db.corrupt-")]
    assert [p.read_bytes() for p in aside] == [broken]
    assert f"set aside the unreadable study file as {aside[0].name}" in capsys.readouterr().out
