using System.Diagnostics;
using System.Globalization;
using Lepton.Shared;
using Microsoft.Extensions.Logging;

namespace Lepton.Cli.LocalStack;

/// <summary>
/// Pid files of the local stack's children in <c>{data}/pids/</c>: pid and start time, so the next
/// start can tell a leftover of ours (which it stops) from an unrelated process that reused the pid.
/// The parent-death signal already kills children when the stack dies; this is the second line.
/// </summary>
public static class PidFiles
{
    public static string Folder(string dataDir) => Path.Combine(dataDir, "pids");

    public static void Write(string dataDir, string name, int pid)
    {
        Directory.CreateDirectory(Folder(dataDir));
        var start = Posix.StartTime(pid)?.ToString(CultureInfo.InvariantCulture) ?? "0";
        File.WriteAllText(Path.Combine(Folder(dataDir), name + ".pid"), $"{pid} {start}\n");
    }

    public static void Remove(string dataDir, string name) => File.Delete(Path.Combine(Folder(dataDir), name + ".pid"));

    /// <summary>Stops every leftover child of an earlier stack that is still running; returns their names.</summary>
    public static IReadOnlyList<string> Reclaim(string dataDir, ILogger log)
    {
        var reclaimed = new List<string>();
        if (!Directory.Exists(Folder(dataDir)))
        {
            return reclaimed;
        }
        foreach (var file in Directory.GetFiles(Folder(dataDir), "*.pid"))
        {
            var parts = File.ReadAllText(file).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (parts.Length == 2 && int.TryParse(parts[0], CultureInfo.InvariantCulture, out var pid)
                && long.TryParse(parts[1], CultureInfo.InvariantCulture, out var start)
                && Posix.StartTime(pid) == start && Posix.IsRunning(pid) && Posix.Kill(pid, Posix.SigKill))
            {
                var name = Path.GetFileNameWithoutExtension(file);
                log.LogWarning("stopped {Name} (pid {Pid}) left running by an earlier stack", name, pid);
                reclaimed.Add(name);
                // Until it is gone or a zombie: a zombie holds no port and no file. Bounded for a
                // loaded machine, where a large process can take seconds to release its memory.
                for (var i = 0; i < 200 && Posix.IsRunning(pid) && Posix.StartTime(pid) == start; i++)
                {
                    Thread.Sleep(50);
                }
            }
            File.Delete(file);
        }
        return reclaimed;
    }
}

