"""Magnitude-pruning masks on dense ``Linear``/``Conv2d`` layers: fixed, or with Dynamic Network Surgery recovery.

A masked layer stores the full float weight (a parameter) and a boolean mask (a buffer) and computes with
``weight * mask``. Two training modes:

* ``recovery=False`` (fixed mask, the default for fine-tuning): the product ``weight * mask`` gives the masked
  entries an exactly zero gradient, and the masked entries of the stored weight are zero from the start, so
  plain SGD, Adam, L2 weight decay or AdamW's decoupled decay all leave them exactly zero (zero gradient from
  the first step means zero moments). Exactness assumes the optimiser's state starts with the fixed mask, as
  `surrogate_emo.train.fit` does (a fresh Adam per call).
* ``recovery=True`` (Dynamic Network Surgery, Guo, Yao and Chen, NIPS 2016; the masks of OLMP, IJCAI 2018):
  the forward pass still uses ``weight * mask``, but the backward pass is straight-through: every entry of the
  weight, masked or not, receives the gradient of the loss with respect to the effective weight. Masked weights
  keep their values and keep training, and `MaskedLayer.update_mask` splices them back once they grow.

Example:
    >>> layer = MaskedLinear.from_dense(nn.Linear(3, 2), keep=0.5)
    >>> layer.kept, tuple(layer.mask.shape)
    (3, (2, 3))
"""

from __future__ import annotations

import copy
import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from surrogate_emo.errors import ConfigError
from surrogate_emo.surgery import named_layers, replace_layer

DROP = 0.9
"""An unmasked entry is masked when ``|w| <= DROP * t`` (DNS's lower hysteresis factor)."""
SPLICE = 1.1
"""A masked entry is spliced back when ``|w| > SPLICE * t`` (DNS's upper hysteresis factor)."""


def keep_count(keep: float | int, numel: int) -> int:
    """How many of ``numel`` entries ``keep`` asks for: an ``int`` is a count, a ``float`` a fraction in [0, 1].

    A fraction keeps ``floor(keep * numel)`` entries (a tiny epsilon keeps exact products such as
    ``0.1 * 100`` from flooring one below), as the compression spaces decode their genes. ``1`` is one entry,
    ``1.0`` all of them.

    Raises:
        ConfigError: ``keep`` is not a number, a count outside ``[0, numel]`` or a fraction outside [0, 1].

    Example:
        >>> keep_count(0.5, 6), keep_count(2, 6), keep_count(1.0, 6)
        (3, 2, 6)
    """
    if isinstance(keep, bool) or not isinstance(keep, numbers.Real):
        raise ConfigError(f"keep must be a count (int) or a fraction (float) in [0, 1], got {keep!r}")
    if isinstance(keep, numbers.Integral):
        if not 0 <= keep <= numel:
            raise ConfigError(f"keep as a count must be in [0, {numel}] (the layer's weights), got {keep}")
        return int(keep)
    if not 0.0 <= keep <= 1.0:  # also rejects NaN
        raise ConfigError(f"keep as a fraction must be in [0, 1], got {keep!r}")
    return min(numel, math.floor(float(keep) * numel + 1e-9))


def top_magnitude_mask(weight: torch.Tensor, keep: float | int) -> torch.Tensor:
    """A boolean mask shaped like ``weight`` that keeps its ``keep`` largest-magnitude entries.

    Ties are broken by position: among equal magnitudes the entry earlier in row-major (flattened) order is kept,
    so the mask is the same on every machine and run.

    Raises:
        ConfigError: ``keep`` is invalid (see `keep_count`) or ``weight`` has a NaN or infinite entry.

    Example:
        >>> top_magnitude_mask(torch.tensor([[1.0, -3.0, 2.0], [2.0, 0.5, -2.0]]), 3).int().tolist()
        [[0, 1, 1], [1, 0, 0]]
    """
    magnitude = _finite_magnitudes(weight).flatten()
    count = keep_count(keep, magnitude.numel())
    # ascending stable sort of -|w|: largest magnitudes first, equal ones in their original (positional) order
    order = torch.sort(-magnitude, stable=True).indices
    flat = torch.zeros(magnitude.numel(), dtype=torch.bool, device=weight.device)
    flat[order[:count]] = True
    return flat.view(weight.shape)


def threshold_for_crate(weight: torch.Tensor, crate: float) -> float:
    """OLMP's (and DNS's) layer threshold ``max(mu + crate * sigma, 0)``.

    ``mu`` and ``sigma`` are the mean and the population standard deviation (divided by ``n``, as DNS's code
    computes it) of ``|w|`` over all entries of ``weight``; OLMP takes them from the layer at the start of
    pruning.

    Example:
        >>> threshold_for_crate(torch.tensor([1.0, -3.0]), 1.0)  # mu 2, sigma 1
        3.0
    """
    if not math.isfinite(crate):
        raise ConfigError(f"crate must be a finite number, got {crate!r}")
    mu, sigma = magnitude_stats(weight)
    return max(mu + crate * sigma, 0.0)


