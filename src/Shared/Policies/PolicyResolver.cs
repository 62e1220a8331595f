using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Lepton.Shared.Policies;

/// <summary>
/// Layers policy overrides over the defaults: the manifest's <c>policy</c> object first, then the
/// <c>policy</c> object of an HTTP start. Every field is checked and an error names it and says what
/// is allowed, so a typo never silently falls back to a default.
/// </summary>
public static class PolicyResolver
{
    private delegate T Apply<T>(T target, JsonNode? value, string label);

    private sealed record Field<T>(string Name, Apply<T> Set);

    private static readonly Field<CanaryThresholds>[] ThresholdFields =
    [
        new("alpha", (t, v, l) => t with { Alpha = Number(v, l) }),
        new("max_error_rate_ratio", (t, v, l) => t with { MaxErrorRateRatio = Number(v, l) }),
        new("max_error_rate_delta", (t, v, l) => t with { MaxErrorRateDelta = Number(v, l) }),
        new("max_p95_latency_ratio", (t, v, l) => t with { MaxP95LatencyRatio = Number(v, l) }),
        new("min_p95_latency_delta_ms", (t, v, l) => t with { MinP95LatencyDeltaMs = Number(v, l) }),
        new("latency_alpha", (t, v, l) => t with { LatencyAlpha = Number(v, l) }),
        new("min_requests", (t, v, l) => t with { MinRequests = Int(v, l, min: 0) }),
        new("srm_alpha", (t, v, l) => t with { SrmAlpha = Number(v, l) }),
        new("min_agreement", (t, v, l) => t with { MinAgreement = Number(v, l) }),
        new("max_psi", (t, v, l) => t with { MaxPsi = Number(v, l) }),
    ];

    private static readonly Field<CompositeWeights>[] WeightFields =
    [
        new("latency", (w, v, l) => w with { Latency = Number(v, l) }),
        new("resource", (w, v, l) => w with { Resource = Number(v, l) }),
        new("error", (w, v, l) => w with { Error = Number(v, l) }),
    ];

    private static readonly Field<EvaluationGate>[] EvaluationFields =
    [
        new("shards", (g, v, l) => g with { Shards = Int(v, l, min: 1) }),
        new("max_accuracy_drop", (g, v, l) => g with { MaxAccuracyDrop = Number(v, l) }),
        new("max_f1_drop", (g, v, l) => g with { MaxF1Drop = Number(v, l) }),
        new("max_mse_increase", (g, v, l) => g with { MaxMseIncrease = Number(v, l) }),
        new("max_latency_ratio", (g, v, l) => g with { MaxLatencyRatio = Number(v, l) }),
        new("min_latency_delta_ms", (g, v, l) => g with { MinLatencyDeltaMs = Number(v, l) }),
    ];

