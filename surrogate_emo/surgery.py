"""Model surgery every compression shares: the ``Linear``/``Conv2d`` layers of a model by name, and putting a new
layer in the place of one. Nothing here knows how a layer is compressed."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from surrogate_emo.errors import ConfigError

COMPRESSIBLE = (nn.Linear, nn.Conv2d)


def compressible_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The ``Linear`` and ``Conv2d`` layers of ``model`` by qualified name (as in ``named_modules``), in order.

    Example:
        >>> list(compressible_layers(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))))
        ['0', '2']
    """
    return {name: module for name, module in model.named_modules() if isinstance(module, COMPRESSIBLE)}


def named_layers(model: nn.Module, names: Iterable[str], what: str = "compressible") -> dict[str, nn.Module]:
    """The layers ``names`` of ``model``, in that order; `ConfigError` listing the ``what`` layers (the compressible
    ones) when a name is not a ``Linear``/``Conv2d`` layer of the model."""
    candidates = compressible_layers(model)
    names = list(names)
    unknown = [name for name in names if name not in candidates]
    if unknown:
        raise ConfigError(f"layers {unknown} are not Linear/Conv2d layers of the model; "
                          f"{what} layers: {list(candidates)}")
    return {name: candidates[name] for name in names}


def replace_layer(model: nn.Module, name: str, layer: nn.Module) -> nn.Module:
    """Put ``layer`` in the place of ``model``'s submodule ``name``, in place, and return the model (``layer`` itself
    when ``name`` is ``""``: the model was that layer). Callers that must not modify their model pass a copy.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        >>> type(replace_layer(net, "0", nn.Identity())[0]).__name__
        'Identity'
    """
    if not name:
        return layer
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, layer)
    return model
