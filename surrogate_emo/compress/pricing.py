"""Exact prices of one ``Linear``/``Conv2d`` layer as stored and run: parameters, bits under a coding, non-zero MACs,
accelerator energy; and of a whole built model.

A layer of ``N`` weights keeps ``K`` of them at ``q`` bits (``q = 32``: float32, no scales). Then:

- parameters: ``K`` plus the bias;
- bits: the weights under the coding `Pricing.coding` chooses (`surrogate_emo.compress.coding`; per-channel scales
  when ``q < 32``) plus the bias in float32; bytes are ``ceil(bits / 8)`` per layer;
- MACs: ``K`` per output position: only the kept weights multiply (a count of non-zero MACs for unstructured
  sparsity; a dense kernel still does all ``N``);
- energy: `surrogate_emo.compress.energy.layer_energy` with ``p = K / N`` under `Pricing.dataflow`.

Everything else a model stores (normalisation, buffers) is priced as its state-dict bytes. `price_model` prices a
built model's layers by what they are (dense, `MaskedLayer`, `QuantLayer`); a scheme prices a genome with
`price_layer` from the same numbers, which is what makes its costs exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from surrogate_emo.compress.coding import CODINGS, coded_bits, layer_coding
from surrogate_emo.compress.energy import DATAFLOWS, EnergyConstants, LayerGeometry, layer_energy
from surrogate_emo.compress.masks import MaskedLayer
from surrogate_emo.compress.quant import QuantLayer
from surrogate_emo.errors import ConfigError

FLOAT_BITS = 32
"""Bits of an unquantised weight, bias or scale (float32)."""


@dataclass(frozen=True)
class Pricing:
    """How bytes and energy are counted.

    Attributes:
        coding: ``"best"`` (the smallest coding per layer) or one of ``dense``, ``csr``, ``coo`` for every layer.
        index_bits: width of a CSR relative index (Deep Compression: 5 for fully connected layers).
        dataflow: the accelerator's loop unrolling for convolutions (``X:Y``, ``IC:OC``, ``Fx:Fy``, ``X:Fx``).
        energy: energies per access and the array (EMOMC's by default).

    Example:
        >>> Pricing(coding="csr").index_bits
        5
    """

    coding: str = "best"
    index_bits: int = 5
    dataflow: str = "X:Y"
    energy: EnergyConstants = field(default_factory=EnergyConstants)

    def __post_init__(self) -> None:
        if self.coding != "best" and self.coding not in CODINGS:
            raise ConfigError(f"coding must be 'best' or one of {', '.join(CODINGS)}, got {self.coding!r}")
        if isinstance(self.index_bits, bool) or not isinstance(self.index_bits, int) or not 1 <= self.index_bits <= 32:
            raise ConfigError(f"index_bits must be an integer in [1, 32], got {self.index_bits!r}")
        if self.dataflow not in DATAFLOWS:
            raise ConfigError(f"dataflow must be one of {', '.join(DATAFLOWS)}, got {self.dataflow!r}")

    def describe(self) -> dict:
        return {"coding": self.coding, "index_bits": self.index_bits, "dataflow": self.dataflow,
                "energy": dict(self.energy.__dict__)}


@dataclass(frozen=True)
class LayerPrice:
    """One layer's exact prices; ``coding`` names how its weights are stored."""

    params: int
    bits: int
    macs: int
    energy: float
    coding: str

    @property
    def bytes(self) -> int:
        return -(-self.bits // 8)


def price_layer(geometry: LayerGeometry, kept: np.ndarray | int, bits: int, has_bias: bool, pricing: Pricing,
                fillers: int | None = None) -> LayerPrice:
    """Prices of one layer keeping ``kept`` of its weights at ``bits`` bits.

    Args:
        geometry: the layer's shape (weights ``N``, MACs, output map).
        kept: a boolean mask of the ``N`` weights (row-major) or, with ``fillers`` given, the count ``K``.
        bits: weight bits; 32 means float32 (no scales).
        has_bias: whether the layer stores a float32 bias of ``out_channels`` values.
        pricing: the coding and energy settings.
        fillers: CSR filler entries when only the count is given (a scheme that knows the positions counts them
            once, see `filler_table`).

    Example:
        >>> price_layer(LayerGeometry.linear(4, 2), np.array([1, 0, 0, 0, 0, 0, 0, 1], bool), 8, True,
        ...             Pricing(coding="coo")).bits  # 2 x (8 + 3) + 2 scales x 32 + 2 biases x 32
        150
    """
    n = geometry.weights
    if isinstance(kept, (int, np.integer)):
        count = int(kept)
    else:
        count = int(np.count_nonzero(kept))
    scales = geometry.out_channels if bits < FLOAT_BITS else 0
    bias = geometry.out_channels if has_bias else 0
    if fillers is None:
        coding = layer_coding(n, kept, bits, pricing.coding, index_bits=pricing.index_bits, scales=scales)
        name, weight_bits = coding.coding, coding.bits
    else:
        name, weight_bits = _coding_from_count(n, count, fillers, bits, scales, pricing)
    positions = geometry.output[0] * geometry.output[1]
    energy = layer_energy(geometry, count / n, bits, pricing.dataflow, pricing.energy)["total"]
    return LayerPrice(count + bias, weight_bits + FLOAT_BITS * bias, count * positions, energy, name)


def _coding_from_count(n: int, count: int, fillers: int, bits: int, scales: int, pricing: Pricing) -> tuple[str, int]:
    extra = scales * FLOAT_BITS
    sizes = {"dense": coded_bits(n, count, bits, "dense", scales=scales),
             "csr": (count + fillers) * (bits + pricing.index_bits) + extra,
             "coo": coded_bits(n, count, bits, "coo", scales=scales)}
    if pricing.coding != "best":
        return pricing.coding, sizes[pricing.coding]
    size, _, name = min((sizes[name], order, name) for order, name in enumerate(CODINGS))
    return name, size


def filler_table(order: np.ndarray, index_bits: int) -> np.ndarray:
    """CSR filler entries for every kept count ``K = 0..N`` when the kept weights are the first ``K`` of ``order``
    (flat positions, most important first): ``table[K]``.

    One pass, ``O(N)``: start from all weights kept (no gaps) and drop them from the least important on, merging
    the two gaps beside each dropped weight (a doubly linked list). Zeros after the last kept weight cost nothing.
    Written by hand: no library counts a coding's fillers.

    Example:
        >>> filler_table(np.array([0, 9, 1, 2, 3, 4, 5, 6, 7, 8]), index_bits=2)[[1, 2, 10]].tolist()
        [0, 2, 0]
    """
    order = np.asarray(order, dtype=np.int64)
    n = order.size
    period = 1 << index_bits
    prev = list(range(-1, n - 1))
    nxt = list(range(1, n + 1))  # n: past the end
    table = [0] * (n + 1)
    fillers = 0
    for k in range(n, 0, -1):
        p = int(order[k - 1])
        left, right = prev[p], nxt[p]
        before = (p - left - 1) // period
        if right < n:  # a gap that ends at a kept weight is written; one that runs to the end is not
            fillers += (right - left - 1) // period - before - (right - p - 1) // period
        else:
            fillers -= before
        if left >= 0:
            nxt[left] = right
        if right < n:
            prev[right] = left
        table[k - 1] = fillers
    table[n] = 0
    return np.asarray(table, dtype=np.int64)


def layer_geometries(model: nn.Module, input_shape: tuple[int, ...], names: list[str] | None = None
                     ) -> dict[str, LayerGeometry]:
    """The energy model's geometry of every ``Linear``/``Conv2d``-like layer of ``model`` (or those ``names``), in
    module order, found by one forward pass of a zero input; ``model`` is left as it came.

    A layer is anything with a 2-d (linear) or 4-d (convolution) ``weight`` that is a ``Linear``, a ``Conv2d`` or a
    compressed layer of this package (`MaskedLayer`, `QuantLayer`).
    """
    kinds = (nn.Linear, nn.Conv2d, MaskedLayer, QuantLayer)
    modules = {name: module for name, module in model.named_modules() if isinstance(module, kinds)
               and (names is None or name in names)}
    outputs: dict[str, tuple[int, ...]] = {}
    hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, tuple(out.shape)))
             for name, module in modules.items()]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    geometries = {}
    for name, module in modules.items():
        if name not in outputs:
            raise ConfigError(f"layer {name!r} is not used by the model's forward pass")
        weight = module.weight
        if weight.dim() == 4:
            groups = getattr(module, "groups", 1)
            geometries[name] = LayerGeometry.conv(weight.shape[1] * groups, weight.shape[0],
                                                  tuple(weight.shape[2:]), outputs[name][2:4], groups)
        else:
            geometries[name] = LayerGeometry.linear(weight.shape[1], weight.shape[0])
    return geometries


