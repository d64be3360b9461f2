"""Architecture family "dt": a Decision Transformer on CartPole trajectories.

The paper's row: a Decision Transformer, validation MSE of the predicted action
0.02713 with LottaLoRA (no rank stated) against 0.02718 fully trained, with
α = r (``alpha=None`` here).

The model follows Chen et al. (2021): each step t of a context window of K
steps contributes three tokens (return-to-go R̂_t, state s_t, action a_t), each
embedded by its own layer (``nn.Linear`` for returns and states; ``nn.Embedding``
for discrete actions, ``nn.Linear`` for continuous ones) plus a learned timestep
embedding (``nn.Embedding``), then a LayerNorm and a causal
``nn.TransformerEncoder`` (``batch_first=True``, pre-norm). The action a_t is
predicted from the output at the state token s_t, so it sees R̂_≤t, s_≤t and
a_<t only. Sized for a CPU: width 32, 4 heads, 2 layers, K = 16 steps (48
tokens), no dropout; the embeddings start at GPT-2's N(0, 0.02²), as the DT's.

The built-in data (generated from ``seed`` with gymnasium's ``CartPole-v1``,
nothing downloaded): a scripted policy pushes the cart toward the pole's lean
(``θ + 0.3·θ' + 0.02·ẋ > 0``); each trajectory takes a uniformly random action
with probability ε, ε drawn from (0.1, 0.25, 0.4, 0.6), so returns vary from a
dozen steps to the cap. Each episode is reset with its own seed (a numpy
Generator from ``seed`` draws them) and cut at a maximum length. The returns-to-go
tell the model how noisy the trajectory is. Train / validation / test splits
are disjoint trajectories.

The metric is the mean squared error of the predicted action on held-out
trajectories (lower is better), the same as the training loss: for discrete
actions the predicted action probabilities (softmax) against the one-hot action,
averaged over the action values, which for CartPole's two actions is
``(P(a = 1) - a)²``; for continuous actions the predicted action vector. The
ε-random actions set a floor: a model that knows the policy and ε exactly still
scores ``E[ε/2·(1 - ε/2)]``, reported as ``noise_floor`` in the task's info.
Evaluation windows tile each trajectory (every step predicted once); training
windows overlap by half.

A user's ``.npz``: ``states`` (n, T, S) float; ``actions`` (n, T) integer (discrete
actions 0…k−1) or (n, T, A) float (continuous; a 2-D float array is A = 1);
``rewards`` (n, T) float; optional ``lengths`` (n,) integer in 1…T (steps past a
trajectory's length are ignored and may hold NaN; without it every trajectory
is T steps). The trajectories are split 20 % test (by ``seed``), then 15 % of
the rest for validation.

Adapted by ``dr.adapt``: the timestep embedding, every attention block (q, k, v
and out projections) and the feed-forward layers. Trained fully (``train``):
the return, state and action embeddings, the norms and the action head. The
return and state embeddings map 1 and S = 4 inputs, below r = 8, and
``dr.adapt`` refuses an ``nn.Linear`` of rank below r, so all three input
embeddings are trained at every rank (a few hundred values: (1 + 4 + 2)·32
weights and two biases). The gap analysis's groups are glob patterns that end in
``*`` (``encoder.layers.*.self_attn*``) so that they name the attention blocks'
own parameters and children, not only the blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torch import Tensor, nn

from deepreservoir.data_files import read_npz
from deepreservoir.errors import DataError
from deepreservoir.studies import load_helper

common = load_helper("_arch_common", Path(__file__).parent)

NAME = "dt"
TITLE = "Decision Transformer on CartPole trajectories"
PAPER = common.PaperRow(benchmark="Decision Transformer, validation MSE", lora=0.02713,
                        full=0.02718, rank=None)
RANKS = (1, 8)
REQUIRES = ("gymnasium",)
METRIC = common.Metric(name="MSE", higher_is_better=False)
HYPER = {
    "full": common.Hyper(epochs=4, batch_size=64, lr_full=1e-2, lr_lora=3e-2),
    "quick": common.Hyper(epochs=2, batch_size=64, lr_full=1e-2, lr_lora=3e-2),
}
ADAPT: dict[str, Any] = {
    "alpha": None,
    "train": ["embed_return", "embed_state", "embed_action", "*norm*", "predict_action"],
}
GROUPS = {
    "attention": ["encoder.layers.*.self_attn*"],
    "feedforward": ["encoder.layers.*.linear*"],
    "timestep_embedding": ["embed_timestep"],
}
DATA_KEYS = ("states (n, T, S) float; actions (n, T) int or (n, T, A) float; rewards (n, T); "
             "optional lengths (n,)")

CONTEXT = 16
WIDTH, HEADS, LAYERS = 32, 4, 2
EPSILONS = (0.1, 0.25, 0.4, 0.6)
#: Generated data: (trajectories in train/val/test, longest episode) per size.
SIZES = {"full": ((160, 40, 80), 200), "quick": ((20, 8, 8), 64)}


class DecisionTransformer(nn.Module):
    """Returns-to-go, states and actions as tokens of a causal Transformer encoder.

    ``forward(returns, states, actions, timesteps)``: ``returns`` (B, K, 1),
    ``states`` (B, K, S), ``actions`` (B, K) long (discrete) or (B, K, A),
    ``timesteps`` (B, K) long → action outputs (B, K, k or A): logits for discrete
    actions, values for continuous ones.
    """

    def __init__(self, state_dim: int, action_dim: int, discrete: bool, max_timestep: int,
                 width: int = WIDTH, heads: int = HEADS, layers: int = LAYERS,
                 dropout: float = 0.0):
        super().__init__()
        self.discrete = discrete
        self.embed_timestep = nn.Embedding(max_timestep, width)
        self.embed_return = nn.Linear(1, width)
        self.embed_state = nn.Linear(state_dim, width)
        self.embed_action = (nn.Embedding(action_dim, width) if discrete
                             else nn.Linear(action_dim, width))
        self.embed_norm = nn.LayerNorm(width)
        block = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, layers, norm=nn.LayerNorm(width),
                                             enable_nested_tensor=False)
        self.predict_action = nn.Linear(width, action_dim)
        for embedding in (self.embed_timestep, self.embed_action):
            if isinstance(embedding, nn.Embedding):  # GPT-2's (and the DT's) N(0, 0.02²)
                nn.init.normal_(embedding.weight, 0.0, 0.02)

    def forward(self, returns: Tensor, states: Tensor, actions: Tensor,
                timesteps: Tensor) -> Tensor:
        batch, steps = timesteps.shape
        time = self.embed_timestep(timesteps)
        tokens = torch.stack([self.embed_return(returns) + time,
                              self.embed_state(states) + time,
                              self.embed_action(actions) + time], dim=2)
        tokens = self.embed_norm(tokens.reshape(batch, 3 * steps, -1))
        causal = nn.Transformer.generate_square_subsequent_mask(3 * steps,
                                                                device=tokens.device)
        hidden = self.encoder(tokens, mask=causal, is_causal=True)
        return self.predict_action(hidden.reshape(batch, steps, 3, -1)[:, :, 1])


def scripted_action(state: np.ndarray) -> int:
    """Push toward the pole's lean: 1 (right) when ``θ + 0.3·θ' + 0.02·ẋ > 0``."""
    return int(state[2] + 0.3 * state[3] + 0.02 * state[1] > 0)


def generate(count: int, max_steps: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``count`` CartPole-v1 episodes of the ε-noisy scripted policy.

    Parameters
    ----------
    count : int
    max_steps : int
        Episodes are cut at this length.
    rng : numpy.random.Generator
        Draws each episode's reset seed, its ε (from ``EPSILONS``) and the random actions.

    Returns
    -------
    dict
        ``states`` (count, max_steps, 4) float32, ``actions`` (count, max_steps) int64,
        ``rewards`` (count, max_steps) float32 (zero past the end), ``lengths``
        (count,) int64, ``epsilons`` (count,) float64.
    """
    import gymnasium as gym

    env = gym.make("CartPole-v1").unwrapped  # the time limit is ours (max_steps)
    states = np.zeros((count, max_steps, 4), np.float32)
    actions = np.zeros((count, max_steps), np.int64)
    rewards = np.zeros((count, max_steps), np.float32)
    lengths = np.zeros(count, np.int64)
    epsilons = rng.choice(EPSILONS, count)
    try:
        for episode in range(count):
            state, _ = env.reset(seed=int(rng.integers(2**31)))
            for step in range(max_steps):
                action = scripted_action(state)
                if rng.random() < epsilons[episode]:
                    action = int(rng.integers(2))
                states[episode, step], actions[episode, step] = state, action
                state, reward, terminated, _, _ = env.step(action)
                rewards[episode, step] = reward
                lengths[episode] = step + 1
                if terminated:
                    break
    finally:
        env.close()
    return {"states": states, "actions": actions, "rewards": rewards, "lengths": lengths,
            "epsilons": epsilons}


