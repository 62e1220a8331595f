using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Lepton.Shared;

namespace Lepton.Cli.LocalStack;

/// <summary>A port the stack listens on, with the option and variable that move it.</summary>
public sealed record PortOption(string Part, int Port, string Option, string Variable);

/// <summary>
/// Settings of the local stack (<c>lepton dev</c>): the fixed ports a Functions developer expects
/// (Azurite 10000-10002, the Functions host on 7071, workers on 8000, 8010, … with gRPC beside
/// each), the data folder, how many workers, whether callers must authenticate, and the rollout
/// speed the stack's workers run at (short windows, so short canary windows see fresh data).
/// </summary>
public sealed record DevSettings
{
    public const string Host = "127.0.0.1";

    public string DataDir { get; init; } = ".lepton";

    public int BlobPort { get; init; } = 10000;

    public int QueuePort { get; init; } = 10001;

    public int TablePort { get; init; } = 10002;

    public int ApiPort { get; init; } = 7071;

    /// <summary>HTTP port of the first worker; worker i listens on <c>WorkerPort + 10·i</c> (gRPC one above).</summary>
    public int WorkerPort { get; init; } = 8000;

    /// <summary>gRPC port of the in-process durable backend.</summary>
    public int DurablePort { get; init; } = 4001;

    public int Workers { get; init; } = 1;

    /// <summary>Callers must present the stack's key (<c>{data}/api-key</c>) on /api and the workers.</summary>
    public bool Auth { get; init; } = true;

    /// <summary>An existing storage account (connection string) instead of starting Azurite.</summary>
    public string? StorageConnection { get; init; }

    /// <summary>Seconds per metric rollup window of the stack's workers.</summary>
    public int WorkerWindowS { get; init; } = 2;

    public double WorkerPollS { get; init; } = 0.5;

    public TimeSpan WatcherPoll { get; init; } = TimeSpan.FromMilliseconds(500);

    public string ApiUrl => $"http://{Host}:{ApiPort}";

    public int WorkerHttpPort(int index) => WorkerPort + (10 * index);

    public int WorkerGrpcPort(int index) => WorkerPort + (10 * index) + 1;

    public string WorkerUrl(int index) => $"http://{Host}:{WorkerHttpPort(index)}";

    public string FullDataDir => Path.GetFullPath(DataDir);

    /// <summary>Every port this configuration binds, for the "port already taken" check before anything starts.</summary>
    public IReadOnlyList<PortOption> Ports()
    {
        var ports = new List<PortOption>
        {
            new("HTTP API", ApiPort, "--api-port", "LEPTON_DEV_API_PORT"),
            new("durable backend", DurablePort, "--durable-port", "LEPTON_DEV_DURABLE_PORT"),
        };
        for (var i = 0; i < Workers; i++)
        {
            ports.Add(new($"worker {i} (HTTP)", WorkerHttpPort(i), "--worker-port", "LEPTON_DEV_WORKER_PORT"));
            ports.Add(new($"worker {i} (gRPC)", WorkerGrpcPort(i), "--worker-port", "LEPTON_DEV_WORKER_PORT"));
        }
        if (StorageConnection is null)
        {
            ports.Add(new("Azurite blob", BlobPort, "--blob-port", "LEPTON_DEV_BLOB_PORT"));
            ports.Add(new("Azurite queue", QueuePort, "--queue-port", "LEPTON_DEV_QUEUE_PORT"));
            ports.Add(new("Azurite table", TablePort, "--table-port", "LEPTON_DEV_TABLE_PORT"));
        }
        return ports;
    }

    /// <summary>Refuses to start when a port is taken, naming each part, port and the option that moves it.</summary>
    public void CheckPortsFree()
    {
        var duplicate = Ports().GroupBy(p => p.Port).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ConfigurationException(
                $"port {duplicate.Key} is given to {string.Join(" and ", duplicate.Select(p => p.Part))}; choose distinct ports");
        }
        var taken = Ports().Where(p => !IsFree(p.Port)).ToList();
        if (taken.Count > 0)
        {
            throw new ConfigurationException(string.Join("; ", taken.Select(p =>
                $"port {p.Port} on {Host} ({p.Part}) is already in use: stop what listens there (`ss -ltnp 'sport = :{p.Port}'`) "
                + $"or choose another port with `lepton dev {p.Option} N` (or env {p.Variable})")));
        }
    }

    /// <summary>Whether a server could listen on <paramref name="port"/> now (connections in TIME_WAIT do not count, as servers reuse the address).</summary>
    public static bool IsFree(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>The settings from <c>LEPTON_DEV_*</c> variables; options override them.</summary>
    public static DevSettings FromEnvironment()
    {
        var defaults = new DevSettings();
        return defaults with
        {
            DataDir = Environment.GetEnvironmentVariable("LEPTON_DEV_DATA_DIR") is { Length: > 0 } dir ? dir : defaults.DataDir,
            BlobPort = PortFrom("LEPTON_DEV_BLOB_PORT", defaults.BlobPort),
            QueuePort = PortFrom("LEPTON_DEV_QUEUE_PORT", defaults.QueuePort),
            TablePort = PortFrom("LEPTON_DEV_TABLE_PORT", defaults.TablePort),
            ApiPort = PortFrom("LEPTON_DEV_API_PORT", defaults.ApiPort),
            WorkerPort = PortFrom("LEPTON_DEV_WORKER_PORT", defaults.WorkerPort),
            DurablePort = PortFrom("LEPTON_DEV_DURABLE_PORT", defaults.DurablePort),
        };
    }

    private static int PortFrom(string variable, int fallback)
    {
        var raw = Environment.GetEnvironmentVariable(variable);
        if (string.IsNullOrWhiteSpace(raw))
        {
            return fallback;
        }
        if (!int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw new ConfigurationException($"{variable} must be a port number within 1..65535, got '{raw}'");
        }
        return port;
    }
}
