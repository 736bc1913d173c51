"""Compression schemes by name: ``lowrank-sparse``, ``prune``, ``filters``, ``quant``, ``prune-quant``, or a scheme of your own as ``package.module:Class``."""

from __future__ import annotations

from surrogate_emo.errors import ConfigError
from surrogate_emo.registry import resolve
from surrogate_emo.schemes.base import Scheme
from surrogate_emo.schemes.filters import FiltersScheme
from surrogate_emo.schemes.lowrank_sparse import LowRankSparseScheme
from surrogate_emo.schemes.unstructured import PruneQuantScheme, PruneScheme, QuantScheme

SCHEMES: dict[str, type[Scheme]] = {scheme.name: scheme for scheme in (
    LowRankSparseScheme, PruneScheme, FiltersScheme, QuantScheme, PruneQuantScheme)}


def scheme_class(name: str) -> type[Scheme]:
    """The scheme class ``name`` names: a built-in name or ``package.module:Class`` (a `Scheme` subclass).

    Example:
        >>> scheme_class("lowrank-sparse").__name__
        'LowRankSparseScheme'

    Raises:
        ConfigError: the name is unknown (the known ones are listed), or names something that is not a `Scheme`.
    """
    found = resolve(name, SCHEMES, kind="scheme")
    if not (isinstance(found, type) and issubclass(found, Scheme)):
        raise ConfigError(f"scheme {name!r} must name a subclass of surrogate_emo.schemes.Scheme, got {found!r}")
    return found


__all__ = ["SCHEMES", "FiltersScheme", "LowRankSparseScheme", "PruneQuantScheme", "PruneScheme", "QuantScheme", "Scheme",
           "scheme_class"]