def magnitude_stats(weight: torch.Tensor) -> tuple[float, float]:
    """Mean and population standard deviation of ``|w|``, in float64: the ``mu`` and ``sigma`` of a crate.

    Example:
        >>> magnitude_stats(torch.tensor([1.0, -3.0]))
        (2.0, 1.0)
    """
    magnitude = _finite_magnitudes(weight).to(torch.float64).flatten()
    if magnitude.numel() == 0:
        raise ConfigError("a threshold needs at least one weight, got an empty tensor")
    return float(magnitude.mean()), float(magnitude.std(correction=0))


def threshold_for_keep(weight: torch.Tensor, keep: float | int) -> float:
    """The magnitude ``t`` such that the entries with ``|w| > t`` are the ``keep`` largest.

    ``t`` is the largest magnitude among the entries that are not kept (the `(k+1)`-th largest ``|w|``), or 0
    when all are kept. Where ties straddle ``t`` fewer than ``keep`` entries exceed it (`top_magnitude_mask`
    breaks such ties instead). Passed to `MaskedLayer.update_mask`, the hysteresis masks only ``|w| <= 0.9 t``.

    Example:
        >>> threshold_for_keep(torch.tensor([0.5, -3.0, 2.0, 1.0]), 2)
        1.0
    """
    magnitude = _finite_magnitudes(weight).flatten()
    count = keep_count(keep, magnitude.numel())
    if count == magnitude.numel():
        return 0.0
    return float(torch.sort(magnitude, descending=True).values[count])


def _finite_magnitudes(weight: torch.Tensor) -> torch.Tensor:
    magnitude = weight.detach().abs()
    bad = int((~torch.isfinite(magnitude)).sum())
    if bad:
        raise ConfigError(f"weights must be finite, got {bad} NaN or infinite entries of {magnitude.numel()}")
    return magnitude


class MaskedLayer(nn.Module):
    """Storage and mask bookkeeping shared by `MaskedLinear` and `MaskedConv2d`.

    ``weight``: the layer's float weight, a parameter; ``mask``: a ``bool`` buffer of the same shape;
    ``bias``: unmasked, or ``None``. ``recovery`` chooses the training mode (see the module docstring).
    """

    def __init__(self, weight: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None,
                 recovery: bool = False) -> None:
        super().__init__()
        if mask.shape != weight.shape:
            raise ConfigError(f"the mask must have the weight's shape {tuple(weight.shape)}, got {tuple(mask.shape)}")
        self.weight = nn.Parameter(weight.detach().clone())
        self.register_buffer("mask", mask.detach().to(device=weight.device, dtype=torch.bool).clone())
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None
        self._recovery = False
        self.recovery = recovery

    @property
    def recovery(self) -> bool:
        """Whether masked weights keep training and can be spliced back (DNS) or stay exactly zero (fixed).

        Switching recovery off zeroes the masked entries of the stored weight, so that they stay zero from then
        on; start a fresh optimiser after switching (moments gathered before would still move them).
        """
        return self._recovery

    @recovery.setter
    def recovery(self, on: bool) -> None:
        self._recovery = bool(on)
        if not self._recovery:
            with torch.no_grad():
                self.weight.masked_fill_(~self.mask, 0.0)

    @property
    def kept(self) -> int:
        """Number of unmasked weights."""
        return int(self.mask.sum())

    def effective_weight(self) -> torch.Tensor:
        """``weight * mask``, the weight the layer computes with.

        With ``recovery`` its gradient reaches every entry of ``weight`` unchanged (straight-through); without,
        masked entries get an exactly zero gradient.
        """
        masked = self.weight * self.mask
        if self._recovery:
            # value of weight * mask (w + (w*m - w) is w or +0.0 exactly), derivative 1 for every entry
            return self.weight + (masked - self.weight).detach()
        return masked

    @torch.no_grad()
    def update_mask(self, threshold: float, drop: float = DROP, splice: float = SPLICE) -> int:
        """Apply DNS's hysteresis with threshold ``t``; returns the number of kept weights afterwards.

        An unmasked entry is masked when ``|w| <= drop * t``; a masked entry is spliced back when
        ``|w| > splice * t``; entries in between keep their state. In fixed mode (``recovery=False``) masked
        weights are zero, so nothing comes back, and newly masked entries are zeroed.

        Raises:
            ConfigError: ``threshold`` is negative or not finite, or ``drop > splice``.
        """
        if not (math.isfinite(threshold) and threshold >= 0.0):
            raise ConfigError(f"threshold must be a finite number >= 0, got {threshold!r}")
        if not 0.0 <= drop <= splice:
            raise ConfigError(f"hysteresis factors must satisfy 0 <= drop <= splice, got drop={drop}, splice={splice}")
        magnitude = self.weight.abs()
        dropped = self.mask & (magnitude <= drop * threshold)
        spliced = ~self.mask & (magnitude > splice * threshold)
        self.mask.copy_((self.mask & ~dropped) | spliced)
        if not self._recovery:
            self.weight.masked_fill_(~self.mask, 0.0)
        return self.kept

    def extra_repr(self) -> str:
        return f"kept={self.kept}/{self.mask.numel()}, recovery={self._recovery}"


