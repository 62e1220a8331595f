"""Errors the inference worker adds to :mod:`lepton.shared.errors`, mapped to HTTP in ``app``.

LeptonError
├── InvalidInput (shared)        400  bad tensor name/dtype/shape, malformed JSON or header
├── NotFound (shared)            404  unknown model or version
├── PayloadTooLarge (shared)     413  body over LEPTON_WORKER_MAX_BODY_BYTES
└── WorkerError
    ├── ModelNotReady            503  known, but loading (or not loadable yet): retry later
    ├── LoadRefused              503  the memory budget cannot hold it: says what is resident
    ├── InferenceFailed          500  ONNX Runtime raised: counted as an error for that version
    │   └── NonFiniteOutput      500  the model produced NaN/inf (configurable)
    └── BatchFailed              500  a batch came back malformed (wrong number of results)
"""

from __future__ import annotations

from lepton.shared.errors import LeptonError

# Names follow KServe/the shared tree (ModelNotReady, InvalidInput), not an "Error" suffix.


class WorkerError(LeptonError):
    code = "worker_error"


class ModelNotReady(WorkerError):
    status_code = 503
    code = "model_not_ready"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LoadRefused(ModelNotReady):
    code = "load_refused"


class InferenceFailed(WorkerError):
    status_code = 500
    code = "inference_failed"


class NonFiniteOutput(InferenceFailed):
    code = "nonfinite_output"


class BatchFailed(WorkerError):
    status_code = 500
    code = "batch_failed"
