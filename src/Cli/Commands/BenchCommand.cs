using System.CommandLine;
using System.Diagnostics;
using Lepton.Cli.LocalStack;
using Lepton.Shared;
using Spectre.Console;

namespace Lepton.Cli.Commands;

/// <summary>
/// <c>lepton bench [load] [micro] [canary] [fast-rollback] [soak] [--quick]</c>: what <c>make bench</c> runs, from the
/// checkout — <c>bench/Lepton.Bench</c> built in Release, then each named benchmark in turn (load:
/// the worker under wrk; micro: BenchmarkDotNet; canary: the canary test's power under peeking;
/// fast-rollback: what a failing candidate serves after the deciding look; soak: the local stack
/// through a rollout with a storage stall and a worker restart). Figures are
/// printed, never asserted.
/// </summary>
internal static class BenchCommand
{
    public const string Project = "bench/Lepton.Bench/Lepton.Bench.csproj";
    public const string Binary = "bench/Lepton.Bench/bin/Release/net10.0/Lepton.Bench.dll";

    /// <summary>The benchmarks a user runs (Lepton.Bench's other commands are its own child processes).</summary>
    public static readonly string[] Names = ["load", "micro", "canary", "fast-rollback", "soak"];

    private static readonly string[] DotnetWithParentDeathSignal = ["--pdeathsig", "KILL", "dotnet"];

    public static Command Create()
    {
        var benchmarks = new Argument<string[]>("benchmarks")
        {
            Description = "Which to run, in order (default: load micro canary fast-rollback soak, as `make bench`)",
            Arity = ArgumentArity.ZeroOrMore,
        };
        benchmarks.AcceptOnlyFromAmong(Names);
        var quick = new Option<bool>("--quick") { Description = "A short pass (seconds per figure instead of minutes)" };
        var filter = new Option<string?>("--filter") { Description = "micro only: BenchmarkDotNet's filter, e.g. '*Router*'" };
        var checkout = new Option<DirectoryInfo?>("--checkout") { Description = "The Lepton checkout to benchmark (default: the one this CLI runs from, else the current folder's)" };
        var command = new Command("bench", "Build the benchmarks in Release and run them (the worker under load, micro-benchmarks, canary power, fast rollback, the soak)")
        {
            benchmarks, quick, filter, checkout,
        };
        command.SetAction((parse, cancellationToken) => CommandRunner.RunAsync("bench", async () =>
        {
            var root = Root(parse.GetValue(checkout));
            var names = parse.GetValue(benchmarks) is { Length: > 0 } chosen ? chosen : Names;
            if (names.Contains("load") && !OnPath("wrk"))
            {
                throw new ConfigurationException(
                    "the load benchmark drives the worker with wrk, which is not installed: `apt-get install wrk` (what `make bench` does), or run `lepton bench micro`");
            }
            AnsiConsole.MarkupLineInterpolated($"building {Project} (Release)…");
            var built = await RunAsync(root, ["build", Project, "-c", "Release", "--nologo", "-clp:NoSummary", "-v", "quiet"], cancellationToken);
            if (built != 0)
            {
                AnsiConsole.MarkupLineInterpolated($"[bold red]error:[/] the benchmarks did not build (exit {built}); the compiler's messages are above");
                return built;
            }
            foreach (var name in names)
            {
                List<string> arguments = [Path.Combine(root, Binary), name];
                if (parse.GetValue(quick))
                {
                    arguments.Add("--quick");
                }
                if (name == "micro" && parse.GetValue(filter) is { Length: > 0 } pattern)
                {
                    arguments.AddRange(["--filter", pattern]);
                }
                AnsiConsole.MarkupLineInterpolated($"[bold]bench {name}[/]{(parse.GetValue(quick) ? " (quick)" : "")}");
                var code = await RunAsync(root, arguments, cancellationToken);
                if (code != 0)
                {
                    AnsiConsole.MarkupLineInterpolated($"[bold red]error:[/] bench {name} exited with code {code}; its output is above");
                    return code;
                }
            }
            return 0;
        }));
        return command;
    }

    /// <summary>The checkout named by <c>--checkout</c>, else the CLI's own or the current folder's; it must hold the benchmarks.</summary>
    internal static string Root(DirectoryInfo? given)
    {
        var root = given is not null
            ? given.FullName
            : Checkout.Find(AppContext.BaseDirectory, Directory.GetCurrentDirectory());
        if (root is null || !File.Exists(Path.Combine(root, Project)))
        {
            throw new ConfigurationException(
                (given is null ? "this is not a Lepton checkout" : $"{given.Name} is not a Lepton checkout")
                + $" ({Project} is missing): `lepton bench` builds and runs the checkout's benchmarks; run it inside a clone of the repository, or pass --checkout DIR");
        }
        return root;
    }

    /// <summary>Runs <c>dotnet</c> in <paramref name="root"/> with our console, and dies with us (its parent-death signal).</summary>
    private static async Task<int> RunAsync(string root, IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("setpriv") { UseShellExecute = false, WorkingDirectory = root };
        foreach (var argument in DotnetWithParentDeathSignal.Concat(arguments))
        {
            start.ArgumentList.Add(argument);
        }
        using var process = ChildProcesses.Start(start);
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Ctrl-C reached the child too (same terminal); SIGTERM covers a SIGTERM sent to us alone.
            Posix.Kill(process.Id, Posix.SigTerm);
            await process.WaitForExitAsync(CancellationToken.None);
            throw;
        }
        return process.ExitCode;
    }

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, program)));
}
