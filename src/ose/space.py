"""Search spaces Ξ and the maximum point T, written as TOML files.

A space file names the family, each architectural parameter with its candidate values,
constraints over them (safe expressions such as ``H % A == 0``), the maximum point T (the
network one extracts from) and the family's fixed settings. Ξ is the set of assignments
in the Cartesian product that satisfy every constraint.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .constraints import Constraint, ConstraintError, arch_key, counts_env, on_counts
from .costs import Cost
from .errors import SpaceError
from .families import FAMILIES, Family, get_family
from .grid import SORTS, Candidate, costs, cut_by_counts, grid_columns, row

TOP_KEYS = ("name", "description", "family", "constraints", "parameters", "maximum_point", "settings")


# --- the space ---------------------------------------------------------------------------

def _total_key(c: Candidate) -> tuple:
    return c.cost.params, c.cost.ops


def _intermediate_key(c: Candidate) -> tuple:
    b = c.cost.parts["B"]
    return b.params, b.ops, c.cost.params, c.cost.ops, tuple(c.xi.values())


@dataclass(frozen=True)
class ABnC:
    """Of ``size`` architectures, how many have part B costing more than A + C: ``params``
    in parameters, ``ops`` in operations. The condition holds when both equal ``size``."""

    size: int
    params: int
    ops: int

    @property
    def holds(self) -> bool:
        return self.params == self.ops == self.size

    def as_dict(self) -> dict:
        return {"architectures": self.size, "params": self.params, "ops": self.ops, "holds": self.holds}


@dataclass(frozen=True)
class SearchSpace:
    """Ξ (``parameters`` filtered by ``constraints``) and the maximum point T."""

    name: str
    family: Family
    parameters: dict[str, tuple[int, ...]]
    constraints: tuple[Constraint, ...]
    maximum_point: dict[str, int]
    settings: Any
    source: str = "<memory>"
    description: str = ""
    notes: tuple[str, ...] = dataclasses.field(default=(), compare=False)  # one-line notes on how the file was read

    def architectures(self) -> list[dict[str, int]]:
        names = self.family.parameters
        grid = (dict(zip(names, values)) for values in itertools.product(*(self.parameters[n] for n in names)))
        on_xi = [c for c in self.constraints if not on_counts(c)]
        later = [c for c in self.constraints if on_counts(c)]  # on p and i: costed only where ξ's hold
        try:
            kept = [xi for xi in grid if all(c(xi) for c in on_xi)]
            if later:
                kept = [xi for xi in kept if all(c({**xi, **self._counts(xi)}) for c in later)]
            return kept
        except ConstraintError as e:
            _failer(self.source)("constraints", str(e))

    def cost(self, xi: Mapping[str, int]) -> Cost:
        return self.family.cost(xi, self.settings)

    def _counts(self, xi: Mapping[str, int]) -> dict:
        c = self.cost(xi)
        return counts_env(c.params, c.ops, self.max_cost)

    @cached_property
    def scored(self) -> tuple[dict, dict]:
        """Ξ as columns of ξ and the counts of every row (``grid``), computed once: a grid of 10⁶
        architectures is checked, scored and sorted in about a second."""
        columns = grid_columns(self)
        return cut_by_counts(self, columns, costs(self, columns))

    @cached_property
    def max_cost(self) -> Cost:
        return self.cost(self.maximum_point)

    def candidates(self, sort: str = "intermediate") -> list[Candidate]:
        """Ξ in the order Algorithm 1 cuts into ε-intervals (step 2).

        ``intermediate`` is the spec's: by the cost of the layers B (p, then i), so that the
        intervals follow the part whose cost the guarantee rests on. ``total`` orders by the
        whole network's p, then i, as ``ose`` did before.
        """
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
        scored = [Candidate(xi, self.cost(xi)) for xi in self.architectures()]
        # sorted() is stable, so ``total`` keeps its old tie order (the grid's); the
        # intermediate key spells out its ties, which are common: A leaves B's p unchanged.
        return sorted(scored, key=_intermediate_key if sort == "intermediate" else _total_key)

    def abnc(self) -> ABnC:
        """How much of Ξ has the ABⁿC shape the FPTAS guarantee assumes (ALGORITHM.md §2)."""
        c = self.scored[1]
        return ABnC(size=len(c["params"]), params=int(np.sum(c["b_params"] > c["a_params"] + c["c_params"])),
                    ops=int(np.sum(c["b_ops"] > c["a_ops"] + c["c_ops"])))

    def with_settings(self, **changes) -> SearchSpace:
        settings = dataclasses.replace(self.settings, **changes)
        space = dataclasses.replace(self, settings=settings)
        space.validate()
        return space

    def to_dict(self) -> dict:
        return {"name": self.name, "family": self.family.name,
                "parameters": {k: list(v) for k, v in self.parameters.items()},
                "constraints": [c.text for c in self.constraints],
                "maximum_point": dict(self.maximum_point), "settings": dataclasses.asdict(self.settings)}

    def validate(self) -> None:
        """Raise SpaceError if Ξ is empty, unbuildable, or exceeds T."""
        fail = _failer(self.source)
        problem = self.settings.check()
        if problem:
            fail("settings", problem)
        problem = self.family.check(self.maximum_point)
        if problem:
            fail("maximum_point", problem)
        try:
            columns, _ = self.scored
        except ConstraintError as e:
            fail("constraints", str(e))
        if not len(columns[self.family.parameters[0]]):
            fail("constraints", "no architecture satisfies the constraints: the space is empty")
        first = self.family.first_unbuildable(columns)
        if first is not None:
            xi = row(columns, first)
            fail("parameters", f"{arch_key(xi)} cannot be built ({self.family.check(xi)}); add a constraint")
        top, counts = self.max_cost, self.scored[1]
        above = np.flatnonzero((counts["params"] > top.params) | (counts["ops"] > top.ops))
        if len(above):
            xi = row(columns, int(above[0]))
            c = self.cost(xi)
            fail("maximum_point", f"{arch_key(xi)} has p={c.params:,} i={c.ops:,}, above T's "
                                  f"p={top.params:,} i={top.ops:,}; T must be the largest point")


def _failer(source: str):
    def fail(key: str, problem: str):
        raise SpaceError(f"{source}: {key}: {problem}")
    return fail


def _int_list(value, key: str, fail) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        fail(key, f"expected a non-empty list of integers, got {value!r}")
    for v in value:
        if type(v) is not int:
            fail(key, f"expected integers, got {v!r}")
    return tuple(value)


def _distinct(parameters: dict[str, tuple[int, ...]], source: str) -> tuple[dict[str, tuple[int, ...]], tuple[str, ...]]:
    """Each parameter's values with repeats dropped (first place kept), and a note naming them: a
    value listed twice would put its architectures into Ξ twice, and a study of that Ξ would count
    evaluations it can never store, staying partial on every resume."""
    out, repeated = {}, []
    for name, values in parameters.items():
        out[name] = tuple(dict.fromkeys(values))
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            repeated.append(f"parameters.{name} lists {', '.join(map(str, twice))} more than once")
    if not repeated:
        return out, ()
    return out, (f"note: {source}: {'; '.join(repeated)}; Ξ counts each value once",)


def _settings(family: Family, raw: Any, fail):
    if not isinstance(raw, dict):
        fail("settings", "expected a table")
    fields = {f.name: f for f in dataclasses.fields(family.settings_type)}
    values = {}
    for k, v in raw.items():
        if k not in fields:
            fail(f"settings.{k}", f"unknown key (known: {', '.join(fields)})")
        want = type(getattr(family.settings_type(), k))
        if want is float and type(v) is int:  # TOML reads rope_theta = 500000 as an integer
            v = float(v)
        if type(v) is not want:
            fail(f"settings.{k}", f"expected {want.__name__}, got {v!r}")
        values[k] = v
    return family.settings_type(**values)


def space_from_dict(raw: dict, source: str = "<memory>") -> SearchSpace:
    """Build and validate a space from parsed TOML; every problem is a one-line SpaceError."""
    fail = _failer(source)
    for k in raw:
        if k not in TOP_KEYS:
            fail(k, f"unknown key (known: {', '.join(TOP_KEYS)})")
    fam_name = raw.get("family", "bert")
    if fam_name not in FAMILIES:
        fail("family", f"unknown family {fam_name!r} (known: {', '.join(FAMILIES.names())})")
    family = get_family(fam_name)
    params_raw = raw.get("parameters")
    if not isinstance(params_raw, dict):
        fail("parameters", "missing table of candidate values")
    for k in params_raw:
        if k not in family.parameters:
            fail(f"parameters.{k}", f"unknown parameter for family {family.name} (known: {', '.join(family.parameters)})")
    for k in family.parameters:
        if k not in params_raw:
            fail(f"parameters.{k}", "missing")
    parameters, notes = _distinct({k: _int_list(params_raw[k], f"parameters.{k}", fail) for k in family.parameters},
                                  source)
    cons_raw = raw.get("constraints", [])
    if not isinstance(cons_raw, list) or not all(isinstance(c, str) for c in cons_raw):
        fail("constraints", "expected a list of strings")
    constraints = []
    for c in cons_raw:
        try:
            constraints.append(Constraint.parse(c, family.parameters))
        except ValueError as e:
            fail("constraints", str(e))
    t_raw = raw.get("maximum_point")
    if t_raw is None:
        fail("maximum_point", "missing: name the maximum point T (the network to extract from)")
    if not isinstance(t_raw, dict):
        fail("maximum_point", "expected a table")
    for k in t_raw:
        if k not in family.parameters:
            fail(f"maximum_point.{k}", "unknown parameter")
    for k in family.parameters:
        if type(t_raw.get(k)) is not int:
            fail(f"maximum_point.{k}", f"expected an integer, got {t_raw.get(k)!r}")
    name = raw.get("name", Path(source).stem)
    if not isinstance(name, str) or not isinstance(raw.get("description", ""), str):
        fail("name", "name and description must be strings")
    space = SearchSpace(name=name, family=family, parameters=parameters, constraints=tuple(constraints),
                        maximum_point={k: t_raw[k] for k in family.parameters},
                        settings=_settings(family, raw.get("settings", {}), fail),
                        source=source, description=raw.get("description", ""), notes=notes)
    space.validate()
    return space


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("ose.presets").iterdir() if p.name.endswith(".toml"))


def load_space(spec: str | Path) -> SearchSpace:
    """Load a preset by name (``bert-paper``, ``bert-tiny``) or a TOML file by path."""
    return space_from_dict(*read_space(spec))


def read_space(spec: str | Path) -> tuple[dict, str]:
    """A preset's or a TOML file's parsed content, not yet checked, and where it came from."""
    spec = str(spec)
    if spec in preset_names():
        text = resources.files("ose.presets").joinpath(f"{spec}.toml").read_text()
        source = f"preset {spec}"
    else:
        path = Path(spec)
        if not path.is_file():
            raise SpaceError(f"{spec}: not a preset ({', '.join(preset_names())}) nor a readable file")
        text, source = path.read_text(errors="replace"), str(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpaceError(f"{source}: invalid TOML: {e}") from None
    return raw, source
