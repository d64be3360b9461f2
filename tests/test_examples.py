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


def test_deep_esn():
    out = _run("deep_esn.py")
    assert "r1 >> r2" in out and "r3 >> readout" in out  # the chain, and every layer read
    errors = dict(re.findall(r"(deep ESN|single reservoir).*NRMSE = ([0-9.e+-]+)", out))
    deep, single = float(errors["deep ESN"]), float(errors["single reservoir"])
    assert deep < 5e-3
    assert deep < single  # three stacked 200-unit layers beat one 600-unit reservoir here
    assert out.count("contracting on this input") == 3


def test_every_example_is_run_by_a_test():
    """Each script in examples/ is named in some test file (this one or another suite's)."""
    tests = Path(__file__).resolve().parent
    text = "\n".join(path.read_text(encoding="utf-8") for path in tests.rglob("test_*.py"))
    missing = [script.name for script in sorted(EXAMPLES.glob("*.py"))
               if f'"{script.name}"' not in text]
    assert not missing, f"examples without a test: {missing}"
