"""Nothing silent: a sweep's Dask workers die with it; one sweep per output folder.

The kill tests run a real ``deepreservoir sweep --workers 2`` (a local Dask
cluster) in its own session (session id = process group = its pid) and read
/proc: every process the sweep started is in that session. A worker counts as
started once deepreservoir's preload has run in it (torch loaded, SIGINT ignored).
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


def _digits_grid(full: bool, epochs: int) -> str:
    """A 2 ranks × 2 seeds LottaLoRA grid on 150 digits (with full training: 6 cells)."""
    return f"""
[sweep]
dataset = "digits"
num_samples = 150
ranks = [1, 2]
seeds = [0, 1]
families = ["normal"]
presets = ["tiny"]
full = {str(full).lower()}

[train]
epochs = {epochs}
batch_size = 64
"""


# ~1 s per cell on one core: 6 cells
SHORT_CELLS = _digits_grid(full=True, epochs=40)

# long cells: the sweep is killed long before it ends
LONG_GRID = _digits_grid(full=False, epochs=2000)


def _stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (state, ppid, pgrp, session, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _session(sid: int) -> dict[int, str]:
    """Living (not zombie) processes of session ``sid``: pid → command line.

    The sweep runs in a session of its own: everything it starts (Dask's worker
    processes, the multiprocessing resource tracker) is in it.
    """
    found = {}
    for entry in os.listdir("/proc"):
        stat = _stat(int(entry)) if entry.isdigit() else None
        if stat is not None and int(stat[3]) == sid and stat[0] not in ("Z", "X"):
            try:
                found[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(
                    b"\0", b" ").decode(errors="replace")[:120]
            except OSError:
                continue
    return found


def _workers(sweep: subprocess.Popen) -> list[int]:
    """The sweep's Dask worker processes (spawned children of the sweep)."""
    return [pid for pid, command in _session(sweep.pid).items()
            if "spawn_main" in command and (_stat(pid) or ["", ""])[1] == str(sweep.pid)]


def _training(pid: int) -> bool:
    """Whether worker ``pid`` is set up: torch loaded and SIGINT ignored (deepreservoir's
    Dask preload does both, after the worker's own start-up)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn"))
    return "libtorch" in maps and bool(int(mask, 16) & (1 << (signal.SIGINT - 1)))


def _start_sweep(config: Path, out: Path, workers: int, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "deepreservoir.cli", "sweep", str(config), "--out",
               str(out), "--workers", str(workers), "--no-progress"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, **popen)


def _wait_for_workers(sweep: subprocess.Popen, count: int, *, started: bool,
                      timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert sweep.poll() is None, sweep.stderr.read()
        workers = [pid for pid in _workers(sweep) if not started or _training(pid)]
        if len(workers) >= count:
            return workers
        time.sleep(0.05)
    pytest.fail(f"{count} sweep workers did not start within {timeout} s")


def _wait_until_gone(sid: int, timeout: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while (left := _session(sid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _kill_session(sid: int) -> None:
    """Clean-up after a failure: SIGKILL what is left of the sweep we started."""
    for pid in _session(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@linux_only
@pytest.mark.slow  # a real sweep: a client and a local Dask cluster of 2 worker processes
@pytest.mark.parametrize("when", ["starting", "started"])
def test_killed_sweep_takes_its_dask_workers_along(tmp_path, when):
    """SIGKILL the sweep while its workers start up, or once they train."""
    config = tmp_path / "grid.toml"
    config.write_text(LONG_GRID)
    out = tmp_path / "grid.nc"
    sweep = _start_sweep(config, out, workers=2)
    try:
        workers = _wait_for_workers(sweep, 2, started=when == "started")
        before = _session(sweep.pid)
        assert len(before) >= 3, before  # the client, 2 workers (and the resource tracker)
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.wait(timeout=30)
        left = _wait_until_gone(sweep.pid, timeout=10)
        assert not left, f"still running 10 s after the sweep was killed: {left}"
        assert not any(Path(f"/proc/{pid}").exists() and _stat(pid)[0] not in "ZX"
                       for pid in workers)
    finally:
        _kill_session(sweep.pid)
        sweep.stderr.close()
    for cell in sidecar_folder(out).glob("*.nc"):  # cells are whole or absent
        xr.open_dataset(cell).close()


@linux_only
@pytest.mark.slow  # a real sweep on a local Dask cluster, interrupted by SIGINT
def test_ctrl_c_exits_130_keeps_finished_cells_and_leaves_no_worker(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C: the client stops the
    cluster; the workers ignore it (they would otherwise die with tracebacks)."""
    config = tmp_path / "grid.toml"
    config.write_text(SHORT_CELLS)  # ~1 s per cell: SIGINT lands while cells are left
    out = tmp_path / "grid.nc"
    # A shell that starts pytest in the background makes SIGINT ignored, and children
    # inherit that: give the sweep the default disposition a terminal's Ctrl-C meets.
    sweep = _start_sweep(config, out, workers=2,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    cells = sidecar_folder(out)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(cells.glob("*.nc")):
            assert sweep.poll() is None, sweep.stderr.read()
            time.sleep(0.05)
        os.killpg(sweep.pid, signal.SIGINT)
        _, err = sweep.communicate(timeout=60)
        assert sweep.returncode == 130, err
        assert err.strip() == "deepreservoir sweep: interrupted", err
        assert not _wait_until_gone(sweep.pid, timeout=10)
    finally:
        _kill_session(sweep.pid)
    kept = len(list(cells.glob("*.nc")))
    assert 1 <= kept < 6
    assert not out.exists()
    assert not (cells / "sweep.lock").exists()
    for cell in cells.glob("*.nc"):
        xr.open_dataset(cell).close()
    # a rerun (here, in this process) trains only what is missing
    _, stats = run_sweep(load_config(config), out, progress=False)
    assert stats == {"done_before": kept, "trained": 6 - kept, "total": 6}


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
