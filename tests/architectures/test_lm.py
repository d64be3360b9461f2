"""The "lm" family of the architectures study (analysis/_arch_lm.py), and training_step_peak.

A byte-level causal Transformer on standard-library source; the quick data,
one training step and the quick extras take a few seconds of CPU.
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
from deepreservoir.footprint import training_step_peak
from deepreservoir.studies import load_helper

ANALYSIS = Path(__file__).resolve().parents[2] / "analysis"
family = load_helper("_arch_lm", ANALYSIS)
common = load_helper("_arch_common", ANALYSIS)
PROTOCOL = ("NAME", "TITLE", "PAPER", "RANKS", "REQUIRES", "METRIC", "HYPER", "ADAPT",
            "GROUPS", "DATA_KEYS", "load_task", "build", "batches", "loss", "evaluate",
            "sample", "extras")



@pytest.fixture(scope="module")
def task():
    return family.load_task(quick=True, seed=0)



def _adapted(task, r=1, **changes):
    return dr.adapt(family.build(task, seed=0), r=r, seed=0, **{**family.ADAPT, **changes})


class _KnownStep:
    """A step whose allocations are known: 4,000 then 8,000 bytes held at once, then freed."""

    def __init__(self) -> None:
        self.weight = nn.Parameter(torch.zeros(16))
        self.optimizer = torch.optim.SGD([self.weight], lr=0.1)
        self.steps = 0

    def step(self) -> None:
        first = torch.ones(1000)           # 4,000 bytes
        second = torch.ones(2000)          # 8,000 bytes: 12,000 held at once
        del first
        third = torch.ones(500)            # 2,000 bytes: 10,000 held, below the peak
        del second, third
        self.weight.grad = torch.ones(16)  # 64 bytes that outlive the step
        self.optimizer.step()
        self.steps += 1


def test_training_step_peak_replays_the_allocations_of_one_step():
    run = _KnownStep()
    measured = training_step_peak(run, lambda r: 1234)
    assert run.steps == 3  # two warm-up steps, one profiled
    assert measured["baseline"] == 1234
    extra = measured["peak"] - measured["baseline"]
    assert 12_000 <= extra < 12_000 + 1_024  # the 12,000 bytes held at once, a little slack
    assert run.weight.grad is not None  # the profiled step ran after zero_grad(set_to_none)


def test_the_benchmarks_share_the_package_function():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "_memory.py"
    spec = importlib.util.spec_from_file_location("benchmark_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.step_tensor_peak is training_step_peak


def test_the_family_follows_the_protocol():
    assert not [name for name in common.PROTOCOL if not hasattr(family, name)]
    assert family.NAME == "lm" and family.RANKS == (1, 8) and family.REQUIRES == ()
    assert (family.PAPER.lora, family.PAPER.full, family.PAPER.rank) == (3.950, 3.156, 8)
    assert family.ADAPT["alpha"] == 16
    assert family.METRIC.name == "loss" and not family.METRIC.higher_is_better


def test_the_text_is_deterministic_and_split_by_files(task):
    again = family.load_task(quick=True, seed=0)
    other = family.load_task(quick=True, seed=1)
    for split, size in zip(("train", "val", "test"), family.TEXT_BYTES["quick"], strict=True):
        stream = task.splits[split]
        assert stream.shape == (size,) and stream.dtype == torch.int64
        assert 0 <= int(stream.min()) and int(stream.max()) < 256
        assert torch.equal(stream, again.splits[split])
    assert not torch.equal(task.splits["train"], other.splits["train"])
    names = task.info["file_names"]
    assert not set(names["test"]) & set(names["train"])
    assert not set(names["val"]) & set(names["train"])
    assert task.source.startswith("generated")


def test_batches_are_next_byte_windows(task):
    context = task.info["sizes"]["context"]
    generator = torch.Generator().manual_seed(0)
    inputs, targets = next(family.batches(task, "train", 8, generator))
    assert inputs.shape == targets.shape == (8, context)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    tested = list(family.batches(task, "test", 1000, torch.Generator()))
    windows = sum(len(x) for x, _ in tested)
    assert windows == (len(task.splits["test"]) - 1) // context  # every byte predicted once
    first = tested[0][0][0]
    assert torch.equal(first, task.splits["test"][:context])


def test_the_model_is_causal(task):
    model = family.build(task, seed=0).eval()
    inputs = family.sample(task)[0]
    changed = inputs.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 256
    with torch.no_grad():
        assert torch.allclose(model(inputs)[:, :-1], model(changed)[:, :-1], atol=1e-6)


def test_a_user_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "wiki.npz"
    np.savez(path, tokens=rng.integers(0, 256, 2000), tokens_test=rng.integers(0, 256, 300))
    task = family.load_task(quick=True, seed=0, data=path)
    assert task.source == "file: wiki.npz"
    assert len(task.splits["test"]) == 300
    assert len(task.splits["train"]) + len(task.splits["val"]) == 2000
    model = family.build(task, seed=0)
    logits = model(*family.sample(task))
    assert logits.shape == (2, task.info["sizes"]["context"], 256)
    np.savez(path, tokens=rng.integers(0, 1000, 5000), vocab=np.array(1000))
    task = family.load_task(quick=True, seed=0, data=path)
    assert len(task.splits["test"]) == 500 and task.info["vocab"] == 1000


@pytest.mark.parametrize(("arrays", "key"), [
    ({"text": np.zeros(1000, int)}, "'tokens'"),
    ({"tokens": np.zeros((100, 10), int)}, "'tokens'"),
    ({"tokens": np.full(1000, np.nan)}, "'tokens'"),
    ({"tokens": np.arange(1000)}, "'tokens'"),                  # tokens up to 999 > 255
    ({"tokens": np.zeros(20, int)}, "'tokens'"),                 # too short for the windows
    ({"tokens": np.zeros(1000, int), "tokens_test": np.zeros(3, int)}, "'tokens_test'"),
    ({"tokens": np.zeros(1000, int), "vocab": np.array(0)}, "'vocab'"),
])
def test_a_bad_user_file_names_the_file_and_the_key(tmp_path, arrays, key):
    path = tmp_path / "bad_lm.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=key) as caught:
        family.load_task(quick=True, seed=0, data=path)
    assert "bad_lm.npz" in str(caught.value)


def test_adapt_leaves_no_weight_frozen_and_unadapted(task):
    model = _adapted(task)
    adapters = {f"{layer}.{p}" for layer in adapted_layers(model) for p in ("A_", "B_", "beta_")}
    assert {"embed", "encoder.layers.0.linear1", "encoder.layers.1.self_attn.q_proj",
            "encoder.layers.1.self_attn.out_proj"} <= set(adapted_layers(model))
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad, f"{name} is frozen but not a scaffold"
        assert name in adapters or _matches(name, family.ADAPT["train"]), name
    for name, buffer in model.named_buffers():
        if buffer.dim() >= 2 and name != "causal":
            assert name.endswith(".W_") and name.rsplit(".", 1)[0] in adapted_layers(model)


def test_each_group_trains_its_layers_fully(task):
    for group, patterns in family.GROUPS.items():
        model = _adapted(task, r=max(family.RANKS), train=[*family.ADAPT["train"], *patterns])
        plain = [m for n, m in model.named_modules()
                 if n and any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        assert plain, group
        for module in plain:
            assert type(module).__module__.startswith("torch."), (group, module)
            assert all(p.requires_grad for p in module.parameters()), (group, module)


def test_merge_gives_plain_torch_modules_with_the_same_outputs(task):
    model = _adapted(task, r=8)
    with torch.no_grad():
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
    context = task.info["sizes"]["context"]
    few = common.Task(name="lm", splits={**task.splits,
                                         "train": task.splits["train"][:8 * context + 1]},
                      source=task.source, info=task.info)
    model = _adapted(few)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    hyper = common.Hyper(epochs=1, batch_size=16, lr_full=1e-3, lr_lora=1e-2)
    result = common.train(model, family, few, lr=hyper.lr_lora, hyper=hyper, seed=0)
    assert result["steps"] == 1 and np.isfinite(result["train_loss"])
    after = dict(model.named_parameters())
    assert all(torch.isfinite(p).all() for p in after.values())
    assert any(not torch.equal(before[n], after[n]) for n in before)
    assert 0.0 < common.evaluate(model, family, few, "test") < 10.0
    path = dr.save_adapted(model, tmp_path / "lm.safetensors")
    loaded = dr.load_adapted(family.build(few, seed=0), path).eval()
    with torch.no_grad():
        assert torch.equal(model(*family.sample(few)), loaded(*family.sample(few)))


def test_extras_give_sizes_and_memory(task):
    figures = family.extras(task, seed=0, quick=True)
    assert 0 < figures["adapted_artifact_bytes"] < figures["dense_checkpoint_bytes"]
    assert figures["artifact_ratio"] == pytest.approx(
        figures["adapted_artifact_bytes"] / figures["dense_checkpoint_bytes"])
    for variant in ("full", "lora_stored", "lora_virtual"):
        assert 0 < figures[f"baseline_{variant}_bytes"] < figures[f"peak_{variant}_bytes"]
    # virtual weights hold no feed-forward scaffold between steps
    assert figures["baseline_lora_virtual_bytes"] < figures["baseline_lora_stored_bytes"]
    assert isinstance(figures["memory_batch"], str)
