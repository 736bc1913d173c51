"""Weight quantisation per output channel, fine-tuned through a straight-through estimator.

Symmetric uniform quantisation as in EMOMC (IEEE CIM 16(3), 2021): each output channel ``c`` (dim 0 of a weight;
``C_out`` of a `C_out x C_in x kh x kw` convolution) gets the step ``s_c = max|w_c| / (2^(q-1) - 1)`` and its weights
are stored as the integers ``round(w / s_c)`` in ``[-(2^(q-1) - 1), 2^(q-1) - 1]`` (round half to even, torch's
rounding); the layer computes with ``s_c * int``. A channel of zeros gets ``s_c = 0`` and integers 0.

Quantisation-aware fine-tuning keeps the float weight as the parameter and quantises it in every forward pass;
the gradient passes through the rounding unchanged (the straight-through estimator of Bengio, Leonard and
Courville, 2013, as in Jacob et al., CVPR 2018): ``w + (Q(w) - w).detach()``.

What is stored (`QuantLayer.export_state`): the integers (int8 up to 8 bits, int16 above), one float32 scale per
output channel, the bias in float32. Sizes under sparse codings belong to `surrogate_emo.compress.coding`; a layer
hands it the numbers it needs (`QuantLayer.n_weights`, `QuantLayer.bits`, `QuantLayer.out_channels`,
`QuantLayer.kept_mask`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from surrogate_emo.compress.coding import coded_bits
from surrogate_emo.errors import ConfigError
from surrogate_emo.surgery import named_layers, replace_layer

MIN_BITS, MAX_BITS = 2, 16
"""Weight bit widths a layer accepts (2 to 8 is the usual gene range; up to 16 when configured)."""

SCALE_BITS = 32
"""Bits of a stored scale or bias value (float32)."""


def check_bits(bits: int) -> int:
    """``bits`` as a Python int if it is an integer in ``[MIN_BITS, MAX_BITS]``; `ConfigError` otherwise.

    Example:
        >>> check_bits(4)
        4
    """
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(f"bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")
    return int(bits)


def _levels(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(integers as floats, shape of weight; scales, `C_out`)``, computed without autograd in >= float32."""
    if weight.dim() < 1 or weight.shape[0] == 0:
        raise ConfigError("expected a weight with at least one output channel (dim 0), "
                          f"got shape {tuple(weight.shape)}")
    work = weight.detach().to(torch.promote_types(weight.dtype, torch.float32))
    top = 2 ** (bits - 1) - 1
    scale = work.reshape(work.shape[0], -1).abs().amax(dim=1) / top
    shape = (-1,) + (1,) * (work.dim() - 1)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale)).view(shape)  # a zero channel divides by 1: stays 0
    return torch.round(work / safe).clamp_(-top, top), scale


def _int_dtype(bits: int) -> torch.dtype:
    return torch.int8 if bits <= 8 else torch.int16


