"""ONNX export of a model with its preprocessing: onnxruntime gives the predictor's probabilities on raw rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hpo.data.preprocessing import SCALINGS, fit_preprocessor, infer_columns
from hpo.errors import HpoError
from hpo.inference.export import OUTPUT_NAMES, ExportError, build_onnx_model, export_onnx
from hpo.inference.predictor import Predictor
from hpo.model import ACTIVATIONS, MLP

ort = pytest.importorskip("onnxruntime")


def raw_frame(rows: int, seed: int) -> pd.DataFrame:
    """Numbers with blanks and ties, a constant column, text with blanks, booleans, an integer code with blanks."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 12, rows).round(0),  # many ties: values sit exactly on stored quantiles
            "income": rng.lognormal(10, 1, rows),
            "flat": np.full(rows, 7.0),
            "city": rng.choice(["Paris", "Lyon", "Nice", "Lille", "Rare"], rows, p=[0.4, 0.3, 0.15, 0.14, 0.01]),
            "member": rng.random(rows) < 0.4,
            "smoker": rng.choice(["yes", "no"], rows),
            "grade": rng.integers(1, 5, rows).astype(float),
        }
    ).astype({"city": object})
    frame.loc[rng.choice(rows, rows // 10, replace=False), "age"] = np.nan
    frame.loc[rng.choice(rows, rows // 10, replace=False), "city"] = None
    frame.loc[rng.choice(rows, rows // 10, replace=False), "grade"] = np.nan
    return frame


def make_predictor(scaling: str, activation: str = "relu", temperature: float = 1.0, seed: int = 0) -> Predictor:
    train = raw_frame(400, seed)
    columns = infer_columns(train, features=list(train.columns), categorical=["grade"], where="train")
    preprocessor = fit_preprocessor(train, columns, scaling=scaling)
    torch.manual_seed(seed)
    model = MLP(preprocessor.n_outputs, n_layers=2, hidden_size=8, dropout=0.1, activation=activation).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)  # wide logits, so that the probabilities do not all sit near 0.5
    card = {
        "study": "unit",
        "trial": 0,
        "features": list(preprocessor.features),
        "labels": {"negative": "no", "positive": "yes"},
        "threshold": {"value": 0.4},
        "temperature": temperature,
    }
    return Predictor(model=model, card=card, folder=Path("."), device=torch.device("cpu"), preprocessor=preprocessor)


def onnx_feeds(session: object, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The README's recipe: numbers as float64 with NaN for blanks, everything else as stripped text."""
    feeds = {}
    for node in session.get_inputs():  # type: ignore[attr-defined]
        column = frame[node.name]
        if node.type == "tensor(double)":
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        else:
            values = column.astype(str).str.strip().to_numpy(dtype=object)
        feeds[node.name] = values.reshape(-1, 1)
    return feeds


def hostile_rows() -> pd.DataFrame:
    """Rows at the edges: infinities, huge numbers, unseen levels, spellings of blanks and booleans, exact knots."""
    frame = raw_frame(60, seed=5)
    edge = pd.DataFrame(
        {
            "age": [np.inf, -np.inf, 1e308, -1e308, 0.0, 40.0, 200.0, np.nan, 41.0, -5.0],
            "income": [1e-300, 5e4, np.nan, 1e300, 2e4, 3e4, 4e4, 5e4, 6e4, 0.0],
            "flat": [7.0, 8.0, np.nan, 6.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0],
            "city": ["Marseille", "", "nan", "None", "<blank>", "Rare", "Paris", "NA", "Lille", "Lyon"],
            "member": ["TRUE", "False", "true", "fAlSe", "", "maybe", "True", "false", "True", "False"],
            "smoker": ["yes", "no", "", "perhaps", "yes", "no", "yes", "no", "yes", "no"],
            "grade": ["3.0", "1", "", "9", "nan", "2.0", "4", "3", "1.0", "2"],
        }
    )
    return pd.concat([frame.astype(object), edge.astype(object)], ignore_index=True)


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_onnx_matches_the_predictor_on_raw_rows(tmp_path: Path, scaling: str, activation: str) -> None:
    predictor = make_predictor(scaling, activation, temperature=1.7)
    path = tmp_path / "model.onnx"
    summary = export_onnx(predictor, path)
    assert summary.path == path and path.stat().st_size == summary.bytes
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(predictor.feature_names)
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES)
    rows = hostile_rows()
    expected = predictor.predict_proba(rows)
    probability, logit, positive = session.run(None, onnx_feeds(session, rows))
    assert probability.dtype == np.float32 and probability.shape == (len(rows),)
    np.testing.assert_allclose(probability, expected, atol=1e-6)
    assert 0.05 < expected.mean() < 0.95 and expected.std() > 0.05  # the test would see a wrong encoding
    with torch.no_grad():
        torch_logits = predictor.model(torch.from_numpy(predictor.inputs(rows)[0])).numpy()
    np.testing.assert_allclose(logit, torch_logits, rtol=1e-5, atol=1e-5)
    decided = np.abs(expected - predictor.threshold) > 1e-6
    assert (positive == (expected >= predictor.threshold))[decided].all()


@pytest.mark.parametrize("scaling", SCALINGS)
def test_the_graph_reproduces_the_preprocessed_matrix(scaling: str) -> None:
    """The preprocessing alone, compared exactly: the graph's network input against Preprocessor.transform."""
    import onnx

    predictor = make_predictor(scaling)
    model = build_onnx_model(predictor)
    concat = next(n for n in model.graph.node if n.op_type == "Concat")
    model.graph.output.append(onnx.helper.make_tensor_value_info(concat.output[0], onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rows = hostile_rows()
    matrix = session.run([concat.output[0]], onnx_feeds(session, rows))[0]
    expected, _ = predictor.inputs(rows)
    assert matrix.shape == expected.shape == (len(rows), predictor.preprocessor.n_outputs)
    np.testing.assert_array_equal(matrix, expected)


def test_metadata_carries_threshold_labels_and_inputs(tmp_path: Path) -> None:
    import json

    predictor = make_predictor("robust")
    export_onnx(predictor, tmp_path / "m.onnx")
    meta = ort.InferenceSession(str(tmp_path / "m.onnx")).get_modelmeta().custom_metadata_map
    assert float(meta["hpo.threshold"]) == 0.4
    assert json.loads(meta["hpo.labels"]) == {"negative": "no", "positive": "yes"}
    inputs = {d["name"]: d for d in json.loads(meta["hpo.inputs"])}
    assert inputs["age"]["type"] == "tensor(double)" and inputs["city"]["type"] == "tensor(string)"
    assert inputs["city"]["encoding"] == "one_hot" and "Rare" not in inputs["city"]["levels"]
    assert json.loads(meta["hpo.network_inputs"]) == list(predictor.preprocessor.output_names)


def test_refusals_are_hpo_errors_and_write_nothing(tmp_path: Path) -> None:
    predictor = make_predictor("standard")
    with pytest.raises(ExportError, match="opset must be a whole number >= 13, but got opset=11"):
        export_onnx(predictor, tmp_path / "m.onnx", opset=11)
    with pytest.raises(ExportError, match=r"the folder .*nowhere does not exist"):
        export_onnx(predictor, tmp_path / "nowhere" / "m.onnx")
    train = raw_frame(100, 0).rename(columns={"age": "probability"})
    columns = infer_columns(train, features=list(train.columns), where="train")
    clashing = Predictor(
        model=MLP(20),
        card={"features": list(train.columns), "labels": {"negative": 0, "positive": 1}},
        folder=tmp_path,
        device=torch.device("cpu"),
        preprocessor=fit_preprocessor(train, columns),
    )
    with pytest.raises(ExportError, match="feature column 'probability' has the name of an output") as caught:
        export_onnx(clashing, tmp_path / "m.onnx")
    assert isinstance(caught.value, HpoError)
    with pytest.raises(ExportError, match="only one model can be exported, but got a list"):
        export_onnx([predictor, predictor], tmp_path / "m.onnx")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_missing_onnx_package_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ExportError, match=r"pip install 'hpo\[export\]'"):
        export_onnx(make_predictor("standard"), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
