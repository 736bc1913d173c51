"""The compression-scheme interface: genes per layer <-> settings, a smaller ``nn.Module``, exact costs.

A scheme owns its genes (names, unit-cube encoding, decoding to per-layer settings, validation), builds a new
compressed ``nn.Module`` from the dense base model or from an already compressed model of the same scheme (warm
starts; the input is never modified), and computes the exact costs of a genome without building anything.

The public methods do the bookkeeping once, here (validation, copying the input model, dividing by the dense
costs); a scheme implements the underscore hooks.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from torch import nn

from surrogate_emo.compress.costs import Costs, measure
from surrogate_emo.compress.pricing import Pricing
from surrogate_emo.errors import ConfigError
from surrogate_emo.space import LayerSpec, check_genome, check_genomes, find_layers

if TYPE_CHECKING:
    from surrogate_emo.config import RunConfig

COST_NAMES = ("params", "bytes", "macs", "energy")


class Scheme(ABC):
    """A compression scheme for one dense model: genomes `n x d` in the unit cube, decoded per compressed layer.

    Args:
        model: the dense base model (read once here: its compressible layers and dense costs; never modified).
        input_shape: shape of one input sample, without the batch dimension.
        layers: names of the ``Linear``/``Conv2d`` layers to compress (default: all of them).
        decades: decades spanned by a log-scale gene (the keep fraction ``(10**(D*g) - 1) / (10**D - 1)``).

    Example:
        >>> from surrogate_emo.models import mlp
        >>> from surrogate_emo.schemes import LowRankSparseScheme
        >>> base = mlp((1, 8, 8), 10)
        >>> scheme = LowRankSparseScheme(base, (1, 8, 8))
        >>> small = scheme.compress(base, [0.5] * scheme.dim)
        >>> scheme.costs([0.5] * scheme.dim) == measure(small, (1, 8, 8))
        True
    """

    name: ClassVar[str] = ""
    counts_energy: ClassVar[bool] = True
    """Whether the accelerator energy model prices this scheme's layers (the ``energy`` objective)."""
    pricing: Pricing | None = None
    """How layers are priced (coding, energy); ``None``: parameters and state-dict bytes, no energy (low rank)."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], layers: list[str] | None = None,
                 decades: float = 3.0) -> None:
        if not decades > 0:
            raise ConfigError(f"decades must be a positive number, got {decades!r}")
        self.input_shape = tuple(input_shape)
        self.decades = float(decades)
        self.layers: list[LayerSpec] = find_layers(model, self.input_shape, layers)
        if not self.layers:
            raise ConfigError("a compression scheme needs at least one Linear or Conv2d layer, got none")
        self.dense: Costs = measure(model, self.input_shape, self.pricing)
        self._setup()
        self._gene_names = list(self._genes())

    @classmethod
    def from_config(cls, config: RunConfig, model: nn.Module, input_shape: tuple[int, ...]) -> Scheme:
        """The scheme a run configuration asks for (its ``layers`` and ``decades``)."""
        return cls(model, input_shape, layers=config.layers, decades=config.decades)

    # ---- genes -------------------------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Number of genes `d`."""
        return len(self._gene_names)

    @property
    def gene_names(self) -> list[str]:
        """One name per gene, ``<layer>.<gene>``."""
        return list(self._gene_names)

    @property
    def layer_names(self) -> list[str]:
        """Names of the compressed layers, in gene order."""
        return [layer.name for layer in self.layers]

    def validate(self, genome) -> np.ndarray:
        """Return ``genome`` as a float64 vector of length `d`, or raise `SearchSpaceError` naming the bad genes."""
        return check_genome(genome, self._gene_names, self._shape_hint())

    def validate_matrix(self, X) -> np.ndarray:
        """Return genomes ``X`` as a float64 matrix `n x d`, or raise `SearchSpaceError` naming the first bad
        genome and its bad genes."""
        return check_genomes(X, self._gene_names, self._shape_hint())

    def decode(self, genome) -> list:
        """The per-layer settings ``genome`` asks for, one per compressed layer."""
        return self._decode(self.validate(genome))

    def structure_keys(self, X) -> list[str]:
        """One key per genome of ``X`` (`n x d`): the settings it decodes to. Genomes with the same key build the same
        model (same ranks, kept counts, bits), so a search never needs to evaluate a key twice."""
        return [repr(self._decode(genome)) for genome in self.validate_matrix(X)]

    # ---- building ----------------------------------------------------------------------------------------------

    def compress(self, model: nn.Module, genome) -> nn.Module:
        """A new compressed model of ``genome`` built from ``model``: the dense base model, or a model this scheme
        compressed before (warm start). ``model`` is never modified."""
        return self._compress(copy.deepcopy(model), self.validate(genome))

    # ---- costs -------------------------------------------------------------------------------------------------

    def costs(self, genome) -> Costs:
        """Exact parameters, stored bytes and MACs of ``genome``'s model, counted without building it."""
        return self._costs(self.validate(genome))

    @property
    def cost_names(self) -> tuple[str, ...]:
        """The costs this scheme counts: params, bytes and MACs, and energy where its layers are priced by the
        accelerator model (`surrogate_emo.compress.pricing`)."""
        return COST_NAMES if self.dense.energy is not None else COST_NAMES[:3]

    def ratios(self, genome) -> dict[str, float]:
        """Compressed / dense for each of `cost_names` (below 1 means smaller); the cheap objectives."""
        costs = self.costs(genome)
        return {name: getattr(costs, name) / getattr(self.dense, name) for name in self.cost_names}

    def ratio_matrix(self, X, names: tuple[str, ...]) -> np.ndarray:
        """The same ratios for many genomes at once, `n x len(names)`: what the acquisition computes exactly.

        Raises:
            SearchSpaceError: a gene is NaN, infinite or outside `[0, 1]`, or ``X`` is not `n x d`.
        """
        missing = [name for name in names if name not in self.cost_names]
        if missing:
            raise ConfigError(f"the {self.name or type(self).__name__} scheme does not count {missing}; it counts "
                              f"{list(self.cost_names)}")
        totals = self._cost_matrix(self.validate_matrix(X))
        return np.stack([totals[name] / getattr(self.dense, name) for name in names], axis=1)

    # ---- warm starts, reports ----------------------------------------------------------------------------------

    def holds(self, cached, genome) -> np.ndarray:
        """Which of the ``cached`` genomes (`n x d`) build models whose structure contains ``genome``'s, so that
        re-compressing them to ``genome`` loses nothing ``genome`` keeps: a boolean vector of length `n`."""
        vector = self.validate(genome)
        matrix = self.validate_matrix(np.asarray(cached, dtype=np.float64).reshape(-1, self.dim))
        return np.asarray(self._holds(matrix, vector), dtype=bool)

    def layer_columns(self, genome) -> dict:
        """Columns of one evaluation for ``evaluations.csv``: ``gene:<name>`` then the decoded per-layer settings."""
        vector = self.validate(genome)
        row = {f"gene:{name}": round(float(g), 6) for name, g in zip(self._gene_names, vector)}
        return {**row, **self._layer_columns(vector)}

    def describe(self) -> dict:
        """A JSON-able summary, stored with every study."""
        return self._describe()

    # ---- gradual compression -----------------------------------------------------------------------------------

    def toward(self, genome, done: float) -> np.ndarray:
        """The genome a gradual compression to ``genome`` has reached at ``done`` (0 to 1) of its schedule: each
        gene's kept share ``s`` (weights, rank, channels, bit levels: `_shares`) on Zhu and Gupta's cubic
        ``s_f + (1 - s_f) (1 - done)^3``, from 1 at the start to the genome's own at the end, where it is the
        genome itself (`surrogate_emo.schedule`)."""
        vector = self.validate(genome)
        if done >= 1.0:
            return vector
        from surrogate_emo.schedule import cubic_share

        shares = self._shares(vector)
        return np.clip(self._from_shares(cubic_share(shares, done)), 0.0, 1.0)

    def _shares(self, genome: np.ndarray) -> np.ndarray:
        """What share of its layer's quantity each gene keeps, in [0, 1] (default: the gene itself)."""
        return genome.copy()

    def _from_shares(self, shares: np.ndarray) -> np.ndarray:
        """The genes that keep ``shares`` (the inverse of `_shares`)."""
        return shares.copy()

    # ---- fine-tuning -------------------------------------------------------------------------------------------

    def during_finetune(self, model: nn.Module, genome: np.ndarray, step: int) -> None:
        """Called after each fine-tuning step ``step`` (from 1) of a model compressed to ``genome`` (default:
        nothing; masks that move during training hook in here)."""

    def after_finetune(self, model: nn.Module, genome: np.ndarray) -> None:
        """Called once the fine-tune of ``genome``'s model is over, before it is scored (default: nothing)."""

    # ---- hooks -------------------------------------------------------------------------------------------------

    def _setup(self) -> None:
        """Build what the hooks need from ``self.layers``, ``self.decades`` and ``self.dense`` (optional)."""

    def _shape_hint(self) -> str:
        """Explains the genome length in shape errors, e.g. `` (2 genes for each of 3 layers)``."""
        return f" ({self.dim} genes for {len(self.layers)} layers)"

    @abstractmethod
    def _genes(self) -> list[str]:
        """The gene names, in genome order."""

    @abstractmethod
    def _decode(self, genome: np.ndarray) -> list:
        """Per-layer settings of a valid genome."""

    @abstractmethod
    def _compress(self, model: nn.Module, genome: np.ndarray) -> nn.Module:
        """Compress ``model`` (a private copy: modify it freely) to a valid genome and return the result."""

    @abstractmethod
    def _costs(self, genome: np.ndarray) -> Costs:
        """Exact costs of a valid genome."""

    def _cost_matrix(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Totals per cost name, each of length `n`, for valid genomes `n x d`; override to vectorise."""
        rows = [self._costs(genome) for genome in X]
        return {name: np.array([getattr(costs, name) for costs in rows],
                               dtype=np.float64 if name == "energy" else np.int64) for name in self.cost_names}

    def _holds(self, cached: np.ndarray, genome: np.ndarray) -> np.ndarray:
        """Structure containment for warm starts; without it a scheme has no warm starts."""
        raise NotImplementedError(f"{type(self).__name__} does not say which structures contain others "
                                  "(no warm starts)")

    def _layer_columns(self, genome: np.ndarray) -> dict:
        """Per-layer columns of a valid genome (default: none)."""
        return {}

    def _describe(self) -> dict:
        return {"decades": self.decades, "layers": [layer.__dict__ for layer in self.layers]}
