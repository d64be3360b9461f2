"""Independent jobs on Dask distributed: a local cluster, or a running scheduler.

:class:`DaskPool` runs ``fn(*job)`` for every job of a list on Dask workers and
hands each result back, in this process, as it finishes. Without an address it
starts a :class:`distributed.LocalCluster` of worker processes on this machine
(nothing to set up); with one (``tcp://host:8786``) it connects to a running
scheduler: ``dask scheduler`` and ``dask worker`` by hand, or a batch system's
workers through dask-jobqueue (see docs/sweeps.md).

:func:`run_jobs` is the entry point of the sweeps and experiment grids: one
worker and no scheduler runs the jobs in this process (no Dask needed),
anything else a :class:`DaskPool`.

The workers of a local cluster die with this process, even when it is killed by
SIGKILL: Dask's own worker processes exit when the pipe from their parent
closes, and each worker also binds itself to its parent at start-up
(:func:`dask_setup`: ``PR_SET_PDEATHSIG`` on Linux and a thread that watches
``os.getppid()``, :func:`deepreservoir._processes.die_with_parent`). Ctrl-C is
this process's to handle: the local workers ignore SIGINT.

Dask is an optional dependency (the ``distributed`` extra); it is imported only
when a pool starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from deepreservoir._extras import DISTRIBUTED_MODULES, require_extra
from deepreservoir._processes import die_with_parent
from deepreservoir.errors import ParameterError, TrainingError

__all__ = ["CONNECT_TIMEOUT", "DaskPool", "check_scheduler", "dask_setup", "positive_int",
           "run_jobs"]

#: Seconds to wait for a scheduler given by address before giving up.
CONNECT_TIMEOUT = 10.0

#: Set by :class:`DaskPool` in the environment of its local workers: the pid they die with.
_PARENT_ENV = "DEEPRESERVOIR_DASK_PARENT"
#: The torch threads of a worker (the variable :mod:`deepreservoir.threads` reads).
_THREADS_ENV = "DEEPRESERVOIR_NUM_THREADS"


def positive_int(value: Any, name: str, owner: str) -> int:
    """``value`` when it is an int >= 1 (not a bool); else a ParameterError naming
    ``name``, its ``owner`` (the function the user called) and the value."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(f"The {name!r} parameter of {owner} must be an int >= 1. "
                             f"Got {value!r}.")
    return value


def _set_torch_threads(count: int) -> None:
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


def dask_setup(worker: Any = None) -> None:
    """Dask preload hook of the local workers (``preload=["deepreservoir.cluster"]``).

    In a worker started by :class:`DaskPool` (``$DEEPRESERVOIR_DASK_PARENT`` set):
    die with the process that started the cluster and ignore SIGINT (Ctrl-C in a
    terminal reaches the whole process group; the client handles it). Then set
    torch's thread count to ``$DEEPRESERVOIR_NUM_THREADS``.
    """
    parent = os.environ.get(_PARENT_ENV, "")
    if parent.isdigit():
        die_with_parent(int(parent))
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    threads = os.environ.get(_THREADS_ENV, "")
    if threads.isdigit() and int(threads) >= 1:
        _set_torch_threads(int(threads))


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Hold Ctrl-C until the body is done (starting or stopping a cluster must not be
    cut in half: a half-started cluster is left to interpreter exit, which complains)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _call(threads: int, fn: Callable[..., Any], *job: Any) -> Any:
    """Worker side of :meth:`DaskPool.run`: ``fn(*job)`` with ``threads`` torch threads."""
    _set_torch_threads(threads)
    return fn(*job)


def _call_on_worker(threads: int, kernel: dict[str, str], fn: Callable[..., Any],
                    *job: Any) -> Any:
    """:func:`_call` on a Dask worker, with Dask's scheduler set to "synchronous"
    and the submitting process's time-loop kernel settings.

    Otherwise a library that computes a Dask collection inside the job (xarray's
    ``to_netcdf`` does) opens a client back to the cluster from the worker, which
    is left behind when the worker stops. The kernel settings travel with the
    job so that a kernel pinned in the client (``step_kernel("csr")`` or
    ``DEEPRESERVOIR_STEP_KERNEL``) gives the workers the same sums, bit for bit.
    They are set for the worker process, not scoped to the job: a worker runs
    its jobs in threads, and a scoped setting restored by one job would change
    another's kernel halfway through.
    """
    import dask

    from deepreservoir.step_kernels import set_step_kernel, step_kernel_settings

    if step_kernel_settings() != kernel:  # a worker in the client's own process already agrees
        set_step_kernel(**kernel)  # not scoped: jobs of one worker may run in threads at once
    with dask.config.set(scheduler="synchronous"):
        return _call(threads, fn, *job)


