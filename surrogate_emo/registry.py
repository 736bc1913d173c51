"""Look up a plug-in by registered name or by ``package.module:Name`` import path, with a helpful miss."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from surrogate_emo.errors import ConfigError


def resolve(name: str, known: Mapping[str, Any], kind: str) -> Any:
    """Return ``known[name]``, or import ``package.module:Name``; otherwise raise a `ConfigError` listing the names.

    Example:
        >>> resolve("math:sqrt", {}, kind="function")(9.0)
        3.0
    """
    if name in known:
        return known[name]
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ConfigError(f"cannot import module {module_name!r} for {kind} {name!r}: {error}. "
                              "Is the package installed or on PYTHONPATH?") from error
        try:
            return getattr(module, attribute)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no attribute {attribute!r} (asked for {kind} {name!r})") from None
    raise ConfigError(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}. "
                      f"A {kind} of your own is passed as 'package.module:Name'.")
