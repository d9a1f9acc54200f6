"""Figure 3: fixed cost per trial of a long SQLite/TPE study (at trial 1000 and 10,000, split into hpo's part and
Optuna's), and the share of non-training time in a trial."""

from __future__ import annotations

import logging
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytorch_lightning as pl
import sqlalchemy
import torch
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial

from bench.common import experiment, prepared
from bench.training_cost import PARAMS, plain_loop
from hpo.config.experiment import Experiment
from hpo.data.loading import PreparedData
from hpo.model import MLP
from hpo.search.run import TrialReport, run_study
from hpo.study.access import create_or_resume_study
from hpo.study.samplers import DEFAULT_MAX_HISTORY, build_sampler
from hpo.study.storage import TrialCache, open_storage
from hpo.train.batches import TensorBatches
from hpo.train.lightning_module import BestEpochCallback, BinaryClassifier
from hpo.train.objective import build_trainer, resolve_params

#: Epochs of the 10k-row trials of figure 3b: the default search space's max_epochs (search_spaces/default.yaml).
EPOCHS_10K = 30

DEFAULT_PARAMS = {
    "lr": {"type": "float", "low": 1e-4, "high": 0.3, "log": True},
    "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    "n_layers": {"type": "int", "low": 1, "high": 3},
    "hidden_size": {"type": "int", "low": 16, "high": 256, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
    "optimizer": {"type": "categorical", "choices": ["adam", "adamw", "sgd"]},
    "momentum": {"type": "float", "low": 0.5, "high": 0.99, "condition": {"optimizer": "sgd"}},
}

#: The samplers figure 3a compares: Optuna's TPE over the whole history (hpo's sampler before max_history), and the
#: default one (TPE over the last max_history trials and the best ones).
FULL_TPE: dict[str, Any] = {"name": "tpe", "max_history": None}
DEFAULT_TPE: dict[str, Any] = {"name": "tpe"}
#: The default window of the previous round (max_history 1000), for comparison.
WINDOW_1000: dict[str, Any] = {"name": "tpe", "max_history": 1000}


class TrialClock:
    """Wall time of each trial of a run, measured between the ends of consecutive trials.

    That covers everything the study loop does for a trial (budget checks, ask, training, tell, promotion, progress),
    not only what happens inside Optuna's ``optimize``. Work done inside the callback (``between``) is not counted.
    The first trial is left out: it also pays for loading the study into the process.
    """

    def __init__(self, between: Callable[[TrialReport], None] | None = None) -> None:
        self.between = between
        self.seconds: list[float] = []
        self._last: float | None = None

    def __call__(self, report: TrialReport) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.seconds.append(now - self._last)
        if self.between is not None:
            self.between(report)
        self._last = time.perf_counter()


class _PerTrialClock:
    """CPU seconds of this process per trial between consecutive trial reports, each interval divided by the trials
    it finished (trials trained as one population are reported together); the first report is left out (it loads the
    study). CPU time, not wall time: the work is single-threaded and waits on nothing but the CPU, and on a shared
    machine wall time mostly measures the other processes."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._last: tuple[float, int] | None = None

    def __call__(self, report: TrialReport) -> None:
        now = (time.process_time(), report.finished)
        if self._last is not None and now[1] > self._last[1]:
            self.seconds.append((now[0] - self._last[0]) / (now[1] - self._last[1]))
        self._last = now


def _tiny_trials(sampler: dict[str, Any], n_trials: int) -> Experiment:
    doc = {
        "study": {"name": "fixed", "n_trials": n_trials, "pruner": "none", "sampler": {**sampler, "seed": 0}},
        "training": {"max_epochs": 1, "batch_size": 64},
        "data": {"validation_fraction": 0.9},  # ~57 training rows: one optimizer step, next to nothing to train
        "params": DEFAULT_PARAMS,
    }
    return experiment(doc)


def _history(exp: Experiment, existing: int) -> list[FrozenTrial]:
    """``existing`` completed trials of the search space, to be added to a study. Their values are better than
    the measured trials score, so that these are not published as a new best: at trial 10,000 that is rare."""
    memory = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(existing):
        trial = memory.ask()
        exp.space.sample(trial)
        memory.tell(trial, 0.99 + 0.0001 * (i % 97))  # above what a trial on 57 rows scores: no new best to publish
    return memory.trials


def _insert_trials(url: str, study_id: int, trials: list[FrozenTrial]) -> None:
    """Write finished ``trials`` into a study with one executemany per table: ``Study.add_trials`` makes a few commits
    per trial (13 ms each trial on SQLite, 2 minutes for 10,000), this takes a second."""
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        first_id = (
            connection.execute(sqlalchemy.select(sqlalchemy.func.max(models.TrialModel.trial_id))).scalar() or 0
        ) + 1
        now = trials[0].datetime_complete if trials else None
        rows, params, values = [], [], []
        for i, trial in enumerate(trials):
            trial_id = first_id + i
            rows.append(
                {
                    "trial_id": trial_id,
                    "number": i,
                    "study_id": study_id,
                    "state": trial.state,
                    "datetime_start": now,
                    "datetime_complete": now,
                }
            )
            for name, value in trial.params.items():
                distribution = trial.distributions[name]
                params.append(
                    {
                        "trial_id": trial_id,
                        "param_name": name,
                        "param_value": distribution.to_internal_repr(value),
                        "distribution_json": optuna.distributions.distribution_to_json(distribution),
                    }
                )
            for objective, value in enumerate(trial.values or ()):
                finite = models.TrialValueModel.TrialValueType.FINITE
                values.append({"trial_id": trial_id, "objective": objective, "value": value, "value_type": finite})
        connection.execute(sqlalchemy.insert(models.TrialModel.__table__), rows)
        connection.execute(sqlalchemy.insert(models.TrialParamModel.__table__), params)
        connection.execute(sqlalchemy.insert(models.TrialValueModel.__table__), values)
    engine.dispose()


class _Histories:
    """One study per history length, made once (with hpo's storage settings) and copied for every measurement."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hpo-3a-"))
        self._made: dict[int, Path] = {}

    def copy(self, existing: int) -> tuple[Path, str]:
        """A fresh root folder holding study "fixed" with ``existing`` trials, and its storage URL."""
        if existing not in self._made:
            exp = _tiny_trials(FULL_TPE, existing)
            root = self.root / f"h{existing}"
            study, _, url = create_or_resume_study(exp, root=root)
            _insert_trials(url, study._study_id, _history(exp, existing))
            del study
            self._made[existing] = root
        target = Path(tempfile.mkdtemp(dir=self.root))
        shutil.copytree(self._made[existing], target, dirs_exist_ok=True)
        return target, f"sqlite:///{target / 'fixed' / 'study.db'}"


def fixed_cost_at(histories: _Histories, existing: int, measured: int, sampler: dict[str, Any]) -> list[float]:
    """CPU seconds of each trial of ``hpo run`` (one-epoch trials on 57 rows) after ``existing`` trials."""
    root, _ = histories.copy(existing)
    clock = _PerTrialClock()
    exp = _tiny_trials(sampler, existing + 1 + measured)
    run_study(exp, root=root, on_trial_end=clock, threads=1, finalize=False)
    return clock.seconds


def optuna_floor_at(histories: _Histories, existing: int, measured: int, sampler: dict[str, Any]) -> list[float]:
    """Median CPU seconds of Optuna alone for one trial (ask, the same suggestions, tell) after ``existing`` trials, on
    the same kind of storage as ``hpo run``'s (a SQLite file opened by hpo: write-ahead log, ``synchronous=NORMAL``,
    read through hpo's :class:`~hpo.study.storage.TrialCache`)
    and with the same sampler: what any Optuna study pays per trial there, whatever it trains."""
    _, url = histories.copy(existing)
    exp = _tiny_trials(sampler, existing + measured + 1)
    study = optuna.load_study(study_name="fixed", storage=TrialCache(open_storage(url, create=False)))
    study.sampler = build_sampler(exp.study.sampler)
    seconds = []
    for _ in range(measured + 1):
        start = time.process_time()  # CPU time, as for hpo run (see _PerTrialClock)
        trial = study.ask()
        exp.space.sample(trial)
        study.tell(trial, 0.95)
        seconds.append(time.process_time() - start)
    return seconds[1:]  # the first one loads the study


def _classifier(data: PreparedData, params: dict[str, Any]) -> BinaryClassifier:
    """The module a trial with the resolved ``params`` trains (no embedding)."""
    kwargs = {k: params[k] for k in ("n_layers", "hidden_size", "dropout", "activation")}
    return BinaryClassifier(
        MLP(data.n_features, **kwargs),
        params["optimizer"],
        params["lr"],
        params["weight_decay"],
        params.get("momentum", 0.0),
        params["batch_size"],
    )


def lightning_only(exp: Experiment, data: PreparedData, params: dict[str, Any], seed: int) -> None:
    """The training part of a trial with nothing else: the same module, callbacks and Trainer settings as
    :class:`hpo.train.objective.Objective`, but no Optuna trial, no storage and no TensorBoard logger."""
    for name in ("pytorch_lightning", "lightning_fabric"):  # no start-up banners, as in hpo's own trials
        logging.getLogger(name).setLevel(logging.WARNING)
    pl.seed_everything(seed, workers=False, verbose=False)
    params = resolve_params(params, exp)
    module = _classifier(data, params)
    best = BestEpochCallback(exp.study.metric, exp.study.direction, exp.training.early_stopping_patience)
    trainer = build_trainer(exp.training, False, [best], Path(tempfile.mkdtemp()))
    x_train, y_train, x_val, y_val = (torch.from_numpy(a) for a in (data.x_train, data.y_train, data.x_val, data.y_val))
    train = TensorBatches(x_train, y_train, len(x_train), shuffle=True, seed=seed)
    val = TensorBatches(x_val, y_val, 65536, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val)


def _plain_epochs(exp: Experiment, data: PreparedData, params: dict[str, Any], seed: int) -> None:
    """The training of :func:`lightning_only` in a plain loop: the same model, optimizer, minibatches and validation
    metrics, no Trainer."""
    from hpo.metrics import compute_metrics

    torch.manual_seed(seed)
    params = resolve_params(params, exp)
    module = _classifier(data, params)
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Optimizer)
    model = module.model
    x_train, y_train, x_val, y_val = (torch.from_numpy(a) for a in (data.x_train, data.y_train, data.x_val, data.y_val))
    for _ in range(exp.training.max_epochs):
        model.train()
        for x, y in TensorBatches(x_train, y_train, params["batch_size"], shuffle=True, seed=seed):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            compute_metrics(model(x_val), y_val)


def training_split(measured: int) -> tuple[float, float]:
    """Median CPU seconds of one tiny trial's training (one epoch on 57 rows, the default parameters) with the
    Trainer and settings hpo uses (:func:`lightning_only`), and in a plain loop (:func:`_plain_epochs`), interleaved:
    the part of hpo's own cost per trial that is Lightning's."""
    exp = _tiny_trials(DEFAULT_TPE, 1)
    data = prepared(exp)
    lightning, plain = [], []
    for i in range(measured + 1):
        for sink, train in ((lightning, lightning_only), (plain, _plain_epochs)):
            start = time.process_time()
            train(exp, data, {}, i)
            sink.append(time.process_time() - start)
    return statistics.median(lightning[1:]), statistics.median(plain[1:])


def overhead_share(rows: int, trials: int, epochs: int) -> tuple[float, float, float]:
    """Median seconds of (an hpo trial, the same training through Lightning alone, the plain loop) on ``rows``
    synthetic rows; each trial is followed by the other two, so that all three see the same machine load."""
    doc = {
        "study": {"name": "share", "n_trials": trials + 1, "pruner": "none", "sampler": {"name": "random", "seed": 0}},
        "training": {"max_epochs": epochs, "batch_size": 64},
        "params": dict(PARAMS),
    }
    exp = experiment(doc, rows)
    data = prepared(exp)
    bare: list[float] = []
    plain: list[float] = []

    def others_after(report: TrialReport) -> None:
        seed = exp.training.seed + report.number
        start = time.perf_counter()
        lightning_only(exp, data, dict(PARAMS), seed)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        plain_loop(data, epochs, 64, seed=seed)
        plain.append(time.perf_counter() - start)

    clock = TrialClock(others_after)
    run_study(exp, root=Path(tempfile.mkdtemp()), on_trial_end=clock, threads=1)
    return statistics.median(clock.seconds), statistics.median(bare[1:]), statistics.median(plain[1:])


def fixed_costs(quick: bool) -> dict[int, dict[str, float]]:
    """Per history length: ``hpo run``'s median CPU seconds per trial with full-history TPE (``before``), TPE over
    the last 1000 trials (``w1000``) and the default sampler (``after``); Optuna alone with each sampler
    (``floor_before``, ``floor_w1000``, ``floor_after``). The variants run
    in turn, ``rounds`` times (each round on a fresh copy of the study), and each median is over all the rounds'
    trials: run-to-run noise on these machines is about 15%, as large as the differences measured."""
    histories = _Histories()
    measured = 8 if quick else 24
    rounds = 1 if quick else 3
    results: dict[int, dict[str, float]] = {}
    for existing in (300, 3000) if quick else (1000, 10_000):
        seconds: dict[str, list[float]] = {}
        for _ in range(rounds):
            for name, sampler in (("before", FULL_TPE), ("w1000", WINDOW_1000), ("after", DEFAULT_TPE)):
                seconds.setdefault(f"floor_{name}", []).extend(optuna_floor_at(histories, existing, measured, sampler))
                seconds.setdefault(name, []).extend(fixed_cost_at(histories, existing, measured, sampler))
            seconds.setdefault("lightning", []).append(0.0)
            seconds.setdefault("plain", []).append(0.0)
            seconds["lightning"][-1], seconds["plain"][-1] = training_split(measured)
        results[existing] = {k: statistics.median(v) for k, v in seconds.items()}
    shutil.rmtree(histories.root, ignore_errors=True)
    return results


def _fixed_cost_row(existing: int, r: dict[str, float]) -> tuple[str, str, str, str]:
    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.0f} ms"

    return (
        f"3a. fixed cost per trial at trial {existing:,} (CPU time; SQLite, TPE; one-epoch trials on 57 rows): hpo "
        "run, and Optuna alone (ask, 8 suggestions, tell) on the same storage with the same sampler",
        f"full-history TPE: hpo {ms(r['before'])}, Optuna alone {ms(r['floor_before'])}; TPE over the last 1000 "
        f"trials + best 25: hpo {ms(r['w1000'])}, Optuna alone {ms(r['floor_w1000'])}; TPE over the last "
        f"{DEFAULT_MAX_HISTORY} trials + best 25 (default): hpo {ms(r['after'])}, Optuna alone {ms(r['floor_after'])}",
        f"{ms(r['after'])} (hpo's own {ms(max(0.0, r['after'] - r['floor_after']))}, of which the trial's training "
        f"with Lightning's Trainer {ms(r['lightning'])}, in a plain loop {ms(r['plain'])})",
        "hpo's own <= 10 ms, hpo + Optuna <= 50 ms at trial 10,000",
    )


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = [_fixed_cost_row(existing, r) for existing, r in fixed_costs(quick).items()]
    hpo_s, bare_s, plain_s = overhead_share(10_000, 5 if quick else 7, EPOCHS_10K)
    share = max(0.0, hpo_s - bare_s) / hpo_s
    everything = max(0.0, hpo_s - plain_s) / hpo_s
    return [
        *rows,
        (
            f"3b. 10k-row trials ({EPOCHS_10K} epochs, batch 64): Optuna + storage + TensorBoard share of wall time "
            "(and everything but a plain loop's work)",
            f"trial {hpo_s:.2f} s; the same training in Lightning alone {bare_s:.2f} s; plain loop {plain_s:.2f} s",
            f"{share:.1%} ({everything:.1%})",
            "<= 5%",
        ),
    ]


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
