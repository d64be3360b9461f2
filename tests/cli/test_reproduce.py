"""The study contract and ``deepreservoir reproduce``, on small fake studies."""

from __future__ import annotations

import textwrap

import pytest

from deepreservoir import studies
from deepreservoir.cli import main
from deepreservoir.errors import DataError, ParameterError

HELPER = """
SCALE = 3
def double(x):
    return 2 * x
"""

GOOD = '''
"""A study that follows the contract."""
from pathlib import Path

import numpy as np
import xarray as xr

from deepreservoir.studies import load_helper

helper = load_helper("_tools", Path(__file__).parent)

TITLE = "A fake study"
PAPER = "Table 0: nothing"


def run(out_dir, *, quick=False, seed=0, progress=True):
    values = np.arange(4 if quick else 8) * helper.SCALE + seed
    ds = xr.Dataset({"value": ("i", values)}, attrs={"quick": int(quick)})
    ds.to_netcdf(out_dir / "good.nc")
    (out_dir / "good.png").write_bytes(b"png")
    summary = f"# fake\\npaper 1 / ours {helper.double(values.sum())}"
    (out_dir / "good.md").write_text(summary)
    return {"dataset": ds, "summary": summary, "claims": {"sum_is_even": True,
            "never": False}, "files": [out_dir / "good.nc"]}
'''


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "studies"
    root.mkdir()
    (root / "_tools.py").write_text(HELPER)
    (root / "good.py").write_text(GOOD)
    (root / "no_title.py").write_text("PAPER = 'x'\ndef run(out_dir, **kw):\n    return {}\n")
    (root / "bad_result.py").write_text(textwrap.dedent("""
        TITLE = "returns a wrong result"
        PAPER = "none"
        def run(out_dir, *, quick=False, seed=0, progress=True):
            return {"dataset": None, "summary": "", "claims": {}, "files": []}
    """))
    (root / "no_files.py").write_text(textwrap.dedent("""
        import xarray as xr
        TITLE = "writes nothing"
        PAPER = "none"
        def run(out_dir, *, quick=False, seed=0, progress=True):
            return {"dataset": xr.Dataset(), "summary": "", "claims": {"a": True}, "files": []}
    """))
    return root


def test_available_studies_skips_helpers(folder):
    assert studies.available_studies(folder) == ["bad_result", "good", "no_files", "no_title"]


def test_search_order(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(studies.ENV_VARIABLE, str(folder))
    assert studies.find_studies_dir() == folder
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    assert studies.find_studies_dir(explicit) == explicit
    monkeypatch.delenv(studies.ENV_VARIABLE)
    # a folder that happens to be called ./analysis is not imported unless named
    (tmp_path / "analysis").mkdir()
    assert studies.find_studies_dir() == studies.shipped_studies_dir()


def test_a_stray_analysis_folder_is_never_imported(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(studies.ENV_VARIABLE, raising=False)
    (tmp_path / "analysis").mkdir()
    marker = tmp_path / "imported"
    (tmp_path / "analysis" / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\nTITLE = 'evil'\nPAPER = 'none'\n"
        f"def run(out_dir, **kw):\n    return {{}}\n")
    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "evil" not in listed and "rank_sweep" in listed
    assert not marker.exists()
    assert main(["reproduce", "--list", "--studies-dir", "analysis"]) == 0
    assert "evil" in capsys.readouterr().out and marker.exists()


def test_the_shipped_studies_are_found_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(studies.ENV_VARIABLE, raising=False)
    found = studies.find_studies_dir()
    assert found == studies.shipped_studies_dir()
    assert {"rank_sweep", "ablations", "time_axis"} <= set(studies.available_studies(found))
    assert (found / "_common.py").is_file()


def test_run_study_and_helper(folder, tmp_path):
    result = studies.run_study("good", tmp_path / "out", quick=True, seed=1, studies_dir=folder)
    assert list(result["dataset"]["value"].values) == [1, 4, 7, 10]
    assert result["summary"].endswith(str(2 * (1 + 4 + 7 + 10)))
    assert result["seconds"] >= 0
    assert (tmp_path / "out" / "good.md").is_file()


@pytest.mark.parametrize(("name", "error", "fragment"), [
    ("no_title", DataError, "must define TITLE"),
    ("bad_result", DataError, "must return 'dataset' as Dataset"),
    ("no_files", DataError, "did not write"),
    ("absent", ParameterError, "Unknown study 'absent'"),
])
def test_contract_violations(folder, tmp_path, name, error, fragment):
    with pytest.raises(error, match=fragment):
        studies.run_study(name, tmp_path / "out", studies_dir=folder)


def test_missing_helper(folder):
    with pytest.raises(DataError, match="No helper module '_nothing'"):
        studies.load_helper("nothing", folder)


def test_reproduce_command(folder, tmp_path, capsys):
    out = tmp_path / "results"
    code = main(["reproduce", "good", "--quick", "--out", str(out), "--studies-dir", str(folder),
                 "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "# fake" in printed
    assert "Claims holding on this data: sum_is_even" in printed
    assert "Claims not holding: never" in printed
    assert (out / "good.nc").is_file()


def test_reproduce_contract_error_is_one_line(folder, tmp_path, capsys):
    code = main(["reproduce", "no_files", "--out", str(tmp_path), "--studies-dir", str(folder)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "did not write" in err


def test_reproduce_list(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("rank_sweep", "families", "scaffold_resampling", "ablations"):
        line = next(line for line in out.splitlines() if line.strip().startswith(name))
        module = studies.load_study(name)
        assert module.TITLE in line and module.PAPER in line
