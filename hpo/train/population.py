"""Population training: many trials' MLPs trained at once, as one batched computation per minibatch.

A small MLP leaves a CPU core (and a GPU far more) mostly idle: the fixed cost of each operation, not the arithmetic,
sets the pace. A population of P trials is trained as stacked weights, ``(P, out, in)`` per layer, with one batched
matrix product per layer and minibatch, so P trials pay for one trial's operations. Each member keeps everything
that makes it its own trial: its initial weights (its seed, exactly as :class:`~hpo.model.MLP` draws them), its
learning rate, optimizer, weight decay, momentum, dropout, numeric scaling and batch size, its validation metrics
after every epoch, its best epoch and best weights, its early stopping, and it leaves the population when the pruner
(or a non-finite loss) stops it.

How members with different shapes share one computation (all exact, so a member trains as it would alone):

- **Width**: hidden layers are padded to the widest member of the group with zero weights. A padded unit receives
  zero input, outputs ``activation(0) = 0`` (true of every activation in :data:`hpo.model.ACTIVATIONS`) and sends
  nothing on, so its gradients are exactly zero and so are all its optimizer updates: it stays zero for good.
- **Depth**: a member with fewer hidden layers than the group passes its activations through the extra layers
  unchanged (a per-member select), so those layers get no gradient from it.
- **Batch size**: the group steps on minibatches of its smallest batch size; a member whose batch size is k times
  larger accumulates k of them (summed losses divided by the rows seen) before its optimizer step.
- **Optimizer**: one batched update for Adam, AdamW, SGD (momentum) and RMSprop, with each member's own settings, the
  same arithmetic as ``torch.optim`` with its defaults.
- **Scaling**: each member reads the inputs under its own ``preprocessing.numeric``; the rows of a minibatch are the
  same for all.

Members that cannot share a computation (another activation, another embedding width, no hidden layer, batch sizes
that are not multiples) form separate groups. A member's weights come out as the ``state_dict`` of the plain
:class:`~hpo.model.MLP` its trial describes, so it is saved, loaded and exported like any other trial's.

This module knows nothing of Optuna: :class:`PopulationTrainer` calls ``on_epoch`` after every validation epoch with
each member's metrics, and drops the members it names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from hpo.metrics import compute_metrics_batched
from hpo.model import ACTIVATIONS, MLP

__all__ = ["CPU_COST", "GPU_COST", "Member", "MemberResult", "PopulationTrainer", "StepCost", "group_members"]

_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8
_RMS_ALPHA = 0.99
_RMS_EPS = 1e-8
_VAL_ROWS = 8192  # validation rows per batched forward pass


@dataclass(frozen=True)
class Member:
    """One trial of a population.

    Args:
        key: the trial's number (any hashable id).
        params: its resolved hyperparameters (``lr``, ``optimizer``, ``batch_size``, ``preprocessing.numeric``...).
        model_kwargs: its :class:`~hpo.model.MLP` arguments.
        seed: the seed its initial weights are drawn with.
    """

    key: int
    params: dict[str, Any]
    model_kwargs: dict[str, Any]
    seed: int

    @property
    def n_layers(self) -> int:
        return int(self.model_kwargs.get("n_layers", 2))

    @property
    def hidden_size(self) -> int:
        return int(self.model_kwargs.get("hidden_size", 64))


@dataclass
class MemberResult:
    """What a member's training gave: its best epoch (by the monitored metric), with that epoch's metrics and weights
    (the ``state_dict`` of its plain MLP), the epochs it trained, and why it stopped early, if it did."""

    key: int
    best_value: float = math.nan
    best_epoch: int = -1
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    epochs_trained: int = 0
    last_metrics: dict[str, float] = field(default_factory=dict)
    train_loss: float = math.nan
    dropped: str | None = None  # "pruned" (on_epoch asked), "early_stopped", or a non-finite loss message
    dropped_epoch: int | None = None


def _group_key(member: Member) -> tuple[Any, ...]:
    kwargs = member.model_kwargs
    embedding = kwargs.get("embedding", "none")
    embedded = (
        (tuple(kwargs.get("embedded_inputs", ())), kwargs.get("embedding_dim", 8), kwargs.get("n_frequencies", 8))
        if embedding != "none" and kwargs.get("embedded_inputs")
        else None
    )
    return (kwargs.get("activation", "relu"), embedded, member.n_layers > 0)


@dataclass(frozen=True)
class StepCost:
    """What one batched optimizer step costs, in nanoseconds: ``fixed`` (the operations' own overhead, paid once per
    group and minibatch) plus, for every weight of every member (padding and pass-through layers included),
    ``per_weight`` (the optimizer) and ``per_weight_row`` per minibatch row (forward and backward passes).

    :data:`CPU_COST` was measured on one core of a 2-core AMD EPYC (bench/population.py, ``--cost``): a group of
    small MLPs trains ~10x faster per member than one alone, one of 140k-weight MLPs no faster, so the cost decides
    which members share a computation. On a GPU the fixed part dominates (:data:`GPU_COST`).
    """

    fixed: float
    per_weight: float
    per_weight_row: float


CPU_COST = StepCost(fixed=700_000.0, per_weight=5.0, per_weight_row=0.17)
GPU_COST = StepCost(fixed=600_000.0, per_weight=0.005, per_weight_row=0.0002)


def _shape(member: Member) -> tuple[int, int, int, int]:
    """(inputs of the first linear layer, depth, width, embedding weights) of a member's MLP."""
    kwargs = member.model_kwargs
    n_features = int(kwargs["n_features"])
    embedded = len(kwargs.get("embedded_inputs", ())) if kwargs.get("embedding", "none") != "none" else 0
    dim, freqs = int(kwargs.get("embedding_dim", 8)), int(kwargs.get("n_frequencies", 8))
    inputs = n_features - embedded + embedded * dim
    return (
        inputs,
        member.n_layers,
        member.hidden_size if member.n_layers else 0,
        embedded * (freqs + 2 * freqs * dim + dim),
    )


