using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Lepton.Infra.Tests.Docker;

/// <summary>
/// The worker images, checked statically (no Docker engine runs here): multi-stage builds from the
/// .NET SDK image, every base image pinned, a final stage that only ships the published worker and
/// runs it as a non-root user with a health check on the readiness route; the GPU image on the CUDA
/// and cuDNN runtime ONNX Runtime GPU 1.31 needs, publishing with -p:LeptonGpu=true; a
/// .dockerignore that lets only the build inputs into the context.
/// </summary>
public sealed partial class DockerfileTests
{
    private const string SdkImage = "mcr.microsoft.com/dotnet/sdk";
    private const string AspNetImage = "mcr.microsoft.com/dotnet/aspnet";
    private const string Project = "src/GpuWorker/Lepton.GpuWorker.csproj";

    public static TheoryData<string> Images { get; } = ["worker.gpu.Dockerfile", "worker.cpu.Dockerfile"];

    private static IReadOnlyList<DockerStage> Stages(string image) =>
        Dockerfile.Parse(File.ReadAllText(Path.Combine(Repository.DockerDir, image))).Stages;

    /// <summary>What is wrong with a Dockerfile as a worker image; empty when nothing is.</summary>
    internal static IReadOnlyList<string> WorkerImageProblems(string text)
    {
        var problems = new List<string>();
        var stages = Dockerfile.Parse(text).Stages;
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var stage in stages)
        {
            if (!names.Contains(stage.BaseImage) && !IsPinned(stage.BaseImage))
            {
                problems.Add($"'{stage.BaseImage}' is not pinned: name an exact version tag (x.y.z) or a digest");
            }
            if (stage.Name is not null)
            {
                names.Add(stage.Name);
            }
        }
        if (stages.Count < 2)
        {
            problems.Add("one stage: build in one stage, ship from another");
        }
        if (!stages[0].BaseImage.StartsWith(SdkImage + ":", StringComparison.Ordinal))
        {
            problems.Add("the build does not start from the .NET SDK image");
        }
        if (!stages.SelectMany(s => s.Arguments("RUN")).Any(run => run.Contains("dotnet publish", StringComparison.Ordinal) && run.Contains(Project, StringComparison.Ordinal)))
        {
            problems.Add($"no stage runs dotnet publish {Project}");
        }
        var final = stages[^1];
        if (final.BaseImage.StartsWith(SdkImage, StringComparison.Ordinal) || final.Arguments("RUN").Any(run => run.Contains("dotnet ", StringComparison.Ordinal)))
        {
            problems.Add("the final stage has the SDK or builds: ship only the published worker");
        }
        if (final.Arguments("COPY").Any(copy => !copy.StartsWith("--from=", StringComparison.Ordinal)))
        {
            problems.Add("the final stage copies from the build context: copy only from the build stages");
        }
        var user = final.Arguments("USER").LastOrDefault()?.Split(':')[0];
        if (user is null or "root" or "0")
        {
            problems.Add("the final stage runs as root");
        }
        var health = final.Arguments("HEALTHCHECK").LastOrDefault() ?? "";
        if (!health.Contains("/v2/health/ready", StringComparison.Ordinal) || !health.Contains("LEPTON_WORKER_PORT", StringComparison.Ordinal))
        {
            problems.Add("no HEALTHCHECK on /v2/health/ready at LEPTON_WORKER_PORT");
        }
        var entrypoint = final.Arguments("ENTRYPOINT").LastOrDefault() is { } e ? DockerInstruction.ExecForm(e) : null;
        if (entrypoint is not ["dotnet", "/app/Lepton.GpuWorker.dll"])
        {
            problems.Add("ENTRYPOINT is not [\"dotnet\", \"/app/Lepton.GpuWorker.dll\"]");
        }
        var env = final.Environment();
        // The worker defaults to 127.0.0.1: in a container nothing outside could reach it.
        if (env.GetValueOrDefault("LEPTON_WORKER_HOST") != "0.0.0.0")
        {
            problems.Add("LEPTON_WORKER_HOST is not 0.0.0.0: the health check passes, ingress fails");
        }
        var exposed = final.Arguments("EXPOSE").SelectMany(a => a.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToHashSet();
        foreach (var (setting, port) in new[] { ("LEPTON_WORKER_PORT", "8000"), ("LEPTON_WORKER_GRPC_PORT", "8001") })
        {
            if (env.GetValueOrDefault(setting) != port || !exposed.Contains(port))
            {
                problems.Add($"{setting} is not {port}, or {port} is not exposed");
            }
        }
        return problems;
    }

