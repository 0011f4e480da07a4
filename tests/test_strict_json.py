"""Every JSON ose writes is strict: no NaN or Infinity, numbers as numbers, null where a value is
undefined. Each file an end-to-end tiny run writes, and each ``--format json``, is read back with a
parser that refuses the bare words Python's json would write."""

import json
import pytest

from ose.jsonout import dumps


def _refuse(constant):
    raise ValueError(f"not JSON: {constant}")


def strict(text: str):
    return json.loads(text, parse_constant=_refuse)


def _numbers(value):
    """Every number at any depth, and every string that spells one (a number stored as text)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, str) and value.lower() in ("inf", "-inf", "nan", "infinity", "-infinity"):
        yield value


def test_non_finite_numbers_are_written_as_null():
    assert dumps({"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": (2,)}) == \
        '{"a": null, "b": [null, null, 1.5], "c": [2]}'


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_space):
    """A tiny classification study under --speed latency, its pick distilled and exported. Each
    candidate's ê is set to 0, which used to make W infinite: ``"W": Infinity`` in ose.json."""
    from dataclasses import replace

    import ose.evaluate
    from ose.cli import main

    root = tmp_path_factory.mktemp("strict")
    (root / "space.toml").write_text(tiny_space())
    trained = ose.evaluate.train_repeated
    with pytest.MonkeyPatch.context() as m:
        m.setenv("OSE_CACHE", str(root / "cache"))
        m.setattr("ose.evaluate.train_repeated", lambda *a, **k: replace(trained(*a, **k), error=0.0))
        assert main(["extract", "--space", str(root / "space.toml"), "--task", "cls", "--epsilon", "4", "--steps", "2",
                     "--max-examples", "600", "--eval-batches", "1", "--threads", "1", "--theta", "batch_size=8",
                     "--speed", "latency", "--quiet", "--out", str(root / "out")]) == 0
        assert main(["distil", str(root / "out"), "--steps", "2", "--quiet"]) == 0
    return root / "out"


def test_every_json_file_of_a_run_and_its_export_is_strict(run):
    files = sorted(run.rglob("*.json"))
    names = {str(p.relative_to(run)) for p in files}
    assert {"results.json", "latency.json", "best/config.json", "model/config.json", "model/ose.json"} <= names
    for path in files:
        doc = strict(path.read_text())
        assert list(_numbers(doc)) == [], path


def test_every_format_json_is_strict(run, tmp_path, tiny_space, run_cli):
    space = tmp_path / "one.toml"  # one architecture, for a quick ose latency
    space.write_text(tiny_space(H=(16,), I=(32,)).replace("D = [1, 2]", "D = [2]"))
    for args in (["status", run, "--format", "json"], ["space", space, "--format", "json"],
                 ["count", "D=1", "A=2", "H=16", "I=32", "--vs", "D=2", "A=2", "H=16", "I=32", "--format", "json"],
                 ["latency", space, "--out", tmp_path / "lat", "--format", "json", "--repeats", "1", "--warmup", "0",
                  "--batch-sizes", "1", "--quiet"]):
        code, out, _ = run_cli(*args)
        assert code == 0, args
        assert list(_numbers(strict(out))) == [], args
    strict((tmp_path / "lat" / "latency.json").read_text())
