"""Population training: members train exactly as they would alone, and each one's weights are a plain MLP's."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F  # noqa: N812

from hpo.metrics import compute_metrics
from hpo.model import MLP
from hpo.train.population import CPU_COST, GPU_COST, Member, MemberResult, PopulationTrainer, group_members

N_FEATURES = 6


def _data(seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    weights = torch.randn(N_FEATURES, generator=gen)
    x = torch.randn(300, N_FEATURES, generator=gen)
    x_val = torch.randn(90, N_FEATURES, generator=gen)
    y = ((x @ weights + 0.7 * torch.randn(300, generator=gen)) > 0).float()
    y_val = ((x_val @ weights + 0.7 * torch.randn(90, generator=gen)) > 0).float()
    # two "scalings" of the same rows: each member reads its own
    return {"standard": x, "robust": 0.5 * x + 0.1}, y, {"standard": x_val, "robust": 0.5 * x_val + 0.1}, y_val


def member(key: int, **kw: Any) -> Member:
    params = {
        "lr": kw.pop("lr", 3e-3),
        "weight_decay": kw.pop("weight_decay", 1e-4),
        "optimizer": kw.pop("optimizer", "adam"),
        "momentum": kw.pop("momentum", 0.9),
        "batch_size": kw.pop("batch_size", 32),
        "preprocessing.numeric": kw.pop("scaling", "standard"),
    }
    model_kwargs = {"n_features": N_FEATURES, "n_layers": 2, "hidden_size": 16, "dropout": 0.0, "activation": "relu"}
    model_kwargs |= kw
    return Member(key, params, model_kwargs, seed=100 + key)


def train(
    members: list[Member], epochs: int = 4, on_epoch: Any = None, patience: int | None = None, seed: int = 7
) -> dict[int, MemberResult]:
    x, y, x_val, y_val = _data()
    population = PopulationTrainer(
        members, x, y, x_val, y_val, monitor="val/auroc", direction="maximize", patience=patience, seed=seed,
        on_epoch=on_epoch,
    )  # fmt: skip

    trainer = pl.Trainer(
        max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu", devices=1,
    )  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
        return population.fit(trainer)


MIXED = [
    member(0),
    member(1, hidden_size=29, n_layers=3, optimizer="sgd", lr=0.05),
    member(2, n_layers=1, optimizer="adamw", batch_size=64, scaling="robust", weight_decay=0.05),
    member(3, optimizer="rmsprop", lr=1e-3, hidden_size=7, batch_size=128),
    member(4, optimizer="sgd", momentum=0.0, lr=0.1, activation="relu", n_layers=3, hidden_size=40),
    member(5, n_layers=0),
    member(6, activation="tanh", batch_size=96),
    member(7, embedding="periodic", embedded_inputs=[0, 2, 3], embedding_dim=4, n_frequencies=3, hidden_size=12),
]


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_members_train_exactly_as_they_would_alone() -> None:
    """Padding (width), pass-through layers (depth), gradient accumulation (batch size), the batched optimizers and
    per-member scalings change nothing: a member's whole training is the same with or without the others."""
    together = train(MIXED)
    assert len(group_members(MIXED)) < len(MIXED)  # some do share a computation
    for m in MIXED:
        alone = train([m])[m.key]
        got = together[m.key]
        assert got.best_epoch == alone.best_epoch, m
        assert got.best_value == pytest.approx(alone.best_value, abs=1e-6), m
        assert _max_diff(got.best_state, alone.best_state) < 1e-5, m
        assert got.epochs_trained == 4 and got.dropped is None


def test_groups() -> None:
    groups = group_members(MIXED)
    keys = sorted(sorted(m.key for m in g) for g in groups)
    # relu MLPs with hidden layers and batch sizes multiple of 32 share one group; no hidden layer, another
    # activation (tanh, and batch 96 = 3 x 32 would fit) and the embedding each train apart
    assert keys == [[0, 1, 2, 3, 4], [5], [6], [7]]
    assert [len(g) for g in groups] == sorted((len(g) for g in groups), reverse=True)
    odd = group_members([member(0, batch_size=32), member(1, batch_size=48), member(2, batch_size=96)])
    assert len(odd) == 2
    for group in odd:  # every batch size of a group is a multiple of its smallest (the accumulation is exact)
        sizes = [m.params["batch_size"] for m in group]
        assert all(size % min(sizes) == 0 for size in sizes)


def test_groups_weigh_padding_against_overhead() -> None:
    """On a CPU a narrow MLP is not padded to a very wide one's width (that costs more than training it alone);
    similar widths share a computation. On a GPU, where the fixed cost per step dominates, all of them do."""
    wide = [member(0, hidden_size=512, n_layers=3), member(1, hidden_size=480, n_layers=3)]
    narrow = [member(i, hidden_size=16 + i) for i in range(2, 8)]
    cpu = sorted(sorted(m.key for m in g) for g in group_members([*wide, *narrow], CPU_COST))
    assert cpu == [[0, 1], [2, 3, 4, 5, 6, 7]]
    assert len(group_members([*wide, *narrow], GPU_COST)) == 1


