"""Weight-level schemes: per layer, the kept weights (magnitude pruning), the weight bit width, or both.

- ``prune``: one gene per layer, the kept fraction (a log-scale keep fraction, as every scheme's genes).
- ``quant``: one gene per layer, the bit width, ``min_bits`` to ``max_bits`` (2 to 8 by default) in equal steps
  of the gene.
- ``prune-quant``: both per layer (EMOMC's space with a per-layer kept fraction), or with ``global_keep`` one
  kept fraction for every layer and a bit width per layer (EMOMC's own).

Which weights are kept. A layer keeps the ``K`` largest magnitudes of the *dense base model* (ties to the earlier
position), so masks are nested: a model that keeps ``K' >= K`` of a layer contains the ``K`` mask, a warm start
from it loses no weight the new genome keeps, and the positions, hence the exact CSR size with its filler entries,
follow from the genome alone. Re-compressing a fine-tuned model keeps its fine-tuned values at those positions.

Fine-tuning keeps the masks fixed. With ``recovery`` (``prune`` only), masks follow Dynamic Network Surgery
(`surrogate_emo.compress.masks`): every ``recovery_every`` steps each layer's threshold is set to the magnitude
that keeps ``K`` weights and the hysteresis drops and splices; at the end the ``K`` largest are kept, fixed. The
count, hence parameters and MACs, stay exact; the positions move, so a CSR size can differ from the genome's by a
few filler entries (the study records the genome's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from surrogate_emo.compress.costs import Costs, sum_energy
from surrogate_emo.compress.masks import (MaskedConv2d, MaskedLayer, MaskedLinear, threshold_for_keep,
                                          top_magnitude_mask)
from surrogate_emo.compress.pricing import FLOAT_BITS, LayerPrice, Pricing, filler_table, layer_geometries, price_layer, price_model
from surrogate_emo.compress.quant import MAX_BITS, MIN_BITS, QuantConv2d, QuantLayer, QuantLinear
from surrogate_emo.errors import ConfigError
from surrogate_emo.schemes.base import Scheme
from surrogate_emo.space import genes_for_fraction, keep_fraction
from surrogate_emo.surgery import replace_layer

if TYPE_CHECKING:
    from surrogate_emo.config import RunConfig


@dataclass(frozen=True)
class WeightSetting:
    """What a genome asks of one layer: ``kept`` weights (of ``numel``) at ``bits`` bits (32: float32)."""

    kept: int
    bits: int


class UnstructuredScheme(Scheme):
    """Shared machinery of `PruneScheme`, `QuantScheme` and `PruneQuantScheme`: a layer keeps its ``K`` largest
    base-model weights at ``q`` bits; a subclass says which genes set ``K`` and ``q`` (`_settings`).

    Args:
        model, input_shape, layers, decades: as `Scheme`.
        pricing: coding, index width, dataflow and energy constants (`surrogate_emo.compress.pricing.Pricing`).
        min_bits, max_bits: range of a bit-width gene.
    """

    prunes: bool = True
    quantizes: bool = False

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], layers: list[str] | None = None,
                 decades: float = 3.0, pricing: Pricing | None = None, min_bits: int = 2, max_bits: int = 8) -> None:
        for name, value in (("min_bits", min_bits), ("max_bits", max_bits)):
            if isinstance(value, bool) or not isinstance(value, int) or not MIN_BITS <= value <= MAX_BITS:
                raise ConfigError(f"{name} must be an integer in [{MIN_BITS}, {MAX_BITS}], got {value!r}")
        if min_bits > max_bits:
            raise ConfigError(f"min_bits must be <= max_bits, got {min_bits} > {max_bits}")
        self.min_bits, self.max_bits = min_bits, max_bits
        self.pricing = pricing if pricing is not None else Pricing()
        self._geometries_all = layer_geometries(model, tuple(input_shape))
        self._price_rest = price_model(model, tuple(input_shape), self.pricing)
        self._bias = {name: model.get_submodule(name).bias is not None for name in self._geometries_all}
        self._orders = {}
        if layers is None:
            names = list(self._geometries_all)
        else:
            names = list(layers)
        for name in names:
            if name in self._geometries_all:
                weight = model.get_submodule(name).weight.detach()
                # most important first: largest magnitude, ties to the earlier position (as top_magnitude_mask)
                self._orders[name] = np.argsort(-weight.abs().flatten().cpu().numpy(), kind="stable")
        self._fillers: dict[str, np.ndarray] = {}
        self._prices: dict[tuple[int, int, int], LayerPrice] = {}
        super().__init__(model, input_shape, layers, decades)

    @classmethod
    def from_config(cls, config: RunConfig, model: nn.Module, input_shape: tuple[int, ...]) -> Scheme:
        return cls(model, input_shape, layers=config.layers, decades=config.decades, pricing=pricing_of(config),
                   min_bits=config.min_bits, max_bits=config.max_bits)

    def _setup(self) -> None:
        self._numel = np.array([layer.numel for layer in self.layers], dtype=np.int64)

    # ---- genes -------------------------------------------------------------------------------------------------

    def keep_fraction(self, genes: np.ndarray) -> np.ndarray:
        """``(10**(D*g) - 1) / (10**D - 1)``: 0 at 0, 1 at 1, logarithmic over the top ``D`` decades."""
        return keep_fraction(genes, self.decades)

    def kept_count(self, genes: np.ndarray) -> np.ndarray:
        """Kept weights per layer for keep genes `... x L` (the epsilon keeps ``0.1 * 100`` from flooring to 9)."""
        return np.floor(self.keep_fraction(genes) * self._numel + 1e-9).astype(np.int64)

    def bit_width(self, genes: np.ndarray) -> np.ndarray:
        """Bits for bit genes: ``min_bits`` to ``max_bits`` in equal steps of the gene (1.0 is ``max_bits``)."""
        levels = self.max_bits - self.min_bits + 1
        return self.min_bits + np.minimum(np.floor(genes * levels), levels - 1).astype(np.int64)

    def _settings(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Kept counts and bits, each `n x L`, of valid genomes `n x d`."""
        raise NotImplementedError

    def _keep_genes(self) -> np.ndarray:
        """Which genes are kept fractions (the rest are bit widths)."""
        return np.array([name.rsplit(".", 1)[-1] == "keep" for name in self.gene_names])

    def _shares(self, genome: np.ndarray) -> np.ndarray:
        keep = self._keep_genes()
        return np.where(keep, self.keep_fraction(genome), genome)

    def _from_shares(self, shares: np.ndarray) -> np.ndarray:
        keep = self._keep_genes()
        return np.where(keep, genes_for_fraction(shares, self.decades), shares)

    def _decode(self, genome: np.ndarray) -> list[WeightSetting]:
        kept, bits = self._settings(genome[None, :])
        return [WeightSetting(int(k), int(q)) for k, q in zip(kept[0], bits[0])]

    # ---- building ----------------------------------------------------------------------------------------------

    def mask(self, name: str, kept: int, shape: torch.Size) -> torch.Tensor:
        """The ``kept`` largest base-model weights of layer ``name`` as a boolean mask of ``shape``."""
        flat = np.zeros(int(np.prod(shape)), dtype=bool)
        flat[self._orders[name][:kept]] = True
        return torch.from_numpy(flat).view(shape)

    def _compress(self, model: nn.Module, genome: np.ndarray) -> nn.Module:
        for spec, setting in zip(self.layers, self._decode(genome)):
            layer = model.get_submodule(spec.name)
            weight = source_weight(layer)
            mask = self.mask(spec.name, setting.kept, weight.shape).to(weight.device)
            model = replace_layer(model, spec.name, self._build(layer, weight, mask, setting))
        return model

    def _build(self, layer: nn.Module, weight: torch.Tensor, mask: torch.Tensor, setting: WeightSetting) -> nn.Module:
        quantised = setting.bits < FLOAT_BITS
        bits = setting.bits if quantised else None
        # a quantised layer that keeps every weight stores no mask
        keep_mask = not (quantised and not self.prunes and setting.kept == mask.numel())
        return weight_layer(layer, weight, mask if keep_mask else None, bits, self.recovery)

    # ---- costs -------------------------------------------------------------------------------------------------

    def fillers(self, name: str) -> np.ndarray:
        """CSR filler entries of layer ``name`` for every kept count (computed once, on first use)."""
        if name not in self._fillers:
            self._fillers[name] = filler_table(self._orders[name], self.pricing.index_bits)
        return self._fillers[name]

    def _layer_price(self, index: int, kept: int, bits: int) -> LayerPrice:
        """Layer ``index`` keeping ``kept`` weights at ``bits``, priced once and remembered (pools repeat them)."""
        key = (index, kept, bits)
        if key not in self._prices:
            spec = self.layers[index]
            fillers = int(self.fillers(spec.name)[kept]) if self.pricing.coding in ("best", "csr") else 0
            self._prices[key] = price_layer(self._geometries_all[spec.name], kept, bits, self._bias[spec.name],
                                            self.pricing, fillers=fillers)
        return self._prices[key]

    def _costs(self, genome: np.ndarray) -> Costs:
        kept, bits = self._settings(genome[None, :])
        by_name = {spec.name: self._layer_price(i, int(kept[0, i]), int(bits[0, i]))
                   for i, spec in enumerate(self.layers)}
        prices = [by_name.get(name, dense) for name, dense in self._price_rest.layers.items()]
        return Costs(self._price_rest.rest_params + sum(p.params for p in prices),
                     self._price_rest.rest_bytes + sum(p.bytes for p in prices),
                     sum(p.macs for p in prices), sum_energy(p.energy for p in prices))

    # ---- warm starts, reports ----------------------------------------------------------------------------------

    def _holds(self, cached: np.ndarray, genome: np.ndarray) -> np.ndarray:
        """Masks are nested: a model keeping at least as many weights in every layer holds the genome (bits are
        re-quantised from the float weights, so any width holds any other)."""
        kept, _ = self._settings(genome[None, :])
        cached_kept, _ = self._settings(cached)
        return (cached_kept >= kept).all(axis=1)

    def _layer_columns(self, genome: np.ndarray) -> dict:
        row = {}
        for i, (spec, setting) in enumerate(zip(self.layers, self._decode(genome))):
            if self.prunes:
                row[f"{spec.name}.kept"] = setting.kept
            if self.quantizes:
                row[f"{spec.name}.bits"] = setting.bits
            row[f"{spec.name}.coding"] = self._layer_price(i, setting.kept, setting.bits).coding
        return row

    def _describe(self) -> dict:
        return {"decades": self.decades, "layers": [layer.__dict__ for layer in self.layers],
                "pricing": self.pricing.describe(), "min_bits": self.min_bits, "max_bits": self.max_bits}

    # ---- fine-tuning -------------------------------------------------------------------------------------------

    recovery: bool = False
    recovery_every: int = 50

    def during_finetune(self, model: nn.Module, genome: np.ndarray, step: int) -> None:
        """With ``recovery``: every ``recovery_every`` steps, DNS's mask update at the threshold keeping ``K``."""
        if not self.recovery or step % self.recovery_every:
            return
        for spec, setting in zip(self.layers, self._decode(genome)):
            layer = model.get_submodule(spec.name)
            layer.update_mask(threshold_for_keep(layer.weight, setting.kept))

    def after_finetune(self, model: nn.Module, genome: np.ndarray) -> None:
        """With ``recovery``: keep exactly the ``K`` largest weights of each layer, masks fixed from now on."""
        if not self.recovery:
            return
        for spec, setting in zip(self.layers, self._decode(genome)):
            layer = model.get_submodule(spec.name)
            with torch.no_grad():
                layer.mask.copy_(top_magnitude_mask(layer.weight, setting.kept))
            layer.recovery = False


