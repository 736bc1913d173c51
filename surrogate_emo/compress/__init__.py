"""Compression operators and their exact costs."""

from surrogate_emo.compress.costs import CostModel, Costs, measure
from surrogate_emo.compress.layers import LowRankSparse, LowRankSparseConv2d, LowRankSparseLinear
from surrogate_emo.compress.operator import compress_layer, compress_model, decompose

__all__ = ["CostModel", "Costs", "measure", "LowRankSparse", "LowRankSparseConv2d", "LowRankSparseLinear",
           "compress_layer", "compress_model", "decompose"]
