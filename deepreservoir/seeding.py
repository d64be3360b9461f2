"""Seeded weights: a frozen tensor is a pure function of where it lives.

The contract (docs/seeding.md):

* A frozen tensor depends only on the root seed, the node's path in the graph,
  the tensor's role (``"W"``, ``"Win"``, ...), its shape, its family spec and the
  generator version. Construction order and unrelated nodes do not enter.
* The generator is **Philox4x32-10** (Salmon et al. 2011), a counter-based
  generator computed here in exact ``uint64`` integer arithmetic with numpy.
  The 128-bit counter of element ``i`` of draw stream ``s`` is ``(i_lo, i_hi, s, 0)``;
  the 64-bit key is the first 8 bytes of BLAKE2b over a canonical description of
  the tensor. Element ``i`` never depends on how many elements were drawn.
* Floats are formed on the host in float64 with correctly rounded operations
  only (:mod:`deepreservoir.exactmath`), then cast to the model's dtype and copied
  to its device. CPU and CUDA therefore hold the same bits, and a model saved
  today regenerates bit-identically as long as ``GENERATOR_VERSION`` is unchanged.

Changing anything in this module that alters generated values is a breaking
change of the file format: bump ``GENERATOR_VERSION`` and keep the old path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from deepreservoir import exactmath
from deepreservoir.constraints import Seed
from deepreservoir.errors import ParameterError, format_value

__all__ = [
    "GENERATOR",
    "GENERATOR_VERSION",
    "SeedKey",
    "TensorKey",
    "fingerprint",
    "philox4x32",
    "random_uint32",
    "standard_normal",
    "standard_normal_at",
    "uniform",
    "uniform_at",
]

GENERATOR = "philox4x32-10"
GENERATOR_VERSION = 2

_MASK32 = np.uint64(0xFFFFFFFF)
_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = 0x9E3779B9
_W1 = 0xBB67AE85
_ROUNDS = 10
_SHIFT32 = np.uint64(32)
_TILE = 1 << 15  # counters per pass of the rounds: the working set stays in cache


def _rounds(c0: np.ndarray, c1: np.ndarray, c2: np.ndarray, c3: np.ndarray,
            key: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """The ten Philox rounds on four uint64 word arrays (overwritten), cache-sized."""
    n = c0.shape[0]
    p0, p1 = np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.uint64)
    k0, k1 = int(key[0]) & 0xFFFFFFFF, int(key[1]) & 0xFFFFFFFF
    for round_index in range(_ROUNDS):
        if round_index:
            k0 = (k0 + _W0) & 0xFFFFFFFF
            k1 = (k1 + _W1) & 0xFFFFFFFF
        np.multiply(c0, _M0, out=p0)
        np.multiply(c2, _M1, out=p1)
        # (c0, c1, c2, c3) <- (hi(p1) ^ c1 ^ k0, lo(p1), hi(p0) ^ c3 ^ k1, lo(p0))
        np.right_shift(p1, _SHIFT32, out=c0)
        np.bitwise_xor(c0, c1, out=c0)
        np.bitwise_xor(c0, np.uint64(k0), out=c0)
        np.bitwise_and(p1, _MASK32, out=c1)
        np.right_shift(p0, _SHIFT32, out=c2)
        np.bitwise_xor(c2, c3, out=c2)
        np.bitwise_xor(c2, np.uint64(k1), out=c2)
        np.bitwise_and(p0, _MASK32, out=c3)
    return c0, c1, c2, c3


def philox4x32(counter: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Apply Philox4x32-10 to a batch of counters.

    Parameters
    ----------
    counter : ndarray of integers, shape (n, 4)
        128-bit counters as four 32-bit words (word 0 is the lowest).
    key : tuple of two ints
        The 64-bit key as two 32-bit words.

    Returns
    -------
    ndarray of uint32, shape (n, 4)
        The four output words per counter.
    """
    c = np.asarray(counter, dtype=np.uint64) & _MASK32
    out = np.empty(c.shape, dtype=np.uint32)
    for start in range(0, c.shape[0], _TILE):
        rows = c[start:start + _TILE]
        words = _rounds(*(np.ascontiguousarray(rows[:, j]) for j in range(4)), key)
        for j in range(4):
            out[start:start + _TILE, j] = words[j]
    return out


