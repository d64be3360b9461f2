"""The reliability probe as a table: every bad input gets a clear deepreservoir error.

Each row of ``CASES`` builds one situation a user can get into (NaN/Inf in data,
targets and weights; empty and size-1 inputs; wrong ndim; int, bool, complex,
object, float16 and bfloat16 dtypes; running before fitting; a wrong feature
count after fitting; out-of-range and wrongly typed hyperparameters; unknown and
duplicate names; cycles; a node reused; mismatched batches; ragged lists with
different feature counts; labels out of range; bad TOML; missing files; a folder
instead of a file; a read-only output folder) and says what must happen:

* the exception is of the stated deepreservoir class;
* its message names the parameter and the value received (``must_mention``);
* it is raised inside the ``deepreservoir`` package, not inside torch, numpy,
  scipy or pathlib, and is not chained from such a library's error (``raise ...
  from None`` is fine);
* its message is not obscure (long enough, not a raw torch/numpy message).

``BEHAVIOUR`` holds inputs whose right outcome is success with a documented
meaning (float16 data is cast to the model's dtype, a size-1 series is a
series, ...): the result must be finite and of the documented shape, never a
silent NaN. A few of them may instead raise a clear error (``or_raises``) where
refusing is as good an answer as succeeding.

``CLI_CASES`` runs the ``deepreservoir`` command on bad files: exit status 1, one
line on stderr naming the file, no traceback.

Cases already in ``tests/test_bad_input.py`` are not repeated here.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.torch  # noqa: F401  (imported before any unprivileged call)
import torch
from torch import nn

import deepreservoir as dr
from deepreservoir import analysis, cli, datasets, studies, sweep

# --------------------------------------------------------------------------- the table
Mention = str | tuple[str, ...]  # a substring, or alternatives of which one must appear


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[], Any]
    expected_exception: Any  # a deepreservoir error class, or a tuple of them
    must_mention: tuple[Mention, ...] = ()

    @property
    def expected(self) -> Any:
        return self.expected_exception


@dataclass(frozen=True)
class Ok:
    """A correct-behaviour case: ``call()`` succeeds with a finite result of ``shape``.

    ``or_raises``: (exception class, must_mention) when a clear refusal is an
    equally right answer.
    """

    id: str
    call: Callable[[], Any]
    shape: tuple[int, ...] | None
    or_raises: tuple[type[BaseException], tuple[Mention, ...]] | None = None


# ----------------------------------------------------------------------------- helpers
_SCRATCH: list[Path] = []


def scratch() -> Path:
    """A fresh folder readable by every user (the read-only cases drop privileges)."""
    if not _SCRATCH:
        base = Path(tempfile.mkdtemp(prefix="dr-probe-"))
        base.chmod(0o755)
        _SCRATCH.append(base)
    folder = Path(tempfile.mkdtemp(dir=_SCRATCH[0]))
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="module", autouse=True)
def _clean_scratch():
    yield
    for base in _SCRATCH:
        for root, dirs, _ in os.walk(base):
            for name in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(root, name), 0o755)
        shutil.rmtree(base, ignore_errors=True)
    _SCRATCH.clear()


def read_only_dir() -> Path:
    folder = scratch() / "read_only"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP
                 | stat.S_IROTH | stat.S_IXOTH)
    return folder


@contextlib.contextmanager
def unprivileged():
    """Root ignores file modes: run as 'nobody' for the read-only cases."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        yield
        return
    try:
        os.seteuid(65534)
    except OSError:  # pragma: no cover - no CAP_SETUID
        pytest.skip("running as root without the right to drop privileges")
    try:
        yield
    finally:
        os.seteuid(0)


def as_nobody(fn: Callable[[], Any]) -> Callable[[], Any]:
    def call():
        with unprivileged():
            return fn()
    return call


def u(T: int = 30, F: int = 1, B: int | None = None, dtype=np.float64) -> np.ndarray:
    """A smooth, finite series (T, F) or batch (B, T, F)."""
    t = np.arange(T)[:, None] * 0.3 + np.arange(F)[None, :]
    x = np.sin(t)
    if B is not None:
        x = np.stack([np.roll(x, b, axis=0) for b in range(B)])
    return x.astype(dtype)


def with_value(x: np.ndarray, index: tuple, value: float) -> np.ndarray:
    x = np.array(x, dtype=np.float64, copy=True)
    x[index] = value
    return x


def esn(name: str = "ro") -> dr.Model:
    return dr.Reservoir(8, seed=0, name="res") >> dr.Ridge(1e-6, name=name)


def fitted_esn(F: int = 1) -> dr.Model:
    model = esn()
    model.fit(u(30, F), u(30, 1), warmup=2)
    return model


def classifier(units: int = 3) -> dr.Model:
    return dr.Input() >> dr.LoRAReadout(units, r=1, seed=0, name="head")


def scaffold_model() -> dr.Model:
    return dr.Input() >> dr.Scaffold(8, r=2, seed=1, name="hidden") >> dr.LoRAReadout(
        3, r=1, seed=0, name="head")


def points(n: int = 12, F: int = 4, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, F)).astype(dtype)


def labels(n: int = 12, classes: int = 3) -> np.ndarray:
    return np.arange(n) % classes


def gfit(model, X, y, **options):
    options = {"epochs": 1, "verbose": 0, "loss": "cross_entropy", **options}
    return model.fit(X, y, **options)


def trained_classifier() -> dr.Model:
    model = classifier()
    gfit(model, points(), labels())
    return model


def rls_loop() -> dr.Model:
    reservoir = dr.Reservoir(8, seed=0, name="res", dtype=torch.float64)
    readout = dr.RLS(1e-3, name="rls", dtype=torch.float64)
    return reservoir >> readout


def two_inputs() -> dr.Model:
    return [dr.Input(name="a"), dr.Input(name="b")] >> dr.Reservoir(8, seed=0, name="res")


def saved_model() -> Path:
    path = scratch() / "model.dr"
    fitted_esn().save(path)
    return path


def saved_then(edit: Callable[[Path], None]) -> Path:
    path = saved_model()
    edit(path)
    return path


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def toml_file(text: str | bytes, name: str = "grid.toml") -> Path:
    return write(scratch() / name, text)


def run_cli(*args: str, debug: bool = True) -> int:
    """``deepreservoir ARGS`` in-process; with ``debug`` the error propagates as raised."""
    previous = os.environ.get("DEEPRESERVOIR_DEBUG")
    if debug:
        os.environ["DEEPRESERVOIR_DEBUG"] = "1"
    else:
        os.environ.pop("DEEPRESERVOIR_DEBUG", None)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return cli.main([str(a) for a in args])
    finally:
        if previous is None:
            os.environ.pop("DEEPRESERVOIR_DEBUG", None)
        else:
            os.environ["DEEPRESERVOIR_DEBUG"] = previous


def expect_cli_failure(*args: str) -> Callable[[], Any]:
    """For the main table: the command must raise (debug mode) rather than return."""
    def call():
        status = run_cli(*args)
        raise AssertionError(f"deepreservoir {' '.join(map(str, args))} returned {status} "
                             f"without raising")
    return call


TINY_SWEEP = ("[sweep]\ndataset = 'digits'\nnum_samples = 64\nranks = [1]\nseeds = [0]\n"
              "families = ['normal']\npresets = ['tiny']\nfull = false\n"
              "[train]\nepochs = 1\n")


