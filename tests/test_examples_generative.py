"""The generative Mackey–Glass example and the issue-10 benchmarks run as a newcomer would run
them: the example in under a minute, each benchmark's ``--quick`` mode in seconds."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(path: Path, *args: str, timeout: int = 120) -> str:
    result = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                            timeout=timeout, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _summary(out: str) -> dict:
    lines = [line for line in out.splitlines() if line.startswith("SUMMARY ")]
    assert len(lines) == 1, out
    return json.loads(lines[0][len("SUMMARY "):])


def _number(pattern: str, out: str) -> float:
    return float(re.search(pattern, out).group(1))


def test_esn_generative_mackey_glass(tmp_path):
    pytest.importorskip("matplotlib")
    out = _run(ROOT / "examples" / "esn_generative_mackey_glass.py", "--output", str(tmp_path))
    number = r"([0-9.e+-]+)"
    ours = _number(rf"median NRMSE: deepreservoir = {number}", out)
    theirs = _number(rf"median NRMSE: deepreservoir = \S+, reservoirpy = {number}", out)
    steps = _number(rf"before \|error\| > 0.1: deepreservoir = {number}", out)
    steps_theirs = _number(rf"before \|error\| > 0.1: deepreservoir = \S+, reservoirpy = {number}",
                           out)
    gap = _number(rf"vs 5 calls: max abs difference = {number}", out)
    assert ours < 0.05          # measured 1.302e-02 (median of 5 seeds)
    assert abs(ours - theirs) <= 1e-3 * theirs  # same weights: the printed digits agree
    assert steps >= 200 and steps == steps_theirs  # measured 385 in both
    assert gap < 1e-9           # measured 2.7e-12: batched = separate calls
    rows = re.findall(r"^\s+(\d) \| (\S+), (\S+) \| +(\d+), +(\d+) \| (\S+), (\S+), (\S+)$", out,
                      flags=re.MULTILINE)
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3, 4]
    for row in rows:  # rounding differences of two ridge solves, amplified by the free run
        assert max(float(v) for v in row[5:]) < 1e-5  # measured ≤ 3.4e-7 at step 400
    assert (tmp_path / "esn_generative_mackey_glass.png").stat().st_size > 10_000


def test_bench_generative_quick():
    out = _run(ROOT / "benchmarks" / "bench_generative.py", "--quick", timeout=60)
    summary = _summary(out)
    nrmse = summary["median_nrmse"]
    assert 0 < nrmse["deepreservoir"] < 1 and 0 < nrmse["reservoirpy"] < 1
    assert abs(nrmse["deepreservoir"] - nrmse["reservoirpy"]) <= 1e-4 * nrmse["reservoirpy"]
    steps = summary["median_valid_steps"]
    assert steps["deepreservoir"] == steps["reservoirpy"]
    assert 0 <= steps["deepreservoir"] <= 100
    assert set(summary["median_max_diff"]) == {"50", "100"}  # quick: 100 free-run steps
    assert max(summary["median_max_diff"].values()) < 1e-5
    assert summary["batched_vs_separate"] < 1e-9
    for key in ("speedup_total", "speedup_generate", "batch_speedup_vs_calls",
                "batch_speedup_vs_reservoirpy"):
        assert math.isfinite(summary[key]) and summary[key] > 0
    assert summary["batch_speedup_vs_calls"] > 1  # one call for 3 windows beats 3 calls
    median = [line for line in out.splitlines() if line.startswith("| **median** |")]
    assert len(median) == 1 and len(median[0].split("|")) == 9
    assert "| ours, one call (B = 3) |" in out and "| reservoirpy, 3 loops |" in out


def test_bench_online_quick():
    out = _run(ROOT / "benchmarks" / "bench_online.py", "--quick", timeout=60)
    summary = _summary(out)
    assert set(summary) == {"RLS N=30", "LMS N=30"}
    for case in summary.values():
        assert case["max_diff_float64"] < 1e-9  # measured RLS 1.9e-12, LMS 1e-17
        assert case["max_diff_one"] < 1e-9
        assert case["max_diff_float32"] < 1e-2  # float32 against reservoirpy's float64
        for key in ("speedup_batch_float64", "speedup_batch_float32", "speedup_one"):
            assert math.isfinite(case[key]) and case[key] > 0
    rows = re.findall(r"^\| (reservoirpy|deepreservoir)[^|]*\| ([0-9.]+) s \|", out,
                      flags=re.MULTILINE)
    assert len(rows) == 10 and all(float(seconds) > 0 for _, seconds in rows)