def _weights(inputs: int, depth: int, width: int, embedding: int) -> int:
    if depth == 0:
        return embedding + inputs + 1
    return embedding + inputs * width + width + (depth - 1) * (width * width + width) + width + 1


def _cost(group: Sequence[Member], cost: StepCost) -> float:
    """Nanoseconds per training row of an epoch of ``group`` trained as one computation."""
    shapes = [_shape(m) for m in group]
    depth, width = max(s[1] for s in shapes), max(s[2] for s in shapes)
    weights = len(group) * _weights(shapes[0][0], depth, width, shapes[0][3])
    base = min(int(m.params["batch_size"]) for m in group)
    return (cost.fixed + weights * cost.per_weight) / base + weights * cost.per_weight_row


def group_members(members: Sequence[Member], cost: StepCost = CPU_COST) -> list[list[Member]]:
    """Split a population into groups that train as one computation (see the module docstring), largest first.

    Members can share a computation when they have the same activation, embedding shape and hidden layers or none,
    and their batch sizes are multiples of the group's smallest. Among those, a member joins the group where it adds
    least to the estimated time (:class:`StepCost`: padding a narrow MLP to a wide one's width can cost more than
    training it alone), or trains in a group of its own when that is cheaper.
    """
    by_key: dict[tuple[Any, ...], list[Member]] = {}
    for member in members:
        by_key.setdefault(_group_key(member), []).append(member)
    groups: list[list[Member]] = []
    for same in by_key.values():
        formed: list[list[Member]] = []
        for member in sorted(same, key=lambda m: -_weights(*_shape(m))):
            alone = _cost([member], cost)
            best: tuple[float, list[Member]] | None = None
            for group in formed:
                sizes = [int(m.params["batch_size"]) for m in (*group, member)]
                if any(size % min(sizes) for size in sizes):
                    continue
                added = _cost([*group, member], cost) - _cost(group, cost)
                if added < alone and (best is None or added < best[0]):
                    best = (added, group)
            if best is None:
                formed.append([member])
            else:
                best[1].append(member)
        groups += formed
    return sorted(groups, key=len, reverse=True)