def _blocks(key: TensorKey, first: int, count: int, stream: int) -> np.ndarray:
    """Output words of the counters ``first, ..., first + count − 1`` of one stream.

    Returns
    -------
    ndarray of uint32, shape (count, 4)
    """
    return _blocks_at(key, np.arange(first, first + count, dtype=np.uint64), stream)


def _blocks_at(key: TensorKey, index: np.ndarray, stream: int) -> np.ndarray:
    """Output words of the counters ``index`` (any order) of one stream.

    Returns
    -------
    ndarray of uint32, shape (len(index), 4)
    """
    index = np.asarray(index, dtype=np.uint64)
    out = np.empty((index.shape[0], 4), dtype=np.uint32)
    stream_word = np.uint64(int(stream) & 0xFFFFFFFF)
    for start in range(0, index.shape[0], _TILE):
        part = index[start:start + _TILE]
        words = _rounds(part & _MASK32, part >> _SHIFT32,
                        np.full(part.shape, stream_word, dtype=np.uint64),
                        np.zeros(part.shape, dtype=np.uint64), key.philox_key)
        for j in range(4):
            out[start:start + _TILE, j] = words[j]
    return out


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class SeedKey:
    """Where a node lives for seeding: a root seed and a path below it.

    A node given ``seed=s`` is its own root: ``SeedKey(s, "")``. A node without a
    seed hangs below its first parent: ``SeedKey(parent.root, parent.path + "/" + label)``.

    Parameters
    ----------
    root : int
        Non-negative root seed.
    path : str
        Slash-separated path of the node below the root.
    """

    root: int
    path: str = ""

    def __post_init__(self) -> None:
        if not Seed().accepts(self.root):
            raise ParameterError(
                f"The 'seed' parameter must be {Seed().describe()}. Got {format_value(self.root)}."
            )
        # A numpy integer seed is the same seed as the Python int (and JSON-encodable).
        object.__setattr__(self, "root", int(self.root))

    def child(self, label: str) -> SeedKey:
        """The key of a node one step below this one."""
        return SeedKey(self.root, f"{self.path}/{label}" if self.path else label)

    def tensor(self, role: str, shape: tuple[int, ...], family: object) -> TensorKey:
        """The key of one tensor of this node."""
        return TensorKey(self, role, tuple(int(s) for s in shape), _canonical(family))


