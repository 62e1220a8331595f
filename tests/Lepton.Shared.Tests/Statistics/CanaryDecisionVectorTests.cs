using System.Text.Json;
using System.Text.Json.Nodes;
using Lepton.Shared.Metrics;
using Lepton.Shared.Policies;
using Lepton.Shared.Statistics;

namespace Lepton.Shared.Tests.Statistics;

/// <summary>
/// Every scenario of <c>canary_decisions.json</c>: the reference's rollups in, its verdict, reason
/// and every check out. The checks are serialized with the project's JSON conventions and compared
/// key by key, so the C# checks record has exactly the reference's keys.
/// </summary>
public sealed class CanaryDecisionVectorTests
{
    public static TheoryData<string> Cases => new(CaseNodes().Select(c => c["name"]!.GetValue<string>()));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decision_matches_the_reference(string name)
    {
        var v = CaseNodes().Single(c => c["name"]!.GetValue<string>() == name);
        var decision = Decide(v);

        Assert.Equal(v["verdict"]!.GetValue<string>(), JsonSerializer.SerializeToNode(decision.Verdict, LeptonJson.Options)!.GetValue<string>());
        // The README allows other wording; the port keeps the reference's, so users read the same sentence.
        Assert.Equal(v["reason"]!.GetValue<string>(), decision.Reason);
        var checks = JsonSerializer.SerializeToNode(decision.Checks, Vectors.VectorStyle);
        Vectors.AssertSameTree(v["checks"], checks, "checks");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decision_json_is_strict_and_round_trips(string name)
    {
        var decision = Decide(CaseNodes().Single(c => c["name"]!.GetValue<string>() == name));
        var json = LeptonJson.Serialize(decision);
        Assert.DoesNotContain("Infinity", json);
        Assert.DoesNotContain("NaN", json);
        var back = LeptonJson.Deserialize<CanaryDecision>(json);
        Assert.Equal(decision.Verdict, back.Verdict);
        Assert.Equal(decision.Reason, back.Reason);
        Assert.Equal(json, LeptonJson.Serialize(back));
    }

    [Fact]
    public void The_scenarios_cover_every_verdict_the_canary_step_gives() =>
        Assert.Equal(
            ["continue", "insufficient_evidence", "invalid", "promote", "rollback"],
            CaseNodes().Select(c => c["verdict"]!.GetValue<string>()).Distinct().Order(StringComparer.Ordinal));

    [Fact]
    public void The_bucket_bounds_are_the_references() =>
        Assert.Equal(Vectors.Doubles(Vectors.Decisions["latency_bucket_bounds_ms"]), LatencyHistogram.BoundsMs);

    private static CanaryDecision Decide(JsonObject v)
    {
        var candidate = v["candidate"].Deserialize<WindowRollup>(LeptonJson.Options);
        var production = v["production"].Deserialize<WindowRollup>(LeptonJson.Options);
        var thresholds = v["thresholds"].Deserialize<CanaryThresholds>(LeptonJson.Options)!;
        return CanaryAnalysis.DecideCanaryStep(
            candidate, production, v["weight_bp"]!.GetValue<int>(), thresholds, v["final_step"]!.GetValue<bool>());
    }

    private static IEnumerable<JsonObject> CaseNodes() => Vectors.Decisions["cases"]!.AsArray().Select(c => c!.AsObject());
}