    private static readonly Field<Policy>[] PolicyFields =
    [
        new("strategy", (p, v, l) => p with { Strategy = ParseStrategy(v, l) }),
        new("steps_bp", (p, v, l) => p with { StepsBp = Steps(v, l) }),
        new("window_s", (p, v, l) => p with { WindowS = Seconds(v, l) }),
        new("check_interval_s", (p, v, l) => p with { CheckIntervalS = Seconds(v, l) }),
        new("max_extensions", (p, v, l) => p with { MaxExtensions = Int(v, l, min: 0) }),
        new("thresholds", (p, v, l) => p with { Thresholds = Nested(p.Thresholds, v, l, ThresholdFields) }),
        new("shadow", (p, v, l) => p with { Shadow = NullableBool(v, l) }),
        new("shadow_fraction_bp", (p, v, l) => p with { ShadowFractionBp = Int(v, l, min: 0) }),
        new("shadow_duration_s", (p, v, l) => p with { ShadowDurationS = Seconds(v, l) }),
        new("approval_required", (p, v, l) => p with { ApprovalRequired = NullableBool(v, l) }),
        new("approval_timeout_s", (p, v, l) => p with { ApprovalTimeoutS = Seconds(v, l) }),
        new("ab_split_bp", (p, v, l) => p with { AbSplitBp = Int(v, l, min: 0) }),
        new("ab_duration_s", (p, v, l) => p with { AbDurationS = Seconds(v, l) }),
        new("bake_s", (p, v, l) => p with { BakeS = Seconds(v, l) }),
        new("warmup_timeout_s", (p, v, l) => p with { WarmupTimeoutS = Seconds(v, l) }),
        new("warmup_poll_s", (p, v, l) => p with { WarmupPollS = Seconds(v, l) }),
        new("heartbeat_max_age_s", (p, v, l) => p with { HeartbeatMaxAgeS = Seconds(v, l) }),
        new("slot_wait_timeout_s", (p, v, l) => p with { SlotWaitTimeoutS = Seconds(v, l) }),
        new("slot_poll_s", (p, v, l) => p with { SlotPollS = Seconds(v, l) }),
        new("retry_interval_s", (p, v, l) => p with { RetryIntervalS = Seconds(v, l) }),
        new("retry_attempts", (p, v, l) => p with { RetryAttempts = Int(v, l, min: 1) }),
        new("composite_weights", (p, v, l) => p with { CompositeWeights = Nested(p.CompositeWeights, v, l, WeightFields) }),
        new("evaluation", (p, v, l) => p with { Evaluation = Nested(p.Evaluation, v, l, EvaluationFields) }),
    ];

    /// <summary>The field names a policy object may hold, for messages and documentation.</summary>
    public static IReadOnlyList<string> FieldNames { get; } = PolicyFields.Select(f => f.Name).Order(StringComparer.Ordinal).ToList();

    /// <summary>Defaults, then each layer in order (<c>null</c> layers are skipped).</summary>
    public static Policy Resolve(params JsonObject?[] layers)
    {
        var policy = new Policy();
        for (var depth = 0; depth < layers.Length; depth++)
        {
            if (layers[depth] is { } layer)
            {
                policy = Nested(policy, layer, depth == 0 ? "policy" : "policy override", PolicyFields, prefix: "policy");
            }
        }
        return CheckConsistency(policy);
    }

    /// <summary>Parses a JSON text (an HTTP body's <c>policy</c>) into an override layer.</summary>
    public static JsonObject? ParseLayer(JsonNode? node, string source = "policy")
    {
        return node switch
        {
            null => null,
            JsonObject obj => obj,
            _ => throw new InvalidPolicyException($"{source} must be a JSON object, got {Kind(node)}"),
        };
    }

    private static T Nested<T>(T current, JsonNode? node, string label, Field<T>[] fields, string? prefix = null)
    {
        if (node is not JsonObject obj)
        {
            throw new InvalidPolicyException($"{label} must be a JSON object, got {Kind(node)}");
        }
        var byName = fields.ToDictionary(f => f.Name, StringComparer.Ordinal);
        var unknown = obj.Select(p => p.Key).Where(k => !byName.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0)
        {
            var allowed = string.Join(", ", byName.Keys.Order(StringComparer.Ordinal));
            throw new InvalidPolicyException($"{label}: unknown field(s) {string.Join(", ", unknown)}; allowed: {allowed}");
        }
        var path = prefix ?? label;
        foreach (var (key, value) in obj)
        {
            current = byName[key].Set(current, value, $"{path}.{key}");
        }
        return current;
    }

    private static Policy CheckConsistency(Policy policy)
    {
        foreach (var (name, value) in new[] { ("shadow_fraction_bp", policy.ShadowFractionBp), ("ab_split_bp", policy.AbSplitBp) })
        {
            if (value is < 1 or > Policy.BasisPoints)
            {
                throw new InvalidPolicyException($"policy.{name} must be within 1..{Policy.BasisPoints}, got {value}");
            }
        }
        if (policy.CheckIntervalS > policy.WindowS)
        {
            throw new InvalidPolicyException(
                $"policy.check_interval_s ({policy.CheckIntervalS}) must not exceed policy.window_s ({policy.WindowS})");
        }
        var w = policy.CompositeWeights;
        if (w.Latency + w.Resource + w.Error <= 0)
        {
            throw new InvalidPolicyException("policy.composite_weights must not all be zero");
        }
        policy.Thresholds.Validate();
        return policy;
    }

