"""The ``deepreservoir`` command: ``demo``, ``sweep``, ``search``, ``inspect`` and ``reproduce``.

Every failure the user can cause (a wrong flag, a missing file, a bad config,
an unknown study) ends with one line on stderr and a non-zero exit status,
never a traceback: 2 for a usage error, 1 for anything else, 130 after Ctrl-C.
See docs/cli.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

PROG = "deepreservoir"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, with a pointer to ``--help``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _threads(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {value!r}")
    return number


#: The thread policy every command shares (deepreservoir.threads.use_threads).
THREADS_HELP = ("torch threads (default: $DEEPRESERVOIR_NUM_THREADS, else 1: these small models "
                "gain nothing from more, and lose much on a busy machine)")


def _cluster_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--workers``, ``--threads-per-worker``, ``--scheduler`` and ``--no-progress``."""
    parser.add_argument("--workers", type=_threads, default=None,
                        help=f"worker processes of a local Dask cluster (default 1: no Dask, "
                             f"the {what} run in this process); ignored with --scheduler")
    parser.add_argument("--threads-per-worker", "--threads", dest="threads", type=_threads,
                        default=None, metavar="K",
                        help="torch threads per worker (default: $DEEPRESERVOIR_NUM_THREADS, "
                             "else 1)")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                        help=f"address of a running Dask scheduler whose workers run the "
                             f"{what}")
    parser.add_argument("--no-progress", action="store_true",
                        help=f"hide the progress bar and the line saying where the {what} run")


