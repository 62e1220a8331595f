using System.Diagnostics;
using System.Globalization;
using Lepton.Cli.LocalStack;

namespace Lepton.E2E.Tests.Harness;

/// <summary>
/// One process, known by its pid and its start time: pids wrap quickly on a busy machine (32 768
/// of them, every thread takes one), so a pid alone soon names a stranger. Running only while that
/// pid runs with that start time; a signal goes only to that process.
/// </summary>
public readonly record struct ProcessRef(int Id, long? Start)
{
    /// <summary>The process that has <paramref name="id"/> now.</summary>
    public static ProcessRef Of(int id) => new(id, Posix.StartTime(id));

    public bool IsRunning => Id > 0 && Start is not null && Posix.IsRunning(Id) && Posix.StartTime(Id) == Start;

    /// <summary>Sends a signal if this process still runs; false when it is gone.</summary>
    public bool Signal(int signal) => IsRunning && Posix.Kill(Id, signal);

    public override string ToString() => Id.ToString(CultureInfo.InvariantCulture);
}

/// <summary>What the tests ask of processes and ports: is it running, is it gone, is the port free.</summary>
public static class Processes
{
    public const int SigInt = 2;

    /// <summary>Each child the stack recorded in <c>{data}/pids/</c> (pid and start time), by name.</summary>
    public static IReadOnlyDictionary<string, ProcessRef> PidFiles(string dataDir)
    {
        var folder = Cli.LocalStack.PidFiles.Folder(dataDir);
        if (!Directory.Exists(folder))
        {
            return new Dictionary<string, ProcessRef>();
        }
        return Directory.GetFiles(folder, "*.pid").ToDictionary(
            f => Path.GetFileNameWithoutExtension(f),
            f =>
            {
                var parts = File.ReadAllText(f).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                return new ProcessRef(int.Parse(parts[0], CultureInfo.InvariantCulture), long.Parse(parts[1], CultureInfo.InvariantCulture));
            },
            StringComparer.Ordinal);
    }

    /// <summary>Waits until <paramref name="condition"/> holds; false when <paramref name="within"/> passed first.</summary>
    public static async Task<bool> EventuallyAsync(Func<bool> condition, TimeSpan within, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > within)
            {
                return false;
            }
            await Task.Delay(100, cancellationToken);
        }
        return true;
    }

    /// <summary>The processes of <paramref name="processes"/> still running.</summary>
    public static IReadOnlyList<ProcessRef> Running(IEnumerable<ProcessRef> processes) => processes.Where(p => p.IsRunning).ToList();

    /// <summary>The ports of <paramref name="ports"/> that a server could not bind now.</summary>
    public static IReadOnlyList<int> Busy(IEnumerable<int> ports) => ports.Where(p => !DevSettings.IsFree(p)).ToList();

}