def _fail(path: str, key: str, got: str, expected: str) -> NoReturn:
    raise DataError(f"The array {key!r} of the data file {path!r} must be {expected}. "
                    f"Got {got}.")


def _read_file(path: Any) -> dict[str, np.ndarray]:
    shown = str(path)
    arrays = read_npz(path, "data file", DATA_KEYS)
    for key in ("states", "actions", "rewards"):
        if key not in arrays:
            raise DataError(f"The data file {shown!r} has no {key!r} array; it holds "
                            f"{sorted(arrays) or 'nothing'}. Expected {DATA_KEYS}.")
    states, actions, rewards = arrays["states"], arrays["actions"], arrays["rewards"]
    if states.dtype.kind not in "biuf" or states.ndim != 3 or min(states.shape) < 1:
        _fail(shown, "states", f"shape {states.shape} and dtype {states.dtype}",
              "a real array of shape (trajectories, steps, state features)")
    n, steps = states.shape[:2]
    if actions.dtype.kind not in "biuf" or actions.ndim not in (2, 3) \
            or actions.shape[:2] != (n, steps) or (actions.ndim == 3 and actions.shape[2] < 1):
        _fail(shown, "actions", f"shape {actions.shape} and dtype {actions.dtype}",
              f"(n, T) = {(n, steps)} integers or (n, T, A) floats")
    if rewards.dtype.kind not in "biuf" or rewards.shape != (n, steps):
        _fail(shown, "rewards", f"shape {rewards.shape} and dtype {rewards.dtype}",
              f"a real array of shape {(n, steps)}")
    if "lengths" in arrays:
        lengths = arrays["lengths"]
        if lengths.shape != (n,) or lengths.dtype.kind not in "iu" \
                or lengths.min() < 1 or lengths.max() > steps:
            _fail(shown, "lengths", f"shape {lengths.shape}, dtype {lengths.dtype}"
                  + (f", range {lengths.min()}…{lengths.max()}"
                     if lengths.size and lengths.dtype.kind in 'iu' else ""),
                  f"integers in 1…{steps}, shape ({n},)")
    else:
        lengths = np.full(n, steps)
    valid = np.arange(steps)[None, :] < lengths[:, None]
    discrete = actions.ndim == 2 and actions.dtype.kind in "biu"
    for key, values in (("states", states), ("actions", actions), ("rewards", rewards)):
        inside = values[valid]
        if not np.isfinite(inside).all():
            _fail(shown, key, f"{int((~np.isfinite(inside)).sum())} NaN/inf value(s) within "
                  f"the trajectories' lengths", "finite within each trajectory's length")
    if discrete and actions[valid].min() < 0:
        _fail(shown, "actions", f"the smallest action {actions[valid].min()}",
              "discrete actions 0…k−1")
    if n < 5:
        _fail(shown, "states", f"{n} trajectories", "at least 5 trajectories (3 splits)")
    actions = np.where(valid, actions, 0) if discrete else \
        np.where(valid[..., None], actions.reshape(n, steps, -1), 0.0)
    return {"states": np.where(valid[..., None], states, 0.0).astype(np.float32),
            "actions": actions.astype(np.int64 if discrete else np.float32),
            "rewards": np.where(valid, rewards, 0.0).astype(np.float32),
            "lengths": lengths.astype(np.int64)}


