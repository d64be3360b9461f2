"""Nothing silent: sweep processes die with their parent; one sweep per output folder.

The kill tests run a real ``deepreservoir sweep`` in its own session (process
group = its pid) and read /proc: a worker counts as started once its
initializer has run, which ignores SIGINT as its last step.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

from deepreservoir.cli import main
from deepreservoir.errors import ParameterError
from deepreservoir.sweep import load_config, run_sweep, sidecar_folder

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

ONE_CELL = """
[sweep]
dataset = "digits"
num_samples = 100
ranks = [1]
seeds = [0]
families = ["normal"]
presets = ["tiny"]
full = false

[train]
epochs = 1
batch_size = 64
"""

# long cells: the sweep is killed long before it ends
LONG_GRID = """
[sweep]
dataset = "digits"
num_samples = 150
ranks = [1, 2]
seeds = [0, 1]
families = ["normal"]
presets = ["tiny"]
full = false

[train]
epochs = 2000
batch_size = 64
"""


def _stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (state, ppid, pgrp, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _group(pgid: int) -> dict[int, str]:
    """Living (not zombie) processes of process group ``pgid``: pid → command line."""
    found = {}
    for entry in os.listdir("/proc"):
        stat = _stat(int(entry)) if entry.isdigit() else None
        if stat is not None and int(stat[2]) == pgid and stat[0] not in ("Z", "X"):
            try:
                found[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(
                    b"\0", b" ").decode(errors="replace")[:120]
            except OSError:
                continue
    return found


def _ignores_sigint(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn"))
    return bool(int(mask, 16) & (1 << (signal.SIGINT - 1)))


def _start_sweep(config: Path, out: Path, workers: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "deepreservoir.cli", "sweep", str(config), "--out",
               str(out), "--workers", str(workers), "--no-progress"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _wait_for_started_workers(sweep: subprocess.Popen, count: int, timeout: float = 300
                              ) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert sweep.poll() is None, sweep.stderr.read()
        workers = [pid for pid, command in _group(sweep.pid).items()
                   if "spawn_main" in command and _stat(pid)[1] == str(sweep.pid)
                   and _ignores_sigint(pid)]
        if len(workers) == count:
            return workers
        time.sleep(0.2)
    pytest.fail(f"{count} sweep workers did not start within {timeout} s")


def _wait_until_gone(pgid: int, timeout: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while (left := _group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _kill_group(pgid: int) -> None:
    """Clean-up after a failure: SIGKILL what is left of the sweep we started."""
    for pid in _group(pgid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@linux_only
@pytest.mark.slow  # a real sweep: a parent and 2 spawned workers that import torch
@pytest.mark.parametrize("when", ["starting", "started"])
def test_killed_sweep_takes_its_workers_and_resource_tracker_along(tmp_path, when):
    """SIGKILL the sweep while its workers import torch, or once they train."""
    config = tmp_path / "grid.toml"
    config.write_text(LONG_GRID)
    out = tmp_path / "grid.nc"
    sweep = _start_sweep(config, out, workers=2)
    try:
        if when == "started":
            _wait_for_started_workers(sweep, 2)
        else:
            deadline = time.monotonic() + 300
            while sum("spawn_main" in c for c in _group(sweep.pid).values()) < 2:
                assert time.monotonic() < deadline and sweep.poll() is None
                time.sleep(0.05)
            time.sleep(1)  # ample for the parent to name them to its guardian
        before = _group(sweep.pid)
        assert len(before) >= 3, before  # the parent, 2 workers (and the resource tracker)
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.wait(timeout=30)
        left = _wait_until_gone(sweep.pid, timeout=10)
        assert not left, f"still running 10 s after the sweep was killed: {left}"
    finally:
        _kill_group(sweep.pid)
        sweep.stderr.close()
    for cell in sidecar_folder(out).glob("*.nc"):  # cells are whole or absent
        xr.open_dataset(cell).close()


@linux_only
@pytest.mark.slow  # a real sweep whose worker is killed
def test_a_killed_worker_is_one_line_naming_it_and_nothing_lingers(tmp_path):
    config = tmp_path / "grid.toml"
    config.write_text(LONG_GRID)
    out = tmp_path / "grid.nc"
    sweep = _start_sweep(config, out, workers=2)
    try:
        victim, _ = _wait_for_started_workers(sweep, 2)
        os.kill(victim, signal.SIGKILL)
        _, err = sweep.communicate(timeout=60)
        assert sweep.returncode == 1, err
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith("deepreservoir sweep: error: A sweep worker died"), err
        assert f"worker pid {victim} was killed by SIGKILL" in err
        assert str(sidecar_folder(out)) in err
        assert not _wait_until_gone(sweep.pid, timeout=10)
    finally:
        _kill_group(sweep.pid)
    assert not (sidecar_folder(out) / "sweep.lock").exists()


def _plant_lock(folder: Path, pid: int, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / "sweep.lock"
    lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                "since": "2024-01-01 00:00:00", **extra}))
    return lock


@pytest.fixture
def live_pid():
    """A process of this host that outlives the test."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield sleeper.pid
    sleeper.kill()
    sleeper.wait()


