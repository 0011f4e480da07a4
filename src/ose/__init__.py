"""ose: Optimal Subarchitecture Extraction (de Wynter, 2020).

Public API: load a search space, count an architecture, run an extraction.
"""

from .costs import Cost, w_coefficient
from .space import SearchSpace, SpaceError, load_space, preset_names

from .version import __version__

__all__ = ["Cost", "SearchSpace", "SpaceError", "count", "extract", "load_space", "preset_names", "w_coefficient"]


def count(xi: dict, family: str = "bert", **settings) -> Cost:
    """p(ξ) and i(ξ) of one architecture, e.g. ``ose.count(dict(D=4, A=8, H=1024, I=768))``."""
    from .families import get_family

    fam = get_family(family)
    s = fam.settings_type(**settings)
    problem = s.check() or fam.check(xi)
    if problem:
        raise ValueError(problem)
    return fam.cost({k: xi[k] for k in fam.parameters}, s)


def extract(config=None, **options):
    """Run an extraction (Algorithm 1); see ``ose.pipeline.extract``."""
    from .pipeline import extract as _extract

    return _extract(config, **options)
