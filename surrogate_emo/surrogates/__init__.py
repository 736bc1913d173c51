"""Surrogates of the expensive objectives, by name or by ``package.module:ClassName``."""

from __future__ import annotations

from surrogate_emo.errors import ConfigError
from surrogate_emo.registry import resolve
from surrogate_emo.surrogates.base import IndependentGaussianModel, Surrogate, SurrogateError
from surrogate_emo.surrogates.features import Features, FeatureSurrogate, ForestWithFeatures, GPWithFeatures
from surrogate_emo.surrogates.forest import RandomForestSurrogate
from surrogate_emo.surrogates.gp import GPSurrogate
from surrogate_emo.surrogates.multifidelity import Cheaper, MultiFidelityGP

SURROGATES: dict[str, type[Surrogate]] = {"gp": GPSurrogate, "rf": RandomForestSurrogate,
                                          "gp-f0": GPWithFeatures, "rf-f0": ForestWithFeatures,
                                          "gp-mf": MultiFidelityGP}


def surrogate_class(name: str) -> type[Surrogate]:
    """The class a registered name or ``package.module:ClassName`` stands for, without instantiating it."""
    found = resolve(name, SURROGATES, kind="surrogate")
    if not (isinstance(found, type) and issubclass(found, Surrogate)):
        raise ConfigError(f"surrogate {name!r} must name a subclass of surrogate_emo.surrogates.Surrogate, "
                          f"got {found!r}")
    return found


def portfolio(spec: str) -> list[str]:
    """The surrogates a ``+``-joined spec names, each resolved: ``gp-f0+rf-f0`` is the GP and the forest, each
    choosing its share of every batch (`surrogate_emo.search.SurrogateSearch`). A single name is a portfolio of one.

    Raises:
        ConfigError: a part is empty or names no surrogate.
    """
    names = spec.split("+")
    if not all(names):
        raise ConfigError(f"surrogate must be a name or names joined by '+' (e.g. gp-f0+rf-f0), got {spec!r}")
    for name in names:
        surrogate_class(name)
    return names


def make_surrogate(name: str, seed: int = 0, features: Features | None = None,
                   cheaper: Cheaper | None = None) -> Surrogate:
    """Instantiate a registered surrogate or a user class given as ``package.module:ClassName``; ``features``
    (cheap features of genomes, e.g. the fidelity-0 error) go to those that read them (``uses_features``),
    ``cheaper`` (observations at a lower fidelity) to those that model them (``uses_cheaper``)."""
    cls = surrogate_class(name)
    if cls.uses_cheaper:
        return cls(seed=seed, cheaper=cheaper)
    return cls(seed=seed, features=features) if cls.uses_features else cls(seed=seed)


__all__ = ["SURROGATES", "Cheaper", "FeatureSurrogate", "Features", "ForestWithFeatures", "GPSurrogate",
           "GPWithFeatures", "IndependentGaussianModel", "MultiFidelityGP", "RandomForestSurrogate", "Surrogate",
           "SurrogateError", "make_surrogate", "portfolio", "surrogate_class"]
