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
    "uniform",
]

GENERATOR = "philox4x32-10"
GENERATOR_VERSION = 2

_MASK32 = np.uint64(0xFFFFFFFF)
_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = 0x9E3779B9
_W1 = 0xBB67AE85
_ROUNDS = 10
_CHUNK = 1 << 20  # counters per batch, bounds temporary memory to ~100 MB


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
    c0, c1, c2, c3 = (c[:, j].copy() for j in range(4))
    k0, k1 = int(key[0]) & 0xFFFFFFFF, int(key[1]) & 0xFFFFFFFF
    for round_index in range(_ROUNDS):
        if round_index:
            k0 = (k0 + _W0) & 0xFFFFFFFF
            k1 = (k1 + _W1) & 0xFFFFFFFF
        product0 = _M0 * c0
        product1 = _M1 * c2
        hi0, lo0 = product0 >> np.uint64(32), product0 & _MASK32
        hi1, lo1 = product1 >> np.uint64(32), product1 & _MASK32
        c0 = hi1 ^ c1 ^ np.uint64(k0)
        c1 = lo1
        c2 = hi0 ^ c3 ^ np.uint64(k1)
        c3 = lo0
    return np.stack([c0, c1, c2, c3], axis=1).astype(np.uint32)


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
    n_blocks = -(-n_words // 4)
    out = np.empty((n_blocks, 4), dtype=np.uint32)
    for start in range(0, n_blocks, _CHUNK):
        stop = min(start + _CHUNK, n_blocks)
        index = np.arange(start, stop, dtype=np.uint64)
        counter = np.zeros((stop - start, 4), dtype=np.uint64)
        counter[:, 0] = index & _MASK32
        counter[:, 1] = index >> np.uint64(32)
        counter[:, 2] = stream
        out[start:stop] = philox4x32(counter, key.philox_key)
    return out.reshape(-1)[:n_words]


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
    words = random_uint32(key, 2 * n, stream).astype(np.uint64).reshape(n, 2)
    integer = ((words[:, 0] >> np.uint64(6)) << np.uint64(26)) | (words[:, 1] >> np.uint64(6))
    return (integer.astype(np.float64) + 0.5) * (2.0 ** -52)


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
    factor was computed for.
    """
    data = np.ascontiguousarray(np.asarray(array, dtype=np.float64))
    header = f"{data.shape}".encode()
    return hashlib.blake2b(header + data.tobytes(), digest_size=8).hexdigest()
