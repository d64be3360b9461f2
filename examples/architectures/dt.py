"""dr.adapt on a Decision Transformer (α = r) on gymnasium's CartPole. ~15 s on 1 CPU thread."""

import random
import tempfile

import gymnasium as gym
import torch
from torch import nn

import deepreservoir as dr

K, D, T = 10, 32, 100  # context steps, width, longest episode


def windows(n, seed):  # ε-noisy pushes toward the pole's lean; windows of K steps
    env, rng = gym.make("CartPole-v1").unwrapped, random.Random(seed)
    S, A, R = torch.zeros(n, T, 4), torch.zeros(n, T, dtype=torch.long), torch.zeros(n, T)
    for i in range(n):
        s, epsilon = env.reset(seed=rng.randrange(2**31))[0], rng.choice([0.1, 0.3, 0.6])
        for t in range(T):
            a = int(s[2] + 0.3 * s[3] > 0) if rng.random() > epsilon else rng.randrange(2)
            S[i, t], A[i, t], R[i, : t + 1] = torch.as_tensor(s), a, R[i, : t + 1] + 1
            s, _, done, _, _ = env.step(a)
            if done:
                break
    w = [R.view(-1, K) / T, S.view(-1, K, 4), A.view(-1, K), torch.arange(T).repeat(n, 1)]
    return [x.view(len(w[0]), K, -1).squeeze(-1)[w[0][:, -1] > 0] for x in w]  # R̂/T, s, a, t


class DecisionTransformer(nn.Module):
    def __init__(self):  # embed_* (inputs narrower than r), the norms and the head train fully
        super().__init__()
        self.timestep, self.embed_action = nn.Embedding(T, D), nn.Embedding(2, D)
        self.embed_return, self.embed_state = nn.Linear(1, D), nn.Linear(4, D)
        layer = nn.TransformerEncoderLayer(D, 4, 2 * D, 0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, nn.LayerNorm(D), enable_nested_tensor=False)
        self.head = nn.Linear(D, 2)

    def forward(self, rtg, s, a, t):  # tokens R̂_1 s_1 a_1 R̂_2 ...; a_t read at s_t (causal)
        x = torch.stack([self.embed_return(rtg[..., None]), self.embed_state(s),
                         self.embed_action(a)], 2) + self.timestep(t)[:, :, None]
        mask = nn.Transformer.generate_square_subsequent_mask(3 * K)
        return self.head(self.encoder(x.flatten(1, 2), mask=mask, is_causal=True)[:, 1::3])


train, test = windows(120, 0), windows(40, 1)
model = dr.adapt(DecisionTransformer(), r=4, seed=0, train=["embed_*", "*norm*", "head"])
optimizer = torch.optim.AdamW(dr.adapt_parameter_groups(model, 1e-2), lr=3e-2)
for index in torch.cat([torch.randperm(len(train[0])) for _ in range(6)]).split(64):
    batch = [x[index] for x in train]  # MSE of the action probabilities against one-hot actions
    optimizer.zero_grad()
    (model(*batch).softmax(-1) - nn.functional.one_hot(batch[2], 2)).pow(2).mean().backward()
    optimizer.step()
with torch.no_grad():
    out = model.eval()(*test)
    print(f"test MSE {(out.softmax(-1) - nn.functional.one_hot(test[2], 2)).pow(2).mean():.4f}, "
          f"{sum(map(torch.numel, model.parameters()))} trainable parameters (r = 4, α = r)")
    print("merged max difference:", float((dr.merge(model)(*test) - out).abs().max()))
    dr.save_adapted(model, path := tempfile.mkdtemp() + "/dt.safetensors")
    print("reloaded:", torch.equal(dr.load_adapted(DecisionTransformer(), path).eval()(*test), out))