@pytest.mark.parametrize(
    ("optimizer", "settings"),
    [
        ("adam", {"lr": 3e-3, "weight_decay": 1e-3}),
        ("adamw", {"lr": 3e-3, "weight_decay": 0.05}),
        ("sgd", {"lr": 0.05, "weight_decay": 1e-3, "momentum": 0.9}),
        ("rmsprop", {"lr": 1e-3, "weight_decay": 1e-3, "momentum": 0.5}),
        ("rmsprop", {"lr": 1e-3, "weight_decay": 0.0, "momentum": 0.0}),
    ],
)
def test_one_member_is_the_plain_torch_loop(optimizer: str, settings: dict[str, float]) -> None:
    """The batched optimizers are torch.optim's arithmetic: one member trained alone ends with the weights of the
    plain loop (same seed, same row order) using ``torch.optim``; batch 64 accumulated from two 32-row chunks (the
    group's base) is the same step as one 64-row minibatch."""
    m = member(0, optimizer=optimizer, batch_size=64, **settings)
    partner = member(1, batch_size=32)  # makes the group's base minibatch 32 rows: member 0 accumulates two
    got = train([m, partner], epochs=3)[0]
    x, y, _, _ = _data()
    torch.manual_seed(m.seed)
    model = MLP(**m.model_kwargs)
    kind = {
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "sgd": torch.optim.SGD,
        "rmsprop": torch.optim.RMSprop,
    }
    extra = {"momentum": settings["momentum"]} if optimizer in ("sgd", "rmsprop") else {}
    opt = kind[optimizer](model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"], **extra)
    generator = torch.Generator().manual_seed(7)
    for _ in range(3):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), 64):
            rows = order[start : start + 64]
            loss = F.binary_cross_entropy_with_logits(model(x["standard"][rows]), y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
    final = {k: v.detach() for k, v in model.state_dict().items()}
    # the population kept the best epoch's weights; with 3 epochs of a learning model that is the last one here
    assert got.best_epoch == 2
    assert _max_diff(got.best_state, final) < 1e-5


def test_saved_weights_reproduce_the_recorded_value() -> None:
    """Each member's best_state loads into the plain MLP and gives back its recorded metrics, dropout and
    embeddings included."""
    members = [*MIXED, member(8, dropout=0.3, hidden_size=20), member(9, dropout=0.1, n_layers=3, hidden_size=9)]
    results = train(members)
    _, _, x_val, y_val = _data()
    for m in members:
        got = results[m.key]
        model = MLP(**m.model_kwargs)
        model.load_state_dict(got.best_state)  # strict: exactly the plain MLP's keys and shapes
        model.eval()
        with torch.no_grad():
            metrics = compute_metrics(model(x_val[m.params["preprocessing.numeric"]]), y_val)
        for name, value in got.best_metrics.items():
            assert float(metrics[name]) == pytest.approx(value, abs=1e-5), (m.key, name)


def test_a_pruned_member_leaves_and_the_others_are_unchanged() -> None:
    """on_epoch's answer removes a member at that epoch; the rest of the population trains on as before."""
    seen: list[tuple[int, list[int]]] = []

    def prune_1_after_epoch_1(epoch: int, metrics: dict[int, dict[str, float]]) -> set[int]:
        seen.append((epoch, sorted(metrics)))
        assert all("val/auroc" in v and "train/loss" in v for v in metrics.values())
        return {1} if epoch == 1 else set()

    members = MIXED[:5]
    results = train(members, on_epoch=prune_1_after_epoch_1)
    assert results[1].dropped == "pruned" and results[1].dropped_epoch == 1 and results[1].epochs_trained == 2
    assert seen == [(0, [0, 1, 2, 3, 4]), (1, [0, 1, 2, 3, 4]), (2, [0, 2, 3, 4]), (3, [0, 2, 3, 4])]
    without = train([m for m in members if m.key != 1])
    for key in (0, 2, 3, 4):
        assert results[key].epochs_trained == 4
        assert _max_diff(results[key].best_state, without[key].best_state) < 1e-5


def test_a_diverging_member_leaves_with_the_reason() -> None:
    """A learning rate that makes one member's loss infinite drops that member only."""
    members = [member(0), member(1, optimizer="sgd", lr=1e12, momentum=0.0)]
    results = train(members)
    assert results[1].dropped is not None and "learning rate is probably too high" in results[1].dropped
    assert results[0].dropped is None and results[0].epochs_trained == 4
    assert _max_diff(results[0].best_state, train([members[0]])[0].best_state) < 1e-5


def test_early_stopping_per_member() -> None:
    """patience stops a member that stopped improving; its best epoch and weights stay its own."""
    members = [member(0, lr=1e-6), member(1)]  # member 0 barely moves: its AUROC stalls
    results = train(members, epochs=8, patience=2)
    stalled = [r for r in results.values() if r.dropped == "early_stopped"]
    assert stalled, results
    for r in stalled:
        assert r.epochs_trained - 1 - r.best_epoch == 2
