"""The analysis examples run as a newcomer would run them, each in well under a minute."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(script, *args, timeout=120):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args],
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow  # a subprocess importing torch: ~10 s
def test_esp_diagnostics(tmp_path):
    pytest.importorskip("matplotlib")
    out = _run("esp_diagnostics.py", "--output", str(tmp_path))
    assert "2x2 counterexample (ρ = 0.7): overall verdict 'not contracting on this input'" in out
    assert "300-unit reservoir: overall verdict 'empirically contracting on this input'" in out
    assert float(re.search(r"all checks in ([0-9.]+) s", out).group(1)) < 60
    for name in ("esp_deep_chain.png", "esp_counterexample.png", "spectra_deep_chain.png"):
        assert (tmp_path / name).stat().st_size > 10_000


@pytest.mark.slow  # a subprocess importing torch: ~7 s
def test_intrinsic_dimension(tmp_path):
    pytest.importorskip("matplotlib")
    out = _run("intrinsic_dimension.py", "--output", str(tmp_path))
    sphere = re.search(r"3-sphere in R\^40 +d = 3: .*twonn ([0-9.]+), mle ([0-9.]+)", out)
    assert abs(float(sphere.group(1)) - 3) < 0.3
    assert abs(float(sphere.group(2)) - 3) < 0.4
    assert (tmp_path / "intrinsic_dimension_states.png").stat().st_size > 10_000
