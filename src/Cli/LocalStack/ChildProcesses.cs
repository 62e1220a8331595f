using System.Collections.Concurrent;
using System.Diagnostics;

namespace Lepton.Cli.LocalStack;

/// <summary>
/// Starts child processes from one dedicated thread that lives as long as the process. Linux ties a
/// child's parent-death signal (<c>setpriv --pdeathsig</c>) to the <em>thread</em> that forked it,
/// and thread-pool threads retire when idle, which would kill the child early.
/// </summary>
public static class ChildProcesses
{
    private static readonly BlockingCollection<(ProcessStartInfo Start, TaskCompletionSource<Process> Started)> Requests = [];

    static ChildProcesses()
    {
        var thread = new Thread(Run) { IsBackground = true, Name = "lepton-child-processes" };
        thread.Start();
    }

    public static Process Start(ProcessStartInfo start)
    {
        var started = new TaskCompletionSource<Process>(TaskCreationOptions.RunContinuationsAsynchronously);
        Requests.Add((start, started));
        return started.Task.GetAwaiter().GetResult();
    }

    private static void Run()
    {
        foreach (var (start, started) in Requests.GetConsumingEnumerable())
        {
            try
            {
                started.SetResult(Process.Start(start) ?? throw new InvalidOperationException($"could not start {start.FileName}"));
            }
            catch (Exception error)
            {
                started.SetException(error);
            }
        }
    }
}
