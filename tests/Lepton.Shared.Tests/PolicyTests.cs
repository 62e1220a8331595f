using System.Text.Json.Nodes;
using Lepton.Shared.Policies;

namespace Lepton.Shared.Tests;

public sealed class PolicyTests
{
    private static JsonObject Obj(string json) => JsonNode.Parse(json)!.AsObject();

    [Fact]
    public void Defaults_match_the_documented_table()
    {
        var policy = PolicyResolver.Resolve();
        Assert.Equal(Strategy.Canary, policy.Strategy);
        Assert.Equal([100, 500, 2500, 5000, 10_000], policy.StepsBp);
        Assert.Equal(300, policy.WindowS);
        Assert.Equal(60, policy.CheckIntervalS);
        Assert.Equal(3, policy.MaxExtensions);
        Assert.Null(policy.Shadow);
        Assert.Equal(0.05, policy.Thresholds.Alpha);
        Assert.Equal(200, policy.Thresholds.MinRequests);
        Assert.Equal(4, policy.Evaluation.Shards);
        Assert.Equal(0.5, policy.CompositeWeights.Latency);
    }

    [Fact]
    public void Layers_apply_in_order_and_nested_objects_merge()
    {
        var policy = PolicyResolver.Resolve(
            Obj("""{"window_s": 60, "thresholds": {"min_requests": 500, "alpha": 0.01}, "strategy": "blue_green"}"""),
            Obj("""{"window_s": 120, "thresholds": {"alpha": 0.02}, "shadow": true}"""));
        Assert.Equal(120, policy.WindowS);
        Assert.Equal(60, policy.CheckIntervalS);
        Assert.Equal(500, policy.Thresholds.MinRequests);
        Assert.Equal(0.02, policy.Thresholds.Alpha);
        Assert.Equal(Strategy.BlueGreen, policy.Strategy);
        Assert.True(policy.Shadow);
    }

    [Theory]
    [InlineData("""{"windw_s": 60}""", "unknown field(s) windw_s")]
    [InlineData("""{"thresholds": {"alfa": 0.1}}""", "policy.thresholds: unknown field(s) alfa")]
    [InlineData("""{"window_s": "60"}""", "policy.window_s must be a finite number")]
    [InlineData("""{"window_s": 0}""", "policy.window_s must be a positive number of seconds")]
    [InlineData("""{"window_s": -5}""", "policy.window_s must not be negative")]
    [InlineData("""{"max_extensions": 1.5}""", "policy.max_extensions must be a whole number")]
    [InlineData("""{"max_extensions": true}""", "policy.max_extensions must be a whole number")]
    [InlineData("""{"retry_attempts": 0}""", "policy.retry_attempts must be a whole number ≥ 1")]
    [InlineData("""{"shadow": "yes"}""", "policy.shadow must be true, false or null")]
    [InlineData("""{"strategy": "rainbow"}""", "policy.strategy must be one of canary, blue_green, ab_test, shadow_only")]
    [InlineData("""{"steps_bp": []}""", "policy.steps_bp must be a non-empty list")]
    [InlineData("""{"steps_bp": [500, 100, 10000]}""", "policy.steps_bp must be strictly increasing")]
    [InlineData("""{"steps_bp": [100, 5000]}""", "policy.steps_bp must end at 10000")]
    [InlineData("""{"steps_bp": [100, 20000]}""", "policy.steps_bp values must be within 1..10000")]
    [InlineData("""{"shadow_fraction_bp": 0}""", "policy.shadow_fraction_bp must be within 1..10000")]
    [InlineData("""{"window_s": 30, "check_interval_s": 60}""", "must not exceed policy.window_s")]
    [InlineData("""{"thresholds": {"alpha": 1.5}}""", "thresholds.alpha must be in (0, 1)")]
    [InlineData("""{"thresholds": {"max_error_rate_ratio": 0.5}}""", "thresholds.max_error_rate_ratio must be ≥ 1")]
    [InlineData("""{"thresholds": {"min_requests": 0}}""", "thresholds.min_requests must be ≥ 1")]
    [InlineData("""{"composite_weights": {"latency": 0, "resource": 0, "error": 0}}""", "must not all be zero")]
    [InlineData("""{"evaluation": {"shards": 0}}""", "policy.evaluation.shards must be a whole number ≥ 1")]
    [InlineData("""{"thresholds": 3}""", "policy.thresholds must be a JSON object")]
    public void Refuses_bad_values_naming_the_field(string layer, string expected)
    {
        var error = Assert.Throws<InvalidPolicyException>(() => PolicyResolver.Resolve(Obj(layer)));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void An_override_layer_is_named_as_such() =>
        Assert.Contains("policy override: unknown field(s) nope",
            Assert.Throws<InvalidPolicyException>(() => PolicyResolver.Resolve(null, Obj("""{"nope": 1}"""))).Message);

    [Fact]
    public void Policies_round_trip_through_json()
    {
        var policy = PolicyResolver.Resolve(Obj("""{"steps_bp": [1000, 10000], "thresholds": {"min_p95_latency_delta_ms": 2}}"""));
        var json = LeptonJson.Serialize(policy);
        Assert.Contains("\"min_p95_latency_delta_ms\":2", json);
        Assert.Contains("\"steps_bp\":[1000,10000]", json);
        Assert.Equal(policy, LeptonJson.Deserialize<Policy>(json));
    }

    [Theory]
    [InlineData(Bump.Initial, false, false, true)]
    [InlineData(Bump.Patch, false, false, false)]
    [InlineData(Bump.Minor, true, false, false)]
    [InlineData(Bump.Major, true, true, false)]
    public void The_semver_bump_picks_the_default_path(Bump bump, bool shadow, bool approval, bool direct)
    {
        var plan = RolloutPlan.For(new Policy(), bump);
        Assert.Equal((shadow, approval, direct), (plan.Shadow, plan.Approval, plan.DirectPromotion));
    }

    [Fact]
    public void Policy_fields_override_the_bump_and_shadow_only_forces_shadow()
    {
        Assert.False(RolloutPlan.For(new Policy { Shadow = false, ApprovalRequired = false }, Bump.Major).Shadow);
        Assert.True(RolloutPlan.For(new Policy { Shadow = false, Strategy = Strategy.ShadowOnly }, Bump.Patch).Shadow);
        Assert.True(RolloutPlan.For(new Policy { ApprovalRequired = true }, Bump.Patch).Approval);
    }
}