class _StackedMLPs:
    """The weights of a group's members stacked along dimension 0, with the batched forward pass."""

    def __init__(self, members: Sequence[Member], device: torch.device) -> None:
        self.members = list(members)
        first = members[0].model_kwargs
        self.activation = ACTIVATIONS[first.get("activation", "relu")]()
        self.depth = max(m.n_layers for m in members)
        self.width = max(m.hidden_size for m in members) if self.depth else 0
        # the modules of each member's own MLP, built with its seed: their initial weights are copied in, and at the
        # end the member's weights are copied back out of the stack into a fresh MLP of the same shape
        mlps = []
        for member in members:
            torch.manual_seed(member.seed)
            mlps.append(MLP(**member.model_kwargs))
        self.embedded: tuple[torch.Tensor, torch.Tensor] | None = None
        params: list[torch.Tensor] = []
        embed0 = _embedding_of(mlps[0])
        if embed0 is not None:
            self.embedded = (embed0.embedded.to(device), embed0.passed.to(device))
            for name in ("frequencies", "weight", "bias"):
                params.append(torch.stack([getattr(_embedding_of(m).periodic, name).detach() for m in mlps]))  # type: ignore[union-attr]
        self.n_embedding = len(params)
        linears = [_linears(m) for m in mlps]
        in_width = linears[0][0].in_features
        for layer in range(self.depth):
            fan_in = in_width if layer == 0 else self.width
            weight = torch.zeros(len(members), self.width, fan_in)
            bias = torch.zeros(len(members), self.width)
            for i, (member, lins) in enumerate(zip(members, linears, strict=True)):
                if layer < member.n_layers:
                    lin = lins[layer]
                    weight[i, : lin.out_features, : lin.in_features] = lin.weight.detach()
                    bias[i, : lin.out_features] = lin.bias.detach()
            params += [weight, bias]
        out_in = self.width if self.depth else in_width
        out_w = torch.zeros(len(members), 1, out_in)
        out_b = torch.zeros(len(members), 1)
        for i, lins in enumerate(linears):
            out_w[i, :, : lins[-1].in_features] = lins[-1].weight.detach()
            out_b[i] = lins[-1].bias.detach()
        params += [out_w, out_b]
        self.params = [p.to(device).requires_grad_(True) for p in params]
        self.n_layers = torch.tensor([m.n_layers for m in members], device=device)
        self.dropout = torch.tensor([float(m.model_kwargs.get("dropout", 0.0)) for m in members], device=device)

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the members at ``index`` (positions in the stack), in that order."""
        self.members = [self.members[i] for i in index.tolist()]
        self.params = [p.detach().index_select(0, index).requires_grad_(True) for p in self.params]
        self.n_layers = self.n_layers.index_select(0, index)
        self.dropout = self.dropout.index_select(0, index)

    def forward(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        """Logits ``(P, b)`` of each member on its own rows ``x`` ``(P, b, f)``."""
        params = self.params
        h = x
        if self.embedded is not None:
            frequencies, weight, bias = params[0], params[1], params[2]
            embedded, passed = self.embedded
            angles = (2 * math.pi) * h.index_select(2, embedded).unsqueeze(-1) * frequencies.unsqueeze(1)
            features = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (P, b, inputs, 2f)
            out = torch.einsum("pbik,pikd->pbid", features, weight) + bias.unsqueeze(1)
            h = torch.cat([torch.relu(out).flatten(2), h.index_select(2, passed)], dim=2)
        dropout = train and bool((self.dropout > 0).any())
        same_depth = bool((self.n_layers == self.depth).all())
        for layer in range(self.depth):
            weight, bias = params[self.n_embedding + 2 * layer], params[self.n_embedding + 2 * layer + 1]
            a = self.activation(torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2)))
            if dropout:
                p = self.dropout.view(-1, 1, 1)
                a = a * ((torch.rand_like(a) >= p).to(a.dtype) / (1 - p))
            # a member with fewer layers than the group passes its activations through this one unchanged
            h = a if layer == 0 or same_depth else torch.where((self.n_layers > layer).view(-1, 1, 1), a, h)
        out_w, out_b = params[-2], params[-1]
        return torch.baddbmm(out_b.unsqueeze(1), h, out_w.transpose(1, 2)).squeeze(-1)

    def state_dict_of(self, position: int) -> dict[str, torch.Tensor]:
        """The plain MLP ``state_dict`` of the member at ``position``, on the CPU."""
        member = self.members[position]
        mlp = MLP(**member.model_kwargs)
        params = [p[position].detach().to("cpu") for p in self.params]
        embed = _embedding_of(mlp)
        with torch.no_grad():
            if embed is not None:
                for name, value in zip(("frequencies", "weight", "bias"), params[:3], strict=True):
                    getattr(embed.periodic, name).copy_(value)
            lins = _linears(mlp)
            for layer, lin in enumerate(lins[:-1]):
                weight, bias = params[self.n_embedding + 2 * layer], params[self.n_embedding + 2 * layer + 1]
                lin.weight.copy_(weight[: lin.out_features, : lin.in_features])
                lin.bias.copy_(bias[: lin.out_features])
            lins[-1].weight.copy_(params[-2][:, : lins[-1].in_features])
            lins[-1].bias.copy_(params[-1])
        return {k: v.detach().clone() for k, v in mlp.state_dict().items()}


def _embedding_of(mlp: MLP) -> Any:
    first = mlp.net[0]
    return first if hasattr(first, "periodic") else None


def _linears(mlp: MLP) -> list[nn.Linear]:
    return [m for m in mlp.net if isinstance(m, nn.Linear)]


class _BatchedOptimizer:
    """Adam, AdamW, SGD (momentum) and RMSprop over stacked weights, each member with its own optimizer and settings:
    ``torch.optim``'s arithmetic and defaults, as per-member coefficients of one in-place update (no select).

    ``step(grads, stepping)`` updates only the members in ``stepping``: for the others every coefficient is the
    identity (moments decay by 1, add 0, learning rate 0), so their weights and optimizer state stay as they were.
    """

    def __init__(self, params: list[torch.Tensor], settings: Sequence[dict[str, Any]], device: torch.device) -> None:
        kinds = [str(s["optimizer"]) for s in settings]
        for kind in kinds:
            if kind not in ("adam", "adamw", "sgd", "rmsprop"):
                raise ValueError(f"optimizer must be adam, adamw, sgd or rmsprop, but got optimizer={kind!r}")

        def vector(values: Sequence[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=device)

        wd = [float(s["weight_decay"]) for s in settings]
        self.lr = vector([float(s["lr"]) for s in settings])
        self.wd_l2 = vector([0.0 if k == "adamw" else w for k, w in zip(kinds, wd, strict=True)])
        self.wd_decoupled = vector([w if k == "adamw" else 0.0 for k, w in zip(kinds, wd, strict=True)])
        self.momentum = vector(
            [float(s.get("momentum", 0.0)) if s["optimizer"] in ("sgd", "rmsprop") else 0.0 for s in settings]
        )
        self.is_adam = vector([k in ("adam", "adamw") for k in kinds])
        self.is_sgd = vector([k == "sgd" for k in kinds])
        self.is_rms = vector([k == "rmsprop" for k in kinds])
        self.steps = torch.zeros(len(kinds), device=device)
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.square_avg = [torch.zeros_like(p) for p in params]
        self.buffer = [torch.zeros_like(p) for p in params]
        self._families()

    def _families(self) -> None:
        self.any_adam = bool(self.is_adam.any())
        self.any_sgd = bool(self.is_sgd.any())
        self.any_rms = bool(self.is_rms.any())
        self.any_l2 = bool((self.wd_l2 != 0).any())
        self.any_decoupled = bool((self.wd_decoupled != 0).any())

    def keep(self, index: torch.Tensor) -> None:
        for name in ("lr", "wd_l2", "wd_decoupled", "momentum", "is_adam", "is_sgd", "is_rms", "steps"):
            setattr(self, name, getattr(self, name).index_select(0, index))
        for name in ("exp_avg", "exp_avg_sq", "square_avg", "buffer"):
            setattr(self, name, [s.index_select(0, index) for s in getattr(self, name)])
        self._families()

    @torch.no_grad()
    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor], stepping: torch.Tensor | None) -> None:
        """One optimizer step of the members where ``stepping`` is true (all when None); ``grads`` may be changed."""
        on = torch.ones_like(self.lr) if stepping is None else stepping.to(self.lr.dtype)
        self.steps += on
        b1, b2 = _ADAM_BETAS
        coefficients: dict[str, torch.Tensor] = {}
        if self.any_decoupled:
            coefficients["decay"] = 1 - self.lr * self.wd_decoupled * on
        if self.any_adam:
            steps = self.steps.clamp(min=1)
            adam = on * self.is_adam
            coefficients |= {
                "b1": b1 * adam + (1 - adam),  # 1 (unchanged) for members not stepping or not Adam
                "c1": (1 - b1) * adam,
                "b2": b2 * adam + (1 - adam),
                "c2": (1 - b2) * adam,
                "bc2": (1 - b2**steps).sqrt(),
                "adam_lr": -self.lr * adam / (1 - b1**steps),
            }
        if self.any_rms:
            rms = on * self.is_rms
            coefficients |= {"alpha": _RMS_ALPHA * rms + (1 - rms), "c_alpha": (1 - _RMS_ALPHA) * rms}
        if self.any_sgd or self.any_rms:
            moving = on * (self.is_sgd + self.is_rms)
            coefficients |= {
                "momentum": self.momentum * moving + (1 - moving),
                "sgd": on * self.is_sgd,
                "rms": on * self.is_rms,
                "sgd_lr": -self.lr * moving,
            }
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            shape = (-1,) + (1,) * (p.dim() - 1)
            c = {name: value.view(shape) for name, value in coefficients.items()}
            if self.any_l2:
                g = g.addcmul_(p, self.wd_l2.view(shape))
            if self.any_decoupled:
                p.mul_(c["decay"])
            if self.any_adam:
                m = self.exp_avg[i].mul_(c["b1"]).addcmul_(g, c["c1"])
                v = self.exp_avg_sq[i].mul_(c["b2"]).addcmul_(g * g, c["c2"])
                p.addcdiv_(m * c["adam_lr"], v.sqrt().div_(c["bc2"]).add_(_ADAM_EPS))
            if self.any_sgd or self.any_rms:
                buf = self.buffer[i].mul_(c["momentum"])
                if self.any_sgd:
                    buf.addcmul_(g, c["sgd"])
                if self.any_rms:
                    sq = self.square_avg[i].mul_(c["alpha"]).addcmul_(g * g, c["c_alpha"])
                    buf.addcdiv_(g * c["rms"], sq.sqrt().add_(_RMS_EPS))
                p.addcmul_(buf, c["sgd_lr"])


class PopulationTrainer(pl.LightningModule):
    """Train a population of MLPs (:class:`Member`) with Lightning: one step trains an epoch of every group.

    Args:
        members: the trials to train.
        x_train: each scaling's training inputs, ``{scaling: (n, f)}``; all scalings hold the same rows.
        y_train: the training targets ``(n,)``.
        x_val: each scaling's validation inputs, ``{scaling: (n_val, f)}``.
        y_val: the validation targets ``(n_val,)``.
        monitor: the metric that chooses each member's best epoch (a name of :data:`hpo.metrics.METRICS`).
        direction: ``maximize`` or ``minimize``.
        patience: a member stops after this many epochs without improvement (None: never).
        seed: seeds the order of the training rows and the dropout masks.
        on_epoch: called after every validation epoch with ``(epoch, {key: metrics})`` for the members still
            training (their ``train/loss`` included); returns the keys of the members to drop (pruned).
    """

    def __init__(
        self,
        members: Sequence[Member],
        x_train: dict[str, torch.Tensor],
        y_train: torch.Tensor,
        x_val: dict[str, torch.Tensor],
        y_val: torch.Tensor,
        *,
        monitor: str,
        direction: str,
        patience: int | None = None,
        seed: int = 0,
        on_epoch: Callable[[int, dict[int, dict[str, float]]], set[int]] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.members = list(members)
        self.x_train, self.y_train, self.x_val, self.y_val = x_train, y_train, x_val, y_val
        self.monitor, self.sign, self.patience = monitor, (1.0 if direction == "maximize" else -1.0), patience
        self.seed = seed
        self.on_epoch = on_epoch
        self.results = {m.key: MemberResult(m.key) for m in members}
        self.scalings = sorted(x_train)
        self._groups: list[_Group] = []

    # -- Lightning hooks: one training step = one epoch of every group, one validation = every group's -----------

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        for group in self._groups:
            if group.alive:
                group.train_epoch(batch)

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        epoch = self.trainer.current_epoch
        reports: dict[int, dict[str, float]] = {}
        finished: dict[int, str] = {}
        for group in self._groups:
            if group.alive:
                group.validate(epoch, reports, finished)
        # one call for the whole population: the pruner reads the study once per epoch, not once per group
        dropped = self.on_epoch(epoch, reports) if self.on_epoch is not None and reports else set()
        last = epoch + 1 >= self.trainer.max_epochs  # type: ignore[operator]
        for group in self._groups:
            if group.alive:
                group.finish(epoch, dropped, finished, last)
        if not any(group.alive for group in self._groups):
            self.trainer.should_stop = True

    def configure_optimizers(self) -> None:
        return None  # the batched optimizer of each group lives in _Group

    def fit(self, trainer: pl.Trainer) -> dict[int, MemberResult]:
        """Train the population with ``trainer`` (one Lightning step per epoch) and return each member's result."""
        device = self.y_train.device
        cost = CPU_COST if device.type == "cpu" else GPU_COST
        self._groups = [_Group(group, self, device) for group in group_members(self.members, cost)]
        epoch = _EpochIndex(torch.arange(len(self.y_train), device=device))
        val = _EpochIndex(torch.arange(len(self.y_val), device=self.y_val.device))
        try:
            trainer.fit(self, train_dataloaders=epoch, val_dataloaders=val)
        finally:
            self._groups = []
        return self.results