    /// <summary>An exact version tag (x.y.z somewhere in it) or a sha256 digest; never latest or a bare major.</summary>
    internal static bool IsPinned(string image)
    {
        if (PinnedDigest().IsMatch(image))
        {
            return true;
        }
        var colon = image.LastIndexOf(':');
        var tag = colon > image.LastIndexOf('/') ? image[(colon + 1)..] : "";
        return ExactVersion().IsMatch(tag);
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void The_image_is_a_lean_pinned_non_root_worker(string image) =>
        Assert.Empty(WorkerImageProblems(File.ReadAllText(Path.Combine(Repository.DockerDir, image))));

    [Fact]
    public void A_root_single_stage_unpinned_image_without_a_health_check_is_caught()
    {
        var problems = WorkerImageProblems("""
            FROM mcr.microsoft.com/dotnet/sdk:10.0
            WORKDIR /src
            COPY . .
            RUN dotnet publish src/Cli/Lepton.Cli.csproj -o /app
            USER root
            ENV LEPTON_WORKER_PORT=8000
            EXPOSE 8000
            CMD dotnet /app/Lepton.GpuWorker.dll
            """);
        Assert.Equal(
            [
                "'mcr.microsoft.com/dotnet/sdk:10.0' is not pinned: name an exact version tag (x.y.z) or a digest",
                "one stage: build in one stage, ship from another",
                $"no stage runs dotnet publish {Project}",
                "the final stage has the SDK or builds: ship only the published worker",
                "the final stage copies from the build context: copy only from the build stages",
                "the final stage runs as root",
                "no HEALTHCHECK on /v2/health/ready at LEPTON_WORKER_PORT",
                "ENTRYPOINT is not [\"dotnet\", \"/app/Lepton.GpuWorker.dll\"]",
                "LEPTON_WORKER_HOST is not 0.0.0.0: the health check passes, ingress fails",
                "LEPTON_WORKER_GRPC_PORT is not 8001, or 8001 is not exposed",
            ],
            problems);
    }

    [Theory]
    [InlineData("nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04", true)]
    [InlineData("mcr.microsoft.com/dotnet/aspnet:10.0.12-noble", true)]
    [InlineData("mcr.microsoft.com/dotnet/aspnet@sha256:2d584d8147faddb0d678c5748d47953e5b8e18621ed4fb7049a91381d9d7746f", true)]
    [InlineData("mcr.microsoft.com/dotnet/aspnet:10.0", false)]
    [InlineData("nvidia/cuda:latest", false)]
    [InlineData("localhost:5000/worker", false)]
    public void Pinning_means_an_exact_version_or_a_digest(string image, bool pinned) => Assert.Equal(pinned, IsPinned(image));

    [Fact]
    public void The_GPU_image_runs_on_the_CUDA_13_cuDNN_runtime_that_ONNX_Runtime_GPU_1_31_links()
    {
        var stages = Stages("worker.gpu.Dockerfile");
        var final = stages[^1];
        // Microsoft.ML.OnnxRuntime.Gpu.Linux 1.31.0's libonnxruntime_providers_cuda.so needs
        // libcudart.so.13 and libcublas.so.13, and loads cuDNN 9: the runtime flavour, no compiler.
        Assert.Matches(@"^nvidia/cuda:13\.\d+\.\d+-cudnn-runtime-ubuntu24\.04$", final.BaseImage);
        Assert.All(stages.SkipLast(1), s => Assert.DoesNotContain("nvidia/cuda", s.BaseImage, StringComparison.Ordinal));
        // The .NET runtime comes from the ASP.NET Core image of the same Ubuntu release.
        var runtime = stages.Single(s => s.BaseImage.StartsWith(AspNetImage + ":", StringComparison.Ordinal));
        Assert.EndsWith("-noble", runtime.BaseImage, StringComparison.Ordinal);
        Assert.Contains($"--from={runtime.Name} /usr/share/dotnet /usr/share/dotnet", final.Arguments("COPY"));
        Assert.Equal("/usr/share/dotnet", final.Environment()["DOTNET_ROOT"]);
    }

    [Fact]
    public void The_GPU_image_restores_and_publishes_the_CUDA_build_and_the_CPU_image_does_not()
    {
        var gpu = Stages("worker.gpu.Dockerfile")[0].Arguments("RUN").Where(r => r.StartsWith("dotnet ", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, gpu.Count);
        Assert.All(gpu, run => Assert.Contains("-p:LeptonGpu=true", run, StringComparison.Ordinal));
        Assert.StartsWith("dotnet restore", gpu[0], StringComparison.Ordinal);
        Assert.StartsWith("dotnet publish", gpu[1], StringComparison.Ordinal);
        var cpu = Stages("worker.cpu.Dockerfile").SelectMany(s => s.Arguments("RUN"));
        Assert.DoesNotContain(cpu, run => run.Contains("LeptonGpu", StringComparison.Ordinal));
        Assert.StartsWith(AspNetImage + ":", Stages("worker.cpu.Dockerfile")[^1].BaseImage, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void The_SDK_matches_global_json_and_the_runtime_matches_the_target_framework(string image)
    {
        var stages = Stages(image);
        var sdk = JsonNode.Parse(File.ReadAllText(Repository.At("global.json")))!["sdk"]!["version"]!.GetValue<string>();
        var sdkTag = Version.Parse(TagVersion(stages[0].BaseImage));
        var wanted = Version.Parse(sdk);
        // rollForward latestPatch: the same feature band (10.0.4xx), at least the pinned patch.
        Assert.True(sdkTag.Major == wanted.Major && sdkTag.Minor == wanted.Minor && sdkTag.Build / 100 == wanted.Build / 100 && sdkTag >= wanted,
            $"{stages[0].BaseImage} does not satisfy global.json's SDK {sdk}");
        var framework = XDocument.Load(Repository.At("Directory.Build.props")).Descendants("TargetFramework").Single().Value;
        var aspnet = Version.Parse(TagVersion(stages.Single(s => s.BaseImage.StartsWith(AspNetImage + ":", StringComparison.Ordinal)).BaseImage));
        Assert.Equal(framework, $"net{aspnet.Major}.{aspnet.Minor}");
    }

    [Fact]
    public void Both_images_ship_the_same_runtime_and_settings()
    {
        var gpu = Stages("worker.gpu.Dockerfile");
        var cpu = Stages("worker.cpu.Dockerfile");
        Assert.Equal(gpu.Single(s => s.BaseImage.StartsWith(AspNetImage, StringComparison.Ordinal)).BaseImage, cpu[^1].BaseImage);
        Assert.Equal(gpu[0].BaseImage, cpu[0].BaseImage);
        var lepton = (DockerStage s) => s.Environment().Where(e => e.Key.StartsWith("LEPTON_", StringComparison.Ordinal)).OrderBy(e => e.Key, StringComparer.Ordinal).ToList();
        Assert.Equal(lepton(gpu[^1]), lepton(cpu[^1]));
    }

    [Fact]
    public void The_dockerignore_is_an_allowlist_of_the_build_inputs()
    {
        var ignore = DockerIgnore.Parse(File.ReadAllText(Repository.At(".dockerignore")));
        Assert.Equal("*", ignore.Patterns[0]);
        Assert.Equal(
            ["!.editorconfig", "!Directory.Build.props", "!Directory.Packages.props", "!global.json", "!src/GpuWorker", "!src/Shared"],
            ignore.Patterns.Where(p => p.StartsWith('!')).Order(StringComparer.Ordinal));
        // Everything the Dockerfiles copy from the context gets in.
        foreach (var image in Images)
        {
            var copies = Stages(image).SelectMany(s => s.Arguments("COPY")).Where(c => !c.StartsWith("--from=", StringComparison.Ordinal));
            foreach (var source in copies.SelectMany(c => c.Split(' ', StringSplitOptions.RemoveEmptyEntries).SkipLast(1)))
            {
                Assert.False(ignore.Excludes(source.TrimEnd('/')), $"{image} copies {source}, which .dockerignore leaves out");
            }
        }
    }

    [Fact]
    public void The_context_of_this_checkout_holds_no_local_state()
    {
        var ignore = DockerIgnore.Parse(File.ReadAllText(Repository.At(".dockerignore")));
        var sent = ignore.ContextFiles(Repository.Root).ToList();
        Assert.Contains("src/Shared/Lepton.Shared.csproj", sent);
        Assert.Contains("Directory.Packages.props", sent);
        Assert.All(sent, path =>
        {
            Assert.True(path.StartsWith("src/Shared/", StringComparison.Ordinal) || path.StartsWith("src/GpuWorker/", StringComparison.Ordinal) || !path.Contains('/', StringComparison.Ordinal), path);
            Assert.DoesNotContain(path.Split('/'), part => part is "bin" or "obj" or ".lepton" or "node_modules" or "local.settings.json");
        });
    }

    [Fact]
    public void Dockerignore_matching_follows_Docker_order_folders_and_negation()
    {
        var ignore = DockerIgnore.Parse("""
            # comment
            *
            !src/Keep/
            **/bin/
            !src/Keep/bin/wanted.txt
            """);
        Assert.True(ignore.Excludes("README.md"));
        Assert.True(ignore.Excludes("node_modules/a/index.js"));
        Assert.True(ignore.Excludes("src/Other/x.cs"));
        Assert.False(ignore.Excludes("src/Keep/x.cs"));
        Assert.True(ignore.Excludes("src/Keep/bin/Debug/x.dll"));
        Assert.True(ignore.Excludes("src/Keep/deep/bin/x.dll"));
        Assert.False(ignore.Excludes("src/Keep/bin/wanted.txt"));
        Assert.False(ignore.Excludes("src/Keep/binary.cs"));
    }

    [Fact]
    public void The_parser_joins_continuations_drops_comments_and_reads_env_and_exec_forms()
    {
        var (args, stages) = Dockerfile.Parse("""
            # syntax=docker/dockerfile:1
            ARG BASE=x
            FROM --platform=linux/amd64 a:1.2.3 AS one
            RUN echo a \
                # a comment inside the continuation
                && echo b
            FROM one
            ENV A=1 B="two words" C=three\ words
            ENV LEGACY value with spaces
            ENTRYPOINT ["dotnet", "x.dll"]
            """);
        Assert.Equal("ARG", Assert.Single(args).Keyword);
        Assert.Equal(["a:1.2.3", "one"], stages.Select(s => s.BaseImage));
        Assert.Equal("one", stages[0].Name);
        Assert.Equal("echo a     && echo b", Assert.Single(stages[0].Arguments("RUN")));
        var env = stages[1].Environment();
        Assert.Equal(["1", "two words", "three words", "value with spaces"], new[] { env["A"], env["B"], env["C"], env["LEGACY"] });
        Assert.Equal(["dotnet", "x.dll"], DockerInstruction.ExecForm(stages[1].Arguments("ENTRYPOINT").Single()));
        Assert.Null(DockerInstruction.ExecForm("dotnet x.dll"));
    }

    private static string TagVersion(string image) => ExactVersion().Match(image[(image.LastIndexOf(':') + 1)..]).Value;

    [GeneratedRegex(@"\d+\.\d+\.\d+")]
    private static partial Regex ExactVersion();

    [GeneratedRegex("@sha256:[0-9a-f]{64}$")]
    private static partial Regex PinnedDigest();
}