@pytest.fixture
def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_second_live_sweep_on_the_folder_is_refused(tmp_path, live_pid):
    config = tmp_path / "one.toml"
    config.write_text(ONE_CELL)
    out = tmp_path / "one.nc"
    lock = _plant_lock(sidecar_folder(out), live_pid)
    with pytest.raises(ParameterError, match=rf"is locked by the live process pid {live_pid}"
                       ) as caught:
        run_sweep(load_config(config), out, progress=False)
    assert str(sidecar_folder(out)) in str(caught.value)
    assert lock.is_file() and str(live_pid) in lock.read_text()  # the owner's lock stays
    assert not list(sidecar_folder(out).glob("*.nc"))


def test_command_line_names_the_folder_and_the_owner(tmp_path, live_pid, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the sweep's default output is ./one.nc
    config = tmp_path / "one.toml"
    config.write_text(ONE_CELL)
    _plant_lock(sidecar_folder(tmp_path / "one.nc"), live_pid)
    assert main(["sweep", str(config), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("deepreservoir sweep: error: The 'out' parameter")
    assert f"pid {live_pid}" in err and "one.nc.cells" in err and "--out" in err


def test_stale_lock_is_taken_over_and_only_stale_temp_files_go(tmp_path, live_pid, dead_pid,
                                                               capsys):
    config = tmp_path / "one.toml"
    config.write_text(ONE_CELL)
    out = tmp_path / "one.nc"
    folder = sidecar_folder(out)
    lock = _plant_lock(folder, dead_pid)
    host = socket.gethostname()
    stale = folder / f".tiny__normal__r1__s0.nc~{host}~{dead_pid}.tmp"
    live = folder / f".tiny__normal__r1__s0.nc~{host}~{live_pid}.tmp"
    for path in (stale, live):
        path.write_bytes(b"partial")
    _, stats = run_sweep(load_config(config), out, progress=False)
    assert stats["trained"] == 1
    assert f"took over the stale lock of {str(folder)!r}" in capsys.readouterr().err
    assert not stale.exists()
    assert live.read_bytes() == b"partial"  # another live writer's file is never touched
    assert not lock.exists()  # released at the end


@linux_only
def test_a_lock_whose_pid_was_reused_is_stale(tmp_path, live_pid, capsys):
    config = tmp_path / "one.toml"
    config.write_text(ONE_CELL)
    out = tmp_path / "one.nc"
    _plant_lock(sidecar_folder(out), live_pid, start="1")  # alive, but not since tick 1
    _, stats = run_sweep(load_config(config), out, progress=False)
    assert stats["trained"] == 1
    assert f"(pid {live_pid} on {socket.gethostname()}" in capsys.readouterr().err


def test_a_sweep_config_that_is_a_directory_says_so(tmp_path, capsys):
    folder = tmp_path / "grid.toml"
    folder.mkdir()
    assert main(["sweep", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "is a directory; expected a TOML file" in err and "does not exist" not in err


def test_a_studies_dir_that_is_a_file_says_so(tmp_path, capsys):
    file = tmp_path / "studies"
    file.write_text("")
    assert main(["reproduce", "--list", "--studies-dir", str(file)]) == 1
    err = capsys.readouterr().err
    assert "is a file; expected a folder" in err and "does not exist" not in err
