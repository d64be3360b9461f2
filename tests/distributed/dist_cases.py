"""Models, data and per-process scenarios of the data-parallel tests.

Run as a script by :func:`launch` (one process per rank, torchrun's environment
variables set by hand); imported by the tests for the single-process references.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import torch

import deepreservoir as dr

HERE = Path(__file__).resolve().parent

MLP_OPTIONS = dict(epochs=2, batch_size=25, lr=1e-2, loss="cross_entropy", seed=5, verbose=0)
RESERVOIR_OPTIONS = dict(epochs=2, batch_size=4, lr=5e-3, loss="mse", seed=2, warmup=3,
                         verbose=0)
RESUME_OPTIONS = dict(epochs=4, batch_size=16, lr=1e-2, loss="cross_entropy", seed=1,
                      verbose=0)


def blobs(n=107, features=12, classes=3, seed=0):
    """Gaussian blobs, float64: 107 samples cut in batches of 25 leave a last batch of 7."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(classes, features))
    labels = rng.integers(0, classes, n)
    return centres[labels] + rng.normal(size=(n, features)), labels


def mlp(seed=1):
    return dr.scaffold_mlp("tiny", 3, seed=seed, dtype=dr.float64)


def series(seed=0):
    """9 series (9, 20, 2) with per-step targets (9, 20, 1), some left out (NaN)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(9, 20, 2))
    y = np.cumsum(x[..., :1], axis=1) * 0.1
    y[rng.random(y.shape) < 0.2] = np.nan
    return x, y


def recurrent(seed=3):
    return (dr.Reservoir(30, r=2, seed=seed, dtype=dr.float64)
            >> dr.LoRAReadout(1, r=2, dtype=dr.float64))


def esn_data(seed=0):
    """6 series (6, 80, 1) with a large mean (1000), targets around 500."""
    rng = np.random.default_rng(seed)
    t = np.arange(80)[None, :, None]
    x = 1000.0 + np.sin(0.2 * t + rng.uniform(0, 6, size=(6, 1, 1))) + 0.1 * rng.normal(
        size=(6, 80, 1))
    y = 500.0 + np.roll(x - 1000.0, -1, axis=1) ** 2
    return x, y


def esn(seed=3):
    source = dr.Input()
    return [source, source >> dr.Reservoir(40, seed=seed, input_scaling=1e-3,
                                           dtype=dr.float64)] >> dr.Ridge(1e-6,
                                                                          dtype=dr.float64)


MIXED_OPTIONS = dict(epochs=2, batch_size=4, lr=1e-3, warmup=10, verbose=0, seed=3)


def mixed(seed=4):
    """Gradient-trained adapters under a closed-form readout: both reductions in one fit."""
    return (dr.Reservoir(30, r=2, seed=seed, dtype=dr.float64)
            >> dr.Ridge(1e-2, dtype=dr.float64))


def trained(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(scenario: str, out: Path, world: int = 2, timeout: float = 60.0) -> list[dict]:
    """Run the scenarios ``scenario`` ("a,b") on ``world`` processes; per rank, each
    scenario's result ``{"ok": ...}`` or error ``{"type", "message", "trace"}``.

    A process still running after ``timeout`` seconds (a hang) fails the test.
    """
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, __file__, scenario, str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=timeout)[0].decode(errors="replace"))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        raise AssertionError(f"scenario {scenario!r} hung (> {timeout} s)") from None
    results = []
    for rank, proc in enumerate(procs):
        path = out / f"rank{rank}.pkl"
        assert path.exists(), f"rank {rank} wrote nothing (exit {proc.returncode}):\n{logs}"
        results.append(pickle.loads(path.read_bytes()))
    return results


# ---------------------------------------------------------------- in a rank
class WireCounter:
    """Counts the bytes of every torch.distributed collective (wrapping the functions)."""

    TENSOR = ("all_reduce", "broadcast", "reduce", "all_gather", "all_gather_into_tensor",
              "reduce_scatter", "reduce_scatter_tensor", "gather", "scatter", "send", "recv",
              "all_to_all", "all_to_all_single")
    OBJECT = ("all_gather_object", "broadcast_object_list", "gather_object", "scatter_object_list")

    def __init__(self):
        import torch.distributed as dist

        self.bytes = 0
        self.calls: list[str] = []
        for name in self.TENSOR + self.OBJECT:
            original = getattr(dist, name, None)
            if original is not None:
                setattr(dist, name, self._wrap(name, original))

    def _wrap(self, name, original):
        def counted(*args, **kwargs):
            first = args[0] if args else next(iter(kwargs.values()))
            payload = args[1] if name == "all_gather_object" and len(args) > 1 else first
            if isinstance(payload, torch.Tensor):
                self.bytes += payload.numel() * payload.element_size()
            elif isinstance(payload, (list, tuple)) and payload and all(
                    isinstance(t, torch.Tensor) for t in payload):
                self.bytes += sum(t.numel() * t.element_size() for t in payload)
            else:
                self.bytes += len(pickle.dumps(payload))
            self.calls.append(name)
            return original(*args, **kwargs)
        return counted


class StepBytes(dr.training.Callback):
    """The bytes counted between ``on_batch_begin`` and ``on_batch_end`` of each step."""

    def __init__(self, counter):
        self.counter, self.steps, self._start = counter, [], 0

    def on_batch_begin(self, trainer, batch):
        self._start = self.counter.bytes

    def on_batch_end(self, trainer, batch, loss):
        self.steps.append(self.counter.bytes - self._start)


class SeenRows(dr.training.Callback):
    """The rows (by their first feature) this process trains on, per epoch."""

    def __init__(self):
        self.epochs = []

    def on_epoch_begin(self, trainer, epoch):
        self.epochs.append([])

    def on_batch_begin(self, trainer, batch):
        self.epochs[-1].extend(batch.x.reshape(len(batch), -1)[:, 0].tolist())


def _shuffled_loader():
    """A user's DataLoader(shuffle=True) without a generator: it draws from torch's."""
    from torch.utils.data import DataLoader, TensorDataset

    x, y = blobs()
    loader = DataLoader(TensorDataset(torch.as_tensor(x), torch.as_tensor(y)), batch_size=25,
                        shuffle=True)
    seen = SeenRows()
    torch.manual_seed(int(os.environ["RANK"]))  # the processes' generators start apart
    dr.distributed.fit(mlp(), None, None, sampler=loader, callbacks=[seen],
                       **{**MLP_OPTIONS, "epochs": 3})
    return seen.epochs, x[:, 0].tolist()


def _train(counter):
    x, y = blobs()
    xv, yv = blobs(40, seed=1)
    model = mlp()
    steps = StepBytes(counter)
    dr.distributed.fit(model, x, y, validation_data=(xv, yv), callbacks=[steps],
                       **MLP_OPTIONS)
    seen, every_row = _shuffled_loader()
    scaffold = sum(t.numel() * t.element_size() for node in model.nodes.values()
                   if isinstance(node, dr.kinds.FrozenWeights)
                   for t in node.frozen_tensors().values() if t is not None)
    trainable = sum(p.numel() * p.element_size() for p in model.parameters()
                    if p.requires_grad)
    rx, ry = series()
    other = recurrent()
    dr.distributed.fit(other, rx, ry, **RESERVOIR_OPTIONS)
    ex, ey = esn_data()
    ridge = esn()
    dr.distributed.fit(ridge, ex, ey, warmup=10)
    both = mixed()
    dr.distributed.fit(both, ex - 1000.0, ey - 500.0, **MIXED_OPTIONS)
    return {"mixed": trained(both), "mixed_history": both.history_["loss"].values.tolist(),
            "mlp": trained(model), "history": model.history_["loss"].values.tolist(),
            "val": model.history_["val_loss"].values.tolist(), "step_bytes": steps.steps,
            "trainable_bytes": trainable, "scaffold_bytes": scaffold,
            "recurrent": trained(other), "seen": seen, "every_row": every_row,
            "recurrent_history": other.history_["loss"].values.tolist(),
            "esn": trained(ridge)}


def _mismatch(counter):
    rank = int(os.environ["RANK"])
    x, y = blobs()
    dr.distributed.fit(mlp(seed=1 + rank), x, y, **MLP_OPTIONS)
    return {}


def _nonfinite(counter):
    import torch.distributed as dist

    calls = {"n": 0}

    def flaky(out, target):  # NaN on process 1 only, at its 7th step (epoch 2)
        calls["n"] += 1
        value = torch.nn.functional.cross_entropy(out, target)
        return value * float("nan") if dist.get_rank() == 1 and calls["n"] == 7 else value

    x, y = blobs()
    model = mlp()
    seen = []
    try:
        dr.distributed.fit(model, x, y, callbacks=[lambda e, logs, m: seen.append(trained(m))],
                           **{**MLP_OPTIONS, "loss": flaky})
    except dr.TrainingError as error:
        return {"message": str(error), "seen": seen, "after": trained(model)}
    return {"seen": seen, "after": trained(model)}


def _resume(counter):
    x, y = blobs(120)
    dr.distributed.fit(mlp(), x, y, checkpoint=Path(sys.argv[2]) / "checkpoint",
                       callbacks=[lambda epoch, logs, model: epoch == 1], **RESUME_OPTIONS)
    return {}


def _refusals(counter):
    """Each refusal, raised the same on every process (no hang): its type and message."""
    ex, ey = esn_data()
    x, y = blobs()
    attempts = {"one series": lambda: dr.distributed.fit(esn(), ex[0], ey[0], warmup=10),
                "shard=False": lambda: dr.distributed.fit(mlp(), x, y, shard=False,
                                                          **MLP_OPTIONS),
                "online": lambda: dr.distributed.fit(dr.Reservoir(10, seed=1) >> dr.RLS(),
                                                     ex, ey)}
    found = {}
    for name, attempt in attempts.items():
        try:
            attempt()
            found[name] = ("no error", "")
        except dr.DeepReservoirError as error:
            found[name] = (type(error).__name__, str(error))
    return found


SCENARIOS = {"train": _train, "mismatch": _mismatch, "nonfinite": _nonfinite,
             "resume": _resume, "refusals": _refusals}


def main():
    """Run the scenarios named on the command line in turn, each result (or error) kept."""
    torch.set_num_threads(1)
    names, out = sys.argv[1].split(","), Path(sys.argv[2])
    counter = WireCounter()
    results = {}
    for name in names:
        try:
            results[name] = {"ok": SCENARIOS[name](counter)}
        except Exception as error:  # reported to the test, which asserts on it
            results[name] = {"type": type(error).__name__, "message": str(error),
                             "trace": traceback.format_exc()}
    (out / f"rank{os.environ['RANK']}.pkl").write_bytes(pickle.dumps(results))
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
