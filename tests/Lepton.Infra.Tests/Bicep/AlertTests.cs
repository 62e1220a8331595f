namespace Lepton.Infra.Tests.Bicep;

/// <summary>
/// Azure Monitor log search alerts on the worker's error rate and latency, one alert per model
/// (split by the Model dimension), over the Application Insights requests in the workspace.
/// </summary>
public sealed class AlertTests(Deployments deployments)
{
    private const string Rule = "Microsoft.Insights/scheduledQueryRules";

    [Fact]
    public async Task Error_rate_and_latency_rules_query_the_workspace_per_model()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.WorkerWithKeys);
        var workspace = deployment.Single("Microsoft.OperationalInsights/workspaces").Text("id");
        var rules = deployment.OfType(Rule).ToDictionary(r => r.Text("name"), r => r);
        Assert.Equal(["lepton-test-worker-error-rate", "lepton-test-worker-latency-p95"], rules.Keys.Order());
        foreach (var rule in rules.Values)
        {
            Assert.Equal("LogAlert", rule.Text("kind"));
            Assert.Equal(workspace, Assert.Single(rule.Get("properties", "scopes").AsArray())!.GetValue<string>());
            Assert.True(rule.Get("properties", "enabled").GetValue<bool>());
            var criterion = Assert.Single(rule.Objects("properties", "criteria", "allOf"));
            var dimension = Assert.Single(criterion.Objects("dimensions"));
            Assert.Equal("Model", dimension.Text("name"));
            Assert.Equal("Include", dimension.Text("operator"));
            Assert.Equal("*", Assert.Single(dimension.Get("values").AsArray())!.GetValue<string>());
            var query = criterion.Text("query");
            Assert.StartsWith("AppRequests\n", query, StringComparison.Ordinal);
            Assert.Contains("extend Model = extract(@\"/v2/models/([^/?]+)\", 1, Url)", query, StringComparison.Ordinal);
            Assert.Contains("by Model", query, StringComparison.Ordinal);
            Assert.Contains("where Requests >= 20", query, StringComparison.Ordinal);
            Assert.Contains(criterion.Text("metricMeasureColumn"), query, StringComparison.Ordinal);
            Assert.Equal("GreaterThan", criterion.Text("operator"));
        }
        var errors = rules["lepton-test-worker-error-rate"].Objects("properties", "criteria", "allOf").Single();
        Assert.Contains("countif(toint(ResultCode) >= 500)", errors.Text("query"), StringComparison.Ordinal);
        Assert.Equal(5, errors.Get("threshold").GetValue<int>());
        var latency = rules["lepton-test-worker-latency-p95"].Objects("properties", "criteria", "allOf").Single();
        Assert.Contains("percentile(DurationMs, 95)", latency.Text("query"), StringComparison.Ordinal);
        Assert.Equal(1000, latency.Get("threshold").GetValue<int>());
    }

    [Fact]
    public async Task An_email_gets_an_action_group_and_no_email_gets_rules_without_one()
    {
        var withEmail = await deployments.SnapshotAsync(Scenario.WorkerWithKeys);
        var group = withEmail.Single("Microsoft.Insights/actionGroups");
        Assert.Equal("ops@example.com", Assert.Single(group.Objects("properties", "emailReceivers")).Text("emailAddress"));
        Assert.All(withEmail.OfType(Rule), rule =>
            Assert.Equal(group.Text("id"), Assert.Single(rule.Get("properties", "actions", "actionGroups").AsArray())!.GetValue<string>()));

        var dev = await deployments.SnapshotAsync(Scenario.Dev);
        Assert.Empty(dev.OfType("Microsoft.Insights/actionGroups"));
        Assert.Equal(2, dev.OfType(Rule).Count());
        Assert.All(dev.OfType(Rule), rule => Assert.Empty(rule.Get("properties", "actions", "actionGroups").AsArray()));
    }
}