def weight_layer(layer: nn.Module, weight: torch.Tensor, mask: torch.Tensor | None, bits: int | None,
                 recovery: bool = False) -> nn.Module:
    """A masked (``bits`` None) or quantised layer in the place of ``layer`` (a ``Linear``/``Conv2d`` or a compressed
    one: its bias and convolution geometry are kept), computing with ``weight`` and keeping ``mask``."""
    conv = weight.dim() == 4
    geometry = {key: getattr(layer, key) for key in ("stride", "padding", "dilation", "groups")} if conv else {}
    if bits is not None:
        if conv:
            return QuantConv2d(weight, layer.bias, bits, mask=mask, **geometry)
        return QuantLinear(weight, layer.bias, bits, mask=mask)
    if conv:
        return MaskedConv2d(weight, mask, layer.bias, recovery, **geometry)
    return MaskedLinear(weight, mask, layer.bias, recovery)


def source_weight(layer: nn.Module) -> torch.Tensor:
    """The float weight a layer computes with before any mask: a dense layer's, or a compressed layer's master
    weight with its mask applied (fixed masks: already zero; DNS masks: the pruned values are dropped)."""
    if isinstance(layer, MaskedLayer):
        return (layer.weight * layer.mask).detach()
    if isinstance(layer, QuantLayer):
        return (layer.weight if layer.mask is None else layer.weight * layer.mask).detach()
    return layer.weight.detach()


