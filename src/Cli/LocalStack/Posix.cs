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
