"""Exporting a saved model with its preprocessing as one ONNX graph that runs on raw feature columns.

The graph has one input per feature column, named exactly as the feature, and reproduces
:meth:`hpo.inference.predictor.Predictor.predict_proba` with ONNX operators only (no torch, no hpo, no custom ops):

- **Numeric columns** are ``tensor(double)`` of shape ``[N, 1]``, NaN for a blank. The graph imputes the training
  median, adds the ``name:missing`` indicator where the model has one, scales (``standard``: (x - center) / scale;
  ``robust``: the same, then the smooth clipping x / sqrt(1 + (x/3)^2); ``quantile``: numpy's ``interp`` through the
  stored quantiles, written as comparisons, gathers and arithmetic) and clips to ±``OUTPUT_BOUND``, all in float64
  like :class:`~hpo.data.preprocessing.NumericColumn`, then casts to float32.
- **Categorical columns** are ``tensor(string)`` of shape ``[N, 1]`` holding the level's canonical text (see
  :mod:`hpo.data.preprocessing`). An ``ai.onnx.ml`` ``LabelEncoder`` maps each text to its output; a level the model
  never saw goes to ``<other>`` (one-hot) or 0.5 (binary). Besides the canonical texts the encoder also accepts what
  ``pandas.Series.astype(str)`` makes of a cell: the blank texts (``""``, ``"nan"``, ``"None"``, ``"NA"``,
  ``"<blank>"``, ...), ``True``/``FALSE`` in any case, and ``"3.0"`` for an integer level ``"3"``. What ONNX cannot
  express is stripping surrounding whitespace and rewriting other spellings of numbers (``" 03 "``, ``"3e0"``): the
  caller passes such cells stripped and in canonical form.
- **The network** is rebuilt from the ``state_dict`` as ``Gemm`` and activation nodes (dropout is the identity in
  eval mode), then the temperature and the sigmoid are applied in float64.

Outputs: ``probability`` (float32 ``[N]``, of the positive label), ``logit`` (float32 ``[N]``, before the
temperature) and ``positive`` (bool ``[N]``: probability >= the saved threshold, compared in float64 as
``hpo predict`` does). The threshold, the labels, the temperature and a description of every input are in the model's
``metadata_props`` (keys ``hpo.*``).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from hpo.atomic import atomic_output
from hpo.data.preprocessing import (
    BLANK_LEVEL,
    BLANK_STRINGS,
    OUTPUT_BOUND,
    SMOOTH_CLIP,
    CategoricalColumn,
    NumericColumn,
)
from hpo.errors import HpoError
from hpo.inference.predictor import Predictor
from hpo.model import EmbeddedInputs

if TYPE_CHECKING:
    import onnx

__all__ = [
    "EXPORT_FORMATS",
    "MIN_OPSET",
    "OUTPUT_NAMES",
    "ExportError",
    "ExportSummary",
    "build_onnx_model",
    "export_onnx",
]

EXPORT_FORMATS = ("onnx",)
#: The oldest ``ai.onnx`` opset the graph can be written for (``ReduceSum`` and ``Squeeze`` take axes as inputs).
MIN_OPSET = 13
#: The graph's outputs; a feature column cannot have one of these names.
OUTPUT_NAMES = ("probability", "logit", "positive")
_ML_DOMAIN = "ai.onnx.ml"
_ML_OPSET = 2  # LabelEncoder with string keys and float or int64 values
_PRODUCER = "hpo"


class ExportError(HpoError):
    """A model cannot be exported as asked (a missing package, a bad option, or a part with no ONNX equivalent)."""


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ONNX file.
        format: ``"onnx"``.
        opset: the ``ai.onnx`` opset of the graph.
        inputs: per graph input (one per feature column, in feature order): its name, ONNX type and kind.
        outputs: the graph's output names.
        scaling: the numeric scaling built into the graph.
        network_inputs: the width of the preprocessed matrix the network reads.
        threshold: the saved decision threshold (also in the metadata).
        labels: ``(negative, positive)`` in the training data's own values (also in the metadata).
        bytes: the size of the file.
    """

    path: Path
    format: str
    opset: int
    inputs: tuple[tuple[str, str, str], ...]
    outputs: tuple[str, ...]
    scaling: str
    network_inputs: int
    threshold: float
    labels: tuple[Any, Any]
    bytes: int

    def to_json(self) -> dict[str, Any]:
        """The summary in plain JSON types."""
        return {
            "path": str(self.path),
            "format": self.format,
            "opset": self.opset,
            "inputs": [{"name": n, "type": t, "kind": k} for n, t, k in self.inputs],
            "outputs": list(self.outputs),
            "scaling": self.scaling,
            "network_inputs": self.network_inputs,
            "threshold": self.threshold,
            "labels": {"negative": self.labels[0], "positive": self.labels[1]},
            "bytes": self.bytes,
        }


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ExportError(
            "exporting to ONNX needs the onnx package, which is not installed; install it with "
            "`pip install 'hpo[export]'` (or `pip install onnx`)"
        ) from None
    return onnx


