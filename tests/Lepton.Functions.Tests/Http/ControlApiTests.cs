using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Lepton.Shared.Registry;
using Lepton.Shared.Storage;
using Lepton.Testing;

namespace Lepton.Functions.Tests.Http;

/// <summary>The control API over a real socket on 127.0.0.1, against the real lifecycle on the in-process durable host.</summary>
public sealed class ControlApiTests(AzuriteFixture azurite) : Scenario(azurite)
{
    private static StringContent Json(JsonNode? body) => new(body?.ToJsonString() ?? "", Encoding.UTF8, "application/json");

    private async Task<(HttpStatusCode Status, JsonNode? Body, HttpResponseMessage Response)> CallAsync(HttpMethod method, string path, JsonNode? body = null, string? key = "ci")
    {
        using var http = Host.Http(key);
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : Json(body) };
        var response = await http.SendAsync(request, Token);
        var text = await response.Content.ReadAsStringAsync(Token);
        return (response.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null, response);
    }

    private Task<(HttpStatusCode Status, JsonNode? Body, HttpResponseMessage Response)> StartAsync(string version, JsonNode? body = null, string? key = "ci") =>
        CallAsync(HttpMethod.Post, $"/api/models/{Model}/versions/{version}/lifecycle", body ?? new JsonObject { ["policy"] = Fast() }, key);

    private static void AssertProblem((HttpStatusCode Status, JsonNode? Body, HttpResponseMessage Response) call, HttpStatusCode status, string code)
    {
        Assert.Equal(status, call.Status);
        Assert.Equal("application/problem+json", call.Response.Content.Headers.ContentType?.MediaType);
        Assert.Equal((int)status, call.Body!["status"]!.GetValue<int>());
        Assert.Equal(code, call.Body["code"]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(call.Body["detail"]!.GetValue<string>()));
    }

    [Fact(Timeout = 60_000)]
    public async Task Health_is_the_only_route_without_a_key()
    {
        var health = await CallAsync(HttpMethod.Get, "/api/health", key: null);
        Assert.Equal((HttpStatusCode.OK, "ok"), (health.Status, health.Body!["status"]!.GetValue<string>()));
        Assert.Equal(HttpStatusCode.Unauthorized, (await CallAsync(HttpMethod.Get, "/api/models", key: null)).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await StartAsync("1.0.0", key: null)).Status);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_start_answers_with_the_check_status_links_and_is_idempotent()
    {
        await UploadAsync("1.0.0", Good);

        var started = await StartAsync("1.0.0");

        Assert.Equal(HttpStatusCode.Accepted, started.Status);
        var instance = started.Body!["id"]!.GetValue<string>();
        Assert.Equal(new Uri(Host.BaseAddress, $"/runtime/webhooks/durabletask/instances/{instance}"), started.Response.Headers.Location);
        Assert.EndsWith("/raiseEvent/{eventName}", started.Body["sendEventPostUri"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(started.Response.Headers.Location!.ToString(), started.Body["statusQueryGetUri"]!.GetValue<string>());
        var again = await StartAsync("1.0.0");
        Assert.Equal((HttpStatusCode.Accepted, instance), (again.Status, again.Body!["id"]!.GetValue<string>()));

        await Host.WaitDoneAsync(instance);
        var status = await CallAsync(HttpMethod.Get, started.Body["statusQueryGetUri"]!.GetValue<string>());
        Assert.Equal((HttpStatusCode.OK, "Completed"), (status.Status, status.Body!["runtimeStatus"]!.GetValue<string>()));
        Assert.Equal("production", status.Body["output"]!["outcome"]!.GetValue<string>());
        Assert.Equal("production", status.Body["customStatus"]!["stage"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.NotFound, (await CallAsync(HttpMethod.Get, "/runtime/webhooks/durabletask/instances/nobody")).Status);
        var detail = await CallAsync(HttpMethod.Get, $"/api/models/{Model}/versions/1.0.0");
        Assert.Equal(HttpStatusCode.OK, detail.Status);
        Assert.Equal("production", detail.Body!["version"]!["stage"]!.GetValue<string>());
        Assert.Equal("Completed", detail.Body["lifecycle"]!["runtime_status"]!.GetValue<string>());
        Assert.Equal("production", detail.Body["lifecycle"]!["custom_status"]!["stage"]!.GetValue<string>());
        Assert.Contains("evaluation.json", detail.Body["reports"]!.AsArray().Select(r => r!.GetValue<string>()));
        var model = await CallAsync(HttpMethod.Get, $"/api/models/{Model}");
        Assert.Equal("1.0.0", model.Body!["routes"]!["production"]!.GetValue<string>());
        Assert.Equal(("1.0.0", "production"), (model.Body["versions"]![0]!["version"]!.GetValue<string>(), model.Body["versions"]![0]!["stage"]!.GetValue<string>()));
        var models = await CallAsync(HttpMethod.Get, "/api/models");
        Assert.Contains(Model, models.Body!["models"]!.AsArray().Select(m => m!.GetValue<string>()));
        var history = await CallAsync(HttpMethod.Get, $"/api/models/{Model}/versions/1.0.0/history");
        Assert.Equal(["registered", "validating", "evaluating", "production"], history.Body!["events"]!.AsArray().Select(e => e!["to"]!.GetValue<string>()));
        // The audit actor is the caller's key, not anything the body says.
        Assert.Equal("key:ci", history.Body["events"]![0]!["actor"]!.GetValue<string>());
    }

    [Fact(Timeout = 60_000)]
    public async Task A_bad_policy_is_refused_before_anything_is_written()
    {
        await UploadAsync("1.0.0", Good);

        var refused = await StartAsync("1.0.0", new JsonObject { ["policy"] = new JsonObject { ["steps_bp"] = new JsonArray(500, 100) } });

        AssertProblem(refused, HttpStatusCode.BadRequest, "invalid_policy");
        Assert.Contains("policy.steps_bp must be strictly increasing", refused.Body!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.DoesNotContain(Model, await Host.Registry.ListModelsAsync(Token));
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_errors_are_clear()
    {
        AssertProblem(await CallAsync(HttpMethod.Post, "/api/models/Digits!/versions/1.0.0/lifecycle", new JsonObject()), HttpStatusCode.BadRequest, "invalid_model_name");
        AssertProblem(await CallAsync(HttpMethod.Post, $"/api/models/{Model}/versions/v1/lifecycle", new JsonObject()), HttpStatusCode.BadRequest, "invalid_version");
        AssertProblem(await CallAsync(HttpMethod.Post, $"/api/models/{Model}/versions/9.9.9/lifecycle", new JsonObject()), HttpStatusCode.NotFound, "blob_not_found");
        AssertProblem(await CallAsync(HttpMethod.Post, $"/api/models/{Model}/versions/1.0.0/lifecycle", new JsonArray(1, 2)), HttpStatusCode.BadRequest, "invalid_input");
        var actor = await CallAsync(HttpMethod.Post, $"/api/models/{Model}/versions/1.0.0/lifecycle", new JsonObject { ["actor"] = "mallory" });
        AssertProblem(actor, HttpStatusCode.BadRequest, "invalid_input");
        Assert.Contains("from its credentials", actor.Body!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        var typo = await CallAsync(HttpMethod.Post, $"/api/models/{Model}/versions/1.0.0/lifecycle", new JsonObject { ["polcy"] = new JsonObject() });
        Assert.Contains("unknown field(s) polcy", typo.Body!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        using var http = Host.Http();
        var garbage = await http.PostAsync($"/api/models/{Model}/versions/1.0.0/lifecycle", new StringContent("{not json", Encoding.UTF8, "application/json"), Token);
        Assert.Equal(HttpStatusCode.BadRequest, garbage.StatusCode);
        var huge = await http.PostAsync($"/api/models/{Model}/versions/1.0.0/lifecycle", new StringContent(new string(' ', 70_000), Encoding.UTF8, "application/json"), Token);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, huge.StatusCode);
    }

    [Fact(Timeout = 120_000)]
    public async Task Operator_commands_need_a_running_lifecycle_and_say_where_the_version_stands()
    {
        AssertProblem(await CallAsync(HttpMethod.Post, $"/api/models/{Model}/versions/1.0.0/approve", new JsonObject()), HttpStatusCode.NotFound, "version_not_found");
        await UploadAsync("1.0.0", Good);
        var started = await StartAsync("1.0.0");
        await Host.WaitDoneAsync(started.Body!["id"]!.GetValue<string>());

        var late = await CallAsync(HttpMethod.Post, $"/api/models/{Model}/versions/1.0.0/rollback", new JsonObject { ["reason"] = "x" });

        AssertProblem(late, HttpStatusCode.Conflict, "conflict");
        var detail = late.Body!["detail"]!.GetValue<string>();
        Assert.Contains("no running lifecycle (it is Completed, stage 'production')", detail, StringComparison.Ordinal);
        Assert.Contains("PUT /api/models", detail, StringComparison.Ordinal);
    }

    [Fact(Timeout = 180_000)]
    public async Task Abort_over_http_rolls_back_a_running_canary_as_the_calling_key()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        await UploadAsync("1.0.1", Good);
        var started = await StartAsync("1.0.1", new JsonObject { ["policy"] = Fast(("window_s", 60.0), ("check_interval_s", 20.0)) });
        var instance = started.Body!["id"]!.GetValue<string>();
        await Host.WaitStatusAsync(instance, s => s.WeightBp == 5000);

        var sent = await CallAsync(HttpMethod.Post, $"/api/models/{Model}/versions/1.0.1/abort", new JsonObject { ["reason"] = "bad deploy" }, key: "carol");

        Assert.Equal((HttpStatusCode.Accepted, "abort"), (sent.Status, sent.Body!["sent"]!["action"]!.GetValue<string>()));
        Assert.Equal(HttpStatusCode.Accepted, (await CallAsync(HttpMethod.Get, started.Body["statusQueryGetUri"]!.GetValue<string>())).Status);
        Assert.Equal(instance, sent.Body["instance_id"]!.GetValue<string>());
        var outcome = await Host.WaitDoneAsync(instance);
        Assert.Equal("aborted by operator key:carol: bad deploy", outcome.Reason);
        var detail = await CallAsync(HttpMethod.Get, $"/api/models/{Model}/versions/1.0.1");
        Assert.Equal(("rolled_back", outcome.Reason), (detail.Body!["version"]!["stage"]!.GetValue<string>(), detail.Body["version"]!["reason"]!.GetValue<string>()));
        Assert.Equal("key:carol", (await Host.Registry.HistoryAsync(Model, "1.0.1", Token))[^1].Actor);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_manual_route_change_is_validated_and_audited()
    {
        await UploadAsync("1.0.0", Good);
        await Host.WaitDoneAsync((await StartAsync("1.0.0")).Body!["id"]!.GetValue<string>());
        var path = $"/api/models/{Model}/routes";

        var tooMuch = await CallAsync(HttpMethod.Put, path, new JsonObject { ["candidate_weight_bp"] = 20000 });
        AssertProblem(tooMuch, HttpStatusCode.BadRequest, "invalid_routes");
        Assert.Contains("within 0..10000", tooMuch.Body!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        var typo = await CallAsync(HttpMethod.Put, path, new JsonObject { ["wieght"] = 1 });
        AssertProblem(typo, HttpStatusCode.BadRequest, "invalid_routes");
        Assert.Contains("unknown field(s) wieght", typo.Body!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        AssertProblem(await CallAsync(HttpMethod.Put, path, new JsonObject { ["candidate"] = "1.0.0", ["candidate_weight_bp"] = 1 }), HttpStatusCode.BadRequest, "invalid_routes");
        AssertProblem(await CallAsync(HttpMethod.Put, path, new JsonObject { ["candidate_weight_bp"] = 1.5 }), HttpStatusCode.BadRequest, "invalid_routes");
        Assert.Null((await Host.Registry.GetRoutesAsync(Model, Token)).StickyHeader);

        var changed = await CallAsync(HttpMethod.Put, path, new JsonObject { ["sticky_header"] = "x-user", ["reason"] = "pin users" }, key: "dan");

        Assert.Equal((HttpStatusCode.OK, "x-user"), (changed.Status, changed.Body!["sticky_header"]!.GetValue<string>()));
        var last = (await Host.Registry.HistoryAsync(Model, cancellationToken: Token))[^1];
        Assert.Equal((AuditKinds.Routes, "key:dan", "pin users"), (last.Kind, last.Actor, last.Reason));
    }

    [Fact(Timeout = 60_000)]
    public async Task An_unknown_model_is_a_404()
    {
        AssertProblem(await CallAsync(HttpMethod.Get, "/api/models/nobody-here"), HttpStatusCode.NotFound, "model_not_found");
    }

    [Fact(Timeout = 120_000)]
    public async Task A_start_keeps_its_policy_on_the_version_and_a_repeat_start_changes_nothing()
    {
        await UploadAsync("1.0.0", Good);
        var started = await StartAsync("1.0.0");
        // Recorded for the restart reconciler (the local durable backend forgets inputs).
        Assert.True(JsonNode.DeepEquals(Fast(), (await Host.Registry.GetVersionAsync(Model, "1.0.0", Token)).PolicyOverrides));
        var again = await StartAsync("1.0.0", new JsonObject { ["policy"] = Fast(("bake_s", 9.0)) }, key: "someone-else");
        Assert.Equal(started.Body!["id"]!.GetValue<string>(), again.Body!["id"]!.GetValue<string>());

        await Host.WaitDoneAsync(started.Body["id"]!.GetValue<string>());

        var detail = await CallAsync(HttpMethod.Get, $"/api/models/{Model}/versions/1.0.0");
        Assert.True(JsonNode.DeepEquals(Fast(), detail.Body!["version"]!["policy_overrides"]));
        var registered = (await Host.Registry.HistoryAsync(Model, "1.0.0", Token)).Where(e => e.Kind == AuditKinds.Registered).Select(e => (e.Actor, e.To));
        Assert.Equal([("key:ci", "registered")], registered);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_start_of_a_changed_file_under_a_registered_version_is_refused()
    {
        await UploadAsync("1.0.0", Good);
        var started = await StartAsync("1.0.0");
        await Host.WaitDoneAsync(started.Body!["id"]!.GetValue<string>());
        // Replaced behind Lepton's back (the model store itself refuses this): versions are immutable.
        await Azurite.Clients.Container(StorageLayout.ModelsContainer).GetBlobClient($"{Model}/1.0.0/model.onnx")
            .UploadAsync(BinaryData.FromBytes(Cli.Samples.SampleDatasets.WeakClassifier(Digits.Train)), overwrite: true, Token);

        var refused = await StartAsync("1.0.0");

        AssertProblem(refused, HttpStatusCode.Conflict, "version_conflict");
        Assert.Contains("already registered with different content", refused.Body!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        var record = await Host.Registry.GetVersionAsync(Model, "1.0.0", Token);
        Assert.Equal((Shared.Lifecycle.Stage.Production, started.Body["id"]!.GetValue<string>()), (record.Stage, record.InstanceId));
    }
}
