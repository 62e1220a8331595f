using System.CommandLine;
using Lepton.Cli.Api;
using Lepton.Shared;
using Spectre.Console;

namespace Lepton.Cli.Commands;

/// <summary>Options every API command takes, and the one way commands report errors.</summary>
internal sealed class ApiOptions
{
    public Option<string?> ApiUrl { get; } = new("--api-url")
    {
        Description = $"Lepton HTTP API base URL (env {ClientSettings.ApiUrlVariable}; default {ClientSettings.DefaultApiUrl}, the local stack)",
    };

    public Option<string?> Key { get; } = new("--key")
    {
        Description = $"Function key / worker key (env {ClientSettings.ApiKeyVariable}; the local stack's is read from .lepton/api-key)",
    };

    public Option<string?> WorkerUrl { get; } = new("--worker-url")
    {
        Description = $"Inference worker base URL (env {ClientSettings.WorkerUrlVariable}; default {ClientSettings.DefaultWorkerUrl})",
    };

    public Option<string?> Storage { get; } = new("--storage")
    {
        Description = "Storage connection string (default: AzureWebJobsStorage[__*] settings, else the local stack's Azurite)",
    };

    public void AddTo(Command command, bool worker = false, bool storage = false)
    {
        command.Options.Add(ApiUrl);
        command.Options.Add(Key);
        if (worker)
        {
            command.Options.Add(WorkerUrl);
        }
        if (storage)
        {
            command.Options.Add(Storage);
        }
    }

    public LeptonApiClient Client(ParseResult parse) =>
        new(ClientSettings.Resolve(parse.GetValue(ApiUrl), parse.GetValue(Key), parse.GetValue(WorkerUrl)));
}

internal static class CommandRunner
{
    /// <summary>Runs a command body; a Lepton error prints its message (which says what to do next) and exits 1.</summary>
    public static async Task<int> RunAsync(string name, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (LeptonException error)
        {
            AnsiConsole.MarkupLineInterpolated($"[bold red]error:[/] {error.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            return 130;
        }
        catch (Exception error) when (error is Azure.RequestFailedException or HttpRequestException or AggregateException)
        {
            AnsiConsole.MarkupLineInterpolated(
                $"[bold red]error:[/] storage is not reachable ({error.GetType().Name}): start the local stack with `make run`, or set AzureWebJobsStorage / --storage to your account ({name})");
            return 1;
        }
    }
}
