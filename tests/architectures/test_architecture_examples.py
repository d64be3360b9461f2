"""The per-family examples of ``examples/architectures/`` run, and each fits in 60 lines."""

import runpy
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "architectures"
SCRIPTS = {"cnn.py": (), "vit.py": (), "gcn.py": ("torch_geometric",),
           "gin.py": ("torch_geometric",), "cfc.py": ("ncps",), "text.py": (),
           "dt.py": ("gymnasium",), "lm.py": ()}


def test_there_is_one_example_per_family():
    assert sorted(p.name for p in FOLDER.glob("*.py")) == sorted(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_the_example_is_short_and_runs(script, capsys, monkeypatch, tmp_path):
    lines = (FOLDER / script).read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 60, f"{script} has {len(lines)} lines"
    for module in SCRIPTS[script]:
        pytest.importorskip(module)
    import torch

    from deepreservoir.threads import use_threads

    previous = torch.get_num_threads()
    use_threads(1)
    monkeypatch.chdir(tmp_path)  # anything the example writes lands here
    try:
        runpy.run_path(str(FOLDER / script), run_name="__main__")
    finally:
        torch.set_num_threads(previous)
    out = capsys.readouterr().out
    assert "trainable" in out.lower(), out  # each prints its trained-parameter count
