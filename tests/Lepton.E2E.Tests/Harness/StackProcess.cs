using System.Diagnostics;
using System.Text.RegularExpressions;
using Lepton.Cli.Api;
using Lepton.Cli.LocalStack;
using Lepton.Shared.Configuration;
using Lepton.Shared.Models;
using Lepton.Shared.Storage;

namespace Lepton.E2E.Tests.Harness;

/// <summary>How to start a test stack.</summary>
public sealed record StackOptions
{
    public int Workers { get; init; } = 1;

    public bool NoAuth { get; init; }

    /// <summary>The data folder; <c>null</c>: a fresh temporary one, removed when the stack is disposed.</summary>
    public string? DataDir { get; init; }

    /// <summary>The ports; <c>null</c>: free ones.</summary>
    public StackPorts? Ports { get; init; }

    /// <summary>
    /// Started as <c>make run</c> starts it: <c>sh -c 'exec dotnet lepton.dll dev …'</c> run by
    /// another shell (make's place), so the stack's parent is that outer shell.
    /// </summary>
    public bool UnderShell { get; init; }

    /// <summary>How long the start may take on a loaded machine.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(150);

    /// <summary>
    /// An existing storage account (<c>lepton dev --storage</c>) instead of the stack's own Azurite:
    /// storage that outlives the stack, as in Azure, so a crash leaves it exactly as it was.
    /// </summary>
    public string? Storage { get; init; }

    /// <summary>Variables set for the stack (and its workers), e.g. <c>LEPTON_FAILPOINTS</c>.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// A real <c>lepton dev</c> as a subprocess (<c>dotnet src/Cli/bin/…/lepton.dll dev</c>) on free
/// ports with its own data folder: its own Azurite, lifecycle, API, watcher and workers. Started
/// from the CLI's child-process thread with a parent-death signal, so a test run that crashes
/// takes the stack (and, through the stack's own signals, its children) with it. Its output is
/// kept (and written to <c>bin/…/stack-logs/</c>) for the assertions and for a failed test's story.
/// </summary>
public sealed partial class StackProcess : IAsyncDisposable
{
    private static readonly HttpClient Probe = new() { Timeout = TimeSpan.FromSeconds(5) };
    private readonly List<string> _lines = [];
    private readonly Lock _lock = new();
    private readonly StreamWriter _log;
    private bool _ownsDataDir;
    private readonly Process _launcher;
    private StorageClients? _storage;
    private ProcessRef _stack;

