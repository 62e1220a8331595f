namespace Lepton.Shared.Validation;

/// <summary>What an uploaded model may be: its size, its opsets and how large the tensors it declares are.</summary>
public sealed record ValidationLimits
{
    /// <summary>
    /// Oldest default-domain opset accepted: below 7 ONNX Runtime's support is patchy.
    /// </summary>
    public const int DefaultMinOpset = 7;

    /// <summary>
    /// Newest: what the pinned ONNX Runtime (1.31.1) officially supports ("support for domain
    /// ai.onnx is till opset 26"); a newer model would not load, and naming the limit is a clearer
    /// error than ONNX Runtime's. Re-check when ONNX Runtime is upgraded (a test loads opset 26).
    /// </summary>
    public const int DefaultMaxOpset = 26;

    /// <summary>
    /// Elements the smoke inference may allocate over all declared inputs and fixed-size outputs
    /// (16 Mi, 64 MiB of float32). A model that declares more is refused before anything is
    /// allocated: a declared 20000×20000 input would otherwise cost 1.6 GB per smoke run.
    /// </summary>
    public const long DefaultMaxSmokeElements = 16L * 1024 * 1024;

    public long MaxBytes { get; init; } = Configuration.ModelStoreOptions.DefaultMaxModelBytes;

    public int MinOpset { get; init; } = DefaultMinOpset;

    public int MaxOpset { get; init; } = DefaultMaxOpset;

    public long MaxSmokeElements { get; init; } = DefaultMaxSmokeElements;
}
