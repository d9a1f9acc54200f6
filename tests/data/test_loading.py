from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from hpo.config.data_section import DataSettings
from hpo.config.experiment import parse_experiment
from hpo.data.loading import load_data, split_rows
from hpo.errors import DataError


def embedded(**kwargs) -> DataSettings:
    return parse_experiment({"study": {"n_trials": 1}, "data": kwargs}, Path("x.yaml")).data


def csv_settings(path: Path, target: str = "y", **kwargs) -> DataSettings:
    return DataSettings(path=path, target=target, **kwargs)


def test_embedded_breast_cancer() -> None:
    data = load_data(embedded())
    assert len(data.train_rows) + len(data.val_rows) + len(data.test_rows) == 569
    assert len(data.test_rows) == round(0.2 * 357) + round(0.2 * 212)  # 569 rows >= 500: a 0.2 test split by default
    assert data.n_features == 30 and data.x_train.shape[1] == 30
    assert data.labels == ("benign", "malignant")
    assert int(data.y_train.sum() + data.y_val.sum() + data.y_test.sum()) == 212  # malignant rows
    assert set(data.train_rows).isdisjoint(data.val_rows)
    assert set(data.test_rows).isdisjoint({*data.train_rows, *data.val_rows})


def test_test_split_defaults_and_overrides(write_csv) -> None:
    rows = "".join(f"{i},{i % 7},{i % 2}\n" for i in range(499))
    small = load_data(csv_settings(write_csv("a,b,y\n" + rows)))
    assert small.test_rows == ()  # under 500 rows: no test split unless asked for
    big = load_data(csv_settings(write_csv("a,b,y\n" + rows + "499,1,1\n")))
    assert len(big.test_rows) == 100
    asked = load_data(csv_settings(write_csv("a,b,y\n" + rows), test_fraction=0.3))
    assert len(asked.test_rows) == round(0.3 * 250) + round(0.3 * 249)
    counts = asked.class_counts()
    assert counts["test"]["negative"] + counts["test"]["positive"] == len(asked.test_rows)


def test_cv_folds_partition_the_rows_outside_the_test_split(write_csv) -> None:
    rows = "".join(f"{i},{i % 7},{int(i % 3 == 0)}\n" for i in range(60))
    data = load_data(csv_settings(write_csv("a,b,y\n" + rows), cv_folds=4, test_fraction=0.25))
    pool = {*data.train_rows, *data.val_rows}
    assert len(data.folds) == 4 and set().union(*map(set, data.folds)) == pool
    assert sum(len(f) for f in data.folds) == len(pool) and pool.isdisjoint(data.test_rows)
    assert data.val_rows == data.folds[0]
    for k in range(4):
        train, val = data.split(k)
        assert set(train) | set(val) == pool and set(train).isdisjoint(val)
        assert 0 < data.prepared("standard", k).y_val.sum() < len(val)  # both classes in every fold
    assert data.small_data_warning() is not None and "each of the 4 CV folds" in data.small_data_warning()
    with pytest.raises(DataError, match="cv_folds 30 needs at least that many rows of each class"):
        load_data(csv_settings(write_csv("a,b,y\n" + rows), cv_folds=30))


def test_split_is_stratified_and_deterministic() -> None:
    y = np.array([0.0] * 80 + [1.0] * 20)
    train, val = split_rows(y, 0.25, seed=3)
    again = split_rows(y, 0.25, seed=3)
    other = split_rows(y, 0.25, seed=4)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert not np.array_equal(val, other[1])
    assert (y[val] == 1).sum() == 5 and (y[val] == 0).sum() == 20
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))


def test_standardisation_uses_training_rows_only(write_csv) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, size=(60, 2))
    y = np.array([0, 1] * 30)
    text = "a,b,y\n" + "".join(f"{float(r[0])!r},{float(r[1])!r},{t}\n" for r, t in zip(x, y, strict=False))
    data = load_data(csv_settings(write_csv(text), validation_fraction=0.3, split_seed=1))
    train = x[list(data.train_rows)]
    columns = data.prepared("standard").preprocessor.columns
    assert np.allclose([c.center for c in columns], train.mean(axis=0))
    assert np.allclose([c.scale for c in columns], train.std(axis=0))
    assert not np.allclose([c.center for c in columns], x.mean(axis=0))
    assert np.allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    expected_val = ((x[list(data.val_rows)] - train.mean(axis=0)) / train.std(axis=0)).astype(np.float32)
    assert np.allclose(data.x_val, expected_val, atol=1e-6)


