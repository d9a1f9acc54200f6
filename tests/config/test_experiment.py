from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hpo.config.constraints import Constraint
from hpo.config.experiment import load_experiment
from hpo.config.objectives import ObjectiveSpec
from hpo.config.space import CategoricalParam, FixedParam, FloatParam, IntParam
from hpo.errors import ConfigError
from tests.conftest import REPO, tiny_space


def test_default_space_is_valid_and_searches_the_required_parameters() -> None:
    exp = load_experiment(REPO / "search_spaces" / "default.yaml")
    kinds = {p.name: type(p) for p in exp.space.params}
    for name in ("lr", "weight_decay", "n_layers", "hidden_size", "dropout", "batch_size", "optimizer"):
        assert kinds[name] in (FloatParam, IntParam, CategoricalParam), name
    assert exp.data.source == "breast_cancer"
    assert exp.study.metric == "val/auroc" and exp.study.direction == "maximize"
    assert exp.study.n_trials is not None and exp.study.n_trials >= 20
    momentum = next(p for p in exp.space.params if p.name == "momentum")
    assert momentum.conditions[0].parent == "optimizer" and momentum.conditions[0].values == ("sgd",)


def test_every_file_in_search_spaces_is_valid() -> None:
    files = sorted((REPO / "search_spaces").glob("*.yaml"))
    assert files
    for path in files:
        load_experiment(path)


def test_parses_every_kind_of_parameter(write_space) -> None:
    doc = tiny_space(
        params={
            "lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
            "hidden_size": {"type": "int", "low": 8, "high": 64, "step": 8},
            "n_layers": {"type": "int", "low": 1, "high": 4, "log": True},
            "optimizer": {"choices": ["adam", "sgd"]},
            "activation": "gelu",
            "weight_decay": {"type": "fixed", "value": 0.0001},
            "momentum": {"type": "float", "low": 0.5, "high": 0.9, "condition": {"optimizer": "sgd"}},
        }
    )
    exp = load_experiment(write_space(doc))
    by_name = {p.name: p for p in exp.space.params}
    assert by_name["lr"] == FloatParam("lr", 0.001, 0.1, log=True)
    assert by_name["dropout"].step == pytest.approx(0.1)
    assert by_name["hidden_size"] == IntParam("hidden_size", 8, 64, step=8)
    assert by_name["activation"] == FixedParam("activation", "gelu")
    assert by_name["weight_decay"] == FixedParam("weight_decay", 0.0001)
    names = exp.space.names
    assert names.index("optimizer") < names.index("momentum")  # parents are sampled first


def test_missing_study_name_defaults_to_the_file_stem(write_space) -> None:
    doc = tiny_space()
    del doc["study"]["name"]
    assert load_experiment(write_space(doc, name="my-exp.yaml")).study.name == "my-exp"


def test_direction_defaults_to_the_metric_direction(write_space) -> None:
    exp = load_experiment(write_space(tiny_space(study={"metric": "val/loss"})))
    assert exp.study.direction == "minimize"


def test_objectives_and_constraints(write_space) -> None:
    doc = tiny_space(
        study={
            "objectives": [{"metric": "val/auroc", "direction": "maximize"}, "model/latency_ms"],
            "constraints": ["val/recall >= 0.95", "model/params<=5e4"],
            "sampler": {"name": "nsga2", "seed": 3, "population_size": 8},
        }
    )
    del doc["study"]["pruner"]
    study = load_experiment(write_space(doc)).study
    assert study.objectives == (ObjectiveSpec("val/auroc", "maximize"), ObjectiveSpec("model/latency_ms", "minimize"))
    assert (study.metric, study.direction, study.directions) == ("val/auroc", "maximize", ("maximize", "minimize"))
    assert study.multi_objective and study.pruner.name == "none"  # Optuna does not prune multi-objective trials
    assert study.constraints == (Constraint("val/recall", ">=", 0.95), Constraint("model/params", "<=", 50000.0))
    assert [c.text for c in study.constraints] == ["val/recall >= 0.95", "model/params <= 50000"]
    assert study.model_metrics == ("model/params", "model/latency_ms")
    assert study.sampler.name == "nsga2" and study.sampler.seed == 3


