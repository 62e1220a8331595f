using System.CommandLine;
using System.Globalization;
using Lepton.Cli.Api;
using Lepton.Cli.Demo;
using Lepton.Cli.LocalStack;
using Lepton.Shared.Configuration;
using Lepton.Shared.Models;
using Lepton.Shared.Storage;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Lepton.Cli.Commands;

/// <summary><c>lepton demo</c>: five digits models pushed in turn under live load, and the timeline of what happened.</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var api = new ApiOptions();
        var noStart = new Option<bool>("--no-start") { Description = "Fail instead of starting a local stack when none answers at --api-url" };
        var rate = new Option<double>("--rps") { Description = "Requests per second of the simulated callers", DefaultValueFactory = _ => 60 };
        var command = new Command("demo", "Push five digits models in turn under load and print the timeline of what happened") { noStart, rate };
        api.AddTo(command, worker: true, storage: true);
        command.SetAction((parse, cancellationToken) => CommandRunner.RunAsync("demo", async () =>
        {
            var settings = ClientSettings.Resolve(parse.GetValue(api.ApiUrl), parse.GetValue(api.Key), parse.GetValue(api.WorkerUrl));
            LocalStackHost? stack = null;
            using var logs = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
            try
            {
                using (var probe = new LeptonApiClient(settings))
                {
                    try
                    {
                        await probe.HealthAsync(cancellationToken);
                    }
                    catch (ApiException error) when (error.Status == 0 && !parse.GetValue(noStart) && settings.IsLocal)
                    {
                        AnsiConsole.MarkupLine("no stack answers at the API URL: starting a local one…");
                        stack = await LocalStackHost.StartAsync(DevSettings.FromEnvironment(), logs, cancellationToken);
                        settings = settings with { Key = stack.Key, WorkerUrl = stack.Endpoints.WorkerUrls[0] };
                    }
                }
                var storage = stack is null
                    ? ClientSettings.Storage(parse.GetValue(api.Storage))
                    : new StorageOptions { ConnectionString = stack.ConnectionString };
                var store = new ModelStore(new StorageClients(storage), new ModelStoreOptions { CacheDir = Path.Combine(Path.GetTempPath(), "lepton-cli-cache") });
                using var client = new LeptonApiClient(settings);
                var result = await DemoScenario.RunAsync(client, store, line => AnsiConsole.WriteLine(line), requestsPerSecond: parse.GetValue(rate), cancellationToken: cancellationToken);
                Print(result);
                return result.AsExpected ? 0 : 1;
            }
            finally
            {
                if (stack is not null)
                {
                    await stack.DisposeAsync();
                }
            }
        }));
        return command;
    }

    private static void Print(DemoResult result)
    {
        var table = new Table { Border = TableBorder.None }.Title($"timeline of model {Markup.Escape(result.Model)}");
        foreach (var (header, right) in new[] { ("version", false), ("final stage", false), ("s", true), ("served", true), ("failed", true) })
        {
            var column = new TableColumn($"[bold]{header}[/]") { Padding = new Padding(0, 0, 2, 0) };
            table.AddColumn(right ? column.RightAligned() : column);
        }
        foreach (var o in result.Outcomes)
        {
            table.AddRow(
                Markup.Escape(o.Version),
                Markup.Escape(o.Stage + (o.AsExpected ? "" : " ✗ unexpected")),
                o.Took.TotalSeconds.ToString("0", CultureInfo.InvariantCulture),
                o.Served.ToString(CultureInfo.InvariantCulture),
                o.Failed.ToString(CultureInfo.InvariantCulture));
        }
        AnsiConsole.Write(table);
        foreach (var o in result.Outcomes)
        {
            AnsiConsole.MarkupLineInterpolated($"[grey]{o.Version}[/] {o.Story}: {o.Reason}");
        }
        var load = result.Load;
        var failed = load.FailedByVersion.Count == 0 ? "none" : string.Join(", ", load.FailedByVersion.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}: {p.Value}"));
        AnsiConsole.MarkupLineInterpolated(
            $"callers: {load.Sent} requests in {load.Elapsed.TotalSeconds:0} s ({load.UnseenSent} outside the training range), {load.Failed} failed — by serving version: {failed}");
    }
}