def _subset(arrays: dict[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    return {key: value[index] for key, value in arrays.items()}


def returns_to_go(rewards: np.ndarray) -> np.ndarray:
    """``R̂_t = Σ_{t' ≥ t} r_t'`` along the last axis (zero rewards past the end)."""
    return np.flip(np.cumsum(np.flip(rewards, -1), -1), -1).copy()


def _windows(arrays: dict[str, np.ndarray], stride: int, state_mean: np.ndarray,
             state_std: np.ndarray, return_scale: float) -> dict[str, Tensor]:
    """Windows of ``CONTEXT`` steps starting every ``stride`` steps (right-padded, masked)."""
    rtg = returns_to_go(arrays["rewards"]) / return_scale
    states = (arrays["states"] - state_mean) / state_std
    starts = [(episode, start) for episode, length in enumerate(arrays["lengths"])
              for start in range(0, int(length), stride)]
    episode = np.array([e for e, _ in starts])[:, None]
    start = np.array([s for _, s in starts])[:, None]
    steps = start + np.arange(CONTEXT)[None, :]
    mask = steps < arrays["lengths"][episode]
    steps = np.minimum(steps, arrays["states"].shape[1] - 1)
    actions = np.where(mask if arrays["actions"].ndim == 2 else mask[..., None],
                       arrays["actions"][episode, steps], 0)
    return {"returns": torch.as_tensor(rtg[episode, steps][..., None], dtype=torch.float32),
            "states": torch.as_tensor(states[episode, steps], dtype=torch.float32),
            "actions": torch.as_tensor(actions),
            "timesteps": torch.as_tensor(np.where(mask, steps, 0), dtype=torch.long),
            "mask": torch.as_tensor(mask)}


def load_task(*, quick: bool, seed: int, data: Any = None) -> common.Task:
    """The family's data: generated from ``seed``, or a user's ``.npz`` (``DATA_KEYS``).

    Returns
    -------
    Task
        Each split a dict of tensors over windows of ``CONTEXT`` steps: ``returns``
        (W, K, 1), ``states`` (W, K, S), ``actions`` (W, K) long or (W, K, A),
        ``timesteps`` (W, K) long and ``mask`` (W, K) bool (steps inside a trajectory).
    """
    rng = np.random.default_rng([seed, 15])
    if data is None:
        (n_train, n_val, n_test), max_steps = SIZES["quick" if quick else "full"]
        raw = {name: generate(n, max_steps, rng) for name, n in
               (("train", n_train), ("val", n_val), ("test", n_test))}
        epsilons = {name: arrays.pop("epsilons") for name, arrays in raw.items()}
        source = (f"generated: CartPole-v1, {n_train}/{n_val}/{n_test} trajectories of an "
                  f"ε-noisy scripted policy, ε in {EPSILONS}, at most {max_steps} steps, "
                  f"seed {seed}")
    else:
        arrays = _read_file(data)
        order = rng.permutation(len(arrays["lengths"]))
        n_test = max(1, round(0.2 * len(order)))
        n_val = max(1, round(0.15 * (len(order) - n_test)))
        raw = {"test": _subset(arrays, order[:n_test]),
               "val": _subset(arrays, order[n_test:n_test + n_val]),
               "train": _subset(arrays, order[n_test + n_val:])}
        epsilons = None
        source = f"file: {Path(data).name}"
    train = raw["train"]
    valid = np.arange(train["states"].shape[1])[None, :] < train["lengths"][:, None]
    state_mean = train["states"][valid].mean(0)
    state_std = train["states"][valid].std(0)
    state_std = np.where(state_std > 0, state_std, 1.0)
    return_scale = float(max(np.abs(returns_to_go(train["rewards"])).max(), 1e-8))
    splits = {name: _windows(arrays, CONTEXT // 2 if name == "train" else CONTEXT,
                             state_mean, state_std, return_scale)
              for name, arrays in raw.items()}
    discrete = train["actions"].ndim == 2
    info: dict[str, Any] = {
        "context": CONTEXT, "state_dim": train["states"].shape[2], "discrete": discrete,
        "action_dim": (int(max(a["actions"].max() for a in raw.values())) + 1 if discrete
                       else train["actions"].shape[2]),
        "max_timestep": train["states"].shape[1], "return_scale": return_scale,
        "trajectories": {k: len(v["lengths"]) for k, v in raw.items()},
        "steps": {k: int(v["lengths"].sum()) for k, v in raw.items()},
        "windows": {k: len(v["mask"]) for k, v in splits.items()},
        "mean_return": float(train["rewards"].sum(1).mean())}
    if epsilons is not None:
        test = raw["test"]
        per_step = np.repeat(epsilons["test"], test["lengths"])
        info["noise_floor"] = float(np.mean(per_step / 2 * (1 - per_step / 2)))
    return common.Task(name=NAME, splits=splits, source=source, info=info)


def build(task: common.Task, *, seed: int) -> nn.Module:
    """The untrained Decision Transformer, initialised from ``seed``."""
    torch.manual_seed(seed)
    info = task.info
    return DecisionTransformer(info["state_dim"], info["action_dim"], info["discrete"],
                               info["max_timestep"])


def batches(task: common.Task, split: str, batch_size: int,
            generator: torch.Generator) -> Iterator[tuple[Tensor, ...]]:
    """``(returns, states, actions, timesteps, mask)`` batches of windows."""
    data = task.splits[split]
    count = len(data["mask"])
    order = (torch.randperm(count, generator=generator) if split == "train"
             else torch.arange(count))
    keys = ("returns", "states", "actions", "timesteps", "mask")
    for start in range(0, count, batch_size):
        index = order[start:start + batch_size]
        yield tuple(data[key][index] for key in keys)


def _squared_errors(model: nn.Module, batch: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    """Sum of squared action errors over the valid steps, and the number of valid steps."""
    returns, states, actions, timesteps, mask = batch
    output = model(returns, states, actions, timesteps)
    if actions.dim() == 2:
        prediction = output.softmax(-1)
        target = nn.functional.one_hot(actions, output.shape[-1]).to(prediction.dtype)
    else:
        prediction, target = output, actions
    errors = (prediction - target).pow(2).mean(-1)
    return (errors * mask).sum(), mask.sum()


def loss(model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
    """Mean squared error of the predicted action over the window's valid steps."""
    total, count = _squared_errors(model, batch)
    return total / count.clamp(min=1)


def evaluate(model: nn.Module, task: common.Task, split: str) -> float:
    """Mean squared error of the predicted action over every step of ``split``."""
    total, count = 0.0, 0
    for batch in batches(task, split, 256, torch.Generator()):
        errors, steps = _squared_errors(model, batch)
        total, count = total + float(errors), count + int(steps)
    return total / max(count, 1)


def sample(task: common.Task) -> tuple[Tensor, ...]:
    """Four test windows: ``(returns, states, actions, timesteps)``."""
    data = task.splits["test"]
    return tuple(data[key][:4] for key in ("returns", "states", "actions", "timesteps"))