def _where(args, command: str, work: str) -> tuple[int, int]:
    """``(workers, threads per worker)`` from the cluster arguments."""
    from deepreservoir.threads import get_num_threads

    workers = args.workers or 1
    if args.scheduler is not None and args.workers is not None:
        print(f"{PROG} {command}: note: --workers {args.workers} is ignored with --scheduler "
              f"(the scheduler's workers {work})", file=sys.stderr)
        workers = 1
    threads = args.threads if args.threads is not None else (get_num_threads() or 1)
    return workers, threads


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of all subcommands."""
    from deepreservoir._version import __version__

    parser = _Parser(
        prog=PROG,
        description="Reservoir computing generalized to depth: echo state networks, "
                    "LottaLoRA scaffolds, and their analysis.",
        epilog=f"Run '{PROG} COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = commands.add_parser(
        "demo", help="ESN on Mackey–Glass and LottaLoRA on MNIST-1D, with figures "
                     "(about a minute)",
        description="Train an ESN on Mackey–Glass (prints the NRMSE) and the medium MLP on "
                    "MNIST-1D with LottaLoRA at ranks 1, 4, 16 and fully (prints rank, "
                    "accuracy, % of full, % of parameters trained, β per layer), print the "
                    "spectral / echo-state report of both models, and write netCDF results, "
                    "PNG figures and the two saved models into the output folder.")
    demo.add_argument("--out", type=Path, default=Path("deepreservoir-demo"),
                      help="output folder (default: ./deepreservoir-demo)")
    demo.add_argument("--quick", action="store_true",
                      help="a tiny configuration (about 15 s on one core; for smoke tests)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the MNIST-1D runs (default 0)")
    demo.add_argument("--threads", type=_threads, default=None, help=THREADS_HELP)
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    sweep = commands.add_parser(
        "sweep", help="a grid from a TOML file (LottaLoRA [sweep], or any axes [experiment]) "
                      "into one netCDF",
        description="Train every cell of the grid in CONFIG and merge them into one netCDF "
                    "Dataset. A [sweep] file (examples/sweep.toml) is the LottaLoRA grid, "
                    "dimensions (preset, family, rank, seed); an [experiment] file with [axes] "
                    "(examples/sweep_esn.toml) is a grid over any hyperparameters of any model, "
                    "dimensions (its axes..., seed). Each finished cell is saved at once in "
                    "OUT.cells/; rerunning the same command after a crash or Ctrl-C skips the "
                    "finished cells. With --workers N > 1 the cells run on a local Dask "
                    "cluster, with --scheduler on a running Dask scheduler's workers (the "
                    "'distributed' extra; see docs/sweeps.md).")
    sweep.add_argument("config", type=Path, metavar="CONFIG", help="the sweep's TOML file")
    sweep.add_argument("--out", type=Path, default=None,
                       help="merged netCDF file (default: ./NAME.nc in the current folder, "
                            "NAME being CONFIG's name without .toml)")
    _cluster_arguments(sweep, "cells")

    search = commands.add_parser(
        "search", help="a hyperparameter search with Optuna over the ranges of a TOML file",
        description="Search the [search.space] ranges of the [experiment] in CONFIG with "
                    "Optuna (TPE by default; see examples/search_mackey_glass.toml and "
                    "docs/search.md). Each trial trains one model per seed and scores the mean "
                    "of the metric. The study is kept in OUT/study.log: rerunning the command "
                    "resumes it. At the end OUT/trials.nc holds every trial and OUT/best/ the "
                    "best model, a normal artifact. Needs the 'distributed' extra (optuna).")
    search.add_argument("config", type=Path, metavar="CONFIG", help="the experiment's TOML file")
    search.add_argument("--out", type=Path, default=None,
                        help="the search's folder (default: ./NAME.search in the current "
                             "folder, NAME being CONFIG's name without .toml)")
    search.add_argument("--trials", type=_threads, default=None, metavar="N",
                        help="the budget, counted over every run of OUT (default: "
                             "[search] trials)")
    _cluster_arguments(search, "trials")

    inspect = commands.add_parser(
        "inspect", help="footprint, spectra, ESP verdicts and β of a saved model",
        description="Load a model saved with model.save(PATH) and print its parameter "
                    "footprint, the spectra of its matrices, the echo-state verdicts (recurrent "
                    "models) or the per-layer σ₁ and depth Lyapunov growth (scaffolds), and β.")
    inspect.add_argument("path", type=Path, metavar="PATH", help="a saved model (a directory)")

    reproduce = commands.add_parser(
        "reproduce", help="run one of the paper-reproduction studies shipped with the package",
        description="Run a study (its source is analysis/NAME.py in the repository; it ships "
                    "with the package) and write NAME.nc, NAME.png and NAME.md (paper vs ours, "
                    "each difference classified) into the output folder; print the summary.")
    reproduce.add_argument("name", nargs="?", metavar="NAME", help="the study's name")
    reproduce.add_argument("--list", action="store_true", help="list the available studies")
    reproduce.add_argument("--quick", action="store_true", help="a small configuration")
    reproduce.add_argument("--out", type=Path, default=Path("analysis-results"),
                           help="output folder (default: ./analysis-results)")
    reproduce.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    reproduce.add_argument("--data", type=Path, default=None, metavar="FILE.npz",
                           help="a data file with X and y (optionally X_test, y_test) in place "
                                "of the study's built-in data; nothing is downloaded")
    reproduce.add_argument("--recipe", choices=("default", "paper"), default="default",
                           help="training recipe of the MLP studies: 'default' (α = r, fixed "
                                "lr) or 'paper' (α = 1, lr searched per method on the "
                                "validation split)")
    reproduce.add_argument("--studies-dir", type=Path, default=None,
                           help="a folder of your own studies (default: $DEEPRESERVOIR_STUDIES, "
                                "else the studies shipped with the package)")
    reproduce.add_argument("--threads", type=_threads, default=None, help=THREADS_HELP)
    reproduce.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def _expect_folder(path: Path | None, flag: str, *, create: bool = False) -> None:
    """Refuse a ``flag`` that names a file where a folder is expected.

    ``create``: make the folder (an output folder), which must be writable.
    """
    from deepreservoir.errors import ParameterError

    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise ParameterError(f"{flag} {str(path)!r} is a file; expected a folder.")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ParameterError(f"{flag} {str(path)!r} could not be created "
                                 f"({error.strerror or error}); expected a writable folder."
                                 ) from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise ParameterError(f"{flag} {str(path)!r} is not writable; expected a writable "
                                 f"folder.")


def _set_threads(threads: int | None) -> None:
    from deepreservoir.threads import use_threads

    use_threads(threads)


def _cmd_demo(args) -> int:
    from deepreservoir._extras import require_extra

    require_extra("the demo")
    from deepreservoir.demo import run_demo

    _expect_folder(args.out, "--out", create=True)
    _set_threads(args.threads)
    run_demo(args.out, quick=args.quick, progress=not args.no_progress, seed=args.seed)
    return 0


def _cmd_sweep(args) -> int:
    from deepreservoir.cell_engine import sidecar_folder
    from deepreservoir.experiment_config import is_experiment
    from deepreservoir.sweep_config import read_toml

    workers, threads = _where(args, "sweep", "train the cells")
    out = args.out if args.out is not None else Path(args.config.with_suffix(".nc").name)
    document = read_toml(args.config)  # read once; either kind of grid parses it
    where, base = str(args.config), args.config.parent
    if is_experiment(document):
        from deepreservoir.cli_report import experiment_grid_text
        from deepreservoir.experiment_config import parse_experiment
        from deepreservoir.experiment_sweep import run_experiment_sweep

        merged, stats = run_experiment_sweep(
            parse_experiment(document, where, base), out, workers=workers,
            threads_per_worker=threads, scheduler=args.scheduler, progress=not args.no_progress)
        report = experiment_grid_text(merged)
    else:
        from deepreservoir.cli_report import lottalora_grid_text
        from deepreservoir.sweep import parse_config, run_sweep

        merged, stats = run_sweep(parse_config(document, where, base), out, workers=workers,
                                  threads_per_worker=threads, scheduler=args.scheduler,
                                  progress=not args.no_progress)
        report = lottalora_grid_text(merged)
    print(f"{stats['total']} cells: {stats['done_before']} already done, {stats['trained']} "
          f"trained now. Wrote {out} (cells in {sidecar_folder(Path(out))}/).")
    print(report)
    return 0


def _cmd_search(args) -> int:
    from deepreservoir.experiment_config import load_experiment
    from deepreservoir.search import run_search

    workers, threads = _where(args, "search", "run the trials")
    config = load_experiment(args.config)
    out = args.out if args.out is not None else Path(args.config.with_suffix(".search").name)
    trials, best = run_search(config, out, trials=args.trials, workers=workers,
                              threads_per_worker=threads, scheduler=args.scheduler,
                              progress=not args.no_progress)
    states = trials["state"].values
    failed = int((states == "FAIL").sum())
    print(f"{len(states)} trials in {out}/ ({int((states == 'COMPLETE').sum())} complete, "
          f"{failed} failed); every trial in {out}/trials.nc.")
    point = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                      for k, v in best["params"].items())
    print(f"best trial {best['number']}: {point}")
    print(f"  {config.metric} = {best['value']:.4g} (mean over {len(config.seeds)} seed"
          f"{'s' if len(config.seeds) > 1 else ''}); model saved in {best['artifact']}/")
    return 0


def _cmd_inspect(args) -> int:
    import deepreservoir as dr
    from deepreservoir.cli_report import model_report
    from deepreservoir.errors import ArtifactError

    path = args.path
    if not path.exists():
        raise ArtifactError(f"No saved model at {str(path)!r}.")
    model = dr.load(path)
    # 20 iterations of the Buehner–Young search, as the demo: the verdict is the same on
    # these models and inspect answers in seconds rather than a minute.
    print(model_report(model, title=f"{path}", path=path, esp_maxiter=20).text)
    if hasattr(model, "alpha_convention"):
        conventions = {name: text for name, text in model.alpha_convention().items()
                       if not text.startswith("r = 0")}
        if conventions:
            print("α convention: " + "; ".join(f"{k}: {v}" for k, v in conventions.items()))
    return 0


def _cmd_reproduce(args) -> int:
    from deepreservoir.studies import available_studies, find_studies_dir, load_study, run_study

    _expect_folder(args.studies_dir, "--studies-dir")
    if args.list:
        folder = find_studies_dir(args.studies_dir)
        names = available_studies(folder)
        print(f"Studies in {folder}:")
        for name in names:
            module = load_study(name, folder)
            print(f"  {name:<22} {module.TITLE}  [{module.PAPER}]")
        return 0
    if not args.name:
        raise _UsageError("reproduce needs a study NAME or --list")
    from deepreservoir._extras import require_extra

    require_extra("running a study")
    _expect_folder(args.out, "--out", create=True)
    _set_threads(args.threads)
    result = run_study(args.name, args.out, quick=args.quick, seed=args.seed,
                       progress=not args.no_progress, studies_dir=args.studies_dir,
                       data=args.data, recipe=args.recipe)
    print(result["summary"])
    print()
    held = [k for k, v in result["claims"].items() if v]
    failed = [k for k, v in result["claims"].items() if not v]
    print(f"Claims holding on this data: {', '.join(held) or '(none)'}")
    if failed:
        print(f"Claims not holding: {', '.join(failed)}")
    print(f"Finished in {result['seconds']:.0f} s. Files:")
    for path in result["files"]:
        print(f"  {path}")
    return 0


class _UsageError(Exception):
    """A usage problem found after parsing (exit status 2)."""


_COMMANDS = {"demo": _cmd_demo, "sweep": _cmd_sweep, "search": _cmd_search,
             "inspect": _cmd_inspect, "reproduce": _cmd_reproduce}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (also used as the console script).

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).
    """
    from deepreservoir.errors import DeepReservoirError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version and usage errors
        return int(stop.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _COMMANDS[args.command](args)
    except _UsageError as error:
        print(f"{PROG} {args.command}: error: {error} (see '{PROG} {args.command} --help')",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except (DeepReservoirError, OSError, ValueError, ImportError) as error:
        if os.environ.get("DEEPRESERVOIR_DEBUG"):
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
