"""The examples run as a newcomer would run them, each in under a minute."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str, timeout: int = 120) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args],
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_esn_mackey_glass(tmp_path):
    pytest.importorskip("matplotlib")
    out = _run("esn_mackey_glass.py", "--output", str(tmp_path))
    nrmse = float(re.search(r"NRMSE = ([0-9.e+-]+)", out).group(1))
    assert nrmse < 5e-3
    assert (tmp_path / "esn_mackey_glass.png").stat().st_size > 10_000
