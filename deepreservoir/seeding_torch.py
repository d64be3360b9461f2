"""Philox4x32-10 and the seeded draws on torch tensors, on any device.

The same generator, counter layout, uniforms, normals and family formulas as
:mod:`deepreservoir.seeding` and :mod:`deepreservoir.families`, computed with
torch instead of numpy, so a frozen weight (or any tile of it) can be drawn
directly where it is used. The bits equal the numpy path's on CPU and CUDA:

* Philox runs on ``int64`` tensors that hold 32-bit words. The 32×32-bit
  products are split so that every intermediate stays below 2**63 (no signed
  overflow): with the multiplier ``M = M_hi·2**16 + M_lo``, ``a = c·M_lo`` and
  ``b = c·M_hi`` are below 2**48, and ``c·M = (b >> 16)·2**32 + t`` with
  ``t = a + (b mod 2**16)·2**16``; so ``hi = (b >> 16) + (t >> 32)`` and
  ``lo = t mod 2**32``.
* Floats use correctly rounded operations only (:mod:`deepreservoir.exactmath_torch`).
* On CPU the 32-bit words are computed by numpy's Philox, which is faster
  there; on other devices (CUDA) by the torch kernels above. Both give the
  same words (checked against each other and the known-answer vectors).

Tiles: element ``i`` of a tensor depends on its own counters only, so
:func:`draw_rows` draws rows ``start:stop`` of a seeded weight alone; for
every *elementwise* family (``Family.elementwise``) it equals the same rows of
:func:`deepreservoir.families.make_weight` bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from deepreservoir import exactmath_torch, seeding
from deepreservoir.errors import ParameterError, format_value
from deepreservoir.families.base import Family
from deepreservoir.families.registry import get_family
from deepreservoir.families.weights import _check_connectivity
from deepreservoir.seeding import SeedKey, TensorKey

__all__ = ["TorchDraws", "draw_rows", "philox4x32", "random_uint32", "standard_normal",
           "uniform"]

_MASK32 = 0xFFFFFFFF
_M0_HI, _M0_LO = 0xD2511F53 >> 16, 0xD2511F53 & 0xFFFF
_M1_HI, _M1_LO = 0xCD9E8D57 >> 16, 0xCD9E8D57 & 0xFFFF
_W0 = 0x9E3779B9
_W1 = 0xBB67AE85
_ROUNDS = 10
_TILE_CPU = 1 << 15  # counters per pass on CPU: the working set stays in cache
_TILE_OTHER = 1 << 24


def _mulhilo(c: torch.Tensor, m_hi: int, m_lo: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit words of ``c · (m_hi·2**16 + m_lo)``, all values < 2**49."""
    a = c * m_lo
    b = c * m_hi
    t = a + ((b & 0xFFFF) << 16)
    return (b >> 16) + (t >> 32), t & _MASK32