class _EpochIndex:
    """A one-batch "loader": the row indices ``0..n-1`` (the group shuffles them itself)."""

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return 1

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield self.rows


class _Group:
    """One group's training state: stacked weights, batched optimizer, per-member bookkeeping."""

    def __init__(self, members: Sequence[Member], owner: PopulationTrainer, device: torch.device) -> None:
        self.owner = owner
        self.net = _StackedMLPs(members, device)
        self.optimizer = _BatchedOptimizer(self.net.params, [m.params for m in members], device)
        sizes = [int(m.params["batch_size"]) for m in members]
        self.base = min(sizes)
        self.accumulate = torch.tensor([s // self.base for s in sizes], device=device)
        self.uniform = len(set(sizes)) == 1
        self.scaling_index = torch.tensor(
            [owner.scalings.index(str(m.params["preprocessing.numeric"])) for m in members], device=device
        )
        self.generator = torch.Generator(device="cpu").manual_seed(owner.seed)
        self.since_best = [0] * len(members)

    @property
    def alive(self) -> bool:
        return bool(self.net.members)

    def _inputs(self, x: dict[str, torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        """Each member's inputs for ``rows`` under its own scaling, ``(P, b, f)``."""
        scalings = self.owner.scalings
        if len(scalings) == 1:
            return x[scalings[0]].index_select(0, rows).unsqueeze(0).expand(len(self.net.members), -1, -1)
        stacked = torch.stack([x[s].index_select(0, rows) for s in scalings])
        return stacked.index_select(0, self.scaling_index)

    def train_epoch(self, rows: torch.Tensor) -> None:
        owner = self.owner
        order = rows[torch.randperm(len(rows), generator=self.generator).to(rows.device)]
        p = len(self.net.members)
        losses = torch.zeros(p, device=rows.device)
        acc_grads: list[torch.Tensor] | None = None
        acc_rows = torch.zeros(p, device=rows.device)
        chunks = range(0, len(order), self.base)
        n_chunks = len(chunks)
        for index, start in enumerate(chunks):
            batch = order[start : start + self.base]
            x = self._inputs(owner.x_train, batch)
            y = owner.y_train.index_select(0, batch).unsqueeze(0).expand(p, -1)
            logits = self.net.forward(x, train=True)
            per_member = F.binary_cross_entropy_with_logits(logits, y, reduction="none").sum(dim=1)
            losses += per_member.detach()
            if self.uniform:  # every member steps on this minibatch: the mean loss's gradients, directly
                grads = list(torch.autograd.grad(per_member.sum() / len(batch), self.net.params))
                self.optimizer.step(self.net.params, grads, None)
                continue
            grads = list(torch.autograd.grad(per_member.sum(), self.net.params))
            acc_rows += len(batch)
            acc_grads = grads if acc_grads is None else [a.add_(g) for a, g in zip(acc_grads, grads, strict=True)]
            last = index == n_chunks - 1
            stepping = ((index + 1) % self.accumulate == 0) | last
            if not bool(stepping.any()):
                continue
            share = (1.0 / acc_rows.clamp(min=1)).where(stepping, torch.zeros_like(acc_rows))
            scaled = [a * share.view((-1,) + (1,) * (a.dim() - 1)) for a in acc_grads]
            self.optimizer.step(self.net.params, scaled, stepping)
            keep = (~stepping).to(acc_rows.dtype)
            acc_rows = acc_rows * keep
            acc_grads = [a.mul_(keep.view((-1,) + (1,) * (a.dim() - 1))) for a in acc_grads]
        self.train_losses = (losses / len(order)).tolist()

    @torch.no_grad()
    def validate(self, epoch: int, reports: dict[int, dict[str, float]], finished: dict[int, str]) -> None:
        """Each member's validation metrics of this epoch into ``reports``; a member whose loss or outputs are not
        finite goes into ``finished`` with the reason instead. Keeps each member's best epoch and weights."""
        owner = self.owner
        n, device = len(owner.y_val), owner.y_val.device
        chunks = [torch.arange(s, min(n, s + _VAL_ROWS), device=device) for s in range(0, n, _VAL_ROWS)]
        logits = torch.cat([self.net.forward(self._inputs(owner.x_val, rows), train=False) for rows in chunks], dim=1)
        finite = torch.isfinite(logits).all(dim=1).tolist()
        measured = compute_metrics_batched(torch.nan_to_num(logits), owner.y_val)
        for position, member in enumerate(self.net.members):
            result = owner.results[member.key]
            result.epochs_trained = epoch + 1
            loss = self.train_losses[position]
            result.train_loss = loss
            if not math.isfinite(loss) or not finite[position]:
                finished[member.key] = (
                    f"training loss became {'NaN' if math.isnan(loss) else 'infinite'} at epoch {epoch}; "
                    "the learning rate is probably too high"
                    if not math.isfinite(loss)
                    else f"validation outputs became NaN or infinite at epoch {epoch}"
                )
                continue
            metrics = measured[position]
            result.last_metrics = metrics
            value = metrics[owner.monitor]
            if result.best_epoch < 0 or owner.sign * value > owner.sign * result.best_value:
                result.best_value, result.best_epoch, result.best_metrics = value, epoch, dict(metrics)
                result.best_state = self.net.state_dict_of(position)
                self.since_best[position] = 0
            else:
                self.since_best[position] += 1
            reports[member.key] = {**metrics, "train/loss": loss}

    def finish(self, epoch: int, pruned: set[int], finished: dict[int, str], last: bool) -> None:
        """Record why members stop after this epoch (not finite, pruned, early stopping) and, unless it was the
        last epoch, drop them from the group."""
        owner = self.owner
        leaving: dict[int, str] = {}
        for position, member in enumerate(self.net.members):
            if member.key in finished:
                leaving[member.key] = finished[member.key]
            elif member.key in pruned:
                leaving[member.key] = "pruned"
            elif owner.patience is not None and self.since_best[position] >= owner.patience:
                leaving[member.key] = "early_stopped"
        for key, why in leaving.items():
            owner.results[key].dropped, owner.results[key].dropped_epoch = why, epoch
        if leaving and not last:
            self._keep([i for i, m in enumerate(self.net.members) if m.key not in leaving])

    def _keep(self, positions: list[int]) -> None:
        index = torch.tensor(positions, dtype=torch.long, device=self.accumulate.device)
        self.net.keep(index)
        self.optimizer.keep(index)
        self.accumulate = self.accumulate.index_select(0, index)
        self.scaling_index = self.scaling_index.index_select(0, index)
        self.since_best = [self.since_best[i] for i in positions]
        self.uniform = bool((self.accumulate == 1).all())
