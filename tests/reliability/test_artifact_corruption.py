"""A corrupted artifact is refused with ArtifactError or loads bit-identical: nothing else.

Seeded random bit flips, byte overwrites, truncations and appended bytes over
every file of a saved ESN and a saved LottaLoRA model (and of a signed copy,
loaded with its key). Each corruption must either be refused with
:class:`~deepreservoir.errors.ArtifactError` or load a model whose outputs are
bit-identical to the saved one's (e.g. a space turned into a tab in
``spec.json``); any other exception, or a model that loads with other outputs,
fails. The artifacts are small and each variant is written from bytes read once.

The hashes are unkeyed, so they promise detection of accidental corruption, not
of a deliberate edit: ``test_deliberate_edits_are_refused_only_with_a_key``
edits the spec and recomputes both SHA-256 values, which loads without a key
(the documented limit) and is refused when the artifact was signed.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

import deepreservoir as dr
from deepreservoir.errors import ArtifactError

KEY = b"reliability test key"
RNG = np.random.default_rng(7)
SERIES = np.sin(np.linspace(0, 12, 81))[:, None]
POINTS = RNG.normal(size=(48, 6)).astype(np.float32)
CLASSES = RNG.integers(0, 3, 48)
#: Corruptions of each kind per file of the unsigned artifacts (200 a file: 800 over the
#: two models' two files); the signed copies get half as many over their three files (600).
PER_FILE = {"flip": 80, "overwrite": 40, "truncate": 40, "append": 40}


def _esn():
    esn = dr.Reservoir(50, seed=1) >> dr.Ridge()
    return esn.fit(SERIES[:-1], SERIES[1:]), SERIES[:-1]


def _models():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RankCappedWarning of the tiny adapters
        lotta = dr.Input() >> dr.Scaffold(32, r=4, seed=1) >> dr.LoRAReadout(3, r=2)
        lotta.fit(POINTS, CLASSES, epochs=1, batch_size=16, loss="cross_entropy", verbose=0)
    return {"esn": _esn(), "lottalora": (lotta, POINTS)}


def _corruptions(data: bytes, rng: np.random.Generator, share: int = 1):
    """(kind, corrupted bytes) for one file, seeded: ``PER_FILE[kind] // share`` of each."""
    size = len(data)
    counts = {kind: n // share for kind, n in PER_FILE.items()}
    for _ in range(counts["flip"]):
        copy = bytearray(data)
        copy[int(rng.integers(size))] ^= 1 << int(rng.integers(8))
        yield "flip", bytes(copy)
    for _ in range(counts["overwrite"]):
        copy = bytearray(data)
        where = int(rng.integers(size))
        copy[where] = (copy[where] + int(rng.integers(1, 256))) % 256  # another value
        yield "overwrite", bytes(copy)
    for _ in range(counts["truncate"]):
        yield "truncate", data[: int(rng.integers(size))]
    for i in range(counts["append"]):
        tail = (b" \n\t\r"[i % 4:i % 4 + 1] if i % 2 else
                rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8).tobytes())
        yield "append", data + tail


def _outcome(folder: Path, key, data, expected) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = dr.load(folder, key=key)
    except ArtifactError:
        return "refused"
    # any other exception propagates and fails the test, naming the corruption
    same = np.array_equal(loaded.run(data), expected)
    return "loaded identical" if same else "LOADED DIFFERENT"


def test_corrupted_artifacts_are_refused_or_identical(tmp_path):
    models = _models()
    start = time.perf_counter()
    rng = np.random.default_rng(2024)
    counts: Counter = Counter()
    for label, (model, data) in models.items():
        for key in (None, KEY):  # unsigned, and signed (loaded with its key)
            folder = model.save(tmp_path / f"{label}-{key is not None}.dr", key=key)
            expected = dr.load(folder, key=key).run(data)
            assert np.array_equal(expected, model.run(data, reset=True)) if label == "esn" \
                else np.array_equal(expected, model.run(data))
            originals = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
            for name, original in originals.items():
                for kind, corrupted in _corruptions(original, rng, 1 if key is None else 2):
                    (folder / name).write_bytes(corrupted)
                    try:
                        outcome = _outcome(folder, key, data, expected)
                    except Exception as error:
                        pytest.fail(f"{label} {name} {kind}: {type(error).__name__}: {error}")
                    counts[(label, name, kind, outcome)] += 1
                (folder / name).write_bytes(original)
    elapsed = time.perf_counter() - start
    by_outcome = Counter()
    for (_, _, _, outcome), n in counts.items():
        by_outcome[outcome] += n
    print(f"\n{sum(by_outcome.values())} corruptions in {elapsed:.1f} s: {dict(by_outcome)}")
    for (label, name, kind, outcome), n in sorted(counts.items()):
        print(f"  {label:9} {name:20} {kind:9} {outcome:16} {n}")
    assert by_outcome["LOADED DIFFERENT"] == 0, counts
    assert sum(by_outcome.values()) >= 1000
    assert by_outcome["refused"] > 0.9 * sum(by_outcome.values())


# ------------------------------------------------------- deliberate edits
def _forge(folder: Path, edit) -> None:
    """Edit the spec and recompute both SHA-256 values, as a deliberate tamperer would."""
    spec = json.loads((folder / "spec.json").read_text())
    edit(spec)
    body = {k: v for k, v in spec.items() if k != "tensors"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    tensor_file = folder / "tensors.safetensors"
    save_file(load_file(str(tensor_file)), str(tensor_file),
              metadata={"format": "deepreservoir", "format_version": "1",
                        "spec_sha256": hashlib.sha256(canonical.encode()).hexdigest()})
    data = tensor_file.read_bytes()
    spec["tensors"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    (folder / "spec.json").write_text(json.dumps(spec, indent=1))


def _node(spec, cls):
    return next(node for node in spec["nodes"] if node["class"] == cls)


EDITS = {
    "leak rate": lambda spec: _node(spec, "Reservoir")["hyperparameters"].update(lr=0.5),
    "activation": lambda spec: _node(spec, "Reservoir")["hyperparameters"].update(
        activation="relu"),
    "edge delay": lambda spec: spec["edges"][0].update(delay=1),
}


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_deliberate_edits_are_refused_only_with_a_key(tmp_path, edit):
    model, data = _esn()
    expected = model.run(data, reset=True)
    unsigned = model.save(tmp_path / "unsigned.dr")
    signed = model.save(tmp_path / "signed.dr", key=KEY)
    assert np.array_equal(dr.load(signed, key=KEY).run(data), expected)
    assert np.array_equal(dr.load(signed).run(data), expected)  # no key: signature unchecked
    for folder in (unsigned, signed):
        _forge(folder, edit)
    # the documented limit: unkeyed hashes do not see a deliberate edit
    assert not np.array_equal(dr.load(unsigned).run(data), expected)
    assert not np.array_equal(dr.load(signed).run(data), expected)
    with pytest.raises(ArtifactError, match=r"signature\.json does not match the artifact "
                                            r"under the given key.*modified after it was signed"):
        dr.load(signed, key=KEY)
    with pytest.raises(ArtifactError, match=r"unsigned\.dr is not signed.*key was given"):
        dr.load(unsigned, key=KEY)
    with pytest.raises(ArtifactError, match="signed with another key"):
        dr.load(model.save(tmp_path / "again.dr", key=KEY), key="another key")