def test_a_single_objective_file_has_one_objective_and_may_have_constraints(write_space) -> None:
    plain = load_experiment(write_space(tiny_space(study={"metric": "val/loss"}))).study
    assert plain.objectives == (ObjectiveSpec("val/loss", "minimize"),) and not plain.multi_objective
    assert plain.constraints == () and plain.model_metrics == () and plain.pruner.name == "none"
    constrained = load_experiment(write_space(tiny_space(study={"constraints": ["model/params <= 1000"]}))).study
    assert not constrained.multi_objective and constrained.model_metrics == ("model/params",)
    one = load_experiment(write_space(tiny_space(study={"objectives": [{"metric": "val/f1"}]}))).study
    assert (one.metric, one.direction, one.multi_objective) == ("val/f1", "maximize", False)


def test_overrides(write_space) -> None:
    exp = load_experiment(write_space(tiny_space())).with_overrides(study_name="other", n_trials=7, timeout=5, seed=123)
    assert (exp.study.name, exp.study.n_trials, exp.study.timeout) == ("other", 7, 5)
    assert exp.study.sampler.seed == 123 and exp.training.seed == 123
    with pytest.raises(ConfigError, match="--study"):
        exp.with_overrides(study_name="../escape")
    with pytest.raises(ConfigError, match="--n-trials"):
        exp.with_overrides(n_trials=0)