class Linear2(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def _needs(module: str) -> bool:
    pytest.importorskip(module)
    return True


def _nan_W(n: int = 8) -> np.ndarray:
    return with_value(np.eye(n) * 0.5, (1, 2), np.nan)


# ------------------------------------------------------------------------------ cases
CASES: list[Case] = []


Expected = type[BaseException] | tuple[type[BaseException], ...]


def add(id: str, expected: Expected, must_mention: tuple, call: Callable[[], Any]):
    CASES.append(Case(id, call, expected, tuple(must_mention)))


X_NAME = ("'X'", "'x'")
NAN = ("NaN", "nan")
INF = ("Inf", "inf")
Y_NAME = ("'Y'", "'y'")

# ---- NaN / Inf in data -----------------------------------------------------------
add("nan-in-fit-X", dr.DataError, (X_NAME, NAN),
    lambda: esn().fit(with_value(u(), (4, 0), np.nan), u()))
add("inf-in-fit-X", dr.DataError, (X_NAME, INF),
    lambda: esn().fit(with_value(u(), (4, 0), np.inf), u()))
add("neg-inf-in-batch-run", dr.DataError, (X_NAME, INF),
    lambda: dr.Reservoir(8, seed=0).run(with_value(u(B=2), (1, 3, 0), -np.inf)))
add("nan-in-ragged-run", dr.DataError, (("'X[1]'", "'X'"), NAN),
    lambda: dr.Reservoir(8, seed=0).run([u(10), with_value(u(12), (5, 0), np.nan)]))
add("nan-in-torch-run", dr.DataError, (X_NAME, NAN),
    lambda: dr.Reservoir(8, seed=0).run(torch.tensor(with_value(u(), (2, 0), np.nan))))
add("nan-in-step", dr.DataError, (X_NAME, NAN),
    lambda: fitted_esn().step(np.array([np.nan])))
add("inf-in-step-torch", dr.DataError, (X_NAME, INF),
    lambda: fitted_esn().step(torch.tensor([np.inf], dtype=torch.float32)))
add("nan-in-forward-numpy", dr.DataError, (X_NAME, NAN),
    lambda: fitted_esn()(with_value(u(), (3, 0), np.nan)))
add("nan-in-forward-torch", dr.DataError, (X_NAME, NAN),
    lambda: fitted_esn()(torch.tensor(with_value(u(), (3, 0), np.nan), dtype=torch.float32)))
add("inf-in-forward-torch-node", dr.DataError, (X_NAME, INF),
    lambda: dr.Reservoir(8, seed=0)(torch.full((5, 1), np.inf)))
add("nan-in-generate-warmup", dr.DataError, (("'warmup'",), NAN),
    lambda: fitted_esn().generate(5, warmup=with_value(u(), (3, 0), np.nan)))
add("nan-in-generate-start", dr.DataError, (("'start'",), NAN),
    lambda: fitted_esn().generate(5, start=np.array([np.nan])))
add("nan-in-states-X", dr.DataError, (X_NAME, NAN),
    lambda: esn().states(with_value(u(), (0, 0), np.nan), nodes="res"))
add("nan-in-partial-fit-X", dr.DataError, (X_NAME, NAN),
    lambda: rls_loop().partial_fit(with_value(u(), (2, 0), np.nan), u()))
add("inf-in-online-fit-Y", dr.DataError, (Y_NAME, INF),
    lambda: rls_loop().fit(u(), with_value(u(), (2, 0), np.inf)))
add("inf-in-partial-fit-Y", dr.DataError, (Y_NAME, INF),
    lambda: dr.LMS(0.01).partial_fit(u(), with_value(u(), (2, 0), -np.inf)))
add("inf-in-gradient-regression-Y", dr.DataError, (Y_NAME, INF),
    lambda: gfit(dr.Input() >> dr.LoRAReadout(1, r=1, seed=0), points(),
                 with_value(np.ones((12, 1)), (3, 0), np.inf), loss="mse"))
add("nan-in-gradient-X", dr.DataError, (X_NAME, NAN),
    lambda: gfit(classifier(), with_value(points(), (0, 1), np.nan), labels()))
add("nan-in-validation-x", dr.DataError, (("'validation_data'", "validation"), NAN),
    lambda: gfit(classifier(), points(), labels(),
                 validation_data=(with_value(points(6), (0, 0), np.nan), labels(6))))
add("nan-in-evaluate-X", dr.DataError, (X_NAME, NAN),
    lambda: dr.training.evaluate(trained_classifier(), with_value(points(), (1, 1), np.nan),
                                 labels()))
add("nan-in-predict-X", dr.DataError, (X_NAME, NAN),
    lambda: dr.training.predict(trained_classifier(), with_value(points(), (1, 1), np.nan)))
add("nan-in-nvar-run", dr.DataError, (X_NAME, NAN),
    lambda: dr.NVAR(2, 2).run(with_value(u(), (5, 0), np.nan)))

# ---- NaN / Inf in weights and hyperparameters --------------------------------------
add("nan-in-explicit-W", dr.ParameterError, ("'W'", NAN),
    lambda: dr.Reservoir(W=_nan_W(), sr=None))
add("inf-in-explicit-Win", dr.ParameterError, ("'Win'", INF),
    lambda: dr.Reservoir(8, Win=with_value(np.ones((8, 1)), (0, 0), np.inf), seed=0))
add("nan-in-explicit-bias", dr.ParameterError, ("'bias'", NAN),
    lambda: dr.Reservoir(8, bias=with_value(np.zeros(8), (3,), np.nan), seed=0))
add("nan-in-ridge-Wout", dr.ParameterError, ("'Wout'", NAN),
    lambda: dr.Ridge(Wout=with_value(np.ones((8, 1)), (2, 0), np.nan)))
add("inf-in-ridge-bias", dr.ParameterError, ("'bias'", INF),
    lambda: dr.Ridge(Wout=np.ones((8, 1)), bias=np.array([np.inf])))
add("nan-in-rls-Wout", dr.ParameterError, ("'Wout'", NAN),
    lambda: dr.RLS(Wout=with_value(np.ones((4, 1)), (0, 0), np.nan)))
add("inf-in-lms-bias", dr.ParameterError, ("'bias'", INF),
    lambda: dr.LMS(0.1, Wout=np.ones((4, 1)), bias=np.array([np.inf])))
add("nan-in-es2n-O", dr.ParameterError, ("'O'", NAN),
    lambda: dr.ES2N(8, O=_nan_W(), seed=0))
add("nan-sr", dr.ParameterError, ("'sr'", "nan"), lambda: dr.Reservoir(8, sr=float("nan")))
add("inf-sr", dr.ParameterError, ("'sr'", "inf"), lambda: dr.Reservoir(8, sr=float("inf")))
add("nan-input-scaling", dr.ParameterError, ("'input_scaling'", "nan"),
    lambda: dr.Reservoir(8, input_scaling=float("nan")))
add("inf-bias-scaling", dr.ParameterError, ("'bias_scaling'", "inf"),
    lambda: dr.Reservoir(8, bias_scaling=float("inf")))
add("nan-ridge", dr.ParameterError, ("'ridge'", "nan"), lambda: dr.Ridge(float("nan")))
add("nan-beta-init", dr.ParameterError, ("'init'", "nan"), lambda: dr.BetaGate(float("nan")))
add("nan-rls-alpha", dr.ParameterError, ("'alpha'", "nan"), lambda: dr.RLS(float("nan")))
add("inf-lms-learning-rate", dr.ParameterError, ("'learning_rate'", "inf"),
    lambda: dr.LMS(float("inf")))
add("nan-scaffold-alpha", dr.ParameterError, ("'alpha'", "nan"),
    lambda: dr.Scaffold(8, r=2, alpha=float("nan")))
add("nan-gradient-lr", dr.ParameterError, ("'lr'", "nan"),
    lambda: gfit(classifier(), points(), labels(), lr=float("nan")))
add("inf-weight-decay", dr.ParameterError, ("'weight_decay'", "inf"),
    lambda: gfit(classifier(), points(), labels(), weight_decay=float("inf")))
add("nan-adapt-alpha", dr.ParameterError, ("'alpha'", "nan"),
    lambda: dr.adapt(Linear2(), r=1, seed=0, alpha=float("nan")))
add("nan-loaded-state-dict-weights", dr.DataError, ("'ro'", NAN),
    lambda: _run_after_nan_state())


def _run_after_nan_state():
    model = fitted_esn()
    state = model.state_dict()
    key = next(k for k in state if k.endswith("Wout_"))
    state[key] = torch.full_like(state[key], float("nan"))
    model.load_state_dict(state)
    return model.run(u(), reset=True)


add("inf-spectral-norm-matrix", dr.DataError, ("'target'", INF),
    lambda: analysis.spectral_norm(with_value(np.eye(4), (0, 1), np.inf)))
add("nan-singular-values-matrix", dr.DataError, ("'target'", NAN),
    lambda: analysis.singular_values(with_value(np.eye(4), (0, 1), np.nan)))
add("nan-check-esp-matrix", dr.DataError, ("'target'", NAN),
    lambda: analysis.check_esp(_nan_W(4), inputs=u(20)))
add("inf-lyapunov-matrix", dr.DataError, ("'target'", INF),
    lambda: analysis.lyapunov_exponents(with_value(np.eye(4) * 0.5, (0, 0), np.inf),
                                        inputs=u(40), steps=20, warmup=5))
add("nan-memory-capacity-Win", dr.DataError, ("'Win'", NAN),
    lambda: analysis.memory_capacity(np.eye(4) * 0.5, 2, Win=with_value(np.ones(4), (1,), np.nan),
                                     steps=200, warmup=10))
add("inf-intrinsic-dimension-points", dr.DataError, ((*X_NAME, "'target'"), INF),
    lambda: analysis.intrinsic_dimension(with_value(points(30), (2, 2), np.inf)))
add("nan-depth-lyapunov-layer", dr.DataError, (NAN,),
    lambda: analysis.depth_lyapunov([with_value(np.ones((4, 4)), (0, 0), np.nan)]))
add("nan-leaky-radius-matrix", dr.DataError, ("'target'", NAN),
    lambda: analysis.leaky_spectral_radius(_nan_W(4), lr=0.5))

# ---- empty and size-1 inputs ----------------------------------------------------------
add("empty-targets", dr.DataError, (Y_NAME, "(0, 1)"),
    lambda: esn().fit(u(), np.zeros((0, 1))))
add("empty-fit-X", dr.DataError, (X_NAME, "empty"),
    lambda: esn().fit(np.zeros((0, 1)), np.zeros((0, 1))))
add("empty-step-x", dr.DataError, (X_NAME, "Got 0"),
    lambda: fitted_esn().step(np.zeros(0)))
add("empty-gradient-X", dr.DataError, (X_NAME, "empty"),
    lambda: gfit(classifier(), np.zeros((0, 4), dtype=np.float32), np.zeros(0, dtype=int)))
add("empty-generate-warmup", dr.DataError, (("'warmup'",), "empty"),
    lambda: fitted_esn().generate(3, warmup=np.zeros((0, 1))))
add("generate-zero-steps", dr.ParameterError, ("'n'", "Got 0"),
    lambda: fitted_esn().generate(0, warmup=u()))
add("run-zero-iters", dr.ParameterError, ("'iters'", "Got 0"),
    lambda: fitted_esn().run(iters=0))
add("empty-run-dict", dr.DataError, (X_NAME, ("{}", "[]")),
    lambda: two_inputs().run({}))
add("empty-list-operand", dr.GraphError, (("[]", "empty list"),), lambda: [] >> dr.Ridge())
add("empty-points-pca", dr.DataError, ((*X_NAME, "pca_dimension"), ("(0, 3)", "0 points")),
    lambda: analysis.pca_dimension(np.zeros((0, 3))))
add("one-point-participation-ratio", dr.DataError, ((*X_NAME, "participation_ratio"),
                                                    "1 point"),
    lambda: analysis.participation_ratio(np.ones((1, 3))))
add("one-point-intrinsic-dimension", dr.DataError, (("'target'", "points", *X_NAME), "1 point"),
    lambda: analysis.intrinsic_dimension(np.ones((1, 3))))
add("empty-matrix-spectral-radius", dr.DataError, ("'target'", "(0, 0)"),
    lambda: analysis.spectral_radius(np.zeros((0, 0))))
add("empty-inputs-check-esp", dr.DataError, ("'inputs'", "empty"),
    lambda: analysis.check_esp(dr.Reservoir(8, seed=0, input_dim=1), inputs=np.zeros((0, 1))))
add("empty-layer-list-depth-lyapunov", dr.ParameterError, ("'target'", ("[]", "0 items")),
    lambda: analysis.depth_lyapunov([]))
add("scaffold-zero-units", dr.ParameterError, ("'units'", "Got 0"),
    lambda: dr.Scaffold(0))
add("dense-zero-units", dr.ParameterError, ("'units'", "Got 0"), lambda: dr.Dense(0))
add("lora-readout-zero-units", dr.ParameterError, ("'units'", "Got 0"),
    lambda: dr.LoRAReadout(0))
add("esn-zero-units", dr.ParameterError, ("'units'", "Got 0"), lambda: dr.ESN(units=0))
add("es2n-zero-units", dr.ParameterError, ("'units'", "Got 0"), lambda: dr.ES2N(0))
add("one-unit-sparse-reservoir", dr.ParameterError, ("units=1", "rc_connectivity"),
    lambda: dr.Reservoir(1, seed=0).run(u()))
add("validation-split-leaves-nothing", dr.DataError, ("'validation_split'",),
    lambda: gfit(classifier(), points(1), labels(1), validation_split=0.5))
add("ridge-zero-output-dim", dr.ParameterError, ("'output_dim'", "Got 0"),
    lambda: dr.Ridge(output_dim=0))
add("input-zero-dim", dr.ParameterError, ("'input_dim'", "Got 0"), lambda: dr.Input(0))
add("narma-zero-steps", dr.ParameterError, ("'steps'", "Got 0"),
    lambda: datasets.narma10(0))

# ---- wrong ndim -------------------------------------------------------------------------
add("fit-Y-4d", dr.DataError, (Y_NAME, "(30, 1, 1, 1)"),
    lambda: esn().fit(u(), np.ones((30, 1, 1, 1))))
add("step-3d", dr.DataError, (X_NAME, "3"),
    lambda: fitted_esn().step(np.ones((2, 2, 1))))
add("generate-warmup-1d", dr.DataError, (("'warmup'",), "1 dimension"),
    lambda: fitted_esn().generate(3, warmup=np.ones(30)))
add("forward-torch-4d", dr.DataError, (X_NAME, "4"),
    lambda: fitted_esn()(torch.ones(2, 2, 5, 1)))
add("forward-torch-0d", dr.DataError, (X_NAME, "0"),
    lambda: fitted_esn()(torch.tensor(1.0)))
add("spectral-radius-3d", (dr.DataError, dr.ParameterError), ("'target'", "(2, 2, 2)"),
    lambda: analysis.spectral_radius(np.ones((2, 2, 2))))
add("spectral-radius-1d", (dr.DataError, dr.ParameterError), ("'target'", "(4,)"),
    lambda: analysis.spectral_radius(np.ones(4)))
add("twonn-4d", dr.DataError, (X_NAME, "(2, 3, 4, 5)"),
    lambda: analysis.twonn(np.ones((2, 3, 4, 5))))
add("participation-ratio-1d", dr.DataError, (X_NAME, "(10,)"),
    lambda: analysis.participation_ratio(np.arange(10.0)))
add("ridge-Wout-1d", dr.ParameterError, ("'Wout'", "(8,)"),
    lambda: dr.Ridge(Wout=np.ones(8)))
add("reservoir-W-1d", dr.ParameterError, ("'W'", "(8,)"),
    lambda: dr.Reservoir(8, W=np.ones(8)))
add("reservoir-Win-3d", dr.ParameterError, ("'Win'", "(8, 1, 1)"),
    lambda: dr.Reservoir(8, Win=np.ones((8, 1, 1)), seed=0))
add("labels-2d-per-sequence", dr.DataError, (Y_NAME, "(12, 2)"),
    lambda: gfit(classifier(), points(), np.zeros((12, 2), dtype=int)))
add("depth-lyapunov-1d-layer", dr.DataError, ("(4,)",),
    lambda: analysis.depth_lyapunov([np.ones(4)]))
add("memory-capacity-3d-inputs", dr.DataError, ("'inputs'", "(2, 50, 1)"),
    lambda: analysis.memory_capacity(dr.Reservoir(8, seed=0, input_dim=1), 2,
                                     inputs=np.ones((2, 50, 1))))
add("evaluate-X-1d", dr.DataError, (X_NAME, "1 dimension"),
    lambda: dr.training.evaluate(trained_classifier(), np.ones(4, dtype=np.float32),
                                 np.zeros(1, dtype=int)))

# ---- dtypes ------------------------------------------------------------------------------
add("fit-X-int64", dr.DataError, (X_NAME, "int64"),
    lambda: esn().fit(np.ones((30, 1), dtype=np.int64), u()))
add("fit-Y-complex", dr.DataError, (Y_NAME, "complex"),
    lambda: esn().fit(u(), u().astype(np.complex128)))
add("fit-Y-object", dr.DataError, (Y_NAME, "object"),
    lambda: esn().fit(u(), np.array([[None]] * 30, dtype=object)))
add("run-X-object", dr.DataError, (X_NAME, "object"),
    lambda: dr.Reservoir(8, seed=0).run(np.array([[1.0], [None]], dtype=object)))
add("run-X-uint8", dr.DataError, (X_NAME, "uint8"),
    lambda: dr.Reservoir(8, seed=0).run(np.ones((5, 1), dtype=np.uint8)))
add("run-X-torch-complex64", dr.DataError, (X_NAME, "complex64"),
    lambda: dr.Reservoir(8, seed=0).run(torch.ones(5, 1, dtype=torch.complex64)))
add("run-X-torch-bool", dr.DataError, (X_NAME, "bool"),
    lambda: dr.Reservoir(8, seed=0).run(torch.ones(5, 1, dtype=torch.bool)))
add("step-int64", dr.DataError, (X_NAME, "int64"),
    lambda: fitted_esn().step(np.ones(1, dtype=np.int64)))
add("step-complex", dr.DataError, (X_NAME, "complex"),
    lambda: fitted_esn().step(np.ones(1, dtype=np.complex128)))
add("forward-torch-int64", dr.DataError, (X_NAME, "int64"),
    lambda: fitted_esn()(torch.ones(5, 1, dtype=torch.int64)))
add("forward-torch-complex64", dr.DataError, (X_NAME, "complex64"),
    lambda: fitted_esn()(torch.ones(5, 1, dtype=torch.complex64)))
add("forward-numpy-object", dr.DataError, (X_NAME, "object"),
    lambda: fitted_esn()(np.array([[0.5], ["a"]], dtype=object)))
add("generate-warmup-int", dr.DataError, (("'warmup'",), "int64"),
    lambda: fitted_esn().generate(3, warmup=np.ones((10, 1), dtype=np.int64)))
add("partial-fit-X-bool", dr.DataError, (X_NAME, "bool"),
    lambda: dr.LMS(0.1).partial_fit(np.ones((10, 2), dtype=bool), u(10)))
add("gradient-X-int", dr.DataError, (X_NAME, "int64"),
    lambda: gfit(classifier(), np.ones((12, 4), dtype=np.int64), labels()))
add("labels-complex", dr.DataError, (Y_NAME, "complex"),
    lambda: gfit(classifier(), points(), labels().astype(np.complex64)))
add("labels-object", dr.DataError, (Y_NAME, "object"),
    lambda: gfit(classifier(), points(), np.array(["a"] * 12, dtype=object)))
add("reservoir-dtype-string-int", dr.ParameterError, ("'dtype'", "'int32'"),
    lambda: dr.Reservoir(8, dtype="int32"))
add("reservoir-dtype-complex", dr.ParameterError, ("'dtype'", "complex64"),
    lambda: dr.Reservoir(8, dtype=np.complex64))
add("scaffold-dtype-int", dr.ParameterError, ("'dtype'", "int64"),
    lambda: dr.Scaffold(8, dtype=torch.int64))
add("ridge-dtype-bool", dr.ParameterError, ("'dtype'", "bool"),
    lambda: dr.Ridge(dtype=torch.bool))
add("reservoir-W-complex", dr.ParameterError, ("'W'", "complex"),
    lambda: dr.Reservoir(4, W=np.eye(4, dtype=np.complex128), sr=None))
add("reservoir-W-object", dr.ParameterError, ("'W'", ("object", *NAN)),
    lambda: dr.Reservoir(2, W=np.array([[1, None], [0, 1]], dtype=object), sr=None))
add("ridge-Wout-complex", dr.ParameterError, ("'Wout'", "complex"),
    lambda: dr.Ridge(Wout=np.ones((4, 1), dtype=np.complex64)))
add("spectral-radius-complex", dr.DataError, ("'target'", "complex"),
    lambda: analysis.spectral_radius(np.eye(3) * 1j))  # a cast to real gives 0, not 1
add("spectral-radius-object", dr.DataError, ("'target'", "object"),
    lambda: analysis.spectral_radius(np.array([[1, "a"], [0, 1]], dtype=object)))
add("pca-dimension-complex", dr.DataError, (X_NAME, "complex"),
    lambda: analysis.pca_dimension(points(20) * 1j))  # a cast to real leaves zeros
add("mle-dimension-object", dr.DataError, (X_NAME, ("object", *NAN)),
    lambda: analysis.mle_dimension(np.array([[1.0, None]] * 30, dtype=object), k=3))
add("check-esp-inputs-complex", dr.DataError, ("'inputs'", "complex"),
    lambda: analysis.check_esp(dr.Reservoir(8, seed=0, input_dim=1),
                               inputs=np.ones((20, 1)) * 1j))

# ---- run before fit -----------------------------------------------------------------------
add("ridge-alone-run-before-fit", dr.NotFittedError, ("'ro'", "fit"),
    lambda: dr.Ridge(name="ro").run(u()))
add("step-before-fit", dr.NotFittedError, ("'ro'", "fit"),
    lambda: esn().step(np.ones(1)))
add("forward-numpy-before-fit", dr.NotFittedError, ("'ro'", "fit"),
    lambda: esn()(u()))
add("forward-torch-before-fit", dr.NotFittedError, ("'ro'", "fit"),
    lambda: esn()(torch.ones(5, 1)))
add("generate-before-fit", dr.NotFittedError, ("'ro'", "fit"),
    lambda: esn().generate(3, warmup=u()))
add("states-before-fit", dr.NotFittedError, ("'ro'", "fit"),
    lambda: esn().states(u()))
add("free-run-before-build", dr.NotFittedError, ("run(iters", "fit"),
    lambda: esn().run(iters=5))
add("esn-run-before-fit", dr.NotFittedError, ("'readout'", "fit"),
    lambda: dr.ESN(units=8, seed=0).run(u()))
add("esn-generate-before-fit", dr.NotFittedError, ("'readout'", "fit"),
    lambda: dr.ESN(units=8, seed=0).generate(3, warmup=u()))
add("predict-before-fit", dr.NotFittedError, ("'ro'", "fit"),
    lambda: dr.training.predict(esn(), u()))
add("spectral-radius-unbuilt-node", dr.NotFittedError, (("'target'", "'Reservoir-0'"),
                                                         ("run", "fit")),
    lambda: analysis.spectral_radius(dr.Reservoir(8, seed=0)))
add("singular-values-unbuilt-model", dr.NotFittedError, ("'res'", ("run", "fit")),
    lambda: analysis.singular_values(esn()))
add("current-beta-unbuilt", dr.NotFittedError, ("'model'", "hidden"),
    lambda: analysis.current_beta(scaffold_model()))

# ---- wrong feature count after fit ---------------------------------------------------------
add("model-run-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: fitted_esn().run(u(10, 7)))
add("step-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: fitted_esn().step(np.ones(7)))
add("forward-numpy-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: fitted_esn()(u(10, 7)))
add("forward-torch-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: fitted_esn()(torch.ones(10, 7)))
add("forward-torch-batch-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: trained_classifier()(torch.ones(2, 3, 7)))
add("generate-warmup-wrong-features", dr.DataError, (("'warmup'",), "7"),
    lambda: fitted_esn().generate(3, warmup=u(10, 7)))
add("generate-start-wrong-features", dr.DataError, (("'start'",), "7"),
    lambda: fitted_esn().generate(3, start=np.ones(7)))
add("states-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: fitted_esn().states(u(10, 7)))
add("classifier-run-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: trained_classifier().run(points(5, 7)))
add("predict-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: dr.training.predict(trained_classifier(), points(5, 7)))
add("evaluate-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: dr.training.evaluate(trained_classifier(), points(5, 7), labels(5)))
add("refit-gradient-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: gfit(trained_classifier(), points(12, 7), labels()))
add("partial-fit-after-fit-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: _partial_fit_twice(u(20, 1), u(20, 7)))
add("partial-fit-Y-wrong-outputs", dr.DataError, (Y_NAME, "5"),
    lambda: _partial_fit_twice(u(20, 1), u(20, 1), u(20, 5)))
add("ridge-explicit-Wout-wrong-features", dr.DataError, (X_NAME, "2"),
    lambda: dr.Ridge(Wout=np.ones((3, 1))).run(u(10, 2)))
add("loaded-model-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: dr.load(saved_model()).run(u(10, 7)))
add("nvar-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: _run_twice(dr.NVAR(2, 2), u(10, 1), u(10, 7)))
add("es2n-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: _run_twice(dr.ES2N(8, seed=0), u(10, 1), u(10, 7)))
add("ip-reservoir-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: _run_twice(dr.IPReservoir(8, seed=0), u(10, 1), u(10, 7)))
add("win-shape-vs-input-dim", dr.ParameterError, ("'Win'", ("(8, 3)", "3 columns")),
    lambda: dr.Reservoir(8, Win=np.ones((8, 3)), input_dim=2, seed=0))
add("check-esp-wrong-features", dr.DataError, ("'inputs'", "7"),
    lambda: analysis.check_esp(fitted_esn(), inputs=u(50, 7)))
add("lyapunov-wrong-features", dr.DataError, ("'inputs'", "7"),
    lambda: analysis.lyapunov_exponents(fitted_esn(), inputs=u(50, 7), steps=20, warmup=5))
add("scaffold-share-wrong-features", dr.DataError, (X_NAME, "7"),
    lambda: analysis.scaffold_share(_built(scaffold_model(), points()), points(5, 7)))
add("reused-fitted-ridge-other-width", dr.GraphError, ("'ro'", "5"),
    lambda: _reuse_ridge())


def _partial_fit_twice(X1, X2, Y2=None):
    node = dr.LMS(0.01, name="lms")
    node.partial_fit(X1, u(len(X1)))
    return node.partial_fit(X2, u(len(X2)) if Y2 is None else Y2)


def _run_twice(node, first, second):
    node.run(first)
    return node.run(second)


def _built(model, X):
    model.run(X)
    return model


def _reuse_ridge():
    model = fitted_esn()
    return (dr.Reservoir(5, seed=1, name="small") >> model.node("ro")).run(u())


# ---- out-of-range and wrongly typed hyperparameters ---------------------------------------
for _id, _make, _name, _value in [
    ("reservoir-input-scaling-str", lambda: dr.Reservoir(8, input_scaling="big"),
     "'input_scaling'", "'big'"),
    ("reservoir-bias-scaling-none", lambda: dr.Reservoir(8, bias_scaling=None),
     "'bias_scaling'", "None"),
    ("reservoir-scaling-unknown", lambda: dr.Reservoir(8, scaling="l2"), "'scaling'", "'l2'"),
    ("reservoir-lr-string", lambda: dr.Reservoir(8, lr="0.5"), "'lr'", "'0.5'"),
    ("reservoir-units-bool", lambda: dr.Reservoir(True), "'units'", "True"),
    ("reservoir-units-string", lambda: dr.Reservoir("100"), "'units'", "'100'"),
    ("reservoir-r-negative", lambda: dr.Reservoir(8, r=-1), "'r'", "-1"),
    ("reservoir-alpha-zero", lambda: dr.Reservoir(8, r=2, alpha=0), "'alpha'", "Got 0"),
    ("reservoir-rslora-string", lambda: dr.Reservoir(8, r=2, rslora="yes"), "'rslora'", "'yes'"),
    ("reservoir-name-int", lambda: dr.Reservoir(8, name=5), "'name'", "5"),
    ("reservoir-input-dim-zero", lambda: dr.Reservoir(8, input_dim=0), "'input_dim'", "Got 0"),
    ("reservoir-input-dim-float", lambda: dr.Reservoir(8, input_dim=2.5), "'input_dim'", "2.5"),
    ("esn-sr-negative", lambda: dr.ESN(units=8, sr=-1), "'sr'", "-1"),
    ("esn-ridge-negative", lambda: dr.ESN(units=8, ridge=-1.0), "'ridge'", "-1.0"),
    ("esn-feedback-string", lambda: dr.ESN(units=8, feedback="yes"), "'feedback'", "'yes'"),
    ("esn-reservoir-int", lambda: dr.ESN(reservoir=3), "'reservoir'", "3"),
    ("esn-readout-string", lambda: dr.ESN(units=8, readout="ridge"), "'readout'", "'ridge'"),
    ("ridge-units-negative", lambda: dr.Ridge(units=-1), "'units'", "-1"),
    ("ridge-string", lambda: dr.Ridge("small"), "'ridge'", "'small'"),
    ("rls-alpha-zero", lambda: dr.RLS(0.0), "'alpha'", "0.0"),
    ("rls-alpha-negative", lambda: dr.RLS(-1.0), "'alpha'", "-1.0"),
    ("rls-forgetting-zero", lambda: dr.RLS(forgetting=0.0), "'forgetting'", "0.0"),
    ("rls-forgetting-above-one", lambda: dr.RLS(forgetting=1.5), "'forgetting'", "1.5"),
    ("rls-fit-bias-string", lambda: dr.RLS(fit_bias="no"), "'fit_bias'", "'no'"),
    ("rls-output-dim-zero", lambda: dr.RLS(output_dim=0), "'output_dim'", "Got 0"),
    ("lms-learning-rate-zero", lambda: dr.LMS(0.0), "'learning_rate'", "0.0"),
    ("lms-learning-rate-string", lambda: dr.LMS("fast"), "'learning_rate'", "'fast'"),
    ("nvar-delay-zero", lambda: dr.NVAR(0), "'delay'", "Got 0"),
    ("nvar-order-zero", lambda: dr.NVAR(2, 0), "'order'", "Got 0"),
    ("nvar-strides-zero", lambda: dr.NVAR(2, 2, 0), "'strides'", "Got 0"),
    ("nvar-delay-float", lambda: dr.NVAR(1.5), "'delay'", "1.5"),
    ("nvar-order-string", lambda: dr.NVAR(2, "2"), "'order'", "'2'"),
    ("es2n-proximity-zero", lambda: dr.ES2N(8, proximity=0.0), "'proximity'", "0.0"),
    ("es2n-proximity-above-one", lambda: dr.ES2N(8, proximity=1.5), "'proximity'", "1.5"),
    ("es2n-sr-negative", lambda: dr.ES2N(8, sr=-1.0), "'sr'", "-1.0"),
    ("es2n-O-wrong-shape", lambda: dr.ES2N(5, O=np.eye(3)), "'O'", "(3, 3)"),
    ("ip-sigma-zero", lambda: dr.IPReservoir(8, sigma=0.0), "'sigma'", "0.0"),
    ("ip-learning-rate-negative", lambda: dr.IPReservoir(8, learning_rate=-1.0),
     "'learning_rate'", "-1.0"),
    ("ip-epochs-zero", lambda: dr.IPReservoir(8, epochs=0), "'epochs'", "Got 0"),
    ("ip-activation-relu", lambda: dr.IPReservoir(8, activation="relu"), "'activation'",
     "'relu'"),
    ("ip-sigmoid-mu-zero", lambda: dr.IPReservoir(8, activation="sigmoid", mu=0.0), "'mu'",
     "0.0"),
    ("scaffold-r-negative", lambda: dr.Scaffold(8, r=-1), "'r'", "-1"),
    ("scaffold-r-float", lambda: dr.Scaffold(8, r=1.5), "'r'", "1.5"),
    ("scaffold-dropout-one", lambda: dr.Scaffold(8, dropout=1.0), "'dropout'", "1.0"),
    ("scaffold-dropout-negative", lambda: dr.Scaffold(8, dropout=-0.1), "'dropout'", "-0.1"),
    ("scaffold-activation-unknown", lambda: dr.Scaffold(8, activation="swish"), "'activation'",
     "'swish'"),
    ("scaffold-bias-string", lambda: dr.Scaffold(8, bias="yes"), "'bias'", "'yes'"),
    ("scaffold-beta-int", lambda: dr.Scaffold(8, beta=2), "'beta'", "2"),
    ("scaffold-seed-negative", lambda: dr.Scaffold(8, seed=-3), "'seed'", "-3"),
    ("lora-readout-r-negative", lambda: dr.LoRAReadout(3, r=-2), "'r'", "-2"),
    ("lora-readout-full-with-rank", lambda: dr.LoRAReadout(3, r=2, full=True), "'r'", "2"),
    ("lora-readout-alpha-negative", lambda: dr.LoRAReadout(3, alpha=-1.0), "'alpha'", "-1.0"),
    ("beta-gate-init-string", lambda: dr.BetaGate("one"), "'init'", "'one'"),
    ("beta-gate-init-none", lambda: dr.BetaGate(None), "'init'", "None"),
    ("dense-activation-unknown", lambda: dr.Dense(4, activation="swish"), "'activation'",
     "'swish'"),
    ("dense-dropout-above-one", lambda: dr.Dense(4, dropout=1.5), "'dropout'", "1.5"),
    ("dense-bias-none", lambda: dr.Dense(4, bias=None), "'bias'", "None"),
    ("activation-unknown", lambda: dr.Activation("swish"), "'function'", "'swish'"),
    ("activation-int", lambda: dr.Activation(3), "'function'", "3"),
    ("input-dim-negative", lambda: dr.Input(-1), "'input_dim'", "-1"),
    ("input-dim-float", lambda: dr.Input(2.5), "'input_dim'", "2.5"),
    ("output-name-int", lambda: dr.Output(name=7), "'name'", "7"),
    ("adapt-r-negative", lambda: dr.adapt(Linear2(), r=-1, seed=0), "'r'", "-1"),
    ("adapt-r-float", lambda: dr.adapt(Linear2(), r=1.5, seed=0), "'r'", "1.5"),
    ("adapt-lazy-layer", lambda: dr.adapt(nn.Sequential(nn.LazyLinear(2)), r=1, seed=0),
     "'module'", "'0.weight'"),
    ("adapt-twice", lambda: dr.adapt(dr.adapt(Linear2(), r=1, seed=0), r=1, seed=0),
     "'module'", "already adapted"),
    ("adapt-unsupported-mode", lambda: dr.adapt(Linear2(), r=1, seed=0, unsupported="skip"),
     "'unsupported'", "'skip'"),
    ("adapt-seed-negative", lambda: dr.adapt(Linear2(), r=1, seed=-1), "'seed'", "-1"),
    ("adapt-seed-string", lambda: dr.adapt(Linear2(), r=1, seed="0"), "'seed'", "'0'"),
    ("adapt-alpha-zero", lambda: dr.adapt(Linear2(), r=1, seed=0, alpha=0), "'alpha'", "Got 0"),
    ("adapt-bias-unknown", lambda: dr.adapt(Linear2(), r=1, seed=0, bias="frozen"), "'bias'",
     "'frozen'"),
    ("adapt-rslora-string", lambda: dr.adapt(Linear2(), r=1, seed=0, rslora="yes"),
     "'rslora'", "'yes'"),
    ("adapt-module-int", lambda: dr.adapt(3, r=1, seed=0), "'module'", "3"),
    ("merge-module-string", lambda: dr.merge("model"), "'module'", "'model'"),
    ("scaffold-mlp-classes-zero", lambda: dr.scaffold_mlp("tiny", 0), "'classes'", "Got 0"),
    ("scaffold-mlp-r-negative", lambda: dr.scaffold_mlp("tiny", 10, r=-1), "'r'", "-1"),
    ("narma-steps-float", lambda: datasets.narma10(2.5), "'steps'", "2.5"),
    ("narma-transient-small", lambda: datasets.narma10(10, transient=5), "'transient'", "5"),
    ("narma-seed-negative", lambda: datasets.narma10(10, seed=-1), "'seed'", "-1"),
    ("digits-test-fraction-above-one",
     lambda: _needs("sklearn") and datasets.load_digits(test_fraction=1.5),
     "'test_fraction'", "1.5"),
    ("digits-test-fraction-negative",
     lambda: _needs("sklearn") and datasets.load_digits(test_fraction=-0.1),
     "'test_fraction'", "-0.1"),
    ("digits-seed-negative", lambda: _needs("sklearn") and datasets.load_digits(seed=-1),
     "'seed'", "-1"),
    ("mnist1d-num-samples-zero",
     lambda: _needs("mnist1d") and datasets.load_mnist1d(num_samples=0),
     "'num_samples'", "Got 0"),
    ("mnist1d-seed-string", lambda: _needs("mnist1d") and datasets.load_mnist1d(seed="a"),
     "'seed'", "'a'"),
    ("spectral-radius-dense-limit-negative",
     lambda: analysis.spectral_radius(np.eye(3), dense_limit=-1), "'dense_limit'", "-1"),
    ("singular-values-k-zero", lambda: analysis.singular_values(np.eye(3), k=0), "'k'",
     "Got 0"),
    ("leaky-radius-lr-above-one", lambda: analysis.leaky_spectral_radius(np.eye(3), lr=1.5),
     "'lr'", "1.5"),
    ("check-esp-steps-zero", lambda: analysis.check_esp(np.eye(3) * 0.5, steps=0), "'steps'",
     "Got 0"),
    ("check-esp-tol-negative", lambda: analysis.check_esp(np.eye(3) * 0.5, tol=-1.0), "'tol'",
     "-1.0"),
    ("lyapunov-n-exponents-zero",
     lambda: analysis.lyapunov_exponents(np.eye(3) * 0.5, n_exponents=0), "'n_exponents'",
     "Got 0"),
    ("lyapunov-warmup-negative", lambda: analysis.lyapunov_exponents(np.eye(3) * 0.5, warmup=-1),
     "'warmup'", "-1"),
    ("memory-train-fraction-above-one",
     lambda: analysis.memory_capacity(np.eye(3) * 0.5, 2, Win=np.ones(3), train_fraction=1.5),
     "'train_fraction'", "1.5"),
    ("memory-ridge-negative",
     lambda: analysis.memory_capacity(np.eye(3) * 0.5, 2, Win=np.ones(3), ridge=-1.0),
     "'ridge'", "-1.0"),
    ("twonn-discard-one", lambda: analysis.twonn(points(30), discard_fraction=1.0),
     "'discard_fraction'", "1.0"),
    ("twonn-method-unknown", lambda: analysis.twonn(points(30), method="ols"), "'method'",
     "'ols'"),
    ("mle-average-unknown", lambda: analysis.mle_dimension(points(30), k=5, average="median"),
     "'average'", "'median'"),
    ("pca-variance-zero", lambda: analysis.pca_dimension(points(30), variance=0.0),
     "'variance'", "0.0"),
    ("depth-lyapunov-samples-zero",
     lambda: analysis.depth_lyapunov([np.eye(3)], n_samples=0), "'n_samples'", "Got 0"),
]:
    add(_id, dr.ParameterError, (_name, _value), _make)

# fit / run / generate keywords
for _id, _make, _name, _value in [
    ("fit-chunk-size-zero", lambda: esn().fit(u(), u(), chunk_size=0), "'chunk_size'", "Got 0"),
    ("fit-verbose-five", lambda: esn().fit(u(), u(), verbose=5), "'verbose'", "5"),
    ("fit-seed-negative", lambda: esn().fit(u(), u(), seed=-1), "'seed'", "-1"),
    ("fit-reset-string", lambda: esn().fit(u(), u(), reset="yes"), "'reset'", "'yes'"),
    ("closed-form-fit-epochs", lambda: esn().fit(u(), u(), epochs=5), "'epochs'",
     "closed form"),
    ("closed-form-fit-typo", lambda: esn().fit(u(), u(), warmpu=3), "'warmpu'", "warmup"),
    ("gradient-epochs-zero", lambda: gfit(classifier(), points(), labels(), epochs=0),
     "'epochs'", "Got 0"),
    ("gradient-batch-size-zero", lambda: gfit(classifier(), points(), labels(), batch_size=0),
     "'batch_size'", "Got 0"),
    ("gradient-lr-negative", lambda: gfit(classifier(), points(), labels(), lr=-1.0), "'lr'",
     "-1.0"),
    ("gradient-optimizer-unknown",
     lambda: gfit(classifier(), points(), labels(), optimizer="lbfgs"), "'optimizer'",
     "'lbfgs'"),
    ("gradient-schedule-unknown", lambda: gfit(classifier(), points(), labels(), schedule="step"),
     "'schedule'", "'step'"),
    ("gradient-loss-unknown", lambda: gfit(classifier(), points(), labels(), loss="hinge"),
     "'loss'", "'hinge'"),
    ("gradient-weight-decay-negative",
     lambda: gfit(classifier(), points(), labels(), weight_decay=-1.0), "'weight_decay'",
     "-1.0"),
    ("gradient-validation-split-one",
     lambda: gfit(classifier(), points(), labels(), validation_split=1.0), "'validation_split'",
     "1.0"),
    ("gradient-validation-split-negative",
     lambda: gfit(classifier(), points(), labels(), validation_split=-0.1),
     "'validation_split'", "-0.1"),
    ("gradient-grad-clip-zero", lambda: gfit(classifier(), points(), labels(), grad_clip=0.0),
     "'grad_clip'", "0.0"),
    ("gradient-checkpoint-every-zero",
     lambda: gfit(classifier(), points(), labels(), checkpoint_every=0), "'checkpoint_every'",
     "Got 0"),
    ("gradient-resample-unknown",
     lambda: gfit(scaffold_model(), points(), labels(), resample="always"), "'resample'",
     "'always'"),
    ("gradient-device-unknown", lambda: gfit(classifier(), points(), labels(), device="tpu"),
     "'device'", "'tpu'"),
    ("gradient-epochs-typo", lambda: gfit(classifier(), points(), labels(), epoch=3),
     "'epoch'", "epochs"),
    ("online-feedback-unknown", lambda: rls_loop().fit(u(), u(), feedback="teacher"),
     "'feedback'", "'teacher'"),
    ("online-learners-unknown", lambda: rls_loop().fit(u(), u(), learners="all"),
     "'learners'", "'all'"),
    ("partial-fit-warmup-negative", lambda: rls_loop().partial_fit(u(), u(), warmup=-1),
     "'warmup'", "-1"),
    ("partial-fit-feedback-unknown", lambda: rls_loop().partial_fit(u(), u(), feedback="x"),
     "'feedback'", "'x'"),
    ("run-iters-float", lambda: fitted_esn().run(iters=2.5), "'iters'", "2.5"),
    ("run-iters-negative", lambda: fitted_esn().run(iters=-3), "'iters'", "-3"),
    ("generate-n-float", lambda: fitted_esn().generate(2.5, warmup=u()), "'n'", "2.5"),
    ("generate-n-string", lambda: fitted_esn().generate("10", warmup=u()), "'n'", "'10'"),
    ("generate-reset-int", lambda: fitted_esn().generate(3, warmup=u(), reset=1), "'reset'",
     "1"),
    ("states-nodes-empty", lambda: fitted_esn().states(u(), nodes=[]), "'nodes'", "[]"),
    ("states-nodes-int", lambda: fitted_esn().states(u(), nodes=3), "'nodes'", "3"),
    ("states-inputs-string", lambda: fitted_esn().states(u(), inputs="yes"), "'inputs'",
     "'yes'"),
    ("save-overwrite-string", lambda: fitted_esn().save(scratch() / "m.dr", overwrite="no"),
     "'overwrite'", "'no'"),
    ("save-path-int", lambda: fitted_esn().save(3), "'path'", "3"),
    ("load-path-none", lambda: dr.load(None), "'path'", "None"),
    ("save-not-a-model", lambda: dr.save(3, scratch() / "m.dr"), "'model'", "3"),
    ("load-strict-string", lambda: dr.load(saved_model(), strict="yes"), "'strict'", "'yes'"),
    ("evaluate-loss-unknown",
     lambda: dr.training.evaluate(trained_classifier(), points(), labels(), loss="hinge"),
     "'loss'", "'hinge'"),
    ("evaluate-batch-size-zero",
     lambda: dr.training.evaluate(trained_classifier(), points(), labels(), batch_size=0),
     "'batch_size'", "Got 0"),
    ("rank-sweep-seeds-zero",
     lambda: analysis.rank_sweep(lambda r, s: {"loss": 1.0}, [1, 2], seeds=0), "'seeds'",
     "Got 0"),
]:
    add(_id, dr.ParameterError, (_name, _value), _make)

# ---- unknown names --------------------------------------------------------------------------
add("model-node-unknown", dr.GraphError, ("'nope'", "res"),
    lambda: fitted_esn().node("nope"))
add("states-node-unknown", dr.GraphError, ("'nope'", "res"),
    lambda: fitted_esn().states(u(), nodes="nope"))
add("run-dict-unknown-input", dr.DataError, ("'nope'", "'a'"),
    lambda: two_inputs().run({"a": u(), "nope": u()}))
add("step-dict-unknown-input", dr.DataError, ("'nope'", "'a'"),
    lambda: _built(two_inputs(), {"a": u(), "b": u()}).step({"a": np.ones(1),
                                                              "nope": np.ones(1)}))
add("fit-Y-dict-unknown-node", dr.DataError, ("'nope'", "'ro'"),
    lambda: esn().fit(u(), {"nope": u()}))
add("scaffold-family-unknown", dr.ParameterError, ("'family'", "'gaussianish'"),
    lambda: dr.Scaffold(8, family="gaussianish"))
add("es2n-O-unknown", dr.ParameterError, ("'O'", "'nope'"),
    lambda: dr.ES2N(8, O="nope"))
add("adapt-family-unknown", dr.ParameterError, ("'family'", "'nope'"),
    lambda: dr.adapt(Linear2(), r=1, seed=0, family="nope"))
add("adapt-targets-match-nothing", dr.ParameterError, ("'targets'", "'nomatch'"),
    lambda: dr.adapt(Linear2(), r=1, seed=0, targets=["nomatch"]))
add("adapt-train-match-nothing", dr.ParameterError, ("'train'", "'haed'"),
    lambda: dr.adapt(Linear2(), r=1, seed=0, train=["haed"]))
add("scaffold-share-layer-unknown", dr.ParameterError, ("'layers'", "'nope'"),
    lambda: analysis.scaffold_share(_built(scaffold_model(), points()), points(),
                                    layers=["nope"]))
add("beta-ablation-layer-unknown", dr.ParameterError, ("'layers'", "'nope'"),
    lambda: analysis.beta_ablation(_built(scaffold_model(), points()), lambda m: 0.0,
                                   layers=["nope"]))
add("scaffold-mlp-preset-unknown", dr.ParameterError, ("'preset'", "'huge'"),
    lambda: dr.scaffold_mlp("huge", 10))
add("esn-unknown-keyword", dr.ParameterError, ("'spectral_radius'",),
    lambda: dr.ESN(units=8, spectral_radius=0.9))
add("load-study-unknown", dr.ParameterError, ("'nosuch'",),
    lambda: studies.load_study("nosuch", _studies_dir()))
add("sweep-config-unknown-family", dr.DataError, ("'sweep.families'", "gauss"),
    lambda: sweep.load_config(toml_file("[sweep]\nfamilies = ['gauss']\n")))


def _studies_dir() -> Path:
    folder = scratch() / "studies"
    folder.mkdir()
    (folder / "one.py").write_text("TITLE = 't'\nPAPER = 'p'\ndef run(out_dir, **kw):\n"
                                   "    return {}\n")
    return folder


# ---- duplicate names ----------------------------------------------------------------------
add("duplicate-names-via-union", dr.GraphError, ("'twin'",),
    lambda: (dr.Input(name="src") >> dr.Reservoir(5, name="twin"))
    & (dr.Input(name="src2") >> dr.Reservoir(5, name="twin")))
add("duplicate-names-in-list", dr.GraphError, ("'twin'",),
    lambda: [dr.Reservoir(5, name="twin"), dr.Reservoir(5, name="twin")] >> dr.Ridge())
add("duplicate-names-across-classes", dr.GraphError, ("'n'",),
    lambda: dr.Reservoir(5, name="n") >> dr.Ridge(name="n"))
add("duplicate-input-names", dr.GraphError, ("'in'",),
    lambda: [dr.Input(name="in"), dr.Input(name="in")] >> dr.Reservoir(5))
add("esn-reservoir-named-readout", dr.GraphError, ("'readout'",),
    lambda: dr.ESN(reservoir=dr.Reservoir(8, name="readout")))

# ---- cycles ---------------------------------------------------------------------------------
add("three-node-cycle", dr.GraphError, ("ca", "cb", "cc"),
    lambda: _three_cycle())
add("self-loop", dr.GraphError, ("'self'",),
    lambda: _self_loop())
add("forward-edge-back-to-reservoir", dr.GraphError, ("res", "ro"),
    lambda: _forward_back())
add("cycle-through-list", dr.GraphError, ("la", "lc"),
    lambda: _list_cycle())


def _three_cycle():
    a, b, c = (dr.Reservoir(4, name=n) for n in ("ca", "cb", "cc"))
    return (a >> b >> c) & (c >> a)


def _self_loop():
    node = dr.Reservoir(4, name="self")
    return node >> node


def _forward_back():
    res, ro = dr.Reservoir(4, name="res"), dr.Ridge(name="ro")
    return (res >> ro) & (ro >> res)


def _list_cycle():
    a, b, c = dr.Reservoir(4, name="la"), dr.Reservoir(4, name="lb"), dr.Reservoir(4, name="lc")
    return ([a, b] >> c) & (c >> a)


# ---- a node reused ----------------------------------------------------------------------------
add("built-node-reused-other-width", dr.DataError, (X_NAME, "7"),
    lambda: _reuse_built())
add("delay-negative", dr.GraphError, ("-1",),
    lambda: dr.Reservoir(4) >> -1 >> dr.Ridge())
add("delay-bool", dr.GraphError, ("True",),
    lambda: dr.Reservoir(4) >> True >> dr.Ridge())
add("delay-float", dr.GraphError, ("1.5",),
    lambda: dr.Reservoir(4) >> 1.5 >> dr.Ridge())
add("union-with-non-model", dr.GraphError, ("3",),
    lambda: (dr.Reservoir(4) >> dr.Ridge()) & 3)
add("feedback-from-non-node", dr.GraphError, ("'x'",),
    lambda: dr.Reservoir(4) << "x")


def _reuse_built():
    node = dr.Reservoir(8, seed=0, name="shared")
    (dr.Input() >> node).run(u(10, 1))
    return (node >> dr.Tanh()).run(u(10, 7))


# ---- mismatched batches -------------------------------------------------------------------------
add("fit-batch-mismatch", dr.DataError, (Y_NAME, "3", "2"),
    lambda: esn().fit(u(B=3), u(B=2)))
add("fit-ragged-list-count-mismatch", dr.DataError, (Y_NAME, "3", "2"),
    lambda: esn().fit([u(10), u(12), u(14)], [u(10), u(12)]))
add("fit-ragged-lengths-mismatch", dr.DataError, (Y_NAME, "12", "13"),
    lambda: esn().fit([u(10), u(12)], [u(10), u(13)]))
add("run-dict-batch-mismatch", dr.DataError, (("'a'", "'b'"), "(2, 30)", "(3, 30)"),
    lambda: two_inputs().run({"a": u(B=2), "b": u(B=3)}))
add("run-dict-length-mismatch", dr.DataError, (("'a'", "'b'"), "20", "25"),
    lambda: two_inputs().run({"a": u(20), "b": u(25)}))
add("validation-data-length-mismatch", dr.DataError, (("'validation_data'", "validation"),
                                                      "6", "5"),
    lambda: gfit(classifier(), points(), labels(), validation_data=(points(6), labels(5))))
add("partial-fit-batch-mismatch", dr.DataError, (Y_NAME, "3", "2"),
    lambda: dr.LMS(0.01).partial_fit(u(B=3), u(B=2)))
add("online-learners-vs-batch", dr.DataError, ("4", "2"),
    lambda: _per_series_learners_then(u(B=2)))
add("evaluate-length-mismatch", dr.DataError, (Y_NAME, "12", "11"),
    lambda: dr.training.evaluate(trained_classifier(), points(), labels(11)))
add("fit-Y-dict-length-mismatch", dr.DataError, ((*Y_NAME, "Y['b']"), "30", "29"),
    lambda: (dr.Reservoir(8, seed=0, name="src") >> [dr.Ridge(name="a"), dr.Ridge(name="b")])
    .fit(u(), {"a": u(), "b": u(29)}))


def _per_series_learners_then(X):
    node = dr.RLS(1e-3, dtype=torch.float64)
    node.fit(u(B=4), u(B=4))
    return node.run(X)


# ---- ragged lists with different feature counts --------------------------------------------------
add("ragged-run-feature-mismatch", dr.DataError, (X_NAME, "[1, 2]"),
    lambda: dr.Reservoir(8, seed=0).run([u(5, 1), u(6, 2)]))
add("ragged-fit-X-feature-mismatch", dr.DataError, (X_NAME, "[1, 3]"),
    lambda: esn().fit([u(5, 1), u(6, 3)], [u(5), u(6)]))
add("ragged-fit-Y-output-mismatch", dr.DataError, (Y_NAME, "1", "2"),
    lambda: esn().fit([u(5), u(6)], [u(5, 1), u(6, 2)]))
add("ragged-forward-feature-mismatch", dr.DataError, (X_NAME, "[1, 2]"),
    lambda: fitted_esn()([u(5, 1), u(6, 2)]))
add("ragged-generate-feature-mismatch", dr.DataError, (("'warmup'",), "[1, 2]"),
    lambda: fitted_esn().generate(3, warmup=[u(5, 1), u(6, 2)]))
add("ragged-partial-fit-feature-mismatch", dr.DataError, (X_NAME, "[1, 2]"),
    lambda: dr.LMS(0.1).partial_fit([u(5, 1), u(6, 2)], [u(5), u(6)]))
add("ragged-states-feature-mismatch", dr.DataError, (X_NAME, "[1, 2]"),
    lambda: fitted_esn().states([u(5, 1), u(6, 2)]))
add("ragged-1d-entry", dr.DataError, (("'X'", "'X[1]'"), "position 1"),
    lambda: esn().fit([u(5), np.ones(6)], [u(5), u(6)]))
add("ragged-int-entry", dr.DataError, (("'X[1]'", "'X'"), "int64"),
    lambda: dr.Reservoir(8, seed=0).run([u(5), np.ones((6, 1), dtype=np.int64)]))
add("ragged-none-entry", dr.DataError, (("'X[1]'", "'X'"), "None"),
    lambda: dr.Reservoir(8, seed=0).run([u(5), None]))
add("ragged-gradient-feature-mismatch", dr.DataError, (X_NAME, "[4, 5]"),
    lambda: gfit(dr.Reservoir(8, seed=0) >> dr.LoRAReadout(3, r=1), [points(5, 4),
                                                                      points(6, 5)],
                 np.array([0, 1])))

# ---- labels out of range -------------------------------------------------------------------------
add("label-above-classes", dr.DataError, (Y_NAME, "5", "3"),
    lambda: gfit(classifier(3), points(), np.where(labels() == 2, 5, labels())))
add("label-equal-to-classes", dr.DataError, (Y_NAME, "3"),
    lambda: gfit(classifier(3), points(), np.r_[labels(11), 3]))
add("label-huge", dr.DataError, (Y_NAME, str(2**40)),
    lambda: gfit(classifier(3), points(), np.r_[labels(11), 2**40]))
add("per-step-label-out-of-range", dr.DataError, (Y_NAME, "7", "3"),
    lambda: gfit(dr.Reservoir(8, seed=0) >> dr.LoRAReadout(3, r=1),
                 points(5, 2)[None].repeat(2, 0), np.array([[0, 1, 2, 7, 0], [0] * 5])))
add("validation-label-out-of-range", dr.DataError, (("'validation_data'", "validation"),
                                                    "9"),
    lambda: gfit(classifier(3), points(), labels(),
                 validation_data=(points(4), np.array([0, 1, 9, 2]))))
add("evaluate-label-out-of-range", dr.DataError, (Y_NAME, "4", "3"),
    lambda: dr.training.evaluate(trained_classifier(), points(), np.r_[labels(11), 4]))
add("bce-target-not-binary", dr.DataError, (Y_NAME, "2"),
    lambda: gfit(dr.Input() >> dr.LoRAReadout(1, r=1, seed=0), points(),
                 np.r_[np.zeros(11), 2.0][:, None], loss="bce"))
add("sampler-label-out-of-range", dr.DataError, (Y_NAME, "6", "3"),
    lambda: gfit(classifier(3), None, None, sampler=[(points(4), np.array([0, 1, 6, 2]))]))

# ---- bad TOML, missing files, a folder instead of a file, a read-only output folder --------------
add("toml-unterminated-string", dr.DataError, ("grid.toml", "TOML"),
    lambda: sweep.load_config(toml_file("[sweep]\ndataset = 'digits\n")))
add("toml-duplicate-key", dr.DataError, ("grid.toml", "TOML"),
    lambda: sweep.load_config(toml_file("[sweep]\nranks = [1]\nranks = [2]\n")))
add("toml-not-utf8", dr.DataError, ("grid.toml",),
    lambda: sweep.load_config(toml_file(b"\xff\xfe[sweep]\x00")))
add("toml-ranks-wrong-type", dr.DataError, ("'sweep.ranks'", "'abc'"),
    lambda: sweep.load_config(toml_file("[sweep]\nranks = 'abc'\n")))
add("toml-seeds-negative", dr.DataError, ("'sweep.seeds'", "-1"),
    lambda: sweep.load_config(toml_file("[sweep]\nseeds = [-1]\n")))
add("toml-num-samples-zero", dr.DataError, ("'sweep.num_samples'", "0"),
    lambda: sweep.load_config(toml_file("[sweep]\nnum_samples = 0\n")))
add("toml-full-not-bool", dr.DataError, ("'sweep.full'", "'yes'"),
    lambda: sweep.load_config(toml_file("[sweep]\nfull = 'yes'\n")))
add("toml-validation-split-one", dr.DataError, ("'train.validation_split'", "1"),
    lambda: sweep.load_config(toml_file("[sweep]\n[train]\nvalidation_split = 1.0\n")))
add("toml-empty-file", dr.DataError, ("grid.toml", "[sweep]"),
    lambda: sweep.load_config(toml_file("")))
add("sweep-config-missing", dr.DataError, ("absent.toml",),
    lambda: sweep.load_config(scratch() / "absent.toml"))
add("sweep-config-is-folder", dr.DataError, ("grid.toml", ("folder", "directory")),
    lambda: sweep.load_config(_folder_named("grid.toml")))
add("load-missing-path", dr.ArtifactError, ("absent.dr",),
    lambda: dr.load(scratch() / "absent.dr"))
add("load-file-not-folder", dr.ArtifactError, ("model.dr",),
    lambda: dr.load(write(scratch() / "model.dr", "not a folder")))
add("load-spec-is-folder", dr.ArtifactError, ("spec.json",),
    lambda: dr.load(saved_then(_replace_with_folder("spec.json"))))
add("load-tensors-is-folder", dr.ArtifactError, ("tensors.safetensors",),
    lambda: dr.load(saved_then(_replace_with_folder("tensors.safetensors"))))
add("load-tensors-missing", dr.ArtifactError, ("tensors.safetensors",),
    lambda: dr.load(saved_then(lambda p: (p / "tensors.safetensors").unlink())))
add("load-spec-not-json", dr.ArtifactError, ("spec.json", "JSON"),
    lambda: dr.load(saved_then(lambda p: write(p / "spec.json", "{not json"))))
add("load-spec-json-list", dr.ArtifactError, ("spec.json",),
    lambda: dr.load(saved_then(lambda p: write(p / "spec.json", "[1, 2]"))))
add("load-spec-empty", dr.ArtifactError, ("spec.json",),
    lambda: dr.load(saved_then(lambda p: write(p / "spec.json", ""))))
add("load-spec-version-string", dr.ArtifactError, ("spec.json", "'one'"),
    lambda: dr.load(saved_then(_edit_spec(format_version="one"))))
add("load-spec-nodes-missing", dr.ArtifactError, ("spec.json", "nodes"),
    lambda: dr.load(saved_then(_edit_spec(nodes=None))))
add("load-tensors-truncated", dr.ArtifactError, ("tensors.safetensors",),
    lambda: dr.load(saved_then(_truncate("tensors.safetensors"))))
add("save-parent-is-file", dr.ArtifactError, ("m.dr",),
    lambda: fitted_esn().save(write(scratch() / "afile", "x") / "m.dr"))
add("save-onto-a-file", dr.ArtifactError, ("existing.txt",),
    lambda: fitted_esn().save(write(scratch() / "existing.txt", "keep me")))
add("save-read-only-folder", dr.ArtifactError, ("read_only",),
    lambda: _save_read_only())
add("save-overwrite-false", dr.ArtifactError, ("model.dr", "overwrite"),
    lambda: fitted_esn().save(saved_model(), overwrite=False))
add("checkpoint-read-only-folder", (dr.ArtifactError, dr.ParameterError), ("read_only",),
    lambda: _checkpoint_read_only())
add("checkpoint-path-is-file", (dr.ArtifactError, dr.ParameterError), ("ckpt",),
    lambda: gfit(classifier(), points(), labels(),
                 checkpoint=write(scratch() / "ckpt", "a file")))
add("studies-dir-is-file", dr.DataError, ("studies.txt",),
    lambda: studies.find_studies_dir(write(scratch() / "studies.txt", "x")))
add("run-sweep-out-read-only", dr.DeepReservoirError, ("read_only",),
    lambda: _sweep_read_only())
add("run-sweep-out-is-folder", dr.DeepReservoirError, ("grid.nc",),
    lambda: sweep.run_sweep(sweep.load_config(toml_file(TINY_SWEEP)), _folder_named("grid.nc"),
                            progress=False))


def _folder_named(name: str) -> Path:
    folder = scratch() / name
    folder.mkdir()
    return folder


def _replace_with_folder(name: str) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        (path / name).unlink()
        (path / name).mkdir()
    return edit


def _edit_spec(**changes) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        spec = json.loads((path / "spec.json").read_text())
        for key, value in changes.items():
            if value is None:
                spec.pop(key, None)
            else:
                spec[key] = value
        (path / "spec.json").write_text(json.dumps(spec))
    return edit


def _truncate(name: str) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        data = (path / name).read_bytes()
        (path / name).write_bytes(data[: len(data) // 2])
    return edit


def _save_read_only():
    model = fitted_esn()
    target = read_only_dir() / "m.dr"
    with unprivileged():
        return model.save(target)


def _checkpoint_read_only():
    model, X, y = classifier(), points(), labels()
    target = read_only_dir() / "ckpt"
    with unprivileged():
        return gfit(model, X, y, checkpoint=target)


def _sweep_read_only():
    config = sweep.load_config(toml_file(TINY_SWEEP))
    target = read_only_dir() / "grid.nc"
    with unprivileged():
        return sweep.run_sweep(config, target, progress=False)


# ---- the command line, with DEEPRESERVOIR_DEBUG=1 so the error surfaces as raised ----------------
CLI_CASES: list[tuple[str, Callable[[], list[str]], str]] = [
    ("cli-sweep-bad-toml", lambda: ["sweep", toml_file("[sweep\n")], "grid.toml"),
    ("cli-sweep-config-is-folder", lambda: ["sweep", _folder_named("grid.toml")], "grid.toml"),
    ("cli-sweep-config-not-utf8", lambda: ["sweep", toml_file(b"\xff\xfe\x00")], "grid.toml"),
    ("cli-sweep-out-read-only", lambda: ["sweep", toml_file(TINY_SWEEP), "--no-progress",
                                         "--out", read_only_dir() / "grid.nc"], "read_only"),
    ("cli-sweep-out-parent-is-file", lambda: ["sweep", toml_file(TINY_SWEEP), "--no-progress",
                                              "--out", write(scratch() / "f", "x") / "g.nc"],
     "g.nc"),
    ("cli-inspect-file-not-folder", lambda: ["inspect", write(scratch() / "m.dr", "x")],
     "m.dr"),
    ("cli-inspect-spec-not-json",
     lambda: ["inspect", saved_then(lambda p: write(p / "spec.json", "{"))], "spec.json"),
    ("cli-inspect-tensors-missing",
     lambda: ["inspect", saved_then(lambda p: (p / "tensors.safetensors").unlink())],
     "tensors.safetensors"),
    ("cli-demo-out-read-only", lambda: ["demo", "--quick", "--no-progress", "--out",
                                        read_only_dir() / "demo"], "read_only"),
    ("cli-demo-out-is-file", lambda: ["demo", "--quick", "--no-progress", "--out",
                                      write(scratch() / "demo", "x")], "demo"),
    ("cli-reproduce-studies-dir-is-file",
     lambda: ["reproduce", "--list", "--studies-dir", write(scratch() / "s.txt", "x")],
     "s.txt"),
    ("cli-reproduce-out-read-only",
     lambda: ["reproduce", "one", "--studies-dir", _studies_dir(), "--out",
              read_only_dir() / "out"], "read_only"),
]

_CLI_EXPECTED = {"cli-sweep-bad-toml": dr.DataError,
                 "cli-sweep-config-is-folder": dr.DataError,
                 "cli-sweep-config-not-utf8": dr.DataError,
                 "cli-inspect-file-not-folder": dr.ArtifactError,
                 "cli-inspect-spec-not-json": dr.ArtifactError,
                 "cli-inspect-tensors-missing": dr.ArtifactError}


def _cli_call(make_args: Callable[[], list[str]]) -> Callable[[], Any]:
    def call():
        args = make_args()
        with unprivileged():
            return expect_cli_failure(*args)()
    return call


for _id, _make_args, _mention in CLI_CASES:
    add(_id, _CLI_EXPECTED.get(_id, dr.DeepReservoirError), (_mention,), _cli_call(_make_args))


# ------------------------------------------------------------------- correct-behaviour table
def _finite_shape(result: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    if isinstance(result, dict):
        raise AssertionError(f"expected one array, got a dict with keys {list(result)}")
    if hasattr(result, "values") and hasattr(result, "dims"):  # xarray
        result = result.values
    if isinstance(result, torch.Tensor):
        result = result.detach().to(torch.float64).cpu().numpy()
    array = np.asarray(result, dtype=np.float64)
    return array, array.shape


BEHAVIOUR: list[Ok] = [
    Ok("float16-data-is-cast", lambda: dr.Reservoir(8, seed=0).run(u(dtype=np.float16)),
       (30, 8)),
    Ok("bfloat16-torch-data-is-cast",
       lambda: dr.Reservoir(8, seed=0).run(torch.tensor(u(), dtype=torch.bfloat16)), (30, 8)),
    Ok("float16-fit-and-run", lambda: fitted_esn().run(u(dtype=np.float16), reset=True),
       (30, 1)),
    Ok("bfloat16-step", lambda: fitted_esn().step(torch.ones(1, dtype=torch.bfloat16)), (1,)),
    Ok("float16-forward-torch", lambda: fitted_esn()(torch.ones(5, 1, dtype=torch.float16)),
       (5, 1)),
    Ok("bfloat16-classifier-forward",
       lambda: trained_classifier()(torch.tensor(points(), dtype=torch.bfloat16)), (12, 3)),
    Ok("int-targets-regression", lambda: esn().fit(u(), (u() > 0).astype(np.int64))
       .run(u(), reset=True), (30, 1)),
    Ok("bool-targets-regression", lambda: esn().fit(u(), u() > 0).run(u(), reset=True),
       (30, 1)),
    Ok("float64-data-float32-model", lambda: fitted_esn().run(u(), reset=True), (30, 1)),
    Ok("int-matrix-spectral-radius", lambda: analysis.spectral_radius(np.eye(3, dtype=np.int64)),
       ()),
    Ok("one-by-one-spectral-radius", lambda: analysis.spectral_radius(np.array([[-0.5]])), ()),
    Ok("size-1-series-run", lambda: fitted_esn().run(u(1), reset=True), (1, 1)),
    Ok("size-1-series-fit", lambda: esn().fit(u(1), u(1)).run(u(4), reset=True), (4, 1)),
    Ok("one-unit-reservoir", lambda: dr.Reservoir(1, rc_connectivity=1.0, seed=0).run(u()),
       (30, 1)),
    Ok("batch-of-one", lambda: fitted_esn().run(u(B=1), reset=True), (1, 30, 1)),
    Ok("one-sample-classifier-predict",
       lambda: trained_classifier().run(points(1)), (1, 3)),
    Ok("ridge-nan-target-steps-left-out",
       lambda: esn().fit(u(), with_value(u(), (5, 0), np.nan)).run(u(), reset=True), (30, 1)),
    Ok("float16-points-intrinsic-dimension",
       lambda: analysis.participation_ratio(points(30, dtype=np.float16)), ()),
    Ok("torch-float16-matrix-spectral-radius",
       lambda: analysis.spectral_radius(torch.eye(3, dtype=torch.float16) * 0.5), ()),
    Ok("nvar-size-1-series", lambda: dr.NVAR(2, 2).run(u(1)), (1, 5)),
    Ok("generate-one-step", lambda: fitted_esn().generate(1, warmup=u()), (1, 1)),
    Ok("run-iters-one", lambda: _zero_feature_loop().run(iters=1), (1, 1)),
    Ok("forward-one-step-torch", lambda: fitted_esn()(torch.ones(1)), (1,)),
    # refusing is as good as succeeding for these; a silent NaN is not
    Ok("float16-model-dtype", lambda: dr.Reservoir(8, seed=0, dtype=torch.float16).run(
        u(dtype=np.float16)), (30, 8), (dr.ParameterError, ("'dtype'", "float16"))),
    Ok("bfloat16-model-dtype", lambda: dr.Reservoir(8, seed=0, dtype=torch.bfloat16).run(u()),
       (30, 8), (dr.ParameterError, ("'dtype'", "bfloat16"))),
    Ok("int-explicit-W", lambda: dr.Reservoir(W=np.eye(4, dtype=np.int64), sr=0.5).run(u()),
       (30, 4), (dr.ParameterError, ("'W'", "int64"))),
    Ok("constant-points-participation-ratio",
       lambda: analysis.participation_ratio(np.ones((20, 3))), (),
       (dr.DataError, (X_NAME, "constant"))),
    Ok("constant-points-pca", lambda: analysis.pca_dimension(np.ones((20, 3))), (),
       (dr.DataError, (X_NAME, "constant"))),
    Ok("lms-nan-target-step", lambda: dr.LMS(0.01).partial_fit(u(), with_value(u(), (3, 0),
                                                                                np.nan)),
       (30, 1), (dr.DataError, ((*Y_NAME, "targets"), NAN))),
    Ok("rls-nan-target-fit", lambda: dr.RLS(1e-3).fit(u(), with_value(u(), (3, 0), np.nan))
       .run(u()), (30, 1), (dr.DataError, ((*Y_NAME, "targets"), NAN))),
    Ok("ragged-mixed-numpy-torch", lambda: dr.Reservoir(8, seed=0).run(
        [u(5), torch.tensor(u(6))]), None, (dr.DataError, (X_NAME, "torch"))),
    # each element of a list counts on its own (docs/graph.md): 2 x 4 features, or a refusal
    Ok("node-twice-in-list", lambda: _twice_in_list_features(), (1,),
       (dr.GraphError, ("'twice'",))),
]


def _zero_feature_loop():
    reservoir = dr.Reservoir(8, seed=0, name="res")
    readout = dr.Ridge(1e-6, name="ro")
    model = (reservoir >> readout) & (reservoir << readout)
    model.fit(np.zeros((30, 0)), u())
    return model


def _twice_in_list_features():
    node = dr.Reservoir(4, seed=0, name="twice")
    ridge = dr.Ridge(1e-6, name="ro")
    model = [node, node] >> ridge
    model.fit(u(), u())
    assert ridge.input_dim == 8, (f"silent: [twice, twice] >> ridge gives the readout "
                                  f"{ridge.input_dim} features, not 2 x 4")
    return np.ones(1)


# ------------------------------------------------------------------------------ checks
FOREIGN = ("torch", "numpy", "scipy", "pathlib", "safetensors", "tomllib", "tomli", "json",
           "networkx", "xarray", "sklearn", "mnist1d", "netCDF4", "h5netcdf", "shutil", "os")
RAW_MESSAGES = ("INTERNAL ASSERT", "mat1 and mat2", "size of tensor", "cannot be multiplied",
                "unsupported operand", "not implemented for", "has no attribute",
                "object is not subscriptable", "object is not iterable", "Expected all tensors",
                "'NoneType' object", "invalid literal", "could not convert",
                "index out of range", "out of bounds for dimension")
MIN_LENGTH = 30


def _module_of(frame) -> str:
    return frame.f_globals.get("__name__", "") or ""


def _top(module: str) -> str:
    return module.split(".")[0]


def _frames(tb) -> list:
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


def _chained(exc: BaseException) -> list[BaseException]:
    chain, current = [], exc
    while True:
        if current.__cause__ is not None:
            nxt = current.__cause__
        elif not current.__suppress_context__:
            nxt = current.__context__
        else:
            nxt = None
        if nxt is None or nxt in chain:
            return chain
        chain.append(nxt)
        current = nxt


def _message_ok(exc: BaseException, must_mention: tuple[Mention, ...]) -> list[str]:
    problems = []
    message = str(exc)
    for mention in must_mention:
        options = (mention,) if isinstance(mention, str) else mention
        if not any(option in message for option in options):
            problems.append(f"the message does not mention {' or '.join(map(repr, options))}")
    if len(message) < MIN_LENGTH:
        problems.append(f"the message is obscure: only {len(message)} characters")
    for raw in RAW_MESSAGES:
        if raw in message:
            problems.append(f"the message looks like a raw library message ({raw!r})")
    return problems


def _traceback_ok(exc: BaseException) -> list[str]:
    problems = []
    frames = _frames(exc.__traceback__)
    if frames:
        where = _module_of(frames[-1])
        if not where.startswith("deepreservoir"):
            problems.append(f"raised inside {where or frames[-1].f_code.co_filename} "
                            f"(line {frames[-1].f_lineno}), not inside deepreservoir")
    for chained in _chained(exc):
        foreign = sorted({_module_of(f) for f in _frames(chained.__traceback__)
                          if _top(_module_of(f)) in FOREIGN})
        if foreign:
            problems.append(f"chained from {type(chained).__name__} raised in {foreign[-1]}: "
                            f"{str(chained)[:120]!r} (use 'raise ... from None')")
    return problems


def _names(expected) -> str:
    classes = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(c.__name__ for c in classes)


def _describe_problem(case_id: str, exc: BaseException, problems: list[str]) -> str:
    return (f"[{case_id}] {type(exc).__name__}: {str(exc)[:300]}\n  - "
            + "\n  - ".join(problems))


# --------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_probe(case: Case):
    try:
        result = case.call()
    except case.expected as exc:
        problems = _message_ok(exc, case.must_mention) + _traceback_ok(exc)
        assert not problems, _describe_problem(case.id, exc, problems)
    except Exception as exc:
        where = _frames(exc.__traceback__)
        site = _module_of(where[-1]) if where else "?"
        pytest.fail(f"[{case.id}] obscure: expected {_names(case.expected)}, got "
                    f"{type(exc).__name__} raised in {site}: {str(exc)[:300]}")
    else:
        summary = type(result).__name__
        if isinstance(result, (np.ndarray, torch.Tensor)):
            array = np.asarray(result.detach().float().cpu() if isinstance(result, torch.Tensor)
                               else result, dtype=np.float64)
            summary += f" of shape {array.shape}, finite: {bool(np.isfinite(array).all())}"
        pytest.fail(f"[{case.id}] silent: expected {_names(case.expected)}, but the call "
                    f"returned {summary}")


@pytest.mark.parametrize("ok", BEHAVIOUR, ids=[c.id for c in BEHAVIOUR])
def test_correct_behaviour(ok: Ok):
    try:
        result = ok.call()
    except Exception as exc:
        if ok.or_raises is not None and isinstance(exc, ok.or_raises[0]):
            problems = _message_ok(exc, ok.or_raises[1]) + _traceback_ok(exc)
            assert not problems, _describe_problem(ok.id, exc, problems)
            return
        where = _frames(exc.__traceback__)
        site = _module_of(where[-1]) if where else "?"
        pytest.fail(f"[{ok.id}] expected success, got {type(exc).__name__} raised in {site}: "
                    f"{str(exc)[:300]}")
    if ok.id == "ragged-mixed-numpy-torch":
        assert [np.asarray(r).shape for r in result] == [(5, 8), (6, 8)]
        assert all(np.isfinite(np.asarray(r)).all() for r in result)
        return
    array, shape = _finite_shape(result)
    assert np.isfinite(array).all(), f"[{ok.id}] silent: the result holds NaN/Inf: {array}"
    if ok.shape is not None:
        assert shape == ok.shape, f"[{ok.id}] shape {shape}, expected {ok.shape}"


@pytest.mark.parametrize(("case_id", "make_args", "mention"), CLI_CASES,
                         ids=[c[0] for c in CLI_CASES])
def test_cli_one_line(case_id, make_args, mention, capsys):
    """Without DEEPRESERVOIR_DEBUG: exit status 1, one line on stderr naming the file."""
    args = make_args()
    capsys.readouterr()
    with unprivileged():
        status = run_cli(*args, debug=False)
    err = capsys.readouterr().err
    assert status == 1, f"[{case_id}] exit status {status}, stderr: {err[-500:]}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"[{case_id}] {len(lines)} lines on stderr: {err[-800:]}"
    assert "Traceback" not in err
    assert mention in lines[0], f"[{case_id}] {mention!r} not in {lines[0]!r}"


def test_probe_suite_size():
    ids = [c.id for c in CASES] + [c.id for c in BEHAVIOUR]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    mentions = [m for c in CASES for m in c.must_mention]
    mentions += [m for o in BEHAVIOUR if o.or_raises for m in o.or_raises[1]]
    for mention in mentions:
        options = (mention,) if isinstance(mention, str) else mention
        assert all(isinstance(option, str) for option in options), mention
    assert len(CASES) >= 150, f"only {len(CASES)} error cases"
    assert len(CASES) + len(BEHAVIOUR) >= 170
