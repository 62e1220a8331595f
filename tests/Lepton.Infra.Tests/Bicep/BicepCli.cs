using System.Diagnostics;
using System.Reflection;

namespace Lepton.Infra.Tests.Bicep;

/// <summary>What one run of the Bicep CLI printed and how it ended.</summary>
internal sealed record BicepRun(int ExitCode, string Output)
{
    /// <summary>Diagnostic lines (<c>file(line,col) : Warning|Error CODE: message</c>).</summary>
    public IReadOnlyList<string> Diagnostics => Output
        .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Where(line => line.Contains(" : Warning ", StringComparison.Ordinal) || line.Contains(" : Error ", StringComparison.Ordinal))
        .ToList();
}

/// <summary>
/// The real Bicep CLI, restored from NuGet (Azure.Bicep.CommandLine.linux-x64) by this project's
/// build, whose path the build wrote into the assembly. Every run passes <c>--no-restore</c>
/// where the command has it, so nothing is ever fetched from a module registry.
/// </summary>
internal static class BicepCli
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(2);

    public static string Executable { get; } = Locate();

    public static async Task<BicepRun> RunAsync(string workingDirectory, params string[] arguments)
    {
        var start = new ProcessStartInfo(Executable)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {Executable}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(Limit);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"bicep {string.Join(' ', arguments)} ran longer than {Limit}");
        }
        return new BicepRun(process.ExitCode, await stdout + await stderr);
    }

    private static string Locate()
    {
        var path = typeof(BicepCli).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .SingleOrDefault(a => a.Key == "BicepPath")?.Value;
        if (string.IsNullOrEmpty(path) || !File.Exists(path))
        {
            throw new InvalidOperationException(
                $"the Bicep CLI is not at '{path}': restore the test project (dotnet restore tests/Lepton.Infra.Tests), "
                + "which brings Azure.Bicep.CommandLine.linux-x64 from NuGet");
        }
        return Path.GetFullPath(path);
    }
}
