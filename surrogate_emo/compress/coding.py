"""Exact storage of a pruned, quantised layer under a coding: dense, CSR with relative indices, or COO.

A layer of ``N`` weights keeps ``K`` of them (``p = K / N``) at ``q`` bits. Counted in whole bits:

- ``dense``: ``N q``: every weight stored, zeros included.
- ``csr``: Deep Compression's relative indexing (Han, Mao, Dally, ICLR 2016) over the weights flattened in
  row-major order (PyTorch's layout): each stored entry is a ``q``-bit value and an ``index_bits``-bit gap, the
  number of zeros skipped since the previous entry. A gap ``g`` wider than ``2^index_bits - 1`` cannot be written,
  so a filler entry (a stored zero) is inserted after every ``2^index_bits - 1`` zeros: ``floor(g / 2^index_bits)``
  fillers for that gap. Bits ``(K + fillers) (q + index_bits)``, which needs the positions of the kept weights.
  Zeros after the last kept weight cost nothing (``N`` is known from the architecture); no row pointers.
- ``coo``: ``K (q + ceil(log2 N))``: each entry carries its absolute flat index.

Any coding adds the quantisation scales when ``q < 32``: ``scales x scale_bits`` (one float32 per output channel by
default; pass ``scales=0`` for none).

EMOMC's closed forms (IEEE CIM 16(3), 2021, as in its code): ``N q``, ``N p (q + 3)`` and ``N p (q + log2 N)``,
real-valued and without scales. The CSR form leaves out the fillers: for weights kept independently with
probability ``p`` the gaps are geometric and each stored weight brings ``r / (1 - r)`` fillers on average, with
``r = (1 - p)^(2^index_bits)``, 0.2 per kept weight at ``p = 0.2`` and 3-bit indices (`expected_csr_bits`).
The functions here count exactly; bytes are ``ceil(bits / 8)`` per layer.

Pure functions on numbers and numpy masks: no torch. A scheme calls `layer_coding` once per layer.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from surrogate_emo.errors import ConfigError

CODINGS = ("dense", "csr", "coo")
"""The codings by name, in the order `best_coding` prefers on a tie."""


@dataclass(frozen=True)
class LayerCoding:
    """The coding a layer is stored in and its exact size.

    Example:
        >>> LayerCoding("csr", 13).bytes
        2
    """

    coding: str
    bits: int

    @property
    def bytes(self) -> int:
        """``ceil(bits / 8)``."""
        return -(-self.bits // 8)


def _check_int(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _positions(n_weights: int, kept: np.ndarray | int) -> tuple[int, np.ndarray | None]:
    """``(K, sorted flat positions or None)`` from a boolean mask, flat indices or a count."""
    if isinstance(kept, (int, np.integer)) and not isinstance(kept, bool):
        if not 0 <= kept <= n_weights:
            raise ConfigError(f"kept count must be in [0, {n_weights}], got {kept}")
        return int(kept), None
    array = np.asarray(kept)
    if array.dtype == bool:
        if array.size != n_weights:
            raise ConfigError(f"mask must have {n_weights} entries (one per weight), got {array.size}")
        positions = np.flatnonzero(array)
        return positions.size, positions
    if np.issubdtype(array.dtype, np.integer) and array.ndim == 1:
        positions = np.unique(array)
        if positions.size != array.size:
            raise ConfigError(f"kept flat indices must be distinct, got {array.size - positions.size} repeated")
        if positions.size and (positions[0] < 0 or positions[-1] >= n_weights):
            raise ConfigError(f"kept flat indices must lie in [0, {n_weights}), got {positions[0]}..{positions[-1]}")
        return positions.size, positions
    raise ConfigError(f"kept must be a boolean mask, a 1-d array of flat indices or a count, got {array.dtype} "
                      f"array of shape {array.shape}")


def csr_fillers(positions: np.ndarray, index_bits: int = 3) -> int:
    """Filler entries CSR with ``index_bits``-bit relative indices needs for kept weights at sorted ``positions``.

    Example:
        >>> csr_fillers(np.array([0, 9]), index_bits=2)  # a gap of 8 zeros: fillers after 3 and after 3 more
        2
    """
    index_bits = _check_int("index_bits", index_bits, 1)
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size == 0:
        return 0
    gaps = np.diff(positions, prepend=-1) - 1
    return int((gaps >> index_bits).sum())


def coded_bits(n_weights: int, kept: np.ndarray | int, bits: int, coding: str, *, index_bits: int = 3,
               scales: int = 0, scale_bits: int = 32) -> int:
    """Exact bits of one layer's weights under ``coding``.

    Args:
        n_weights: ``N``, the weights of the dense layer.
        kept: which weights are kept: a boolean mask of ``N`` entries (any shape, read row-major), a 1-d array of
            flat indices, or for ``dense`` and ``coo`` just their count ``K``.
        bits: ``q``, bits per stored value, an integer >= 1.
        coding: ``"dense"``, ``"csr"`` or ``"coo"``.
        index_bits: width of a CSR relative index (Deep Compression's 3 by default).
        scales: quantisation scales stored with the layer, usually its output channels; counted only when
            ``bits < 32``.
        scale_bits: bits per scale (float32).

    Example:
        >>> mask = np.array([1, 0, 0, 0, 0, 1, 0, 0], dtype=bool)  # a gap of 4 overflows a 2-bit index
        >>> coded_bits(8, mask, 4, "dense"), coded_bits(8, mask, 4, "csr", index_bits=2), coded_bits(8, 2, 4, "coo")
        (32, 18, 14)
    """
    n_weights = _check_int("n_weights", n_weights, 1)
    bits = _check_int("bits", bits, 1)
    index_bits = _check_int("index_bits", index_bits, 1)
    scales = _check_int("scales", scales, 0)
    scale_bits = _check_int("scale_bits", scale_bits, 0)
    count, positions = _positions(n_weights, kept)
    extra = scales * scale_bits if bits < 32 else 0
    if coding == "dense":
        return n_weights * bits + extra
    if coding == "coo":
        return count * (bits + max(1, (n_weights - 1).bit_length())) + extra
    if coding == "csr":
        if positions is None:
            raise ConfigError("csr needs the positions of the kept weights (a boolean mask or flat indices) to count "
                              f"its filler entries exactly, got only a count ({count}); expected_csr_bits gives the "
                              "expectation for a random mask")
        return (count + csr_fillers(positions, index_bits)) * (bits + index_bits) + extra
    raise ConfigError(f"unknown coding {coding!r}; known: {', '.join(CODINGS)}")


def best_coding(n_weights: int, kept: np.ndarray | int, bits: int, *, codings: tuple[str, ...] = CODINGS,
                index_bits: int = 3, scales: int = 0, scale_bits: int = 32) -> tuple[str, int]:
    """The smallest of ``codings`` for this layer, ``(name, bits)``; ties go to the earlier name.

    Example:
        >>> mask = np.zeros(64, dtype=bool); mask[::4] = True
        >>> best_coding(64, mask, 8)  # 16 kept: dense 512, csr 16 x 11 = 176, coo 16 x 14 = 224
        ('csr', 176)
    """
    if not codings:
        raise ConfigError(f"expected at least one coding among {', '.join(CODINGS)}, got none")
    sizes = [(coded_bits(n_weights, kept, bits, name, index_bits=index_bits, scales=scales, scale_bits=scale_bits),
              order, name) for order, name in enumerate(codings)]
    size, _, name = min(sizes)
    return name, size


def layer_coding(n_weights: int, kept: np.ndarray | int, bits: int, coding: str = "best", *, index_bits: int = 3,
                 scales: int = 0, scale_bits: int = 32) -> LayerCoding:
    """One layer's coding: the one configured, or with ``coding="best"`` the smallest; the name is reported.

    Example:
        >>> layer_coding(8, np.ones(8, dtype=bool), 4)
        LayerCoding(coding='dense', bits=32)
    """
    options = {"index_bits": index_bits, "scales": scales, "scale_bits": scale_bits}
    if coding == "best":
        return LayerCoding(*best_coding(n_weights, kept, bits, **options))
    return LayerCoding(coding, coded_bits(n_weights, kept, bits, coding, **options))


def expected_csr_bits(n_weights: int, kept_fraction: float, bits: int, index_bits: int = 3) -> float:
    """Expected CSR bits when each weight is kept independently with probability ``p``, fillers included.

    ``N p (1 + r / (1 - r)) (q + index_bits)`` with ``r = (1 - p)^(2^index_bits)`` (gaps are geometric; the edge
    of the layer is ignored, so this is exact in the limit of long layers). Without the filler term it is
    EMOMC's ``N p (q + 3)`` for ``index_bits = 3``.

    Example:
        >>> round(expected_csr_bits(1000, 0.5, 4), 2)  # r = 0.5^8: 1000 x 0.5 x (1 + 1/255) x 7
        3513.73
    """
    if (isinstance(kept_fraction, bool) or not isinstance(kept_fraction, numbers.Real)
            or not 0 < kept_fraction <= 1):
        raise ConfigError(f"kept fraction must be a number in (0, 1], got {kept_fraction!r}")
    bits = _check_int("bits", bits, 1)
    index_bits = _check_int("index_bits", index_bits, 1)
    r = (1.0 - kept_fraction) ** (2 ** index_bits)
    return n_weights * kept_fraction * (1.0 + r / (1.0 - r)) * (bits + index_bits)
