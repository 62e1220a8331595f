"""The benchmark's peer server: KServe's Python model server serving ONNX files with ONNX Runtime.

Runs under the peer virtualenv (``.venv-peer``, see ``make bench-peer-env``), never under Lepton's:
KServe pins its own fastapi/pydantic/uvicorn, so this file imports neither ``lepton`` nor anything
that venv lacks. ``bench/worker_bench.py`` starts it pinned to the worker's core and drives it
with the same ``wrk`` bodies as Lepton.

It is a plain custom ``kserve.Model``: a synchronous ``predict`` (which ``Model.__call__`` runs
directly on the event loop) that takes the decoded ``InferRequest``'s inputs as numpy arrays, runs
the session and answers an ``InferResponse``, encoded by KServe (binary outputs where the request
asks for them). KServe does accept Triton's binary tensor extension on input too, but its decoder
(``InferRequest.from_bytes``) turns the raw bytes into a Python list, which ``as_numpy`` turns back
into an array: that cost is KServe's own and is left in. The stack is KServe's as shipped —
uvicorn with uvloop/httptools, 1 worker, its middleware and Prometheus histograms — with gRPC off
(the bench speaks HTTP only) and per-request log lines off, since Lepton's worker runs at log
level ``warning`` too.
ONNX Runtime gets the bench's settings: CPU provider, 1 intra-op and 1 inter-op thread.

Usage: ``python bench/_kserve_server.py --http_port PORT NAME=MODEL.onnx [NAME=MODEL.onnx ...]``
(``--http_port`` and the other flags are KServe's own ``model_server.parser``).
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from kserve import logging as kserve_logging
from kserve.utils.numpy_codec import from_np_dtype
from kserve.utils.utils import generate_uuid


class OnnxModel(Model):  # type: ignore[misc]  # kserve ships no type information
    """One ONNX file behind KServe's v2 endpoints (``/v2/models/<name>/infer``)."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.session: ort.InferenceSession | None = None
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.ready = True
        return bool(self.ready)

    def predict(
        self,
        payload: InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        assert self.session is not None
        feeds = {tensor.name: tensor.as_numpy() for tensor in payload.inputs}
        names = [o.name for o in self.session.get_outputs()]
        results: list[np.ndarray] = self.session.run(names, feeds)
        # Arrays are handed over as they are: InferResponse.to_rest encodes each one once, as
        # JSON or as binary where the request asks for it (Triton's binary tensor extension).
        outputs = [
            InferOutput(name, list(array.shape), from_np_dtype(array.dtype), data=array)
            for name, array in zip(names, results, strict=True)
        ]
        return InferResponse(
            response_id=payload.id or generate_uuid(),  # as kserve's own get_predict_response
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )


def _quiet_logging() -> None:
    """KServe's own log config with every logger at WARNING: no access or per-request lines."""
    config: dict[str, Any] = copy.deepcopy(kserve_logging.KSERVE_LOG_CONFIG)
    for logger in config["loggers"].values():
        logger["level"] = "WARNING"
    kserve_logging.configure_logging(config)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[model_server.parser]
    )
    parser.add_argument("models", nargs="+", metavar="NAME=MODEL.onnx")
    args = parser.parse_args()
    _quiet_logging()
    models = [OnnxModel(*spec.split("=", 1)) for spec in args.models]
    ModelServer(
        http_port=args.http_port,
        workers=1,
        enable_grpc=False,
        enable_latency_logging=False,
    ).start(models)


if __name__ == "__main__":
    main()
