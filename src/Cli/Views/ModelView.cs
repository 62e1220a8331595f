using System.Globalization;
using System.Text.Json.Nodes;
using Lepton.Shared.Metrics;
using Lepton.Shared.Statistics;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Lepton.Cli.Views;

/// <summary>Requests, error rate and p95 of one version over the last minute, from the metric rollups.</summary>
public sealed record VersionStats(long Requests, double? ErrorRate, double? P95Ms)
{
    public static VersionStats From(WindowRollup rollup)
    {
        var p95 = LatencyStatistics.P95FromBuckets(rollup.LatencyBuckets);
        return new VersionStats(
            rollup.Requests,
            rollup.Requests > 0 ? (double)rollup.Errors / rollup.Requests : null,
            double.IsNaN(p95) ? null : p95);
    }
}

/// <summary>
/// Renderings of a model's state for <c>lepton status</c> and <c>lepton watch</c>, built from what
/// the API returns plus the last minute's rollups. Laid out for an 80-column terminal: short
/// columns in the table, reasons on their own lines below it (a reason column wrapped one word per
/// line at that width in the reference).
/// </summary>
public static class ModelView
{
    private static readonly Dictionary<string, string> StageStyle = new(StringComparer.Ordinal)
    {
        ["registered"] = "grey",
        ["validating"] = "cyan",
        ["evaluating"] = "cyan",
        ["shadow"] = "magenta",
        ["canary"] = "yellow",
        ["production"] = "bold green",
        ["superseded"] = "green",
        ["rejected"] = "bold red",
        ["rolled_back"] = "red",
    };

    /// <summary>Stages after which a version's lifecycle has nothing more to do.</summary>
    public static readonly IReadOnlySet<string> FinalStages = new HashSet<string>(StringComparer.Ordinal)
    {
        "production", "superseded", "rejected", "rolled_back",
    };

    public static IRenderable Render(JsonObject detail, IReadOnlyDictionary<string, JsonNode?> lifecycles, IReadOnlyDictionary<string, VersionStats> stats)
    {
        var routes = detail["routes"] as JsonObject ?? [];
        // No borders and two spaces between columns: the table stays within 80 columns.
        var table = new Table { Border = TableBorder.None, Expand = false }
            .Title($"model {Markup.Escape(Text(detail["model"]))}");
        foreach (var (header, right) in new[] { ("version", false), ("stage", false), ("traffic", false), ("req/60s", true), ("err", true), ("p95 ms", true), ("step", false) })
        {
            var column = new TableColumn($"[bold]{header}[/]") { Padding = new Padding(0, 0, 2, 0) };
            table.AddColumn(right ? column.RightAligned() : column);
        }
        var reasons = new List<IRenderable>();
        var versions = (detail["versions"] as JsonArray ?? []).OfType<JsonObject>().Reverse().ToList();
        foreach (var version in versions)
        {
            var name = Text(version["version"]);
            var stage = Text(version["stage"]);
            stats.TryGetValue(name, out var s);
            table.AddRow(
                new Markup(Markup.Escape(name)),
                new Markup($"[{StageStyle.GetValueOrDefault(stage, "default")}]{Markup.Escape(stage)}[/]"),
                new Markup(Markup.Escape(Traffic(name, routes))),
                new Markup(s is null ? "" : s.Requests.ToString(CultureInfo.InvariantCulture)),
                new Markup(s?.ErrorRate is { } rate ? (rate * 100).ToString("0.0", CultureInfo.InvariantCulture) + "%" : ""),
                new Markup(s?.P95Ms is { } p95 ? Markup.Escape(double.IsInfinity(p95) ? ">5000" : $"≤{p95:g}") : ""),
                new Markup(Markup.Escape(Step(lifecycles.GetValueOrDefault(name)))));
            var reason = Text(version["reason"]);
            if (reason.Length > 0)
            {
                reasons.Add(new Markup($"[grey]{Markup.Escape(name)}:[/] {Markup.Escape(reason)}"));
            }
        }
        return new Rows([table, new Markup(Markup.Escape(RoutesLine(routes))), .. reasons]);
    }

    /// <summary>One line describing a model's routes.</summary>
    public static string RoutesLine(JsonObject routes)
    {
        var weight = Int(routes["candidate_weight_bp"]);
        var parts = new List<string> { $"production={Text(routes["production"], "-")}" };
        if (Text(routes["candidate"]) is { Length: > 0 } candidate)
        {
            parts.Add($"candidate={candidate} ({Percent(weight)})");
        }
        if (Text(routes["shadow"]) is { Length: > 0 } shadow)
        {
            parts.Add($"shadow={shadow} ({Percent(Int(routes["shadow_fraction_bp"]))})");
        }
        if (Text(routes["sticky_header"]) is { Length: > 0 } sticky)
        {
            parts.Add($"sticky={sticky}");
        }
        parts.Add($"generation {Int(routes["generation"])}");
        return "routes: " + string.Join(", ", parts);
    }

    /// <summary>The share of traffic a version gets under <paramref name="routes"/>.</summary>
    public static string Traffic(string version, JsonObject routes)
    {
        var weight = Int(routes["candidate_weight_bp"]);
        if (Text(routes["production"]) == version)
        {
            return Text(routes["candidate"]).Length > 0 ? Percent(10_000 - weight) : "100%";
        }
        if (Text(routes["candidate"]) == version)
        {
            return Percent(weight);
        }
        return Text(routes["shadow"]) == version ? $"shadow {Percent(Int(routes["shadow_fraction_bp"]))}" : "";
    }

    /// <summary>The running lifecycle's position from its custom status: phase, step, weight, last decision.</summary>
    public static string Step(JsonNode? lifecycle)
    {
        if (lifecycle is not JsonObject status)
        {
            return "";
        }
        var custom = status["custom_status"] ?? status["customStatus"];
        if (custom is not JsonObject c)
        {
            return Text(custom) is { Length: > 0 } text ? text : Text(status["runtime_status"] ?? status["runtimeStatus"]);
        }
        var parts = new List<string>();
        if (Text(c["waiting_for"]) is { Length: > 0 } waiting)
        {
            parts.Add($"waiting for {waiting}");
        }
        else if (Text(c["phase"]) is { Length: > 0 } phase)
        {
            parts.Add(phase);
        }
        // The weight is in the traffic column; the step stays short enough for 80 columns.
        if (Int(c["steps"]) > 0)
        {
            parts.Add($"{Int(c["step"])}/{Int(c["steps"])}");
        }
        var position = string.Join(' ', parts);
        return Text(c["decision"]) is { Length: > 0 } decision ? $"{position} · {decision}" : position;
    }

    /// <summary>JSON to show a person: times keep their <c>+00:00</c> and reasons their quotes (the default encoder writes <c>\u002B</c>).</summary>
    public static string Json(JsonNode node) => node.ToJsonString(ReadableJson);

    private static readonly System.Text.Json.JsonSerializerOptions ReadableJson = new()
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private static string Percent(long basisPoints) => (basisPoints / 100.0).ToString("0.##", CultureInfo.InvariantCulture) + "%";

    internal static string Text(JsonNode? node, string fallback = "") =>
        node is JsonValue value && value.TryGetValue<string>(out var text) ? text : node is null ? fallback : node.ToJsonString();

    internal static long Int(JsonNode? node) =>
        node is JsonValue value && value.TryGetValue<long>(out var number) ? number
        : node is JsonValue v && v.TryGetValue<double>(out var d) ? (long)d : 0;
}