def _job_label(job: tuple) -> str:
    text = repr(job)
    return text if len(text) <= 200 else text[:197] + "..."


#: Address schemes of Dask's communication layer.
_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


async def _identity(address: str, timeout: float) -> Any:
    from distributed.comm import connect

    comm = await connect(address, timeout=timeout)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def check_scheduler(address: str, *, parameter: str = "The 'scheduler' parameter",
                    timeout: float | None = None) -> None:
    """Raise a clear :class:`ParameterError` unless a Dask scheduler answers at ``address``.

    The address must read ``scheme://host:port`` (scheme tcp, tls, ws, wss or
    ucx); the scheduler must answer an identity request within ``timeout``
    seconds (default :data:`CONNECT_TIMEOUT`). Needs the ``distributed`` extra.
    """
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    expected = "the address of a running Dask scheduler, e.g. tcp://host:8786"
    if not isinstance(address, str):
        raise ParameterError(f"{parameter} must be {expected}. Got {address!r}.")
    scheme, sep, rest = address.partition("://")
    host, colon, port = rest.rstrip("/").rpartition(":")
    if not sep or scheme not in _SCHEMES or not colon or not port.isdigit() or not host:
        raise ParameterError(f"{parameter} must be {expected} (scheme {', '.join(_SCHEMES)}; "
                             f"a host and a port). Got {address!r}.")
    require_extra("running jobs on Dask", "distributed", DISTRIBUTED_MODULES)

    def fail(reason: str) -> ParameterError:
        return ParameterError(f"{parameter}: no Dask scheduler answers at {address!r} "
                              f"({reason}); expected {expected}, started with 'dask scheduler'.")

    if scheme == "tcp":  # a refused connection is known at once; Dask would retry until timeout
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        except OSError as error:
            timed_out = isinstance(error, TimeoutError)
            raise fail(f"timed out after {timeout:g} s" if timed_out
                       else str(error.strerror or error)) from None
    # A daemon thread of its own: this may be called where an event loop already runs
    # (Jupyter), and a peer that never answers must not hold this process at exit.
    outcome: dict[str, Any] = {}

    def probe() -> None:
        try:
            outcome["answer"] = asyncio.run(asyncio.wait_for(_identity(address, timeout),
                                                             timeout))
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    thread = threading.Thread(target=probe, daemon=True, name="deepreservoir-dask-probe")
    thread.start()
    thread.join(timeout + 5)
    error = outcome.get("error")
    if thread.is_alive() or isinstance(error, (asyncio.TimeoutError, TimeoutError)) or (
            isinstance(error, OSError) and "Timed out" in str(error)):
        raise fail(f"timed out after {timeout:g} s")
    if isinstance(error, OSError):
        raise fail(" ".join(str(error).split())[:160])
    if error is not None:  # garbage where a Dask message was expected
        raise fail("something answers there, but not in Dask's protocol")
    answer = outcome.get("answer")
    if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
        kind = answer.get("type") if isinstance(answer, dict) else type(answer).__name__
        raise ParameterError(f"{parameter}: {address!r} is not a Dask scheduler (it answers as "
                             f"{kind!r}); expected {expected}.")