class _GraphBuilder:
    """Nodes and constants of one graph, with value names that never collide with the feature or output names."""

    def __init__(self, onnx_module: Any, reserved: set[str]) -> None:
        self.onnx = onnx_module
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._reserved = set(reserved)
        self._counter = itertools.count()

    def fresh(self, hint: str) -> str:
        while True:
            name = f"{hint}#{next(self._counter)}"
            if name not in self._reserved:
                self._reserved.add(name)
                return name

    def const(self, value: Any, hint: str, dtype: Any = np.float64) -> str:
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, *, output: str | None = None, **attrs: Any) -> str:
        out = output if output is not None else self.fresh(hint)
        domain = _ML_DOMAIN if op_type == "LabelEncoder" else ""
        self.nodes.append(
            self.onnx.helper.make_node(
                op_type, inputs, [out], name=self.fresh(f"{hint}/{op_type}"), domain=domain, **attrs
            )
        )
        return out


def _interp(g: _GraphBuilder, x: str, xp: np.ndarray, fp: np.ndarray, hint: str) -> str:
    """``np.interp(x, xp, fp)`` for ``x`` [N, 1] float64 with no NaN and non-decreasing ``xp``, as numpy computes it.

    numpy finds ``j``, the last index with ``xp[j] <= x``; it returns ``fp[0]`` left of ``xp[0]``, ``fp[-1]`` from
    ``xp[-1]`` on, ``fp[j]`` where ``x == xp[j]``, and ``slope[j] * (x - xp[j]) + fp[j]`` otherwise (with a fallback
    from the right end of the segment when that overflows to NaN). ``j`` is counted with one comparison per stored
    quantile: ``N x len(xp)`` booleans, so feed very large inputs in batches.
    """
    m = len(xp)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slopes = (fp[1:] - fp[:-1]) / (xp[1:] - xp[:-1])
    slopes = np.where(xp[1:] == xp[:-1], 0.0, slopes)  # a segment of zero width is never interpolated in
    below = g.op("LessOrEqual", [g.const(xp, f"{hint}/xp"), x], f"{hint}/le")
    count = g.op(
        "ReduceSum",
        [g.op("Cast", [below], f"{hint}/le_int", to=g.onnx.TensorProto.INT64), g.const([1], f"{hint}/axis", np.int64)],
        f"{hint}/count",
        keepdims=1,
    )
    j = g.op("Sub", [count, g.const(1, f"{hint}/one", np.int64)], f"{hint}/j")
    segment = g.op(
        "Clip", [j, g.const(0, f"{hint}/lo", np.int64), g.const(m - 2, f"{hint}/hi", np.int64)], f"{hint}/segment"
    )

    def gather(values: np.ndarray, what: str) -> str:
        return g.op("Gather", [g.const(values, f"{hint}/{what}"), segment], f"{hint}/{what}_at", axis=0)

    x_lo, x_hi = gather(xp[:-1], "x_lo"), gather(xp[1:], "x_hi")
    f_lo, f_hi = gather(fp[:-1], "f_lo"), gather(fp[1:], "f_hi")
    slope = gather(slopes, "slope")
    inner = g.op("Add", [g.op("Mul", [slope, g.op("Sub", [x, x_lo], f"{hint}/dx")], f"{hint}/rise"), f_lo], hint)
    from_right = g.op(
        "Add", [g.op("Mul", [slope, g.op("Sub", [x, x_hi], f"{hint}/dx_hi")], f"{hint}/fall"), f_hi], f"{hint}/right"
    )
    from_right = g.op(
        "Where",
        [
            g.op(
                "And",
                [g.op("IsNaN", [from_right], f"{hint}/nan2"), g.op("Equal", [f_lo, f_hi], f"{hint}/flat")],
                f"{hint}/flat_nan",
            ),
            f_lo,
            from_right,
        ],
        f"{hint}/right_or_flat",
    )
    value = g.op("Where", [g.op("IsNaN", [inner], f"{hint}/nan"), from_right, inner], f"{hint}/finite")
    value = g.op("Where", [g.op("Equal", [x, x_lo], f"{hint}/exact"), f_lo, value], f"{hint}/at_knot")
    value = g.op(
        "Where",
        [
            g.op("Less", [j, g.const(0, f"{hint}/zero", np.int64)], f"{hint}/left"),
            g.const(fp[0], f"{hint}/f_first"),
            value,
        ],
        f"{hint}/left_end",
    )
    last = g.op("GreaterOrEqual", [j, g.const(m - 1, f"{hint}/last", np.int64)], f"{hint}/right_end")
    return g.op("Where", [last, g.const(fp[-1], f"{hint}/f_last"), value], f"{hint}/value")


