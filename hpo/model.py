"""The network: a plain ``nn.Module`` MLP for binary classification, with no Optuna or Lightning in it."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "MLP"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}


class MLP(nn.Module):
    """A multilayer perceptron with one output unit (the logit of the positive class).

    ``forward`` returns logits, which training feeds to ``BCEWithLogitsLoss``; :meth:`predict_proba` applies the
    sigmoid for inference.

    Args:
        n_features: number of input columns.
        n_layers: number of hidden layers (0 gives logistic regression).
        hidden_size: units in each hidden layer.
        dropout: dropout probability after each hidden activation.
        activation: one of :data:`ACTIVATIONS`.

    Example:
        >>> model = MLP(n_features=30, n_layers=2, hidden_size=64)
        >>> model(torch.zeros(5, 30)).shape
        torch.Size([5])
    """

    def __init__(
        self,
        n_features: int,
        n_layers: int = 2,
        hidden_size: int = 64,
        dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, but got activation={activation!r}")
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden_size), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden_size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the positive class, shape ``(n,)``."""
        return self.net(x).squeeze(-1)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities of the positive class, shape ``(n,)``."""
        return torch.sigmoid(self(x))
