"""examples/distributed_lottalora.py runs under torchrun on two CPU processes."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "distributed_lottalora.py"


def test_the_example_trains_on_two_processes_with_torchrun():
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    result = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", str(EXAMPLE),
                             "--epochs", "2"], capture_output=True, text=True, timeout=180,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 process(es)" in result.stdout
    accuracy = float(re.search(r"validation accuracy = ([0-9.]+)", result.stdout).group(1))
    assert accuracy > 0.9