def _numeric(g: _GraphBuilder, column: NumericColumn, scaling: str) -> list[str]:
    """The float32 outputs of a numeric column: the scaled value, then the missing indicator if it has one."""
    name = column.name
    blank = g.op("IsNaN", [name], f"{name}/blank")
    x = g.op("Where", [blank, g.const(column.median, f"{name}/median"), name], f"{name}/imputed")
    if scaling == "quantile":
        q = np.asarray(column.quantiles, dtype=np.float64)
        s = np.asarray(column.scores, dtype=np.float64)
        forward = _interp(g, x, q, s, f"{name}/interp")
        backward = _interp(g, g.op("Neg", [x], f"{name}/neg"), -q[::-1], -s[::-1], f"{name}/interp_rev")
        diff = g.op("Sub", [forward, backward], f"{name}/diff")
        z = g.op("Mul", [diff, g.const(0.5, f"{name}/half")], f"{name}/scaled")
    else:
        centered = g.op("Sub", [x, g.const(column.center, f"{name}/center")], f"{name}/centered")
        z = g.op("Div", [centered, g.const(column.scale, f"{name}/scale")], f"{name}/standardised")
        bound = (g.const(-OUTPUT_BOUND, f"{name}/min"), g.const(OUTPUT_BOUND, f"{name}/max"))
        z = g.op("Clip", [z, *bound], f"{name}/clipped")
        if scaling == "robust":
            ratio = g.op("Div", [z, g.const(SMOOTH_CLIP, f"{name}/c")], f"{name}/ratio")
            one_plus = g.op(
                "Add", [g.const(1.0, f"{name}/one"), g.op("Mul", [ratio, ratio], f"{name}/ratio2")], f"{name}/one_plus"
            )
            z = g.op("Div", [z, g.op("Sqrt", [one_plus], f"{name}/root")], f"{name}/smooth_clipped")
    outputs = [g.op("Cast", [z], f"{name}/float", to=g.onnx.TensorProto.FLOAT)]
    if column.indicator:
        outputs.append(g.op("Cast", [blank], f"{name}/missing", to=g.onnx.TensorProto.FLOAT))
    return outputs


def _spellings(level: str) -> list[str]:
    """``level`` and the other texts that mean it (see the module docstring), canonical first."""
    if level == BLANK_LEVEL:
        return [BLANK_LEVEL, *sorted(BLANK_STRINGS)]
    if level in ("true", "false"):
        cases = ("".join(chars) for chars in itertools.product(*((c.lower(), c.upper()) for c in level)))
        return [level, *sorted(set(cases) - {level})]
    digits = level[1:] if level.startswith("-") else level
    if digits.isdigit() and (digits == "0" or not digits.startswith("0")) and len(digits) < 16:
        return [level, f"{level}.0"]  # how pandas writes an integer code of a float column (one with blanks)
    return [level]


