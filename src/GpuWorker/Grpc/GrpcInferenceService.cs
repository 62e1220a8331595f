using System.Buffers;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Grpc.Core;
using Lepton.GpuWorker.Auth;
using Lepton.GpuWorker.Configuration;
using Lepton.GpuWorker.DataPlane;
using Lepton.GpuWorker.Http;
using Lepton.GpuWorker.Observability;
using Lepton.GpuWorker.Protocol;
using Lepton.GpuWorker.Serving;
using Lepton.GpuWorker.Tensors;
using Lepton.Shared;
using Microsoft.AspNetCore.Authorization;
using Proto = Lepton.GpuWorker.Grpc.Protocol;

namespace Lepton.GpuWorker.Grpc;

/// <summary>
/// <c>inference.GRPCInferenceService</c> (KServe v2 / Triton) over the same data plane, routing,
/// batching, metrics and auth as HTTP: decode the message, call one data-plane method, encode the
/// answer; errors become the matching gRPC status. Outputs go back as <c>raw_output_contents</c>,
/// as Triton sends them.
/// </summary>
public sealed class GrpcInferenceService(
    InferenceDataPlane dataPlane,
    InferenceOptions inference,
    AuthOptions auth,
    WorkerMetrics metrics,
    ILogger<GrpcInferenceService> log) : Proto.GRPCInferenceService.GRPCInferenceServiceBase
{
    [AllowAnonymous]
    public override Task<Proto.ServerLiveResponse> ServerLive(Proto.ServerLiveRequest request, ServerCallContext context) =>
        Task.FromResult(new Proto.ServerLiveResponse { Live = true });

    [AllowAnonymous]
    public override Task<Proto.ServerReadyResponse> ServerReady(Proto.ServerReadyRequest request, ServerCallContext context) =>
        Task.FromResult(new Proto.ServerReadyResponse { Ready = dataPlane.State.Ready });

    public override Task<Proto.ServerMetadataResponse> ServerMetadata(Proto.ServerMetadataRequest request, ServerCallContext context)
    {
        var info = dataPlane.Server();
        var response = new Proto.ServerMetadataResponse { Name = info.Name, Version = info.Version };
        response.Extensions.AddRange(info.Extensions);
        return Task.FromResult(response);
    }

    public override async Task<Proto.ModelReadyResponse> ModelReady(Proto.ModelReadyRequest request, ServerCallContext context)
    {
        try
        {
            await dataPlane.ReadyVersionAsync(request.Name, Optional(request.Version));
            return new Proto.ModelReadyResponse { Ready = true };
        }
        catch (NotReadyException)
        {
            return new Proto.ModelReadyResponse { Ready = false };
        }
        catch (Exception error)
        {
            throw Map(error, context);
        }
    }

    public override async Task<Proto.ModelMetadataResponse> ModelMetadata(Proto.ModelMetadataRequest request, ServerCallContext context)
    {
        try
        {
            var info = await dataPlane.ModelAsync(request.Name, Optional(request.Version));
            var response = new Proto.ModelMetadataResponse { Name = info.Name, Platform = ModelInfo.Platform };
            response.Versions.AddRange(info.ReadyVersions);
            response.Inputs.AddRange(info.Inputs.Select(Metadata));
            response.Outputs.AddRange(info.Outputs.Select(Metadata));
            await context.WriteResponseHeadersAsync(new Metadata { { HttpResults.VersionHeader, info.Version } });
            return response;
        }
        catch (Exception error)
        {
            throw Map(error, context);
        }
    }

    private static Proto.ModelMetadataResponse.Types.TensorMetadata Metadata(TensorSpec spec)
    {
        var tensor = new Proto.ModelMetadataResponse.Types.TensorMetadata { Name = spec.Name, Datatype = DataTypes.Name(spec.Type) };
        tensor.Shape.AddRange(spec.WireShape);
        return tensor;
    }

    public override async Task<Proto.ModelConfigResponse> ModelConfig(Proto.ModelConfigRequest request, ServerCallContext context)
    {
        try
        {
            var info = await dataPlane.ModelAsync(request.Name, Optional(request.Version));
            var config = new Proto.ModelConfig
            {
                Name = info.Name,
                Platform = ModelInfo.Platform,
                Backend = "onnxruntime",
                MaxBatchSize = info.Batchable ? info.MaxBatchSize : 0,
            };
            var skip = info.Batchable ? 1 : 0;
            foreach (var input in info.Inputs)
            {
                var io = new Proto.ModelInput { Name = input.Name, DataType = ConfigType(input.Type) };
                io.Dims.AddRange(input.WireShape.Skip(skip));
                config.Input.Add(io);
            }
            foreach (var output in info.Outputs)
            {
                var io = new Proto.ModelOutput { Name = output.Name, DataType = ConfigType(output.Type) };
                io.Dims.AddRange(output.WireShape.Skip(skip));
                config.Output.Add(io);
            }
            if (info.Batchable)
            {
                config.DynamicBatching = new Proto.ModelDynamicBatching { MaxQueueDelayMicroseconds = (ulong)(info.MaxDelayMs * 1000) };
            }
            config.InstanceGroup.Add(new Proto.ModelInstanceGroup
            {
                Name = info.Name,
                Count = 1,
                Kind = info.Provider == ExecutionProviders.Cuda ? Proto.ModelInstanceGroup.Types.Kind.Gpu : Proto.ModelInstanceGroup.Types.Kind.Cpu,
            });
            config.Parameters["lepton_version"] = new Proto.ModelParameter { StringValue = info.Version };
            return new Proto.ModelConfigResponse { Config = config };
        }
        catch (Exception error)
        {
            throw Map(error, context);
        }
    }

    private static Proto.DataType ConfigType(DataType type) => type switch
    {
        DataType.Bool => Proto.DataType.TypeBool,
        DataType.UInt8 => Proto.DataType.TypeUint8,
        DataType.UInt16 => Proto.DataType.TypeUint16,
        DataType.UInt32 => Proto.DataType.TypeUint32,
        DataType.UInt64 => Proto.DataType.TypeUint64,
        DataType.Int8 => Proto.DataType.TypeInt8,
        DataType.Int16 => Proto.DataType.TypeInt16,
        DataType.Int32 => Proto.DataType.TypeInt32,
        DataType.Int64 => Proto.DataType.TypeInt64,
        DataType.Fp16 => Proto.DataType.TypeFp16,
        DataType.Fp32 => Proto.DataType.TypeFp32,
        DataType.Fp64 => Proto.DataType.TypeFp64,
        _ => Proto.DataType.TypeString,
    };

    public override Task<Proto.RepositoryIndexResponse> RepositoryIndex(Proto.RepositoryIndexRequest request, ServerCallContext context)
    {
        var response = new Proto.RepositoryIndexResponse();
        foreach (var entry in dataPlane.RepositoryIndex(request.Ready))
        {
            response.Models.Add(new Proto.RepositoryIndexResponse.Types.ModelIndex { Name = entry.Name, Version = entry.Version, State = entry.State, Reason = entry.Reason });
        }
        return Task.FromResult(response);
    }

    public override Task<Proto.ModelStatisticsResponse> ModelStatistics(Proto.ModelStatisticsRequest request, ServerCallContext context)
    {
        try
        {
            RequireAdmin(context, "statistics");
            var response = new Proto.ModelStatisticsResponse();
            foreach (var entry in dataPlane.Statistics(Optional(request.Name), Optional(request.Version)))
            {
                var s = entry.Statistics;
                static Proto.StatisticDuration Duration(long count, long ns) => new() { Count = (ulong)count, Ns = (ulong)ns };
                response.ModelStats.Add(new Proto.ModelStatistics
                {
                    Name = entry.Name,
                    Version = entry.Version,
                    LastInference = (ulong)s.LastInferenceMs,
                    InferenceCount = (ulong)s.Inferences,
                    ExecutionCount = (ulong)s.Executions,
                    InferenceStats = new Proto.InferStatistics
                    {
                        Success = Duration(s.SuccessCount, s.SuccessNs),
                        Fail = Duration(s.FailCount, s.FailNs),
                        Queue = Duration(s.QueueCount, s.QueueNs),
                        ComputeInput = Duration(0, 0),
                        ComputeInfer = Duration(s.Executions, s.ComputeNs),
                        ComputeOutput = Duration(0, 0),
                        CacheHit = Duration(0, 0),
                        CacheMiss = Duration(0, 0),
                    },
                });
            }
            return Task.FromResult(response);
        }
        catch (Exception error)
        {
            throw Map(error, context);
        }
    }

    public override async Task<Proto.ModelInferResponse> ModelInfer(Proto.ModelInferRequest request, ServerCallContext context)
    {
        var requestId = RequestId(context);
        var version = Optional(request.ModelVersion);
        InferRequest? decoded = null;
        try
        {
            if (version is not null)
            {
                RequireAdmin(context, "pinned versions");
            }
            decoded = Decode(request, inference.MaxElements);
            string? sticky = null;
            if (dataPlane.StickyHeader(request.ModelName) is { } header)
            {
                sticky = context.RequestHeaders.GetValue(header.ToLowerInvariant());
            }
            var outcome = await dataPlane.InferAsync(request.ModelName, version, decoded, sticky);
            decoded = null; // the outcome owns it now
            using (outcome)
            {
                await context.WriteResponseHeadersAsync(new Metadata
                {
                    { HttpResults.RequestIdHeader, requestId },
                    { HttpResults.VersionHeader, outcome.Version },
                });
                return Encode(outcome, request.Id.Length > 0 ? request.Id : requestId);
            }
        }
        catch (Exception error)
        {
            decoded?.Dispose();
            throw Map(error, context, requestId);
        }
    }

    private void RequireAdmin(ServerCallContext context, string what)
    {
        if (auth.Mode == AuthMode.None)
        {
            return;
        }
        var user = context.GetHttpContext().User;
        if (!user.HasClaim(WorkerPolicies.PermissionClaim, "admin"))
        {
            metrics.Refused("forbidden", "grpc");
            throw new ForbiddenException($"not permitted: {what} need the 'admin' permission");
        }
    }

    private static string? Optional(string value) => value.Length == 0 ? null : value;

    private static string RequestId(ServerCallContext context)
    {
        var given = context.RequestHeaders.GetValue(HttpResults.RequestIdHeader);
        return given is { Length: > 0 and <= 128 } && given.All(c => c is > ' ' and < (char)127) ? given : HttpResults.NewRequestId();
    }

    /// <summary>A ModelInferRequest as the transport-free <see cref="InferRequest"/>.</summary>
    public static InferRequest Decode(Proto.ModelInferRequest request, long maxElements)
    {
        if (request.Inputs.Count == 0)
        {
            throw OipJsonDecoder.Fail("'inputs' must be a non-empty list of tensors");
        }
        var raw = request.RawInputContents;
        if (raw.Count > 0 && raw.Count != request.Inputs.Count)
        {
            throw OipJsonDecoder.Fail($"raw_input_contents has {raw.Count} entries for {request.Inputs.Count} inputs (give one per input, or none)");
        }
        var inputs = new List<NamedTensor>(request.Inputs.Count);
        try
        {
            long elements = 0;
            for (var i = 0; i < request.Inputs.Count; i++)
            {
                var input = request.Inputs[i];
                var label = $"input '{OipJsonDecoder.Clip(input.Name)}'";
                if (input.Name.Length == 0)
                {
                    throw OipJsonDecoder.Fail($"inputs[{i}].name must be a non-empty string");
                }
                if (inputs.Exists(t => t.Name == input.Name))
                {
                    throw OipJsonDecoder.Fail($"{label} appears twice");
                }
                if (!DataTypes.TryParse(input.Datatype, out var type))
                {
                    throw OipJsonDecoder.Fail($"{label} has datatype '{OipJsonDecoder.Clip(input.Datatype)}'; supported: {DataTypes.SupportedNames}");
                }
                if (input.Shape.Any(d => d < 0))
                {
                    throw OipJsonDecoder.Fail($"inputs[{i}].shape must be a list of non-negative integers");
                }
                var shape = input.Shape.ToArray();
                var count = OipJsonDecoder.ElementCount(shape, label, maxElements);
                elements += count;
                if (elements > maxElements)
                {
                    throw new PayloadTooLargeException(
                        $"the request's inputs hold {elements} or more elements, over the budget of {maxElements} per request "
                        + $"({WorkerSettingNames.MaxElements}); send fewer rows per request");
                }
                var tensor = raw.Count > 0
                    ? FromRaw(raw[i], type, shape, (int)count, label)
                    : FromContents(input.Contents, type, shape, (int)count, label);
                inputs.Add(new NamedTensor(input.Name, tensor));
            }
            var outputs = new List<RequestedOutput>();
            foreach (var output in request.Outputs)
            {
                if (outputs.Exists(o => o.Name == output.Name))
                {
                    throw OipJsonDecoder.Fail($"output '{OipJsonDecoder.Clip(output.Name)}' is requested twice");
                }
                outputs.Add(new RequestedOutput(output.Name, Binary: true));
            }
            return new InferRequest(request.Id.Length > 0 ? request.Id : null, inputs, outputs, binaryOutput: true);
        }
        catch
        {
            foreach (var input in inputs)
            {
                input.Data.Dispose();
            }
            throw;
        }
    }

    private static TensorData FromRaw(ByteString bytes, DataType type, long[] shape, int count, string label)
    {
        if (type == DataType.Bytes)
        {
            return OipJsonDecoder.ReadBytesElements(new ReadOnlySequence<byte>(bytes.Memory), shape, count, label);
        }
        var expected = (long)count * DataTypes.ElementSize(type);
        if (bytes.Length != expected)
        {
            throw OipJsonDecoder.Fail($"{label}: raw_input_contents holds {bytes.Length} bytes, but shape [{string.Join(", ", shape)}] of {DataTypes.Name(type)} needs {expected}");
        }
        var tensor = TensorData.Numeric(type, shape, count);
        bytes.Span.CopyTo(tensor.Span);
        if (type == DataType.Bool)
        {
            foreach (ref var b in tensor.Span)
            {
                b = b == 0 ? (byte)0 : (byte)1;
            }
        }
        return tensor;
    }

    private static TensorData FromContents(Proto.InferTensorContents? contents, DataType type, long[] shape, int count, string label)
    {
        contents ??= new Proto.InferTensorContents();
        int given = type switch
        {
            DataType.Bool => contents.BoolContents.Count,
            DataType.Int8 or DataType.Int16 or DataType.Int32 => contents.IntContents.Count,
            DataType.Int64 => contents.Int64Contents.Count,
            DataType.UInt8 or DataType.UInt16 or DataType.UInt32 => contents.UintContents.Count,
            DataType.UInt64 => contents.Uint64Contents.Count,
            DataType.Fp32 => contents.Fp32Contents.Count,
            DataType.Fp64 => contents.Fp64Contents.Count,
            DataType.Bytes => contents.BytesContents.Count,
            _ => throw OipJsonDecoder.Fail($"{label}: {DataTypes.Name(type)} has no typed contents field; send it in raw_input_contents"),
        };
        if (given != count)
        {
            throw OipJsonDecoder.Fail($"{label}: contents hold {given} values but the shape [{string.Join(", ", shape)}] needs {count}");
        }
        if (type == DataType.Bytes)
        {
            var strings = TensorData.Strings(shape, count, contents.BytesContents.Sum(b => b.Length));
            for (var i = 0; i < count; i++)
            {
                strings.SetElement(i, contents.BytesContents[i].Span);
            }
            return strings;
        }
        var tensor = TensorData.Numeric(type, shape, count);
        var span = tensor.Span;
        switch (type)
        {
            case DataType.Bool:
                for (var i = 0; i < count; i++)
                {
                    span[i] = contents.BoolContents[i] ? (byte)1 : (byte)0;
                }
                break;
            case DataType.Int8:
                Narrow(contents.IntContents, MemoryMarshal.Cast<byte, sbyte>(span), v => checked((sbyte)v), label);
                break;
            case DataType.Int16:
                Narrow(contents.IntContents, MemoryMarshal.Cast<byte, short>(span), v => checked((short)v), label);
                break;
            case DataType.Int32:
                for (var i = 0; i < count; i++)
                {
                    MemoryMarshal.Cast<byte, int>(span)[i] = contents.IntContents[i];
                }
                break;
            case DataType.Int64:
                for (var i = 0; i < count; i++)
                {
                    MemoryMarshal.Cast<byte, long>(span)[i] = contents.Int64Contents[i];
                }
                break;
            case DataType.UInt8:
                Narrow(contents.UintContents, span, v => checked((byte)v), label);
                break;
            case DataType.UInt16:
                Narrow(contents.UintContents, MemoryMarshal.Cast<byte, ushort>(span), v => checked((ushort)v), label);
                break;
            case DataType.UInt32:
                for (var i = 0; i < count; i++)
                {
                    MemoryMarshal.Cast<byte, uint>(span)[i] = contents.UintContents[i];
                }
                break;
            case DataType.UInt64:
                for (var i = 0; i < count; i++)
                {
                    MemoryMarshal.Cast<byte, ulong>(span)[i] = contents.Uint64Contents[i];
                }
                break;
            case DataType.Fp32:
                for (var i = 0; i < count; i++)
                {
                    MemoryMarshal.Cast<byte, float>(span)[i] = contents.Fp32Contents[i];
                }
                break;
            case DataType.Fp64:
                for (var i = 0; i < count; i++)
                {
                    MemoryMarshal.Cast<byte, double>(span)[i] = contents.Fp64Contents[i];
                }
                break;
        }
        return tensor;
    }

    private static void Narrow<TWide, TNarrow>(IList<TWide> source, Span<TNarrow> target, Func<TWide, TNarrow> convert, string label)
    {
        try
        {
            for (var i = 0; i < target.Length; i++)
            {
                target[i] = convert(source[i]);
            }
        }
        catch (OverflowException)
        {
            throw OipJsonDecoder.Fail($"{label}: a value is outside the range of its datatype");
        }
    }

    private static Proto.ModelInferResponse Encode(InferOutcome outcome, string id)
    {
        var response = new Proto.ModelInferResponse { ModelName = outcome.Model, ModelVersion = outcome.Version, Id = id };
        var selected = OipJsonEncoder.Select(outcome.Request, outcome.Onnx.OutputNames, outcome.Result.Outputs, forceBinary: true);
        var buffer = new ArrayBufferWriter<byte>();
        foreach (var output in selected)
        {
            var tensor = new Proto.ModelInferResponse.Types.InferOutputTensor { Name = output.Name, Datatype = DataTypes.Name(output.Data.Type) };
            tensor.Shape.AddRange(output.Data.Shape);
            response.Outputs.Add(tensor);
            // Copied: the tensor's pooled buffer goes back when the outcome is disposed, before gRPC serializes.
            if (output.Data.Type == DataType.Bytes)
            {
                buffer.ResetWrittenCount();
                OipJsonEncoder.WriteTensorBytes(buffer, output.Data);
                response.RawOutputContents.Add(ByteString.CopyFrom(buffer.WrittenSpan));
            }
            else
            {
                response.RawOutputContents.Add(ByteString.CopyFrom(output.Data.Span));
            }
        }
        return response;
    }

    /// <summary>The one mapping from the error tree to gRPC status codes.</summary>
    public static StatusCode StatusFor(ErrorKind kind) => kind switch
    {
        ErrorKind.InvalidInput => StatusCode.InvalidArgument,
        ErrorKind.Unauthorized => StatusCode.Unauthenticated,
        ErrorKind.Forbidden => StatusCode.PermissionDenied,
        ErrorKind.NotFound => StatusCode.NotFound,
        ErrorKind.Conflict => StatusCode.FailedPrecondition,
        ErrorKind.TooLarge => StatusCode.ResourceExhausted,
        ErrorKind.NotReady or ErrorKind.Unavailable => StatusCode.Unavailable,
        _ => StatusCode.Internal,
    };

    private RpcException Map(Exception error, ServerCallContext context, string? requestId = null)
    {
        if (error is RpcException rpc)
        {
            return rpc;
        }
        var trailers = new Metadata();
        if (requestId is not null)
        {
            trailers.Add(HttpResults.RequestIdHeader, requestId);
        }
        if (error.Data[InferenceDataPlane.VersionKey] is string version)
        {
            trailers.Add(HttpResults.VersionHeader, version);
        }
        if (error is LeptonException lepton)
        {
            trailers.Add("lepton-error-code", lepton.Code);
            if (lepton is NotReadyException { RetryAfter: { } retry })
            {
                trailers.Add("retry-after", Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            return new RpcException(new Status(StatusFor(lepton.Kind), lepton.Message), trailers);
        }
        if (error is OperationCanceledException && context.CancellationToken.IsCancellationRequested)
        {
            return new RpcException(new Status(StatusCode.Cancelled, "the call was cancelled"), trailers);
        }
        log.LogError(error, "unexpected error in a gRPC call");
        return new RpcException(new Status(StatusCode.Internal, $"internal error: {error.GetType().Name}"), trailers);
    }
}
