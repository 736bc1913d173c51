"""The genome: two genes per compressible layer, in the unit cube, and their decoding to ranks and kept entries.

Encoding. Each layer ``l`` with weight matrix ``m x n`` (a ``Conv2d`` is read as ``C_out x C_in*k*k``) has
two genes ``g`` in ``[0, 1]``:

- rank gene: rank ``r = floor(f(g) * min(m, n))``;
- density gene: kept residual entries ``nnz = floor(f(g) * m * n)``;

with the keep fraction ``f(g) = (10**(D*g) - 1) / (10**D - 1)`` and ``D = decades`` (3 by default).
``f`` is logarithmic over the top ``D`` decades (``g = 2/3`` keeps about 10%, ``g = 1/3`` about 1%) and reaches
exactly 0 at ``g = 0``, so pure magnitude pruning (rank 0) and pure low rank (density 0) are both in the space.
A linear gene would spend most of the search on barely compressed models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from surrogate_emo.errors import ConfigError, SearchSpaceError
from surrogate_emo.surgery import compressible_layers, named_layers


@dataclass(frozen=True)
class LayerSpec:
    """Shape facts of one compressible layer, enough to count its costs without building anything.

    ``out_positions`` is the number of output pixels per sample (1 for ``Linear``).
    """

    name: str
    kind: str  # "linear" or "conv2d"
    rows: int  # output features or channels
    cols: int  # input features, or in_channels * k * k
    has_bias: bool
    out_positions: int = 1

    @property
    def max_rank(self) -> int:
        return min(self.rows, self.cols)

    @property
    def numel(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class LayerSetting:
    """What the genome asks of one layer: truncated-SVD rank and number of kept residual entries."""

    rank: int
    nnz: int


def keep_fraction(genes, decades: float) -> np.ndarray:
    """``f(g) = (10**(D*g) - 1) / (10**D - 1)``: 0 at 0, 1 at 1, logarithmic over the top ``D`` decades.

    Example:
        >>> keep_fraction(np.array([0.0, 2 / 3, 1.0]), 3.0).round(4).tolist()
        [0.0, 0.0991, 1.0]
    """
    return np.expm1(decades * np.log(10.0) * np.asarray(genes)) / np.expm1(decades * np.log(10.0))


def genes_for_fraction(fractions, decades: float) -> np.ndarray:
    """The genes whose `keep_fraction` is ``fractions`` (its inverse).

    Example:
        >>> genes_for_fraction(keep_fraction(np.array([0.25]), 3.0), 3.0).round(12).tolist()
        [0.25]
    """
    return np.log10(1.0 + np.asarray(fractions) * (10.0**decades - 1.0)) / decades


def find_layers(model: nn.Module, input_shape: tuple[int, ...], layer_names: list[str] | None = None
                ) -> list[LayerSpec]:
    """The ``Linear`` and ``Conv2d`` layers of ``model`` (all, or those named, in that order), found by one dummy
    forward pass of shape ``(1, *input_shape)``; ``model`` is left as it came.

    Raises:
        ConfigError: a named layer is not a ``Linear``/``Conv2d`` of the model, the model rejects the input shape,
            or a convolution is grouped.
    """
    candidates = compressible_layers(model) if layer_names is None else named_layers(model, layer_names)
    out_shapes: dict[str, torch.Size] = {}
    hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: out_shapes.__setitem__(name, out.shape))
             for name, module in candidates.items()]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    except RuntimeError as error:
        raise ConfigError(f"the model does not accept inputs of shape {tuple(input_shape)}: {error}") from error
    finally:
        model.train(was_training)  # the caller's model is left as it came
        for hook in hooks:
            hook.remove()
    specs = []
    for name, module in candidates.items():
        if isinstance(module, nn.Conv2d):
            if module.groups != 1:
                raise ConfigError(f"layer {name!r}: grouped convolutions (groups={module.groups}) are not supported")
            kh, kw = module.kernel_size
            positions = int(np.prod(out_shapes[name][2:]))
            specs.append(LayerSpec(name, "conv2d", module.out_channels, module.in_channels * kh * kw,
                                   module.bias is not None, positions))
        else:
            specs.append(LayerSpec(name, "linear", module.out_features, module.in_features, module.bias is not None))
    return specs


def check_genome(genome, gene_names: list[str], detail: str = "") -> np.ndarray:
    """Return ``genome`` as a float64 vector with one value per name of ``gene_names``, or raise
    `SearchSpaceError` saying what is wrong (``detail`` explains the expected length)."""
    dim = len(gene_names)
    try:
        vector = np.asarray(genome, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise SearchSpaceError(f"a genome must be a vector of {dim} numbers, got {genome!r}") from error
    if vector.shape != (dim,):
        raise SearchSpaceError(f"a genome must have shape ({dim},){detail}, got shape {vector.shape}")
    bad = np.flatnonzero(~np.isfinite(vector) | (vector < 0.0) | (vector > 1.0))
    if bad.size:
        shown = ", ".join(f"{gene_names[i]}={float(vector[i])!r}" for i in bad[:5])
        raise SearchSpaceError(f"genes must be finite numbers in [0, 1], got {shown}")
    return vector


def check_genomes(X, gene_names: list[str], detail: str = "") -> np.ndarray:
    """Return genomes ``X`` as a float64 matrix `n x d` (``d = len(gene_names)``), or raise `SearchSpaceError`
    naming the first bad genome and its bad genes (one vectorised check: cheap enough for every acquisition call)."""
    dim = len(gene_names)
    try:
        matrix = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise SearchSpaceError(f"genomes must be a matrix of numbers n x {dim}, got {X!r}") from error
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise SearchSpaceError(f"genomes must have shape (n, {dim}){detail}, got shape {matrix.shape}")
    bad = ~np.isfinite(matrix) | (matrix < 0.0) | (matrix > 1.0)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        try:
            check_genome(matrix[row], gene_names, detail)
        except SearchSpaceError as error:
            raise SearchSpaceError(f"genome {row}: {error}") from None
    return matrix


class CompressionSpace:
    """Maps genomes `n x 2L` in the unit cube to per-layer settings for the layers of one model.

    Example:
        >>> from surrogate_emo.models import mlp
        >>> space = CompressionSpace.from_model(mlp((1, 8, 8), 10), (1, 8, 8))
        >>> space.dim, space.decode([1.0] * space.dim)[0]
        (6, LayerSetting(rank=64, nnz=16384))
    """

    def __init__(self, layers: list[LayerSpec], decades: float = 3.0) -> None:
        if not layers:
            raise ConfigError("a compression space needs at least one Linear or Conv2d layer, got none")
        if not decades > 0:
            raise ConfigError(f"decades must be positive, got {decades!r}")
        self.layers = list(layers)
        self.decades = float(decades)

    @classmethod
    def from_model(cls, model: nn.Module, input_shape: tuple[int, ...], layer_names: list[str] | None = None,
                   decades: float = 3.0) -> CompressionSpace:
        """Find the ``Linear`` and ``Conv2d`` layers of ``model`` (all, or those named) by one dummy forward pass."""
        return cls(find_layers(model, input_shape, layer_names), decades)

    @property
    def dim(self) -> int:
        return 2 * len(self.layers)

    @property
    def gene_names(self) -> list[str]:
        return [f"{layer.name}.{gene}" for layer in self.layers for gene in ("rank", "density")]

    def keep_fraction(self, genes: np.ndarray) -> np.ndarray:
        """``f(g) = (10**(D*g) - 1) / (10**D - 1)``: 0 at 0, 1 at 1, logarithmic over the top ``D`` decades."""
        return keep_fraction(genes, self.decades)

    def validate(self, genome) -> np.ndarray:
        """Return ``genome`` as a float64 vector of length `2L`, or raise `SearchSpaceError` saying what is wrong."""
        return check_genome(genome, self.gene_names, f" (2 genes for each of {len(self.layers)} layers)")

    def validate_matrix(self, X) -> np.ndarray:
        """Return genomes ``X`` as a float64 matrix `n x 2L`, or raise `SearchSpaceError` naming the first bad
        genome and its bad genes."""
        return check_genomes(X, self.gene_names, f" (2 genes for each of {len(self.layers)} layers)")

    def decode(self, genome) -> list[LayerSetting]:
        """Per-layer rank and kept entries for one genome."""
        ranks, nnz = self.decode_matrix(self.validate(genome)[None, :])
        return [LayerSetting(rank=int(r), nnz=int(k)) for r, k in zip(ranks[0], nnz[0])]

    def decode_matrix(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ranks and kept entries, each `n x L` int64, for genomes `n x 2L` (assumed valid: no checks, for speed)."""
        fractions = self.keep_fraction(np.asarray(X, dtype=np.float64))
        max_rank = np.array([layer.max_rank for layer in self.layers])
        numel = np.array([layer.numel for layer in self.layers])
        # the small epsilon keeps exact products (0.1 * 100) from flooring one below
        ranks = np.floor(fractions[:, 0::2] * max_rank + 1e-9).astype(np.int64)
        nnz = np.floor(fractions[:, 1::2] * numel + 1e-9).astype(np.int64)
        return ranks, nnz

    def describe(self) -> dict:
        """A JSON-able summary, stored with every study."""
        return {"decades": self.decades, "layers": [layer.__dict__ for layer in self.layers]}