def _categorical(g: _GraphBuilder, column: CategoricalColumn) -> str:
    """The float32 output(s) of a categorical column: the 0/1 (0.5) value, or the one-hot block with ``<other>``."""
    name = column.name
    keys: list[str] = []
    positions: list[int] = []
    for position, level in enumerate(column.levels):
        for text in _spellings(level):
            keys.append(text)
            positions.append(position)
    if column.encoding == "binary":
        return g.op(
            "LabelEncoder",
            [name],
            f"{name}/binary",
            keys_strings=keys,
            values_floats=[float(p) for p in positions],
            default_float=0.5,
        )
    other = len(column.levels)
    index = g.op(
        "LabelEncoder", [name], f"{name}/index", keys_strings=keys, values_int64s=positions, default_int64=other
    )
    hot = g.op("Equal", [index, g.const(np.arange(other + 1), f"{name}/positions", np.int64)], f"{name}/hot")
    return g.op("Cast", [hot], f"{name}/one_hot", to=g.onnx.TensorProto.FLOAT)


def _periodic_embeddings(g: _GraphBuilder, layer: EmbeddedInputs, x: str, hint: str) -> str:
    """:class:`hpo.model.EmbeddedInputs` as ONNX nodes: the embedded columns through sin/cos of learned frequencies,
    a per-input linear map (one Einsum) and ReLU, flattened, then the passed-through columns."""
    periodic = layer.periodic
    embedded = layer.embedded.cpu().numpy().astype(np.int64)
    passed = layer.passed.cpu().numpy().astype(np.int64)
    frequencies = (2 * np.pi * periodic.frequencies.detach().cpu().numpy()).astype(np.float32)  # (k, f)
    weight = periodic.weight.detach().cpu().numpy().astype(np.float32)  # (k, 2f, d)
    bias = periodic.bias.detach().cpu().numpy().astype(np.float32)  # (k, d)
    columns = g.op("Gather", [x, g.const(embedded, f"{hint}.embedded", np.int64)], f"{hint}/columns", axis=1)
    angles = g.op(
        "Mul",
        [g.op("Unsqueeze", [columns, g.const([2], f"{hint}/axis", np.int64)], f"{hint}/unsqueeze"),
         g.const(frequencies, f"{hint}.frequencies", np.float32)],
        f"{hint}/angles",
    )  # fmt: skip
    features = g.op(
        "Concat", [g.op("Sin", [angles], f"{hint}/sin"), g.op("Cos", [angles], f"{hint}/cos")], f"{hint}/sincos", axis=2
    )
    mapped = g.op(
        "Einsum", [features, g.const(weight, f"{hint}.weight", np.float32)], f"{hint}/map", equation="nkf,kfd->nkd"
    )
    out = g.op(
        "Relu", [g.op("Add", [mapped, g.const(bias, f"{hint}.bias", np.float32)], f"{hint}/bias")], f"{hint}/relu"
    )
    flat = g.op("Reshape", [out, g.const([0, -1], f"{hint}/shape", np.int64)], f"{hint}/flat")
    if not len(passed):
        return flat
    rest = g.op("Gather", [x, g.const(passed, f"{hint}.passed", np.int64)], f"{hint}/passed", axis=1)
    return g.op("Concat", [flat, rest], f"{hint}/out", axis=1)


def _network(g: _GraphBuilder, model: nn.Module, x: str) -> str:
    """The MLP's layers as ONNX nodes on the float32 matrix ``x``; returns its [N, 1] logits."""
    net = getattr(model, "net", None)
    if not isinstance(net, nn.Sequential):
        raise ExportError(
            f"the model is a {type(model).__name__} without a `net` Sequential; only hpo.model.MLP can be exported"
        )
    for i, layer in enumerate(net):
        hint = f"net.{i}"
        if isinstance(layer, nn.Linear):
            weight = layer.weight.detach().cpu().numpy().astype(np.float32)
            inputs = [x, g.const(weight, f"{hint}.weight", np.float32)]
            if layer.bias is not None:
                inputs.append(g.const(layer.bias.detach().cpu().numpy(), f"{hint}.bias", np.float32))
            x = g.op("Gemm", inputs, hint, transB=1)
        elif isinstance(layer, EmbeddedInputs):
            x = _periodic_embeddings(g, layer, x, hint)
        elif isinstance(layer, nn.Dropout):
            continue  # the identity in eval mode
        elif isinstance(layer, nn.ReLU):
            x = g.op("Relu", [x], hint)
        elif isinstance(layer, nn.Tanh):
            x = g.op("Tanh", [x], hint)
        elif isinstance(layer, nn.SiLU):
            x = g.op("Mul", [x, g.op("Sigmoid", [x], f"{hint}/gate")], hint)
        elif isinstance(layer, nn.LeakyReLU):
            x = g.op("LeakyRelu", [x], hint, alpha=float(layer.negative_slope))
        elif isinstance(layer, nn.ELU):
            x = g.op("Elu", [x], hint, alpha=float(layer.alpha))
        elif isinstance(layer, nn.GELU) and layer.approximate == "none":
            # 0.5 x (1 + erf(x / sqrt 2)), the exact GELU torch uses by default (the Gelu op needs opset 20)
            scaled = g.op("Mul", [x, g.const(1.0 / np.sqrt(2.0), f"{hint}/inv_sqrt2", np.float32)], f"{hint}/s")
            erf = g.op("Add", [g.op("Erf", [scaled], f"{hint}/erf"), g.const(1.0, f"{hint}/one", np.float32)], hint)
            x = g.op("Mul", [g.op("Mul", [x, erf], f"{hint}/xe"), g.const(0.5, f"{hint}/half", np.float32)], hint)
        else:
            raise ExportError(
                f"layer {hint} ({type(layer).__name__}) has no ONNX translation here; hpo.model.MLP builds Linear, "
                "Dropout and the activations relu, gelu, silu, tanh, leaky_relu and elu"
            )
    return x


