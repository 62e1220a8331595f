using System.Buffers;
using System.Diagnostics;
using Lepton.GpuWorker.Protocol;
using Lepton.GpuWorker.Tensors;
using Lepton.Shared;
using Microsoft.ML.OnnxRuntime;

namespace Lepton.GpuWorker.Serving;

/// <summary>One input or output of a loaded model: name, protocol data type, shape (<c>null</c> = symbolic).</summary>
public sealed record TensorSpec(string Name, DataType Type, IReadOnlyList<long?> Shape)
{
    /// <summary>The shape as the protocol writes it (-1 = any size).</summary>
    public long[] WireShape => Shape.Select(d => d ?? -1).ToArray();

    public string Describe() => $"{Name} {DataTypes.Name(Type)}[{string.Join(",", WireShape)}]";
}

/// <summary>One request's validated inputs, in the session's input order, ready to batch.</summary>
/// <param name="Feeds">The request's tensors (owned by the request, not by the item).</param>
/// <param name="Rows">Rows along the batch dimension.</param>
/// <param name="Key">Only items with equal keys (equal non-batch dimensions) share a batch.</param>
public sealed record BatchItem(TensorData[] Feeds, int Rows, string Key);

/// <summary>One item's share of a batch run: its outputs (model order, pooled), and what it cost.</summary>
public sealed class ItemResult(TensorData[] outputs, bool nonfinite, double computeMs, int batchRows) : IDisposable
{
    public TensorData[] Outputs { get; } = outputs;

    /// <summary>Some float output holds NaN or infinity.</summary>
    public bool Nonfinite { get; } = nonfinite;

    /// <summary>This item's share (by rows) of its batch's ONNX Runtime time.</summary>
    public double ComputeMs { get; } = computeMs;

    public int BatchRows { get; } = batchRows;

    public void Dispose()
    {
        foreach (var output in Outputs)
        {
            output.Dispose();
        }
    }
}

