using System.Reflection;
using System.Text.Json;
using Azure.Core.Serialization;
using Lepton.Functions.Http;
using Lepton.Functions.Lifecycle;
using Lepton.Shared;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Policies;
using Lepton.Shared.Reports;
using Lepton.Shared.Statistics;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Converters;

namespace Lepton.Functions.Tests;

/// <summary>The Functions app's bindings as the Functions host indexes them, instance ids, and the payload conventions.</summary>
public sealed class FunctionsAppTests
{
    private static readonly MethodInfo[] Functions = typeof(LifecycleFunctions).Assembly.GetTypes()
        .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static))
        .Where(m => m.GetCustomAttribute<FunctionAttribute>() is not null)
        .ToArray();

    private static MethodInfo Function(string name) => Functions.Single(m => m.GetCustomAttribute<FunctionAttribute>()!.Name == name);

    private static T Trigger<T>(MethodInfo method)
        where T : Attribute => method.GetParameters().Select(p => p.GetCustomAttribute<T>()).OfType<T>().Single();

    [Fact]
    public void Every_orchestration_and_activity_name_is_a_function_with_its_trigger()
    {
        Assert.Equal(Functions.Length, Functions.Select(f => f.GetCustomAttribute<FunctionAttribute>()!.Name).Distinct().Count());
        Trigger<OrchestrationTriggerAttribute>(Function(LifecycleNames.Orchestrator));
        foreach (var activity in LifecycleNames.Activities)
        {
            Trigger<ActivityTriggerAttribute>(Function(activity));
        }
    }

    [Fact]
    public void The_http_routes_are_the_reference_routes_and_only_health_is_anonymous()
    {
        var http = Functions.Where(f => f.GetParameters().Any(p => p.GetCustomAttribute<HttpTriggerAttribute>() is not null)).ToList();
        var routes = http.ToDictionary(f => f.GetCustomAttribute<FunctionAttribute>()!.Name, f => Trigger<HttpTriggerAttribute>(f));
        Assert.Equal(
            new Dictionary<string, (string, string)>
            {
                ["health"] = ("get", "health"),
                ["list_models"] = ("get", "models"),
                ["model_detail"] = ("get", "models/{model}"),
                ["put_routes"] = ("put", "models/{model}/routes"),
                ["version_detail"] = ("get", "models/{model}/versions/{version}"),
                ["start_lifecycle"] = ("post", "models/{model}/versions/{version}/lifecycle"),
                ["approve"] = ("post", "models/{model}/versions/{version}/approve"),
                ["promote"] = ("post", "models/{model}/versions/{version}/promote"),
                ["rollback"] = ("post", "models/{model}/versions/{version}/rollback"),
                ["abort"] = ("post", "models/{model}/versions/{version}/abort"),
                ["version_history"] = ("get", "models/{model}/versions/{version}/history"),
                // Beyond the reference: the model's whole log, traffic changes included (`lepton history MODEL`).
                ["model_history"] = ("get", "models/{model}/history"),
            },
            routes.ToDictionary(p => p.Key, p => (Assert.Single(p.Value.Methods!), p.Value.Route!)));
        Assert.Equal(["health"], routes.Where(p => p.Value.AuthLevel == AuthorizationLevel.Anonymous).Select(p => p.Key));
        Assert.All(routes.Where(p => p.Key != "health"), p => Assert.Equal(AuthorizationLevel.Function, p.Value.AuthLevel));
    }

    [Fact]
    public void The_blob_trigger_listens_to_event_grid_on_model_files_and_the_timer_reads_its_schedule_setting()
    {
        var blob = Trigger<BlobTriggerAttribute>(Function(LifecycleNames.ModelBlobTrigger));
        Assert.Equal(("models/{model}/{version}/model.onnx", BlobTriggerSource.EventGrid, "AzureWebJobsStorage"), (blob.BlobPath, blob.Source, blob.Connection));
        var timer = Trigger<TimerTriggerAttribute>(Function(LifecycleNames.MetricsRetentionTimer));
        Assert.Equal("%LEPTON_METRICS_RETENTION_SCHEDULE%", timer.Schedule);
    }

    [Fact]
    public void Instance_ids_depend_on_model_version_and_content()
    {
        var id = LifecycleStarter.InstanceIdFor("digits", "1.0.0+build.7", new string('a', 32) + new string('b', 32));
        Assert.Equal("lepton-digits-1.0.0_build.7-aaaaaaaaaaaaaaaa", id);
        Assert.NotEqual(id, LifecycleStarter.InstanceIdFor("digits", "1.0.0+build.7", new string('c', 64)));
        Assert.Throws<InvalidModelNameException>(() => LifecycleStarter.InstanceIdFor("Digits", "1.0.0", new string('a', 64)));
        Assert.Throws<InvalidVersionException>(() => LifecycleStarter.InstanceIdFor("digits", "v1", new string('a', 64)));
    }

    /// <summary>What one activity returns, with an idle version's NaN p95 in it.</summary>
    private static WindowJudgement Judgement() => new(
        Verdict.InsufficientEvidence,
        "too few",
        new CanaryChecks { CandidateP95Ms = double.NaN, SrmP = 0.5 },
        WindowSummary.Empty,
        WindowSummary.Empty,
        new CompositeComparison(CompositeScore.FromParts(double.NaN, 1, 0.01), null),
        new BaselineUsed(1, 2, BaselineSource.SameWindow, "d", 0));

    [Fact]
    public void Payloads_with_nan_survive_both_hosts_serializers()
    {
        var standalone = new JsonDataConverter(LeptonJson.Options);
        var functions = new JsonObjectSerializer(LeptonJson.Options);
        foreach (var text in new[] { standalone.Serialize(Judgement()), Encoding(functions, Judgement()) })
        {
            Assert.Contains("\"candidate_p95_ms\":null", text, StringComparison.Ordinal);
            var back = standalone.Deserialize<WindowJudgement>(text)!;
            Assert.Null(back.Checks.CandidateP95Ms); // an optional statistic that was NaN reads back as absent
            Assert.Equal(0.5, back.Checks.SrmP);
            Assert.Equal(Verdict.InsufficientEvidence, back.Verdict);
            Assert.True(double.IsNaN(back.Composite!.Candidate.P));
        }
    }

    [Fact]
    public void A_resolved_policy_round_trips_through_an_activity_result()
    {
        var policy = PolicyResolver.Resolve(Scenario.Fast(("strategy", "blue_green"), ("approval_required", true)));
        var result = new ValidateResult { Policy = policy, Plan = RolloutPlan.For(policy, Bump.Major), Task = Shared.Models.ModelTask.Regression };
        var converter = new JsonDataConverter(LeptonJson.Options);

        var back = converter.Deserialize<ValidateResult>(converter.Serialize(result))!;

        Assert.Equal(policy, back.Policy);
        Assert.Equal(result.Plan, back.Plan);
        Assert.Equal(Shared.Models.ModelTask.Regression, back.Task);
    }

    [Fact]
    public void The_check_status_payload_uses_durables_member_names()
    {
        var payload = new CheckStatusPayload("id", "s", "e", "t", "p", "su", "r");
        var json = JsonSerializer.Serialize(payload, LeptonJson.Options);
        Assert.Equal("{\"id\":\"id\",\"statusQueryGetUri\":\"s\",\"sendEventPostUri\":\"e\",\"terminatePostUri\":\"t\",\"purgeHistoryDeleteUri\":\"p\",\"suspendPostUri\":\"su\",\"resumePostUri\":\"r\"}", json);
    }

    private static string Encoding(ObjectSerializer serializer, object value) => serializer.Serialize(value)!.ToString();
}
