"""A results document and a latency document built by hand from bert-tiny's closed-form costs.

No training and no timing: the numbers are made up, the shapes are those ``ose extract`` and
``ose latency`` write.
"""

import pytest

from ose import latency as lat
from ose.report import results
from ose.space import load_space

NAMES = ("D", "A", "H", "I")
THETA = {"lr": 0.05, "momentum": 0.9, "batch_size": 32}
# A failure message with markup in it: the report must show it as text.
FAILURE = "out of memory: <script>alert('x')</script> & more"


def _record(space, xi, error):
    cost = space.cost(xi).as_dict()
    top = space.max_cost
    w = (1 - cost["params"] / top.params) * (1 - cost["ops"] / top.ops) / error
    return {**xi, **THETA, **{k: v for k, v in cost.items() if k != "parts"}, "error": error, "loss": 7.0 + error,
            "steps": 10, "seconds": 1.5, "w": w, "status": "ok", "message": ""}


@pytest.fixture(scope="session")
def space():
    return load_space("bert-tiny")


@pytest.fixture(scope="session")
def study_doc(space):
    """Six finished evaluations (one per ε = 9 interval) and one failed one."""
    cands = space.candidates()
    records = [_record(space, c.xi, 0.9 + 0.01 * (k % 3)) for k, c in enumerate(cands[::9])]
    records.append({**cands[-1].xi, **THETA, "status": "failed", "message": FAILURE, "seconds": 0.0})
    settings = {"config": {"space": "bert-tiny", "task": "mlm", "metric": "error", "seed": 0, "theta": [THETA]},
                "space": space.to_dict(), "data": {"source": "embedded:tweets", "examples": 100, "tokenizer": "wp"},
                "bound": {"space_size": len(cands), "thetas": 1, "epsilon": 9, "steps": 10, "candidates": 7,
                          "strategy": "fptas"},
                "device": "cpu", "precision": "fp32", "threads": 2, "ose_version": "0.1.0", "train_seconds": 9.0}
    top = space.max_cost.as_dict()
    maximum_point = {"architecture": dict(space.maximum_point), **{k: v for k, v in top.items() if k != "parts"}}
    return results.document(settings, maximum_point, records)


@pytest.fixture(scope="session")
def latency_doc(space):
    """Latency ∝ ops with a deterministic wobble, at batch sizes 1 and 32."""
    def entry(xi, k):
        ops = space.cost(xi).ops
        wobble = 1 + 0.05 * ((k * 7) % 5 - 2)
        return {**xi, "ops": ops, "params": space.cost(xi).params,
                "latency": {"1": ops * 3e-11 * wobble, "32": ops * 6e-10 / wobble}}

    top = entry(space.maximum_point, 0)
    return {"settings": {"space": space.to_dict(), "batch_sizes": [1, 32], "repeats": 2, "warmup": 1, "threads": 1,
                         "seq_len": 64, "statistic": "median", "torch": "x", "attn_implementation": "sdpa",
                         "machine": {"processor": "cpu", "platform": "test", "cpu_count": 2}},
            "maximum_point": {"architecture": {k: top.pop(k) for k in NAMES}, **top},
            "architectures": [entry(c.xi, k) for k, c in enumerate(space.candidates())]}


@pytest.fixture(scope="session")
def latency_study(study_doc, latency_doc):
    """``study_doc`` as an ``--speed latency`` study, and the latency document it read.

    Batch-1 latency has a fixed per-pass overhead, so lat/T differs from i/T for every ξ (the
    pick included); each record's latency and W are computed from it as ``evaluate`` does.
    """
    def overhead(entry):
        return {**entry, "latency": {**entry["latency"], "1": 2e-4 + entry["ops"] * 3e-11}}

    measured = {**latency_doc, "maximum_point": overhead(latency_doc["maximum_point"]),
                "architectures": [overhead(a) for a in latency_doc["architectures"]]}
    t_seconds = measured["maximum_point"]["latency"]["1"]
    top = study_doc["maximum_point"]

    def timed(r):
        if r["status"] != "ok":
            return r
        seconds = lat.lookup(measured, r, 1)
        w = (1 - r["params"] / top["params"]) * (1 - seconds / t_seconds) / r["error"]
        return {**r, "latency": seconds, "w": w}

    settings = {**study_doc["settings"], "speed": {"kind": "latency", "batch_size": 1, "T_seconds": t_seconds}}
    return results.document(settings, top, [timed(r) for r in study_doc["evaluations"]]), measured
