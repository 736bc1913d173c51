"""Low rank plus sparse: per layer a truncated SVD ``U V`` and the largest-magnitude entries of the residual.

The genome, its decoding (`surrogate_emo.space.CompressionSpace`), the operator
(`surrogate_emo.compress.operator`) and the exact costs (`surrogate_emo.compress.costs.CostModel`) are those
modules' own; this class puts them behind the `Scheme` interface.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from surrogate_emo.compress.costs import CostModel, Costs
from surrogate_emo.compress.operator import replace_layers
from surrogate_emo.schemes.base import Scheme
from surrogate_emo.space import CompressionSpace, LayerSetting, genes_for_fraction


class LowRankSparseScheme(Scheme):
    """Two genes per layer: the rank (``<layer>.rank``) and the kept residual entries (``<layer>.density``), each a
    log-scale keep fraction (see `surrogate_emo.space`).

    Example:
        >>> from surrogate_emo.models import mlp
        >>> base = mlp((1, 8, 8), 10)
        >>> scheme = LowRankSparseScheme(base, (1, 8, 8))
        >>> scheme.dim, scheme.decode([1.0] * scheme.dim)[0]
        (6, LayerSetting(rank=64, nnz=16384))
        >>> scheme.costs([0.0] * scheme.dim).params  # only the biases survive an all-zero genome
        394
    """

    name = "lowrank-sparse"
    counts_energy = False  # the energy model prices pruned and quantised layers, not factored ones

    def _setup(self) -> None:
        self.space = CompressionSpace(self.layers, self.decades)
        self.cost_model = CostModel(self.space, self.dense)

    def _genes(self) -> list[str]:
        return self.space.gene_names

    def _shape_hint(self) -> str:
        return f" (2 genes for each of {len(self.layers)} layers)"

    def _decode(self, genome: np.ndarray) -> list[LayerSetting]:
        return self.space.decode(genome)

    def _compress(self, model: nn.Module, genome: np.ndarray) -> nn.Module:
        return replace_layers(model, self.layers, self.space.decode(genome))

    def _costs(self, genome: np.ndarray) -> Costs:
        return self.cost_model.of(genome)

    def _cost_matrix(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return self.cost_model.cost_matrix(X)

    def _shares(self, genome: np.ndarray) -> np.ndarray:
        return self.space.keep_fraction(genome)

    def _from_shares(self, shares: np.ndarray) -> np.ndarray:
        return genes_for_fraction(shares, self.decades)

    def _holds(self, cached: np.ndarray, genome: np.ndarray) -> np.ndarray:
        """Every layer keeps at least ``genome``'s rank and residual entries."""
        ranks, nnz = self.space.decode_matrix(genome[None, :])
        cached_ranks, cached_nnz = self.space.decode_matrix(cached)
        return ((cached_ranks >= ranks) & (cached_nnz >= nnz)).all(axis=1)

    def _layer_columns(self, genome: np.ndarray) -> dict:
        row = {}
        for spec, setting in zip(self.layers, self.space.decode(genome)):
            row[f"{spec.name}.rank"] = setting.rank
            row[f"{spec.name}.nnz"] = setting.nnz
        return row

    def _describe(self) -> dict:
        return self.space.describe()
