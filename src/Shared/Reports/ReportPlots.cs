using System.Globalization;
using ScottPlot;

namespace Lepton.Shared.Reports;

/// <summary>One step's point on a report plot: the step, its weight and both versions' numbers.</summary>
public sealed record PlotStep(int Step, int WeightBp, WindowSummary Candidate, WindowSummary Production);

/// <summary>
/// The PNG beside a shadow or canary report: per look, the error rate and the p95 latency of
/// candidate and production side by side with the traffic weight, so a reader sees at which weight
/// a regression appeared. Rendered off-screen with ScottPlot (SkiaSharp; no display needed).
/// </summary>
public static class ReportPlots
{
    public const int Width = 1000;

    public const int Height = 420;

    public static byte[] Png(string model, string version, string stage, IReadOnlyList<PlotStep> steps)
    {
        var xs = Enumerable.Range(0, steps.Count).Select(i => (double)i).ToArray();
        var labels = steps.Select(s => $"{s.Step}\n{(s.WeightBp / 100.0).ToString("0.##", CultureInfo.InvariantCulture)}%").ToArray();
        var multiplot = new Multiplot();
        multiplot.AddPlots(2);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Columns();
        Draw(multiplot.GetPlot(0), $"{model} {version} {stage}: error rate (%) per look", xs, labels, steps, s => 100 * s.ErrorRate);
        Draw(multiplot.GetPlot(1), $"{model} {version} {stage}: p95 latency (ms) per look", xs, labels, steps, s => s.P95Ms);
        return multiplot.Render(Width, Height).GetImageBytes(ImageFormat.Png);
    }

    private static void Draw(Plot plot, string title, double[] xs, string[] labels, IReadOnlyList<PlotStep> steps, Func<WindowSummary, double> value)
    {
        var candidate = plot.Add.Scatter(xs, steps.Select(s => value(s.Candidate)).ToArray());
        candidate.LegendText = "candidate";
        candidate.MarkerShape = MarkerShape.FilledCircle;
        var production = plot.Add.Scatter(xs, steps.Select(s => value(s.Production)).ToArray());
        production.LegendText = "production";
        production.MarkerShape = MarkerShape.FilledSquare;
        plot.Title(title, 13);
        plot.XLabel("look: step / candidate weight", 12);
        if (xs.Length > 0)
        {
            plot.Axes.Bottom.SetTicks(xs, labels);
        }
        plot.ShowLegend();
    }
}
