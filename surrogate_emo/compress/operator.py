"""Genome -> a new, smaller ``nn.Module``: truncated SVD plus the largest-magnitude residual entries per layer."""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict

import torch
from torch import nn

from surrogate_emo.compress.layers import LowRankSparse, LowRankSparseConv2d, LowRankSparseLinear
from surrogate_emo.errors import ConfigError
from surrogate_emo.space import CompressionSpace, LayerSetting, LayerSpec
from surrogate_emo.surgery import replace_layer


_SVD_MEMO: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = OrderedDict()
_SVD_MEMO_SIZE = 32  # distinct matrices; the dense base's layers are decomposed again for every candidate


def _svd(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.linalg.svd(w)`` of a float64 matrix, remembered by the matrix's bytes: screening a pool compresses the
    same dense layer hundreds of times, and its SVD is most of the cost (50 of 63 ms for LeNet-300-100)."""
    key = (tuple(w.shape), hashlib.sha1(w.contiguous().numpy().tobytes()).digest())
    if key in _SVD_MEMO:
        _SVD_MEMO.move_to_end(key)
        return _SVD_MEMO[key]
    factors = torch.linalg.svd(w, full_matrices=False)
    _SVD_MEMO[key] = factors
    if len(_SVD_MEMO) > _SVD_MEMO_SIZE:
        _SVD_MEMO.popitem(last=False)
    return factors


@torch.no_grad()
def decompose(weight: torch.Tensor, rank: int, nnz: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split a `rows x cols` matrix into ``U`` (`rows x r`), ``V`` (`r x cols`) and the ``nnz`` largest entries of
    the residual ``W - U V`` (values, flat indices). The singular values are shared evenly between the factors."""
    w = weight.detach().to(torch.float64)
    if rank:
        left, singular, right = (factor.to(w.device) for factor in _svd(w.cpu()))
        root = singular[:rank].sqrt()
        u, v = left[:, :rank] * root, root[:, None] * right[:rank]
        residual = w - u @ v
    else:
        u, v = w.new_zeros(w.shape[0], 0), w.new_zeros(0, w.shape[1])
        residual = w
    indices = torch.topk(residual.flatten().abs(), nnz, sorted=False).indices if nnz else torch.zeros(0, dtype=torch.long)
    indices = indices.sort().values
    values = residual.flatten()[indices]
    dtype = weight.dtype
    return u.to(dtype), v.to(dtype), values.to(dtype), indices


def dense_weight(layer: nn.Module) -> torch.Tensor:
    """The weight a layer computes with, whether it is a plain layer or an already compressed one."""
    return layer.dense_weight() if isinstance(layer, LowRankSparse) else layer.weight


def compress_layer(layer: nn.Module, setting: LayerSetting) -> LowRankSparse:
    """Compress one ``Linear``/``Conv2d``, or re-compress an already compressed one, to ``setting``."""
    weight = dense_weight(layer).detach()
    bias = layer.bias.detach() if layer.bias is not None else None
    rows = weight.shape[0]
    u, v, values, indices = decompose(weight.reshape(rows, -1), setting.rank, setting.nnz)
    if isinstance(layer, (nn.Conv2d, LowRankSparseConv2d)):
        if isinstance(layer, nn.Conv2d) and layer.padding_mode != "zeros":
            raise ConfigError(f"padding_mode={layer.padding_mode!r} is not supported; only 'zeros'")
        return LowRankSparseConv2d(u, v, values, indices, bias, weight.shape[1], tuple(weight.shape[2:]),
                                   layer.stride, layer.padding, layer.dilation)
    return LowRankSparseLinear(u, v, values, indices, bias)


def compress_model(model: nn.Module, space: CompressionSpace, genome) -> nn.Module:
    """Return a compressed copy of ``model`` (never modified) with each layer of ``space`` set as ``genome`` asks.

    ``model`` may itself be a compressed model of the same structure (warm start): each layer is then
    re-compressed from its effective weight ``U V^T + S``.

    Example:
        >>> from surrogate_emo.models import mlp
        >>> base = mlp((1, 8, 8), 10)
        >>> space = CompressionSpace.from_model(base, (1, 8, 8))
        >>> small = compress_model(base, space, [0.5] * space.dim)
        >>> sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in base.parameters())
        True
    """
    settings = space.decode(genome)
    return replace_layers(copy.deepcopy(model), space.layers, settings)


def replace_layers(model: nn.Module, layers: list[LayerSpec], settings: list[LayerSetting]) -> nn.Module:
    """Compress each layer of ``layers`` of ``model`` to its setting, in place; returns ``model``. Callers that must
    not modify their model pass a copy (`compress_model` does)."""
    for spec, setting in zip(layers, settings):
        model = replace_layer(model, spec.name, compress_layer(model.get_submodule(spec.name), setting))
    return model
