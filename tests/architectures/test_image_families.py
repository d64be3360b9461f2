"""The image families of the architectures study: "cnn" (analysis/_arch_cnn.py, a
ResNet-style CNN) and "vit" (analysis/_arch_vit.py, a small ViT), on the same images.

The first optimizer step of a process imports torch's compiler machinery (seconds);
the rest takes well under a second of CPU per family.
"""

from __future__ import annotations

import fnmatch
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import deepreservoir as dr
from deepreservoir.adapt import _matches, adapted_layers
from deepreservoir.errors import DataError
from deepreservoir.studies import load_helper

if importlib.util.find_spec("sklearn") is None:  # the digits come with scikit-learn
    pytest.skip("scikit-learn is not installed", allow_module_level=True)

ANALYSIS = Path(__file__).resolve().parents[2] / "analysis"
common = load_helper("_arch_common", ANALYSIS)
images = load_helper("_arch_images", ANALYSIS)
#: name -> (ranks, the paper's LoRA figure, full figure and rank)
EXPECTED = {"cnn": ((1, 8, 16), (87.70, 90.81, 16)), "vit": ((1, 8), (94.53, 96.83, 1))}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def family(request):
    return load_helper(f"_arch_{request.param}", ANALYSIS)


@pytest.fixture(scope="module")
def task(family):
    return family.load_task(quick=True, seed=0)


def _adapted(family, task, r=1, **changes):
    arguments = {**family.ADAPT, **changes}
    return dr.adapt(family.build(task, seed=0), r=r, seed=0, **arguments)


def test_the_family_follows_the_protocol(family):
    missing = [name for name in common.PROTOCOL if not hasattr(family, name)]
    assert not missing
    ranks, paper = EXPECTED[family.NAME]
    assert family.RANKS == ranks
    assert (family.PAPER.lora, family.PAPER.full, family.PAPER.rank) == paper
    assert family.METRIC.percent and family.METRIC.higher_is_better
    if family.NAME == "vit":
        assert family.ADAPT["alpha"] == 16  # as the paper's Transformers


def test_generated_images_are_deterministic_and_documented(family, task):
    again = family.load_task(quick=True, seed=0)
    other = family.load_task(quick=True, seed=1)
    sizes = images.SPLITS[True]
    for split, count in sizes.items():
        x, y = task.splits[split]
        assert x.shape == (count, 1, 16, 16) and x.dtype == torch.float32
        assert y.shape == (count,) and y.dtype == torch.int64
        assert torch.isfinite(x).all()
        assert torch.equal(x, again.splits[split][0]) and torch.equal(y, again.splits[split][1])
    assert set(task.splits["train"][1].tolist()) == set(range(10))
    assert not torch.equal(task.splits["train"][0], other.splits["train"][0])
    assert task.info["classes"] == 10 and task.info["channels"] == 1
    assert task.source.startswith("generated")
    full = images.digit_images(seed=0, quick=False)
    assert len(full["train"][1]) == images.SPLITS[False]["train"] * images.TRAIN_COPIES[False]


@pytest.mark.parametrize(("shape", "dtype"), [((60, 12, 12, 3), np.uint8),
                                              ((60, 3, 12, 12), np.float32),
                                              ((60, 12, 12), np.uint8)])
def test_user_images_in_either_layout(family, tmp_path, shape, dtype):
    rng = np.random.default_rng(0)
    X = (rng.uniform(0, 255, size=shape)).astype(dtype)
    path = tmp_path / "cifar_like.npz"
    np.savez(path, X=X, y=np.arange(60) % 4, X_test=X[:10], y_test=np.arange(10) % 4)
    task = family.load_task(quick=True, seed=0, data=path)
    channels = 1 if len(shape) == 3 else 3
    assert task.splits["train"][0].shape[1:] == (channels, 12, 12)
    assert task.info["classes"] == 4 and task.source == "file: cifar_like.npz"
    assert len(task.splits["test"][1]) == 10
    model = family.build(task, seed=0)
    assert model(*family.sample(task)).shape == (4, 4)