def pricing_of(config: RunConfig) -> Pricing:
    """The `Pricing` a run configuration asks for."""
    return Pricing(coding=config.coding, index_bits=config.index_bits, dataflow=config.dataflow)


class PruneScheme(UnstructuredScheme):
    """One gene per layer, ``<layer>.keep``: the kept fraction of its weights, largest magnitudes kept, float32.

    Args:
        recovery: fine-tune with Dynamic Network Surgery masks (drop at ``|w| <= 0.9 t``, splice back at
            ``|w| > 1.1 t``) instead of fixed ones, as OLMP and DE need.

    Example:
        >>> from surrogate_emo.models import mlp
        >>> scheme = PruneScheme(mlp((1, 8, 8), 10), (1, 8, 8))
        >>> scheme.gene_names, scheme.decode([1.0, 0.0, 2 / 3])[2]
        (['1.keep', '3.keep', '5.keep'], WeightSetting(kept=126, bits=32))
    """

    name = "prune"

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], layers: list[str] | None = None,
                 decades: float = 3.0, pricing: Pricing | None = None, recovery: bool = False,
                 recovery_every: int = 50) -> None:
        if isinstance(recovery_every, bool) or not isinstance(recovery_every, int) or recovery_every < 1:
            raise ConfigError(f"recovery_every must be an integer >= 1, got {recovery_every!r}")
        self.recovery, self.recovery_every = bool(recovery), recovery_every
        super().__init__(model, input_shape, layers, decades, pricing)

    @classmethod
    def from_config(cls, config: RunConfig, model: nn.Module, input_shape: tuple[int, ...]) -> Scheme:
        return cls(model, input_shape, layers=config.layers, decades=config.decades, pricing=pricing_of(config),
                   recovery=config.recovery)

    def _genes(self) -> list[str]:
        return [f"{layer.name}.keep" for layer in self.layers]

    def _shape_hint(self) -> str:
        return f" (1 gene for each of {len(self.layers)} layers)"

    def _settings(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kept = self.kept_count(X)
        return kept, np.full_like(kept, FLOAT_BITS)

    def _describe(self) -> dict:
        return {**super()._describe(), "recovery": self.recovery, "recovery_every": self.recovery_every}


class QuantScheme(UnstructuredScheme):
    """One gene per layer, ``<layer>.bits``: the weight bit width, symmetric per output channel, fine-tuned through
    the straight-through estimator; every weight kept.

    Example:
        >>> from surrogate_emo.models import mlp
        >>> scheme = QuantScheme(mlp((1, 8, 8), 10), (1, 8, 8))
        >>> [s.bits for s in scheme.decode([0.0, 0.5, 1.0])]
        [2, 5, 8]
    """

    name = "quant"
    prunes, quantizes = False, True

    def _genes(self) -> list[str]:
        return [f"{layer.name}.bits" for layer in self.layers]

    def _shape_hint(self) -> str:
        return f" (1 gene for each of {len(self.layers)} layers)"

    def _settings(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.broadcast_to(self._numel, X.shape).copy(), self.bit_width(X)


class PruneQuantScheme(UnstructuredScheme):
    """Kept fraction and bit width per layer (``<layer>.keep``, ``<layer>.bits``); with ``global_keep`` one kept
    fraction for every layer (gene ``keep``, EMOMC's genome) and a bit width per layer.

    Example:
        >>> from surrogate_emo.models import mlp
        >>> scheme = PruneQuantScheme(mlp((1, 8, 8), 10), (1, 8, 8), global_keep=True)
        >>> scheme.gene_names
        ['keep', '1.bits', '3.bits', '5.bits']
    """

    name = "prune-quant"
    quantizes = True

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], layers: list[str] | None = None,
                 decades: float = 3.0, pricing: Pricing | None = None, min_bits: int = 2, max_bits: int = 8,
                 global_keep: bool = False) -> None:
        self.global_keep = bool(global_keep)
        super().__init__(model, input_shape, layers, decades, pricing, min_bits, max_bits)

    @classmethod
    def from_config(cls, config: RunConfig, model: nn.Module, input_shape: tuple[int, ...]) -> Scheme:
        return cls(model, input_shape, layers=config.layers, decades=config.decades, pricing=pricing_of(config),
                   min_bits=config.min_bits, max_bits=config.max_bits, global_keep=config.global_keep)

    def _genes(self) -> list[str]:
        bits = [f"{layer.name}.bits" for layer in self.layers]
        if self.global_keep:
            return ["keep", *bits]
        return [f"{layer.name}.{gene}" for layer in self.layers for gene in ("keep", "bits")]

    def _shape_hint(self) -> str:
        if self.global_keep:
            return f" (1 kept fraction, then 1 bit width for each of {len(self.layers)} layers)"
        return f" (2 genes for each of {len(self.layers)} layers)"

    def _settings(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.global_keep:
            keep = np.repeat(X[:, :1], len(self.layers), axis=1)
            return self.kept_count(keep), self.bit_width(X[:, 1:])
        return self.kept_count(X[:, 0::2]), self.bit_width(X[:, 1::2])

    def _describe(self) -> dict:
        return {**super()._describe(), "global_keep": self.global_keep}
