"""Tests of hpo.data.preprocessing: inference, fitting, each encoding, JSON round trips and CSV canonicalisation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpo.data.preprocessing import (
    MAX_STORED_OTHER_LEVELS,
    OUTPUT_BOUND,
    SCALINGS,
    CategoricalColumn,
    ColumnSpec,
    NumericColumn,
    Preprocessor,
    fit_preprocessor,
    infer_columns,
    normalize_blanks,
    read_csv_kwargs,
)
from hpo.errors import ConfigError, DataError, WeightsError


def fit(frame: pd.DataFrame, **kwargs: object) -> Preprocessor:
    categorical = kwargs.pop("categorical", ())
    numeric = kwargs.pop("numeric", ())
    specs = infer_columns(
        frame,
        features=list(frame.columns),
        categorical=categorical,  # type: ignore[arg-type]
        numeric=numeric,  # type: ignore[arg-type]
        where="train.csv",
    )
    return fit_preprocessor(frame, specs, **kwargs)  # type: ignore[arg-type]


def outputs(pre: Preprocessor, frame: pd.DataFrame) -> pd.DataFrame:
    x, _ = pre.transform(frame)
    return pd.DataFrame(x, columns=list(pre.output_names))


def mixed_frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, rows)
    age[rng.random(rows) < 0.1] = np.nan
    towns = np.array(["Paris", "Lyon", "Nice", "Lille", "Metz"], dtype=object)
    city = rng.choice(towns, rows, p=[0.5, 0.3, 0.1, 0.08, 0.02])
    city[rng.random(rows) < 0.1] = None
    return pd.DataFrame(
        {
            "age": age,
            "income": rng.lognormal(3, 1, rows),
            "visits": rng.poisson(3, rows),
            "city": city,
            "member": rng.random(rows) < 0.4,
            "code": rng.choice([3, 7, 9], rows),
        }
    )


def test_infer_kinds_and_overrides() -> None:
    frame = pd.DataFrame(
        {
            "age": [30.0, np.nan, 45.0, 50.0],
            "count": [1, 2, 3, 4],
            "city": ["Paris", "Lyon", None, "Paris"],
            "flag": [True, False, True, True],
            "text_numbers": ["1.5", " 2 ", "", "4"],
            "zip": [75001, 69001, 75001, 13001],
            "as_number": [True, False, np.nan, True],
        }
    )
    specs = infer_columns(
        frame, features=list(frame.columns), categorical=["zip"], numeric=["as_number"], where="t.csv"
    )
    assert specs == [
        ColumnSpec("age", "numeric", 1, None),
        ColumnSpec("count", "numeric", 0, None),
        ColumnSpec("city", "categorical", 1, 2),
        ColumnSpec("flag", "categorical", 0, 2),
        ColumnSpec("text_numbers", "numeric", 1, None),
        ColumnSpec("zip", "categorical", 0, 3),
        ColumnSpec("as_number", "numeric", 1, None),
    ]


def test_every_problem_is_named_in_one_error_with_file_lines() -> None:
    frame = pd.DataFrame(
        {
            "age": ["30", "old", "41", "young", "x", "y", "z", "w"],
            "empty": [np.nan, "", "  ", "NA", None, "N/A", np.nan, ""],
            "ok": range(8),
        }
    )
    with pytest.raises(DataError) as caught:
        infer_columns(frame, features=["age", "empty", "ok", "gone"], numeric=["age"], where="train.csv")
    message = str(caught.value)
    assert message.startswith("train.csv: 3 problems")
    assert "'gone'" in message  # missing column
    assert "'empty' is blank in all 8 rows" in message
    # data rows 1, 3, 4, 5, 6, 7 hold text: file lines 3, 5, 6, 7, 8 shown, 1 more
    assert "'age' is listed as numeric but holds text at lines 3, 5, 6, 7, 8 and 1 more" in message
    assert "'old'" in message


def test_numeric_median_imputation_and_missing_indicator() -> None:
    train = pd.DataFrame({"a": [1.0, np.nan, 3.0, 10.0], "b": [2.0, 4.0, 6.0, 8.0]})
    pre = fit(train)
    assert pre.output_names == ("a", "a:missing", "b")  # b had no blanks: no indicator
    a = pre.columns[0]
    assert isinstance(a, NumericColumn) and a.median == 3.0
    mean, std = np.mean([1.0, 3.0, 10.0]), np.std([1.0, 3.0, 10.0])
    got = outputs(pre, pd.DataFrame({"a": [np.nan, 1.0], "b": [np.nan, 2.0]}))
    assert got["a"].tolist() == pytest.approx([(3.0 - mean) / std, (1.0 - mean) / std], rel=1e-6)
    assert got["a:missing"].tolist() == [1.0, 0.0]
    assert got["b"][0] == pytest.approx((5.0 - 5.0) / np.std([2.0, 4.0, 6.0, 8.0]))  # blank b: median 5 imputed
    _, counts = pre.transform(pd.DataFrame({"a": [np.nan, 1.0], "b": [np.nan, np.nan]}))
    assert (counts.column("a").blanks, counts.column("b").blanks) == (1, 2)


def test_blank_is_its_own_level() -> None:
    train = pd.DataFrame({"c": ["x"] * 6 + ["y"] * 6 + [None, "NA", "", "  ", "null", np.nan]})
    pre = fit(train)
    assert pre.output_names == ("c=<blank>", "c=x", "c=y", "c=<other>")
    got = outputs(pre, pd.DataFrame({"c": [" NA ", "x", None]}))
    assert got.to_numpy().tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]]


def test_rare_and_unseen_levels_share_other() -> None:
    train = pd.DataFrame({"c": ["a"] * 6 + ["b"] * 5 + ["rare"] * 4 + ["x", "y", "z"]})
    pre = fit(train, min_level_count=5)
    assert pre.output_names == ("c=a", "c=b", "c=<other>")
    column = pre.columns[0]
    assert isinstance(column, CategoricalColumn) and column.other_count == 7
    got, counts = pre.transform(pd.DataFrame({"c": ["rare", "never seen", "b", "a"]}))
    assert got.tolist() == [[0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    assert (counts.column("c").other, counts.column("c").unseen) == (2, 1)


def test_booleans_and_two_level_columns_are_one_input() -> None:
    train = pd.DataFrame({"flag": [True, False, True, False, True], "sex": ["m", "f", "m", "m", "f"]})
    pre = fit(train)
    assert pre.output_names == ("flag=true", "sex=m")
    got, counts = pre.transform(pd.DataFrame({"flag": ["TRUE", "false", None], "sex": ["f", "m", "x"]}))
    assert got.tolist() == [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]  # blank or unseen: halfway
    assert (counts.column("flag").blanks, counts.column("sex").unseen) == (1, 1)


def test_high_cardinality_is_capped_and_stays_small() -> None:
    rng = np.random.default_rng(1)
    levels = np.array([f"L{i}" for i in range(300)], dtype=object)
    counts = np.arange(300, 0, -1)  # L0 most frequent
    city = np.repeat(levels, counts)
    ids = np.array([f"id{i}" for i in range(len(city))], dtype=object)  # all distinct: all rare
    train = pd.DataFrame({"city": rng.permutation(city), "id": ids})
    pre = fit(train, max_one_hot=8)
    assert pre.output_names[:9] == (*(f"city=L{i}" for i in range(8)), "city=<other>")
    assert pre.output_names[9:] == ("id=<other>",)
    x, _ = pre.transform(train)
    assert x.shape == (len(train), 10) and (x[:, :9].sum(axis=1) == 1).all()
    id_column = pre.columns[1]
    assert isinstance(id_column, CategoricalColumn) and id_column.n_levels == len(train)
    assert len(id_column.other_levels) == MAX_STORED_OTHER_LEVELS  # the saved model does not hold every id
    assert len(json.dumps(pre.to_json())) < 40_000


def test_standard_scaling_is_train_mean_and_std() -> None:
    frame = mixed_frame()
    pre = fit(frame, scaling="standard")
    got = outputs(pre, frame)
    for name in ("income", "visits"):
        x = frame[name].to_numpy(dtype=float)
        np.testing.assert_allclose(got[name], (x - x.mean()) / x.std(), rtol=1e-5, atol=1e-6)
    constant = fit(pd.DataFrame({"c": [0.1] * 7}))
    assert outputs(constant, pd.DataFrame({"c": [0.1, 1.1]}))["c"].tolist() == pytest.approx([0.0, 1.0])


def test_robust_scaling_uses_median_iqr_and_smooth_clipping() -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(size=500), [1e4, -1e5]])
    pre = fit(pd.DataFrame({"x": x}), scaling="robust")
    got = outputs(pre, pd.DataFrame({"x": x}))["x"].to_numpy()
    q25, median, q75 = np.quantile(x, [0.25, 0.5, 0.75])
    z = (x - median) / (q75 - q25)
    np.testing.assert_allclose(got, z / np.sqrt(1 + (z / 3) ** 2), rtol=1e-5, atol=1e-6)
    assert np.abs(got).max() <= 3.0 and got[-1] < -2.99
    # IQR 0 falls back to the std
    mostly_zero = np.array([0.0] * 9 + [10.0])
    column = fit(pd.DataFrame({"x": mostly_zero}), scaling="robust").columns[0]
    assert isinstance(column, NumericColumn) and column.scale == pytest.approx(mostly_zero.std())


def test_quantile_scaling_is_normal_monotone_and_handles_ties() -> None:
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 2, 5000)
    x[:500] = 1.0  # a tie
    pre = fit(pd.DataFrame({"x": x, "constant": 4.0}), scaling="quantile")
    got = outputs(pre, pd.DataFrame({"x": x, "constant": 4.0}))
    z = got["x"].to_numpy()
    assert abs(z[500:].mean()) < 0.1 and abs(z.std() - 1) < 0.1
    assert np.all(np.diff(z[np.argsort(x, kind="stable")]) >= 0)  # monotone
    assert len(set(z[:500].tolist())) == 1  # ties map to one value
    assert (got["constant"] == 0).all()
    wide = outputs(pre, pd.DataFrame({"x": [-1e9, 1e9], "constant": [3.0, 5.0]}))
    assert wide["x"][0] < -3 and wide["x"][1] > 3 and np.isfinite(wide.to_numpy()).all()


@pytest.mark.parametrize("scaling", SCALINGS)
def test_json_round_trip_transforms_identically(scaling: str) -> None:
    frame = mixed_frame()
    pre = fit(frame, scaling=scaling, min_level_count=3)
    text = json.dumps(pre.to_json(), allow_nan=False)
    again = Preprocessor.from_json(json.loads(text), "model.json")
    assert again == pre
    new = mixed_frame(rows=50, seed=9)
    new.loc[0, "city"] = "Unseen"
    before, counts = pre.transform(new)
    after, counts_again = again.transform(new)
    np.testing.assert_allclose(after, before, rtol=1e-12, atol=1e-12)
    assert np.array_equal(after, before) and counts == counts_again
    assert json.loads(json.dumps(again.describe()))[3]["outputs"][-1] == "city=<other>"


def test_from_json_rejects_a_bad_document_with_its_path() -> None:
    doc = fit(mixed_frame()).to_json()
    doc["columns"][0]["median"] = "forty"
    with pytest.raises(WeightsError, match=r"model\.json: preprocessing\.columns\[0\] \('age'\)\.median"):
        Preprocessor.from_json(doc, "model.json")
    with pytest.raises(WeightsError, match="must be one of"):
        Preprocessor.from_json({**doc, "scaling": "minmax"}, "model.json")
    quantile = fit(mixed_frame(), scaling="quantile").to_json()
    quantile["columns"][1]["scores"].pop()
    with pytest.raises(WeightsError, match=r"\('income'\)\.scores must hold one score per quantile"):
        Preprocessor.from_json(quantile, "model.json")


@pytest.mark.parametrize("scaling", SCALINGS)
def test_huge_and_infinite_values_stay_finite(scaling: str) -> None:
    train = pd.DataFrame({"x": [1e308, 1e308, -1e308, 1e308, 0, 0], "y": [0.001, 0.002, 0.003, 0.0015, 0, 0.001]})
    pre = fit(train, scaling=scaling)
    x_column = pre.columns[0]
    assert isinstance(x_column, NumericColumn) and x_column.median == 5e307
    if scaling == "standard":  # the sums overflow unless computed on scaled-down values
        assert x_column.center == pytest.approx(1e308 / 3, rel=1e-12)
        assert x_column.scale == pytest.approx(np.sqrt(5) / 3 * 1e308, rel=1e-12)
    x, counts = pre.transform(pd.DataFrame({"x": [1e308, -np.inf, 2.0], "y": [1e308, np.inf, -1e308]}))
    assert x.dtype == np.float32 and np.isfinite(x).all() and np.abs(x).max() <= OUTPUT_BOUND
    if scaling == "standard":
        assert x[0, 1] == OUTPUT_BOUND and counts.column("y").clipped == 3
    with pytest.raises(DataError, match="'x' has infinite values at line 3"):
        fit(pd.DataFrame({"x": [1.0, np.inf, 2.0]}))


def test_transform_names_missing_columns_and_text_lines_of_a_chunk() -> None:
    pre = fit(mixed_frame())
    chunk = mixed_frame(rows=6).drop(columns=["member", "code"])
    chunk["age"] = chunk["age"].astype(object)
    chunk.loc[[0, 2], "age"] = ["old", "?"]
    with pytest.raises(DataError) as caught:
        pre.transform(chunk, where="new.csv", first_line=1002)
    message = str(caught.value)
    assert message.startswith("new.csv: 2 problems")
    assert "'code', 'member'" in message or "'member', 'code'" in message
    assert "'age' holds text at lines 1002, 1004" in message


def test_levels_are_canonical_across_csv_reads(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    rows = [(3, "True", "Paris"), (4, "False", "Lyon")] * 5
    lines = ["code,flag,city,x"] + [f"{c},{f},{t},{i}" for i, (c, f, t) in enumerate(rows)]
    lines += ["3,true, Paris ,1", ",TRUE,Lyon,2", "4.0,,  ,3", "  ,False,NA,4"]
    path.write_text("\n".join(lines) + "\n")
    train, chunk = pd.read_csv(path, chunksize=10, **read_csv_kwargs())
    chunk = normalize_blanks(chunk)
    assert train["code"].dtype == np.int64 and chunk["code"].dtype == np.float64
    assert train["flag"].dtype == bool and chunk["flag"].dtype == object
    pre = fit(train, categorical=["code"])
    assert pre.output_names == ("code=4", "flag=true", "city=Paris", "x")
    got, counts = pre.transform(chunk, first_line=12)
    assert got[:, :3].tolist() == [[0, 1, 1], [0.5, 1, 0], [1, 0.5, 0.5], [0.5, 0, 0.5]]
    assert [counts.column(n).blanks for n in ("code", "flag", "city")] == [2, 1, 2]
    assert [counts.column(n).unseen for n in ("code", "flag", "city")] == [0, 0, 0]


def test_normalize_blanks_maps_whitespace_and_blank_texts_to_nan() -> None:
    frame = pd.DataFrame({"n": ["1", "  ", "2.5"], "t": ["a", " ", "NA"], "b": [True, False, True]})
    clean = normalize_blanks(frame)
    assert clean["n"].dtype == np.float64 and clean["n"].isna().tolist() == [False, True, False]
    assert clean["t"].isna().tolist() == [False, True, True] and clean["t"][0] == "a"
    assert clean["b"].dtype == bool


def test_counts_of_chunks_add_up() -> None:
    pre = fit(mixed_frame())
    frame = mixed_frame(rows=100, seed=5)
    _, whole = pre.transform(frame)
    _, first = pre.transform(frame.iloc[:40])
    _, second = pre.transform(frame.iloc[40:], first_line=42)
    assert first + second == whole


def test_bad_settings_are_config_errors() -> None:
    frame = mixed_frame()
    specs = infer_columns(frame, features=list(frame.columns), where="t.csv")
    with pytest.raises(ConfigError, match="scaling must be one of"):
        fit_preprocessor(frame, specs, scaling="minmax")
    with pytest.raises(ConfigError, match="max_one_hot must be a whole number"):
        fit_preprocessor(frame, specs, max_one_hot=0)
