"""Structured filter pruning: per layer the kept output channels (``Conv2d``) or neurons (``Linear``), removed
physically, with every layer that depends on them, by Torch-Pruning's dependency graph.

One gene per prunable layer, ``<layer>.channels``: ``max(1, floor(C ** g))`` of its ``C`` output channels are kept,
a log scale from one channel (``g = 0``) to all (``g = 1``). The channels with the smallest importance go, L1 norm
of the layer's own filter by default (`IMPORTANCES`, or a function of the layer of your own). Torch-Pruning
(`torch_pruning.DependencyGraph`) removes them from the layer and from everything that depends on them: the next
layer's inputs (through flattening, pooling, activations), BatchNorm, and layers coupled by a residual sum or a
concatenation, which then share one gene (named after the first of them). The model that comes out is a plain
dense model: smaller on disk and faster on any kernel.

The last ``Linear``/``Conv2d`` (the classifier) keeps its outputs: they are the classes.

Exact costs without building: at construction, one channel of each gene is removed from a copy of the model and
the state-dict shapes that shrink are recorded. Every tensor dimension is then ``dense - sum(removed_g * step_g)``
over the genes ``g`` that shrink it, so any genome's parameters, bytes, MACs and energy are counted from its
channel counts alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from surrogate_emo.compress.costs import Costs, sum_energy
from surrogate_emo.compress.energy import LayerGeometry
from surrogate_emo.compress.pricing import FLOAT_BITS, Pricing, layer_geometries, price_layer
from surrogate_emo.errors import ConfigError
from surrogate_emo.schemes.base import Scheme
from surrogate_emo.schemes.unstructured import pricing_of

if TYPE_CHECKING:
    from surrogate_emo.config import RunConfig


def l1_importance(layer: nn.Module) -> torch.Tensor:
    """L1 norm of each output channel's weights (Li et al., ICLR 2017)."""
    return layer.weight.detach().abs().flatten(1).sum(dim=1)


def l2_importance(layer: nn.Module) -> torch.Tensor:
    """L2 norm of each output channel's weights."""
    return layer.weight.detach().flatten(1).norm(dim=1)


IMPORTANCES: dict[str, Callable[[nn.Module], torch.Tensor]] = {"l1": l1_importance, "l2": l2_importance}


def _torch_pruning():
    import torch_pruning  # imported late: only this scheme needs it

    return torch_pruning


def _out_channel_fn(tp, layer: nn.Module):
    return tp.prune_conv_out_channels if isinstance(layer, nn.Conv2d) else tp.prune_linear_out_channels