class DaskPool:
    """Run independent jobs on Dask distributed (a context manager).

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``). By default a
        local cluster of ``workers`` processes is started and stopped with the pool.
    workers : int
        Worker processes of the local cluster (ignored with ``scheduler``).
    threads_per_worker : int
        Dask threads and torch threads per worker.
    parameter : str
        How errors name the scheduler option, e.g.
        ``"The 'scheduler' parameter of run_sweep (--scheduler)"``.

    Raises
    ------
    MissingDependencyError
        Dask is not installed (the ``distributed`` extra).
    ParameterError
        A bad parameter, or no scheduler answers at ``scheduler`` within
        :data:`CONNECT_TIMEOUT` seconds.

    Notes
    -----
    The local workers are spawned processes: a script that starts a pool must
    guard its entry point with ``if __name__ == "__main__":``.

    Examples
    --------
    >>> import operator
    >>> with DaskPool(workers=2) as pool:  # doctest: +SKIP
    ...     pool.run(operator.add, [(1, 2), (3, 4)], lambda job, total: print(job, total))
    """

    def __init__(self, *, scheduler: str | None = None, workers: int = 2,
                 threads_per_worker: int = 1,
                 parameter: str = "The 'scheduler' parameter of DaskPool"):
        self.workers = positive_int(workers, "workers", "DaskPool")
        self.threads_per_worker = positive_int(threads_per_worker, "threads_per_worker",
                                                "DaskPool")
        if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
            raise ParameterError(f"{parameter} must be the address of a running Dask scheduler "
                                 f"(e.g. tcp://host:8786) or None. Got {scheduler!r}.")
        self.scheduler = scheduler.strip() if scheduler is not None else None
        self.parameter = parameter
        self.client: Any = None
        self.cluster: Any = None

    # ------------------------------------------------------------- life cycle
    def __enter__(self) -> DaskPool:
        require_extra("running jobs on Dask", "distributed", DISTRIBUTED_MODULES)
        try:
            with _ctrl_c_deferred():
                self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _start(self) -> None:
        import distributed

        if self.scheduler is not None:
            check_scheduler(self.scheduler, parameter=self.parameter)
            try:
                self.client = distributed.Client(self.scheduler, timeout=CONNECT_TIMEOUT,
                                                 set_as_default=False)
            except Exception as error:  # any failure to connect is the address's
                message = " ".join(str(error).split())[:200] or type(error).__name__
                raise ParameterError(
                    f"{self.parameter}: could not connect to a Dask scheduler at "
                    f"{self.scheduler!r} ({message}); expected the address of a running "
                    f"Dask scheduler, e.g. tcp://host:8786.") from None
            return
        env = {_PARENT_ENV: str(os.getpid()), _THREADS_ENV: str(self.threads_per_worker),
               "OMP_NUM_THREADS": str(self.threads_per_worker),
               "MKL_NUM_THREADS": str(self.threads_per_worker)}
        # CRITICAL: the scheduler runs in this process and would log, e.g., a worker's death
        # on stderr; run() turns every failure into one exception instead.
        self.cluster = distributed.LocalCluster(
            n_workers=self.workers, threads_per_worker=self.threads_per_worker,
            processes=True, dashboard_address=":0", silence_logs=logging.CRITICAL,
            preload=["deepreservoir.cluster"], env=env)
        self.client = distributed.Client(self.cluster, set_as_default=False)

    def close(self) -> None:
        """Close the client and stop the local cluster (its workers end with it)."""
        client, cluster = self.client, self.cluster
        self.client = self.cluster = None
        with _ctrl_c_deferred():
            for thing in (client, cluster):
                if thing is not None:
                    try:
                        thing.close()
                    except Exception:  # best effort: the processes end with us
                        pass

    # ------------------------------------------------------------- description
    @property
    def dashboard_link(self) -> str | None:
        """The dashboard's address (``None`` without bokeh or before the pool starts)."""
        if self.client is None:
            return None
        try:
            import bokeh  # noqa: F401 - the dashboard is a placeholder page without it
        except ImportError:
            return None
        return self.client.dashboard_link or None

    def describe(self) -> str:
        """One line for the command line: where the jobs run."""
        if self.scheduler is not None:
            where = f"the Dask scheduler at {self.scheduler}"
            if self.client is not None:
                try:
                    count = len(self.client.scheduler_info().get("workers", {}))
                    where += f" ({count} worker{'s' if count != 1 else ''} now)"
                except Exception:  # a description never fails
                    pass
        else:
            where = (f"a local Dask cluster of {self.workers} worker process"
                     f"{'es' if self.workers != 1 else ''} × {self.threads_per_worker} "
                     f"thread{'s' if self.threads_per_worker != 1 else ''}")
        link = self.dashboard_link
        return f"running on {where}" + (f"; dashboard {link}" if link else "")

    # ------------------------------------------------------------------- jobs
    def run(self, fn: Callable[..., Any], jobs: Iterable[tuple],
            on_result: Callable[[tuple, Any], None], *,
            label: Callable[[tuple], str] = _job_label) -> None:
        """Run ``fn(*job)`` for every job; call ``on_result(job, result)`` here as each ends.

        Parameters
        ----------
        fn : callable
            A module-level function (pickled by name; the workers import its module).
        jobs : iterable of tuple
            The arguments of each call; all are submitted at once.
        on_result : callable
            Called in this process, in the order the jobs finish.
        label : callable, optional
            ``label(job)``: how errors name a job (default: its repr, shortened).

        Raises
        ------
        Exception
            The first job that fails re-raises its own exception (a note names the
            job); the other jobs are cancelled. So does an exception of ``on_result``.
        TrainingError
            The workers running a job died (killed, out of memory) as often as the
            scheduler allows (``distributed.scheduler.allowed-failures``).
        KeyboardInterrupt
            Ctrl-C: the other jobs are cancelled.
        """
        jobs = list(jobs)
        pending = iter(jobs)

        def ask() -> tuple[tuple, tuple]:
            job = next(pending)
            return job, job

        # all at once: the scheduler queues them and keeps every worker busy
        self.stream(fn, ask, on_result, total=len(jobs), in_flight=max(len(jobs), 1),
                    label=label)

    def stream(self, fn: Callable[..., Any], ask: Callable[[], tuple[Any, tuple]],
               on_result: Callable[[Any, Any], None], *, total: int,
               in_flight: int | None = None,
               label: Callable[[tuple], str] = _job_label) -> None:
        """Run ``total`` jobs handed out one at a time by ``ask``, ``in_flight`` at once.

        For jobs that depend on the results so far (a sampler that proposes the
        next point from the finished trials): ``ask()`` is called in this process
        whenever a slot frees and returns ``(key, job)``; ``fn(*job)`` runs on a
        worker and ``on_result(key, result)`` is called here as it ends.

        Parameters
        ----------
        fn : callable
            A module-level function.
        ask : callable
            ``ask() -> (key, job)``.
        on_result : callable
            ``on_result(key, result)``, in the order the jobs finish.
        total : int
            Jobs to run in all.
        in_flight : int, optional
            Jobs submitted at once (default: the worker threads of the cluster).
        label : callable, optional
            How errors name a job.

        Raises
        ------
        Exception, TrainingError, KeyboardInterrupt
            As :meth:`run`; the jobs in flight are cancelled.
        """
        if self.client is None:
            raise ParameterError("DaskPool.run needs a started pool: use 'with DaskPool(...) "
                                 "as pool:'. Got a pool that is not started or closed.")
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ParameterError(f"The 'total' parameter of DaskPool.stream must be an int "
                                 f">= 0. Got {total!r}.")
        if in_flight is None:
            in_flight = self._slots()
        positive_int(in_flight, "in_flight", "DaskPool.stream")
        from distributed import as_completed

        from deepreservoir.step_kernels import step_kernel_settings

        kernel = step_kernel_settings()
        futures: dict[Any, tuple[Any, tuple]] = {}
        done = as_completed([], loop=self.client.loop)
        submitted = 0

        def submit() -> None:
            nonlocal submitted
            key, job = ask()
            future = self.client.submit(_call_on_worker, self.threads_per_worker, kernel,
                                        fn, *job, pure=False)
            futures[future] = (key, job)
            done.add(future)
            submitted += 1

        try:
            while submitted < min(in_flight, total):
                submit()
            for future in done:
                key, job = futures.pop(future)
                on_result(key, self._outcome(future, job, label))
                if submitted < total:
                    submit()
        except BaseException:
            if futures:
                try:
                    self.client.cancel(list(futures), force=True)
                except Exception:  # closing the pool stops them anyway
                    pass
            raise

    def _slots(self) -> int:
        """Worker threads of the cluster now (at least 1)."""
        try:
            workers = self.client.scheduler_info().get("workers", {}).values()
            return max(1, sum(int(w.get("nthreads", 1)) for w in workers))
        except Exception:  # an estimate only
            return max(1, self.workers * self.threads_per_worker)

    @staticmethod
    def _outcome(future: Any, job: tuple, label: Callable[[tuple], str]) -> Any:
        """The result of a finished future, or its error as :meth:`run` documents."""
        from distributed.scheduler import KilledWorker

        try:
            return future.result()
        except KilledWorker:
            raise TrainingError(
                f"A Dask worker died while running job {label(job)} (killed, out of "
                f"memory?), as often as the scheduler allows; expected the workers to live "
                f"to the end. The results finished so far are kept: rerun the same command "
                f"to resume.") from None
        except Exception as error:
            if hasattr(error, "add_note"):
                error.add_note(f"(in the Dask job {label(job)})")
            raise