    private StackProcess(StackOptions options, string dataDir, bool ownsDataDir, StackPorts ports)
    {
        Options = options;
        DataDir = dataDir;
        _ownsDataDir = ownsDataDir;
        Ports = ports;
        var logs = Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "stack-logs")).FullName;
        _log = new StreamWriter(Path.Combine(logs, $"{DateTime.UtcNow:HHmmss}-{Path.GetFileName(dataDir)}.log"), append: true) { AutoFlush = true };
        _launcher = ChildProcesses.Start(StartInfo(options, dataDir, ports));
        _launcher.OutputDataReceived += (_, e) => Add(e.Data);
        _launcher.ErrorDataReceived += (_, e) => Add(e.Data);
        _launcher.BeginOutputReadLine();
        _launcher.BeginErrorReadLine();
        Pid = options.UnderShell ? 0 : _launcher.Id;
        _stack = options.UnderShell ? default : ProcessRef.Of(_launcher.Id);
    }

    public StackOptions Options { get; }

    public string DataDir { get; }

    public StackPorts Ports { get; }

    /// <summary>The pid of the stack itself (<c>lepton dev</c>).</summary>
    public int Pid { get; private set; }

    /// <summary>The pid of what the test started: the stack, or the outer shell when <see cref="StackOptions.UnderShell"/>.</summary>
    public int LauncherPid => _launcher.Id;

    public string ConnectionString { get; private set; } = "";

    /// <summary>The key the stack generated (<c>{data}/api-key</c>), or <c>null</c> with <c>--no-auth</c>.</summary>
    public string? Key { get; private set; }

    public string ApiUrl => Ports.ApiUrl;

    public string WorkerUrl(int index = 0) => Ports.WorkerUrl(index);

    public StorageClients Storage => _storage ??= new StorageClients(new StorageOptions { ConnectionString = ConnectionString });

    public ModelStore Store => new(Storage, new ModelStoreOptions { CacheDir = Path.Combine(DataDir, "test-cache") });

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lock)
            {
                return [.. _lines];
            }
        }
    }

    public string Output => string.Join('\n', Lines);

    /// <summary>The last lines of output, for an assertion message.</summary>
    public string Tail(int lines = 40) => string.Join('\n', Lines.TakeLast(lines));

    public bool IsRunning => _stack.IsRunning;

    /// <summary>The exit code of what the test started (the stack itself unless under a shell), once it exited.</summary>
    public int? ExitCode => _launcher.HasExited ? _launcher.ExitCode : null;

    /// <summary>The children the stack recorded in its pid files (azurite, worker-0, …).</summary>
    public IReadOnlyDictionary<string, ProcessRef> Children => Processes.PidFiles(DataDir);

    /// <summary>A client of this stack's API and worker <paramref name="worker"/>, with its key unless told otherwise.</summary>
    public LeptonApiClient Client(int worker = 0, string? key = null) =>
        new(new ClientSettings { ApiUrl = ApiUrl, WorkerUrl = WorkerUrl(worker), Key = key ?? Key });

    /// <summary>
    /// What a user of this stack has in their shell: the API and worker URLs, the data folder (where
    /// the CLI finds the key) and the storage connection string the stack printed.
    /// </summary>
    public Dictionary<string, string?> CliEnvironment(int worker = 0) => new(StringComparer.Ordinal)
    {
        [ClientSettings.ApiUrlVariable] = ApiUrl,
        [ClientSettings.WorkerUrlVariable] = WorkerUrl(worker),
        [ClientSettings.DataDirVariable] = DataDir,
        [AppSettingNames.Storage] = ConnectionString,
    };

    /// <summary>Runs <c>lepton ARGS</c> against this stack, with <paramref name="overrides"/> on top of <see cref="CliEnvironment"/>.</summary>
    public Task<CliResult> LeptonAsync(IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string?>? overrides = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var environment = CliEnvironment();
        foreach (var (name, value) in overrides ?? new Dictionary<string, string?>())
        {
            environment[name] = value;
        }
        return CliRun.RunAsync(environment, arguments, timeout, cancellationToken: cancellationToken);
    }

    /// <summary>Starts a stack and waits until its API answers, every worker is ready and it printed its connection string.</summary>
    public static Task<StackProcess> StartAsync(StackOptions? options = null, CancellationToken cancellationToken = default) =>
        StartAsync(options, waitReady: true, cancellationToken);

    /// <summary>
    /// Starts a stack; with <paramref name="waitReady"/> false, returns at once (for a stack that
    /// may die at a failpoint before it is ready: its <see cref="Lines"/> say what happened).
    /// </summary>
    public static async Task<StackProcess> StartAsync(StackOptions? options, bool waitReady, CancellationToken cancellationToken = default)
    {
        options ??= new StackOptions();
        var ownsDataDir = options.DataDir is null;
        var dataDir = options.DataDir ?? Directory.CreateTempSubdirectory("lepton-e2e-").FullName;
        var ports = options.Ports ?? StackPorts.Allocate(options.Workers);
        var stack = new StackProcess(options with { DataDir = dataDir, Ports = ports }, dataDir, ownsDataDir, ports);
        if (!waitReady)
        {
            return stack;
        }
        try
        {
            await stack.WaitReadyAsync(options.StartTimeout, cancellationToken);
        }
        catch
        {
            await stack.DisposeAsync();
            throw;
        }
        return stack;
    }

    /// <summary>
    /// A new stack on the same data folder and ports (after this one died), which then owns the
    /// folder; with <paramref name="environment"/> in place of this one's variables when given.
    /// </summary>
    public async Task<StackProcess> RestartAsync(IReadOnlyDictionary<string, string>? environment = null, bool waitReady = true, CancellationToken cancellationToken = default)
    {
        var next = await StartAsync(Options with { DataDir = DataDir, Ports = Ports, Environment = environment ?? Options.Environment }, waitReady, cancellationToken);
        (next._ownsDataDir, _ownsDataDir) = (_ownsDataDir, false);
        return next;
    }

    private static ProcessStartInfo StartInfo(StackOptions options, string dataDir, StackPorts ports)
    {
        var start = new ProcessStartInfo("setsid")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            // Nothing may depend on where it is started from: the checkout is found from the binaries.
            WorkingDirectory = dataDir,
        };
        List<string> dev = ["dotnet", LeptonBinary.Path, "dev", "--data-dir", dataDir, .. ports.Arguments];
        if (options.NoAuth)
        {
            dev.Add("--no-auth");
        }
        if (options.Storage is { } storage)
        {
            dev.AddRange(["--storage", storage]);
        }
        // A session of its own, as a terminal gives the command it runs: Ctrl-C (SIGINT to the
        // foreground process group) then reaches the stack and every child it started, not the tests.
        List<string> arguments = ["setpriv", "--pdeathsig", "KILL"];
        if (options.UnderShell)
        {
            // make's shell runs the recipe `exec dotnet … dev` in a shell of its own.
            arguments.AddRange(["sh", "-c", """sh -c 'exec "$@"' recipe "$@" & echo "stack-pid $!"; wait""", "make"]);
        }
        arguments.AddRange(dev);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        CliRun.Isolate(start.Environment);
        foreach (var (name, value) in options.Environment)
        {
            start.Environment[name] = value;
        }
        return start;
    }

    private void Add(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_lock)
        {
            _lines.Add(line);
            _log.WriteLine(line);
        }
        if (Pid == 0 && StackPidLine().Match(line) is { Success: true } match)
        {
            var pid = int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            _stack = ProcessRef.Of(pid);
            Pid = pid;
        }
    }

    [GeneratedRegex(@"^stack-pid (\d+)$")]
    private static partial Regex StackPidLine();

    [GeneratedRegex(@"^export AzureWebJobsStorage='([^']+)'$")]
    private static partial Regex ConnectionLine();

    private async Task WaitReadyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"the stack was not ready within {timeout.TotalSeconds:0} s; its output:\n{Tail()}");
            }
            if (_launcher.HasExited && !IsRunning)
            {
                throw new InvalidOperationException($"the stack exited during start-up (code {_launcher.ExitCode}); its output:\n{Tail()}");
            }
            var connection = Lines.Select(l => ConnectionLine().Match(l)).FirstOrDefault(m => m.Success);
            if (connection is not null && Pid > 0 && await AnswersAsync(cancellationToken))
            {
                ConnectionString = connection.Groups[1].Value;
                Key = Options.NoAuth ? null : (await File.ReadAllTextAsync(Path.Combine(DataDir, ApiKeyFile.FileName), cancellationToken)).Trim();
                return;
            }
            await Task.Delay(200, cancellationToken);
        }
    }

    /// <summary>The API's health and every worker's readiness (both open without a key).</summary>
    public async Task<bool> AnswersAsync(CancellationToken cancellationToken = default)
    {
        IEnumerable<string> urls = [$"{ApiUrl}/api/health", .. Enumerable.Range(0, Ports.Workers).Select(i => $"{WorkerUrl(i)}/v2/health/ready")];
        foreach (var url in urls)
        {
            try
            {
                using var response = await Probe.GetAsync(new Uri(url), cancellationToken);
                if (!response.IsSuccessStatusCode)
                {
                    return false;
                }
            }
            catch (Exception error) when (error is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Waits for a line of output that matches; returns it.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> matches, TimeSpan within, CancellationToken cancellationToken = default)
    {
        string? found = null;
        if (!await Processes.EventuallyAsync(() => (found = Lines.FirstOrDefault(matches)) is not null, within, cancellationToken))
        {
            throw new TimeoutException($"no such line of the stack's output within {within.TotalSeconds:0} s; its output:\n{Tail()}");
        }
        return found!;
    }

    /// <summary>
    /// Waits until Azurite has written its table database (it keeps tables in memory and saves
    /// them whole every 5 s) at or after <paramref name="since"/>: every write made before then is
    /// on disk and survives a SIGKILL. False when no save came within <paramref name="within"/>.
    /// </summary>
    public Task<bool> TablesSavedAfterAsync(DateTime since, TimeSpan within, CancellationToken cancellationToken = default)
    {
        var file = Path.Combine(DataDir, "azurite", "__azurite_db_table__.json");
        return Processes.EventuallyAsync(() => File.Exists(file) && File.GetLastWriteTimeUtc(file) >= since, within, cancellationToken);
    }

    /// <summary>Sends the stack (not the launcher) a signal.</summary>
    public void Signal(int signal) => _stack.Signal(signal);

    /// <summary>What Ctrl-C in its terminal does: SIGINT to the whole process group (the stack and every child).</summary>
    public void CtrlC()
    {
        if (IsRunning)
        {
            Posix.Kill(-LauncherPid, Processes.SigInt);
        }
    }

    /// <summary>Waits until the stack process is gone (and its output drained); false when it outlived <paramref name="within"/>.</summary>
    public async Task<bool> WaitExitAsync(TimeSpan within, CancellationToken cancellationToken = default)
    {
        if (!await Processes.EventuallyAsync(() => !IsRunning, within, cancellationToken))
        {
            return false;
        }
        using var drained = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await _launcher.WaitForExitAsync(drained.Token);
        }
        catch (OperationCanceledException)
        {
            // A child that kept the output pipe open: the stack itself is gone, which is what counts here.
        }
        return true;
    }

    /// <summary>SIGTERM (a clean stop), SIGKILL if it does not stop; the data folder removed when this stack created it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (IsRunning)
        {
            Signal(Posix.SigTerm);
            if (!await WaitExitAsync(TimeSpan.FromSeconds(60)))
            {
                Signal(Posix.SigKill);
                await WaitExitAsync(TimeSpan.FromSeconds(10));
            }
        }
        if (!_launcher.HasExited)
        {
            _launcher.Kill(entireProcessTree: true);
        }
        // Children the stack could not stop (it should have): never leave them to the next test.
        foreach (var child in Children.Values)
        {
            child.Signal(Posix.SigKill);
        }
        _launcher.Dispose();
        lock (_lock)
        {
            _log.Dispose();
        }
        if (_ownsDataDir)
        {
            try
            {
                Directory.Delete(DataDir, recursive: true);
            }
            catch (IOException)
            {
                // A file still held open by a process on its way out: the temporary folder goes later.
            }
        }
    }
}

/// <summary>Where the CLI's build output is: <c>src/Cli/bin/{configuration}/net10.0/lepton.dll</c> in this checkout.</summary>
public static class LeptonBinary
{
    public static string Configuration { get; } = AppContext.BaseDirectory.Contains("/bin/Release/", StringComparison.Ordinal) ? "Release" : "Debug";

    public static string Path { get; } = Find();

    private static string Find()
    {
        var path = System.IO.Path.Combine(Checkout.Root, "src", "Cli", "bin", Configuration, "net10.0", "lepton.dll");
        return File.Exists(path)
            ? path
            : throw new InvalidOperationException($"the CLI is not built ({Configuration}): run `make build` first");
    }
}