def _input_descriptions(predictor: Predictor) -> list[dict[str, Any]]:
    described: list[dict[str, Any]] = []
    for column in predictor.preprocessor.columns:
        if isinstance(column, NumericColumn):
            described.append(
                {
                    "name": column.name,
                    "kind": "numeric",
                    "type": "tensor(double)",
                    "shape": ["N", 1],
                    "blank": "NaN",
                    "scaling": predictor.preprocessor.scaling,
                    "median": column.median,
                }
            )
        else:
            described.append(
                {
                    "name": column.name,
                    "kind": "categorical",
                    "type": "tensor(string)",
                    "shape": ["N", 1],
                    "blank": "empty text (or <blank>, nan, None, NA)",
                    "encoding": column.encoding,
                    "levels": list(column.levels),
                }
            )
    return described


def build_onnx_model(predictor: Predictor, *, opset: int = 17) -> onnx.ModelProto:
    """The ONNX model of ``predictor``, preprocessing included, checked but not written (see :func:`export_onnx`).

    Raises:
        ExportError: ``predictor`` is not one model (an ensemble), onnx is not installed, ``opset`` is out of range,
            a feature is named like an output, or the network has a layer with no translation.
    """
    if not isinstance(predictor, Predictor):
        raise ExportError(
            f"only one model can be exported, but got a {type(predictor).__name__}; load a single model, e.g. "
            "hpo.load_best(study, trial=N) or hpo.load_model(folder of one model)"
        )
    onnx = _import_onnx()
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise ExportError(f"opset must be a whole number >= {MIN_OPSET}, but got opset={opset!r}")
    if opset > onnx.defs.onnx_opset_version():
        raise ExportError(
            f"opset must be at most {onnx.defs.onnx_opset_version()} (the newest this onnx {onnx.__version__} "
            f"knows), but got opset={opset}"
        )
    preprocessor = predictor.preprocessor
    features = list(preprocessor.features)
    clashing = sorted(set(features) & set(OUTPUT_NAMES))
    if clashing:
        raise ExportError(
            f"feature column {clashing[0]!r} has the name of an output of the exported graph "
            f"({', '.join(OUTPUT_NAMES)}); rename the column in the data and train again to export it"
        )
    g = _GraphBuilder(onnx, {*features, *OUTPUT_NAMES})
    tensor = onnx.TensorProto
    blocks: list[str] = []
    graph_inputs = []
    for column in preprocessor.columns:
        if isinstance(column, NumericColumn):
            graph_inputs.append(onnx.helper.make_tensor_value_info(column.name, tensor.DOUBLE, ["N", 1]))
            blocks += _numeric(g, column, preprocessor.scaling)
        else:
            graph_inputs.append(onnx.helper.make_tensor_value_info(column.name, tensor.STRING, ["N", 1]))
            blocks.append(_categorical(g, column))
    matrix = g.op("Concat", blocks, "inputs", axis=1) if len(blocks) > 1 else blocks[0]
    logits = _network(g, predictor.model, matrix)
    g.op("Reshape", [logits, g.const([-1], "flat", np.int64)], "logit", output="logit")
    scaled = g.op("Cast", ["logit"], "logit64", to=tensor.DOUBLE)
    if predictor.temperature != 1.0:
        scaled = g.op("Div", [scaled, g.const(predictor.temperature, "temperature")], "tempered")
    probability = g.op("Sigmoid", [scaled], "probability64")
    g.op("Cast", [probability], "probability", output="probability", to=tensor.FLOAT)
    g.op("GreaterOrEqual", [probability, g.const(predictor.threshold, "threshold")], "positive", output="positive")
    graph = onnx.helper.make_graph(
        g.nodes,
        f"hpo-{predictor.card.get('study', 'model')}",
        graph_inputs,
        [
            onnx.helper.make_tensor_value_info("probability", tensor.FLOAT, ["N"]),
            onnx.helper.make_tensor_value_info("logit", tensor.FLOAT, ["N"]),
            onnx.helper.make_tensor_value_info("positive", tensor.BOOL, ["N"]),
        ],
        g.initializers,
    )
    # make_model_gen_version: the oldest IR version that holds these opsets, so that older runtimes read the file
    model = onnx.helper.make_model_gen_version(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", opset), onnx.helper.make_opsetid(_ML_DOMAIN, _ML_OPSET)],
        producer_name=_PRODUCER,
        doc_string=(
            "hpo binary classifier with its preprocessing: one input per feature column (numeric: double [N,1], NaN "
            "= blank; categorical: string [N,1], the canonical level text, '' = blank); outputs probability (of the "
            "positive label), logit and positive (probability >= threshold)"
        ),
    )
    negative, positive = predictor.labels
    onnx.helper.set_model_props(
        model,
        {
            "hpo.study": str(predictor.card.get("study", "")),
            "hpo.trial": str(predictor.card.get("trial", "")),
            "hpo.threshold": repr(predictor.threshold),
            "hpo.temperature": repr(predictor.temperature),
            "hpo.labels": json.dumps({"negative": negative, "positive": positive}),
            "hpo.features": json.dumps(features),
            "hpo.network_inputs": json.dumps(list(preprocessor.output_names)),
            "hpo.inputs": json.dumps(_input_descriptions(predictor)),
        },
    )
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:  # a bug in this module, not bad input: say so plainly
        raise RuntimeError(f"the exported ONNX graph is invalid: {exc}") from exc
    return model


