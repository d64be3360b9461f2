"""The "text" family of the architectures study (analysis/_arch_text.py).

Snippets of standard-library packages classified by a Transformer; the quick
data and one training step take about a second of CPU.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import deepreservoir as dr
from deepreservoir.adapt import _matches, adapted_layers
from deepreservoir.errors import DataError
from deepreservoir.studies import load_helper

ANALYSIS = Path(__file__).resolve().parents[2] / "analysis"
family = load_helper("_arch_text", ANALYSIS)
common = load_helper("_arch_common", ANALYSIS)
stdlib = load_helper("_arch_stdlib", ANALYSIS)



@pytest.fixture(scope="module")
def task():
    return family.load_task(quick=True, seed=0)



def _adapted(task, r=1, **changes):
    return dr.adapt(family.build(task, seed=0), r=r, seed=0, **{**family.ADAPT, **changes})


def test_the_family_follows_the_protocol():
    assert not [name for name in common.PROTOCOL if not hasattr(family, name)]
    assert family.NAME == "text" and family.RANKS == (1, 8) and family.REQUIRES == ()
    assert (family.PAPER.lora, family.PAPER.full, family.PAPER.rank) == (85.12, 85.69, 8)
    assert family.ADAPT["alpha"] == 16  # the paper's IMDB α = 2r is not a fixed alpha
    assert family.METRIC.percent and family.METRIC.higher_is_better
    assert set(family.HYPER) == {"full", "quick"}
    assert 4 <= len(family.PACKAGES) <= 8


def test_snippets_are_deterministic_balanced_and_from_held_out_files(task):
    again = family.load_task(quick=True, seed=0)
    other = family.load_task(quick=True, seed=1)
    length = family.LENGTH["quick"]
    classes = len(family.PACKAGES)
    for split, count in zip(("train", "val", "test"), family.SNIPPETS["quick"], strict=True):
        tokens, labels = task.splits[split]
        assert tokens.shape == (count * classes, length) and tokens.dtype == torch.int64
        assert labels.dtype == torch.int64
        assert 0 <= int(tokens.min()) and int(tokens.max()) < 256
        assert np.bincount(labels.numpy(), minlength=classes).tolist() == [count] * classes
        assert torch.equal(tokens, again.splits[split][0])
        assert torch.equal(labels, again.splits[split][1])
    assert not torch.equal(task.splits["train"][0], other.splits["train"][0])
    names = task.info["file_names"]
    assert not set(names["test"]) & set(names["train"])
    assert not set(names["val"]) & set(names["train"])
    for package in family.PACKAGES:  # every package has files in each split
        for split in ("train", "val", "test"):
            assert any(n.startswith(package + "/") for n in names[split]), (package, split)
    assert task.source.startswith("generated") and task.info["classes"] == classes


def test_the_stdlib_reader_leaves_test_folders_out():
    files = stdlib.group_files("unittest")
    assert files == sorted(files)
    assert not any("test" in p.relative_to(stdlib.stdlib_dir()).parts[1:-1] for p in files)
    with pytest.raises(DataError, match="no_such_package"):
        stdlib.group_files("no_such_package")


def test_a_user_file(tmp_path):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, size=(40, 24))
    path = tmp_path / "reviews.npz"
    np.savez(path, tokens=tokens, y=np.arange(40) % 3, vocab=np.array(50),
             tokens_test=tokens[:10], y_test=np.arange(10) % 3)
    task = family.load_task(quick=True, seed=0, data=path)
    assert task.source == "file: reviews.npz"
    assert task.info["vocab"] == 50 and task.info["classes"] == 3 and task.info["length"] == 24
    assert len(task.splits["test"][1]) == 10
    assert len(task.splits["train"][1]) + len(task.splits["val"][1]) == 40
    model = family.build(task, seed=0)
    assert model.embed.num_embeddings == 50
    assert model(*family.sample(task)).shape == (4, 3)
    np.savez(path, tokens=tokens, y=np.arange(40) % 3)  # no test split: 20 % held out
    task = family.load_task(quick=True, seed=0, data=path)
    assert len(task.splits["test"][1]) == 8 and task.info["vocab"] == 256


@pytest.mark.parametrize(("change", "key"), [
    (lambda a: a.pop("y"), "'y'"),
    (lambda a: a.pop("tokens"), "'tokens'"),
    (lambda a: a.__setitem__("tokens", a["tokens"][:, 0]), "'tokens'"),
    (lambda a: a.__setitem__("tokens", np.where(a["tokens"] == 1, np.nan, 0.0)), "'tokens'"),
    (lambda a: a.__setitem__("tokens", a["tokens"] + 300), "'tokens'"),
    (lambda a: a.__setitem__("y", a["y"][:-1]), "'y'"),
    (lambda a: a.__setitem__("y", a["y"] + 0.5), "'y'"),
    (lambda a: a.__setitem__("tokens_test", a["tokens"][:5]), "'y_test'"),
    (lambda a: a.update(tokens_test=a["tokens"][:5, :4], y_test=a["y"][:5]), "'tokens_test'"),
    (lambda a: a.__setitem__("vocab", np.array([1.5])), "'vocab'"),
])
def test_a_bad_user_file_names_the_file_and_the_key(tmp_path, change, key):
    arrays = {"tokens": np.arange(160).reshape(20, 8) % 7, "y": np.arange(20) % 2}
    change(arrays)
    path = tmp_path / "bad_text.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=key) as caught:
        family.load_task(quick=True, seed=0, data=path)
    assert "bad_text.npz" in str(caught.value)


def _adaptable(model: nn.Module) -> set[str]:
    """Paths of the layers adapt should replace: embedding, linears, attention projections."""
    paths = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            paths |= {f"{name}.{p}" for p in ("q_proj", "k_proj", "v_proj", "out_proj")}
        elif (isinstance(module, (nn.Linear, nn.Embedding))
              and not _matches(name, family.ADAPT["train"]) and ".self_attn." not in name):
            paths.add(name)
    return paths


def test_adapt_leaves_no_weight_frozen_and_unadapted(task):
    model = _adapted(task)
    assert set(adapted_layers(model)) == _adaptable(family.build(task, seed=0))
    adapters = {f"{layer}.{p}" for layer in adapted_layers(model) for p in ("A_", "B_", "beta_")}
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad, f"{name} is frozen but not a scaffold"
        assert name in adapters or _matches(name, family.ADAPT["train"]), name
    assert model.position.requires_grad and model.head.weight.requires_grad
    for name, buffer in model.named_buffers():
        if buffer.dim() >= 2:
            assert name.endswith(".W_") and name.rsplit(".", 1)[0] in adapted_layers(model)


def test_each_group_trains_its_layers_fully(task):
    for group, patterns in family.GROUPS.items():
        model = _adapted(task, r=max(family.RANKS), train=[*family.ADAPT["train"], *patterns])
        plain = [m for n, m in model.named_modules()
                 if n and any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        assert plain, group
        for module in plain:
            assert type(module).__module__.startswith("torch."), (group, module)
            weights = [p for p in module.parameters() if p.dim() >= 2]
            assert weights and all(p.requires_grad for p in weights), (group, module)


def test_merge_gives_plain_torch_modules_with_the_same_outputs(task):
    model = _adapted(task, r=8)
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
    with torch.no_grad():
        assert torch.allclose(model(*family.sample(task)), merged(*family.sample(task)),
                              atol=1e-5, rtol=0)


def test_one_training_step_and_the_save_load_round_trip(task, tmp_path):
    few = common.Task(name="text", splits={**task.splits, "train": (
        task.splits["train"][0][:32], task.splits["train"][1][:32])}, source=task.source,
        info=task.info)
    model = _adapted(few)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    hyper = family.HYPER["quick"]
    result = common.train(model, family, few, lr=hyper.lr_lora, hyper=hyper, seed=0)
    assert result["steps"] == 1 and np.isfinite(result["train_loss"])
    after = dict(model.named_parameters())
    assert all(torch.isfinite(p).all() for p in after.values())
    assert any(not torch.equal(before[n], after[n]) for n in before)
    assert 0.0 <= common.evaluate(model, family, few, "test") <= 1.0
    path = dr.save_adapted(model, tmp_path / "text.safetensors")
    loaded = dr.load_adapted(family.build(few, seed=0), path).eval()
    with torch.no_grad():
        assert torch.equal(model(*family.sample(few)), loaded(*family.sample(few)))
