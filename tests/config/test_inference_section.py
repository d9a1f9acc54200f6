from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hpo.config.experiment import load_experiment
from hpo.config.inference_section import InferenceSettings, ThresholdRule
from hpo.errors import ConfigError
from tests.conftest import tiny_space


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (None, InferenceSettings(ThresholdRule("fixed", 0.5), False)),
        ({"threshold": "fixed"}, InferenceSettings(ThresholdRule("fixed", 0.5), False)),
        ({"threshold": {"fixed": 0.3}}, InferenceSettings(ThresholdRule("fixed", 0.3), False)),
        ({"threshold": "max_f1", "temperature_scaling": True}, InferenceSettings(ThresholdRule("max_f1", None), True)),
        ({"threshold": "youden"}, InferenceSettings(ThresholdRule("youden", None), False)),
        ({"threshold": {"min_recall": 0.95}}, InferenceSettings(ThresholdRule("min_recall", 0.95), False)),
        ({"threshold": {"min_precision": 1}}, InferenceSettings(ThresholdRule("min_precision", 1.0), False)),
    ],
)
def test_valid_inference_sections(
    write_space: Callable[..., Path], section: dict[str, Any] | None, expected: InferenceSettings
) -> None:
    doc = tiny_space() if section is None else tiny_space(inference=section)
    assert load_experiment(write_space(doc)).inference == expected


BAD = [
    ({"threshold": "max_f2"}, "inference.threshold: unknown threshold rule 'max_f2' (did you mean 'max_f1'?)"),
    ({"threshold": "min_recall"}, "inference.threshold: rule 'min_recall' needs a target"),
    ({"threshold": {"min_recall": 1.5}}, "inference.threshold.min_recall: must be in (0, 1]"),
    ({"threshold": {"min_precision": 0}}, "inference.threshold.min_precision: must be in (0, 1]"),
    ({"threshold": {"min_recall": "high"}}, "inference.threshold.min_recall: must be a number between 0 and 1"),
    ({"threshold": {"min_recall": True}}, "inference.threshold.min_recall: must be a number"),
    ({"threshold": {"fixed": -0.1}}, "inference.threshold.fixed: must be between 0 and 1"),
    ({"threshold": {"max_f1": 0.5}}, "inference.threshold.max_f1: takes no target"),
    ({"threshold": {"min_recall": 0.9, "min_precision": 0.9}}, "inference.threshold: must name exactly one rule"),
    ({"threshold": {"recall": 0.9}}, "inference.threshold.recall: unknown threshold rule"),
    ({"threshold": 0.5}, "inference.threshold: must be a rule name"),
    ({"temperature_scaling": "yes"}, "inference.temperature_scaling: must be true or false"),
    ({"temperature": True}, "inference.temperature: unknown key (did you mean 'temperature_scaling'?)"),
    ([1], "inference: must be a mapping"),
]


@pytest.mark.parametrize(("section", "message"), BAD, ids=[b[1].split(":")[0] + str(i) for i, b in enumerate(BAD)])
def test_bad_inference_sections_name_the_file_and_key(
    write_space: Callable[..., Path], section: object, message: str
) -> None:
    path = write_space(tiny_space(inference=section))
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
