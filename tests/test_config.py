"""The configuration: Θ with one spelling per θ and no repeats, a study that does not depend on Θ's
order, the round trip through TOML and JSON, and the flags made from it."""

import json

import pytest
import torch

from ose import load_space
from ose.cli import _theta as flag_theta
from ose.config import ConfigError, ExtractConfig, Theta, load_config
from ose.context import make_context
from ose.pipeline import job_key

XI = {"D": 1, "A": 2, "H": 32, "I": 64}


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def _toml(tmp_path, text):
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_integer_and_float_spellings_are_the_same_study(tmp_path):
    from_file = load_config(_toml(tmp_path, "[[theta]]\nlr = 1\nmomentum = 0\nbatch_size = 8\n"))
    from_flag = load_config(None, {"theta": [flag_theta("lr=1.0,momentum=-0.0,batch_size=8")]})
    assert from_file.theta == from_flag.theta == [Theta(lr=1.0, momentum=0.0, batch_size=8)]
    (a,), (b,) = from_file.theta, from_flag.theta
    assert (type(a.lr), type(a.momentum), type(a.batch_size)) == (float, float, int)
    assert job_key(XI, a) == job_key(XI, b) == "D=1,A=2,H=32,I=64|lr=1.0,momentum=0.0,batch_size=8"
    # JSON tells 1 from 1.0 (Python's == does not): the stored configurations are identical.
    assert json.dumps(from_file.as_dict()["theta"]) == json.dumps(from_flag.as_dict()["theta"])


@pytest.mark.parametrize("value", ["true", '"1"', "10e999", "1" + "0" * 400])
def test_theta_still_refuses_what_is_not_a_finite_number(tmp_path, value):
    path = _toml(tmp_path, f"[[theta]]\nlr = {value}\nbatch_size = 8\n")
    with pytest.raises(ConfigError, match=r"study\.toml: theta lr must be a number"):
        load_config(path)


def test_a_repeated_theta_is_refused_by_name(tmp_path):
    path = _toml(tmp_path, "[[theta]]\nlr = 1\nbatch_size = 8\n[[theta]]\nlr = 0.5\n"
                           "[[theta]]\nlr = 1.0\nbatch_size = 8\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (f"{path}: theta lr=1.0,momentum=0.9,batch_size=8 is given twice; "
                            f"each θ in Θ must differ")
    with pytest.raises(ConfigError, match="theta lr=0.05,momentum=0.9,batch_size=32 is given twice"):
        load_config(None, {"theta": [flag_theta("lr=0.05"), flag_theta("batch_size=32,momentum=0.9")]})


@pytest.mark.parametrize("strategy, trains", [("fptas", "⌈|Ξ|/ε⌉"), ("exhaustive", "all |Ξ|")],
                         ids=["fptas", "exhaustive"])
def test_budget_with_a_strategy_that_ignores_it_is_refused(strategy, trains):
    with pytest.raises(ConfigError) as e:
        load_config(None, {"strategy": strategy, "budget": 3})
    assert str(e.value) == f"budget applies to random, tpe and nsga2; {strategy} trains {trains} candidates"
    for name in ("random", "tpe", "nsga2"):
        assert load_config(None, {"strategy": name, "budget": 3}).budget == 3


