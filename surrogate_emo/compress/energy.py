"""Analytical accelerator energy of a pruned and quantised layer, in the form of EMOMC's model.

EMOMC (Wang et al., "Evolutionary multi-objective model compression for deep neural networks", IEEE Computational
Intelligence Magazine 16(3):10-21, 2021) prices a layer by counting accesses on an accelerator whose processing
elements (PEs) unroll two loops of the convolution. Five components, each an access count times an energy per access:

- ``mac``: ``mac * MACs * p * (q + 1)``: only the kept fraction ``p`` of the multiply-accumulates runs, at a cost
  that grows with the weight's width, ``q`` bits plus one (the sign, our reading: the code does not say why).
- ``weight_reads``: ``read * (MACs / r_w) * (q + 1) / word_bits``: every weight access, zeros included (a pruned
  weight is still read to learn that it is zero), priced by the fraction of a ``word_bits`` (16) bit word it uses.
- ``activation_reads``: ``read * (MACs / r_a) * s(n_a)``.
- ``psum_writes``: ``write * (MACs / r_o) * s(n_o)``, and ``psum_reads``: ``read * (MACs / r_o) * s(n_o)`` where
  partial sums are read back to be accumulated over time (every dataflow but X:Y and the linear layers).

``r_w``, ``r_a``, ``r_o`` are the reuse factors of weights, input activations and partial sums (how many MACs one
access serves) and ``s(n) = 1 - (1 - p)^n`` the chance that a parallel group of ``n`` weights is not all zero: an
access shared by ``n`` PEs is skipped only when every one of their weights is pruned (``s(1) = p``). A group wider
than `EnergyConstants.skip_limit` (24) is never skipped; with no group (``None``) the access always happens.

The four dataflows, for a convolution with ``C_in`` and ``C_out`` channels per group, a ``kh x kw`` kernel and an
``H x W`` output map (``MACs = kh kw C_in C_out groups H W``); "A:B" unrolls loop A over the array's rows and B over
its columns::

    dataflow   r_w     r_a (n_a)        r_o (n_o)                  psum reads
    X:Y        H W     1 (1)            kh kw C_in (none)          no: each PE owns its output
    IC:OC      1       C_out (C_out)    C_in (C_in)                yes
    Fx:Fy      H W     1 (1)            kh kw (kh kw)              yes
    X:Fx       W       kw (kw)          kw (kw)                    yes

- **X:Y** (output pixels in parallel): one weight is broadcast to every PE, so it is read once per map
  (``r_w = H W``); each PE needs its own input pixel (``r_a = 1``), read only if the weight it meets is kept
  (``n_a = 1``); each PE accumulates its output in place over ``kh kw C_in`` MACs and writes it once, kept
  weights or not (no skipping, no psum read).
- **IC:OC** (input and output channels in parallel): every PE holds a different weight, replaced at every output
  pixel, so weights are read at every MAC (``r_w = 1``); an input activation of channel ``ic`` is broadcast along
  the ``C_out`` PEs of its row (``r_a = n_a = C_out``); the ``C_in`` products of a column are summed in the array
  (``r_o = n_o = C_in``) and accumulated over the kernel positions through the buffer (read, then written).
- **Fx:Fy** (filter positions in parallel): each PE keeps one weight while the map streams past (``r_w = H W``);
  each PE needs its own input (``r_a = 1``, ``n_a = 1``); the ``kh kw`` products are summed in the array
  (``r_o = n_o = kh kw``) and accumulated over the channels through the buffer.
- **X:Fx** (output columns and filter columns in parallel): weight ``w[fx]`` is broadcast along the ``W`` output
  columns (``r_w = W``); an input pixel serves the ``kw`` PEs on a diagonal (``x + fx`` fixed), ``r_a = n_a = kw``;
  the ``kw`` products of an output are summed in the array (``r_o = n_o = kw``).
- **Fully connected layers** are output-stationary whatever the dataflow: ``r_w = 1`` (each weight serves one
  MAC per sample), ``r_a = 1`` with ``n_a = 1``, ``r_o = C_in`` with no skipping (one write per output), no
  psum reads.

These are the factors of EMOMC's published code. What it leaves open, and what we chose:

- EMOMC takes the unrolled dimensions whole (an array as large as the layer needs). `EnergyConstants.array`
  (``None`` by default, as EMOMC) sets a ``rows x columns`` PE array instead: an unrolled dimension is cut to its
  side (``min(dim, side)``) in the reuse factors and groups that come from unrolling; reuse over time (X:Y's
  outputs, Fx:Fy's weights) is unchanged.
- X:Fx's ``Fx`` and ``X``: EMOMC's code uses ``kernel_size[0]`` and ``sqrt(H W)``; we use ``kw`` and ``W``, the
  same numbers for square kernels and maps.
- The skip limit of 24 and the 16-bit word appear in the code unexplained; both are constants here.
- EMOMC divides the summed energy by 1e6 (``scale``; its code calls the unit 0.01 mJ). The energies per access
  are relative numbers, not a calibrated chip; the ratios between compressed models are what the search uses.
  (Eyeriss, for comparison: MAC 1, register file 1, inter-PE 2, buffer 6, DRAM 200; Chen, Emer, Sze, ISCA 2016.)

Pure functions on numbers: no torch, nothing is built. A scheme calls `layer_energy` once per layer.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from surrogate_emo.errors import ConfigError

COMPONENTS = ("mac", "weight_reads", "activation_reads", "psum_writes", "psum_reads")


@dataclass(frozen=True)
class LayerGeometry:
    """The shape of one ``Conv2d`` or ``Linear`` layer as the energy model sees it.

    Attributes:
        kind: ``"conv"`` or ``"linear"``.
        in_channels, out_channels: channels (or features) in and out, all groups together.
        kernel: ``(kh, kw)``; ``(1, 1)`` for a linear layer.
        output: ``(H, W)`` of the output map; ``(1, 1)`` for a linear layer (one sample).
        groups: convolution groups (``in_channels`` for a depthwise convolution).

    Example:
        >>> conv = LayerGeometry.conv(2, 4, (3, 3), (4, 4))
        >>> conv.weights, conv.macs
        (72, 1152)
        >>> LayerGeometry.linear(8, 3).macs
        24
    """

    kind: Literal["conv", "linear"]
    in_channels: int
    out_channels: int
    kernel: tuple[int, int] = (1, 1)
    output: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("conv", "linear"):
            raise ConfigError(f"layer kind must be 'conv' or 'linear', got {self.kind!r}")
        values = {"in_channels": self.in_channels, "out_channels": self.out_channels, "groups": self.groups,
                  "kernel height": self.kernel[0], "kernel width": self.kernel[1],
                  "output height": self.output[0], "output width": self.output[1]}
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ConfigError(f"groups must divide both channel counts, got groups={self.groups} for "
                              f"{self.in_channels} -> {self.out_channels} channels")
        if self.kind == "linear" and (self.kernel != (1, 1) or self.output != (1, 1) or self.groups != 1):
            raise ConfigError(f"a linear layer has kernel (1, 1), output (1, 1) and 1 group, got kernel "
                              f"{self.kernel}, output {self.output}, groups {self.groups}")

    @classmethod
    def conv(cls, in_channels: int, out_channels: int, kernel: tuple[int, int], output: tuple[int, int],
             groups: int = 1) -> LayerGeometry:
        return cls("conv", in_channels, out_channels, tuple(kernel), tuple(output), groups)

    @classmethod
    def linear(cls, in_features: int, out_features: int) -> LayerGeometry:
        return cls("linear", in_features, out_features)

    @property
    def group_in(self) -> int:
        """Input channels one output channel sees (``C_in / groups``)."""
        return self.in_channels // self.groups

    @property
    def group_out(self) -> int:
        """Output channels per group (``C_out / groups``)."""
        return self.out_channels // self.groups

    @property
    def weights(self) -> int:
        """``N = kh kw C_in C_out / groups``."""
        return self.kernel[0] * self.kernel[1] * self.group_in * self.out_channels

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the dense layer for one sample: ``N H W``."""
        return self.weights * self.output[0] * self.output[1]