def _rounds(c0, c1, c2, c3, key: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    k0, k1 = int(key[0]) & _MASK32, int(key[1]) & _MASK32
    for round_index in range(_ROUNDS):
        if round_index:
            k0 = (k0 + _W0) & _MASK32
            k1 = (k1 + _W1) & _MASK32
        hi0, lo0 = _mulhilo(c0, _M0_HI, _M0_LO)
        hi1, lo1 = _mulhilo(c2, _M1_HI, _M1_LO)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def philox4x32(counter: torch.Tensor, key: tuple[int, int]) -> torch.Tensor:
    """Apply Philox4x32-10 to a batch of counters.

    Parameters
    ----------
    counter : Tensor of int64, shape (n, 4)
        128-bit counters as four 32-bit words in [0, 2**32) (word 0 is the lowest).
    key : tuple of two ints
        The 64-bit key as two 32-bit words.

    Returns
    -------
    Tensor of int64, shape (n, 4), same device
        The four output words per counter, each in [0, 2**32); equal to
        :func:`deepreservoir.seeding.philox4x32`.
    """
    counter = torch.as_tensor(counter, dtype=torch.int64) & _MASK32
    words = _rounds(*(counter[:, j] for j in range(4)), key)
    return torch.stack(words, dim=1)


def _device(device: Any) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


def _blocks(key: TensorKey, first: int, count: int, stream: int, device: torch.device,
            use_torch: bool | None = None) -> torch.Tensor:
    """Output words of counters ``first … first + count − 1``; shape (count, 4), int64.

    On CPU the words come from numpy's Philox (:func:`deepreservoir.seeding._blocks`),
    which is about 7× faster there than these int64 torch kernels and gives the
    same words; ``use_torch=True`` forces the torch rounds (the tests compare both).
    """
    if use_torch is None:
        use_torch = device.type != "cpu"
    if not use_torch:
        words = seeding._blocks(key, first, count, stream).astype(np.int64)
        return torch.from_numpy(words).to(device)
    out = torch.empty((count, 4), dtype=torch.int64, device=device)
    tile = _TILE_CPU if device.type == "cpu" else _TILE_OTHER
    stream_word = int(stream) & _MASK32
    for start in range(0, count, tile):
        stop = min(start + tile, count)
        index = torch.arange(first + start, first + stop, dtype=torch.int64, device=device)
        zeros = torch.zeros_like(index)
        words = _rounds(index & _MASK32, index >> 32, zeros + stream_word, zeros,
                        key.philox_key)
        out[start:stop] = torch.stack(words, dim=1)
    return out


def _check_range(owner: str, name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ParameterError(
            f"The '{name}' parameter of {owner} must be an int in [{low}, {high}]. "
            f"Got {format_value(value)}.")
    return value


def random_uint32(key: TensorKey, n_words: int, stream: int = 0, offset: int = 0,
                  device: Any = None) -> torch.Tensor:
    """Words ``offset … offset + n_words − 1`` of one stream of a tensor key.

    Parameters
    ----------
    key : TensorKey
    n_words : int >= 0
    stream : int
        Draw stream in [0, 2**32).
    offset : int >= 0
        Index of the first word.
    device : torch.device or str, optional
        Where to compute; CPU by default.

    Returns
    -------
    Tensor of int64, shape (n_words,)
        Values in [0, 2**32); equal to
        ``seeding.random_uint32(key, offset + n_words, stream)[offset:]``.
    """
    _check_range("random_uint32", "n_words", n_words, 0, 2**62)
    _check_range("random_uint32", "offset", offset, 0, 2**62)
    first, stop = offset // 4, -(-(offset + n_words) // 4)
    words = _blocks(key, first, stop - first, stream, _device(device)).reshape(-1)
    return words[offset - 4 * first:offset - 4 * first + n_words]


def _span(key: TensorKey, size: int | None, offset: int, owner: str) -> tuple[int, int]:
    _check_range(owner, "offset", offset, 0, key.size)
    size = key.size - offset if size is None else size
    _check_range(owner, "size", size, 0, 2**62)
    return offset, size


def _uniform_span(key: TensorKey, stream: int, start: int, count: int,
                  device: torch.device) -> torch.Tensor:
    """Uniforms ``start … start + count − 1``: two per Philox counter."""
    first, stop = start // 2, -(-(start + count) // 2)
    blocks = _blocks(key, first, stop - first, stream, device)
    high = blocks[:, 0::2].reshape(-1)  # words 0 and 2: the high halves of uniforms 2c, 2c+1
    low = blocks[:, 1::2].reshape(-1)
    integer = ((high >> 6) << 26) | (low >> 6)
    values = (integer.to(torch.float64) + 0.5) * 2.0 ** -52
    return values[start - 2 * first:start - 2 * first + count]


def uniform(key: TensorKey, stream: int = 0, size: int | None = None, offset: int = 0,
            device: Any = None) -> torch.Tensor:
    """Uniforms ``offset … offset + size − 1`` of :func:`deepreservoir.seeding.uniform`.

    Parameters
    ----------
    key : TensorKey
    stream : int
        Draw stream.
    size : int, optional
        Number of values; ``key.size − offset`` by default.
    offset : int in [0, key.size]
        Flat index of the first value.
    device : torch.device or str, optional

    Returns
    -------
    Tensor of float64, shape (size,)
        Equal bitwise to ``seeding.uniform(key, stream)[offset:offset + size]``.
    """
    offset, size = _span(key, size, offset, "uniform")
    return _uniform_span(key, stream, offset, size, _device(device))


def standard_normal(key: TensorKey, stream: int = 0, size: int | None = None,
                    offset: int = 0, device: Any = None) -> torch.Tensor:
    """Normals ``offset … offset + size − 1`` of :func:`deepreservoir.seeding.standard_normal`.

    Returns
    -------
    Tensor of float64, shape (size,)
        Equal bitwise to ``seeding.standard_normal(key, stream)[offset:offset + size]``.
    """
    return exactmath_torch.ndtri(uniform(key, stream, size, offset, device))


class TorchDraws:
    """The seeded draws of flat positions ``start … stop − 1`` of a tensor, with torch math.

    The torch counterpart of :class:`deepreservoir.families.base.NumpyDraws`:
    an elementwise family's ``_values`` runs on either and gives the same bits.
    Scalars that divide, or that :meth:`where` selects, become 0-dim tensors on
    the device (:meth:`constant`), so no operation takes a shortcut on CUDA.

    Parameters
    ----------
    key : TensorKey
    start, stop : int
        The flat range, ``0 <= start <= stop <= key.size``.
    device : torch.device
    """

    def __init__(self, key: TensorKey, start: int, stop: int, device: torch.device) -> None:
        self.key, self.start, self.device = key, int(start), device
        self.size = int(stop) - int(start)

    def uniform(self, stream: int = 0) -> torch.Tensor:
        return _uniform_span(self.key, stream, self.start, self.size, self.device)

    def normal(self, stream: int = 0) -> torch.Tensor:
        return exactmath_torch.ndtri(self.uniform(stream))

    def zeros(self) -> torch.Tensor:
        return torch.zeros(self.size, dtype=torch.float64, device=self.device)

    def constant(self, value: float) -> torch.Tensor:
        return torch.tensor(float(value), dtype=torch.float64, device=self.device)

    def div(self, x: torch.Tensor, scalar: float) -> torch.Tensor:
        return x / self.constant(scalar)  # a true division, as in numpy

    log = staticmethod(exactmath_torch.log)
    ndtri = staticmethod(exactmath_torch.ndtri)
    sqrt = staticmethod(exactmath_torch.sqrt)
    abs = staticmethod(torch.abs)
    sign = staticmethod(torch.sign)
    floor = staticmethod(torch.floor)
    minimum = staticmethod(torch.minimum)
    maximum = staticmethod(torch.maximum)

    @staticmethod
    def where(condition: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(condition, a, b)

    @staticmethod
    def clip(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return torch.clamp(x, low, high)


def _rows(owner: str, shape: tuple[int, ...], start: int, stop: int | None) -> tuple:
    if not isinstance(shape, (tuple, list)) or len(shape) not in (1, 2) or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shape):
        raise ParameterError(
            f"The 'shape' parameter of {owner} must be a tuple of one or two ints >= 0. "
            f"Got {format_value(shape)}.")
    rows = shape[0]
    cols = shape[1] if len(shape) == 2 else 1
    stop = rows if stop is None else stop
    _check_range(owner, "stop", stop, 0, rows)
    _check_range(owner, "start", start, 0, stop)
    return rows, cols, start, stop


def draw_rows(family: str | Family | Mapping[str, Any], node: SeedKey, role: str,
              shape: tuple[int, ...], *, fan_in: int, fan_out: int,
              connectivity: float = 1.0, start: int = 0, stop: int | None = None,
              device: Any = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Rows ``start:stop`` of a seeded weight, drawn alone on ``device``.

    Row ``r``, column ``c`` is flat element ``r·cols + c`` of the weight, whose
    values depend on their own counters only; so the tile is the same bits as
    the same rows of the whole weight.

    Parameters
    ----------
    family : str, Family or mapping
        An elementwise family (``Family.elementwise``).
    node : SeedKey
    role : str
    shape : tuple (rows, cols) or (rows,)
        The shape of the whole weight (it enters the key).
    fan_in, fan_out : int
        Used by the family's default scale.
    connectivity : float in (0, 1]
        The seeded connectivity mask of :func:`~deepreservoir.families.connectivity_mask`.
    start, stop : int
        The rows, ``0 <= start <= stop <= rows``; ``stop`` defaults to ``rows``.
    device : torch.device or str, optional
        Where the draw is computed and returned; CPU by default.
    dtype : torch.dtype
        The returned dtype; values are formed in float64 and then cast.

    Returns
    -------
    Tensor of ``dtype``, shape (stop − start, cols), or (stop − start,) for a 1-D shape
        Equal bitwise to ``torch.as_tensor(make_weight(family, node, role, shape,
        fan_in=fan_in, fan_out=fan_out, connectivity=connectivity)[start:stop]).to(dtype)``.

    Raises
    ------
    ParameterError
        For an unknown or non-elementwise family (``orthogonal``,
        ``spectral_radius``: materialised only), a bad shape, row range or connectivity.
    """
    _check_connectivity(connectivity)
    resolved = get_family(family, role)
    resolved.require_elementwise("draw_rows")
    shape = tuple(shape) if isinstance(shape, list) else shape
    _, cols, start, stop = _rows("draw_rows", shape, start, stop)
    where = _device(device)
    key = node.tensor(role, shape, resolved.spec())
    draws = TorchDraws(key, start * cols, stop * cols, where)
    values = resolved._values(draws, int(fan_in), int(fan_out))
    if connectivity < 1.0:
        mask_key = node.tensor(f"{role}:mask", shape, {"connectivity": float(connectivity)})
        kept = _uniform_span(mask_key, 0, start * cols, draws.size, where) < connectivity
        values = torch.where(kept, values, draws.constant(0.0))
    out_shape = (stop - start, cols) if len(shape) == 2 else (stop - start,)
    return values.reshape(out_shape).to(dtype)
