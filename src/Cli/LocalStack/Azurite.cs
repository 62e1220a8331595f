using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Lepton.Shared;
using Lepton.Shared.Configuration;
using Lepton.Shared.Storage;

namespace Lepton.Cli.LocalStack;

/// <summary>
/// A real Azurite (the project's pinned npm package) on free loopback ports, for tests. Data lives
/// in a temporary folder removed on dispose. <see cref="Pause"/>/<see cref="Resume"/> stall it
/// (SIGSTOP/SIGCONT) and <see cref="StopAsync"/>/<see cref="RestartAsync"/> take it away, so tests
/// can prove behaviour under a storage outage.
/// </summary>
public sealed class Azurite : IAsyncDisposable
{
    // Azurite's fixed development account, documented publicly; it is not a secret.
    public const string AccountName = "devstoreaccount1";
    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private static readonly TimeSpan StartupTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan GracefulStop = TimeSpan.FromSeconds(10);
    private readonly string _dataDir;
    private readonly bool _ownsDataDir;
    private string? _stackDir;
    private Process? _process;
    private volatile bool _paused;

    private Azurite(string dataDir, bool ownsDataDir, int blobPort, int queuePort, int tablePort)
    {
        _dataDir = dataDir;
        _ownsDataDir = ownsDataDir;
        BlobPort = blobPort;
        QueuePort = queuePort;
        TablePort = tablePort;
    }

    public int BlobPort { get; }

    public int QueuePort { get; }

    public int TablePort { get; }

    public string ConnectionString => ConnectionStringFor(BlobPort, QueuePort, TablePort);

    /// <summary>The connection string of an Azurite on these loopback ports.</summary>
    public static string ConnectionStringFor(int blobPort, int queuePort, int tablePort) =>
        $"DefaultEndpointsProtocol=http;AccountName={AccountName};AccountKey={AccountKey};"
        + $"BlobEndpoint=http://127.0.0.1:{blobPort}/{AccountName};"
        + $"QueueEndpoint=http://127.0.0.1:{queuePort}/{AccountName};"
        + $"TableEndpoint=http://127.0.0.1:{tablePort}/{AccountName};";

    /// <summary>Storage options for this emulator, with short timeouts so outage tests end quickly.</summary>
    public StorageOptions Options(TimeSpan? networkTimeout = null, int maxRetries = 3) => new()
    {
        ConnectionString = ConnectionString,
        NetworkTimeout = networkTimeout ?? TimeSpan.FromSeconds(10),
        MaxRetries = maxRetries,
    };

    /// <summary>Clients for this emulator, with the layout created.</summary>
    public async Task<StorageClients> ClientsAsync(TimeSpan? networkTimeout = null, int maxRetries = 3)
    {
        var clients = new StorageClients(Options(networkTimeout, maxRetries));
        await StorageLayout.EnsureAsync(clients);
        return clients;
    }

