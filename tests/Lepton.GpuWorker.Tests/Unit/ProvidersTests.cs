using Lepton.GpuWorker.Configuration;
using Lepton.GpuWorker.Serving;
using Lepton.Shared;
using Microsoft.ML.OnnxRuntime;

namespace Lepton.GpuWorker.Tests.Unit;

/// <summary>Provider selection with injected provider lists and device counts (this machine has no GPU).</summary>
public sealed class ProvidersTests
{
    private const string Cuda = ExecutionProviders.Cuda;
    private const string Cpu = ExecutionProviders.Cpu;

    [Fact]
    public void Cuda_when_offered_and_a_device_is_visible()
    {
        var choice = ExecutionProviders.Choose(new ExecutionOptions { CudaDeviceId = 1, CudaMemLimitMb = 2048, CudaArenaExtendStrategy = "kSameAsRequested" }, [Cuda, Cpu], 2);
        Assert.Equal(Cuda, choice.Name);
        Assert.Equal("1", choice.CudaOptions["device_id"]);
        Assert.Equal("kSameAsRequested", choice.CudaOptions["arena_extend_strategy"]);
        Assert.Equal((2048L * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture), choice.CudaOptions["gpu_mem_limit"]);
        Assert.Equal((1, 1), (choice.IntraOpThreads, choice.InterOpThreads));
    }

    [Fact]
    public void Cpu_with_explicit_threads_when_cuda_is_offered_but_no_device_is_visible()
    {
        var choice = ExecutionProviders.Choose(new ExecutionOptions { IntraOpThreads = 3 }, [Cuda, Cpu], 0);
        Assert.Equal(Cpu, choice.Name);
        Assert.Contains("no CUDA device", choice.Reason, StringComparison.Ordinal);
        using var options = choice.CreateSessionOptions();
        Assert.Equal(3, options.IntraOpNumThreads);
        Assert.Equal(1, options.InterOpNumThreads);
    }

    [Fact]
    public void Cpu_when_onnxruntime_has_no_cuda_build_and_when_forced()
    {
        var choice = ExecutionProviders.Choose(new ExecutionOptions(), [Cpu], 4);
        Assert.Equal(Cpu, choice.Name);
        Assert.Contains("offers no CUDA", choice.Reason, StringComparison.Ordinal);
        Assert.True(choice.IntraOpThreads >= 1);
        Assert.Equal(Cpu, ExecutionProviders.Choose(new ExecutionOptions { Provider = "cpu" }, [Cuda, Cpu], 1).Name);
        Assert.Equal(Cpu, ExecutionProviders.Choose(new ExecutionOptions { CudaDeviceId = 2 }, [Cuda, Cpu], 1).Name);
    }

    [Theory]
    [InlineData(new[] { Cpu }, 1, "-p:LeptonGpu=true")]
    [InlineData(new[] { Cuda, Cpu }, 0, "0 CUDA device")]
    public void Cuda_forced_but_unusable_fails_with_the_reason(string[] offered, int devices, string why)
    {
        var error = Assert.Throws<ConfigurationException>(() => ExecutionProviders.Choose(new ExecutionOptions { Provider = "cuda" }, offered, devices));
        Assert.Contains(why, error.Message, StringComparison.Ordinal);
        Assert.Contains("LEPTON_WORKER_PROVIDER=auto", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void This_machine_selects_what_onnxruntime_really_offers()
    {
        var offered = OrtEnv.Instance().GetAvailableProviders();
        var choice = ExecutionProviders.Choose(new ExecutionOptions(), offered, ExecutionProviders.VisibleCudaDevices());
        var expected = offered.Contains(Cuda) && ExecutionProviders.VisibleCudaDevices() > 0 ? Cuda : Cpu;
        Assert.Equal(expected, choice.Name);
    }

    [Fact]
    public void Visible_devices_count_device_nodes_and_honour_cuda_visible_devices()
    {
        var dev = Directory.CreateTempSubdirectory("lepton-dev-").FullName;
        try
        {
            foreach (var name in new[] { "nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm" })
            {
                File.WriteAllText(Path.Combine(dev, name), "");
            }
            Assert.Equal(2, ExecutionProviders.VisibleCudaDevices(new Dictionary<string, string?>(), dev));
            Assert.Equal(1, ExecutionProviders.VisibleCudaDevices(new Dictionary<string, string?> { ["CUDA_VISIBLE_DEVICES"] = "1" }, dev));
            Assert.Equal(0, ExecutionProviders.VisibleCudaDevices(new Dictionary<string, string?> { ["CUDA_VISIBLE_DEVICES"] = "-1" }, dev));
            Assert.Equal(0, ExecutionProviders.VisibleCudaDevices(new Dictionary<string, string?> { ["CUDA_VISIBLE_DEVICES"] = "" }, dev));
            Assert.Equal(0, ExecutionProviders.VisibleCudaDevices(new Dictionary<string, string?>(), Path.Combine(dev, "missing")));
        }
        finally
        {
            Directory.Delete(dev, recursive: true);
        }
    }
}