@dataclass(frozen=True)
class TensorKey:
    """Everything a frozen tensor is a function of.

    Parameters
    ----------
    node : SeedKey
        The owning node's root seed and path.
    role : str
        The tensor's role in the node, e.g. ``"W"`` or ``"Win"``.
    shape : tuple of int
        The tensor's shape.
    family : str
        Canonical JSON of the family spec.
    """

    node: SeedKey
    role: str
    shape: tuple[int, ...]
    family: str
    _words: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        description = _canonical({
            "generator": GENERATOR,
            "version": GENERATOR_VERSION,
            "root": self.node.root,
            "path": self.node.path,
            "role": self.role,
            "shape": list(self.shape),
            "family": self.family,
        })
        digest = hashlib.blake2b(description.encode(), digest_size=8).digest()
        object.__setattr__(
            self, "_words",
            (int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")),
        )

    @property
    def philox_key(self) -> tuple[int, int]:
        """The 64-bit Philox key as two 32-bit words."""
        return self._words

    @property
    def size(self) -> int:
        """Number of elements of the tensor."""
        return int(np.prod(self.shape, dtype=np.int64))


def random_uint32(key: TensorKey, n_words: int, stream: int = 0) -> np.ndarray:
    """The first ``n_words`` 32-bit words of one stream of a tensor key.

    Word ``j`` is output word ``j % 4`` of the counter ``(j // 4, 0, stream, 0)``
    (the counter index spans words 0 and 1).

    Parameters
    ----------
    key : TensorKey
    n_words : int
    stream : int
        Independent draw stream in [0, 2**32).

    Returns
    -------
    ndarray of uint32, shape (n_words,)
    """
    n_blocks = -(-int(n_words) // 4)
    return _blocks(key, 0, n_blocks, stream).reshape(-1)[:n_words]


def _to_uniform(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """``(k + 1/2) / 2**52`` with ``k`` the top 26 bits of ``high`` then of ``low``."""
    integer = (np.asarray(high, dtype=np.uint64) >> np.uint64(6)) << np.uint64(26)
    integer |= np.asarray(low, dtype=np.uint64) >> np.uint64(6)
    values = integer.astype(np.float64)
    values += 0.5
    values *= 2.0 ** -52
    return values


def uniform(key: TensorKey, stream: int = 0, size: int | None = None) -> np.ndarray:
    """Uniform float64 values in the open interval (0, 1), 52 random bits each.

    Value ``i`` is ``(k_i + 1/2) / 2**52``, where the 52-bit integer ``k_i`` joins
    the top 26 bits of word ``2i`` (high half) and the top 26 bits of word
    ``2i + 1`` (low half) of :func:`random_uint32`; both words come from counter
    ``i // 2``. ``k_i + 1/2`` needs at most 53 significant bits, so every value is
    exact in float64 and lies in ``[2**-53, 1 − 2**-53]``.

    Parameters
    ----------
    key : TensorKey
    stream : int
        Draw stream; different streams are independent.
    size : int, optional
        Number of values; defaults to ``key.size``.

    Returns
    -------
    ndarray of float64, shape (size,)
    """
    n = key.size if size is None else int(size)
    words = random_uint32(key, 2 * n, stream).reshape(n, 2)
    return _to_uniform(words[:, 0], words[:, 1])


def uniform_at(key: TensorKey, index: np.ndarray, stream: int = 0) -> np.ndarray:
    """The uniforms of :func:`uniform` at the flat positions ``index`` only.

    Value ``i`` depends on counter ``i // 2`` alone, so drawing a subset gives
    the same bits as drawing everything and indexing:
    ``uniform_at(key, index, s) == uniform(key, s)[index]``.

    Parameters
    ----------
    key : TensorKey
    index : ndarray of int, shape (m,)
        Non-negative flat positions, in any order, repeats allowed.
    stream : int
        Draw stream.

    Returns
    -------
    ndarray of float64, shape (m,)
    """
    index = np.asarray(index, dtype=np.uint64).reshape(-1)
    blocks = _blocks_at(key, index >> np.uint64(1), stream)
    odd = (index & np.uint64(1)).astype(bool)
    high = np.where(odd, blocks[:, 2], blocks[:, 0])
    low = np.where(odd, blocks[:, 3], blocks[:, 1])
    return _to_uniform(high, low)


def standard_normal_at(key: TensorKey, index: np.ndarray, stream: int = 0) -> np.ndarray:
    """The normals of :func:`standard_normal` at the flat positions ``index`` only.

    Returns
    -------
    ndarray of float64, shape (m,)
        Equal bitwise to ``standard_normal(key, stream)[index]``.
    """
    return exactmath.ndtri(uniform_at(key, index, stream))


def standard_normal(key: TensorKey, stream: int = 0, size: int | None = None) -> np.ndarray:
    """Standard normal float64 values by inverse CDF of :func:`uniform`.

    Returns
    -------
    ndarray of float64, shape (size,)
        ``Φ⁻¹(u_i)`` with the portable :func:`deepreservoir.exactmath.ndtri`.
    """
    return exactmath.ndtri(uniform(key, stream, size))


def fingerprint(array: np.ndarray) -> str:
    """A short content hash of an array's float64 bytes (16 hex digits).

    Used to check on load that a regenerated scaffold is the one a stored scale
    factor was computed for. A C-contiguous float64 array is hashed in place.
    """
    data = np.ascontiguousarray(np.asarray(array, dtype=np.float64))
    digest = hashlib.blake2b(f"{data.shape}".encode(), digest_size=8)
    digest.update(memoryview(data).cast("B") if data.size else b"")
    return digest.hexdigest()