BAD = [
    # (change to the tiny document, the key path and words the message must hold)
    ({"surprise": 1}, "surprise: unknown key"),
    ({"study": {"n_trails": 3}}, "study.n_trails: unknown key (did you mean 'n_trials'?)"),
    ({"study": {"n_trials": "ten"}}, "study.n_trials: must be an integer, got 'ten'"),
    ({"study": {"n_trials": 0}}, "study.n_trials: must be >= 1"),
    ({"study": {"timeout": -1}}, "study.timeout: must be a number of seconds > 0"),
    ({"study": {"n_trials": None}}, "study: set n_trials, timeout"),
    ({"study": {"metric": "val/acc"}}, "study.metric: must be one of"),
    ({"study": {"direction": "up"}}, "study.direction: must be 'maximize' or 'minimize', got 'up'"),
    (
        {"study": {"metric": "val/loss", "direction": "maximize"}},
        "study.direction: val/loss is better when lower, so maximize would search for the worst models; write "
        "direction: minimize",
    ),
    ({"study": {"direction": "minimize"}}, "study.direction: val/auroc is better when higher, so minimize"),
    ({"study": {"sampler": {"name": "bayes"}}}, "study.sampler.name: must be one of"),
    ({"study": {"sampler": {"name": "tpe", "seed": "x"}}}, "study.sampler.seed: must be an integer"),
    ({"study": {"sampler": {"name": "random", "n_startup_trials": 3}}}, "study.sampler.n_startup_trials: unknown"),
    ({"study": {"pruner": {"name": "asha"}}}, "study.pruner.name: must be one of"),
    ({"study": {"pruner": {"name": "percentile", "percentile": 120}}}, "study.pruner: invalid options"),
    ({"study": {"name": "a/b"}}, "study.name: a study name may only contain"),
    ({"study": {"name": ".."}}, "study.name: a study name may only contain"),
    ({"study": {"name": "abc\n"}}, "study.name: a study name may only contain"),  # $ alone would let it through
    ({"0\n": None}, ": '0\\n': unknown key"),  # a key with a newline is quoted, so the message stays one line
    ({"params": {"lr": {"type": "float", "low": 0.1, "high": 0.01}}}, "params.lr.low: must be < high"),
    (
        {"params": {"weight_decay": {"type": "float", "low": 0, "high": 0.1, "log": True}}},
        "params.weight_decay.low: must be > 0 when log is true, got 0",
    ),
    ({"params": {"lr": {"type": "float", "low": 0, "high": 0.1, "log": True}}}, "params.lr.low: must be > 0"),
    ({"params": {"optimizer": {"type": "categorical", "choices": []}}}, "params.optimizer.choices: must not be empty"),
    (
        {"params": {"optimizer": {"type": "categorical", "choices": ["adam", "lion"]}}},
        "params.optimizer.choices[1]: must be one of",
    ),
    (
        {"params": {"momentum": {"type": "float", "low": 0.1, "high": 0.9, "condition": {"optimiser": "sgd"}}}},
        "params.momentum.condition.optimiser: condition on unknown parameter 'optimiser'",
    ),
    (
        {
            "params": {
                "optimizer": {"choices": ["adam"]},
                "momentum": {"type": "float", "low": 0.1, "high": 0.9, "condition": {"optimizer": "sgd"}},
            }
        },
        "params.momentum.condition.optimizer: 'sgd' is not a possible value",
    ),
    ({"params": {"colour": 3}}, "params.colour: unknown hyperparameter"),
    (
        {"params": {"lr": {"type": "float", "low": 0.01, "high": 0.1, "log": True, "step": 0.01}}},
        "params.lr.step: cannot be combined with log",
    ),
    ({"params": {"n_layers": {"type": "int", "low": 1.5, "high": 3}}}, "params.n_layers.low: must be an integer"),
    ({"params": {"n_layers": {"type": "float", "low": 1, "high": 3}}}, "params.n_layers.type: n_layers is a int"),
    ({"params": {"lr": {"type": "float", "low": "a", "high": 0.1}}}, "params.lr.low: must be a number"),
    ({"params": {"lr": {"type": "float", "high": 0.1}}}, "params.lr.low: is required"),
    ({"params": {"lr": {"type": "normal", "low": 0.0, "high": 0.1}}}, "params.lr.type: must be one of"),
    ({"params": {"lr": {"type": "float", "low": 0.01, "high": 0.1, "logg": True}}}, "params.lr.logg: unknown key"),
    ({"params": {"dropout": 1.5}}, "params.dropout: must be < 1"),
    ({"params": {"batch_size": [32, 64]}}, "params.batch_size: a list is ambiguous"),
    ({"training": {"max_epochs": 0}}, "training.max_epochs: must be >= 1"),
    ({"training": {"accelerator": "tpu"}}, "training.accelerator: must be one of"),
    ({"data": {"source": "iris"}}, "data.source: must be one of the embedded data sets"),
    ({"data": {"validation_fraction": 1.5}}, "data.validation_fraction: must be a number between 0 and 1"),
    ({"data": {"path": "x.csv"}}, "data: give either source"),
    ({"data": {"colums": ["a"]}}, "data.colums: unknown key"),
    # several objectives and constraints
    ({"study": {"objectives": "val/auroc"}}, "study.objectives: must be a non-empty list"),
    ({"study": {"objectives": []}}, "study.objectives: must be a non-empty list"),
    ({"study": {"objectives": [{"metric": "val/auroc"}, {"metric": "size"}]}}, "study.objectives[1].metric: must be"),
    (
        {"study": {"objectives": [{"metric": "val/auroc"}, {"metric": "model/params", "direction": "down"}]}},
        "study.objectives[1].direction: must be 'maximize' or 'minimize', got 'down'",
    ),
    (
        {"study": {"objectives": [{"metric": "val/auroc"}, {"metric": "val/auroc", "direction": "minimize"}]}},
        "study.objectives[1].metric: val/auroc is already an objective",
    ),
    (
        {"study": {"objectives": ["val/auroc", {"metric": "model/params", "direction": "maximize"}]}},
        "study.objectives[1].direction: model/params is better when lower, so maximize would search for the worst",
    ),
    (
        {"study": {"objectives": [{"metric": "val/loss", "direction": "maximize"}, "model/params"]}},
        "study.objectives[0].direction: val/loss is better when lower",
    ),
    ({"study": {"constraints": ["model/params <= -5"]}}, "model/params is always above 0, so no trial could meet it"),
    ({"study": {"constraints": ["model/latency_ms <= 0"]}}, "model/latency_ms is always above 0, so no trial could"),
    ({"study": {"constraints": ["model/params >= 0"]}}, "model/params is always above 0, so every trial meets it"),
    (
        {"study": {"objectives": [{"metric": "val/auroc", "weight": 2}]}},
        "study.objectives[0].weight: unknown key",
    ),
    ({"study": {"objectives": [3]}}, "study.objectives[0]: must be a mapping with metric and direction"),
    ({"study": {"objectives": [{"direction": "minimize"}]}}, "study.objectives[0].metric: missing; each objective"),
    (
        {"study": {"objectives": [{"metric": "model/params"}, {"metric": "val/auroc"}]}},
        "study.objectives[0].metric: the first objective must be a validation metric",
    ),
    (
        {"study": {"metric": "val/auroc", "objectives": [{"metric": "val/auroc"}, {"metric": "model/params"}]}},
        "study.metric: cannot be combined with study.objectives",
    ),
    (
        {"study": {"objectives": ["val/auroc", "model/params"], "pruner": {"name": "median"}}},
        "study.pruner: Optuna does not prune multi-objective trials",
    ),
    ({"study": {"constraints": "val/recall >= 0.9"}}, "study.constraints: must be a list of constraints"),
    ({"study": {"constraints": ["val/recall > 0.9"]}}, "study.constraints[0]: 'val/recall > 0.9' uses '>'"),
    ({"study": {"constraints": ["recall >= 0.9"]}}, "study.constraints[0]: 'recall >= 0.9' names an unknown metric"),
    ({"study": {"constraints": ["val/recall >= high"]}}, "study.constraints[0]: 'val/recall >= high' compares with"),
    ({"study": {"constraints": ["val/recall"]}}, "study.constraints[0]: cannot read 'val/recall'"),
    ({"study": {"constraints": [0.95]}}, "study.constraints[0]: must be a string"),
    ({"study": {"constraints": ["val/recall >= 1.5"]}}, "study.constraints[0]: 'val/recall >= 1.5' can never"),
    ({"study": {"constraints": ["model/params <= inf"]}}, "study.constraints[0]: 'model/params <= inf' has a bound"),
    (
        {"study": {"constraints": ["model/params >= 1000", "model/params <= 500"]}},
        "study.constraints: 'model/params >= 1000' and 'model/params <= 500' contradict each other",
    ),
    (
        {"study": {"constraints": ["val/recall >= 0.9", "val/recall >= 0.8"]}},
        "study.constraints[1]: val/recall already has a >= bound",
    ),
    ({"study": {"sampler": {"name": "nsga2", "population": 10}}}, "study.sampler.population: unknown option"),
    ({"study": {"sampler": {"name": "nsga2", "population_size": 1}}}, "study.sampler: invalid options for 'nsga2'"),
]


