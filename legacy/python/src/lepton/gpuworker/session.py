"""One ONNX Runtime session per loaded version: signature checks, batched runs, footprint.

Everything here is synchronous and knows ONNX but not HTTP or asyncio. A request becomes an
:class:`Item` only after its tensors match the model's inputs (name, datatype, rank, fixed dims);
otherwise :class:`InvalidInput` names the expected signature. :meth:`OnnxVersion.run_items` runs a
batch of items as one ``session.run`` (concatenating along the batch dimension) and splits every
output back by rows, refusing a batch whose outputs do not have exactly one row per input row.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from lepton.gpuworker.errors import BatchFailed, InferenceFailed
from lepton.gpuworker.providers import ProviderChoice
from lepton.gpuworker.scores import pick_score_output, row_scores, row_top1
from lepton.gpuworker.tensors import ort_type_to_datatype, ort_type_to_numpy
from lepton.shared.errors import InvalidInput, InvalidModel

# ORT holds each initializer once and may keep a pre-packed copy of GEMM/Conv weights beside it;
# twice the raw bytes plus a fixed arena/session overhead is a safe upper estimate.
_FOOTPRINT_FACTOR = 2.0
_FOOTPRINT_OVERHEAD = 8 * 1024 * 1024


def estimate_footprint(path: Path) -> int:
    """Bytes a session of the model at ``path`` will hold, from its initializers (not loaded)."""
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise InvalidModel(f"{path.name} is not a readable ONNX file: {err}") from None
    total = 0
    for init in proto.graph.initializer:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
        total += int(np.prod(init.dims, dtype=np.int64)) * itemsize
    return int(total * _FOOTPRINT_FACTOR) + _FOOTPRINT_OVERHEAD


@dataclass(frozen=True)
class TensorInfo:
    name: str
    ort_type: str
    datatype: str  # protocol name, e.g. FP32
    shape: tuple[int | None, ...]  # None = symbolic

    def describe(self) -> str:
        dims = ",".join("-1" if d is None else str(d) for d in self.shape)
        return f"{self.name} {self.datatype}[{dims}]"

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "datatype": self.datatype,
            "shape": [-1 if d is None else d for d in self.shape],
        }


@dataclass(frozen=True)
class Item:
    """One request's validated inputs, ready to batch."""

    feeds: dict[str, np.ndarray]
    rows: int
    key: tuple[tuple[str, tuple[int, ...]], ...]  # non-batch shapes: only equal keys share a batch


@dataclass(frozen=True)
class ItemResult:
    outputs: dict[str, np.ndarray]
    nonfinite: bool
    scores: np.ndarray  # one score per row (binned later, off the request path)
    score_output: str
    compute_ms: float  # this item's share of its batch's ORT time
    batch_rows: int

    @property
    def top1(self) -> np.ndarray:
        """The predicted class per row (computed only when a shadow comparison needs it)."""
        return row_top1(np.atleast_1d(self.outputs[self.score_output]))


def _info(arg: ort.NodeArg) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or ()))
    return TensorInfo(arg.name, arg.type, ort_type_to_datatype(arg.type), shape)


