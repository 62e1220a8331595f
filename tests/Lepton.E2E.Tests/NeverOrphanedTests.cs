using System.Globalization;
using Lepton.Cli.LocalStack;
using Lepton.E2E.Tests.Harness;

namespace Lepton.E2E.Tests;

/// <summary>
/// Issue 12, Build 3: Azurite and the workers die with the stack however it dies, and the next
/// start is never refused for a port a leftover holds. (SIGKILL of the stack mid-canary, then a
/// restart on the same ports, is <see cref="RestartTests"/>.)
/// </summary>
public sealed class NeverOrphanedTests
{
    // Bounds for a loaded 2-core machine: a clean stop takes ~2-3 s when idle.
    private static readonly TimeSpan StopBound = TimeSpan.FromSeconds(45);
    private static readonly TimeSpan GoneBound = TimeSpan.FromSeconds(20);

    [Fact(Timeout = 180_000)]
    public async Task Ctrl_c_then_sigterm_each_stop_every_child_in_order_and_the_next_start_on_the_same_ports_works()
    {
        var token = TestContext.Current.CancellationToken;
        await using var first = await StackProcess.StartAsync(cancellationToken: token);
        // Ctrl-C: SIGINT to the stack and, through its process group, to Azurite and the worker too.
        await AssertStopsCleanlyAsync(first, () => first.CtrlC(), token);

        // The next start on the same folder and ports finds nothing to reclaim and nothing in its way.
        await using var second = await first.RestartAsync(cancellationToken: token);
        Assert.DoesNotContain("left running by an earlier stack", second.Output);
        Assert.DoesNotContain("already in use", second.Output);
        // SIGTERM, what `docker stop` and service managers send, to the stack alone.
        await AssertStopsCleanlyAsync(second, () => second.Signal(Posix.SigTerm), token);
    }

    private static async Task AssertStopsCleanlyAsync(StackProcess stack, Action stop, CancellationToken token)
    {
        var children = stack.Children;
        Assert.Equal(["azurite", "worker-0"], children.Keys.Order(StringComparer.Ordinal));
        Assert.All(children.Values, child => Assert.True(child.IsRunning));
        stop();
        Assert.True(await stack.WaitExitAsync(StopBound, token), $"the stack did not stop:\n{stack.Tail()}");
        Assert.Equal(0, stack.ExitCode);
        Assert.Empty(Processes.Running(children.Values));
        Assert.True(await Processes.EventuallyAsync(() => Processes.Busy(stack.Ports.All).Count == 0, GoneBound, token),
            $"ports still taken: {string.Join(", ", Processes.Busy(stack.Ports.All))}");
        // A clean stop: workers first (they drain), then the host, then Azurite; no pid file left,
        // and no worker restarted on its way out.
        var output = stack.Output;
        Assert.True(output.IndexOf("stopped worker 0", StringComparison.Ordinal) is var worker and >= 0
            && worker < output.IndexOf("stopped Functions host", StringComparison.Ordinal), output);
        Assert.True(output.IndexOf("stopped Functions host", StringComparison.Ordinal) < output.IndexOf("stopped Azurite", StringComparison.Ordinal), output);
        Assert.DoesNotContain("restarting (", output);
        Assert.Empty(stack.Children);
    }

    [Fact(Timeout = 180_000)]
    public async Task Sigkill_takes_azurite_and_the_workers_with_it_and_frees_every_port()
    {
        var token = TestContext.Current.CancellationToken;
        await using var stack = await StackProcess.StartAsync(new StackOptions { Workers = 2 }, token);
        var children = stack.Children;
        Assert.Equal(["azurite", "worker-0", "worker-1"], children.Keys.Order(StringComparer.Ordinal));

        stack.Signal(Posix.SigKill);
        Assert.True(await stack.WaitExitAsync(GoneBound, token));
        Assert.True(await Processes.EventuallyAsync(() => Processes.Running(children.Values).Count == 0, GoneBound, token),
            $"orphaned: {string.Join(", ", children.Where(c => c.Value.IsRunning).Select(c => $"{c.Key} (pid {c.Value})"))}");
        Assert.True(await Processes.EventuallyAsync(() => Processes.Busy(stack.Ports.All).Count == 0, GoneBound, token),
            $"ports still taken: {string.Join(", ", Processes.Busy(stack.Ports.All))}");
    }

    [Fact(Timeout = 180_000)]
    public async Task A_start_stops_a_leftover_its_pid_file_names_and_takes_back_its_ports()
    {
        var token = TestContext.Current.CancellationToken;
        var data = Directory.CreateTempSubdirectory("lepton-e2e-leftover-").FullName;
        var ports = StackPorts.Allocate(1);
        try
        {
            // An Azurite an earlier stack left running on the stack's ports, its pid file in the data folder.
            await using var leftover = await Azurite.StartAsync(Path.Combine(data, "azurite"), ports.Blob, ports.Queue, ports.Table, stackDir: data);
            var leftoverPid = Processes.PidFiles(data)["azurite"];
            Assert.True(leftoverPid.IsRunning);
            Assert.Equal([ports.Blob, ports.Queue, ports.Table], Processes.Busy([ports.Blob, ports.Queue, ports.Table]));

            await using var stack = await StackProcess.StartAsync(new StackOptions { DataDir = data, Ports = ports }, token);
            Assert.Contains($"stopped azurite (pid {leftoverPid}) left running by an earlier stack", stack.Output);
            Assert.False(leftoverPid.IsRunning);
            Assert.NotEqual(leftoverPid, stack.Children["azurite"]);
            Assert.DoesNotContain("already in use", stack.Output);
        }
        finally
        {
            // The folder is the test's, not the stack's (it was there before the stack).
            try
            {
                Directory.Delete(data, recursive: true);
            }
            catch (IOException)
            {
                // A file still held by a process on its way out: the temporary folder goes later.
            }
        }
    }

    [Fact(Timeout = 180_000)]
    public async Task The_stack_stops_cleanly_when_the_shell_that_started_it_dies()
    {
        var token = TestContext.Current.CancellationToken;
        // `make run`: make's shell runs `exec dotnet lepton.dll dev`, so make is the stack's parent.
        await using var stack = await StackProcess.StartAsync(new StackOptions { UnderShell = true }, token);
        Assert.NotEqual(stack.LauncherPid, stack.Pid);
        Assert.Equal(stack.LauncherPid, ParentOf(stack.Pid));
        var children = stack.Children;

        ProcessRef.Of(stack.LauncherPid).Signal(Posix.SigKill);
        Assert.True(await stack.WaitExitAsync(StopBound, token), $"the stack outlived its parent:\n{stack.Tail()}");
        // SIGTERM from its parent-death signal: the clean stop, not the kernel's SIGKILL.
        Assert.Contains("stopping…", stack.Output);
        Assert.Contains("stopped Azurite", stack.Output);
        Assert.Empty(Processes.Running(children.Values));
        Assert.True(await Processes.EventuallyAsync(() => Processes.Busy(stack.Ports.All).Count == 0, GoneBound, token),
            $"ports still taken: {string.Join(", ", Processes.Busy(stack.Ports.All))}");
    }

    private static int ParentOf(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);
    }
}