def export_onnx(predictor: Predictor, path: Path, *, opset: int = 17) -> ExportSummary:
    """Write ``predictor`` (its preprocessing, network, temperature and threshold) as one ONNX file.

    The graph takes one input per feature column, named as the feature: numeric columns as ``tensor(double)``
    ``[N, 1]`` (NaN for blanks), categorical ones as ``tensor(string)`` ``[N, 1]`` holding the canonical level text
    (stripped of surrounding whitespace; ``""`` for a blank). It returns ``probability``, ``logit`` and ``positive``,
    the same numbers as ``hpo predict`` (see the module docstring). The file is written atomically.

    Args:
        predictor: a loaded model (:func:`hpo.load_model` or :func:`hpo.load_best`).
        path: the ONNX file to write (replaced if it exists).
        opset: the ``ai.onnx`` opset to write, at least :data:`MIN_OPSET`.

    Returns:
        What was written.

    Raises:
        ExportError: as :func:`build_onnx_model`, or the folder of ``path`` does not exist.

    Example:
        >>> summary = export_onnx(hpo.load_best("titanic"), Path("titanic.onnx"))  # doctest: +SKIP
        >>> import onnxruntime  # no torch or hpo needed from here on  # doctest: +SKIP
        >>> session = onnxruntime.InferenceSession("titanic.onnx")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ExportError(f"{path}: the folder {path.parent} does not exist; create it or pick another output path")
    model = build_onnx_model(predictor, opset=opset)
    payload = model.SerializeToString()
    with atomic_output(path, "wb") as handle:
        handle.write(payload)
    inputs = tuple((d["name"], d["type"], d["kind"]) for d in _input_descriptions(predictor))
    return ExportSummary(
        path=path,
        format="onnx",
        opset=opset,
        inputs=inputs,
        outputs=OUTPUT_NAMES,
        scaling=predictor.preprocessor.scaling,
        network_inputs=predictor.preprocessor.n_outputs,
        threshold=predictor.threshold,
        labels=predictor.labels,
        bytes=len(payload),
    )
