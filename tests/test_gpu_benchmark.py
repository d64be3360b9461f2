"""``benchmarks/gpu.py`` runs end to end on the CPU (``--quick``) and says what it measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import deepreservoir as dr

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def test_the_gpu_benchmark_runs_on_cpu_and_writes_its_json_and_table(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "device cpu" in done.stdout and "torch" in done.stdout
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert set(report) == {"meta", "identity", "training", "regeneration", "reservoir",
                           "skipped"}
    assert report["skipped"] == []
    assert {"device", "device_name", "torch", "date", "elapsed_s"} <= set(report["meta"])
    assert report["meta"]["elapsed_s"] < 20
    assert set(report["identity"]) == set(dr.families.FAMILIES)
    for family, row in report["identity"].items():
        assert row["reservoir"] is True and row["scaffold"] is True, (family, row)
        assert row["draw_rows"] in (True, "not available", "n/a (materialised family)"), (
            family, row)
    training = report["training"]
    assert training["full_step_ms"] > 0 and training["lottalora_r8_step_ms"] > 0
    assert training["ratio_lottalora_over_full"] > 0
    methods = {row["method"].split(":")[0] for row in report["regeneration"]}
    assert {"seeding_torch.draw_rows", "torch.randn", "safetensors load_file",
            "node path"} <= methods
    assert {(row["N"], row["B"]) for row in report["reservoir"]} == {
        (n, b) for n in (50, 100) for b in (1, 32)}
    assert all(row["steps_series_per_s"] > 0 for row in report["reservoir"])
    table = (tmp_path / "gpu.md").read_text()
    assert "Reservoir throughput" in table and "CPU = device" in table


def test_a_budget_too_small_skips_and_says_so(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick",
                           "--budget", "1", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert report["skipped"] and all("skipped" in s or "deadline" in s
                                      for s in report["skipped"])
    assert "## Skipped" in (tmp_path / "gpu.md").read_text()
