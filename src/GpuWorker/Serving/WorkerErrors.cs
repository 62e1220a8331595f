using Lepton.Shared;

namespace Lepton.GpuWorker.Serving;

/// <summary>
/// Errors the worker adds to <see cref="LeptonException"/>; every binding maps them once
/// (<see cref="LeptonException.StatusCodeFor"/> for HTTP, the matching gRPC status for gRPC).
/// </summary>
/// <remarks>
/// <code>
/// InvalidInputException (400)           bad tensor name/dtype/shape, malformed JSON or binary data
/// └── NonFiniteInputException           NaN/inf in a float input (LEPTON_WORKER_NONFINITE_INPUTS=reject)
/// NotFoundException (404)               unknown model or version
/// VersionNotServableException (409)     pinned to a version before evaluating or after rejection/rollback
/// PayloadTooLargeException (413)        body or element budget exceeded
/// NotReadyException (503 + Retry-After) loading, warming, refused by the memory budget, draining
/// InferenceFailedException (500)        ONNX Runtime raised: counted against that version
/// ├── NonFiniteOutputException          the model produced NaN/inf (LEPTON_WORKER_NONFINITE_IS_ERROR)
/// └── BatchFailedException              a batch came back malformed (wrong number of rows or results)
/// </code>
/// </remarks>
public class InferenceFailedException(string message, string code = "inference_failed")
    : LeptonException(message, ErrorKind.Internal, code);

public sealed class NonFiniteOutputException(string message) : InferenceFailedException(message, "nonfinite_output");

public sealed class BatchFailedException(string message) : InferenceFailedException(message, "batch_failed");

public sealed class NonFiniteInputException(string message) : InvalidInputException(message, "nonfinite_input");

/// <summary>A pinned request for a version whose stage does not allow inference; says the stage and why.</summary>
public sealed class VersionNotServableException(string message) : ConflictException(message, "version_not_servable");
