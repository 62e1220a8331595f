using Lepton.Shared.Lifecycle;
using Lepton.Testing;

namespace Lepton.Functions.Tests.Lifecycle;

/// <summary>A model's first version, and the uploads validation refuses.</summary>
public sealed class FirstVersionTests(AzuriteFixture azurite) : Scenario(azurite)
{
    [Fact(Timeout = 120_000)]
    public async Task The_first_version_is_validated_evaluated_and_promoted()
    {
        var outcome = await RunAsync("1.0.0", Good);

        Assert.Equal(("production", Stage.Production), (outcome.Outcome, outcome.Stage));
        var routes = await Host.Registry.GetRoutesAsync(Model, Token);
        Assert.Equal(("1.0.0", (string?)null), (routes.Production, routes.Candidate));
        Assert.Equal(
            [(null, "registered"), ("registered", "validating"), ("validating", "evaluating"), ("evaluating", "production")],
            await TransitionsAsync("1.0.0"));
        var record = await Host.Registry.GetVersionAsync(Model, "1.0.0", Token);
        Assert.Equal("input", record.Signature!.Inputs[0].Name);
        var report = await ReportAsync("1.0.0", "evaluation");
        Assert.Equal("passed", report["outcome"]!.GetValue<string>());
        Assert.True(report["candidate"]!["accuracy"]!.GetValue<double>() > 0.9);
        // DESIGN §5: the composite score in every report; no production version to score here.
        Assert.Equal(["candidate"], report["composite"]!.AsObject().Select(p => p.Key));
        Assert.True(report["composite"]!["candidate"]!["P"]!.GetValue<double>() > 0);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_corrupt_upload_is_rejected_within_a_second_of_validation_starting()
    {
        var outcome = await RunAsync("1.0.0", "this is not an onnx file at all"u8.ToArray());

        AssertOutcome("rejected", outcome);
        Assert.Contains("not an ONNX model", outcome.Reason, StringComparison.Ordinal);
        var record = await Host.Registry.GetVersionAsync(Model, "1.0.0", Token);
        Assert.Equal(Stage.Rejected, record.Stage);
        Assert.Contains("not an ONNX model", record.Reason, StringComparison.Ordinal);
        Assert.Null((await Host.Registry.GetRoutesAsync(Model, Token)).Production);
        var events = await Host.Registry.HistoryAsync(Model, "1.0.0", Token);
        Assert.Equal(("validating", "rejected"), (events[^1].From, events[^1].To));
        // A rejection is an outcome, never retried: the reference took 10-11 s retrying it twice.
        var started = events.Single(e => e.To == "validating").At;
        TestContext.Current.TestOutputHelper?.WriteLine($"rejected {(events[^1].At - started).TotalMilliseconds:F0} ms after validation started");
        Assert.True(events[^1].At - started < TimeSpan.FromSeconds(1), $"rejected {(events[^1].At - started).TotalMilliseconds} ms after validation started");
    }

    [Fact(Timeout = 120_000)]
    public async Task A_model_with_non_finite_outputs_is_rejected_at_validation()
    {
        var nan = Cli.Samples.SampleModels.NanOutsideRange(64, 10, new float[640], new float[10], maxInput: -1);
        var outcome = await RunAsync("1.0.0", nan);

        AssertOutcome("rejected", outcome);
        Assert.Contains("non-finite", outcome.Reason, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_huge_declared_input_is_refused_not_promoted()
    {
        var outcome = await RunAsync("1.0.0", Cli.Samples.SampleModels.FixedShape(20000, 20000));

        AssertOutcome("rejected", outcome);
        Assert.Contains("20000×20000", outcome.Reason, StringComparison.Ordinal);
        Assert.Null((await Host.Registry.GetRoutesAsync(Model, Token)).Production);
    }
}
