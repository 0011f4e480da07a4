"""Baselines on Optuna's samplers: TPE maximising W, NSGA-II over (p, i, ê).

Each architectural parameter is a categorical over its candidate values. A suggestion
outside Ξ (it breaks a constraint), or already asked in this round and still training, is
told as failed and asked again; a suggestion already trained is told its stored values
again. None counts against the budget, all are bounded. When several candidates are asked
per round (``ask_batch``), TPE's constant liar steers the later ones away from the earlier. Since W is monotone in p, i and ê, the argmax of W over NSGA-II's evaluations lies
on its Pareto set: picking by W from the Pareto set is the same pick.
"""

from __future__ import annotations

import random

from ..space import Candidate, arch_key
from .base import Strategy, best_w

MAX_REPEATS = 200  # suggestions outside Ξ or already trained, before falling back to random


class OptunaStrategy(Strategy):
    adaptive = True

    def __init__(self, candidates: list[Candidate], budget: int, seed: int = 0):
        super().__init__(candidates, budget, seed)
        try:
            import optuna
        except ImportError:
            raise ValueError(f"strategy {self.name} needs Optuna: pip install 'ose[baselines]'") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.by_key = {c.key: c for c in candidates}
        self.names = list(candidates[0].xi)
        self.values = {n: sorted({c.xi[n] for c in candidates}) for n in self.names}
        self.study = self._study(optuna, seed)
        self.told: dict[str, list] = {}   # ξ key -> objective values already learned
        self.pending: dict[str, object] = {}
        self.asked = 0
        self._fallback = random.Random(seed)

    def _study(self, optuna, seed: int):
        raise NotImplementedError

    def _values(self, candidate: Candidate, records: list[dict]):
        raise NotImplementedError

    def _suggest(self) -> Candidate | None:
        for _ in range(MAX_REPEATS):
            trial = self.study.ask()
            xi = {n: trial.suggest_categorical(n, self.values[n]) for n in self.names}
            key = arch_key(xi)
            if key not in self.by_key or key in self.pending:
                self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
            elif key in self.told:
                self.study.tell(trial, self.told[key])
            else:
                self.pending[key] = trial
                return self.by_key[key]
        unseen = [c for c in self.candidates if c.key not in self.told and c.key not in self.pending]
        return self._fallback.choice(unseen) if unseen else None

    def ask(self, n: int) -> list[Candidate]:
        out = []
        while len(out) < n and self.asked < self.budget:
            cand = self._suggest()
            if cand is None:
                break
            self.asked += 1
            out.append(cand)
        return out

    def tell(self, candidate: Candidate, records: list[dict]) -> None:
        values = self._values(candidate, records)
        self.told[candidate.key] = values
        trial = self.pending.pop(candidate.key, None)
        if trial is not None:
            self.study.tell(trial, values)


class TPE(OptunaStrategy):
    name = "tpe"

    def _study(self, optuna, seed):
        return optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True))

    def _values(self, candidate, records):
        return best_w(records)


class NSGA2(OptunaStrategy):
    name = "nsga2"

    def _study(self, optuna, seed):
        population = min(50, max(4, self.budget // 3))
        sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
        return optuna.create_study(directions=["minimize"] * 3, sampler=sampler)

    def _values(self, candidate, records):
        ok = [r for r in records if r.get("status") == "ok"]
        error = min(float(r["error"]) for r in ok) if ok else 1e9
        return [float(candidate.cost.params), float(candidate.cost.ops), error]
