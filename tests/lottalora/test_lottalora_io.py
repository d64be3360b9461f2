"""Artifacts: JSON spec + safetensors, regenerated scaffolds, fingerprints, corrupt files."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import blobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepreservoir as dr
from deepreservoir import io
from deepreservoir.errors import ArtifactError


def trained(seed=0, r=2, family="normal"):
    x, y = blobs(n=120)
    model = dr.scaffold_mlp((16, 8), 3, r=r, seed=seed, family=family, dropout=0.1)
    model.fit(x, y, epochs=1, batch_size=32, loss="cross_entropy", verbose=0)
    return model, x


def test_round_trip_is_bit_identical(tmp_path):
    model, x = trained()
    path = model.save(tmp_path / "m.dr")
    assert sorted(p.name for p in path.iterdir()) == ["spec.json", "tensors.safetensors"]
    loaded = dr.load(path)
    assert np.array_equal(model.run(x), loaded.run(x))
    spec = json.loads((path / "spec.json").read_text())
    assert spec["format"] == "deepreservoir" and spec["generator"]["name"] == "philox4x32-10"
    layer = next(n for n in spec["nodes"] if n["name"] == "layer0")
    assert layer["seed_key"] == {"root": 0, "path": ""}
    assert set(layer["frozen_fingerprints"]) == {"W_"}
    # only trained tensors are stored: no frozen W_
    from safetensors import safe_open
    with safe_open(str(path / "tensors.safetensors"), framework="pt") as handle:
        keys = set(handle.keys())
    assert "nodes.layer0.A_" in keys and "nodes.layer0.W_" not in keys


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**40), r=st.integers(0, 3),
       family=st.sampled_from(["normal", "cauchy", "binary", "quant4", "sparse_normal"]))
def test_round_trip_property(tmp_path, seed, r, family):
    model, x = trained(seed, r, family)
    path = model.save(tmp_path / f"m{seed}.dr")
    loaded = dr.load(path)
    assert np.array_equal(model.run(x), loaded.run(x))
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])


def test_reservoir_and_ridge_round_trip(tmp_path):
    u = np.sin(np.linspace(0, 20, 300))[:, None]
    esn = dr.Reservoir(40, seed=1, lr=0.3) >> dr.Ridge(1e-6)
    esn.fit(u[:-1], u[1:], warmup=10)
    loaded = dr.load(esn.save(tmp_path / "esn.dr"))
    assert np.array_equal(esn.run(u, reset=True), loaded.run(u, reset=True))
    spec = io.read_spec(tmp_path / "esn.dr")
    reservoir = next(n for n in spec["nodes"] if n["class"] == "Reservoir")
    assert reservoir["state"]["W_scale_"] > 0 and reservoir["state"]["W_fingerprint_"]
    assert set(reservoir["frozen_fingerprints"]) == {"W_", "Win_", "bias_"}


def test_explicit_array_weights_are_stored(tmp_path):
    W = np.random.default_rng(0).normal(size=(6, 6)) * 0.2
    esn = dr.Reservoir(6, W=W, sr=None, seed=0) >> dr.Ridge()
    u = np.random.default_rng(1).normal(size=(50, 2))
    esn.fit(u, u)
    loaded = dr.load(esn.save(tmp_path / "a.dr"))
    assert np.array_equal(esn.run(u, reset=True), loaded.run(u, reset=True))


def test_new_process_is_bit_identical(tmp_path):
    model, x = trained(seed=5)
    path = model.save(tmp_path / "m.dr")
    np.save(tmp_path / "x.npy", x)
    here = model.run(x)
    script = (
        "import sys, numpy as np, deepreservoir as dr\n"
        f"m = dr.load({str(path)!r})\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, m.run(np.load({str(tmp_path / 'x.npy')!r})))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert np.array_equal(np.load(tmp_path / "out.npy"), here)


def test_truncated_tensor_file(tmp_path):
    model, _ = trained()
    path = model.save(tmp_path / "m.dr")
    file = path / "tensors.safetensors"
    file.write_bytes(file.read_bytes()[:-100])
    with pytest.raises(ArtifactError, match=r"tensors\.safetensors does not match its spec.*"
                                            r"truncated"):
        dr.load(path)


def test_tampered_tensor_file(tmp_path):
    model, _ = trained()
    path = model.save(tmp_path / "m.dr")
    file = path / "tensors.safetensors"
    data = bytearray(file.read_bytes())
    data[-3] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"tensors\.safetensors.*SHA-256.*modified"):
        dr.load(path)


def test_tampered_spec(tmp_path):
    model, _ = trained()
    path = model.save(tmp_path / "m.dr")
    spec = json.loads((path / "spec.json").read_text())
    spec["nodes"][1]["seed_key"]["root"] = 99
    (path / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match=r"spec\.json does not match .*edited after saving"):
        dr.load(path)


def test_truncated_spec(tmp_path):
    model, _ = trained()
    path = model.save(tmp_path / "m.dr")
    text = (path / "spec.json").read_text()
    (path / "spec.json").write_text(text[: len(text) // 2])
    with pytest.raises(ArtifactError, match=r"spec\.json is not a deepreservoir spec.*JSON"):
        dr.load(path)


def test_newer_format(tmp_path):
    model, _ = trained()
    path = model.save(tmp_path / "m.dr")
    spec = json.loads((path / "spec.json").read_text())
    spec["format_version"] = 99
    (path / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match=r"spec\.json was written in artifact format version "
                                            r"99.*reads\. Upgrade"):
        dr.load(path)


def test_fingerprint_mismatch_names_node(tmp_path, monkeypatch):
    model, _ = trained()
    real = io._frozen_fingerprints
    monkeypatch.setattr(io, "_frozen_fingerprints",
                        lambda node: {k: "0" * 16 for k in real(node)})
    path = model.save(tmp_path / "m.dr")
    monkeypatch.setattr(io, "_frozen_fingerprints", real)
    with pytest.raises(ArtifactError, match=r"spec\.json: node 'layer0' \(Scaffold\) does not "
                                            r"regenerate as saved.*'W_'"):
        dr.load(path)
    with pytest.warns(UserWarning, match="does not regenerate"):
        dr.load(path, strict=False)


def test_not_an_artifact(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(ArtifactError, match=r"notes\.txt is not a deepreservoir artifact"):
        dr.load(other)
    with pytest.raises(ArtifactError, match="has no spec.json"):
        dr.load(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps({"format": "keras"}))
    with pytest.raises(ArtifactError, match=r"'format' must be 'deepreservoir'. Got 'keras'"):
        dr.load(tmp_path)
    with pytest.raises(ArtifactError, match="does not exist"):
        dr.load(tmp_path / "missing.dr")


def test_save_never_clobbers_foreign_directories(tmp_path):
    model, _ = trained()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("...")
    with pytest.raises(ArtifactError, match="not a deepreservoir artifact directory"):
        model.save(precious)
    assert (precious / "thesis.tex").exists()
    first = model.save(tmp_path / "m.dr")
    model.save(first)  # overwriting an artifact is fine
    assert not [p for p in Path(tmp_path).iterdir() if p.name.startswith(".")]


def test_footprint_on_disk(tmp_path):
    model, _ = trained()
    path = model.save(tmp_path / "m.dr")
    report = model.footprint(path)
    assert report.measured and report.stored_bytes == sum(
        p.stat().st_size for p in path.iterdir())


def test_loading_never_unpickles(tmp_path, monkeypatch):
    import pickle

    model, x = trained()
    path = model.save(tmp_path / "m.dr")
    expected = model.run(x)

    def refuse(*args, **kwargs):
        raise AssertionError("an artifact must load without unpickling anything")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert np.array_equal(dr.load(path).run(x), expected)
    json.loads((path / "spec.json").read_text())


def test_footprint_counts_exactly():
    model, _ = trained()  # 12 inputs → 16 → 8 → 3, r = 2
    report = model.footprint()
    adapters = 2 * (12 + 16) + 2 * (16 + 8) + 2  # A, B per layer and two β
    head = 8 * 3 + 3
    assert report.trainable == adapters + head == dr.paper_param_count(12, (16, 8), 3, r=2)
    assert report.frozen == 16 * 12 + 8 * 16
    assert report.stored == report.trainable
    assert report.stored_bytes == 4 * report.trainable
    assert report.dense == 16 * 12 + 8 * 16 + head  # merged weights and the head
    assert report.dense_bytes == 4 * report.dense
    assert report.per_node["layer0"] == {"trainable": 2 * (12 + 16) + 1, "frozen": 16 * 12,
                                         "stored": 2 * (12 + 16) + 1}
    assert "trainable: 133 of 347" in str(report)
