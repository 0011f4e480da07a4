"""Budgets (--max-params, --max-ops): Ξ cut to what fits before the search, exactly, by the closed-form counts."""

import json
import re

import pytest

import ose
from ose import budgets
from ose.config import ConfigError
from ose.errors import StoreError
from ose.space import load_space


@pytest.fixture(scope="module")
def space():
    return load_space("bert-tiny")


def test_a_share_is_of_t_and_a_number_is_absolute(space):
    t = space.max_cost
    share, absolute = budgets.parse("params", "30%"), budgets.parse("ops", 5e6)
    assert share.limit(t.params) == pytest.approx(0.3 * t.params) and absolute.limit(t.ops) == 5e6
    assert budgets.parse("ops", "5e6") == budgets.Budget("ops", 5e6, False, "5e6")
    assert budgets.parse("params", None) is None


def test_feasible_keeps_exactly_the_candidates_within_every_budget_in_their_order(space):
    everything = space.candidates()
    t = space.max_cost
    chosen = [budgets.parse("params", "40%"), budgets.parse("ops", "20%")]
    kept = budgets.feasible(everything, chosen, t)
    expected = [c for c in everything if c.cost.params <= 0.4 * t.params and c.cost.ops <= 0.2 * t.ops]
    assert [c.xi for c in kept] == [c.xi for c in expected] and 0 < len(kept) < len(everything)
    # a candidate exactly at the limit fits: the budget is "at most"
    edge = everything[len(everything) // 2]
    at = budgets.feasible(everything, [budgets.parse("params", edge.cost.params)], t)
    assert edge.xi in [c.xi for c in at] and all(c.cost.params <= edge.cost.params for c in at)


def test_nothing_fits_names_the_cheapest_and_its_cost(space):
    cheapest = min(space.candidates(), key=lambda c: c.cost.ops)
    with pytest.raises(ConfigError) as e:
        budgets.feasible(space.candidates(), [budgets.parse("ops", cheapest.cost.ops - 1)], space.max_cost)
    assert f"has {cheapest.cost.ops:,}" in str(e.value) and "\n" not in str(e.value)


def test_an_extraction_searches_the_feasible_set_only(tmp_path, tiny_space, monkeypatch):
    (tmp_path / "space.toml").write_text(tiny_space())
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    said = []
    common = dict(space=str(tmp_path / "space.toml"), epsilon=1, steps=1, max_examples=500, eval_batches=1,
                  threads=1, theta=[{"batch_size": 8}], progress=False)
    result = ose.extract(out=str(tmp_path / "cut"), max_params="60%", log=said.append, **common)
    doc = json.loads((tmp_path / "cut" / "results.json").read_text())
    limit = 0.6 * doc["maximum_point"]["params"]
    space = load_space(str(tmp_path / "space.toml"))
    expected = sum(1 for c in space.candidates() if c.cost.params <= 0.6 * space.max_cost.params)
    assert 0 < len(result.evaluations) == expected < 8
    assert all(r["params"] <= limit for r in result.evaluations)
    text = "\n".join(said)
    assert f"{expected} of 8 architectures fit --max-params 60% of T's" in text and f"|Ξ| = {expected}," in text
    # another budget is another study: refused on resume, as any option that changes the numbers
    with pytest.raises(StoreError, match="config.max_params: .60%. → .70%."):
        ose.extract(out=str(tmp_path / "cut"), max_params="70%", log=said.append, **common)


def test_ose_space_shows_what_fits(run_cli):
    code, out, err = run_cli("space", "bert-tiny", "--max-ops", "25%", "--format", "json")
    doc = json.loads(out)
    space = load_space("bert-tiny")
    expected = [c.xi for c in space.candidates() if c.cost.ops <= 0.25 * space.max_cost.ops]
    assert code == 0 and [{k: a[k] for k in "DAHI"} for a in doc["architectures"]] == expected
    assert doc["budgets"]["ops"]["given"] == "25%" and err.startswith(f"{len(expected)} of {len(space.candidates())}")
    code, out, err = run_cli("space", "bert-tiny", "--max-ops", "0.0001%")
    assert code == 2 and out == "" and err.startswith("ose: error: no architecture of Ξ fits --max-ops")


def test_a_latency_budget_keeps_the_candidates_measured_within_it(tmp_path, tiny_space, monkeypatch, run_cli):
    from ose import latency
    from ose.space import arch_key

    (tmp_path / "space.toml").write_text(tiny_space())
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    code, _, err = run_cli("latency", tmp_path / "space.toml", "--out", tmp_path / "lat", "--batch-sizes", "1",
                           "--repeats", "2", "--warmup", "1")
    assert code == 0, err
    doc = latency.load(tmp_path / "lat" / latency.LATENCY_FILE)
    space = load_space(str(tmp_path / "space.toml"))
    ms = {arch_key(c.xi): 1000 * latency.lookup(doc, c.xi, 1) for c in space.candidates()}
    limit = sorted(ms.values())[3]  # four of the eight fit (ties aside)
    expected = {k for k, v in ms.items() if v <= limit}
    said = []
    result = ose.extract(space=str(tmp_path / "space.toml"), epsilon=1, steps=1, max_examples=500, eval_batches=1,
                         threads=1, theta=[{"batch_size": 8}], progress=False, out=str(tmp_path / "run"),
                         max_latency=repr(limit), latency_file=str(tmp_path / "lat" / latency.LATENCY_FILE),
                         log=said.append)
    assert {arch_key({k: r[k] for k in "DAHI"}) for r in result.evaluations} == expected
    assert f"{len(expected)} of 8 architectures fit --max-latency" in "\n".join(said)
    assert all("latency" not in r for r in result.evaluations)  # W still uses the operation count
    with pytest.raises(ConfigError, match="no architecture of Ξ fits --max-latency"):
        ose.extract(space=str(tmp_path / "space.toml"), epsilon=1, steps=1, max_examples=500, eval_batches=1,
                    threads=1, progress=False, out=str(tmp_path / "none"), max_latency="0.0001%",
                    latency_file=str(tmp_path / "lat" / latency.LATENCY_FILE), log=said.append)


def test_objective_accuracy_within_a_budget_picks_the_most_accurate_that_fits(tmp_path, tiny_space, monkeypatch):
    (tmp_path / "space.toml").write_text(tiny_space())
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    said = []
    result = ose.extract(space=str(tmp_path / "space.toml"), epsilon=1, steps=3, max_examples=500, eval_batches=1,
                         threads=1, theta=[{"batch_size": 8}], progress=False, out=str(tmp_path / "run"),
                         objective="accuracy", max_ops="70%", task="cls", log=said.append)
    done = [r for r in result.evaluations if r["status"] == "ok"]
    assert result.best["error"] == min(r["error"] for r in done)
    assert all(r["ops"] <= 0.7 * result.document["maximum_point"]["ops"] for r in done)
    assert any("(--objective accuracy: the lowest ê" in line for text in said for line in text.splitlines())


def test_ose_space_max_latency_keeps_what_the_latency_file_says_fits(tmp_path, tiny_space, run_cli):
    from ose import latency
    from ose.space import arch_key

    (tmp_path / "space.toml").write_text(tiny_space())
    code, _, err = run_cli("latency", tmp_path / "space.toml", "--out", tmp_path / "lat", "--batch-sizes", "1", "4",
                           "--repeats", "2", "--warmup", "1")
    assert code == 0, err
    path = tmp_path / "lat" / latency.LATENCY_FILE
    doc = latency.load(path)
    space = load_space(str(tmp_path / "space.toml"))
    for batch in (1, 4):  # at the batch asked for: the batch-4 table is another table
        t = latency.lookup(doc, space.maximum_point, batch)
        ms = {arch_key(c.xi): latency.lookup(doc, c.xi, batch) for c in space.candidates()}
        ordered = sorted(ms.values())
        limit = (ordered[2] + ordered[3]) / 2 / t  # between two measurements: no rounding decides
        assert ordered[2] < ordered[3]
        expected = [k for k in (arch_key(c.xi) for c in space.candidates()) if ms[k] <= limit * t]
        # as a share of T's where T is the slowest (tiny models time close: a busy machine can reorder them)
        given = f"{100 * limit!r}%" if limit < 1 else repr(1000 * limit * t)
        code, out, err = run_cli("space", tmp_path / "space.toml", "--max-latency", given,
                                 "--latency-file", path, "--latency-batch", batch, "--format", "json")
        assert code == 0, err
        assert [arch_key({n: a[n] for n in "DAHI"}) for a in json.loads(out)["architectures"]] == expected
        assert err.startswith(f"{len(expected)} of 8 architectures fit --max-latency")


def test_ose_space_max_latency_bad_input_is_one_line(tmp_path, tiny_space, run_cli):
    (tmp_path / "space.toml").write_text(tiny_space())
    for args, said in ((["--latency-batch", "4"], "--latency-file and --latency-batch are for --max-latency"),
                       (["--max-latency", "0"], "--max-latency must be positive"),
                       (["--max-latency", "fast"], "--max-latency must be a number"),
                       (["--max-latency", "5", "--latency-batch", "0"], "--latency-batch must be a positive"),
                       (["--max-latency", "5", "--latency-file", tmp_path / "none.json"], "cannot read")):
        code, out, err = run_cli("space", tmp_path / "space.toml", *args)
        assert code == 2 and out == "" and said in err and len(err.strip().splitlines()) == 1, (args, err)


def test_objective_cost_bisects_to_the_cheapest_candidate_predicted_to_keep_the_share(tmp_path, bert_checkpoint,
                                                                                      monkeypatch):
    import math

    from ose.strategies.selection import finished

    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    said = []
    common = dict(source=str(bert_checkpoint), task="cls", seq_len=32, steps=6, max_examples=2000, eval_batches=2,
                  threads=1, progress=False, objective="cost", log=said.append)
    result = ose.extract(out=str(tmp_path / "run"), keep=0.9, **common)
    doc = result.document
    t = doc["maximum_point"].get("as_given") or doc["maximum_point"]["reference"]
    limit = 1 - 0.9 * (1 - t["error"])
    done = finished(doc["evaluations"])
    size = doc["settings"]["bound"]["space_size"]
    assert doc["settings"]["bound"]["strategy"] == "bisect" and doc["cost"]["limit"] == pytest.approx(limit)
    assert 1 <= len(done) <= math.ceil(math.log2(size)) + 1 < size
    reaching = [r for r in done if r["error"] <= limit]
    assert doc["cost"]["reached"] == bool(reaching)
    expected = min(reaching, key=lambda r: (r["ops"], r["params"])) if reaching else min(done, key=lambda r: r["error"])
    assert _arch(result.best) == _arch(expected)
    text = "\n".join(said)
    assert "--objective cost --keep 0.9:" in text and "bisect (--objective cost" in text
    # a share every candidate reaches: bisection walks down to the cheapest of Ξ
    low = ose.extract(out=str(tmp_path / "low"), keep=0.01, **common)
    cheapest = min(finished(low.evaluations), key=lambda r: (r["ops"], r["params"]))
    assert _arch(low.best) == _arch(cheapest) and low.document["cost"]["reached"]
    assert cheapest["ops"] == min(c.cost.ops for c in ose.pipeline.plan(low.config, load_space_of(low)).candidates)


def _arch(record):
    return tuple(record[n] for n in "DAHI")


def load_space_of(result):
    from ose.space import space_from_dict

    return space_from_dict(result.document["settings"]["space"])


@pytest.mark.parametrize("options, said", [
    ({"objective": "cost"}, "--objective cost needs --keep F"),
    ({"keep": 0.9}, "--keep is only for --objective cost"),
    ({"objective": "cost", "keep": 1.5}, "--keep must be a share of T's accuracy in (0, 1]"),
    ({"objective": "cost", "keep": 0}, "--keep must be a share of T's accuracy in (0, 1]"),
    ({"objective": "cost", "keep": 0.9, "metric": "loss"}, "it needs --metric error"),
])
def test_objective_cost_bad_input_is_refused_before_anything_is_written(tmp_path, options, said):
    with pytest.raises(ConfigError, match=re.escape(said)):
        ose.extract(space="bert-tiny", out=str(tmp_path / "run"), progress=False, log=lambda *a: None, **options)
    assert not (tmp_path / "run").exists()


def test_objective_cost_from_scratch_is_refused(tmp_path, tiny_space, monkeypatch, run_cli):
    (tmp_path / "space.toml").write_text(tiny_space())
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    code, out, err = run_cli("extract", "--space", tmp_path / "space.toml", "--objective", "cost", "--keep", "0.9",
                             "--max-examples", "500", "--out", tmp_path / "run", "--quiet")
    assert code == 2 and "extract from a pretrained checkpoint (--from MODEL)" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run" / "study.db").exists()
