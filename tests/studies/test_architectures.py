"""Study 9 (analysis/architectures.py), quick version: eight families through ``dr.adapt``.

The quick study runs once for the module, on one torch thread, through the same
runner as ``deepreservoir reproduce``. At that size only the contracts hold and
are asserted: every family runs, ``dr.merge`` gives plain torch modules with the
same outputs, ``dr.load_adapted`` reproduces the outputs bit for bit, the
artifact is smaller than the dense checkpoint and fewer parameters train. The
accuracy comparisons with the paper are the full run's (analysis/results/).
"""

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from deepreservoir.errors import DataError
from deepreservoir.studies import load_study, run_study

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")
for _module in ("torch_geometric", "ncps", "gymnasium"):
    pytest.importorskip(_module)

ANALYSIS = Path(__file__).resolve().parents[2] / "analysis"
FAMILIES = ("cfc", "cnn", "gin", "gcn", "vit", "text", "dt", "lm")


@pytest.fixture(scope="module")
def one_thread():
    import torch

    from deepreservoir.threads import use_threads

    previous = torch.get_num_threads()
    use_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def quick(tmp_path_factory, one_thread):
    folder = tmp_path_factory.mktemp("architectures")
    return folder, run_study("architectures", folder, quick=True, seed=0, progress=False,
                             studies_dir=ANALYSIS)


def test_the_quick_study_keeps_every_contract(quick):
    folder, result = quick
    assert sorted(Path(p).name for p in result["files"]) == [
        "architectures.md", "architectures.nc", "architectures.png"]
    assert result["claims"] == {
        "every_family_ran": True, "merge_gives_plain_modules": True,
        "load_adapted_is_bitwise": True, "artifact_smaller_than_dense": True,
        "fewer_trained_parameters": True}
    dataset = xr.open_dataset(folder / "architectures.nc")
    assert list(dataset["family"].values) == list(FAMILIES)
    assert list(dataset["variant"].values) == ["full", "r1", "r8", "r16"]
    metric = dataset["metric"]
    assert np.isfinite(metric.sel(variant=["full", "r1", "r8"])).all()
    assert np.isfinite(metric.sel(family="cnn", variant="r16"))
    assert np.isnan(metric.sel(family="vit", variant="r16"))  # the CNN alone has r = 16
    trainable = dataset["trainable"]
    assert (trainable.sel(variant="r1") < trainable.sel(variant="r8")).all()
    assert (dataset["artifact_bytes"].sel(variant="r8")
            < dataset["artifact_bytes"].sel(variant="full")).all()
    assert set(dataset["layer_family"].values) == set(FAMILIES)
    assert np.isfinite(dataset["beta"]).all() and (dataset["sigma1_seed"] > 0).all()
    assert set(dataset["group_family"].values) == set(FAMILIES)  # one gap run each


def test_the_summary_puts_the_paper_beside_ours(quick):
    _, result = quick
    text = result["summary"]
    for benchmark in ("PhysioNet", "CIFAR-10", "ogbg-molhiv", "ogbn-arxiv", "IMDB",
                      "WikiText-103"):
        assert benchmark in text, benchmark
    results = text.split("## Results")[1].split("## Where we differ")[0]
    assert len(re.findall(r"^\| (?!family|---)", results, flags=re.M)) == 8
    verdicts = text.split("## Where we differ")[1].split("## β")[0]
    assert len(re.findall(r"^\| .*% of full training", verdicts, flags=re.M)) == 8
    assert "Run time:" in text and "torch thread" in text
    assert "checkpoint" in text.split("## Further figures")[1]  # the language model's sizes


def test_a_users_file_runs_its_family_only(tmp_path, one_thread):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images[:240] * 16).clip(0, 255).astype(np.uint8)[..., None]
    path = tmp_path / "tiny_images.npz"
    np.savez(path, family="cnn", X=images, y=digits.target[:240])
    result = run_study("architectures", tmp_path / "out", quick=True, seed=1,
                       progress=False, data=path, studies_dir=ANALYSIS)
    dataset = xr.open_dataset(tmp_path / "out" / "architectures.nc")
    assert list(dataset["family"].values) == ["cnn"]
    assert "tiny_images.npz" in result["summary"]


def test_a_users_file_must_name_its_family(tmp_path):
    study = load_study("architectures", ANALYSIS)
    path = tmp_path / "nameless.npz"
    np.savez(path, X=np.zeros((4, 8, 8, 1)), y=np.zeros(4))
    with pytest.raises(DataError, match="has no 'family' entry.*one of cfc, cnn"):
        study.run(tmp_path, quick=True, progress=False, data=path)
    np.savez(path, family="resnet50", X=np.zeros((4, 8, 8, 1)), y=np.zeros(4))
    with pytest.raises(DataError, match=r"names the families \['resnet50'\]"):
        study.run(tmp_path, quick=True, progress=False, data=path)
