using Lepton.E2E.Tests.Harness;

namespace Lepton.E2E.Tests;

/// <summary>
/// <c>lepton bench</c> on a checkout whose <c>bench/Lepton.Bench</c> is a small stand-in that
/// prints its arguments (the real benchmarks run for minutes): it is built in Release and each
/// named benchmark run in turn with the options passed through; outside a checkout it says so.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class BenchCommandTests : IDisposable
{
    private readonly string _checkout = Directory.CreateTempSubdirectory("lepton-e2e-checkout-").FullName;

    public BenchCommandTests()
    {
        File.WriteAllText(Path.Combine(_checkout, Cli.LocalStack.Checkout.MarkerFile), "");
        var bench = Directory.CreateDirectory(Path.Combine(_checkout, "bench", "Lepton.Bench")).FullName;
        File.WriteAllText(Path.Combine(bench, "Lepton.Bench.csproj"), """
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
              </PropertyGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(bench, "Program.cs"), """
            var release = AppContext.BaseDirectory.Contains("/bin/Release/") ? "Release" : "other";
            Console.WriteLine($"ran {string.Join(' ', args)} ({release})");
            return args[0] == Environment.GetEnvironmentVariable("FAIL_BENCH") ? 4 : 0;
            """);
    }

    public void Dispose() => Directory.Delete(_checkout, recursive: true);

    /// <summary>
    /// The PATH the command runs with: a stand-in <c>wrk</c> ahead of the usual PATH (the command
    /// only checks that wrk is there before it starts the load benchmark, which drives it), or,
    /// without wrk, nothing but the folder dotnet lives in.
    /// </summary>
    private Dictionary<string, string?> PathWith(bool wrk)
    {
        if (!wrk)
        {
            // shared/Microsoft.NETCore.App/<version>/ sits three folders below dotnet itself.
            var runtime = new DirectoryInfo(Path.GetDirectoryName(typeof(object).Assembly.Location)!);
            return new Dictionary<string, string?> { ["PATH"] = runtime.Parent!.Parent!.Parent!.FullName };
        }
        var tools = Directory.CreateDirectory(Path.Combine(_checkout, "tools")).FullName;
        var fake = Path.Combine(tools, "wrk");
        File.WriteAllText(fake, "#!/bin/sh\nexit 0\n");
        File.SetUnixFileMode(fake, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return new Dictionary<string, string?> { ["PATH"] = $"{tools}:{Environment.GetEnvironmentVariable("PATH")}" };
    }

    [Fact(Timeout = 240_000)]
    public async Task Bench_builds_in_release_runs_each_benchmark_in_turn_and_stops_at_a_failure()
    {
        var token = TestContext.Current.CancellationToken;
        var all = await CliRun.RunAsync(PathWith(wrk: true), ["bench", "--quick", "--checkout", _checkout], TimeSpan.FromSeconds(200), cancellationToken: token);
        Assert.True(all.ExitCode == 0, all.ToString());
        var load = all.Stdout.IndexOf("ran load --quick (Release)", StringComparison.Ordinal);
        var micro = all.Stdout.IndexOf("ran micro --quick (Release)", StringComparison.Ordinal);
        Assert.True(load >= 0 && micro > load, all.ToString());

        var filtered = await CliRun.RunAsync(new Dictionary<string, string?> { ["FAIL_BENCH"] = "micro" }, ["bench", "micro", "--filter", "*Router*", "--checkout", _checkout], TimeSpan.FromSeconds(120), cancellationToken: token);
        Assert.True(filtered.ExitCode == 4, filtered.ToString());
        Assert.Contains("ran micro --filter *Router* (Release)", filtered.Stdout);
        Assert.DoesNotContain("ran load", filtered.Stdout);
        Assert.Contains("bench micro exited with code 4", filtered.Text);
        filtered.AssertFitsIn80Columns();
    }

    [Fact(Timeout = 60_000)]
    public async Task Bench_outside_a_checkout_says_what_to_do()
    {
        var token = TestContext.Current.CancellationToken;
        var empty = Directory.CreateTempSubdirectory("lepton-e2e-empty-").FullName;
        try
        {
            var result = await CliRun.RunAsync(new Dictionary<string, string?>(), ["bench", "--checkout", empty], cancellationToken: token);
            Assert.Equal(1, result.ExitCode);
            Assert.Contains("is not a Lepton checkout", result.Text);
            Assert.Contains("--checkout", result.Text);
            result.AssertFitsIn80Columns();
            var unknown = await CliRun.RunAsync(new Dictionary<string, string?>(), ["bench", "everything"], cancellationToken: token);
            Assert.NotEqual(0, unknown.ExitCode);
            Assert.Contains("everything", unknown.Text);
            // The load benchmark drives the worker with wrk: without it, what to install, before any build.
            var noWrk = await CliRun.RunAsync(PathWith(wrk: false), ["bench", "--checkout", _checkout], cancellationToken: token);
            Assert.True(noWrk.ExitCode == 1, noWrk.ToString());
            Assert.Contains("apt-get install wrk", noWrk.Text);
            Assert.Contains("lepton bench micro", noWrk.Text);
            Assert.DoesNotContain("building", noWrk.Text);
            noWrk.AssertFitsIn80Columns();
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }
}