    /// <summary>Starts Azurite on free ports in a fresh temporary folder (removed on dispose).</summary>
    public static async Task<Azurite> StartAsync()
    {
        var dir = Path.Combine(Path.GetTempPath(), "lepton-azurite-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        var azurite = new Azurite(dir, ownsDataDir: true, FreePort(), FreePort(), FreePort());
        await azurite.LaunchAsync();
        return azurite;
    }

    /// <summary>
    /// Starts Azurite on the given ports with its data in <paramref name="dataDir"/> (kept), its pid
    /// recorded among the local stack's in <paramref name="stackDir"/> when given.
    /// </summary>
    public static async Task<Azurite> StartAsync(string dataDir, int blobPort, int queuePort, int tablePort, string? stackDir = null)
    {
        Directory.CreateDirectory(dataDir);
        var azurite = new Azurite(dataDir, ownsDataDir: false, blobPort, queuePort, tablePort) { _stackDir = stackDir };
        await azurite.LaunchAsync();
        return azurite;
    }

    private async Task LaunchAsync()
    {
        var binary = Path.Combine(Checkout.Root, "node_modules", ".bin", "azurite");
        if (!File.Exists(binary))
        {
            throw new ConfigurationException("Azurite is not installed: run `npm ci` at the repository root (make test does), then try again");
        }
        var start = new ProcessStartInfo("setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // The kernel kills Azurite when the test process dies, however it dies.
        foreach (var argument in new[]
        {
            "--pdeathsig", "KILL", binary, "--silent", "--skipApiVersionCheck", "--disableProductStyleUrl", "--disableTelemetry",
            "--loose", "--location", _dataDir,
            "--blobHost", "127.0.0.1", "--blobPort", BlobPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--queueHost", "127.0.0.1", "--queuePort", QueuePort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--tableHost", "127.0.0.1", "--tablePort", TablePort.ToString(System.Globalization.CultureInfo.InvariantCulture),
        })
        {
            start.ArgumentList.Add(argument);
        }
        _process = ChildProcesses.Start(start);
        if (_stackDir is not null)
        {
            PidFiles.Write(_stackDir, "azurite", _process.Id);
        }
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow + StartupTimeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new ConfigurationException($"Azurite exited with code {_process.ExitCode} while starting");
            }
            if (await ListensAsync(BlobPort) && await ListensAsync(QueuePort) && await ListensAsync(TablePort))
            {
                return;
            }
            await Task.Delay(100);
        }
        await StopAsync();
        throw new ConfigurationException($"Azurite did not start within {StartupTimeout.TotalSeconds:0} s");
    }

    /// <summary>Stalls Azurite (SIGSTOP): connections are accepted by the kernel but never answered.</summary>
    public void Pause()
    {
        Signal("STOP");
        _paused = true;
    }

    /// <summary>Lets a paused Azurite run again (SIGCONT).</summary>
    public void Resume()
    {
        Signal("CONT");
        _paused = false;
    }

    private void Signal(string name)
    {
        if (_process is null || _process.HasExited)
        {
            throw new InvalidOperationException("Azurite is not running");
        }
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-" + name, _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))!;
        kill.WaitForExit();
    }

    /// <summary>
    /// Stops Azurite (its data stays, so <see cref="RestartAsync"/> brings the same state back):
    /// SIGTERM first, so it saves what it acknowledged (its metadata is otherwise written to disk
    /// only every few seconds), then SIGKILL if it has not exited within a few seconds. A paused
    /// Azurite is killed at once: it cannot act on SIGTERM, and the requests it holds were never answered.
    /// </summary>
    public async Task StopAsync()
    {
        if (_process is null)
        {
            return;
        }
        if (!_process.HasExited)
        {
            if (!_paused)
            {
                Signal("TERM");
                using var grace = new CancellationTokenSource(GracefulStop);
                try
                {
                    await _process.WaitForExitAsync(grace.Token);
                }
                catch (OperationCanceledException)
                {
                    // Still running: killed below.
                }
            }
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        _paused = false;
        _process.Dispose();
        _process = null;
        if (_stackDir is not null)
        {
            PidFiles.Remove(_stackDir, "azurite");
        }
        // Wait until the ports are released so a restart can bind them again.
        for (var i = 0; i < 100 && (await ListensAsync(BlobPort) || await ListensAsync(TablePort)); i++)
        {
            await Task.Delay(50);
        }
    }

    /// <summary>Starts Azurite again on the same ports and data after <see cref="StopAsync"/>.</summary>
    public async Task RestartAsync()
    {
        await StopAsync();
        await LaunchAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        if (_ownsDataDir)
        {
            try
            {
                Directory.Delete(_dataDir, recursive: true);
            }
            catch (IOException)
            {
                // A file still held open: the temporary folder is cleaned by the OS later.
            }
        }
    }

    /// <summary>A TCP port nothing listens on now (the kernel picks it).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<bool> ListensAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
            await client.ConnectAsync(IPAddress.Loopback, port, timeout.Token);
            return true;
        }
        catch (Exception error) when (error is SocketException or OperationCanceledException)
        {
            return false;
        }
    }
}