def quantize_per_channel(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric uniform quantisation of ``weight`` with one scale per output channel (dim 0).

    Args:
        weight: `C_out x ...`, a ``Linear`` (`C_out x C_in`) or ``Conv2d`` (`C_out x C_in x kh x kw`) weight.
        bits: ``q``, an integer in ``[2, 16]``.

    Returns:
        ``(q_int, scale)``: the integers, shape of ``weight``, int8 for ``q <= 8`` and int16 above, in
        ``[-(2^(q-1) - 1), 2^(q-1) - 1]``; the steps ``max|w_c| / (2^(q-1) - 1)``, `C_out`, in the weight's float
        type (at least float32). A channel of zeros has scale 0 and integers 0.

    Example:
        >>> q, s = quantize_per_channel(torch.tensor([[0.9, -0.3, 0.5]]), 2)  # step 0.9: 1, -0.33, 0.56
        >>> q.tolist(), s.tolist()
        ([[1, 0, 1]], [0.8999999761581421])
    """
    bits = check_bits(bits)
    levels, scale = _levels(weight, bits)
    return levels.to(_int_dtype(bits)), scale


def dequantize(q_int: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``scale_c * q_int`` per output channel (dim 0), in the scale's float type.

    Example:
        >>> dequantize(torch.tensor([[1, 0, -1]], dtype=torch.int8), torch.tensor([0.5]))
        tensor([[ 0.5000,  0.0000, -0.5000]])
    """
    return q_int.to(scale.dtype) * scale.view((-1,) + (1,) * (q_int.dim() - 1))


def fake_quantize(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """The dequantised ``weight`` in the forward pass, the identity in the backward pass (straight-through).

    The scales come from the weight as it is now, at every call: while fine-tuning moves the float weights, each
    channel's step ``max|w_c| / (2^(q-1) - 1)`` follows its largest weight, as quantisation-aware fine-tuning with a
    per-channel max does. Neither the rounding nor the scale is differentiated: ``d out / d weight = 1``.

    Example:
        >>> w = torch.tensor([[0.9, -0.3, 0.5]], requires_grad=True)
        >>> out = fake_quantize(w, 2); out.sum().backward()
        >>> out.tolist(), w.grad.tolist()
        ([[0.8999999761581421, 0.0, 0.8999999761581421]], [[1.0, 1.0, 1.0]])
    """
    bits = check_bits(bits)
    levels, scale = _levels(weight, bits)
    quantized = dequantize(levels, scale).to(weight.dtype)
    return weight + (quantized - weight).detach()


class QuantLayer(nn.Module):
    """Shared storage and bookkeeping of `QuantLinear` and `QuantConv2d`.

    ``weight`` (float, fine-tuned) and ``bias`` (float, or None) are the parameters; ``bits`` is fixed at
    construction. The forward pass computes with `fake_quantize` of ``weight``.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, bits: int,
                 mask: torch.Tensor | None = None) -> None:
        super().__init__()
        self.bits = check_bits(bits)
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None
        if mask is not None:  # pruned and quantised: masked weights are zero and get no gradient (a fixed mask)
            if mask.shape != weight.shape:
                raise ConfigError(f"the mask must have the weight's shape {tuple(weight.shape)}, got "
                                  f"{tuple(mask.shape)}")
            self.register_buffer("mask", mask.detach().to(device=weight.device, dtype=torch.bool).clone())
            with torch.no_grad():
                self.weight.masked_fill_(~self.mask, 0.0)
        else:
            self.mask = None

    @property
    def out_channels(self) -> int:
        """``C_out``: the number of scales stored."""
        return self.weight.shape[0]

    @property
    def n_weights(self) -> int:
        """``N``: the weights of the layer, each stored at ``bits`` bits under a dense coding."""
        return self.weight.numel()

    @property
    def bias_count(self) -> int:
        """Bias values stored in float32 (0 without a bias)."""
        return self.bias.numel() if self.bias is not None else 0

    def quantized_weight(self) -> torch.Tensor:
        """The weight the forward pass computes with (straight-through: differentiable in ``weight``)."""
        weight = self.weight if self.mask is None else self.weight * self.mask
        return fake_quantize(weight, self.bits)

    def dense_weight(self) -> torch.Tensor:
        """Same as `quantized_weight`: the weight the layer computes with, in the layout of the dense layer."""
        return self.quantized_weight()

    @torch.no_grad()
    def export_state(self) -> dict[str, torch.Tensor | int | None]:
        """What is stored: ``{"weight": ints, "scale": float32 `C_out`, "bias": float32 or None, "bits": q}``.

        ``weight`` has the dense layer's shape, int8 for ``q <= 8`` and int16 above; ``dequantize(weight, scale)``
        is the weight the forward pass uses.
        """
        q_int, scale = quantize_per_channel(self.weight if self.mask is None else self.weight * self.mask, self.bits)
        bias = self.bias.detach().to(torch.float32).clone() if self.bias is not None else None
        return {"weight": q_int, "scale": scale.to(torch.float32), "bias": bias, "bits": self.bits}

    def kept_mask(self) -> np.ndarray:
        """Flat boolean mask (row-major, `N`) of the weights whose integer is non-zero, for a sparse coding."""
        q_int, _ = quantize_per_channel(self.weight, self.bits)
        return (q_int != 0).flatten().cpu().numpy()

    def structure_mask(self) -> np.ndarray:
        """Flat boolean mask (row-major, `N`) of the weights the structure keeps: the pruning mask, or all of them.
        What a scheme prices (a weight rounded to zero is still stored: its position is not known in advance)."""
        if self.mask is None:
            return np.ones(self.n_weights, dtype=bool)
        return self.mask.flatten().cpu().numpy()

    def stored_bits(self) -> int:
        """Bits stored under a dense coding: ``N q + 32 C_out + 32 bias_count``.

        The weights at ``q`` bits each, zeros included, one float32 scale per output channel and the bias in float32
        (the weight part as `surrogate_emo.compress.coding.coded_bits` counts ``"dense"``).

        Example:
            >>> QuantLinear.from_dense(nn.Linear(3, 2), 4).stored_bits()  # 6 x 4 + 32 x 2 + 32 x 2
            152
        """
        weights = coded_bits(self.n_weights, self.n_weights, self.bits, "dense", scales=self.out_channels,
                             scale_bits=SCALE_BITS)
        return weights + SCALE_BITS * self.bias_count

    def extra_repr(self) -> str:
        return f"bits={self.bits}, weight={tuple(self.weight.shape)}, bias={self.bias is not None}"


class QuantLinear(QuantLayer):
    """``y = x Q(W)^T + b`` with ``Q`` per-output-channel quantisation at ``bits`` and a float bias.

    Example:
        >>> layer = QuantLinear.from_dense(nn.Linear(4, 3), bits=4)
        >>> layer(torch.zeros(2, 4)).shape, layer.export_state()["weight"].dtype
        (torch.Size([2, 3]), torch.int8)
    """

    @classmethod
    def from_dense(cls, layer: nn.Linear, bits: int, mask: torch.Tensor | None = None) -> QuantLinear:
        """A copy of ``layer`` (weight and bias cloned) that quantises its weight to ``bits`` (keeping only the
        weights of ``mask``, when given)."""
        if not isinstance(layer, nn.Linear):
            raise ConfigError(f"expected an nn.Linear, got {type(layer).__name__}")
        return cls(layer.weight, layer.bias, bits, mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)


class QuantConv2d(QuantLayer):
    """A ``Conv2d`` computing with ``Q(W)`` (one scale per output channel); stride, padding, dilation, groups kept.

    Example:
        >>> layer = QuantConv2d.from_dense(nn.Conv2d(2, 3, 3, padding=1), bits=8)
        >>> layer(torch.zeros(1, 2, 5, 5)).shape
        torch.Size([1, 3, 5, 5])
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, bits: int, stride=1, padding=0, dilation=1,
                 groups: int = 1, mask: torch.Tensor | None = None) -> None:
        super().__init__(weight, bias, bits, mask)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    @classmethod
    def from_dense(cls, layer: nn.Conv2d, bits: int, mask: torch.Tensor | None = None) -> QuantConv2d:
        """A copy of ``layer`` (weight and bias cloned, geometry copied) that quantises its weight to ``bits``
        (keeping only the weights of ``mask``, when given)."""
        if not isinstance(layer, nn.Conv2d):
            raise ConfigError(f"expected an nn.Conv2d, got {type(layer).__name__}")
        if layer.padding_mode != "zeros":
            raise ConfigError(f"expected padding_mode 'zeros', got {layer.padding_mode!r}")
        return cls(layer.weight, layer.bias, bits, layer.stride, layer.padding, layer.dilation, layer.groups, mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.quantized_weight(), self.bias, self.stride, self.padding, self.dilation, self.groups)


def quantize_model(model: nn.Module, bits_per_layer: Mapping[str, int]) -> nn.Module:
    """A new model (deep copy; ``model`` untouched) whose named layers quantise their weights.

    Args:
        model: any module; the names are those of `named_modules` (``"features.0"``, ``"3"``).
        bits_per_layer: layer name -> bit width in ``[2, 16]``, for ``Linear`` and ``Conv2d`` layers only; layers
            not named stay as they are.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> [type(m).__name__ for m in quantize_model(net, {"2": 4})]
        ['Linear', 'ReLU', 'QuantLinear']
    """
    named_layers(model, bits_per_layer, what="quantizable")  # every name checked before any work
    settings = {}
    for name, bits in bits_per_layer.items():
        try:
            settings[name] = check_bits(bits)
        except ConfigError as error:
            raise ConfigError(f"layer {name!r}: {error}") from None
    quantized = copy.deepcopy(model)
    for name, bits in settings.items():
        layer = quantized.get_submodule(name)
        replacement = (QuantConv2d if isinstance(layer, nn.Conv2d) else QuantLinear).from_dense(layer, bits)
        quantized = replace_layer(quantized, name, replacement)
    return quantized