def test_heldout_batches_do_not_depend_on_the_order_of_theta(tmp_path, tiny_space):
    (tmp_path / "space.toml").write_text(tiny_space(H=(32, 64), I=(64, 128), head="mlm"))
    space = load_space(tmp_path / "space.toml")
    small, large = {"lr": 0.1, "batch_size": 8}, {"lr": 0.1, "batch_size": 16}
    common = {"max_examples": 2000, "eval_batches": 2, "threads": 1}
    a = make_context(load_config(None, {**common, "theta": [small, large]}), space).data.heldout
    b = make_context(load_config(None, {**common, "theta": [large, small]}), space).data.heldout
    assert a.input_ids.shape[0] == 2 * 16  # eval_batches × Θ's largest batch size
    for name in ("input_ids", "attention_mask", "labels", "positions"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_the_configuration_round_trips_through_toml_and_json(tmp_path):
    cfg = load_config(None, {"space": "bert-tiny", "task": "cls", "epsilon": 5, "tolerance": 0.01, "clip": 0.5,
                             "sort": "total", "executor": "processes", "workers": 2, "data": "corpus.jsonl",
                             "theta": [{"lr": 1, "momentum": 0.5, "batch_size": 8},
                                       {"lr": 0.1, "momentum": 0.9, "batch_size": 16}]})
    path = tmp_path / "cfg.toml"
    path.write_text(cfg.to_toml())
    assert load_config(path) == cfg
    assert load_config(None, json.loads(json.dumps(cfg.as_dict()))) == cfg
    assert load_config(None, {}).to_toml() != cfg.to_toml()


def test_every_option_with_a_flag_reaches_the_configuration(run_cli, monkeypatch):
    """The flags of ose extract are made from ExtractConfig: each one lands in its field."""
    import dataclasses

    from ose import cli
    from ose.config import ExtractConfig

    seen = {}
    monkeypatch.setattr("ose.pipeline.extract", lambda config, **kw: seen.update(kw) or _Stop())
    fields = [f for f in dataclasses.fields(ExtractConfig) if f.metadata.get("flag", True) and f.name != "theta"]
    argv = ["extract", "--space", "s.toml", "--epsilon", "7", "--sort", "total", "--tolerance-window", "3",
            "--latency-batch", "32", "--theta", "lr=0.2,momentum=0.1,batch_size=4"]
    assert cli.main(argv) == 0
    assert seen["space"] == "s.toml" and seen["epsilon"] == 7 and seen["sort"] == "total"
    assert seen["tolerance_window"] == 3 and seen["latency_batch"] == 32
    assert seen["theta"] == [{"lr": 0.2, "momentum": 0.1, "batch_size": 4}]
    assert {f.name for f in fields} <= set(seen)


class _Stop:
    best = {"w": 1.0}


@pytest.mark.parametrize("flags, theta, eval_batches", [
    ([], Theta(lr=5e-4, optimizer="adamw"), 16),                                   # --from's defaults
    (["--eval-batches", "4", "--theta", "lr=0.05,momentum=0.9,batch_size=32"], Theta(), 4),  # given: kept
])
def test_an_option_given_at_a_defaults_value_is_kept_under_from(flags, theta, eval_batches):
    """None means "not given": --from's defaults fill only what was left out, whatever its value."""
    from ose.cli import _extract_options, build_parser

    args = build_parser().parse_args(["extract", "--from", "some-checkpoint", *flags])
    cfg = load_config(None, _extract_options(args)).with_defaults()
    assert cfg.theta == [theta] and cfg.eval_batches == eval_batches
    scratch = load_config(None, {}).with_defaults()
    assert scratch.theta == [Theta()] and scratch.eval_batches == 4


IDLE = {
    "workers": ({"workers": 2}, "warning: workers has no effect with executor local, which runs one evaluation at "
                                "a time in this process (use --executor processes or ray)"),
    "gpus_per_eval": ({"gpus_per_eval": 1.0, "executor": "processes"},
                      "warning: gpus_per_eval has no effect with executor processes: only Ray reserves GPUs per "
                      "evaluation"),
    "tolerance_window": ({"tolerance_window": 10},
                         "warning: tolerance_window has no effect without tolerance: every candidate trains its s "
                         "steps"),
    "ask_batch": ({"ask_batch": 1, "strategy": "random"},
                  "warning: ask_batch has no effect with strategy random, which plans every candidate up front "
                  "(it applies to tpe and nsga2)"),
    "latency_batch": ({"latency_batch": 32},
                      "warning: latency_batch has no effect without --speed latency or --max-latency: W uses the "
                      "operation count"),
}


@pytest.mark.parametrize("case", list(IDLE))
def test_an_option_without_effect_is_one_warning_line_whether_flag_or_file(case, tmp_path):
    from ose.config import idle_options, read_config

    options, warning = IDLE[case]
    # given as flags (even at the default's value, as ask_batch 1 and tolerance_window 10 are)
    assert idle_options(*read_config(None, options)) == [warning]
    # given in a config file: the same
    path = _toml(tmp_path, "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items()))
    assert idle_options(*read_config(path)) == [warning]
    # not given: nothing to say
    assert idle_options(*read_config(None, {k: v for k, v in options.items() if k not in IDLE})) == []


@pytest.mark.parametrize("options", [{"workers": 2, "executor": "processes"}, {"gpus_per_eval": 1.0, "executor": "ray"},
                                     {"tolerance": 0.01, "tolerance_window": 5}, {"strategy": "tpe", "ask_batch": 2},
                                     {"speed": "latency", "latency_batch": 32}])
def test_an_option_with_effect_is_not_warned_about(options):
    from ose.config import idle_options, read_config

    assert idle_options(*read_config(None, options)) == []


def test_options_without_effect_are_warned_about_on_stderr_before_the_run(tmp_path, tiny_space, run_cli):
    (tmp_path / "space.toml").write_text(tiny_space())
    (tmp_path / "study.toml").write_text("tolerance_window = 10\n")
    code, out, err = run_cli("extract", "--config", tmp_path / "study.toml", "--space", tmp_path / "space.toml",
                             "--epsilon", 8, "--steps", 1, "--max-examples", 500, "--eval-batches", 1, "--threads", 1,
                             "--theta", "batch_size=8", "--quiet", "--workers", 2, "--out", tmp_path / "out")
    assert code == 0
    assert err.splitlines() == [IDLE["workers"][1], IDLE["tolerance_window"][1]]
    assert "warning: " not in out


def test_a_latency_file_without_speed_latency_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^latency_file is only for --speed latency or --max-latency \(W uses the "
                                          r"operation count otherwise\); add one of them or leave latency_file out$"):
        load_config(None, {"latency_file": str(tmp_path / "latency.json")})
    path = _toml(tmp_path, f'latency_file = "{tmp_path / "latency.json"}"\n')
    with pytest.raises(ConfigError, match="latency_file is only for --speed latency"):
        load_config(path)
    assert load_config(None, {"latency_file": "x.json", "speed": "latency"}).latency_file == "x.json"
    assert load_config(None, {"latency_file": "x.json", "max_latency": 5}).latency_file == "x.json"


def test_inherited_weights_default_to_the_training_loss_after_50_steps_and_scratch_keeps_the_papers():
    """docs/SEARCH.md, "Does the short run rank like the final model?": the measured default."""
    inherit = ExtractConfig(source="some/checkpoint").with_defaults()
    assert (inherit.metric, inherit.steps) == ("train-loss", 50)
    scratch = ExtractConfig().with_defaults()
    assert (scratch.metric, scratch.steps) == ("error", 100)
    assert ExtractConfig(source="x", init="scratch").with_defaults().metric == "error"
    # --objective cost compares accuracies on B, so its ê stays the error rate
    assert ExtractConfig(source="x", objective="cost", keep=0.9).with_defaults().metric == "error"
    given = ExtractConfig(source="x", metric="error", steps=100).with_defaults()
    assert (given.metric, given.steps) == ("error", 100)  # what a user gives stays as given
    assert "--metric" not in ExtractConfig(source="x").command()