@pytest.mark.parametrize(
    ("column", "positive", "labels"),
    [
        (["0", "1"], None, (0, 1)),
        (["True", "False"], None, (False, True)),
        (["cat", "dog"], None, ("cat", "dog")),
        (["cat", "dog"], "cat", ("dog", "cat")),
        (["-1", "1"], 1, (-1, 1)),
    ],
)
def test_binary_labels_and_their_mapping(write_csv, column, positive, labels) -> None:
    rows = "".join(f"{i},{column[i % 2]}\n" for i in range(10))
    data = load_data(csv_settings(write_csv("x,y\n" + rows), positive_label=positive))
    assert data.labels == labels
    all_y = np.zeros(10, dtype=np.float32)
    all_y[list(data.train_rows)] = data.y_train
    all_y[list(data.val_rows)] = data.y_val
    expected = [1.0 if str(column[i % 2]) == str(labels[1]) else 0.0 for i in range(10)]
    assert all_y.tolist() == expected


GOOD_ROWS = "".join(f"{i},{i * 2},{i % 2}\n" for i in range(10))

BAD = [
    ("", "is empty"),
    ("a,b,y\n", "has a header but no data rows"),
    ("a,b,label\n" + GOOD_ROWS, "target column ['y'] not in the file"),
    ("a,b,y\n" + "".join(f"{i},{i},1\n" for i in range(10)), "must have exactly two classes"),
    ("a,b,y\n" + "".join(f"{i},{i},{i % 3}\n" for i in range(10)), "found 3"),
    # a stray third label: its line is named (the blank target of line 4 is dropped, not counted)
    (
        "a,b,y\n" + "".join(f"{i},{i},{'' if i == 2 else 'maybe' if i == 6 else i % 2}\n" for i in range(10)),
        "on line 8;",
    ),
    ("a,b,y\n" + "".join(f"{i},NA,{i % 2}\n" for i in range(10)), "column 'b' is blank in all 10 rows"),
    ("a,b,y\n" + GOOD_ROWS + "11,inf,1\n", "column 'b' has infinite values at line 12"),
    ("a,b,y\n" + "".join(f"{i},{i},\n" for i in range(10)), "target column 'y' is blank in every row"),
    ("a,a,y\n" + GOOD_ROWS, "column 'a' appears more than once"),
    ("a,b,y\n" + GOOD_ROWS + "1,2,3,4\n", "rows do not match the header"),
    ("a,b,y\n" + "".join(f"{i},{i},{int(i == 0)}\n" for i in range(10)), "fewer than 2 rows"),
    ("y\n0\n1\n0\n1\n", "no feature columns"),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[b[1][:30] for b in BAD])
def test_bad_csv_files(write_csv, text: str, expected: str) -> None:
    path = write_csv(text)
    with pytest.raises(DataError) as info:
        load_data(csv_settings(path))
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


