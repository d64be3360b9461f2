"""What a plain install gives: dependencies and extras, studies' options, threads, CLI text."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from deepreservoir import _extras, studies, threads
from deepreservoir.cli import build_parser, main
from deepreservoir.errors import DataError, ParameterError

ROOT = Path(__file__).resolve().parents[2]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def names(requirements):
    return {r.split(">")[0].split("=")[0].split("[")[0].split(";")[0].strip().lower()
            for r in requirements}


def test_core_dependencies_are_what_the_library_needs():
    project = pyproject()["project"]
    core = names(project["dependencies"])
    assert core == {"torch", "numpy", "scipy", "networkx", "xarray", "reservoirpy",
                    "safetensors", "tqdm", "tomli", "threadpoolctl"}
    extras = {key: names(value) for key, value in project["optional-dependencies"].items()}
    assert {"matplotlib", "mnist1d", "netcdf4", "scikit-learn"} <= extras["demo"]
    for extra in ("plot", "bench", "demo"):  # none is a no-op
        assert extras[extra] - core, extra
    assert "deepreservoir" in extras["test"]  # the tests run the demo and the studies
    assert set(_extras.DEMO_MODULES.values()) == {"matplotlib", "mnist1d", "netCDF4",
                                                  "scikit-learn"}
    assert extras["architectures"] == set(_extras.ARCHITECTURES_MODULES.values())
    assert "deepreservoir[demo,distributed,architectures]" in project[
        "optional-dependencies"]["test"]  # the quick architectures study runs in the tests


def test_license_and_urls_are_in_the_metadata():
    project = pyproject()["project"]
    assert project["license"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert {"Homepage", "Source", "Issues"} <= set(project["urls"])


def test_the_studies_ship_inside_the_package():
    setuptools = pyproject()["tool"]["setuptools"]
    assert setuptools["package-dir"]["deepreservoir._studies"] == "analysis"
    assert "deepreservoir._studies" in setuptools["packages"]
    assert (ROOT / "analysis" / "__init__.py").is_file()
    packaged = {p.name for p in (ROOT / "deepreservoir").rglob("__init__.py")}
    assert packaged  # every package of the source tree is listed
    for init in (ROOT / "deepreservoir").rglob("__init__.py"):
        dotted = ".".join(init.parent.relative_to(ROOT).parts)
        assert dotted in setuptools["packages"], dotted


def test_a_missing_extra_is_named_before_any_work(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(_extras, "DEMO_MODULES", {**_extras.DEMO_MODULES,
                                                  "no_such_module_xyz": "no-such-dist"})
    with pytest.raises(_extras.MissingDependencyError, match=r"deepreservoir\[demo\]"):
        _extras.require_extra("the demo")
    assert main(["demo", "--quick", "--out", str(tmp_path / "d"), "--no-progress"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "no-such-dist" in error[0] and "[demo]" in error[0]
    assert not (tmp_path / "d").exists()


def test_one_thread_unless_told(monkeypatch):
    previous = torch.get_num_threads()
    try:
        monkeypatch.delenv("DEEPRESERVOIR_NUM_THREADS", raising=False)
        torch.set_num_threads(2)
        assert threads.use_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("DEEPRESERVOIR_NUM_THREADS", "2")
        assert threads.use_threads() == 2
        assert threads.use_threads(1) == 1
        with pytest.raises(ParameterError, match="'count'"):
            threads.use_threads(0)
    finally:
        torch.set_num_threads(previous)


STUDY = '''
import xarray as xr
TITLE = "takes data"
PAPER = "none"
SEEN = {}
def run(out_dir, *, quick=False, seed=0, progress=True, data=None, recipe="default"):
    import torch
    SEEN.update(data=data, recipe=recipe, threads=torch.get_num_threads())
    ds = xr.Dataset({"threads": ((), torch.get_num_threads())})
    for suffix in ("nc", "png", "md"):
        (out_dir / f"takes.{suffix}").write_text("x")
    return {"dataset": ds, "summary": f"data={data} recipe={recipe} "
            f"threads={torch.get_num_threads()}", "claims": {}, "files": []}
'''


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "studies"
    root.mkdir()
    (root / "takes.py").write_text(STUDY)
    (root / "plain.py").write_text(textwrap.dedent("""
        TITLE = "takes nothing"
        PAPER = "none"
        def run(out_dir, *, quick=False, seed=0, progress=True):
            raise AssertionError("must not run")
    """))
    np.savez(tmp_path / "mine.npz", X=np.random.default_rng(0).random((20, 3)),
             y=np.arange(20) % 2)
    return root


def test_data_and_recipe_reach_a_study_that_takes_them(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DEEPRESERVOIR_NUM_THREADS", raising=False)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(["reproduce", "takes", "--studies-dir", str(folder), "--out",
                     str(tmp_path / "o"), "--data", str(tmp_path / "mine.npz"), "--recipe",
                     "paper", "--no-progress"]) == 0
    finally:
        torch.set_num_threads(previous)
    printed = capsys.readouterr().out
    assert f"data={tmp_path / 'mine.npz'} recipe=paper threads=1" in printed


@pytest.mark.parametrize("option, value", [("data", "mine.npz"), ("recipe", "paper")])
def test_a_study_that_does_not_take_an_option_refuses_it_by_name(folder, tmp_path, option,
                                                                 value):
    if option == "data":
        value = str(tmp_path / value)
    with pytest.raises(ParameterError, match=f"'{option}' parameter"):
        studies.run_study("plain", tmp_path / "o", studies_dir=folder, **{option: value})


def test_a_bad_data_file_or_recipe_is_refused_before_running(folder, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        studies.run_study("takes", tmp_path / "o", studies_dir=folder,
                          data=tmp_path / "absent.npz")
    with pytest.raises(ParameterError, match="'recipe'"):
        studies.run_study("takes", tmp_path / "o", studies_dir=folder, recipe="fast")


def test_help_texts_have_no_stray_percent_signs(capsys):
    parser = build_parser()
    for command in ("demo", "sweep", "inspect", "reproduce"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        text = capsys.readouterr().out
        assert "%%" not in text, command
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    top = capsys.readouterr().out
    assert "%%" not in top and "DEMO_TIME" not in top


def test_the_sweep_writes_into_the_current_folder(tmp_path, monkeypatch):
    source = tmp_path / "configs"
    source.mkdir()
    rng = np.random.default_rng(0)
    np.savez(source / "blobs.npz", X=rng.normal(size=(60, 4)).astype(np.float32),
             y=np.arange(60) % 2)
    (source / "grid.toml").write_text(textwrap.dedent("""
        [sweep]
        dataset = "blobs.npz"
        presets = ["tiny"]
        ranks = [1]
        full = false
        [train]
        epochs = 1
    """))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["sweep", str(source / "grid.toml"), "--no-progress"]) == 0
    assert (work / "grid.nc").is_file()
    assert not (source / "grid.nc").exists()