@dataclass(frozen=True)
class EnergyConstants:
    """Energies per access and the accelerator's shape; every number is EMOMC's unless set.

    Attributes:
        mac: energy of one MAC per bit of weight width (EMOMC 0.102).
        read: energy of one buffer read of a 16-bit word (EMOMC 0.728).
        write: energy of one buffer write (EMOMC 0.447).
        word_bits: the word a weight read is priced against: a ``q``-bit weight costs ``(q + 1) / word_bits``
            reads (EMOMC 16).
        skip_limit: a parallel group wider than this is never skipped (EMOMC 24, unexplained in its code).
        array: ``(rows, columns)`` of the PE array; ``None`` (EMOMC) unrolls each dimension whole.
        scale: factor on every component (EMOMC 1e-6, its code's "0.01 mJ"); 1.0 gives raw access energies.

    Example:
        >>> EnergyConstants(array=(16, 16)).array
        (16, 16)
    """

    mac: float = 0.102
    read: float = 0.728
    write: float = 0.447
    word_bits: int = 16
    skip_limit: int = 24
    array: tuple[int, int] | None = None
    scale: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("mac", "read", "write", "scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"energy constant {name} must be a finite number >= 0, got {value!r}")
        for name in ("word_bits", "skip_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"energy constant {name} must be an integer >= 1, got {value!r}")
        if self.array is not None:
            if (len(self.array) != 2
                    or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in self.array)):
                raise ConfigError(f"array must be (rows, columns) of integers >= 1 or None, got {self.array!r}")


@dataclass(frozen=True)
class Reuse:
    """How many MACs one access serves, and the parallel group a skipped access needs all-zero.

    ``activation_group`` / ``psum_group`` of ``None``: that access is never skipped.
    """

    weight: float
    activation: float
    psum: float
    activation_group: int | None
    psum_group: int | None
    psum_read: bool


Dataflow = Callable[[LayerGeometry, "tuple[int, int] | None"], Reuse]


def _cut(dim: int, array: tuple[int, int] | None, side: int) -> int:
    return dim if array is None else min(dim, array[side])


def _x_y(g: LayerGeometry, array: tuple[int, int] | None) -> Reuse:
    kh, kw = g.kernel
    h, w = g.output
    return Reuse(weight=_cut(w, array, 0) * _cut(h, array, 1), activation=1, psum=kh * kw * g.group_in,
                 activation_group=1, psum_group=None, psum_read=False)


def _ic_oc(g: LayerGeometry, array: tuple[int, int] | None) -> Reuse:
    ic, oc = _cut(g.group_in, array, 0), _cut(g.group_out, array, 1)
    return Reuse(weight=1, activation=oc, psum=ic, activation_group=oc, psum_group=ic, psum_read=True)


def _fx_fy(g: LayerGeometry, array: tuple[int, int] | None) -> Reuse:
    kh, kw = g.kernel
    h, w = g.output
    taps = _cut(kw, array, 0) * _cut(kh, array, 1)
    return Reuse(weight=h * w, activation=1, psum=taps, activation_group=1, psum_group=taps, psum_read=True)


def _x_fx(g: LayerGeometry, array: tuple[int, int] | None) -> Reuse:
    fx = _cut(g.kernel[1], array, 1)
    return Reuse(weight=_cut(g.output[1], array, 0), activation=fx, psum=fx, activation_group=fx, psum_group=fx,
                 psum_read=True)


def _output_stationary(g: LayerGeometry, array: tuple[int, int] | None) -> Reuse:
    return Reuse(weight=1, activation=1, psum=g.group_in, activation_group=1, psum_group=None, psum_read=False)


DATAFLOWS: dict[str, Dataflow] = {"X:Y": _x_y, "IC:OC": _ic_oc, "Fx:Fy": _fx_fy, "X:Fx": _x_fx}
"""The four loop-unrolling dataflows by name (``--dataflow``); a function ``(geometry, array) -> Reuse`` each."""


def get_dataflow(dataflow: str | Dataflow) -> Dataflow:
    """A dataflow by name (``"X:Y"``, ``"IC:OC"``, ``"Fx:Fy"``, ``"X:Fx"``), or a function of your own as it is.

    Example:
        >>> get_dataflow("X:Y") is DATAFLOWS["X:Y"]
        True
    """
    if callable(dataflow):
        return dataflow
    if isinstance(dataflow, str) and dataflow in DATAFLOWS:
        return DATAFLOWS[dataflow]
    raise ConfigError(f"unknown dataflow {dataflow!r}; known: {', '.join(DATAFLOWS)}. A dataflow of your own is a "
                      "function (geometry, array) -> Reuse, passed as it is or added to DATAFLOWS.")


def _check_kept(kept_fraction: float) -> float:
    if (isinstance(kept_fraction, bool) or not isinstance(kept_fraction, numbers.Real)
            or not 0.0 <= kept_fraction <= 1.0):
        raise ConfigError(f"kept fraction must be a number in [0, 1], got {kept_fraction!r}")
    return float(kept_fraction)


def _check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or bits < 1:
        raise ConfigError(f"bit width must be an integer >= 1, got {bits!r}")
    return int(bits)


def _not_all_zero(p: float, group: int | None, limit: int) -> float:
    """``1 - (1 - p)^n``: the chance a group of ``n`` weights is not all pruned; 1 with no group or ``n > limit``."""
    if group is None or group > limit:
        return 1.0
    return 1.0 - (1.0 - p) ** group


def layer_energy(geometry: LayerGeometry, kept_fraction: float, bits: int, dataflow: str | Dataflow = "X:Y",
                 constants: EnergyConstants | None = None) -> dict[str, float]:
    """Energy of one layer with a kept fraction ``p`` of its weights at ``bits`` bits, by component.

    Args:
        geometry: the layer's shape.
        kept_fraction: ``p``, the fraction of weights kept, in ``[0, 1]``.
        bits: ``q``, the weight bit width, an integer >= 1.
        dataflow: a name in `DATAFLOWS` or a function of your own; ignored for linear layers (output-stationary).
        constants: energies per access and the array; EMOMC's by default.

    Returns:
        ``mac``, ``weight_reads``, ``activation_reads``, ``psum_writes``, ``psum_reads`` and their ``total``, each
        times ``constants.scale``.

    Example:
        >>> raw = EnergyConstants(scale=1.0)
        >>> layer_energy(LayerGeometry.linear(8, 3), 0.5, 4, "X:Y", raw)["total"]  # doctest: +ELLIPSIS
        21.65...
    """
    p, q = _check_kept(kept_fraction), _check_bits(bits)
    c = constants if constants is not None else EnergyConstants()
    flow = _output_stationary if geometry.kind == "linear" else get_dataflow(dataflow)
    reuse = flow(geometry, c.array)
    macs = geometry.macs
    psums = macs / reuse.psum * _not_all_zero(p, reuse.psum_group, c.skip_limit)
    energy = {
        "mac": c.mac * macs * p * (q + 1),
        "weight_reads": c.read * macs / reuse.weight * (q + 1) / c.word_bits,
        "activation_reads": c.read * macs / reuse.activation * _not_all_zero(p, reuse.activation_group,
                                                                            c.skip_limit),
        "psum_writes": c.write * psums,
        "psum_reads": c.read * psums if reuse.psum_read else 0.0,
    }
    energy = {name: value * c.scale for name, value in energy.items()}
    energy["total"] = sum(energy.values())
    return energy


def model_energy(geometries: Sequence[LayerGeometry], kept_fraction: float | Sequence[float], bits: Sequence[int],
                 dataflow: str | Dataflow = "X:Y", constants: EnergyConstants | None = None) -> dict[str, float]:
    """`layer_energy` summed over layers, by component and ``total``.

    Args:
        geometries: the layers, in order.
        kept_fraction: one ``p`` for every layer (EMOMC's genome) or one per layer.
        bits: one bit width per layer.
        dataflow, constants: as in `layer_energy`, the same for every layer.

    Example:
        >>> layers = [LayerGeometry.conv(2, 4, (3, 3), (4, 4)), LayerGeometry.linear(64, 3)]
        >>> round(model_energy(layers, 1.0, [8, 8], "X:Y", EnergyConstants(scale=1.0))["mac"], 3)
        1233.792
    """
    n = len(geometries)
    fractions = [kept_fraction] * n if isinstance(kept_fraction, numbers.Real) else list(kept_fraction)
    bits = list(bits)
    if len(fractions) != n or len(bits) != n:
        raise ConfigError(f"expected one kept fraction (or {n}) and {n} bit widths for {n} layers, got "
                          f"{len(fractions)} kept fractions and {len(bits)} bit widths")
    total = dict.fromkeys((*COMPONENTS, "total"), 0.0)
    for geometry, p, q in zip(geometries, fractions, bits):
        for name, value in layer_energy(geometry, p, q, dataflow, constants).items():
            total[name] += value
    return total
