using System.Globalization;
using System.Runtime.InteropServices;

namespace Lepton.Cli.LocalStack;

/// <summary>The few Linux calls the local stack needs to never orphan a process.</summary>
internal static partial class Posix
{
    public const int SigKill = 9;
    public const int SigTerm = 15;
    private const int PrSetPdeathsig = 1;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int KillNative(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int PrctlNative(int option, nint arg2, nint arg3, nint arg4, nint arg5);

    /// <summary>Sends <paramref name="signal"/>; false when the process does not exist.</summary>
    public static bool Kill(int pid, int signal) => KillNative(pid, signal) == 0;

    public static bool IsAlive(int pid) => KillNative(pid, 0) == 0;

    /// <summary>
    /// Whether <paramref name="pid"/> still runs: alive and not a zombie. A child that died with
    /// its parent stays a zombie until whoever adopted it reaps it (in a container, PID 1, when it
    /// gets round to it), and signals to a zombie "succeed", so <see cref="IsAlive"/> cannot tell.
    /// Every thread counts: a killed process's main thread turns zombie before its other threads
    /// have finished exiting, and until the last one has, the process still holds its ports (a start
    /// that waited on the main thread alone found a reclaimed Azurite's ports still bound, under load).
    /// </summary>
    public static bool IsRunning(int pid) => IsLive(State(pid)) || Threads(pid).Any(tid => IsLive(State($"/proc/{pid}/task/{tid}/stat")));

    private static bool IsLive(char? state) => state is { } s && s is not ('Z' or 'X' or 'x');

    private static List<string> Threads(int pid)
    {
        try
        {
            return Directory.GetDirectories($"/proc/{pid}/task").Select(Path.GetFileName).OfType<string>().ToList();
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>The state letter of a process (field 3 of /proc/pid/stat), or <c>null</c> when there is none.</summary>
    public static char? State(int pid) => State($"/proc/{pid}/stat");

    private static char? State(string statFile)
    {
        try
        {
            var stat = File.ReadAllText(statFile);
            return stat[stat.LastIndexOf(')') + 2];
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>Asks the kernel to send this process <paramref name="signal"/> when its parent dies.</summary>
    public static void DieWithParent(int signal) => _ = PrctlNative(PrSetPdeathsig, signal, 0, 0, 0);

    /// <summary>
    /// The start time of a process in clock ticks since boot (field 22 of /proc/pid/stat): with the
    /// pid it identifies one process, since pids are reused but start times are not.
    /// </summary>
    public static long? StartTime(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name (field 2) is in parentheses and may hold spaces; fields after it split cleanly.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[19], CultureInfo.InvariantCulture);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }
}
