namespace Lepton.Shared;

/// <summary>What kind of failure a <see cref="LeptonException"/> is; each binding maps it once.</summary>
public enum ErrorKind
{
    /// <summary>The caller sent something malformed (400).</summary>
    InvalidInput,

    /// <summary>The caller must authenticate (401).</summary>
    Unauthorized,

    /// <summary>The caller is authenticated but not permitted (403).</summary>
    Forbidden,

    /// <summary>The model, version or blob does not exist (404).</summary>
    NotFound,

    /// <summary>The request contradicts the stored state (409).</summary>
    Conflict,

    /// <summary>The body is over a limit (413).</summary>
    TooLarge,

    /// <summary>Known but not ready yet, or refused for capacity; retry later (503).</summary>
    NotReady,

    /// <summary>A dependency (storage) cannot be reached; retry later (503).</summary>
    Unavailable,

    /// <summary>The process configuration is incomplete or wrong (500, fails start-up).</summary>
    Configuration,

    /// <summary>The operation itself failed inside Lepton or a runtime it drives, e.g. a model raising during inference (500).</summary>
    Internal,
}

/// <summary>
/// Base of every error a caller can act on. <see cref="Exception.Message"/> is the sentence a user
/// reads and says what to do next; it never holds a local path or a secret.
/// </summary>
/// <remarks>
/// The tree, with each kind's HTTP status (mapped in one place per binding, see <see cref="StatusCode"/>):
/// <code>
/// LeptonException
/// ├── InvalidInputException           400  (InvalidModelName, InvalidVersion, InvalidManifest,
/// │                                         InvalidDataset, InvalidRoutes, InvalidPolicy, InvalidModel)
/// ├── UnauthorizedException           401
/// ├── ForbiddenException              403
/// ├── NotFoundException               404  (ModelNotFound, VersionNotFound, BlobNotFound)
/// ├── ConflictException               409  (VersionConflict, ConcurrencyConflict, IllegalTransition)
/// ├── PayloadTooLargeException        413
/// ├── NotReadyException               503
/// ├── StorageUnavailableException     503
/// ├── ConfigurationException          start-up fails naming the setting
/// └── (kind Internal)                 500  e.g. the worker's InferenceFailedException
/// </code>
/// </remarks>
public class LeptonException : Exception
{
    public LeptonException(string message, ErrorKind kind, string code, Exception? innerException = null)
        : base(message, innerException)
    {
        Kind = kind;
        Code = code;
    }

    /// <summary>The family of the failure.</summary>
    public ErrorKind Kind { get; }

    /// <summary>A stable, machine-readable code such as <c>version_conflict</c>.</summary>
    public string Code { get; }

    /// <summary>The HTTP status every binding answers this error with.</summary>
    public int StatusCode => StatusCodeFor(Kind);

    /// <summary>The one mapping from <see cref="ErrorKind"/> to HTTP status.</summary>
    public static int StatusCodeFor(ErrorKind kind) => kind switch
    {
        ErrorKind.InvalidInput => 400,
        ErrorKind.Unauthorized => 401,
        ErrorKind.Forbidden => 403,
        ErrorKind.NotFound => 404,
        ErrorKind.Conflict => 409,
        ErrorKind.TooLarge => 413,
        ErrorKind.NotReady => 503,
        ErrorKind.Unavailable => 503,
        _ => 500,
    };
}

public class InvalidInputException(string message, string code = "invalid_input")
    : LeptonException(message, ErrorKind.InvalidInput, code);

public sealed class InvalidModelNameException(string message) : InvalidInputException(message, "invalid_model_name");

public sealed class InvalidVersionException(string message) : InvalidInputException(message, "invalid_version");

public sealed class InvalidManifestException(string message) : InvalidInputException(message, "invalid_manifest");

public sealed class InvalidDatasetException(string message) : InvalidInputException(message, "invalid_dataset");

public sealed class InvalidRoutesException(string message) : InvalidInputException(message, "invalid_routes");

public sealed class InvalidPolicyException(string message) : InvalidInputException(message, "invalid_policy");

/// <summary>The ONNX file itself is unusable (validation refuses it).</summary>
public sealed class InvalidModelException(string message) : InvalidInputException(message, "invalid_model");

public sealed class UnauthorizedException(string message)
    : LeptonException(message, ErrorKind.Unauthorized, "unauthorized");

public sealed class ForbiddenException(string message)
    : LeptonException(message, ErrorKind.Forbidden, "forbidden");

public class NotFoundException(string message, string code = "not_found")
    : LeptonException(message, ErrorKind.NotFound, code);

public sealed class ModelNotFoundException(string message) : NotFoundException(message, "model_not_found");

public sealed class VersionNotFoundException(string message) : NotFoundException(message, "version_not_found");

public sealed class BlobNotFoundException(string message) : NotFoundException(message, "blob_not_found");

public class ConflictException(string message, string code = "conflict")
    : LeptonException(message, ErrorKind.Conflict, code);

/// <summary>The same version with different content, or a blob replaced after registration.</summary>
public sealed class VersionConflictException(string message) : ConflictException(message, "version_conflict");

/// <summary>Someone else changed the record first (ETag); nothing was written.</summary>
public sealed class ConcurrencyConflictException(string message) : ConflictException(message, "concurrency_conflict");

/// <summary>The lifecycle state machine does not allow this move.</summary>
public sealed class IllegalTransitionException(string message) : ConflictException(message, "illegal_transition");

public sealed class PayloadTooLargeException(string message)
    : LeptonException(message, ErrorKind.TooLarge, "payload_too_large");

/// <summary>Known but not ready (loading, warming, refused by the memory budget); retry later.</summary>
public sealed class NotReadyException(string message, TimeSpan? retryAfter = null)
    : LeptonException(message, ErrorKind.NotReady, "not_ready")
{
    public TimeSpan? RetryAfter { get; } = retryAfter;
}

/// <summary>Storage could not be reached after the SDK's retries; the operation may be retried.</summary>
public sealed class StorageUnavailableException(string message, Exception? innerException = null)
    : LeptonException(message, ErrorKind.Unavailable, "storage_unavailable", innerException);

public sealed class ConfigurationException(string message)
    : LeptonException(message, ErrorKind.Configuration, "configuration_error");
