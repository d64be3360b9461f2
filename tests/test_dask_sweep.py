"""Sweeps on Dask: a local cluster, a running scheduler, the pool's errors, the extra.

Killing a sweep (SIGKILL, Ctrl-C) is tested in tests/reliability/test_process_reliability.py.
"""

from __future__ import annotations

import importlib.util
import json
import operator
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
from deepreservoir.errors import ParameterError, TrainingError
from deepreservoir.sweep import load_config, run_sweep, sidecar_folder

needs_dask = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                reason="needs the 'distributed' extra")

GRID = """
[sweep]
dataset = "digits"
num_samples = 150
ranks = [1, 2]
seeds = [0, 1]
families = ["normal"]
presets = ["tiny"]
full = true

[train]
epochs = 2
batch_size = 64
"""

RESULTS = ["test_accuracy", "val_accuracy", "train_loss", "trainable", "beta",
           "full_test_accuracy", "full_trainable"]


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The grid trained in this process (workers=1): the reference."""
    folder = tmp_path_factory.mktemp("serial")
    (folder / "grid.toml").write_text(GRID)
    merged, stats = run_sweep(load_config(folder / "grid.toml"), folder / "grid.nc",
                              progress=False)
    assert stats["trained"] == 6
    return merged, sidecar_folder(folder / "grid.nc")


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    return path


@pytest.fixture
def no_pool(monkeypatch):
    """Fail the test if a DaskPool starts."""
    from deepreservoir import cluster

    def refuse(self):
        raise AssertionError("a Dask pool was started")

    monkeypatch.setattr(cluster.DaskPool, "__enter__", refuse)


def _same_cells_files(file_a: Path, file_b: Path) -> None:
    with xr.open_dataset(file_a) as a, xr.open_dataset(file_b) as b:
        # every value bitwise, the run time aside
        xr.testing.assert_identical(a.drop_vars("seconds").load(), b.drop_vars("seconds").load())


def _same_cells(folder_a: Path, folder_b: Path) -> None:
    names = sorted(p.name for p in folder_a.glob("*.nc"))
    assert names == sorted(p.name for p in folder_b.glob("*.nc")) and names
    for name in names:
        _same_cells_files(folder_a / name, folder_b / name)


@needs_dask
@pytest.mark.slow  # a local cluster of 2 worker processes that import torch
def test_a_local_cluster_gives_the_cells_of_a_serial_run(serial, config_path, tmp_path,
                                                         capsys, monkeypatch):
    out = tmp_path / "grid.nc"
    merged, stats = run_sweep(load_config(config_path), out, workers=2, progress=True)
    assert stats == {"done_before": 0, "trained": 6, "total": 6}
    err = capsys.readouterr().err
    assert ("deepreservoir sweep: 6 cells running on a local Dask cluster of 2 worker "
            "processes × 1 thread") in err
    _same_cells(serial[1], sidecar_folder(out))
    xr.testing.assert_identical(merged[RESULTS], serial[0][RESULTS])
    assert not list(sidecar_folder(out).glob(".*.tmp"))
    assert not (sidecar_folder(out) / "sweep.lock").exists()

    from deepreservoir import cluster  # a rerun trains nothing and starts no cluster

    monkeypatch.setattr(cluster.DaskPool, "__enter__", lambda self: pytest.fail("started"))
    again, stats = run_sweep(load_config(config_path), out, workers=2, progress=False)
    assert stats == {"done_before": 6, "trained": 0, "total": 6}
    xr.testing.assert_identical(again[RESULTS], serial[0][RESULTS])


@needs_dask
def test_the_lock_refuses_a_second_sweep_before_any_worker_starts(config_path, tmp_path,
                                                                   no_pool):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out = tmp_path / "grid.nc"
        sidecar_folder(out).mkdir()
        (sidecar_folder(out) / "sweep.lock").write_text(json.dumps(
            {"pid": sleeper.pid, "host": socket.gethostname(), "since": "2024-01-01"}))
        with pytest.raises(ParameterError, match=rf"locked by the live process pid {sleeper.pid}"):
            run_sweep(load_config(config_path), out, workers=2, progress=False)
    finally:
        sleeper.kill()
        sleeper.wait()


def _worker_state() -> dict:
    import torch

    status = Path(f"/proc/{os.getpid()}/status").read_text() if sys.platform.startswith(
        "linux") else "SigIgn: 0"
    ignored = int(next(line.split()[1] for line in status.splitlines()
                       if line.startswith("SigIgn")), 16)
    return {"parent": os.getppid(), "threads": torch.get_num_threads(),
            "env": os.environ.get("DEEPRESERVOIR_NUM_THREADS"),
            "sigint_ignored": bool(ignored & (1 << (signal.SIGINT - 1)))}


@needs_dask
@pytest.mark.slow  # a local cluster of 2 worker processes
def test_the_pool_sets_up_its_workers_and_reports_each_failure():
    import dask

    from deepreservoir.cluster import DaskPool

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            DaskPool(workers=2, threads_per_worker=2) as pool:
        assert pool.describe().startswith(
            "running on a local Dask cluster of 2 worker processes × 2 threads")
        states = list(pool.client.run(_worker_state).values())
        assert len(states) == 2
        for state in states:  # bound to this process, torch threads set, Ctrl-C ignored
            assert state["parent"] == os.getpid()
            assert state["threads"] == 2 and state["env"] == "2"
            if sys.platform.startswith("linux"):
                assert state["sigint_ignored"]

        results = {}
        pool.run(divmod, [(7, 2), (9, 4), (5, 5)], results.__setitem__)
        assert results == {(7, 2): (3, 1), (9, 4): (2, 1), (5, 5): (1, 0)}

        with pytest.raises(ZeroDivisionError) as caught:  # the job's own exception
            pool.run(operator.truediv, [(1, 0)], results.__setitem__)
        assert "(1, 0)" in " ".join(getattr(caught.value, "__notes__", []))

        def refuse(job, result):
            raise KeyError(job)

        with pytest.raises(KeyError):  # on_result's own exception cancels the rest
            pool.run(divmod, [(1, 1), (2, 1)], refuse)

        with pytest.raises(TrainingError, match=r"died while running job cell-3.*rerun"):
            pool.run(os._exit, [(3,)], results.__setitem__, label=lambda job: "cell-3")

        results.clear()  # the pool still works: Dask restarted the worker
        pool.run(divmod, [(8, 3)], results.__setitem__)
        assert results == {(8, 3): (2, 2)}

        from deepreservoir.step_kernels import step_kernel, step_kernel_settings

        with step_kernel("dense", tanh="exact"):  # the client's kernel pin travels with a job
            pool.run(step_kernel_settings, [()], results.__setitem__)
        assert results[()] == {"kernel": "dense", "tanh": "exact"}

        # stream: each job asked for when a slot frees, knowing the results so far
        seen, asked = [], []

        def ask():
            asked.append(len(seen))
            return len(asked), (len(asked), 10)

        pool.stream(divmod, ask, lambda key, result: seen.append((key, result)), total=5,
                    in_flight=2)
        assert sorted(seen) == [(k, (0, k)) for k in range(1, 6)]
        assert asked[:2] == [0, 0] and asked[2:] == [1, 2, 3]  # 2 at once, then one per result


@needs_dask
@pytest.mark.slow  # a scheduler and a worker (threads) in this process
def test_a_running_scheduler_by_address(serial, config_path, tmp_path):
    import logging

    import distributed
    import torch

    threads = torch.get_num_threads()
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1,
                                  protocol="tcp", dashboard_address=":0",
                                  silence_logs=logging.CRITICAL) as local:
        out = tmp_path / "grid.nc"
        merged, stats = run_sweep(load_config(config_path), out, scheduler=local.scheduler_address,
                                  progress=False)
    torch.set_num_threads(threads)
    assert stats["trained"] == 6
    _same_cells(serial[1], sidecar_folder(out))
    xr.testing.assert_identical(merged[RESULTS], serial[0][RESULTS])


@needs_dask
def test_a_scheduler_that_does_not_answer_is_a_clear_error_quickly(config_path, tmp_path,
                                                                    monkeypatch, no_pool):
    from deepreservoir import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1.0)
    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        with pytest.raises(ParameterError) as caught:
            run_sweep(load_config(config_path), tmp_path / "grid.nc", scheduler=address)
    assert time.monotonic() - began < 8
    message = str(caught.value)
    assert message.startswith("The 'scheduler' parameter of run_sweep (--scheduler): no Dask "
                              f"scheduler answers at {address!r} (timed out after 1 s)")
    assert "tcp://host:8786" in message
    assert not sidecar_folder(tmp_path / "grid.nc").exists()  # nothing made


@needs_dask
def test_command_line_scheduler_errors_are_one_line(config_path, tmp_path, capsys, no_pool):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once closed
    address = f"tcp://127.0.0.1:{port}"
    out = str(tmp_path / "grid.nc")
    assert main(["sweep", str(config_path), "--out", out, "--scheduler", address]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("deepreservoir sweep: error: The 'scheduler' parameter of run_sweep "
                          f"(--scheduler): no Dask scheduler answers at {address!r}")
    assert main(["sweep", str(config_path), "--out", out, "--scheduler", "localhost:8786",
                 "--workers", "3"]) == 1
    note, error = capsys.readouterr().err.splitlines()
    assert note == ("deepreservoir sweep: note: --workers 3 is ignored with --scheduler (the "
                    "scheduler's workers train the cells)")
    assert "must be the address of a running Dask scheduler, e.g. tcp://host:8786" in error
    assert "Got 'localhost:8786'" in error


def test_without_dask_workers_are_one_line_naming_the_extra(config_path, tmp_path, capsys,
                                                            monkeypatch):
    from deepreservoir import _extras

    monkeypatch.setattr(_extras, "missing_modules",
                        lambda modules: ["dask"] if "dask" in modules else [])
    out = tmp_path / "grid.nc"
    assert main(["sweep", str(config_path), "--out", str(out), "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "needs the 'distributed' extra" in err
    assert 'pip install "deepreservoir[distributed]"' in err
    assert not sidecar_folder(out).exists()
    # one worker needs no Dask
    _, stats = run_sweep(load_config(config_path), out, workers=1, progress=False)
    assert stats["trained"] == 6


def test_importing_the_package_imports_no_dask():
    code = ("import sys, deepreservoir, deepreservoir.cluster, deepreservoir.sweep, "
            "deepreservoir.cli; print(sorted(m for m in ('dask', 'distributed') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"workers": 0}, "The 'workers' parameter of DaskPool must be an int >= 1. Got 0."),
    ({"threads_per_worker": True}, "'threads_per_worker' parameter of DaskPool"),
    ({"scheduler": " "}, "(e.g. tcp://host:8786) or None. Got ' '."),
])
def test_pool_parameters_are_checked(kwargs, fragment):
    from deepreservoir.cluster import DaskPool

    with pytest.raises(ParameterError) as caught:
        DaskPool(**kwargs)
    assert fragment in str(caught.value)
    with pytest.raises(ParameterError, match="needs a started pool"):
        DaskPool().run(divmod, [(1, 1)], print)


def test_sweep_parameters_are_checked(config_path, tmp_path):
    config = load_config(config_path)
    with pytest.raises(ParameterError, match="'threads_per_worker' parameter of run_sweep"):
        run_sweep(config, tmp_path / "grid.nc", threads_per_worker=0)
    with pytest.raises(ParameterError, match=r"'scheduler' parameter of run_sweep \(--scheduler"):
        run_sweep(config, tmp_path / "grid.nc", scheduler="")


def test_a_worker_without_the_folder_sends_the_cell_back(serial, config_path, tmp_path):
    """A remote worker that lacks ``<out>.cells/`` returns the cell's bytes instead."""
    import torch

    from deepreservoir.cluster import _call
    from deepreservoir.sweep import _cell_name, _run_cell

    config = load_config(config_path)
    cell = config.cells()[0]
    threads = torch.get_num_threads()
    try:  # one torch thread, as in the sweep: the same floating-point sums
        result = _call(1, _run_cell, config, cell, str(tmp_path / "not-on-this-host"))
    finally:
        torch.set_num_threads(threads)
    assert isinstance(result, bytes)
    assert not (tmp_path / "not-on-this-host").exists()
    (tmp_path / "cell.nc").write_bytes(result)
    _same_cells_files(serial[1] / _cell_name(cell), tmp_path / "cell.nc")
