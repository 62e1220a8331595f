using System.Text.Json.Nodes;
using Lepton.Shared.Metrics;
using Lepton.Shared.Reports;

namespace Lepton.Shared.Tests.Reports;

/// <summary>Report documents are strict JSON; window summaries read the histograms; plots are real PNGs.</summary>
public sealed class StageReportsTests
{
    private static WindowRollup Rollup(long requests, long errors, double latencyMs)
    {
        var buckets = new long[LatencyHistogram.Count];
        buckets[LatencyHistogram.IndexOf(latencyMs)] = requests;
        return new WindowRollup
        {
            Model = "m",
            Version = "1.0.0",
            Replica = "r",
            WindowStart = 0,
            WindowSeconds = 1,
            Requests = requests,
            RoutedRequests = requests,
            Errors = errors,
            LatencyBuckets = buckets,
        };
    }

    [Fact]
    public void A_document_has_the_header_and_no_non_finite_numbers()
    {
        var body = new JsonObject
        {
            ["composite"] = new JsonObject { ["candidate"] = new JsonObject { ["P"] = JsonValue.Create(double.NaN), ["T"] = 1.5 } },
            ["steps"] = new JsonArray(JsonValue.Create(double.PositiveInfinity), 2),
        };

        var document = StageReports.Document("m", "1.0.0", "canary", "promoted", "all good", body);

        Assert.Equal(StageReports.Schema, document["schema"]!.GetValue<int>());
        Assert.Equal(("m", "1.0.0", "canary", "promoted", "all good"), (
            document["model"]!.GetValue<string>(), document["version"]!.GetValue<string>(), document["stage"]!.GetValue<string>(),
            document["outcome"]!.GetValue<string>(), document["reason"]!.GetValue<string>()));
        Assert.Null(document["composite"]!["candidate"]!["P"]);
        Assert.Equal(1.5, document["composite"]!["candidate"]!["T"]!.GetValue<double>());
        Assert.Null(document["steps"]![0]);
        // Any JSON reader can load it.
        Assert.NotNull(JsonNode.Parse(document.ToJsonString()));
    }

    [Fact]
    public void A_window_summary_reads_errors_and_bucket_percentiles()
    {
        var summary = WindowSummary.Of(Rollup(200, 10, 4.0));
        Assert.Equal((200L, 10L, 0.05), (summary.Requests, summary.Errors, summary.ErrorRate));
        Assert.Equal((5.0, 5.0), (summary.P50Ms, summary.P95Ms)); // 4 ms falls in the (3, 5] bucket
        Assert.Equal(WindowSummary.Empty, WindowSummary.Of(null));
        Assert.Equal(5000, WindowSummary.Of(Rollup(10, 0, 99_999)).P95Ms); // the open bucket reads as the last finite bound
    }

    [Fact]
    public void The_plot_is_a_png_of_every_look()
    {
        var steps = new[]
        {
            new PlotStep(1, 5000, WindowSummary.Of(Rollup(100, 0, 4)), WindowSummary.Of(Rollup(100, 0, 4))),
            new PlotStep(2, 10000, WindowSummary.Of(Rollup(200, 60, 40)), WindowSummary.Of(Rollup(100, 0, 4))),
        };

        var png = ReportPlots.Png("m", "1.0.1", "canary", steps);

        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        Assert.True(png.Length > 5_000, $"a {png.Length}-byte PNG is too small to show two charts");
        Assert.NotEmpty(ReportPlots.Png("m", "1.0.1", "shadow", []));
    }
}
