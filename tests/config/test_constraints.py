from __future__ import annotations

import math

import pytest

from hpo.config.constraints import Constraint, feasible, parse_constraint, parse_constraints, violations
from hpo.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("val/recall >= 0.95", Constraint("val/recall", ">=", 0.95)),
        ("model/params<=50000", Constraint("model/params", "<=", 50000.0)),
        ("  model/latency_ms <= 1.5e-1 ", Constraint("model/latency_ms", "<=", 0.15)),
        ("val/loss <= 0.3", Constraint("val/loss", "<=", 0.3)),
    ],
)
def test_parse(text: str, expected: Constraint) -> None:
    assert parse_constraint(text, "c") == expected


def test_violation_follows_optunas_convention() -> None:
    recall = Constraint("val/recall", ">=", 0.9)
    assert recall.violation(0.95) == pytest.approx(-0.05) and recall.violation(0.9) == 0.0
    assert recall.violation(0.8) == pytest.approx(0.1)
    size = Constraint("model/params", "<=", 1000)
    assert size.violation(999) == -1 and size.violation(1500) == 500
    assert size.violation(math.nan) == math.inf  # not measured: violated


def test_violations_and_feasibility_of_a_trial() -> None:
    rules = parse_constraints(["val/recall >= 0.9", "model/params <= 1000"], "c")
    values = violations(rules, {"val/recall": 0.95, "model/params": 1200.0})
    assert values == {"val/recall >= 0.9": pytest.approx(-0.05), "model/params <= 1000": 200.0}
    assert not feasible(values)
    assert feasible(violations(rules, {"val/recall": 0.9, "model/params": 1000.0}))
    assert feasible({}) and parse_constraints(None, "c") == ()


def test_bounds_on_both_sides_are_allowed_when_they_overlap() -> None:
    rules = parse_constraints(["model/params >= 100", "model/params <= 100"], "c")
    assert feasible(violations(rules, {"model/params": 100.0}))
    with pytest.raises(ConfigError, match="contradict each other"):
        parse_constraints(["model/params >= 101", "model/params <= 100"], "c")