@pytest.mark.parametrize(("change", "key"), [
    (lambda a: a.pop("y"), "'y'"),
    (lambda a: a.pop("X"), "'X'"),
    (lambda a: a.__setitem__("y", a["y"][:-1]), "'y'"),
    (lambda a: a["X"].__setitem__((0, 0, 0, 0), np.nan), "'X'"),
    (lambda a: a.__setitem__("X", a["X"][:, :, 0, 0]), "'X'"),
    (lambda a: a.__setitem__("X_test", a["X"][:5]), "'y_test'"),
    (lambda a: a.__setitem__("y", a["y"] + 0.5), "'y'"),
])
def test_a_bad_user_file_names_the_file_and_the_key(family, tmp_path, change, key):
    arrays = {"X": np.zeros((20, 3, 8, 8), np.float32), "y": np.arange(20) % 2}
    change(arrays)
    path = tmp_path / "bad_images.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=key) as caught:
        family.load_task(quick=True, seed=0, data=path)
    assert "bad_images.npz" in str(caught.value)


def test_a_missing_or_unreadable_file_is_named(family, tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_text("not an archive")
    for path in (tmp_path / "absent.npz", junk):
        with pytest.raises(DataError, match=path.name):
            family.load_task(quick=True, seed=0, data=path)


def _adaptable(family, model: nn.Module) -> set[str]:
    """Paths of the layers adapt should replace: convolutions, linears, attention projections."""
    paths = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            paths |= {f"{name}.{p}" for p in ("q_proj", "k_proj", "v_proj", "out_proj")}
        elif (isinstance(module, (nn.Linear, nn.Conv2d))
              and not _matches(name, family.ADAPT["train"])):
            paths.add(name)
    return paths


def test_adapt_leaves_no_weight_frozen_and_unadapted(family, task):
    model = _adapted(family, task)
    assert set(adapted_layers(model)) == _adaptable(family, family.build(task, seed=0))
    adapters = {f"{layer}.{p}" for layer in adapted_layers(model) for p in ("A_", "B_", "beta_")}
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad, f"{name} is frozen but not a scaffold"
        assert name in adapters or _matches(name, family.ADAPT["train"]), name
    for name, buffer in model.named_buffers():
        if buffer.dim() >= 2:
            assert name.endswith(".W_") and name.rsplit(".", 1)[0] in adapted_layers(model)


def test_each_group_trains_its_layers_fully(family, task):
    for group, patterns in family.GROUPS.items():
        model = _adapted(family, task, r=max(family.RANKS),
                         train=[*family.ADAPT["train"], *patterns])
        plain = [m for n, m in model.named_modules()
                 if n and any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        assert plain, group
        for module in plain:
            assert type(module).__module__.startswith("torch."), (group, module)
            weights = [p for p in module.parameters() if p.dim() >= 2]
            assert weights and all(p.requires_grad for p in weights), (group, module)


def test_merge_gives_plain_torch_modules_with_the_same_outputs(family, task):
    model = _adapted(family, task, r=8)
    with torch.no_grad():  # a non-trivial adapter: B = 0 would make the merge trivial
        for name, parameter in model.named_parameters():
            if name.endswith("B_"):
                parameter.normal_(0.0, 0.05)
            elif name.endswith("beta_"):
                parameter.fill_(1.3)
    merged = dr.merge(model)
    modules = {type(m).__module__ for m in merged.modules()}
    assert not any(name.split(".")[0] == "deepreservoir" for name in modules), modules
    model.eval()
    merged.eval()
    inputs = family.sample(task)
    with torch.no_grad():
        assert torch.allclose(model(*inputs), merged(*inputs), atol=1e-5, rtol=0)


def test_one_training_step_and_the_save_load_round_trip(family, task, tmp_path):
    few = common.Task(name=family.NAME, splits={**task.splits, "train": (
        task.splits["train"][0][:32], task.splits["train"][1][:32])}, source=task.source,
        info=task.info)
    model = _adapted(family, few)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    hyper = common.Hyper(epochs=1, batch_size=32, lr_full=1e-3, lr_lora=1e-2)
    result = common.train(model, family, few, lr=hyper.lr_lora, hyper=hyper, seed=0)
    assert result["steps"] == 1 and np.isfinite(result["train_loss"])
    after = dict(model.named_parameters())
    assert all(torch.isfinite(p).all() for p in after.values())
    assert any(not torch.equal(before[n], after[n]) for n in before)
    assert 0.0 <= common.evaluate(model, family, few, "val") <= 1.0
    path = dr.save_adapted(model, tmp_path / f"{family.NAME}.safetensors")
    loaded = dr.load_adapted(family.build(few, seed=0), path).eval()
    with torch.no_grad():
        assert torch.equal(model(*family.sample(few)), loaded(*family.sample(few)))
