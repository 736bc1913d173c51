"""Compressed layers that store only what they keep: W ~ U V^T + S, with S as values plus flat indices.

Neurocomputing 378 (2020) style: a truncated SVD at rank ``r`` plus a sparse residual of the largest-magnitude
entries. Only ``U``, ``V``, the kept values of ``S`` and the bias are parameters; the indices are an int32 buffer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LowRankSparse(nn.Module):
    """Shared storage and bookkeeping of the compressed ``Linear`` and ``Conv2d``.

    ``u``: `rows x r`, ``v``: `r x cols`, ``values``: `nnz`, ``indices``: `nnz` flat positions in `rows x cols`.
    """

    def __init__(self, u: torch.Tensor, v: torch.Tensor, values: torch.Tensor, indices: torch.Tensor,
                 bias: torch.Tensor | None) -> None:
        super().__init__()
        self.rows, self.cols = u.shape[0], v.shape[1]
        self.u = nn.Parameter(u.clone())
        self.v = nn.Parameter(v.clone())
        self.values = nn.Parameter(values.clone())
        self.register_buffer("indices", indices.to(torch.int32).clone())
        self.bias = nn.Parameter(bias.clone()) if bias is not None else None

    @property
    def rank(self) -> int:
        return self.u.shape[1]

    @property
    def nnz(self) -> int:
        return self.values.numel()

    def sparse_matrix(self) -> torch.Tensor:
        """S as a dense `rows x cols` tensor (differentiable in ``values``)."""
        flat = self.values.new_zeros(self.rows * self.cols)
        return flat.index_put((self.indices.long(),), self.values).view(self.rows, self.cols)

    def dense_matrix(self) -> torch.Tensor:
        """The effective weight U V^T + S as `rows x cols`: what a later re-compression starts from."""
        return self.u @ self.v + self.sparse_matrix()

    def macs_per_position(self) -> int:
        """Multiply-accumulates per output position, counted from what is stored."""
        return self.rank * (self.rows + self.cols) + self.nnz


class LowRankSparseLinear(LowRankSparse):
    """``y = x V^T U^T + x S^T + b``; with rank 0 it is a magnitude-pruned layer, with nnz 0 a low-rank one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = (x @ self.v.t()) @ self.u.t() if self.rank else x.new_zeros(*x.shape[:-1], self.rows)
        if self.nnz:
            # S is materialised for the product: at these sizes faster on CPU than torch.sparse, and autograd
            # reaches the values. Storage and MACs are still counted from the nnz stored entries.
            out = out + x @ self.sparse_matrix().t()
        return out + self.bias if self.bias is not None else out

    def dense_weight(self) -> torch.Tensor:
        return self.dense_matrix()


class LowRankSparseConv2d(LowRankSparse):
    """A ``k x k`` convolution to ``r`` channels, then a ``1 x 1`` convolution to ``C_out``, plus a sparse conv."""

    def __init__(self, u, v, values, indices, bias, in_channels: int, kernel_size: tuple[int, int],
                 stride, padding, dilation) -> None:
        super().__init__(u, v, values, indices, bias)
        self.in_channels, self.kernel_size = in_channels, tuple(kernel_size)
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def _conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, weight, None, self.stride, self.padding, self.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (self.in_channels, *self.kernel_size)
        out = None
        if self.rank:
            out = F.conv2d(self._conv(x, self.v.view(self.rank, *shape)), self.u.view(self.rows, self.rank, 1, 1))
        if self.nnz:
            sparse = self._conv(x, self.sparse_matrix().view(self.rows, *shape))
            out = sparse if out is None else out + sparse
        if out is None:  # nothing kept: the output is the bias alone, at the right spatial size
            out = self._conv(x, x.new_zeros(self.rows, *shape))
        return out + self.bias.view(1, -1, 1, 1) if self.bias is not None else out

    def dense_weight(self) -> torch.Tensor:
        return self.dense_matrix().view(self.rows, self.in_channels, *self.kernel_size)
