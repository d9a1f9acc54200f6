"""The Pareto front in best/ (hpo.best.folder) end to end: best/ holds exactly the Pareto front Optuna reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from torchmetrics.functional.classification import binary_auroc

import hpo
from hpo.best.folder import FRONT_FILE, front_folders, promote_front_files, read_front, trial_folder
from hpo.config.experiment import parse_experiment
from hpo.config.objectives import ObjectiveSpec
from hpo.data.loading import load_data
from hpo.errors import ConfigError, StudyError, WeightsError
from hpo.metrics import hp_name
from hpo.model import MLP
from hpo.paths import StudyPaths
from hpo.search.run import run_study
from tests.conftest import pareto_space, read_tensorboard_run

OBJECTIVES = (ObjectiveSpec("val/auroc", "maximize"), ObjectiveSpec("model/params", "minimize"))


def _study(root: Path, name: str = "pareto") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root / name / 'study.db'}")


def test_best_holds_exactly_the_pareto_front_and_each_folder_loads_with_plain_pytorch(pareto_study: Path) -> None:
    study = _study(pareto_study)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 8
    front = {t.number: t for t in study.best_trials}
    assert front and len(front) < len(complete)  # some trials were dominated
    best = pareto_study / "pareto" / "best"
    data = load_data(parse_experiment(pareto_space(), pareto_study / "pareto.yaml").data)
    assert sorted(p.name for p in best.iterdir()) == sorted([FRONT_FILE, *(trial_folder(n) for n in front)])
    assert set(front_folders(best)) == set(front)

    for number, trial in front.items():
        folder = best / trial_folder(number)
        card = json.loads((folder / "model.json").read_text())
        model = MLP(**card["model"]["kwargs"])
        model.load_state_dict(torch.load(folder / "model.pt"))  # weights_only=True by default
        model.eval()
        assert card["trial"] == number and card["value"] == trial.values[0]
        assert [o["value"] for o in card["objectives"]] == trial.values
        assert [o["metric"] for o in card["objectives"]] == ["val/auroc", "model/params"]
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert trial.values[1] == n_params == card["metrics"]["model/params"]
        # The weights are those of the epoch whose AUROC was reported: recompute it on the validation rows.
        with torch.no_grad():
            auroc = binary_auroc(
                torch.sigmoid(model(torch.from_numpy(data.x_val))), torch.from_numpy(data.y_val).long()
            )
        assert float(auroc) == pytest.approx(trial.values[0], abs=1e-6)
        predictor = hpo.load_best(pareto_study / "pareto", trial=number)
        assert predictor.card["trial"] == number
        for name in ("calibration.json", "reliability.png"):
            assert (folder / name).is_file()

    entries = read_front(best)
    assert entries is not None
    assert [e.trial for e in entries] == sorted(front)
    for entry in entries:
        assert entry.folder == trial_folder(entry.trial)
        assert list(entry.values.values()) == front[entry.trial].values


def test_every_objective_is_an_hp_metric_of_every_trial_in_tensorboard(pareto_study: Path) -> None:
    study = _study(pareto_study)
    for trial in study.trials:
        scalars, hparams, declared = read_tensorboard_run(pareto_study / "pareto" / "tb" / f"trial_{trial.number:04d}")
        assert {"hp_metric", hp_name("val/auroc"), hp_name("model/params")} <= set(declared)
        assert scalars["hp_metric"][-1][1] == pytest.approx(trial.values[0])  # hp_metric: the first objective
        # The last point of each objective's hp/ scalar is exactly the value Optuna received.
        assert scalars["hp/auroc"][-1][1] == pytest.approx(trial.values[0])
        assert scalars["hp/params"][-1][1] == trial.values[1]
        assert scalars["hp/auroc"][-1][0] == scalars["hp_metric"][-1][0] == trial.user_attrs["epochs_trained"]
        assert hparams["n_layers"] == trial.params["n_layers"]
    assert not any(t.intermediate_values for t in study.trials)  # no pruning: nothing reported per epoch


def test_load_best_picks_by_trial_or_by_rule(pareto_study: Path) -> None:
    study = _study(pareto_study)
    front = sorted(study.best_trials, key=lambda t: t.number)
    smallest = min(front, key=lambda t: (t.values[1], t.number))
    most_accurate = max(front, key=lambda t: t.values[0])
    root = pareto_study
    assert hpo.load_best("pareto", root=root, minimize="model/params").card["trial"] == smallest.number
    assert hpo.load_best("pareto", root=root, maximize="val/auroc").card["trial"] == most_accurate.number
    limit = smallest.values[1]
    chosen = hpo.load_best("pareto", root=root, maximize="val/auroc", where=f"model/params <= {limit:g}")
    assert chosen.card["metrics"]["model/params"] <= limit
    assert chosen.card["trial"] == smallest.number
    frame = np.zeros((3, 30))
    assert chosen.predict_proba(frame).shape == (3,)

    if len(front) > 1:
        with pytest.raises(StudyError, match="pick one with trial=N"):
            hpo.load_best("pareto", root=root)
    dominated = next(t.number for t in study.trials if t.number not in {f.number for f in front})
    with pytest.raises(StudyError, match=f"holds no weights of trial {dominated}"):
        hpo.load_best("pareto", root=root, trial=dominated)
    with pytest.raises(StudyError, match="no saved trial satisfies"):
        hpo.load_best("pareto", root=root, where="model/params <= 1")
    with pytest.raises(ConfigError, match="not a metric"):
        hpo.load_best("pareto", root=root, maximize="val/acc")
    with pytest.raises(ConfigError, match="give one of them"):
        hpo.load_best("pareto", root=root, maximize="val/auroc", minimize="model/params")
    with pytest.raises(ConfigError, match=r"where\[0\]: cannot read"):
        hpo.load_best("pareto", root=root, where="params small")
    for wrong in (str(smallest.number), True, 1.0):
        with pytest.raises(ConfigError, match=f"trial: must be a trial number .*, got {wrong!r}"):
            hpo.load_best("pareto", root=root, trial=wrong)  # type: ignore[arg-type]
    by_folder = hpo.load_best(str(root / "pareto"), trial=smallest.number)  # a folder given as a string
    assert by_folder.card["trial"] == smallest.number
    with pytest.raises(WeightsError, match=r"holds the Pareto front .* not one model; pick one: .*trial_NNNN"):
        hpo.load_model(root / "pareto" / "best")


def test_the_same_selection_works_on_a_single_objective_best(inference_study: Path) -> None:
    card = json.loads((inference_study / "inf" / "best" / "model.json").read_text())
    assert hpo.load_best("inf", root=inference_study, trial=card["trial"]).card["trial"] == card["trial"]
    assert hpo.load_best("inf", root=inference_study, where="val/auroc >= 0.5").card["trial"] == card["trial"]
    with pytest.raises(StudyError, match="holds no weights of trial 99"):
        hpo.load_best("inf", root=inference_study, trial=99)


def _files(number: int) -> dict[str, bytes]:
    return {"model.pt": f"weights {number}".encode(), "model.json": json.dumps({"trial": number}).encode()}


def test_a_trial_that_leaves_the_front_loses_its_folder_and_the_set_is_swapped_whole(tmp_path: Path) -> None:
    paths = StudyPaths(tmp_path, "s")
    fronts = [[(0, [0.9, 100.0])], [(0, [0.9, 100.0]), (1, [0.95, 500.0])], [(1, [0.95, 500.0]), (2, [0.92, 50.0])]]
    for number, front in enumerate(fronts):
        assert promote_front_files(paths, number, lambda f=front: f, lambda n=number: _files(n), OBJECTIVES)
        assert sorted(front_folders(paths.best)) == [n for n, _ in front]
    assert not (paths.best / "trial_0000").exists()  # dominated by trial 2: its folder is gone
    assert (paths.best / "trial_0001" / "model.pt").read_bytes() == b"weights 1"  # kept as it was
    entries = read_front(paths.best)
    assert entries is not None and [(e.trial, e.values) for e in entries] == [
        (1, {"val/auroc": 0.95, "model/params": 500.0}),
        (2, {"val/auroc": 0.92, "model/params": 50.0}),
    ]
    # A dominated trial changes nothing and builds no files.
    calls: list[int] = []
    assert not promote_front_files(paths, 3, lambda: fronts[-1], lambda: calls.append(3) or _files(3), OBJECTIVES)
    assert calls == [] and sorted(front_folders(paths.best)) == [1, 2]
    # A front trial whose weights live on another host is listed without a folder.
    elsewhere = [*fronts[-1], (7, [0.99, 900.0])]
    assert not promote_front_files(paths, 4, lambda: elsewhere, lambda: _files(4), OBJECTIVES)
    listed = read_front(paths.best)
    assert listed is not None and [e.folder for e in listed] == ["trial_0001", "trial_0002", None]
    assert not [p for p in tmp_path.joinpath("s").iterdir() if p.name.startswith(".best-")]


def test_resuming_with_other_objectives_or_constraints_is_refused(pareto_study: Path, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    shutil.copytree(pareto_study / "pareto", root / "pareto")
    swapped = pareto_space(
        objectives=[{"metric": "val/auroc"}, {"metric": "model/latency_ms", "direction": "minimize"}], n_trials=9
    )
    with pytest.raises(StudyError, match="already exists and optimises"):
        run_study(parse_experiment(swapped, tmp_path / "a.yaml"), root=root)
    three = pareto_space(objectives=["val/auroc", "model/params", "model/latency_ms"], n_trials=9)
    with pytest.raises(StudyError, match="already exists and is set to"):
        run_study(parse_experiment(three, tmp_path / "b.yaml"), root=root)
    constrained = pareto_space(constraints=["val/recall >= 0.5"], n_trials=9)
    with pytest.raises(StudyError, match="already exists with the constraints"):
        run_study(parse_experiment(constrained, tmp_path / "c.yaml"), root=root)
    single = pareto_space(n_trials=9)
    del single["study"]["objectives"]
    with pytest.raises(StudyError, match="already exists and is set to"):
        run_study(parse_experiment(single, tmp_path / "d.yaml"), root=root)
    assert len(_study(root).trials) == 8  # nothing ran


def test_a_constrained_multi_objective_study_keeps_only_feasible_trials(write_space, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    # Only the smallest architectures fit: most sampled trials are infeasible, among them the most accurate one.
    doc = pareto_space(
        name="cpareto", n_trials=6, constraints=["model/params <= 150"], sampler={"name": "random", "seed": 3}
    )
    run_study(parse_experiment(doc, tmp_path / "c.yaml"), root=root)
    study = _study(root, "cpareto")
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    infeasible = [t for t in trials if t.constraints["model/params <= 150"] > 0]
    feasible = [t for t in trials if t.constraints["model/params <= 150"] <= 0]
    assert len(infeasible) > len(feasible) >= 1
    most_accurate = max(trials, key=lambda t: t.values[0])
    assert most_accurate in infeasible  # on the unconstrained front, but never promoted
    folders = front_folders(root / "cpareto" / "best")
    assert set(folders) == {t.number for t in study.best_trials} and set(folders) <= {t.number for t in feasible}
    for number in folders:
        card = json.loads((folders[number] / "model.json").read_text())
        assert card["feasible"] is True and card["metrics"]["model/params"] <= 150
        assert card["constraints"] == {"model/params <= 150": card["metrics"]["model/params"] - 150}


def _promote_in_process(root: str, number: int, n: int) -> None:
    front = [(i, [0.9 + i / 100, 100.0 + i]) for i in range(n)]  # nobody dominates anybody
    promote_front_files(StudyPaths(Path(root), "s"), number, lambda: front, lambda: _files(number), OBJECTIVES)


def test_workers_promoting_at_once_lose_no_folder(tmp_path: Path) -> None:
    import multiprocessing

    n = 6
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_promote_in_process, args=(str(tmp_path), i, n)) for i in range(n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    best = StudyPaths(tmp_path, "s").best
    assert sorted(front_folders(best)) == list(range(n))  # the lock serialises the read-modify-swap of best/
    for i in range(n):
        assert (best / trial_folder(i) / "model.pt").read_bytes() == f"weights {i}".encode()
    entries = read_front(best)
    assert entries is not None and [e.folder for e in entries] == [trial_folder(i) for i in range(n)]
