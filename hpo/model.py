"""The network: a plain ``nn.Module`` MLP for binary classification, with no Optuna or Lightning in it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "EMBEDDINGS", "MLP", "EmbeddedInputs", "PeriodicEmbeddings"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}

#: How the MLP feeds its numeric inputs: as they are, or through periodic (PLR) embeddings.
EMBEDDINGS = ("none", "periodic")


class PeriodicEmbeddings(nn.Module):
    """PLR embeddings of numeric inputs (Gorishniy et al. 2022, "On Embeddings for Numerical Features").

    Each input ``x_j`` becomes ``ReLU(W_j [sin(2 pi c_j x_j), cos(2 pi c_j x_j)] + b_j)``: ``n_frequencies`` learned
    frequencies ``c_j`` per input (initialised from N(0, ``frequency_sigma``), truncated at 3 sigma), then a linear
    layer of its own per input.

    Args:
        n_inputs: how many inputs are embedded.
        embedding_dim: the width of each input's embedding.
        n_frequencies: learned frequencies per input.
        frequency_sigma: the standard deviation of the initial frequencies; small values start smooth (near-linear)
            functions of the input, large ones start wiggly ones.

    Example:
        >>> PeriodicEmbeddings(3, embedding_dim=8)(torch.zeros(5, 3)).shape
        torch.Size([5, 3, 8])
    """

    def __init__(
        self, n_inputs: int, embedding_dim: int = 8, n_frequencies: int = 8, frequency_sigma: float = 0.1
    ) -> None:
        super().__init__()
        for name, value in (("n_inputs", n_inputs), ("embedding_dim", embedding_dim), ("n_frequencies", n_frequencies)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, but got {name}={value}")
        if not frequency_sigma > 0:
            raise ValueError(f"frequency_sigma must be > 0, but got frequency_sigma={frequency_sigma}")
        self.frequencies = nn.Parameter(torch.empty(n_inputs, n_frequencies))
        self.weight = nn.Parameter(torch.empty(n_inputs, 2 * n_frequencies, embedding_dim))
        self.bias = nn.Parameter(torch.empty(n_inputs, embedding_dim))
        nn.init.trunc_normal_(self.frequencies, 0.0, frequency_sigma, -3 * frequency_sigma, 3 * frequency_sigma)
        bound = 1 / math.sqrt(2 * n_frequencies)  # nn.Linear's default initialisation, per input
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of ``x`` (shape ``(n, n_inputs)``), shape ``(n, n_inputs, embedding_dim)``."""
        angles = (2 * math.pi) * x.unsqueeze(-1) * self.frequencies  # (n, inputs, frequencies)
        features = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (n, inputs, 2 frequencies)
        # one batched matrix product over the inputs: (inputs, n, 2f) @ (inputs, 2f, d) -> (inputs, n, d)
        out = torch.bmm(features.transpose(0, 1), self.weight).transpose(0, 1) + self.bias
        return torch.relu(out)


class EmbeddedInputs(nn.Module):
    """Embed the listed inputs of a row with :class:`PeriodicEmbeddings` and pass the others through unchanged.

    The output is each embedded input's ``embedding_dim`` values (in the order of ``embedded_inputs``), then the other
    inputs in their own order: ``out_features`` columns in all.

    Args:
        n_features: the width of the input rows.
        embedded_inputs: the indices (into a row) of the inputs to embed, such as the scaled numeric columns.
        embedding_dim, n_frequencies, frequency_sigma: see :class:`PeriodicEmbeddings`.
    """

    embedded: torch.Tensor
    passed: torch.Tensor

    def __init__(
        self,
        n_features: int,
        embedded_inputs: Sequence[int],
        embedding_dim: int = 8,
        n_frequencies: int = 8,
        frequency_sigma: float = 0.1,
    ) -> None:
        super().__init__()
        embedded = [int(i) for i in embedded_inputs]
        bad = [i for i in embedded if not 0 <= i < n_features]
        if bad:
            raise ValueError(
                f"embedded_inputs must be indices of the {n_features} inputs (0 to {n_features - 1}), but got {bad}"
            )
        if not embedded or len(set(embedded)) != len(embedded):
            raise ValueError(f"embedded_inputs must list distinct indices, at least one, but got {embedded}")
        passed = [i for i in range(n_features) if i not in set(embedded)]
        # index buffers follow the module to its device but stay out of the state_dict (they come from the kwargs)
        self.register_buffer("embedded", torch.tensor(embedded, dtype=torch.long), persistent=False)
        self.register_buffer("passed", torch.tensor(passed, dtype=torch.long), persistent=False)
        self.periodic = PeriodicEmbeddings(len(embedded), embedding_dim, n_frequencies, frequency_sigma)
        self.out_features = len(embedded) * embedding_dim + len(passed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of width ``out_features``."""
        embedded = self.periodic(x.index_select(1, self.embedded)).flatten(1)
        return torch.cat([embedded, x.index_select(1, self.passed)], dim=1)


class MLP(nn.Module):
    """A multilayer perceptron with one output unit (the logit of the positive class).

    ``forward`` returns logits, which training feeds to ``BCEWithLogitsLoss``; :meth:`predict_proba` applies the
    sigmoid for inference. With ``embedding="periodic"`` the inputs listed in ``embedded_inputs`` (the scaled numeric
    columns) first go through :class:`EmbeddedInputs`, which is then the first module of ``net``; the other inputs
    (one-hot levels, missing indicators) reach the first linear layer unchanged. Every argument is plain JSON, so
    ``MLP(**kwargs)`` rebuilds the architecture from a saved ``model.json``.

    Args:
        n_features: number of input columns.
        n_layers: number of hidden layers (0 gives logistic regression, on the embeddings if there are any).
        hidden_size: units in each hidden layer.
        dropout: dropout probability after each hidden activation.
        activation: one of :data:`ACTIVATIONS`.
        embedding: one of :data:`EMBEDDINGS`.
        embedded_inputs: with ``embedding="periodic"``, the indices of the inputs to embed; none (a table without
            numeric columns) gives the plain MLP.
        embedding_dim, n_frequencies, frequency_sigma: see :class:`PeriodicEmbeddings` (unused without embedding).

    Example:
        >>> model = MLP(n_features=30, n_layers=2, hidden_size=64)
        >>> model(torch.zeros(5, 30)).shape
        torch.Size([5])
        >>> MLP(n_features=4, embedding="periodic", embedded_inputs=[0, 2])(torch.zeros(5, 4)).shape
        torch.Size([5])
    """

    def __init__(
        self,
        n_features: int,
        n_layers: int = 2,
        hidden_size: int = 64,
        dropout: float = 0.0,
        activation: str = "relu",
        embedding: str = "none",
        embedded_inputs: Sequence[int] = (),
        embedding_dim: int = 8,
        n_frequencies: int = 8,
        frequency_sigma: float = 0.1,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, but got activation={activation!r}")
        if embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {list(EMBEDDINGS)}, but got embedding={embedding!r}")
        layers: list[nn.Module] = []
        width = n_features
        if embedding == "periodic" and embedded_inputs:
            embed = EmbeddedInputs(n_features, embedded_inputs, embedding_dim, n_frequencies, frequency_sigma)
            layers.append(embed)
            width = embed.out_features
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