@dataclass(frozen=True)
class ModelPrice:
    """A built model's priced layers by name (module order) and the bytes and parameters of everything else."""

    layers: dict[str, LayerPrice]
    rest_params: int
    rest_bytes: int


def price_model(model: nn.Module, input_shape: tuple[int, ...], pricing: Pricing) -> ModelPrice:
    """Price every layer of a built model by what it stores: a dense ``Linear``/``Conv2d`` (all weights, float32), a
    `MaskedLayer` (its mask, float32) or a `QuantLayer` (its mask or all weights, at its bits, with scales)."""
    geometries = layer_geometries(model, input_shape)
    layers, priced_tensors = {}, set()
    for name, geometry in geometries.items():
        module = model.get_submodule(name)
        has_bias = module.bias is not None
        if isinstance(module, QuantLayer):
            layers[name] = price_layer(geometry, module.structure_mask(), module.bits, has_bias, pricing)
        elif isinstance(module, MaskedLayer):
            layers[name] = price_layer(geometry, module.mask.flatten().cpu().numpy(), FLOAT_BITS, has_bias, pricing)
        else:
            layers[name] = price_layer(geometry, np.ones(geometry.weights, dtype=bool), FLOAT_BITS, has_bias, pricing)
        prefix = f"{name}." if name else ""
        priced_tensors.update(prefix + key for key in module.state_dict())
    params = sum(p.numel() for key, p in model.named_parameters() if key not in priced_tensors)
    stored = sum(t.numel() * t.element_size() for key, t in model.state_dict().items() if key not in priced_tensors)
    return ModelPrice(layers, params, stored)