def test_not_utf8_and_missing_file(write_csv, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not UTF-8"):
        load_data(csv_settings(write_csv(b"a,y\n\xff\xfe,1\n")))
    with pytest.raises(DataError, match="no such data file"):
        load_data(csv_settings(tmp_path / "missing.csv"))


def test_header_the_csv_module_cannot_read_is_a_data_error(write_csv) -> None:
    path = write_csv(("x" * 200_000 + ",y\n1,0\n").encode())  # a header cell beyond csv's field size limit
    with pytest.raises(DataError, match=r"the header line cannot be read as CSV \(field larger than field limit"):
        load_data(csv_settings(path))


def test_listed_features_and_id_columns(write_csv) -> None:
    text = "id,a,b,name,y\n" + "".join(f"{i},{i},{-i},n{i},{i % 2}\n" for i in range(10))
    data = load_data(csv_settings(write_csv(text), id_columns=("id", "name")))
    assert data.feature_names == ("a", "b")
    data = load_data(csv_settings(write_csv(text), features=("b",)))
    assert data.feature_names == ("b",)
    with pytest.raises(DataError, match=r"feature column \['c'\] not in the file"):
        load_data(csv_settings(write_csv(text), features=("c",)))


def test_positive_label_must_exist(write_csv) -> None:
    with pytest.raises(DataError, match="positive_label 'bird'"):
        load_data(csv_settings(write_csv("x,y\n1,cat\n2,dog\n3,cat\n4,dog\n"), positive_label="bird"))


def test_ragged_rows_give_one_clean_line_naming_the_line_and_counts(write_csv) -> None:
    path = write_csv("a,b,y\n" + GOOD_ROWS + "1,2,3,4\n")
    with pytest.raises(DataError) as info:
        load_data(csv_settings(path))
    assert str(info.value) == (
        f"{path}: rows do not match the header: line 12 has 4 fields, the header 3; every row needs 3 fields (quote a "
        "value that holds a comma)"
    )
    with pytest.raises(DataError, match="a quoted value opened on line 12 is never closed") as info:
        load_data(csv_settings(write_csv("a,b,y\n" + GOOD_ROWS + '1,"2,3\n')))
    assert "\n" not in str(info.value) and "C error" not in str(info.value)


def test_small_data_warning_never_quotes_an_interval_wider_than_auroc_range(write_csv) -> None:
    tiny = load_data(csv_settings(write_csv("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(12)))))
    warning = tiny.small_data_warning()
    assert warning is not None and "wider than AUROC's whole range (0 to 1)" in warning
    assert " wide," not in warning
    small = load_data(csv_settings(write_csv("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(100)))))
    warning = small.small_data_warning()
    assert warning is not None and "10 positive and 10 negative rows" in warning
    assert "has a 95% interval about 0." in warning and "whole range" not in warning


def test_whitespace_around_target_values_is_stripped_like_feature_levels(write_csv) -> None:
    rows = "".join(f"{i},{[' yes', 'no '][i % 2]}\n" for i in range(10))
    data = load_data(csv_settings(write_csv("x,y\n" + rows)))
    assert data.labels == ("no", "yes")
    assert data.y.sort_index().tolist() == [1.0, 0.0] * 5
    assert load_data(csv_settings(write_csv("x,y\n" + rows), positive_label="yes")).labels == ("no", "yes")
    assert load_data(csv_settings(write_csv("x,y\n" + rows), positive_label="no")).labels == ("yes", "no")
    # " yes" and "yes" are one class; text booleans with spaces become booleans, as pandas reads them without.
    mixed = "".join(f"{i},{[' yes', 'no', 'yes '][i % 3]}\n" for i in range(12))
    assert load_data(csv_settings(write_csv("x,y\n" + mixed))).labels == ("no", "yes")
    booleans = "".join(f"{i},{[' True', 'false '][i % 2]}\n" for i in range(10))
    assert load_data(csv_settings(write_csv("x,y\n" + booleans))).labels == (False, True)


def test_an_unquoted_yaml_boolean_positive_label_takes_the_value_spelled_so(write_csv) -> None:
    path = write_csv("x,y\n" + "".join(f"{i},{['yes', 'no'][i % 2]}\n" for i in range(10)))

    def labels(positive: str) -> tuple:
        doc = yaml.safe_load(f"study: {{n_trials: 1}}\ndata: {{path: {path}, target: y, positive_label: {positive}}}")
        return load_data(parse_experiment(doc, Path("x.yaml")).data).labels

    assert labels("no") == ("yes", "no")  # YAML reads it as False
    assert labels("yes") == ("no", "yes")
    assert labels('"no"') == ("yes", "no")
    switches = write_csv("x,y\n" + "".join(f"{i},{['ON', 'Off'][i % 2]}\n" for i in range(10)))
    assert load_data(csv_settings(switches, positive_label=False)).labels == ("ON", "Off")
    for values, positive in ((("cat", "dog"), True), (("no", "n"), False)):
        rows = "".join(f"{i},{values[i % 2]}\n" for i in range(10))
        with pytest.raises(DataError) as info:
            load_data(csv_settings(write_csv("x,y\n" + rows), positive_label=positive))
        message = str(info.value)
        assert f"data.positive_label {positive} is not a value of column 'y'" in message
        assert 'write the label in quotes, e.g. positive_label: "no"' in message


def test_a_numeric_column_with_stray_text_gets_a_note(write_csv) -> None:
    """'unknown' in two cells of an otherwise numeric column makes it categorical (one level per number): a note
    names the cells; a real text column, or one listed under data.categorical, gets none."""
    rows = "".join(f"{'unknown' if i in (3, 7) else 20 + i},{['a', 'b', 'c'][i % 3]},{i % 2}\n" for i in range(30))
    path = write_csv("age,colour,y\n" + rows)
    data = load_data(csv_settings(path))
    assert [c.kind for c in data.columns] == ["categorical", "categorical"]
    assert len(data.notes) == 1
    note = data.notes[0]
    assert note.startswith("column 'age' is read as categorical (29 levels) although 28 of its 30 filled cells")
    assert "'unknown' on lines 5, 9;" in note and "data.numeric" in note
    assert load_data(csv_settings(path, categorical=("age",))).notes == ()