class FiltersScheme(Scheme):
    """Kept output channels per layer, removed physically with Torch-Pruning; see the module docstring.

    Args:
        model, input_shape, layers, decades: as `Scheme` (``decades`` is not used: the gene spans one channel to
            all on a log scale).
        pricing: coding and energy settings (the layers stay dense, so the coding is ``dense`` unless forced).
        importance: ``"l1"``, ``"l2"`` or a function ``layer -> scores of its output channels``.

    Example:
        >>> from surrogate_emo.models import mlp
        >>> scheme = FiltersScheme(mlp((1, 8, 8), 10), (1, 8, 8))
        >>> scheme.gene_names, [s for s in scheme.decode([1.0, 0.5])]
        (['1.channels', '3.channels'], [256, 11])
    """

    name = "filters"

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], layers: list[str] | None = None,
                 decades: float = 3.0, pricing: Pricing | None = None,
                 importance: str | Callable[[nn.Module], torch.Tensor] = "l1") -> None:
        if isinstance(importance, str):
            if importance not in IMPORTANCES:
                raise ConfigError(f"unknown importance {importance!r}; known: {', '.join(IMPORTANCES)}, or a function "
                                  "layer -> one score per output channel")
            importance = IMPORTANCES[importance]
        self.importance = importance
        self.pricing = pricing if pricing is not None else Pricing()
        self._base = model
        shape = tuple(input_shape)
        geometries = layer_geometries(model, shape)
        if layers is None:
            layers = list(geometries)[:-1]  # the classifier keeps its outputs
        elif list(geometries)[-1] in layers:
            raise ConfigError(f"layer {list(geometries)[-1]!r} is the classifier: its outputs are the classes and "
                              "cannot be pruned; prunable layers: " + ", ".join(list(geometries)[:-1]))
        self._all_geometries = geometries
        super().__init__(model, shape, layers, decades)

    @classmethod
    def from_config(cls, config: RunConfig, model: nn.Module, input_shape: tuple[int, ...]) -> Scheme:
        return cls(model, input_shape, layers=config.layers, decades=config.decades, pricing=pricing_of(config))

    def _setup(self) -> None:
        tp = _torch_pruning()
        model = copy.deepcopy(self._base).eval()
        example = torch.zeros(1, *self.input_shape)
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
        names = {module: name for name, module in model.named_modules()}
        # genes: one per coupling class of output channels (a residual sum or concatenation couples layers)
        self.genes_of: list[list[str]] = []
        seen: set[str] = set()
        for spec in self.layers:
            if spec.name in seen:
                continue
            layer = model.get_submodule(spec.name)
            group = graph.get_pruning_group(layer, _out_channel_fn(tp, layer), idxs=[0])
            coupled = [names[dep.target.module] for dep, _ in group
                       if dep.target.module in names and names[dep.target.module] in
                       {s.name for s in self.layers} and dep.handler in (tp.prune_conv_out_channels,
                                                                       tp.prune_linear_out_channels)]
            members = list(dict.fromkeys([spec.name, *coupled]))
            seen.update(members)
            self.genes_of.append(members)
        self._channels = np.array([self._all_geometries[m[0]].out_channels for m in self.genes_of], dtype=np.int64)
        if (self._channels < 2).any():
            single = [m[0] for m, c in zip(self.genes_of, self._channels) if c < 2]
            raise ConfigError(f"layers {single} have one output channel: nothing to prune; leave them out of layers")
        # one channel of each gene removed: which state dimensions shrink, by how much
        dense_shapes = {key: tuple(t.shape) for key, t in self._base.state_dict().items()}
        self._dense_shapes = dense_shapes
        self._steps: list[dict[tuple[str, int], int]] = []
        for members in self.genes_of:
            probe = copy.deepcopy(self._base).eval()
            probe_graph = tp.DependencyGraph().build_dependency(probe, example_inputs=example)
            layer = probe.get_submodule(members[0])
            probe_graph.get_pruning_group(layer, _out_channel_fn(tp, layer), idxs=[0]).prune()
            steps = {}
            for key, tensor in probe.state_dict().items():
                for dim, (before, after) in enumerate(zip(dense_shapes[key], tensor.shape)):
                    if before != after:
                        steps[(key, dim)] = before - after
            self._steps.append(steps)
        self._params = {key for key, _ in self._base.named_parameters()}
        self._itemsize = {key: t.element_size() for key, t in self._base.state_dict().items()}
        self._weights = {name: f"{name}.weight" if name else "weight" for name in self._all_geometries}
        self._bias = {name: self._base.get_submodule(name).bias is not None for name in self._all_geometries}

    # ---- genes -------------------------------------------------------------------------------------------------

    def _genes(self) -> list[str]:
        return [f"{members[0]}.channels" for members in self.genes_of]

    def _shape_hint(self) -> str:
        return f" (1 gene for each of {len(self.genes_of)} prunable layers or coupled groups)"

    def kept_channels(self, X: np.ndarray) -> np.ndarray:
        """Kept output channels per gene, `n x genes`: ``max(1, floor(C ** g))``."""
        kept = np.floor(np.power(self._channels.astype(np.float64), X) + 1e-9).astype(np.int64)
        return np.clip(kept, 1, self._channels)

    def _shares(self, genome: np.ndarray) -> np.ndarray:
        return np.power(self._channels.astype(np.float64), genome) / self._channels

    def _from_shares(self, shares: np.ndarray) -> np.ndarray:
        return 1.0 + np.log(np.maximum(shares, 1.0 / self._channels)) / np.log(self._channels)

    def _decode(self, genome: np.ndarray) -> list[int]:
        return [int(k) for k in self.kept_channels(genome[None, :])[0]]

    # ---- building ----------------------------------------------------------------------------------------------

    def _compress(self, model: nn.Module, genome: np.ndarray) -> nn.Module:
        tp = _torch_pruning()
        model.eval()
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, *self.input_shape))
        for members, kept in zip(self.genes_of, self._decode(genome)):
            layer = model.get_submodule(members[0])
            scores = self.importance(layer)
            if scores.shape != (layer.weight.shape[0],):
                raise ConfigError(f"importance of layer {members[0]!r} must give one score per output channel "
                                  f"({layer.weight.shape[0]}), got shape {tuple(scores.shape)}")
            drop = layer.weight.shape[0] - kept
            if drop > 0:
                # stable: among equal scores the later channel goes, so ties resolve the same way every run
                order = np.argsort(scores.cpu().numpy(), kind="stable")
                graph.get_pruning_group(layer, _out_channel_fn(tp, layer), idxs=sorted(order[:drop].tolist())).prune()
        return model

    # ---- costs -------------------------------------------------------------------------------------------------

    def _shapes(self, kept: np.ndarray) -> dict[str, tuple[int, ...]]:
        removed = self._channels - kept
        shapes = {key: list(shape) for key, shape in self._dense_shapes.items()}
        for gene, steps in enumerate(self._steps):
            for (key, dim), step in steps.items():
                shapes[key][dim] -= int(removed[gene]) * step
        return {key: tuple(shape) for key, shape in shapes.items()}

    def _costs(self, genome: np.ndarray) -> Costs:
        shapes = self._shapes(self.kept_channels(genome[None, :])[0])
        priced = set()
        prices = []
        for name, dense in self._all_geometries.items():
            weight = shapes[self._weights[name]]
            if dense.kind == "conv":
                geometry = LayerGeometry.conv(weight[1] * dense.groups, weight[0], dense.kernel, dense.output,
                                              dense.groups)
            else:
                geometry = LayerGeometry.linear(weight[1], weight[0])
            prices.append(price_layer(geometry, geometry.weights, FLOAT_BITS, self._bias[name], self.pricing,
                                      fillers=0))
            prefix = f"{name}." if name else ""
            priced.update(prefix + key for key in ("weight", "bias"))
        size = {key: int(np.prod(shape)) for key, shape in shapes.items()}
        rest_params = sum(size[key] for key in self._params if key not in priced)
        rest_bytes = sum(size[key] * self._itemsize[key] for key in size if key not in priced)
        return Costs(rest_params + sum(p.params for p in prices), rest_bytes + sum(p.bytes for p in prices),
                     sum(p.macs for p in prices), sum_energy(p.energy for p in prices))

    # ---- warm starts, reports ----------------------------------------------------------------------------------

    def _holds(self, cached: np.ndarray, genome: np.ndarray) -> np.ndarray:
        """A model keeping at least as many channels in every gene holds the genome (the rest are pruned from it)."""
        return (self.kept_channels(cached) >= self.kept_channels(genome[None, :])).all(axis=1)

    def _layer_columns(self, genome: np.ndarray) -> dict:
        return {f"{members[0]}.channels": kept for members, kept in zip(self.genes_of, self._decode(genome))}

    def _describe(self) -> dict:
        return {"layers": [layer.__dict__ for layer in self.layers], "genes": self.genes_of,
                "pricing": self.pricing.describe(), "importance": getattr(self.importance, "__name__", "custom")}
