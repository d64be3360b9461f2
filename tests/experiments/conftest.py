"""Shared helpers of the experiment-engine tests: TOML files, factory modules, one thread."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one thread avoids OpenMP spin-waits on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def write_toml(tmp_path):
    """``write_toml(text, name="experiment.toml")`` → the path of a TOML file in tmp_path."""

    def write(text: str, name: str = "experiment.toml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    """``factory_module(name, source)``: an importable module in tmp_path (forgotten afterwards)."""
    folder = tmp_path / "factories"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    written = []

    def write(name: str, source: str) -> str:
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)