class OnnxVersion:
    """A loaded model version: its session, signature and batch limits."""

    def __init__(
        self,
        model: str,
        version: str,
        path: Path,
        choice: ProviderChoice,
        *,
        max_batch_size: int,
    ) -> None:
        self.model = model
        self.version = version
        self.provider = choice.name
        try:
            self.session = ort.InferenceSession(
                str(path), choice.session_options(), providers=choice.ort_providers()
            )
        except Exception as err:
            raise InvalidModel(f"{model} {version}: ONNX Runtime cannot load it: {err}") from None
        self.inputs = tuple(_info(a) for a in self.session.get_inputs())
        self.outputs = tuple(_info(a) for a in self.session.get_outputs())
        self._output_names = [o.name for o in self.outputs]
        self._score_output = pick_score_output(
            self._output_names,
            [len(o.shape) for o in self.outputs],
            [o.datatype in ("FP16", "FP32", "FP64") for o in self.outputs],
        )
        # Requests can share a batch only if every input and output is indexed by a symbolic
        # leading dimension; a fixed leading dimension caps the batch at one request.
        self._float_outputs = tuple(
            o.name for o in self.outputs if o.datatype in ("FP16", "FP32", "FP64")
        )
        self.batchable = all(
            len(t.shape) >= 1 and t.shape[0] is None for t in self.inputs + self.outputs
        )
        self.max_batch_size = max_batch_size if self.batchable else 1
        self.signature_text = (
            "inputs: "
            + "; ".join(t.describe() for t in self.inputs)
            + " — outputs: "
            + "; ".join(t.describe() for t in self.outputs)
        )

    # -- request checks ---------------------------------------------------------------------

    def prepare(self, tensors: Mapping[str, tuple[str, np.ndarray]]) -> Item:
        """Check ``name → (datatype, array)`` against the inputs; raise InvalidInput if wrong."""
        expected = {t.name for t in self.inputs}
        given = set(tensors)
        if given != expected:
            missing, extra = sorted(expected - given), sorted(given - expected)
            detail = "; ".join(
                part
                for part in (
                    f"missing {missing}" if missing else "",
                    f"unexpected {extra}" if extra else "",
                )
                if part
            )
            self._bad(f"input names do not match ({detail})")
        feeds: dict[str, np.ndarray] = {}
        rows: int | None = None
        key: list[tuple[str, tuple[int, ...]]] = []
        for spec in self.inputs:
            datatype, array = tensors[spec.name]
            if datatype != spec.datatype:
                self._bad(f"input {spec.name!r} has datatype {datatype}, expected {spec.datatype}")
            if array.ndim != len(spec.shape) or any(
                want is not None and got != want
                for got, want in zip(array.shape, spec.shape, strict=True)
            ):
                self._bad(
                    f"input {spec.name!r} has shape {list(array.shape)}, expected "
                    f"{[-1 if d is None else d for d in spec.shape]} (-1 = any size)"
                )
            n = array.shape[0] if array.ndim else 1
            if self.batchable and rows is not None and n != rows:
                self._bad(f"inputs disagree on the batch size ({rows} vs {n} rows)")
            rows = n if rows is None else rows
            feeds[spec.name] = array
            key.append((spec.name, tuple(array.shape[1:])))
        if self.batchable and rows == 0:
            self._bad("the batch dimension is 0: send at least one row")
        return Item(feeds, rows or 1, tuple(key))

    def _bad(self, problem: str) -> None:
        raise InvalidInput(
            f"{self.model} {self.version}: {problem}; expected signature {self.signature_text}"
        )

    # -- running ------------------------------------------------------------------------------

    def run_items(self, items: Sequence[Item]) -> list[ItemResult]:
        """Run ``items`` as one batch and split the outputs back, one result per item."""
        if len(items) == 1:
            feeds = items[0].feeds
        else:
            feeds = {
                spec.name: np.concatenate([i.feeds[spec.name] for i in items], axis=0)
                for spec in self.inputs
            }
        total_rows = sum(i.rows for i in items)
        started = time.perf_counter()
        try:
            # Every output, in declaration order (the names are passed so ORT does not rebuild the
            # list on each run).
            values = self.session.run(self._output_names, feeds)
        except Exception as err:
            raise InferenceFailed(
                f"{self.model} {self.version}: ONNX Runtime failed: {err}"
            ) from None
        compute_ms = (time.perf_counter() - started) * 1000.0
        outputs = dict(zip(self._output_names, values, strict=True))
        # Scores are computed once per batch (one numpy call, not one per request).
        scores = row_scores(np.atleast_1d(outputs[self._score_output]))
        if len(items) == 1:
            nonfinite = any(not np.isfinite(outputs[n]).all() for n in self._float_outputs)
            return [
                ItemResult(outputs, nonfinite, scores, self._score_output, compute_ms, total_rows)
            ]
        for name, value in outputs.items():
            if value.ndim == 0 or value.shape[0] != total_rows:
                raise BatchFailed(
                    f"{self.model} {self.version}: output {name!r} has "
                    f"{value.shape[0] if value.ndim else 0} rows for {total_rows} input rows"
                )
        finite_rows = np.ones(total_rows, dtype=bool)
        for name in self._float_outputs:
            finite_rows &= np.isfinite(outputs[name]).reshape(total_rows, -1).all(axis=1)
        results: list[ItemResult] = []
        start = 0
        for item in items:
            stop = start + item.rows
            results.append(
                ItemResult(
                    {name: value[start:stop] for name, value in outputs.items()},
                    not finite_rows[start:stop].all(),
                    scores[start:stop],
                    self._score_output,
                    compute_ms * item.rows / total_rows,
                    total_rows,
                )
            )
            start = stop
        return results

    def warm_up_item(self) -> Item:
        """A small all-zeros request of the right signature (symbolic dims = 1)."""
        tensors: dict[str, tuple[str, np.ndarray]] = {}
        for spec in self.inputs:
            dtype = ort_type_to_numpy(spec.ort_type)
            if dtype is None:
                raise InvalidModel(
                    f"{self.model} {self.version}: input {spec.name!r} has type {spec.ort_type}, "
                    "which this worker cannot serve"
                )
            shape = tuple(1 if d is None else d for d in spec.shape)
            tensors[spec.name] = (spec.datatype, np.zeros(shape, dtype))
        return self.prepare(tensors)
