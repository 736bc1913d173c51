"""Exact costs: counted from the genome without building anything, and measured from a built module.

Both count parameters (trainable values), stored bytes (parameters plus int32 indices, float32 values) and
multiply-accumulates (MACs) of ``Linear`` and ``Conv2d`` work per sample; pooling and activations are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from surrogate_emo.compress.layers import LowRankSparse
from surrogate_emo.compress.pricing import Pricing, price_model
from surrogate_emo.space import CompressionSpace, LayerSetting, LayerSpec

VALUE_BYTES = 4  # float32
INDEX_BYTES = 4  # int32 flat index of a kept residual entry


@dataclass(frozen=True)
class Costs:
    """Exact costs of one model. ``energy`` is the accelerator model's total (`surrogate_emo.compress.pricing`),
    ``None`` where the model's layers are not priced by it (low rank + sparse)."""

    params: int
    bytes: int
    macs: int
    energy: float | None = None

    def __add__(self, other: Costs) -> Costs:
        energy = None if self.energy is None or other.energy is None else self.energy + other.energy
        return Costs(self.params + other.params, self.bytes + other.bytes, self.macs + other.macs, energy)

    def __sub__(self, other: Costs) -> Costs:
        energy = None if self.energy is None or other.energy is None else self.energy - other.energy
        return Costs(self.params - other.params, self.bytes - other.bytes, self.macs - other.macs, energy)


def sum_energy(energies) -> float:
    """Layer energies summed left to right from 0.0: the one order both a genome's costs and a built model's use,
    so that the two agree to the last bit."""
    total = 0.0
    for energy in energies:
        total += energy
    return total


def dense_layer_costs(spec: LayerSpec) -> Costs:
    params = spec.numel + (spec.rows if spec.has_bias else 0)
    return Costs(params, params * VALUE_BYTES, spec.numel * spec.out_positions)


def compressed_layer_costs(spec: LayerSpec, setting: LayerSetting) -> Costs:
    """U (`rows x r`), V (`r x cols`), nnz values and indices, bias; MACs r(rows+cols)+nnz per output position."""
    params = setting.rank * (spec.rows + spec.cols) + setting.nnz + (spec.rows if spec.has_bias else 0)
    macs = (setting.rank * (spec.rows + spec.cols) + setting.nnz) * spec.out_positions
    return Costs(params, params * VALUE_BYTES + setting.nnz * INDEX_BYTES, macs)


class CostModel:
    """Costs of any genome of ``space`` for one model, exact and cheap: the cheap objectives of the search.

    Example:
        >>> from surrogate_emo.models import mlp
        >>> base = mlp((1, 8, 8), 10)
        >>> costs = CostModel(CompressionSpace.from_model(base, (1, 8, 8)), measure(base, (1, 8, 8)))
        >>> costs.dense.params, costs.of([0.0] * 6).params  # only the biases survive an all-zero genome
        (50826, 394)
    """

    def __init__(self, space: CompressionSpace, dense: Costs) -> None:
        self.space = space
        self.dense = dense
        # what the model holds outside the compressed layers (other layers, normalisation, ...)
        self._rest = dense
        for spec in space.layers:
            self._rest = self._rest - dense_layer_costs(spec)

    def of(self, genome) -> Costs:
        total = self._rest
        for spec, setting in zip(self.space.layers, self.space.decode(genome)):
            total = total + compressed_layer_costs(spec, setting)
        return total

    def ratios(self, genome) -> dict[str, float]:
        """Compressed / dense for params, bytes and MACs (below 1 means smaller); the cheap objectives."""
        costs = self.of(genome)
        return {"params": costs.params / self.dense.params, "bytes": costs.bytes / self.dense.bytes,
                "macs": costs.macs / self.dense.macs}

    def ratio_matrix(self, X: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
        """The same ratios for many genomes at once, `n x len(names)`: what the acquisition computes exactly.

        Raises:
            SearchSpaceError: a gene is NaN, infinite or outside `[0, 1]`, or ``X`` is not `n x d`.
        """
        totals = self.cost_matrix(self.space.validate_matrix(X))
        return np.stack([totals[name] / getattr(self.dense, name) for name in names], axis=1)

    def cost_matrix(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Params, bytes and MACs of many genomes `n x 2L` at once (assumed valid: no checks), each of length `n`."""
        ranks, nnz = self.space.decode_matrix(X)
        rows = np.array([spec.rows for spec in self.space.layers])
        cols = np.array([spec.cols for spec in self.space.layers])
        positions = np.array([spec.out_positions for spec in self.space.layers])
        bias = np.array([spec.rows if spec.has_bias else 0 for spec in self.space.layers])
        stored = ranks * (rows + cols) + nnz
        return {"params": self._rest.params + (stored + bias).sum(axis=1),
                "bytes": self._rest.bytes + VALUE_BYTES * (stored + bias).sum(axis=1) + INDEX_BYTES * nnz.sum(axis=1),
                "macs": self._rest.macs + (stored * positions).sum(axis=1)}


def measure(model: nn.Module, input_shape: tuple[int, ...], pricing: Pricing | None = None) -> Costs:
    """Count what a built model stores and computes: parameters, bytes, and MACs of one forward pass.

    Without ``pricing``: state-dict bytes (float32 values, int32 indices) and no energy, as the low-rank + sparse
    scheme counts. With it: every ``Linear``/``Conv2d``-like layer priced by `surrogate_emo.compress.pricing` (its
    coding, non-zero MACs, energy summed in module order) and the rest of the state dict as stored.
    """
    if pricing is not None:
        priced = price_model(model, input_shape, pricing)
        layers = list(priced.layers.values())
        return Costs(priced.rest_params + sum(layer.params for layer in layers),
                     priced.rest_bytes + sum(layer.bytes for layer in layers),
                     sum(layer.macs for layer in layers), sum_energy(layer.energy for layer in layers))
    params = sum(p.numel() for p in model.parameters())
    stored = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    macs = 0

    def count(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal macs
        positions = output[0, 0].numel()  # output pixels per sample; 1 for a Linear
        if isinstance(module, LowRankSparse):
            macs += module.macs_per_position() * positions
        elif isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features
        elif isinstance(module, nn.Conv2d):
            macs += module.weight.numel() * positions

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (LowRankSparse, nn.Linear, nn.Conv2d))]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)  # the caller's model is left as it came
        for hook in hooks:
            hook.remove()
    return Costs(params, stored, macs)