class MaskedLinear(MaskedLayer):
    """``y = x (weight * mask)^T + b``: a ``Linear`` with a magnitude-pruning mask.

    Example:
        >>> dense = nn.Linear(4, 3)
        >>> layer = MaskedLinear.from_dense(dense, keep=0.25)
        >>> layer(torch.zeros(2, 4)).shape, layer.kept
        (torch.Size([2, 3]), 3)
    """

    @classmethod
    def from_dense(cls, layer: nn.Linear, keep: float | int, recovery: bool = False) -> MaskedLinear:
        """Mask a copy of ``layer`` (left untouched), keeping its ``keep`` largest-magnitude weights.

        ``keep`` is a count (``int``) or a fraction in [0, 1] (``float``); ties go to the earlier position
        (see `top_magnitude_mask`).
        """
        if not isinstance(layer, nn.Linear):
            raise ConfigError(f"MaskedLinear.from_dense expects an nn.Linear, got {type(layer).__name__}")
        return cls(layer.weight, top_magnitude_mask(layer.weight, keep), layer.bias, recovery)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)


class MaskedConv2d(MaskedLayer):
    """A ``Conv2d`` (same stride, padding, dilation and groups) computing with ``weight * mask``.

    Example:
        >>> layer = MaskedConv2d.from_dense(nn.Conv2d(2, 4, 3, padding=1), keep=10)
        >>> layer(torch.zeros(1, 2, 5, 5)).shape, layer.kept
        (torch.Size([1, 4, 5, 5]), 10)
    """

    def __init__(self, weight: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None, recovery: bool = False,
                 stride: tuple[int, int] = (1, 1), padding: tuple[int, int] | str = (0, 0),
                 dilation: tuple[int, int] = (1, 1), groups: int = 1) -> None:
        super().__init__(weight, mask, bias, recovery)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    @classmethod
    def from_dense(cls, layer: nn.Conv2d, keep: float | int, recovery: bool = False) -> MaskedConv2d:
        """Mask a copy of ``layer`` (left untouched), keeping its ``keep`` largest-magnitude weights.

        Only ``padding_mode='zeros'`` is supported, as in the other compressed layers.
        """
        if not isinstance(layer, nn.Conv2d):
            raise ConfigError(f"MaskedConv2d.from_dense expects an nn.Conv2d, got {type(layer).__name__}")
        if layer.padding_mode != "zeros":
            raise ConfigError(f"padding_mode={layer.padding_mode!r} is not supported; only 'zeros'")
        return cls(layer.weight, top_magnitude_mask(layer.weight, keep), layer.bias, recovery,
                   layer.stride, layer.padding, layer.dilation, layer.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}")


def mask_model(model: nn.Module, keep_per_layer: dict[str, float | int], recovery: bool = False) -> nn.Module:
    """A new model: a deep copy of ``model`` (left untouched) with the named layers masked.

    ``keep_per_layer`` maps a ``Linear``/``Conv2d`` layer's qualified name (as in ``named_modules``) to what it
    keeps: a count (``int``) or a fraction in [0, 1] (``float``). Layers not named stay dense.

    Raises:
        ConfigError: a name is not a ``Linear``/``Conv2d`` layer of ``model`` (the message lists those that are),
            or a ``keep`` is invalid.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> kept(mask_model(net, {"0": 0.25, "2": 4}))
        {'0': 8, '2': 4}
    """
    named_layers(model, keep_per_layer)  # every name checked before any work
    masked = copy.deepcopy(model)
    for name, keep in keep_per_layer.items():
        layer = masked.get_submodule(name)
        masked_class = MaskedConv2d if isinstance(layer, nn.Conv2d) else MaskedLinear
        try:
            replacement = masked_class.from_dense(layer, keep, recovery)
        except ConfigError as error:
            raise ConfigError(f"layer {name!r}: {error}") from None
        masked = replace_layer(masked, name, replacement)
    return masked


def masked_layers(model: nn.Module) -> dict[str, MaskedLayer]:
    """The masked layers of ``model`` by qualified name, in module order."""
    return {name: module for name, module in model.named_modules() if isinstance(module, MaskedLayer)}


def kept(model: nn.Module) -> dict[str, int]:
    """Number of unmasked weights of each masked layer, by qualified name."""
    return {name: layer.kept for name, layer in masked_layers(model).items()}


@torch.no_grad()
def effective_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached state dict with each masked layer's ``weight`` replaced by ``weight * mask`` and no masks.

    It loads into the dense architecture the masked model was made from (``load_state_dict``), and its zeros are
    the pruned weights, so it serves both a dense and a sparse export.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 2))
        >>> state = effective_state(mask_model(net, {"0": 3}))
        >>> sorted(state), int((state["0.weight"] != 0).sum())
        (['0.bias', '0.weight'], 3)
    """
    layers = masked_layers(model)
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    for name, layer in layers.items():
        prefix = f"{name}." if name else ""
        del state[f"{prefix}mask"]
        state[f"{prefix}weight"] = layer.weight.detach().masked_fill(~layer.mask, 0.0)
    return state