/// <summary>
/// A loaded model version: its ONNX Runtime session, signature and batch limits. Synchronous and
/// free of HTTP: <see cref="Prepare"/> checks a request against the signature (naming it when
/// wrong), <see cref="RunBatch"/> runs items as one <c>Run</c> over pinned buffers (concatenated
/// along the batch dimension) and splits every output back by rows, refusing a batch whose outputs
/// do not have exactly one row per input row.
/// </summary>
public sealed class OnnxVersion : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;
    private readonly bool _symbolicInnerDims;
    private readonly bool _preboundOutputs;

    public OnnxVersion(string model, string version, string path, ProviderChoice choice, int maxBatchSize)
    {
        Model = model;
        Version = version;
        Provider = choice.Name;
        try
        {
            using var options = choice.CreateSessionOptions();
            _session = new InferenceSession(path, options);
        }
        catch (OnnxRuntimeException error)
        {
            throw new InvalidModelException($"{model} {version}: ONNX Runtime cannot load it: {Scrub(error.Message, path)}");
        }
        try
        {
            Inputs = _session.InputNames.Select(n => Spec(n, _session.InputMetadata[n], "input")).ToArray();
            Outputs = _session.OutputNames.Select(n => Spec(n, _session.OutputMetadata[n], "output")).ToArray();
        }
        catch
        {
            _session.Dispose();
            throw;
        }
        _inputNames = [.. _session.InputNames];
        _outputNames = [.. _session.OutputNames];
        ScoreOutput = Scores.PickScoreOutput(Outputs);
        // Requests share a batch only if every input and output is indexed by a symbolic leading
        // dimension; a fixed leading dimension caps the batch at one request.
        Batchable = Inputs.Concat(Outputs).All(t => t.Shape.Count >= 1 && t.Shape[0] is null);
        MaxBatchSize = Batchable ? maxBatchSize : 1;
        _symbolicInnerDims = Inputs.Any(t => t.Shape.Skip(1).Any(d => d is null));
        // When every output is numeric with only its batch dimension symbolic, a single item's
        // outputs are allocated here and handed to ONNX Runtime to fill: no copy, no shape query.
        _preboundOutputs = Batchable && Outputs.All(o => o.Type != DataType.Bytes && o.Shape.Skip(1).All(d => d is not null));
        SignatureText = "inputs: " + string.Join("; ", Inputs.Select(t => t.Describe()))
            + " — outputs: " + string.Join("; ", Outputs.Select(t => t.Describe()));
    }

    public string Model { get; }

    public string Version { get; }

    public string Provider { get; }

    public IReadOnlyList<TensorSpec> Inputs { get; }

    public IReadOnlyList<TensorSpec> Outputs { get; }

    /// <summary>The output scores and shadow top-1 classes come from.</summary>
    public int ScoreOutput { get; }

    public bool Batchable { get; }

    public int MaxBatchSize { get; }

    public string SignatureText { get; }

    public IReadOnlyList<string> OutputNames => _outputNames;

    public int OutputIndex(string name) => Array.IndexOf(_outputNames, name);

    private TensorSpec Spec(string name, NodeMetadata metadata, string role)
    {
        if (!metadata.IsTensor || !DataTypes.TryFromOrt(metadata.ElementDataType, out var type))
        {
            throw new InvalidModelException(
                $"{Model} {Version}: {role} '{name}' is a {metadata.OnnxValueType} of {metadata.ElementDataType}, which this worker cannot serve "
                + "(tensors of the Open Inference Protocol's types only; export without ZipMap or sequence outputs)");
        }
        var shape = metadata.Dimensions.Select(d => d >= 0 ? (long?)d : null).ToArray();
        return new TensorSpec(name, type, shape);
    }

    // -- request checks -------------------------------------------------------------------------

    /// <summary>Checks the request's tensors against the inputs; <see cref="InvalidInputException"/> names the signature if wrong.</summary>
    public BatchItem Prepare(InferRequest request, bool rejectNonfinite)
    {
        var given = request.Inputs;
        var feeds = new TensorData[Inputs.Count];
        var matched = 0;
        foreach (var input in given)
        {
            var index = IndexOfInput(input.Name);
            if (index >= 0)
            {
                feeds[index] = input.Data;
                matched++;
            }
        }
        if (matched != Inputs.Count || given.Count != Inputs.Count)
        {
            var missing = Inputs.Where(s => !given.Any(g => g.Name == s.Name)).Select(s => $"'{s.Name}'");
            var extra = given.Where(g => IndexOfInput(g.Name) < 0).Select(g => $"'{OipJsonDecoder.Clip(g.Name)}'");
            var detail = string.Join("; ", new[]
            {
                missing.Any() ? $"missing [{string.Join(", ", missing)}]" : "",
                extra.Any() ? $"unexpected [{string.Join(", ", extra)}]" : "",
            }.Where(p => p.Length > 0));
            throw Bad($"input names do not match ({detail})");
        }
        int? rows = null;
        for (var i = 0; i < Inputs.Count; i++)
        {
            var spec = Inputs[i];
            var tensor = feeds[i];
            if (tensor.Type != spec.Type)
            {
                throw Bad($"input '{spec.Name}' has datatype {DataTypes.Name(tensor.Type)}, expected {DataTypes.Name(spec.Type)}");
            }
            if (tensor.Shape.Length != spec.Shape.Count || !ShapeFits(tensor.Shape, spec.Shape))
            {
                throw Bad($"input '{spec.Name}' has shape [{string.Join(", ", tensor.Shape)}], expected [{string.Join(", ", spec.WireShape)}] (-1 = any size)");
            }
            var n = tensor.Rows;
            if (Batchable && rows is { } r && n != r)
            {
                throw Bad($"inputs disagree on the batch size ({r} vs {n} rows)");
            }
            rows ??= n;
            if (rejectNonfinite && Scores.HasNonFinite(tensor))
            {
                throw new NonFiniteInputException(
                    $"{Model} {Version}: input '{spec.Name}' holds NaN or infinity; send finite values "
                    + "(the worker refuses them before inference: LEPTON_WORKER_NONFINITE_INPUTS=reject)");
            }
        }
        if (Batchable && rows == 0)
        {
            throw Bad("the batch dimension is 0: send at least one row");
        }
        foreach (var wanted in request.Outputs)
        {
            if (OutputIndex(wanted.Name) < 0)
            {
                var unknown = request.Outputs.Where(o => OutputIndex(o.Name) < 0).Select(o => $"'{OipJsonDecoder.Clip(o.Name)}'");
                throw Bad($"requested outputs [{string.Join(", ", unknown)}] do not exist");
            }
        }
        return new BatchItem(feeds, rows ?? 1, _symbolicInnerDims ? InnerShapeKey(feeds) : "");
    }

    private int IndexOfInput(string name) => Array.IndexOf(_inputNames, name);

    private static bool ShapeFits(long[] shape, IReadOnlyList<long?> spec)
    {
        for (var d = 0; d < shape.Length; d++)
        {
            if (spec[d] is { } fixedDim && shape[d] != fixedDim)
            {
                return false;
            }
        }
        return true;
    }

    private static string InnerShapeKey(TensorData[] feeds) =>
        string.Join('|', feeds.Select(f => string.Join(',', f.Shape.Skip(1))));

    private InvalidInputException Bad(string problem) =>
        new($"{Model} {Version}: {problem}; expected signature {SignatureText}");

    // -- running ----------------------------------------------------------------------------------

    /// <summary>Runs <paramref name="items"/> as one batch and splits the outputs back, one result per item.</summary>
    public ItemResult[] RunBatch(IReadOnlyList<BatchItem> items)
    {
        var totalRows = 0;
        foreach (var item in items)
        {
            totalRows += item.Rows;
        }
        if (items.Count == 1 && _preboundOutputs)
        {
            return [RunPrebound(items[0])];
        }
        var joined = items.Count == 1 ? null : Concatenate(items, totalRows);
        var feeds = joined ?? items[0].Feeds;
        var values = new OrtValue[feeds.Length];
        var pins = new MemoryHandle[feeds.Length];
        try
        {
            for (var i = 0; i < feeds.Length; i++)
            {
                values[i] = ToOrtValue(feeds[i], out pins[i]);
            }
            var started = Stopwatch.GetTimestamp();
            IDisposableReadOnlyCollection<OrtValue> outputs;
            try
            {
                outputs = _session.Run(_runOptions, _inputNames, values, _outputNames);
            }
            catch (OnnxRuntimeException error)
            {
                throw new InferenceFailedException($"{Model} {Version}: ONNX Runtime failed: {error.Message}");
            }
            var computeMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            using (outputs)
            {
                return Split(items, outputs, totalRows, computeMs);
            }
        }
        finally
        {
            foreach (var value in values)
            {
                value?.Dispose();
            }
            foreach (var pin in pins)
            {
                pin.Dispose();
            }
            if (joined is not null)
            {
                foreach (var tensor in joined)
                {
                    tensor.Dispose();
                }
            }
        }
    }

    /// <summary>One item, outputs allocated from the signature and filled by ONNX Runtime in place.</summary>
    private ItemResult RunPrebound(BatchItem item)
    {
        var feeds = item.Feeds;
        var inputs = new OrtValue[feeds.Length];
        var inputPins = new MemoryHandle[feeds.Length];
        var tensors = new TensorData[Outputs.Count];
        var outputs = new OrtValue[Outputs.Count];
        var outputPins = new MemoryHandle[Outputs.Count];
        var done = false;
        try
        {
            for (var i = 0; i < feeds.Length; i++)
            {
                inputs[i] = ToOrtValue(feeds[i], out inputPins[i]);
            }
            for (var o = 0; o < Outputs.Count; o++)
            {
                var spec = Outputs[o];
                var shape = new long[spec.Shape.Count];
                shape[0] = item.Rows;
                var count = item.Rows;
                for (var d = 1; d < shape.Length; d++)
                {
                    shape[d] = spec.Shape[d]!.Value;
                    count = checked(count * (int)shape[d]);
                }
                tensors[o] = TensorData.Numeric(spec.Type, shape, count);
                outputs[o] = ToOrtValue(tensors[o], out outputPins[o]);
            }
            var started = Stopwatch.GetTimestamp();
            try
            {
                _session.Run(_runOptions, _inputNames, inputs, _outputNames, outputs);
            }
            catch (OnnxRuntimeException error)
            {
                throw new InferenceFailedException($"{Model} {Version}: ONNX Runtime failed: {error.Message}");
            }
            var computeMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var nonfinite = false;
            foreach (var tensor in tensors)
            {
                nonfinite |= Scores.HasNonFinite(tensor);
            }
            done = true;
            return new ItemResult(tensors, nonfinite, computeMs, item.Rows);
        }
        finally
        {
            for (var i = 0; i < inputs.Length; i++)
            {
                inputs[i]?.Dispose();
                inputPins[i].Dispose();
            }
            for (var o = 0; o < outputs.Length; o++)
            {
                outputs[o]?.Dispose();
                outputPins[o].Dispose();
                if (!done)
                {
                    tensors[o]?.Dispose();
                }
            }
        }
    }

    private TensorData[] Concatenate(IReadOnlyList<BatchItem> items, int totalRows)
    {
        var joined = new TensorData[Inputs.Count];
        try
        {
            for (var i = 0; i < Inputs.Count; i++)
            {
                var first = items[0].Feeds[i];
                var shape = (long[])first.Shape.Clone();
                shape[0] = totalRows;
                var count = 0;
                var bytes = 0;
                foreach (var item in items)
                {
                    count += item.Feeds[i].Count;
                    bytes += item.Feeds[i].ByteLength;
                }
                if (first.Type == DataType.Bytes)
                {
                    var tensor = joined[i] = TensorData.Strings(shape, count, bytes);
                    var index = 0;
                    foreach (var item in items)
                    {
                        var part = item.Feeds[i];
                        for (var e = 0; e < part.Count; e++)
                        {
                            tensor.SetElement(index++, part.Element(e));
                        }
                    }
                }
                else
                {
                    var tensor = joined[i] = TensorData.Numeric(first.Type, shape, count);
                    var offset = 0;
                    foreach (var item in items)
                    {
                        var part = item.Feeds[i].Span;
                        part.CopyTo(tensor.Span[offset..]);
                        offset += part.Length;
                    }
                }
            }
            return joined;
        }
        catch
        {
            foreach (var tensor in joined)
            {
                tensor?.Dispose();
            }
            throw;
        }
    }

    private static unsafe OrtValue ToOrtValue(TensorData tensor, out MemoryHandle pin)
    {
        if (tensor.Type == DataType.Bytes)
        {
            pin = default;
            var strings = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, tensor.Shape);
            for (var i = 0; i < tensor.Count; i++)
            {
                strings.StringTensorSetElementAt(tensor.Element(i), i);
            }
            return strings;
        }
        // Over the pooled buffer itself, pinned for the run: no copy into ONNX Runtime's memory.
        pin = tensor.Buffer.AsMemory().Pin();
        return OrtValue.CreateTensorValueWithData(
            OrtMemoryInfo.DefaultInstance, DataTypes.ToOrt(tensor.Type), tensor.Shape, (IntPtr)pin.Pointer, tensor.ByteLength);
    }

    private ItemResult[] Split(IReadOnlyList<BatchItem> items, IDisposableReadOnlyCollection<OrtValue> outputs, int totalRows, double computeMs)
    {
        var converted = new (DataType Type, long[] Shape, OrtValue Value)[Outputs.Count];
        var index = 0;
        foreach (var value in outputs)
        {
            var info = value.GetTensorTypeAndShape();
            if (!DataTypes.TryFromOrt(info.ElementDataType, out var type))
            {
                throw new InferenceFailedException($"{Model} {Version}: output '{_outputNames[index]}' came back as {info.ElementDataType}");
            }
            var shape = info.Shape;
            if (items.Count > 1 && (shape.Length == 0 || shape[0] != totalRows))
            {
                throw new BatchFailedException(
                    $"{Model} {Version}: output '{_outputNames[index]}' has {(shape.Length == 0 ? 0 : shape[0])} rows for {totalRows} input rows");
            }
            converted[index++] = (type, shape, value);
        }
        var results = new ItemResult[items.Count];
        var startRow = 0;
        for (var r = 0; r < items.Count; r++)
        {
            var rows = items[r].Rows;
            var tensors = new TensorData[converted.Length];
            var nonfinite = false;
            for (var o = 0; o < converted.Length; o++)
            {
                var (type, shape, value) = converted[o];
                tensors[o] = items.Count == 1 ? Copy(type, shape, value) : CopyRows(type, shape, value, startRow, rows, totalRows);
                nonfinite |= Scores.HasNonFinite(tensors[o]);
            }
            results[r] = new ItemResult(tensors, nonfinite, computeMs * rows / Math.Max(1, totalRows), totalRows);
            startRow += rows;
        }
        return results;
    }

    private static TensorData Copy(DataType type, long[] shape, OrtValue value)
    {
        var count = checked((int)ShapeCount(shape));
        if (type == DataType.Bytes)
        {
            return CopyStrings(shape, value, 0, count);
        }
        var tensor = TensorData.Numeric(type, shape, count);
        value.GetTensorMutableRawData()[..tensor.ByteLength].CopyTo(tensor.Span);
        return tensor;
    }

    private static TensorData CopyRows(DataType type, long[] shape, OrtValue value, int startRow, int rows, int totalRows)
    {
        var total = checked((int)ShapeCount(shape));
        var perRow = totalRows == 0 ? 0 : total / totalRows;
        var sliceShape = (long[])shape.Clone();
        sliceShape[0] = rows;
        if (type == DataType.Bytes)
        {
            return CopyStrings(sliceShape, value, startRow * perRow, rows * perRow);
        }
        var size = DataTypes.ElementSize(type);
        var tensor = TensorData.Numeric(type, sliceShape, rows * perRow);
        value.GetTensorMutableRawData().Slice(startRow * perRow * size, tensor.ByteLength).CopyTo(tensor.Span);
        return tensor;
    }

    private static TensorData CopyStrings(long[] shape, OrtValue value, int first, int count)
    {
        var tensor = TensorData.Strings(shape, count, count * 16);
        for (var i = 0; i < count; i++)
        {
            tensor.SetElement(i, value.GetStringElementAsSpan(first + i));
        }
        return tensor;
    }

    private static long ShapeCount(long[] shape)
    {
        long count = 1;
        foreach (var d in shape)
        {
            count *= d;
        }
        return count;
    }

    /// <summary>A small all-zeros request of the right signature (symbolic dimensions = 1).</summary>
    public InferRequest WarmUpRequest()
    {
        var inputs = new List<NamedTensor>(Inputs.Count);
        foreach (var spec in Inputs)
        {
            var shape = spec.Shape.Select(d => d ?? 1).ToArray();
            var count = checked((int)ShapeCount(shape));
            var tensor = spec.Type == DataType.Bytes ? TensorData.Strings(shape, count, 1) : TensorData.Numeric(spec.Type, shape, count, clear: true);
            if (spec.Type == DataType.Bytes)
            {
                for (var i = 0; i < count; i++)
                {
                    tensor.SetElement(i, []);
                }
            }
            inputs.Add(new NamedTensor(spec.Name, tensor));
        }
        return new InferRequest(null, inputs, [], false);
    }

    private static string Scrub(string message, string path) =>
        message.Replace(path, "model.onnx", StringComparison.Ordinal).Replace(Path.GetDirectoryName(path) ?? path, ".", StringComparison.Ordinal);

    public void Dispose()
    {
        _session.Dispose();
        _runOptions.Dispose();
    }
}
