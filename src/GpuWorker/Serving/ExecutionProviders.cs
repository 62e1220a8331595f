using System.Text.RegularExpressions;
using Lepton.GpuWorker.Configuration;
using Lepton.Shared;
using Microsoft.ML.OnnxRuntime;

namespace Lepton.GpuWorker.Serving;

/// <summary>
/// The execution provider every session of this replica uses, the session options that go with it,
/// and why it was chosen (reported in metadata, heartbeats and metrics).
/// </summary>
public sealed record ProviderChoice(
    string Name,
    IReadOnlyDictionary<string, string> CudaOptions,
    int IntraOpThreads,
    int InterOpThreads,
    string Reason)
{
    public bool IsCuda => Name == ExecutionProviders.Cuda;

    /// <summary>
    /// Batches of one version run at once: as configured on CUDA (copies overlap compute), but on
    /// the CPU never more than the cores can run side by side, since two runs sharing one core only
    /// evict each other's weights from the cache.
    /// </summary>
    public int BatchConcurrency(int configured) =>
        IsCuda ? configured : Math.Clamp(Environment.ProcessorCount / Math.Max(1, IntraOpThreads), 1, configured);

    /// <summary>Fresh session options (ONNX Runtime takes ownership per session).</summary>
    public Microsoft.ML.OnnxRuntime.SessionOptions CreateSessionOptions()
    {
        var options = new Microsoft.ML.OnnxRuntime.SessionOptions
        {
            IntraOpNumThreads = IntraOpThreads,
            InterOpNumThreads = InterOpThreads,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        if (IsCuda)
        {
            using var cuda = new OrtCUDAProviderOptions();
            cuda.UpdateOptions(CudaOptions.ToDictionary(p => p.Key, p => p.Value));
            options.AppendExecutionProvider_CUDA(cuda);
        }
        // Nodes CUDA cannot run fall back to the CPU provider, which every build includes.
        return options;
    }
}

/// <summary>
/// CUDA when ONNX Runtime offers <c>CUDAExecutionProvider</c> <i>and</i> a device is visible (a CUDA
/// build on a machine without a GPU would fail at the first session); otherwise CPU with explicit
/// thread counts, because ONNX Runtime's default of one thread per core fights with the request
/// threads and with other replicas on the node. The offered providers and the device count are
/// parameters so the choice is tested on machines without a GPU.
/// </summary>
public static partial class ExecutionProviders
{
    public const string Cuda = "CUDAExecutionProvider";
    public const string Cpu = "CPUExecutionProvider";

    [GeneratedRegex(@"\Anvidia[0-9]+\z", RegexOptions.CultureInvariant)]
    private static partial Regex DeviceNode();

    /// <summary>What this process's ONNX Runtime build offers.</summary>
    public static IReadOnlyList<string> Offered() => OrtEnv.Instance().GetAvailableProviders();

    /// <summary>NVIDIA devices this process can see: <c>/dev/nvidia&lt;n&gt;</c> nodes, limited by <c>CUDA_VISIBLE_DEVICES</c>.</summary>
    public static int VisibleCudaDevices(IReadOnlyDictionary<string, string?>? environment = null, string devDirectory = "/dev")
    {
        var visible = environment is null ? Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES") : environment.GetValueOrDefault("CUDA_VISIBLE_DEVICES");
        if (visible is not null && visible.Trim() is "" or "-1" or "none" or "void" or "NoDevFiles")
        {
            return 0;
        }
        int nodes;
        try
        {
            nodes = Directory.Exists(devDirectory)
                ? Directory.EnumerateFileSystemEntries(devDirectory).Count(p => DeviceNode().IsMatch(Path.GetFileName(p)))
                : 0;
        }
        catch (IOException)
        {
            return 0;
        }
        catch (UnauthorizedAccessException)
        {
            return 0;
        }
        return visible is null ? nodes : Math.Min(nodes, visible.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Length);
    }

    /// <summary>Chooses from the setting, what ONNX Runtime offers and how many devices are visible.</summary>
    public static ProviderChoice Choose(ExecutionOptions options, IReadOnlyList<string> offered, int devices)
    {
        var cudaOffered = offered.Contains(Cuda, StringComparer.Ordinal);
        var cudaUsable = cudaOffered && devices > options.CudaDeviceId;
        if (options.Provider == "cuda" && !cudaUsable)
        {
            var why = !cudaOffered
                ? $"ONNX Runtime offers {string.Join(", ", offered)} (build the worker with -p:LeptonGpu=true, the GPU image)"
                : $"{devices} CUDA device(s) visible, device id {options.CudaDeviceId} requested";
            throw new ConfigurationException(
                $"{WorkerSettingNames.Provider}=cuda but CUDA is not usable: {why}; set {WorkerSettingNames.Provider}=auto to fall back to CPU");
        }
        if (options.Provider != "cpu" && cudaUsable)
        {
            var cuda = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                ["device_id"] = options.CudaDeviceId.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["arena_extend_strategy"] = options.CudaArenaExtendStrategy,
            };
            if (options.CudaMemLimitMb > 0)
            {
                cuda["gpu_mem_limit"] = (options.CudaMemLimitMb * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            // Host threads only run the nodes CUDA cannot: keep them few.
            return new ProviderChoice(Cuda, cuda, 1, 1, $"CUDA device {options.CudaDeviceId} of {devices} visible");
        }
        var reason = options.Provider == "cpu"
            ? $"{WorkerSettingNames.Provider}=cpu"
            : !cudaOffered ? "ONNX Runtime offers no CUDAExecutionProvider" : "CUDAExecutionProvider offered but no CUDA device is visible";
        return new ProviderChoice(Cpu, new Dictionary<string, string>(), options.EffectiveIntraOpThreads, options.InterOpThreads, reason);
    }
}
