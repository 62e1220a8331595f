using System.Diagnostics;
using Lepton.Cli.LocalStack;

namespace Lepton.E2E.Tests.Harness;

/// <summary>What one <c>lepton</c> command printed and how it exited.</summary>
public sealed record CliResult(IReadOnlyList<string> Arguments, int ExitCode, string Stdout, string Stderr)
{
    public string Output => Stdout + Stderr;

    /// <summary>The output as one line, whitespace collapsed: a message reads the same however the terminal wrapped it.</summary>
    public string Text => string.Join(' ', Output.Split((char[])[' ', '\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries));

    public IReadOnlyList<string> Lines => Output.Split('\n').Select(l => l.TrimEnd('\r')).ToList();

    /// <summary>The widest line; an 80-column terminal shows every line whole when it is at most 80.</summary>
    public int Widest => Lines.Max(l => l.Length);

    /// <summary>Fails the test when a line would wrap in an 80-column terminal.</summary>
    public void AssertFitsIn80Columns() => Assert.True(Widest <= 80, $"a line is {Widest} columns wide:\n{this}");

    public override string ToString() => $"lepton {string.Join(' ', Arguments)} → exit {ExitCode}\n{Output}";
}

/// <summary>
/// Runs the built CLI as a user does (<c>dotnet lepton.dll …</c>) in an 80-column terminal
/// (<c>COLUMNS=80</c>; Spectre.Console and the help use the same width), with only the settings
/// given: anything the test runner's environment holds about Lepton or storage is removed first.
/// </summary>
public static class CliRun
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(120);

    /// <summary>Removes every setting a stray environment could point the stack or the CLI at; sets an 80-column terminal.</summary>
    public static void Isolate(IDictionary<string, string?> environment)
    {
        foreach (var name in environment.Keys.Where(k => k.StartsWith("LEPTON_", StringComparison.Ordinal)
            || k.StartsWith("AzureWebJobsStorage", StringComparison.OrdinalIgnoreCase)
            || k is "ASPNETCORE_URLS" or "URLS" or "COLUMNS" or "LINES").ToList())
        {
            environment.Remove(name);
        }
        environment["COLUMNS"] = "80";
    }

    public static async Task<CliResult> RunAsync(
        IReadOnlyDictionary<string, string?> environment, IReadOnlyList<string> arguments, TimeSpan? timeout = null, string? workingDirectory = null, CancellationToken cancellationToken = default)
    {
        var start = new ProcessStartInfo("setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            // Not the checkout: nothing may depend on a .lepton folder where the test runs.
            WorkingDirectory = workingDirectory ?? Path.GetTempPath(),
        };
        foreach (var argument in new[] { "--pdeathsig", "KILL", "dotnet", LeptonBinary.Path }.Concat(arguments))
        {
            start.ArgumentList.Add(argument);
        }
        Isolate(start.Environment);
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }
        using var process = ChildProcesses.Start(start);
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout ?? DefaultTimeout);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            throw new TimeoutException($"lepton {string.Join(' ', arguments)} did not finish within {(timeout ?? DefaultTimeout).TotalSeconds:0} s:\n{await stdout}{await stderr}");
        }
        return new CliResult(arguments, process.ExitCode, await stdout, await stderr);
    }
}