@pytest.mark.parametrize(("change", "expected"), BAD, ids=[b[1][:60] for b in BAD])
def test_bad_documents_name_the_file_and_key(write_space, change, expected) -> None:
    doc = tiny_space(**change)
    path = write_space(doc)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message


def test_cyclic_conditions_are_refused(write_space) -> None:
    doc = tiny_space(
        params={
            "optimizer": {"choices": ["adam", "sgd"], "condition": {"activation": "relu"}},
            "activation": {"choices": ["relu", "tanh"], "condition": {"optimizer": "sgd"}},
        }
    )
    with pytest.raises(ConfigError, match="cycle"):
        load_experiment(write_space(doc))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("study: {n_trials: 3\n", "is not valid YAML at line"),
        ("", "is empty"),
        ("- 1\n- 2\n", "must be a mapping"),
        ("a: &x [1, 2]\nb: *x\n", "aliases"),
        ("study: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("study: 3\n", "study: must be a mapping"),
    ],
)
def test_broken_yaml(write_space, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_experiment(write_space(text))
    assert expected in str(info.value)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such search-space file"):
        load_experiment(tmp_path / "nope.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"study: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_experiment(tmp_path / "bin.yaml")


def test_relative_data_path_is_found_beside_the_space_file(write_space, write_csv, tmp_path: Path, monkeypatch) -> None:
    write_csv("a,b,y\n1,2,0\n", name="mine.csv")
    monkeypatch.chdir(Path("/"))
    doc = tiny_space(data={"path": "mine.csv", "target": "y"})
    doc["data"].pop("source")
    exp = load_experiment(write_space(doc))
    assert exp.data.path == tmp_path / "mine.csv"
    assert yaml.safe_load(yaml.safe_dump(doc))["data"]["target"] == "y"
