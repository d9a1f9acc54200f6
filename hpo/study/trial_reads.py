"""Reading trials out of Optuna's RDB tables with SQLAlchemy Core: the same ``FrozenTrial`` objects as
``optuna.storages.RDBStorage`` builds, without its ORM objects.

Optuna's RDB storage reads a trial through the ORM: a ``TrialModel`` and five lazy (or ``selectinload``)
relationships, each row turned into a mapped object first. At trial 10,000 that is most of what reading costs, not
the database: the two reads of new and unfinished trials that Optuna's trial cache makes per trial took 3.6 ms each
(2.1 ms here), the three reads of the running trial (``ask`` and ``tell``) 1.1-1.7 ms each (0.7 ms here), and
loading a 10,000-trial study into a process (a worker's first ``ask``, ``hpo best``) 4.6 s (0.3 s here); see
docs/benchmarks.md, 3a. The queries are the same six plain selects (a trial's row, then its parameters, values,
user attributes, system attributes and intermediate values), in one transaction; tests/study/test_trial_reads.py
compares the results with Optuna's own reads on every kind of parameter, value and state, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Container, Iterable
from typing import Any

import sqlalchemy
from optuna import distributions
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

__all__ = ["read_study_trials", "read_trial", "read_trials"]

_TRIALS = models.TrialModel.__table__
_PARAMS = models.TrialParamModel.__table__
_VALUES = models.TrialValueModel.__table__
_USER = models.TrialUserAttributeModel.__table__
_SYSTEM = models.TrialSystemAttributeModel.__table__
_INTERMEDIATE = models.TrialIntermediateValueModel.__table__
#: Trial ids per ``IN (...)`` list (SQLite allows 32,766 bound variables, older builds 999).
_CHUNK = 500


def _local(stored: datetime.datetime | None) -> datetime.datetime | None:
    """A start or completion time as Optuna's ``TrialModel`` returns it: stored as naive UTC, returned as naive local
    time."""
    if stored is None:
        return None
    return stored.replace(tzinfo=datetime.timezone.utc).astimezone().replace(tzinfo=None)


class _Parts:
    """What the child tables hold for one trial, gathered before the ``FrozenTrial`` is built."""

    __slots__ = ("intermediate", "params", "system", "user", "values")

    def __init__(self) -> None:
        self.params: list[tuple[int, str, float, str]] = []
        self.values: dict[int, float] = {}
        self.user: dict[str, Any] = {}
        self.system: dict[str, Any] = {}
        self.intermediate: dict[int, float] = {}


def read_trial(connection: sqlalchemy.Connection, trial_id: int) -> FrozenTrial:
    """Trial ``trial_id`` as ``RDBStorage.get_trial`` returns it.

    Raises:
        KeyError: there is no such trial (Optuna's message).
    """
    found = read_trials(connection, _TRIALS.c.trial_id == trial_id)
    if not found:
        raise KeyError(models.NOT_FOUND_MSG)
    return found[0]


def read_study_trials(
    connection: sqlalchemy.Connection,
    study_id: int,
    states: Container[TrialState] | None,
    included_trial_ids: set[int],
    trial_id_greater_than: int,
) -> list[FrozenTrial]:
    """The trials ``RDBStorage._get_trials`` returns for these arguments (what Optuna's trial cache reads: the
    trials numbered after the last it holds, and the unfinished ones it holds), in trial id order.

    Raises:
        KeyError: there is no study ``study_id`` (Optuna's message).
    """
    studies = models.StudyModel.__table__
    if connection.execute(sqlalchemy.select(studies.c.study_id).where(studies.c.study_id == study_id)).first() is None:
        raise KeyError(models.NOT_FOUND_MSG)
    where = _TRIALS.c.study_id == study_id
    if states is not None:
        assert isinstance(states, Iterable)
        where &= _TRIALS.c.state.in_(list(states))
    included = sorted(i for i in included_trial_ids if i <= trial_id_greater_than)
    if trial_id_greater_than > -1:
        if len(included) > _CHUNK:  # too many to list: every trial after the first one included, then filtered
            where &= _TRIALS.c.trial_id >= included[0]
            keep = set(included)
            return [
                t for t in read_trials(connection, where) if t._trial_id in keep or t._trial_id > trial_id_greater_than
            ]
        newer = _TRIALS.c.trial_id > trial_id_greater_than
        where &= sqlalchemy.or_(_TRIALS.c.trial_id.in_(included), newer) if included else newer
    return read_trials(connection, where)


def read_trials(connection: sqlalchemy.Connection, where: Any) -> list[FrozenTrial]:
    """The trials whose ``trials`` row matches ``where`` (a condition on ``models.TrialModel.__table__``), in trial
    id order, built exactly as ``RDBStorage`` builds them."""
    rows = connection.execute(
        sqlalchemy.select(
            _TRIALS.c.trial_id,
            _TRIALS.c.number,
            _TRIALS.c.state,
            _TRIALS.c.datetime_start,
            _TRIALS.c.datetime_complete,
        )
        .where(where)
        .order_by(_TRIALS.c.trial_id)
    ).all()
    if not rows:
        return []
    parts = {row[0]: _Parts() for row in rows}
    ids = list(parts)
    for start in range(0, len(ids), _CHUNK):
        _read_parts(connection, ids[start : start + _CHUNK], parts)
    parsed: dict[str, distributions.BaseDistribution] = {}  # a study's trials share a few distributions
    trials = []
    for trial_id, number, state, datetime_start, datetime_complete in rows:
        part = parts[trial_id]
        params = sorted(part.params)  # by param_id, as Optuna orders them
        chosen: dict[str, distributions.BaseDistribution] = {}
        for _, name, _, text in params:
            distribution = parsed.get(text)
            if distribution is None:
                distribution = parsed[text] = distributions.json_to_distribution(text)
            chosen[name] = distribution
        values = part.values
        trials.append(
            FrozenTrial(
                number=number,
                state=state,
                value=None,
                values=[values[i] for i in range(len(values))] if values else None,
                datetime_start=_local(datetime_start),
                datetime_complete=_local(datetime_complete),
                params={name: chosen[name].to_external_repr(value) for _, name, value, _ in params},
                distributions=chosen,
                user_attrs=part.user,
                system_attrs=part.system,
                intermediate_values=part.intermediate,
                trial_id=trial_id,
            )
        )
    return trials


def _read_parts(connection: sqlalchemy.Connection, ids: list[int], parts: dict[int, _Parts]) -> None:
    """Add the parameters, values, attributes and intermediate values of trials ``ids`` to ``parts``."""
    p, v, u, s, i = _PARAMS.c, _VALUES.c, _USER.c, _SYSTEM.c, _INTERMEDIATE.c
    params = sqlalchemy.select(p.trial_id, p.param_id, p.param_name, p.param_value, p.distribution_json)
    for trial_id, param_id, name, param_value, text in connection.execute(params.where(p.trial_id.in_(ids))):
        parts[trial_id].params.append((param_id, name, param_value, text))
    stored = models.TrialValueModel.stored_repr_to_value
    values = sqlalchemy.select(v.trial_id, v.objective, v.value, v.value_type)
    for trial_id, objective, value, kind in connection.execute(values.where(v.trial_id.in_(ids))):
        parts[trial_id].values[objective] = stored(value, kind)
    user = sqlalchemy.select(u.trial_id, u.key, u.value_json)
    for trial_id, key, text in connection.execute(user.where(u.trial_id.in_(ids))):
        parts[trial_id].user[key] = json.loads(text)
    system = sqlalchemy.select(s.trial_id, s.key, s.value_json)
    for trial_id, key, text in connection.execute(system.where(s.trial_id.in_(ids))):
        parts[trial_id].system[key] = json.loads(text)
    stored_intermediate = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value
    intermediate = sqlalchemy.select(i.trial_id, i.step, i.intermediate_value, i.intermediate_value_type)
    for trial_id, step, value, kind in connection.execute(intermediate.where(i.trial_id.in_(ids))):
        parts[trial_id].intermediate[step] = stored_intermediate(value, kind)
