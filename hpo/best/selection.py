"""Choosing one saved model among a study's best: a trial number, or a rule such as "the highest AUROC with at most
50,000 parameters" over the Pareto front kept in ``best/``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpo.best.folder import CARD_FILE, ENSEMBLE_DIR, front_folders, read_card, read_front
from hpo.config.constraints import Constraint, parse_constraint
from hpo.errors import ConfigError, StudyError, WeightsError
from hpo.metrics import ALL_METRICS

__all__ = ["candidate_folders", "choose_folder"]


def candidate_folders(best: Path) -> dict[int, Path]:
    """Trial number -> weights folder: every ``trial_NNNN/`` of a Pareto front, or ``best/`` itself.

    Raises:
        WeightsError: ``best`` holds no weights.
    """
    if read_front(best) is not None:
        folders = front_folders(best)
        if folders:
            return folders
    elif (best / CARD_FILE).is_file():
        return {int(read_card(best)["trial"]): best}
    raise WeightsError(f"{best}: holds no saved model yet; run `hpo run` until a (feasible) trial completes")


def _rules(where: str | Sequence[str]) -> list[Constraint]:
    items = [where] if isinstance(where, str) else list(where)
    return [parse_constraint(item, f"where[{i}]") for i, item in enumerate(items)]


def _value(card: dict[str, Any], metric: str) -> float:
    return float(card.get("metrics", {}).get(metric, math.nan))


def choose_folder(
    best: Path,
    *,
    trial: int | None = None,
    maximize: str | None = None,
    minimize: str | None = None,
    where: str | Sequence[str] = (),
) -> Path:
    """The weights folder under ``best`` that the arguments pick (see :func:`hpo.load_best`).

    Args:
        best: a study's ``best/`` folder.
        trial: the trial number to load.
        maximize: among the candidates left by ``where``, take the one with the highest value of this metric.
        minimize: ... or the lowest (ties: the lowest trial number).
        where: constraints such as ``"model/params <= 50000"`` (the syntax of ``study.constraints``) on the metrics
            recorded in each folder's ``model.json``.

    Raises:
        ConfigError: a bad rule (unknown metric, both maximize and minimize, a constraint that cannot be read).
        StudyError: no candidate matches, or several do and nothing says which one.
        WeightsError: ``best`` holds no weights.
    """
    if maximize is not None and minimize is not None:
        raise ConfigError("maximize and minimize: give one of them (the metric to rank the candidates by)")
    rank = maximize if maximize is not None else minimize
    if rank is not None and rank not in ALL_METRICS:
        raise ConfigError(
            f"{'maximize' if maximize else 'minimize'}: {rank!r} is not a metric; use one of {list(ALL_METRICS)}"
        )
    if trial is not None and (isinstance(trial, bool) or not isinstance(trial, int)):
        raise ConfigError(f"trial: must be a trial number (an int such as 5), got {trial!r}")
    rules = _rules(where)
    folders = candidate_folders(best)
    if trial is not None:
        if trial not in folders:
            member = best / ENSEMBLE_DIR / f"member_{trial:04d}"
            hint = f"; trial {trial} is a member of its ensemble, in {member} (give that as --model)"
            raise StudyError(
                f"{best}: holds no weights of trial {trial}; it holds trials {sorted(folders)} (the Pareto front, or "
                f"the best trial); pass one of those{hint if member.is_dir() else ''}"
            )
        folders = {trial: folders[trial]}
    cards = {number: read_card(folder) for number, folder in folders.items()}
    matching = [n for n in cards if all(r.violation(_value(cards[n], r.metric)) <= 0 for r in rules)]
    if not matching:
        shown = ", ".join(
            f"trial {n}: " + ", ".join(f"{r.metric}={_value(cards[n], r.metric):.6g}" for r in rules) for n in cards
        )
        raise StudyError(
            f"{best}: no saved trial satisfies {[r.text for r in rules]} ({shown}); loosen the rule or run more trials"
        )
    if rank is not None:
        sign = 1.0 if maximize is not None else -1.0
        known = [n for n in matching if not math.isnan(_value(cards[n], rank))]
        if not known:
            raise StudyError(f"{best}: no saved trial recorded {rank}; rank by one of the study's metrics")
        matching = [max(sorted(known), key=lambda n: sign * _value(cards[n], rank))]
    if len(matching) > 1:
        raise StudyError(
            f"{best}: holds {len(matching)} Pareto-optimal trials {sorted(matching)}; pick one with trial=N (hpo "
            "predict --trial N), or a rule such as maximize='val/auroc', where='model/params <= 50000' (`hpo best` "
            "lists the front)"
        )
    return folders[matching[0]]
