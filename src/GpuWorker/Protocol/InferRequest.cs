using Lepton.GpuWorker.Tensors;

namespace Lepton.GpuWorker.Protocol;

/// <summary>An output the caller asked for, and whether it wants it as binary data.</summary>
public sealed record RequestedOutput(string Name, bool Binary);

/// <summary>One named input tensor of a request.</summary>
public readonly record struct NamedTensor(string Name, TensorData Data);

/// <summary>
/// A decoded inference request, independent of the transport it came over (HTTP JSON, HTTP binary
/// extension or gRPC). Owns its tensors' pooled buffers until disposed.
/// </summary>
public sealed class InferRequest(string? id, IReadOnlyList<NamedTensor> inputs, IReadOnlyList<RequestedOutput> outputs, bool binaryOutput)
    : IDisposable
{
    private int _disposed;

    /// <summary>The caller's request id (<c>id</c> in the body), if it gave one.</summary>
    public string? Id { get; } = id;

    public IReadOnlyList<NamedTensor> Inputs { get; } = inputs;

    /// <summary>The outputs asked for, in order; empty means every output of the model.</summary>
    public IReadOnlyList<RequestedOutput> Outputs { get; } = outputs;

    /// <summary>Whether outputs not listed individually come back as binary data.</summary>
    public bool BinaryOutput { get; } = binaryOutput;

    /// <summary>Total elements over all inputs.</summary>
    public long Elements => Inputs.Sum(i => (long)i.Data.Count);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            foreach (var input in Inputs)
            {
                input.Data.Dispose();
            }
        }
    }
}
