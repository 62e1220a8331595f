using System.CommandLine;
using Lepton.Cli.LocalStack;
using Lepton.Shared;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Lepton.Cli.Commands;

/// <summary><c>lepton dev</c>: the whole local stack in one process tree; Ctrl-C or SIGTERM stops it, and nothing outlives it.</summary>
internal static class DevCommand
{
    public static Command Create()
    {
        var defaults = new DevSettings();
        var dataDir = new Option<string?>("--data-dir") { Description = $"Data folder (env LEPTON_DEV_DATA_DIR; default {defaults.DataDir})" };
        var apiPort = Port("--api-port", "HTTP API", defaults.ApiPort);
        var workerPort = Port("--worker-port", "first worker's HTTP port (gRPC one above; the next worker 10 above)", defaults.WorkerPort);
        var blobPort = Port("--blob-port", "Azurite blob", defaults.BlobPort);
        var queuePort = Port("--queue-port", "Azurite queue", defaults.QueuePort);
        var tablePort = Port("--table-port", "Azurite table", defaults.TablePort);
        var durablePort = Port("--durable-port", "in-process durable backend (gRPC)", defaults.DurablePort);
        var workers = new Option<int>("--workers") { Description = "How many inference workers (replicas) to run", DefaultValueFactory = _ => 1 };
        var noWorker = new Option<bool>("--no-worker") { Description = "Run no inference worker (same as --workers 0)" };
        var noAuth = new Option<bool>("--no-auth") { Description = "Let anyone on this machine call /api and the workers without the key" };
        var storage = new Option<string?>("--storage") { Description = "Use this storage connection string instead of starting Azurite" };
        var command = new Command("dev", "Start the whole stack locally (Azurite, lifecycle, API, blob watcher, workers) until Ctrl-C")
        {
            dataDir, apiPort, workerPort, blobPort, queuePort, tablePort, durablePort, workers, noWorker, noAuth, storage,
        };
        command.SetAction((parse, cancellationToken) => CommandRunner.RunAsync("dev", async () =>
        {
            var env = DevSettings.FromEnvironment();
            var count = parse.GetValue(noWorker) ? 0 : parse.GetValue(workers);
            if (count is < 0 or > 16)
            {
                throw new InvalidInputException($"--workers must be within 0..16, got {count}");
            }
            var settings = env with
            {
                DataDir = parse.GetValue(dataDir) ?? env.DataDir,
                ApiPort = parse.GetValue(apiPort) ?? env.ApiPort,
                WorkerPort = parse.GetValue(workerPort) ?? env.WorkerPort,
                BlobPort = parse.GetValue(blobPort) ?? env.BlobPort,
                QueuePort = parse.GetValue(queuePort) ?? env.QueuePort,
                TablePort = parse.GetValue(tablePort) ?? env.TablePort,
                DurablePort = parse.GetValue(durablePort) ?? env.DurablePort,
                Workers = count,
                Auth = !parse.GetValue(noAuth),
                StorageConnection = parse.GetValue(storage),
            };
            return await RunAsync(settings, cancellationToken);
        }));
        return command;
    }

    private static Option<int?> Port(string name, string part, int fallback) =>
        new(name) { Description = $"{part} port (default {fallback})" };

    private static async Task<int> RunAsync(DevSettings settings, CancellationToken cancellationToken)
    {
        // Die with whoever started us (make, a shell, a service manager) however it dies: the
        // stack's children already die with the stack (their parent-death signal).
        Posix.DieWithParent(Posix.SigTerm);
        using var logs = LoggerFactory.Create(builder => builder
            .AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
            })
            .SetMinimumLevel(LogLevel.Information)
            .AddFilter("Microsoft", LogLevel.Warning)
            .AddFilter("System.Net.Http", LogLevel.Warning)
            .AddFilter("Azure", LogLevel.Warning)
            .AddFilter("Grpc", LogLevel.Warning));
        await using var stack = await LocalStackHost.StartAsync(settings, logs, cancellationToken);
        Print(stack.Endpoints);
        AnsiConsole.MarkupLine("[grey]Ctrl-C stops everything.[/]");
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            AnsiConsole.MarkupLine("stopping…");
        }
        return 0;
    }

    private static void Print(Endpoints endpoints)
    {
        var table = new Table { Border = TableBorder.None, ShowHeaders = false }.Title("Lepton local stack").AddColumn("part").AddColumn("where");
        table.AddRow("HTTP API", $"{endpoints.ApiUrl}/api");
        table.AddRow("Durable status", $"{endpoints.ApiUrl}/runtime/webhooks/durabletask/instances/<id>");
        table.AddRow("Blob webhook", $"{endpoints.ApiUrl}{EventGrid.WebhookPath}");
        for (var i = 0; i < endpoints.WorkerUrls.Count; i++)
        {
            table.AddRow($"Worker {i}", $"{endpoints.WorkerUrls[i]}/v2 (gRPC {endpoints.GrpcUrls[i]})");
        }
        table.AddRow("Durable backend", endpoints.DurableAddress);
        table.AddRow("Data folder", endpoints.DataDir);
        table.AddRow("API key", endpoints.KeyPath is null ? "none (--no-auth)" : $"{endpoints.KeyPath} (the CLI reads it)");
        AnsiConsole.Write(table);
        // On one unwrapped line, to paste into another shell (the CLI and tools read this variable).
        Console.WriteLine($"export AzureWebJobsStorage='{endpoints.StorageConnection}'");
    }
}
