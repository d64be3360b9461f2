"""dr.adapt: turn a torch Transformer encoder and a small CNN into seeded scaffolds.

Every Linear (the fused q/k/v projection of nn.MultiheadAttention included),
Conv2d and Embedding gets a frozen weight drawn from the seed, a rank-r LoRA
adapter and a gate β; the head and the LayerNorms stay trainable. After
training, dr.merge() gives back a plain torch module with dense weights.

Run:  python examples/adapt_transformer.py   (under a minute on a CPU)
"""

import torch
from torch import nn

import deepreservoir as dr
from deepreservoir.adapt import adapted_layers
from deepreservoir.threads import use_threads


class Classifier(nn.Module):
    """Token sequences → classes: embedding, 2 encoder layers, mean pooling, head."""

    def __init__(self, vocab: int = 16, d: int = 32, classes: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens)).mean(1))


def majority_task(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Is token 1 more frequent than token 2 in a sequence of 12 tokens?"""
    tokens = torch.randint(0, 16, (n, 12), generator=generator)
    labels = ((tokens == 1).sum(1) > (tokens == 2).sum(1)).long()
    return tokens, labels


def train(model: nn.Module, x, y, epochs: int, lr: float) -> None:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for index in torch.randperm(len(y), generator=generator).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[index]), y[index]).backward()
            optimizer.step()


def accuracy(model: nn.Module, x, y) -> float:
    model.eval()
    with torch.no_grad():
        result = float((model(x).argmax(1) == y).float().mean())
    model.train()
    return result


def transformer_demo() -> None:
    generator = torch.Generator().manual_seed(0)
    x, y = majority_task(2000, generator)
    x_test, y_test = majority_task(500, generator)
    torch.manual_seed(0)
    model = dr.adapt(Classifier(), r=4, seed=7, train=["head", "*norm*"])
    trained = sum(p.numel() for p in model.parameters())
    total = sum(p.numel() for p in dr.merge(model).parameters())
    print(f"Transformer: {trained:,} trainable of {total:,} "
          f"({100 * trained / total:.1f} %); attention is "
          f"{type(model.encoder.layers[0].self_attn).__name__}")
    train(model, x, y, epochs=8, lr=1e-2)
    print(f"  test accuracy after training adapters, heads and norms: "
          f"{accuracy(model, x_test, y_test):.3f}")
    merged = dr.merge(model)
    model.eval()
    merged.eval()
    with torch.no_grad():
        gap = float((merged(x_test) - model(x_test)).abs().max())
    print(f"  merged into a plain {type(merged.encoder.layers[0].self_attn).__name__}: "
          f"max output difference {gap:.1e}")
    betas = [round(float(m.beta_.detach()), 3) for m in adapted_layers(model).values()
             if m.beta_ is not None]
    print(f"  β after training: median {sorted(betas)[len(betas) // 2]}, min {min(betas)}")


def cnn_demo() -> None:
    from deepreservoir.datasets import load_digits

    data = load_digits()
    x = torch.as_tensor(data["x_train"]).reshape(-1, 1, 8, 8)
    x_test = torch.as_tensor(data["x_test"]).reshape(-1, 1, 8, 8)
    y, y_test = torch.as_tensor(data["y_train"]), torch.as_tensor(data["y_test"])
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3),
                        nn.ReLU(), nn.Flatten(), nn.Linear(32 * 6 * 6, 10))
    dr.adapt(cnn, r=4, seed=3, train=["5"])
    trained = sum(p.numel() for p in cnn.parameters())
    print(f"CNN on digits: {trained:,} trainable parameters")
    train(cnn, x, y, epochs=15, lr=1e-2)
    merged = dr.merge(cnn)
    print(f"  test accuracy {accuracy(cnn, x_test, y_test):.3f}, merged "
          f"{accuracy(merged, x_test, y_test):.3f}")


if __name__ == "__main__":
    use_threads()  # the shared policy: one thread unless DEEPRESERVOIR_NUM_THREADS says otherwise
    transformer_demo()
    try:
        cnn_demo()
    except dr.DataError as error:  # scikit-learn missing
        print("CNN demo skipped:", error)