    private static Strategy ParseStrategy(JsonNode? node, string label)
    {
        var text = node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
        return text switch
        {
            "canary" => Strategy.Canary,
            "blue_green" => Strategy.BlueGreen,
            "ab_test" => Strategy.AbTest,
            "shadow_only" => Strategy.ShadowOnly,
            _ => throw new InvalidPolicyException(
                $"{label} must be one of canary, blue_green, ab_test, shadow_only, got {Describe(node)}"),
        };
    }

    private static int[] Steps(JsonNode? node, string label)
    {
        if (node is not JsonArray array || array.Count == 0)
        {
            throw new InvalidPolicyException($"{label} must be a non-empty list of basis points, got {Describe(node)}");
        }
        var steps = array.Select(s => Int(s, $"{label}[]", min: 1)).ToArray();
        if (steps.Any(s => s > Policy.BasisPoints))
        {
            throw new InvalidPolicyException($"{label} values must be within 1..{Policy.BasisPoints}, got {Describe(node)}");
        }
        for (var i = 1; i < steps.Length; i++)
        {
            if (steps[i] <= steps[i - 1])
            {
                // Weights only grow, so a sticky caller moved to the candidate stays there (DESIGN §4).
                throw new InvalidPolicyException($"{label} must be strictly increasing, got [{string.Join(", ", steps)}]");
            }
        }
        if (steps[^1] != Policy.BasisPoints)
        {
            throw new InvalidPolicyException(
                $"{label} must end at {Policy.BasisPoints} (100%) so a passing canary can be promoted, got [{string.Join(", ", steps)}]");
        }
        return steps;
    }

    private static bool? NullableBool(JsonNode? node, string label)
    {
        if (node is null)
        {
            return null;
        }
        if (node is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False)
        {
            return v.GetValue<bool>();
        }
        throw new InvalidPolicyException($"{label} must be true, false or null, got {Describe(node)}");
    }

    private static double Number(JsonNode? node, string label)
    {
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number
            && double.TryParse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
            && double.IsFinite(number))
        {
            if (number < 0)
            {
                throw new InvalidPolicyException($"{label} must not be negative, got {Describe(node)}");
            }
            return number;
        }
        throw new InvalidPolicyException($"{label} must be a finite number, got {Describe(node)}");
    }

    private static double Seconds(JsonNode? node, string label)
    {
        var seconds = Number(node, label);
        if (seconds <= 0)
        {
            throw new InvalidPolicyException($"{label} must be a positive number of seconds, got {Describe(node)}");
        }
        return seconds;
    }

    private static int Int(JsonNode? node, string label, int min)
    {
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && IsWhole(v, out var whole)
            && whole >= min && whole <= int.MaxValue)
        {
            return (int)whole;
        }
        throw new InvalidPolicyException($"{label} must be a whole number ≥ {min}, got {Describe(node)}");
    }

    // 1.0 is a float in JSON's source text, as it is for the reference: only integer literals count.
    private static bool IsWhole(JsonValue value, out long whole)
    {
        whole = 0;
        var text = value.ToJsonString();
        return !text.Contains('.', StringComparison.Ordinal) && !text.Contains('e', StringComparison.OrdinalIgnoreCase)
            && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out whole);
    }

    private static string Kind(JsonNode? node) => node switch
    {
        null => "null",
        JsonObject => "an object",
        JsonArray => "a list",
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => "a string",
            JsonValueKind.Number => "a number",
            JsonValueKind.True or JsonValueKind.False => "a boolean",
            _ => "a value",
        },
        _ => "a value",
    };

    private static string Describe(JsonNode? node)
    {
        var text = node?.ToJsonString() ?? "null";
        return text.Length > 80 ? text[..80] + "…" : text;
    }
}