def run_jobs(fn: Callable[..., Any], jobs: Iterable[tuple],
             on_result: Callable[[tuple, Any], None], *, workers: int = 1,
             threads_per_worker: int = 1, scheduler: str | None = None,
             label: Callable[[tuple], str] = _job_label,
             parameter: str = "The 'scheduler' parameter of run_jobs",
             on_start: Callable[[str], None] | None = None) -> None:
    """Run ``fn(*job)`` for every job here (one worker) or on Dask, results as they end.

    ``workers == 1`` without ``scheduler``: in this process, one job after the
    other, with ``threads_per_worker`` torch threads (restored at the end);
    Dask is not needed. Otherwise in a :class:`DaskPool` (see there for the
    parameters and errors). ``on_start(description)`` is called once the jobs
    have somewhere to run (:meth:`DaskPool.describe` or ``"running in this process"``).
    """
    positive_int(workers, "workers", "run_jobs")
    positive_int(threads_per_worker, "threads_per_worker", "run_jobs")
    if workers == 1 and scheduler is None:
        import torch

        previous = torch.get_num_threads()
        if on_start is not None:
            on_start("running in this process")
        try:
            for job in jobs:
                on_result(job, _call(threads_per_worker, fn, *job))
        finally:
            torch.set_num_threads(previous)
        return
    with DaskPool(scheduler=scheduler, workers=workers, threads_per_worker=threads_per_worker,
                  parameter=parameter) as pool:
        if on_start is not None:
            on_start(pool.describe())
        pool.run(fn, jobs, on_result, label=label)
