"""The LottaLoRA examples run as a newcomer would run them (each under a minute)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args],
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_lottalora_mnist1d():
    pytest.importorskip("mnist1d")
    out = _run("lottalora_mnist1d.py", "--epochs", "5")
    assert float(re.search(r"LottaLoRA r=8: test accuracy ([0-9.]+)", out).group(1)) > 0.25
    assert "bit-identical: True" in out


@pytest.mark.slow
def test_adapt_transformer():
    out = _run("adapt_transformer.py")
    assert "merged into a plain MultiheadAttention" in out
    accuracy = float(re.search(r"training adapters, heads and norms: ([0-9.]+)", out).group(1))
    assert accuracy > 0.8
