"""The decoder family through the whole pipeline: count, space, extract (clm), executors, report, latency."""

import json

import pytest

import ose

SPACE = """
family = "llama"
constraints = ["H == 16 * A", "A % K == 0"]
[parameters]
D = [1, 2]
A = [2, 4]
K = [1, 2]
H = [32, 64]
I = [64]
[maximum_point]
D = 2
A = 4
K = 2
H = 64
I = 64
[settings]
vocab_size = 512
max_positions = 64
seq_len = 32
tie_embeddings = true
"""


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama") / "llama.toml"
    path.write_text(SPACE)
    return path


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("OSE_CACHE", str(tmp_path_factory.getbasetemp() / "llama-cache"))


def _run(space, out, **kw):
    return ose.extract(space=str(space), epsilon=2, steps=5, max_examples=1500, eval_batches=1, threads=1,
                       out=str(out), progress=False, log=lambda *a: None, **kw)


@pytest.fixture(scope="module")
def local(space, tmp_path_factory):
    with pytest.MonkeyPatch.context() as m:
        m.setenv("OSE_CACHE", str(tmp_path_factory.getbasetemp() / "llama-cache"))
        return _run(space, tmp_path_factory.mktemp("local") / "run")


def test_extraction_on_a_decoder_space_measures_next_token_error(local):
    doc = json.loads((local.out / "results.json").read_text())
    assert doc["settings"]["config"]["task"] == "clm"  # the family's own task, by default
    assert len(local.evaluations) == 4 and all(r["status"] == "ok" for r in local.evaluations)
    assert all(0 < r["error"] <= 1 and r["loss"] > 0 for r in local.evaluations)
    assert set(local.best) >= {"D", "A", "K", "H", "I", "w"}
    header = (local.out / "results.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["D", "A", "K", "H", "I"]
    assert json.loads((local.out / "best" / "config.json").read_text())["model_type"] == "llama"
    assert (local.out / "report.html").is_file()


def test_worker_processes_give_the_same_decoder_evaluations(space, tmp_path, local):
    there = _run(space, tmp_path / "p", executor="processes", workers=2)

    def table(r):
        return [{k: v for k, v in e.items() if k != "seconds"} for e in r.evaluations]
    assert table(there) == table(local)


def test_a_task_the_family_cannot_train_is_one_line(run_cli, space, tmp_path):
    code, _, err = run_cli("extract", "--space", space, "--task", "cls", "--out", tmp_path / "x", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "family llama cannot train task cls" in err
    assert not (tmp_path / "x").exists()


def test_count_and_space_name_the_family_and_its_settings(run_cli, space):
    code, printed, _ = run_cli("count", "--family", "llama", "D=30", "A=9", "K=3", "H=576", "I=1536",
                               "--vocab-size", "49152", "--format", "json")
    doc = json.loads(printed)
    assert code == 0 and doc["family"] == "llama" and doc["settings"]["tie_embeddings"] is False
    assert doc["settings"]["vocab_size"] == 49152
    code, printed, _ = run_cli("space", "llama-tiny", "--format", "json")
    assert code == 0 and json.loads(printed)["family"] == "llama"


@pytest.mark.parametrize("arch, message", [
    (["D=1", "A=4", "K=3", "H=16", "I=4"], "A=4 is not divisible by K=3"),
    (["D=1", "A=4", "K=2", "H=18", "I=4"], "H=18 is not divisible by A=4"),
])
def test_unbuildable_decoders_are_one_line(run_cli, arch, message):
    code, _, err = run_cli("count", "--family", "llama", *arch)
    assert code == 2 and err.count("\n") == 1 and message in err


def test_latency_times_the_decoders(run_cli, space, tmp_path):
    code, _, _ = run_cli("latency", space, "--out", tmp_path, "--repeats", "1", "--warmup", "0",
                         "--batch-sizes", "1", "--quiet")
    doc = json.loads((tmp_path / "latency.json").read_text())
    assert code == 0 and len(doc["architectures"]) == 8 and doc["maximum_point"]["architecture"]["K"] == 2


def test_a_boolean_setting_reads_true_and_false(run_cli, capsys):
    params = {}
    for value in ("true", "false"):
        code, printed, _ = run_cli("count", "--family", "llama", "D=1", "A=2", "K=1", "H=32", "I=64",
                                   "--vocab-size", "100", "--tie-embeddings", value, "--format", "json")
        doc = json.loads(printed)
        assert code == 0 and doc["settings"]["tie_embeddings"] is (value == "true")
        params[value] = doc["params"]
    assert params["false"] - params["true"] == 100 * 32  # the untied LM head
    with pytest.raises(SystemExit) as stop:  # argparse's own one-line error
        run_cli("count", "--family", "llama", "D=1", "A=2", "K=1", "H=32", "I=64", "--tie-embeddings", "maybe")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "expected true or false" in err