/// <summary>
/// A child process of the local stack: started with the parent-death signal set (it dies with the
/// stack however the stack dies), its output bridged into the log line by line, its pid recorded,
/// readiness awaited, a crash restarted (bounded), and a stop that sends SIGTERM (so it drains) and
/// SIGKILL after a grace period.
/// </summary>
public sealed class ManagedProcess : IAsyncDisposable
{
    private const int MaxRestarts = 5;
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10);

    private readonly string _name;
    private readonly string _dataDir;
    private readonly Func<ProcessStartInfo> _startInfo;
    private readonly Func<CancellationToken, Task<bool>> _isReady;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _lock = new();
    private Process? _process;
    private Task? _monitor;

    private ManagedProcess(string name, string dataDir, Func<ProcessStartInfo> startInfo, Func<CancellationToken, Task<bool>> isReady, ILogger log)
    {
        _name = name;
        _dataDir = dataDir;
        _startInfo = startInfo;
        _isReady = isReady;
        _log = log;
    }

    public string Name => _name;

    public int? Pid
    {
        get
        {
            lock (_lock)
            {
                return _process?.Id;
            }
        }
    }

    public int Restarts { get; private set; }

    /// <summary>
    /// Starts <paramref name="fileName"/> with <paramref name="arguments"/> and
    /// <paramref name="environment"/> added to this process's, and waits until <paramref name="isReady"/> says so.
    /// </summary>
    public static async Task<ManagedProcess> StartAsync(
        string name,
        string dataDir,
        string fileName,
        IEnumerable<string> arguments,
        IReadOnlyDictionary<string, string> environment,
        Func<CancellationToken, Task<bool>> isReady,
        ILogger log,
        TimeSpan startTimeout,
        CancellationToken cancellationToken)
    {
        var args = arguments.ToList();
        ProcessStartInfo Create()
        {
            var start = new ProcessStartInfo("setpriv")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            // The kernel kills the child when the stack dies, whatever killed the stack.
            foreach (var argument in new[] { "--pdeathsig", "KILL", fileName }.Concat(args))
            {
                start.ArgumentList.Add(argument);
            }
            foreach (var (key, value) in environment)
            {
                start.Environment[key] = value;
            }
            return start;
        }
        var managed = new ManagedProcess(name, dataDir, Create, isReady, log);
        managed.Spawn();
        try
        {
            await managed.WaitReadyAsync(startTimeout, cancellationToken);
        }
        catch
        {
            await managed.DisposeAsync();
            throw;
        }
        managed._monitor = Task.Run(managed.MonitorAsync, CancellationToken.None);
        return managed;
    }

    private void Spawn()
    {
        var process = ChildProcesses.Start(_startInfo());
        process.OutputDataReceived += (_, line) => Forward(line.Data);
        process.ErrorDataReceived += (_, line) => Forward(line.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        lock (_lock)
        {
            _process = process;
        }
        PidFiles.Write(_dataDir, _name, process.Id);
    }

    private void Forward(string? line)
    {
        if (!string.IsNullOrWhiteSpace(line))
        {
            _log.LogInformation("[{Name}] {Line}", _name, line);
        }
    }

    private async Task WaitReadyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Process? process;
            lock (_lock)
            {
                process = _process;
            }
            if (process is null || process.HasExited)
            {
                throw new ConfigurationException($"{_name} exited with code {process?.ExitCode} during start-up; its output is in the [{_name}] log lines above");
            }
            try
            {
                if (await _isReady(cancellationToken))
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            await Task.Delay(100, cancellationToken);
        }
        throw new ConfigurationException($"{_name} did not become ready within {timeout.TotalSeconds:0} s");
    }

    private async Task MonitorAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Process? process;
            lock (_lock)
            {
                process = _process;
            }
            if (process is null)
            {
                return;
            }
            try
            {
                await process.WaitForExitAsync(_stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            var code = process.ExitCode;
            if (Restarts >= MaxRestarts)
            {
                _log.LogError("{Name} exited with code {Code} and was restarted {Restarts} times; giving up: fix the error above and restart `lepton dev`", _name, code, Restarts);
                return;
            }
            Restarts++;
            _log.LogWarning("{Name} exited with code {Code}; restarting ({Restarts}/{Max})", _name, code, Restarts, MaxRestarts);
            lock (_lock)
            {
                // Nobody may read the pid of a disposed process while the next one starts.
                _process = null;
            }
            process.Dispose();
            Spawn();
        }
    }

    /// <summary>SIGKILL, as a crash would (for tests of what survives a crash); the monitor restarts it.</summary>
    public void Crash()
    {
        lock (_lock)
        {
            if (_process is { HasExited: false } process)
            {
                Posix.Kill(process.Id, Posix.SigKill);
            }
        }
    }

    /// <summary>SIGTERM, as a rolling restart sends: the process drains and exits, and the monitor starts it again.</summary>
    public void Restart()
    {
        lock (_lock)
        {
            if (_process is { HasExited: false } process)
            {
                Posix.Kill(process.Id, Posix.SigTerm);
            }
        }
    }

    /// <summary>SIGTERM, then SIGKILL after a grace period; no restart.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        if (_monitor is not null)
        {
            await _monitor;
        }
        Process? process;
        lock (_lock)
        {
            process = _process;
            _process = null;
        }
        if (process is not null)
        {
            if (!process.HasExited)
            {
                Posix.Kill(process.Id, Posix.SigTerm);
                using var grace = new CancellationTokenSource(StopGrace);
                try
                {
                    await process.WaitForExitAsync(grace.Token);
                }
                catch (OperationCanceledException)
                {
                    _log.LogWarning("{Name} did not stop within {Grace} s; killing it", _name, StopGrace.TotalSeconds);
                    process.Kill(entireProcessTree: true);
                    await process.WaitForExitAsync();
                }
            }
            process.Dispose();
        }
        PidFiles.Remove(_dataDir, _name);
        _stopping.Dispose();
    }
}
