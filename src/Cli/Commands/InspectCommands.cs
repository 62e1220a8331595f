using System.CommandLine;
using System.Text.Json.Nodes;
using Lepton.Cli.Api;
using Lepton.Cli.Views;
using Lepton.Shared;
using Lepton.Shared.Metrics;
using Lepton.Shared.Storage;
using Spectre.Console;
using Spectre.Console.Json;

namespace Lepton.Cli.Commands;

/// <summary><c>lepton status</c>, <c>watch</c>, <c>history</c> and <c>routes</c>: reading (and steering) a model's state.</summary>
internal static class InspectCommands
{
    public static Command Status()
    {
        var api = new ApiOptions();
        var model = new Argument<string?>("model") { Description = "A model (omit to list models)", Arity = ArgumentArity.ZeroOrOne };
        var version = new Argument<string?>("version") { Description = "A version (omit for the model's versions and routes)", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command("status", "List models; show a model's versions and routes; or one version in detail") { model, version };
        api.AddTo(command, storage: true);
        command.SetAction((parse, cancellationToken) => CommandRunner.RunAsync("status", async () =>
        {
            using var client = api.Client(parse);
            var name = parse.GetValue(model);
            if (name is null)
            {
                var models = await client.ModelsAsync(cancellationToken);
                if (models.Count == 0)
                {
                    AnsiConsole.MarkupLine("no models yet: push one with `lepton push MODEL VERSION FILE`");
                }
                foreach (var m in models)
                {
                    var detail = await client.ModelAsync(m, cancellationToken);
                    var versions = (detail["versions"] as JsonArray ?? []).OfType<JsonObject>()
                        .Select(v => $"{ModelView.Text(v["version"])} {ModelView.Text(v["stage"])}");
                    AnsiConsole.MarkupLineInterpolated($"[bold]{m}[/]: {string.Join(", ", versions)}");
                }
                return 0;
            }
            ModelName.Validate(name);
            if (parse.GetValue(version) is { } v)
            {
                var detail = await client.VersionAsync(name, SemVer.Parse(v).ToString(), cancellationToken);
                AnsiConsole.Write(new JsonText(ModelView.Json(detail)));
                AnsiConsole.WriteLine();
                return 0;
            }
            AnsiConsole.Write(await RenderAsync(client, name, Metrics(parse.GetValue(api.Storage)), cancellationToken));
            return 0;
        }));
        return command;
    }

    public static Command Watch()
    {
        var api = new ApiOptions();
        var model = new Argument<string>("model");
        var interval = new Option<double>("--interval") { Description = "Refresh every N seconds", DefaultValueFactory = _ => 1 };
        var count = new Option<int>("--count") { Description = "Stop after N refreshes (0: until Ctrl-C)", DefaultValueFactory = _ => 0 };
        var command = new Command("watch", "Live view of a model: stage, step, traffic split, error rate and p95 per version") { model, interval, count };
        api.AddTo(command, storage: true);
        command.SetAction((parse, cancellationToken) => CommandRunner.RunAsync("watch", async () =>
        {
            using var client = api.Client(parse);
            var name = ModelName.Validate(parse.GetValue(model));
            var metrics = Metrics(parse.GetValue(api.Storage));
            var refreshes = parse.GetValue(count);
            var delay = TimeSpan.FromSeconds(Math.Max(0.1, parse.GetValue(interval)));
            var first = await RenderAsync(client, name, metrics, cancellationToken);
            if (!AnsiConsole.Profile.Capabilities.Interactive)
            {
                // Piped or logged: a live view cannot redraw in place (it ran each view into the
                // last line of the one before), so each refresh is printed after the other.
                return await PrintEachAsync(first, refreshes, delay, () => RenderAsync(client, name, metrics, cancellationToken), cancellationToken);
            }
            try
            {
                await AnsiConsole.Live(first).StartAsync(async live =>
                {
                    for (var n = 1; refreshes == 0 || n < refreshes; n++)
                    {
                        await Task.Delay(delay, cancellationToken);
                        live.UpdateTarget(await RenderAsync(client, name, metrics, cancellationToken));
                    }
                });
            }
            catch (OperationCanceledException)
            {
                // Ctrl-C ends the live view; that is the normal way out.
            }
            return 0;
        }));
        return command;
    }

    private static async Task<int> PrintEachAsync(
        Spectre.Console.Rendering.IRenderable first, int refreshes, TimeSpan delay, Func<Task<Spectre.Console.Rendering.IRenderable>> render, CancellationToken cancellationToken)
    {
        var view = first;
        for (var n = 1; ; n++)
        {
            AnsiConsole.MarkupLineInterpolated($"[grey]{DateTime.Now:HH:mm:ss}[/]");
            AnsiConsole.Write(view);
            AnsiConsole.WriteLine();
            if (refreshes != 0 && n >= refreshes)
            {
                return 0;
            }
            try
            {
                await Task.Delay(delay, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return 0;
            }
            view = await render();
        }
    }

    public static Command History()
    {
        var api = new ApiOptions();
        var model = new Argument<string>("model");
        var version = new Argument<string?>("version") { Arity = ArgumentArity.ZeroOrOne, Description = "Only this version's events" };
        var command = new Command("history", "The audit log of a model's versions (or one version), oldest first") { model, version };
        api.AddTo(command);
        command.SetAction((parse, cancellationToken) => CommandRunner.RunAsync("history", async () =>
        {
            using var client = api.Client(parse);
            var name = ModelName.Validate(parse.GetValue(model));
            // A model's log holds its traffic changes too, which belong to no one version.
            var events = (parse.GetValue(version) is { } one
                ? await client.HistoryAsync(name, SemVer.Parse(one).ToString(), cancellationToken)
                : await client.ModelHistoryAsync(name, cancellationToken)).OfType<JsonObject>().ToList();
            var table = new Table { Border = TableBorder.Simple }.Title($"history of {Markup.Escape(name)}")
                .AddColumns("time", "version", "change", "actor");
            var reasons = new List<string>();
            foreach (var e in events.OrderBy(e => ModelView.Text(e["at"]), StringComparer.Ordinal))
            {
                var at = ModelView.Text(e["at"]);
                var time = at.Length >= 19 ? at[11..19] : at;
                var traffic = ModelView.Text(e["kind"]) == "routes";
                var change = traffic ? "traffic" : $"{(ModelView.Text(e["from"]) is { Length: > 0 } from ? from : "new")} → {ModelView.Text(e["to"])}";
                var about = ModelView.Text(e["version"]);
                table.AddRow(Markup.Escape(time), Markup.Escape(about.Length > 0 ? about : "-"), Markup.Escape(change), Markup.Escape(ModelView.Text(e["actor"])));
                if (ModelView.Text(e["reason"]) is { Length: > 0 } reason)
                {
                    reasons.Add($"{time} {(about.Length > 0 ? about : "routes")}: {reason}");
                }
            }
            AnsiConsole.Write(table);
            foreach (var line in reasons)
            {
                AnsiConsole.MarkupLineInterpolated($"[grey]{line}[/]");
            }
            return 0;
        }));
        return command;
    }

    private static readonly string[] RouteIntKeys = ["candidate_weight_bp", "shadow_fraction_bp"];
    private static readonly string[] RouteTextKeys = ["production", "candidate", "shadow", "sticky_header"];

    public static Command Routes()
    {
        var api = new ApiOptions();
        var model = new Argument<string>("model");
        var set = new Option<string[]>("--set") { Description = "key=value, e.g. candidate_weight_bp=500 or shadow=null (repeatable)", AllowMultipleArgumentsPerToken = false };
        var reason = new Option<string>("--reason") { Description = "Why (recorded in the audit log)", DefaultValueFactory = _ => "manual route change" };
        var command = new Command("routes", "Show a model's routes, or change them with --set key=value") { model, set, reason };
        api.AddTo(command);
        command.SetAction((parse, cancellationToken) => CommandRunner.RunAsync("routes", async () =>
        {
            using var client = api.Client(parse);
            var name = ModelName.Validate(parse.GetValue(model));
            var items = parse.GetValue(set) ?? [];
            JsonObject routes;
            if (items.Length == 0)
            {
                routes = (await client.ModelAsync(name, cancellationToken))["routes"] as JsonObject ?? [];
            }
            else
            {
                var changes = ParseRouteSettings(items);
                changes["reason"] = parse.GetValue(reason);
                routes = await client.SetRoutesAsync(name, changes, cancellationToken);
            }
            AnsiConsole.WriteLine(ModelView.RoutesLine(routes));
            return 0;
        }));
        return command;
    }

    /// <summary><c>["candidate=1.1.0", "candidate_weight_bp=500", "shadow=null"]</c> → a routes patch.</summary>
    public static JsonObject ParseRouteSettings(IEnumerable<string> items)
    {
        var allowed = string.Join(", ", RouteIntKeys.Concat(RouteTextKeys).Order(StringComparer.Ordinal));
        var changes = new JsonObject();
        foreach (var item in items)
        {
            var equals = item.IndexOf('=', StringComparison.Ordinal);
            var key = equals < 0 ? item : item[..equals].Trim();
            var value = equals < 0 ? null : item[(equals + 1)..].Trim();
            if (value is null || !(RouteIntKeys.Contains(key) || RouteTextKeys.Contains(key)))
            {
                throw new InvalidInputException($"--set '{item}': use key=value with key one of {allowed}");
            }
            if (RouteIntKeys.Contains(key))
            {
                if (!int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var bp))
                {
                    throw new InvalidInputException($"--set '{item}': {key} is a whole number of basis points (0..10000)");
                }
                changes[key] = bp;
            }
            else
            {
                changes[key] = value is "" or "null" or "none" ? null : value;
            }
        }
        return changes;
    }

    private static MetricsStore? Metrics(string? storage)
    {
        try
        {
            return new MetricsStore(new StorageClients(ClientSettings.Storage(storage)));
        }
        catch (LeptonException)
        {
            return null;
        }
    }

    private static async Task<Spectre.Console.Rendering.IRenderable> RenderAsync(LeptonApiClient client, string model, MetricsStore? metrics, CancellationToken cancellationToken)
    {
        var detail = await client.ModelAsync(model, cancellationToken);
        var lifecycles = new Dictionary<string, JsonNode?>(StringComparer.Ordinal);
        foreach (var v in (detail["versions"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var version = ModelView.Text(v["version"]);
            if (!ModelView.FinalStages.Contains(ModelView.Text(v["stage"])))
            {
                lifecycles[version] = (await client.VersionAsync(model, version, cancellationToken))["lifecycle"];
            }
        }
        return ModelView.Render(detail, lifecycles, await RecentStatsAsync(metrics, model, cancellationToken));
    }

    /// <summary>The last minute's rollups per version; metrics are a nicety in the view, so an unreachable table shows none.</summary>
    private static async Task<IReadOnlyDictionary<string, VersionStats>> RecentStatsAsync(MetricsStore? metrics, string model, CancellationToken cancellationToken)
    {
        if (metrics is null)
        {
            return new Dictionary<string, VersionStats>();
        }
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        try
        {
            var totals = await metrics.TotalsAsync(model, now - 60, now + 1, cancellationToken);
            return totals.ToDictionary(t => t.Key, t => VersionStats.From(t.Value), StringComparer.Ordinal);
        }
        catch (Exception error) when (StorageClients.IsUnavailable(error) || error is Azure.RequestFailedException)
        {
            return new Dictionary<string, VersionStats>();
        }
    }
}
