using System.CommandLine;
using Lepton.Cli.LocalStack;
using Lepton.Shared;
using Lepton.Shared.Storage;
using Spectre.Console;

namespace Lepton.Cli.Commands;

/// <summary><c>lepton dev</c>: the local stack, in one process tree; Ctrl-C or SIGTERM stops it.</summary>
internal static class DevCommand
{
    public static Command Create()
    {
        var dataDir = new Option<string>("--data-dir") { Description = "Folder for Azurite's data and caches", DefaultValueFactory = _ => Environment.GetEnvironmentVariable("LEPTON_DEV_DATA_DIR") ?? ".lepton" };
        var blobPort = Port("--blob-port", "LEPTON_DEV_BLOB_PORT", 10000, "Azurite blob port");
        var queuePort = Port("--queue-port", "LEPTON_DEV_QUEUE_PORT", 10001, "Azurite queue port");
        var tablePort = Port("--table-port", "LEPTON_DEV_TABLE_PORT", 10002, "Azurite table port");
        var command = new Command("dev", "Start the local stack (Azurite and the storage layout) until Ctrl-C") { dataDir, blobPort, queuePort, tablePort };
        command.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                return await RunAsync(parse.GetValue(dataDir)!, parse.GetValue(blobPort), parse.GetValue(queuePort), parse.GetValue(tablePort), cancellationToken);
            }
            catch (LeptonException error)
            {
                AnsiConsole.MarkupLineInterpolated($"[red]lepton dev: {error.Message}[/]");
                return 1;
            }
        });
        return command;
    }

    private static Option<int> Port(string name, string env, int fallback, string description) =>
        new(name)
        {
            Description = $"{description} (env {env})",
            DefaultValueFactory = _ => int.TryParse(Environment.GetEnvironmentVariable(env), out var port) ? port : fallback,
        };

    private static async Task<int> RunAsync(string dataDir, int blobPort, int queuePort, int tablePort, CancellationToken cancellationToken)
    {
        await using var azurite = await Azurite.StartAsync(Path.Combine(Path.GetFullPath(dataDir), "azurite"), blobPort, queuePort, tablePort);
        var clients = new StorageClients(azurite.Options());
        await StorageLayout.EnsureAsync(clients, cancellationToken);
        AnsiConsole.MarkupLine("[green]Lepton local stack is up[/] (C# port: storage only so far; the worker, lifecycle and API land with the next issues)");
        AnsiConsole.MarkupLineInterpolated($"  Azurite blob / queue / table: 127.0.0.1:{blobPort} / {queuePort} / {tablePort}");
        AnsiConsole.MarkupLineInterpolated($"  export AzureWebJobsStorage='{azurite.ConnectionString}'");
        AnsiConsole.MarkupLine("  Ctrl-C stops it.");
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
}
